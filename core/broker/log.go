package broker

import (
	"sync"
	"time"
)

// Level is a log record's severity, numbered like Python's logging levels so
// the bridge passes it through unchanged.
type Level int

const (
	LevelDebug   Level = 10
	LevelInfo    Level = 20
	LevelWarning Level = 30
	LevelError   Level = 40
)

// Field is one key=value pair of context on a log record. The keys in use are
// broker, topic, queue, handle and err.
type Field struct {
	Key   string
	Value string
}

// Logger receives the core's log records. Component names the Python logger
// the record goes to, such as "kafka" for "cello.kafka". Implementations must
// be safe for concurrent use and must not block for long.
type Logger interface {
	Log(level Level, component, message string, fields ...Field)
}

// NopLogger discards every record.
type NopLogger struct{}

// Log discards the record.
func (NopLogger) Log(Level, string, string, ...Field) {}

// F builds a Field.
func F(key, value string) Field { return Field{Key: key, Value: value} }

// Throttle lets a repeated log record through at most once per interval for
// each key, so a condition that lasts (a broker that stays down) does not
// flood the log. The zero value is not usable; use NewThrottle.
type Throttle struct {
	mu       sync.Mutex
	interval time.Duration
	last     map[string]time.Time
	dropped  map[string]int
}

// NewThrottle returns a Throttle that passes each key once per interval.
func NewThrottle(interval time.Duration) *Throttle {
	return &Throttle{interval: interval, last: map[string]time.Time{}, dropped: map[string]int{}}
}

// Allow reports whether a record with key may be logged now, and how many
// records of that key were dropped since the last one allowed.
func (t *Throttle) Allow(key string) (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if last, seen := t.last[key]; seen && now.Sub(last) < t.interval {
		t.dropped[key]++
		return false, 0
	}
	t.last[key] = now
	n := t.dropped[key]
	delete(t.dropped, key)
	return true, n
}
