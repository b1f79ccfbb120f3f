// Command bridge is the c-shared library that Python loads: cgo exports
// that decode arguments, call the core packages and encode results. It holds
// no broker logic.
//
// Every export returns a cello_result. code is 0 on success, otherwise one
// of the status codes in status.go, and then data holds the error message.
// id is the new handle, count or completion id the call produced. data and
// len are a buffer that Python releases with cello_release once it copied
// it. Calls that talk to a broker return at once and finish with a
// completion event that cello_events_wait hands to Python later.
package main

// #include "cello.h"
import "C"

import (
	"unsafe"
)

// abiVersion changes whenever an export's signature or a buffer layout
// changes; Python refuses to load a library with another version.
const abiVersion = 1

func main() {}

//export cello_abi_version
func cello_abi_version() C.int32_t { return abiVersion }

//export cello_release
func cello_release(data unsafe.Pointer) {
	if data != nil {
		C.free(data)
	}
}

// ok returns a success result with id and a copy of buf in C memory.
func ok(id uint64, buf []byte) C.cello_result {
	r := C.cello_result{code: 0, id: C.uint64_t(id)}
	if len(buf) > 0 {
		r.data = C.CBytes(buf)
		r.len = C.int64_t(len(buf))
	}
	return r
}

// fail returns an error result carrying err's status code and message.
func fail(err error) C.cello_result {
	msg := err.Error()
	return C.cello_result{code: C.int32_t(statusOf(err)), data: C.CBytes([]byte(msg)), len: C.int64_t(len(msg))}
}

// input copies n bytes at p into Go memory, so nothing keeps a pointer to
// Python's buffer after the call returns.
func input(p unsafe.Pointer, n C.int64_t) []byte {
	if p == nil || n <= 0 {
		return nil
	}
	return C.GoBytes(p, C.int(n))
}
