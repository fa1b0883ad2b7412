"""The HorizontalPodAutoscaler controller against a k8py API server (in process, memory store),
with the ReplicaSet and Deployment controllers and a fake node running the pods.

The PodMetrics come from :class:`FakeMetrics`, a stand-in for ``metrics.k8s.io`` injected
through the controller's ``MetricsClient`` seam (no metrics-server runs here); the tests of
what an HPA says when no metrics API is served use the real REST metrics client.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.client.events import EventSink
from k8py.client.informer import SharedInformerFactory
from k8py.controllers.base import ControllerContext
from k8py.controllers.horizontal import HorizontalController
from k8py.controllers.horizontalcalc import PodMetric

Obj = dict[str, Any]
NS = "default"
HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")
DEPLOYMENT = ("apps/v1", "Deployment")
POD = ("v1", "Pod")
EVENT = ("v1", "Event")
KUBECTL = shutil.which("kubectl")
FAST = {"hpa_sync_period": 0.3, "hpa_downscale_stabilization": 1.0}


class FakeMetrics:
    """``metrics.k8s.io`` for the pods the API has: each running pod uses ``cpu`` millicores.
    ``asked`` counts the calls (one per sync of an HPA with a Resource metric)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.cpu = 0
        self.memory = 0  # bytes
        self.asked = 0

    async def resource_metric(self, resource: str, namespace: str, selector: str,
                              container: str) -> tuple[dict[str, PodMetric], float]:
        self.asked += 1
        pods = (await self.client.list(POD, namespace, label_selector=selector))["items"]
        now = time.time()
        # a 1 s window: a pod Ready for a second has a whole sample (the cpu initialization rule)
        value = self.cpu if resource == "cpu" else self.memory * 1000
        return {p["metadata"]["name"]: PodMetric(value, now, 1.0) for p in pods
                if p.get("status", {}).get("phase") == "Running"}, now

    async def raw_metric(self, *a: Any) -> tuple[dict[str, PodMetric], float]:
        raise NotImplementedError

    async def object_metric(self, *a: Any) -> tuple[int, float]:
        raise NotImplementedError

    async def external_metric(self, *a: Any) -> tuple[list[int], float]:
        raise NotImplementedError


@asynccontextmanager
async def hpa_cluster(metrics: bool = True, **options: Any) -> AsyncIterator[tuple[InProcessCluster, FakeMetrics]]:
    """The cluster, a fake node, and the HPA controller (fake metrics unless ``metrics`` is False)."""
    async with InProcessCluster(controllers=["replicaset", "deployment", "statefulset", "replicationcontroller"]) as c:
        await c.add_node()
        client = Client(ClientConfig(server=c.url), component="kube-controller-manager")
        factory = SharedInformerFactory(client)
        sink = EventSink(client, "controller-manager")
        sink.start()
        ctx = ControllerContext(client, factory, recorder=sink, options={**FAST, **options})
        fake = FakeMetrics(client)
        hpa = HorizontalController(ctx, metrics=fake if metrics else None)
        factory.start()
        stop = asyncio.Event()
        task = asyncio.create_task(hpa.controller.run(stop))
        try:
            yield c, fake
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await factory.shutdown()
            await sink.stop()
            await client.close()


def deployment(name: str, replicas: int = 1, cpu: str = "100m") -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "app", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]}}}}


def hpa(name: str, target: Obj, min_replicas: int = 1, max_replicas: int = 5,
        metrics: list[Obj] | None = None, behavior: Obj | None = None) -> Obj:
    spec: Obj = {"scaleTargetRef": target, "minReplicas": min_replicas, "maxReplicas": max_replicas,
                 "metrics": metrics or [cpu_metric(50)]}
    if behavior is not None:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": spec}


def cpu_metric(percent: int) -> Obj:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                       "averageUtilization": percent}}}


def ref(name: str, kind: str = "Deployment", api_version: str = "apps/v1") -> Obj:
    return {"apiVersion": api_version, "kind": kind, "name": name}


def condition(h: Obj, type_: str) -> Obj:
    return next((c for c in h.get("status", {}).get("conditions") or () if c["type"] == type_), {})


async def get_hpa(c: InProcessCluster, name: str) -> Obj:
    return await c.client.get(HPA, name, NS)


async def events(c: InProcessCluster, name: str) -> list[tuple[str, str, str]]:
    items = (await c.client.list(EVENT, NS))["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items
            if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == "HorizontalPodAutoscaler"]


