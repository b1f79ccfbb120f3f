package sqs

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cello-framework/cello/core/broker"
)

// deleteInterval is how long an acknowledged message may wait for others to
// share its DeleteMessageBatch call. A batch of 10 goes at once.
const deleteInterval = 50 * time.Millisecond

// deleteEntry is one message to delete.
type deleteEntry struct {
	token   uint64
	queue   queue
	receipt string
	id      string
}

// deleter batches DeleteMessage calls. add queues an entry, run sends the
// queue after deleteInterval or once it holds a full batch, and flush sends
// it at once.
type deleter struct {
	api     *sqs.Client
	timeout time.Duration
	log     broker.Logger
	added   chan struct{} // signalled by add
	full    chan struct{} // signalled by add when a batch is full

	mu      sync.Mutex
	pending []deleteEntry

	// flushMu makes flushes run one at a time, so a flush returns only after
	// every entry queued before it was sent, also those that a concurrent
	// flush took.
	flushMu sync.Mutex
}

func newDeleter(api *sqs.Client, timeout time.Duration, log broker.Logger) *deleter {
	return &deleter{
		api:     api,
		timeout: timeout,
		log:     log,
		added:   make(chan struct{}, 1),
		full:    make(chan struct{}, 1),
	}
}

func (d *deleter) add(e deleteEntry) {
	d.mu.Lock()
	d.pending = append(d.pending, e)
	n := len(d.pending)
	d.mu.Unlock()
	signal(d.added)
	if n >= maxBatchEntries {
		signal(d.full)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run flushes the queue after each addition, waiting up to deleteInterval
// for more entries, until stop is closed. Entries still queued then are
// left for a final flush by the caller.
func (d *deleter) run(ctx context.Context, stop <-chan struct{}) {
	timer := time.NewTimer(deleteInterval)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-d.added:
		}
		timer.Reset(deleteInterval)
		select {
		case <-stop:
			return
		case <-d.full:
		case <-timer.C:
		}
		d.flush(ctx, nil) //nolint:errcheck // flush logs every failure itself.
	}
}

// takePending removes and returns the queued entries.
func (d *deleter) takePending() []deleteEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	entries := d.pending
	d.pending = nil
	return entries
}

// flush deletes own and every queued entry, in DeleteMessageBatch calls of
// up to 10 per queue. It logs each failure and returns those of own, so
// Commit can report them.
func (d *deleter) flush(ctx context.Context, own []deleteEntry) error {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	d.mu.Lock()
	entries := append(own[:len(own):len(own)], d.pending...)
	d.pending = nil
	d.mu.Unlock()

	ownTokens := make(map[uint64]bool, len(own))
	for _, e := range own {
		ownTokens[e.token] = true
	}
	var errs []error
	for _, group := range groupByQueue(entries) {
		for start := 0; start < len(group); start += maxBatchEntries {
			batch := group[start:min(start+maxBatchEntries, len(group))]
			for i, err := range d.deleteBatch(ctx, batch) {
				if err != nil && ownTokens[batch[i].token] {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// deleteBatch sends one DeleteMessageBatch call and returns an error, or
// nil, per entry.
func (d *deleter) deleteBatch(ctx context.Context, batch []deleteEntry) []error {
	q := batch[0].queue
	in := &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.url)}
	for i, e := range batch {
		in.Entries = append(in.Entries, types.DeleteMessageBatchRequestEntry{
			Id:            aws.String(strconv.Itoa(i)),
			ReceiptHandle: aws.String(e.receipt),
		})
	}
	errs := make([]error, len(batch))
	callCtx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	out, err := d.api.DeleteMessageBatch(callCtx, in)
	if err != nil {
		err = translate(err, "DeleteMessageBatch", q.name, nil)
		for i := range errs {
			errs[i] = err
		}
	} else {
		for _, failed := range out.Failed {
			if i, ok := entryIndex(failed.Id, len(batch)); ok {
				errs[i] = entryError(broker.ErrDelivery, "DeleteMessageBatch", q.name, failed)
			}
		}
	}
	for i, err := range errs {
		if err != nil {
			// The message becomes visible again when its visibility timeout
			// ends and is delivered once more.
			d.log.Log(broker.LevelError, component, "delete failed, the message will be redelivered",
				broker.F("broker", component), broker.F("queue", q.name),
				broker.F("id", batch[i].id), broker.F("err", err.Error()))
		}
	}
	return errs
}

// groupByQueue groups entries by queue URL, keeping their order.
func groupByQueue(entries []deleteEntry) [][]deleteEntry {
	var groups [][]deleteEntry
	index := map[string]int{}
	for _, e := range entries {
		i, ok := index[e.queue.url]
		if !ok {
			i = len(groups)
			index[e.queue.url] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], e)
	}
	return groups
}
