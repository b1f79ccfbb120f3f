//go:build integration

package rabbitmq

import (
	"context"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/cello-framework/cello/core/broker"
)

// brokerURL is the broker that scripts/brokers.sh starts. These tests fail,
// and do not skip, when it is not running.
const brokerURL = "amqp://guest:guest@127.0.0.1:5672/"

// TestMain fails the run if any goroutine outlives the tests, so every
// producer, consumer and helper connection must be closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testConfig parses a config for the local broker with fields added.
func testConfig(t *testing.T, fields map[string]any) *Config {
	t.Helper()
	all := map[string]any{"url": brokerURL, "connection_timeout_ms": 5000, "send_timeout_ms": 10000}
	maps.Copy(all, fields)
	cfg, err := ParseConfig(mustJSON(t, all))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var unsafeQueueChars = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// newQueueName returns a queue name unique to this run and deletes the
// queue and its dead-letter queue when the test ends.
func newQueueName(t *testing.T) string {
	t.Helper()
	name := "cello-test-" + strings.ToLower(unsafeQueueChars.ReplaceAllString(t.Name(), "-")) + "-" + uuid.NewString()[:8]
	t.Cleanup(func() {
		withAdmin(t, func(ch *amqp.Channel) {
			for _, q := range []string{name, name + ".dlq"} {
				if _, err := ch.QueueDelete(q, false, false, false); err != nil {
					t.Errorf("deleting queue %s: %v", q, err)
				}
			}
		})
	})
	return name
}

// withAdmin runs fn on a channel of a plain amqp091-go connection, for
// inspecting queues apart from the code under test.
func withAdmin(t *testing.T, fn func(ch *amqp.Channel)) {
	t.Helper()
	conn, err := amqp.Dial(brokerURL)
	if err != nil {
		t.Fatalf("connecting to rabbitmq at %s (start it with scripts/brokers.sh up rabbitmq): %v", brokerURL, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	fn(ch)
}

// readyCount returns how many messages wait in queue, not counting those
// delivered and not yet acknowledged.
func readyCount(t *testing.T, queue string) int {
	t.Helper()
	var n int
	withAdmin(t, func(ch *amqp.Channel) {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("queue %s: %v", queue, err)
		}
		n = q.Messages
	})
	return n
}

// getMessage takes one message from queue with basic.get, waiting up to
// within for one to arrive.
func getMessage(t *testing.T, queue string, within time.Duration) amqp.Delivery {
	t.Helper()
	var got amqp.Delivery
	withAdmin(t, func(ch *amqp.Channel) {
		deadline := time.Now().Add(within)
		for {
			d, ok, err := ch.Get(queue, true)
			if err != nil {
				t.Fatalf("basic.get on %s: %v", queue, err)
			}
			if ok {
				got = d
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no message in queue %s within %v", queue, within)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return got
}

func newProducer(t *testing.T, cfg *Config, log broker.Logger) broker.Producer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := NewProducer(ctx, cfg, log)
	if err != nil {
		t.Fatalf("NewProducer (start the broker with scripts/brokers.sh up rabbitmq): %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("closing producer: %v", err)
		}
	})
	return p
}

// newConsumer opens a consumer subscribed to queues.
func newConsumer(t *testing.T, cfg *Config, opts broker.ConsumerOptions, log broker.Logger, queues ...string) broker.Consumer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewConsumer(ctx, cfg, opts, log)
	if err != nil {
		t.Fatalf("NewConsumer (start the broker with scripts/brokers.sh up rabbitmq): %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("closing consumer: %v", err)
		}
	})
	if err := c.Subscribe(ctx, queues); err != nil {
		t.Fatalf("Subscribe(%v): %v", queues, err)
	}
	return c
}

// sendOK sends msgs and fails the test unless each one was confirmed.
func sendOK(t *testing.T, p broker.Producer, msgs ...broker.OutMessage) []broker.SendResult {
	t.Helper()
	results, err := p.Send(context.Background(), msgs)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(results) != len(msgs) {
		t.Fatalf("Send returned %d results for %d messages", len(results), len(msgs))
	}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("Send result %d: %v", i, r.Err)
		}
	}
	return results
}

func textMessage(queue, text string) broker.OutMessage {
	return broker.OutMessage{Destination: queue, Value: []byte(text)}
}

// pollCount polls until n deliveries arrived or within passed.
func pollCount(t *testing.T, c broker.Consumer, n int, within time.Duration) []broker.Delivery {
	t.Helper()
	var out []broker.Delivery
	deadline := time.Now().Add(within)
	for len(out) < n && time.Now().Before(deadline) {
		ds, err := c.Poll(context.Background(), 200*time.Millisecond, n-len(out))
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		out = append(out, ds...)
	}
	if len(out) < n {
		t.Fatalf("received %d deliveries within %v, want %d", len(out), within, n)
	}
	return out
}

// pollNothing fails the test if a delivery arrives within d.
func pollNothing(t *testing.T, c broker.Consumer, d time.Duration) {
	t.Helper()
	ds, err := c.Poll(context.Background(), d, 10)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if len(ds) > 0 {
		t.Fatalf("received %d unexpected deliveries, first %q attempt %d", len(ds), ds[0].Value, ds[0].Attempt)
	}
}

func settleOK(t *testing.T, c broker.Consumer, token uint64, result broker.Result, reason string) {
	t.Helper()
	if err := c.Settle(context.Background(), []broker.Settlement{{Token: token, Result: result, Reason: reason}}); err != nil {
		t.Fatalf("Settle %s: %v", result, err)
	}
}

// headerText returns a header of an AMQP table as text.
func headerText(h amqp.Table, name string) string {
	v, ok := h[name]
	if !ok {
		return "<missing>"
	}
	return string(headerBytes(v))
}
