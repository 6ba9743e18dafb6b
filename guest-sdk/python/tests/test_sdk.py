"""The Python SDK against the agent's golden batches and edits (guest-sdk/testdata/golden),
and its testing helpers. Run: python3 -m unittest discover -s guest-sdk/python/tests"""

import json
import math
import pathlib
import sys
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from http_autoinstrument_plugin import Batch, Edits, Plugin, SpanKind, StatusCode  # noqa: E402
from http_autoinstrument_plugin.testing import TestSpan, pack, run  # noqa: E402

GOLDEN = HERE.parent.parent / "testdata" / "golden"


def load(name):
    d = GOLDEN / name
    batch = Batch(*((d / f"{t}.bin").read_bytes() for t in ("text", "spans", "attributes", "resources")))
    return batch, json.loads((d / "expected.json").read_text())


def value_json(key, value):
    if isinstance(value, bool):
        return [key, "bool", value]
    if isinstance(value, int):
        return [key, "int", str(value)]
    if isinstance(value, float):
        return [key, "float", value]
    return [key, "str", value]


def span_json(span):
    return {
        "index": span.index,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "kind": "client" if span.kind == SpanKind.CLIENT else "server",
        "start_unix_nanos": str(span.start_unix_nanos),
        "end_unix_nanos": str(span.end_unix_nanos),
        "status": span.status.name.lower(),
        "status_message": span.status_message,
        "attributes": [value_json(k, v) for k, v in span.attributes.items()],
        "resource": [value_json(k, v) for k, v in span.resource.items()],
    }


class GoldenBatches(unittest.TestCase):
    def test_reads_the_agents_golden_batches(self):
        for name in ("basic", "patched", "empty"):
            batch, expected = load(name)
            got = [span_json(s) for s in batch]
            self.assertEqual(got, expected, name)
            # -0.0 == 0.0 in Python: check the sign the agent sent too.
            for s, e in zip(batch, expected):
                for (k, v), (_, t, ev) in zip(s.attributes.items(), e["attributes"]):
                    if t == "float":
                        self.assertEqual(math.copysign(1, v), math.copysign(1, ev), k)

    def test_lookups_agree_with_the_walk(self):
        batch, _ = load("patched")
        for span in batch:
            items = list(span.attributes.items())
            for k, v in items:
                self.assertEqual(span.attributes[k], v)
                self.assertIn(k, span.attributes)
            self.assertIsNone(span.attributes.get("no.such.key"))
            self.assertNotIn("no.such.key", span.attributes)
            keys = [k for k, _ in items][:3] + ["no.such.key"]
            self.assertEqual(span.attributes.get_many(*keys), tuple(span.attributes.get(k) for k in keys))
        self.assertEqual(batch[0].resource["service.name"], "shop")
        self.assertEqual(batch[-1].name, batch[len(batch) - 1].name)
        with self.assertRaises(IndexError):
            batch[len(batch)]
        with self.assertRaises(KeyError):
            batch[0].attributes["no.such.key"]

    def test_encodes_the_golden_edits_script_byte_for_byte(self):
        d = GOLDEN / "edits"
        batch, _ = load("basic")
        edits = Edits()
        for step in json.loads((d / "script.json").read_text()):
            span = batch[step["span"]]
            op = step["op"]
            if op == "drop":
                edits.drop(span)
            elif op == "rename":
                edits.rename(span, step["name"])
            elif op == "remove_attribute":
                edits.remove_attribute(span, step["key"])
            elif op == "set_status":
                edits.set_status(span, StatusCode[step["code"].upper()], step["message"])
            elif op == "set_attribute":
                (kind, v), = step["value"].items()
                value = int(v) if kind == "int" else v
                edits.set_attribute(span, step["key"], value)
            else:
                self.fail(f"unknown op {op}")
        self.assertEqual(bytes(edits.ops), (d / "ops.bin").read_bytes())
        self.assertEqual(bytes(edits.text), (d / "text.bin").read_bytes())


class Testing(unittest.TestCase):
    def test_pack_and_read_every_field(self):
        span = TestSpan(
            "GET /é",
            {"url.path": "/a", "n": -7, "f": 1.5, "b": True},
            kind=SpanKind.CLIENT,
            status=StatusCode.ERROR,
            status_message="boom",
            start_unix_nanos=10,
            end_unix_nanos=510,
            resource={"service.name": "shop"},
        )
        batch = pack([TestSpan("first"), span])
        s = batch[1]
        self.assertEqual(
            (s.name, s.kind, s.status, s.status_message, s.duration_nanos),
            ("GET /é", SpanKind.CLIENT, StatusCode.ERROR, "boom", 500),
        )
        self.assertEqual(s.attributes.to_dict(), {"url.path": "/a", "n": -7, "f": 1.5, "b": True})
        self.assertEqual(s.resource.get("service.name"), "shop")
        self.assertIsNone(s.parent_span_id)

    def test_run_applies_edits_in_order(self):
        class Marker(Plugin):
            def process(self, batch, edits):
                for span in batch:
                    if span.attributes.get("url.path") == "/healthz":
                        edits.drop(span)
                    else:
                        edits.set_attribute(span, "seen", True)
                        edits.rename(span, span.name + "!")
                        edits.remove_attribute(span, "secret")
                        edits.set_status(span, StatusCode.OK)

        out = run(Marker(), [TestSpan("a", {"url.path": "/healthz"}), TestSpan("b", {"secret": "x"})])
        self.assertEqual(len(out), 1)
        self.assertEqual((out[0].name, out[0].attributes, out[0].status), ("b!", {"seen": True}, StatusCode.OK))

    def test_bad_values_are_refused_with_the_key(self):
        edits = Edits()
        with self.assertRaisesRegex(TypeError, "'k'.*list"):
            edits.set_attribute(0, "k", [1])
        with self.assertRaisesRegex(ValueError, "64 bits"):
            edits.set_attribute(0, "k", 1 << 63)


if __name__ == "__main__":
    unittest.main()
