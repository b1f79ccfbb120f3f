//go:build integration

package rabbitmq

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/cello-framework/cello/core/broker"
)

// fastRetry retries once after 300 ms before dead-lettering.
var fastRetry = broker.ConsumerOptions{Retry: broker.RetryPolicy{MaxRetries: 1, Backoff: 300 * time.Millisecond, MaxBackoff: time.Second}}

func TestRoundTripValueKeyHeaders(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	c := newConsumer(t, cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy}, nil, q)
	p := newProducer(t, cfg, nil)

	before := time.Now().Add(-time.Second)
	results := sendOK(t, p,
		broker.OutMessage{Destination: q, Key: []byte("k-1"), Value: []byte(`{"id": 1}`),
			Headers: []broker.Header{{Key: "trace", Value: []byte("abc")}, {Key: "bin", Value: []byte{0, 255}}}},
		broker.OutMessage{Destination: q, Value: []byte("no key")},
		broker.OutMessage{Destination: q, Key: []byte{}, Value: []byte{}},
	)
	ds := pollCount(t, c, 3, 5*time.Second)

	first := ds[0]
	if string(first.Value) != `{"id": 1}` || string(first.Key) != "k-1" {
		t.Errorf("value, key = %q, %q", first.Value, first.Key)
	}
	wantHeaders := []broker.Header{{Key: "bin", Value: []byte{0, 255}}, {Key: "trace", Value: []byte("abc")}}
	if !reflect.DeepEqual(first.Headers, wantHeaders) {
		t.Errorf("headers = %v, want %v", first.Headers, wantHeaders)
	}
	if first.ID != results[0].ID || first.ID == "" {
		t.Errorf("ID = %q, want the SendResult.ID %q", first.ID, results[0].ID)
	}
	if first.Topic != q || first.Attempt != 1 || first.Partition != -1 || first.Offset < 1 {
		t.Errorf("topic, attempt, partition, offset = %q, %d, %d, %d", first.Topic, first.Attempt, first.Partition, first.Offset)
	}
	if first.Lane != uint32(first.Token) {
		t.Errorf("lane %d, want uint32(token) %d", first.Lane, first.Token)
	}
	if first.Timestamp.Before(before) || first.Timestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("timestamp %v is not the send time", first.Timestamp)
	}
	if ds[1].Key != nil || string(ds[1].Value) != "no key" || ds[1].Headers != nil {
		t.Errorf("second delivery: key %v, value %q, headers %v; want no key and no headers", ds[1].Key, ds[1].Value, ds[1].Headers)
	}
	if ds[2].Key == nil || len(ds[2].Key) != 0 || ds[2].Value == nil || len(ds[2].Value) != 0 {
		t.Errorf("third delivery: key %#v, value %#v; want both empty and not nil", ds[2].Key, ds[2].Value)
	}
	tokens := map[uint64]bool{}
	for _, d := range ds {
		tokens[d.Token] = true
	}
	if len(tokens) != 3 {
		t.Errorf("tokens %v are not unique", tokens)
	}
}

func TestPrefetchLimitsUnsettledDeliveries(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	opts := broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy}
	opts.Prefetch = 3
	c := newConsumer(t, cfg, opts, nil, q)
	p := newProducer(t, cfg, nil)
	msgs := make([]broker.OutMessage, 10)
	for i := range msgs {
		msgs[i] = textMessage(q, "m")
	}
	sendOK(t, p, msgs...)

	total := 0
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		ds, err := c.Poll(context.Background(), 200*time.Millisecond, 10)
		if err != nil {
			t.Fatal(err)
		}
		total += len(ds)
	}
	if total != 3 {
		t.Fatalf("received %d deliveries with prefetch 3 and none settled, want 3", total)
	}
}

func TestAckRemovesMessage(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	c := newConsumer(t, cfg, fastRetry, nil, q)
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(q, "a"))
	d := pollCount(t, c, 1, 5*time.Second)[0]
	settleOK(t, c, d.Token, broker.Ack, "")
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := readyCount(t, q); n != 0 {
		t.Errorf("%d messages left in %s after ack and close, want 0", n, q)
	}
	if n := readyCount(t, q+".dlq"); n != 0 {
		t.Errorf("%d messages in %s.dlq, want 0", n, q)
	}
}

