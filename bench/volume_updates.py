"""How fast a ConfigMap change reaches the files of the pods that mount it, and what watching
costs the node agent.

The node agent's real code (volume manager, pod workers) on the ``fake`` runtime, against an
in-process API server on the memory store (no root, no containers): N pods (default 100), each
mounting one ConfigMap shared by all and one of its own. Measured:

- set-up: from creating the N pods to every pod's volumes written;
- shared update: one patch of the shared ConfigMap, then the time until each pod's file holds the
  new value (p50, p99, max over the N pods);
- own updates: the N own ConfigMaps patched at once, the same per pod;
- the watches the agent holds (one per referenced object: N + 1), and the process CPU over an
  idle 10 s with them open (API server, watches and agent share this process).

Run: ``.venv/bin/python bench/volume_updates.py [--pods 100]``; prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.helpers.cluster import InProcessCluster

from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.kubelet.agent import Agent, AgentConfig
from k8py.kubelet.runtime.fake import FakeRuntime

POD = ("v1", "Pod")
CM = ("v1", "ConfigMap")
NS = "default"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))], 3)


async def until_all(files: dict[str, Path], want: str, t0: float, timeout: float = 120.0) -> list[float]:
    """Seconds from ``t0`` until each file reads ``want`` (polled every 10 ms, bounded)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(files):
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"{len(files) - len(seen)} file(s) never showed {want!r}")
        for name, f in files.items():
            if name not in seen:
                try:
                    if f.read_text() == want:
                        seen[name] = now - t0
                except OSError:
                    pass
        await asyncio.sleep(0.01)
    return list(seen.values())


async def main(pods: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="k8py-volbench-"))
    # the stores' default progress interval (5 s; the test helper's 0.2 s would wake every watch
    # five times a second and be most of the idle CPU)
    async with InProcessCluster(progress_interval=5.0) as c:
        client = Client(ClientConfig(server=c.url), component="kubelet")
        agent = Agent(client, FakeRuntime(), AgentConfig(
            node_name="n1", data_dir=str(tmp / "n1"),
            capacity={"cpu": "64", "memory": "256Gi", "pods": str(pods + 10)}))
        await agent.start()
        try:
            await c.client.create(CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"},
                                       "data": {"v": "0"}}, NS)
            for i in range(pods):
                await c.client.create(CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"own-{i}"},
                                           "data": {"v": "0"}}, NS)
            t0 = time.monotonic()
            uids = {}
            for i in range(pods):
                p = await c.client.create(POD, {
                    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}"},
                    "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "busybox:1.36", "volumeMounts": [
                        {"name": "shared", "mountPath": "/shared"}, {"name": "own", "mountPath": "/own"}]}],
                             "volumes": [{"name": "shared", "configMap": {"name": "shared"}},
                                         {"name": "own", "configMap": {"name": f"own-{i}"}}]}}, NS)
                uids[f"p-{i}"] = p["metadata"]["uid"]
            base = tmp / "n1" / "pods"
            shared = {n: base / u / "volumes" / "kubernetes.io~configmap" / "shared" / "v" for n, u in uids.items()}
            own = {n: base / u / "volumes" / "kubernetes.io~configmap" / "own" / "v" for n, u in uids.items()}
            await until_all(own, "0", t0)
            setup = time.monotonic() - t0

            t1 = time.monotonic()
            await c.client.patch(CM, "shared", {"data": {"v": "1"}}, NS)
            shared_lat = await until_all(shared, "1", t1)

            t2 = time.monotonic()
            await asyncio.gather(*(c.client.patch(CM, f"own-{i}", {"data": {"v": "1"}}, NS) for i in range(pods)))
            own_lat = await until_all(own, "1", t2)

            watches = len(agent.volumes._watches._informers) if agent.volumes._watches is not None else 0
            cpu0 = time.process_time()
            await asyncio.sleep(10)
            idle_cpu = (time.process_time() - cpu0) / 10
        finally:
            await agent.stop()
            await client.close()
    return {
        "pods": pods,
        "setup_all_volumes_s": round(setup, 2),
        "shared_update_s": {"p50": pct(shared_lat, 0.5), "p99": pct(shared_lat, 0.99), "max": round(max(shared_lat), 3)},
        "own_updates_s": {"p50": pct(own_lat, 0.5), "p99": pct(own_lat, 0.99), "max": round(max(own_lat), 3),
                          "mean": round(statistics.mean(own_lat), 3)},
        "watches": watches,
        "idle_cpu_fraction_of_a_core": round(idle_cpu, 4),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=100)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(main(args.pods)), indent=2))
