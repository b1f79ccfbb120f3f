package sqs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cello-framework/cello/core/broker"
)

// allAttributes requests every attribute of each message in ReceiveMessage.
const allAttributes = "All"

// Receiving works like this: each subscribed queue has at most one
// ReceiveMessage call in flight, running in the background. Poll starts a
// call for each idle queue and waits for the first response. A call that ends
// after its Poll returned adds its messages to the buffer, where they are in
// flight and extended like the others, and the next Poll returns them. So a
// call is never cancelled because another queue responded first, which would
// hide the messages SQS had already chosen for it until their visibility
// timeout ended.

// receiveCall is one ReceiveMessage call running in the background. err is
// set before done is closed.
type receiveCall struct {
	queue queue
	done  chan struct{}
	err   error
}

// receivedBatch is the response of one ReceiveMessage call.
type receivedBatch struct {
	sub      subscription
	messages []types.Message
	at       time.Time
	err      error
}

// Poll returns buffered deliveries when there are any. Otherwise it starts
// a long poll on every subscribed queue that has none in flight and returns
// the first deliveries that arrive. Each long poll waits for at most
// wait_time_secs and timeout rounded down to whole seconds. SQS waits in
// whole seconds, so a timeout under one second makes a short poll. A limit
// of 0 or less means max_messages, as the Python Consumer.poll passes 0 for
// its default.
func (c *consumer) Poll(ctx context.Context, timeout time.Duration, limit int) ([]broker.Delivery, error) {
	if limit < 1 {
		limit = c.cfg.MaxMessages
	}
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.ops.Done()
	if ready := c.takeBuffered(limit); len(ready) > 0 {
		return ready, nil
	}
	end := time.Now().Add(timeout)
	wait := max(0, min(c.cfg.WaitTimeSecs, int(timeout/time.Second)))
	n := int32(min(limit, c.cfg.MaxMessages))
	started, err := c.startReceives(int32(wait), n)
	if err != nil {
		return nil, err
	}
	ctx, stop := mergeCancel(ctx, c.closing)
	defer stop()

	// A short poll is waited for to the end, a long one for at most timeout.
	var deadline <-chan time.Time
	if wait > 0 || len(started) == 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		deadline = timer.C
	}
	for {
		if ready := c.takeBuffered(limit); len(ready) > 0 {
			return ready, nil
		}
		if len(started) > 0 && allDone(started) {
			return nil, c.receiveErrors(started)
		}
		select {
		case <-c.arrived:
			// A call that an earlier Poll started, and that ended empty,
			// leaves its queue without a receive: a long poll starts a new
			// one there for the whole seconds that are left.
			left := max(0, min(c.cfg.WaitTimeSecs, int(time.Until(end)/time.Second)))
			if wait > 0 && left > 0 {
				more, err := c.startReceives(int32(left), n)
				if err != nil {
					return nil, err
				}
				started = append(started, more...)
			}
		case <-deadline:
			return c.takeBuffered(limit), nil
		case <-ctx.Done():
			if ready := c.takeBuffered(limit); len(ready) > 0 {
				return ready, nil
			}
			if c.closing.Err() != nil {
				return nil, fmt.Errorf("%w: sqs consumer closed during poll", broker.ErrClosed)
			}
			return nil, translate(ctx.Err(), "ReceiveMessage", c.subscribedNames(), nil)
		}
	}
}

// subscribedNames returns the subscribed queue names, joined for messages.
func (c *consumer) subscribedNames() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.queue.name
	}
	return strings.Join(names, ", ")
}

// takeBuffered removes and returns up to limit buffered deliveries.
func (c *consumer) takeBuffered(limit int) []broker.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(limit, len(c.buffered))
	if n == 0 {
		return nil
	}
	ready := c.buffered[:n:n]
	c.buffered = c.buffered[n:]
	if len(c.buffered) == 0 {
		c.buffered = nil
	}
	return ready
}

