package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Fields reads a configuration sent as a JSON object and checks each field,
// so every broker package reports a bad field the same way: the field's
// name, what is accepted, and the value received. Secret fields are read
// with Secret, which never echoes the value.
type Fields struct {
	prefix string
	raw    map[string]json.RawMessage
	used   map[string]bool
}

// ParseFields decodes a JSON object. prefix names the config class in
// messages, such as "KafkaConfig".
func ParseFields(prefix string, data []byte) (*Fields, error) {
	raw := map[string]json.RawMessage{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %s is not a JSON object: %v", ErrConfig, prefix, err)
	}
	return &Fields{prefix: prefix, raw: raw, used: map[string]bool{}}, nil
}

func (f *Fields) fail(name, expected string, got json.RawMessage) error {
	return fmt.Errorf("%w: %s.%s must be %s, got %s", ErrConfig, f.prefix, name, expected, shorten(string(got)))
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// lookup returns the raw value and whether it is present and not null.
func (f *Fields) lookup(name string) (json.RawMessage, bool) {
	f.used[name] = true
	v, ok := f.raw[name]
	if !ok || string(v) == "null" {
		return nil, false
	}
	return v, true
}

// Present returns a field's raw JSON and whether it was given and not null.
func (f *Fields) Present(name string) (json.RawMessage, bool) {
	v, ok := f.raw[name]
	return v, ok && string(v) != "null"
}

// String reads an optional string; a missing or null field returns def.
// When nonEmpty is set, an empty or blank string is rejected.
func (f *Fields) String(name, def string, nonEmpty bool) (string, error) {
	v, ok := f.lookup(name)
	if !ok {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", f.fail(name, "a string", v)
	}
	if nonEmpty && strings.TrimSpace(s) == "" {
		return "", f.fail(name, "a non-empty string", v)
	}
	return s, nil
}

// Secret reads an optional string whose value never appears in a message.
func (f *Fields) Secret(name string) (string, error) {
	v, ok := f.lookup(name)
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("%w: %s.%s must be a string (value hidden)", ErrConfig, f.prefix, name)
	}
	return s, nil
}

// Choice reads an optional string that must be one of choices, compared
// without regard to case; it returns the matching entry of choices.
func (f *Fields) Choice(name, def string, choices ...string) (string, error) {
	v, ok := f.lookup(name)
	if !ok {
		return def, nil
	}
	var s string
	expected := "one of " + quoteAll(choices)
	if err := json.Unmarshal(v, &s); err != nil {
		return "", f.fail(name, expected, v)
	}
	for _, c := range choices {
		if strings.EqualFold(c, s) {
			return c, nil
		}
	}
	return "", f.fail(name, expected, v)
}

// Bool reads an optional boolean.
func (f *Fields) Bool(name string, def bool) (bool, error) {
	v, ok := f.lookup(name)
	if !ok {
		return def, nil
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		return false, f.fail(name, "true or false", v)
	}
	return b, nil
}

// Int reads an optional integer within [min, max].
func (f *Fields) Int(name string, def, min, max int64) (int64, error) {
	v, ok := f.lookup(name)
	if !ok {
		return def, nil
	}
	expected := fmt.Sprintf("an integer from %d to %d", min, max)
	var n json.Number
	// json.Number also accepts a quoted number; a string is not an integer.
	if v[0] == '"' || json.Unmarshal(v, &n) != nil {
		return 0, f.fail(name, expected, v)
	}
	i, err := n.Int64()
	if err != nil || i < min || i > max {
		return 0, f.fail(name, expected, v)
	}
	return i, nil
}

// StringList reads a list of non-empty strings, also given as one string of
// comma-separated items. A missing field returns nil.
func (f *Fields) StringList(name string) ([]string, error) {
	v, ok := f.lookup(name)
	if !ok {
		return nil, nil
	}
	expected := `a comma-separated string or a list of strings, such as "host1:9092,host2:9092"`
	var items []string
	var one string
	if err := json.Unmarshal(v, &one); err == nil {
		items = strings.Split(one, ",")
	} else if err := json.Unmarshal(v, &items); err != nil {
		return nil, f.fail(name, expected, v)
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			return nil, f.fail(name, expected+" with no empty item", v)
		}
		out = append(out, it)
	}
	return out, nil
}

// StringMap reads an optional object whose values are strings, numbers or
// booleans, each returned as its string form.
func (f *Fields) StringMap(name string) (map[string]string, error) {
	v, ok := f.lookup(name)
	if !ok {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, f.fail(name, "a dict of strings to strings, numbers or booleans", v)
	}
	out := make(map[string]string, len(m))
	for k, raw := range m {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			out[k] = s
			continue
		}
		switch c := string(raw); {
		case c == "true" || c == "false":
			out[k] = c
		case len(c) > 0 && (c[0] == '-' || (c[0] >= '0' && c[0] <= '9')):
			out[k] = c
		default:
			// The value is not echoed: maps such as librdkafka properties
			// may carry passwords.
			return nil, fmt.Errorf("%w: %s.%s[%q] must be a string, number or boolean (value hidden)",
				ErrConfig, f.prefix, name, k)
		}
	}
	return out, nil
}

// Unknown returns an error naming every field that no reader asked for, so a
// misspelt option is reported instead of silently ignored.
func (f *Fields) Unknown() error {
	var extra []string
	for k := range f.raw {
		if !f.used[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	return fmt.Errorf("%w: %s has no field %s", ErrConfig, f.prefix, quoteAll(extra))
}

func quoteAll(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
