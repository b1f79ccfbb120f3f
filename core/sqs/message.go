package sqs

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/cello-framework/cello/core/broker"
)

// SQS limits, from the SQS developer guide.
const (
	// maxMessageBytes is the largest message, body plus attributes, and the
	// largest total of one SendMessageBatch call: 256 KiB, the default of a
	// queue's MaximumMessageSize attribute.
	// NOTE: a queue whose MaximumMessageSize was raised (SQS allows up to
	// 1 MiB) still gets this limit.
	maxMessageBytes = 262_144
	maxBatchEntries = 10
	maxAttributes   = 10
	maxAttrNameLen  = 256
	maxGroupIDLen   = 128
	maxDedupIDLen   = 128
)

// Message attributes that this package reads and writes itself.
const (
	attrKey              = "cello-key"
	attrBodyEncoding     = "cello-body-encoding"
	attrDeadLetterReason = "cello-dead-letter-reason"
	// attrDeduplicationID is a header, never sent as an attribute, whose
	// value becomes the MessageDeduplicationId of a FIFO message.
	attrDeduplicationID = "cello-deduplication-id"
	bodyEncodingBase64  = "base64"
	defaultGroupID      = "default"
	hashedGroupIDPrefix = "sha256-"
	maxReasonBytes      = 1024
	dataTypeString      = "String"
	dataTypeBinary      = "Binary"
	dataTypeNumber      = "Number"
)

// attrNamePattern is SQS's rule for message attribute names: letters,
// digits, underscores, hyphens and periods, with no period first, last or
// twice in a row. The "AWS." and "Amazon." prefixes are checked apart.
var attrNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// outEntry is one encoded message of a Send call.
type outEntry struct {
	index   int // position in the Send call
	body    string
	attrs   map[string]types.MessageAttributeValue
	groupID string
	dedupID string // the caller's MessageDeduplicationId, or "" for a new one
	size    int
}

// encodeMessage turns m into the body and attributes of an SQS message for
// queue q. Errors wrap broker.ErrInvalidArgument or broker.ErrTooLarge and
// name the message by its index i.
func encodeMessage(i int, m broker.OutMessage, q queue) (outEntry, error) {
	e := outEntry{index: i, attrs: map[string]types.MessageAttributeValue{}}

	if len(m.Value) == 0 {
		return e, fmt.Errorf("%w: message %d has an empty value, but SQS requires a non-empty message body",
			broker.ErrInvalidArgument, i)
	}
	e.body = string(m.Value)
	if !isSQSText(m.Value) {
		// SQS bodies are XML text, so other bytes travel base64-encoded and
		// the consumer decodes them.
		e.body = base64.StdEncoding.EncodeToString(m.Value)
		e.attrs[attrBodyEncoding] = stringAttr(bodyEncodingBase64)
	}

	for _, h := range m.Headers {
		if h.Key == attrDeduplicationID {
			if err := checkDeduplicationID(i, h.Value, q); err != nil {
				return e, err
			}
			e.dedupID = string(h.Value)
			continue
		}
		if err := checkHeader(i, h, e.attrs); err != nil {
			return e, err
		}
		e.attrs[h.Key] = bytesAttr(h.Value)
	}
	// NOTE: SQS attributes cannot be empty, so an empty key (not nil) is
	// sent as no key.
	if len(m.Key) > 0 {
		e.attrs[attrKey] = bytesAttr(m.Key)
	}
	if len(e.attrs) > maxAttributes {
		return e, fmt.Errorf("%w: message %d needs %d message attributes (headers plus the key), "+
			"but SQS allows at most %d", broker.ErrInvalidArgument, i, len(e.attrs), maxAttributes)
	}
	if q.fifo {
		e.groupID = groupID(m.Key)
	}

	e.size = messageSize(e.body, e.attrs)
	if e.size > maxMessageBytes {
		return e, fmt.Errorf("%w: message %d to queue %q is %d bytes (body plus attributes), "+
			"over the SQS limit of %d bytes", broker.ErrTooLarge, i, q.name, e.size, maxMessageBytes)
	}
	return e, nil
}

