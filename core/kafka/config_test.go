package kafka

import (
	"errors"
	"strings"
	"testing"

	"github.com/cello-framework/cello/core/broker"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"brokers": "a:9092, b:9093"}`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Brokers, ",") != "a:9092,b:9093" || c.GroupID != "cello" || !c.AutoCommit ||
		c.SessionTimeoutMs != 30000 || c.MaxPollRecords != 500 || c.Acks != "all" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	m := c.consumerMap("g", true)
	if m["enable.auto.offset.store"] != false {
		t.Fatal("offsets must be stored only after handling")
	}
}

func TestParseConfigRejects(t *testing.T) {
	cases := map[string]string{
		`{}`:                            "brokers is required",
		`{"brokers": "x"}`:              `"x" must be host:port`,
		`{"brokers": "http://x:9092"}`:  `has scheme "http"`,
		`{"brokers": "x:9092/path"}`:    `must be host:port`,
		`{"brokers": "x:1", "y": 1}`:    `has no field "y"`,
		`{"brokers": "x:1", "acks": 2}`: `acks must be one of`,
	}
	for in, want := range cases {
		_, err := ParseConfig([]byte(in))
		if !errors.Is(err, broker.ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: err = %v, want %q", in, err, want)
		}
	}
}

func TestDescribeHidesSecrets(t *testing.T) {
	c, err := ParseConfig([]byte(`{"brokers": "x:1", "security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
		"sasl_username": "u", "sasl_password": "pw-123", "extra": {"ssl.key.password": "pw-456", "linger.ms": 5}}`))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Describe()
	if strings.Contains(d, "pw-123") || strings.Contains(d, "pw-456") {
		t.Fatalf("Describe leaks a secret: %s", d)
	}
	if !strings.Contains(d, "linger.ms=5") {
		t.Fatalf("Describe lost a plain property: %s", d)
	}
}

func TestCheckTopic(t *testing.T) {
	for _, ok := range []string{"orders", "a.b_c-D9", strings.Repeat("x", 249)} {
		if err := checkTopic(ok); err != nil {
			t.Fatalf("checkTopic(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "x\x00suffix", "has space", "é", strings.Repeat("x", 250)} {
		if err := checkTopic(bad); !errors.Is(err, broker.ErrInvalidArgument) {
			t.Fatalf("checkTopic(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestBrokersAcceptSecurityProtocolScheme(t *testing.T) {
	c, err := ParseConfig([]byte(`{"brokers": "SSL://a:9093,sasl_plaintext://b:9094"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.producerMap()["bootstrap.servers"]; got != "SSL://a:9093,sasl_plaintext://b:9094" {
		t.Fatalf("bootstrap.servers = %v, want the entries as given", got)
	}
}
