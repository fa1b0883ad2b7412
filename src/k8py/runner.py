"""How every k8py command runs its asyncio program: on uvloop, until SIGTERM or SIGINT.

One home for the entry-point boilerplate the commands (server, agent, controller-manager,
scheduler, hollow-nodes) share; it stands below all of them, so any part may use it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["install_uvloop", "run_until_signal"]


def install_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio works too
        pass


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    """Run ``main(stop)`` to its end; SIGTERM and SIGINT set ``stop``. Returns its exit code."""

    async def wrapper() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    install_uvloop()
    return asyncio.run(wrapper())
