"""Probes of real containers while their pod terminates, against kubectl: kubelet stops the
liveness and startup probes of a pod being deleted but runs its readiness probes until the
containers are stopped, so a terminating pod's Ready condition, and its endpoint's ``serving``
condition in the Service's EndpointSlice, follow the readiness probe (``ready`` is always false
for a terminating endpoint)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, SHARED_NODE, SharedRealNode, namespace_for

NODE = SHARED_NODE

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "pr")


def _pod(ns: str) -> dict[str, Any]:
    every_second = {"periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 60, "containers": [{
                "name": "web", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                # PID 1 is the shell, which ends on SIGTERM (httpd as PID 1 would not: the
                # container would wait for SIGKILL at the end of the grace period)
                "command": ["sh", "-c", ("mkdir -p /www && touch /www/ready /www/alive; trap 'exit 0' TERM; "
                                         "httpd -f -p 8080 -h /www & wait")],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, **every_second},
                "livenessProbe": {"exec": {"command": ["cat", "/www/alive"]}, **every_second},
                # holds the pod in its termination (and the web server up) until the test has seen
                # what it looks for and creates /www/release (at most 50 s)
                "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", (
                    "i=0; while [ ! -e /www/release ] && [ $i -lt 500 ]; do sleep 0.1; i=$((i+1)); done")]}}}}]}}


def _service(ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}


def _endpoint(s: Server, ns: str) -> dict[str, Any] | None:
    slices = s.kjson("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web")["items"]
    eps = [e for sl in slices for e in sl.get("endpoints") or ()]
    return eps[0] if len(eps) == 1 else None


def _conditions(s: Server, ns: str) -> dict[str, bool] | None:
    e = _endpoint(s, ns)
    return dict(e.get("conditions") or {}) if e is not None else None


def _pod_ready(s: Server, ns: str) -> bool:
    st = s.kjson("get", "pod", "web", "-n", ns).get("status") or {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or ())


def _events(s: Server, ns: str, reason: str) -> list[str]:
    out = s.kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name=web,reason={reason}",
                    "-o", "json")
    return [e["message"] for e in json.loads(out.stdout)["items"]]


def test_a_terminating_pods_readiness_and_serving_follow_its_readiness_probe(cluster: Server, ns: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": [_pod(ns), _service(ns)]}))
    wait(lambda: _conditions(cluster, ns) == {"ready": True, "serving": True, "terminating": False}, 90,
         "the pod Ready and its endpoint ready")
    cluster.kubectl("delete", "pod", "web", "-n", ns, "--wait=false")
    # terminating: never ready, but serving while its readiness probe passes
    wait(lambda: _conditions(cluster, ns) == {"ready": False, "serving": True, "terminating": True}, 30,
         "the terminating endpoint serving")
    assert _pod_ready(cluster, ns)
    # liveness is no longer probed: its failure now restarts nothing and is not even seen
    cluster.kubectl("exec", "-n", ns, "web", "--", "rm", "/www/alive")
    cluster.kubectl("exec", "-n", ns, "web", "--", "rm", "/www/ready")
    wait(lambda: _conditions(cluster, ns) == {"ready": False, "serving": False, "terminating": True}, 30,
         "the terminating endpoint not serving once its readiness probe fails")
    assert not _pod_ready(cluster, ns)
    cluster.kubectl("exec", "-n", ns, "web", "--", "touch", "/www/ready")
    wait(lambda: _conditions(cluster, ns) == {"ready": False, "serving": True, "terminating": True}, 30,
         "serving again while still terminating")
    assert _pod_ready(cluster, ns)
    assert any(m.startswith("Readiness probe failed: HTTP probe failed with statuscode: 404")
               for m in _events(cluster, ns, "Unhealthy"))
    assert not [m for m in _events(cluster, ns, "Unhealthy") if m.startswith("Liveness")]
    cs = cluster.kjson("get", "pod", "web", "-n", ns)["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 0 and "running" in cs["state"]
    cluster.kubectl("exec", "-n", ns, "web", "--", "touch", "/www/release")  # the preStop hook ends
    cluster.kubectl("delete", "pod", "web", "-n", ns, "--grace-period=1", "--wait=false",
                    "--ignore-not-found")  # the hook released, the pod may already be gone
    wait(lambda: cluster.kubectl("get", "pod", "web", "-n", ns, check=False).returncode != 0, 120, "the pod gone")
