package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cello-framework/cello/core/broker"
)

// outgoing is one message ready to publish.
type outgoing struct {
	exchange   string
	routingKey string
	msg        amqp.Publishing
}

// confirmChannel is a channel in confirm mode whose publishes carry the
// mandatory flag. RabbitMQ sends basic.return for a message that reached no
// queue, and then still acknowledges it, so a publish succeeded only when it
// was acknowledged and not returned.
//
// amqp091-go hands each basic.return to the returns channel before it
// processes the acknowledgement that follows, and completes a
// DeferredConfirmation only when it processes that acknowledgement. So once
// a publish's confirmation is done, its return, if any, is either still in
// the returns channel or already taken by collect. fence waits until collect
// has recorded everything in the channel, which closes that window.
type confirmChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	fences  chan chan struct{}
	done    chan struct{} // closed when collect ends, after the channel closed
	// closed is closed once the channel closed and closeErr is final.
	closed chan struct{}

	mu sync.Mutex
	// watching counts the publishes in flight per message id; returns of
	// other ids are dropped.
	watching map[string]int
	returned map[string][]amqp.Return
	closeErr *amqp.Error // the broker's reason for closing the channel, if it gave one
}

// openConfirmChannel opens a channel in confirm mode on s. Its closing ends
// the session.
func openConfirmChannel(s *session) (*confirmChannel, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("%w: opening a rabbitmq channel: %v", broker.ErrConnection, err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("%w: enabling publisher confirms: %v", broker.ErrConnection, err)
	}
	c := &confirmChannel{
		ch: ch,
		// A buffer, so that a burst of returns does not stall the
		// connection's reader while collect takes them one by one.
		returns:  ch.NotifyReturn(make(chan amqp.Return, 64)),
		fences:   make(chan chan struct{}),
		done:     make(chan struct{}),
		closed:   make(chan struct{}),
		watching: map[string]int{},
		returned: map[string][]amqp.Return{},
	}
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		defer close(c.closed)
		err, ok := <-closes
		if ok && err != nil {
			c.mu.Lock()
			c.closeErr = err
			c.mu.Unlock()
			s.markLost(fmt.Errorf("publishing channel closed: %w", err))
			return
		}
		s.markLost(errors.New("publishing channel closed"))
	}()
	go func() {
		defer s.wg.Done()
		c.collect()
	}()
	return c, nil
}

// collect records returns and completes fence requests until the channel
// closes.
func (c *confirmChannel) collect() {
	defer close(c.done)
	for {
		select {
		case r, ok := <-c.returns:
			if !ok {
				return
			}
			c.record(r)
		case f := <-c.fences:
			c.drainReturns()
			close(f)
		}
	}
}

func (c *confirmChannel) drainReturns() {
	for {
		select {
		case r, ok := <-c.returns:
			if !ok {
				return
			}
			c.record(r)
		default:
			return
		}
	}
}

func (c *confirmChannel) record(r amqp.Return) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watching[r.MessageId] > 0 {
		c.returned[r.MessageId] = append(c.returned[r.MessageId], r)
	}
}

// fence returns once every return that amqp091-go handed over before the
// call is recorded.
func (c *confirmChannel) fence() {
	f := make(chan struct{})
	select {
	case c.fences <- f:
		<-f
	case <-c.done:
	}
}

func (c *confirmChannel) watch(id string) {
	c.mu.Lock()
	c.watching[id]++
	c.mu.Unlock()
}

func (c *confirmChannel) unwatch(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watching[id]--; c.watching[id] <= 0 {
		delete(c.watching, id)
		delete(c.returned, id)
	}
}

// takeReturn removes and returns one recorded return of message id.
func (c *confirmChannel) takeReturn(id string) (amqp.Return, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.returned[id]
	if len(rs) == 0 {
		return amqp.Return{}, false
	}
	c.returned[id] = rs[1:]
	return rs[0], true
}

