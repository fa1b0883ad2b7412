"""The shared core/v1 helpers: one toleration rule (with Gt/Lt) for the scheduler, the taint
manager and the DaemonSet controller; one node-affinity match; one namespace-terminating check."""

from __future__ import annotations

import datetime as dt

import pytest

from k8py.api import corev1
from k8py.client.errors import ApiError
from k8py.controllers import daemonset, nodelifecycle


@pytest.mark.parametrize(("tol", "taint", "ok"), [
    ({"key": "k", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, True),
    ({"operator": "Exists"}, {"key": "any", "value": "v", "effect": "NoExecute"}, True),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Exists", "effect": "NoSchedule"}, {"key": "k", "effect": "NoExecute"}, False),
    # the numeric operators, which only the scheduler's copy knew before
    ({"key": "gpu", "operator": "Gt", "value": "3"}, {"key": "gpu", "value": "5", "effect": "NoSchedule"}, True),
    ({"key": "gpu", "operator": "Gt", "value": "5"}, {"key": "gpu", "value": "5", "effect": "NoSchedule"}, False),
    ({"key": "gpu", "operator": "Lt", "value": "5"}, {"key": "gpu", "value": "3", "effect": "NoSchedule"}, True),
    ({"key": "gpu", "operator": "Lt", "value": "x"}, {"key": "gpu", "value": "3", "effect": "NoSchedule"}, False),
])
def test_one_toleration_rule_everywhere(tol: dict[str, str], taint: dict[str, str], ok: bool) -> None:
    assert corev1.tolerates(tol, taint) is ok
    # the taint manager and the DaemonSet controller decide with the same rule
    assert nodelifecycle.matching_tolerations([taint], [tol])[0] is ok
    assert (corev1.find_untolerated_taint([taint], [tol]) is None) is ok


def test_find_untolerated_taint_by_effect() -> None:
    taints = [{"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "effect": "NoExecute"}]
    assert corev1.find_untolerated_taint(taints, [], ("NoSchedule", "NoExecute")) == taints[1]
    assert corev1.find_untolerated_taint(taints, [{"key": "b", "operator": "Exists"}],
                                         ("NoSchedule", "NoExecute")) is None


def node(name: str, **labels: str) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": labels}}


def test_node_selector_and_required_affinity() -> None:
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                              {"key": "cores", "operator": "Gt", "values": ["4"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]},
    ]}}}
    spec = {"nodeSelector": {"disk": "ssd"}, "affinity": aff}
    m = corev1.pod_matches_node_selector_and_affinity
    assert m(spec, node("n1", disk="ssd", zone="a", cores="8"))
    assert not m(spec, node("n1", disk="ssd", zone="a", cores="2"))
    assert not m(spec, node("n1", disk="hdd", zone="a", cores="8"))
    assert m(spec, node("special", disk="ssd"))
    assert m({}, node("n"))
    # an empty term selects nothing
    empty = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{}]}}}}
    assert not m(empty, node("n"))
    # the DaemonSet controller places pods with it
    ds = {"spec": {"template": {"spec": spec}}}
    assert daemonset.node_should_run({**node("n1", disk="ssd", zone="b", cores="8"), "spec": {}}, ds) == (True, True)
    assert daemonset.node_should_run({**node("n1", disk="ssd", zone="c", cores="8"), "spec": {}}, ds)[0] is False


def test_namespace_terminating_is_the_status_cause() -> None:
    body = {"kind": "Status", "code": 403, "reason": "Forbidden",
            "message": 'pods "p" is forbidden: unable to create new content in namespace x because it is being '
                       "terminated",
            "details": {"name": "p", "kind": "pods", "causes": [
                {"reason": "NamespaceTerminating", "message": "namespace x is being terminated",
                 "field": "metadata.namespace"}]}}
    assert corev1.is_namespace_terminating(ApiError(body, 403))
    other = {**body, "details": {"causes": [{"reason": "FieldValueInvalid"}]}}
    assert not corev1.is_namespace_terminating(ApiError(other, 403))
    assert not corev1.is_namespace_terminating(ValueError("x"))


def test_pod_readiness() -> None:
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}], "phase": "Running"}}
    assert corev1.is_pod_ready(ready) and not corev1.is_pod_terminal(ready)
    assert not corev1.is_pod_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert corev1.is_pod_terminal({"status": {"phase": "Failed"}})


def test_times() -> None:
    t = corev1.parse_time("2026-12-06T10:00:00Z")
    assert t == dt.datetime(2026, 12, 6, 10, tzinfo=dt.UTC)
    assert corev1.format_time(dt.datetime(2026, 12, 6, 11, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == \
        "2026-12-06T10:00:00Z"
    assert corev1.parse_time("2026-12-06T10:00:00.123456+00:00") is not None
    assert corev1.parse_time("nonsense") is None and corev1.parse_time(None) is None


def _lim(name: str, cpu: str | None = None, memory: str | None = None, **kw: object) -> dict[str, object]:
    lim = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {"name": name, "resources": {"limits": lim}, **kw}


@pytest.mark.parametrize(("spec", "want"), [
    # containers add up; a resource no container limits is absent
    ({"containers": [_lim("a", "100m", "1Mi"), _lim("b", "200m")]}, {"cpu": 300, "memory": 1024**2}),
    # an init container bigger than the sum wins; a sidecar adds up and runs beside later init containers
    ({"containers": [_lim("a", "100m")], "initContainers": [_lim("i", "1")]}, {"cpu": 1000}),
    ({"containers": [_lim("a", "100m")], "initContainers": [
        _lim("s", "200m", restartPolicy="Always"), _lim("i", "250m")]}, {"cpu": 450}),
    # overhead only on the limits there are
    ({"containers": [_lim("a", "100m")], "overhead": {"cpu": "10m", "memory": "1Mi"}}, {"cpu": 110}),
    # pod-level limits override the containers' sum
    ({"containers": [_lim("a", "100m")], "resources": {"limits": {"cpu": "2"}}}, {"cpu": 2000}),
])
def test_pod_limits_are_kubes(spec: dict[str, object], want: dict[str, int]) -> None:
    assert corev1.pod_limits(spec) == want
