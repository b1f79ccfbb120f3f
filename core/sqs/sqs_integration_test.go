//go:build integration

package sqs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/cello-framework/cello/core/broker"
)

func TestRoundTripWithAttributes(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("roundtrip"), nil)
	cfg := fx.config(url, `"visibility_timeout_secs": 2`)
	p := fx.producer(cfg)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})

	value := []byte{0x00, 0x01, 'b', 'i', 'n', 0xff}
	headers := []broker.Header{
		{Key: "content-type", Value: []byte("application/octet-stream")},
		{Key: "raw", Value: []byte{0xde, 0xad, 0x00}},
		{Key: "unicode", Value: []byte("grüße 🙂")},
	}
	before := time.Now().Add(-2 * time.Second)
	results := fx.send(p, broker.OutMessage{Key: []byte("order-1"), Value: value, Headers: headers})
	if results[0].ID == "" {
		t.Fatal("SendResult.ID is empty")
	}

	ds := fx.pollN(c, 1, 5*time.Second)
	if len(ds) != 1 {
		t.Fatalf("received %d deliveries, want 1", len(ds))
	}
	d := ds[0]
	if !bytes.Equal(d.Value, value) {
		t.Errorf("Value = %v, want %v", d.Value, value)
	}
	if string(d.Key) != "order-1" {
		t.Errorf("Key = %q, want order-1", d.Key)
	}
	if len(d.Headers) != len(headers) {
		t.Fatalf("Headers = %v, want %v", d.Headers, headers)
	}
	for i, h := range headers {
		if d.Headers[i].Key != h.Key || !bytes.Equal(d.Headers[i].Value, h.Value) {
			t.Errorf("header %d = %s=%v, want %s=%v", i, d.Headers[i].Key, d.Headers[i].Value, h.Key, h.Value)
		}
	}
	if d.ID != results[0].ID {
		t.Errorf("ID = %q, want the SendResult.ID %q", d.ID, results[0].ID)
	}
	if d.Topic != cfg.QueueURL[strings.LastIndex(cfg.QueueURL, "/")+1:] {
		t.Errorf("Topic = %q, want the queue name", d.Topic)
	}
	if d.Attempt != 1 {
		t.Errorf("Attempt = %d, want 1", d.Attempt)
	}
	if d.Partition != -1 || d.Offset != 0 {
		t.Errorf("Partition, Offset = %d, %d, want -1, 0", d.Partition, d.Offset)
	}
	if d.Timestamp.Before(before) || d.Timestamp.After(time.Now().Add(2*time.Second)) {
		t.Errorf("Timestamp = %v, want about now", d.Timestamp)
	}
	if d.Token == 0 {
		t.Error("Token is 0")
	}

	fx.settle(c, d, broker.Ack, "")
	// The delete is batched; past the visibility timeout an undeleted
	// message would come back.
	fx.expectNone(c, 3500*time.Millisecond, "acked message came back")
}

// countBatches makes the producer's client record the entry count of every
// SendMessageBatch call.
func countBatches(t *testing.T, p broker.Producer) func() []int {
	t.Helper()
	var mu sync.Mutex
	var counts []int
	pr := p.(*producer)
	pr.api.Client = sqs.New(pr.api.Client.Options(), func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("countBatches",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (
					middleware.InitializeOutput, middleware.Metadata, error,
				) {
					if b, ok := in.Parameters.(*sqs.SendMessageBatchInput); ok {
						mu.Lock()
						counts = append(counts, len(b.Entries))
						mu.Unlock()
					}
					return next.HandleInitialize(ctx, in)
				}), middleware.Before)
		})
	})
	pr.queues.api = pr.api.Client
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), counts...)
	}
}

