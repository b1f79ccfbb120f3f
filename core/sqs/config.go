package sqs

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cello-framework/cello/core/broker"
)

// Defaults and limits of SqsConfig. The ranges of max_messages,
// wait_time_secs and visibility_timeout_secs are the ones SQS accepts in
// ReceiveMessage and ChangeMessageVisibility.
const (
	defaultRegion           = "us-east-1"
	defaultMaxMessages      = 10
	defaultWaitTimeSecs     = 20
	defaultVisibilitySecs   = 30
	defaultRequestTimeoutMS = 30_000
	maxWaitTimeSecs         = 20
	maxVisibilitySecs       = 43_200
	minRequestTimeoutMS     = 100
	maxRequestTimeoutMS     = 600_000
	configPrefix            = "SqsConfig"
	dummyAccessKeyID        = "test"
	dummySecretAccessKey    = "test"
	queueURLForm            = "an http(s) URL of the form https://host/<account>/<queue name>"
	queueNameMaxLength      = 80
	fifoSuffix              = ".fifo"
	defaultDeadLetterSuffix = "-dlq"
	awsHostSuffix           = ".amazonaws.com"
	awsChinaHostSuffix      = ".amazonaws.com.cn"
	regionalSQSHostPrefix   = "sqs."
)

var (
	// queueNamePattern is SQS's rule for queue names: up to 80 letters,
	// digits, hyphens and underscores, where a FIFO queue's name ends in
	// ".fifo" within those 80 characters.
	queueNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$|^[A-Za-z0-9_-]{1,75}\.fifo$`)
	regionPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

// Config is a parsed SqsConfig. Its access keys sit behind an unexported
// pointer because fmt prints a nested pointer as an address, so printing a
// Config with %v, %+v or %#v never shows them.
type Config struct {
	// Region is the AWS region that requests are signed for.
	Region string
	// QueueURL is the default queue for producers and consumers.
	QueueURL string
	// EndpointURL overrides the SQS endpoint, such as a local server's
	// http://127.0.0.1:4566. Empty means the endpoint that the queue URL
	// implies (see endpoint).
	EndpointURL string
	// MaxMessages is the maximum number of messages per ReceiveMessage call.
	MaxMessages int
	// WaitTimeSecs is the maximum long-poll wait of one ReceiveMessage call.
	WaitTimeSecs int
	// DeadLetterQueueURL is the queue that receives dead-lettered messages.
	// Empty means a queue named <queue>-dlq beside each source queue,
	// created if missing.
	DeadLetterQueueURL string
	// VisibilityTimeoutSecs is how long a received message stays hidden
	// from other consumers, extended while its handler runs. 0 keeps the
	// queue's own visibility timeout.
	VisibilityTimeoutSecs int
	// Profile names a profile of the shared AWS config files.
	Profile string
	// UseDummyCredentials selects the static credentials test/test when the
	// standard AWS chain finds none, for local SQS-compatible servers.
	UseDummyCredentials bool
	// RequestTimeout bounds one API call, retries included. A ReceiveMessage
	// call gets its long-poll wait on top.
	RequestTimeout time.Duration

	static *staticCredentials // nil unless access keys were configured
}

// staticCredentials are the configured access keys.
type staticCredentials struct {
	accessKeyID     string
	secretAccessKey string
	sessionToken    string
}

// ParseConfig reads an SqsConfig sent by Python as a JSON object and checks
// every field. Errors wrap broker.ErrConfig and name the field.
func ParseConfig(data []byte) (*Config, error) {
	f, err := broker.ParseFields(configPrefix, data)
	if err != nil {
		return nil, err
	}
	c := &Config{}
	if err := c.readQueues(f); err != nil {
		return nil, err
	}
	if err := c.readLimits(f); err != nil {
		return nil, err
	}
	if err := c.readCredentials(f); err != nil {
		return nil, err
	}
	if err := f.Unknown(); err != nil {
		return nil, err
	}
	return c, c.checkRegion()
}

func (c *Config) readQueues(f *broker.Fields) error {
	var err error
	if c.Region, err = f.String("region", defaultRegion, true); err != nil {
		return err
	}
	if !regionPattern.MatchString(c.Region) {
		return configError("region",
			`a region name of lowercase letters, digits and hyphens, such as "us-east-1"`, c.Region)
	}
	if c.QueueURL, err = f.String("queue_url", "", false); err != nil {
		return err
	}
	if c.QueueURL == "" {
		return fmt.Errorf("%w: %s.queue_url is required: %s", broker.ErrConfig, configPrefix, queueURLForm)
	}
	if _, err := parseQueueURL("queue_url", c.QueueURL); err != nil {
		return err
	}
	if c.EndpointURL, err = f.String("endpoint_url", "", true); err != nil {
		return err
	}
	if c.EndpointURL != "" {
		if err := checkEndpointURL(c.EndpointURL); err != nil {
			return err
		}
	}
	if c.DeadLetterQueueURL, err = f.String("dead_letter_queue_url", "", true); err != nil {
		return err
	}
	if c.DeadLetterQueueURL != "" {
		if _, err := parseQueueURL("dead_letter_queue_url", c.DeadLetterQueueURL); err != nil {
			return err
		}
		if c.DeadLetterQueueURL == c.QueueURL {
			return fmt.Errorf("%w: %s.dead_letter_queue_url must differ from queue_url, got %q for both",
				broker.ErrConfig, configPrefix, c.QueueURL)
		}
	}
	return nil
}

func (c *Config) readLimits(f *broker.Fields) error {
	maxMessages, err := f.Int("max_messages", defaultMaxMessages, 1, maxBatchEntries)
	if err != nil {
		return err
	}
	wait, err := f.Int("wait_time_secs", defaultWaitTimeSecs, 0, maxWaitTimeSecs)
	if err != nil {
		return err
	}
	visibility, err := f.Int("visibility_timeout_secs", defaultVisibilitySecs, 0, maxVisibilitySecs)
	if err != nil {
		return err
	}
	timeout, err := f.Int("request_timeout_ms", defaultRequestTimeoutMS, minRequestTimeoutMS, maxRequestTimeoutMS)
	if err != nil {
		return err
	}
	if c.UseDummyCredentials, err = f.Bool("use_dummy_credentials", false); err != nil {
		return err
	}
	c.MaxMessages = int(maxMessages)
	c.WaitTimeSecs = int(wait)
	c.VisibilityTimeoutSecs = int(visibility)
	c.RequestTimeout = time.Duration(timeout) * time.Millisecond
	return nil
}

// readCredentials reads the secret fields. Their messages never contain a
// value, only field names.
func (c *Config) readCredentials(f *broker.Fields) error {
	var s staticCredentials
	var err error
	if s.accessKeyID, err = f.Secret("access_key_id"); err != nil {
		return err
	}
	if s.secretAccessKey, err = f.Secret("secret_access_key"); err != nil {
		return err
	}
	if s.sessionToken, err = f.Secret("session_token"); err != nil {
		return err
	}
	if c.Profile, err = f.String("profile", "", true); err != nil {
		return err
	}
	if (s.accessKeyID == "") != (s.secretAccessKey == "") {
		return fmt.Errorf("%w: %s.access_key_id and %s.secret_access_key must be set together (values hidden)",
			broker.ErrConfig, configPrefix, configPrefix)
	}
	if s.sessionToken != "" && s.accessKeyID == "" {
		return fmt.Errorf("%w: %s.session_token requires access_key_id and secret_access_key (values hidden)",
			broker.ErrConfig, configPrefix)
	}
	if c.Profile != "" && s.accessKeyID != "" {
		return fmt.Errorf("%w: %s.profile cannot be combined with access_key_id and secret_access_key: "+
			"set one or the other", broker.ErrConfig, configPrefix)
	}
	if s.accessKeyID != "" {
		c.static = &s
	}
	return nil
}

// checkRegion rejects a regional AWS queue URL whose region differs from
// Region, because an SQS queue is served only by its own region's endpoint.
func (c *Config) checkRegion() error {
	if c.EndpointURL != "" {
		return nil
	}
	u, _ := url.Parse(c.QueueURL)
	host := u.Hostname()
	if !strings.HasPrefix(host, regionalSQSHostPrefix) || !isAWSHost(host) {
		return nil
	}
	region, _, _ := strings.Cut(strings.TrimPrefix(host, regionalSQSHostPrefix), ".")
	if region == c.Region {
		return nil
	}
	return fmt.Errorf("%w: %s.region is %q but queue_url %q is in region %q: set region to %q",
		broker.ErrConfig, configPrefix, c.Region, c.QueueURL, region, region)
}

// Describe returns a one-line summary for logs and Python's repr. It never
// contains a credential.
func (c *Config) Describe() string {
	endpoint := c.EndpointURL
	if endpoint == "" {
		endpoint = "none"
	}
	return fmt.Sprintf("region=%s queue_url=%s endpoint_url=%s max_messages=%d wait_time_secs=%d",
		c.Region, c.QueueURL, endpoint, c.MaxMessages, c.WaitTimeSecs)
}

// endpoint returns the base URL that API requests go to: EndpointURL when
// set, otherwise the queue URL's scheme and host unless that host is
// Amazon's, for which the SDK resolves the regional endpoint itself and
// endpoint returns "". Deriving it keeps a local queue URL from sending
// requests, signed with real credentials, to AWS.
func (c *Config) endpoint() string {
	if c.EndpointURL != "" {
		return strings.TrimRight(c.EndpointURL, "/")
	}
	u, err := url.Parse(c.QueueURL)
	if err != nil || isAWSHost(u.Hostname()) {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// hasStaticCredentials reports whether access keys were configured.
func (c *Config) hasStaticCredentials() bool { return c.static != nil }

func isAWSHost(host string) bool {
	host = strings.ToLower(host)
	return strings.HasSuffix(host, awsHostSuffix) || strings.HasSuffix(host, awsChinaHostSuffix)
}

func configError(field, expected, got string) error {
	return fmt.Errorf("%w: %s.%s must be %s, got %q", broker.ErrConfig, configPrefix, field, expected, shorten(got))
}

func shorten(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}

// parseHTTPURL parses raw as an http or https URL with a host and no
// credentials, query or fragment. A URL with a user name or password is
// reported without its value, since the password is a secret. Any "@"
// counts as one: a password containing "/" or "?" makes the URL fail to
// parse as one with credentials, and SQS queue URLs and endpoints have no
// other use for "@".
func parseHTTPURL(field, expected, raw string) (*url.URL, error) {
	if strings.Contains(raw, "@") {
		return nil, fmt.Errorf("%w: %s.%s must not contain a user name or password (value hidden)",
			broker.ErrConfig, configPrefix, field)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, configError(field, expected, raw)
	}
	return u, nil
}

func checkEndpointURL(raw string) error {
	_, err := parseHTTPURL("endpoint_url", "an http(s) URL such as http://127.0.0.1:4566", raw)
	return err
}

// parseQueueURL checks a configured queue URL and returns the queue it
// names. Errors wrap broker.ErrConfig and name field.
func parseQueueURL(field, raw string) (queue, error) {
	u, err := parseHTTPURL(field, queueURLForm, raw)
	if err != nil {
		return queue{}, err
	}
	q, ok := queueFromURL(u)
	if !ok {
		return queue{}, configError(field, queueURLForm, raw)
	}
	return q, nil
}

// queueFromURL returns the queue of a URL whose path is /<account>/<name>
// with a valid queue name.
func queueFromURL(u *url.URL) (queue, bool) {
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] == "" || !queueNamePattern.MatchString(parts[1]) {
		return queue{}, false
	}
	return newQueue(u.String(), parts[1]), true
}
