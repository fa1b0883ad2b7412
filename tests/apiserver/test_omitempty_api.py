"""Built-in objects are stored and returned as kube-apiserver's Go encoder writes them: the zero
values of ``omitempty`` fields are left out, whichever verb wrote them (create, update, patch,
apply, status, dry-run), as real kubectl 1.37 and the official Python client see it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import Server

NS = "omitempty-api"


@pytest.fixture(scope="module")
def srv(server: Server) -> Iterator[Server]:
    """The session's server, in a namespace of this module's own."""
    server.kubectl("create", "namespace", NS)
    yield server
    server.kubectl("delete", "namespace", NS, "--wait=false")


def kubectl(srv: Server, *args: str, input: str | None = None) -> str:
    return srv.kubectl("-n", NS, *args, input=input).stdout


def test_kubectl_diff_after_create_shows_only_the_data_change(srv: Server, tmp_path: Path) -> None:
    kubectl(srv, "create", "configmap", "c1", "--from-literal=a=b")
    f = tmp_path / "cm.yaml"
    f.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "c1", "namespace": NS}, "data": {"a": "c"}}))
    # kubectl diff (client-side apply's patch, with metadata.annotations: {} in it, dry-run on the server)
    p = srv.kubectl("diff", "-f", str(f), check=False)
    assert p.returncode == 1, p.stderr  # 1: there are differences
    changed = [line for line in p.stdout.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["-  a: b", "+  a: c"], p.stdout
    # nothing was written by the diff
    assert json.loads(kubectl(srv, "get", "configmap", "c1", "-o", "json"))["data"] == {"a": "b"}


def test_create_returns_and_stores_no_empty_maps(srv: Server) -> None:
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c2, annotations: {}, labels: {}}\ndata: {}\n"
    for dry in (["--dry-run=server"], []):
        out = yaml.safe_load(kubectl(srv, "create", "-f", "-", "-o", "yaml", *dry, input=body))
        assert "data" not in out
        assert "annotations" not in out["metadata"] and "labels" not in out["metadata"]
    stored = json.loads(kubectl(srv, "get", "configmap", "c2", "-o", "json"))
    assert "data" not in stored and not {"annotations", "labels"} & stored["metadata"].keys()
    # a JSON null decodes to the Go zero value: nil maps, left out (not stored as null)
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "data": None,
                       "metadata": {"name": "c5", "labels": None, "annotations": None}})
    out = json.loads(kubectl(srv, "create", "-f", "-", "-o", "json", input=body))
    assert "data" not in out and not {"annotations", "labels"} & out["metadata"].keys()


def test_strategic_patch_of_an_empty_list_leaves_no_empty_list(srv: Server) -> None:
    kubectl(srv, "create", "configmap", "c3", "--from-literal=a=b")
    out = yaml.safe_load(kubectl(srv, "patch", "configmap", "c3", "--type", "strategic", "-p",
                                 '{"metadata":{"finalizers":[],"labels":{}},"data":{"a":"b"}}', "-o", "yaml"))
    assert "finalizers" not in out["metadata"] and "labels" not in out["metadata"]
    out = yaml.safe_load(kubectl(srv, "patch", "configmap", "c3", "--type", "merge", "-p",
                                 '{"data":{"a":null}}', "-o", "yaml"))
    assert "data" not in out  # the last key gone: an empty map, left out
    # server-side apply and replace go through the same door
    applied = yaml.safe_load(kubectl(srv, "apply", "--server-side", "-f", "-", "-o", "yaml", input=(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c4, labels: {}}\ndata: {k: v}\nbinaryData: {}\n")))
    assert "labels" not in applied["metadata"] and "binaryData" not in applied
    current = json.loads(kubectl(srv, "get", "configmap", "c4", "-o", "json"))
    current["metadata"]["annotations"] = {}
    current["immutable"] = False
    replaced = json.loads(kubectl(srv, "replace", "-f", "-", "-o", "json", input=json.dumps(current)))
    assert "annotations" not in replaced["metadata"]
    assert replaced["immutable"] is False  # a *bool: an explicit false stays


def test_python_client_pointer_zero_kept_omitempty_zero_dropped(srv: Server) -> None:
    from kubernetes import client

    with srv.client() as api:
        apps = client.AppsV1Api(api)
        core = client.CoreV1Api(api)
        labels = {"app": "omit"}
        dep = client.V1Deployment(
            metadata=client.V1ObjectMeta(name="d0", labels=labels, annotations={}),
            spec=client.V1DeploymentSpec(
                replicas=0, paused=False, selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(host_network=False, containers=[
                        client.V1Container(name="c", image="busybox", ports=[], args=[])]))))
        # the create's answer: what was stored, before the deployment controller annotates it
        # with its revision
        resp = apps.create_namespaced_deployment(NS, dep, _preload_content=False)
        raw: dict[str, Any] = json.loads(resp.data)
        assert raw["spec"]["replicas"] == 0  # a pointer: the explicit zero stays
        assert "paused" not in raw["spec"] and "annotations" not in raw["metadata"]
        pod = raw["spec"]["template"]["spec"]
        assert "hostNetwork" not in pod
        assert "ports" not in pod["containers"][0] and "args" not in pod["containers"][0]

        # the status subresource: an empty list of an omitempty field goes
        core.create_namespaced_service(NS, client.V1Service(
            metadata=client.V1ObjectMeta(name="s0"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], selector=labels)))
        core.patch_namespaced_service_status("s0", NS, {"status": {"loadBalancer": {"ingress": []},
                                                                        "conditions": []}})
        resp = core.read_namespaced_service_status("s0", NS, _preload_content=False)
        status = json.loads(resp.data)["status"]
        assert status == {"loadBalancer": {}}
