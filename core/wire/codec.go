package wire

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cello-framework/cello/core/broker"
)

// EncodeDeliveries writes a deliveries buffer.
func EncodeDeliveries(ds []broker.Delivery) []byte {
	size := 4
	for i := range ds {
		size += 64 + len(ds[i].ID) + len(ds[i].Topic) + len(ds[i].Key) + len(ds[i].Value)
		for _, h := range ds[i].Headers {
			size += 8 + len(h.Key) + len(h.Value)
		}
	}
	w := NewWriter(size)
	w.U32(uint32(len(ds)))
	for i := range ds {
		d := &ds[i]
		w.U64(d.Token)
		w.U32(d.Lane)
		w.U32(d.Attempt)
		w.I32(d.Partition)
		w.I64(d.Offset)
		var ts int64
		if !d.Timestamp.IsZero() {
			ts = d.Timestamp.UnixMilli()
		}
		w.I64(ts)
		w.U32(uint32(len(d.ID)))
		w.U32(uint32(len(d.Topic)))
		w.I32(optLen(d.Key))
		w.I32(optLen(d.Value))
		w.U32(uint32(len(d.Headers)))
		w.buf = append(w.buf, d.ID...)
		w.buf = append(w.buf, d.Topic...)
		w.buf = append(w.buf, d.Key...)
		w.buf = append(w.buf, d.Value...)
		for _, h := range d.Headers {
			w.Str(h.Key)
			w.OptBytes(h.Value)
		}
	}
	return w.Bytes()
}

// optLen is the wire length of an optional bytes value: -1 for nil.
func optLen(b []byte) int32 {
	if b == nil {
		return -1
	}
	return int32(len(b))
}

// DecodeDeliveries reads a deliveries buffer. Python never sends one; it
// exists so the layout is tested in both directions.
func DecodeDeliveries(buf []byte) ([]broker.Delivery, error) {
	r := NewReader(buf)
	n := r.Count(deliveryHeadSize)
	out := make([]broker.Delivery, 0, n)
	for i := 0; i < n && r.Err() == nil; i++ {
		d := broker.Delivery{
			Token:     r.U64(),
			Lane:      r.U32(),
			Attempt:   r.U32(),
			Partition: r.I32(),
			Offset:    r.I64(),
		}
		if ts := r.I64(); ts != 0 {
			d.Timestamp = time.UnixMilli(ts)
		}
		idLen, topicLen := r.U32(), r.U32()
		keyLen, valueLen := r.I32(), r.I32()
		headers := r.U32()
		d.ID = r.strOf(idLen)
		d.Topic = r.strOf(topicLen)
		d.Key = r.bytesOf(keyLen)
		d.Value = r.bytesOf(valueLen)
		if r.Err() == nil && uint64(headers)*8 > uint64(len(buf)-r.pos) {
			return nil, fmt.Errorf("%w: %d headers do not fit in %d bytes", ErrMalformed, headers, len(buf)-r.pos)
		}
		for j := uint32(0); j < headers && r.Err() == nil; j++ {
			d.Headers = append(d.Headers, broker.Header{Key: r.Str(), Value: r.OptBytes()})
		}
		out = append(out, d)
	}
	return out, r.Done()
}

// deliveryHeadSize is the fixed part of one delivery.
const deliveryHeadSize = 56

// EncodeOutgoing writes an outgoing buffer; Python's encoder is the usual
// writer and this one serves tests.
func EncodeOutgoing(ms []broker.OutMessage) []byte {
	w := NewWriter(64 * len(ms))
	w.U32(uint32(len(ms)))
	for _, m := range ms {
		w.Str(m.Destination)
		w.OptBytes(m.Key)
		w.OptBytes(m.Value)
		writeHeaders(w, m.Headers)
	}
	return w.Bytes()
}

// DecodeOutgoing reads an outgoing buffer. Keys, values and header values
// share buf's memory, so the caller must not change buf while they are used.
func DecodeOutgoing(buf []byte) ([]broker.OutMessage, error) {
	r := NewSharingReader(buf)
	n := r.Count(16)
	out := make([]broker.OutMessage, 0, n)
	destination := ""
	for i := 0; i < n && r.Err() == nil; i++ {
		destination = r.StrOr(destination)
		m := broker.OutMessage{Destination: destination}
		m.Key = r.OptBytes()
		m.Value = r.OptBytes()
		m.Headers = readHeaders(r)
		out = append(out, m)
	}
	return out, r.Done()
}

// EncodeSettlements writes a settlements buffer for tests.
func EncodeSettlements(ss []broker.Settlement) []byte {
	w := NewWriter(4 + 16*len(ss))
	w.U32(uint32(len(ss)))
	for _, s := range ss {
		w.U64(s.Token)
		w.U8(uint8(s.Result))
		w.Str(s.Reason)
	}
	return w.Bytes()
}

// DecodeSettlements reads a settlements buffer and rejects undefined results.
func DecodeSettlements(buf []byte) ([]broker.Settlement, error) {
	r := NewReader(buf)
	n := r.Count(13)
	out := make([]broker.Settlement, 0, n)
	for i := 0; i < n && r.Err() == nil; i++ {
		s := broker.Settlement{Token: r.U64(), Result: broker.Result(r.U8()), Reason: r.Str()}
		if r.Err() == nil && !s.Result.Valid() {
			return nil, fmt.Errorf("%w: settlement %d has undefined result %d", ErrMalformed, i, s.Result)
		}
		out = append(out, s)
	}
	return out, r.Done()
}

