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

func TestSendResultsRoundTrip(t *testing.T) {
	failure := errors.New("topic t: too large")
	in := []broker.SendResult{
		{ID: "t-0-41", Partition: 0, Offset: 41},
		{ID: "", Err: failure},
		{ID: "t-2-7", Partition: 2, Offset: 7},
		{ID: "bad\x00id", Partition: 1, Offset: 1},
	}
	buf := EncodeSendResults(in, func(err error) int32 { return 12 })
	out, codes, err := DecodeSendResults(buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{0, 12, 0, 0}; !reflect.DeepEqual(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	if out[1].Err == nil || out[1].Err.Error() != failure.Error() {
		t.Fatalf("result 1 error %v, want %v", out[1].Err, failure)
	}
	ids := []string{out[0].ID, out[1].ID, out[2].ID, out[3].ID}
	if want := []string{"t-0-41", "", "t-2-7", "bad\uFFFDid"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("ids %q, want %q (a NUL in an id must not shift the others)", ids, want)
	}
	if out[2].Partition != 2 || out[2].Offset != 7 || out[0].Offset != 41 {
		t.Fatalf("partitions and offsets changed: %+v", out)
	}
	empty, _, err := DecodeSendResults(EncodeSendResults(nil, nil))
	if err != nil || len(empty) != 0 {
		t.Fatalf("no results: got %v, %v", empty, err)
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder: none may panic, and
// whatever decodes must encode back to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(EncodeOutgoing([]broker.OutMessage{{Destination: "t", Key: []byte("k"), Value: []byte("v")}}))
	f.Add(EncodeSettlements([]broker.Settlement{{Token: 1, Result: broker.Nack, Reason: "r"}}))
	f.Add(EncodeTokens([]uint64{1, 2}))
	f.Add(EncodeDeliveries([]broker.Delivery{{Token: 1, ID: "t-0-1", Topic: "t", Value: []byte("v"),
		Headers: []broker.Header{{Key: "h", Value: nil}}}}))
	f.Add(EncodeStrings([]string{"a", "b"}))
	f.Add(EncodeSendResults([]broker.SendResult{{ID: "a-0-1"}, {Err: errors.New("e")}}, func(error) int32 { return 3 }))
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
		if rs, codes, err := DecodeSendResults(buf); err == nil {
			code := func(e error) int32 {
				for i := range rs {
					if rs[i].Err == e {
						return codes[i]
					}
				}
				return -1
			}
			if !bytes.Equal(EncodeSendResults(rs, code), buf) {
				t.Fatalf("send results did not round-trip")
			}
		}
		if ds, err := DecodeDeliveries(buf); err == nil && !bytes.Equal(EncodeDeliveries(ds), buf) {
			t.Fatalf("deliveries did not round-trip")
		}
		DecodeEvents(buf)
	})
}
