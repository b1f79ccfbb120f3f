package sqs

import (
	"fmt"
	"time"

	"github.com/cello-framework/cello/core/broker"
)

// The extender wakes at least every maxExtendWait to look for messages due
// for extension, and at most every minExtendWait.
const (
	minExtendWait = 50 * time.Millisecond
	maxExtendWait = time.Second
)

// extendLoop keeps unsettled messages hidden while their handlers run: each
// one is extended by its full visibility timeout once half of the current
// timeout has passed. It returns when stop is closed.
func (c *consumer) extendLoop() {
	timer := time.NewTimer(maxExtendWait)
	defer timer.Stop()
	for {
		c.extendDue()
		wait := time.Until(c.nextExtension())
		timer.Reset(max(minExtendWait, min(maxExtendWait, wait)))
		select {
		case <-c.stop:
			return
		case <-c.wakeExtender:
		case <-timer.C:
		}
	}
}

// nextExtension returns when the next extension falls due, or a time
// maxExtendWait away when none does sooner.
func (c *consumer) nextExtension() time.Time {
	next := time.Now().Add(maxExtendWait)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.pending {
		if !f.extendAt.IsZero() && f.extendAt.Before(next) {
			next = f.extendAt
		}
	}
	return next
}

// extendDue extends every message whose extension is due. A message that
// was settled meanwhile is left alone. When SQS rejects an extension, for
// example past its limit of 12 hours since the receive, extending that
// message stops. When the call as a whole failed, it is tried again soon.
func (c *consumer) extendDue() {
	c.extendMu.Lock()
	defer c.extendMu.Unlock()
	now := time.Now()
	var due []visibilityChange
	c.mu.Lock()
	for _, f := range c.pending {
		if !f.extendAt.IsZero() && !f.extendAt.After(now) {
			due = append(due, visibilityChange{f: f, timeout: f.visibility})
		}
	}
	c.mu.Unlock()

	for _, group := range groupChanges(due) {
		for start := 0; start < len(group); start += maxBatchEntries {
			batch := group[start:min(start+maxBatchEntries, len(group))]
			sent := time.Now()
			errs, callErr := c.changeBatch(c.closing, batch, "ChangeMessageVisibilityBatch (extend)")
			c.recordExtensions(batch, sent, errs, callErr)
		}
	}
}

// recordExtensions schedules the next extension of each message in batch
// after a call sent at sent, and logs the failures: each rejected message
// once, and a failed call once per batch.
func (c *consumer) recordExtensions(batch []visibilityChange, sent time.Time, errs []error, callErr error) {
	var rejected []int
	c.mu.Lock()
	for i, ch := range batch {
		f := ch.f
		if c.pending[f.token] != f {
			continue // settled while the call was in flight
		}
		switch {
		case errs[i] == nil:
			f.extendAt = sent.Add(f.visibility / 2)
		case callErr != nil:
			f.extendAt = time.Now().Add(min(maxExtendWait, f.visibility/4))
		default:
			f.extendAt = time.Time{}
			rejected = append(rejected, i)
		}
	}
	c.mu.Unlock()

	if callErr != nil && c.closing.Err() == nil {
		c.log.Log(broker.LevelWarning, component, fmt.Sprintf("visibility extension of %d messages failed, "+
			"trying again", len(batch)), broker.F("broker", component),
			broker.F("queue", batch[0].f.queue.name), broker.F("err", callErr.Error()))
	}
	for _, i := range rejected {
		f := batch[i].f
		c.log.Log(broker.LevelWarning, component, "visibility extension rejected, the message may be "+
			"delivered again while its handler runs", broker.F("broker", component),
			broker.F("queue", f.queue.name), broker.F("id", f.id), broker.F("err", errs[i].Error()))
	}
}
