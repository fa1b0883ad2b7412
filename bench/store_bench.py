"""Measure the SQLite store: concurrent creates/s, point-get latency, 10k-key list latency.

usage: python bench/store_bench.py [--uvloop] [--callers N] [--creates N]
"""
import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time

from k8py.storage.sqlite import SQLiteStore


async def main(args):
    d = tempfile.mkdtemp(prefix="k8py-bench-")
    store = SQLiteStore(os.path.join(d, "state.db"))
    await store.start()
    value = b"x" * args.value_size
    n, callers = args.creates, args.callers
    per = n // callers
    async def worker(c):
        for i in range(per):
            await store.create(f"/registry/pods/ns{c % 10}/p{c}-{i:06}", value)
    t = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in range(callers)))
    dt = time.perf_counter() - t
    print(f"creates: {per*callers} by {callers} concurrent callers in {dt:.2f}s = {per*callers/dt:,.0f}/s")
    # sequential (one caller): latency of one acknowledged (fsynced) write
    t = time.perf_counter()
    for i in range(500):
        await store.create(f"/seq/{i}", value)
    print(f"sequential create latency: {(time.perf_counter()-t)/500*1e6:.0f} us")
    # point gets
    keys = [f"/registry/pods/ns{c % 10}/p{c}-{i:06}" for c in range(callers) for i in range(0, per, max(1, per // 50))]
    lat = []
    for _ in range(5):
        for k in keys:
            t = time.perf_counter(); kv = await store.get(k); lat.append(time.perf_counter() - t)
            assert kv is not None
    lat.sort()
    print(f"get latest: median {statistics.median(lat)*1e6:.1f} us, p99 {lat[int(len(lat)*.99)]*1e6:.1f} us ({len(lat)} gets)")
    rev = await store.current_revision()
    lat = []
    for k in keys[:500]:
        t = time.perf_counter(); await store.get(k, rev - 100); lat.append(time.perf_counter() - t)
    print(f"get at past revision: median {statistics.median(lat)*1e6:.1f} us")
    # list 10k
    await asyncio.gather(*(store.create(f"/registry/configmaps/big/c{i:05}", value) for i in range(10000)))
    rev = await store.current_revision()
    for pfx, label in (("/registry/configmaps/big/", "10k"), ("/registry/pods/", "all pods")):
        res = await store.list(pfx)
        times = []
        for _ in range(5):
            t = time.perf_counter(); res = await store.list(pfx); times.append(time.perf_counter() - t)
        print(f"list {label}: {len(res.kvs)} keys, median {statistics.median(times)*1e3:.1f} ms (latest)")
        times = []
        for _ in range(3):
            t = time.perf_counter(); r2 = await store.list(pfx, revision=rev - 100); times.append(time.perf_counter() - t)
        print(f"list {label}: {len(r2.kvs)} keys, median {statistics.median(times)*1e3:.1f} ms (past revision)")
    times = []
    for _ in range(20):
        t = time.perf_counter(); await store.list("/registry/pods/", limit=500); times.append(time.perf_counter() - t)
    print(f"list page of 500: median {statistics.median(times)*1e3:.2f} ms")
    # watch replay throughput
    w = store.watch("/registry/", 1)
    got = 0; t = time.perf_counter()
    while got < per * callers:
        got += len((await w.__anext__()).events)
    print(f"watch replay of {got} events: {time.perf_counter()-t:.2f}s")
    await w.close()
    print("db size MB:", round(sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) / 1e6, 1))
    await store.close()
    shutil.rmtree(d)

p = argparse.ArgumentParser()
p.add_argument("--uvloop", action="store_true")
p.add_argument("--callers", type=int, default=100)
p.add_argument("--creates", type=int, default=20000)
p.add_argument("--value-size", type=int, default=1000)
a = p.parse_args()
if a.uvloop:
    import uvloop

    uvloop.install()
asyncio.run(main(a))
