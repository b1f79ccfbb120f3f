package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/cello-framework/cello/core/broker"
)

// maxMessageBytes is librdkafka's default message.max.bytes (1,000,000),
// the largest record a producer accepts unless the config's extra
// properties raise it.
const maxMessageBytes = 1_000_000

// Producer publishes records and waits for their delivery reports.
type Producer struct {
	p        *ck.Producer
	log      broker.Logger
	brokers  string
	maxBytes int

	throttle *broker.Throttle

	// mu guards closed. Send holds it shared while it enqueues records, so
	// Close cannot destroy the librdkafka handle under a running Produce.
	mu     sync.RWMutex
	closed bool
	events sync.WaitGroup
}

// sendCall collects the delivery reports of one Send.
type sendCall struct {
	msgs      []broker.OutMessage
	results   []broker.SendResult
	remaining atomic.Int32
	done      chan struct{}
}

// deliveryRef is the opaque value of one record: which call and which entry
// its delivery report belongs to.
type deliveryRef struct {
	call  *sendCall
	index int
}

func (s *sendCall) finish(i int, r broker.SendResult) {
	if r.Err == nil {
		r.ID = RecordID(s.msgs[i].Destination, r.Partition, r.Offset)
	}
	s.results[i] = r
	if s.remaining.Add(-1) == 0 {
		close(s.done)
	}
}

// NewProducer creates a producer and checks within the config's connect
// timeout that at least one broker responds to a metadata request.
func NewProducer(ctx context.Context, cfg *Config, log broker.Logger) (*Producer, error) {
	m := cfg.producerMap()
	p, err := ck.NewProducer(&m)
	if err != nil {
		return nil, fmt.Errorf("%w: kafka producer: %v", broker.ErrConfig, err)
	}
	pr := &Producer{p: p, log: log, brokers: joinBrokers(cfg), maxBytes: maxMessageBytes, throttle: broker.NewThrottle(time.Minute)}
	go forwardLogs(p.Logs(), log, pr.brokers)
	if v, ok := cfg.Extra["message.max.bytes"]; ok {
		fmt.Sscanf(v, "%d", &pr.maxBytes)
	}
	if err := checkReachable(ctx, p, cfg); err != nil {
		p.Close()
		return nil, err
	}
	pr.events.Add(1)
	go pr.readEvents()
	log.Log(broker.LevelInfo, "kafka", "producer connected", broker.F("broker", pr.brokers))
	return pr, nil
}

// metadataClient is the part of the librdkafka handle that checkReachable
// uses; both producers and consumers have it.
type metadataClient interface {
	GetMetadata(topic *string, allTopics bool, timeoutMs int) (*ck.Metadata, error)
}

func checkReachable(ctx context.Context, client metadataClient, cfg *Config) error {
	timeout := time.Duration(cfg.ConnectTimeoutMs) * time.Millisecond
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout < time.Millisecond {
		timeout = time.Millisecond
	}
	if _, err := client.GetMetadata(nil, false, int(timeout.Milliseconds())); err != nil {
		return fmt.Errorf("%w: no kafka broker responded at %s within %v: %v", broker.ErrConnection, joinBrokers(cfg), timeout, err)
	}
	return nil
}

func joinBrokers(cfg *Config) string {
	s := ""
	for i, b := range cfg.Brokers {
		if i > 0 {
			s += ","
		}
		s += b
	}
	return s
}

// readEvents routes delivery reports to their Send calls until the
// librdkafka handle is closed, which closes the events channel.
func (pr *Producer) readEvents() {
	defer pr.events.Done()
	for ev := range pr.p.Events() {
		switch e := ev.(type) {
		case *ck.Message:
			ref, ok := e.Opaque.(*deliveryRef)
			if !ok {
				continue
			}
			r := broker.SendResult{Partition: e.TopicPartition.Partition, Offset: int64(e.TopicPartition.Offset)}
			if err := e.TopicPartition.Error; err != nil {
				r.Err = deliveryError(*e.TopicPartition.Topic, err)
			}
			ref.call.finish(ref.index, r)
		case ck.Error:
			ok, dropped := pr.throttle.Allow(e.Code().String())
			if !ok {
				continue
			}
			msg := "producer error, librdkafka retries: " + e.Error()
			if dropped > 0 {
				msg += fmt.Sprintf(" (%d similar errors not logged)", dropped)
			}
			pr.log.Log(broker.LevelWarning, "kafka", msg, broker.F("broker", pr.brokers), broker.F("err", e.Code().String()))
		}
	}
}

func deliveryError(topic string, err error) error {
	var kerr ck.Error
	if errors.As(err, &kerr) {
		switch kerr.Code() {
		case ck.ErrMsgSizeTooLarge:
			return fmt.Errorf("%w: topic %s: the broker rejected the record as larger than its message.max.bytes: %v", broker.ErrTooLarge, topic, err)
		case ck.ErrUnknownTopicOrPart, ck.ErrUnknownTopic:
			return fmt.Errorf("%w: topic %s: %v", broker.ErrNotFound, topic, err)
		case ck.ErrMsgTimedOut, ck.ErrTimedOut:
			return fmt.Errorf("%w: topic %s: no acknowledgement from the broker: %v", broker.ErrTimeout, topic, err)
		case ck.ErrAllBrokersDown, ck.ErrTransport:
			return fmt.Errorf("%w: topic %s: %v", broker.ErrConnection, topic, err)
		}
	}
	return fmt.Errorf("%w: topic %s: %v", broker.ErrDelivery, topic, err)
}

