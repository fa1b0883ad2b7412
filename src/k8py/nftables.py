"""Running ``nft`` for the components that own an nftables table (the service proxy's ``inet
k8py-proxy``, the NetworkPolicy agent's ``inet k8py-netpol``): one transaction per call, read from
stdin (``nft -f -``), so a ruleset is applied whole or not at all and a failure leaves the previous
rules in force."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Sequence


class NftError(Exception):
    pass


def missing_prerequisites(component: str) -> list[str]:
    """What this machine lacks to run ``component`` (named as a message's subject, "the proxy"),
    which programs nftables: root and the ``nft`` command."""
    out = []
    if os.geteuid() != 0:
        out.append(f"root ({component} programs nftables)")
    if not shutil.which("nft"):
        out.append("the nft command (Debian package nftables)")
    return out


def remove_table(family: str, table: str, what: str) -> list[str]:
    """Delete one table if it is there (``k8py killall``: a component killed with -9 leaves its table
    behind); the problems, as killall reports them."""
    if not shutil.which("nft"):
        return []
    try:
        Nft().apply(f"add table {family} {table}\ndelete table {family} {table}\n")
    except NftError as e:
        return [f"cannot remove {what}'s nft table {family} {table}: {e}"]
    return []


class Nft:
    """``command`` is how to run nft (tests run it inside a network namespace with
    ``ip netns exec NS nft``)."""

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
            async with asyncio.timeout(timeout):
                _, err = await proc.communicate(script.encode())
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
