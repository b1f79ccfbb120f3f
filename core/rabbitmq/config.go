package rabbitmq

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cello-framework/cello/core/broker"
)

// configName is the Python class name that configuration errors mention.
const configName = "RabbitMQConfig"

// defaultMaxMessageBytes is RabbitMQ's default max_message_size since 3.8
// (128 MiB).
// NOTE: the broker does not announce its limit over AMQP, so with a broker
// configured lower Send finds out only when the broker closes the channel.
const defaultMaxMessageBytes = 128 << 20

// brokerMaxMessageBytes is the largest max_message_size RabbitMQ accepts
// (512 MiB).
const brokerMaxMessageBytes = 512 << 20

// Config is a validated RabbitMQ configuration. The password from the URL is
// kept unexported and never appears in Describe or in an error.
type Config struct {
	// Scheme is "amqp" or "amqps".
	Scheme string
	Host   string
	Port   int
	// Username is the user from the URL. A URL without credentials logs in
	// as guest with password guest, like other AMQP clients.
	Username string
	password string
	// Vhost is the virtual host: the vhost field when it is given, else the
	// path of the URL, else "/".
	Vhost         string
	PrefetchCount int
	// Heartbeat is the interval this client proposes. With 0 the broker's
	// proposal applies, because AMQP takes the smaller non-zero value.
	Heartbeat         time.Duration
	ConnectionTimeout time.Duration
	// Exchange is the exchange that producers publish to. The default
	// exchange "" routes a message to the queue named by its routing key.
	Exchange              string
	TLSCAFile             string
	TLSCertFile           string
	TLSKeyFile            string
	TLSInsecureSkipVerify bool
	// SendTimeout bounds how long Send waits for confirms, including the
	// time spent waiting for a lost connection to come back.
	SendTimeout time.Duration
	// MaxMessageBytes is the largest message body Send accepts.
	MaxMessageBytes int

	// tlsConfig is built once by ParseConfig for amqps URLs, so a bad
	// certificate is reported with the config and not at the first dial.
	tlsConfig *tls.Config
}

// ParseConfig validates a RabbitMQConfig sent from Python as a JSON object.
func ParseConfig(data []byte) (*Config, error) {
	f, err := broker.ParseFields(configName, data)
	if err != nil {
		return nil, err
	}
	c := &Config{}
	var rawURL, vhost string
	var heartbeat, connectTimeout, sendTimeout int64
	steps := []func() error{
		func() (err error) { rawURL, err = f.Secret("url"); return },
		func() (err error) { vhost, err = f.String("vhost", "", true); return },
		func() error {
			v, err := f.Int("prefetch_count", 10, 1, 65535)
			c.PrefetchCount = int(v)
			return err
		},
		func() (err error) { heartbeat, err = f.Int("heartbeat", 60, 0, 3600); return },
		func() (err error) { connectTimeout, err = f.Int("connection_timeout_ms", 10000, 100, 600_000); return },
		func() (err error) { c.Exchange, err = f.String("exchange", "", false); return },
		func() (err error) { c.TLSCAFile, err = f.String("tls_ca_file", "", true); return },
		func() (err error) { c.TLSCertFile, err = f.String("tls_cert_file", "", true); return },
		func() (err error) { c.TLSKeyFile, err = f.String("tls_key_file", "", true); return },
		func() (err error) { c.TLSInsecureSkipVerify, err = f.Bool("tls_insecure_skip_verify", false); return },
		func() (err error) { sendTimeout, err = f.Int("send_timeout_ms", 30000, 1, 3_600_000); return },
		func() error {
			v, err := f.Int("max_message_bytes", defaultMaxMessageBytes, 1, brokerMaxMessageBytes)
			c.MaxMessageBytes = int(v)
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := f.Unknown(); err != nil {
		return nil, err
	}

	c.Heartbeat = time.Duration(heartbeat) * time.Second
	c.ConnectionTimeout = time.Duration(connectTimeout) * time.Millisecond
	c.SendTimeout = time.Duration(sendTimeout) * time.Millisecond

	if _, given := f.Present("url"); !given {
		rawURL = "amqp://localhost"
	} else if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("%w: %s.url must be an amqp:// or amqps:// URL, got an empty string", broker.ErrConfig, configName)
	}
	urlVhost, err := c.parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	// An explicit vhost field wins over the URL's path, so a config can
	// reuse one URL for several virtual hosts.
	switch {
	case vhost != "":
		c.Vhost = vhost
	case urlVhost != "":
		c.Vhost = urlVhost
	default:
		c.Vhost = "/"
	}
	if err := c.checkExchange(); err != nil {
		return nil, err
	}
	if err := c.loadTLS(); err != nil {
		return nil, err
	}
	return c, nil
}

// parseURL fills Scheme, Host, Port and the credentials from rawURL and
// returns the vhost named by its path, or "" when it has none. Messages show
// the URL with its password replaced by "***".
func (c *Config) parseURL(rawURL string) (string, error) {
	redacted := redactURL(rawURL)
	fail := func(problem string) error {
		return fmt.Errorf(`%w: %s.url %s, such as "amqp://user:password@localhost:5672/vhost", got %q`,
			broker.ErrConfig, configName, problem, redacted)
	}

	if strings.ContainsAny(rawURL, " \t\r\n") {
		return "", fail("must not contain whitespace")
	}

	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password included, so only its
		// shape is reported.
		return "", fail("is not a valid URL")
	}
	switch u.Scheme {
	case "amqp", "amqps":
		c.Scheme = u.Scheme
	default:
		return "", fail("must start with amqp:// or amqps://")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return "", fail("must name a host")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return "", fail(fmt.Sprintf("must have no query parameters (found %s); use the fields heartbeat, "+
			"connection_timeout_ms and tls_* instead", queryNames(u)))
	}
	if u.Fragment != "" {
		return "", fail("must have no #fragment")
	}

	c.Host = u.Hostname()
	c.Port = 5672
	if c.Scheme == "amqps" {
		c.Port = 5671
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", fail(fmt.Sprintf("must have a port from 1 to 65535, not %q", p))
		}
		c.Port = n
	}
	c.Username, c.password = "guest", "guest"
	if u.User != nil {
		c.Username = u.User.Username()
		c.password, _ = u.User.Password()
	}
	// "amqp://host" and "amqp://host/" both mean the default vhost, as in
	// amqp091-go; "/%2F" names the vhost "/".
	if len(u.Path) > 1 {
		return u.Path[1:], nil
	}
	return "", nil
}