func TestSendBatchOf23(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("batch"), nil)
	cfg := fx.config(url, `"visibility_timeout_secs": 2`)
	p := fx.producer(cfg)
	calls := countBatches(t, p)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})

	msgs := make([]broker.OutMessage, 23)
	for i := range msgs {
		msgs[i] = broker.OutMessage{Value: []byte(fmt.Sprintf("message-%02d", i))}
	}
	results := fx.send(p, msgs...)
	counts := calls()
	total := 0
	for _, n := range counts {
		total += n
		if n > 10 {
			t.Errorf("a SendMessageBatch call carried %d entries, want at most 10", n)
		}
	}
	if len(counts) != 3 || total != 23 {
		t.Errorf("SendMessageBatch entry counts = %v, want 3 calls carrying 23", counts)
	}
	ids := map[string]bool{}
	for _, r := range results {
		ids[r.ID] = true
	}
	if len(ids) != 23 {
		t.Errorf("%d distinct message ids, want 23", len(ids))
	}

	seen := map[string]int{}
	deadline := time.Now().Add(15 * time.Second)
	for len(seen) < 23 && time.Now().Before(deadline) {
		ds, err := c.Poll(fx.ctx, time.Second, 10)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		var tokens []uint64
		for _, d := range ds {
			seen[string(d.Value)]++
			tokens = append(tokens, d.Token)
		}
		if err := c.Commit(fx.ctx, tokens); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	if len(seen) != 23 {
		t.Fatalf("received %d distinct messages, want 23", len(seen))
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("%s received %d times, want once", v, n)
		}
	}
	fx.expectNone(c, 3*time.Second, "a committed message came back")
}

func TestNackRetriesThenDeadLetters(t *testing.T) {
	fx := newFixture(t)
	name := fx.queueName("nack")
	url := fx.createQueue(name, nil)
	cfg := fx.config(url, `"visibility_timeout_secs": 10`)
	p := fx.producer(cfg)
	c := fx.consumer(cfg, retryPolicy(2, time.Second))
	fx.send(p, broker.OutMessage{Value: []byte("flaky"), Headers: []broker.Header{{Key: "origin", Value: []byte("test")}}})

	first := fx.pollN(c, 1, 5*time.Second)
	if len(first) != 1 || first[0].Attempt != 1 {
		t.Fatalf("first receive = %+v, want one delivery at attempt 1", first)
	}
	nacked := time.Now()
	fx.settle(c, first[0], broker.Nack, "boom")
	if ds, _ := c.Poll(fx.ctx, 0, 1); len(ds) != 0 {
		t.Fatal("nacked message came back before its backoff")
	}

	second := fx.pollN(c, 1, 5*time.Second)
	if len(second) != 1 {
		t.Fatal("nacked message did not come back after its backoff")
	}
	if waited := time.Since(nacked); waited < 900*time.Millisecond {
		t.Errorf("nacked message came back after %v, want the 1 s backoff", waited)
	}
	if second[0].Attempt != 2 || second[0].ID != first[0].ID {
		t.Errorf("second receive = attempt %d id %s, want attempt 2 of %s", second[0].Attempt, second[0].ID, first[0].ID)
	}
	fx.settle(c, second[0], broker.Nack, "boom")

	third := fx.pollN(c, 1, 5*time.Second)
	if len(third) != 1 || third[0].Attempt != 3 {
		t.Fatalf("third receive = %+v, want attempt 3", third)
	}
	// Attempt 3 is beyond 2 retries, so this Nack dead-letters.
	fx.settle(c, third[0], broker.Nack, "boom")

	dead := fx.receiveRaw(fx.url(deadLetterQueueName(name)), 2)
	if len(dead) != 1 {
		t.Fatalf("dead-letter queue holds %d messages, want 1", len(dead))
	}
	if aws.ToString(dead[0].Body) != "flaky" {
		t.Errorf("dead-lettered body = %q, want flaky", aws.ToString(dead[0].Body))
	}
	reason := aws.ToString(dead[0].MessageAttributes[attrDeadLetterReason].StringValue)
	if !strings.Contains(reason, "nack") || !strings.Contains(reason, "boom") {
		t.Errorf("dead-letter reason = %q, want it to name the nack and the handler's reason", reason)
	}
	if got := aws.ToString(dead[0].MessageAttributes["origin"].StringValue); got != "test" {
		t.Errorf("dead-lettered header origin = %q, want test", got)
	}
	fx.expectNone(c, 1500*time.Millisecond, "dead-lettered message stayed in its queue")
}

