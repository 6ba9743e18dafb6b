"""Write http-autoinstrument span processor plugins in Python (componentize-py).

A plugin is a class with ``init(settings)`` and ``process(batch, edits)``; ``export`` turns it
into the ``Processor`` class componentize-py looks for in the app module::

    from http_autoinstrument_plugin import Plugin, export

    class DropHealthChecks(Plugin):
        def init(self, settings):
            self.paths = set(settings.get("paths", ["/healthz"]))

        def process(self, batch, edits):
            for span in batch:
                if span.attributes.get("url.path") in self.paths:
                    edits.drop(span)

    Processor = export(DropHealthChecks)

Build: ``componentize-py -d WIT_DIR -w span-processor componentize app -p SDK_DIR -o plugin.wasm``.

The batch is read where it lies (fixed-size rows and one text buffer, see ``layout``): a field
is decoded when it is asked for, an attribute lookup compares keys as bytes and decodes only
the value found. Edits are packed as the agent reads them. ``testing`` runs a plugin natively.
"""

import enum
import json
import struct
import sys

from . import layout as L

__all__ = [
    "Attributes",
    "Batch",
    "Edits",
    "Plugin",
    "PluginError",
    "Span",
    "SpanKind",
    "StatusCode",
    "debug",
    "error",
    "export",
    "info",
    "now_unix_nanos",
    "random_u64",
    "warn",
]

if sys.byteorder != "little":  # the rows are little-endian and read through native memoryviews
    raise ImportError("http_autoinstrument_plugin needs a little-endian machine (Wasm is one)")


class SpanKind(enum.IntEnum):
    SERVER = L.KIND_SERVER
    CLIENT = L.KIND_CLIENT


class StatusCode(enum.IntEnum):
    UNSET = L.STATUS_UNSET
    OK = L.STATUS_OK
    ERROR = L.STATUS_ERROR


class PluginError(Exception):
    """Raised by a plugin's ``init`` (refuses the load) or ``process`` (the batch gets the
    plugin's on-error policy); the message goes to the agent's log."""


# Row sizes in units of the memoryview item each table is read through.
_SPAN_U32 = L.SPAN_ROW // 4
_SPAN_U64 = L.SPAN_ROW // 8
_ATTR_U32 = L.ATTRIBUTE_ROW // 4
_ATTR_U64 = L.ATTRIBUTE_ROW // 8
_RES_U32 = L.RESOURCE_ROW // 4

_KEYS = {}  # key -> its UTF-8 bytes: plugins look up a handful of keys, over and over


def _key_bytes(key):
    b = _KEYS.get(key)
    if b is None:
        if len(_KEYS) > 4096:
            _KEYS.clear()
        b = _KEYS[key] = key.encode()
    return b


class Batch:
    """A batch of spans as the agent sent it. Iterate it for its spans; ``len(batch)``."""

    __slots__ = ("text", "_s32", "_s64", "_kinds", "_a32", "_a64", "_af", "_atypes", "_r32", "_n")

    def __init__(self, text, spans, attributes, resources):
        self.text = bytes(text)
        spans = memoryview(spans)
        attributes = memoryview(attributes)
        self._s32 = spans.cast("I")
        self._s64 = spans.cast("Q")
        self._kinds = spans
        self._a32 = attributes.cast("I")
        self._a64 = attributes.cast("q")
        self._af = attributes.cast("d")
        self._atypes = attributes
        self._r32 = memoryview(resources).cast("I")
        self._n = len(spans) // L.SPAN_ROW

    def __len__(self):
        return self._n

    def __iter__(self):
        for i in range(self._n):
            yield Span(self, i)

    def __getitem__(self, index):
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(f"span {index} of a batch of {self._n}")
        return Span(self, index)

    def _str(self, offset, length):
        return self.text[offset : offset + length].decode("utf-8", "replace")

    def _value(self, row):
        kind = self._atypes[row * L.ATTRIBUTE_ROW + L.ATTRIBUTE_TYPE]
        at = row * _ATTR_U64 + L.ATTRIBUTE_VALUE // 8
        if kind == L.TYPE_STR:
            at32 = row * _ATTR_U32 + L.ATTRIBUTE_VALUE // 4
            return self._str(self._a32[at32], self._a32[at32 + 1])
        if kind == L.TYPE_INT:
            return self._a64[at]
        if kind == L.TYPE_FLOAT:
            return self._af[at]
        if kind == L.TYPE_BOOL:
            return self._a64[at] != 0
        return ""  # a type unknown to this SDK version reads as an empty string

    def _find(self, first, count, keys):
        """The row of each of ``keys`` (bytes) among ``count`` rows from ``first``, one walk."""
        found = [None] * len(keys)
        missing = len(keys)
        a32, text = self._a32, self.text
        lengths = [len(k) for k in keys]
        for row in range(first, first + count):
            at = row * _ATTR_U32 + L.ATTRIBUTE_KEY // 4
            length = a32[at + 1]
            if length not in lengths:
                continue
            offset = a32[at]
            key = text[offset : offset + length]
            for i, k in enumerate(keys):
                if found[i] is None and k == key:
                    found[i] = row
                    missing -= 1
            if missing == 0:
                break
        return found


