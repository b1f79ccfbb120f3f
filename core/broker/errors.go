package broker

import "errors"

// Sentinel errors shared by every broker package. Callers test them with
// errors.Is; the bridge maps each one to a Python exception class.
var (
	// ErrConfig is returned when a configuration field is missing, of the
	// wrong type or out of range. The wrapping message names the field.
	ErrConfig = errors.New("invalid configuration")
	// ErrConnection is returned when the broker cannot be reached or the
	// connection was lost.
	ErrConnection = errors.New("connection failed")
	// ErrTimeout is returned when an operation did not finish within its
	// deadline.
	ErrTimeout = errors.New("timed out")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("client is closed")
	// ErrNotFound is returned for an unknown topic, queue or delivery token.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge is returned before sending a message larger than the
	// broker's limit; the wrapping message names the limit.
	ErrTooLarge = errors.New("message too large")
	// ErrDelivery is returned when the broker rejected a message.
	ErrDelivery = errors.New("delivery failed")
	// ErrInvalidArgument is returned for a malformed call, such as a Result
	// that is not defined or an empty destination.
	ErrInvalidArgument = errors.New("invalid argument")
)
