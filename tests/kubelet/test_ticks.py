"""The agent's tick (``kubelet/ticks.py``): probe timers fall due on ticks, and the exec
service's answers are read at the next tick, so that the probes of a tick cost the loop one
wake-up."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator
from typing import Any

from k8py.api.corev1 import format_epoch
from k8py.kubelet import ticks
from k8py.kubelet.prober import HTTPProber, ProbeManager
from k8py.kubelet.runtime.execd import ExecService
from k8py.kubelet.runtime.fake import FakeRuntime
from k8py.kubelet.runtime.types import ExecResult

EPS = 1e-6


def on_tick(t: float) -> bool:
    return abs(t / ticks.TICK - round(t / ticks.TICK)) < EPS


@contextlib.contextmanager
def timers_at(loop: asyncio.AbstractEventLoop) -> Iterator[list[float]]:
    """The times the loop's timers were set for while inside."""
    whens: list[float] = []
    call_at = loop.call_at

    def record(when: float, *args: Any, **kw: Any) -> asyncio.TimerHandle:
        whens.append(when)
        return call_at(when, *args, **kw)

    loop.call_at = record  # type: ignore[method-assign]
    try:
        yield whens
    finally:
        del loop.call_at


def test_ticks_are_multiples_of_the_tick() -> None:
    t = ticks.TICK
    assert ticks.at_or_after(10 * t) == 10 * t  # on a tick: that tick
    assert ticks.at_or_after(10 * t + 0.001) == 11 * t
    assert ticks.at_or_after(3.14159) == math.ceil(3.14159 / t) * t

    class Clock:
        def __init__(self, now: float) -> None:
            self.now = now

        def time(self) -> float:
            return self.now

    assert ticks.next_tick(Clock(10 * t)) == 11 * t  # type: ignore[arg-type] # strictly after now
    assert ticks.next_tick(Clock(10 * t + 0.01)) == 11 * t  # type: ignore[arg-type]


class Instant(FakeRuntime):
    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    async def exec_sync(self, container_id: str, cmd: Any, timeout: float = 0) -> ExecResult:
        self.at.append(asyncio.get_running_loop().time())
        return ExecResult(b"", b"", 0)


async def test_probe_timers_fall_due_on_ticks() -> None:
    loop = asyncio.get_running_loop()
    rt = Instant()
    mgrs = []
    probe = {"exec": {"command": ["true"]}, "periodSeconds": 1, "timeoutSeconds": 1}
    with timers_at(loop) as whens:
        for i in range(3):
            m = ProbeManager(rt, HTTPProber(), lambda: None, lambda *e: None, jitter=True)
            m.update({"metadata": {"name": f"p{i}"}, "spec": {"containers": [{"name": "c", "livenessProbe": probe}]}},
                     {"phase": "Running", "containerStatuses": [{
                         "name": "c", "containerID": f"fake://c{i}", "started": True,
                         "state": {"running": {"startedAt": format_epoch(0)}}}]})
            mgrs.append(m)
        try:
            async with asyncio.timeout(10):
                while len(rt.at) < 6:
                    await asyncio.sleep(0.05)
        finally:
            for m in mgrs:
                await m.stop()
    probe_timers = whens  # the workers' waits (the test's own sleeps use call_later's call_at too)
    assert [w for w in probe_timers if on_tick(w)], probe_timers
    # every probe after the first wait ran at (or just after) a tick
    late = [t for t in rt.at if (t / ticks.TICK) % 1 > 0.5]
    assert len(late) <= 1, (rt.at, late)  # one may fall late on a busy machine, not all


async def test_exec_answers_are_read_at_the_next_tick() -> None:
    loop = asyncio.get_running_loop()
    svc = ExecService()
    try:
        await svc.run(["true"])  # the service started
        for _ in range(3):
            with timers_at(loop) as whens:
                r, _ = await svc.run(["echo", "hi"])
                done = loop.time()
            assert r.stdout == b"hi\n"
            tick = [w for w in whens if on_tick(w)]
            assert tick and done >= tick[0] - EPS, (whens, done)
    finally:
        await svc.close()
