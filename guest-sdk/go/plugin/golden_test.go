// The Go SDK against the agent's golden batches and edits (guest-sdk/testdata/golden).
package plugin_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"http-autoinstrument.invalid/sdk/plugin"
)

const golden = "../../testdata/golden"

func load(t *testing.T, name string) (*plugin.Batch, []any) {
	t.Helper()
	read := func(file string) []byte {
		b, err := os.ReadFile(filepath.Join(golden, name, file))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var expected []any
	if err := json.Unmarshal(read("expected.json"), &expected); err != nil {
		t.Fatal(err)
	}
	return plugin.NewBatch(read("text.bin"), read("spans.bin"), read("attributes.bin"), read("resources.bin")), expected
}

func valueJSON(key string, v plugin.Value) any {
	switch v.Kind() {
	case plugin.Int:
		i, _ := v.Int()
		return []any{key, "int", strconv.FormatInt(i, 10)}
	case plugin.Float:
		f, _ := v.Float()
		return []any{key, "float", f}
	case plugin.Bool:
		b, _ := v.Bool()
		return []any{key, "bool", b}
	}
	s, _ := v.Str()
	return []any{key, "str", s}
}

func attributesJSON(a plugin.Attributes) []any {
	out := []any{}
	for k, v := range a.All() {
		out = append(out, valueJSON(k, v))
	}
	return out
}

func spanJSON(s plugin.Span) map[string]any {
	var parent any
	if p, ok := s.ParentSpanID(); ok {
		parent = p
	}
	return map[string]any{
		"index":            float64(s.Index()),
		"trace_id":         s.TraceID(),
		"span_id":          s.SpanID(),
		"parent_span_id":   parent,
		"name":             s.Name(),
		"kind":             map[plugin.SpanKind]string{plugin.Server: "server", plugin.Client: "client"}[s.Kind()],
		"start_unix_nanos": strconv.FormatUint(s.StartUnixNanos(), 10),
		"end_unix_nanos":   strconv.FormatUint(s.EndUnixNanos(), 10),
		"status":           map[plugin.StatusCode]string{plugin.Unset: "unset", plugin.OK: "ok", plugin.Error: "error"}[s.Status()],
		"status_message":   s.StatusMessage(),
		"attributes":       attributesJSON(s.Attributes()),
		"resource":         attributesJSON(s.Resource()),
	}
}

func TestReadsTheAgentsGoldenBatches(t *testing.T) {
	for _, name := range []string{"basic", "patched", "empty"} {
		batch, expected := load(t, name)
		if batch.Len() != len(expected) {
			t.Fatalf("%s: %d spans, expected %d", name, batch.Len(), len(expected))
		}
		for s := range batch.Spans() {
			// Round-tripped through JSON so that types compare as the expected file's do.
			got, _ := json.Marshal(spanJSON(s))
			var gotAny any
			_ = json.Unmarshal(got, &gotAny)
			if want := expected[s.Index()]; !reflect.DeepEqual(gotAny, want) {
				t.Errorf("%s span %d:\n got  %v\n want %v", name, s.Index(), gotAny, want)
			}
			for k, v := range s.Attributes().All() {
				if got := s.Attributes().Get(k); !reflect.DeepEqual(valueJSON(k, got), valueJSON(k, v)) {
					t.Errorf("%s span %d: Get(%q) = %v, the walk found %v", name, s.Index(), k, got, v)
				}
				if f, ok := v.Float(); ok && f == 0 && !math.Signbit(f) && k == "app.negative_zero" {
					t.Errorf("-0.0 read as +0.0")
				}
			}
			if s.Attributes().Get("no.such.key").Present() {
				t.Errorf("found a key no span has")
			}
		}
	}
}

func TestGetManyFindsWhatGetFinds(t *testing.T) {
	batch, _ := load(t, "patched")
	keys := []string{"url.path", "http.route", "no.such.key", "app.max"}
	for s := range batch.Spans() {
		many := s.Attributes().GetMany(keys...)
		for i, k := range keys {
			if !reflect.DeepEqual(valueJSON(k, many[i]), valueJSON(k, s.Attributes().Get(k))) || many[i].Present() != s.Attributes().Get(k).Present() {
				t.Errorf("span %d key %s: GetMany %v, Get %v", s.Index(), k, many[i], s.Attributes().Get(k))
			}
		}
	}
}

func TestEncodesTheGoldenEditsScriptByteForByte(t *testing.T) {
	batch, _ := load(t, "basic")
	raw, err := os.ReadFile(filepath.Join(golden, "edits", "script.json"))
	if err != nil {
		t.Fatal(err)
	}
	var script []struct {
		Span    int
		Op      string
		Key     string
		Name    string
		Code    string
		Message string
		Value   map[string]json.RawMessage
	}
	if err := json.Unmarshal(raw, &script); err != nil {
		t.Fatal(err)
	}
	var e plugin.Edits
	for _, step := range script {
		s := batch.Span(step.Span)
		switch step.Op {
		case "drop":
			e.Drop(s)
		case "rename":
			e.Rename(s, step.Name)
		case "remove_attribute":
			e.RemoveAttribute(s, step.Key)
		case "set_status":
			e.SetStatus(s, map[string]plugin.StatusCode{"unset": plugin.Unset, "ok": plugin.OK, "error": plugin.Error}[step.Code], step.Message)
		case "set_attribute":
			for kind, v := range step.Value {
				switch kind {
				case "str":
					var x string
					_ = json.Unmarshal(v, &x)
					e.SetString(s, step.Key, x)
				case "int":
					var x string
					_ = json.Unmarshal(v, &x)
					i, err := strconv.ParseInt(x, 10, 64)
					if err != nil {
						t.Fatal(err)
					}
					e.SetInt(s, step.Key, i)
				case "float":
					var x float64
					_ = json.Unmarshal(v, &x)
					e.SetFloat(s, step.Key, x)
				case "bool":
					var x bool
					_ = json.Unmarshal(v, &x)
					e.SetBool(s, step.Key, x)
				}
			}
		default:
			t.Fatalf("unknown op %s", step.Op)
		}
	}
	ops, text := e.Raw()
	for file, got := range map[string][]byte{"ops.bin": ops, "text.bin": text} {
		want, err := os.ReadFile(filepath.Join(golden, "edits", file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("edits/%s differs from what the Go SDK encodes", file)
		}
	}
}