// EncodeTokens writes a tokens buffer for tests.
func EncodeTokens(tokens []uint64) []byte {
	w := NewWriter(4 + 8*len(tokens))
	w.U32(uint32(len(tokens)))
	for _, t := range tokens {
		w.U64(t)
	}
	return w.Bytes()
}

// DecodeTokens reads a tokens buffer.
func DecodeTokens(buf []byte) ([]uint64, error) {
	r := NewReader(buf)
	n := r.Count(8)
	out := make([]uint64, 0, n)
	for i := 0; i < n && r.Err() == nil; i++ {
		out = append(out, r.U64())
	}
	return out, r.Done()
}

// EncodeStrings writes a strings buffer for tests.
func EncodeStrings(items []string) []byte {
	w := NewWriter(64)
	w.U32(uint32(len(items)))
	for _, s := range items {
		w.Str(s)
	}
	return w.Bytes()
}

// DecodeStrings reads a strings buffer.
func DecodeStrings(buf []byte) ([]string, error) {
	r := NewReader(buf)
	n := r.Count(4)
	out := make([]string, 0, n)
	for i := 0; i < n && r.Err() == nil; i++ {
		out = append(out, r.Str())
	}
	return out, r.Done()
}

// EncodeSendResults writes a send results buffer. code maps an error to the
// bridge's status code, so this package stays free of the bridge's table.
// The fixed-size part and the joined ids let Python decode a batch with a
// few calls instead of several per result.
func EncodeSendResults(rs []broker.SendResult, code func(error) int32) []byte {
	ids := 0
	failed := 0
	for i := range rs {
		ids += len(rs[i].ID) + 1
		if rs[i].Err != nil {
			failed++
		}
	}
	w := NewWriter(12 + sendResultSize*len(rs) + ids + 64*failed)
	w.U32(uint32(len(rs)))
	for i := range rs {
		var c int32
		if rs[i].Err != nil {
			c = code(rs[i].Err)
		}
		w.I32(c)
		w.I32(rs[i].Partition)
		w.I64(rs[i].Offset)
	}
	joined := make([]byte, 0, ids)
	for i := range rs {
		if i > 0 {
			joined = append(joined, 0)
		}
		joined = append(joined, rs[i].ID...)
		if strings.IndexByte(rs[i].ID, 0) >= 0 {
			// No broker's ids hold NUL, which separates them here; one that
			// did would shift every later id, so its NULs are replaced.
			joined = append(joined[:len(joined)-len(rs[i].ID)], strings.ReplaceAll(rs[i].ID, "\x00", "\uFFFD")...)
		}
	}
	w.Str(string(joined))
	w.U32(uint32(failed))
	for i := range rs {
		if rs[i].Err != nil {
			w.U32(uint32(i))
			w.Str(rs[i].Err.Error())
		}
	}
	return w.Bytes()
}

// sendResultSize is the fixed part of one send result: code, partition, offset.
const sendResultSize = 16

// DecodeSendResults reads a send results buffer. Python is the usual
// reader, and this one exists so the layout is tested in both directions.
// Each error comes back as a plain error with the message, and codes[i] is
// result i's code.
func DecodeSendResults(buf []byte) (rs []broker.SendResult, codes []int32, err error) {
	r := NewReader(buf)
	n := r.Count(sendResultSize)
	rs = make([]broker.SendResult, n)
	codes = make([]int32, n)
	for i := 0; i < n && r.Err() == nil; i++ {
		codes[i] = r.I32()
		rs[i].Partition = r.I32()
		rs[i].Offset = r.I64()
	}

	ids := r.Str()
	if n == 0 && ids != "" {
		return nil, nil, fmt.Errorf("%w: ids without send results", ErrMalformed)
	}
	if n > 0 && r.Err() == nil {
		split := strings.Split(ids, "\x00")
		if len(split) != n {
			return nil, nil, fmt.Errorf("%w: %d send results but %d ids", ErrMalformed, n, len(split))
		}
		for i := range rs {
			rs[i].ID = split[i]
		}
	}

	failed := r.Count(8)
	last := -1
	for j := 0; j < failed && r.Err() == nil; j++ {
		i := int(r.U32())
		msg := r.Str()
		if r.Err() != nil {
			break
		}
		if i <= last || i >= n || codes[i] == 0 {
			return nil, nil, fmt.Errorf("%w: error for send result %d, out of order, out of range or with code 0", ErrMalformed, i)
		}
		rs[i].Err = errors.New(msg)
		last = i
	}

	for i := range rs {
		if r.Err() == nil && codes[i] != 0 && rs[i].Err == nil {
			return nil, nil, fmt.Errorf("%w: send result %d has code %d but no error message", ErrMalformed, i, codes[i])
		}
	}
	if err := r.Done(); err != nil {
		return nil, nil, err
	}
	return rs, codes, nil
}

func writeHeaders(w *Writer, hs []broker.Header) {
	w.U32(uint32(len(hs)))
	for _, h := range hs {
		w.Str(h.Key)
		w.OptBytes(h.Value)
	}
}

func readHeaders(r *Reader) []broker.Header {
	n := r.Count(8)
	if n == 0 {
		return nil
	}
	hs := make([]broker.Header, 0, n)
	for i := 0; i < n && r.Err() == nil; i++ {
		hs = append(hs, broker.Header{Key: r.Str(), Value: r.OptBytes()})
	}
	return hs
}
