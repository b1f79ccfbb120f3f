package rabbitmq

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cello-framework/cello/core/broker"
)

// Headers that this package reserves. Consumers hide the key and retry
// headers from Delivery.Headers but keep the dead-letter ones, so a reader
// of a dead-letter queue sees why and from where each message came.
const (
	reservedPrefix = "x-cello-"
	// keyHeader carries OutMessage.Key; AMQP has no message key.
	keyHeader = "x-cello-key"
	// retriesHeader counts how often the message was retried, so the count
	// survives a restart of the consumer.
	retriesHeader        = "x-cello-retries"
	deadLetterReasonHdr  = "x-cello-dead-letter-reason"
	originalQueueHeader  = "x-cello-original-queue"
	maxShortStringLength = 255
)

// newOutgoing builds the persistent publishing of m with a new message id.
func newOutgoing(exchange string, m *broker.OutMessage, now time.Time) outgoing {
	headers := amqp.Table{}
	for _, h := range m.Headers {
		// AMQP field tables carry bytes as a byte array; a nil value too.
		v := h.Value
		if v == nil {
			v = []byte{}
		}
		headers[h.Key] = v
	}
	if m.Key != nil {
		headers[keyHeader] = m.Key
	}
	return outgoing{
		exchange:   exchange,
		routingKey: m.Destination,
		msg: amqp.Publishing{
			Headers:      headers,
			DeliveryMode: amqp.Persistent,
			MessageId:    uuid.NewString(),
			Timestamp:    now,
			Body:         m.Value,
		},
	}
}

// checkOutMessage rejects what the broker would refuse or what would break
// the reserved headers. maxBytes limits the body.
func checkOutMessage(i int, m *broker.OutMessage, exchange string, maxBytes int) error {
	if exchange == "" && m.Destination == "" {
		return fmt.Errorf("%w: message %d has no destination; the default exchange needs a queue name as routing key",
			broker.ErrInvalidArgument, i)
	}
	if len(m.Destination) > maxShortStringLength {
		return fmt.Errorf("%w: message %d has a routing key of %d bytes, the maximum is %d",
			broker.ErrInvalidArgument, i, len(m.Destination), maxShortStringLength)
	}
	if len(m.Value) > maxBytes {
		return fmt.Errorf("%w: message %d for routing key %q has a body of %d bytes, over the limit of %d bytes (max_message_bytes)",
			broker.ErrTooLarge, i, m.Destination, len(m.Value), maxBytes)
	}
	for _, h := range m.Headers {
		switch {
		case h.Key == "" || len(h.Key) > maxShortStringLength:
			return fmt.Errorf("%w: message %d has a header name of %d bytes, expected 1 to %d",
				broker.ErrInvalidArgument, i, len(h.Key), maxShortStringLength)
		case strings.HasPrefix(h.Key, reservedPrefix):
			return fmt.Errorf("%w: message %d has header %q, but names starting with %q are reserved for cello",
				broker.ErrInvalidArgument, i, h.Key, reservedPrefix)
		}
	}
	return nil
}

// copyForQueue returns a persistent copy of d with message id id, for
// publishing to queue through the default exchange, with its headers changed
// by edit. Passing the Delivery.ID keeps it stable across retries. UserId is
// dropped because RabbitMQ rejects a user id other than the publisher's.
func copyForQueue(d *amqp.Delivery, id, queue string, edit func(amqp.Table)) outgoing {
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	edit(headers)
	return outgoing{
		routingKey: queue,
		msg: amqp.Publishing{
			Headers:         headers,
			ContentType:     d.ContentType,
			ContentEncoding: d.ContentEncoding,
			DeliveryMode:    amqp.Persistent,
			Priority:        d.Priority,
			CorrelationId:   d.CorrelationId,
			ReplyTo:         d.ReplyTo,
			Expiration:      d.Expiration,
			MessageId:       id,
			Timestamp:       d.Timestamp,
			Type:            d.Type,
			AppId:           d.AppId,
			Body:            d.Body,
		},
	}
}

// retryCount reads x-cello-retries. A missing or unreadable header counts
// as 0, so a message from another publisher starts at its first attempt.
func retryCount(headers amqp.Table) int {
	var n int64
	switch v := headers[retriesHeader].(type) {
	case int8:
		n = int64(v)
	case int16:
		n = int64(v)
	case int32:
		n = int64(v)
	case int64:
		n = v
	case int:
		n = int64(v)
	case uint8:
		n = int64(v)
	case uint16:
		n = int64(v)
	case uint32:
		n = int64(v)
	case []byte:
		n, _ = strconv.ParseInt(string(v), 10, 64)
	case string:
		n, _ = strconv.ParseInt(v, 10, 64)
	}
	if n < 0 {
		return 0
	}
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(n)
}

// toDelivery converts a consumed message. Delivery.Attempt is one more than
// the retries recorded in its headers.
func toDelivery(token uint64, queue string, d *amqp.Delivery) broker.Delivery {
	out := broker.Delivery{
		Token:     token,
		Lane:      uint32(token),
		Attempt:   uint32(retryCount(d.Headers)) + 1,
		ID:        d.MessageId,
		Topic:     queue,
		Value:     d.Body,
		Headers:   tableToHeaders(d.Headers),
		Partition: -1,
		Offset:    int64(d.DeliveryTag),
		Timestamp: d.Timestamp,
	}
	if out.ID == "" {
		out.ID = uuid.NewString()
	}
	if out.Value == nil {
		out.Value = []byte{}
	}
	if key, ok := d.Headers[keyHeader]; ok {
		out.Key = headerBytes(key)
	}
	return out
}

// tableToHeaders converts AMQP headers to broker headers in name order,
// without the key and retry headers.
func tableToHeaders(t amqp.Table) []broker.Header {
	names := make([]string, 0, len(t))
	for name := range t {
		if name != keyHeader && name != retriesHeader {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	out := make([]broker.Header, 0, len(names))
	for _, name := range names {
		out = append(out, broker.Header{Key: name, Value: headerBytes(t[name])})
	}
	return out
}

// headerBytes returns a header value as bytes. Publishers other than cello
// may send any AMQP field type; those become their text form.
func headerBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	case nil:
		return []byte{}
	case time.Time:
		return []byte(x.UTC().Format(time.RFC3339))
	}
	return []byte(fmt.Sprint(v))
}
