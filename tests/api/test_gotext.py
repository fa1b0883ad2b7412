"""Go's text forms (k8py.api.gotext): what kube prints, byte for byte."""

from __future__ import annotations

import pytest

from k8py.api.gotext import DurationError, go_duration, go_duration_ns, parse_duration


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (5e-7, "500ns"), (1.5e-6, "1.5µs"), (0.0012345678, "1.234568ms"), (0.85, "850ms"), (2.5, "2.5s"),
    (90, "1m30s"), (3600, "1h0m0s"), (3723.5, "1h2m3.5s"),
    # kubelet's back-off messages
    (10, "10s"), (40, "40s"), (80, "1m20s"), (160, "2m40s"), (300, "5m0s"), (3700, "1h1m40s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_go_duration_of_nanoseconds() -> None:
    d = go_duration_ns
    assert [d(0), d(1), d(1500), d(1_500_000), d(2_000_000_000), d(90 * 10**9), d(3_723_500_000_000),
            d(-5 * 10**9)] == ["0s", "1ns", "1.5µs", "1.5ms", "2s", "1m30s", "1h2m3.5s", "-5s"]


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("-0", 0.0), ("1h30m", 5400.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0), (".5s", 0.5),
    ("1.s", 1.0), ("-1.5m", -90.0), ("+2s", 2.0), ("1us", 1e-6), ("1\u00b5s", 1e-6), ("3ns", 3e-9),
    ("1h0m0s", 3600.0),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    if seconds >= 0:
        assert parse_duration(go_duration(seconds)) == pytest.approx(seconds)  # Go's String() reads back


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'), ("-", 'time: invalid duration "-"'), ("10", 'time: missing unit in duration "10"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'), (".s", 'time: invalid duration ".s"'),
    ("1h 30m", 'time: unknown unit "h " in duration "1h 30m"'), ("s", 'time: invalid duration "s"'),
])
def test_parse_duration_errors_are_go_s(text: str, message: str) -> None:
    with pytest.raises(DurationError) as e:
        parse_duration(text)
    assert str(e.value) == message