// queryNames lists the parameter names of u's query, without their values.
func queryNames(u *url.URL) string {
	var names []string
	for name := range u.Query() {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "an empty query"
	}
	return strings.Join(names, ", ")
}

func (c *Config) checkExchange() error {
	if len(c.Exchange) > 255 {
		return fmt.Errorf("%w: %s.exchange must be at most 255 bytes, got %d bytes",
			broker.ErrConfig, configName, len(c.Exchange))
	}
	return nil
}

// loadTLS checks the tls_* fields against the scheme and builds the TLS
// configuration of an amqps URL.
func (c *Config) loadTLS() error {
	if c.Scheme != "amqps" {
		fields := []struct {
			name string
			set  bool
		}{
			{"tls_ca_file", c.TLSCAFile != ""},
			{"tls_cert_file", c.TLSCertFile != ""},
			{"tls_key_file", c.TLSKeyFile != ""},
			{"tls_insecure_skip_verify", c.TLSInsecureSkipVerify},
		}
		for _, field := range fields {
			if field.set {
				return fmt.Errorf("%w: %s.%s needs an amqps:// url, got an amqp:// url",
					broker.ErrConfig, configName, field.name)
			}
		}
		return nil
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("%w: %s.tls_cert_file and tls_key_file must be given together", broker.ErrConfig, configName)
	}
	t := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.Host,
		InsecureSkipVerify: c.TLSInsecureSkipVerify,
	}
	if c.TLSCAFile != "" {
		pem, err := readFileField("tls_ca_file", c.TLSCAFile)
		if err != nil {
			return err
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: %s.tls_ca_file %q contains no PEM certificate", broker.ErrConfig, configName, c.TLSCAFile)
		}
	}
	if c.TLSCertFile != "" {
		if _, err := readFileField("tls_cert_file", c.TLSCertFile); err != nil {
			return err
		}
		if _, err := readFileField("tls_key_file", c.TLSKeyFile); err != nil {
			return err
		}
		pair, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("%w: %s.tls_cert_file %q and tls_key_file %q are not a matching PEM certificate and key: %v",
				broker.ErrConfig, configName, c.TLSCertFile, c.TLSKeyFile, err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	c.tlsConfig = t
	return nil
}

// readFileField reads the file that the config field name points to.
func readFileField(name, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s.%s %q cannot be read: %v", broker.ErrConfig, configName, name, path, err)
	}
	return data, nil
}

// address returns host:port for dialing and for messages.
func (c *Config) address() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// redactedURL returns the connection URL with the password replaced by
// "***" and without the vhost, which Describe shows apart.
func (c *Config) redactedURL() string {
	u := url.URL{Scheme: c.Scheme, Host: c.address()}
	s := u.String()
	return strings.Replace(s, "://", "://"+url.User(c.Username).String()+":***@", 1)
}

// Describe returns a one-line summary for logs and repr, with the password
// replaced by "***".
func (c *Config) Describe() string {
	parts := []string{
		"url=" + c.redactedURL(),
		"vhost=" + c.Vhost,
		"prefetch_count=" + strconv.Itoa(c.PrefetchCount),
		"heartbeat=" + strconv.Itoa(int(c.Heartbeat/time.Second)),
	}
	if c.Exchange != "" {
		parts = append(parts, "exchange="+c.Exchange)
	}
	if c.TLSInsecureSkipVerify {
		parts = append(parts, "tls_insecure_skip_verify=true")
	}
	return strings.Join(parts, " ")
}

// redactURL hides the password of a URL that may not parse: everything in
// the authority after the user name's ":" and before the last "@" becomes
// "***". A string with no "://" loses everything before its last "@".
func redactURL(raw string) string {
	rest, prefix := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		prefix, rest = raw[:i+3], raw[i+3:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		if prefix == "" {
			// Without a scheme the authority is unknown; hide any userinfo.
			if at = strings.LastIndex(raw, "@"); at >= 0 {
				return "***" + raw[at:]
			}
		}
		return raw
	}
	user := authority[:at]
	if colon := strings.Index(user, ":"); colon >= 0 {
		user = user[:colon] + ":***"
	} else if prefix == "" {
		user = "***"
	}
	return prefix + user + authority[at:] + tail
}
