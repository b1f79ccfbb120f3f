package sqs

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cello-framework/cello/core/broker"
)

// deadLetterRetentionSecs is the retention period of a dead-letter queue
// that this package creates: 14 days, the maximum SQS allows, so failed
// messages stay available for inspection as long as possible.
const deadLetterRetentionSecs = 14 * 24 * 60 * 60

// queue is a resolved SQS queue. The URL is passed as a request parameter;
// requests themselves go to the client's endpoint.
type queue struct {
	url  string
	name string
	fifo bool
}

func newQueue(rawURL, name string) queue {
	return queue{url: rawURL, name: name, fifo: strings.HasSuffix(name, fifoSuffix)}
}

// queues resolves queue names to URLs, caching the results, and finds or
// creates dead-letter queues. It is safe for concurrent use.
type queues struct {
	api     *sqs.Client
	timeout time.Duration
	home    queue // the config's queue_url

	mu          sync.Mutex
	byName      map[string]queue
	deadLetters map[string]queue // by source queue URL and override
}

func newQueues(api *sqs.Client, cfg *Config) *queues {
	home, _ := parseQueueURL("queue_url", cfg.QueueURL)
	return &queues{
		api:         api,
		timeout:     cfg.RequestTimeout,
		home:        home,
		byName:      map[string]queue{},
		deadLetters: map[string]queue{},
	}
}

// parseDestination returns the queue that dest names without a request,
// when it can: "" is the config's queue and a URL names its queue. For a bare
// queue name it returns ok=false, and resolve must ask SQS for the URL.
func (qs *queues) parseDestination(dest string) (q queue, ok bool, err error) {
	if dest == "" {
		return qs.home, true, nil
	}
	if isURL(dest) {
		u, err := url.Parse(dest)
		if err != nil {
			return queue{}, false, fmt.Errorf("%w: queue URL %q is not a valid URL: %v", broker.ErrInvalidArgument, dest, err)
		}
		q, valid := queueFromURL(u)
		if !valid {
			return queue{}, false, fmt.Errorf("%w: queue URL %q must have the form https://host/<account>/<queue name>",
				broker.ErrInvalidArgument, dest)
		}
		return q, true, nil
	}
	if !queueNamePattern.MatchString(dest) {
		return queue{}, false, fmt.Errorf("%w: %q is neither a queue URL nor a valid queue name "+
			"(up to 80 letters, digits, hyphens and underscores, with .fifo last for a FIFO queue)",
			broker.ErrInvalidArgument, dest)
	}
	return newQueue("", dest), false, nil
}

// resolve returns the queue that dest names, asking SQS for the URL of a
// bare queue name once and caching it. A queue that does not exist is
// reported with broker.ErrNotFound.
func (qs *queues) resolve(ctx context.Context, dest string) (queue, error) {
	q, ok, err := qs.parseDestination(dest)
	if err != nil || ok {
		return q, err
	}
	qs.mu.Lock()
	cached, hit := qs.byName[dest]
	qs.mu.Unlock()
	if hit {
		return cached, nil
	}
	callCtx, cancel := context.WithTimeout(ctx, qs.timeout)
	defer cancel()
	out, err := qs.api.GetQueueUrl(callCtx, &sqs.GetQueueUrlInput{QueueName: aws.String(dest)})
	if err != nil {
		return queue{}, translate(err, "GetQueueUrl", dest, nil)
	}
	q = newQueue(aws.ToString(out.QueueUrl), dest)
	qs.mu.Lock()
	qs.byName[dest] = q
	qs.mu.Unlock()
	return q, nil
}

// forget drops a cached name, so that the next resolve requests its URL
// again after the queue was reported missing.
func (qs *queues) forget(q queue) {
	qs.mu.Lock()
	if cached, ok := qs.byName[q.name]; ok && cached.url == q.url {
		delete(qs.byName, q.name)
	}
	qs.mu.Unlock()
}

// forgetDeadLetter drops the cached dead-letter queue of source, so that
// the next dead-letter finds or creates it again.
func (qs *queues) forgetDeadLetter(source queue, override string) {
	qs.mu.Lock()
	delete(qs.deadLetters, source.url+"\x00"+override)
	qs.mu.Unlock()
}

