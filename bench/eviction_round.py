"""What one round of the node agent's eviction manager costs (every 10 s): a reading of the
machine (``/proc/meminfo``, ``statvfs``, the process count), of the pods' cgroup (``kubepods``'
memory, for ``allocatableMemory.available``) and of the image store's and writable layers'
filesystems, as a real node's agent reads them, and the decisions over N pods (default 100)
without pressure and without ephemeral-storage limits, which is the steady state of a node.

Run: ``.venv/bin/python bench/eviction_round.py [--pods 100] [--rounds 200]``. Prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from typing import Any

from k8py.kubelet import node as nodeinfo
from k8py.kubelet.eviction import (
    EvictionManager,
    Filesystems,
    FsStats,
    PodsCgroup,
    PodUsage,
    config_from_flags,
)


async def main(n_pods: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="k8py-evbench-") as data_dir:
        return await _run(data_dir, n_pods, rounds)


async def _run(data_dir: str, n_pods: int, rounds: int) -> dict[str, Any]:
    pods = [{"metadata": {"name": f"p{i}", "uid": f"u{i}"}, "spec": {"containers": [{"name": "c"}]}}
            for i in range(n_pods)]

    async def read() -> nodeinfo.Readings:
        return await asyncio.to_thread(nodeinfo.read, data_dir)

    async def usage(pod: dict[str, Any], what: frozenset[str]) -> PodUsage:
        raise AssertionError("no pod is measured without pressure or limits")

    async def filesystems() -> Filesystems:
        return await asyncio.to_thread(lambda: Filesystems(*(FsStats.of(data_dir) for _ in range(3))))

    m = EvictionManager(config_from_flags(), read=read, pods=lambda: pods, usage=usage, evict=lambda *a: False,
                        stopped=lambda uid: True, record=lambda *a: None, node=dict, filesystems=filesystems,
                        pods_memory=PodsCgroup(0))
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(rounds):
        await m.sync_once(float(i))
    c1, t1 = time.process_time(), time.perf_counter()
    cpu_ms = (c1 - c0) / rounds * 1000
    return {"pods": n_pods, "rounds": rounds, "cpu_ms_per_round": round(cpu_ms, 3),
            "wall_ms_per_round": round((t1 - t0) / rounds * 1000, 3),
            "share_of_a_core_at_one_round_per_10s": f"{cpu_ms / 10_000 * 100:.4f} %"}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--rounds", type=int, default=200)
    a = p.parse_args()
    print(json.dumps(asyncio.run(main(a.pods, a.rounds)), indent=2))
