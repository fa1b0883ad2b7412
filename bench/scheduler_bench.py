"""Scheduling throughput, in the manner of Kubernetes' scheduler_perf.

For each case: start an API server, register N hollow nodes, schedule M pods (placed, not
measured), then create K more pods and measure until all K are bound:

- pods/s: K divided by the time from the first measured create to the last binding, plus the
  per-second samples scheduler_perf reports (average, p50, p90, p99);
- time per scheduling attempt: the synchronous cycle (filter, score, assume) and the whole
  attempt (first pop to binding acknowledged), p50/p90/p99.

Cases (scheduler_perf's names): SchedulingBasic (pod-default: 100m cpu, 500Mi), TopologySpreading
(nodes in zones moon-1..3, measured pods spread with maxSkew 5 per zone, DoNotSchedule) and
SchedulingPodAntiAffinity (required anti-affinity per hostname: one such pod per node).

Processes, so the two cores are used as a deployment would use them: the API server (memory
store, plain HTTP, uvloop) in one subprocess, the hollow nodes in another (nodes registered
through the API, Leases renewed every ``--lease-interval`` seconds, bound pods reported Running
unless ``--no-report-pods``: scheduler_perf itself runs no kubelets), the pod creator in a third,
and the scheduler in this one. ``--server inprocess`` runs all of it in this process (one core).

Also reported: CPU milliseconds per measured pod in each process (from /proc), which moves far
less than wall time when other work shares the machine, and the load average at the end.

Anti-affinity pods name their own namespaces in the term (scheduler_perf's template names
namespaces the pods are not in, so there its terms match nothing); here every pod needs a node
of its own, so at most ``nodes - placed`` pods are measured.

    python bench/scheduler_bench.py                 # issue sizes: 5,000 nodes, 1,000 + 10,000 pods
    python bench/scheduler_bench.py --quick         # 500 nodes, 500 + 2,000 pods
    python bench/scheduler_bench.py --cases basic --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

POD = ("v1", "Pod")
NAMESPACE = ("v1", "Namespace")

# kube's scheduler_perf templates (config/templates/*.yaml), as dicts.
CONTAINER = {"image": "registry.k8s.io/pause:3.10", "name": "pause", "ports": [{"containerPort": 80}],
             "resources": {"limits": {"cpu": "100m", "memory": "500Mi"},
                           "requests": {"cpu": "100m", "memory": "500Mi"}}}


def pod_default(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [CONTAINER]}}


def pod_spread(name: str) -> dict[str, Any]:
    p = pod_default(name)
    p["metadata"]["labels"] = {"color": "blue"}
    p["spec"]["topologySpreadConstraints"] = [{
        "maxSkew": 5, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"color": "blue"}}}]
    return p


def pod_anti(name: str) -> dict[str, Any]:
    p = pod_default(name)
    p["metadata"]["labels"] = {"color": "green"}
    p["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {"color": "green"}}, "topologyKey": "kubernetes.io/hostname",
        "namespaces": ["sched-0", "sched-1"]}]}}
    return p


TEMPLATES = {pod_default: "default", pod_spread: "spread", pod_anti: "anti"}


@dataclass
class Case:
    name: str
    nodes: int
    init_pods: int
    measure_pods: int
    init_template: Any
    measure_template: Any
    zones: tuple[str, ...] = ()
    init_ns: str = "default"
    measure_ns: str = "default"


def cases(quick: bool, nodes: int | None, init: int | None, measure: int | None) -> dict[str, Case]:
    n = nodes or (500 if quick else 5000)
    i = init if init is not None else (500 if quick else 1000)
    m = measure or (2000 if quick else 10000)
    anti_i = init if init is not None else (100 if quick else 1000)
    anti_m = measure or (400 if quick else 1000)
    return {
        "basic": Case("SchedulingBasic", n, i, m, pod_default, pod_default),
        "spread": Case("TopologySpreading", n, i, m, pod_default, pod_spread, ("moon-1", "moon-2", "moon-3")),
        "anti": Case("SchedulingPodAntiAffinity", n, anti_i, min(anti_m, max(n - anti_i, 0)), pod_anti, pod_anti,
                     init_ns="sched-0", measure_ns="sched-1"),
    }


@dataclass
class Result:
    case: str
    nodes: int
    init_pods: int
    measured_pods: int
    seconds: float
    pods_per_second: float
    samples: dict[str, float] = field(default_factory=dict)
    cycle_ms: dict[str, float] = field(default_factory=dict)
    attempt_ms: dict[str, float] = field(default_factory=dict)
    setup_seconds: float = 0.0
    load_average: float = 0.0  # 1-minute load average at the end: other work on the machine
    rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_ms_per_pod: dict[str, float] = field(default_factory=dict)
    unschedulable: int = 0
    errors: int = 0


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds a process has used so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# --------------------------------------------------------------------------- helper processes


async def serve_memory(port: int) -> None:
    """``--serve-memory PORT``: the API server on the memory store, plain HTTP, until killed."""
    from aiohttp import web

    from k8py.apiserver import server as srv
    from k8py.config import ServerConfig
    from k8py.storage.memory import MemoryStore

    store = MemoryStore()
    await store.start()
    cp = srv.build(ServerConfig(), store)
    await cp.bootstrap()
    cp.http.ready = True
    runner = web.AppRunner(cp.http.build(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print("READY", flush=True)
    await asyncio.Event().wait()


async def serve_hollow(url: str, count: int, zones: str, report: bool, lease_interval: float) -> None:
    from k8py.client import Client, ClientConfig
    from k8py.kubelet.hollow import HollowNodes, node_specs

    specs = node_specs(count, prefix="node-", cpu="4", memory="32Gi", pods=110,
                       zones=[z for z in zones.split(",") if z])
    async with Client(ClientConfig(server=url), component="hollow-nodes", timeout=600) as client:
        nodes = HollowNodes(client, specs, lease_interval=lease_interval, lease_duration=int(lease_interval * 4),
                            status_interval=0, report_pods=report, concurrency=64)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)  # stop() cleans up
        await nodes.start()
        print("READY", flush=True)
        try:
            await stop.wait()
        finally:
            await nodes.stop()


async def serve_creator(url: str, template: str, ns: str, prefix: str, count: int, concurrency: int) -> None:
    """``--serve-creator``: create the pods (from its own process, as scheduler_perf's pod
    creator runs beside the scheduler), printing START with the wall time of the first create."""
    from k8py.client import Client, ClientConfig

    tmpl = {"default": pod_default, "spread": pod_spread, "anti": pod_anti}[template]
    async with Client(ClientConfig(server=url), component="bench-creator", timeout=600) as client:
        await client.get(NAMESPACE, "default")  # connect (and warm up) before the clock starts
        print(f"START {time.time()}", flush=True)
        await create_pods(client, tmpl, ns, prefix, count, concurrency)
    print(f"DONE {time.process_time()}", flush=True)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], stdout=subprocess.PIPE,
                            text=True)


async def _wait_ready(proc: subprocess.Popen[str], what: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), timeout)  # type: ignore[union-attr]
    if line.strip() != "READY":
        raise RuntimeError(f"{what} did not start (exit code {proc.poll()})")


def _stop(proc: subprocess.Popen[str] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- one case


async def create_pods(client: Any, template: Any, ns: str, prefix: str, count: int, concurrency: int) -> None:
    it = iter(range(count))

    async def worker() -> None:
        for i in it:
            for attempt in range(5):
                try:
                    await client.create(POD, template(f"{prefix}-{i}"), ns)
                    break
                except Exception:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_case(case: Case, args: argparse.Namespace) -> Result:
    from k8py.client import Client, ClientConfig
    from k8py.kubelet.hollow import HollowNodes, node_specs
    from k8py.scheduler import Scheduler

    t_setup = time.perf_counter()
    server = hollow = None
    local_server = None
    if args.server == "subprocess":
        from k8py.apiserver.server import free_port
        port = free_port()
        server = _spawn("--serve-memory", str(port))
        await _wait_ready(server, "the API server", 60)
        url = f"http://127.0.0.1:{port}"
    else:
        from aiohttp import web

        from k8py.apiserver import server as srv
        from k8py.config import ServerConfig
        from k8py.storage.memory import MemoryStore

        store = MemoryStore()
        await store.start()
        cp = srv.build(ServerConfig(), store)
        await cp.bootstrap()
        cp.http.ready = True
        runner = web.AppRunner(cp.http.build(), handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        local_server = (runner, store)
    client = Client(ClientConfig(server=url), component="bench", timeout=600)
    sched_client = Client(ClientConfig(server=url), component="kube-scheduler", timeout=600)
    local_hollow = None
    stop = asyncio.Event()
    sched_task = None
    try:
        for ns in {case.init_ns, case.measure_ns} - {"default"}:
            await client.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        if args.server == "subprocess":
            hollow = _spawn("--serve-hollow", url, str(case.nodes), ",".join(case.zones),
                            "1" if args.report_pods else "0", str(args.lease_interval))
            await _wait_ready(hollow, "the hollow nodes", 600)
        else:
            specs = node_specs(case.nodes, prefix="node-", cpu="4", memory="32Gi", pods=110, zones=case.zones)
            local_hollow = HollowNodes(Client(ClientConfig(server=url), component="hollow"), specs,
                                       lease_interval=args.lease_interval, status_interval=0,
                                       report_pods=args.report_pods, concurrency=64)
            await local_hollow.start()
        sched = Scheduler(sched_client, leader_elect=False, seed=1)
        sched_task = asyncio.create_task(sched.run(stop))
        await asyncio.wait_for(sched.ready.wait(), 300)
        await asyncio.wait_for(_wait_nodes(sched, case.nodes), 120)
        if args.server == "subprocess":
            init = _spawn("--serve-creator", url, TEMPLATES[case.init_template], case.init_ns, "init",
                          str(case.init_pods), str(args.concurrency))
            await asyncio.get_running_loop().run_in_executor(None, init.wait)
        else:
            await create_pods(client, case.init_template, case.init_ns, "init", case.init_pods, args.concurrency)
        await asyncio.wait_for(_wait_scheduled(sched, case.init_pods), 600)
        gc.collect()
        gc.freeze()  # why: the placed cluster is long-lived; keep the collector from rescanning it
        setup = time.perf_counter() - t_setup
        m = sched.metrics
        cycles_before = len(m.cycle_seconds)
        attempts_before = len(m.attempt_seconds)
        base = m.scheduled
        samples: list[float] = []
        procs = {"scheduler+creator": os.getpid()}
        if server is not None:
            procs["apiserver"] = server.pid
        if hollow is not None:
            procs["hollow-nodes"] = hollow.pid
        cpu0 = {k: cpu_seconds(pid) for k, pid in procs.items()}
        creator_proc = None
        if args.server == "subprocess":
            creator_proc = _spawn("--serve-creator", url, TEMPLATES[case.measure_template], case.measure_ns,
                                  "measure", str(case.measure_pods), str(args.concurrency))
            line = await asyncio.get_running_loop().run_in_executor(None, creator_proc.stdout.readline)  # type: ignore[union-attr]
            t0 = time.perf_counter() - (time.time() - float(line.split()[1]))
            creator = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(
                None, creator_proc.stdout.read))  # type: ignore[union-attr]
        else:
            t0 = time.perf_counter()
            creator = asyncio.create_task(create_pods(client, case.measure_template, case.measure_ns, "measure",
                                                      case.measure_pods, args.concurrency))
        last = base
        next_sample = t0 + 1.0
        while m.scheduled - base < case.measure_pods:
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            if now >= next_sample:
                samples.append(m.scheduled - last)
                last = m.scheduled
                next_sample += 1.0
            if creator.done() and creator.exception() is not None:
                raise creator.exception()  # type: ignore[misc]
            if now - t0 > args.timeout:
                raise TimeoutError(f"{case.name}: only {m.scheduled - base}/{case.measure_pods} pods bound "
                                   f"after {args.timeout}s")
        elapsed = time.perf_counter() - t0
        cpu = {k: round((cpu_seconds(pid) - cpu0[k]) * 1000 / case.measure_pods, 3) for k, pid in procs.items()}
        rss = {k: rss_mb(pid) for k, pid in procs.items()}
        out = await creator
        if creator_proc is not None:
            creator_proc.wait()
            if creator_proc.returncode or not str(out).startswith("DONE"):
                raise RuntimeError(f"the pod creator failed (exit code {creator_proc.returncode})")
            cpu["pod-creator"] = round(float(str(out).split()[1]) * 1000 / case.measure_pods, 3)
        cycles = m.cycle_seconds[cycles_before:]
        attempts = m.attempt_seconds[attempts_before:]
        return Result(
            case.name, case.nodes, case.init_pods, case.measure_pods, round(elapsed, 3),
            round(case.measure_pods / elapsed, 1),
            samples={"average": round(statistics.mean(samples), 1) if samples else 0.0,
                     "p50": pct(samples, 0.5), "p90": pct(samples, 0.9), "p99": pct(samples, 0.99)},
            cycle_ms={k: round(pct(cycles, q) * 1000, 3) for k, q in (("p50", .5), ("p90", .9), ("p99", .99))}
            | {"mean": round(statistics.mean(cycles) * 1000, 3) if cycles else 0.0},
            attempt_ms={k: round(pct(attempts, q) * 1000, 1) for k, q in (("p50", .5), ("p90", .9), ("p99", .99))},
            setup_seconds=round(setup, 1), load_average=round(os.getloadavg()[0], 2), rss_mb=rss, cpu_ms_per_pod=cpu, unschedulable=m.unschedulable, errors=m.errors)
    finally:
        stop.set()
        if sched_task is not None:
            await asyncio.gather(sched_task, return_exceptions=True)
        if local_hollow is not None:
            await local_hollow.stop()
            await local_hollow.client.close()
        await client.close()
        await sched_client.close()
        _stop(hollow)
        _stop(server)
        if local_server is not None:
            await local_server[0].cleanup()
            await local_server[1].close()


async def _wait_nodes(sched: Any, n: int) -> None:
    while sched.cache is None or sched.cache.node_count < n:
        await asyncio.sleep(0.1)


async def _wait_scheduled(sched: Any, n: int) -> None:
    while sched.metrics.scheduled < n:
        await asyncio.sleep(0.1)


def table(results: list[Result]) -> str:
    floors = {"SchedulingBasic": "270", "TopologySpreading": "85", "SchedulingPodAntiAffinity": "—"}
    lines = [("| case | nodes | placed + measured | pods/s | per-second samples avg / p50 / p90 "
             "| cycle p50 / p99 ms | attempt p50 / p99 ms | CPU ms per pod: scheduler / API server / hollow "
             "| load avg | kube floor |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r.cpu_ms_per_pod
        cpu = " / ".join(str(c.get(k, "—")) for k in ("scheduler+creator", "apiserver", "hollow-nodes"))
        lines.append(f"| {r.case} | {r.nodes:,} | {r.init_pods:,} + {r.measured_pods:,} | **{r.pods_per_second}** "
                     f"| {r.samples.get('average')} / {r.samples.get('p50')} / {r.samples.get('p90')} "
                     f"| {r.cycle_ms.get('p50')} / {r.cycle_ms.get('p99')} "
                     f"| {r.attempt_ms.get('p50')} / {r.attempt_ms.get('p99')} | {cpu} | {r.load_average} "
                     f"| {floors.get(r.case, '—')} |")
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> int:
    all_cases = cases(args.quick, args.nodes, args.init_pods, args.measure_pods)
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    results = []
    for name in wanted:
        case = all_cases[name]
        print(f"== {case.name}: {case.nodes} nodes, {case.init_pods} placed, {case.measure_pods} measured "
              f"(server: {args.server}, hollow nodes report pods: {args.report_pods})", flush=True)
        r = await run_case(case, args)
        print(json.dumps(asdict(r)), flush=True)
        results.append(r)
    print()
    print(table(results))
    if args.json:
        doc = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPUs, Python "
               f"{platform.python_version()}", "server": args.server, "report_pods": args.report_pods,
               "lease_interval": args.lease_interval, "results": [asdict(r) for r in results]}
        with open(args.json, "w", encoding="utf-8") as f:  # noqa: ASYNC230 -- once, at the end
            json.dump(doc, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (500 nodes) for a smoke run")
    ap.add_argument("--cases", default="basic,spread,anti", help="basic, spread, anti (comma-separated)")
    ap.add_argument("--nodes", type=int, help="hollow nodes (default 5000, --quick 500)")
    ap.add_argument("--init-pods", type=int, help="pods placed before measuring")
    ap.add_argument("--measure-pods", type=int, help="pods measured")
    ap.add_argument("--server", choices=("subprocess", "inprocess"), default="subprocess",
                    help="API server in its own process (default) or in this one")
    ap.add_argument("--report-pods", action=argparse.BooleanOptionalAction, default=True,
                    help="hollow nodes report bound pods Running/Ready (default: yes)")
    ap.add_argument("--lease-interval", type=float, default=60.0,
                    help="hollow node lease renewal period in seconds (default 60)")
    ap.add_argument("--concurrency", type=int, default=16, help="concurrent pod creates (default 16)")
    ap.add_argument("--timeout", type=float, default=900.0, help="give up on a case after this many seconds")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--serve-memory", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--serve-hollow", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--serve-creator", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    import logging
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.serve_memory:
        asyncio.run(serve_memory(args.serve_memory))
        return 0
    if args.serve_hollow:
        url, count, zones, report, lease = args.serve_hollow
        asyncio.run(serve_hollow(url, int(count), zones, report == "1", float(lease)))
        return 0
    if args.serve_creator:
        url, tmpl, ns, prefix, count, conc = args.serve_creator
        asyncio.run(serve_creator(url, tmpl, ns, prefix, int(count), int(conc)))
        return 0
    gc.set_threshold(50_000, 20, 20)  # fewer, cheaper collections (the scheduler allocates a lot)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
