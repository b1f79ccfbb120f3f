// Package rabbitmq implements the broker.Producer and broker.Consumer
// interfaces for RabbitMQ with amqp091-go.
//
// A producer publishes persistent messages with the mandatory flag on a
// channel in confirm mode, so Send returns only once the broker confirmed
// or rejected each message, and a message that no queue receives is
// reported instead of dropped. A consumer declares its queues durable,
// together with a durable dead-letter queue "<queue>.dlq", and consumes
// them with manual acknowledgements.
//
// RabbitMQ does not count redeliveries, so the consumer retries a message by
// publishing a copy to the same queue with the header x-cello-retries
// increased, then acknowledging the original. The count therefore survives
// a restart of the consumer. The package reserves the header names
// x-cello-retries, x-cello-key (the message key), x-cello-dead-letter-reason
// and x-cello-original-queue (both added to dead-lettered messages). Message
// ids travel in the AMQP message-id property.
//
// Producers and consumers reconnect by themselves after the connection
// drops, with exponential backoff. A delivery received on a connection that
// has since been lost is never acknowledged on the new one: RabbitMQ has
// already returned it to its queue, and settling it does nothing.
package rabbitmq
