package rabbitmq

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cello-framework/cello/core/broker"
)

// secret is the password in test URLs; no error or description may show it.
const secret = "s3cretPW"

func mustJSON(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	data, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Scheme", c.Scheme, "amqp"},
		{"Host", c.Host, "localhost"},
		{"Port", c.Port, 5672},
		{"Username", c.Username, "guest"},
		{"Vhost", c.Vhost, "/"},
		{"PrefetchCount", c.PrefetchCount, 10},
		{"Heartbeat", c.Heartbeat, 60 * time.Second},
		{"ConnectionTimeout", c.ConnectionTimeout, 10 * time.Second},
		{"Exchange", c.Exchange, ""},
		{"TLSInsecureSkipVerify", c.TLSInsecureSkipVerify, false},
		{"SendTimeout", c.SendTimeout, 30 * time.Second},
		{"MaxMessageBytes", c.MaxMessageBytes, 134217728},
	}
	for _, check := range checks {
		if check.got != check.want {
			t.Errorf("%s = %v, want %v", check.name, check.got, check.want)
		}
	}
	if c.tlsConfig != nil {
		t.Error("an amqp:// url must not build a TLS config")
	}
}

func TestParseConfigAcceptsPythonNulls(t *testing.T) {
	data := `{"url": "amqp://guest:guest@localhost:5672", "vhost": "/", "prefetch_count": 10, "heartbeat": 60,
		"exchange": "", "connection_timeout_ms": 10000, "send_timeout_ms": 30000, "tls_ca_file": null,
		"tls_cert_file": null, "tls_key_file": null, "tls_insecure_skip_verify": false}`
	if _, err := ParseConfig([]byte(data)); err != nil {
		t.Fatalf("the fields RabbitMQConfig sends by default were rejected: %v", err)
	}
}

