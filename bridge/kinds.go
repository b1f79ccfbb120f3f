package main

import (
	"context"
	"fmt"

	"github.com/cello-framework/cello/core/broker"
	"github.com/cello-framework/cello/core/kafka"
	"github.com/cello-framework/cello/core/rabbitmq"
	"github.com/cello-framework/cello/core/sqs"
)

// clientConfig is a parsed config of one broker kind, able to open clients.
type clientConfig interface {
	Describe() string
	openProducer(ctx context.Context) (broker.Producer, error)
	openConsumer(ctx context.Context, opts broker.ConsumerOptions) (broker.Consumer, error)
}

type kafkaConfig struct{ *kafka.Config }

func (c kafkaConfig) openProducer(ctx context.Context) (broker.Producer, error) {
	return kafka.NewProducer(ctx, c.Config, logger)
}

func (c kafkaConfig) openConsumer(ctx context.Context, opts broker.ConsumerOptions) (broker.Consumer, error) {
	return kafka.NewConsumer(ctx, c.Config, opts, logger)
}

type rabbitmqConfig struct{ *rabbitmq.Config }

func (c rabbitmqConfig) openProducer(ctx context.Context) (broker.Producer, error) {
	return rabbitmq.NewProducer(ctx, c.Config, logger)
}

func (c rabbitmqConfig) openConsumer(ctx context.Context, opts broker.ConsumerOptions) (broker.Consumer, error) {
	return rabbitmq.NewConsumer(ctx, c.Config, opts, logger)
}

type sqsConfig struct{ *sqs.Config }

func (c sqsConfig) openProducer(ctx context.Context) (broker.Producer, error) {
	return sqs.NewProducer(ctx, c.Config, logger)
}

func (c sqsConfig) openConsumer(ctx context.Context, opts broker.ConsumerOptions) (broker.Consumer, error) {
	return sqs.NewConsumer(ctx, c.Config, opts, logger)
}

// parseConfig parses a config of the named kind: "kafka", "rabbitmq" or "sqs".
func parseConfig(kind string, data []byte) (clientConfig, error) {
	switch kind {
	case "kafka":
		c, err := kafka.ParseConfig(data)
		if err != nil {
			return nil, err
		}
		return kafkaConfig{c}, nil
	case "rabbitmq":
		c, err := rabbitmq.ParseConfig(data)
		if err != nil {
			return nil, err
		}
		return rabbitmqConfig{c}, nil
	case "sqs":
		c, err := sqs.ParseConfig(data)
		if err != nil {
			return nil, err
		}
		return sqsConfig{c}, nil
	}
	return nil, fmt.Errorf("%w: unknown broker kind %q, expected kafka, rabbitmq or sqs", broker.ErrInvalidArgument, kind)
}
