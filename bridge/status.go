package main

import (
	"errors"
	"fmt"

	"github.com/cello-framework/cello/core/broker"
	"github.com/cello-framework/cello/core/wire"
)

// Status codes. Python's cello/_native.py maps each to an exception class
// with one table; keep the two in step.
const (
	statusOK              = 0
	statusError           = 1
	statusConfig          = 2
	statusConnection      = 3
	statusTimeout         = 4
	statusClosed          = 5
	statusNotFound        = 6
	statusTooLarge        = 7
	statusDelivery        = 8
	statusInvalidArgument = 9
	statusInternal        = 10
)

var statusTable = []struct {
	err  error
	code int32
}{
	{broker.ErrConfig, statusConfig},
	{broker.ErrConnection, statusConnection},
	{broker.ErrTimeout, statusTimeout},
	{broker.ErrClosed, statusClosed},
	{broker.ErrNotFound, statusNotFound},
	{broker.ErrTooLarge, statusTooLarge},
	{broker.ErrDelivery, statusDelivery},
	{broker.ErrInvalidArgument, statusInvalidArgument},
	{wire.ErrMalformed, statusInvalidArgument},
	{errPanic, statusInternal},
}

var errPanic = errors.New("internal error")

func statusOf(err error) int32 {
	for _, e := range statusTable {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return statusError
}

// panicError turns a recovered panic into an error that names the export.
func panicError(where string, v any) error {
	return fmt.Errorf("%w in %s: %v", errPanic, where, v)
}
