package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cello-framework/cello/core/broker"
	"github.com/cello-framework/cello/core/wire"
)

// queue holds events until Python drains them with cello_events_wait. One
// Python thread waits on it and hands each completion to the event loop or
// thread that started the call.
var queue = struct {
	sync.Mutex
	cond   *sync.Cond
	events []wire.Event
	wakeup bool
}{}

func init() { queue.cond = sync.NewCond(&queue.Mutex) }

func push(e wire.Event) {
	queue.Lock()
	queue.events = append(queue.events, e)
	queue.Unlock()
	queue.cond.Signal()
}

// waitEvents blocks until events are queued, a wake-up was requested, or
// timeout passes, and returns at most max events.
func waitEvents(timeout time.Duration, max int) []wire.Event {
	timer := time.AfterFunc(timeout, func() {
		queue.Lock()
		queue.wakeup = true
		queue.Unlock()
		queue.cond.Broadcast()
	})
	defer timer.Stop()
	queue.Lock()
	defer queue.Unlock()
	for len(queue.events) == 0 && !queue.wakeup {
		queue.cond.Wait()
	}
	queue.wakeup = false
	n := len(queue.events)
	if max > 0 && n > max {
		n = max
	}
	out := make([]wire.Event, n)
	copy(out, queue.events[:n])
	rest := copy(queue.events, queue.events[n:])
	for i := rest; i < len(queue.events); i++ {
		queue.events[i] = wire.Event{}
	}
	queue.events = queue.events[:rest]
	return out
}

func wake() {
	queue.Lock()
	queue.wakeup = true
	queue.Unlock()
	queue.cond.Broadcast()
}

// complete queues the completion of call id: its result buffer on success,
// its error message on failure.
func complete(id uint64, buf []byte, err error) {
	if err != nil {
		push(wire.Event{Kind: wire.EventCompletion, ID: id, Code: statusOf(err), Payload: []byte(err.Error())})
		return
	}
	if buf == nil {
		buf = []byte{}
	}
	push(wire.Event{Kind: wire.EventCompletion, ID: id, Payload: buf})
}

// async runs fn on its own goroutine with a deadline of timeoutMs (none if
// 0) and queues its outcome as the completion of id. A panic in fn becomes
// an internal error instead of crashing the process.
func async(where string, id uint64, timeoutMs int64, fn func(ctx context.Context) ([]byte, error)) {
	go func() {
		ctx := context.Background()
		var cancel context.CancelFunc = func() {}
		if timeoutMs > 0 {
			ctx, cancel = context.WithTimeout(ctx, time.Duration(timeoutMs)*time.Millisecond)
		}
		defer cancel()
		defer func() {
			if v := recover(); v != nil {
				complete(id, nil, panicError(where, v))
			}
		}()
		buf, err := fn(ctx)
		complete(id, buf, err)
	}()
}

// eventLogger sends the core's log records to Python as events. Records
// below minLevel are dropped in Go, so debug logging costs nothing unless
// Python's "cello" logger enables it.
type eventLogger struct{}

var minLevel atomic.Int32

func init() { minLevel.Store(int32(broker.LevelInfo)) }

func (eventLogger) Log(level broker.Level, component, message string, fields ...broker.Field) {
	if int32(level) < minLevel.Load() {
		return
	}
	w := wire.NewWriter(64 + len(message))
	w.U32(uint32(level))
	w.Str(component)
	w.Str(message)
	w.U32(uint32(len(fields)))
	for _, f := range fields {
		w.Str(f.Key)
		w.Str(f.Value)
	}
	push(wire.Event{Kind: wire.EventLog, Payload: w.Bytes()})
}

var logger broker.Logger = eventLogger{}
