"""Marks slow spans: a Python span processor plugin (componentize-py + the Python SDK).

Settings (the `[settings]` table of the plugin's .toml file):
  threshold_ms   spans at least this long get `attribute = true` (default 500)
  attribute      the attribute to set (default "app.slow")
  error_over_ms  spans at least this long also get status error (default: off)
"""

from http_autoinstrument_plugin import Plugin, PluginError, StatusCode, debug, export

SETTINGS = {"threshold_ms", "attribute", "error_over_ms"}


def non_negative(settings, name, default):
    value = settings.get(name, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        raise PluginError(f"py-slow-marker: {name} must be a non-negative number, got {value!r}")
    return value


class SlowMarker(Plugin):
    def init(self, settings):
        unknown = set(settings) - SETTINGS
        if unknown:
            raise PluginError(f"py-slow-marker: unknown settings {sorted(unknown)}")
        threshold = non_negative(settings, "threshold_ms", 500)
        error_over = non_negative(settings, "error_over_ms", None)
        self.threshold_ns = int(threshold * 1_000_000)
        self.attribute = str(settings.get("attribute", "app.slow"))
        self.error_over_ns = None if error_over is None else int(error_over * 1_000_000)
        self.message = None if error_over is None else f"slower than {error_over} ms"
        debug(f"py-slow-marker: threshold {threshold} ms")

    def process(self, batch, edits):
        for span in batch:
            duration = span.duration_nanos
            if duration < self.threshold_ns:
                continue
            edits.set_attribute(span, self.attribute, True)
            if self.error_over_ns is not None and duration >= self.error_over_ns:
                edits.set_status(span, StatusCode.ERROR, self.message)


Processor = export(SlowMarker)