// startReceives starts a ReceiveMessage call on every subscribed queue that
// has none in flight and returns the calls it started.
func (c *consumer) startReceives(wait, n int32) ([]*receiveCall, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.subs) == 0 {
		return nil, fmt.Errorf("%w: the sqs consumer has no subscription: call subscribe first "+
			"(an empty list subscribes to queue_url)", broker.ErrInvalidArgument)
	}
	var started []*receiveCall
	for _, s := range c.subs {
		if c.receiving[s.queue.url] {
			continue
		}
		c.receiving[s.queue.url] = true
		call := &receiveCall{queue: s.queue, done: make(chan struct{})}
		started = append(started, call)
		c.background.Add(1)
		go func() {
			defer c.background.Done()
			// NOTE: Close cancels this call, and messages that SQS chose just
			// before stay hidden until their visibility timeout ends. The
			// benchmark also saw whole batches arrive only after that timeout
			// without any Close. That matches an SDK retry of a response it
			// could not read, but the cause is not confirmed. Those messages
			// are late by the visibility timeout, not lost.
			b := c.receive(c.closing, s, wait, n)
			c.register(b)
			call.err = b.err
			close(call.done)
			signal(c.arrived)
			signal(c.wakeExtender)
		}()
	}
	return started, nil
}

func allDone(calls []*receiveCall) bool {
	for _, call := range calls {
		select {
		case <-call.done:
		default:
			return false
		}
	}
	return true
}

// receiveErrors returns the joined errors of calls, which have all ended,
// when every one failed. When only some failed it logs those and returns
// nil, since the others completed.
func (c *consumer) receiveErrors(calls []*receiveCall) error {
	var errs []error
	for _, call := range calls {
		if call.err != nil {
			errs = append(errs, call.err)
		}
	}
	if len(errs) == len(calls) {
		return errors.Join(errs...)
	}
	// NOTE: in a 12 s outage of the local endpoint, a decorated consumer
	// logged nothing during the outage. It then logged hundreds of these
	// warnings at once when the app stopped, so users learn of an outage
	// late. Nothing was lost. The cause is not confirmed: Poll may start
	// failing receives one after another while another call is in flight.
	for _, err := range errs {
		c.log.Log(broker.LevelWarning, component, "receive failed",
			broker.F("broker", component), broker.F("err", err.Error()))
	}
	return nil
}

func (c *consumer) receive(ctx context.Context, sub subscription, wait, n int32) receivedBatch {
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(sub.queue.url),
		MaxNumberOfMessages:         n,
		WaitTimeSeconds:             wait,
		MessageAttributeNames:       []string{allAttributes},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	}
	if sub.setVisibility {
		in.VisibilityTimeout = int32(sub.visibility / time.Second)
	}
	callCtx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout+time.Duration(wait)*time.Second)
	defer cancel()
	out, err := c.api.ReceiveMessage(callCtx, in)
	b := receivedBatch{sub: sub, at: time.Now()}
	if err != nil {
		b.err = translate(err, "ReceiveMessage", sub.queue.name, nil)
		return b
	}
	b.messages = out.Messages
	return b
}

// register records the messages of b as in flight and appends them to the
// buffer, and marks the queue as having no receive in flight.
func (c *consumer) register(b receivedBatch) {
	var warnings [][3]string // queue name, message id, problem
	c.mu.Lock()
	delete(c.receiving, b.sub.queue.url)
	for _, m := range b.messages {
		c.nextToken++
		d, group, warning := decodeMessage(m, b.sub.queue)
		d.Token = c.nextToken
		d.Lane = laneOf(b.sub.queue, group, d.Token)
		f := &inflight{
			token:      d.Token,
			queue:      b.sub.queue,
			receipt:    aws.ToString(m.ReceiptHandle),
			id:         d.ID,
			attempt:    d.Attempt,
			group:      group,
			body:       aws.ToString(m.Body),
			attrs:      m.MessageAttributes,
			visibility: b.sub.visibility,
		}
		if f.visibility >= time.Second {
			f.extendAt = b.at.Add(f.visibility / 2)
		}
		if warning != "" {
			warnings = append(warnings, [3]string{f.queue.name, f.id, warning})
		}
		c.pending[f.token] = f
		c.buffered = append(c.buffered, d)
	}
	c.mu.Unlock()

	for _, w := range warnings {
		c.log.Log(broker.LevelWarning, component, "message body not decoded: "+w[2],
			broker.F("broker", component), broker.F("queue", w[0]), broker.F("id", w[1]))
	}
}
