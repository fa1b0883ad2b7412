"""Port-forward throughput and latency, on a real pod (runc, CNI) through the API server and the
node agent, with real kubectl and the official Python client.

``k8py server`` with its node agent runs one busybox pod serving a page and a 32 MiB file with
``httpd``. Measured, each path a few times:

- throughput: the 32 MiB file fetched through ``kubectl port-forward`` (kubectl 1.37's default,
  SPDY/3.1 tunnelled in a WebSocket; and its plain SPDY fallback,
  ``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``) and through the Python client's ``portforward``
  (WebSocket ``v4.channel.k8s.io``); MiB/s, the median of the runs;
- latency: small GETs through ``kubectl port-forward``, each on a new local connection (so each
  is a new stream pair and a new connection inside the pod); p50 and p99 in ms;
- the server process's CPU time (API server and agent together) per MiB forwarded.

Run as root: ``.venv/bin/python bench/portforward.py [--runs 3] [--requests 100]``. Prints a JSON
summary. Everything is removed at the end (``k8py killall``). Traffic goes to loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.e2e.conftest import KUBECTL, Server, free_port
from tests.helpers.realnode import IMAGE, real_cluster

NODE = "k8py-bench-pf"
SIZE_MIB = 32
WEB = (f"mkdir -p /www && echo hello > /www/index.html && dd if=/dev/zero of=/www/z bs=1048576 count={SIZE_MIB} "
       "2>/dev/null && exec httpd -f -p 8080 -h /www")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def fetch(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as r:
        return bytes(r.read())


class Forward:
    def __init__(self, s: Server, env: dict[str, str]) -> None:
        e = dict(os.environ)
        e.update({"HOME": str(s.home), "KUBECONFIG": s.kubeconfig, **env})
        assert KUBECTL
        self.port = free_port()
        self.proc = subprocess.Popen([KUBECTL, "port-forward", "pod/web", f"{self.port}:8080"], env=e,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "Forwarding from" not in line:
            raise RuntimeError(f"kubectl port-forward: {line!r}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def kubectl_runs(s: Server, env: dict[str, str], runs: int) -> list[float]:
    pf = Forward(s, env)
    try:
        rates = []
        for _ in range(runs):
            t0 = time.perf_counter()
            body = fetch(pf.port, "/z")
            rates.append(len(body) / 2**20 / (time.perf_counter() - t0))
            assert len(body) == SIZE_MIB * 2**20
        return rates
    finally:
        pf.close()


def python_client_runs(s: Server, runs: int) -> list[float]:
    from kubernetes import client
    from kubernetes.stream import portforward

    api = client.CoreV1Api(s.client())
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        pf: Any = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
        sock = pf.socket(8080)
        sock.settimeout(120)
        sock.sendall(b"GET /z HTTP/1.0\r\n\r\n")
        n = 0
        while chunk := sock.recv(1 << 20):
            n += len(chunk)
        rates.append(SIZE_MIB / (time.perf_counter() - t0))
        assert n > SIZE_MIB * 2**20
        pf.close()
        deadline = time.monotonic() + 10
        while pf.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        pf.websocket.shutdown()
    return rates


def latencies(s: Server, requests: int) -> list[float]:
    pf = Forward(s, {})
    try:
        out = []
        for _ in range(requests):
            t0 = time.perf_counter()
            assert fetch(pf.port, "/index.html") == b"hello\n"
            out.append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        pf.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="k8py-bench-pf-"))
    result: dict[str, Any] = {"size_mib": SIZE_MIB, "runs": args.runs}
    # the test suite's real-node cluster: image, lock, server, node Ready, killall and its checks
    with real_cluster(tmp, NODE) as s:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
               "spec": {"containers": [{"name": "web", "image": IMAGE, "command": ["sh", "-c", WEB],
                                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}
        s.kubectl("apply", "-f", "-", input=json.dumps(pod))
        s.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=120s", timeout=150)
        assert s.proc is not None
        pid = s.proc.pid
        for name, run in (("kubectl_websocket_tunnel", lambda: kubectl_runs(s, {}, args.runs)),
                          ("kubectl_spdy", lambda: kubectl_runs(s, {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"},
                                                                args.runs)),
                          ("python_client_v4", lambda: python_client_runs(s, args.runs))):
            c0 = cpu_seconds(pid)
            rates = run()
            cpu = cpu_seconds(pid) - c0
            result[name] = {"mib_per_s_median": round(statistics.median(rates), 1),
                            "mib_per_s": [round(r, 1) for r in rates],
                            "server_cpu_ms_per_mib": round(cpu * 1000 / (SIZE_MIB * args.runs), 1)}
        lat = sorted(latencies(s, args.requests))
        result["kubectl_small_get_ms"] = {"p50": round(lat[len(lat) // 2], 1),
                                          "p99": round(lat[max(0, int(len(lat) * 0.99) - 1)], 1),
                                          "requests": len(lat)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
