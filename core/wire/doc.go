// Package wire encodes and decodes the buffers that cross the boundary
// between the Go core and Python, so each crossing carries a whole batch.
//
// Every integer is little-endian. A str is a u32 byte length followed by
// UTF-8 bytes; a bytes value is an i32 length followed by the bytes, where
// -1 means None. Python's decoder in cello/_wire.py reads the same layout.
//
//	deliveries   u32 count, then per delivery:
//	             u64 token, u32 lane, u32 attempt, i32 partition,
//	             i64 offset, i64 timestamp (ms since the epoch, 0 if none),
//	             str id, str topic, bytes key, bytes value,
//	             u32 header count, then per header: str key, bytes value
//	outgoing     u32 count, then per message:
//	             str destination, bytes key, bytes value,
//	             u32 header count, then per header: str key, bytes value
//	settlements  u32 count, then per settlement: u64 token, u8 result, str reason
//	tokens       u32 count, then u64 per token
//	strings      u32 count, then str per item
//	send results u32 count, then per result:
//	             i32 error code (0 for success), str error message,
//	             i32 partition, i64 offset, str id
//	events       u32 count, then per event: u8 kind, u64 id, i32 code,
//	             bytes payload (see Event)
package wire
