"""Churn benchmark: the SQLite store's size on disk under sustained ConfigMap updates.

A fixed set of ConfigMaps is updated over and over at a target rate (default 1,000 writes/s
for 180 s); every few seconds the bench records the database file and its WAL, the store's
revision and compacted revision, and the write latency of the last interval, then prints a
table. Without compaction between its 5-minute ticks the file grows by the whole history
(every update keeps the old and the new value); with compaction by revision count it stays
flat. Write latency per interval shows whether compaction ever stalls writers.

Modes:
  (default)  a real `k8py server` on loopback (TLS, admin client certificate), updated with
             PUTs by concurrent clients; `--compaction-interval` / `--compaction-retention`
             are passed to it when given
  --store    the SQLite store alone, opened like the server opens it (storage.factory),
             with the same pacing; `--no-auto-compaction` gives the old behaviour (only a
             full compaction every --compaction-interval seconds) for comparison

Usage:  python bench/churn_bench.py [--store] [--rate 1000] [--seconds 180] [--keys 1000]
        python bench/churn_bench.py --quick          20 s smoke run
        python bench/churn_bench.py --json out.json
All traffic goes to 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_bench import Cluster, free_port, pct, rss_mb


@dataclass
class Sample:
    t: float
    writes: int
    rate: float  # writes/s over the interval
    db_mb: float
    wal_mb: float
    revision: int = 0
    compacted: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    rss_mb: float = 0.0


@dataclass
class Run:
    mode: str
    rate: int
    seconds: float
    keys: int
    value_bytes: int
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0


def file_mb(path: str) -> float:
    try:
        return os.path.getsize(path) / 1e6
    except OSError:
        return 0.0


def configmap(i: int, n: int, size: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"churn-{i:05}", "namespace": "default"},
            "data": {"n": str(n), "payload": ("x" * size)}}


class Pacer:
    """Hands out write numbers on a fixed schedule (write k is due at start + k / rate); a
    caller that is late gets the next number at once, so the bench catches up after a stall
    instead of silently lowering the rate."""

    def __init__(self, rate: int, seconds: float) -> None:
        self.rate = rate
        self.total = int(rate * seconds)
        self.next = 0
        self.start = time.monotonic()

    async def take(self) -> int | None:
        k = self.next
        if k >= self.total:
            return None
        self.next += 1
        delay = self.start + k / self.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return k


class Recorder:
    def __init__(self) -> None:
        self.lat: list[float] = []
        self.writes = 0
        self.errors = 0

    def take(self) -> tuple[int, list[float]]:
        lat, self.lat = self.lat, []
        return self.writes, lat


async def sample_loop(run: Run, rec: Recorder, db: str, every: float, pacer: Pacer,
                      revisions: Any, pid: int | None) -> None:
    last_t, last_w = 0.0, 0
    while True:
        await asyncio.sleep(every)
        t = time.monotonic() - pacer.start
        writes, lat = rec.take()
        rev, compacted = await revisions()
        s = Sample(round(t, 1), writes, round((writes - last_w) / max(t - last_t, 1e-9)),
                   round(file_mb(db), 1), round(file_mb(db + "-wal"), 1), rev, compacted,
                   round(pct(lat, 0.5) * 1e3, 1), round(pct(lat, 0.99) * 1e3, 1),
                   round(max(lat, default=0) * 1e3, 1), round(rss_mb(pid or os.getpid()), 1))
        run.samples.append(s)
        compacted = f" compacted {s.compacted:,}" if s.compacted >= 0 else ""
        print(f"{s.t:7.1f}s {s.writes:9,} writes {s.rate:6,}/s  db {s.db_mb:7.1f} MB  wal {s.wal_mb:6.1f} MB"
              f"  rev {s.revision:,}{compacted}  p99 {s.p99_ms} ms max {s.max_ms} ms", flush=True)
        last_t, last_w = t, writes
        if pacer.next >= pacer.total and writes >= pacer.total - rec.errors:
            return


async def churn_store(args: argparse.Namespace, tmp: Path) -> Run:
    from k8py.storage.factory import open_store

    db = str(tmp / "state.db")
    opts: dict[str, Any] = {}
    if args.compaction_interval:
        opts["compaction_interval"] = args.compaction_interval
    if args.compaction_retention is not None:
        opts["compaction_retention"] = args.compaction_retention
    if args.no_auto_compaction:
        opts["compaction_retention"] = None
    store = open_store("", db, **opts)
    await store.start()
    mode = "store (no auto compaction)" if args.no_auto_compaction else "store"
    run = Run(mode, args.rate, args.seconds, args.keys, args.value_bytes)
    value = lambda n: json.dumps(configmap(0, n, args.value_bytes)).encode()
    revs = {f"/registry/configmaps/default/churn-{i:05}": await store.create(
        f"/registry/configmaps/default/churn-{i:05}", value(0)) for i in range(args.keys)}
    keys = list(revs)
    pacer, rec = Pacer(args.rate, args.seconds), Recorder()
    old_compactor: asyncio.Task[None] | None = None
    if args.no_auto_compaction:
        # What the server did before: compact everything but the retention every interval.
        interval = args.compaction_interval or 300.0
        keep = args.compaction_retention if args.compaction_retention is not None else 1000

        async def tick() -> None:
            while True:
                await asyncio.sleep(interval)
                t = time.monotonic()
                target = await store.current_revision() - keep
                await store.compact(target)
                print(f"full compaction to {target:,} took {time.monotonic() - t:.1f}s", flush=True)

        old_compactor = asyncio.create_task(tick())

    async def worker() -> None:
        while (k := await pacer.take()) is not None:
            key = keys[k % len(keys)]
            t = time.perf_counter()
            try:
                revs[key] = await store.update(key, value(k), revs[key])
            except Exception:  # noqa: BLE001 - counted, reported
                rec.errors += 1
                continue
            rec.lat.append(time.perf_counter() - t)
            rec.writes += 1

    async def revisions() -> tuple[int, int]:
        return await store.current_revision(), await store.compacted_revision()

    # One worker per key at most: each key's updates are sequential (compare-and-swap).
    workers = [asyncio.create_task(worker()) for _ in range(min(args.clients, len(keys)))]
    await sample_loop(run, rec, db, args.every, pacer, revisions, None)
    await asyncio.gather(*workers)
    if old_compactor is not None:
        old_compactor.cancel()
    run.errors = rec.errors
    await store.close()
    return run


async def churn_api(args: argparse.Namespace, tmp: Path) -> Run:
    import aiohttp

    extra: list[str] = []
    if args.compaction_interval:
        extra += ["--compaction-interval", f"{args.compaction_interval:g}s"]
    if args.compaction_retention is not None:
        extra += ["--compaction-retention", str(args.compaction_retention)]
    cluster = ChurnCluster(tmp, extra)
    run = Run("api", args.rate, args.seconds, args.keys, args.value_bytes)
    try:
        cluster.wait_ready()
        ctx = cluster.ssl_context()
        base = f"https://127.0.0.1:{cluster.port}/api/v1/namespaces/default/configmaps"
        db = str(cluster.data / "db" / "state.db")
        conn = aiohttp.TCPConnector(ssl=ctx, limit=args.clients + 4)
        async with aiohttp.ClientSession(connector=conn) as http:
            async def put(i: int, n: int) -> None:
                async with http.put(f"{base}/churn-{i:05}", json=configmap(i, n, args.value_bytes)) as r:
                    if r.status != 200:
                        raise RuntimeError(f"PUT churn-{i:05}: {r.status} {await r.text()}")
                    await r.read()

            for start in range(0, args.keys, 100):
                async def create(i: int) -> None:
                    async with http.post(base, json=configmap(i, 0, args.value_bytes)) as r:
                        if r.status not in (201, 409):
                            raise RuntimeError(f"create: {r.status} {await r.text()}")
                await asyncio.gather(*(create(i) for i in range(start, min(start + 100, args.keys))))
            pacer, rec = Pacer(args.rate, args.seconds), Recorder()

            async def worker() -> None:
                while (k := await pacer.take()) is not None:
                    t = time.perf_counter()
                    try:
                        await put(k % args.keys, k)
                    except Exception as e:  # noqa: BLE001 - counted, reported
                        rec.errors += 1
                        if rec.errors <= 3:
                            print(f"error: {e}", flush=True)
                        continue
                    rec.lat.append(time.perf_counter() - t)
                    rec.writes += 1

            async def revisions() -> tuple[int, int]:
                async with http.get(f"{base}?limit=1") as r:
                    rv = int((await r.json())["metadata"]["resourceVersion"])
                return rv, -1  # the API does not expose the compacted revision

            workers = [asyncio.create_task(worker()) for _ in range(args.clients)]
            await sample_loop(run, rec, db, args.every, pacer, revisions, cluster.proc.pid)
            await asyncio.gather(*workers)
            run.errors = rec.errors
    finally:
        cluster.stop()
    return run


class ChurnCluster(Cluster):
    """api_bench's server, with extra `k8py server` flags."""

    def __init__(self, tmp: Path, extra: list[str]) -> None:
        import subprocess

        self.tmp = tmp
        self.port = free_port()
        self.data = tmp / "data"
        args = [sys.executable, "-m", "k8py.cli", "server", "--data-dir", str(self.data), "--https-listen-port",
                str(self.port), "--bind-address", "127.0.0.1", "--disable-agent",
                "--disable-controller-manager", "--disable-scheduler", *extra]
        self.log = open(tmp / "server.log", "wb")  # noqa: SIM115 - open while the server runs
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)


