"""API benchmark: a real `k8py server` process on loopback, driven by concurrent HTTPS clients.

Measures, as issue 2 asks:
  - CREATE throughput and latency (concurrent clients creating ConfigMaps)
  - GET throughput and latency
  - LIST of 10,000 pods (full list, JSON)
  - watch fan-out: time from a write being acknowledged to it reaching each of 100 watchers
  - idle server RSS after start-up, and RSS after the load
and, to show what the API layer costs over its store (issue 3):
  - the store alone: the same number of ConfigMap-sized creates by as many concurrent callers,
    straight through k8py's Store (SQLiteStore on a file of its own, or EtcdStore on the etcd)
  - with --etcd-check-perf LOAD: etcd's own `etcdctl check perf` on the same etcd

Usage:  python bench/api_bench.py [--quick] [--json out.json]
        python bench/api_bench.py --etcd [--etcd-check-perf l]     one etcd member started here
        python bench/api_bench.py --datastore-endpoint http://127.0.0.1:2379   an etcd of yours
All traffic goes to 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

CONCURRENCY = 16  # concurrent clients (kept connections) for CREATE and GET
ETCD = "/usr/bin/etcd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CPU:
    """CPU milliseconds per operation, per process, over one phase of the bench."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def per_op(self, ops: int) -> dict[str, float]:
        return {name: round((cpu_seconds(pid) - self.start[name]) * 1000 / ops, 3) for name, pid in self.pids.items()}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


