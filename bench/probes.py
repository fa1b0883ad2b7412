"""The node agent's CPU with probed pods: N pods (default 100), each with an ``httpGet``
readiness probe and an ``exec`` liveness probe every second (issue 13's "probes are cheap").

``k8py server --disable-agent`` and a separate ``k8py agent`` joined with a token (so the
agent's own process is measured alone), the busybox test image in its airgap folder; the pods
run ``httpd``. Once every pod is Ready, the agent's CPU is read from ``/proc`` over a window
(default 60 s): its own (the event loop: probe workers, the HTTP client, status), that of the
runtime's exec service (``runtime/execd.py``, the agent's child that starts ``runc exec`` for
each exec probe) and of the ``runc exec`` processes it waited for (``cutime``/``cstime``), and
the whole machine's busy time from ``/proc/stat`` for comparison. A baseline window with the
same pods and no probes comes first; the probed pods replace them, and the window waits until
the container GC (every 5 s here) has removed the replaced pods' containers and sandboxes.

Run as root: ``.venv/bin/python bench/probes.py [--pods 100] [--window 60]``. It holds the
machine's real-node lock (``tests/helpers/nodelock.py``) for its whole run. Prints a JSON
summary. Everything is removed at the end (``k8py killall``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from pod_startup import IMAGE, free_port, k8py, rss_kib, stop_node, wait_node, wait_ready
from tests.helpers.images import build_busybox_image
from tests.helpers.nodelock import node_lock

from k8py.client.api import Client
from k8py.client.config import load_config

POD = ("v1", "Pod")
NODE = "bench-probes"


def cpu_times(pid: int) -> tuple[float, float, float]:
    """(the process's own CPU seconds, its waited-for children's, its own in the kernel)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / tck, (int(parts[13]) + int(parts[14])) / tck, int(parts[12]) / tck