def table(run: Run) -> str:
    rows = ["| t (s) | writes | writes/s | db (MB) | WAL (MB) | db + WAL (MB) | write p99 / max (ms) |",
            "|---|---|---|---|---|---|---|"]
    for s in run.samples:
        rows.append(f"| {s.t:.0f} | {s.writes:,} | {s.rate:,} | {s.db_mb} | {s.wal_mb} | "
                    f"**{s.db_mb + s.wal_mb:.1f}** | {s.p99_ms} / {s.max_ms} |")
    peak = max((s.db_mb + s.wal_mb for s in run.samples), default=0)
    total = run.samples[-1].writes if run.samples else 0
    rows.append("")
    rows.append(f"{run.mode}: {total:,} updates of {run.keys:,} ConfigMaps ({run.value_bytes} B payload) at "
                f"{run.rate:,}/s target; peak db + WAL {peak:.1f} MB; {run.errors} errors")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", action="store_true", help="the SQLite store alone, no API server")
    ap.add_argument("--rate", type=int, default=1000, help="target writes/s (default 1000)")
    ap.add_argument("--seconds", type=float, default=180.0, help="how long to write (default 180)")
    ap.add_argument("--keys", type=int, default=1000, help="ConfigMaps updated in turn (default 1000)")
    ap.add_argument("--value-bytes", type=int, default=1000, help="payload per ConfigMap (default 1000)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent writers (default 32)")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples (default 10)")
    ap.add_argument("--compaction-interval", type=float, default=0.0, help="seconds (default: the server's)")
    ap.add_argument("--compaction-retention", type=int, default=None, help="revisions (default: the server's)")
    ap.add_argument("--no-auto-compaction", action="store_true",
                    help="--store only: compact only every interval, as before (for comparison)")
    ap.add_argument("--quick", action="store_true", help="20 s, samples every 2 s")
    ap.add_argument("--json", help="write the samples here")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.every = 20.0, 2.0
    if args.no_auto_compaction and not args.store:
        ap.error("--no-auto-compaction needs --store")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    tmp = Path(tempfile.mkdtemp(prefix="k8py-churn-"))
    try:
        run = asyncio.run(churn_store(args, tmp) if args.store else churn_api(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(run))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(asdict(run), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