func TestRequeueAndSkippedReturnAtOnce(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("requeue"), nil)
	cfg := fx.config(url, `"visibility_timeout_secs": 30`)
	p := fx.producer(cfg)
	c := fx.consumer(cfg, retryPolicy(3, 10*time.Second))
	fx.send(p, broker.OutMessage{Value: []byte("again")})

	first := fx.pollN(c, 1, 5*time.Second)
	if len(first) != 1 {
		t.Fatal("message not received")
	}
	fx.settle(c, first[0], broker.Requeue, "")
	start := time.Now()
	second := fx.pollN(c, 1, 3*time.Second)
	if len(second) != 1 {
		t.Fatal("requeued message did not come back at once")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("requeued message took %v to come back", elapsed)
	}
	if second[0].Attempt != 2 {
		t.Errorf("Attempt after requeue = %d, want 2", second[0].Attempt)
	}

	fx.settle(c, second[0], broker.Skipped, "")
	third := fx.pollN(c, 1, 3*time.Second)
	if len(third) != 1 {
		t.Fatal("skipped message did not come back at once")
	}
	fx.settle(c, third[0], broker.Ack, "")
}

func TestRequeueBeyondMaxRetriesDeadLetters(t *testing.T) {
	fx := newFixture(t)
	name := fx.queueName("requeuemax")
	url := fx.createQueue(name, nil)
	cfg := fx.config(url, `"visibility_timeout_secs": 30`)
	p := fx.producer(cfg)
	c := fx.consumer(cfg, retryPolicy(1, time.Second))
	fx.send(p, broker.OutMessage{Value: []byte("loop")})

	for attempt := uint32(1); attempt <= 2; attempt++ {
		ds := fx.pollN(c, 1, 5*time.Second)
		if len(ds) != 1 || ds[0].Attempt != attempt {
			t.Fatalf("receive %d = %+v, want attempt %d", attempt, ds, attempt)
		}
		fx.settle(c, ds[0], broker.Requeue, "")
	}
	dead := fx.receiveRaw(fx.url(deadLetterQueueName(name)), 2)
	if len(dead) != 1 {
		t.Fatalf("dead-letter queue holds %d messages, want 1", len(dead))
	}
	if reason := aws.ToString(dead[0].MessageAttributes[attrDeadLetterReason].StringValue); !strings.Contains(reason, "requeue") {
		t.Errorf("dead-letter reason = %q, want it to name the requeue", reason)
	}
}

func TestRejectDeletesWithoutDeadLetter(t *testing.T) {
	fx := newFixture(t)
	name := fx.queueName("reject")
	url := fx.createQueue(name, nil)
	cfg := fx.config(url, `"visibility_timeout_secs": 2`)
	p := fx.producer(cfg)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})
	fx.send(p, broker.OutMessage{Value: []byte("poison")})

	ds := fx.pollN(c, 1, 5*time.Second)
	if len(ds) != 1 {
		t.Fatal("message not received")
	}
	fx.settle(c, ds[0], broker.Reject, "unparseable")
	fx.expectNone(c, 3500*time.Millisecond, "rejected message came back")
	if fx.queueExists(deadLetterQueueName(name)) {
		if got := fx.receiveRaw(fx.url(deadLetterQueueName(name)), 0); len(got) > 0 {
			t.Errorf("rejected message is in the dead-letter queue")
		}
	}
	r, ok := fx.log.find(broker.LevelWarning, "rejected")
	if !ok {
		t.Fatal("no warning logged for the rejected message")
	}
	if r.fields["queue"] != name || r.fields["id"] != ds[0].ID || !strings.Contains(r.message, "unparseable") {
		t.Errorf("warning = %q %v, want the queue, id and reason", r.message, r.fields)
	}
}

