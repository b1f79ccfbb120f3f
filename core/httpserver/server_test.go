package httpserver

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cello-framework/cello/core/broker"
)

func TestRequestAnsweredByID(t *testing.T) {
	var s *Server
	dispatch := func(id uint64, req *Request) {
		go func() {
			body := req.Method + " " + req.Path + "?" + req.RawQuery + " " + string(req.Body)
			s.Respond(id, &Response{Status: 201, Headers: [][2]string{{"X-Test", "1"}}, Body: []byte(body)})
		}()
	}
	s, err := Listen("127.0.0.1:0", Options{}, dispatch, broker.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	resp, err := http.Post("http://"+s.Addr()+"/orders?x=1", "text/plain", strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("X-Test") != "1" || string(body) != "POST /orders?x=1 hi" {
		t.Fatalf("got %d %q %q", resp.StatusCode, resp.Header.Get("X-Test"), body)
	}
}

func TestHandlerTimeoutAnswers504(t *testing.T) {
	s, err := Listen("127.0.0.1:0", Options{HandlerTimeout: 100 * time.Millisecond}, func(uint64, *Request) {}, broker.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	resp, err := http.Get("http://" + s.Addr() + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
}

func TestBodyOverLimitAnswers413(t *testing.T) {
	s, err := Listen("127.0.0.1:0", Options{MaxBodyBytes: 10}, func(uint64, *Request) {}, broker.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	resp, err := http.Post("http://"+s.Addr()+"/", "text/plain", strings.NewReader(strings.Repeat("x", 11)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

func TestRespondToEndedRequest(t *testing.T) {
	s, err := Listen("127.0.0.1:0", Options{}, func(uint64, *Request) {}, broker.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.Respond(42, &Response{Status: 200}); err == nil {
		t.Fatal("responding to an unknown request must fail")
	}
}

func TestDecodeResponseRejectsBadStatus(t *testing.T) {
	if _, err := DecodeResponse([]byte{5, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}); err == nil {
		t.Fatal("status 5 must be rejected")
	}
}
