"""Pod Security admission on a real ``k8py server`` with real kubectl and the official Python
client (no node: admission is all the API server's): a restricted namespace refuses a
privileged pod with Pod Security's message, warn mode prints warnings on ``kubectl apply`` of a
Deployment, baseline lets in what it should, labelling a namespace warns about its existing
pods, invalid labels are refused, and ``--admission-control-config-file`` exempts a namespace
(and a wrong file stops the server from starting, naming the line)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import KUBECTL, Server, manifest, start_server, wait

PRIVILEGED_DETAIL = (
    'privileged (container "app" must not set securityContext.privileged=true), '
    'allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")')
ADMISSION_CONFIG = """\
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: privileged
    exemptions:
      namespaces: [pss-exempt]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    tmp = tmp_path_factory.mktemp("pss")
    (tmp / "admission.yaml").write_text(ADMISSION_CONFIG)
    # the audit log records pod writes, with the annotations Pod Security adds
    (tmp / "audit-policy.yaml").write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n"
        "- level: Metadata\n  resources: [{group: '', resources: [pods]}]\n  verbs: [create]\n- level: None\n")
    s = start_server(tmp, "--admission-control-config-file", str(tmp / "admission.yaml"),
                     "--audit-policy-file", str(tmp / "audit-policy.yaml"), "--audit-log-path", str(tmp / "audit.log"))
    yield s
    s.stop()


def pod(name: str, sc: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]}
    if sc is not None:
        container["securityContext"] = sc
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container], **spec}}


def warnings_of(stderr: str) -> list[str]:
    return [line.removeprefix("Warning: ") for line in stderr.splitlines() if line.startswith("Warning: ")]


def pss_warnings(stderr: str) -> list[str]:
    """Pod Security's warnings (the seed policy warns about the same objects, naming a field first)."""
    return [w for w in warnings_of(stderr) if not w.startswith(("spec.", "metadata."))]


def test_a_restricted_namespace_refuses_a_privileged_pod(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "pss-restricted")
    cluster.kubectl("label", "namespace", "pss-restricted", "pod-security.kubernetes.io/enforce=restricted")
    p = cluster.kubectl("apply", "-n", "pss-restricted", "-f", "-", input=manifest(pod("priv", {"privileged": True})),
                        check=False)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == (
        'Error from server (Forbidden): error when creating "STDIN": pods "priv" is forbidden: violates PodSecurity '
        f'"restricted:latest": {PRIVILEGED_DETAIL}')
    assert cluster.kubectl("get", "pods", "-n", "pss-restricted", "-o", "name").stdout == ""
    # a pod meeting restricted is created, without a Pod Security warning
    ok = pod("ok", {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                    "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}})
    p = cluster.kubectl("apply", "-n", "pss-restricted", "-f", "-", input=manifest(ok))
    assert p.stdout.strip() == "pod/ok created"
    assert pss_warnings(p.stderr) == []

    # the official Python client gets the same 403 Status
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    with cluster.client() as api_client:
        core = client.CoreV1Api(api_client)
        with pytest.raises(ApiException) as e:
            core.create_namespaced_pod("pss-restricted", pod("priv2", {"privileged": True}))
        assert e.value.status == 403
        body = yaml.safe_load(e.value.body)
        assert body["reason"] == "Forbidden"
        assert body["message"] == (f'pods "priv2" is forbidden: violates PodSecurity "restricted:latest": '
                                   f"{PRIVILEGED_DETAIL}")
        assert body["details"] == {"name": "priv2", "kind": "pods"}


def test_warn_mode_prints_warnings_on_kubectl_apply_of_a_deployment(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "pss-warn")
    cluster.kubectl("label", "namespace", "pss-warn", "pod-security.kubernetes.io/warn=restricted",
                    "pod-security.kubernetes.io/warn-version=v1.30")
    template = pod("x", {"privileged": True})
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}}, "spec": template["spec"]}}}
    p = cluster.kubectl("apply", "-n", "pss-warn", "-f", "-", input=manifest(deployment))
    assert p.stdout.strip() == "deployment.apps/web created"
    assert pss_warnings(p.stderr) == [f'would violate PodSecurity "restricted:v1.30": {PRIVILEGED_DETAIL}']
    # enforce never refuses a workload: the pods it would create are what enforce refuses
    cluster.kubectl("label", "namespace", "pss-warn", "pod-security.kubernetes.io/enforce=baseline")
    deployment["metadata"]["name"] = "web2"
    p = cluster.kubectl("apply", "-n", "pss-warn", "-f", "-", input=manifest(deployment))
    assert p.stdout.strip() == "deployment.apps/web2 created"

    def failed_create() -> str:
        events = cluster.kjson("get", "events", "-n", "pss-warn", "--field-selector", "reason=FailedCreate")["items"]
        return next((e["message"] for e in events if e["involvedObject"]["kind"] == "ReplicaSet"
                     and e["involvedObject"]["name"].startswith("web2-")), "")

    message = wait(failed_create, 30, "the ReplicaSet's FailedCreate event")
    assert re.fullmatch(r'Error creating: pods "web2-[a-z0-9]+-[a-z0-9]+" is forbidden: violates PodSecurity '
                        r'"baseline:latest": privileged \(container "app" must not set '
                        r"securityContext.privileged=true\)", message), message


