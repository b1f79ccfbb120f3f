package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cello-framework/cello/core/broker"
)

// maxInbox caps the buffer between the per-queue forwarders and Poll.
const maxInbox = 256

// Consumer consumes durable queues with manual acknowledgements and applies
// the application's results; see settle.go.
type Consumer struct {
	cfg      *Config
	opts     broker.ConsumerOptions
	log      broker.Logger
	prefetch int
	link     *link

	// inbox carries deliveries from the forwarders to Poll, in arrival
	// order per queue. stop is closed by Close.
	inbox chan inbound
	stop  chan struct{}

	// pollMu serializes Poll and Close. subMu guards queues and every
	// session's tags, and is held while a subscription is applied.
	pollMu sync.Mutex
	subMu  sync.Mutex
	queues []string

	// mu guards the fields below.
	mu        sync.Mutex
	closed    bool
	nextToken uint64
	inflight  map[uint64]*inflight
	scheduled map[*retry]struct{}

	// settles counts Settle and Commit calls in progress; retries counts
	// retries that are scheduled or publishing. retryCtx is cancelled when
	// Close gives up waiting for them. forwarders counts the forward
	// goroutines, which end when their session's connection closes.
	settles     sync.WaitGroup
	forwarders  sync.WaitGroup
	retries     sync.WaitGroup
	retryCtx    context.Context
	retryCancel context.CancelFunc
}

// inbound is a delivery on its way from a forwarder to Poll.
type inbound struct {
	s     *session
	queue string
	d     amqp.Delivery
}

// inflight is a delivery handed to the application and not yet settled.
// Its acknowledgement must go to the channel of session s, and only while
// s is alive: after a reconnect the broker has already requeued it.
type inflight struct {
	id    string // Delivery.ID, also kept by retry and dead-letter copies
	s     *session
	queue string
	d     amqp.Delivery
}

// NewConsumer connects within ctx and the connection timeout. It consumes
// nothing until Subscribe. opts.Prefetch, when set, replaces the config's
// prefetch_count.
func NewConsumer(ctx context.Context, cfg *Config, opts broker.ConsumerOptions, log broker.Logger) (broker.Consumer, error) {
	if log == nil {
		log = broker.NopLogger{}
	}
	c := &Consumer{
		cfg:       cfg,
		opts:      opts,
		log:       log,
		prefetch:  cfg.PrefetchCount,
		stop:      make(chan struct{}),
		inflight:  map[uint64]*inflight{},
		scheduled: map[*retry]struct{}{},
	}
	if opts.Prefetch > 0 {
		c.prefetch = opts.Prefetch
	}
	c.inbox = make(chan inbound, min(c.prefetch, maxInbox))
	c.retryCtx, c.retryCancel = context.WithCancel(context.Background())
	l, err := newLink(ctx, cfg, log, "consumer", c.setup)
	if err != nil {
		c.retryCancel()
		return nil, err
	}
	c.link = l
	return c, nil
}

// setup opens the channels of a new session and consumes the subscribed
// queues again, declaring them first in case they were deleted.
func (c *Consumer) setup(s *session) error {
	var err error
	if s.pub, err = openConfirmChannel(s); err != nil {
		return err
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return fmt.Errorf("%w: opening a rabbitmq channel: %v", broker.ErrConnection, err)
	}
	// global=false: each consumer on the channel gets its own limit.
	if err := ch.Qos(c.prefetch, 0, false); err != nil {
		return fmt.Errorf("%w: setting prefetch count %d: %v", broker.ErrConnection, c.prefetch, err)
	}

	s.sub = ch
	s.watchClose(ch.NotifyClose(make(chan *amqp.Error, 1)), "consuming channel")
	cancels := ch.NotifyCancel(make(chan string, 8))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// RabbitMQ cancels a consumer whose queue was deleted. A new session
		// declares the queue again and resumes consuming it.
		for tag := range cancels {
			s.markLost(fmt.Errorf("rabbitmq cancelled consumer %s, probably because its queue was deleted", tag))
		}
	}()

	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.isClosed() {
		// Close is about to close this session; consuming would only fail.
		return nil
	}
	return c.consume(s, c.queues)
}

