package sqs

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cello-framework/cello/core/broker"
)

const testQueueURL = "http://127.0.0.1:4566/000000000000/orders"

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"queue_url": "` + testQueueURL + `"}`))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if c.Region != "us-east-1" {
		t.Errorf("Region = %q, want us-east-1", c.Region)
	}
	if c.MaxMessages != 10 {
		t.Errorf("MaxMessages = %d, want 10", c.MaxMessages)
	}
	if c.WaitTimeSecs != 20 {
		t.Errorf("WaitTimeSecs = %d, want 20", c.WaitTimeSecs)
	}
	if c.VisibilityTimeoutSecs != 30 {
		t.Errorf("VisibilityTimeoutSecs = %d, want 30", c.VisibilityTimeoutSecs)
	}
	if c.RequestTimeout != 30*time.Second {
		t.Errorf("RequestTimeout = %v, want 30s", c.RequestTimeout)
	}
	if c.EndpointURL != "" || c.DeadLetterQueueURL != "" || c.Profile != "" {
		t.Errorf("optional URLs and profile = %q, %q, %q, want all empty", c.EndpointURL, c.DeadLetterQueueURL, c.Profile)
	}
	if c.UseDummyCredentials {
		t.Error("UseDummyCredentials = true, want false")
	}
	if c.hasStaticCredentials() {
		t.Error("hasStaticCredentials() = true with no access keys")
	}
}

func TestParseConfigAllFields(t *testing.T) {
	c, err := ParseConfig([]byte(`{
		"region": "eu-west-1",
		"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs.fifo",
		"endpoint_url": "http://127.0.0.1:4566",
		"max_messages": 5,
		"wait_time_secs": 0,
		"dead_letter_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs-dlq.fifo",
		"visibility_timeout_secs": 0,
		"access_key_id": "AKIDEXAMPLE",
		"secret_access_key": "wJalrXUtnFEMI",
		"session_token": "token",
		"profile": null,
		"use_dummy_credentials": true,
		"request_timeout_ms": 1500
	}`))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if c.Region != "eu-west-1" || c.MaxMessages != 5 || c.WaitTimeSecs != 0 || c.VisibilityTimeoutSecs != 0 {
		t.Errorf("parsed %+v", c)
	}
	if c.RequestTimeout != 1500*time.Millisecond {
		t.Errorf("RequestTimeout = %v, want 1.5s", c.RequestTimeout)
	}
	if !c.UseDummyCredentials {
		t.Error("UseDummyCredentials = false, want true")
	}
	if !c.hasStaticCredentials() || c.static.sessionToken != "token" {
		t.Error("static credentials not read")
	}
}

func TestParseConfigRejectsBadValues(t *testing.T) {
	cases := []struct {
		field string
		json  string
	}{
		{"queue_url", `{}`},
		{"queue_url", `{"queue_url": ""}`},
		{"queue_url", `{"queue_url": 7}`},
		{"queue_url", `{"queue_url": "orders"}`},
		{"queue_url", `{"queue_url": "ftp://host/000000000000/orders"}`},
		{"queue_url", `{"queue_url": "http://127.0.0.1:4566/orders"}`},
		{"queue_url", `{"queue_url": "http://127.0.0.1:4566/000000000000/orders/extra"}`},
		{"queue_url", `{"queue_url": "http://127.0.0.1:4566/000000000000/bad name"}`},
		{"queue_url", `{"queue_url": "http://127.0.0.1:4566/000000000000/orders?x=1"}`},
		{"queue_url", `{"queue_url": "http:///000000000000/orders"}`},
		{"queue_url", `{"queue_url": "http://127.0.0.1:4566/000000000000/` + strings.Repeat("a", 81) + `"}`},
		{"region", `{"queue_url": "` + testQueueURL + `", "region": ""}`},
		{"region", `{"queue_url": "` + testQueueURL + `", "region": "US East"}`},
		{"region", `{"queue_url": "` + testQueueURL + `", "region": 1}`},
		{"region", `{"region": "us-east-1", "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"}`},
		{"endpoint_url", `{"queue_url": "` + testQueueURL + `", "endpoint_url": "127.0.0.1:4566"}`},
		{"endpoint_url", `{"queue_url": "` + testQueueURL + `", "endpoint_url": ""}`},
		{"endpoint_url", `{"queue_url": "` + testQueueURL + `", "endpoint_url": "http://127.0.0.1:4566/?a=b"}`},
		{"max_messages", `{"queue_url": "` + testQueueURL + `", "max_messages": 0}`},
		{"max_messages", `{"queue_url": "` + testQueueURL + `", "max_messages": 11}`},
		{"max_messages", `{"queue_url": "` + testQueueURL + `", "max_messages": 2.5}`},
		{"wait_time_secs", `{"queue_url": "` + testQueueURL + `", "wait_time_secs": -1}`},
		{"wait_time_secs", `{"queue_url": "` + testQueueURL + `", "wait_time_secs": 21}`},
		{"visibility_timeout_secs", `{"queue_url": "` + testQueueURL + `", "visibility_timeout_secs": -1}`},
		{"visibility_timeout_secs", `{"queue_url": "` + testQueueURL + `", "visibility_timeout_secs": 43201}`},
		{"request_timeout_ms", `{"queue_url": "` + testQueueURL + `", "request_timeout_ms": 0}`},
		{"request_timeout_ms", `{"queue_url": "` + testQueueURL + `", "request_timeout_ms": 600001}`},
		{"use_dummy_credentials", `{"queue_url": "` + testQueueURL + `", "use_dummy_credentials": "yes"}`},
		{"dead_letter_queue_url", `{"queue_url": "` + testQueueURL + `", "dead_letter_queue_url": "dlq"}`},
		{"dead_letter_queue_url", `{"queue_url": "` + testQueueURL + `", "dead_letter_queue_url": "` + testQueueURL + `"}`},
		{"profile", `{"queue_url": "` + testQueueURL + `", "profile": ""}`},
		{"profile", `{"queue_url": "` + testQueueURL + `", "profile": "dev", "access_key_id": "a", "secret_access_key": "b"}`},
		{"access_key_id", `{"queue_url": "` + testQueueURL + `", "access_key_id": 5}`},
		{"secret_access_key", `{"queue_url": "` + testQueueURL + `", "access_key_id": "a"}`},
		{"secret_access_key", `{"queue_url": "` + testQueueURL + `", "secret_access_key": "b"}`},
		{"session_token", `{"queue_url": "` + testQueueURL + `", "session_token": "t"}`},
		{"visibilty_timeout_secs", `{"queue_url": "` + testQueueURL + `", "visibilty_timeout_secs": 5}`},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if err == nil {
				t.Fatalf("ParseConfig(%s) returned no error", tc.json)
			}
			if !errors.Is(err, broker.ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name the field %s", err, tc.field)
			}
		})
	}
}

func TestParseConfigNotJSONObject(t *testing.T) {
	_, err := ParseConfig([]byte(`["queue_url"]`))
	if !errors.Is(err, broker.ErrConfig) {
		t.Fatalf("error = %v, want ErrConfig", err)
	}
}

func TestSecretsNeverShown(t *testing.T) {
	const secret = "S3CR3T-VALUE-42"
	valid := `{"queue_url": "` + testQueueURL + `", "access_key_id": "` + secret + `-id", ` +
		`"secret_access_key": "` + secret + `", "session_token": "` + secret + `-token"}`
	c, err := ParseConfig([]byte(valid))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	printed := []string{
		c.Describe(),
		fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c),
		fmt.Sprintf("%v", *c), fmt.Sprintf("%+v", *c), fmt.Sprintf("%#v", *c),
	}
	for _, s := range printed {
		if strings.Contains(s, secret) {
			t.Errorf("printed config contains a secret: %s", s)
		}
	}

	invalid := []string{
		`{"queue_url": "` + testQueueURL + `", "access_key_id": "` + secret + `"}`,
		`{"queue_url": "` + testQueueURL + `", "secret_access_key": "` + secret + `"}`,
		`{"queue_url": "` + testQueueURL + `", "session_token": "` + secret + `"}`,
		`{"queue_url": "` + testQueueURL + `", "access_key_id": ["` + secret + `"]}`,
		`{"queue_url": "` + testQueueURL + `", "secret_access_key": {"v": "` + secret + `"}}`,
		`{"queue_url": "http://user:` + secret + `@127.0.0.1:4566/000000000000/orders"}`,
		`{"queue_url": "` + testQueueURL + `", "endpoint_url": "http://user:` + secret + `@127.0.0.1:4566"}`,
		// A "/" in the password makes the URL fail to parse as one with credentials.
		`{"queue_url": "http://user:` + secret + `/x@127.0.0.1:4566/000000000000/orders"}`,
		`{"queue_url": "` + testQueueURL + `", "endpoint_url": "http://user:` + secret + `?x@127.0.0.1:4566"}`,
		`{"queue_url": "` + testQueueURL + `", "profile": "p", "access_key_id": "a", "secret_access_key": "` + secret + `"}`,
	}
	for _, data := range invalid {
		_, err := ParseConfig([]byte(data))
		if err == nil {
			t.Errorf("ParseConfig(%s) returned no error", data)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error contains a secret: %v", err)
		}
	}
}

func TestDescribeNamesSafeFields(t *testing.T) {
	c, err := ParseConfig([]byte(`{"queue_url": "` + testQueueURL + `", "endpoint_url": "http://127.0.0.1:4566", ` +
		`"max_messages": 3, "wait_time_secs": 4, "region": "us-west-2"}`))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	want := "region=us-west-2 queue_url=" + testQueueURL +
		" endpoint_url=http://127.0.0.1:4566 max_messages=3 wait_time_secs=4"
	if got := c.Describe(); got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
}

func TestConfigEndpoint(t *testing.T) {
	cases := []struct {
		json string
		want string
	}{
		{`{"queue_url": "` + testQueueURL + `", "endpoint_url": "http://localhost:4566/"}`, "http://localhost:4566"},
		{`{"queue_url": "` + testQueueURL + `"}`, "http://127.0.0.1:4566"},
		{`{"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/orders"}`, ""},
	}
	for _, tc := range cases {
		c, err := ParseConfig([]byte(tc.json))
		if err != nil {
			t.Fatalf("ParseConfig(%s): %v", tc.json, err)
		}
		if got := c.endpoint(); got != tc.want {
			t.Errorf("endpoint() for %s = %q, want %q", tc.json, got, tc.want)
		}
	}
}
