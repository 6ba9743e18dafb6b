"""Marks slow spans: a Python span processor plugin (built with componentize-py).

Settings (the `[settings]` table of the plugin's .toml file):
  threshold_ms   spans at least this long get `attribute = true` (default 500)
  attribute      the attribute to set (default "app.slow")
  error_over_ms  spans at least this long also get status error (default: off)
"""

import json
import struct

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

    def process(self, batch: types.SpanBatch) -> types.Edits:
        # Rows are fixed-size little-endian (layouts in wit/plugin.wit): 80 bytes per span,
        # start and end nanoseconds at offsets 32 and 40; each edit is a 24-byte row whose
        # strings go into one text buffer.
        ops = bytearray()
        text = bytearray()
        attribute = ATTRIBUTE.encode()
        for index, (start, end) in enumerate(SPAN_TIMES.iter_unpack(batch.spans)):
            duration = end - start
            if duration < THRESHOLD_NS:
                continue
            ops += EDIT.pack(index, OP_SET_ATTRIBUTE, TAG_BOOL, len(text), len(attribute), 1)
            text += attribute
            if ERROR_OVER_NS is not None and duration >= ERROR_OVER_NS:
                message = f"slower than {ERROR_OVER_NS // 1_000_000} ms".encode()
                ops += EDIT.pack(index, OP_SET_STATUS, STATUS_ERROR, len(text), len(message), 0)
                text += message
        return types.Edits(bytes(ops), bytes(text))


# Span row (80 bytes): skip to start/end at 32, skip the rest.
SPAN_TIMES = struct.Struct("<32xQQ32x")
# Edit row (24 bytes): span u32, operation u8, value type or status u8, 2 zero bytes,
# string offset u32, string length u32, value u64.
EDIT = struct.Struct("<IBB2xIIQ")
OP_SET_ATTRIBUTE = 2
OP_SET_STATUS = 4
TAG_BOOL = 3
STATUS_ERROR = 2

THRESHOLD_NS = 500_000_000
ATTRIBUTE = "app.slow"
ERROR_OVER_NS = None
