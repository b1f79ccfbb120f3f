package broker

import (
	"context"
	"time"
)

// Producer publishes messages. Implementations are safe for concurrent use.
type Producer interface {
	// Send publishes msgs and returns once the broker acknowledged or
	// rejected each of them, or ctx ended. The results are in the order of
	// msgs; err is set only when nothing could be attempted.
	Send(ctx context.Context, msgs []OutMessage) ([]SendResult, error)
	// Close waits for outstanding messages until ctx ends, then releases
	// the connection. Closing twice returns nil.
	Close(ctx context.Context) error
}

// Consumer receives messages and applies the application's results to them.
// Poll is called from one goroutine at a time; Settle and Commit may run
// concurrently with Poll.
type Consumer interface {
	// Subscribe replaces the subscription with the given topics or queues.
	Subscribe(ctx context.Context, names []string) error
	// Poll waits up to timeout for deliveries and returns at most max.
	// An empty result with a nil error means none arrived in time.
	Poll(ctx context.Context, timeout time.Duration, max int) ([]Delivery, error)
	// Settle applies each result as the broker's table of results defines:
	// acknowledge, retry after a backoff, dead-letter or drop.
	Settle(ctx context.Context, results []Settlement) error
	// Commit acknowledges the given deliveries and, where the broker has
	// offsets, commits them synchronously before returning.
	Commit(ctx context.Context, tokens []uint64) error
	// Close stops receiving, commits what was settled, and releases the
	// connection. Closing twice returns nil.
	Close(ctx context.Context) error
}

// RetryPolicy decides how often and when a failed delivery is retried.
type RetryPolicy struct {
	// MaxRetries is how many times a delivery is retried after its first
	// attempt before it is dead-lettered.
	MaxRetries int
	// Backoff is the wait before the first retry; it doubles on each retry
	// up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// DefaultRetryPolicy is used when the application sets none.
var DefaultRetryPolicy = RetryPolicy{MaxRetries: 3, Backoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}

// Delay returns the wait before retry number n, counting from 1.
func (p RetryPolicy) Delay(n int) time.Duration {
	if n < 1 || p.Backoff <= 0 {
		return 0
	}
	d := p.Backoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	if p.MaxBackoff > 0 && d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	return d
}