async def replicas_of(c: InProcessCluster, name: str) -> int:
    return int((await c.client.get(DEPLOYMENT, name, NS))["spec"]["replicas"])


async def running(c: InProcessCluster, app: str, n: int) -> bool:
    pods = (await c.client.list(POD, NS, label_selector=f"app={app}"))["items"]
    return sum(1 for p in pods if p.get("status", {}).get("phase") == "Running" and
               not p["metadata"].get("deletionTimestamp")) == n


async def kubectl(c: InProcessCluster, tmp: Path, *args: str) -> str:
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--server", c.url, "-n", NS, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp)})
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def hpa_row(table: str, name: str) -> list[str]:
    for line in table.splitlines():
        if line.split() and line.split()[0] == name:
            # NAME REFERENCE TARGETS(cpu: 90%/50%) MINPODS MAXPODS REPLICAS AGE
            return line.split()
    raise AssertionError(f"no row for {name} in:\n{table}")


@pytest.mark.skipif(not KUBECTL, reason="kubectl not installed")
async def test_kubectl_autoscale_scales_up_to_max_and_back_down(tmp_path: Path) -> None:
    async with hpa_cluster() as (c, metrics):
        await c.client.create(DEPLOYMENT, deployment("web"), NS)
        await c.until(lambda: running(c, "web", 1), what="web's pod running")
        metrics.cpu = 90  # 90 % of the 100m request against 50 %
        out = await kubectl(c, tmp_path, "autoscale", "deployment", "web", "--min=1", "--max=5", "--cpu-percent=50")
        assert out.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"

        async def at(n: int) -> bool:
            return await replicas_of(c, "web") == n and await running(c, "web", n)

        # 1 -> 2 -> 4 -> 5 (ceil(1.8 x current), capped by maxReplicas)
        await c.until(lambda: at(2), timeout=30, what="web scaled to 2")
        await c.until(lambda: at(5), timeout=30, what="web scaled to 5")

        async def settled(targets: str, n: int) -> bool:
            row = hpa_row(await kubectl(c, tmp_path, "get", "hpa"), "web")
            return row[1:7] == ["Deployment/web", "cpu:", targets, "1", "5", str(n)]

        await c.until(lambda: settled("90%/50%", 5), timeout=20, what="kubectl get hpa: cpu: 90%/50%, 5 replicas")
        h = await get_hpa(c, "web")
        assert h["status"]["currentReplicas"] == h["status"]["desiredReplicas"] == 5
        assert h["status"]["currentMetrics"] == [{"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageUtilization": 90, "averageValue": "90m"}}}]
        assert h["status"]["lastScaleTime"]
        assert condition(h, "ScalingActive")["reason"] == "ValidMetricFound"
        assert condition(h, "ScalingActive")["message"] == \
            "the HPA was able to successfully calculate a replica count from cpu resource utilization " \
            "(percentage of request)"
        assert condition(h, "ScalingLimited") == {**condition(h, "ScalingLimited"), "status": "True",
                                                  "reason": "TooManyReplicas"}
        evs = await events(c, "web")
        assert ("Normal", "SuccessfulRescale",
                "New size: 2; reason: cpu resource utilization (percentage of request) above target") in evs

        metrics.cpu = 10  # 10 %: one pod is enough, once the 1 s downscale window has passed
        await c.until(lambda: at(1), timeout=30, what="web scaled down to 1")
        await c.until(lambda: settled("10%/50%", 1), timeout=20, what="kubectl get hpa: cpu: 10%/50%, 1 replica")
        assert ("Normal", "SuccessfulRescale", "New size: 1; reason: All metrics below target") in \
            await events(c, "web")


