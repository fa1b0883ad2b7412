"""The official `kubernetes` Python client against a real `k8py server` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from .conftest import Server, start_server


@pytest.fixture
def api(server: Server):
    with server.client() as c:
        yield c


def test_crud_several_kinds(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    batch = client.BatchV1Api(api)
    cm = core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="c1", labels={"a": "b"}), data={"k": "v"}))
    assert cm.metadata.uid and int(cm.metadata.resource_version) > 0
    got = core.read_namespaced_config_map("c1", ns)
    assert got.data == {"k": "v"}
    got.data["k"] = "v2"
    upd = core.replace_namespaced_config_map("c1", ns, got)
    assert int(upd.metadata.resource_version) > int(cm.metadata.resource_version)
    core.patch_namespaced_config_map("c1", ns, {"metadata": {"labels": {"x": "y"}}})
    assert core.read_namespaced_config_map("c1", ns).metadata.labels == {"a": "b", "x": "y"}

    sec = core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="s1"),
                                                             string_data={"password": "hunter2"}))
    assert sec.type == "Opaque"
    assert core.read_namespaced_secret("s1", ns).data == {"password": "aHVudGVyMg=="}

    dep = apps.create_namespaced_deployment(ns, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="d1"),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(match_labels={"app": "d1"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "d1"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")])))))
    assert dep.metadata.generation == 1 and dep.spec.replicas == 2
    scale = apps.read_namespaced_deployment_scale("d1", ns)
    assert scale.spec.replicas == 2 and scale.status.selector == "app=d1"
    apps.patch_namespaced_deployment_scale("d1", ns, {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("d1", ns).spec.replicas == 4

    job = batch.create_namespaced_job(ns, client.V1Job(
        metadata=client.V1ObjectMeta(name="j1"),
        spec=client.V1JobSpec(template=client.V1PodTemplateSpec(
            spec=client.V1PodSpec(restart_policy="Never",
                                  containers=[client.V1Container(name="c", image="busybox")])))))
    assert job.spec.backoff_limit == 6 and job.spec.completions == 1
    # kube generates the job's selector and labels
    assert job.spec.selector.match_labels

    svc = core.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="np"),
        spec=client.V1ServiceSpec(type="NodePort", selector={"app": "d1"},
                                  ports=[client.V1ServicePort(port=80, target_port=8080)])))
    assert 30000 <= svc.spec.ports[0].node_port <= 32767

    for name in ("c1",):
        core.delete_namespaced_config_map(name, ns)
    with pytest.raises(ApiException) as ei:
        core.read_namespaced_config_map("c1", ns)
    assert ei.value.status == 404
    apps.delete_namespaced_deployment("d1", ns)
    assert [d.metadata.name for d in apps.list_namespaced_deployment(ns).items] == []


def test_stale_update_conflicts(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cc"),
                                                                   data={"n": "0"}))
    stale = core.read_namespaced_config_map("cc", ns)
    fresh = core.read_namespaced_config_map("cc", ns)
    fresh.data["n"] = "1"
    core.replace_namespaced_config_map("cc", ns, fresh)
    stale.data["n"] = "2"
    with pytest.raises(ApiException) as ei:
        core.replace_namespaced_config_map("cc", ns, stale)
    assert ei.value.status == 409
    assert "the object has been modified" in ei.value.body
    assert core.read_namespaced_config_map("cc", ns).data["n"] == "1"
    assert cm.metadata.name == "cc"
    with pytest.raises(ApiException) as ei:
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cc")))
    assert ei.value.status == 409 and "AlreadyExists" in ei.value.body


def test_list_paging_with_continue(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    for i in range(25):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(
            name=f"p{i:02d}", labels={"t": "page"})))
    names: list[str] = []
    token = None
    pages = 0
    while True:
        # the label leaves out the namespace's kube-root-ca.crt
        resp = core.list_namespaced_config_map(ns, limit=10, _continue=token, label_selector="t=page")
        pages += 1
        names += [c.metadata.name for c in resp.items]
        token = resp.metadata._continue
        if not token:
            break
        # objects created after the first page do not show up in this consistent list
        if pages == 1:
            core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(
                name="p99", labels={"t": "page"})))
    assert names == [f"p{i:02d}" for i in range(25)]
    assert pages == 3


def test_watch_resume_from_resource_version(api: Any, ns: str) -> None:
    core = client.CoreV1Api(api)
    lst = core.list_namespaced_config_map(ns)
    rv = lst.metadata.resource_version
    # labelled, so that the namespace's kube-root-ca.crt (published meanwhile) stays out of the watch
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1",
                                                                                         labels={"t": "w"})))
    core.patch_namespaced_config_map("w1", ns, {"data": {"a": "1"}})
    core.delete_namespaced_config_map("w1", ns)
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5,
                       label_selector="t=w"):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    # resume after the second event: only the delete is replayed
    w = watch.Watch()
    events = list(w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=3,
                           label_selector="t=w"))
    mid_rv = events[1]["object"].metadata.resource_version
    w = watch.Watch()
    rest = []
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=mid_rv, timeout_seconds=3,
                       label_selector="t=w"):
        rest.append(ev["type"])
        w.stop()
    assert rest == ["DELETED"]


def test_kill9_keeps_acknowledged_writes(tmp_path: Path) -> None:
    s = start_server(tmp_path)
    acked: list[str] = []
    stop = threading.Event()
    errors_seen: list[str] = []

    def writer(idx: int) -> None:
        with s.client() as c:
            write_loop(idx, client.CoreV1Api(c))

    def write_loop(idx: int, core: Any) -> None:
        i = 0
        while not stop.is_set() and i < 2000:
            name = f"k{idx}-{i}"
            try:
                core.create_namespaced_config_map("default", client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name=name), data={"i": str(i)}), _request_timeout=5)
            except Exception as e:  # noqa: BLE001 - the server died mid-request: not acknowledged
                errors_seen.append(type(e).__name__)
                return
            acked.append(name)
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.proc is not None
    os.killpg(s.proc.pid, signal.SIGKILL)
    s.proc.wait()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 300
    s.start()
    try:
        with s.client() as c:
            present = {x.metadata.name for x in client.CoreV1Api(c).list_namespaced_config_map("default").items}
        missing = [n for n in acked if n not in present]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    finally:
        s.stop()


def test_server_cli_help() -> None:
    p = subprocess.run([sys.executable, "-m", "k8py.cli", "server", "--help"], capture_output=True, text=True,
                       check=False)
    assert p.returncode == 0
    for flag in ("--data-dir", "--https-listen-port", "--bind-address", "--write-kubeconfig",
                 "--datastore-endpoint", "--disable-agent", "--node-name", "--cluster-cidr", "--service-cidr"):
        assert flag in p.stdout


def test_create_from_yaml_conflict_reads_as_against_kube(api: Any, tmp_path: Path) -> None:
    """The official client's ``create_from_yaml`` prints the server's Status as it came: the
    exact bytes (Go's field order, the trailing newline) are what its own e2e suite compares."""
    from kubernetes import utils

    f = tmp_path / "api-service.yaml"
    f.write_text(yaml.safe_dump({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1alpha1.wardle.k8s.io"},
        "spec": {"insecureSkipTLSVerify": True, "group": "wardle.k8s.io", "groupPriorityMinimum": 1000,
                 "versionPriority": 15, "service": {"name": "api", "namespace": "wardle"}, "version": "v1alpha1"}}))
    utils.create_from_yaml(api, str(f))
    try:
        svc = client.ApiregistrationV1Api(api).read_api_service(name="v1alpha1.wardle.k8s.io")
        assert svc.spec.group == "wardle.k8s.io" and svc.spec.version == "v1alpha1"
        with pytest.raises(utils.FailToCreateError) as e:
            utils.create_from_yaml(api, str(f))
        assert str(e.value) == (
            'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
            '"message":"apiservices.apiregistration.k8s.io \\"v1alpha1.wardle.k8s.io\\" already exists",'
            '"reason":"AlreadyExists","details":{"name":"v1alpha1.wardle.k8s.io","group":"apiregistration.k8s.io",'
            '"kind":"apiservices"},"code":409}\n')
    finally:
        client.ApiregistrationV1Api(api).delete_api_service(name="v1alpha1.wardle.k8s.io", body={})


def test_kubectl_get_apiservices(server: Any) -> None:
    server.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.local.example.com"},
        "spec": {"group": "local.example.com", "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 10}}))
    out = server.kubectl("get", "apiservices").stdout.splitlines()
    assert out[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    row = next(r.split() for r in out if r.startswith("v1.local.example.com"))
    assert row[1:3] == ["Local", "True"]
    server.kubectl("delete", "apiservice", "v1.local.example.com")
