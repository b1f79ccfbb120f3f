package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cello-framework/cello/core/broker"
)

// errSessionLost means a delivery's connection was lost before it could be
// settled. RabbitMQ has requeued the delivery, so callers treat it as done.
var errSessionLost = errors.New("connection lost")

// retry is a Nack waiting out its backoff. The original delivery stays
// unacknowledged meanwhile, so a crash during the wait loses nothing.
type retry struct {
	f       *inflight
	retries int // the x-cello-retries value of the copy
	timer   *time.Timer
}

// Settle applies each result:
//
//   - Ack: basic.ack.
//   - Nack: after the retry policy's backoff, publish a copy to the same
//     queue with x-cello-retries increased, then ack the original. Once the
//     maximum number of retries is reached, dead-letter instead.
//   - Requeue: the same as Nack without the backoff. RabbitMQ does not count
//     a basic.nack with requeue, so a republished copy carries the count.
//     NOTE: the copy joins the tail of the queue, where basic.nack would
//     have put the message back near the head.
//   - Reject: basic.reject without requeue; a dead-letter exchange set on
//     the queue by its owner still applies.
//   - DeadLetter: publish a copy to the dead-letter queue, then ack.
//   - Skipped: basic.nack with requeue, without counting an attempt.
//
// Settling a delivery whose connection was lost does nothing, because
// RabbitMQ has already requeued it. Settle returns the first error and
// still applies the other results.
func (c *Consumer) Settle(ctx context.Context, results []broker.Settlement) error {
	if err := c.begin(); err != nil {
		return err
	}
	defer c.settles.Done()
	var firstErr error
	for _, st := range results {
		if err := c.settle(ctx, st); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// Commit acknowledges the given deliveries and returns once the
// acknowledgements are written to the connection.
func (c *Consumer) Commit(ctx context.Context, tokens []uint64) error {
	if err := c.begin(); err != nil {
		return err
	}
	defer c.settles.Done()
	var firstErr error
	for _, token := range tokens {
		if err := c.settle(ctx, broker.Settlement{Token: token, Result: broker.Ack}); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

func (c *Consumer) settle(ctx context.Context, st broker.Settlement) error {
	if !st.Result.Valid() {
		return fmt.Errorf("%w: delivery token %d has undefined result %d", broker.ErrInvalidArgument, st.Token, st.Result)
	}
	c.mu.Lock()
	f, ok := c.inflight[st.Token]
	delete(c.inflight, st.Token)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: delivery token %d is unknown or already settled", broker.ErrNotFound, st.Token)
	}
	if f.s.isLost() {
		c.logStale(f, st.Result)
		return nil
	}

	result, reason := st.Result, st.Reason
	retries := retryCount(f.d.Headers)
	if (result == broker.Nack || result == broker.Requeue) && retries >= c.opts.Retry.MaxRetries {
		result = broker.DeadLetter
		reason = fmt.Sprintf("max retries (%d) exceeded", c.opts.Retry.MaxRetries)
		if st.Reason != "" {
			reason += ": " + st.Reason
		}
	}

	switch result {
	case broker.Ack:
		return c.ack(f)
	case broker.Nack:
		c.schedule(f, retries+1, c.opts.Retry.Delay(retries+1))
		return nil
	case broker.Requeue:
		return c.retryNow(ctx, f, retries+1)
	case broker.Reject:
		c.log.Log(broker.LevelWarning, component,
			fmt.Sprintf("message %s from queue %s rejected, dropping it: %s", f.id, f.queue, reason),
			broker.F("broker", "rabbitmq"), broker.F("queue", f.queue))
		return c.settleError(f, "reject", f.s.sub.Reject(f.d.DeliveryTag, false))
	case broker.DeadLetter:
		return c.deadLetter(ctx, f, reason)
	case broker.Skipped:
		return c.settleError(f, "requeue", f.s.sub.Nack(f.d.DeliveryTag, false, true))
	}
	return nil
}

func (c *Consumer) logStale(f *inflight, result broker.Result) {
	c.log.Log(broker.LevelDebug, component,
		fmt.Sprintf("%s of message %s ignored: its connection was lost, so rabbitmq delivers it again", result, f.id),
		broker.F("broker", "rabbitmq"), broker.F("queue", f.queue))
}

func (c *Consumer) ack(f *inflight) error {
	return c.settleError(f, "ack", f.s.sub.Ack(f.d.DeliveryTag, false))
}

// settleError wraps the error of writing an ack, nack or reject.
func (c *Consumer) settleError(f *inflight, method string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: sending the %s of message %s from queue %q failed, so rabbitmq delivers it again: %v",
		broker.ErrConnection, method, f.id, f.queue, err)
}

// schedule publishes the retry copy of f after delay without holding up
// the caller. A closed consumer leaves f unacknowledged instead, and
// RabbitMQ requeues it when the connection closes.
func (c *Consumer) schedule(f *inflight, retries int, delay time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	r := &retry{f: f, retries: retries}
	c.scheduled[r] = struct{}{}
	c.retries.Add(1)
	r.timer = time.AfterFunc(delay, func() { c.fire(r) })
}

// fire runs a scheduled retry once, whether its timer or Close started it.
func (c *Consumer) fire(r *retry) {
	c.mu.Lock()
	_, ok := c.scheduled[r]
	delete(c.scheduled, r)
	c.mu.Unlock()
	if !ok {
		return
	}
	defer c.retries.Done()
	if err := c.retryNow(c.retryCtx, r.f, r.retries); err != nil {
		c.log.Log(broker.LevelWarning, component, fmt.Sprintf("retry %d of message %s failed", r.retries, r.f.id),
			broker.F("broker", "rabbitmq"), broker.F("queue", r.f.queue), broker.F("err", err.Error()))
	}
}

// flushRetries starts every scheduled retry now. Close uses it because
// leaving the originals unacknowledged would requeue them at once anyway,
// only without their retry count.
func (c *Consumer) flushRetries() {
	c.mu.Lock()
	var due []*retry
	for r := range c.scheduled {
		if r.timer.Stop() {
			due = append(due, r)
		}
	}
	c.mu.Unlock()
	for _, r := range due {
		go c.fire(r)
	}
}

// retryNow publishes a copy of f to its queue with x-cello-retries set to
// retries, then acknowledges f. If the copy cannot be published, f is
// requeued with basic.nack, which keeps the message but not the count.
func (c *Consumer) retryNow(ctx context.Context, f *inflight, retries int) error {
	err := c.republish(ctx, f, f.queue, func(h amqp.Table) { h[retriesHeader] = int32(retries) })
	switch {
	case errors.Is(err, errSessionLost):
		c.logStale(f, broker.Nack)
		return nil
	case err != nil:
		nackErr := f.s.sub.Nack(f.d.DeliveryTag, false, true)
		return fmt.Errorf("retry %d of message %s could not be published to queue %q, requeued it without the count (requeue error: %v): %w",
			retries, f.id, f.queue, nackErr, err)
	}
	c.log.Log(broker.LevelDebug, component, fmt.Sprintf("message %s published again for retry %d", f.id, retries),
		broker.F("broker", "rabbitmq"), broker.F("queue", f.queue))
	return c.ack(f)
}

// deadLetter publishes a copy of f to the dead-letter queue with the reason
// and the original queue in its headers, waits for the confirm, then
// acknowledges f. On failure f goes back to its queue: by basic.nack, or by
// the broker when the connection was lost.
func (c *Consumer) deadLetter(ctx context.Context, f *inflight, reason string) error {
	dest := c.deadLetterQueue(f.queue)
	err := c.republish(ctx, f, dest, func(h amqp.Table) {
		h[deadLetterReasonHdr] = reason
		h[originalQueueHeader] = f.queue
	})
	switch {
	case errors.Is(err, errSessionLost):
		c.logStale(f, broker.DeadLetter)
		return nil
	case err != nil:
		nackErr := f.s.sub.Nack(f.d.DeliveryTag, false, true)
		c.log.Log(broker.LevelError, component,
			fmt.Sprintf("dead-lettering message %s to %s failed, requeued it", f.id, dest),
			broker.F("broker", "rabbitmq"), broker.F("queue", f.queue), broker.F("err", err.Error()))
		if nackErr != nil {
			return fmt.Errorf("dead-lettering message %s to queue %q: %w (requeue failed too: %v)", f.id, dest, err, nackErr)
		}
		return fmt.Errorf("dead-lettering message %s to queue %q: %w", f.id, dest, err)
	}
	c.log.Log(broker.LevelWarning, component,
		fmt.Sprintf("message %s from queue %s dead-lettered to %s: %s", f.id, f.queue, dest, reason),
		broker.F("broker", "rabbitmq"), broker.F("queue", f.queue))
	return c.ack(f)
}

// republish publishes a copy of f to queue on f's own session and waits for
// the confirm, at most the send timeout. It returns errSessionLost when that
// session is gone, because the copy must not be published beside the
// original that RabbitMQ requeues.
func (c *Consumer) republish(ctx context.Context, f *inflight, queue string, edit func(amqp.Table)) error {
	if f.s.isLost() {
		return errSessionLost
	}
	items := []outgoing{copyForQueue(&f.d, f.id, queue, edit)}
	results := make([]error, 1)
	if lost := f.s.pub.publish(ctx, time.Now().Add(c.cfg.SendTimeout), items, []int{0}, results); len(lost) > 0 {
		return errSessionLost
	}
	return results[0]
}