async def test_no_metrics_api_conditions_and_events() -> None:
    async with hpa_cluster(metrics=False) as (c, _):
        await c.client.create(DEPLOYMENT, deployment("web"), NS)
        await c.client.create(HPA, hpa("cpu", ref("web")), NS)
        await c.client.create(DEPLOYMENT, deployment("queue"), NS)
        pods_metric = {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
                                                "target": {"type": "AverageValue", "averageValue": "10"}}}
        await c.client.create(HPA, hpa("custom", ref("queue"), metrics=[pods_metric]), NS)

        async def failing(name: str, reason: str) -> Obj | None:
            h = await get_hpa(c, name)
            return h if condition(h, "ScalingActive").get("reason") == reason else None

        h = await c.until(lambda: failing("cpu", "FailedGetResourceMetric"), what="cpu HPA failing")
        msg = ("failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from "
               "resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)")
        assert condition(h, "ScalingActive") == {**condition(h, "ScalingActive"), "status": "False",
                                                 "message": f"the HPA was unable to compute the replica count: {msg}"}
        assert condition(h, "AbleToScale")["reason"] == "SucceededGetScale"
        assert h["status"]["currentReplicas"] == 1 and h["status"]["desiredReplicas"] == 0
        evs = await c.until(lambda: _has(c, "cpu", "FailedComputeMetricsReplicas"), what="events")
        assert ("Warning", "FailedGetResourceMetric", msg) in evs
        assert ("Warning", "FailedComputeMetricsReplicas",
                f"invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {msg}"
                ) in evs

        h = await c.until(lambda: failing("custom", "FailedGetPodsMetric"), what="pods-metric HPA failing")
        assert condition(h, "ScalingActive")["message"] == (
            "the HPA was unable to compute the replica count: unable to get metric requests_per_second: unable to "
            "fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered")
        assert await replicas_of(c, "web") == 1  # nothing was scaled

        external = {"type": "External", "external": {
            "metric": {"name": "queue", "selector": {"matchLabels": {"q": "jobs"}}},
            "target": {"type": "AverageValue", "averageValue": "30"}}}
        await c.client.create(DEPLOYMENT, deployment("jobs"), NS)
        await c.client.create(HPA, hpa("ext", ref("jobs"), metrics=[external]), NS)
        h = await c.until(lambda: failing("ext", "FailedGetExternalMetric"), what="external-metric HPA failing")
        assert condition(h, "ScalingActive")["message"] == (
            "the HPA was unable to compute the replica count: unable to get external metric default/queue/"
            "&LabelSelector{MatchLabels:map[string]string{q: jobs,},MatchExpressions:[]LabelSelectorRequirement{},}: "
            "unable to fetch metrics from external metrics API: the server could not find the requested resource "
            "(get queue.external.metrics.k8s.io)")


async def _has(c: InProcessCluster, name: str, reason: str) -> list[tuple[str, str, str]] | None:
    evs = await events(c, name)
    return evs if any(e[1] == reason for e in evs) else None


async def test_scale_targets_and_limits() -> None:
    async with hpa_cluster() as (c, metrics):
        metrics.cpu = 50  # at target: only the bounds move anything
        # a StatefulSet through its scale subresource, brought up to minReplicas
        sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
               "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
                            {"name": "db", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}}}
        await c.client.create(("apps/v1", "StatefulSet"), sts, NS)
        await c.client.create(HPA, hpa("db", ref("db", "StatefulSet"), min_replicas=3), NS)
        # a Deployment above maxReplicas, brought down to it
        await c.client.create(DEPLOYMENT, deployment("big", replicas=4), NS)
        await c.client.create(HPA, hpa("big", ref("big"), max_replicas=2), NS)
        # a ReplicationController (the core group: apiVersion v1), down to maxReplicas
        rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
              "spec": {"replicas": 3, "selector": {"app": "legacy"},
                       "template": deployment("legacy")["spec"]["template"]}}
        await c.client.create(("v1", "ReplicationController"), rc, NS)
        await c.client.create(HPA, hpa("legacy", ref("legacy", "ReplicationController", "v1"), max_replicas=1), NS)
        # scaled to zero by hand: autoscaling is off
        await c.client.create(DEPLOYMENT, deployment("off", replicas=0), NS)
        await c.client.create(HPA, hpa("off", ref("off")), NS)
        # a Deployment that is not there
        await c.client.create(HPA, hpa("ghost", ref("ghost")), NS)
        # a kind that does not exist
        await c.client.create(HPA, hpa("nokind", ref("x", "Widget")), NS)

        async def scaled(kind: tuple[str, str], name: str, n: int) -> bool:
            return int((await c.client.get(kind, name, NS))["spec"]["replicas"]) == n

        await c.until(lambda: scaled(("apps/v1", "StatefulSet"), "db", 3), what="the StatefulSet scaled to 3")
        await c.until(lambda: scaled(DEPLOYMENT, "big", 2), what="big scaled down to 2")
        await c.until(lambda: scaled(("v1", "ReplicationController"), "legacy", 1), what="the RC scaled to 1")
        await c.until(lambda: _has(c, "db", "SuccessfulRescale"), what="db rescale event")
        assert ("Normal", "SuccessfulRescale", "New size: 3; reason: Current number of replicas below Spec.MinReplicas"
                ) in await events(c, "db")
        assert ("Normal", "SuccessfulRescale", "New size: 2; reason: Current number of replicas above Spec.MaxReplicas"
                ) in await events(c, "big")

        async def cond(name: str, type_: str, reason: str) -> Obj | None:
            h = await get_hpa(c, name)
            return h if condition(h, type_).get("reason") == reason else None

        h = await c.until(lambda: cond("off", "ScalingActive", "ScalingDisabled"), what="off disabled")
        assert condition(h, "ScalingActive")["message"] == \
            "scaling is disabled since the replica count of the target is zero"
        assert await replicas_of(c, "off") == 0
        h = await c.until(lambda: cond("nokind", "AbleToScale", "FailedGetScale"), what="nokind FailedGetScale")
        assert condition(h, "AbleToScale")["message"] == \
            'the HPA controller was unable to get the target\'s current scale: no matches for kind "Widget" in ' \
            'group "apps"'
        h = await c.until(lambda: cond("ghost", "AbleToScale", "FailedGetScale"), what="ghost FailedGetScale")
        assert condition(h, "AbleToScale")["message"] == \
            'the HPA controller was unable to get the target\'s current scale: deployments.apps "ghost" not found'
        assert ("Warning", "FailedGetScale", 'deployments.apps "ghost" not found') in await events(c, "ghost")
        h = await c.until(lambda: cond("db", "ScalingActive", "ValidMetricFound"), what="db settled")
        assert h["status"]["currentReplicas"] == 3