def test_baseline_allows_what_it_should(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "pss-baseline")
    cluster.kubectl("label", "namespace", "pss-baseline", "pod-security.kubernetes.io/enforce=baseline")
    allowed = pod("allowed", {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"]}, "runAsUser": 0,
                              "allowPrivilegeEscalation": True},
                  securityContext={"sysctls": [{"name": "net.ipv4.ping_group_range", "value": "0 1000"}]},
                  volumes=[{"name": "scratch", "emptyDir": {}}])
    p = cluster.kubectl("apply", "-n", "pss-baseline", "-f", "-", input=manifest(allowed))
    assert p.stdout.strip() == "pod/allowed created"
    p = cluster.kubectl("apply", "-n", "pss-baseline", "-f", "-", input=manifest(
        pod("raw", {"capabilities": {"add": ["NET_RAW"]}}, hostNetwork=True,
            volumes=[{"name": "root", "hostPath": {"path": "/"}}])), check=False)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == (
        'Error from server (Forbidden): error when creating "STDIN": pods "raw" is forbidden: violates PodSecurity '
        '"baseline:latest": non-default capabilities (container "app" must not include "NET_RAW" in '
        'securityContext.capabilities.add), host namespaces (hostNetwork=true), hostPath volumes (volume "root")')


def test_labelling_a_namespace_warns_about_its_existing_pods(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "pss-label")
    cluster.kubectl("apply", "-n", "pss-label", "-f", "-", input=manifest(
        pod("b", {"privileged": True}), pod("a", {"privileged": True}), pod("host", hostPID=True)))
    p = cluster.kubectl("label", "namespace", "pss-label", "pod-security.kubernetes.io/enforce=baseline")
    assert p.stdout.strip() == "namespace/pss-label labeled"
    assert warnings_of(p.stderr) == [
        'existing pods in namespace "pss-label" violate the new PodSecurity enforce level "baseline:latest"',
        "a (and 1 other pod): privileged",
        "host: host namespaces"]
    # an invalid value is refused and changes nothing
    p = cluster.kubectl("label", "--overwrite", "namespace", "pss-label",
                        "pod-security.kubernetes.io/enforce=strict", check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        'The Namespace "pss-label" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: '
        '"strict": must be one of privileged, baseline, restricted')
    labels = cluster.kjson("get", "namespace", "pss-label")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"


def test_an_exempt_namespace_from_the_admission_configuration_file(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "pss-exempt")
    p = cluster.kubectl("label", "namespace", "pss-exempt", "pod-security.kubernetes.io/enforce=restricted")
    assert warnings_of(p.stderr) == []
    p = cluster.kubectl("apply", "-n", "pss-exempt", "-f", "-", input=manifest(pod("priv", {"privileged": True})))
    assert p.stdout.strip() == "pod/priv created"


def test_audit_mode_annotates_the_audit_log(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "pss-audit")
    cluster.kubectl("label", "namespace", "pss-audit", "pod-security.kubernetes.io/enforce=baseline",
                    "pod-security.kubernetes.io/audit=restricted")
    cluster.kubectl("apply", "-n", "pss-audit", "-f", "-", input=manifest(pod("audited")))
    p = cluster.kubectl("apply", "-n", "pss-audit", "-f", "-", input=manifest(pod("refused", {"privileged": True})),
                        check=False)
    assert p.returncode == 1
    log = cluster.data_dir.parent / "audit.log"

    def events() -> dict[str, Any]:
        out = {}
        for line in log.read_text().splitlines() if log.exists() else []:
            ev = json.loads(line)
            ref = ev.get("objectRef") or {}
            if ref.get("namespace") == "pss-audit" and ev.get("stage") == "ResponseComplete":
                out[ref.get("name")] = ev
        return out if {"audited", "refused"} <= out.keys() else {}

    found = wait(events, 30, "the audit events of both pods")
    detail = ('allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation'
              '=false), unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]'
              '), runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), '
              'seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to '
              '"RuntimeDefault" or "Localhost")')
    assert found["audited"]["responseStatus"]["code"] == 201
    annotations = found["audited"]["annotations"]
    assert annotations["pod-security.kubernetes.io/enforce-policy"] == "baseline:latest"
    assert annotations["pod-security.kubernetes.io/audit-violations"] == \
        f'would violate PodSecurity "restricted:latest": {detail}'
    assert found["refused"]["responseStatus"]["code"] == 403
    annotations = found["refused"]["annotations"]
    assert annotations["pod-security.kubernetes.io/enforce-policy"] == "baseline:latest"
    assert annotations["pod-security.kubernetes.io/audit-violations"].startswith(
        'would violate PodSecurity "restricted:latest": privileged (container "app" must not set '
        "securityContext.privileged=true), allowPrivilegeEscalation != false")


def test_a_wrong_admission_configuration_file_stops_the_server(tmp_path: Path) -> None:
    bad = tmp_path / "admission.yaml"
    bad.write_text(ADMISSION_CONFIG.replace("enforce: privileged", "enforce: strict"))
    p = subprocess.run([sys.executable, "-m", "k8py.cli", "server", "--data-dir", str(tmp_path / "data"),
                        "--admission-control-config-file", str(bad)], capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == 2
    assert (f"argument --admission-control-config-file: admission plugin PodSecurity: {bad}:9: "
            'plugins[0].configuration.defaults.enforce: Invalid value: "strict": must be one of privileged, '
            "baseline, restricted") in p.stderr
    assert not (tmp_path / "data").exists(), "nothing was started"
