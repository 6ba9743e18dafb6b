"""plugins/filter (Rust) in Python reading and packing the rows by hand, as Python plugins were
written before the SDK (struct offsets from wit/plugin.wit), for the benchmark's comparison with
the SDK version (plugins/bench-filter-py). Same settings and verdicts."""

import json
import struct

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

DEFAULT_PATHS = ["/health", "/healthz", "/ready", "/readyz", "/live", "/livez", "/ping"]
# Span row (80 bytes): attributes (first row u32, count u32) at 64, kind u8 at 76, status u8 at 77.
SPAN = struct.Struct("<64xII4xBBxx")
# Attribute row (24 bytes): key (offset u32, length u32), type u8 at 8, value at 16 (a string's
# offset u32 and length u32, or an i64).
ATTRIBUTE = struct.Struct("<IIB7xII")
ATTRIBUTE_INT = struct.Struct("<16xq")
# Edit row (24 bytes): span u32, operation u8 (0 = drop), the rest zero here.
DROP = struct.Struct("<I20x")
TYPE_STR, TYPE_INT, STATUS_ERROR = 0, 1, 2
PATH_KEYS = (b"url.path", b"http.route")
STATUS_KEY = b"http.response.status_code"

CONFIG = {"paths": set(DEFAULT_PATHS), "prefixes": (), "keep_errors": True}


def matches(path):
    for sep in "?#":
        cut = path.find(sep)
        if cut >= 0:
            path = path[:cut]
    trimmed = path[:-1] if len(path) > 1 and path.endswith("/") else path
    prefixes = CONFIG["prefixes"]
    return trimmed in CONFIG["paths"] or (bool(prefixes) and path.startswith(prefixes))


class Processor(exports.Processor):
    def init(self, settings: str) -> None:
        try:
            cfg = json.loads(settings)
        except ValueError as e:
            raise Err(f"filter: settings are not JSON: {e}")
        unknown = set(cfg) - {"paths", "prefixes", "use_default_paths", "keep_errors"}
        if unknown:
            raise Err(f"filter: unknown settings {sorted(unknown)}")
        paths = list(cfg.get("paths", []))
        if cfg.get("use_default_paths", True):
            paths += DEFAULT_PATHS
        prefixes = list(cfg.get("prefixes", []))
        for p in paths + prefixes:
            if not p.startswith("/"):
                raise Err(f"filter: path {p!r} must start with '/'")
        CONFIG.update(paths=set(paths), prefixes=tuple(prefixes), keep_errors=cfg.get("keep_errors", True))

    def process(self, batch: types.SpanBatch) -> types.Edits:
        text, attributes = batch.text, batch.attributes
        ops = bytearray()
        for index, (first, count, _kind, status) in enumerate(SPAN.iter_unpack(batch.spans)):
            matched = False
            failed = status == STATUS_ERROR
            for row in range(first, first + count):
                at = row * 24
                key_offset, key_length, kind, value_offset, value_length = ATTRIBUTE.unpack_from(attributes, at)
                key = text[key_offset : key_offset + key_length]
                if kind == TYPE_STR and key in PATH_KEYS:
                    value = text[value_offset : value_offset + value_length].decode("utf-8", "replace")
                    matched = matched or matches(value)
                elif kind == TYPE_INT and key == STATUS_KEY:
                    failed = failed or ATTRIBUTE_INT.unpack_from(attributes, at)[0] >= 500
            if matched and not (CONFIG["keep_errors"] and failed):
                ops += DROP.pack(index)
        return types.Edits(bytes(ops), b"")
