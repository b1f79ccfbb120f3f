// Package kafka connects the core's Producer and Consumer interfaces to
// Apache Kafka through confluent-kafka-go, which wraps librdkafka. Build it
// with -tags dynamic so it links Debian's shared librdkafka: the static copy
// bundled with newer releases cannot be loaded into CPython.
package kafka

import (
	"fmt"
	"sort"
	"strings"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/cello-framework/cello/core/broker"
)

// Config is a validated Kafka configuration.
type Config struct {
	Brokers          []string
	GroupID          string
	ClientID         string
	AutoCommit       bool
	SessionTimeoutMs int
	MaxPollRecords   int
	SecurityProtocol string
	SASLMechanism    string
	SASLUsername     string
	saslPassword     string
	SSLCAFile        string
	SSLCertFile      string
	SSLKeyFile       string
	Acks             string
	Compression      string
	AutoOffsetReset  string
	ConnectTimeoutMs int
	SendTimeoutMs    int
	// Extra holds librdkafka properties passed through unchanged; they win
	// over the fields above.
	Extra map[string]string
}

// isSecretProperty reports whether Describe must hide a librdkafka
// property's value: passwords, secrets, keys and tokens.
func isSecretProperty(name string) bool {
	for _, word := range []string{"password", "secret", "token", "key.pem", "jaas"} {
		if strings.Contains(name, word) {
			return true
		}
	}
	return false
}

// ParseConfig validates a KafkaConfig sent from Python as a JSON object.
func ParseConfig(data []byte) (*Config, error) {
	f, err := broker.ParseFields("KafkaConfig", data)
	if err != nil {
		return nil, err
	}
	c := &Config{}
	steps := []func() error{
		func() (err error) { c.Brokers, err = f.StringList("brokers"); return },
		func() (err error) { c.GroupID, err = f.String("group_id", "cello", true); return },
		func() (err error) { c.ClientID, err = f.String("client_id", "cello", true); return },
		func() (err error) { c.AutoCommit, err = f.Bool("auto_commit", true); return },
		func() error {
			v, err := f.Int("session_timeout_ms", 30000, 1000, 3_600_000)
			c.SessionTimeoutMs = int(v)
			return err
		},
		func() error {
			v, err := f.Int("max_poll_records", 500, 1, 100_000)
			c.MaxPollRecords = int(v)
			return err
		},
		func() (err error) {
			c.SecurityProtocol, err = f.Choice("security_protocol", "PLAINTEXT", "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
			return
		},
		func() (err error) {
			c.SASLMechanism, err = f.Choice("sasl_mechanism", "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")
			return
		},
		func() (err error) { c.SASLUsername, err = f.String("sasl_username", "", false); return },
		func() (err error) { c.saslPassword, err = f.Secret("sasl_password"); return },
		func() (err error) { c.SSLCAFile, err = f.String("ssl_ca_location", "", true); return },
		func() (err error) { c.SSLCertFile, err = f.String("ssl_certificate_location", "", true); return },
		func() (err error) { c.SSLKeyFile, err = f.String("ssl_key_location", "", true); return },
		func() (err error) { c.Acks, err = f.Choice("acks", "all", "all", "0", "1"); return },
		func() (err error) {
			c.Compression, err = f.Choice("compression", "none", "none", "gzip", "snappy", "lz4", "zstd")
			return
		},
		func() (err error) {
			c.AutoOffsetReset, err = f.Choice("auto_offset_reset", "earliest", "earliest", "latest", "error")
			return
		},
		func() error {
			v, err := f.Int("connect_timeout_ms", 10000, 100, 600_000)
			c.ConnectTimeoutMs = int(v)
			return err
		},
		func() error {
			v, err := f.Int("send_timeout_ms", 30000, 1, 3_600_000)
			c.SendTimeoutMs = int(v)
			return err
		},
		func() (err error) { c.Extra, err = f.StringMap("extra"); return },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := f.Unknown(); err != nil {
		return nil, err
	}
	return c, c.check()
}

// check validates the rules that involve more than one field.
func (c *Config) check() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf(`%w: KafkaConfig.brokers is required, such as "localhost:9092"`, broker.ErrConfig)
	}
	for _, b := range c.Brokers {
		if err := checkHostPort(b); err != nil {
			return err
		}
	}
	sasl := strings.HasPrefix(c.SecurityProtocol, "SASL_")
	if sasl && c.SASLMechanism == "" {
		return fmt.Errorf("%w: KafkaConfig.sasl_mechanism is required when security_protocol is %s", broker.ErrConfig, c.SecurityProtocol)
	}
	if !sasl && c.SASLMechanism != "" {
		return fmt.Errorf("%w: KafkaConfig.sasl_mechanism needs security_protocol SASL_PLAINTEXT or SASL_SSL, got %s", broker.ErrConfig, c.SecurityProtocol)
	}
	if (c.SASLMechanism == "PLAIN" || strings.HasPrefix(c.SASLMechanism, "SCRAM")) && (c.SASLUsername == "" || c.saslPassword == "") {
		return fmt.Errorf("%w: KafkaConfig.sasl_username and sasl_password are required for sasl_mechanism %s", broker.ErrConfig, c.SASLMechanism)
	}
	if (c.SSLCertFile == "") != (c.SSLKeyFile == "") {
		return fmt.Errorf("%w: KafkaConfig.ssl_certificate_location and ssl_key_location must be given together", broker.ErrConfig)
	}
	return nil
}