func TestDeadLetterResult(t *testing.T) {
	fx := newFixture(t)
	name := fx.queueName("dead")
	url := fx.createQueue(name, nil)
	cfg := fx.config(url, `"visibility_timeout_secs": 2`)
	p := fx.producer(cfg)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})
	fx.send(p, broker.OutMessage{
		Key:     []byte("k1"),
		Value:   []byte("payload"),
		Headers: []broker.Header{{Key: "trace", Value: []byte("t-1")}},
	})

	ds := fx.pollN(c, 1, 5*time.Second)
	if len(ds) != 1 {
		t.Fatal("message not received")
	}
	fx.settle(c, ds[0], broker.DeadLetter, "bad payload")

	dead := fx.receiveRaw(fx.url(deadLetterQueueName(name)), 2)
	if len(dead) != 1 {
		t.Fatalf("dead-letter queue holds %d messages, want 1", len(dead))
	}
	attrs := dead[0].MessageAttributes
	if aws.ToString(dead[0].Body) != "payload" {
		t.Errorf("body = %q, want payload", aws.ToString(dead[0].Body))
	}
	if got := aws.ToString(attrs[attrDeadLetterReason].StringValue); got != "bad payload" {
		t.Errorf("reason attribute = %q, want bad payload", got)
	}
	if got := aws.ToString(attrs["trace"].StringValue); got != "t-1" {
		t.Errorf("trace attribute = %q, want t-1", got)
	}
	if got := aws.ToString(attrs[attrKey].StringValue); got != "k1" {
		t.Errorf("key attribute = %q, want k1", got)
	}
	fx.expectNone(c, 3500*time.Millisecond, "dead-lettered message came back")
}

func TestDeadLetterOverrideQueue(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("override"), nil)
	target := fx.queueName("custom-dlq")
	fx.deleteOnCleanup(target)
	cfg := fx.config(url, "")
	p := fx.producer(cfg)
	opts := broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy, DeadLetter: target}
	c := fx.consumer(cfg, opts)
	fx.send(p, broker.OutMessage{Value: []byte("elsewhere")})

	ds := fx.pollN(c, 1, 5*time.Second)
	if len(ds) != 1 {
		t.Fatal("message not received")
	}
	fx.settle(c, ds[0], broker.DeadLetter, "")
	dead := fx.receiveRaw(fx.url(target), 2)
	if len(dead) != 1 || aws.ToString(dead[0].Body) != "elsewhere" {
		t.Fatalf("override dead-letter queue holds %v, want the message", dead)
	}
}

func TestVisibilityExtendedWhileHandling(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("extend"), nil)
	cfg := fx.config(url, `"visibility_timeout_secs": 2`)
	p := fx.producer(cfg)
	holder := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})
	other := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})
	fx.send(p, broker.OutMessage{Value: []byte("slow")})

	ds := fx.pollN(holder, 1, 5*time.Second)
	if len(ds) != 1 {
		t.Fatal("message not received")
	}
	// The handler "runs" for 5 s, more than twice the visibility timeout.
	fx.expectNone(other, 5*time.Second, "message delivered again while its handler ran")
	fx.settle(holder, ds[0], broker.Ack, "")
	fx.expectNone(other, 3*time.Second, "acked message delivered again")
}

func TestFIFOOrderWithinGroup(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("order")+".fifo", nil)
	cfg := fx.config(url, `"visibility_timeout_secs": 10`)
	p := fx.producer(cfg)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})

	var msgs []broker.OutMessage
	for i := 0; i < 12; i++ {
		key := []string{"a", "b", "c"}[i%3]
		msgs = append(msgs, broker.OutMessage{Key: []byte(key), Value: []byte(fmt.Sprintf("%s-%02d", key, i/3))})
	}
	// A message with the same body as another must not be deduplicated.
	msgs = append(msgs, broker.OutMessage{Key: []byte("a"), Value: []byte("a-00")})
	fx.send(p, msgs...)

	got := map[string][]string{}
	lanes := map[string]uint32{}
	deadline := time.Now().Add(20 * time.Second)
	received := 0
	for received < len(msgs) && time.Now().Before(deadline) {
		ds, err := c.Poll(fx.ctx, time.Second, 10)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		var tokens []uint64
		for _, d := range ds {
			key := string(d.Key)
			got[key] = append(got[key], string(d.Value))
			if lane, ok := lanes[key]; ok && lane != d.Lane {
				t.Errorf("group %s arrived on lanes %d and %d", key, lane, d.Lane)
			}
			lanes[key] = d.Lane
			tokens = append(tokens, d.Token)
		}
		received += len(ds)
		if err := c.Commit(fx.ctx, tokens); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	want := map[string][]string{
		"a": {"a-00", "a-01", "a-02", "a-03", "a-00"},
		"b": {"b-00", "b-01", "b-02", "b-03"},
		"c": {"c-00", "c-01", "c-02", "c-03"},
	}
	for key, values := range want {
		if strings.Join(got[key], ",") != strings.Join(values, ",") {
			t.Errorf("group %s arrived as %v, want %v", key, got[key], values)
		}
	}
	if lanes["a"] == lanes["b"] || lanes["b"] == lanes["c"] {
		t.Errorf("groups share lanes: %v", lanes)
	}
}

