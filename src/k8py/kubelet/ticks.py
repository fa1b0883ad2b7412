"""The node agent's tick: moments every :data:`TICK` seconds of the event loop's clock at which
work that can wait a little is done together.

Probes run every period of every probed container, each at its own phase, and each wants the
loop more than once (its timer, a connection, an answer). On an idle agent every one of those is
a separate wake-up from ``epoll_wait``, and a wake-up is what costs: on the 2-core machine of
``docs/benchmarks.md``, 50 timers a second at spread phases cost the process 0.20-0.22 ms of CPU
each, the same 50 due together 0.01 ms each. So probe timers fall due on ticks, and the exec
service's answers (an exec probe's result comes some 30 ms after its start, each at its own
moment) are read at the next tick: what a tick holds is one wake-up. Measured apart (100
``httpGet`` probe workers on uvloop against a loopback server, ms of CPU a probe): 0.72 with no
tick, 0.42 with a 50 ms tick, 0.34 with 100 ms, 0.27 with 200 ms. Reading ``httpGet``
responses at the next tick as well made no difference (the probes of a tick find their answers
in the same wake-up), so they are read as they come.

A probe starts up to one tick later than its period says, and an exec probe's result is known
up to one tick later; kubelet's probes are periodic to the second (``periodSeconds`` and
``timeoutSeconds`` at least 1), and its own probe workers start on tickers of their own.
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["TICK", "at_or_after", "next_tick"]

TICK = 0.1


def at_or_after(when: float) -> float:
    """The first tick at or after ``when`` (the loop's clock)."""
    return math.ceil(round(when / TICK, 6)) * TICK


def next_tick(loop: asyncio.AbstractEventLoop) -> float:
    """The first tick after now."""
    return (math.floor(round(loop.time() / TICK, 6)) + 1) * TICK

