package sqs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cello-framework/cello/core/broker"
)

type consumer struct {
	cfg     *Config
	opts    broker.ConsumerOptions
	api     *api
	queues  *queues
	log     broker.Logger
	deletes *deleter

	// closing ends when Close starts, which ends the receives and the
	// round of extensions in flight. ctx ends when Close finishes or gives
	// up waiting, which ends every other call. stop ends the extender and
	// delete loops.
	closing    context.Context
	startClose context.CancelFunc
	ctx        context.Context
	cancel     context.CancelFunc
	stop       chan struct{}
	background sync.WaitGroup // the extender and delete loops and the receives
	ops        sync.WaitGroup // public calls that passed the closed check

	// extendMu is held during a round of visibility extensions and during
	// the visibility changes of Settle and Close, so an extension sent
	// before a settlement cannot reach SQS after it and undo it.
	extendMu     sync.Mutex
	wakeExtender chan struct{}

	// arrived is signalled whenever a ReceiveMessage call ends.
	arrived chan struct{}

	// mu guards the fields below it.
	mu        sync.Mutex
	closed    bool
	subs      []subscription
	receiving map[string]bool // queue URLs with a ReceiveMessage in flight
	nextToken uint64
	pending   map[uint64]*inflight // received and not settled, by token
	buffered  []broker.Delivery    // received but not yet returned by Poll
}

// subscription is one subscribed queue and the visibility timeout that a
// receive gives its messages.
type subscription struct {
	queue      queue
	visibility time.Duration
	// setVisibility is true when visibility comes from the config or the
	// consumer options and is passed to ReceiveMessage. Otherwise it is the
	// queue's own.
	setVisibility bool
}

// inflight is a received message that is not settled yet. Its fields other
// than extendAt, which the consumer's mu guards, never change.
type inflight struct {
	token      uint64
	queue      queue
	receipt    string
	id         string
	attempt    uint32
	group      string
	body       string // as received, for dead-lettering
	attrs      map[string]types.MessageAttributeValue
	visibility time.Duration
	extendAt   time.Time // when to extend its visibility, or zero for never
}

// NewConsumer connects a consumer and checks that the config's queue exists.
// It subscribes to nothing: call Subscribe, with an empty list for the
// config's queue.
func NewConsumer(ctx context.Context, cfg *Config, opts broker.ConsumerOptions, log broker.Logger) (broker.Consumer, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: sqs consumer needs a config", broker.ErrInvalidArgument)
	}
	if log == nil {
		log = broker.NopLogger{}
	}
	a, err := newAPI(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	qs := newQueues(a.Client, cfg)
	if _, err := qs.visibilityTimeout(ctx, qs.home); err != nil {
		a.closeIdle()
		return nil, err
	}

	c := &consumer{
		cfg:          cfg,
		opts:         opts,
		api:          a,
		queues:       qs,
		log:          log,
		stop:         make(chan struct{}),
		wakeExtender: make(chan struct{}, 1),
		arrived:      make(chan struct{}, 1),
		receiving:    map[string]bool{},
		pending:      map[uint64]*inflight{},
	}
	c.closing, c.startClose = context.WithCancel(context.Background())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.deletes = newDeleter(a.Client, cfg.RequestTimeout, log)

	c.background.Add(2)
	go func() {
		defer c.background.Done()
		c.deletes.run(c.ctx, c.stop)
	}()
	go func() {
		defer c.background.Done()
		c.extendLoop()
	}()
	log.Log(broker.LevelInfo, component, "consumer started",
		broker.F("broker", component), broker.F("queue", qs.home.name))
	return c, nil
}

// enter registers a public call, or returns broker.ErrClosed.
func (c *consumer) enter() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("%w: sqs consumer", broker.ErrClosed)
	}
	c.ops.Add(1)
	return nil
}

