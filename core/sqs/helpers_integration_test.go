//go:build integration

package sqs

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/cello-framework/cello/core/broker"
)

// These tests need an SQS-compatible server on testEndpoint, started with
// scripts/brokers.sh up sqs. They fail, rather than skip, when it is missing.
const (
	testEndpoint = "http://127.0.0.1:4566"
	testAccount  = "000000000000"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logRecord is one record that a testLogger received.
type logRecord struct {
	level   broker.Level
	message string
	fields  map[string]string
}

// testLogger records log records and echoes them to the test log.
type testLogger struct {
	t       *testing.T
	mu      sync.Mutex
	records []logRecord
}

func (l *testLogger) Log(level broker.Level, component, message string, fields ...broker.Field) {
	r := logRecord{level: level, message: message, fields: map[string]string{}}
	for _, f := range fields {
		r.fields[f.Key] = f.Value
	}
	l.mu.Lock()
	l.records = append(l.records, r)
	l.mu.Unlock()
	l.t.Logf("log %d %s: %s %v", level, component, message, r.fields)
}

// find returns the first record at level whose message contains text.
func (l *testLogger) find(level broker.Level, text string) (logRecord, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.level == level && strings.Contains(r.message, text) {
			return r, true
		}
	}
	return logRecord{}, false
}

// fixture holds an admin client for creating, inspecting and deleting the
// queues of one test.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	admin *api
	log   *testLogger
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	// Keep the SDK away from instance metadata and the user's AWS files.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "credentials"))
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(testEndpoint, "http://"), 2*time.Second)
	if err != nil {
		t.Fatalf("no SQS-compatible server at %s (start it with scripts/brokers.sh up sqs): %v", testEndpoint, err)
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	fx := &fixture{t: t, ctx: ctx, log: &testLogger{t: t}}
	cfg := fx.config(testEndpoint+"/"+testAccount+"/admin", "")
	fx.admin, err = newAPI(ctx, cfg, fx.log)
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(fx.admin.closeIdle)
	return fx
}

// queueName returns a unique queue name for this test.
func (fx *fixture) queueName(purpose string) string {
	return "cello-" + purpose + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
}

// createQueue creates a queue and deletes it, and its default dead-letter
// queue, when the test ends.
func (fx *fixture) createQueue(name string, attrs map[string]string) string {
	fx.t.Helper()
	if strings.HasSuffix(name, fifoSuffix) {
		if attrs == nil {
			attrs = map[string]string{}
		}
		attrs["FifoQueue"] = "true"
	}
	_, err := fx.admin.CreateQueue(fx.ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		fx.t.Fatalf("CreateQueue %s: %v", name, err)
	}
	fx.deleteOnCleanup(name)
	fx.deleteOnCleanup(deadLetterQueueName(name))
	return fx.url(name)
}

// deleteOnCleanup deletes the named queue, if it exists, when the test ends.
func (fx *fixture) deleteOnCleanup(name string) {
	fx.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := fx.admin.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(fx.url(name))})
		if err != nil && !isQueueMissing(err) {
			fx.t.Errorf("DeleteQueue %s: %v", name, err)
		}
	})
}

func (fx *fixture) url(name string) string {
	return testEndpoint + "/" + testAccount + "/" + name
}

// config returns a parsed config for queueURL with extra JSON fields,
// given as `"field": value, ...` or "".
func (fx *fixture) config(queueURL, extra string) *Config {
	fx.t.Helper()
	data := fmt.Sprintf(`{"queue_url": %q, "endpoint_url": %q, "use_dummy_credentials": true, "wait_time_secs": 1`,
		queueURL, testEndpoint)
	if extra != "" {
		data += ", " + extra
	}
	cfg, err := ParseConfig([]byte(data + "}"))
	if err != nil {
		fx.t.Fatalf("ParseConfig(%s): %v", data, err)
	}
	return cfg
}

func (fx *fixture) producer(cfg *Config) broker.Producer {
	fx.t.Helper()
	p, err := NewProducer(fx.ctx, cfg, fx.log)
	if err != nil {
		fx.t.Fatalf("NewProducer: %v", err)
	}
	fx.t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			fx.t.Errorf("producer Close: %v", err)
		}
	})
	return p
}

