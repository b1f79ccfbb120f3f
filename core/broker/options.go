package broker

import "time"

// ConsumerOptions are the per-consumer settings that a decorator or
// Consumer.connect adds to the broker's config. They are the same for every
// broker; each broker package reads only those that apply to it.
type ConsumerOptions struct {
	// Group overrides the config's consumer group (Kafka only); empty keeps it.
	Group string
	// AutoCommit overrides the config's auto_commit (Kafka only) when set.
	AutoCommit *bool
	// Retry decides when failed deliveries are redelivered or dead-lettered.
	Retry RetryPolicy
	// DeadLetter overrides the dead-letter destination; empty means the
	// broker's default (<topic>.dlq, <queue>.dlq, or the SQS config's DLQ).
	DeadLetter string
	// Prefetch caps unacknowledged deliveries (RabbitMQ); 0 keeps the config's.
	Prefetch int
	// Exchange, when set, is declared durable with ExchangeType and each
	// subscribed queue is bound to it with RoutingKey, or with the queue's
	// name when RoutingKey is empty (RabbitMQ only).
	Exchange     string
	ExchangeType string
	RoutingKey   string
	// VisibilityTimeout is how long an SQS message stays hidden per receive,
	// extended while its handler runs; 0 keeps the queue's own.
	VisibilityTimeout time.Duration
}

// ParseConsumerOptions reads ConsumerOptions from a JSON object with the
// fields group, auto_commit, max_retries, retry_backoff_ms,
// max_retry_backoff_ms, dead_letter, prefetch_count, exchange,
// exchange_type, routing_key and visibility_timeout_secs, all optional.
func ParseConsumerOptions(data []byte) (ConsumerOptions, error) {
	opts := ConsumerOptions{Retry: DefaultRetryPolicy}
	if len(data) == 0 {
		return opts, nil
	}
	f, err := ParseFields("consumer options", data)
	if err != nil {
		return opts, err
	}
	if opts.Group, err = f.String("group", "", true); err != nil {
		return opts, err
	}
	if _, present := f.lookup("auto_commit"); present {
		ac, err := f.Bool("auto_commit", true)
		if err != nil {
			return opts, err
		}
		opts.AutoCommit = &ac
	}
	retries, err := f.Int("max_retries", int64(DefaultRetryPolicy.MaxRetries), 0, 1000)
	if err != nil {
		return opts, err
	}
	backoff, err := f.Int("retry_backoff_ms", DefaultRetryPolicy.Backoff.Milliseconds(), 0, 3_600_000)
	if err != nil {
		return opts, err
	}
	maxBackoff, err := f.Int("max_retry_backoff_ms", DefaultRetryPolicy.MaxBackoff.Milliseconds(), 0, 3_600_000)
	if err != nil {
		return opts, err
	}
	opts.Retry = RetryPolicy{
		MaxRetries: int(retries),
		Backoff:    time.Duration(backoff) * time.Millisecond,
		MaxBackoff: time.Duration(maxBackoff) * time.Millisecond,
	}
	if opts.DeadLetter, err = f.String("dead_letter", "", true); err != nil {
		return opts, err
	}
	prefetch, err := f.Int("prefetch_count", 0, 0, 65535)
	if err != nil {
		return opts, err
	}
	opts.Prefetch = int(prefetch)
	if opts.Exchange, err = f.String("exchange", "", true); err != nil {
		return opts, err
	}
	if opts.ExchangeType, err = f.Choice("exchange_type", "topic", "direct", "topic", "fanout", "headers"); err != nil {
		return opts, err
	}
	if opts.RoutingKey, err = f.String("routing_key", "", false); err != nil {
		return opts, err
	}
	visibility, err := f.Int("visibility_timeout_secs", 0, 0, 43200)
	if err != nil {
		return opts, err
	}
	opts.VisibilityTimeout = time.Duration(visibility) * time.Second
	return opts, f.Unknown()
}
