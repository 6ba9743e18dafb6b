"""Marks slow spans: a Python span processor plugin (built with componentize-py).

Settings (the `[settings]` table of the plugin's .toml file):
  threshold_ms   spans at least this long get `attribute = true` (default 500)
  attribute      the attribute to set (default "app.slow")
  error_over_ms  spans at least this long also get status error (default: off)
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types


class Processor(exports.Processor):
    def init(self, settings: str) -> None:
        try:
            cfg = json.loads(settings)
        except ValueError as e:
            raise Err(f"py-slow-marker: settings are not JSON: {e}")
        unknown = set(cfg) - {"threshold_ms", "attribute", "error_over_ms"}
        if unknown:
            raise Err(f"py-slow-marker: unknown settings {sorted(unknown)}")
        threshold = cfg.get("threshold_ms", 500)
        error_over = cfg.get("error_over_ms")
        for name, value in (("threshold_ms", threshold), ("error_over_ms", error_over)):
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise Err(f"py-slow-marker: {name} must be a non-negative number, got {value!r}")
        global THRESHOLD_NS, ATTRIBUTE, ERROR_OVER_NS
        THRESHOLD_NS = int(threshold * 1_000_000)
        ATTRIBUTE = str(cfg.get("attribute", "app.slow"))
        ERROR_OVER_NS = None if error_over is None else int(error_over * 1_000_000)
        host.log(host.Level.DEBUG, f"py-slow-marker: threshold {threshold} ms")

    def process(self, batch: types.SpanBatch) -> list:
        edits = []
        for index, span in enumerate(batch.spans):
            duration = span.end_unix_nanos - span.start_unix_nanos
            if duration < THRESHOLD_NS:
                continue
            edits.append(types.Edit_SetAttribute(
                types.SetAttribute(index, ATTRIBUTE, types.NewValue_Boolean(True))))
            if ERROR_OVER_NS is not None and duration >= ERROR_OVER_NS:
                message = f"slower than {ERROR_OVER_NS // 1_000_000} ms"
                edits.append(types.Edit_SetStatus(
                    types.SetStatus(index, types.StatusCode.ERROR, message)))
        return edits


THRESHOLD_NS = 500_000_000
ATTRIBUTE = "app.slow"
ERROR_OVER_NS = None
