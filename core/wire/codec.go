package wire

import (
	"fmt"
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
		w.Str(d.ID)
		w.Str(d.Topic)
		w.OptBytes(d.Key)
		w.OptBytes(d.Value)
		writeHeaders(w, d.Headers)
	}
	return w.Bytes()
}

// DecodeDeliveries reads a deliveries buffer. Python never sends one; it
// exists so the layout is tested in both directions.
func DecodeDeliveries(buf []byte) ([]broker.Delivery, error) {
	r := NewReader(buf)
	n := r.Count(56)
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
		d.ID = r.Str()
		d.Topic = r.Str()
		d.Key = r.OptBytes()
		d.Value = r.OptBytes()
		d.Headers = readHeaders(r)
		out = append(out, d)
	}
	return out, r.Done()
}

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

// DecodeOutgoing reads an outgoing buffer.
func DecodeOutgoing(buf []byte) ([]broker.OutMessage, error) {
	r := NewReader(buf)
	n := r.Count(16)
	out := make([]broker.OutMessage, 0, n)
	for i := 0; i < n && r.Err() == nil; i++ {
		m := broker.OutMessage{Destination: r.Str()}
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
func EncodeSendResults(rs []broker.SendResult, code func(error) int32) []byte {
	w := NewWriter(4 + 32*len(rs))
	w.U32(uint32(len(rs)))
	for _, r := range rs {
		if r.Err != nil {
			w.I32(code(r.Err))
			w.Str(r.Err.Error())
		} else {
			w.I32(0)
			w.Str("")
		}
		w.I32(r.Partition)
		w.I64(r.Offset)
		w.Str(r.ID)
	}
	return w.Bytes()
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
