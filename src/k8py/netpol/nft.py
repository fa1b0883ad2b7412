"""Running ``nft`` for the NetworkPolicy table: one transaction per call, read from stdin (``nft -f
-``), so a ruleset is applied whole or not at all and a failure leaves the previous rules in force.

(The service proxy has the same small runner, ``k8py.proxy.nft``; the import-layer contract keeps
the two components from importing each other.)"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence


class NftError(Exception):
    pass


class Nft:
    """``command`` is how to run nft (tests run it in a network namespace: ``ip netns exec NS nft``)."""

    def __init__(self, command: Sequence[str] = ("nft",)) -> None:
        self.command = tuple(command)

    def apply(self, script: str, timeout: float = 30.0) -> None:
        p = subprocess.run([*self.command, "-f", "-"], input=script, capture_output=True, text=True,
                           timeout=timeout, check=False)
        if p.returncode != 0:
            raise NftError(_first_error(p.stderr) or f"nft exited with {p.returncode}")

    async def apply_async(self, script: str, timeout: float = 30.0) -> None:
        proc = await asyncio.create_subprocess_exec(*self.command, "-f", "-", stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(script.encode()), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise NftError(f"nft did not finish within {timeout:g}s") from None
        if proc.returncode != 0:
            raise NftError(_first_error(err.decode(errors="replace")) or f"nft exited with {proc.returncode}")

    def list_table(self, family: str, table: str) -> str:
        p = subprocess.run([*self.command, "list", "table", family, table], capture_output=True, text=True,
                           timeout=30, check=False)
        return p.stdout if p.returncode == 0 else ""


def _first_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "Error" in ln:
            return " ".join(lines[i:i + 2]).strip()
    return " ".join(lines[:2]).strip()
