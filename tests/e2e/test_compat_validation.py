"""Real kubectl against a real `k8py server`: what kube refuses, and what it lets through, in its words.

- a Secret or ConfigMap over 1 MiB (kube's ValidateSecret / ValidateConfigMap);
- a change of a Service's assigned clusterIP (ValidateServiceUpdate: one error, "may not change
  once set", whether or not the new address is free or in range);
- `kubectl replace` of a pod: the tolerations (DefaultTolerationSeconds) and priority fields
  (Priority) that admission added on create are added again on update, as kube's plugins do.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from .conftest import Server, manifest

MIB = 1024 * 1024
OVER = 1100 * 1024  # "a Secret of 1.1 MB"


def secret(name: str, size: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"blob": base64.b64encode(b"\x07" * size).decode()}}


# -- size limits --------------------------------------------------------------------------------


def test_secret_over_one_mib_is_refused(server: Server, ns: str) -> None:
    doc = manifest(secret("big", OVER))
    p = server.kubectl("create", "-n", ns, "-f", "-", input=doc, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == ('The Secret "big" is invalid: data: Too long: must have at most 1048576 bytes'), \
        p.stderr
    # kubectl apply also stores the manifest in an annotation, over its own limit: both reported
    p = server.kubectl("apply", "-n", ns, "-f", "-", input=doc, check=False)
    assert p.returncode == 1
    assert "data: Too long: must have at most 1048576 bytes" in p.stderr, p.stderr
    assert "metadata.annotations: Too long: must have at most 262144 bytes" in p.stderr, p.stderr
    assert server.kubectl("get", "secret", "big", "-n", ns, check=False).returncode == 1
    # exactly 1 MiB is fine
    server.kubectl("create", "-n", ns, "-f", "-", input=manifest(secret("max", MIB)))


def test_secret_size_error_is_422_invalid_with_a_cause(server: Server, ns: str) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = client.CoreV1Api(server.client())
    try:
        with pytest.raises(ApiException) as ei:
            api.create_namespaced_secret(ns, secret("big2", OVER))
    finally:
        api.api_client.close()
    st = json.loads(ei.value.body)
    assert ei.value.status == 422 and st["reason"] == "Invalid"
    assert st["details"]["causes"] == [{"reason": "FieldValueTooLong", "field": "data",
                                        "message": "Too long: must have at most 1048576 bytes"}]


def test_config_map_over_one_mib_is_refused(server: Server, ns: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
          "data": {"a": "x" * (MIB // 2)}, "binaryData": {"b": base64.b64encode(b"\0" * (MIB // 2 + 1)).decode()}}
    p = server.kubectl("create", "-n", ns, "-f", "-", input=manifest(cm), check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == 'The ConfigMap "big" is invalid: []: Too long: must have at most 1048576 bytes', \
        p.stderr


# -- Service clusterIP ----------------------------------------------------------------------------


def test_changing_a_service_cluster_ip_is_refused(server: Server, ns: str) -> None:
    server.kubectl("create", "service", "clusterip", "web", "--tcp=80:80", "-n", ns)
    ip = server.kjson("get", "svc", "web", "-n", ns)["spec"]["clusterIP"]
    kube_ip = server.kjson("get", "svc", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    for new in ("10.43.0.99", kube_ip, "10.99.0.1"):  # free; taken by another Service; out of range
        if new == ip:
            continue
        p = server.kubectl("patch", "svc", "web", "-n", ns, "-p", json.dumps({"spec": {"clusterIP": new}}),
                           check=False)
        assert p.returncode == 1
        assert p.stderr.strip() == (f'The Service "web" is invalid: spec.clusterIPs[0]: Invalid value: '
                                    f'["{new}"]: may not change once set'), p.stderr
    # the same through replace of the whole object
    svc = server.kjson("get", "svc", "web", "-n", ns)
    svc["spec"]["clusterIP"] = "10.43.0.98"
    p = server.kubectl("replace", "-f", "-", input=json.dumps(svc), check=False)
    assert p.returncode == 1 and "spec.clusterIPs[0]: Invalid value: [\"10.43.0.98\"]: may not change once set" \
        in p.stderr, p.stderr
    # clusterIPs that disagree with clusterIP
    p = server.kubectl("patch", "svc", "web", "-n", ns, "-p", '{"spec":{"clusterIPs":["10.43.0.97"]}}', check=False)
    assert p.stderr.strip() == ('The Service "web" is invalid: spec.clusterIPs: Invalid value: ["10.43.0.97"]: '
                                "first value must match `clusterIP`"), p.stderr
    # leaving clusterIP out keeps it (kube's patchAllocatedValues)
    server.kubectl("patch", "svc", "web", "-n", ns, "--type=json", "-p",
                   '[{"op":"remove","path":"/spec/clusterIP"},{"op":"remove","path":"/spec/clusterIPs"}]')
    got = server.kjson("get", "svc", "web", "-n", ns)["spec"]
    assert got["clusterIP"] == ip and got["clusterIPs"] == [ip]


def test_asking_for_a_taken_cluster_ip_names_the_service(server: Server, ns: str) -> None:
    kube_ip = server.kjson("get", "svc", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "taken"},
           "spec": {"clusterIP": kube_ip, "ports": [{"port": 80}]}}
    p = server.kubectl("create", "-n", ns, "-f", "-", input=manifest(svc), check=False)
    assert p.stderr.strip() == (f'The Service "taken" is invalid: spec.clusterIPs: Invalid value: ["{kube_ip}"]: '
                                f'failed to allocate IP {kube_ip}: provided IP is already allocated'), p.stderr


# -- kubectl replace of a pod ---------------------------------------------------------------------


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}


def test_replace_pod_with_only_the_image_changed(server: Server, ns: str) -> None:
    server.kubectl("create", "-n", ns, "-f", "-", input=manifest(POD))
    # what a user does: get it, change the image, replace it
    out = server.kubectl("get", "pod", "p", "-n", ns, "-o", "yaml").stdout
    server.kubectl("replace", "-f", "-", input=out.replace("image: nginx:1", "image: nginx:2"))
    assert server.kjson("get", "pod", "p", "-n", ns)["spec"]["containers"][0]["image"] == "nginx:2"


def test_replace_pod_without_the_fields_admission_added(server: Server, ns: str) -> None:
    server.kubectl("create", "-n", ns, "-f", "-", input=manifest(POD))
    created = server.kjson("get", "pod", "p", "-n", ns)
    assert [t["key"] for t in created["spec"]["tolerations"]] == [
        "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    assert created["spec"]["preemptionPolicy"] == "PreemptLowerPriority" and created["spec"]["priority"] == 0
    # The stored pod without what admission added on create (tolerations, priority,
    # preemptionPolicy): kube's DefaultTolerationSeconds and Priority plugins put them back.
    doc = yaml.safe_load(server.kubectl("get", "pod", "p", "-n", ns, "-o", "yaml").stdout)
    for f in ("tolerations", "priority", "preemptionPolicy"):
        doc["spec"].pop(f)
    doc["spec"]["containers"][0]["image"] = "nginx:3"
    server.kubectl("replace", "-f", "-", input=yaml.safe_dump(doc))
    got = server.kjson("get", "pod", "p", "-n", ns)["spec"]
    assert got["containers"][0]["image"] == "nginx:3"
    assert got["tolerations"] == created["spec"]["tolerations"]
    assert (got["priority"], got["preemptionPolicy"]) == (0, "PreemptLowerPriority")


def test_replace_pod_with_a_bare_manifest_reports_only_what_kube_reports(server: Server, ns: str) -> None:
    """A manifest of one's own lacks serviceAccountName too, which the ServiceAccount plugin sets on
    create only: kube refuses that update, naming that field, and nothing about tolerations or
    preemptionPolicy."""
    server.kubectl("create", "-n", ns, "-f", "-", input=manifest(POD))
    bare = json.loads(json.dumps(POD))
    bare["spec"]["containers"][0]["image"] = "nginx:2"
    p = server.kubectl("replace", "-n", ns, "-f", "-", input=manifest(bare), check=False)
    assert p.returncode == 1
    assert "spec.tolerations: Forbidden" not in p.stderr and "preemptionPolicy" not in p.stderr, p.stderr
    assert "tolerations:" not in p.stderr and "priority:" not in p.stderr, p.stderr  # not in the diff
    assert 'The Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than' in p.stderr
    assert 'serviceAccountName: "default"' in p.stderr, p.stderr
    # with the service account named and its token volume (both added on create, as kube's
    # ServiceAccount plugin does), it is an image change like any other
    created = server.kjson("get", "pod", "p", "-n", ns)["spec"]
    bare["spec"]["serviceAccountName"] = "default"
    bare["spec"]["volumes"] = created["volumes"]
    bare["spec"]["containers"][0]["volumeMounts"] = created["containers"][0]["volumeMounts"]
    server.kubectl("replace", "-n", ns, "-f", "-", input=manifest(bare))
    got = server.kjson("get", "pod", "p", "-n", ns)["spec"]
    assert got["containers"][0]["image"] == "nginx:2" and len(got["tolerations"]) == 2
