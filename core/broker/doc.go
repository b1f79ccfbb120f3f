// Package broker holds the message model, the client interfaces and the
// sentinel errors shared by the Kafka, RabbitMQ and SQS packages. It has no
// broker I/O of its own, so every broker package means the same thing by a
// delivery, a settlement or an error.
package broker
