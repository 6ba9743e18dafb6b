// Package plugin writes http-autoinstrument span processor plugins in Go (standard toolchain,
// Go >= 1.24, GOOS=wasip1, -buildmode=c-shared; build.sh makes the component).
//
//	type dropHealth struct{ paths map[string]bool }
//
//	func (d *dropHealth) Init(settings []byte) error { ... }
//	func (d *dropHealth) Process(b *plugin.Batch, e *plugin.Edits) error {
//		for s := range b.Spans() {
//			if p, ok := s.Attributes().Str("url.path"); ok && d.paths[p] {
//				e.Drop(s)
//			}
//		}
//		return nil
//	}
//
//	func init() { plugin.Register(&dropHealth{}) }
//	func main() {}
//
// The batch is read where it lies (fixed-size rows and one text buffer, see layout.go): a field
// is decoded when asked for; strings are views of the batch's text, not copies. Edits are packed
// as the agent reads them. The plugintest package runs a plugin natively in `go test`.
package plugin

import (
	"encoding/binary"
	"encoding/hex"
	"iter"
	"math"
	"unsafe"
)

// SpanKind says whether the traced process served or sent the request.
type SpanKind uint8

const (
	Server SpanKind = kindServer
	Client SpanKind = kindClient
)

// StatusCode is a span's status.
type StatusCode uint8

const (
	Unset StatusCode = statusUnset
	OK    StatusCode = statusOk
	Error StatusCode = statusError
)

// Batch is a batch of spans as the agent sent it.
type Batch struct {
	text, spans, attributes, resources []byte
}

// NewBatch reads the four tables of a span batch (the agent's encoding; see wit/plugin.wit).
func NewBatch(text, spans, attributes, resources []byte) *Batch {
	return &Batch{text: text, spans: spans, attributes: attributes, resources: resources}
}

// Len is the number of spans.
func (b *Batch) Len() int { return len(b.spans) / spanRow }

// Span is the span at index i (0 <= i < Len()).
func (b *Batch) Span(i int) Span {
	return Span{b: b, index: i, row: b.spans[i*spanRow : (i+1)*spanRow]}
}

// Spans visits every span in order.
func (b *Batch) Spans() iter.Seq[Span] {
	return func(yield func(Span) bool) {
		for i := 0; i < b.Len(); i++ {
			if !yield(b.Span(i)) {
				return
			}
		}
	}
}

func u32(b []byte, at int) uint32 { return binary.LittleEndian.Uint32(b[at:]) }
func u64(b []byte, at int) uint64 { return binary.LittleEndian.Uint64(b[at:]) }

// str is the text range stored at row[at:at+8], as a view of the batch's text (valid as long as
// anything refers to it: Go's collector keeps the text alive); empty when out of bounds.
func (b *Batch) str(row []byte, at int) string {
	start, n := uint64(u32(row, at)), uint64(u32(row, at+4))
	if n == 0 || start+n > uint64(len(b.text)) {
		return ""
	}
	return unsafe.String(&b.text[start], int(n))
}

// ValueKind is the type of an attribute value; Absent for a key the span lacks.
type ValueKind uint8

const (
	Absent ValueKind = iota
	String
	Int
	Float
	Bool
)

// Value is an attribute value read from a batch.
type Value struct {
	kind ValueKind
	str  string
	bits uint64
}

// StringValue, IntValue, FloatValue and BoolValue make values (for tests).
func StringValue(s string) Value    { return Value{kind: String, str: s} }
func IntValue(i int64) Value        { return Value{kind: Int, bits: uint64(i)} }
func FloatValue(f float64) Value    { return Value{kind: Float, bits: math.Float64bits(f)} }
func BoolValue(v bool) Value        { return Value{kind: Bool, bits: boolBits(v)} }
func (v Value) Kind() ValueKind     { return v.kind }
func (v Value) Present() bool       { return v.kind != Absent }
func (v Value) Str() (string, bool) { return v.str, v.kind == String }
func (v Value) Int() (int64, bool)  { return int64(v.bits), v.kind == Int }
func (v Value) Float() (float64, bool) {
	return math.Float64frombits(v.bits), v.kind == Float
}
func (v Value) Bool() (bool, bool) { return v.bits != 0, v.kind == Bool }