func (c *confirmChannel) brokerCloseError() *amqp.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// publish sends items[i] for each i in indexes, then waits until deadline
// or until ctx ends for their confirmations, and writes each outcome to
// results[i]. It returns the indexes whose outcome is unknown because the
// connection was lost, so the caller may publish them again on the next
// session. A message may then arrive twice, which at-least-once delivery
// allows.
func (c *confirmChannel) publish(ctx context.Context, deadline time.Time, items []outgoing, indexes []int, results []error) (lost []int) {
	confirms := make([]*amqp.DeferredConfirmation, len(indexes))
	for n, i := range indexes {
		it := &items[i]
		c.watch(it.msg.MessageId)
		defer c.unwatch(it.msg.MessageId)
		dc, err := c.ch.PublishWithDeferredConfirm(it.exchange, it.routingKey, true, false, it.msg)
		if err != nil {
			if c.ch.IsClosed() {
				lost = append(lost, i)
			} else {
				results[i] = fmt.Errorf("%w: publishing to routing key %q: %v", broker.ErrDelivery, it.routingKey, err)
			}
			continue
		}
		confirms[n] = dc
	}
	// NOTE: a publish blocks while RabbitMQ applies flow control (a memory
	// or disk alarm) and the socket buffer is full. amqp091-go writes
	// without a deadline, so the deadline only bounds the wait below.
	waitConfirms(ctx, deadline, confirms)
	c.fence()
	for n, i := range indexes {
		if dc := confirms[n]; dc != nil {
			if outcome, retry := c.outcome(&items[i], dc); retry {
				lost = append(lost, i)
			} else {
				results[i] = outcome
			}
		}
	}
	return lost
}

// waitConfirms waits for every confirmation, or until deadline or until ctx
// ends.
func waitConfirms(ctx context.Context, deadline time.Time, confirms []*amqp.DeferredConfirmation) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for _, dc := range confirms {
		if dc == nil {
			continue
		}
		select {
		case <-dc.Done():
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// outcome decides what a finished wait means for one publish. retry is set
// when the channel closed without a reason that applies to the message.
func (c *confirmChannel) outcome(it *outgoing, dc *amqp.DeferredConfirmation) (err error, retry bool) {
	select {
	case <-dc.Done():
	default:
		return fmt.Errorf("%w: rabbitmq did not confirm the message for routing key %q in time", broker.ErrTimeout, it.routingKey), false
	}
	if r, ok := c.takeReturn(it.msg.MessageId); ok {
		return fmt.Errorf("%w: no queue is bound to routing key %q on %s, so rabbitmq returned the message (%d %s)",
			broker.ErrNotFound, it.routingKey, describeExchange(it.exchange), r.ReplyCode, r.ReplyText), false
	}
	if dc.Acked() {
		return nil, false
	}
	if !c.ch.IsClosed() {
		return fmt.Errorf("%w: rabbitmq rejected the message for routing key %q (basic.nack)", broker.ErrDelivery, it.routingKey), false
	}
	// amqp091-go completes the confirmations still pending on a closed
	// channel as negative ones. Only the broker's reason shows whether the
	// message itself was at fault. amqp091-go queues that reason for the
	// close watcher before it completes the confirmations, so the wait for
	// the watcher is short.
	<-c.closed
	closeErr := c.brokerCloseError()
	if closeErr == nil || !closeErr.Server || !closeErr.Recover {
		return nil, true
	}
	return channelError(closeErr, it)
}

// sizeLimitPattern reads the limit from RabbitMQ's message for a body over
// max_message_size, such as "PRECONDITION_FAILED - message size 200 is
// larger than configured max size 100" (RabbitMQ 3.10).
var sizeLimitPattern = regexp.MustCompile(`larger than configured max size (\d+)`)

// channelError translates the broker's reason for closing a channel into
// the error of one message that was in flight on it.
func channelError(closeErr *amqp.Error, it *outgoing) (err error, retry bool) {
	switch closeErr.Code {
	case amqp.NotFound:
		return fmt.Errorf("%w: %s does not exist: %s", broker.ErrNotFound, describeExchange(it.exchange), closeErr.Reason), false
	case amqp.AccessRefused:
		return fmt.Errorf("%w: rabbitmq denied the user access to %s: %s", broker.ErrDelivery, describeExchange(it.exchange), closeErr.Reason), false
	case amqp.PreconditionFailed:
		if m := sizeLimitPattern.FindStringSubmatch(closeErr.Reason); m != nil {
			limit, _ := strconv.Atoi(m[1])
			if len(it.msg.Body) <= limit {
				// Another message on the channel was too large.
				return nil, true
			}
			return fmt.Errorf("%w: the message body of %d bytes is over rabbitmq's max_message_size of %d bytes; "+
				"set max_message_bytes to match the broker", broker.ErrTooLarge, len(it.msg.Body), limit), false
		}
	}
	return fmt.Errorf("%w: rabbitmq closed the channel: %s", broker.ErrDelivery, closeErr.Error()), false
}

func describeExchange(name string) string {
	if name == "" {
		return "the default exchange"
	}
	return fmt.Sprintf("exchange %q", name)
}