// visibilityTimeout reads a queue's own VisibilityTimeout attribute, which
// also checks that the queue exists.
func (qs *queues) visibilityTimeout(ctx context.Context, q queue) (time.Duration, error) {
	callCtx, cancel := context.WithTimeout(ctx, qs.timeout)
	defer cancel()
	out, err := qs.api.GetQueueAttributes(callCtx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout},
	})
	if err != nil {
		return 0, translate(err, "GetQueueAttributes", q.name, nil)
	}
	secs, err := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameVisibilityTimeout)])
	if err != nil {
		// A server that omits the attribute gets SQS's documented default.
		return defaultVisibilitySecs * time.Second, nil
	}
	return time.Duration(secs) * time.Second, nil
}

// deadLetterQueue returns where messages of source are dead-lettered:
// override (a queue name or URL from the consumer options) when set, else
// configured (the config's dead_letter_queue_url) when set, else the queue
// named <source>-dlq beside source. A queue given by name, and the default
// one, are created when missing. A configured URL is used as it is.
func (qs *queues) deadLetterQueue(ctx context.Context, source queue, override, configured string) (queue, error) {
	cacheKey := source.url + "\x00" + override
	qs.mu.Lock()
	cached, hit := qs.deadLetters[cacheKey]
	qs.mu.Unlock()
	if hit {
		return cached, nil
	}
	q, err := qs.findDeadLetterQueue(ctx, source, override, configured)
	if err != nil {
		return queue{}, err
	}
	qs.mu.Lock()
	qs.deadLetters[cacheKey] = q
	qs.mu.Unlock()
	return q, nil
}

func (qs *queues) findDeadLetterQueue(ctx context.Context, source queue, override, configured string) (queue, error) {
	switch {
	case override != "" && isURL(override):
		q, _, err := qs.parseDestination(override)
		return q, err
	case override != "":
		q, _, err := qs.parseDestination(override)
		if err != nil {
			return queue{}, err
		}
		return qs.createQueue(ctx, q.name)
	case configured != "":
		return parseQueueURL("dead_letter_queue_url", configured)
	}
	name := deadLetterQueueName(source.name)
	u, err := url.Parse(source.url)
	if err != nil {
		return queue{}, fmt.Errorf("%w: queue URL %q is not a valid URL: %v", broker.ErrInvalidArgument, source.url, err)
	}
	u.Path = u.Path[:strings.LastIndex(strings.TrimRight(u.Path, "/"), "/")+1] + name
	q := newQueue(u.String(), name)
	// A missing queue is created below, and any other failure is returned.
	if _, err := qs.visibilityTimeout(ctx, q); err == nil {
		return q, nil
	} else if !isNotFound(err) {
		return queue{}, err
	}
	return qs.createQueue(ctx, name)
}

// createQueue creates the named queue, or returns it when it exists with the
// same attributes.
func (qs *queues) createQueue(ctx context.Context, name string) (queue, error) {
	attrs := map[string]string{
		string(types.QueueAttributeNameMessageRetentionPeriod): strconv.Itoa(deadLetterRetentionSecs),
	}
	if strings.HasSuffix(name, fifoSuffix) {
		attrs[string(types.QueueAttributeNameFifoQueue)] = "true"
	}
	callCtx, cancel := context.WithTimeout(ctx, qs.timeout)
	defer cancel()
	out, err := qs.api.CreateQueue(callCtx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return queue{}, translate(err, "CreateQueue", name, nil)
	}
	return newQueue(aws.ToString(out.QueueUrl), name), nil
}

// deadLetterQueueName returns <name>-dlq, keeping a FIFO queue's .fifo
// suffix last and shortening the base so that the result fits SQS's limit
// of 80 characters.
func deadLetterQueueName(name string) string {
	suffix := defaultDeadLetterSuffix
	base := name
	if strings.HasSuffix(name, fifoSuffix) {
		base = strings.TrimSuffix(name, fifoSuffix)
		suffix += fifoSuffix
	}
	if len(base)+len(suffix) > queueNameMaxLength {
		base = base[:queueNameMaxLength-len(suffix)]
	}
	return base + suffix
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}
