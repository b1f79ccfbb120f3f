package main

import (
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
}{objs: map[uint64]any{}}

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

// dropHandle removes id and reports whether it was present, so only the
// first of two closes does the work.
func dropHandle(id uint64) bool {
	handles.Lock()
	defer handles.Unlock()
	_, found := handles.objs[id]
	delete(handles.objs, id)
	return found
}

func liveHandles() int {
	handles.Lock()
	defer handles.Unlock()
	return len(handles.objs)
}