// consumer opens a consumer subscribed to names (none means the config's
// queue) and closes it when the test ends.
func (fx *fixture) consumer(cfg *Config, opts broker.ConsumerOptions, names ...string) broker.Consumer {
	fx.t.Helper()
	c, err := NewConsumer(fx.ctx, cfg, opts, fx.log)
	if err != nil {
		fx.t.Fatalf("NewConsumer: %v", err)
	}
	fx.t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			fx.t.Errorf("consumer Close: %v", err)
		}
	})
	if err := c.Subscribe(fx.ctx, names); err != nil {
		fx.t.Fatalf("Subscribe(%v): %v", names, err)
	}
	return c
}

// send sends msgs and fails the test on any error.
func (fx *fixture) send(p broker.Producer, msgs ...broker.OutMessage) []broker.SendResult {
	fx.t.Helper()
	results, err := p.Send(fx.ctx, msgs)
	if err != nil {
		fx.t.Fatalf("Send: %v", err)
	}
	for i, r := range results {
		if r.Err != nil {
			fx.t.Fatalf("Send result %d: %v", i, r.Err)
		}
	}
	return results
}

// pollN polls until n deliveries arrived or within passed, and returns
// what arrived.
func (fx *fixture) pollN(c broker.Consumer, n int, within time.Duration) []broker.Delivery {
	fx.t.Helper()
	var out []broker.Delivery
	deadline := time.Now().Add(within)
	for len(out) < n && time.Now().Before(deadline) {
		ds, err := c.Poll(fx.ctx, min(time.Second, time.Until(deadline)), n-len(out))
		if err != nil {
			fx.t.Fatalf("Poll: %v", err)
		}
		out = append(out, ds...)
	}
	return out
}

// expectNone polls for the given duration and fails on any delivery.
func (fx *fixture) expectNone(c broker.Consumer, during time.Duration, why string) {
	fx.t.Helper()
	if ds := fx.pollN(c, 1, during); len(ds) > 0 {
		fx.t.Fatalf("%s: got delivery %s (attempt %d, value %q)", why, ds[0].ID, ds[0].Attempt, ds[0].Value)
	}
}

func (fx *fixture) settle(c broker.Consumer, d broker.Delivery, result broker.Result, reason string) {
	fx.t.Helper()
	err := c.Settle(fx.ctx, []broker.Settlement{{Token: d.Token, Result: result, Reason: reason}})
	if err != nil {
		fx.t.Fatalf("Settle %s: %v", result, err)
	}
}

// receiveRaw receives up to 10 messages of a queue with the admin client,
// waiting up to wait, and deletes them.
func (fx *fixture) receiveRaw(queueURL string, wait int32) []types.Message {
	fx.t.Helper()
	out, err := fx.admin.ReceiveMessage(fx.ctx, &sqs.ReceiveMessageInput{
		QueueUrl:              aws.String(queueURL),
		MaxNumberOfMessages:   10,
		WaitTimeSeconds:       wait,
		MessageAttributeNames: []string{"All"},
	})
	if err != nil {
		fx.t.Fatalf("ReceiveMessage %s: %v", queueURL, err)
	}
	for _, m := range out.Messages {
		_, err := fx.admin.DeleteMessage(fx.ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: m.ReceiptHandle})
		if err != nil {
			fx.t.Fatalf("DeleteMessage: %v", err)
		}
	}
	return out.Messages
}

// queueCounts returns the visible and in-flight message counts of a queue.
func (fx *fixture) queueCounts(queueURL string) (visible, inFlight string) {
	fx.t.Helper()
	out, err := fx.admin.GetQueueAttributes(fx.ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		fx.t.Fatalf("GetQueueAttributes %s: %v", queueURL, err)
	}
	return out.Attributes["ApproximateNumberOfMessages"], out.Attributes["ApproximateNumberOfMessagesNotVisible"]
}

// queueExists reports whether the named queue exists.
func (fx *fixture) queueExists(name string) bool {
	fx.t.Helper()
	_, err := fx.admin.GetQueueUrl(fx.ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil && !isQueueMissing(err) {
		fx.t.Fatalf("GetQueueUrl %s: %v", name, err)
	}
	return err == nil
}

func retryPolicy(maxRetries int, backoff time.Duration) broker.ConsumerOptions {
	return broker.ConsumerOptions{Retry: broker.RetryPolicy{MaxRetries: maxRetries, Backoff: backoff, MaxBackoff: backoff}}
}
