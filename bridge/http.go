package main

// #include "cello.h"
import "C"

import (
	"context"
	"time"
	"unsafe"

	"github.com/cello-framework/cello/core/httpserver"
	"github.com/cello-framework/cello/core/wire"
)

//export cello_http_listen
func cello_http_listen(addr *C.char, maxBody C.int64_t, handlerTimeoutMs C.int64_t) (res C.cello_result) {
	defer guard("cello_http_listen", &res)
	opts := httpserver.Options{
		MaxBodyBytes:   int64(maxBody),
		HandlerTimeout: time.Duration(handlerTimeoutMs) * time.Millisecond,
	}
	dispatch := func(id uint64, req *httpserver.Request) {
		push(wire.Event{Kind: wire.EventHTTPRequest, ID: id, Payload: httpserver.EncodeRequest(req)})
	}
	s, err := httpserver.Listen(C.GoString(addr), opts, dispatch, logger)
	if err != nil {
		return fail(err)
	}
	return ok(putHandle(s), []byte(s.Addr()))
}

//export cello_http_respond
func cello_http_respond(handle C.uint64_t, request C.uint64_t, data unsafe.Pointer, n C.int64_t) (res C.cello_result) {
	defer guard("cello_http_respond", &res)
	s, err := getHandle[*httpserver.Server](uint64(handle), "http server")
	if err != nil {
		return fail(err)
	}
	resp, err := httpserver.DecodeResponse(input(data, n))
	if err != nil {
		return fail(err)
	}
	if err := s.Respond(uint64(request), resp); err != nil {
		return fail(err)
	}
	return ok(0, nil)
}

//export cello_http_shutdown
func cello_http_shutdown(handle C.uint64_t, timeoutMs C.int64_t, completion C.uint64_t) (res C.cello_result) {
	defer guard("cello_http_shutdown", &res)
	s, err := getHandle[*httpserver.Server](uint64(handle), "http server")
	if err != nil || !dropHandle(uint64(handle)) {
		complete(uint64(completion), nil, nil)
		return ok(uint64(completion), nil)
	}
	async("cello_http_shutdown", uint64(completion), int64(timeoutMs), func(ctx context.Context) ([]byte, error) {
		return nil, s.Shutdown(ctx)
	})
	return ok(uint64(completion), nil)
}
