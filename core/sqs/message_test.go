package sqs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/cello-framework/cello/core/broker"
)

var (
	standardQueue = newQueue(testQueueURL, "orders")
	fifoQueue     = newQueue("http://127.0.0.1:4566/000000000000/orders.fifo", "orders.fifo")
)

func TestSplitBatchesByCount(t *testing.T) {
	sizes := make([]int, 23)
	for i := range sizes {
		sizes[i] = 100
	}
	got := splitBatches(sizes, maxBatchEntries, maxMessageBytes)
	want := [][2]int{{0, 10}, {10, 20}, {20, 23}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitBatches(23 small) = %v, want %v", got, want)
	}
}

func TestSplitBatchesBySize(t *testing.T) {
	sizes := []int{100_000, 100_000, 100_000, 50_000, maxMessageBytes, 1}
	got := splitBatches(sizes, maxBatchEntries, maxMessageBytes)
	want := [][2]int{{0, 2}, {2, 4}, {4, 5}, {5, 6}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitBatches(%v) = %v, want %v", sizes, got, want)
	}
}

func TestSplitBatchesExactLimit(t *testing.T) {
	sizes := []int{maxMessageBytes - 10, 10, 1}
	got := splitBatches(sizes, maxBatchEntries, maxMessageBytes)
	want := [][2]int{{0, 2}, {2, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitBatches(%v) = %v, want %v", sizes, got, want)
	}
}

func TestSplitBatchesEmpty(t *testing.T) {
	if got := splitBatches(nil, maxBatchEntries, maxMessageBytes); len(got) != 0 {
		t.Errorf("splitBatches(nil) = %v, want none", got)
	}
}

func TestEncodeMessageTooLarge(t *testing.T) {
	m := broker.OutMessage{Value: bytes.Repeat([]byte("a"), maxMessageBytes-len(attrKey)-len("String")-1), Key: []byte("k")}
	if _, err := encodeMessage(0, m, standardQueue); err != nil {
		t.Fatalf("message of exactly the limit: %v", err)
	}
	m.Key = []byte("kk")
	_, err := encodeMessage(3, m, standardQueue)
	if !errors.Is(err, broker.ErrTooLarge) {
		t.Fatalf("error = %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "262144") {
		t.Errorf("error %q does not name the limit", err)
	}
	if !strings.Contains(err.Error(), "message 3") {
		t.Errorf("error %q does not name the message", err)
	}
}

func TestEncodeMessageAttributes(t *testing.T) {
	m := broker.OutMessage{
		Value: []byte(`{"id": 1}`),
		Key:   []byte("order-1"),
		Headers: []broker.Header{
			{Key: "trace-id", Value: []byte("abc")},
			{Key: "raw", Value: []byte{0xff, 0x00, 0x01}},
		},
	}
	e, err := encodeMessage(0, m, standardQueue)
	if err != nil {
		t.Fatalf("encodeMessage: %v", err)
	}
	if e.body != `{"id": 1}` {
		t.Errorf("body = %q", e.body)
	}
	if got := aws.ToString(e.attrs["trace-id"].DataType); got != "String" {
		t.Errorf("trace-id type = %q, want String", got)
	}
	if got := aws.ToString(e.attrs["raw"].DataType); got != "Binary" {
		t.Errorf("raw type = %q, want Binary", got)
	}
	if got := aws.ToString(e.attrs[attrKey].StringValue); got != "order-1" {
		t.Errorf("key attribute = %q, want order-1", got)
	}
	if e.groupID != "" {
		t.Errorf("standard queue entry has group %q", e.groupID)
	}
	wantSize := len(`{"id": 1}`) + len("trace-id") + 6 + 3 + len("raw") + 6 + 3 + len(attrKey) + 6 + len("order-1")
	if e.size != wantSize {
		t.Errorf("size = %d, want %d", e.size, wantSize)
	}
}

func TestEncodeMessageRejects(t *testing.T) {
	eleven := make([]broker.Header, 11)
	for i := range eleven {
		eleven[i] = broker.Header{Key: "h" + strconv.Itoa(i), Value: []byte("v")}
	}
	cases := map[string]broker.OutMessage{
		"empty value":     {},
		"reserved key":    {Value: []byte("x"), Headers: []broker.Header{{Key: attrKey, Value: []byte("v")}}},
		"reserved body":   {Value: []byte("x"), Headers: []broker.Header{{Key: attrBodyEncoding, Value: []byte("v")}}},
		"bad name":        {Value: []byte("x"), Headers: []broker.Header{{Key: "has space", Value: []byte("v")}}},
		"aws prefix":      {Value: []byte("x"), Headers: []broker.Header{{Key: "AWS.trace", Value: []byte("v")}}},
		"double period":   {Value: []byte("x"), Headers: []broker.Header{{Key: "a..b", Value: []byte("v")}}},
		"empty value hdr": {Value: []byte("x"), Headers: []broker.Header{{Key: "a", Value: nil}}},
		"duplicate":       {Value: []byte("x"), Headers: []broker.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}}},
		"too many":        {Value: []byte("x"), Headers: eleven},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := encodeMessage(0, m, standardQueue)
			if !errors.Is(err, broker.ErrInvalidArgument) {
				t.Errorf("error = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestEncodeBinaryBodyRoundTrip(t *testing.T) {
	value := []byte{0x00, 0xff, 'a', 0x01}
	e, err := encodeMessage(0, broker.OutMessage{Value: value, Key: []byte{0xfe}}, fifoQueue)
	if err != nil {
		t.Fatalf("encodeMessage: %v", err)
	}
	if aws.ToString(e.attrs[attrBodyEncoding].StringValue) != "base64" {
		t.Fatalf("body encoding attribute missing: %v", e.attrs)
	}
	if !strings.HasPrefix(e.groupID, hashedGroupIDPrefix) {
		t.Errorf("group of a binary key = %q, want a hash", e.groupID)
	}
	received := types.Message{
		MessageId:         aws.String("m-1"),
		Body:              aws.String(e.body),
		MessageAttributes: e.attrs,
		Attributes: map[string]string{
			"ApproximateReceiveCount": "3",
			"SentTimestamp":           "1700000000123",
			"MessageGroupId":          e.groupID,
		},
	}
	d, group, warning := decodeMessage(received, fifoQueue)
	if warning != "" {
		t.Errorf("warning = %q", warning)
	}
	if !bytes.Equal(d.Value, value) {
		t.Errorf("value = %v, want %v", d.Value, value)
	}
	if !bytes.Equal(d.Key, []byte{0xfe}) {
		t.Errorf("key = %v, want [254]", d.Key)
	}
	if len(d.Headers) != 0 {
		t.Errorf("headers = %v, want none", d.Headers)
	}
	if d.Attempt != 3 {
		t.Errorf("attempt = %d, want 3", d.Attempt)
	}
	if !d.Timestamp.Equal(time.UnixMilli(1700000000123)) {
		t.Errorf("timestamp = %v", d.Timestamp)
	}
	if d.Partition != -1 || d.Offset != 0 {
		t.Errorf("partition, offset = %d, %d, want -1, 0", d.Partition, d.Offset)
	}
	if d.Topic != "orders.fifo" || d.ID != "m-1" {
		t.Errorf("topic, id = %q, %q", d.Topic, d.ID)
	}
	if group != e.groupID {
		t.Errorf("group = %q, want %q", group, e.groupID)
	}
}

func TestDecodeMessageBadEncoding(t *testing.T) {
	received := types.Message{
		Body:              aws.String("not base64!"),
		MessageAttributes: map[string]types.MessageAttributeValue{attrBodyEncoding: stringAttr("base64")},
	}
	d, _, warning := decodeMessage(received, standardQueue)
	if warning == "" {
		t.Error("no warning for an invalid base64 body")
	}
	if string(d.Value) != "not base64!" {
		t.Errorf("value = %q, want the body as received", d.Value)
	}
	if len(d.Headers) != 1 || d.Headers[0].Key != attrBodyEncoding {
		t.Errorf("headers = %v, want the encoding header kept", d.Headers)
	}
}

func TestGroupID(t *testing.T) {
	long := bytes.Repeat([]byte("k"), 129)
	cases := []struct {
		key  []byte
		want string
	}{
		{nil, "default"},
		{[]byte{}, "default"},
		{[]byte("customer-7"), "customer-7"},
		{bytes.Repeat([]byte("k"), 128), strings.Repeat("k", 128)},
	}
	for _, tc := range cases {
		if got := groupID(tc.key); got != tc.want {
			t.Errorf("groupID(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	for _, key := range [][]byte{long, []byte("has space"), []byte("ünïcode")} {
		got := groupID(key)
		if !strings.HasPrefix(got, hashedGroupIDPrefix) || len(got) > maxGroupIDLen {
			t.Errorf("groupID(%q) = %q, want a hash of at most 128 characters", key, got)
		}
		if groupID(key) != got {
			t.Errorf("groupID(%q) is not stable", key)
		}
	}
}

func TestLaneOf(t *testing.T) {
	a1 := laneOf(fifoQueue, "a", 1)
	a2 := laneOf(fifoQueue, "a", 2)
	b := laneOf(fifoQueue, "b", 3)
	if a1 != a2 {
		t.Errorf("one FIFO group got lanes %d and %d", a1, a2)
	}
	if a1 == b {
		t.Errorf("FIFO groups a and b share lane %d", a1)
	}
	if laneOf(standardQueue, "", 1) == laneOf(standardQueue, "", 2) {
		t.Error("two standard deliveries share a lane")
	}
	if laneOf(standardQueue, "", 1)&(1<<31) != 0 || a1&(1<<31) == 0 {
		t.Error("the top bit does not separate standard and FIFO lanes")
	}
}

func TestIsSQSText(t *testing.T) {
	cases := map[string]bool{
		"plain":              true,
		"tab\tnl\ncr\r":      true,
		"emoji 🙂":            true,
		"\x00":               false,
		"\x1f":               false,
		"\xff":               false,
		"\uFFFE":             false,
		"replacement \uFFFD": true,
	}
	for s, want := range cases {
		if got := isSQSText([]byte(s)); got != want {
			t.Errorf("isSQSText(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestDeadLetterQueueName(t *testing.T) {
	cases := map[string]string{
		"orders":                          "orders-dlq",
		"orders.fifo":                     "orders-dlq.fifo",
		strings.Repeat("a", 80):           strings.Repeat("a", 76) + "-dlq",
		strings.Repeat("a", 75) + ".fifo": strings.Repeat("a", 71) + "-dlq.fifo",
	}
	for in, want := range cases {
		got := deadLetterQueueName(in)
		if got != want {
			t.Errorf("deadLetterQueueName(%q) = %q, want %q", in, got, want)
		}
		if !queueNamePattern.MatchString(got) {
			t.Errorf("deadLetterQueueName(%q) = %q is not a valid queue name", in, got)
		}
	}
}

func TestDeadLetterReason(t *testing.T) {
	if got := deadLetterReason("bad\x00input"); got != "bad\uFFFDinput" {
		t.Errorf("deadLetterReason with NUL = %q", got)
	}
	long := strings.Repeat("é", maxReasonBytes)
	got := deadLetterReason(long)
	if len(got) > maxReasonBytes || !isSQSText([]byte(got)) {
		t.Errorf("long reason cut to %d bytes, valid text %v", len(got), isSQSText([]byte(got)))
	}
}

func TestTranslateErrors(t *testing.T) {
	missing := &types.QueueDoesNotExist{Message: aws.String("The specified queue does not exist.")}
	queryCode := &smithy.GenericAPIError{Code: "AWS.SimpleQueueService.NonExistentQueue"}
	auth := &smithy.GenericAPIError{Code: "InvalidClientTokenId"}
	other := &smithy.GenericAPIError{Code: "InternalError"}
	cases := []struct {
		err  error
		want error
	}{
		{fmt.Errorf("op: %w", missing), broker.ErrNotFound},
		{queryCode, broker.ErrNotFound},
		{auth, broker.ErrConnection},
		{context.DeadlineExceeded, broker.ErrTimeout},
		{other, broker.ErrDelivery},
	}
	for _, tc := range cases {
		got := translate(tc.err, "SendMessageBatch", "orders", broker.ErrDelivery)
		if !errors.Is(got, tc.want) {
			t.Errorf("translate(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if !strings.Contains(got.Error(), `"orders"`) {
			t.Errorf("translate(%v) = %q does not name the queue", tc.err, got)
		}
	}
	if got := translate(context.Canceled, "ReceiveMessage", "orders", nil); !errors.Is(got, context.Canceled) {
		t.Errorf("translate(Canceled) = %v, want context.Canceled kept", got)
	}
}

func TestRetryDelayRoundsUp(t *testing.T) {
	c := &consumer{opts: broker.ConsumerOptions{Retry: broker.RetryPolicy{
		MaxRetries: 3, Backoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second,
	}}}
	cases := map[uint32]time.Duration{1: time.Second, 2: time.Second, 3: 2 * time.Second, 4: 4 * time.Second}
	for attempt, want := range cases {
		if got := c.retryDelay(attempt); got != want {
			t.Errorf("retryDelay(%d) = %v, want %v", attempt, got, want)
		}
	}
	c.opts.Retry = broker.RetryPolicy{MaxRetries: 1, Backoff: 24 * time.Hour, MaxBackoff: 48 * time.Hour}
	if got := c.retryDelay(1); got != 12*time.Hour {
		t.Errorf("retryDelay beyond the SQS maximum = %v, want 12h", got)
	}
}

func TestParseDestination(t *testing.T) {
	qs := &queues{home: standardQueue}
	q, ok, err := qs.parseDestination("")
	if err != nil || !ok || q != standardQueue {
		t.Errorf(`parseDestination("") = %v, %v, %v`, q, ok, err)
	}
	q, ok, err = qs.parseDestination("http://localhost:4566/000000000000/jobs.fifo")
	if err != nil || !ok || q.name != "jobs.fifo" || !q.fifo {
		t.Errorf("parseDestination(URL) = %+v, %v, %v", q, ok, err)
	}
	q, ok, err = qs.parseDestination("jobs")
	if err != nil || ok || q.name != "jobs" {
		t.Errorf("parseDestination(name) = %+v, %v, %v", q, ok, err)
	}
	for _, bad := range []string{"bad name", "http://localhost:4566/jobs"} {
		if _, _, err := qs.parseDestination(bad); !errors.Is(err, broker.ErrInvalidArgument) {
			t.Errorf("parseDestination(%q) error = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestEncodeDeduplicationID(t *testing.T) {
	m := broker.OutMessage{Value: []byte("x"), Key: []byte("g1"),
		Headers: []broker.Header{{Key: attrDeduplicationID, Value: []byte("order-17")}}}
	e, err := encodeMessage(0, m, fifoQueue)
	if err != nil {
		t.Fatalf("encodeMessage: %v", err)
	}
	if _, sent := e.attrs[attrDeduplicationID]; sent {
		t.Error("the deduplication id was also sent as a message attribute")
	}
	entry := e.batchEntry("0")
	if got := aws.ToString(entry.MessageDeduplicationId); got != "order-17" {
		t.Errorf("MessageDeduplicationId = %q, want order-17", got)
	}
	if got := aws.ToString(entry.MessageGroupId); got != "g1" {
		t.Errorf("MessageGroupId = %q, want the key g1", got)
	}

	m.Headers = nil
	e, err = encodeMessage(0, m, fifoQueue)
	if err != nil {
		t.Fatalf("encodeMessage without an id: %v", err)
	}
	first, second := e.batchEntry("0"), e.batchEntry("0")
	if aws.ToString(first.MessageDeduplicationId) == "" ||
		aws.ToString(first.MessageDeduplicationId) == aws.ToString(second.MessageDeduplicationId) {
		t.Errorf("without a caller's id, entries got ids %q and %q, want two new distinct ones",
			aws.ToString(first.MessageDeduplicationId), aws.ToString(second.MessageDeduplicationId))
	}
}

func TestEncodeDeduplicationIDRejects(t *testing.T) {
	cases := map[string]struct {
		id    string
		queue queue
		text  string
	}{
		"standard queue": {"order-17", standardQueue, "not a FIFO queue"},
		"empty":          {"", fifoQueue, "1 to 128"},
		"space":          {"order 17", fifoQueue, "1 to 128"},
		"too long":       {strings.Repeat("d", maxDedupIDLen+1), fifoQueue, "1 to 128"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			m := broker.OutMessage{Value: []byte("x"),
				Headers: []broker.Header{{Key: attrDeduplicationID, Value: []byte(c.id)}}}
			_, err := encodeMessage(2, m, c.queue)
			if !errors.Is(err, broker.ErrInvalidArgument) {
				t.Fatalf("error = %v, want ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), c.text) || !strings.Contains(err.Error(), "message 2") {
				t.Errorf("error %q does not contain %q and the message index", err, c.text)
			}
		})
	}
}
