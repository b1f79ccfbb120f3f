//go:build integration

package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/cello-framework/cello/core/broker"
)

// These tests need the broker that scripts/brokers.sh starts on
// 127.0.0.1:9092; without it they fail.

func testConfig(t *testing.T) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(`{"brokers": "127.0.0.1:9092", "connect_timeout_ms": 5000}`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTopic() string { return "go-test-" + uuid.NewString()[:8] }

func produce(t *testing.T, cfg *Config, topic string, values ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := NewProducer(ctx, cfg, broker.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	msgs := make([]broker.OutMessage, len(values))
	for i, v := range values {
		msgs[i] = broker.OutMessage{Destination: topic, Key: []byte("one-partition"), Value: []byte(v)}
	}
	res, err := p.Send(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("message %d: %v", i, r.Err)
		}
	}
}

func consumer(t *testing.T, cfg *Config, topic string, opts broker.ConsumerOptions) *Consumer {
	t.Helper()
	if opts.Group == "" {
		opts.Group = "go-test-" + uuid.NewString()[:8]
	}
	c, err := NewConsumer(context.Background(), cfg, opts, broker.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(context.Background(), []string{topic}); err != nil {
		t.Fatal(err)
	}
	return c
}

// pollUntil polls until n deliveries arrived or 30 s passed.
func pollUntil(t *testing.T, c *Consumer, n int) []broker.Delivery {
	t.Helper()
	var out []broker.Delivery
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		ds, err := c.Poll(context.Background(), 500*time.Millisecond, 100)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ds...)
	}
	if len(out) < n {
		t.Fatalf("got %d deliveries, want %d", len(out), n)
	}
	return out
}

func settle(t *testing.T, c *Consumer, d broker.Delivery, r broker.Result) {
	t.Helper()
	if err := c.Settle(context.Background(), []broker.Settlement{{Token: d.Token, Result: r, Reason: "test"}}); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripAndCommit(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := testConfig(t)
	topic := newTopic()
	produce(t, cfg, topic, "a", "b", "c")
	group := "go-test-" + uuid.NewString()[:8]
	c := consumer(t, cfg, topic, broker.ConsumerOptions{Group: group})
	ds := pollUntil(t, c, 3)
	for i, want := range []string{"a", "b", "c"} {
		if string(ds[i].Value) != want || ds[i].Attempt != 1 || ds[i].ID == "" {
			t.Fatalf("delivery %d = %+v, want value %q attempt 1 and an id", i, ds[i], want)
		}
	}
	tokens := []uint64{ds[0].Token, ds[1].Token, ds[2].Token}
	if err := c.Commit(context.Background(), tokens); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := c.Poll(context.Background(), time.Millisecond, 1); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("poll after close: %v, want ErrClosed", err)
	}

	// The group committed all three, so a new member gets nothing.
	again := consumer(t, cfg, topic, broker.ConsumerOptions{Group: group})
	defer again.Close(context.Background())
	ds, err := again.Poll(context.Background(), 3*time.Second, 10)
	if err != nil || len(ds) != 0 {
		t.Fatalf("after commit: %d deliveries, err %v", len(ds), err)
	}
}

func TestNackHoldsPartitionThenDeadLetters(t *testing.T) {
	cfg := testConfig(t)
	topic := newTopic()
	produce(t, cfg, topic, "bad", "next")
	opts := broker.ConsumerOptions{Retry: broker.RetryPolicy{MaxRetries: 1, Backoff: 200 * time.Millisecond, MaxBackoff: time.Second}}
	c := consumer(t, cfg, topic, opts)
	defer c.Close(context.Background())

	ds := pollUntil(t, c, 2)
	settle(t, c, ds[0], broker.Nack)
	settle(t, c, ds[1], broker.Skipped)

	start := time.Now()
	ds = pollUntil(t, c, 2)
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("redelivered after %v, want the 200 ms backoff", waited)
	}
	if string(ds[0].Value) != "bad" || ds[0].Attempt != 2 || string(ds[1].Value) != "next" || ds[1].Attempt != 1 {
		t.Fatalf("redelivery order wrong: %q attempt %d, %q attempt %d", ds[0].Value, ds[0].Attempt, ds[1].Value, ds[1].Attempt)
	}
	settle(t, c, ds[0], broker.Nack) // second failure: over MaxRetries
	settle(t, c, ds[1], broker.Ack)

	dlq := consumer(t, cfg, topic+".dlq", broker.ConsumerOptions{})
	defer dlq.Close(context.Background())
	dead := pollUntil(t, dlq, 1)
	if string(dead[0].Value) != "bad" {
		t.Fatalf("dead letter = %q, want bad", dead[0].Value)
	}
	reason := ""
	for _, h := range dead[0].Headers {
		if h.Key == "cello-dead-letter-reason" {
			reason = string(h.Value)
		}
	}
	if reason != "test" {
		t.Fatalf("reason header = %q, want test", reason)
	}
}

func TestSettleUnknownToken(t *testing.T) {
	cfg := testConfig(t)
	c := consumer(t, cfg, newTopic(), broker.ConsumerOptions{})
	defer c.Close(context.Background())
	err := c.Settle(context.Background(), []broker.Settlement{{Token: 12345, Result: broker.Ack}})
	if !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "never issued") {
		t.Fatalf("err = %v, want it to say the token was never issued", err)
	}
}

func TestProducerRejectsOversizedBeforeSending(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := testConfig(t)
	p, err := NewProducer(context.Background(), cfg, broker.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Send(context.Background(), []broker.OutMessage{{Destination: newTopic(), Value: make([]byte, maxMessageBytes+1)}})
	if !errors.Is(err, broker.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(context.Background(), []broker.OutMessage{{Destination: "t"}}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestUnreachableBroker(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"brokers": "127.0.0.1:1", "connect_timeout_ms": 1000}`))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = NewProducer(context.Background(), cfg, broker.NopLogger{})
	if !errors.Is(err, broker.ErrConnection) {
		t.Fatalf("err = %v, want ErrConnection", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v, want about the 1 s connect timeout", d)
	}
}
