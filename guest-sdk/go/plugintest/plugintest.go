// Package plugintest runs a plugin natively in `go test`: build spans, process them, look at
// what comes out. It mirrors what the agent does (pack the batch, call Process, apply the edits).
package plugintest

import (
	"encoding/binary"
	"fmt"
	"math"

	"http-autoinstrument.invalid/sdk/plugin"
)

// Attr is one attribute of a TestSpan.
type Attr struct {
	Key   string
	Value plugin.Value
}

// Span is an owned span for tests.
type Span struct {
	Name           string
	Kind           plugin.SpanKind
	StartUnixNanos uint64
	EndUnixNanos   uint64
	Status         plugin.StatusCode
	StatusMessage  string
	Attributes     []Attr
	Resource       []Attr
}

// NewSpan is a server span named name with string attributes given as key, value pairs.
func NewSpan(name string, keyValues ...string) Span {
	s := Span{Name: name, StartUnixNanos: 1000, EndUnixNanos: 2000}
	for i := 0; i+1 < len(keyValues); i += 2 {
		s.Set(keyValues[i], plugin.StringValue(keyValues[i+1]))
	}
	return s
}

// Get is the value of key.
func (s *Span) Get(key string) plugin.Value {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value
		}
	}
	return plugin.Value{}
}

// Set sets key, replacing an existing value.
func (s *Span) Set(key string, v plugin.Value) {
	for i := range s.Attributes {
		if s.Attributes[i].Key == key {
			s.Attributes[i].Value = v
			return
		}
	}
	s.Attributes = append(s.Attributes, Attr{key, v})
}

// Pack is a batch holding spans as the agent packs them (one resource per span here).
func Pack(spans []Span) *plugin.Batch {
	var text, rows, attributes, resources []byte
	le := binary.LittleEndian
	push := func(s string) (uint32, uint32) {
		text = append(text, s...)
		return uint32(len(text) - len(s)), uint32(len(s))
	}
	pushAttributes := func(attrs []Attr) (uint32, uint32) {
		first := uint32(len(attributes) / 24)
		for _, a := range attrs {
			row := make([]byte, 24)
			o, n := push(a.Key)
			le.PutUint32(row[0:], o)
			le.PutUint32(row[4:], n)
			switch a.Value.Kind() {
			case plugin.Int:
				i, _ := a.Value.Int()
				row[8] = 1
				le.PutUint64(row[16:], uint64(i))
			case plugin.Float:
				f, _ := a.Value.Float()
				row[8] = 2
				le.PutUint64(row[16:], math.Float64bits(f))
			case plugin.Bool:
				if b, _ := a.Value.Bool(); b {
					le.PutUint64(row[16:], 1)
				}
				row[8] = 3
			default:
				str, _ := a.Value.Str()
				o, n := push(str)
				le.PutUint32(row[16:], o)
				le.PutUint32(row[20:], n)
			}
			attributes = append(attributes, row...)
		}
		return first, uint32(len(attrs))
	}
	for i, s := range spans {
		first, count := pushAttributes(s.Resource)
		resources = le.AppendUint32(le.AppendUint32(resources, first), count)
		first, count = pushAttributes(s.Attributes)
		row := make([]byte, 80)
		le.PutUint64(row[0:], 1)
		le.PutUint64(row[8:], uint64(i))
		le.PutUint64(row[16:], uint64(i+1))
		le.PutUint64(row[32:], s.StartUnixNanos)
		le.PutUint64(row[40:], s.EndUnixNanos)
		o, n := push(s.Name)
		le.PutUint32(row[48:], o)
		le.PutUint32(row[52:], n)
		o, n = push(s.StatusMessage)
		le.PutUint32(row[56:], o)
		le.PutUint32(row[60:], n)
		le.PutUint32(row[64:], first)
		le.PutUint32(row[68:], count)
		le.PutUint32(row[72:], uint32(i))
		row[76] = uint8(s.Kind)
		row[77] = uint8(s.Status)
		rows = append(rows, row...)
	}
	return plugin.NewBatch(text, rows, attributes, resources)
}

// Apply is the spans after edits, applied the way the agent applies them.
func Apply(spans []Span, edits *plugin.Edits) ([]Span, error) {
	list := edits.List()
	for _, e := range list {
		if e.Span < 0 || e.Span >= len(spans) {
			return nil, fmt.Errorf("edit refers to span %d of a batch of %d", e.Span, len(spans))
		}
	}
	out := make([]Span, len(spans))
	for i, s := range spans {
		out[i] = s
		out[i].Attributes = append([]Attr(nil), s.Attributes...)
	}
	dropped := make([]bool, len(spans))
	for _, e := range list {
		s := &out[e.Span]
		switch e.Op {
		case "drop":
			dropped[e.Span] = true
		case "rename":
			s.Name = e.Text
		case "set":
			s.Set(e.Text, e.Value)
		case "remove":
			kept := s.Attributes[:0]
			for _, a := range s.Attributes {
				if a.Key != e.Text {
					kept = append(kept, a)
				}
			}
			s.Attributes = kept
		case "status":
			code, _ := e.Value.Int()
			s.Status, s.StatusMessage = plugin.StatusCode(code), e.Text
		}
	}
	var kept []Span
	for i, s := range out {
		if !dropped[i] {
			kept = append(kept, s)
		}
	}
	return kept, nil
}

// Run runs spans through p (already initialised) and returns what comes out.
func Run(p plugin.Plugin, spans []Span) ([]Span, error) {
	var edits plugin.Edits
	if err := p.Process(Pack(spans), &edits); err != nil {
		return nil, err
	}
	return Apply(spans, &edits)
}
