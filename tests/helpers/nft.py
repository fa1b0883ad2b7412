"""Stand-ins for the tests of the nftables components (the service proxy, the NetworkPolicy
agent) on the fake API: an nft that records the transactions it is given and fails one when
told, and a bounded wait for a condition their loops make true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from k8py.nftables import NftError


class RecordingNft:
    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.fail_next = False  # the next transaction fails, as nft refusing it

    async def apply_async(self, script: str, timeout: float = 30.0) -> None:
        if self.fail_next:
            self.fail_next = False
            raise NftError("Error: simulated")
        self.scripts.append(script)


async def until(cond: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)
