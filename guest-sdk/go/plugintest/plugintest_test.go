package plugintest_test

import (
	"testing"

	"http-autoinstrument.invalid/sdk/plugin"
	"http-autoinstrument.invalid/sdk/plugintest"
)

type marker struct{}

func (marker) Init([]byte) error { return nil }

func (marker) Process(b *plugin.Batch, e *plugin.Edits) error {
	for s := range b.Spans() {
		if p, _ := s.Attributes().Str("url.path"); p == "/healthz" {
			e.Drop(s)
			continue
		}
		e.SetBool(s, "seen", true)
		e.Rename(s, s.Name()+"!")
		e.RemoveAttribute(s, "secret")
		e.SetStatus(s, plugin.Error, "bad")
	}
	return nil
}

func TestPackReadsBackEveryField(t *testing.T) {
	s := plugintest.NewSpan("GET /é", "url.path", "/a")
	s.Set("n", plugin.IntValue(-7))
	s.Set("f", plugin.FloatValue(1.5))
	s.Kind, s.Status, s.StatusMessage = plugin.Client, plugin.Error, "boom"
	s.StartUnixNanos, s.EndUnixNanos = 10, 510
	s.Resource = []plugintest.Attr{{Key: "service.name", Value: plugin.StringValue("shop")}}
	b := plugintest.Pack([]plugintest.Span{plugintest.NewSpan("first"), s})
	got := b.Span(1)
	if got.Name() != "GET /é" || got.Kind() != plugin.Client || got.Status() != plugin.Error ||
		got.StatusMessage() != "boom" || got.DurationNanos() != 500 {
		t.Errorf("read back %q %v %v %q %d", got.Name(), got.Kind(), got.Status(), got.StatusMessage(), got.DurationNanos())
	}
	if n, _ := got.Attributes().Int("n"); n != -7 {
		t.Errorf("n = %d", n)
	}
	if f, _ := got.Attributes().Get("f").Float(); f != 1.5 {
		t.Errorf("f = %v", f)
	}
	if name, _ := got.Resource().Str("service.name"); name != "shop" {
		t.Errorf("service.name = %q", name)
	}
}

func TestRunAppliesEditsInOrder(t *testing.T) {
	out, err := plugintest.Run(marker{}, []plugintest.Span{
		plugintest.NewSpan("a", "url.path", "/healthz"),
		plugintest.NewSpan("b", "secret", "x"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Name != "b!" || out[0].Status != plugin.Error || out[0].StatusMessage != "bad" ||
		len(out[0].Attributes) != 1 || out[0].Attributes[0].Key != "seen" {
		t.Errorf("got %+v", out)
	}
}
