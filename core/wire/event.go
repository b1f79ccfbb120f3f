package wire

// EventKind selects how Python reads an event's payload.
type EventKind uint8

const (
	// EventCompletion finishes the asynchronous call whose completion id is
	// the event id. Code is the status code; on failure the payload is the
	// error message, otherwise the call's result buffer.
	EventCompletion EventKind = 1
	// EventLog is a log record: the payload is u32 level, str component,
	// str message, u32 field count, then str key and str value per field.
	EventLog EventKind = 2
	// EventHTTPRequest is an HTTP request waiting for a response; the id is
	// the request id and the payload is described in core/httpserver.
	EventHTTPRequest EventKind = 3
)

// Event is one item of the queue that Python drains.
type Event struct {
	Kind    EventKind
	ID      uint64
	Code    int32
	Payload []byte
}

// EncodeEvents writes an events buffer.
func EncodeEvents(es []Event) []byte {
	size := 4
	for _, e := range es {
		size += 17 + len(e.Payload)
	}
	w := NewWriter(size)
	w.U32(uint32(len(es)))
	for _, e := range es {
		w.U8(uint8(e.Kind))
		w.U64(e.ID)
		w.I32(e.Code)
		w.OptBytes(e.Payload)
	}
	return w.Bytes()
}

// DecodeEvents reads an events buffer, for tests.
func DecodeEvents(buf []byte) ([]Event, error) {
	r := NewReader(buf)
	n := r.Count(17)
	out := make([]Event, 0, n)
	for i := 0; i < n && r.Err() == nil; i++ {
		out = append(out, Event{Kind: EventKind(r.U8()), ID: r.U64(), Code: r.I32(), Payload: r.OptBytes()})
	}
	return out, r.Done()
}
