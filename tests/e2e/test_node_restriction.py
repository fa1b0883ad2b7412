"""The Node authorizer and NodeRestriction with real kubectl and a real node: the agent of node
``a`` runs a pod that mounts a Secret (it may read it: the pod is bound to it), while another
node's credentials (``system:node:other``, a client certificate of the cluster CA in group
``system:nodes``) get kube's Forbidden for that Secret; node ``a`` cannot patch node ``b``'s
status nor delete ``b``'s pod."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import Server, manifest, wait
from tests.helpers.realnode import IMAGE, real_cluster

from k8py import pki as pki_mod
from k8py.config import ServerConfig

NS = "noderestrict"
NODE = "a"


def node_kubeconfig(s: Server, tmp: Path, node: str) -> str:
    """A kubeconfig for ``system:node:<node>``: the admin's cluster, a client certificate of the
    cluster's CA for that node."""
    pki = pki_mod.ensure_pki(ServerConfig(data_dir=str(s.data_dir)))
    cert, key = pki_mod.issue_client_certificate(pki, f"system:node:{node}", ("system:nodes",))
    cfg = yaml.safe_load(Path(s.kubeconfig).read_text())
    for u in cfg["users"]:
        u["user"] = {"client-certificate-data": base64.b64encode(cert).decode(),
                     "client-key-data": base64.b64encode(key).decode()}
    path = tmp / f"node-{node}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("noderestriction")
    with real_cluster(tmp, NODE) as s:
        configs = {n: node_kubeconfig(s, tmp, n) for n in (NODE, "b", "other")}
        s.kubectl("create", "namespace", NS)
        s.kubectl("create", "secret", "generic", "s", "-n", NS, "--from-literal=k=the-secret-value")
        s.kubectl("apply", "-f", "-", input=manifest({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader", "namespace": NS},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", "cat /s/k; echo; sleep 3600"],
                                     "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
                     "volumes": [{"name": "s", "secret": {"secretName": "s"}}]}}))
        # node b registers itself (its own Node: NodeRestriction lets it) and has a pod bound to it
        s.kubectl("create", "-f", "-", input=manifest({"apiVersion": "v1", "kind": "Node",
                                                      "metadata": {"name": "b"}}),
                  env={"KUBECONFIG": configs["b"]})
        s.kubectl("apply", "-f", "-", input=manifest({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-b", "namespace": NS},
            "spec": {"nodeName": "b", "containers": [{"name": "c", "image": IMAGE}]}}))
        try:
            yield s, configs
        finally:
            s.kubectl("delete", "namespace", NS, "--wait=false", check=False)
            s.kubectl("delete", "pod", "reader", "-n", NS, "--grace-period=1", "--wait=true", "--timeout=60s",
                      check=False)


def as_node(s: Server, configs: dict[str, str], node: str, *args: str, check: bool = False) -> Any:
    return s.kubectl(*args, env={"KUBECONFIG": configs[node]}, check=check)


