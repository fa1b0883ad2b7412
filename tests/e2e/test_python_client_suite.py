"""What the official Python client's own e2e suite exercises beyond our other client tests:
``utils.create_from_yaml`` on multi-document files (apply mode and conflicts), the dynamic
client's server-side apply, a ``leaderelection`` election with a Lease lock, and the client's
``SharedInformer``. (Exec and port-forward through ``stream()``/``portforward()`` are in
test_exec.py and test_port_forward.py; the suite itself is run by run_pyclient_suite.py, see
docs/python-client.md.) These need no real node: the API server alone answers them."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, dynamic, utils
from kubernetes.client.rest import ApiException

from .conftest import Server, wait


@pytest.fixture
def api(server: Server):
    with server.client() as c:
        yield c


def _deployment(name: str, image: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": image}]}}},
    }  # fmt: skip


def test_create_from_yaml_multi_document_list_and_conflicts(api: Any, ns: str, tmp_path: Path) -> None:
    f = tmp_path / "multi.yaml"
    f.write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-a"}, "data": {"k": "a"}},
        # a List inside a multi-document file: its items are created one by one
        {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc-l"},
             "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec-l"}, "stringData": {"p": "w"}},
        ]},
        _deployment("dep-y", "busybox:1.36", 2),
    ]))  # fmt: skip
    created = utils.create_from_yaml(api, str(f), namespace=ns)
    kinds = [o.kind for group in created for o in group]
    assert kinds == ["ConfigMap", "Service", "Secret", "Deployment"]
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    assert core.read_namespaced_config_map("cm-a", ns).data == {"k": "a"}
    assert core.read_namespaced_service("svc-l", ns).spec.ports[0].target_port == 8080
    assert core.read_namespaced_secret("sec-l", ns).data == {"p": "dw=="}
    dep = apps.read_namespaced_deployment("dep-y", ns)
    assert dep.spec.replicas == 2 and dep.spec.template.spec.containers[0].image == "busybox:1.36"

    # again: every object fails (409 AlreadyExists), and one error holds them all, in file order
    with pytest.raises(utils.FailToCreateError) as e:
        utils.create_from_yaml(api, str(f), namespace=ns)
    failures = e.value.api_exceptions
    assert [x.status for x in failures] == [409, 409, 409, 409]
    assert all('"reason":"AlreadyExists"' in x.body for x in failures)
    assert 'configmaps \\"cm-a\\" already exists' in failures[0].body

    # apply=True is server-side apply (fieldManager python-client). The fields the create set
    # belong to the manager named after the client's User-Agent: changing them conflicts, as in kube.
    f.write_text(yaml.safe_dump_all([_deployment("dep-y", "busybox:1.37", 3)]))
    with pytest.raises(utils.FailToCreateError) as e:
        utils.create_from_yaml(api, str(f), namespace=ns, apply=True)
    (conflict,) = e.value.api_exceptions
    assert conflict.status == 409 and 'conflicts with \\"OpenAPI-Generator\\" using apps/v1' in conflict.body
    assert ".spec.replicas" in conflict.body
    # on an object of its own, applying is idempotent and updates what it changes
    f.write_text(yaml.safe_dump_all([_deployment("dep-z", "busybox:1.36", 1)]))
    for _ in range(2):
        utils.create_from_yaml(api, str(f), namespace=ns, apply=True)
    f.write_text(yaml.safe_dump_all([_deployment("dep-z", "busybox:1.37", 3)]))
    utils.create_from_yaml(api, str(f), namespace=ns, apply=True)
    dep = apps.read_namespaced_deployment("dep-z", ns)
    assert dep.spec.replicas == 3 and dep.spec.template.spec.containers[0].image == "busybox:1.37"
    assert dep.metadata.generation == 2
    managers = {m.manager: m.operation for m in dep.metadata.managed_fields}
    # (the deployment controller's status writes are its own Update entry)
    assert managers["python-client"] == "Apply" and "OpenAPI-Generator" not in managers, managers


def test_dynamic_client_server_side_apply(api: Any, ns: str) -> None:
    dyn = dynamic.DynamicClient(api)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": ns},
            "data": {"owned-by-a": "1", "shared": "a"}}
    got = cms.server_side_apply(body=body, name="ssa", namespace=ns, field_manager="mgr-a").to_dict()
    assert got["data"] == {"owned-by-a": "1", "shared": "a"}
    entry = next(m for m in got["metadata"]["managedFields"] if m["manager"] == "mgr-a")
    assert entry["operation"] == "Apply" and "f:shared" in entry["fieldsV1"]["f:data"]

    # another manager setting a field mgr-a owns to another value: 409 Conflict naming both
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": ns},
             "data": {"shared": "b"}}
    with pytest.raises(ApiException) as e:
        cms.server_side_apply(body=other, name="ssa", namespace=ns, field_manager="mgr-b")
    assert e.value.status == 409
    assert '"reason":"Conflict"' in e.value.body and "mgr-a" in e.value.body and ".data.shared" in e.value.body
    assert client.CoreV1Api(api).read_namespaced_config_map("ssa", ns).data["shared"] == "a"

    # forced: mgr-b takes the field over, mgr-a keeps the rest
    got = cms.server_side_apply(body=other, name="ssa", namespace=ns, field_manager="mgr-b",
                                force_conflicts=True).to_dict()
    assert got["data"] == {"owned-by-a": "1", "shared": "b"}
    owners = {m["manager"]: set(m["fieldsV1"]["f:data"]) for m in got["metadata"]["managedFields"]}
    assert owners["mgr-b"] == {"f:shared"} and owners["mgr-a"] == {"f:owned-by-a"}

    # mgr-a applying without the field it no longer owns leaves it alone; dropping its own removes it
    got = cms.server_side_apply(body={**body, "data": {}}, name="ssa", namespace=ns, field_manager="mgr-a")
    assert got.to_dict()["data"] == {"shared": "b"}


def test_leader_election_with_a_lease_lock(api: Any, ns: str) -> None:
    """Two candidates: the first leads and renews; when its work fails it stops renewing, and the
    second takes the Lease over once it expired. (The client's LeaseLock writes no
    leaseTransitions: the new holder shows in holderIdentity and a new acquireTime.)"""
    from kubernetes.leaderelection import electionconfig, leaderelection
    from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

    coord = client.CoordinationV1Api(api)
    # LeaseLock talks through the default configuration
    client.Configuration.set_default(api.configuration)
    events: list[str] = []
    stop = {"a": threading.Event(), "b": threading.Event()}

    def candidate(name: str) -> threading.Thread:
        def lead() -> None:
            events.append(f"{name} leads")
            stop[name].wait(60)
            raise RuntimeError(f"{name} stops leading")  # makes run() stop renewing and return

        config = electionconfig.Config(LeaseLock("election", ns, name), lease_duration=4, renew_deadline=3,
                                       retry_period=1, onstarted_leading=lead,
                                       onstopped_leading=lambda: events.append(f"{name} stopped"))
        t = threading.Thread(target=leaderelection.LeaderElection(config).run, daemon=True, name=f"elect-{name}")
        t.start()
        return t

    try:
        ta = candidate("a")
        wait(lambda: "a leads" in events, 30, "candidate a leading")
        tb = candidate("b")
        lease = coord.read_namespaced_lease("election", ns)
        assert lease.spec.holder_identity == "a" and lease.spec.lease_duration_seconds == 4
        first_renew, first_acquire = lease.spec.renew_time, lease.spec.acquire_time
        # a keeps renewing while b waits
        wait(lambda: coord.read_namespaced_lease("election", ns).spec.renew_time != first_renew, 10, "a renewal")
        assert "b leads" not in events
        stop["a"].set()
        ta.join(30)
        assert not ta.is_alive() and "a stopped" in events
        wait(lambda: "b leads" in events, 30, "candidate b taking over")
        lease = coord.read_namespaced_lease("election", ns)
        assert lease.spec.holder_identity == "b" and lease.spec.acquire_time > first_acquire
        assert events.index("a stopped") < events.index("b leads")
    finally:
        for e in stop.values():
            e.set()
        client.Configuration.set_default(None)
    tb.join(30)
    assert not tb.is_alive()


def test_shared_informer_events_and_cache(api: Any, ns: str) -> None:
    from kubernetes.informer import ADDED, DELETED, MODIFIED, SharedInformer

    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(
        name="before", labels={"t": "inf"})))
    inf = SharedInformer(core.list_namespaced_config_map, namespace=ns, label_selector="t=inf")
    seen: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def on(kind: str) -> Any:
        def handler(obj: Any) -> None:
            with lock:
                seen.append((kind, obj.metadata.name, (obj.data or {}).get("v", "")))
        return handler

    for kind in (ADDED, MODIFIED, DELETED):
        inf.add_event_handler(kind, on(kind))
    inf.start()
    try:
        wait(lambda: [o.metadata.name for o in inf.cache.list()] == ["before"], 20, "the initial list in the cache")
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(
            name="after", labels={"t": "inf"}), data={"v": "1"}))
        core.patch_namespaced_config_map("after", ns, {"data": {"v": "2"}})
        core.delete_namespaced_config_map("before", ns)
        # not selected: never seen
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="other")))
        wait(lambda: ("DELETED", "before", "") in seen, 20, "the delete")
        with lock:
            after = [s for s in seen if s[0] != "ADDED" or s[1] != "before"]
        assert after == [("ADDED", "after", "1"), ("MODIFIED", "after", "2"), ("DELETED", "before", "")]
        assert [(o.metadata.name, o.data) for o in inf.cache.list()] == [("after", {"v": "2"})]
        assert inf.cache.get_by_key(f"{ns}/after").data == {"v": "2"}
        assert inf.cache.get_by_key(f"{ns}/other") is None
    finally:
        t0 = time.monotonic()
        inf.stop()
        assert time.monotonic() - t0 < 30