async def test_behavior_policy_and_ambiguous_selector() -> None:
    async with hpa_cluster() as (c, metrics):
        await c.client.create(DEPLOYMENT, deployment("web"), NS)
        await c.until(lambda: running(c, "web", 1), what="web's pod running")
        metrics.cpu = 500  # 500 %: wants 10 pods at once
        one_per_minute = {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
        await c.client.create(HPA, hpa("web", ref("web"), max_replicas=10, behavior=one_per_minute), NS)
        await c.until(lambda: _has(c, "web", "SuccessfulRescale"), what="the first rescale")
        h = await get_hpa(c, "web")
        assert condition(h, "ScalingLimited") == {**condition(h, "ScalingLimited"), "status": "True",
                                                  "reason": "ScaleUpLimit", "message":
                                                  "the desired replica count is increasing faster than the maximum "
                                                  "scale rate"}
        # several more syncs (0.3 s apart) within the policy's minute: no second step
        seen = metrics.asked
        await c.until(lambda: metrics.asked >= seen + 4, what="four more syncs")
        assert await replicas_of(c, "web") == 2

        # a second HPA over the same pods: both are ambiguous and scale nothing
        await c.client.create(HPA, hpa("web2", ref("web")), NS)

        async def ambiguous(name: str) -> Obj | None:
            h = await get_hpa(c, name)
            return h if condition(h, "ScalingActive").get("reason") == "AmbiguousSelector" else None

        h = await c.until(lambda: ambiguous("web2"), what="web2 ambiguous")
        assert condition(h, "ScalingActive")["message"] == \
            "pods by selector app=web are controlled by multiple HPAs: [default/web default/web2]"
        await c.client.delete(HPA, "web2", NS)


def test_label_selector_as_go_prints_it() -> None:
    from k8py.controllers.horizontal import go_label_selector

    assert go_label_selector(None) == "nil"
    sel: Mapping[str, Any] = {"matchLabels": {"queue": "worker", "a": "b"},
                              "matchExpressions": [{"key": "k", "operator": "In", "values": ["x", "y"]}]}
    assert go_label_selector(sel) == (
        "&LabelSelector{MatchLabels:map[string]string{a: b,queue: worker,},MatchExpressions:[]"
        "LabelSelectorRequirement{LabelSelectorRequirement{Key:k,Operator:In,Values:[x y],},},}")


def test_controller_manager_flags() -> None:
    from k8py.cli.controllermanager import hpa_options
    from k8py.cli.main import build_parser
    from k8py.controllers.base import ControllerOptions

    args = build_parser().parse_args(["controller-manager", "--horizontal-pod-autoscaler-sync-period=30s",
                                      "--horizontal-pod-autoscaler-downscale-stabilization=1m0s",
                                      "--horizontal-pod-autoscaler-tolerance=0.05"])
    o = ControllerOptions.of(hpa_options(args))
    assert (o.hpa_sync_period, o.hpa_downscale_stabilization, o.hpa_tolerance) == (30.0, 60.0, 0.05)
    assert (o.hpa_cpu_initialization_period, o.hpa_initial_readiness_delay) == (300.0, 30.0)  # kube's defaults
    with pytest.raises(SystemExit):
        build_parser().parse_args(["controller-manager", "--horizontal-pod-autoscaler-sync-period=soon"])


async def test_autoscaling_v1_hpa() -> None:
    async with hpa_cluster() as (c, metrics):
        await c.client.create(DEPLOYMENT, deployment("web"), NS)
        await c.until(lambda: running(c, "web", 1), what="web's pod running")
        metrics.cpu = 80  # 80 % against 40 %: 2 replicas
        v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
              "spec": {"scaleTargetRef": ref("web"), "maxReplicas": 4, "targetCPUUtilizationPercentage": 40}}
        await c.client.create(("autoscaling/v1", "HorizontalPodAutoscaler"), v1, NS)
        async def two() -> bool:
            return await replicas_of(c, "web") == 2

        await c.until(two, what="web scaled to 2")

        async def v1_status() -> Obj | None:
            h = await c.client.get(("autoscaling/v1", "HorizontalPodAutoscaler"), "web", NS)
            st = h.get("status") or {}
            return h if st.get("currentReplicas") == 2 and st.get("currentCPUUtilizationPercentage") == 80 else None

        h = await c.until(v1_status, what="the v1 view of the status")
        assert h["status"]["desiredReplicas"] == 2 and h["status"]["lastScaleTime"]