// Subscribe replaces the subscription with queues, declaring each one and
// its dead-letter queue durable unless it exists. It waits up to the send
// timeout for a connection. On failure the previous subscription stays.
func (c *Consumer) Subscribe(ctx context.Context, queues []string) error {
	names, err := checkQueueNames(queues)
	if err != nil {
		return err
	}
	if c.isClosed() {
		return fmt.Errorf("rabbitmq consumer: %w", broker.ErrClosed)
	}
	s, err := c.link.session(ctx, time.Now().Add(c.cfg.SendTimeout))
	if err != nil {
		return err
	}

	c.subMu.Lock()
	defer c.subMu.Unlock()
	if err := c.consume(s, names); err != nil {
		return err
	}

	keep := map[string]bool{}
	for _, q := range names {
		keep[q] = true
	}
	for q, tag := range s.tags {
		if keep[q] {
			continue
		}
		// Deliveries already sent for q still reach Poll and can be settled.
		if err := s.sub.Cancel(tag, false); err != nil {
			return fmt.Errorf("%w: cancelling the consumer of queue %q: %v", broker.ErrConnection, q, err)
		}
		delete(s.tags, q)
		c.log.Log(broker.LevelInfo, component, "unsubscribed from queue "+q, broker.F("broker", "rabbitmq"), broker.F("queue", q))
	}
	c.queues = names
	return nil
}

func checkQueueNames(queues []string) ([]string, error) {
	if len(queues) == 0 {
		return nil, fmt.Errorf("%w: subscribe needs at least one queue", broker.ErrInvalidArgument)
	}
	seen := map[string]bool{}
	var names []string
	for _, q := range queues {
		switch {
		case strings.TrimSpace(q) == "":
			return nil, fmt.Errorf("%w: queue names must not be empty", broker.ErrInvalidArgument)
		case strings.HasPrefix(q, "amq."):
			return nil, fmt.Errorf("%w: queue %q: names starting with \"amq.\" are reserved by rabbitmq", broker.ErrInvalidArgument, q)
		case len(q)+len(".dlq") > maxShortStringLength:
			return nil, fmt.Errorf("%w: queue name %q is %d bytes; at most %d leaves room for its .dlq queue",
				broker.ErrInvalidArgument, q[:32]+"...", len(q), maxShortStringLength-len(".dlq"))
		}
		if !seen[q] {
			seen[q] = true
			names = append(names, q)
		}
	}
	return names, nil
}

// consume declares and starts consuming each queue of names that s does not
// consume yet. Callers hold subMu.
func (c *Consumer) consume(s *session, names []string) error {
	// Close sets closed before it takes subMu to cancel the consumers, so
	// no forwarder starts after Close began waiting for them.
	if c.isClosed() {
		return fmt.Errorf("rabbitmq consumer: %w", broker.ErrClosed)
	}
	var added []string
	for _, q := range names {
		if _, ok := s.tags[q]; !ok {
			added = append(added, q)
		}
	}
	if len(added) == 0 {
		return nil
	}
	if err := c.declare(s, added); err != nil {
		return err
	}
	for _, q := range added {
		tag := "cello-" + uuid.NewString()
		deliveries, err := s.sub.Consume(q, tag, false, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("%w: consuming queue %q: %v", broker.ErrConnection, q, err)
		}
		s.tags[q] = tag
		c.forwarders.Add(1)
		go c.forward(s, q, deliveries)
		c.log.Log(broker.LevelInfo, component,
			fmt.Sprintf("subscribed to queue %s with prefetch %d, dead letters go to %s", q, c.prefetch, c.deadLetterQueue(q)),
			broker.F("broker", "rabbitmq"), broker.F("queue", q))
	}
	return nil
}

