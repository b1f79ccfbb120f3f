package main

// #include "cello.h"
import "C"

import (
	"context"
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/cello-framework/cello/core/broker"
	"github.com/cello-framework/cello/core/wire"
)

// guard recovers a panic in an export into an internal-error result.
func guard(where string, res *C.cello_result) {
	if v := recover(); v != nil {
		*res = fail(panicError(where, v))
	}
}

func u64(id uint64) []byte { return binary.LittleEndian.AppendUint64(nil, id) }

//export cello_config_new
func cello_config_new(kind *C.char, data unsafe.Pointer, n C.int64_t) (res C.cello_result) {
	defer guard("cello_config_new", &res)
	cfg, err := parseConfig(C.GoString(kind), input(data, n))
	if err != nil {
		return fail(err)
	}
	return ok(putHandle(cfg), []byte(cfg.Describe()))
}

//export cello_config_close
func cello_config_close(id C.uint64_t) (res C.cello_result) {
	defer guard("cello_config_close", &res)
	if _, err := getHandle[clientConfig](uint64(id), "config"); err == nil {
		dropHandle(uint64(id))
	}
	return ok(0, nil)
}

//export cello_producer_open
func cello_producer_open(config C.uint64_t, timeoutMs C.int64_t, completion C.uint64_t) (res C.cello_result) {
	defer guard("cello_producer_open", &res)
	cfg, err := getHandle[clientConfig](uint64(config), "config")
	if err != nil {
		return fail(err)
	}
	async("cello_producer_open", uint64(completion), int64(timeoutMs), func(ctx context.Context) ([]byte, error) {
		p, err := cfg.openProducer(ctx)
		if err != nil {
			return nil, err
		}
		return u64(putHandle(p)), nil
	})
	return ok(uint64(completion), nil)
}

//export cello_producer_send
func cello_producer_send(handle C.uint64_t, data unsafe.Pointer, n C.int64_t, timeoutMs C.int64_t, completion C.uint64_t) (res C.cello_result) {
	defer guard("cello_producer_send", &res)
	p, done, err := getHandleForCall[broker.Producer](uint64(handle), "producer")
	if err != nil {
		return fail(err)
	}
	msgs, err := wire.DecodeOutgoing(input(data, n))
	if err != nil {
		done()
		return fail(err)
	}
	async("cello_producer_send", uint64(completion), int64(timeoutMs), func(ctx context.Context) ([]byte, error) {
		defer done()
		results, err := p.Send(ctx, msgs)
		if err != nil {
			return nil, err
		}
		return wire.EncodeSendResults(results, statusOf), nil
	})
	return ok(uint64(completion), nil)
}

//export cello_producer_close
func cello_producer_close(handle C.uint64_t, timeoutMs C.int64_t, completion C.uint64_t) (res C.cello_result) {
	defer guard("cello_producer_close", &res)
	p, err := getHandle[broker.Producer](uint64(handle), "producer")
	if err != nil {
		complete(uint64(completion), nil, nil)
		return ok(uint64(completion), nil)
	}
	calls, found := dropHandleCalls(uint64(handle))
	if !found {
		complete(uint64(completion), nil, nil)
		return ok(uint64(completion), nil)
	}
	async("cello_producer_close", uint64(completion), int64(timeoutMs), func(ctx context.Context) ([]byte, error) {
		// Sends accepted before the close are flushed, not failed.
		waitCalls(ctx, calls)
		return nil, p.Close(ctx)
	})
	return ok(uint64(completion), nil)
}

//export cello_consumer_open
func cello_consumer_open(config C.uint64_t, data unsafe.Pointer, n C.int64_t, timeoutMs C.int64_t, completion C.uint64_t) (res C.cello_result) {
	defer guard("cello_consumer_open", &res)
	cfg, err := getHandle[clientConfig](uint64(config), "config")
	if err != nil {
		return fail(err)
	}
	opts, err := broker.ParseConsumerOptions(input(data, n))
	if err != nil {
		return fail(err)
	}
	async("cello_consumer_open", uint64(completion), int64(timeoutMs), func(ctx context.Context) ([]byte, error) {
		c, err := cfg.openConsumer(ctx, opts)
		if err != nil {
			return nil, err
		}
		return u64(putHandle(c)), nil
	})
	return ok(uint64(completion), nil)
}