// Send enqueues every message, then waits for all delivery reports. Sizes
// are checked first, so a batch with an oversized message sends nothing.
func (pr *Producer) Send(ctx context.Context, msgs []broker.OutMessage) ([]broker.SendResult, error) {
	for i := range msgs {
		if err := checkTopic(msgs[i].Destination); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		for _, h := range msgs[i].Headers {
			if strings.IndexByte(h.Key, 0) >= 0 {
				return nil, fmt.Errorf("%w: message %d has a header name with a NUL byte: %q", broker.ErrInvalidArgument, i, h.Key)
			}
		}
		if size := recordSize(&msgs[i]); size > pr.maxBytes {
			return nil, fmt.Errorf("%w: message %d for topic %s is %d bytes, over the limit of %d bytes (message.max.bytes)",
				broker.ErrTooLarge, i, msgs[i].Destination, size, pr.maxBytes)
		}
	}
	call := &sendCall{msgs: msgs, results: make([]broker.SendResult, len(msgs)), done: make(chan struct{})}
	call.remaining.Store(int32(len(msgs)))
	if len(msgs) == 0 {
		return nil, nil
	}
	if err := pr.enqueue(ctx, call, msgs); err != nil {
		return nil, err
	}
	select {
	case <-call.done:
		return call.results, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for kafka delivery reports: %v", broker.ErrTimeout, ctx.Err())
	}
}

func (pr *Producer) enqueue(ctx context.Context, call *sendCall, msgs []broker.OutMessage) error {
	pr.mu.RLock()
	defer pr.mu.RUnlock()
	if pr.closed {
		return fmt.Errorf("kafka producer: %w", broker.ErrClosed)
	}
	// One allocation each for the batch's records and opaque values rather
	// than two per record; the records point into msgs, which outlives them.
	recs := make([]ck.Message, len(msgs))
	refs := make([]deliveryRef, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		refs[i] = deliveryRef{call: call, index: i}
		rec := &recs[i]
		rec.TopicPartition = ck.TopicPartition{Topic: &m.Destination, Partition: ck.PartitionAny}
		rec.Key = m.Key
		rec.Value = m.Value
		rec.Opaque = &refs[i]
		if len(m.Headers) > 0 {
			rec.Headers = toHeaders(m.Headers)
		}
		for {
			err := pr.p.Produce(rec, nil)
			if err == nil {
				break
			}
			var kerr ck.Error
			if errors.As(err, &kerr) && kerr.Code() == ck.ErrQueueFull {
				// The local queue drains as the broker acknowledges; wait a
				// little rather than fail, unless the caller's time is up.
				select {
				case <-ctx.Done():
					call.finish(i, broker.SendResult{Err: fmt.Errorf("%w: kafka producer queue stayed full", broker.ErrTimeout)})
				case <-time.After(5 * time.Millisecond):
					continue
				}
				break
			}
			call.finish(i, broker.SendResult{Err: deliveryError(m.Destination, err)})
			break
		}
	}
	return nil
}

func toHeaders(hs []broker.Header) []ck.Header {
	out := make([]ck.Header, 0, len(hs))
	for _, h := range hs {
		out = append(out, ck.Header{Key: h.Key, Value: h.Value})
	}
	return out
}

// RecordID names a Kafka record by where it is stored: topic, partition and
// offset joined by dashes, as in "orders-0-42". Producers return it and
// consumers report the same id for the record.
func RecordID(topic string, partition int32, offset int64) string {
	b := make([]byte, 0, len(topic)+24)
	b = append(b, topic...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, offset, 10)
	return string(b)
}

func recordSize(m *broker.OutMessage) int {
	n := len(m.Key) + len(m.Value) + 64
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// Close waits until ctx ends for unsent records, then destroys the handle.
// Records still queued at that point are reported as failed to their Send.
func (pr *Producer) Close(ctx context.Context) error {
	pr.mu.Lock()
	if pr.closed {
		pr.mu.Unlock()
		return nil
	}
	pr.closed = true
	pr.mu.Unlock()

	left := pr.flush(ctx)
	if left > 0 {
		pr.log.Log(broker.LevelWarning, "kafka", fmt.Sprintf("producer closed with %d records unsent", left), broker.F("broker", pr.brokers))
		pr.p.Purge(ck.PurgeQueue | ck.PurgeInFlight)
		pr.p.Flush(1000)
	}
	pr.p.Close()
	pr.events.Wait()
	pr.log.Log(broker.LevelInfo, "kafka", "producer closed", broker.F("broker", pr.brokers))
	if left > 0 {
		return fmt.Errorf("%w: %d kafka records were not delivered before close", broker.ErrTimeout, left)
	}
	return nil
}

// flush waits for queued records in short steps until none remain or ctx
// ends, and returns how many remain.
func (pr *Producer) flush(ctx context.Context) int {
	for {
		left := pr.p.Flush(100)
		if left == 0 || ctx.Err() != nil {
			return left
		}
	}
}
