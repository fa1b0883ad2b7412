"""Cluster DNS queries per second, measured with Debian's dnsperf (what CoreDNS is measured with).

    python bench/dns.py [--services 1000] [--seconds 10] [--clients 10]

A DNS server (``k8py.dns``, as ``k8py server`` runs it, on uvloop) is started in a child process
on a loopback port with a zone of ``--services`` Services (each with a ClusterIP and a named port)
in 10 namespaces; dnsperf then asks for a mix of cluster names for ``--seconds``: A records of
Services (most), SRV records of named ports, AAAA questions that have no answer (NODATA), and
names that do not exist (NXDOMAIN). Prints dnsperf's figures and the server's CPU time.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SERVER = r"""
import asyncio, os, signal, sys
from k8py.runner import install_uvloop
from k8py.dns.server import DNSServer
from k8py.dns.zone import ClusterZone

n = int(sys.argv[1])
z = ClusterZone("cluster.local")
for i in range(10):
    z.set_namespace(f"ns{i}")
for i in range(n):
    z.set_service({"metadata": {"namespace": f"ns{i % 10}", "name": f"svc{i}"},
                   "spec": {"clusterIP": f"10.43.{i // 250}.{i % 250 + 1}",
                            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})

async def main():
    s = DNSServer(z)
    await s.start([("127.0.0.1", 0)])
    print(s.listening[0][1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    t = os.times()
    print(f"cpu {t.user + t.system:.3f}", flush=True)

install_uvloop()
asyncio.run(main())
"""


def queries(services: int, count: int = 20000) -> str:
    rnd = random.Random(7)
    lines = []
    for _ in range(count):
        i = rnd.randrange(services)
        name = f"svc{i}.ns{i % 10}.svc.cluster.local"
        roll = rnd.random()
        if roll < 0.7:
            lines.append(f"{name} A")
        elif roll < 0.8:
            lines.append(f"_http._tcp.{name} SRV")
        elif roll < 0.9:
            lines.append(f"{name} AAAA")
        else:
            lines.append(f"missing{i}.ns{i % 10}.svc.cluster.local A")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=10)
    args = ap.parse_args()
    if not shutil.which("dnsperf"):
        print("dnsperf is not installed (Debian package dnsperf; scripts/install brings it)", file=sys.stderr)
        return 2
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory() as tmp:
        qfile = os.path.join(tmp, "queries")
        with open(qfile, "w") as f:
            f.write(queries(args.services))
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(args.services)], stdout=subprocess.PIPE,
                                text=True, env=env)
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            t0 = time.monotonic()
            out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-l",
                                  str(args.seconds), "-c", str(args.clients), "-q", "500", "-t", "5"],
                                 check=False, capture_output=True, text=True, timeout=args.seconds + 60)
            wall = time.monotonic() - t0
        finally:
            proc.send_signal(signal.SIGTERM)
            rest, _ = proc.communicate(timeout=30)
        cpu = re.search(r"cpu ([\d.]+)", rest or "")
        keep = [ln for ln in out.stdout.splitlines()
                if re.match(r"\s*(Queries sent|Queries completed|Queries lost|Response codes|Queries per second|"
                            r"Average Latency|Latency StdDev)", ln)]
        print(f"services: {args.services}, clients: {args.clients}, seconds: {args.seconds}")
        print("\n".join(keep) or out.stdout + out.stderr)
        if cpu:
            print(f"DNS server CPU: {float(cpu.group(1)):.2f} s over {wall:.1f} s of dnsperf")
    return 0 if out.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
