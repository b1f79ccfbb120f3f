package kafka

import (
	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/cello-framework/cello/core/broker"
)

// forwardLogs passes librdkafka's log lines to the core's logger until the
// client is closed, which closes the channel. librdkafka also reports the
// conditions that matter as error events, which the clients log as
// warnings, so its own lines go out at debug level unless they are severe.
func forwardLogs(logs chan ck.LogEvent, log broker.Logger, brokers string) {
	for ev := range logs {
		level := broker.LevelDebug
		if ev.Level <= 2 { // syslog critical and worse
			level = broker.LevelError
		}
		log.Log(level, "kafka", "librdkafka "+ev.Tag+": "+ev.Message, broker.F("broker", brokers))
	}
}