//export cello_consumer_subscribe
func cello_consumer_subscribe(handle C.uint64_t, data unsafe.Pointer, n C.int64_t, timeoutMs C.int64_t, completion C.uint64_t) (res C.cello_result) {
	defer guard("cello_consumer_subscribe", &res)
	c, err := getHandle[broker.Consumer](uint64(handle), "consumer")
	if err != nil {
		return fail(err)
	}
	names, err := wire.DecodeStrings(input(data, n))
	if err != nil {
		return fail(err)
	}
	async("cello_consumer_subscribe", uint64(completion), int64(timeoutMs), func(ctx context.Context) ([]byte, error) {
		return nil, c.Subscribe(ctx, names)
	})
	return ok(uint64(completion), nil)
}

//export cello_consumer_poll
func cello_consumer_poll(handle C.uint64_t, timeoutMs C.int64_t, max C.int64_t, completion C.uint64_t) (res C.cello_result) {
	defer guard("cello_consumer_poll", &res)
	c, err := getHandle[broker.Consumer](uint64(handle), "consumer")
	if err != nil {
		return fail(err)
	}
	async("cello_consumer_poll", uint64(completion), 0, func(ctx context.Context) ([]byte, error) {
		ds, err := c.Poll(ctx, time.Duration(timeoutMs)*time.Millisecond, int(max))
		if err != nil && len(ds) == 0 {
			return nil, err
		}
		// NOTE: an error that arrives after some deliveries were taken is
		// dropped here; the next Poll reports it again if it persists.
		return wire.EncodeDeliveries(ds), nil
	})
	return ok(uint64(completion), nil)
}

//export cello_consumer_settle
func cello_consumer_settle(handle C.uint64_t, data unsafe.Pointer, n C.int64_t, timeoutMs C.int64_t, completion C.uint64_t) (res C.cello_result) {
	defer guard("cello_consumer_settle", &res)
	c, done, err := getHandleForCall[broker.Consumer](uint64(handle), "consumer")
	if err != nil {
		return fail(err)
	}
	settlements, err := wire.DecodeSettlements(input(data, n))
	if err != nil {
		done()
		return fail(err)
	}
	async("cello_consumer_settle", uint64(completion), int64(timeoutMs), func(ctx context.Context) ([]byte, error) {
		defer done()
		return nil, c.Settle(ctx, settlements)
	})
	return ok(uint64(completion), nil)
}

//export cello_consumer_commit
func cello_consumer_commit(handle C.uint64_t, data unsafe.Pointer, n C.int64_t, timeoutMs C.int64_t, completion C.uint64_t) (res C.cello_result) {
	defer guard("cello_consumer_commit", &res)
	c, done, err := getHandleForCall[broker.Consumer](uint64(handle), "consumer")
	if err != nil {
		return fail(err)
	}
	tokens, err := wire.DecodeTokens(input(data, n))
	if err != nil {
		done()
		return fail(err)
	}
	async("cello_consumer_commit", uint64(completion), int64(timeoutMs), func(ctx context.Context) ([]byte, error) {
		defer done()
		return nil, c.Commit(ctx, tokens)
	})
	return ok(uint64(completion), nil)
}

//export cello_consumer_close
func cello_consumer_close(handle C.uint64_t, timeoutMs C.int64_t, completion C.uint64_t) (res C.cello_result) {
	defer guard("cello_consumer_close", &res)
	c, err := getHandle[broker.Consumer](uint64(handle), "consumer")
	if err != nil {
		complete(uint64(completion), nil, nil)
		return ok(uint64(completion), nil)
	}
	calls, found := dropHandleCalls(uint64(handle))
	if !found {
		complete(uint64(completion), nil, nil)
		return ok(uint64(completion), nil)
	}
	async("cello_consumer_close", uint64(completion), int64(timeoutMs), func(ctx context.Context) ([]byte, error) {
		// Settlements and commits accepted before the close apply first.
		waitCalls(ctx, calls)
		return nil, c.Close(ctx)
	})
	return ok(uint64(completion), nil)
}

//export cello_events_wait
func cello_events_wait(timeoutMs C.int64_t, max C.int64_t) (res C.cello_result) {
	defer guard("cello_events_wait", &res)
	events := waitEvents(time.Duration(timeoutMs)*time.Millisecond, int(max))
	return ok(uint64(len(events)), wire.EncodeEvents(events))
}

//export cello_events_wake
func cello_events_wake() { wake() }

//export cello_set_log_level
func cello_set_log_level(level C.int32_t) { minLevel.Store(int32(level)) }

//export cello_handles_live
func cello_handles_live() C.int64_t { return C.int64_t(liveHandles()) }
