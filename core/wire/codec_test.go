package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/cello-framework/cello/core/broker"
)

func TestDeliveriesRoundTrip(t *testing.T) {
	in := []broker.Delivery{
		{Token: 1, Lane: 2, Attempt: 3, Partition: 4, Offset: 5, Timestamp: time.UnixMilli(1700000000123),
			ID: "id-1", Topic: "orders", Key: []byte("k"), Value: []byte(`{"a":1}`),
			Headers: []broker.Header{{Key: "h", Value: []byte{0, 1}}}},
		{Token: 9, ID: "", Topic: "t", Key: nil, Value: []byte{}},
	}
	out, err := DecodeDeliveries(EncodeDeliveries(in))
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].Timestamp.Equal(in[0].Timestamp) {
		t.Fatalf("timestamp %v, want %v", out[0].Timestamp, in[0].Timestamp)
	}
	out[0].Timestamp = in[0].Timestamp
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip changed deliveries:\n got %+v\nwant %+v", out, in)
	}
	if out[1].Key != nil {
		t.Fatal("a nil key must stay nil")
	}
}

func TestOutgoingRoundTrip(t *testing.T) {
	in := []broker.OutMessage{
		{Destination: "t", Key: []byte("k"), Value: []byte("v"), Headers: []broker.Header{{Key: "a", Value: []byte("b")}}},
		{Destination: "u", Value: nil},
	}
	out, err := DecodeOutgoing(EncodeOutgoing(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("got %+v, want %+v", out, in)
	}
}

func TestSettlementsRejectUndefinedResult(t *testing.T) {
	buf := EncodeSettlements([]broker.Settlement{{Token: 1, Result: 99}})
	if _, err := DecodeSettlements(buf); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	good := []broker.Settlement{{Token: 1, Result: broker.Ack}, {Token: 2, Result: broker.DeadLetter, Reason: "bad"}}
	out, err := DecodeSettlements(EncodeSettlements(good))
	if err != nil || !reflect.DeepEqual(out, good) {
		t.Fatalf("got %+v, %v", out, err)
	}
}

func TestDecodeRejectsTruncatedAndTrailing(t *testing.T) {
	buf := EncodeOutgoing([]broker.OutMessage{{Destination: "t", Value: []byte("value")}})
	for n := 0; n < len(buf); n++ {
		if _, err := DecodeOutgoing(buf[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrMalformed", n, err)
		}
	}
	if _, err := DecodeOutgoing(append(bytes.Clone(buf), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: err = %v, want ErrMalformed", err)
	}
}

func TestDecodeRejectsHugeCount(t *testing.T) {
	w := NewWriter(8)
	w.U32(1 << 30)
	if _, err := DecodeTokens(w.Bytes()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
}

func TestStringsRejectInvalidUTF8(t *testing.T) {
	w := NewWriter(8)
	w.U32(1)
	w.U32(2)
	w.buf = append(w.buf, 0xff, 0xfe)
	if _, err := DecodeStrings(w.Bytes()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
}

func TestEventsRoundTrip(t *testing.T) {
	in := []Event{{Kind: EventCompletion, ID: 7, Code: 3, Payload: []byte("err")}, {Kind: EventLog, ID: 0, Payload: []byte{}}}
	out, err := DecodeEvents(EncodeEvents(in))
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("got %+v, %v", out, err)
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder: none may panic, and
// whatever decodes must encode back to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(EncodeOutgoing([]broker.OutMessage{{Destination: "t", Key: []byte("k"), Value: []byte("v")}}))
	f.Add(EncodeSettlements([]broker.Settlement{{Token: 1, Result: broker.Nack, Reason: "r"}}))
	f.Add(EncodeTokens([]uint64{1, 2}))
	f.Add(EncodeStrings([]string{"a", "b"}))
	f.Fuzz(func(t *testing.T, buf []byte) {
		if ms, err := DecodeOutgoing(buf); err == nil && !bytes.Equal(EncodeOutgoing(ms), buf) {
			t.Fatalf("outgoing did not round-trip")
		}
		if ss, err := DecodeSettlements(buf); err == nil && !bytes.Equal(EncodeSettlements(ss), buf) {
			t.Fatalf("settlements did not round-trip")
		}
		if ts, err := DecodeTokens(buf); err == nil && !bytes.Equal(EncodeTokens(ts), buf) {
			t.Fatalf("tokens did not round-trip")
		}
		if ss, err := DecodeStrings(buf); err == nil && !bytes.Equal(EncodeStrings(ss), buf) {
			t.Fatalf("strings did not round-trip")
		}
		DecodeDeliveries(buf)
		DecodeEvents(buf)
	})
}
