package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/cello-framework/cello/core/broker"
)

// handles maps the integer ids that Python holds to Go objects. Ids start at
// 1 and are never reused, so 0 always means none and a stale id is found
// missing instead of naming another object.
var handles = struct {
	sync.Mutex
	next uint64
	objs map[uint64]any
	// calls counts, per handle, the sends, settlements and commits that
	// were accepted and have not finished, so a close that Python issues
	// after them lets them finish first instead of failing them.
	calls map[uint64]*sync.WaitGroup
}{objs: map[uint64]any{}, calls: map[uint64]*sync.WaitGroup{}}

func putHandle(obj any) uint64 {
	handles.Lock()
	defer handles.Unlock()
	handles.next++
	handles.objs[handles.next] = obj
	return handles.next
}

// getHandle returns the object of id if it has type T.
func getHandle[T any](id uint64, what string) (T, error) {
	handles.Lock()
	obj, found := handles.objs[uint64(id)]
	handles.Unlock()
	t, isT := obj.(T)
	if !found || !isT {
		var zero T
		return zero, fmt.Errorf("%w: %s handle %d is unknown or closed", broker.ErrClosed, what, id)
	}
	return t, nil
}

// getHandleForCall is getHandle for a call that close must wait for: the
// caller runs done when the call has finished.
func getHandleForCall[T any](id uint64, what string) (obj T, done func(), err error) {
	handles.Lock()
	defer handles.Unlock()
	found, isT := handles.objs[id].(T)
	if !isT {
		return obj, nil, fmt.Errorf("%w: %s handle %d is unknown or closed", broker.ErrClosed, what, id)
	}
	calls := handles.calls[id]
	if calls == nil {
		calls = new(sync.WaitGroup)
		handles.calls[id] = calls
	}
	// Add runs under the lock that dropHandle takes, so it never follows
	// the Wait in waitCalls, as sync.WaitGroup requires.
	calls.Add(1)
	return found, calls.Done, nil
}

// waitCalls waits until the calls counted on a dropped handle finished or
// ctx ends.
func waitCalls(ctx context.Context, calls *sync.WaitGroup) {
	if calls == nil {
		return
	}
	finished := make(chan struct{})
	go func() {
		calls.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
	}
}

// dropHandle removes id and reports whether it was present, so only the
// first of two closes does the work.
func dropHandle(id uint64) bool {
	_, found := dropHandleCalls(id)
	return found
}

// dropHandleCalls removes id like dropHandle and also returns its count of
// running calls, for waitCalls.
func dropHandleCalls(id uint64) (*sync.WaitGroup, bool) {
	handles.Lock()
	defer handles.Unlock()
	_, found := handles.objs[id]
	calls := handles.calls[id]
	delete(handles.objs, id)
	delete(handles.calls, id)
	return calls, found
}

func liveHandles() int {
	handles.Lock()
	defer handles.Unlock()
	return len(handles.objs)
}
