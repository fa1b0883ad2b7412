"""Pod startup latency and the node agent's footprint, on real containers (runc, CNI).

Two runs, each on a fresh data directory with the busybox test image in the airgap folder:

1. ``k8py server`` with its node agent in the same process: N pods (default 100) are created
   C at a time (default 10) with the image present: in waves (the default: C pods are created,
   and the next C once they all run) or, with ``--stream``, as a stream with C create requests
   in flight (so all N are on the node at once, and the figure measures queueing on 2 cores as
   much as startup). For each pod, the time from just before its create request to the moment
   a watch sees it Running (kube's pod startup SLI; the SLO is p99 <= 5 s). Then the whole
   server's RSS with the N pods running.
2. ``k8py server --disable-agent`` and a separate ``k8py agent`` joined with a token: the
   agent's own RSS and CPU over an idle minute with the N pods running (kubelet's footprint;
   each container's conmon is a separate small process, like containerd's shims, and is
   reported apart).

Run as root: ``.venv/bin/python bench/pod_startup.py [--pods 100] [--concurrency 10] [--stream]``.
Prints a JSON summary. Everything is removed at the end (``k8py killall``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.helpers.images import build_busybox_image

from k8py.client.api import Client
from k8py.client.config import load_config
from k8py.client.errors import NotFoundError

IMAGE = "k8py.test/busybox:1.0"
POD = ("v1", "Pod")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def k8py(*args: str, **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "k8py.cli", *args], start_new_session=True, **kw)


def wait_ready(port: int, timeout: float = 60) -> None:
    import ssl
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server not ready")


def stop_node(data: Path, *procs: subprocess.Popen[bytes] | None) -> None:
    """Stop the ``k8py`` processes (the agent first), then remove the node's containers and
    network set-up (``k8py killall`` on its data directory)."""
    for p in procs:
        if p is not None:
            p.terminate()
            p.wait(60)
    subprocess.run([sys.executable, "-m", "k8py.cli", "killall", "--data-dir", str(data)], check=False)


def pod(i: int, node: str, token_volume: bool = True) -> dict[str, Any]:
    # token_volume False: without the service-account token volume admission adds (for comparison)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i:04d}"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2,
                     **({} if token_volume else {"automountServiceAccountToken": False}),
                     "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]}]}}


async def start_pods(kubeconfig: str, node: str, n: int, concurrency: int, stream: bool = False,
                     token_volume: bool = True) -> list[float]:
    """Create ``n`` pods, ``concurrency`` at a time (in waves, or as a stream with
    ``concurrency`` requests in flight); the create-to-Running latency of each, sorted."""
    if not stream:
        lat: list[float] = []
        for first in range(0, n, concurrency):
            lat += await _start_pods(kubeconfig, node, range(first, min(n, first + concurrency)), concurrency,
                                     token_volume)
        return sorted(lat)
    return await _start_pods(kubeconfig, node, range(n), concurrency, token_volume)


async def _start_pods(kubeconfig: str, node: str, indexes: range, concurrency: int,
                      token_volume: bool = True) -> list[float]:
    n = len(indexes)
    async with Client(load_config(kubeconfig), component="bench") as client:
        sent: dict[str, float] = {}
        running: dict[str, float] = {}
        lst = await client.list(POD, "default")
        done = asyncio.Event()

        async def watch() -> None:
            async with client.watch(POD, "default", resource_version=lst["metadata"]["resourceVersion"]) as w:
                async for ev in w:
                    name = ev.object["metadata"]["name"]
                    if name in sent and name not in running and (ev.object.get("status") or {}).get("phase") == "Running":
                        running[name] = time.monotonic()
                        if len(running) == n:
                            done.set()
                            return

        watcher = asyncio.create_task(watch())
        sem = asyncio.Semaphore(concurrency)

        async def create(i: int) -> None:
            async with sem:
                sent[f"p{i:04d}"] = time.monotonic()
                await client.create(POD, pod(i, node, token_volume), "default")

        await asyncio.gather(*(create(i) for i in indexes))
        await asyncio.wait_for(done.wait(), 300)
        watcher.cancel()
        return sorted(running[k] - sent[k] for k in running)


def pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def conmon_rss() -> tuple[int, int]:
    total = count = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == "conmon":
                        total += rss_kib(int(d))
                        count += 1
            except OSError:
                pass
    return count, total


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"pods": args.pods, "concurrency": args.concurrency,
                           "created": "as a stream" if args.stream else "in waves",
                           "service-account token volume": not args.no_token_volume}
    tmp = Path(tempfile.mkdtemp(prefix="k8py-bench-"))
    try:
        # 1: server with its agent in one process
        data = tmp / "one"
        (data / "agent" / "images").mkdir(parents=True)
        build_busybox_image(data / "agent" / "images", IMAGE)
        port = free_port()
        with open(tmp / "one.log", "wb") as log:
            server = k8py("server", "--data-dir", str(data), "--https-listen-port", str(port), "--bind-address",
                          "127.0.0.1", "--node-ip", "127.0.0.1", "--node-name", "bench",
                          "--kubelet-port", str(free_port()), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port)
            kubeconfig = str(data / "kubeconfig.yaml")
            lat = asyncio.run(_wait_node_then_start(kubeconfig, "bench", args.pods, args.concurrency, args.stream,
                                                    not args.no_token_volume))
            out["startup_seconds"] = {"p50": round(pct(lat, 50), 3), "p90": round(pct(lat, 90), 3),
                                      "p99": round(pct(lat, 99), 3), "max": round(lat[-1], 3),
                                      "mean": round(statistics.mean(lat), 3)}
            time.sleep(5)  # let the last status writes and events settle before reading RSS
            out["server_with_agent_rss_mib"] = round(rss_kib(server.pid) / 1024, 1)
        finally:
            stop_node(data, server)

        # 2: the agent on its own
        data = tmp / "two"
        data.mkdir()
        agent_data = tmp / "two-agent"
        (agent_data / "agent" / "images").mkdir(parents=True)
        build_busybox_image(agent_data / "agent" / "images", IMAGE)
        port = free_port()
        with open(tmp / "two.log", "wb") as log:
            server = k8py("server", "--data-dir", str(data), "--https-listen-port", str(port), "--bind-address",
                          "127.0.0.1", "--disable-agent", stdout=log, stderr=subprocess.STDOUT)
        agent = None
        try:
            wait_ready(port)
            token = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "--join", "-d", str(data)],
                                   capture_output=True, text=True, check=True).stdout.strip()
            with open(tmp / "agent.log", "wb") as log:
                agent = k8py("agent", "--server", f"https://127.0.0.1:{port}", "--token", token, "--node-name",
                             "bench-agent", "--data-dir", str(agent_data), "--node-ip", "127.0.0.1",
                             "--kubelet-port", str(free_port()), stdout=log, stderr=subprocess.STDOUT)
            kubeconfig = str(data / "kubeconfig.yaml")
            asyncio.run(_wait_node_then_start(kubeconfig, "bench-agent", args.pods, args.concurrency, args.stream,
                                              not args.no_token_volume))
            time.sleep(5)
            c0, t0 = cpu_seconds(agent.pid), time.monotonic()
            time.sleep(args.idle)
            c1, t1 = cpu_seconds(agent.pid), time.monotonic()
            out["agent_idle"] = {"rss_mib": round(rss_kib(agent.pid) / 1024, 1),
                                 "cpu_percent_of_a_core": round(100 * (c1 - c0) / (t1 - t0), 2),
                                 "seconds": round(t1 - t0, 1)}
            n, kib = conmon_rss()
            out["conmon"] = {"processes": n, "rss_mib_total": round(kib / 1024, 1)}
        finally:
            stop_node(agent_data, agent, server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


async def wait_node(client: Client, node: str, timeout: float = 120) -> None:
    """Until ``node`` is Ready with its pod CIDR (pods can get addresses)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            nd = await client.get(("v1", "Node"), node)
        except NotFoundError:
            nd = {}  # not registered yet
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in (nd.get("status") or {}).get("conditions") or ())
        if ready and (nd.get("spec") or {}).get("podCIDR"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"node {node} not ready")
        await asyncio.sleep(0.5)


async def _wait_node_then_start(kubeconfig: str, node: str, n: int, concurrency: int, stream: bool = False,
                                token_volume: bool = True) -> list[float]:
    async with Client(load_config(kubeconfig), component="bench") as client:
        await wait_node(client, node)
    return await start_pods(kubeconfig, node, n, concurrency, stream, token_volume)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU measurement")
    p.add_argument("--no-token-volume", action="store_true",
                   help="pods without the service-account token volume (automountServiceAccountToken: false)")
    p.add_argument("--stream", action="store_true",
                   help="create the pods as a stream with --concurrency requests in flight, not in waves")
    if os.geteuid() != 0:
        sys.exit("run as root: the node agent makes namespaces, mounts and cgroups")
    print(json.dumps(run(p.parse_args()), indent=2))


if __name__ == "__main__":
    main()
