// go-filter drops health and readiness checks and other configured routes: plugins/filter
// written in Go with the Go SDK (guest-sdk/go), built with the standard Go toolchain.
package main

import (
	"fmt"
	"strings"

	"http-autoinstrument.invalid/sdk/plugin"
)

// defaultPaths are dropped unless use_default_paths is false.
var defaultPaths = []string{"/health", "/healthz", "/ready", "/readyz", "/live", "/livez", "/ping"}

type settings struct {
	// Exact paths or routes (matched against url.path and http.route) to drop, in addition to
	// the defaults.
	Paths []string `json:"paths"`
	// Path prefixes to drop, e.g. /debug/.
	Prefixes        []string `json:"prefixes"`
	UseDefaultPaths *bool    `json:"use_default_paths"`
	// Keep a matching span anyway when it failed (5xx or error status): a failing health check
	// is worth seeing.
	KeepErrors *bool `json:"keep_errors"`
}

type filter struct {
	paths      map[string]bool
	prefixes   []string
	keepErrors bool
}

func (f *filter) Init(raw []byte) error {
	var s settings
	if err := plugin.ParseSettings(raw, &s); err != nil {
		return err
	}
	f.paths = map[string]bool{}
	paths := s.Paths
	if s.UseDefaultPaths == nil || *s.UseDefaultPaths {
		paths = append(paths, defaultPaths...)
	}
	for _, p := range append(append([]string(nil), paths...), s.Prefixes...) {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("go-filter: path %q must start with '/'", p)
		}
	}
	for _, p := range paths {
		f.paths[p] = true
	}
	f.prefixes = s.Prefixes
	f.keepErrors = s.KeepErrors == nil || *s.KeepErrors
	plugin.Debug(fmt.Sprintf("go-filter: %d paths, %d prefixes", len(f.paths), len(f.prefixes)))
	return nil
}

// matches ignores a query string or a trailing slash: /healthz/ and /healthz?full=1 are checks too.
func (f *filter) matches(path string) bool {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	trimmed := path
	if len(trimmed) > 1 {
		trimmed = strings.TrimSuffix(trimmed, "/")
	}
	if f.paths[trimmed] {
		return true
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func failed(s plugin.Span) bool {
	code, ok := s.Attributes().Int("http.response.status_code")
	return s.Status() == plugin.Error || (ok && code >= 500)
}

var keys = []string{"url.path", "http.route"}

func (f *filter) Process(b *plugin.Batch, e *plugin.Edits) error {
	for s := range b.Spans() {
		matched := false
		for _, v := range s.Attributes().GetMany(keys...) {
			if p, ok := v.Str(); ok && f.matches(p) {
				matched = true
			}
		}
		if matched && !(f.keepErrors && failed(s)) {
			e.Drop(s)
		}
	}
	return nil
}

func init() { plugin.Register(&filter{}) }

// main never runs: a plugin is a reactor, its exports are called by the agent.
func main() {}