func checkHostPort(b string) error {
	hostPort := b
	if scheme, rest, found := strings.Cut(b, "://"); found {
		// librdkafka accepts a security protocol as the scheme, and no other.
		switch strings.ToLower(scheme) {
		case "plaintext", "ssl", "sasl_plaintext", "sasl_ssl":
			hostPort = rest
		default:
			return fmt.Errorf("%w: KafkaConfig.brokers entry %q has scheme %q; use host:port, such as \"localhost:9092\", "+
				"optionally after plaintext://, ssl://, sasl_plaintext:// or sasl_ssl://", broker.ErrConfig, b, scheme)
		}
	}
	if strings.ContainsAny(hostPort, "/ \t") {
		return fmt.Errorf("%w: KafkaConfig.brokers entry %q must be host:port, such as \"localhost:9092\"", broker.ErrConfig, b)
	}
	i := strings.LastIndex(hostPort, ":")
	if i <= 0 || i == len(hostPort)-1 {
		return fmt.Errorf("%w: KafkaConfig.brokers entry %q must be host:port, such as \"localhost:9092\"", broker.ErrConfig, b)
	}
	port := hostPort[i+1:]
	n := 0
	for _, r := range port {
		if r < '0' || r > '9' {
			n = -1
			break
		}
		n = n*10 + int(r-'0')
		if n > 65535 {
			break
		}
	}
	if n < 1 || n > 65535 {
		return fmt.Errorf("%w: KafkaConfig.brokers entry %q has port %q, expected 1 to 65535", broker.ErrConfig, b, port)
	}
	return nil
}

// common returns the librdkafka properties shared by producers and consumers.
func (c *Config) common() ck.ConfigMap {
	m := ck.ConfigMap{
		"bootstrap.servers":    strings.Join(c.Brokers, ","),
		"client.id":            c.ClientID,
		"security.protocol":    strings.ToLower(c.SecurityProtocol),
		"socket.timeout.ms":    c.ConnectTimeoutMs,
		"log.connection.close": false,
		// Small requests, such as one awaited send, leave at once rather
		// than after Nagle's wait for the previous segment's ACK.
		"socket.nagle.disable": true,
		// librdkafka's own log lines go to the Logs channel and on to the
		// core's logger, instead of straight to the process's stderr.
		"go.logs.channel.enable": true,
	}
	if c.SASLMechanism != "" {
		m["sasl.mechanism"] = c.SASLMechanism
	}
	if c.SASLUsername != "" {
		m["sasl.username"] = c.SASLUsername
		m["sasl.password"] = c.saslPassword
	}
	if c.SSLCAFile != "" {
		m["ssl.ca.location"] = c.SSLCAFile
	}
	if c.SSLCertFile != "" {
		m["ssl.certificate.location"] = c.SSLCertFile
		m["ssl.key.location"] = c.SSLKeyFile
	}
	return m
}

