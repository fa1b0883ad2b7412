"""The audit log on a real ``k8py server`` with real kubectl: ``kubectl create secret`` as alice is
recorded with her name, the verb, the object and the answer's code (and the authorizer's decision);
a RequestResponse rule records the bodies; a forbidden request is recorded with its 403; the log is
rotated by size into lumberjack-named backups; a malformed policy refuses to start naming the line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import KUBECTL, Server, free_port, start_server, wait

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    userGroups: [system:nodes, system:serviceaccounts]
  - level: None
    users: [system:kube-controller-manager, system:kube-scheduler, system:k8py-dns]
  - level: None
    nonResourceURLs: ["/readyz*", "/healthz*", "/livez*", "/version", "/api*", "/openapi*"]
  - level: Metadata
    resources: [{group: "", resources: [secrets]}]
  - level: RequestResponse
    resources: [{group: "", resources: [configmaps]}]
  - level: Metadata
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    tmp = tmp_path_factory.mktemp("audit")
    (tmp / "policy.yaml").write_text(POLICY)
    s = start_server(tmp, "--audit-policy-file", str(tmp / "policy.yaml"), "--audit-log-path",
                     str(tmp / "logs" / "audit.log"), "--audit-log-maxsize", "1", "--audit-log-maxbackup", "2")
    yield s
    s.stop()


def audit_log(cluster: Server) -> Path:
    return cluster.data_dir.parent / "logs" / "audit.log"


def events(cluster: Server) -> list[dict[str, Any]]:
    d = audit_log(cluster).parent
    out = []
    for p in sorted(d.iterdir()):
        out += [json.loads(line) for line in p.read_text().splitlines() if line]
    return out


def user_kubeconfig(cluster: Server, user: str, groups: str) -> str:
    token = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "-d", str(cluster.data_dir),
                            "--user", user, "--groups", groups], capture_output=True, text=True,
                           check=True).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    cfg = {**admin, "users": [{"name": "default", "user": {"token": token}}]}
    path = cluster.data_dir.parent / f"{user}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return str(path)


def find(cluster: Server, what: str, **match: Any) -> list[dict[str, Any]]:
    def hits() -> list[dict[str, Any]]:
        return [e for e in events(cluster) if all(_get(e, k) == v for k, v in match.items())]

    return wait(hits, 15, what)  # type: ignore[no-any-return]


def _get(e: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(e, dict):
            return None
        e = e.get(part)  # type: ignore[assignment]
    return e


def test_kubectl_create_secret_as_alice_is_recorded(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "audit-a")
    cluster.kubectl("create", "rolebinding", "alice-edit", "-n", "audit-a", "--clusterrole=edit", "--user=alice")
    alice = user_kubeconfig(cluster, "alice", "dev")
    wait(lambda: cluster.kubectl("--kubeconfig", alice, "create", "secret", "generic", "from-alice", "-n", "audit-a",
                                 "--from-literal=password=hunter2", check=False).returncode == 0, 20,
         "alice may create secrets")
    [ev] = find(cluster, "alice's create", verb="create", **{"user.username": "alice",
                                                             "objectRef.name": "from-alice"})
    assert ev["kind"] == "Event" and ev["apiVersion"] == "audit.k8s.io/v1"
    assert ev["level"] == "Metadata" and ev["stage"] == "ResponseComplete"
    assert ev["user"]["groups"] == ["dev", "system:authenticated"]
    assert ev["objectRef"] == {"resource": "secrets", "namespace": "audit-a", "name": "from-alice",
                               "apiVersion": "v1"}
    assert ev["responseStatus"] == {"metadata": {}, "code": 201}
    assert ev["requestURI"].startswith("/api/v1/namespaces/audit-a/secrets?")
    assert ev["userAgent"].startswith("kubectl/") and ev["sourceIPs"] == ["127.0.0.1"]
    assert ev["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert ev["annotations"]["authorization.k8s.io/reason"] == ('RBAC: allowed by RoleBinding "alice-edit/audit-a" '
                                                                'of ClusterRole "edit" to User "alice"')
    assert "requestObject" not in ev and "responseObject" not in ev  # Metadata: never the Secret's data
    assert not [e for e in events(cluster) if "hunter2" in json.dumps(e) or "aHVudGVyMg" in json.dumps(e)]
    assert not [e for e in events(cluster) if e["stage"] == "RequestReceived"]  # omitted by the policy

    p = cluster.kubectl("--kubeconfig", alice, "get", "secrets", "-n", "default", check=False)
    assert p.returncode == 1
    [denied] = find(cluster, "alice's 403", verb="list", **{"user.username": "alice", "objectRef.namespace": "default"})
    assert denied["responseStatus"]["code"] == 403 and denied["responseStatus"]["reason"] == "Forbidden"
    assert denied["annotations"]["authorization.k8s.io/decision"] == "forbid"


def test_request_response_rule_records_the_bodies(cluster: Server) -> None:
    cluster.kubectl("create", "configmap", "audited", "-n", "default", "--from-literal=colour=blue")
    [ev] = find(cluster, "the configmap's create", verb="create", **{"objectRef.name": "audited"})
    assert ev["level"] == "RequestResponse"
    assert ev["user"]["username"] == "system:admin"
    assert ev["requestObject"]["data"] == {"colour": "blue"}
    assert ev["requestObject"]["kind"] == "ConfigMap"
    assert ev["responseObject"]["data"] == {"colour": "blue"}
    assert ev["responseObject"]["metadata"]["uid"]


def test_a_watch_is_recorded_when_it_starts_and_ends(cluster: Server) -> None:
    cluster.kubectl("get", "configmaps", "-n", "default", "--watch", "--request-timeout=2s", check=False)
    stages = [e["stage"] for e in find(cluster, "a watch", verb="watch", **{"objectRef.resource": "configmaps"})]
    assert "ResponseStarted" in stages
    wait(lambda: "ResponseComplete" in [e["stage"] for e in events(cluster) if e.get("verb") == "watch"
                                        and _get(e, "objectRef.resource") == "configmaps"], 15, "the watch's end")


def test_the_log_is_rotated_by_size(cluster: Server) -> None:
    blob = cluster.data_dir.parent / "blob"
    blob.write_text("x" * 200_000)
    for i in range(8):  # each create logs its body twice (request and response): 8 * 400 KB > 1 MB
        cluster.kubectl("create", "configmap", f"big-{i}", "-n", "default", f"--from-file=blob={blob}")
    log_dir = audit_log(cluster).parent

    def backups() -> list[str]:
        return sorted(p.name for p in log_dir.iterdir() if p.name != "audit.log")

    got = wait(lambda: len(backups()) == 2 and backups(), 15, "two rotated files")
    for name in got:
        assert name.startswith("audit-") and name.endswith(".log") and len(name) == len("audit-2026-12-06T18-30-00.123.log")
        assert (log_dir / name).stat().st_size <= 1024 * 1024
    assert len(find(cluster, "the last big create", verb="create", **{"objectRef.name": "big-7"})) == 1


def test_a_malformed_policy_refuses_to_start_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n  - level: Loud\n")
    p = subprocess.run([sys.executable, "-m", "k8py.cli", "server", "--data-dir", str(tmp_path / "data"),
                        "--https-listen-port", str(free_port()), "--bind-address", "127.0.0.1", "--disable-agent",
                        "--audit-policy-file", str(bad), "--audit-log-path", str(tmp_path / "a.log")], check=False,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert (f'{bad}:5: rules[1].level: Unsupported value: "Loud": supported values: "None", "Metadata", "Request", '
            '"RequestResponse"') in p.stderr


def test_pod_security_audit_annotations_are_in_the_event(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "audit-ps")
    cluster.kubectl("label", "namespace", "audit-ps", "pod-security.kubernetes.io/audit=restricted")
    cluster.kubectl("run", "priv", "-n", "audit-ps", "--image=busybox:1.36", "--restart=Never",
                    '--overrides={"spec":{"containers":[{"name":"priv","image":"busybox:1.36",'
                    '"securityContext":{"privileged":true}}]}}')
    [ev] = find(cluster, "the pod's create", verb="create", **{"objectRef.resource": "pods", "objectRef.name": "priv"})
    ann = ev["annotations"]
    assert ann["pod-security.kubernetes.io/enforce-policy"] == "privileged:latest"
    assert 'privileged (container "priv" must not set securityContext.privileged=true)' in \
        ann["pod-security.kubernetes.io/audit-violations"]


def test_impersonation_names_both_users(cluster: Server) -> None:
    cluster.kubectl("--as", "bob", "--as-group", "ops", "get", "pods", "-n", "default", check=False)
    [ev] = find(cluster, "bob's list", verb="list", **{"impersonatedUser.username": "bob"})
    assert ev["user"]["username"] == "system:admin"
    assert ev["impersonatedUser"] == {"username": "bob", "groups": ["ops", "system:authenticated"]}
    assert ev["responseStatus"]["code"] == 403


def test_an_unauthenticated_request_is_recorded(cluster: Server) -> None:
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"https://127.0.0.1:{cluster.port}/api/v1/namespaces/default/secrets?who=nobody",
                               context=ctx, timeout=10)
    assert info.value.code == 401
    info.value.close()  # the error holds the response (and its socket) open
    [ev] = find(cluster, "the 401", requestURI="/api/v1/namespaces/default/secrets?who=nobody")
    assert ev["user"] == {} and ev["verb"] == "list"
    assert ev["responseStatus"] == {"metadata": {}, "status": "Failure", "message": "Unauthorized",
                                    "reason": "Unauthorized", "code": 401}
