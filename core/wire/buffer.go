package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// ErrMalformed is returned when a buffer from Python does not follow the
// layout in the package documentation.
var ErrMalformed = errors.New("malformed buffer")

// maxCount bounds a declared item count before anything is allocated, so a
// corrupt count cannot make the decoder allocate gigabytes.
const maxCount = 1 << 24

// Writer appends values in the wire layout.
type Writer struct{ buf []byte }

// NewWriter returns a Writer whose buffer starts with capacity n.
func NewWriter(n int) *Writer { return &Writer{buf: make([]byte, 0, n)} }

// Bytes returns the encoded buffer.
func (w *Writer) Bytes() []byte { return w.buf }

func (w *Writer) U8(v uint8)   { w.buf = append(w.buf, v) }
func (w *Writer) U32(v uint32) { w.buf = binary.LittleEndian.AppendUint32(w.buf, v) }
func (w *Writer) I32(v int32)  { w.U32(uint32(v)) }
func (w *Writer) U64(v uint64) { w.buf = binary.LittleEndian.AppendUint64(w.buf, v) }
func (w *Writer) I64(v int64)  { w.U64(uint64(v)) }

// Str writes a str. A string longer than 4 GiB cannot occur here because
// broker messages are limited far below that.
func (w *Writer) Str(s string) {
	w.U32(uint32(len(s)))
	w.buf = append(w.buf, s...)
}

// OptBytes writes a bytes value; nil is written as None.
func (w *Writer) OptBytes(b []byte) {
	if b == nil {
		w.I32(-1)
		return
	}
	w.I32(int32(len(b)))
	w.buf = append(w.buf, b...)
}

// Reader decodes values in the wire layout. The first error sticks: later
// reads return zero values and Err reports it.
type Reader struct {
	buf   []byte
	pos   int
	err   error
	share bool
}

// NewReader reads buf. Returned byte slices are copies, so the caller may
// release buf as soon as decoding ends.
func NewReader(buf []byte) *Reader { return &Reader{buf: buf} }

// NewSharingReader reads buf and returns byte slices that share its memory,
// which saves a copy per value; the caller must not change buf afterwards.
func NewSharingReader(buf []byte) *Reader { return &Reader{buf: buf, share: true} }

// Err returns the first decoding error.
func (r *Reader) Err() error { return r.err }

// Done returns an error unless the whole buffer was read without error.
func (r *Reader) Done() error {
	if r.err == nil && r.pos != len(r.buf) {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(r.buf)-r.pos)
	}
	return r.err
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.buf)-r.pos < n {
		r.err = fmt.Errorf("%w: need %d bytes at offset %d, have %d", ErrMalformed, n, r.pos, len(r.buf)-r.pos)
		return nil
	}
	b := r.buf[r.pos : r.pos+n]
	r.pos += n
	return b
}

func (r *Reader) U8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *Reader) U32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *Reader) I32() int32 { return int32(r.U32()) }

func (r *Reader) U64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *Reader) I64() int64 { return int64(r.U64()) }

// Count reads an item count and checks that the rest of the buffer can hold
// that many items of at least minSize bytes each.
func (r *Reader) Count(minSize int) int {
	n := r.U32()
	if r.err != nil {
		return 0
	}
	if n > maxCount || int(n)*minSize > len(r.buf)-r.pos {
		r.err = fmt.Errorf("%w: count %d does not fit in %d remaining bytes", ErrMalformed, n, len(r.buf)-r.pos)
		return 0
	}
	return int(n)
}

// StrOr reads a str and returns prev, without allocating, when the str
// equals it; a batch that names one topic throughout then holds one string.
func (r *Reader) StrOr(prev string) string {
	pos := r.pos
	n := r.U32()
	if r.err == nil && int(n) == len(prev) && r.pos+int(n) <= len(r.buf) && string(r.buf[r.pos:r.pos+int(n)]) == prev {
		r.pos += int(n)
		return prev
	}
	r.pos = pos
	return r.Str()
}

// strOf reads n bytes of UTF-8 whose length came earlier in the buffer.
func (r *Reader) strOf(n uint32) string {
	if n > math.MaxInt32 {
		r.fail(fmt.Errorf("%w: string length %d", ErrMalformed, n))
		return ""
	}
	b := r.take(int(n))
	if r.err != nil {
		return ""
	}
	if !utf8.Valid(b) {
		r.err = fmt.Errorf("%w: string at offset %d is not valid UTF-8", ErrMalformed, r.pos-len(b))
		return ""
	}
	return string(b)
}

// bytesOf reads an optional bytes value whose length came earlier in the
// buffer: -1 for nil.
func (r *Reader) bytesOf(n int32) []byte {
	if r.err != nil || n == -1 {
		return nil
	}
	if n < 0 {
		r.err = fmt.Errorf("%w: bytes length %d", ErrMalformed, n)
		return nil
	}
	b := r.take(int(n))
	if b == nil || r.share {
		return b
	}
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

// fail records err unless an earlier error stuck.
func (r *Reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Str reads a str and checks that it is valid UTF-8.
func (r *Reader) Str() string { return r.strOf(r.U32()) }

// OptBytes reads a bytes value; None is returned as nil and an empty value
// as a non-nil empty slice.
func (r *Reader) OptBytes() []byte { return r.bytesOf(r.I32()) }