func TestCommitAcknowledges(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	c := newConsumer(t, cfg, fastRetry, nil, q)
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(q, "a"), textMessage(q, "b"))
	ds := pollCount(t, c, 2, 5*time.Second)
	if err := c.Commit(context.Background(), []uint64{ds[0].Token, ds[1].Token}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := readyCount(t, q); n != 0 {
		t.Errorf("%d messages left after Commit and close, want 0", n)
	}
}

func TestNackRetriesAfterBackoffThenDeadLetters(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	log := &recordingLogger{}
	c := newConsumer(t, cfg, fastRetry, log, q)
	p := newProducer(t, cfg, nil)
	results := sendOK(t, p, broker.OutMessage{Destination: q, Key: []byte("k"), Value: []byte("fails"),
		Headers: []broker.Header{{Key: "h", Value: []byte("v")}}})

	first := pollCount(t, c, 1, 5*time.Second)[0]
	if first.Attempt != 1 {
		t.Fatalf("first attempt = %d, want 1", first.Attempt)
	}
	nacked := time.Now()
	settleOK(t, c, first.Token, broker.Nack, "boom")
	if took := time.Since(nacked); took > 100*time.Millisecond {
		t.Errorf("Settle Nack took %v; the backoff must not block it", took)
	}

	second := pollCount(t, c, 1, 5*time.Second)[0]
	if waited := time.Since(nacked); waited < 280*time.Millisecond {
		t.Errorf("redelivered after %v, want at least the 300 ms backoff", waited)
	}
	if second.Attempt != 2 || second.ID != results[0].ID || string(second.Key) != "k" {
		t.Errorf("retry: attempt %d, ID %q, key %q; want 2, %q, k", second.Attempt, second.ID, second.Key, results[0].ID)
	}
	if second.Token == first.Token {
		t.Error("the retry reused the first delivery's token")
	}

	settleOK(t, c, second.Token, broker.Nack, "boom again")
	dead := getMessage(t, q+".dlq", 5*time.Second)
	if string(dead.Body) != "fails" || dead.MessageId != results[0].ID {
		t.Errorf("dead letter body %q, id %q", dead.Body, dead.MessageId)
	}
	if got := headerText(dead.Headers, deadLetterReasonHdr); got != "max retries (1) exceeded: boom again" {
		t.Errorf("reason header = %q", got)
	}
	if got := headerText(dead.Headers, originalQueueHeader); got != q {
		t.Errorf("original queue header = %q, want %q", got, q)
	}
	if got := headerText(dead.Headers, "h"); got != "v" {
		t.Errorf("user header h = %q, want v", got)
	}
	pollNothing(t, c, 500*time.Millisecond)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := readyCount(t, q); n != 0 {
		t.Errorf("%d messages left in %s, want 0", n, q)
	}
	if len(log.find("WARNING", "dead-lettered to "+q+".dlq", "queue="+q)) != 1 {
		t.Errorf("no dead-letter warning logged; records: %v", log.all())
	}
}

func TestRequeueRedeliversAtOnceAndCounts(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	opts := broker.ConsumerOptions{Retry: broker.RetryPolicy{MaxRetries: 1, Backoff: 10 * time.Second, MaxBackoff: 10 * time.Second}}
	c := newConsumer(t, cfg, opts, nil, q)
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(q, "again"))

	first := pollCount(t, c, 1, 5*time.Second)[0]
	requeued := time.Now()
	settleOK(t, c, first.Token, broker.Requeue, "")
	second := pollCount(t, c, 1, 2*time.Second)[0]
	if waited := time.Since(requeued); waited > time.Second {
		t.Errorf("requeued message came back after %v, want no backoff", waited)
	}
	if second.Attempt != 2 || string(second.Value) != "again" {
		t.Errorf("attempt %d, value %q; want 2, again", second.Attempt, second.Value)
	}
	settleOK(t, c, second.Token, broker.Requeue, "still not")
	dead := getMessage(t, q+".dlq", 5*time.Second)
	if got := headerText(dead.Headers, deadLetterReasonHdr); !strings.HasPrefix(got, "max retries (1) exceeded") {
		t.Errorf("reason header = %q, want max retries exceeded", got)
	}
}

