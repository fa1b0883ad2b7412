"""`kubectl autoscale` against `k8py server`: the controller manager's HPA controller scales the
Deployment through its scale subresource with its own RBAC role and reads PodMetrics through
the aggregation layer from the server's metrics-server, which has none here (the fake node
running the pods has no kubelet API to scrape), and says so as kube does."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.controllers.manager import available

from .conftest import KUBECTL, Server, wait

pytestmark = pytest.mark.skipif(not KUBECTL, reason="kubectl not installed")

NO_METRICS = "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource " \
    "metrics API"


def _condition(h: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in h.get("status", {}).get("conditions") or () if c["type"] == type_), {})


def test_kubectl_autoscale_without_pod_metrics(cluster: Server) -> None:
    ns = "hpa-e2e"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "deployment", "web", "--image=nginx", "-n", ns)
    cluster.kubectl("set", "resources", "deployment", "web", "--requests=cpu=100m", "-n", ns)
    out = cluster.kubectl("autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=50", "-n", ns)
    assert out.stdout.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"
    # the first sync (one period after the HPA appears) brings the Deployment up to minReplicas
    wait(lambda: cluster.kjson("get", "deployment", "web", "-n", ns)["spec"]["replicas"] == 2, timeout=60,
         what="web scaled to minReplicas")

    def failing() -> dict[str, Any] | None:
        h = cluster.kjson("get", "hpa", "web", "-n", ns)
        return h if _condition(h, "ScalingActive").get("reason") == "FailedGetResourceMetric" else None

    h = wait(failing, timeout=60, what="ScalingActive=False with FailedGetResourceMetric")
    assert _condition(h, "ScalingActive")["message"] == f"the HPA was unable to compute the replica count: {NO_METRICS}"
    assert _condition(h, "AbleToScale")["reason"] == "SucceededGetScale"
    assert h["status"]["currentReplicas"] == 2
    row = cluster.kubectl("get", "hpa", "web", "-n", ns, "--no-headers").stdout.split()
    assert row[1:7] == ["Deployment/web", "cpu:", "<unknown>/50%", "2", "5", "2"]
    described = cluster.kubectl("describe", "hpa", "web", "-n", ns).stdout
    assert "New size: 2; reason: Current number of replicas below Spec.MinReplicas" in described
    assert "FailedGetResourceMetric" in described


def test_the_controller_is_named_as_kube_names_it() -> None:
    # `k8py controller-manager --controllers` takes kube's name (and leaving it out turns the HPA off)
    assert available(["horizontalpodautoscaling"]) == ["horizontalpodautoscaling"]