def test_condition_transition_time_moves_only_with_its_status() -> None:
    from k8py.controllers.horizontal import set_condition

    st: Obj = {}
    set_condition(st, "AbleToScale", "True", "SucceededGetScale", "a", 1_700_000_000)
    set_condition(st, "AbleToScale", "True", "ReadyForNewScale", "b", 1_700_000_100)
    assert st["conditions"] == [{"type": "AbleToScale", "lastTransitionTime": "2023-11-14T22:13:20Z",
                                 "status": "True", "reason": "ReadyForNewScale", "message": "b"}]
    set_condition(st, "AbleToScale", "False", "FailedGetScale", "c", 1_700_000_200)
    assert st["conditions"][0]["lastTransitionTime"] == "2023-11-14T22:16:40Z"
    set_condition(st, "ScalingActive", "True", "ValidMetricFound", "d", 1_700_000_200)
    assert [c["type"] for c in st["conditions"]] == ["AbleToScale", "ScalingActive"]


async def test_memory_average_value_and_container_cpu() -> None:
    async with hpa_cluster() as (c, metrics):
        d = deployment("mem")
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "64Mi"
        await c.client.create(DEPLOYMENT, d, NS)
        await c.until(lambda: running(c, "mem", 1), what="mem's pod running")
        metrics.cpu, metrics.memory = 25, 48 * 1024 * 1024  # cpu at half its target; memory 1.5 x its target
        mem = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                             "averageValue": "32Mi"}}}
        cpu = {"type": "ContainerResource", "containerResource": {
            "name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 50}}}
        await c.client.create(HPA, hpa("mem", ref("mem"), metrics=[mem, cpu]), NS)
        await c.until(lambda: _has(c, "mem", "SuccessfulRescale"), what="the rescale")
        assert ("Normal", "SuccessfulRescale", "New size: 2; reason: memory resource above target") in \
            await events(c, "mem")

        async def both() -> Obj | None:
            # a pod Ready for less than a metric window has no cpu sample yet (kube's cpu initialization rule)
            h = await get_hpa(c, "mem")
            return h if all(m["type"] for m in h["status"].get("currentMetrics") or [{"type": ""}]) else None

        h = await c.until(both, what="both metrics in the status")
        assert h["status"]["currentMetrics"] == [
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "50331648"}}},
            {"type": "ContainerResource", "containerResource": {
                "name": "cpu", "container": "app", "current": {"averageUtilization": 25, "averageValue": "25m"}}}]


def test_tolerances_of_an_hpa() -> None:
    from k8py.client.fake import FakeClient
    from k8py.controllers.horizontalcalc import Tolerances

    fake = FakeClient()
    hc = HorizontalController(ControllerContext(fake, SharedInformerFactory(fake), options={"hpa_tolerance": 0.2}),
                              metrics=FakeMetrics(fake))
    assert hc._tolerances({}) == Tolerances(0.2, 0.2)  # the flag's
    assert hc._tolerances({"behavior": {"scaleUp": {"tolerance": "50m"}, "scaleDown": {"tolerance": "0"}}}) == \
        Tolerances(0.0, 0.05)
