"""py-slow-marker's logic, natively: python3 -m unittest (with guest-sdk/python on PYTHONPATH)."""

import unittest

from app import SlowMarker
from http_autoinstrument_plugin import PluginError, StatusCode
from http_autoinstrument_plugin.testing import TestSpan, run


def span(ms):
    return TestSpan("GET", start_unix_nanos=0, end_unix_nanos=int(ms * 1_000_000))


class SlowMarkerTest(unittest.TestCase):
    def test_marks_slow_spans_and_errors_the_slowest(self):
        plugin = SlowMarker()
        plugin.init({"threshold_ms": 1, "error_over_ms": 5})
        fast, slow, very_slow = run(plugin, [span(0.5), span(2), span(10)])
        self.assertEqual(fast.attributes, {})
        self.assertEqual((slow.attributes, slow.status), ({"app.slow": True}, StatusCode.UNSET))
        self.assertEqual(very_slow.status, StatusCode.ERROR)
        self.assertEqual(very_slow.status_message, "slower than 5 ms")

    def test_bad_settings_are_refused(self):
        with self.assertRaisesRegex(PluginError, "unknown settings"):
            SlowMarker().init({"treshold_ms": 1})
        with self.assertRaisesRegex(PluginError, "non-negative"):
            SlowMarker().init({"threshold_ms": -1})


if __name__ == "__main__":
    unittest.main()
