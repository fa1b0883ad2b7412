"""Go's text forms (k8py.api.gotext): what kube prints, byte for byte."""

from __future__ import annotations

import pytest

from k8py.api.gotext import go_duration, go_duration_ns


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