class Attributes:
    """A span's (or resource's) attributes, read on demand: a read-only mapping from key to
    ``str``, ``int``, ``float`` or ``bool``, in the order the agent sent them."""

    __slots__ = ("_b", "_first", "_count")

    def __init__(self, batch, first, count):
        self._b, self._first, self._count = batch, first, count

    def get(self, key, default=None):
        (row,) = self._b._find(self._first, self._count, (_key_bytes(key),))
        return default if row is None else self._b._value(row)

    def get_many(self, *keys):
        """The values of several keys (``None`` where absent), found in one walk through the
        attributes: cheaper than one ``get`` per key when the span may lack some of them."""
        rows = self._b._find(self._first, self._count, [_key_bytes(k) for k in keys])
        return tuple(None if r is None else self._b._value(r) for r in rows)

    def __getitem__(self, key):
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key):
        return self._b._find(self._first, self._count, (_key_bytes(key),))[0] is not None

    def __len__(self):
        return self._count

    def keys(self):
        b = self._b
        for row in range(self._first, self._first + self._count):
            at = row * _ATTR_U32 + L.ATTRIBUTE_KEY // 4
            yield b._str(b._a32[at], b._a32[at + 1])

    __iter__ = keys

    def items(self):
        b = self._b
        for row in range(self._first, self._first + self._count):
            at = row * _ATTR_U32 + L.ATTRIBUTE_KEY // 4
            yield b._str(b._a32[at], b._a32[at + 1]), b._value(row)

    def values(self):
        return (v for _, v in self.items())

    def to_dict(self):
        return dict(self.items())

    def __repr__(self):
        return f"Attributes({self.to_dict()!r})"


_MISSING = object()


