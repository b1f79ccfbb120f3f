// Package sqs implements the broker.Producer and broker.Consumer interfaces
// for Amazon SQS and SQS-compatible servers with aws-sdk-go-v2.
//
// A consumer keeps each received message hidden (its visibility timeout)
// until the application settles it, extending the timeout while the handler
// runs. Acks become batched DeleteMessage calls, retries and requeues become
// ChangeMessageVisibility calls, and dead-lettered messages are sent to a
// dead-letter queue and then deleted. The retry count is the message's
// ApproximateReceiveCount, so it survives a restart of the consumer.
//
// Message headers travel as SQS message attributes. The package reserves the
// attribute names cello-key (the message key), cello-body-encoding (set to
// "base64" when a value that SQS cannot carry as text was encoded) and
// cello-dead-letter-reason (added to dead-lettered messages). On a FIFO
// queue the key is the message group. A header named cello-deduplication-id
// is sent as the MessageDeduplicationId, not as an attribute. Without it,
// every message gets a new one.
package sqs
