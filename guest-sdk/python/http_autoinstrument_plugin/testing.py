"""Run a plugin natively in unit tests: build spans, process them, look at what comes out.

Mirrors what the agent does (pack the batch, call ``process``, apply the edits)::

    from http_autoinstrument_plugin.testing import TestSpan, run

    plugin = DropHealthChecks()
    plugin.init({})
    out = run(plugin, [TestSpan("GET", {"url.path": "/healthz"}), TestSpan("GET", {"url.path": "/a"})])
    assert [s.attributes["url.path"] for s in out] == ["/a"]
"""

import struct

from . import Batch, Edits, SpanKind, StatusCode
from . import layout as L

__all__ = ["TestSpan", "apply", "pack", "run"]


class TestSpan:
    """An owned span for tests."""

    __test__ = False  # not a test case, whatever a test runner thinks of the name

    def __init__(
        self,
        name,
        attributes=None,
        *,
        kind=SpanKind.SERVER,
        start_unix_nanos=1_000,
        end_unix_nanos=2_000,
        status=StatusCode.UNSET,
        status_message="",
        resource=None,
    ):
        self.name = name
        self.attributes = dict(attributes or {})
        self.kind = kind
        self.start_unix_nanos = start_unix_nanos
        self.end_unix_nanos = end_unix_nanos
        self.status = status
        self.status_message = status_message
        self.resource = dict(resource or {})

    def __repr__(self):
        return f"TestSpan({self.name!r}, {self.attributes!r}, status={self.status!r})"


_SPAN = struct.Struct("<QQQQQQIIIIIIIBBB1x")
_ATTR = struct.Struct("<IIB7xQ")
_ATTR_I = struct.Struct("<IIB7xq")
_ATTR_F = struct.Struct("<IIB7xd")
assert _SPAN.size == L.SPAN_ROW and _ATTR.size == L.ATTRIBUTE_ROW


def pack(spans):
    """A ``Batch`` holding ``spans`` as the agent packs them (one resource per span here)."""
    text, rows, attributes, resources = bytearray(), bytearray(), bytearray(), bytearray()

    def push(s):
        b = s.encode()
        offset = len(text)
        text.extend(b)
        return offset, len(b)

    def push_attributes(attrs):
        first = len(attributes) // L.ATTRIBUTE_ROW
        for key, value in attrs.items():
            k = push(key)
            if isinstance(value, bool):
                attributes.extend(_ATTR.pack(*k, L.TYPE_BOOL, int(value)))
            elif isinstance(value, int):
                attributes.extend(_ATTR_I.pack(*k, L.TYPE_INT, value))
            elif isinstance(value, float):
                attributes.extend(_ATTR_F.pack(*k, L.TYPE_FLOAT, value))
            else:
                offset, length = push(str(value))
                attributes.extend(_ATTR.pack(*k, L.TYPE_STR, offset | length << 32))
        return first, len(attrs)

    for i, s in enumerate(spans):
        resources.extend(struct.pack("<II", *push_attributes(s.resource)))
        first, count = push_attributes(s.attributes)
        name, message = push(s.name), push(s.status_message)
        rows.extend(
            _SPAN.pack(
                1, i, i + 1, 0, s.start_unix_nanos, s.end_unix_nanos,
                *name, *message, first, count, i, int(s.kind), int(s.status), 0,
            )
        )
    return Batch(bytes(text), bytes(rows), bytes(attributes), bytes(resources))


def apply(spans, edits):
    """The spans after ``edits`` (an ``Edits``), applied the way the agent applies them."""
    spans = [_copy(s) for s in spans]
    dropped = set()
    decoded = edits.to_list()
    for edit in decoded:
        if not 0 <= edit[1] < len(spans):
            raise ValueError(f"edit refers to span {edit[1]} of a batch of {len(spans)}")
    for edit in decoded:
        op, span = edit[0], spans[edit[1]]
        if op == "drop":
            dropped.add(edit[1])
        elif op == "rename":
            span.name = edit[2]
        elif op == "set_attribute":
            span.attributes[edit[2]] = edit[3]
        elif op == "remove_attribute":
            span.attributes.pop(edit[2], None)
        elif op == "set_status":
            span.status, span.status_message = edit[2], edit[3]
    return [s for i, s in enumerate(spans) if i not in dropped]


def run(plugin, spans):
    """Runs ``spans`` through ``plugin`` (already initialised) and returns what comes out."""
    edits = Edits()
    plugin.process(pack(spans), edits)
    return apply(spans, edits)


def _copy(s):
    return TestSpan(
        s.name,
        s.attributes,
        kind=s.kind,
        start_unix_nanos=s.start_unix_nanos,
        end_unix_nanos=s.end_unix_nanos,
        status=s.status,
        status_message=s.status_message,
        resource=s.resource,
    )
