"""Exec round-trip latency on a real container: N sequential ``echo`` execs through the official
Python client's ``kubernetes.stream.stream`` (WebSocket ``v4.channel.k8s.io``: client -> API
server -> the node agent's /exec -> ``runc exec`` in the container, and back with the exit status).

``k8py server`` with its node agent starts on a fresh data directory with the busybox test image
in the airgap folder; one pod runs; then ``--warmup`` execs are made and not counted, and
``--execs`` (default 200) are timed one after the other, each from the call to the decoded
output. Also timed: the same through ``kubectl exec`` (a new process and TLS handshake each,
``--kubectl`` of them), and the agent's side alone (``runc exec`` of the same command,
``--runc`` of them), to show where the time goes.

Run as root: ``.venv/bin/python bench/exec.py [--execs 200]``. Prints a JSON summary. Everything
is removed at the end (``k8py killall``), holding the machine's real-node lock throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

from tests.e2e.conftest import KUBECTL, Server, free_port, wait
from tests.helpers.images import build_busybox_image
from tests.helpers.nodelock import node_lock

IMAGE = "k8py.test/busybox:1.0"
NODE = "k8py-bench-exec"


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p * len(ms)))], 2)

    return {"n": len(ms), "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(ms), 2), "max_ms": round(ms[-1], 2)}


def pod_running(s: Server) -> bool:
    p = s.kubectl("get", "pod", "bench", "-o", "json", check=False)
    return p.returncode == 0 and json.loads(p.stdout).get("status", {}).get("phase") == "Running"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from kubernetes import client
    from kubernetes.stream import stream

    tmp = Path(tempfile.mkdtemp(prefix="k8py-bench-exec-"))
    data = tmp / "data"
    airgap = data / "agent" / "images"
    airgap.mkdir(parents=True)
    build_busybox_image(airgap, IMAGE)
    (tmp / "home").mkdir()
    s = Server(data, free_port(), None, tmp / "server.log", tmp / "home",
               ("--kubelet-port", str(free_port()), "--node-ip", "127.0.0.1", "--node-name", NODE), agent=True)
    out: dict[str, Any] = {}
    with node_lock():
        s.start(60)
        try:
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench"},
                   "spec": {"terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}}
            s.kubectl("apply", "-f", "-", input=json.dumps(pod))
            wait(lambda: pod_running(s), 120, "the pod Running")
            with s.client() as c:
                api = client.CoreV1Api(c)

                def once(i: int) -> float:
                    t0 = time.perf_counter()
                    resp = stream(api.connect_get_namespaced_pod_exec, "bench", "default",
                                  command=["echo", f"hi {i}"], stdout=True, stderr=True, stdin=False, tty=False,
                                  _preload_content=False)
                    resp.run_forever(timeout=30)
                    got = resp.read_stdout()
                    dt = time.perf_counter() - t0
                    resp.close()
                    resp.sock.shutdown()
                    if got != f"hi {i}\n" or resp.returncode != 0:
                        raise RuntimeError(f"exec {i}: {got!r}, exit {resp.returncode}")
                    return dt

                for i in range(args.warmup):
                    once(i)
                out["python_client_stream"] = summary([once(i) for i in range(args.execs)])
            if KUBECTL:
                times = []
                for i in range(args.kubectl):
                    t0 = time.perf_counter()
                    p = s.kubectl("exec", "bench", "--", "echo", str(i))
                    times.append(time.perf_counter() - t0)
                    assert p.stdout == f"{i}\n"
                out["kubectl_exec"] = summary(times)
            cid = _container_id(s)
            runc_root = data / "agent" / "containers" / "runc"
            times = []
            for i in range(args.runc):
                t0 = time.perf_counter()
                subprocess.run(["runc", "--root", str(runc_root), "exec", cid, "echo", str(i)], check=True,
                               capture_output=True)
                times.append(time.perf_counter() - t0)
            out["runc_exec_alone"] = summary(times)
        finally:
            s.stop()
            subprocess.run([sys.executable, "-m", "k8py.cli", "killall", "--data-dir", str(data)],
                           capture_output=True, timeout=120, check=False)
            shutil.rmtree(tmp, ignore_errors=True)
    out["cores"] = os.cpu_count()
    return out


def _container_id(s: Server) -> str:
    p = s.kubectl("get", "pod", "bench", "-o", "jsonpath={.status.containerStatuses[0].containerID}")
    return p.stdout.split("://", 1)[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--execs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--kubectl", type=int, default=30)
    p.add_argument("--runc", type=int, default=50)
    if os.geteuid() != 0:
        sys.exit("run as root: the node agent makes namespaces, mounts and cgroups")
    print(json.dumps(run(p.parse_args()), indent=2))


if __name__ == "__main__":
    main()
