"""The agent's certificate manager: kubelet's deadline (70-90 % of the life, jittered once per
certificate), renewal at the deadline, retries after a failure, the callback after a success."""

from __future__ import annotations

import asyncio
import time

import pytest

from k8py.kubelet import certmanager
from k8py.kubelet.certmanager import CertificateManager, rotation_deadline


def test_rotation_deadline_is_70_to_90_percent_of_the_life() -> None:
    assert rotation_deadline(1000.0, 2000.0, 0.0) == 1700.0
    assert rotation_deadline(1000.0, 2000.0, 0.5) == 1800.0
    assert rotation_deadline(1000.0, 2000.0, 0.999) == pytest.approx(1899.8)


async def test_renews_at_the_deadline_retries_failures_and_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(certmanager, "RETRY_FIRST", 0.05)
    now = time.time()
    calls: list[list[str]] = []
    rotated: list[int] = []
    results = [None, {"client": [now - 10, now + 3600], "serving": [now, now + 7200]}]

    async def rotate(roles: list[str]) -> dict[str, list[float]] | None:
        calls.append(roles)
        return results.pop(0)

    # the serving certificate lives 1 s and started 0.9 s ago: due at 0.7-0.9 of its life -> now
    mgr = CertificateManager({"client": [now - 10, now + 3600], "serving": [now - 0.9, now + 0.1]}, rotate,
                             lambda: rotated.append(1), rand=lambda: 0.5)
    assert mgr.next_wait() == 0.0
    stop = asyncio.Event()
    task = asyncio.create_task(mgr.run(stop))
    deadline = time.monotonic() + 5
    while not rotated:
        assert time.monotonic() < deadline, "no rotation within 5 s"
        await asyncio.sleep(0.01)
    assert calls == [["serving"], ["serving"]]  # only the one due; the first try failed, the retry succeeded
    assert mgr.rotations == 1 and rotated == [1]
    assert mgr.deadlines["serving"] == pytest.approx(now + 7200 * 0.8)
    # the client certificate keeps its own deadline (drawn when it was got)
    assert mgr.deadlines["client"] == pytest.approx(now - 10 + 3610 * 0.8)
    assert 2870 < mgr.next_wait() <= 2880
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(calls) == 2
