// Package wire encodes and decodes the buffers that cross the boundary
// between the Go core and Python, so each crossing carries a whole batch.
//
// Every integer is little-endian. A str is a u32 byte length followed by
// UTF-8 bytes; a bytes value is an i32 length followed by the bytes, where
// -1 means None. Python's decoder in cello/_wire.py reads the same layout.
//
//	deliveries   u32 count, then per delivery a fixed head of 56 bytes:
//	             u64 token, u32 lane, u32 attempt, i32 partition,
//	             i64 offset, i64 timestamp (ms since the epoch, 0 if none),
//	             u32 id length, u32 topic length, i32 key length (-1 for
//	             None), i32 value length (-1 for None), u32 header count;
//	             then the id, topic, key and value bytes, then per header:
//	             str key, bytes value
//	outgoing     u32 count, then per message:
//	             str destination, bytes key, bytes value,
//	             u32 header count, then per header: str key, bytes value
//	settlements  u32 count, then per settlement: u64 token, u8 result, str reason
//	tokens       u32 count, then u64 per token
//	strings      u32 count, then str per item
//	send results u32 count, then per result: i32 error code (0 for
//	             success), i32 partition, i64 offset.
//	             Then str ids: the ids of all results, joined by NUL.
//	             Then u32 error count, and per error: u32 result index,
//	             str message
//	events       u32 count, then per event: u8 kind, u64 id, i32 code,
//	             bytes payload (see Event)
package wire
