package broker

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFieldsErrorsNameFieldAndValue(t *testing.T) {
	cases := []struct {
		json string
		read func(f *Fields) error
		want string
	}{
		{`{"n": "x"}`, func(f *Fields) error { _, err := f.Int("n", 0, 1, 5); return err }, `C.n must be an integer from 1 to 5, got "x"`},
		{`{"n": 9}`, func(f *Fields) error { _, err := f.Int("n", 0, 1, 5); return err }, `C.n must be an integer from 1 to 5, got 9`},
		{`{"s": 1}`, func(f *Fields) error { _, err := f.String("s", "", false); return err }, `C.s must be a string, got 1`},
		{`{"s": " "}`, func(f *Fields) error { _, err := f.String("s", "", true); return err }, `C.s must be a non-empty string`},
		{`{"b": 1}`, func(f *Fields) error { _, err := f.Bool("b", false); return err }, `C.b must be true or false, got 1`},
		{`{"c": "z"}`, func(f *Fields) error { _, err := f.Choice("c", "a", "a", "b"); return err }, `C.c must be one of "a", "b", got "z"`},
		{`{"l": "a,,b"}`, func(f *Fields) error { _, err := f.StringList("l"); return err }, `no empty item`},
		{`{"m": {"k": [1]}}`, func(f *Fields) error { _, err := f.StringMap("m"); return err }, `C.m["k"] must be a string, number or boolean`},
	}
	for _, c := range cases {
		f, err := ParseFields("C", []byte(c.json))
		if err != nil {
			t.Fatal(err)
		}
		err = c.read(f)
		if !errors.Is(err, ErrConfig) {
			t.Fatalf("%s: err = %v, want ErrConfig", c.json, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: message %q does not contain %q", c.json, err, c.want)
		}
	}
}

func TestSecretNeverEchoed(t *testing.T) {
	f, _ := ParseFields("C", []byte(`{"p": 12345}`))
	_, err := f.Secret("p")
	if err == nil || strings.Contains(err.Error(), "12345") {
		t.Fatalf("err = %v, want an error without the value", err)
	}
}

func TestUnknownFieldsReported(t *testing.T) {
	f, _ := ParseFields("C", []byte(`{"a": 1, "zz": 2, "yy": 3}`))
	f.Int("a", 0, 0, 5)
	err := f.Unknown()
	if err == nil || !strings.Contains(err.Error(), `C has no field "yy", "zz"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestRetryDelayDoublesUpToMax(t *testing.T) {
	p := RetryPolicy{Backoff: 100 * time.Millisecond, MaxBackoff: 350 * time.Millisecond}
	want := []time.Duration{0, 100, 200, 350, 350}
	for n, w := range want {
		if got := p.Delay(n); got != w*time.Millisecond {
			t.Fatalf("Delay(%d) = %v, want %v", n, got, w*time.Millisecond)
		}
	}
}

func TestConsumerOptionsDefaultsAndErrors(t *testing.T) {
	opts, err := ParseConsumerOptions(nil)
	if err != nil || opts.Retry != DefaultRetryPolicy || opts.AutoCommit != nil {
		t.Fatalf("defaults: %+v, %v", opts, err)
	}
	opts, err = ParseConsumerOptions([]byte(`{"auto_commit": false, "max_retries": 0, "group": "g"}`))
	if err != nil || opts.AutoCommit == nil || *opts.AutoCommit || opts.Retry.MaxRetries != 0 || opts.Group != "g" {
		t.Fatalf("parsed: %+v, %v", opts, err)
	}
	if _, err := ParseConsumerOptions([]byte(`{"max_retries": -1}`)); err == nil || !strings.Contains(err.Error(), "max_retries") {
		t.Fatalf("err = %v", err)
	}
	if _, err := ParseConsumerOptions([]byte(`{"retries": 1}`)); err == nil || !strings.Contains(err.Error(), `"retries"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestThrottlePassesOncePerInterval(t *testing.T) {
	th := NewThrottle(time.Hour)
	if ok, dropped := th.Allow("a"); !ok || dropped != 0 {
		t.Fatalf("first record: ok=%v dropped=%d, want true 0", ok, dropped)
	}
	for i := 0; i < 3; i++ {
		if ok, _ := th.Allow("a"); ok {
			t.Fatalf("repeat %d within the interval was let through", i)
		}
	}
	if ok, _ := th.Allow("b"); !ok {
		t.Fatal("another key must pass")
	}
	th.last["a"] = time.Now().Add(-2 * time.Hour)
	if ok, dropped := th.Allow("a"); !ok || dropped != 3 {
		t.Fatalf("after the interval: ok=%v dropped=%d, want true 3", ok, dropped)
	}
}
