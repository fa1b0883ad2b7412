"""Running the node's tools (runc, CNI plugins, ip, nft, skopeo, umoci): one helper.

Each command runs with :func:`subprocess.run` in a worker thread, not with asyncio's
subprocess support: under uvloop (which ``k8py server`` installs) a plugin that exits while
its stdin is being written made the write fail ("the handler is closed"), and a parent that
exits at once after forking (conmon) was not always seen to exit. ``subprocess`` also closes
every other file descriptor in the child, so no socket of the server leaks into a tool that
outlives it.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Result", "run"]


@dataclass(frozen=True, slots=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes


async def run(argv: Sequence[str], *, input: bytes | None = None, env: Mapping[str, str] | None = None,
              timeout: float | None = None, cwd: str | None = None) -> Result:
    """Run ``argv`` to its end; its stdin is ``input`` (or empty). On ``timeout`` the command is
    killed and :class:`TimeoutError` raised; a missing program raises :class:`OSError`."""
    def go() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(list(argv), input=input if input is not None else b"", capture_output=True,
                              env=dict(env) if env is not None else None, timeout=timeout, cwd=cwd, check=False)

    try:
        p = await asyncio.to_thread(go)
    except subprocess.TimeoutExpired as e:
        raise TimeoutError(f"{argv[0]} did not finish within {timeout:g}s") from e
    return Result(tuple(argv), p.returncode, p.stdout or b"", p.stderr or b"")
