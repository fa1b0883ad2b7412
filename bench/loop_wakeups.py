"""What a wake-up of an idle event loop costs the process, the figure behind the agent's tick
(``src/k8py/kubelet/ticks.py``): N tasks each sleeping 1 s in a loop on uvloop, their phases
spread over the second (N wake-ups a second) or bunched together within ``--spread`` seconds;
the process's CPU (``os.times``) over the window, per wake of a task.

    .venv/bin/python bench/loop_wakeups.py [--tasks 50] [--window 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import uvloop


async def measure(tasks: int, spread: float, window: float) -> float:
    async def sleeper(i: int) -> None:
        await asyncio.sleep(spread * i / tasks)
        while True:
            await asyncio.sleep(1)

    running = [asyncio.create_task(sleeper(i)) for i in range(tasks)]
    await asyncio.sleep(2)
    t0, w0 = os.times(), time.monotonic()
    await asyncio.sleep(window)
    t1, w1 = os.times(), time.monotonic()
    for t in running:
        t.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    cpu = (t1.user - t0.user) + (t1.system - t0.system)
    return 1000 * cpu / (tasks * (w1 - w0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--window", type=float, default=20.0)
    a = p.parse_args()
    out = {}
    for spread in (1.0, 0.1, 0.0):
        out[f"ms_of_cpu_a_wake_phases_within_{spread:g}s"] = round(
            uvloop.run(measure(a.tasks, spread, a.window)), 3)
    print(json.dumps({"tasks": a.tasks, "window_s": a.window, **out}, indent=2))


if __name__ == "__main__":
    main()