// Subscribe resolves queue names and URLs, checks that each queue exists,
// and replaces the subscription. An empty list subscribes to the config's
// queue_url.
func (c *consumer) Subscribe(ctx context.Context, names []string) error {
	if err := c.enter(); err != nil {
		return err
	}
	defer c.ops.Done()
	ctx, stop := mergeCancel(ctx, c.ctx)
	defer stop()
	if len(names) == 0 {
		names = []string{""}
	}

	var subs []subscription
	seen := map[string]bool{}
	for _, name := range names {
		q, err := c.queues.resolve(ctx, name)
		if err != nil {
			return err
		}
		if seen[q.url] {
			continue
		}
		seen[q.url] = true
		sub, err := c.subscription(ctx, q)
		if err != nil {
			return err
		}
		subs = append(subs, sub)
	}

	c.mu.Lock()
	c.subs = subs
	c.mu.Unlock()
	for _, s := range subs {
		c.log.Log(broker.LevelInfo, component, "subscribed",
			broker.F("broker", component), broker.F("queue", s.queue.name))
	}
	return nil
}

// subscription reads the queue's own visibility timeout, which also checks
// that it exists, and chooses the one receives use: the consumer options',
// else the config's, else the queue's.
func (c *consumer) subscription(ctx context.Context, q queue) (subscription, error) {
	own, err := c.queues.visibilityTimeout(ctx, q)
	if err != nil {
		return subscription{}, err
	}
	sub := subscription{queue: q, visibility: own}
	switch {
	case c.opts.VisibilityTimeout > 0:
		sub.visibility = roundUpToSeconds(c.opts.VisibilityTimeout)
		sub.setVisibility = true
	case c.cfg.VisibilityTimeoutSecs > 0:
		sub.visibility = time.Duration(c.cfg.VisibilityTimeoutSecs) * time.Second
		sub.setVisibility = true
	}
	return sub, nil
}

// take removes a delivery from the in-flight set, which also stops its
// extension, and returns it, or nil for an unknown token.
func (c *consumer) take(token uint64) *inflight {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.pending[token]
	if f == nil {
		return nil
	}
	delete(c.pending, token)
	for i, d := range c.buffered {
		if d.Token == token {
			c.buffered = append(c.buffered[:i:i], c.buffered[i+1:]...)
			break
		}
	}
	return f
}

func unknownToken(token uint64) error {
	return fmt.Errorf("%w: delivery token %d is unknown or already settled", broker.ErrNotFound, token)
}

// Close stops receiving, waits for Settle and Commit calls in flight, sends
// the pending deletes, makes unsettled and buffered messages visible again
// at once so another consumer can take them, and releases the HTTP
// connections. Each step is bounded by ctx.
func (c *consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	c.startClose()
	var errs []error
	if !waitGroup(ctx, &c.ops) {
		errs = append(errs, fmt.Errorf("%w: sqs consumer close cancelled calls still in flight: %w",
			broker.ErrTimeout, ctx.Err()))
		c.cancel()
		c.ops.Wait()
	}
	close(c.stop)
	c.background.Wait()
	if err := c.deletes.flush(ctx, c.deletes.takePending()); err != nil {
		errs = append(errs, err)
	}
	c.mu.Lock()
	var unsettled []*inflight
	for _, f := range c.pending {
		unsettled = append(unsettled, f)
	}
	c.pending, c.buffered = map[uint64]*inflight{}, nil
	c.mu.Unlock()
	changes := make([]visibilityChange, len(unsettled))
	for i, f := range unsettled {
		changes[i] = visibilityChange{f: f}
	}
	// Releasing is best effort: changeVisibility logs each failure, and a
	// message it could not release returns when its visibility timeout ends.
	_ = c.changeVisibility(ctx, changes, "ChangeMessageVisibilityBatch (release on close)")
	c.cancel()
	c.api.closeIdle()
	c.log.Log(broker.LevelInfo, component, "consumer closed",
		broker.F("broker", component), broker.F("queue", c.queues.home.name))
	return errors.Join(errs...)
}

// roundUpToSeconds rounds d up to whole seconds, the unit of SQS timeouts.
func roundUpToSeconds(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}