func TestParseConfigFields(t *testing.T) {
	c, err := ParseConfig(mustJSON(t, map[string]any{
		"url":                   "amqps://app:" + secret + "@mq.example:5999",
		"prefetch_count":        65535,
		"heartbeat":             0,
		"connection_timeout_ms": 250,
		"exchange":              "events",
		"send_timeout_ms":       1500,
		"max_message_bytes":     1024,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Scheme != "amqps" || c.Host != "mq.example" || c.Port != 5999 {
		t.Errorf("scheme, host, port = %s, %s, %d", c.Scheme, c.Host, c.Port)
	}
	if c.Username != "app" || c.password != secret {
		t.Errorf("credentials = %q, %q", c.Username, c.password)
	}
	if c.PrefetchCount != 65535 || c.Heartbeat != 0 || c.ConnectionTimeout != 250*time.Millisecond {
		t.Errorf("prefetch, heartbeat, timeout = %d, %v, %v", c.PrefetchCount, c.Heartbeat, c.ConnectionTimeout)
	}
	if c.Exchange != "events" || c.SendTimeout != 1500*time.Millisecond || c.MaxMessageBytes != 1024 {
		t.Errorf("exchange, send timeout, max bytes = %q, %v, %d", c.Exchange, c.SendTimeout, c.MaxMessageBytes)
	}
	if c.tlsConfig == nil || c.tlsConfig.ServerName != "mq.example" {
		t.Errorf("amqps url: TLS config %+v, want ServerName mq.example", c.tlsConfig)
	}
}

func TestParseConfigDefaultPortPerScheme(t *testing.T) {
	for url, want := range map[string]int{"amqp://h": 5672, "amqps://h": 5671, "amqp://h:1": 1, "amqp://[::1]:5673": 5673} {
		c, err := ParseConfig(mustJSON(t, map[string]any{"url": url}))
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if c.Port != want {
			t.Errorf("%s: port %d, want %d", url, c.Port, want)
		}
	}
}

func TestVhostFieldWinsOverURLPath(t *testing.T) {
	cases := []struct {
		url   string
		vhost any
		want  string
	}{
		{"amqp://h", nil, "/"},
		{"amqp://h/", nil, "/"},
		{"amqp://h/prod", nil, "prod"},
		{"amqp://h/%2F", nil, "/"},
		{"amqp://h/prod", "staging", "staging"},
		{"amqp://h/prod", "/", "/"},
	}
	for _, tc := range cases {
		c, err := ParseConfig(mustJSON(t, map[string]any{"url": tc.url, "vhost": tc.vhost}))
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if c.Vhost != tc.want {
			t.Errorf("url %s, vhost %v: Vhost = %q, want %q", tc.url, tc.vhost, c.Vhost, tc.want)
		}
	}
}

func TestParseConfigErrorsNameField(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := "amqp://u:" + secret + "@localhost:5672/"
	goodTLS := "amqps://u:" + secret + "@localhost:5671/"
	cases := []struct {
		fields map[string]any
		want   string
	}{
		{map[string]any{"url": 5}, "RabbitMQConfig.url must be a string"},
		{map[string]any{"url": "http://u:" + secret + "@h"}, "RabbitMQConfig.url must start with amqp:// or amqps://"},
		{map[string]any{"url": "amqp://u:" + secret + "@h:99999"}, "RabbitMQConfig.url must have a port from 1 to 65535"},
		{map[string]any{"url": "amqp://u:" + secret + "@h:0"}, "RabbitMQConfig.url must have a port from 1 to 65535"},
		{map[string]any{"url": "amqp://u:" + secret + "@h:abc"}, "RabbitMQConfig.url is not a valid URL"},
		{map[string]any{"url": "amqp://u:" + secret + "@:5672"}, "RabbitMQConfig.url must name a host"},
		{map[string]any{"url": "amqp://u:" + secret + "@h?heartbeat=5"}, "RabbitMQConfig.url must have no query parameters (found heartbeat)"},
		{map[string]any{"url": "amqp://u:" + secret + "@h#x"}, "RabbitMQConfig.url must have no #fragment"},
		{map[string]any{"url": "amqp://u:" + secret + " x@h"}, "RabbitMQConfig.url must not contain whitespace"},
		{map[string]any{"url": "amqp://u:" + secret + "%zz@h"}, "RabbitMQConfig.url is not a valid URL"},
		{map[string]any{"url": "u:" + secret + "@h"}, "RabbitMQConfig.url"},
		{map[string]any{"url": good, "vhost": ""}, "RabbitMQConfig.vhost must be a non-empty string"},
		{map[string]any{"url": good, "vhost": 1}, "RabbitMQConfig.vhost must be a string"},
		{map[string]any{"url": good, "prefetch_count": 0}, "RabbitMQConfig.prefetch_count must be an integer from 1 to 65535, got 0"},
		{map[string]any{"url": good, "prefetch_count": 65536}, "RabbitMQConfig.prefetch_count must be an integer from 1 to 65535"},
		{map[string]any{"url": good, "prefetch_count": "10"}, "RabbitMQConfig.prefetch_count must be an integer"},
		{map[string]any{"url": good, "heartbeat": -1}, "RabbitMQConfig.heartbeat must be an integer from 0 to 3600, got -1"},
		{map[string]any{"url": good, "heartbeat": 3601}, "RabbitMQConfig.heartbeat must be an integer from 0 to 3600"},
		{map[string]any{"url": good, "connection_timeout_ms": 0}, "RabbitMQConfig.connection_timeout_ms must be an integer"},
		{map[string]any{"url": good, "exchange": 3}, "RabbitMQConfig.exchange must be a string"},
		{map[string]any{"url": good, "exchange": strings.Repeat("e", 256)}, "RabbitMQConfig.exchange must be at most 255 bytes"},
		{map[string]any{"url": good, "send_timeout_ms": 0}, "RabbitMQConfig.send_timeout_ms must be an integer"},
		{map[string]any{"url": good, "max_message_bytes": 0}, "RabbitMQConfig.max_message_bytes must be an integer from 1 to 536870912"},
		{map[string]any{"url": good, "tls_insecure_skip_verify": "yes"}, "RabbitMQConfig.tls_insecure_skip_verify must be true or false"},
		{map[string]any{"url": good, "tls_ca_file": notPEM}, "RabbitMQConfig.tls_ca_file needs an amqps:// url"},
		{map[string]any{"url": good, "tls_insecure_skip_verify": true}, "RabbitMQConfig.tls_insecure_skip_verify needs an amqps:// url"},
		{map[string]any{"url": goodTLS, "tls_ca_file": ""}, "RabbitMQConfig.tls_ca_file must be a non-empty string"},
		{map[string]any{"url": goodTLS, "tls_ca_file": missing}, "RabbitMQConfig.tls_ca_file \"" + missing + "\" cannot be read"},
		{map[string]any{"url": goodTLS, "tls_ca_file": notPEM}, "RabbitMQConfig.tls_ca_file \"" + notPEM + "\" contains no PEM certificate"},
		{map[string]any{"url": goodTLS, "tls_cert_file": notPEM}, "RabbitMQConfig.tls_cert_file and tls_key_file must be given together"},
		{map[string]any{"url": goodTLS, "tls_key_file": notPEM}, "RabbitMQConfig.tls_cert_file and tls_key_file must be given together"},
		{map[string]any{"url": goodTLS, "tls_cert_file": missing, "tls_key_file": notPEM}, "RabbitMQConfig.tls_cert_file \"" + missing + "\" cannot be read"},
		{map[string]any{"url": goodTLS, "tls_cert_file": notPEM, "tls_key_file": missing}, "RabbitMQConfig.tls_key_file \"" + missing + "\" cannot be read"},
		{map[string]any{"url": goodTLS, "tls_cert_file": notPEM, "tls_key_file": notPEM}, "RabbitMQConfig.tls_cert_file \"" + notPEM + "\" and tls_key_file"},
		{map[string]any{"url": good, "prefetch": 5}, `RabbitMQConfig has no field "prefetch"`},
	}
	for _, tc := range cases {
		_, err := ParseConfig(mustJSON(t, tc.fields))
		if err == nil {
			t.Errorf("%v: no error, want one containing %q", tc.fields, tc.want)
			continue
		}
		if !errors.Is(err, broker.ErrConfig) {
			t.Errorf("%v: error %q does not wrap ErrConfig", tc.fields, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %q does not contain %q", tc.fields, err, tc.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%v: error %q shows the password", tc.fields, err)
		}
	}
}

func TestParseConfigRejectsNonObject(t *testing.T) {
	_, err := ParseConfig([]byte(`[1]`))
	if !errors.Is(err, broker.ErrConfig) || !strings.Contains(err.Error(), "RabbitMQConfig is not a JSON object") {
		t.Fatalf("err = %v, want ErrConfig naming RabbitMQConfig", err)
	}
}

func TestURLErrorShowsRedactedURL(t *testing.T) {
	_, err := ParseConfig(mustJSON(t, map[string]any{"url": "amqp://app:" + secret + "@h:99999/v"}))
	if err == nil || !strings.Contains(err.Error(), `"amqp://app:***@h:99999/v"`) {
		t.Fatalf("err = %v, want the URL with the password as ***", err)
	}
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"amqp://u:" + secret + "@h:5672/v":   "amqp://u:***@h:5672/v",
		"amqp://u:a@b:" + secret + "@h/v":    "amqp://u:***@h/v",
		"amqp://u@h":                         "amqp://u@h",
		"amqp://h:5672/v@x":                  "amqp://h:5672/v@x",
		"amqp://u:" + secret + "@h?x=1#frag": "amqp://u:***@h?x=1#frag",
		"u:" + secret + "@h":                 "u:***@h",
		"u:" + secret + "/x@h":               "***@h",
		"no-at-sign":                         "no-at-sign",
	}
	for in, want := range cases {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDescribeHidesPassword(t *testing.T) {
	c, err := ParseConfig(mustJSON(t, map[string]any{
		"url": "amqp://app:" + secret + "@mq.local:5673/prod", "prefetch_count": 7, "heartbeat": 30, "exchange": "ex",
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Describe()
	want := "url=amqp://app:***@mq.local:5673 vhost=prod prefetch_count=7 heartbeat=30 exchange=ex"
	if got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	if strings.Contains(got, secret) {
		t.Errorf("Describe() %q shows the password", got)
	}
}

func TestDialURLProposesZeroHeartbeat(t *testing.T) {
	c, err := ParseConfig(mustJSON(t, map[string]any{"url": "amqp://u:" + secret + "@h:1234/v", "heartbeat": 0}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.dialURL(), "amqp://h:1234/?heartbeat=0"; got != want {
		t.Errorf("dialURL() = %q, want %q", got, want)
	}
	c.Heartbeat = time.Second
	if got := c.dialURL(); strings.Contains(got, "heartbeat") || strings.Contains(got, secret) {
		t.Errorf("dialURL() = %q, want no heartbeat parameter and no password", got)
	}
}

func TestParseConfigLoadsTLSFiles(t *testing.T) {
	ca, cert, key := writeTestCertificate(t)
	c, err := ParseConfig(mustJSON(t, map[string]any{
		"url": "amqps://u:" + secret + "@localhost", "tls_ca_file": ca, "tls_cert_file": cert, "tls_key_file": key,
		"tls_insecure_skip_verify": true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.tlsConfig.RootCAs == nil {
		t.Error("RootCAs not set from tls_ca_file")
	}
	if len(c.tlsConfig.Certificates) != 1 {
		t.Errorf("%d client certificates, want 1", len(c.tlsConfig.Certificates))
	}
	if !c.tlsConfig.InsecureSkipVerify {
		t.Error("InsecureSkipVerify not set from tls_insecure_skip_verify")
	}
	if !strings.Contains(c.Describe(), "tls_insecure_skip_verify=true") {
		t.Errorf("Describe() = %q, want it to show that verification is off", c.Describe())
	}
}

// writeTestCertificate writes a self-signed certificate, usable as CA and
// as client certificate, and its key; it returns their paths.
func writeTestCertificate(t *testing.T) (ca, cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cert = filepath.Join(dir, "cert.pem")
	key = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, cert, key
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 3: time.Second, 5: 4 * time.Second, 6: 5 * time.Second, 50: 5 * time.Second} {
		for range 20 {
			got := backoff(n)
			if got < want*8/10 || got > want*12/10 {
				t.Fatalf("backoff(%d) = %v, want %v ±20%%", n, got, want)
			}
		}
	}
}

// recordingLogger keeps every log record for inspection.
type recordingLogger struct {
	mu      sync.Mutex
	records []string
}

func (l *recordingLogger) Log(level broker.Level, component, message string, fields ...broker.Field) {
	var b strings.Builder
	b.WriteString(component + " " + message)
	for _, f := range fields {
		b.WriteString(" " + f.Key + "=" + f.Value)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, levelName(level)+" "+b.String())
}

func levelName(level broker.Level) string {
	switch level {
	case broker.LevelDebug:
		return "DEBUG"
	case broker.LevelInfo:
		return "INFO"
	case broker.LevelWarning:
		return "WARNING"
	}
	return "ERROR"
}

// find returns the records that contain every part.
func (l *recordingLogger) find(parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(r, p)
		}
		if all {
			out = append(out, r)
		}
	}
	return out
}

func (l *recordingLogger) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.records...)
}

func TestNewProducerUnreachableBroker(t *testing.T) {
	// Nothing listens on port 1 of the loopback address.
	cfg, err := ParseConfig(mustJSON(t, map[string]any{"url": "amqp://app:" + secret + "@127.0.0.1:1/", "connection_timeout_ms": 2000}))
	if err != nil {
		t.Fatal(err)
	}
	log := &recordingLogger{}
	start := time.Now()
	_, err = NewProducer(context.Background(), cfg, log)
	if !errors.Is(err, broker.ErrConnection) {
		t.Fatalf("err = %v, want ErrConnection", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q does not name the address", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q shows the password", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v for a refused connection", elapsed)
	}
	for _, r := range log.all() {
		if strings.Contains(r, secret) {
			t.Errorf("log record %q shows the password", r)
		}
	}
}

func TestNewConsumerDialBoundedByContext(t *testing.T) {
	cfg, err := ParseConfig(mustJSON(t, map[string]any{"url": "amqp://127.0.0.1:1/"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = NewConsumer(ctx, cfg, broker.ConsumerOptions{}, nil)
	if !errors.Is(err, broker.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout for a cancelled context", err)
	}
}