def thread_times(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid`` by "tid name" (the event loop's is the main one)."""
    out: dict[str, float] = {}
    tck = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        parts = text.rsplit(")", 1)[1].split()
        out[f"{tid} {name}"] = (int(parts[11]) + int(parts[12])) / tck
    return out


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores)."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def pod(i: int, probes: bool, exec_probe: bool = True, http_probe: bool = True) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "web", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                         "command": ["sh", "-c", "echo ok > /tmp/healthz; exec httpd -f -p 8080 -h /tmp"],
                         "ports": [{"name": "http", "containerPort": 8080}]}
    if probes:
        if http_probe:
            c["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}
        if exec_probe:
            c["livenessProbe"] = {"exec": {"command": ["true"]}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{'p' if probes else 'n'}{i:04d}"},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 2, "containers": [c]}}


async def run_pods(kubeconfig: str, n: int, probes: bool, delete: list[str] | None = None,
                   exec_probe: bool = True, http_probe: bool = True) -> float:
    """Delete ``delete``, create ``n`` pods (10 at a time) and wait until all are Ready; the seconds."""
    async with Client(load_config(kubeconfig), component="bench") as client:
        await wait_node(client, NODE)
        for name in delete or ():
            await client.delete(POD, name, "default", grace_period_seconds=0)
        t0 = time.monotonic()
        sem = asyncio.Semaphore(10)

        async def create(i: int) -> None:
            async with sem:
                await client.create(POD, pod(i, probes, exec_probe, http_probe), "default")

        await asyncio.gather(*(create(i) for i in range(n)))
        prefix = "p" if probes else "n"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            items = (await client.list(POD, "default"))["items"]
            ready = [p for p in items if p["metadata"]["name"].startswith(prefix) and any(
                c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or ())]
            gone = not any(p["metadata"]["name"] in (delete or ()) for p in items)
            if len(ready) == n and gone:
                return time.monotonic() - t0
            await asyncio.sleep(1)
        raise RuntimeError("the pods did not all become Ready")


async def probe_trouble(kubeconfig: str) -> dict[str, int]:
    """How the probes fared: failed probes (``Unhealthy`` events, counted with their repeats)
    and container restarts; a machine too busy for its probes shows here (exec timeouts)."""
    async with Client(load_config(kubeconfig), component="bench") as client:
        events = (await client.list(("v1", "Event"), "default"))["items"]
        pods = (await client.list(POD, "default"))["items"]
    failed = sum(int(e.get("count") or 1) for e in events if e.get("reason") == "Unhealthy")
    restarts = sum(int(c.get("restartCount") or 0) for p in pods for c in (p.get("status") or {}).get(
        "containerStatuses") or ())
    return {"failed_probes": failed, "restarts": restarts}


def exec_service(agent: int) -> int:
    """The pid of the agent's exec service (``runtime/execd.py``, the process that starts
    ``runc exec`` for exec probes), 0 when it has none."""
    for tid in os.listdir(f"/proc/{agent}/task"):
        with open(f"/proc/{agent}/task/{tid}/children") as f:
            for child in f.read().split():
                try:
                    with open(f"/proc/{child}/cmdline", "rb") as c:
                        if b"k8py.kubelet.runtime.execd" in c.read():
                            return int(child)
                except OSError:
                    continue
    return 0


def collected(agent_data: Path, pods: int, timeout: float = 300) -> None:
    """Until the node holds only the running pods' sandboxes and containers (the replaced
    pods' have been removed by the container GC)."""
    root = agent_data / "agent" / "containers"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [len(os.listdir(root / d)) if (root / d).is_dir() else 0 for d in ("sandboxes", "containers")]
        if counts == [pods, pods]:
            return
        time.sleep(1)
    raise RuntimeError(f"the replaced pods were not removed within {timeout:g}s: {counts}")


def window(pid: int, seconds: float) -> dict[str, Any]:
    svc = exec_service(pid)
    own0, kids0, sys0 = cpu_times(pid)
    svc0 = cpu_times(svc) if svc else (0.0, 0.0, 0.0)
    th0 = thread_times(pid)
    m0, t0 = machine_busy(), time.monotonic()
    time.sleep(seconds)
    own1, kids1, sys1 = cpu_times(pid)
    svc1 = cpu_times(svc) if svc else (0.0, 0.0, 0.0)
    th1 = thread_times(pid)
    m1, t1 = machine_busy(), time.monotonic()
    dt = t1 - t0
    return {"seconds": round(dt, 1),
            "agent_cpu_percent_of_a_core": round(100 * (own1 - own0) / dt, 2),
            "of_which_in_the_kernel": round(100 * (sys1 - sys0) / dt, 2),
            "agent_children_cpu_percent_of_a_core": round(100 * (kids1 - kids0) / dt, 2),
            # the runtime's exec service: its own CPU (starting and reaping runc exec) and that
            # of the runc exec processes it waited for
            "exec_service_cpu_percent_of_a_core": round(100 * (svc1[0] - svc0[0]) / dt, 2),
            "exec_service_children_cpu_percent_of_a_core": round(100 * (svc1[1] - svc0[1]) / dt, 2),
            "exec_service_rss_mib": round(rss_kib(svc) / 1024, 1) if svc else 0,
            "machine_busy_percent_of_a_core": round(100 * (m1 - m0) / dt, 1),
            "agent_rss_mib": round(rss_kib(pid) / 1024, 1),
            "busiest_threads_percent": dict(sorted(((k, round(100 * (v - th0.get(k, 0.0)) / dt, 2))
                                                    for k, v in th1.items()), key=lambda kv: -kv[1])[:3])}


def machine_yardstick() -> dict[str, float]:
    """What this machine's CPU does in a fixed task, so that figures of different machines
    (sessions get different ones) can be compared: ms of CPU for a pure-Python loop, and us
    of CPU (most of it the kernel's) for a loopback TCP connection opened, written to and
    closed. The best of five rounds each."""
    def loop() -> float:
        t = time.process_time()
        s = 0
        for i in range(1_000_000):
            s += i
        return (time.process_time() - t) * 1000

    def tcp(n: int = 300) -> float:
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        t = time.process_time()
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", port))
            a, _ = srv.accept()
            c.sendall(b"x")
            a.recv(1)
            c.close()
            a.close()
        srv.close()
        return (time.process_time() - t) * 1e6 / n

    return {"python_loop_ms": round(min(loop() for _ in range(5)), 1),
            "loopback_tcp_connection_us": round(min(tcp() for _ in range(5)), 1)}


def py_spy(pid: int, output: str) -> None:
    """Where the agent's time goes: 30 s of py-spy samples (collapsed stacks) into ``output``."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    subprocess.run([exe, "record", "--nonblocking", "--format", "raw", "--duration", "30", "--rate", "200",
                    "--pid", str(pid), "--output", output], check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def run(args: argparse.Namespace) -> dict[str, Any]:
    kinds = [*(() if args.no_http else ("httpGet readiness",)), *(() if args.no_exec else ("exec liveness",))]
    out: dict[str, Any] = {"pods": args.pods, "probes_per_pod": " + ".join(kinds) + ", every 1 s",
                           "machine": machine_yardstick()}
    tmp = Path(tempfile.mkdtemp(prefix="k8py-bench-probes-"))
    data, agent_data = tmp / "server", tmp / "agent"
    data.mkdir()
    (agent_data / "agent" / "images").mkdir(parents=True)
    build_busybox_image(agent_data / "agent" / "images", IMAGE)
    port = free_port()
    agent = None
    with node_lock():
        with open(tmp / "server.log", "wb") as log:
            server = k8py("server", "--data-dir", str(data), "--https-listen-port", str(port), "--bind-address",
                          "127.0.0.1", "--disable-agent", stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port)
            token = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "--join", "-d", str(data)],
                                   capture_output=True, text=True, check=True).stdout.strip()
            with open(tmp / "agent.log", "wb") as log:
                agent = k8py("agent", "--server", f"https://127.0.0.1:{port}", "--token", token, "--node-name", NODE,
                             "--data-dir", str(agent_data), "--node-ip", "127.0.0.1",
                             "--kubelet-port", str(free_port()),
                             # the replaced pods' containers and sandboxes are removed by the GC
                             # before the measurement, not in the middle of it
                             "--container-gc-period", "5s", stdout=log, stderr=subprocess.STDOUT)
            kubeconfig = str(data / "kubeconfig.yaml")
            asyncio.run(run_pods(kubeconfig, args.pods, probes=False))
            time.sleep(60)  # statuses and events settle (an agent that has just started 100 pods is busy for a while)
            out["without_probes"] = window(agent.pid, args.window)
            if args.py_spy:
                py_spy(agent.pid, args.py_spy + ".idle")  # after the window: sampling costs the agent too
            took = asyncio.run(run_pods(kubeconfig, args.pods, probes=True,
                                        delete=[f"n{i:04d}" for i in range(args.pods)], exec_probe=not args.no_exec,
                                        http_probe=not args.no_http))
            out["seconds_until_all_ready"] = round(took, 1)
            collected(agent_data, args.pods)
            time.sleep(60)
            before = asyncio.run(probe_trouble(kubeconfig))
            out["with_probes"] = window(agent.pid, args.window)
            after = asyncio.run(probe_trouble(kubeconfig))
            out["with_probes"].update({f"{k}_in_window": after[k] - before[k] for k in after})
            if args.py_spy:
                py_spy(agent.pid, args.py_spy)  # after the measurement, as above
                out["py_spy_raw"] = [args.py_spy + ".idle", args.py_spy]
            if args.then:
                # after the measurement: any tool pointed at the agent (perf, strace -c ...)
                subprocess.run(args.then, shell=True, check=False, env={**os.environ, "AGENT_PID": str(agent.pid)})
        finally:
            stop_node(agent_data, agent, server)
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--window", type=float, default=60.0, help="seconds of CPU measurement")
    p.add_argument("--keep", action="store_true", help="keep the data and logs")
    p.add_argument("--no-exec", action="store_true", help="httpGet probes only (no exec liveness probe)")
    p.add_argument("--no-http", action="store_true", help="exec probes only (no httpGet readiness probe)")
    p.add_argument("--then", metavar="COMMAND", help="after the measurement, run this shell command with the "
                   "agent's pid in $AGENT_PID (e.g. 'strace -c -f -p $AGENT_PID' under timeout)")
    p.add_argument("--py-spy", metavar="FILE", help="after each measurement, sample the agent 30 s with py-spy "
                   "into FILE.idle and FILE (collapsed stacks)")
    if os.geteuid() != 0:
        sys.exit("run as root: the node agent makes namespaces, mounts and cgroups")
    print(json.dumps(run(p.parse_args()), indent=2))


if __name__ == "__main__":
    main()
