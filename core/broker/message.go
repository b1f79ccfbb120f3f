package broker

import "time"

// Header is one message header. Kafka and RabbitMQ carry headers natively; SQS
// carries them as message attributes.
type Header struct {
	Key   string
	Value []byte
}

// OutMessage is a message to publish. Destination is a Kafka topic, a
// RabbitMQ routing key (a queue name on the default exchange) or an SQS queue
// name or URL. A nil Key means no key.
type OutMessage struct {
	Destination string
	Key         []byte
	Value       []byte
	Headers     []Header
}

// SendResult is the broker's acknowledgement of one OutMessage. Partition and
// Offset are set on Kafka only; ID is the broker's message id where it assigns
// one (SQS).
type SendResult struct {
	Partition int32
	Offset    int64
	ID        string
	Err       error
}

// Delivery is one consumed message handed to the application. Token
// identifies it when it is settled; it is unique within one consumer. Lane
// groups deliveries that must be handled in order (one Kafka partition), and
// Attempt counts deliveries of the same message, starting at 1.
type Delivery struct {
	Token     uint64
	Lane      uint32
	Attempt   uint32
	ID        string
	Topic     string
	Key       []byte
	Value     []byte
	Headers   []Header
	Partition int32
	Offset    int64
	Timestamp time.Time
}

// Result is the application's decision about one delivery. The values are
// part of the bridge's buffer format, so they never change meaning.
type Result uint8

const (
	// Ack means processed: the delivery is acknowledged.
	Ack Result = 1
	// Nack means failed but may work later: redeliver after a backoff and
	// dead-letter after the consumer's maximum number of retries.
	Nack Result = 2
	// Requeue means try again now; it counts toward the maximum retries.
	Requeue Result = 3
	// Reject means never processable: drop it with a warning.
	Reject Result = 4
	// DeadLetter means send it to the dead-letter destination, then drop it.
	DeadLetter Result = 5
	// Skipped means the application did not handle the delivery because an
	// earlier one in the same lane asked for a retry. It is delivered again
	// after that one, without counting as an attempt.
	Skipped Result = 6
)

// String returns the name used in logs and in Python's MessageResult.
func (r Result) String() string {
	switch r {
	case Ack:
		return "ack"
	case Nack:
		return "nack"
	case Requeue:
		return "requeue"
	case Reject:
		return "reject"
	case DeadLetter:
		return "dead_letter"
	case Skipped:
		return "skipped"
	}
	return "unknown"
}

// Valid reports whether r is one of the defined results.
func (r Result) Valid() bool { return r >= Ack && r <= Skipped }

// Settlement is the application's result for one delivery. Reason is free
// text that travels with dead-lettered messages and warnings.
type Settlement struct {
	Token  uint64
	Result Result
	Reason string
}
