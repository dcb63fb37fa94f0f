"""The Prometheus text format, byte for byte."""

import pytest

from appliance.observe.exposition import Family, render


def test_families_samples_and_escaping():
    families = [
        Family("ockam_portal_sent_bytes_total", "counter", "Bytes\\sent\nout.")
        .add(12, kind="inlet", name='a"b\\c\nd').add(0, kind="outlet", name="x"),
        Family("ockam_secure_channels_open", "gauge", "Channels.").add(3),
        Family("ockam_empty", "gauge", "Left out: no samples."),
        Family("ockam_rtt_seconds", "gauge", "Floats.").add(0.25, n="a").add(float("inf"), n="b")
        .add(float("nan"), n="c").add(True, n="d"),
    ]
    assert render(families) == (
        b'# HELP ockam_portal_sent_bytes_total Bytes\\\\sent\\nout.\n'
        b'# TYPE ockam_portal_sent_bytes_total counter\n'
        b'ockam_portal_sent_bytes_total{kind="inlet",name="a\\"b\\\\c\\nd"} 12\n'
        b'ockam_portal_sent_bytes_total{kind="outlet",name="x"} 0\n'
        b'# HELP ockam_secure_channels_open Channels.\n'
        b'# TYPE ockam_secure_channels_open gauge\n'
        b'ockam_secure_channels_open 3\n'
        b'# HELP ockam_rtt_seconds Floats.\n'
        b'# TYPE ockam_rtt_seconds gauge\n'
        b'ockam_rtt_seconds{n="a"} 0.25\n'
        b'ockam_rtt_seconds{n="b"} +Inf\n'
        b'ockam_rtt_seconds{n="c"} NaN\n'
        b'ockam_rtt_seconds{n="d"} 1\n')


def test_nothing_to_say_is_an_empty_body():
    assert render([Family("ockam_x", "gauge", "h")]) == b""


@pytest.mark.parametrize("name, kind, message", [
    ("ockam-x", "gauge", "bad metric family 'ockam-x' (gauge)"),
    ("ockam_x", "histogram", "bad metric family 'ockam_x' (histogram)"),
    ("ockam_x", "counter", "ockam_x: counters, and only counters, end in _total"),
    ("ockam_x_total", "gauge", "ockam_x_total: counters, and only counters, end in _total"),
])
def test_bad_families_fail_when_written_not_when_scraped(name, kind, message):
    with pytest.raises(ValueError) as caught:
        Family(name, kind, "h")
    assert str(caught.value) == message


@pytest.mark.parametrize("label", ["0x", "a-b", "__reserved"])
def test_bad_label_names(label):
    with pytest.raises(ValueError) as caught:
        Family("ockam_x", "gauge", "h").add(1, **{label: "v"})
    assert str(caught.value) == f"ockam_x: bad label name {label!r}"