class Span:
    """One span of a batch. Fields are read from its row when asked for."""

    __slots__ = ("_b", "index", "_at")

    def __init__(self, batch, index):
        self._b = batch
        self.index = index  # position in the batch: what edits refer to
        self._at = index * _SPAN_U32

    def _u32(self, field):
        return self._b._s32[self._at + field // 4]

    def _u64(self, field):
        return self._b._s64[self.index * _SPAN_U64 + field // 8]

    @property
    def name(self):
        return self._b._str(self._u32(L.SPAN_NAME), self._u32(L.SPAN_NAME + 4))

    @property
    def kind(self):
        k = self._b._kinds[self.index * L.SPAN_ROW + L.SPAN_KIND]
        return SpanKind.CLIENT if k == L.KIND_CLIENT else SpanKind.SERVER

    @property
    def status(self):
        s = self._b._kinds[self.index * L.SPAN_ROW + L.SPAN_STATUS]
        return StatusCode(s) if s <= L.STATUS_ERROR else StatusCode.UNSET

    @property
    def status_message(self):
        return self._b._str(self._u32(L.SPAN_STATUS_MESSAGE), self._u32(L.SPAN_STATUS_MESSAGE + 4))

    @property
    def start_unix_nanos(self):
        return self._u64(L.SPAN_START)

    @property
    def end_unix_nanos(self):
        return self._u64(L.SPAN_END)

    @property
    def duration_nanos(self):
        return max(0, self._u64(L.SPAN_END) - self._u64(L.SPAN_START))

    @property
    def trace_id(self):
        """32 lowercase hex digits."""
        return f"{self._u64(L.SPAN_TRACE_ID_HIGH):016x}{self._u64(L.SPAN_TRACE_ID_LOW):016x}"

    @property
    def span_id(self):
        """16 lowercase hex digits."""
        return f"{self._u64(L.SPAN_SPAN_ID):016x}"

    @property
    def parent_span_id(self):
        """16 lowercase hex digits, or ``None`` for a root span."""
        if self._b._kinds[self.index * L.SPAN_ROW + L.SPAN_HAS_PARENT] == 0:
            return None
        return f"{self._u64(L.SPAN_PARENT_SPAN_ID):016x}"

    @property
    def attributes(self):
        return Attributes(self._b, self._u32(L.SPAN_ATTRIBUTES), self._u32(L.SPAN_ATTRIBUTES + 4))

    @property
    def resource(self):
        """The attributes of the process that produced the span (``service.name``, ...)."""
        b = self._b
        at = self._u32(L.SPAN_RESOURCE) * _RES_U32 + L.RESOURCE_ATTRIBUTES // 4
        if at + 1 >= len(b._r32):
            return Attributes(b, 0, 0)
        return Attributes(b, b._r32[at], b._r32[at + 1])

    def __repr__(self):
        return f"Span({self.index}, {self.name!r})"


# One edit row: span, operation, value type or status, 2 zero bytes, text range, value.
_ROW_U64 = struct.Struct("<IBB2xIIQ")
_ROW_I64 = struct.Struct("<IBB2xIIq")
_ROW_F64 = struct.Struct("<IBB2xIId")
assert _ROW_U64.size == L.EDIT_ROW and L.EDIT_VALUE == 16 and L.EDIT_TEXT == 8
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _index(span):
    return span if isinstance(span, int) else span.index


class Edits:
    """Changes to a batch, applied by the agent in order after ``process`` returns. ``span``
    arguments take a ``Span`` or its index."""

    __slots__ = ("ops", "text", "_last_key", "_last_range")

    def __init__(self):
        self.ops = bytearray()
        self.text = bytearray()
        # The last set_attribute key and its range: a key set on every span is written once.
        self._last_key = ""
        self._last_range = (0, 0)

    def __len__(self):
        return len(self.ops) // L.EDIT_ROW

    def _push(self, s):
        b = s.encode()
        offset = len(self.text)
        self.text += b
        return offset, len(b)

    def drop(self, span):
        self.ops += _ROW_U64.pack(_index(span), L.OP_DROP, 0, 0, 0, 0)

    def rename(self, span, name):
        self.ops += _ROW_U64.pack(_index(span), L.OP_RENAME, 0, *self._push(name), 0)

    def set_attribute(self, span, key, value):
        """Sets ``key`` to a ``str``, ``int`` (64-bit), ``float`` or ``bool``, replacing an
        existing value."""
        if key == self._last_key:
            offset, length = self._last_range
        else:
            offset, length = self._last_range = self._push(key)
            self._last_key = key
        i = _index(span)
        if isinstance(value, bool):
            self.ops += _ROW_U64.pack(i, L.OP_SET_ATTRIBUTE, L.TYPE_BOOL, offset, length, int(value))
        elif isinstance(value, int):
            if not _I64_MIN <= value <= _I64_MAX:
                raise ValueError(f"attribute {key!r}: {value} does not fit in 64 bits")
            self.ops += _ROW_I64.pack(i, L.OP_SET_ATTRIBUTE, L.TYPE_INT, offset, length, value)
        elif isinstance(value, float):
            self.ops += _ROW_F64.pack(i, L.OP_SET_ATTRIBUTE, L.TYPE_FLOAT, offset, length, value)
        elif isinstance(value, str):
            v_offset, v_length = self._push(value)
            self.ops += _ROW_U64.pack(
                i, L.OP_SET_ATTRIBUTE, L.TYPE_STR, offset, length, v_offset | v_length << 32
            )
        else:
            raise TypeError(
                f"attribute {key!r}: a value is a str, int, float or bool, not {type(value).__name__}"
            )

    def remove_attribute(self, span, key):
        self.ops += _ROW_U64.pack(_index(span), L.OP_REMOVE_ATTRIBUTE, 0, *self._push(key), 0)

    def set_status(self, span, code, message=""):
        self.ops += _ROW_U64.pack(
            _index(span), L.OP_SET_STATUS, StatusCode(code), *self._push(message), 0
        )

    def to_list(self):
        """The edits recorded so far, decoded: ``(op, span, ...)`` tuples (for tests)."""
        out = []
        text = bytes(self.text)

        def s(offset, length):
            return text[offset : offset + length].decode()

        for at in range(0, len(self.ops), L.EDIT_ROW):
            span, op, arg, offset, length, u = _ROW_U64.unpack_from(self.ops, at)
            if op == L.OP_DROP:
                out.append(("drop", span))
            elif op == L.OP_RENAME:
                out.append(("rename", span, s(offset, length)))
            elif op == L.OP_REMOVE_ATTRIBUTE:
                out.append(("remove_attribute", span, s(offset, length)))
            elif op == L.OP_SET_STATUS:
                out.append(("set_status", span, StatusCode(arg), s(offset, length)))
            else:
                if arg == L.TYPE_STR:
                    value = s(u & 0xFFFFFFFF, u >> 32)
                elif arg == L.TYPE_INT:
                    value = _ROW_I64.unpack_from(self.ops, at)[5]
                elif arg == L.TYPE_FLOAT:
                    value = _ROW_F64.unpack_from(self.ops, at)[5]
                else:
                    value = u != 0
                out.append(("set_attribute", span, s(offset, length), value))
        return out


class Plugin:
    """Base class of a plugin: one instance lives for the plugin's lifetime."""

    def init(self, settings):
        """Called once with the ``[settings]`` table of the plugin's settings file as a dict
        (empty when there is none). Raise ``PluginError`` to refuse the load."""

    def process(self, batch, edits):
        """Reads ``batch`` and records changes in ``edits``."""
        raise NotImplementedError("a plugin overrides process(batch, edits)")


def _host():
    try:
        from wit_world.imports import host
    except ImportError:  # running natively (tests): no agent
        return None
    return host


def _log(level, message):
    host = _host()
    if host is None:
        print(f"[{level}] {message}", file=sys.stderr)
    else:
        host.log(getattr(host.Level, level.upper()), message)


def debug(message):
    _log("debug", message)


def info(message):
    _log("info", message)


def warn(message):
    _log("warn", message)


def error(message):
    _log("error", message)


def now_unix_nanos():
    """Wall-clock time, nanoseconds since the Unix epoch (the agent's clock)."""
    host = _host()
    if host is None:
        import time

        return time.time_ns()
    return host.now_unix_nanos()


def random_u64():
    host = _host()
    if host is None:
        import random

        return random.getrandbits(64)
    return host.random_u64()


def _describe(e):
    return str(e) if isinstance(e, PluginError) else f"{type(e).__name__}: {e}"


def export(plugin_class):
    """The ``Processor`` class componentize-py exports for ``plugin_class``: put
    ``Processor = export(MyPlugin)`` in the app module. Natively (unit tests), where there
    are no bindings, it returns ``None``, so the app module imports as it is."""
    try:
        from componentize_py_types import Err
        from wit_world import exports
        from wit_world.imports import types
    except ImportError:
        return None

    # componentize-py may make a Processor per call: the plugin lives here.
    state = {}

    class Processor(exports.Processor):
        def init(self, settings):
            try:
                parsed = json.loads(settings)
                plugin = plugin_class()
                plugin.init(parsed)
            except json.JSONDecodeError as e:
                raise Err(f"settings are not JSON: {e}")
            except Exception as e:  # refuses the load with the plugin's message
                raise Err(_describe(e))
            state["plugin"] = plugin

        def process(self, batch):
            plugin = state.get("plugin")
            if plugin is None:
                raise Err("process called before init")
            edits = Edits()
            try:
                plugin.process(
                    Batch(batch.text, batch.spans, batch.attributes, batch.resources), edits
                )
            except Exception as e:  # the batch gets the plugin's on-error policy
                raise Err(_describe(e))
            return types.Edits(bytes(edits.ops), bytes(edits.text))

    Processor.__name__ = Processor.__qualname__ = f"Processor({plugin_class.__name__})"
    return Processor