// declare declares queues and their dead-letter queues durable. A queue
// that already exists with other properties, such as its own dead-letter
// exchange or another queue type, is consumed as it is. RabbitMQ rejects
// the declaration of such a queue with 406 PRECONDITION_FAILED and closes
// the channel, so the next declaration opens a new one.
func (c *Consumer) declare(s *session, queues []string) error {
	var ch *amqp.Channel
	defer func() {
		if ch != nil {
			ch.Close()
		}
	}()
	for _, q := range queues {
		for _, name := range []string{q, c.deadLetterQueue(q)} {
			if ch == nil || ch.IsClosed() {
				var err error
				if ch, err = s.conn.Channel(); err != nil {
					return fmt.Errorf("%w: opening a rabbitmq channel: %v", broker.ErrConnection, err)
				}
			}
			_, err := ch.QueueDeclare(name, true, false, false, false, nil)
			var amqpErr *amqp.Error
			if errors.As(err, &amqpErr) && amqpErr.Server && amqpErr.Code == amqp.PreconditionFailed {
				c.log.Log(broker.LevelInfo, component,
					fmt.Sprintf("queue %s exists with other properties than durable and no arguments, consuming it as it is", name),
					broker.F("broker", "rabbitmq"), broker.F("queue", q), broker.F("err", amqpErr.Reason))
				continue
			}
			if err != nil {
				return declareError(name, err)
			}
		}
		if c.opts.Exchange != "" {
			if err := c.bind(s, &ch, q); err != nil {
				return err
			}
		}
	}
	return nil
}

// bind declares the options' exchange durable and binds queue to it.
func (c *Consumer) bind(s *session, ch **amqp.Channel, queue string) error {
	if *ch == nil || (*ch).IsClosed() {
		var err error
		if *ch, err = s.conn.Channel(); err != nil {
			return fmt.Errorf("%w: opening a rabbitmq channel: %v", broker.ErrConnection, err)
		}
	}
	exchange, kind := c.opts.Exchange, c.opts.ExchangeType
	err := (*ch).ExchangeDeclare(exchange, kind, true, false, false, false, nil)
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Server && amqpErr.Code == amqp.PreconditionFailed {
		return fmt.Errorf("%w: exchange %q exists with another type or settings than a durable %s exchange; pass its exchange_type: %s",
			broker.ErrConfig, exchange, kind, amqpErr.Reason)
	}
	if err != nil {
		return fmt.Errorf("%w: declaring exchange %q: %v", broker.ErrConnection, exchange, err)
	}
	key := c.opts.RoutingKey
	if key == "" {
		key = queue
	}
	if err := (*ch).QueueBind(queue, key, exchange, false, nil); err != nil {
		return fmt.Errorf("%w: binding queue %q to exchange %q with routing key %q: %v", broker.ErrConnection, queue, exchange, key, err)
	}
	c.log.Log(broker.LevelInfo, component, fmt.Sprintf("bound queue %s to %s exchange %s with routing key %q", queue, kind, exchange, key),
		broker.F("broker", "rabbitmq"), broker.F("queue", queue))
	return nil
}

func declareError(queue string, err error) error {
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Server {
		switch amqpErr.Code {
		case amqp.ResourceLocked:
			return fmt.Errorf("%w: queue %q is exclusive to another connection: %s", broker.ErrInvalidArgument, queue, amqpErr.Reason)
		case amqp.AccessRefused:
			return fmt.Errorf("%w: rabbitmq denied declaring queue %q; the user needs configure permission on it: %s",
				broker.ErrConfig, queue, amqpErr.Reason)
		}
	}
	return fmt.Errorf("%w: declaring queue %q: %v", broker.ErrConnection, queue, err)
}

// deadLetterQueue returns where dead-lettered messages of queue go.
func (c *Consumer) deadLetterQueue(queue string) string {
	if c.opts.DeadLetter != "" {
		return c.opts.DeadLetter
	}
	return queue + ".dlq"
}