func boolBits(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

func (b *Batch) value(row []byte) Value {
	bits := u64(row, attributeValue)
	switch row[attributeType] {
	case typeStr:
		return Value{kind: String, str: b.str(row, attributeValue)}
	case typeInt:
		return Value{kind: Int, bits: bits}
	case typeFloat:
		return Value{kind: Float, bits: bits}
	case typeBool:
		return Value{kind: Bool, bits: boolBits(bits != 0)}
	}
	return Value{kind: String} // a type unknown to this SDK version reads as an empty string
}

// Attributes are a span's (or resource's) attributes, read on demand, in the agent's order.
type Attributes struct {
	b            *Batch
	first, count uint32
}

func (b *Batch) attributeRow(i uint64) []byte {
	at := i * attributeRow
	if at+attributeRow > uint64(len(b.attributes)) {
		return nil
	}
	return b.attributes[at : at+attributeRow]
}

// Len is the number of attributes.
func (a Attributes) Len() int { return int(a.count) }

// All visits every attribute as (key, value).
func (a Attributes) All() iter.Seq2[string, Value] {
	return func(yield func(string, Value) bool) {
		for i := uint64(a.first); i < uint64(a.first)+uint64(a.count); i++ {
			row := a.b.attributeRow(i)
			if row == nil || !yield(a.b.str(row, attributeKey), a.b.value(row)) {
				return
			}
		}
	}
}

// Get is the value of key (Kind() == Absent when the span has none).
func (a Attributes) Get(key string) Value {
	var v [1]Value
	a.lookup([]string{key}, v[:])
	return v[0]
}

// Str is the value of key if it is a string.
func (a Attributes) Str(key string) (string, bool) { return a.Get(key).Str() }

// Int is the value of key if it is an integer.
func (a Attributes) Int(key string) (int64, bool) { return a.Get(key).Int() }

// GetMany finds several keys in one walk through the attributes: cheaper than one Get per key
// when the span may lack some of them.
func (a Attributes) GetMany(keys ...string) []Value {
	values := make([]Value, len(keys))
	a.lookup(keys, values)
	return values
}

func (a Attributes) lookup(keys []string, values []Value) {
	missing := len(keys)
	for i := uint64(a.first); i < uint64(a.first)+uint64(a.count) && missing > 0; i++ {
		row := a.b.attributeRow(i)
		if row == nil {
			return
		}
		n := int(u32(row, attributeKey+4))
		for k, key := range keys {
			if values[k].kind == Absent && len(key) == n && a.b.str(row, attributeKey) == key {
				values[k] = a.b.value(row)
				missing--
			}
		}
	}
}

// Span is one span of a batch; fields are read from its row when asked for.
type Span struct {
	b     *Batch
	index int
	row   []byte
}

// Index is the span's position in the batch: what edits refer to.
func (s Span) Index() int             { return s.index }
func (s Span) Name() string           { return s.b.str(s.row, spanName) }
func (s Span) StatusMessage() string  { return s.b.str(s.row, spanStatusMessage) }
func (s Span) StartUnixNanos() uint64 { return u64(s.row, spanStart) }
func (s Span) EndUnixNanos() uint64   { return u64(s.row, spanEnd) }
func (s Span) Attributes() Attributes {
	return Attributes{b: s.b, first: u32(s.row, spanAttributes), count: u32(s.row, spanAttributes+4)}
}

// DurationNanos is end minus start (0 if the end is before the start).
func (s Span) DurationNanos() uint64 {
	start, end := s.StartUnixNanos(), s.EndUnixNanos()
	if end < start {
		return 0
	}
	return end - start
}

func (s Span) Kind() SpanKind {
	if s.row[spanKind] == kindClient {
		return Client
	}
	return Server
}

func (s Span) Status() StatusCode {
	if c := s.row[spanStatus]; c <= statusError {
		return StatusCode(c)
	}
	return Unset
}

// TraceID is the trace id as 32 lowercase hex digits.
func (s Span) TraceID() string {
	id := s.TraceIDBytes()
	return hex.EncodeToString(id[:])
}

// TraceIDBytes is the trace id's 16 bytes.
func (s Span) TraceIDBytes() (id [16]byte) {
	binary.BigEndian.PutUint64(id[:8], u64(s.row, spanTraceIdHigh))
	binary.BigEndian.PutUint64(id[8:], u64(s.row, spanTraceIdLow))
	return id
}

// SpanID is the span id as 16 lowercase hex digits.
func (s Span) SpanID() string { return hexID(u64(s.row, spanSpanId)) }

// ParentSpanID is the parent's span id as 16 hex digits; false for a root span.
func (s Span) ParentSpanID() (string, bool) {
	if s.row[spanHasParent] == 0 {
		return "", false
	}
	return hexID(u64(s.row, spanParentSpanId)), true
}

func hexID(id uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	return hex.EncodeToString(b[:])
}

// Resource is the attributes of the process that produced the span (service.name, ...).
func (s Span) Resource() Attributes {
	at := uint64(u32(s.row, spanResource))*resourceRow + resourceAttributes
	if at+8 > uint64(len(s.b.resources)) {
		return Attributes{b: s.b}
	}
	return Attributes{b: s.b, first: u32(s.b.resources, int(at)), count: u32(s.b.resources, int(at)+4)}
}
