package sqs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cello-framework/cello/core/broker"
)

// visibilityChange makes one in-flight message visible again after timeout.
type visibilityChange struct {
	f       *inflight
	timeout time.Duration
}

// deadLetter is one message to send to its dead-letter queue.
type deadLetter struct {
	f      *inflight
	reason string
}

// Settle applies each result. Ack deletes the message (batched). Nack hides
// it for the retry backoff, and Requeue makes it visible at once, but both
// dead-letter it once its receive count exceeds the maximum retries. Reject
// deletes it with a warning. DeadLetter sends it to the dead-letter queue
// and deletes it. Skipped makes it visible at once. Every settlement is
// applied even when others fail, and the returned error joins the failures.
func (c *consumer) Settle(ctx context.Context, results []broker.Settlement) error {
	if err := c.enter(); err != nil {
		return err
	}
	defer c.ops.Done()
	ctx, stop := mergeCancel(ctx, c.ctx)
	defer stop()

	var errs []error
	var changes []visibilityChange
	var deadLetters []deadLetter
	for _, s := range results {
		if !s.Result.Valid() {
			errs = append(errs, fmt.Errorf("%w: delivery %d has result %d, which is not defined",
				broker.ErrInvalidArgument, s.Token, s.Result))
			continue
		}
		f := c.take(s.Token)
		if f == nil {
			errs = append(errs, unknownToken(s.Token))
			continue
		}
		switch s.Result {
		case broker.Ack:
			c.deletes.add(f.deleteEntry())
		case broker.Reject:
			c.log.Log(broker.LevelWarning, component, "message rejected and deleted: "+s.Reason,
				broker.F("broker", component), broker.F("queue", f.queue.name), broker.F("id", f.id))
			c.deletes.add(f.deleteEntry())
		case broker.Nack, broker.Requeue:
			if int(f.attempt) > c.opts.Retry.MaxRetries {
				reason := retriesExhausted(s, f.attempt, c.opts.Retry.MaxRetries)
				deadLetters = append(deadLetters, deadLetter{f: f, reason: reason})
				continue
			}
			var delay time.Duration
			if s.Result == broker.Nack {
				delay = c.retryDelay(f.attempt)
			}
			changes = append(changes, visibilityChange{f: f, timeout: delay})
		case broker.DeadLetter:
			reason := s.Reason
			if reason == "" {
				reason = "dead-lettered by the handler"
			}
			deadLetters = append(deadLetters, deadLetter{f: f, reason: reason})
		case broker.Skipped:
			// NOTE: SQS counts this receive in ApproximateReceiveCount, so a
			// skipped delivery still counts as an attempt here.
			changes = append(changes, visibilityChange{f: f})
		}
	}
	if err := c.changeVisibility(ctx, changes, "ChangeMessageVisibilityBatch"); err != nil {
		errs = append(errs, err)
	}
	for _, dl := range deadLetters {
		if err := c.deadLetter(ctx, dl); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// retryDelay is the backoff before retry number attempt, rounded up to the
// whole seconds that SQS accepts and capped at its maximum visibility
// timeout.
func (c *consumer) retryDelay(attempt uint32) time.Duration {
	d := roundUpToSeconds(c.opts.Retry.Delay(int(attempt)))
	return min(d, maxVisibilitySecs*time.Second)
}

func retriesExhausted(s broker.Settlement, attempt uint32, maxRetries int) string {
	reason := fmt.Sprintf("%s on attempt %d, after the maximum of %d retries", s.Result, attempt, maxRetries)
	if s.Reason != "" {
		reason += ": " + s.Reason
	}
	return reason
}

func (f *inflight) deleteEntry() deleteEntry {
	return deleteEntry{token: f.token, queue: f.queue, receipt: f.receipt, id: f.id}
}

// Commit deletes the given deliveries, together with every delete still
// queued, and returns once the deletes completed.
func (c *consumer) Commit(ctx context.Context, tokens []uint64) error {
	if err := c.enter(); err != nil {
		return err
	}
	defer c.ops.Done()
	ctx, stop := mergeCancel(ctx, c.ctx)
	defer stop()

	var errs []error
	var own []deleteEntry
	for _, token := range tokens {
		f := c.take(token)
		if f == nil {
			errs = append(errs, unknownToken(token))
			continue
		}
		own = append(own, f.deleteEntry())
	}
	if err := c.deletes.flush(ctx, own); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// changeVisibility sends ChangeMessageVisibilityBatch calls of up to 10
// entries per queue. It holds extendMu, so no extension sent earlier can
// arrive later and override these timeouts. Failures are logged and
// returned.
func (c *consumer) changeVisibility(ctx context.Context, changes []visibilityChange, op string) error {
	if len(changes) == 0 {
		return nil
	}
	c.extendMu.Lock()
	defer c.extendMu.Unlock()
	var errs []error
	for _, group := range groupChanges(changes) {
		for start := 0; start < len(group); start += maxBatchEntries {
			batch := group[start:min(start+maxBatchEntries, len(group))]
			entryErrs, _ := c.changeBatch(ctx, batch, op)
			for i, err := range entryErrs {
				if err != nil {
					c.log.Log(broker.LevelWarning, component, "visibility change failed",
						broker.F("broker", component), broker.F("queue", batch[i].f.queue.name),
						broker.F("id", batch[i].f.id), broker.F("err", err.Error()))
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// changeBatch sends one ChangeMessageVisibilityBatch call for messages of
// one queue and returns an error, or nil, per entry. When the call as a
// whole failed, callErr is that error and every entry has it.
func (c *consumer) changeBatch(ctx context.Context, batch []visibilityChange, op string) (errs []error, callErr error) {
	q := batch[0].f.queue
	in := &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(q.url)}
	for i, ch := range batch {
		in.Entries = append(in.Entries, types.ChangeMessageVisibilityBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(i)),
			ReceiptHandle:     aws.String(ch.f.receipt),
			VisibilityTimeout: int32(ch.timeout / time.Second),
		})
	}
	errs = make([]error, len(batch))
	callCtx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	out, err := c.api.ChangeMessageVisibilityBatch(callCtx, in)
	if err != nil {
		callErr = translate(err, op, q.name, nil)
		for i := range errs {
			errs[i] = callErr
		}
		return errs, callErr
	}
	for _, failed := range out.Failed {
		if i, ok := entryIndex(failed.Id, len(batch)); ok {
			errs[i] = entryError(broker.ErrDelivery, op, q.name, failed)
		}
	}
	return errs, nil
}

// groupChanges groups changes by queue URL, keeping their order.
func groupChanges(changes []visibilityChange) [][]visibilityChange {
	var groups [][]visibilityChange
	index := map[string]int{}
	for _, ch := range changes {
		i, ok := index[ch.f.queue.url]
		if !ok {
			i = len(groups)
			index[ch.f.queue.url] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], ch)
	}
	return groups
}

// deadLetter sends a message, with its original body and attributes and
// the reason, to its dead-letter queue, then queues its delete. When the
// send fails the message is left in flight and returns when its visibility
// timeout ends.
func (c *consumer) deadLetter(ctx context.Context, dl deadLetter) error {
	f := dl.f
	dlq, err := c.queues.deadLetterQueue(ctx, f.queue, c.opts.DeadLetter, c.cfg.DeadLetterQueueURL)
	if err == nil {
		err = c.sendDeadLetter(ctx, dlq, dl)
	}
	if err != nil {
		c.log.Log(broker.LevelError, component, "dead-letter failed, the message will be redelivered",
			broker.F("broker", component), broker.F("queue", f.queue.name),
			broker.F("id", f.id), broker.F("err", err.Error()))
		return err
	}
	c.log.Log(broker.LevelWarning, component, "message dead-lettered to "+dlq.name+": "+dl.reason,
		broker.F("broker", component), broker.F("queue", f.queue.name), broker.F("id", f.id))
	c.deletes.add(f.deleteEntry())
	return nil
}

func (c *consumer) sendDeadLetter(ctx context.Context, dlq queue, dl deadLetter) error {
	f := dl.f
	attrs := maps.Clone(f.attrs)
	if attrs == nil {
		attrs = map[string]types.MessageAttributeValue{}
	}

	reason := stringAttr(deadLetterReason(dl.reason))
	delete(attrs, attrDeadLetterReason) // a message dead-lettered before gets the new reason
	room := len(attrs) < maxAttributes
	withReason := messageSize(f.body, attrs) + len(attrDeadLetterReason) + len(dataTypeString) + len(*reason.StringValue)
	if room && withReason <= maxMessageBytes {
		attrs[attrDeadLetterReason] = reason
	} else {
		c.log.Log(broker.LevelWarning, component, "dead-letter reason not attached, the message has no room "+
			"for another attribute: "+dl.reason,
			broker.F("broker", component), broker.F("queue", f.queue.name), broker.F("id", f.id))
	}

	in := &sqs.SendMessageInput{
		QueueUrl:          aws.String(dlq.url),
		MessageBody:       aws.String(f.body),
		MessageAttributes: attrs,
	}
	if dlq.fifo {
		group := f.group
		if group == "" {
			group = defaultGroupID
		}
		in.MessageGroupId = aws.String(group)
		in.MessageDeduplicationId = aws.String(deduplicationID())
	}
	callCtx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if _, err := c.api.SendMessage(callCtx, in); err != nil {
		err = translate(err, "SendMessage", dlq.name, broker.ErrDelivery)
		if isNotFound(err) {
			c.queues.forgetDeadLetter(f.queue, c.opts.DeadLetter)
		}
		return err
	}
	return nil
}
