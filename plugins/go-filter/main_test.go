package main

import (
	"strings"
	"testing"

	"http-autoinstrument.invalid/sdk/plugin"
	"http-autoinstrument.invalid/sdk/plugintest"
)

func get(path string, status int64) plugintest.Span {
	s := plugintest.NewSpan("GET", "url.path", path)
	s.Set("http.response.status_code", plugin.IntValue(status))
	return s
}

func paths(t *testing.T, f *filter, spans ...plugintest.Span) []string {
	t.Helper()
	out, err := plugintest.Run(f, spans)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, s := range out {
		p, _ := s.Get("url.path").Str()
		kept = append(kept, p)
	}
	return kept
}

func TestDropsDefaultHealthChecksAndKeepsTheRest(t *testing.T) {
	f := &filter{}
	if err := f.Init([]byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	got := paths(t, f, get("/healthz", 200), get("/readyz/", 200), get("/users/1", 200), get("/ping?x=1", 200), get("/healthz", 503))
	if strings.Join(got, " ") != "/users/1 /healthz" {
		t.Errorf("kept %v", got)
	}
}

func TestConfiguredPathsPrefixesAndRoutes(t *testing.T) {
	f := &filter{}
	if err := f.Init([]byte(`{"paths": ["/metrics", "/users/{id}"], "prefixes": ["/debug/"], "keep_errors": false}`)); err != nil {
		t.Fatal(err)
	}
	routed := get("/users/7", 200)
	routed.Set("http.route", plugin.StringValue("/users/{id}"))
	got := paths(t, f, get("/metrics", 200), get("/debug/pprof", 200), get("/debugger", 200), routed, get("/healthz", 503))
	if strings.Join(got, " ") != "/debugger" {
		t.Errorf("kept %v", got)
	}
}

func TestBadSettingsAreRefusedWithTheReason(t *testing.T) {
	for settings, want := range map[string]string{
		`{"paths": ["healthz"]}`: "must start with '/'",
		`{"pathz": []}`:          "unknown field",
	} {
		err := (&filter{}).Init([]byte(settings))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", settings, err, want)
		}
	}
}
