// Package httpserver serves HTTP with net/http and hands each request to a
// dispatcher that responds to it later by id, so a handler can run in another
// runtime (Python) without a goroutine calling into it.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cello-framework/cello/core/broker"
	"github.com/cello-framework/cello/core/wire"
)

// Request is one HTTP request waiting for its response.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Headers  [][2]string
	Body     []byte
	Remote   string
}

// Response is the application's response to a Request.
type Response struct {
	Status  int
	Headers [][2]string
	Body    []byte
}

// Options bound the server's work.
type Options struct {
	// MaxBodyBytes caps a request body; larger ones get 413.
	MaxBodyBytes int64
	// HandlerTimeout is how long a request waits for its response before
	// the client gets 504.
	HandlerTimeout time.Duration
}

// DefaultOptions are used for zero fields of Options.
var DefaultOptions = Options{MaxBodyBytes: 10 << 20, HandlerTimeout: 60 * time.Second}

// Server is an HTTP server whose requests get their responses through Respond.
type Server struct {
	srv      *http.Server
	ln       net.Listener
	opts     Options
	dispatch func(id uint64, req *Request)
	log      broker.Logger

	nextID  atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan *Response
	served  sync.WaitGroup
}

// Listen binds addr (host:port; port 0 picks a free one) and starts serving.
// dispatch is called once per request, on the request's goroutine, and must
// not block; the response comes later through Respond.
func Listen(addr string, opts Options, dispatch func(id uint64, req *Request), log broker.Logger) (*Server, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultOptions.MaxBodyBytes
	}
	if opts.HandlerTimeout <= 0 {
		opts.HandlerTimeout = DefaultOptions.HandlerTimeout
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: listen on %s: %v", broker.ErrConnection, addr, err)
	}
	s := &Server{ln: ln, opts: opts, dispatch: dispatch, log: log, pending: map[uint64]chan *Response{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.served.Add(1)
	go func() {
		defer s.served.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Log(broker.LevelError, "http", "server stopped: "+err.Error(), broker.F("err", err.Error()))
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// ServeHTTP hands the request to the dispatcher and writes its response.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("request body over the limit of %d bytes", s.opts.MaxBodyBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the request body failed", http.StatusBadRequest)
		return
	}
	req := &Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Body: body, Remote: r.RemoteAddr}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Headers = append(req.Headers, [2]string{k, v})
		}
	}
	id := s.nextID.Add(1)
	ch := make(chan *Response, 1)
	s.mu.Lock()
	s.pending[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	s.dispatch(id, req)

	timer := time.NewTimer(s.opts.HandlerTimeout)
	defer timer.Stop()
	select {
	case resp := <-ch:
		for _, h := range resp.Headers {
			w.Header().Add(h[0], h[1])
		}
		w.WriteHeader(resp.Status)
		w.Write(resp.Body)
	case <-timer.C:
		s.log.Log(broker.LevelError, "http", fmt.Sprintf("%s %s: no response within %v", r.Method, r.URL.Path, s.opts.HandlerTimeout))
		http.Error(w, "handler timed out", http.StatusGatewayTimeout)
	case <-r.Context().Done():
	}
}

// Respond delivers the response to request id. It returns ErrNotFound when
// the request already ended, for example because its client went away.
func (s *Server) Respond(id uint64, resp *Response) error {
	s.mu.Lock()
	ch, ok := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: http request %d already ended", broker.ErrNotFound, id)
	}
	ch <- resp
	return nil
}

// Shutdown stops accepting connections and waits until ctx ends for the
// requests in progress.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.served.Wait()
	if err != nil {
		return fmt.Errorf("%w: http shutdown: %v", broker.ErrTimeout, err)
	}
	return nil
}

// EncodeRequest writes a request in the layout Python reads: str method,
// str path, str raw query, u32 header count, then str name and str value per
// header, bytes body, str remote address.
func EncodeRequest(r *Request) []byte {
	w := wire.NewWriter(64 + len(r.Body))
	w.Str(r.Method)
	w.Str(r.Path)
	w.Str(r.RawQuery)
	w.U32(uint32(len(r.Headers)))
	for _, h := range r.Headers {
		w.Str(h[0])
		w.Str(h[1])
	}
	w.OptBytes(r.Body)
	w.Str(r.Remote)
	return w.Bytes()
}

// DecodeResponse reads a response: u32 status, u32 header count, then str
// name and str value per header, bytes body.
func DecodeResponse(buf []byte) (*Response, error) {
	r := wire.NewReader(buf)
	resp := &Response{Status: int(r.U32())}
	n := r.Count(8)
	for i := 0; i < n && r.Err() == nil; i++ {
		resp.Headers = append(resp.Headers, [2]string{r.Str(), r.Str()})
	}
	resp.Body = r.OptBytes()
	if err := r.Done(); err != nil {
		return nil, err
	}
	if resp.Status < 100 || resp.Status > 999 {
		return nil, fmt.Errorf("%w: http status %d", broker.ErrInvalidArgument, resp.Status)
	}
	return resp, nil
}
