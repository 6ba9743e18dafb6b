package plugin

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Plugin is a span processor: one value lives for the plugin's lifetime.
type Plugin interface {
	// Init gets the [settings] table of the plugin's settings file as JSON ("{}" when there is
	// none); an error refuses the load and is logged by the agent.
	Init(settings []byte) error
	// Process reads the batch and records changes in edits; an error gives the whole batch the
	// plugin's on-error policy.
	Process(batch *Batch, edits *Edits) error
}

var registered Plugin

// Register makes p the plugin the component exports. Call it from an init function: a plugin
// is a reactor, its main never runs.
func Register(p Plugin) { registered = p }

// ParseSettings decodes settings JSON into v, refusing unknown keys, with an error that says what
// is wrong.
func ParseSettings(settings []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(settings))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("invalid plugin settings: %w", err)
	}
	return nil
}

// Level is a log level of the agent's log.
type Level uint32

const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

func Debug(message string) { Log(LevelDebug, message) }
func Info(message string)  { Log(LevelInfo, message) }
func Warn(message string)  { Log(LevelWarn, message) }

// Log writes to the agent's log, tagged with the plugin's file name (rate-limited by the agent).
func Log(level Level, message string) { hostLog(level, message) }

// NowUnixNanos is the wall-clock time, nanoseconds since the Unix epoch.
func NowUnixNanos() uint64 { return hostNow() }

// RandomU64 is a random number (for sampling).
func RandomU64() uint64 { return hostRandom() }