func (c *Config) withExtra(m ck.ConfigMap) ck.ConfigMap {
	for k, v := range c.Extra {
		m[k] = v
	}
	return m
}

func (c *Config) producerMap() ck.ConfigMap {
	m := c.common()
	m["acks"] = c.Acks
	m["compression.type"] = c.Compression
	m["enable.idempotence"] = c.Acks == "all"
	m["message.timeout.ms"] = c.SendTimeoutMs
	m["go.delivery.reports"] = true
	// Delivery reports need only partition, offset and error; copying each
	// record's key and value back into Go would double the memory traffic.
	m["go.delivery.report.fields"] = "none"
	// librdkafka waits 5 ms by default for more records before it sends,
	// which held one awaited send to about 150 a second here. Batches still
	// go out in large requests without the wait, because records queue up
	// while the previous request is in flight. extra can set it back.
	// NOTE: one setting serves both kinds of send, so batches of large
	// values go out in smaller requests and ran at about 0.8x of
	// confluent-kafka's throughput at 10 KiB, against 1.0x with 5 ms.
	m["linger.ms"] = 0
	// confluent-kafka-go's default channels hold a million entries each,
	// 24 MB of pointers that the Go collector scans in every cycle. The
	// produce channel is unused here; the events channel only has to cover
	// the delivery reports that arrive while readEvents is busy.
	m["go.events.channel.size"] = 10000
	m["go.produce.channel.size"] = 1
	return c.withExtra(m)
}

func (c *Config) consumerMap(group string, autoCommit bool) ck.ConfigMap {
	m := c.common()
	m["group.id"] = group
	m["session.timeout.ms"] = c.SessionTimeoutMs
	m["auto.offset.reset"] = c.AutoOffsetReset
	m["enable.auto.commit"] = autoCommit
	// Commit stored offsets every second rather than librdkafka's 5 s, so a
	// crashed consumer repeats at most about a second of handled records.
	m["auto.commit.interval.ms"] = 1000
	// Offsets are stored only after the handler finished, never by librdkafka
	// when it hands out a message, so auto-commit never commits unhandled work.
	m["enable.auto.offset.store"] = false
	// A subscription to a topic that does not exist yet creates it where
	// the broker allows, as a producer's first record would.
	m["allow.auto.create.topics"] = true
	// librdkafka's default of 5 minutes would leave a consumer idle that
	// long after a subscribed topic is created; metadata every 5 s is cheap.
	m["topic.metadata.refresh.interval.ms"] = 5000
	return c.withExtra(m)
}

// Describe returns a one-line summary for logs and repr, with every secret
// replaced by "***".
func (c *Config) Describe() string {
	parts := []string{
		"brokers=" + strings.Join(c.Brokers, ","),
		"group_id=" + c.GroupID,
		"client_id=" + c.ClientID,
		fmt.Sprintf("auto_commit=%t", c.AutoCommit),
		"security_protocol=" + c.SecurityProtocol,
	}
	if c.SASLUsername != "" {
		parts = append(parts, "sasl_username="+c.SASLUsername, "sasl_password=***")
	}
	keys := make([]string, 0, len(c.Extra))
	for k := range c.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.Extra[k]
		if isSecretProperty(k) {
			v = "***"
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}

// checkTopic applies Kafka's rules for topic names: 1 to 249 characters of
// ASCII letters, digits, '.', '_' and '-', and neither "." nor "..".
// Checking here gives a clear error before librdkafka, which would cut a
// name at a NUL byte or report an invalid one only later, as a retriable
// delivery failure.
func checkTopic(topic string) error {
	if topic == "" || len(topic) > 249 || topic == "." || topic == ".." {
		return fmt.Errorf("%w: kafka topic name %q must be 1 to 249 characters and not \".\" or \"..\"", broker.ErrInvalidArgument, topic)
	}
	for _, r := range topic {
		ok := r == '.' || r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("%w: kafka topic name %q contains %q; use ASCII letters, digits, '.', '_' and '-'",
				broker.ErrInvalidArgument, topic, r)
		}
	}
	return nil
}