func TestMissingQueueNotFound(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("present"), nil)
	cfg := fx.config(url, "")
	p := fx.producer(cfg)
	missing := fx.queueName("missing")

	for _, dest := range []string{fx.url(missing), missing} {
		start := time.Now()
		results, err := p.Send(fx.ctx, []broker.OutMessage{{Destination: dest, Value: []byte("x")}})
		if err != nil {
			t.Fatalf("Send to %s: %v", dest, err)
		}
		if !errors.Is(results[0].Err, broker.ErrNotFound) {
			t.Errorf("Send to %s: result error = %v, want ErrNotFound", dest, results[0].Err)
		} else if !strings.Contains(results[0].Err.Error(), missing) {
			t.Errorf("error %q does not name the queue", results[0].Err)
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("Send to %s took %v to report the missing queue", dest, elapsed)
		}
	}

	start := time.Now()
	_, err := NewConsumer(fx.ctx, fx.config(fx.url(missing), ""), broker.ConsumerOptions{}, fx.log)
	if !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("NewConsumer on a missing queue: %v, want ErrNotFound", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("NewConsumer took %v to report the missing queue", elapsed)
	}
	c := fx.consumer(cfg, broker.ConsumerOptions{})
	if err := c.Subscribe(fx.ctx, []string{missing}); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("Subscribe to a missing queue: %v, want ErrNotFound", err)
	}
}

func TestSendTooLarge(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("large"), nil)
	cfg := fx.config(url, "")
	p := fx.producer(cfg)

	huge := bytes.Repeat([]byte("x"), maxMessageBytes+1)
	results, err := p.Send(fx.ctx, []broker.OutMessage{{Value: []byte("small")}, {Value: huge}})
	if !errors.Is(err, broker.ErrTooLarge) {
		t.Fatalf("Send error = %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "262144") {
		t.Errorf("error %q does not name the limit", err)
	}
	if results != nil {
		t.Errorf("results = %v, want none", results)
	}
	if visible, inFlight := fx.queueCounts(url); visible != "0" || inFlight != "0" {
		t.Errorf("queue holds %s visible and %s in-flight messages, want nothing sent", visible, inFlight)
	}
	// The largest message SQS accepts goes through.
	fx.send(p, broker.OutMessage{Value: huge[:maxMessageBytes]})
}

func TestCommitDeletesBeforeReturning(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("commit"), nil)
	cfg := fx.config(url, "")
	p := fx.producer(cfg)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})
	fx.send(p, broker.OutMessage{Value: []byte("1")}, broker.OutMessage{Value: []byte("2")})

	ds := fx.pollN(c, 2, 5*time.Second)
	if len(ds) != 2 {
		t.Fatalf("received %d, want 2", len(ds))
	}
	if err := c.Commit(fx.ctx, []uint64{ds[0].Token, ds[1].Token}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if visible, inFlight := fx.queueCounts(url); visible != "0" || inFlight != "0" {
		t.Errorf("after Commit the queue holds %s visible and %s in-flight messages, want 0 and 0", visible, inFlight)
	}
}