def test_the_agent_reads_its_pods_secret_and_another_node_does_not(cluster: tuple[Server, dict[str, str]]) -> None:
    s, configs = cluster
    # the real agent of node a mounted the Secret under the Node authorizer's rules
    wait(lambda: s.kjson("get", "pod", "reader", "-n", NS)["status"].get("phase") == "Running", 90,
         "the pod Running")
    wait(lambda: "the-secret-value" in s.kubectl("logs", "reader", "-n", NS, check=False).stdout, 30,
         "the secret's value in the pod's log")
    p = as_node(s, configs, "other", "get", "secret", "s", "-n", NS)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        f'Error from server (Forbidden): secrets "s" is forbidden: User "system:node:other" cannot get resource '
        f'"secrets" in API group "" in the namespace "{NS}": no relationship found between node \'other\' and '
        "this object")
    p = as_node(s, configs, NODE, "get", "secret", "s", "-n", NS, "-o", "jsonpath={.data.k}")
    assert p.returncode == 0, p.stderr
    # the official Python client reads the same Status
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    for node, allowed in ((NODE, True), ("other", False)):
        cfg = client.Configuration()
        config.load_kube_config(config_file=configs[node], client_configuration=cfg)
        with client.ApiClient(cfg) as api:
            try:
                secret = client.CoreV1Api(api).read_namespaced_secret("s", NS)
                assert allowed and base64.b64decode(secret.data["k"]) == b"the-secret-value"
            except ApiException as e:
                assert not allowed and e.status == 403
                status = json.loads(e.body)
                assert status["reason"] == "Forbidden" and status["details"] == {"name": "s", "kind": "secrets"}
                assert status["message"].endswith("no relationship found between node 'other' and this object")
    # a node lists only its own pods, and reads no other node's pod
    p = as_node(s, configs, NODE, "get", "pods", "-A")
    assert p.returncode == 1 and "can only list/watch pods with spec.nodeName field selector" in p.stderr
    p = as_node(s, configs, NODE, "get", "pods", "-A", "--field-selector", f"spec.nodeName={NODE}", "-o", "name")
    assert p.returncode == 0 and p.stdout.split() == ["pod/reader"], p.stdout + p.stderr
    p = as_node(s, configs, NODE, "get", "node", "b")
    assert p.returncode == 1 and p.stderr.strip() == (
        'Error from server (Forbidden): nodes "b" is forbidden: User "system:node:a" cannot get resource "nodes" in '
        "API group \"\" at the cluster scope: node 'a' cannot read 'b', only its own Node object")
    p = as_node(s, configs, NODE, "get", "pod", "on-b", "-n", NS)
    assert p.returncode == 1 and "no relationship found between node 'a' and this object" in p.stderr
    # the admin's SubjectAccessReview gives the same answer (Node, then RBAC)
    p = s.kubectl("auth", "can-i", "get", "secret/s", "-n", NS, "--as", "system:node:other",
                  "--as-group", "system:nodes", check=False)
    assert p.stdout.strip() == "no - no relationship found between node 'other' and this object"
    p = s.kubectl("auth", "can-i", "get", "secret/s", "-n", NS, "--as", f"system:node:{NODE}",
                  "--as-group", "system:nodes", check=False)
    assert p.stdout.strip() == "yes"
    # a node's rules cannot all be listed (they follow its pods): kubectl says so
    p = s.kubectl("auth", "can-i", "--list", "-n", NS, "--as", f"system:node:{NODE}", "--as-group", "system:nodes")
    assert "Warning: the list may be incomplete: node authorizer does not support user rule resolution" in p.stderr
    assert re.search(r"^nodes\s+\[\]\s+\[\]\s+\[list watch\]$", p.stdout, re.MULTILINE), p.stdout


def test_a_node_writes_only_its_own(cluster: tuple[Server, dict[str, str]]) -> None:
    s, configs = cluster
    # kubectl patch reads the object first, and a node reads no other Node (nor a Node's status,
    # which a kubelet never reads): kube's refusal from the authorizer
    p = as_node(s, configs, NODE, "patch", "node", "b", "--subresource=status", "--type=merge",
                "-p", '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}')
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (Forbidden): nodes "b" is forbidden: User "system:node:a" cannot '
                                'get resource "nodes/status" in API group "" at the cluster scope')
    # the write itself, as a kubelet sends it: NodeRestriction's refusal
    b = s.kjson("get", "node", "b")
    b["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    p = s.kubectl("replace", "--raw", "/api/v1/nodes/b/status", "-f", "-", input=json.dumps(b),
                  env={"KUBECONFIG": configs[NODE]}, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (Forbidden): nodes "b" is forbidden: node "a" is not allowed to '
                                'modify node "b"')
    assert not (s.kjson("get", "node", "b").get("status") or {}).get("conditions"), "a refused write changes nothing"
    a = s.kjson("get", "node", NODE)
    a["metadata"].pop("resourceVersion")  # unconditional: the agent writes its status meanwhile
    p = s.kubectl("replace", "--raw", f"/api/v1/nodes/{NODE}/status", "-f", "-", input=json.dumps(a),
                  env={"KUBECONFIG": configs[NODE]}, check=False)
    assert p.returncode == 0, p.stderr
    p = as_node(s, configs, NODE, "label", "node", NODE, "node-role.kubernetes.io/control-plane=")
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (Forbidden): nodes "a" is forbidden: is not allowed to modify '
                                "labels: node-role.kubernetes.io/control-plane")
    p = as_node(s, configs, NODE, "label", "node", NODE, "example.com/rack=r1")
    assert p.returncode == 0, p.stderr
    p = as_node(s, configs, NODE, "delete", "pod", "on-b", "-n", NS, "--wait=false")
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (Forbidden): pods "on-b" is forbidden: node "a" can only delete '
                                "pods with spec.nodeName set to itself")
    assert s.kjson("get", "pod", "on-b", "-n", NS)["metadata"]["name"] == "on-b", "a refused delete changes nothing"
    # node b may delete its own pod (kubelet's final delete)
    p = as_node(s, configs, "b", "delete", "pod", "on-b", "-n", NS, "--grace-period=0", "--force", "--wait=false")
    assert p.returncode == 0, p.stderr
