"""Parsing pods the way kube-scheduler reads them: requests, tolerations, selectors, terms."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.scheduler.types import NodeSelector, Taint, Toleration, normalize_image, parse_pod

from .helpers import pod

GI = 1024**3
MI = 1024**2


def _c(cpu: str | None = None, mem: str | None = None, restart: str | None = None, **res: Any) -> dict[str, Any]:
    req = {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v}
    req.update(res)
    c: dict[str, Any] = {"name": "c", "image": "x", "resources": {"requests": req} if req else {}}
    if restart:
        c["restartPolicy"] = restart
    return c


@pytest.mark.parametrize("spec,cpu,mem,nz_cpu,nz_mem", [
    # containers add up
    ({"containers": [_c("100m", "1Gi"), _c("200m", "1Gi")]}, 300, 2 * GI, 300, 2 * GI),
    # a container without requests counts the defaults only for scoring (100m, 200Mi)
    ({"containers": [_c("100m"), _c()]}, 100, 0, 200, 400 * MI),
    # an init container bigger than the sum wins
    ({"containers": [_c("100m")], "initContainers": [_c("1")]}, 1000, 0, 1000, 200 * MI),
    # a sidecar (restartable init container) runs alongside and adds up
    ({"containers": [_c("100m")], "initContainers": [_c("200m", restart="Always"), _c("250m")]}, 450, 0, 450,
     400 * MI),
    # overhead is added on top
    ({"containers": [_c("100m", "100Mi")], "overhead": {"cpu": "50m", "memory": "10Mi"}}, 150, 110 * MI, 150,
     110 * MI),
    # pod-level resources override the containers' sum
    ({"containers": [_c("100m")], "resources": {"requests": {"cpu": "2"}}}, 2000, 0, 2000, 200 * MI),
])
def test_pod_requests(spec: dict[str, Any], cpu: int, mem: int, nz_cpu: int, nz_mem: int) -> None:
    p = parse_pod({"metadata": {"name": "p", "namespace": "d"}, "spec": spec})
    assert (p.req_cpu, p.req_mem, p.nz_cpu, p.nz_mem) == (cpu, mem, nz_cpu, nz_mem)


def test_limits_stand_in_for_missing_requests_and_extended_resources() -> None:
    p = parse_pod({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "2", "ephemeral-storage": "1Gi"}}}]}})
    assert (p.req_cpu, p.req_eph, p.req_scalars) == (1000, GI, {"nvidia.com/gpu": 2})


@pytest.mark.parametrize("tol,taint,ok", [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, ("k", "v", "NoSchedule"), True),
    ({"key": "k", "value": "v"}, ("k", "v", "NoExecute"), True),  # empty effect: every effect
    ({"key": "k", "value": "x"}, ("k", "v", "NoSchedule"), False),
    ({"key": "k", "operator": "Exists"}, ("k", "anything", "NoSchedule"), True),
    ({"operator": "Exists"}, ("any", "thing", "NoExecute"), True),  # empty key + Exists: everything
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, ("k", "", "NoSchedule"), False),
    ({"key": "other", "operator": "Exists"}, ("k", "", "NoSchedule"), False),
])
def test_toleration(tol: dict[str, str], taint: tuple[str, str, str], ok: bool) -> None:
    assert Toleration.parse(tol).tolerates(Taint(*taint)) is ok


@pytest.mark.parametrize("term,labels,name,ok", [
    ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, {"zone": "b"}, "n", True),
    ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, {}, "n", True),
    ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"gpu": ""}, "n", True),
    ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {"gpu": ""}, "n", False),
    ({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}, {"cores": "16"}, "n", True),
    ({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]}, {"cores": "16"}, "n", False),
    ({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}, {}, "n1", True),
    ({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}, {}, "n2", False),
    ({}, {"a": "b"}, "n", False),  # an empty term matches no node
    ({"matchExpressions": [{"key": "zone", "operator": "Bogus", "values": ["a"]}]}, {"zone": "a"}, "n", False),
])
def test_node_selector_terms(term: dict[str, Any], labels: dict[str, str], name: str, ok: bool) -> None:
    assert NodeSelector.parse({"nodeSelectorTerms": [term]}).matches(labels, name) is ok


def test_terms_ored_and_pod_fields() -> None:
    sel = NodeSelector.parse({"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "a", "operator": "Exists"}]},
        {"matchExpressions": [{"key": "b", "operator": "Exists"}]}]})
    assert sel.matches({"b": "1"}, "n") and not sel.matches({"c": "1"}, "n")
    p = parse_pod(pod("p", labels={"app": "web"}, priority=7, preemptionPolicy="Never",
                      containers=[{"name": "c", "image": "nginx",
                                   "ports": [{"containerPort": 80, "hostPort": 8080}]}],
                      affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                          {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]}}))
    assert p.priority == 7 and p.preempt_never
    assert p.host_ports == (("0.0.0.0", "TCP", 8080),)
    assert p.images == ("nginx:latest",)
    (term,) = p.anti_required
    assert term.namespaces == frozenset({"default"}) and term.topology_key == "zone"
    assert term.matches(p, lambda ns: None)


@pytest.mark.parametrize("name,want", [("nginx", "nginx:latest"), ("nginx:1.2", "nginx:1.2"),
                                       ("reg:5000/a/b", "reg:5000/a/b:latest"), ("a@sha256:ab", "a@sha256:ab")])
def test_normalize_image(name: str, want: str) -> None:
    assert normalize_image(name) == want


def test_refresh_reuses_the_parse_when_only_status_or_binding_changed() -> None:
    raw = pod("p", "100m")
    p = parse_pod(raw)
    bound = {**raw, "spec": {**raw["spec"], "nodeName": "n1"}, "status": {"phase": "Running"}}
    q = p.refresh(bound)
    assert q.node_name == "n1" and q.req_cpu == 100 and q.tolerations is p.tolerations
    changed = {**raw, "spec": {**raw["spec"], "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}
    assert p.refresh(changed).req_cpu == 1000