func TestSettleUnknownToken(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("token"), nil)
	cfg := fx.config(url, "")
	p := fx.producer(cfg)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})

	err := c.Settle(fx.ctx, []broker.Settlement{{Token: 999, Result: broker.Ack}})
	if !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("Settle(unknown) = %v, want ErrNotFound", err)
	}
	if err := c.Commit(fx.ctx, []uint64{999}); !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("Commit(unknown) = %v, want ErrNotFound", err)
	}

	fx.send(p, broker.OutMessage{Value: []byte("once")})
	ds := fx.pollN(c, 1, 5*time.Second)
	if len(ds) != 1 {
		t.Fatal("message not received")
	}
	bad := c.Settle(fx.ctx, []broker.Settlement{{Token: ds[0].Token, Result: broker.Result(42)}})
	if !errors.Is(bad, broker.ErrInvalidArgument) {
		t.Errorf("Settle(result 42) = %v, want ErrInvalidArgument", bad)
	}
	fx.settle(c, ds[0], broker.Ack, "")
	err = c.Settle(fx.ctx, []broker.Settlement{{Token: ds[0].Token, Result: broker.Ack}})
	if !errors.Is(err, broker.ErrNotFound) {
		t.Errorf("second Settle = %v, want ErrNotFound", err)
	}
}

func TestCloseReleasesUnsettled(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("release"), nil)
	cfg := fx.config(url, `"visibility_timeout_secs": 60`)
	p := fx.producer(cfg)
	fx.send(p, broker.OutMessage{Value: []byte("unfinished")})

	first, err := NewConsumer(fx.ctx, cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy}, fx.log)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	if err := first.Subscribe(fx.ctx, nil); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if ds := fx.pollN(first, 1, 5*time.Second); len(ds) != 1 {
		t.Fatal("message not received")
	}
	if err := first.Close(fx.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	second := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})
	ds := fx.pollN(second, 1, 3*time.Second)
	if len(ds) != 1 {
		t.Fatal("message held by a closed consumer did not come back at once")
	}
	fx.settle(second, ds[0], broker.Ack, "")
}

func TestPollSeveralQueues(t *testing.T) {
	fx := newFixture(t)
	queueA := fx.queueName("pollone")
	queueB := fx.queueName("polltwo")
	urlA := fx.createQueue(queueA, nil)
	fx.createQueue(queueB, nil)
	cfg := fx.config(urlA, "")
	p := fx.producer(cfg)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy}, queueA, fx.url(queueB))
	fx.send(p, broker.OutMessage{Destination: queueB, Value: []byte("to B")})
	fx.send(p, broker.OutMessage{Destination: "", Value: []byte("to A")})

	ds := fx.pollN(c, 2, 8*time.Second)
	topics := map[string]string{}
	for _, d := range ds {
		topics[d.Topic] = string(d.Value)
		fx.settle(c, d, broker.Ack, "")
	}
	if topics[queueA] != "to A" || topics[queueB] != "to B" {
		t.Errorf("received %v, want one message from each queue", topics)
	}
}

func TestCloseTwiceAndErrClosed(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("closed"), nil)
	cfg := fx.config(url, "")

	p, err := NewProducer(fx.ctx, cfg, fx.log)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	if err := p.Close(fx.ctx); err != nil {
		t.Errorf("producer Close: %v", err)
	}
	if err := p.Close(fx.ctx); err != nil {
		t.Errorf("second producer Close: %v", err)
	}
	if _, err := p.Send(fx.ctx, []broker.OutMessage{{Value: []byte("late")}}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}

	c, err := NewConsumer(fx.ctx, cfg, broker.ConsumerOptions{}, fx.log)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	if err := c.Subscribe(fx.ctx, nil); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	// A long poll in flight ends when the consumer closes.
	polled := make(chan error, 1)
	go func() {
		_, err := c.Poll(fx.ctx, 20*time.Second, 1)
		polled <- err
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := c.Close(fx.ctx); err != nil {
		t.Errorf("consumer Close: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Close took %v with a poll in flight", elapsed)
	}
	if err := <-polled; err != nil && !errors.Is(err, broker.ErrClosed) && !errors.Is(err, context.Canceled) {
		t.Errorf("poll in flight during Close returned %v", err)
	}
	if err := c.Close(fx.ctx); err != nil {
		t.Errorf("second consumer Close: %v", err)
	}
	if _, err := c.Poll(fx.ctx, time.Second, 1); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Poll after Close = %v, want ErrClosed", err)
	}
	if err := c.Subscribe(fx.ctx, nil); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if err := c.Settle(fx.ctx, []broker.Settlement{{Token: 1, Result: broker.Ack}}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Settle after Close = %v, want ErrClosed", err)
	}
	if err := c.Commit(fx.ctx, []uint64{1}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
}

