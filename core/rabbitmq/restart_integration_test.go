//go:build integration

package rabbitmq

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/cello-framework/cello/core/broker"
)

// brokersScript runs scripts/brokers.sh with args for the local RabbitMQ.
func brokersScript(t *testing.T, args ...string) {
	t.Helper()
	script, err := filepath.Abs("../../scripts/brokers.sh")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, script, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
}

// TestBrokerRestart stops the shared local RabbitMQ and starts it again, so
// it disturbs any other client of that broker for about ten seconds.
func TestBrokerRestart(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, map[string]any{"send_timeout_ms": 2000})
	log := &recordingLogger{}
	c := newConsumer(t, cfg, fastRetry, log, q)
	p := newProducer(t, cfg, log)
	// Registered after the clients, so it runs before their Close and the
	// queue deletion, even when the test fails while the broker is down.
	t.Cleanup(func() { brokersScript(t, "up", "rabbitmq") })

	sent := sendOK(t, p, textMessage(q, "1"), textMessage(q, "2"), textMessage(q, "3"), textMessage(q, "4"), textMessage(q, "5"))
	before := pollCount(t, c, 5, 5*time.Second)
	if err := c.Commit(context.Background(), []uint64{before[0].Token, before[1].Token}); err != nil {
		t.Fatal(err)
	}

	brokersScript(t, "down", "rabbitmq")

	start := time.Now()
	results, err := p.Send(context.Background(), []broker.OutMessage{textMessage(q, "during outage")})
	took := time.Since(start)
	if err == nil {
		err = results[0].Err
	}
	if !errors.Is(err, broker.ErrTimeout) && !errors.Is(err, broker.ErrConnection) {
		t.Errorf("Send during the outage: %v, want ErrTimeout or ErrConnection", err)
	}
	if took > 4*time.Second {
		t.Errorf("Send during the outage took %v with a send timeout of 2 s", took)
	}
	// The unsettled deliveries came on the lost connection: settling them
	// does nothing, and the broker delivers them again.
	stale := []broker.Settlement{{Token: before[2].Token, Result: broker.Ack}, {Token: before[3].Token, Result: broker.Nack}, {Token: before[4].Token, Result: broker.DeadLetter}}
	if err := c.Settle(context.Background(), stale); err != nil {
		t.Errorf("settling deliveries of the lost connection: %v, want nil", err)
	}
	pollNothing(t, c, 300*time.Millisecond)

	brokersScript(t, "up", "rabbitmq")

	deadline := time.Now().Add(30 * time.Second)
	var newID string
	for newID == "" && time.Now().Before(deadline) {
		results, err := p.Send(context.Background(), []broker.OutMessage{textMessage(q, "after restart")})
		if err == nil && results[0].Err == nil {
			newID = results[0].ID
		}
	}
	if newID == "" {
		t.Fatal("the producer did not send within 30 s of the broker's restart")
	}

	redelivered := pollCount(t, c, 4, 30*time.Second)
	var got []string
	for _, d := range redelivered {
		got = append(got, d.ID)
		if err := c.Commit(context.Background(), []uint64{d.Token}); err != nil {
			t.Errorf("Commit after reconnecting: %v", err)
		}
	}
	want := []string{sent[2].ID, sent[3].ID, sent[4].ID, newID}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("after the restart received ids %v, want the 3 unacknowledged and the new one %v", got, want)
	}
	for _, d := range redelivered {
		if d.Attempt != 1 {
			t.Errorf("message %s: attempt %d, want 1 because a lost connection is not a retry", d.ID, d.Attempt)
		}
	}
	pollNothing(t, c, 500*time.Millisecond)
	if n := readyCount(t, q+".dlq"); n != 0 {
		t.Errorf("%d messages in the dead-letter queue; settling on a lost connection must do nothing", n)
	}
	if len(log.find("WARNING", "lost its connection")) < 2 {
		t.Errorf("want a connection-lost warning from the producer and the consumer; records: %v", log.all())
	}
	if len(log.find("WARNING", "reconnect attempt", "broker=rabbitmq")) == 0 {
		t.Errorf("no reconnect attempt was logged; records: %v", log.all())
	}
	if len(log.find("INFO", "consumer reconnected")) != 1 || len(log.find("INFO", "producer reconnected")) != 1 {
		t.Errorf("want one reconnected record per client; records: %v", log.all())
	}
}
