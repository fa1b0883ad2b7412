"""For the tests of the nftables components (the service proxy, the NetworkPolicy agent): on the
fake API, an nft that records the transactions it is given and fails one when told, and a
bounded wait for a condition their loops make true; with real nft, a table read back in a form
two tables can be compared in."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable

from k8py.nftables import Nft, NftError


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


def normalized_table(nft: Nft, table: str, skip_sets: Callable[[str], bool] = lambda name: False) -> dict[str, object]:
    """The ``inet`` table ``table`` as its chains' rules and its sets' and maps' elements (listing
    order aside, handles dropped), to compare a table partial syncs made with a full sync's; sets
    ``skip_sets`` names (what traffic fills, not the rules) are left out."""
    p = subprocess.run([*nft.command, "-j", "list", "table", "inet", table], capture_output=True, text=True,
                       check=True, timeout=30)
    chains: dict[str, list[str]] = {}
    elems: dict[str, list[str]] = {}
    for item in json.loads(p.stdout)["nftables"]:
        if "rule" in item:
            r = item["rule"]
            chains.setdefault(r["chain"], []).append(json.dumps(r["expr"], sort_keys=True))
        elif "chain" in item:
            chains.setdefault(item["chain"]["name"], [])
        elif "map" in item or "set" in item:
            s = item.get("map") or item.get("set")
            if not skip_sets(s["name"]):
                elems[s["name"]] = sorted(json.dumps(e, sort_keys=True) for e in s.get("elem") or ())
    return {"chains": chains, "elements": elems}