func TestPollWithoutSubscription(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("nosub"), nil)
	c, err := NewConsumer(fx.ctx, fx.config(url, ""), broker.ConsumerOptions{}, fx.log)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer c.Close(fx.ctx)
	if _, err := c.Poll(fx.ctx, time.Second, 1); !errors.Is(err, broker.ErrInvalidArgument) {
		t.Errorf("Poll before Subscribe = %v, want ErrInvalidArgument", err)
	}
}

func TestPollZeroLimitMeansMaxMessages(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("limit"), nil)
	cfg := fx.config(url, `"max_messages": 3`)
	p := fx.producer(cfg)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})
	for i := 0; i < 5; i++ {
		fx.send(p, broker.OutMessage{Value: []byte(fmt.Sprintf("m%d", i))})
	}

	ds, err := c.Poll(fx.ctx, 2*time.Second, 0)
	if err != nil {
		t.Fatalf("Poll with limit 0: %v", err)
	}
	if len(ds) == 0 || len(ds) > 3 {
		t.Fatalf("Poll with limit 0 returned %d deliveries, want 1 to max_messages (3)", len(ds))
	}
	for _, d := range ds {
		fx.settle(c, d, broker.Ack, "")
	}
}

func TestFIFODeduplicationID(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("dedup")+".fifo", nil)
	cfg := fx.config(url, "")
	p := fx.producer(cfg)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})

	dedup := []broker.Header{{Key: attrDeduplicationID, Value: []byte("order-17")}}
	fx.send(p, broker.OutMessage{Key: []byte("g"), Value: []byte("first"), Headers: dedup})
	fx.send(p, broker.OutMessage{Key: []byte("g"), Value: []byte("repeat"), Headers: dedup})
	fx.send(p, broker.OutMessage{Key: []byte("g"), Value: []byte("first")})

	ds := fx.pollN(c, 3, 5*time.Second)
	var values []string
	for _, d := range ds {
		values = append(values, string(d.Value))
		if len(d.Headers) != 0 {
			t.Errorf("delivery %q has headers %v, want none", d.Value, d.Headers)
		}
		fx.settle(c, d, broker.Ack, "")
	}
	if strings.Join(values, ",") != "first,first" {
		t.Errorf("received %v, want the first message and the one without an id, not the repeat", values)
	}
}

// A Poll that ends before its ReceiveMessage call leaves that call in
// flight. Once that call ends empty, the next Poll must start a new one
// rather than wait out its timeout with no call at all.
func TestPollAfterEarlierPollLeftCallInFlight(t *testing.T) {
	fx := newFixture(t)
	url := fx.createQueue(fx.queueName("restart"), nil)
	cfg := fx.config(url, `"wait_time_secs": 20`)
	p := fx.producer(cfg)
	c := fx.consumer(cfg, broker.ConsumerOptions{Retry: broker.DefaultRetryPolicy})

	// The first Poll gives up after 200 ms; its 1 s long poll goes on.
	short, cancel := context.WithTimeout(fx.ctx, 200*time.Millisecond)
	defer cancel()
	if ds, err := c.Poll(short, time.Second, 1); len(ds) != 0 || !errors.Is(err, broker.ErrTimeout) {
		t.Fatalf("first Poll = %d deliveries, %v; want none and ErrTimeout", len(ds), err)
	}

	start := time.Now()
	sent := make(chan error, 1)
	go func() {
		// Send after the first call ended empty (about 1 s in).
		time.Sleep(2 * time.Second)
		_, err := p.Send(fx.ctx, []broker.OutMessage{{Value: []byte("late")}})
		sent <- err
	}()
	ds, err := c.Poll(fx.ctx, 8*time.Second, 1)
	if err != nil {
		t.Fatalf("second Poll: %v", err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(ds) != 1 || string(ds[0].Value) != "late" {
		t.Fatalf("second Poll returned %d deliveries after %v, want the message sent during it", len(ds), time.Since(start))
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("second Poll took %v, want the message soon after it was sent at 2 s", elapsed)
	}
	fx.settle(c, ds[0], broker.Ack, "")
}