class Etcd:
    """One etcd member on free loopback ports, its data in ``tmp`` (the same disk as SQLite's in
    this bench: both fsync every acknowledged write), with timely progress notifications."""

    def __init__(self, tmp: Path) -> None:
        if not os.access(ETCD, os.X_OK):
            raise SystemExit(f"{ETCD} not found: install Debian's etcd-server")
        client, peer = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{client}"
        self.log = open(tmp / "etcd.log", "wb")  # noqa: SIM115 - open while etcd runs
        self.proc = subprocess.Popen(
            [ETCD, "--name=bench", f"--data-dir={tmp / 'etcd'}", f"--listen-client-urls={self.endpoint}",
             f"--advertise-client-urls={self.endpoint}", f"--listen-peer-urls=http://127.0.0.1:{peer}",
             f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
             f"--initial-cluster=bench=http://127.0.0.1:{peer}",
             "--experimental-watch-progress-notify-interval=5s", "--logger=zap", "--log-outputs=stderr"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        import urllib.request

        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as r:
                    if json.loads(r.read()).get("health") == "true":
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("etcd did not start; see its log")
            time.sleep(0.05)

    def check_perf(self, load: str) -> dict[str, Any]:
        """etcd's own load test (etcdctl check perf, 60 s), through etcd's Go client."""
        etcdctl = shutil.which("etcdctl")
        if not etcdctl:
            raise SystemExit("etcdctl not found: install Debian's etcd-client")
        p = subprocess.run([etcdctl, f"--endpoints={self.endpoint}", "check", "perf", f"--load={load}",
                            "--prefix=/etcdctl-check-perf/"], check=False, capture_output=True, text=True,
                           timeout=180, env=dict(os.environ, ETCDCTL_API="3"))
        lines = [ln.strip() for ln in p.stdout.splitlines() if ln.strip().startswith(("PASS:", "FAIL:"))]
        for ln in lines:
            print(f"etcdctl check perf --load={load}: {ln}")
        return {"load": load, "result": lines}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def store_alone(tmp: Path, endpoint: str, n: int) -> dict[str, Any]:
    """ConfigMap-sized creates straight through k8py's Store, as concurrent as the API clients."""
    from k8py.storage.factory import open_store

    store = open_store(endpoint, str(tmp / "store-alone" / "state.db"), prefix="/store-alone")
    os.makedirs(tmp / "store-alone", exist_ok=True)
    await store.start()
    value = b"x" * 400  # about a stored ConfigMap of the CREATE test
    try:
        async def create(i: int) -> None:
            await store.create(f"/registry/core/configmaps/bench/cm-{i}", value)

        el, lat = await run_workers(CONCURRENCY, n, create)
        return summary(f"store alone: create ({'etcd' if endpoint else 'SQLite'})", el, lat)
    finally:
        await store.close()


class Cluster:
    def __init__(self, tmp: Path, datastore: str = "", controllers: bool = False,
                 extra: tuple[str, ...] = ()) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.data = tmp / "data"
        args = [sys.executable, "-m", "k8py.cli", "server", "--data-dir", str(self.data), "--https-listen-port",
                str(self.port), "--bind-address", "127.0.0.1", "--disable-agent"]
        if not controllers:
            # The API server alone, as measured before the controllers existed: in-process
            # controllers watch what the bench writes (the garbage collector watches every kind)
            # and take CPU from the same process.
            args += ["--disable-controller-manager", "--disable-scheduler"]
        if datastore:
            args += ["--datastore-endpoint", datastore]
        args += extra
        self.log = open(tmp / "server.log", "wb")  # noqa: SIM115 - open while the server runs
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        import urllib.request

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/readyz", context=ctx, timeout=2):
                    if (self.data / "kubeconfig.yaml").exists():
                        return
            except OSError:  # not up yet
                time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def ssl_context(self) -> ssl.SSLContext:
        kc = yaml.safe_load((self.data / "kubeconfig.yaml").read_text())
        user = kc["users"][0]["user"]
        cluster = kc["clusters"][0]["cluster"]
        d = self.tmp / "certs"
        d.mkdir(exist_ok=True)
        (d / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        (d / "c.crt").write_bytes(base64.b64decode(user["client-certificate-data"]))
        (d / "c.key").write_bytes(base64.b64decode(user["client-key-data"]))
        ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
        ctx.load_cert_chain(str(d / "c.crt"), str(d / "c.key"))
        return ctx

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def run_workers(n_workers: int, total: int, fn: Any) -> tuple[float, list[float]]:
    lat: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            t = time.perf_counter()
            await fn(i)
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(n_workers)))
    return time.perf_counter() - t0, lat


def summary(name: str, elapsed: float, lat: list[float]) -> dict[str, Any]:
    r = {"name": name, "ops": len(lat), "seconds": round(elapsed, 3), "per_second": round(len(lat) / elapsed, 1),
         "p50_ms": round(pct(lat, 0.5) * 1000, 2), "p99_ms": round(pct(lat, 0.99) * 1000, 2)}
    print(f"{name:<28} {r['per_second']:>9}/s  p50 {r['p50_ms']:>7} ms  p99 {r['p99_ms']:>7} ms  ({len(lat)} ops)")
    return r


async def as_user(cluster: Cluster, admin: aiohttp.ClientSession, user: str) -> dict[str, str]:
    """A bearer token for ``user`` (``k8py token create``, no groups) and a Role in the bench
    namespace that lets it do what the bench does: the load then goes through authorization
    proper (RBAC), not the system:masters shortcut the admin certificate takes."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "k8py.cli", "token", "create", "-d",
                                                str(cluster.data), "--user", user, "--groups", "",
                                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, "k8py token create failed"
    token = out.decode().strip()
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/bench"
    r = await admin.post(f"{rbac}/roles", json={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "bench"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps", "pods"],
                   "verbs": ["get", "list", "watch", "create", "patch"]}]})
    assert r.status == 201, await r.text()
    r = await admin.post(f"{rbac}/rolebindings", json={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "bench"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bench"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
    assert r.status == 201, await r.text()
    return {"Authorization": f"Bearer {token}"}


async def bench(cluster: Cluster, quick: bool, etcd_pid: int | None = None, user: str = "",
                resource: str = "configmaps", create_get_only: bool = False) -> dict[str, Any]:
    base = f"https://127.0.0.1:{cluster.port}"
    ctx = cluster.ssl_context()
    results: dict[str, Any] = {"idle_rss_mb": round(rss_mb(cluster.proc.pid), 1)}
    pids = {"server": cluster.proc.pid, **({"etcd": etcd_pid} if etcd_pid else {})}
    print(f"idle server RSS: {results['idle_rss_mb']} MB")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx), base_url=base) as admin:
        await (await admin.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                             "metadata": {"name": "bench"}})).read()
        headers = await as_user(cluster, admin, user) if user else {}
    if user:
        # the CA only: a client certificate would authenticate first and win
        ctx = ssl.create_default_context(cafile=str(cluster.tmp / "certs" / "ca.crt"))
        results["user"] = user
    conn = aiohttp.TCPConnector(ssl=ctx, limit=200)
    async with aiohttp.ClientSession(connector=conn, base_url=base, headers=headers) as s:
        n_create = 2000 if quick else 10000

        async def create(i: int) -> None:
            if resource == "secrets":  # the same 64 bytes of data, as a Secret (encrypted at rest by default)
                body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"cm-{i}"},
                        "data": {"k": base64.b64encode(b"v" * 64).decode()}}
            else:
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"},
                        "data": {"k": "v" * 64}}
            r = await s.post(f"/api/v1/namespaces/bench/{resource}", json=body)
            await r.read()
            assert r.status == 201, r.status

        cpu = CPU(pids)
        el, lat = await run_workers(CONCURRENCY, n_create, create)
        results["create"] = summary(f"CREATE {resource[:-1]}", el, lat)
        results["create"]["cpu_ms_per_op"] = cpu.per_op(n_create)
        print(f"  CPU ms per CREATE: {results['create']['cpu_ms_per_op']}")

        n_get = 5000 if quick else 20000

        async def get(i: int) -> None:
            r = await s.get(f"/api/v1/namespaces/bench/{resource}/cm-{i % n_create}")
            await r.read()
            assert r.status == 200

        cpu = CPU(pids)
        el, lat = await run_workers(CONCURRENCY, n_get, get)
        results["get"] = summary(f"GET {resource[:-1]}", el, lat)
        results["get"]["cpu_ms_per_op"] = cpu.per_op(n_get)
        print(f"  CPU ms per GET: {results['get']['cpu_ms_per_op']}")
        if create_get_only:
            return results

        # 10,000 pods for the LIST
        n_pods = 10000

        async def create_pod(i: int) -> None:
            r = await s.post("/api/v1/namespaces/bench/pods", json={
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{i}", "labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"}}}]}})
            await r.read()
            assert r.status == 201, r.status

        el, lat = await run_workers(CONCURRENCY, n_pods, create_pod)
        results["create_pod"] = summary("CREATE pod", el, lat)
        list_lat: list[float] = []
        for _ in range(3 if quick else 5):
            t = time.perf_counter()
            r = await s.get("/api/v1/namespaces/bench/pods")
            body = await r.read()
            list_lat.append(time.perf_counter() - t)
        n_items = len(json.loads(body)["items"])
        assert n_items == n_pods, n_items
        results["list_10k_pods"] = {"items": n_items, "best_s": round(min(list_lat), 3),
                                    "median_s": round(statistics.median(list_lat), 3),
                                    "bytes": len(body)}
        print(f"LIST {n_items} pods: best {min(list_lat):.3f}s median {statistics.median(list_lat):.3f}s "
              f"({len(body) / 1e6:.1f} MB)")

        # watch fan-out
        n_watchers = 100
        n_writes = 50 if quick else 200
        received: dict[str, list[float]] = {}
        ready = 0
        rv = json.loads(await (await s.get("/api/v1/namespaces/bench/configmaps?limit=1")).read())[
            "metadata"]["resourceVersion"]

        async def watcher(idx: int) -> None:
            nonlocal ready
            r = await s.get(f"/api/v1/namespaces/bench/configmaps?watch=1&resourceVersion={rv}"
                            f"&fieldSelector=metadata.name%3Dfan&timeoutSeconds=120")
            ready += 1
            seen = 0
            async for line in r.content:
                if not line.strip():
                    continue
                ev = json.loads(line)
                key = ev["object"]["metadata"]["resourceVersion"]
                received.setdefault(key, []).append(time.perf_counter())
                seen += 1
                if seen >= n_writes:
                    break
            r.close()

        tasks = [asyncio.create_task(watcher(i)) for i in range(n_watchers)]
        deadline = time.monotonic() + 30
        while ready < n_watchers and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        written: dict[str, float] = {}
        await (await s.post("/api/v1/namespaces/bench/configmaps", json={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fan"}, "data": {"n": "0"}})).read()
        for i in range(1, n_writes):
            t = time.perf_counter()
            r = await s.patch("/api/v1/namespaces/bench/configmaps/fan", data=json.dumps({"data": {"n": str(i)}}),
                              headers={"Content-Type": "application/merge-patch+json"})
            obj = json.loads(await r.read())
            written[obj["metadata"]["resourceVersion"]] = t
            await asyncio.sleep(0.02)
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        delays = [(ts - written[rv_]) for rv_, tss in received.items() if rv_ in written for ts in tss]
        results["watch_fanout"] = {"watchers": n_watchers, "writes": len(written), "deliveries": len(delays),
                                   "p50_ms": round(pct(delays, 0.5) * 1000, 2),
                                   "p99_ms": round(pct(delays, 0.99) * 1000, 2)}
        print(f"watch fan-out to {n_watchers}: p50 {results['watch_fanout']['p50_ms']} ms "
              f"p99 {results['watch_fanout']['p99_ms']} ms ({len(delays)} deliveries)")
    results["loaded_rss_mb"] = round(rss_mb(cluster.proc.pid), 1)
    print(f"server RSS after load: {results['loaded_rss_mb']} MB")
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    ap.add_argument("--json", help="write results as JSON to this file")
    ap.add_argument("--datastore-endpoint", default="", help="pass to k8py server (default: embedded SQLite)")
    ap.add_argument("--as-user", metavar="NAME", default="",
                    help="run the load as this user (a bearer token, a RoleBinding in the bench namespace) "
                         "instead of the admin certificate, so every request is authorized by RBAC")
    ap.add_argument("--with-controllers", action="store_true",
                    help="run the controller manager and scheduler in the server too (k8py server's default)")
    ap.add_argument("--etcd", action="store_true",
                    help=f"start one etcd member ({ETCD}) on loopback for the run, data in the temp dir")
    ap.add_argument("--etcd-check-perf", metavar="LOAD", choices=("s", "m", "l", "xl"),
                    help="with --etcd: also run etcdctl check perf --load=LOAD on it, after the rest (60 s)")
    ap.add_argument("--resource", choices=("configmaps", "secrets"), default="configmaps",
                    help="what CREATE and GET write and read (secrets: encrypted at rest with k8py's default key)")
    ap.add_argument("--no-encryption", action="store_true",
                    help="start the server with an identity-only EncryptionConfiguration (Secrets in the clear)")
    ap.add_argument("--audit", choices=("Metadata", "Request", "RequestResponse"),
                    help="start the server with an audit policy logging every request at this level to a file")
    ap.add_argument("--create-get-only", action="store_true", help="stop after CREATE and GET")
    args = ap.parse_args()
    if args.etcd and args.datastore_endpoint:
        ap.error("--etcd starts its own etcd: drop --datastore-endpoint")
    if args.etcd_check_perf and not args.etcd:
        ap.error("--etcd-check-perf needs --etcd")
    tmp = Path(tempfile.mkdtemp(prefix="k8py-bench-"))
    etcd: Etcd | None = None
    cluster: Cluster | None = None
    try:
        res: dict[str, Any] = {}
        endpoint = args.datastore_endpoint
        if args.etcd:
            etcd = Etcd(tmp)
            endpoint = etcd.endpoint
        res["store_alone"] = asyncio.run(store_alone(tmp, endpoint, 2000 if args.quick else 10000))
        extra: list[str] = []
        if args.no_encryption:
            (tmp / "identity.yaml").write_text(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
                "  - resources: [secrets]\n    providers: [{identity: {}}]\n")
            extra += ["--encryption-provider-config", str(tmp / "identity.yaml")]
        if args.audit:
            (tmp / "audit.yaml").write_text(f"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n"
                                            f"  - level: {args.audit}\n")
            extra += ["--audit-policy-file", str(tmp / "audit.yaml"), "--audit-log-path", str(tmp / "audit.log")]
        cluster = Cluster(tmp, endpoint, args.with_controllers, tuple(extra))
        cluster.wait_ready()
        time.sleep(1.0)  # let start-up garbage settle before reading idle RSS
        res.update(asyncio.run(bench(cluster, args.quick, etcd.proc.pid if etcd is not None else None,
                                     args.as_user, args.resource, args.create_get_only)))
        if args.audit:
            res["audit"] = args.audit
        res["resource"] = args.resource
        res["encryption"] = not args.no_encryption
        if etcd is not None and args.etcd_check_perf:
            # Last: its 60 s of writes leave etcd with a large database that would slow what follows.
            cluster.stop()
            res["etcdctl_check_perf"] = etcd.check_perf(args.etcd_check_perf)
        res["store"] = "etcd" if endpoint.startswith("http") else "sqlite"
        res["controllers"] = args.with_controllers
        res["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "concurrency": CONCURRENCY}
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2))
    finally:
        if cluster is not None:
            cluster.stop()
        if etcd is not None:
            etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
