"""The HPA's replica calculator and behavior (pure), with kube's replica_calculator_test.go and
horizontal_test.go cases as the guide: numbers worked out here by hand."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.api.corev1 import format_epoch
from k8py.controllers import horizontalbehavior as hb
from k8py.controllers.horizontalcalc import (
    MetricError,
    PodMetric,
    Tolerances,
    calculate_requests,
    external_metric_replicas,
    external_per_pod_metric_replicas,
    group_pods,
    object_metric_replicas,
    object_per_pod_metric_replicas,
    plain_metric_replicas,
    resource_replicas,
)

Obj = dict[str, Any]
NOW = 1_700_000_000.0
CPU_INIT, READY_DELAY = 300.0, 30.0
T = Tolerances()


def pod(name: str, *, cpu: str | None = "1", mem: str | None = None, phase: str = "Running", ready: str = "True",
        started: float = NOW - 3600, transition: float = NOW - 3000, deleting: bool = False,
        containers: list[Obj] | None = None, pod_level: Obj | None = None) -> Obj:
    req: Obj = {}
    if cpu is not None:
        req["cpu"] = cpu
    if mem is not None:
        req["memory"] = mem
    spec: Obj = {"containers": containers or [{"name": "app", "resources": {"requests": req}}]}
    if pod_level is not None:
        spec["resources"] = {"requests": pod_level}
    md: Obj = {"name": name, "namespace": "ns"}
    if deleting:
        md["deletionTimestamp"] = format_epoch(NOW)
    status: Obj = {"phase": phase, "startTime": format_epoch(started),
                   "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": format_epoch(transition)}]}
    return {"metadata": md, "spec": spec, "status": status}


def metrics(**values: int) -> dict[str, PodMetric]:
    return {k.replace("_", "-"): PodMetric(v, NOW - 10, 30.0) for k, v in values.items()}


def res(current: int, target: int, pods: list[Obj], m: dict[str, PodMetric], resource: str = "cpu",
        container: str = "", tol: Tolerances = T) -> tuple[int, int, int]:
    return resource_replicas(current, target, resource, tol, pods, m, container, CPU_INIT, READY_DELAY, NOW)


# -- utilization targets ---------------------------------------------------------------------------

def test_scale_up_by_utilization() -> None:
    pods = [pod("p-0"), pod("p-1"), pod("p-2")]
    # 1500m of 3000m requested = 50 %; against 30 %: ceil(50/30 * 3) = 5
    assert res(3, 30, pods, metrics(p_0=300, p_1=500, p_2=700)) == (5, 50, 500)


def test_scale_down_by_utilization() -> None:
    pods = [pod(f"p-{i}") for i in range(5)]
    # 1400m of 5000m = 28 % (truncated) against 50 %: ceil(0.56 * 5) = 3
    assert res(5, 50, pods, metrics(p_0=100, p_1=300, p_2=500, p_3=250, p_4=250)) == (3, 28, 280)


def test_within_tolerance_keeps_the_count() -> None:
    pods = [pod("p-0"), pod("p-1"), pod("p-2")]
    assert res(3, 100, pods, metrics(p_0=1010, p_1=1030, p_2=1020)) == (3, 102, 1020)
    # a tolerance of its own (behavior.scaleUp.tolerance) narrows the band: 2 % over now scales up
    assert res(3, 100, pods, metrics(p_0=1010, p_1=1030, p_2=1020), tol=Tolerances(0.1, 0.01))[0] == 4


def never_ready(name: str) -> Obj:
    return pod(name, ready="False", started=NOW - 3600, transition=NOW - 3600 + 5)


def test_unready_pods_count_as_zero_on_scale_up() -> None:
    pods = [never_ready("p-0"), pod("p-1"), pod("p-2")]
    # ready pods: 1200m of 2000m = 60 %, ratio 2; with the unready pod at 0: 1200/3000 = 40 % -> ceil(1.333*3) = 4
    assert res(3, 30, pods, metrics(p_0=300, p_1=500, p_2=700)) == (4, 60, 600)


def test_unready_pods_are_left_out_of_a_scale_down() -> None:
    pods = [never_ready("p-0"), pod("p-1"), pod("p-2")]
    # only the ready pods: 200m of 2000m = 10 % against 50 %: ceil(0.2 * 2) = 1
    assert res(3, 50, pods, metrics(p_0=900, p_1=100, p_2=100)) == (1, 10, 100)


def test_pending_failed_and_deleted_pods() -> None:
    pods = [pod("p-0", phase="Pending"), pod("p-1", phase="Failed"), pod("p-2", deleting=True), pod("p-3"),
            pod("p-4")]
    # the pending pod is unready (0 on a scale-up), the others ignored: 1800/2000 = 90 % of 50 % -> with the
    # pending pod at 0: 1800/3000 = 60 % -> ceil(1.2 * 3) = 4
    assert res(3, 50, pods, metrics(p_1=5000, p_2=5000, p_3=900, p_4=900)) == (4, 90, 900)
    # 4 is fewer than 5: counting fewer pods must not turn a scale-up into a scale-down
    assert res(5, 50, pods, metrics(p_1=5000, p_2=5000, p_3=900, p_4=900)) == (5, 90, 900)


def test_missing_metrics_on_scale_down_count_as_their_request() -> None:
    pods = [pod(f"p-{i}") for i in range(4)]
    # 300/3000 = 10 %; the missing pod at 100 % of its request: 1300/4000 = 32 % -> ceil(0.64 * 4) = 3
    assert res(4, 50, pods, metrics(p_0=100, p_1=100, p_2=100)) == (3, 10, 100)


def test_missing_metrics_on_scale_down_above_100_percent_target() -> None:
    pods = [pod(f"p-{i}") for i in range(4)]
    # target 300 %: 300/3000 = 10 %; the missing pod at 300 % of its request: 3300/4000 = 82 % -> ceil(.273*4) = 2
    assert res(4, 300, pods, metrics(p_0=100, p_1=100, p_2=100)) == (2, 10, 100)


def test_missing_metrics_on_scale_up_count_as_zero() -> None:
    pods = [pod(f"p-{i}") for i in range(4)]
    # 2700/3000 = 90 %, ratio 1.8; the missing pod at 0: 2700/4000 = 67 % -> ceil(1.34 * 4) = 6
    assert res(4, 50, pods, metrics(p_0=900, p_1=900, p_2=900)) == (6, 90, 900)


def test_missing_metrics_that_would_turn_the_direction_keep_the_count() -> None:
    pods = [pod("p-0"), pod("p-1")]
    # 40 % of 50 % says down; the missing pod at its request makes 1400/2000 = 70 %: up -> no change
    assert res(2, 50, pods, metrics(p_0=400)) == (2, 40, 400)


def test_missing_metrics_landing_in_tolerance_keep_the_count() -> None:
    pods = [pod("p-0"), pod("p-1")]
    # 1200/1000 = 120 % of 100 % says up; the missing pod at 0: 1200/2000 = 60 % -> the direction turns
    assert res(2, 100, pods, metrics(p_0=1200)) == (2, 120, 1200)


def test_cpu_initialization_period() -> None:
    # started a minute ago, Ready for 10 s: the 30 s sample window began before it was ready -> unready
    young = pod("p-0", started=NOW - 60, transition=NOW - 10)
    old = pod("p-1")
    g = group_pods([young, old], metrics(p_0=900, p_1=100), "cpu", CPU_INIT, READY_DELAY, NOW)
    assert g.unready == {"p-0"} and g.ready_count == 1
    # ready long enough for a whole window: counted
    settled = pod("p-0", started=NOW - 120, transition=NOW - 100)
    assert group_pods([settled], metrics(p_0=900), "cpu", CPU_INIT, READY_DELAY, NOW).ready_count == 1
    # memory does not care
    assert group_pods([young], metrics(p_0=900), "memory", CPU_INIT, READY_DELAY, NOW).ready_count == 1


def test_initial_readiness_delay_after_the_initialization_period() -> None:
    # not ready, and its readiness went False within 30 s of its start: never was ready -> unready
    never = pod("p-0", ready="False", started=NOW - 3600, transition=NOW - 3600 + 10)
    # not ready now but was ready (went False long after the start): its sample counts
    was = pod("p-1", ready="False", started=NOW - 3600, transition=NOW - 60)
    g = group_pods([never, was], metrics(p_0=1, p_1=1), "cpu", CPU_INIT, READY_DELAY, NOW)
    assert g.unready == {"p-0"} and g.ready_count == 1


def test_resource_errors() -> None:
    with pytest.raises(MetricError, match="^no pods returned by selector while calculating replica count$"):
        res(1, 50, [], metrics(p_0=1))
    with pytest.raises(MetricError, match=r"^did not receive metrics for targeted pods \(pods might be unready\)$"):
        res(1, 50, [pod("p-0", phase="Pending")], metrics(p_0=1))
    with pytest.raises(MetricError, match="^missing request for cpu in container app of Pod p-0$"):
        res(1, 50, [pod("p-0", cpu=None)], metrics(p_0=1))
    with pytest.raises(MetricError, match="^no metrics returned matched known pods$"):
        res(1, 50, [pod("p-0", cpu="0")], metrics(p_0=1))


def test_requests_of_containers_sidecars_pod_level() -> None:
    two = [{"name": "a", "resources": {"requests": {"cpu": "100m"}}},
           {"name": "b", "resources": {"requests": {"cpu": "300m"}}}]
    p = pod("p-0", containers=two)
    p["spec"]["initContainers"] = [{"name": "side", "restartPolicy": "Always",
                                    "resources": {"requests": {"cpu": "100m"}}},
                                   {"name": "init", "resources": {"requests": {"cpu": "5"}}}]
    assert calculate_requests([p], "", "cpu") == {"p-0": 500}
    assert calculate_requests([p], "b", "cpu") == {"p-0": 300}
    with pytest.raises(MetricError, match="^container c not found in Pod p-0$"):
        calculate_requests([p], "c", "cpu")
    pl = pod("p-1", containers=two, pod_level={"cpu": "2"})
    assert calculate_requests([pl], "", "cpu") == {"p-1": 2000}
    assert calculate_requests([pl], "a", "cpu") == {"p-1": 100}  # a named container wins
    with pytest.raises(MetricError, match="^missing pod-level request for memory in Pod p-1$"):
        calculate_requests([pl], "", "memory")


def test_container_resource_utilization() -> None:
    two = [{"name": "a", "resources": {"requests": {"cpu": "100m"}}},
           {"name": "b", "resources": {"requests": {"cpu": "400m"}}}]
    pods = [pod("p-0", containers=two), pod("p-1", containers=two)]
    # container b: 400m of 800m = 50 % against 25 %: ceil(2 * 2) = 4
    assert res(2, 25, pods, metrics(p_0=200, p_1=200), container="b") == (4, 50, 200)


def test_memory_utilization() -> None:
    pods = [pod("p-0", cpu=None, mem="100Mi"), pod("p-1", cpu=None, mem="100Mi")]
    mib = 1024 * 1024 * 1000  # milli-bytes of a MiB
    replicas, util, raw = res(2, 60, pods, metrics(p_0=90 * mib, p_1=90 * mib), resource="memory")
    assert (replicas, util, raw) == (3, 90, 90 * mib)


# -- average values --------------------------------------------------------------------------------

def plain(current: int, target: int, pods: list[Obj], m: dict[str, PodMetric], resource: str = "") -> tuple[int, int]:
    return plain_metric_replicas(current, target, resource, T, pods, m, CPU_INIT, READY_DELAY, NOW)


def test_average_value_scale_up_and_down() -> None:
    pods = [pod(f"p-{i}") for i in range(3)]
    # average 20000 over a target of 10000: 2 * 3 = 6
    assert plain(3, 10_000, pods, metrics(p_0=20_000, p_1=10_000, p_2=30_000)) == (6, 20_000)
    assert plain(3, 10_000, pods, metrics(p_0=2_000, p_1=4_000, p_2=6_000)) == (2, 4_000)
    assert plain(3, 10_000, pods, metrics(p_0=10_500, p_1=10_000, p_2=9_800)) == (3, 10_100)


def test_average_value_missing_pods_use_the_target_on_scale_down() -> None:
    pods = [pod(f"p-{i}") for i in range(4)]
    # 1000 average of 10000 -> missing at 10000: 13000/4 = 3250 -> ceil(0.325 * 4) = 2
    assert plain(4, 10_000, pods, metrics(p_0=1_000, p_1=1_000, p_2=1_000)) == (2, 1_000)


def test_object_and_external_metrics() -> None:
    pods = [pod(f"p-{i}") for i in range(3)]
    # Value target: 50000 over 10000 -> 5 x 3 ready pods = 15
    assert object_metric_replicas(3, 10_000, 50_000, T, pods) == 15
    assert object_metric_replicas(3, 10_000, 10_500, T, pods) == 3  # within tolerance
    assert object_metric_replicas(0, 10_000, 25_000, T, pods) == 3  # from zero: ceil(ratio)
    # AverageValue: the total over the per-pod target
    assert object_per_pod_metric_replicas(2, 10_000, 45_000, T) == (5, 22_500)
    assert external_per_pod_metric_replicas(4, 10_000, [8_000, 40_000], T) == (5, 12_000)
    assert external_per_pod_metric_replicas(4, 10_000, [20_000, 21_000], T) == (4, 10_250)
    assert external_metric_replicas(3, 10_000, [10_000, 10_000], T, pods) == (6, 20_000)


# -- behavior (horizontal.go's normalization) ------------------------------------------------------

def test_without_behavior_the_scale_down_is_stabilized() -> None:
    h = hb.History()
    hb.record_initial(h, 5, NOW - 200)
    n = hb.normalize(h, 5, 2, 1, 10, 300, NOW)
    # the 5 recommended 200 s ago still stands
    assert (n.replicas, n.able_reason, n.limited) == (5, "ScaleDownStabilized", False)
    n = hb.normalize(h, 5, 2, 1, 10, 300, NOW + 101)  # that one expired; the 2 of NOW is the highest
    assert (n.replicas, n.able_reason) == (2, "ReadyForNewScale")


def test_without_behavior_limits() -> None:
    h = hb.History()
    n = hb.normalize(h, 1, 10, 1, 10, 300, NOW)
    assert (n.replicas, n.limited, n.limited_reason) == (4, True, "ScaleUpLimit")  # max(2 x 1, 4)
    n = hb.normalize(hb.History(), 5, 12, 1, 8, 300, NOW)
    assert (n.replicas, n.limited_reason, n.limited_message) == (
        8, "TooManyReplicas", "the desired replica count is more than the maximum replica count")
    n = hb.normalize(hb.History(), 3, 1, 2, 8, 0, NOW)
    assert (n.replicas, n.limited_reason) == (2, "TooFewReplicas")
    n = hb.normalize(hb.History(), 3, 4, 2, 8, 0, NOW)
    assert (n.replicas, n.limited, n.limited_reason) == (4, False, "DesiredWithinRange")


DEFAULT_BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                             {"type": "Percent", "value": 100, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                  "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
}


def beh(up: Obj | None = None, down: Obj | None = None) -> Obj:
    return {"scaleUp": {**DEFAULT_BEHAVIOR["scaleUp"], **(up or {})},
            "scaleDown": {**DEFAULT_BEHAVIOR["scaleDown"], **(down or {})}}


def test_default_behavior_scales_up_by_4_or_double() -> None:
    h = hb.History()
    n = hb.normalize_with_behaviors(h, beh(), 3, 20, 1, 50, 300, NOW)
    assert (n.replicas, n.limited_reason) == (7, "ScaleUpLimit")  # max(3 + 4, 3 x 2)
    hb.store_scale_event(h, beh(), 3, 7, 300, NOW)
    n = hb.normalize_with_behaviors(h, beh(), 7, 20, 1, 50, 300, NOW + 5)
    assert n.replicas == 7  # within the same 15 s period nothing more is allowed
    n = hb.normalize_with_behaviors(h, beh(), 7, 20, 1, 50, 300, NOW + 16)
    assert n.replicas == 14


def test_pods_policy_per_period() -> None:
    b = beh(up={"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]})
    h = hb.History()
    assert hb.normalize_with_behaviors(h, b, 3, 10, 1, 20, 300, NOW).replicas == 4
    hb.store_scale_event(h, b, 3, 4, 300, NOW)
    assert hb.normalize_with_behaviors(h, b, 4, 10, 1, 20, 300, NOW + 30).replicas == 4
    assert hb.normalize_with_behaviors(h, b, 4, 10, 1, 20, 300, NOW + 61).replicas == 5


def test_percent_scale_down_truncates() -> None:
    b = beh(down={"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]})
    h = hb.History()
    n = hb.normalize_with_behaviors(h, b, 80, 10, 1, 100, 300, NOW)
    assert (n.replicas, n.limited_reason) == (72, "ScaleDownLimit")
    hb.store_scale_event(h, b, 80, 72, 300, NOW)
    assert hb.normalize_with_behaviors(h, b, 72, 10, 1, 100, 300, NOW + 30).replicas == 72
    assert hb.normalize_with_behaviors(h, b, 72, 10, 1, 100, 300, NOW + 61).replicas == 64


def test_select_policy_min_max_disabled() -> None:
    pols = [{"type": "Pods", "value": 2, "periodSeconds": 60}, {"type": "Percent", "value": 50, "periodSeconds": 60}]
    # 10 replicas: +2 pods or +50 % (15)
    assert hb.scale_up_limit(10, [], [], {"selectPolicy": "Max", "policies": pols}, NOW) == 15
    assert hb.scale_up_limit(10, [], [], {"selectPolicy": "Min", "policies": pols}, NOW) == 12
    assert hb.scale_up_limit(10, [], [], {"selectPolicy": "Disabled", "policies": pols}, NOW) == 10
    # down: -2 pods (8) or -50 % (5); Max is the biggest change
    assert hb.scale_down_limit(10, [], [], {"selectPolicy": "Max", "policies": pols}, NOW) == 5
    assert hb.scale_down_limit(10, [], [], {"selectPolicy": "Min", "policies": pols}, NOW) == 8
    n = hb.normalize_with_behaviors(hb.History(), beh(up={"selectPolicy": "Disabled"}), 3, 9, 1, 20, 300, NOW)
    assert (n.replicas, n.limited_reason) == (3, "ScaleUpLimit")


def test_percent_scale_up_rounds_up() -> None:
    assert hb.scale_up_limit(1, [], [], {"policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]},
                             NOW) == 2


def test_scale_events_of_both_directions_count() -> None:
    # 2 added and 1 removed in the last minute: the period started at 10 - 2 + 1 = 9
    up = [hb.ScaleEvent(2, NOW - 10)]
    down = [hb.ScaleEvent(1, NOW - 5), hb.ScaleEvent(7, NOW - 120)]
    rules = {"policies": [{"type": "Pods", "value": 3, "periodSeconds": 60}]}
    assert hb.scale_up_limit(10, up, down, rules, NOW) == 12


def test_stabilization_windows_with_behavior() -> None:
    b = beh(up={"stabilizationWindowSeconds": 60}, down={"stabilizationWindowSeconds": 120})
    h = hb.History()
    hb.record_initial(h, 5, NOW - 30)
    n = hb.normalize_with_behaviors(h, b, 5, 8, 1, 20, 300, NOW)
    # the lowest recommendation of the last minute (5) holds the scale-up back
    assert (n.replicas, n.able_reason) == (5, "ScaleUpStabilized")
    n = hb.normalize_with_behaviors(h, b, 5, 2, 1, 20, 300, NOW + 10)
    assert (n.replicas, n.able_reason) == (5, "ScaleDownStabilized")
    # 2 minutes on only the newest recommendations are in the windows
    n = hb.normalize_with_behaviors(h, b, 5, 2, 1, 20, 300, NOW + 135)
    assert (n.replicas, n.able_reason) == (2, "ReadyForNewScale")


def test_scale_down_window_unset_takes_the_flag() -> None:
    b = {"scaleUp": DEFAULT_BEHAVIOR["scaleUp"], "scaleDown": {"policies": DEFAULT_BEHAVIOR["scaleDown"]["policies"]}}
    h = hb.History()
    hb.record_initial(h, 6, NOW - 50)
    assert hb.normalize_with_behaviors(h, b, 6, 2, 1, 20, 60, NOW).replicas == 6  # 60 s flag window
    assert hb.normalize_with_behaviors(hb.History(), b, 6, 2, 1, 20, 0, NOW).replicas == 2


def test_outdated_scale_events_are_reused() -> None:
    b = beh(up={"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]})
    h = hb.History()
    hb.store_scale_event(h, b, 1, 2, 300, NOW)
    hb.store_scale_event(h, b, 2, 3, 300, NOW + 100)  # the first is past the longest period: replaced
    assert [(e.change, e.timestamp) for e in h.scale_up_events] == [(1, NOW + 100)]
    hb.store_scale_event(h, None, 3, 4, 300, NOW + 200)  # no behavior, nothing kept
    assert len(h.scale_up_events) == 1
