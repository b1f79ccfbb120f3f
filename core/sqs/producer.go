package sqs

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cello-framework/cello/core/broker"
)

// maxConcurrentBatches caps the SendMessageBatch calls one Send runs at once.
// Batches to a FIFO queue go one after another, to keep their order.
const maxConcurrentBatches = 4

type producer struct {
	api    *api
	queues *queues
	log    broker.Logger
	// ctx ends when Close gives up waiting, cancelling the calls in flight.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup // Send calls that passed the closed check
}

// NewProducer connects a producer and checks that the config's queue
// exists, so that a wrong queue_url or unreachable endpoint fails here.
func NewProducer(ctx context.Context, cfg *Config, log broker.Logger) (broker.Producer, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: sqs producer needs a config", broker.ErrInvalidArgument)
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
	p := &producer{api: a, queues: qs, log: log}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	log.Log(broker.LevelInfo, component, "producer started",
		broker.F("broker", component), broker.F("queue", qs.home.name))
	return p, nil
}

// destinationGroup is the messages of one Send call that go to one queue.
type destinationGroup struct {
	dest    string
	queue   queue
	entries []outEntry
}

// Send validates and encodes every message before sending any, then sends
// them in SendMessageBatch calls per destination queue.
func (p *producer) Send(ctx context.Context, msgs []broker.OutMessage) ([]broker.SendResult, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.inflight.Done()
	ctx, stop := mergeCancel(ctx, p.ctx)
	defer stop()

	groups, err := p.encode(msgs)
	if err != nil {
		return nil, err
	}
	results := make([]broker.SendResult, len(msgs))
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxConcurrentBatches)
	for _, g := range groups {
		q, err := p.queues.resolve(ctx, g.dest)
		if err != nil {
			setErr(results, g.entries, err)
			continue
		}
		g.queue = q
		runs := splitBatches(entrySizes(g.entries), maxBatchEntries, maxMessageBytes)
		if q.fifo {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, r := range runs {
					p.sendRun(ctx, slots, g.queue, g.entries[r[0]:r[1]], results)
				}
			}()
			continue
		}
		for _, r := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.sendRun(ctx, slots, g.queue, g.entries[r[0]:r[1]], results)
			}()
		}
	}
	wg.Wait()
	return results, nil
}

func (p *producer) enter() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("%w: sqs producer", broker.ErrClosed)
	}
	p.inflight.Add(1)
	return nil
}

// encode groups msgs by destination, keeping their order within each
// group, and encodes each one. It fails on the first invalid message.
func (p *producer) encode(msgs []broker.OutMessage) ([]*destinationGroup, error) {
	var groups []*destinationGroup
	byDest := map[string]*destinationGroup{}
	for i, m := range msgs {
		g := byDest[m.Destination]
		if g == nil {
			q, _, err := p.queues.parseDestination(m.Destination)
			if err != nil {
				return nil, fmt.Errorf("message %d: %w", i, err)
			}
			g = &destinationGroup{dest: m.Destination, queue: q}
			byDest[m.Destination] = g
			groups = append(groups, g)
		}
		e, err := encodeMessage(i, m, g.queue)
		if err != nil {
			return nil, err
		}
		g.entries = append(g.entries, e)
	}
	return groups, nil
}

// sendRun sends one SendMessageBatch call, waiting for a free slot first,
// and fills in the results of its entries.
func (p *producer) sendRun(ctx context.Context, slots chan struct{}, q queue, entries []outEntry, results []broker.SendResult) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		setErr(results, entries, translate(ctx.Err(), "SendMessageBatch", q.name, broker.ErrDelivery))
		return
	}
	defer func() { <-slots }()

	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url)}
	for i, e := range entries {
		in.Entries = append(in.Entries, e.batchEntry(strconv.Itoa(i)))
	}
	callCtx, cancel := context.WithTimeout(ctx, p.queues.timeout)
	defer cancel()
	out, err := p.api.SendMessageBatch(callCtx, in)
	if err != nil {
		err = translate(err, "SendMessageBatch", q.name, broker.ErrDelivery)
		if isNotFound(err) {
			p.queues.forget(q)
		}
		setErr(results, entries, err)
		return
	}
	done := make([]bool, len(entries))
	for _, ok := range out.Successful {
		if i, valid := entryIndex(ok.Id, len(entries)); valid {
			results[entries[i].index].ID = aws.ToString(ok.MessageId)
			done[i] = true
		}
	}
	for _, failed := range out.Failed {
		if i, valid := entryIndex(failed.Id, len(entries)); valid {
			results[entries[i].index].Err = entryError(broker.ErrDelivery, "SendMessageBatch", q.name, failed)
			done[i] = true
		}
	}
	for i, ok := range done {
		if !ok {
			results[entries[i].index].Err = fmt.Errorf("%w: sqs SendMessageBatch on queue %q returned no result for the message",
				broker.ErrDelivery, q.name)
		}
	}
}

// Close waits for Send calls in flight until ctx ends, then cancels them
// and releases the HTTP connections.
func (p *producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	var err error
	if !waitGroup(ctx, &p.inflight) {
		err = fmt.Errorf("%w: sqs producer close cancelled sends still in flight: %w", broker.ErrTimeout, ctx.Err())
	}
	p.cancel()
	p.inflight.Wait()
	p.api.closeIdle()
	p.log.Log(broker.LevelInfo, component, "producer closed",
		broker.F("broker", component), broker.F("queue", p.queues.home.name))
	return err
}

func entrySizes(entries []outEntry) []int {
	sizes := make([]int, len(entries))
	for i, e := range entries {
		sizes[i] = e.size
	}
	return sizes
}

func setErr(results []broker.SendResult, entries []outEntry, err error) {
	for _, e := range entries {
		results[e.index].Err = err
	}
}

// entryIndex parses a batch entry id, which is the entry's position in the
// call.
func entryIndex(id *string, n int) (int, bool) {
	i, err := strconv.Atoi(aws.ToString(id))
	return i, err == nil && i >= 0 && i < n
}

// mergeCancel returns a context that ends when ctx or other ends.
func mergeCancel(ctx, other context.Context) (context.Context, context.CancelFunc) {
	merged, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return merged, func() {
		stop()
		cancel()
	}
}

// waitGroup waits for wg until ctx ends and reports whether wg finished.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
