package rabbitmq

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cello-framework/cello/core/broker"
)

func TestNewOutgoingIsPersistentWithKeyHeader(t *testing.T) {
	now := time.Unix(1700000000, 0)
	m := broker.OutMessage{Destination: "orders", Key: []byte("k1"), Value: []byte("v"),
		Headers: []broker.Header{{Key: "h", Value: []byte{0, 1}}, {Key: "empty", Value: nil}}}
	out := newOutgoing("ex", &m, now)
	if out.exchange != "ex" || out.routingKey != "orders" {
		t.Errorf("exchange, routing key = %q, %q", out.exchange, out.routingKey)
	}
	if out.msg.DeliveryMode != amqp.Persistent {
		t.Errorf("DeliveryMode = %d, want persistent", out.msg.DeliveryMode)
	}
	if _, err := uuid.Parse(out.msg.MessageId); err != nil {
		t.Errorf("MessageId %q is not a uuid", out.msg.MessageId)
	}
	if !out.msg.Timestamp.Equal(now) {
		t.Errorf("Timestamp = %v, want %v", out.msg.Timestamp, now)
	}
	if got := out.msg.Headers[keyHeader]; !bytes.Equal(got.([]byte), []byte("k1")) {
		t.Errorf("%s = %v, want k1", keyHeader, got)
	}
	if got := out.msg.Headers["h"]; !bytes.Equal(got.([]byte), []byte{0, 1}) {
		t.Errorf("header h = %v", got)
	}
	if got, ok := out.msg.Headers["empty"].([]byte); !ok || len(got) != 0 {
		t.Errorf("header with a nil value = %#v, want an empty byte array", out.msg.Headers["empty"])
	}
	if err := out.msg.Headers.Validate(); err != nil {
		t.Errorf("headers are not a valid AMQP table: %v", err)
	}
}

func TestNewOutgoingWithoutKey(t *testing.T) {
	out := newOutgoing("", &broker.OutMessage{Destination: "q", Value: []byte("v")}, time.Now())
	if _, ok := out.msg.Headers[keyHeader]; ok {
		t.Errorf("a nil key must not set %s", keyHeader)
	}
	other := newOutgoing("", &broker.OutMessage{Destination: "q"}, time.Now())
	if other.msg.MessageId == out.msg.MessageId {
		t.Error("two messages got the same MessageId")
	}
}

func TestCheckOutMessageErrors(t *testing.T) {
	cases := []struct {
		m        broker.OutMessage
		exchange string
		sentinel error
		want     string
	}{
		{broker.OutMessage{Destination: ""}, "", broker.ErrInvalidArgument, "message 0 has no destination"},
		{broker.OutMessage{Destination: strings.Repeat("q", 256)}, "", broker.ErrInvalidArgument, "routing key of 256 bytes"},
		{broker.OutMessage{Destination: "q", Value: make([]byte, 11)}, "", broker.ErrTooLarge, "over the limit of 10 bytes (max_message_bytes)"},
		{broker.OutMessage{Destination: "q", Headers: []broker.Header{{Key: "x-cello-retries"}}}, "", broker.ErrInvalidArgument, `header "x-cello-retries"`},
		{broker.OutMessage{Destination: "q", Headers: []broker.Header{{Key: ""}}}, "", broker.ErrInvalidArgument, "header name of 0 bytes"},
	}
	for _, tc := range cases {
		err := checkOutMessage(0, &tc.m, tc.exchange, 10)
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("%s: err = %v, want %v", tc.want, err, tc.sentinel)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %q does not contain %q", err, tc.want)
		}
	}
	if err := checkOutMessage(0, &broker.OutMessage{Destination: "", Value: make([]byte, 10)}, "fanout-ex", 10); err != nil {
		t.Errorf("an empty routing key on a named exchange and a body at the limit: %v", err)
	}
}

func TestRetryCountReadsIntegerTypes(t *testing.T) {
	cases := []struct {
		value any
		want  int
	}{
		{nil, 0},
		{int8(1), 1},
		{int16(2), 2},
		{int32(3), 3},
		{int64(4), 4},
		{uint8(5), 5},
		{[]byte("6"), 6},
		{"7", 7},
		{int32(-2), 0},
		{"junk", 0},
		{3.5, 0},
	}
	for _, tc := range cases {
		headers := amqp.Table{}
		if tc.value != nil {
			headers[retriesHeader] = tc.value
		}
		if got := retryCount(headers); got != tc.want {
			t.Errorf("retryCount(%#v) = %d, want %d", tc.value, got, tc.want)
		}
	}
}