func TestRejectDropsWithWarning(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	log := &recordingLogger{}
	c := newConsumer(t, cfg, fastRetry, log, q)
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(q, "poison"))
	d := pollCount(t, c, 1, 5*time.Second)[0]
	settleOK(t, c, d.Token, broker.Reject, "cannot parse")
	pollNothing(t, c, 500*time.Millisecond)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := readyCount(t, q); n != 0 {
		t.Errorf("%d messages left in %s after reject, want 0", n, q)
	}
	if n := readyCount(t, q+".dlq"); n != 0 {
		t.Errorf("%d messages in %s.dlq after reject, want 0", n, q)
	}
	if len(log.find("WARNING", "rejected", "cannot parse", "queue="+q)) != 1 {
		t.Errorf("no reject warning with the reason and queue; records: %v", log.all())
	}
}

func TestDeadLetterResultPublishesToDLQ(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	c := newConsumer(t, cfg, fastRetry, nil, q)
	p := newProducer(t, cfg, nil)
	sendOK(t, p, broker.OutMessage{Destination: q, Key: []byte("k9"), Value: []byte("bad"),
		Headers: []broker.Header{{Key: "trace", Value: []byte("t1")}}})
	d := pollCount(t, c, 1, 5*time.Second)[0]
	settleOK(t, c, d.Token, broker.DeadLetter, "invalid order")

	dead := getMessage(t, q+".dlq", 5*time.Second)
	if string(dead.Body) != "bad" || dead.MessageId != d.ID {
		t.Errorf("dead letter body %q, id %q; want bad, %q", dead.Body, dead.MessageId, d.ID)
	}
	checks := map[string]string{deadLetterReasonHdr: "invalid order", originalQueueHeader: q, "trace": "t1", keyHeader: "k9"}
	for name, want := range checks {
		if got := headerText(dead.Headers, name); got != want {
			t.Errorf("dead letter header %s = %q, want %q", name, got, want)
		}
	}
	if dead.DeliveryMode != amqp.Persistent {
		t.Errorf("dead letter delivery mode %d, want persistent", dead.DeliveryMode)
	}
	pollNothing(t, c, 300*time.Millisecond)
}

func TestDeadLetterOptionOverridesQueue(t *testing.T) {
	q := newQueueName(t)
	dlq := newQueueName(t) + "-custom"
	t.Cleanup(func() {
		withAdmin(t, func(ch *amqp.Channel) { ch.QueueDelete(dlq, false, false, false) })
	})
	cfg := testConfig(t, nil)
	opts := fastRetry
	opts.DeadLetter = dlq
	c := newConsumer(t, cfg, opts, nil, q)
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(q, "x"))
	d := pollCount(t, c, 1, 5*time.Second)[0]
	settleOK(t, c, d.Token, broker.DeadLetter, "r")
	if got := getMessage(t, dlq, 5*time.Second); string(got.Body) != "x" {
		t.Errorf("body in %s = %q, want x", dlq, got.Body)
	}
}

func TestSkippedRedeliversWithoutCounting(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	c := newConsumer(t, cfg, fastRetry, nil, q)
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(q, "later"))
	for range 3 {
		d := pollCount(t, c, 1, 5*time.Second)[0]
		if d.Attempt != 1 {
			t.Fatalf("attempt %d after skipping, want 1", d.Attempt)
		}
		settleOK(t, c, d.Token, broker.Skipped, "")
	}
	if n := readyCount(t, q+".dlq"); n != 0 {
		t.Errorf("%d messages dead-lettered by Skipped, want 0", n)
	}
}

func TestSettleUnknownToken(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	c := newConsumer(t, cfg, fastRetry, nil, q)
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(q, "once"))
	d := pollCount(t, c, 1, 5*time.Second)[0]

	err := c.Settle(context.Background(), []broker.Settlement{{Token: d.Token + 1000, Result: broker.Ack}})
	if !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("unknown token: err = %v, want ErrNotFound", err)
	}
	settleOK(t, c, d.Token, broker.Ack, "")
	err = c.Settle(context.Background(), []broker.Settlement{{Token: d.Token, Result: broker.Ack}})
	if !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("token settled twice: err = %v, want ErrNotFound", err)
	}
	err = c.Settle(context.Background(), []broker.Settlement{{Token: d.Token, Result: broker.Result(99)}})
	if !errors.Is(err, broker.ErrInvalidArgument) {
		t.Errorf("undefined result: err = %v, want ErrInvalidArgument", err)
	}
}

