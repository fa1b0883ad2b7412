"""How every k8py command runs its asyncio program: on uvloop, until SIGTERM or SIGINT.

One home for the entry-point boilerplate the commands (server, agent, controller-manager,
scheduler, hollow-nodes, and the components run alone: proxy, network-policy,
ingress-controller, cloud-controller-manager) share; it stands below all of them, so any part may
use it. A component command that talks to an API server takes :func:`add_kubeconfig_flags`,
checks what it needs with :func:`component_config`, and runs with :func:`run_with_client`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from k8py.client.api import Client
    from k8py.client.config import ClientConfig

__all__ = ["add_kubeconfig_flags", "cannot_run_here", "component_config", "install_uvloop", "run_until_signal",
           "run_with_client"]


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


def add_kubeconfig_flags(p: argparse.ArgumentParser) -> None:
    """``--kubeconfig`` and ``--context``: how a component command reaches its API server."""
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to reach the API server (default: "
                   "$KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")


def component_config(args: argparse.Namespace, log: logging.Logger, *, what: str = "",
                     missing: Sequence[str] = ()) -> ClientConfig | None:
    """The client configuration of ``--kubeconfig`` and ``--context``, or None after logging on
    ``log`` why the component cannot run: what this machine lacks (``missing``; ``what`` names the
    component), or a kubeconfig that cannot be loaded."""
    from k8py.client.config import ConfigError, load_config

    if missing:
        log.error("cannot run %s; missing: %s", what, "; ".join(missing))
        return None
    try:
        return load_config(args.kubeconfig, args.context)
    except ConfigError as e:
        log.error("%s", e)
        return None


def cannot_run_here(log: logging.Logger, what: str, consequence: str, missing: Sequence[str]) -> bool:
    """For a component started beside a node agent (``k8py server``'s, a joined ``k8py agent``'s):
    True when this machine lacks what ``what`` needs (``missing``), after saying on ``log`` what
    the cluster goes without (``consequence``) and why; the node runs on without it."""
    if missing:
        log.error("%s cannot run here (%s); missing: %s", what, consequence, "; ".join(missing))
    return bool(missing)


def run_with_client(cfg: ClientConfig, component: str, main: Callable[[Client, asyncio.Event], Awaitable[int | None]],
                    *, field_manager: str | None = None) -> int:
    """Run ``main(client, stop)`` with a client of ``cfg`` named ``component`` until SIGTERM or
    SIGINT sets ``stop``; its result is the exit code (None: 0). The client is closed at the end."""
    from k8py.client.api import Client

    async def run(stop: asyncio.Event) -> int:
        async with Client(cfg, component=component, field_manager=field_manager) as client:
            rc = await main(client, stop)
        return 0 if rc is None else rc

    return run_until_signal(run)