// forward moves the deliveries of one queue to the inbox until the consumer
// is cancelled, the session is lost or the consumer is closed. A delivery it
// drops stays unacknowledged, so RabbitMQ requeues it when the connection
// closes.
func (c *Consumer) forward(s *session, queue string, deliveries <-chan amqp.Delivery) {
	defer c.forwarders.Done()
	for d := range deliveries {
		select {
		case c.inbox <- inbound{s: s, queue: queue, d: d}:
		case <-s.lost:
			return
		case <-c.stop:
			return
		}
	}
}

// Poll waits up to timeout for the first delivery, then adds those already
// received, up to max in all (max <= 0 means the prefetch count).
func (c *Consumer) Poll(ctx context.Context, timeout time.Duration, max int) ([]broker.Delivery, error) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if c.isClosed() {
		return nil, fmt.Errorf("rabbitmq consumer: %w", broker.ErrClosed)
	}
	if max <= 0 {
		max = c.prefetch
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var out []broker.Delivery
	for len(out) == 0 {
		select {
		case in := <-c.inbox:
			out = c.accept(out, in)
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, nil
		case <-c.stop:
			return nil, fmt.Errorf("rabbitmq consumer: %w", broker.ErrClosed)
		}
	}
	for len(out) < max {
		select {
		case in := <-c.inbox:
			out = c.accept(out, in)
		default:
			return out, nil
		}
	}
	return out, nil
}

// accept registers a delivery and appends it to out, unless its session was
// lost: RabbitMQ has requeued it and sends it again.
func (c *Consumer) accept(out []broker.Delivery, in inbound) []broker.Delivery {
	if in.s.isLost() {
		c.log.Log(broker.LevelDebug, component,
			fmt.Sprintf("dropped message %s received on a lost connection; rabbitmq delivers it again", in.d.MessageId),
			broker.F("broker", "rabbitmq"), broker.F("queue", in.queue))
		return out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextToken++
	d := toDelivery(c.nextToken, in.queue, &in.d)
	c.inflight[d.Token] = &inflight{id: d.ID, s: in.s, queue: in.queue, d: in.d}
	return append(out, d)
}

func (c *Consumer) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// begin registers a Settle or Commit call, unless the consumer is closed.
func (c *Consumer) begin() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("rabbitmq consumer: %w", broker.ErrClosed)
	}
	c.settles.Add(1)
	return nil
}

// Close stops consuming, publishes the scheduled retries at once, waits
// until ctx ends for them and for Settle calls in progress, then closes the
// connection. Unsettled deliveries return to their queues.
func (c *Consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	c.mu.Unlock()

	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	err := waitCtx(ctx, &c.settles, "settle calls in progress")
	c.cancelConsumers()
	c.flushRetries()
	if werr := waitCtx(ctx, &c.retries, "retries in progress"); err == nil {
		err = werr
	}
	c.retryCancel()
	c.retries.Wait()
	c.link.close()
	c.forwarders.Wait()
	return err
}

// cancelConsumers stops the broker from sending more deliveries while
// Close publishes the pending retries.
func (c *Consumer) cancelConsumers() {
	s := c.link.currentSession()
	if s == nil {
		return
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	for q, tag := range s.tags {
		if err := s.sub.Cancel(tag, false); err != nil {
			c.log.Log(broker.LevelDebug, component, "cancelling the consumer failed",
				broker.F("broker", "rabbitmq"), broker.F("queue", q), broker.F("err", err.Error()))
		}
		delete(s.tags, q)
	}
}

// waitCtx waits for wg until ctx ends. The helper goroutine ends with wg,
// whose calls are all bounded by their own deadlines.
func waitCtx(ctx context.Context, wg *sync.WaitGroup, operation string) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: closing the rabbitmq consumer before %s finished: %v", broker.ErrTimeout, operation, ctx.Err())
	}
}

var _ broker.Consumer = (*Consumer)(nil)