func TestSendUnroutableIsNotFound(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	p := newProducer(t, cfg, nil)
	missing := q + "-nobody"
	results, err := p.Send(context.Background(), []broker.OutMessage{textMessage(missing, "lost")})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(results[0].Err, broker.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", results[0].Err)
	}
	if !strings.Contains(results[0].Err.Error(), `routing key "`+missing+`"`) {
		t.Errorf("error %q does not name the routing key", results[0].Err)
	}
}

func TestSendMixedBatchReportsEachMessage(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	c := newConsumer(t, cfg, fastRetry, nil, q)
	p := newProducer(t, cfg, nil)
	results, err := p.Send(context.Background(), []broker.OutMessage{
		textMessage(q, "1"), textMessage(q+"-nobody", "2"), textMessage(q, "3"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Err != nil || results[2].Err != nil {
		t.Errorf("routable messages failed: %v, %v", results[0].Err, results[2].Err)
	}
	if !errors.Is(results[1].Err, broker.ErrNotFound) {
		t.Errorf("unroutable message: err = %v, want ErrNotFound", results[1].Err)
	}
	ds := pollCount(t, c, 2, 5*time.Second)
	if string(ds[0].Value) != "1" || string(ds[1].Value) != "3" {
		t.Errorf("received %q, %q; want 1, 3", ds[0].Value, ds[1].Value)
	}
}

func TestSendToMissingExchangeIsNotFound(t *testing.T) {
	cfg := testConfig(t, map[string]any{"exchange": "cello-test-no-such-exchange"})
	p := newProducer(t, cfg, nil)
	results, err := p.Send(context.Background(), []broker.OutMessage{textMessage("any", "x")})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(results[0].Err, broker.ErrNotFound) || !strings.Contains(results[0].Err.Error(), "cello-test-no-such-exchange") {
		t.Fatalf("err = %v, want ErrNotFound naming the exchange", results[0].Err)
	}
	// The producer reconnects after the broker closed its channel.
	results, err = p.Send(context.Background(), []broker.OutMessage{textMessage("any", "x")})
	if err != nil || !errors.Is(results[0].Err, broker.ErrNotFound) {
		t.Fatalf("second send: %v, %v; want ErrNotFound again", err, results)
	}
}

func TestSendTooLargeSendsNothing(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, map[string]any{"max_message_bytes": 1024})
	newConsumer(t, cfg, fastRetry, nil, q).Close(context.Background())
	p := newProducer(t, cfg, nil)
	_, err := p.Send(context.Background(), []broker.OutMessage{textMessage(q, "small"), {Destination: q, Value: make([]byte, 1025)}})
	if !errors.Is(err, broker.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "1024 bytes") {
		t.Errorf("error %q does not name the limit", err)
	}
	if n := readyCount(t, q); n != 0 {
		t.Errorf("%d messages were sent from a batch with an oversized one, want 0", n)
	}
}

func TestBrokerSizeLimitIsTooLarge(t *testing.T) {
	q := newQueueName(t)
	// Above RabbitMQ's default max_message_size of 128 MiB, which only the
	// broker enforces here.
	cfg := testConfig(t, map[string]any{"max_message_bytes": 256 << 20})
	newConsumer(t, cfg, fastRetry, nil, q).Close(context.Background())
	p := newProducer(t, cfg, nil)
	results, err := p.Send(context.Background(), []broker.OutMessage{{Destination: q, Value: make([]byte, 128<<20+1)}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(results[0].Err, broker.ErrTooLarge) || !strings.Contains(results[0].Err.Error(), "134217728") {
		t.Fatalf("err = %v, want ErrTooLarge naming the broker's limit", results[0].Err)
	}
	// The broker closed the channel; the next send uses a new connection.
	sendOK(t, p, textMessage(q, "after"))
}

func TestSubscribeReplacesQueues(t *testing.T) {
	q1, q2 := newQueueName(t), newQueueName(t)
	cfg := testConfig(t, nil)
	c := newConsumer(t, cfg, fastRetry, nil, q1)
	if err := c.Subscribe(context.Background(), []string{q2}); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(q1, "old"), textMessage(q2, "new"))
	d := pollCount(t, c, 1, 5*time.Second)[0]
	if d.Topic != q2 || string(d.Value) != "new" {
		t.Errorf("received %q from %s, want new from %s", d.Value, d.Topic, q2)
	}
	pollNothing(t, c, 300*time.Millisecond)
	if n := readyCount(t, q1); n != 1 {
		t.Errorf("%d messages ready in the unsubscribed queue, want 1", n)
	}
}

func TestSubscribeKeepsQueueDeadLetterExchange(t *testing.T) {
	q := newQueueName(t)
	target := q + ".rejected"
	t.Cleanup(func() {
		withAdmin(t, func(ch *amqp.Channel) { ch.QueueDelete(target, false, false, false) })
	})
	withAdmin(t, func(ch *amqp.Channel) {
		if _, err := ch.QueueDeclare(target, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		args := amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": target}
		if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
			t.Fatal(err)
		}
	})
	cfg := testConfig(t, nil)
	log := &recordingLogger{}
	c := newConsumer(t, cfg, fastRetry, log, q)
	if len(log.find("INFO", "exists with other properties", "queue="+q)) != 1 {
		t.Errorf("no record that the existing queue is used as it is; records: %v", log.all())
	}
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(q, "rejected"))
	d := pollCount(t, c, 1, 5*time.Second)[0]
	settleOK(t, c, d.Token, broker.Reject, "bad")
	if got := getMessage(t, target, 5*time.Second); string(got.Body) != "rejected" {
		t.Errorf("body in the queue's dead-letter target = %q, want rejected", got.Body)
	}
	if n := readyCount(t, q+".dlq"); n != 0 {
		t.Errorf("%d messages in %s.dlq after reject, want 0", n, q)
	}
}

func TestSubscribeExclusiveQueueFails(t *testing.T) {
	q := newQueueName(t)
	conn, err := amqp.Dial(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, nil)
	other := newQueueName(t)
	c := newConsumer(t, cfg, fastRetry, nil, other)
	err = c.Subscribe(context.Background(), []string{q})
	if !errors.Is(err, broker.ErrInvalidArgument) || !strings.Contains(err.Error(), q) {
		t.Fatalf("err = %v, want ErrInvalidArgument naming %s", err, q)
	}
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(other, "still here"))
	if d := pollCount(t, c, 1, 5*time.Second)[0]; string(d.Value) != "still here" {
		t.Errorf("after the failed Subscribe received %q from %s", d.Value, d.Topic)
	}
}

func TestCloseTwiceAndErrClosed(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	ctx := context.Background()
	p := newProducer(t, cfg, nil)
	c := newConsumer(t, cfg, fastRetry, nil, q)
	sendOK(t, p, textMessage(q, "x"))
	d := pollCount(t, c, 1, 5*time.Second)[0]

	for i := range 2 {
		if err := p.Close(ctx); err != nil {
			t.Errorf("producer Close #%d: %v", i+1, err)
		}
		if err := c.Close(ctx); err != nil {
			t.Errorf("consumer Close #%d: %v", i+1, err)
		}
	}
	if _, err := p.Send(ctx, []broker.OutMessage{textMessage(q, "y")}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Poll(ctx, 10*time.Millisecond, 1); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Poll after Close: %v, want ErrClosed", err)
	}
	if err := c.Settle(ctx, []broker.Settlement{{Token: d.Token, Result: broker.Ack}}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Settle after Close: %v, want ErrClosed", err)
	}
	if err := c.Commit(ctx, []uint64{d.Token}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Commit after Close: %v, want ErrClosed", err)
	}
	if err := c.Subscribe(ctx, []string{q}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	// The unsettled delivery went back to its queue.
	if n := readyCount(t, q); n != 1 {
		t.Errorf("%d messages ready after closing with one unsettled, want 1", n)
	}
}

func TestClosePublishesScheduledRetries(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	opts := broker.ConsumerOptions{Retry: broker.RetryPolicy{MaxRetries: 3, Backoff: time.Minute, MaxBackoff: time.Minute}}
	c := newConsumer(t, cfg, opts, nil, q)
	p := newProducer(t, cfg, nil)
	sendOK(t, p, textMessage(q, "retry me"))
	d := pollCount(t, c, 1, 5*time.Second)[0]
	settleOK(t, c, d.Token, broker.Nack, "")

	start := time.Now()
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v with a retry scheduled in a minute", took)
	}
	got := getMessage(t, q, 2*time.Second)
	if retryCount(got.Headers) != 1 {
		t.Errorf("the retry copy has %s = %v, want 1", retriesHeader, got.Headers[retriesHeader])
	}
	if n := readyCount(t, q); n != 0 {
		t.Errorf("%d more messages in %s; the original must have been acknowledged", n, q)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	// Goroutines of earlier tests are ignored; those of this one must end.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	ctx := context.Background()
	p, err := NewProducer(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Closes the clients when the test fails before it closes them itself.
	t.Cleanup(func() { p.Close(ctx) })
	c, err := NewConsumer(ctx, cfg, fastRetry, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	if err := c.Subscribe(ctx, []string{q}); err != nil {
		t.Fatal(err)
	}
	// The unroutable message exercises the returns collector too.
	results, err := p.Send(ctx, []broker.OutMessage{textMessage(q, "1"), textMessage(q, "2"), {Destination: q + "-nobody"}})
	if err != nil || results[0].Err != nil || results[1].Err != nil || !errors.Is(results[2].Err, broker.ErrNotFound) {
		t.Fatalf("Send: %v, %+v", err, results)
	}
	ds := pollCount(t, c, 2, 5*time.Second)
	settleOK(t, c, ds[0].Token, broker.Nack, "")
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentSendsAndSettles(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	c := newConsumer(t, cfg, fastRetry, nil, q)
	p := newProducer(t, cfg, nil)
	const senders, perSender = 4, 50
	errs := make(chan error, senders)
	for range senders {
		go func() {
			msgs := make([]broker.OutMessage, perSender)
			for i := range msgs {
				msgs[i] = textMessage(q, "c")
			}
			results, err := p.Send(context.Background(), msgs)
			for _, r := range results {
				if err == nil {
					err = r.Err
				}
			}
			errs <- err
		}()
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	received := 0
	deadline := time.Now().Add(10 * time.Second)
	for received < senders*perSender && time.Now().Before(deadline) {
		ds, err := c.Poll(context.Background(), 200*time.Millisecond, 100)
		if err != nil {
			t.Fatal(err)
		}
		tokens := make([]uint64, len(ds))
		for i, d := range ds {
			tokens[i] = d.Token
		}
		go func() {
			if err := c.Commit(context.Background(), tokens); err != nil {
				t.Error(err)
			}
		}()
		received += len(ds)
	}
	if received != senders*perSender {
		t.Fatalf("received %d of %d messages", received, senders*perSender)
	}
}

func TestWrongPasswordIsConnectionError(t *testing.T) {
	cfg := testConfig(t, map[string]any{"url": "amqp://guest:" + secret + "@127.0.0.1:5672/"})
	_, err := NewProducer(context.Background(), cfg, nil)
	if !errors.Is(err, broker.ErrConnection) || !strings.Contains(err.Error(), `user "guest"`) {
		t.Fatalf("err = %v, want ErrConnection naming the user", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q shows the password", err)
	}
}

func TestUnknownVhostIsConnectionError(t *testing.T) {
	cfg := testConfig(t, map[string]any{"vhost": "cello-no-such-vhost"})
	_, err := NewConsumer(context.Background(), cfg, fastRetry, nil)
	if !errors.Is(err, broker.ErrConnection) || !strings.Contains(err.Error(), "cello-no-such-vhost") {
		t.Fatalf("err = %v, want ErrConnection naming the vhost", err)
	}
}

func TestBinaryValueSurvives(t *testing.T) {
	q := newQueueName(t)
	cfg := testConfig(t, nil)
	c := newConsumer(t, cfg, fastRetry, nil, q)
	p := newProducer(t, cfg, nil)
	value := make([]byte, 300_000)
	for i := range value {
		value[i] = byte(i * 7)
	}
	sendOK(t, p, broker.OutMessage{Destination: q, Value: value})
	if d := pollCount(t, c, 1, 5*time.Second)[0]; !bytes.Equal(d.Value, value) {
		t.Errorf("a %d-byte binary value changed in transit", len(value))
	}
}