// checkHeader checks one header against SQS's attribute rules and against
// the names this package reserves.
func checkHeader(i int, h broker.Header, attrs map[string]types.MessageAttributeValue) error {
	lower := strings.ToLower(h.Key)
	switch {
	case h.Key == attrKey || h.Key == attrBodyEncoding:
		return fmt.Errorf("%w: message %d: header %q is reserved for the message key and body encoding",
			broker.ErrInvalidArgument, i, h.Key)
	case len(h.Key) > maxAttrNameLen || !attrNamePattern.MatchString(h.Key) ||
		strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon."):
		return fmt.Errorf("%w: message %d: header name %q is not a valid SQS attribute name "+
			"(up to %d letters, digits, '_', '-' and '.', not starting with AWS. or Amazon.)",
			broker.ErrInvalidArgument, i, shorten(h.Key), maxAttrNameLen)
	case len(h.Value) == 0:
		return fmt.Errorf("%w: message %d: header %q has an empty value, which SQS does not accept",
			broker.ErrInvalidArgument, i, h.Key)
	}
	if _, dup := attrs[h.Key]; dup {
		return fmt.Errorf("%w: message %d: header %q appears twice, but SQS attribute names are unique",
			broker.ErrInvalidArgument, i, h.Key)
	}
	return nil
}

// checkDeduplicationID checks a caller's MessageDeduplicationId: SQS accepts
// one only on a FIFO queue, as 1 to 128 printable ASCII characters other
// than space.
func checkDeduplicationID(i int, id []byte, q queue) error {
	if !q.fifo {
		return fmt.Errorf("%w: message %d has a deduplication id, but queue %q is not a FIFO queue "+
			"(FIFO queue names end in .fifo)", broker.ErrInvalidArgument, i, q.name)
	}
	if len(id) == 0 || len(id) > maxDedupIDLen || !isPrintableASCII(id) {
		return fmt.Errorf("%w: message %d: deduplication id %q must be 1 to %d printable ASCII characters "+
			"other than space", broker.ErrInvalidArgument, i, shorten(string(id)), maxDedupIDLen)
	}
	return nil
}

// isSQSText reports whether b is UTF-8 made only of the characters SQS
// accepts in bodies and String attributes: tab, newline, carriage return and
// U+0020 to U+10FFFF except surrogates and U+FFFE and U+FFFF.
func isSQSText(b []byte) bool {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			return false
		}
		switch {
		case r == '\t' || r == '\n' || r == '\r':
		case r < 0x20, r == 0xFFFE, r == 0xFFFF:
			return false
		}
		b = b[size:]
	}
	return true
}

// bytesAttr returns a String attribute when v is valid SQS text, else a
// Binary one.
func bytesAttr(v []byte) types.MessageAttributeValue {
	if isSQSText(v) {
		return stringAttr(string(v))
	}
	return types.MessageAttributeValue{DataType: aws.String(dataTypeBinary), BinaryValue: v}
}

func stringAttr(s string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String(dataTypeString), StringValue: aws.String(s)}
}

// messageSize is the size SQS counts against its limit: the body plus, for
// each attribute, its name, data type and value.
func messageSize(body string, attrs map[string]types.MessageAttributeValue) int {
	n := len(body)
	for name, a := range attrs {
		n += len(name) + len(aws.ToString(a.DataType)) + len(aws.ToString(a.StringValue)) + len(a.BinaryValue)
	}
	return n
}

// groupID returns the FIFO message group of a key: the key itself when it
// is a valid group id (1 to 128 printable ASCII characters other than
// space), a hash of it otherwise, and "default" for no key. The same key
// always maps to the same group, so its messages keep their order.
func groupID(key []byte) string {
	if len(key) == 0 {
		return defaultGroupID
	}
	if len(key) <= maxGroupIDLen && isPrintableASCII(key) {
		return string(key)
	}
	sum := sha256.Sum256(key)
	return hashedGroupIDPrefix + hex.EncodeToString(sum[:])
}

func isPrintableASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7E {
			return false
		}
	}
	return true
}

// deduplicationID returns a new MessageDeduplicationId, so that a FIFO
// queue never drops a message for having the same body as another. A
// caller who wants duplicates dropped sets the cello-deduplication-id
// header instead.
func deduplicationID() string { return uuid.NewString() }

// batchEntry builds the SendMessageBatch entry for e with the given id.
func (e outEntry) batchEntry(id string) types.SendMessageBatchRequestEntry {
	entry := types.SendMessageBatchRequestEntry{
		Id:          aws.String(id),
		MessageBody: aws.String(e.body),
	}
	if len(e.attrs) > 0 {
		entry.MessageAttributes = e.attrs
	}
	if e.groupID != "" {
		dedup := e.dedupID
		if dedup == "" {
			dedup = deduplicationID()
		}
		entry.MessageGroupId = aws.String(e.groupID)
		entry.MessageDeduplicationId = aws.String(dedup)
	}
	return entry
}

