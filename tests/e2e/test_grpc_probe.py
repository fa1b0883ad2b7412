"""gRPC probes with real containers: a gRPC health server (grpcio's) runs in the test on
loopback, and ``hostNetwork: true`` pods of a real node (whose address is 127.0.0.1) are probed
against it by the agent with ``grpc.health.v1.Health/Check``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, SHARED_NODE, SharedRealNode, namespace_for

grpc = pytest.importorskip("grpc")
health = pytest.importorskip("grpc_health.v1.health")
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")

NODE = SHARED_NODE
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        yield s


@pytest.fixture(scope="module")
def health_server() -> Iterator[tuple[int, Any]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(None)


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "g")


def probed_pod(name: str, port: int, *, readiness: str | None = None, liveness: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                         "command": ["sh", "-c", "sleep 3600"]}
    if readiness is not None:
        c["readinessProbe"] = {"grpc": {"port": port, "service": readiness}, "periodSeconds": 1, "failureThreshold": 1}
    if liveness is not None:
        c["livenessProbe"] = {"grpc": {"port": port, "service": liveness}, "periodSeconds": 1, "failureThreshold": 2}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"hostNetwork": True, "terminationGracePeriodSeconds": 1, "containers": [c]}}


def pod_status(s: Server, name: str, ns: str) -> dict[str, Any]:
    p = s.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
    return dict(json.loads(p.stdout).get("status") or {}) if p.returncode == 0 else {}


def ready(s: Server, name: str, ns: str) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod_status(s, name, ns).get("conditions") or ())


def unhealthy(s: Server, name: str, ns: str) -> list[str]:
    out = s.kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name},reason=Unhealthy",
                    "-o", "json")
    return [e["message"] for e in json.loads(out.stdout)["items"]]


def test_grpc_readiness_follows_the_health_service(cluster: Server, ns: str, health_server: tuple[int, Any]) -> None:
    port, servicer = health_server
    servicer.set("web", SERVING)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(probed_pod("web", port, readiness="web")))
    wait(lambda: ready(cluster, "web", ns), 60, "the pod Ready (gRPC SERVING)")
    servicer.set("web", NOT_SERVING)
    wait(lambda: not ready(cluster, "web", ns), 30, "the pod not Ready (gRPC NOT_SERVING)")
    assert 'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")' in unhealthy(cluster, "web", ns)
    servicer.set("web", SERVING)
    wait(lambda: ready(cluster, "web", ns), 30, "the pod Ready again")


def test_grpc_liveness_failure_restarts_the_container(cluster: Server, ns: str,
                                                      health_server: tuple[int, Any]) -> None:
    port, servicer = health_server
    servicer.set("live", SERVING)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(probed_pod("live", port, liveness="live")))
    wait(lambda: pod_status(cluster, "live", ns).get("phase") == "Running", 60, "the pod running")
    servicer.set("live", NOT_SERVING)

    def restarted() -> bool:
        cs = pod_status(cluster, "live", ns).get("containerStatuses") or [{}]
        return int(cs[0].get("restartCount") or 0) >= 1

    wait(restarted, 60, "the container restarted by its liveness probe")
    servicer.set("live", SERVING)
    assert 'Liveness probe failed: service unhealthy (responded with "NOT_SERVING")' in unhealthy(cluster, "live", ns)


def test_grpc_probe_to_a_closed_port_says_so(cluster: Server, ns: str) -> None:
    # nothing listens on port 1 of loopback: the connection is refused until the timeout
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(probed_pod("closed", 1, readiness="")))
    expected = ('Readiness probe failed: timeout: failed to connect service "127.0.0.1:1" within 1s: '
                "context deadline exceeded")
    wait(lambda: expected in unhealthy(cluster, "closed", ns), 60, "the Unhealthy event")
    assert not ready(cluster, "closed", ns)
