"""HorizontalPodAutoscaler on a real node: a Deployment whose pods burn CPU is scaled up from the
PodMetrics of the server's metrics-server (scraping the node agent, through the aggregation
layer), as ``kubectl autoscale`` asks. Each pod is limited to a tenth of a core (the machine is
shared); traffic stays on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.conftest import Server, wait
from tests.helpers.realnode import IMAGE, SharedRealNode, namespace_for

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode) -> Iterator[Server]:
    # the real node the e2e modules share: metrics-server's shortest resolution (10 s), so the two
    # points a rate needs come sooner, and the HPA synced every 2 s (kube's default: 15 s), so it
    # acts as soon as they are there (real_cluster's flags)
    with shared_real_node.module() as s:
        yield s


def test_cpu_burning_deployment_scales_up(cluster: Server, request: pytest.FixtureRequest) -> None:
    ns = namespace_for(cluster, request, "hpa")
    container: dict[str, Any] = {"name": "burn", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                 "command": ["sh", "-c", "while :; do :; done"],
                                 "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "100m"}}}
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "burn"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burn"}},
                 "template": {"metadata": {"labels": {"app": "burn"}},
                              "spec": {"terminationGracePeriodSeconds": 0, "containers": [container]}}}}))
    cluster.kubectl("rollout", "status", "deployment/burn", "-n", ns, "--timeout=120s", timeout=150)
    out = cluster.kubectl("autoscale", "deployment", "burn", "--min=1", "--max=3", "--cpu-percent=50", "-n", ns)
    assert out.stdout.strip() == "horizontalpodautoscaler.autoscaling/burn autoscaled"

    # ~100m used of 50m requested (about 200 %) against 50 %: 1 -> 3 (max(2 x 1, 4), capped at maxReplicas)
    def scaled() -> dict[str, Any] | None:
        h = cluster.kjson("get", "hpa", "burn", "-n", ns)
        return h if h.get("status", {}).get("desiredReplicas") == 3 else None

    h = wait(scaled, timeout=240, what="the HPA to ask for 3 replicas")
    current = h["status"]["currentMetrics"][0]["resource"]["current"]
    assert current["averageUtilization"] > 100, h["status"]
    active = next(c for c in h["status"]["conditions"] if c["type"] == "ScalingActive")
    assert (active["status"], active["reason"]) == ("True", "ValidMetricFound")
    wait(lambda: cluster.kjson("get", "deployment", "burn", "-n", ns)["spec"]["replicas"] == 3, timeout=30,
         what="the Deployment at 3 replicas")
    row = cluster.kubectl("get", "hpa", "burn", "-n", ns, "--no-headers").stdout.split()
    # NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE; TARGETS is "cpu: 197%/50%"
    assert row[1:3] == ["Deployment/burn", "cpu:"] and row[3].endswith("%/50%") and row[4:6] == ["1", "3"], row
    events = cluster.kjson("get", "events", "-n", ns, "--field-selector", "involvedObject.name=burn,"
                           "involvedObject.kind=HorizontalPodAutoscaler")["items"]
    assert any(e["reason"] == "SuccessfulRescale" and e["message"] ==
               "New size: 3; reason: cpu resource utilization (percentage of request) above target"
               and e["source"]["component"] == "horizontal-pod-autoscaler" for e in events), events
    cluster.kubectl("delete", "hpa", "burn", "-n", ns)
    cluster.kubectl("delete", "deployment", "burn", "-n", ns, "--wait=false")