// splitBatches splits entry sizes, in order, into runs [start, end) of at
// most maxEntries entries whose sizes add up to at most maxBytes. Every
// single size must be at most maxBytes.
func splitBatches(sizes []int, maxEntries, maxBytes int) [][2]int {
	var runs [][2]int
	start, total := 0, 0
	for i, size := range sizes {
		if i > start && (i-start == maxEntries || total+size > maxBytes) {
			runs = append(runs, [2]int{start, i})
			start, total = i, 0
		}
		total += size
	}
	if start < len(sizes) {
		runs = append(runs, [2]int{start, len(sizes)})
	}
	return runs
}

// decodeMessage turns a received SQS message into a delivery without token
// and lane. It returns the message group id (empty for a standard queue)
// and, as warning, a problem with the body that the caller should log.
func decodeMessage(m types.Message, q queue) (d broker.Delivery, group string, warning string) {
	d = broker.Delivery{
		ID:        aws.ToString(m.MessageId),
		Topic:     q.name,
		Value:     []byte(aws.ToString(m.Body)),
		Partition: -1,
		Attempt:   1,
	}
	system := m.Attributes
	receives := system[string(types.MessageSystemAttributeNameApproximateReceiveCount)]
	if n, err := strconv.ParseUint(receives, 10, 32); err == nil && n > 0 {
		d.Attempt = uint32(n)
	}
	sent := system[string(types.MessageSystemAttributeNameSentTimestamp)]
	if ms, err := strconv.ParseInt(sent, 10, 64); err == nil {
		d.Timestamp = time.UnixMilli(ms)
	}
	group = system[string(types.MessageSystemAttributeNameMessageGroupId)]
	names := make([]string, 0, len(m.MessageAttributes))
	for name := range m.MessageAttributes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		value := attrBytes(m.MessageAttributes[name])
		switch name {
		case attrKey:
			d.Key = value
		case attrBodyEncoding:
			decoded, err := decodeBody(string(value), d.Value)
			if err != nil {
				// The body stays as received, and the header keeps the
				// encoding name for the application to inspect.
				warning = err.Error()
				d.Headers = append(d.Headers, broker.Header{Key: name, Value: value})
				continue
			}
			d.Value = decoded
		default:
			d.Headers = append(d.Headers, broker.Header{Key: name, Value: value})
		}
	}
	return d, group, warning
}

func decodeBody(encoding string, body []byte) ([]byte, error) {
	if encoding != bodyEncodingBase64 {
		return nil, fmt.Errorf("unknown %s %q, body left as received", attrBodyEncoding, encoding)
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	n, err := base64.StdEncoding.Decode(out, body)
	if err != nil {
		return nil, fmt.Errorf("invalid base64 body, left as received: %v", err)
	}
	return out[:n], nil
}

// attrBytes returns an attribute's value: the bytes of a Binary attribute,
// the text of a String or Number one (custom types such as "String.json"
// included).
func attrBytes(a types.MessageAttributeValue) []byte {
	if strings.HasPrefix(aws.ToString(a.DataType), dataTypeBinary) {
		return a.BinaryValue
	}
	return []byte(aws.ToString(a.StringValue))
}

// laneOf returns the lane of a delivery. Messages of one FIFO message group
// share a lane, so they are handled in order, and each message of a standard
// queue gets its own. The top bit keeps the two kinds apart.
func laneOf(q queue, group string, token uint64) uint32 {
	if !q.fifo {
		return uint32(token) &^ (1 << 31)
	}
	h := fnv.New32a()
	h.Write([]byte(q.url))
	h.Write([]byte{0})
	h.Write([]byte(group))
	return h.Sum32() | 1<<31
}

// deadLetterReason returns reason as a valid SQS String attribute value of
// at most maxReasonBytes: invalid characters become U+FFFD and a long
// reason is cut at a character boundary.
func deadLetterReason(reason string) string {
	reason = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r != 0xFFFE && r != 0xFFFF) {
			return r
		}
		return utf8.RuneError
	}, strings.ToValidUTF8(reason, string(utf8.RuneError)))
	if len(reason) <= maxReasonBytes {
		return reason
	}
	cut := maxReasonBytes
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