func TestToDeliveryFields(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	d := amqp.Delivery{
		MessageId:   "m-1",
		DeliveryTag: 42,
		Timestamp:   ts,
		Body:        []byte("body"),
		Headers: amqp.Table{
			"b":                 []byte("2"),
			"a":                 "1",
			"n":                 int32(7),
			keyHeader:           []byte("key"),
			retriesHeader:       int32(2),
			deadLetterReasonHdr: "boom",
		},
	}
	got := toDelivery(9, "orders", &d)
	want := broker.Delivery{
		Token: 9, Lane: 9, Attempt: 3, ID: "m-1", Topic: "orders", Key: []byte("key"), Value: []byte("body"),
		Headers: []broker.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "n", Value: []byte("7")},
			{Key: deadLetterReasonHdr, Value: []byte("boom")}},
		Partition: -1, Offset: 42, Timestamp: ts,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("toDelivery:\n got %+v\nwant %+v", got, want)
	}
}

func TestToDeliveryWithoutIDOrKey(t *testing.T) {
	got := toDelivery(1, "q", &amqp.Delivery{})
	if _, err := uuid.Parse(got.ID); err != nil {
		t.Errorf("ID %q of a message without message-id is not a uuid", got.ID)
	}
	if got.Key != nil {
		t.Errorf("Key = %v, want nil without %s", got.Key, keyHeader)
	}
	if got.Value == nil || len(got.Value) != 0 {
		t.Errorf("Value = %#v, want an empty non-nil slice", got.Value)
	}
	if got.Attempt != 1 {
		t.Errorf("Attempt = %d, want 1", got.Attempt)
	}
}

func TestCopyForQueueKeepsIDAndDropsUserID(t *testing.T) {
	d := amqp.Delivery{
		MessageId: "m-1", UserId: "someone", ContentType: "application/json", CorrelationId: "c",
		DeliveryMode: amqp.Transient, Body: []byte("b"), Headers: amqp.Table{"h": "v", retriesHeader: int32(1)},
	}
	out := copyForQueue(&d, "m-1", "orders.dlq", func(h amqp.Table) { h[retriesHeader] = int32(2) })
	if out.exchange != "" || out.routingKey != "orders.dlq" {
		t.Errorf("exchange, routing key = %q, %q; want the default exchange and orders.dlq", out.exchange, out.routingKey)
	}
	if out.msg.MessageId != "m-1" || out.msg.UserId != "" {
		t.Errorf("MessageId, UserId = %q, %q; want m-1 and none", out.msg.MessageId, out.msg.UserId)
	}
	if out.msg.DeliveryMode != amqp.Persistent {
		t.Errorf("DeliveryMode = %d, want persistent", out.msg.DeliveryMode)
	}
	if out.msg.ContentType != "application/json" || out.msg.CorrelationId != "c" || string(out.msg.Body) != "b" {
		t.Errorf("properties or body not copied: %+v", out.msg)
	}
	if out.msg.Headers[retriesHeader] != int32(2) || out.msg.Headers["h"] != "v" {
		t.Errorf("headers = %v", out.msg.Headers)
	}
	if d.Headers[retriesHeader] != int32(1) {
		t.Errorf("the original's headers changed: %v", d.Headers)
	}
}

func TestHeaderBytesFormatsOtherTypes(t *testing.T) {
	cases := []struct {
		value any
		want  string
	}{
		{[]byte("raw"), "raw"},
		{"text", "text"},
		{nil, ""},
		{true, "true"},
		{int64(-3), "-3"},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02T03:04:05Z"},
	}
	for _, tc := range cases {
		if got := string(headerBytes(tc.value)); got != tc.want {
			t.Errorf("headerBytes(%#v) = %q, want %q", tc.value, got, tc.want)
		}
	}
}

func TestCheckQueueNames(t *testing.T) {
	names, err := checkQueueNames([]string{"a", "b", "a"})
	if err != nil || !reflect.DeepEqual(names, []string{"a", "b"}) {
		t.Errorf("checkQueueNames = %v, %v; want [a b] without the repeat", names, err)
	}
	for _, bad := range [][]string{nil, {""}, {" "}, {"amq.gen-1"}, {strings.Repeat("q", 252)}} {
		if _, err := checkQueueNames(bad); !errors.Is(err, broker.ErrInvalidArgument) {
			t.Errorf("checkQueueNames(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
}
