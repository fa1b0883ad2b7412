"""What a gRPC probe costs the node agent: the memory of loading its HTTP/2 client (``h2``, loaded
only when a pod has a gRPC probe) with the first probe, and the time of one probe
(``grpc.health.v1.Health/Check`` on a new plaintext HTTP/2 connection, as kubelet makes it)
against grpcio's health server on loopback.

Run: ``.venv/bin/python bench/grpc_probe.py [--probes 300]`` (needs the test extras: grpcio,
grpcio-health-checking). Prints a JSON summary. The server runs in threads of the same process,
so the CPU figure is the client's and the server's together; the wall time is the probe's."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from concurrent import futures


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 // 1024


async def main(probes: int) -> dict[str, float]:
    import aiohttp  # noqa: F401 - the agent has it loaded already: only what the probe adds counts
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.start()
    try:
        before = _rss_kib()
        from k8py.kubelet import grpcprobe

        ok, out = await grpcprobe.check("127.0.0.1", port, "", 1, "kube-probe/1.37")
        assert ok, out
        loaded = _rss_kib()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(probes):
            ok, out = await grpcprobe.check("127.0.0.1", port, "", 1, "kube-probe/1.37")
            assert ok, out
        t1, c1 = time.perf_counter(), time.process_time()
    finally:
        server.stop(None)
    return {"rss_added_kib": loaded - before, "probes": probes, "wall_ms_per_probe": round((t1 - t0) / probes * 1000, 2),
            "cpu_ms_per_probe_with_server": round((c1 - c0) / probes * 1000, 2)}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--probes", type=int, default=300)
    print(json.dumps(asyncio.run(main(p.parse_args().probes)), indent=2))
