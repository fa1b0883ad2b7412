"""The Node authorizer and NodeRestriction: the graph and the decisions (pure), then through the
API server in-process (aiohttp's test client, the in-memory store, ``Node,RBAC`` as ``k8py
server`` runs it, the whole admission chain): a node reads what its pods refer to and nothing
else, and writes only its own Node, Lease and pods."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.apiserver.test_rbac_api import ADMIN, HeaderAuthn, as_, eventually

from k8py.api.corev1 import pod_claim_names, pod_configmap_names, pod_secret_names
from k8py.apiserver import server as srv
from k8py.apiserver.admission.noderestriction import forbidden_labels
from k8py.apiserver.authn import UserInfo
from k8py.apiserver.authz import RequestAttributes, UnionAuthorizer
from k8py.apiserver.rbac import PolicyCache, RBACAuthorizer
from k8py.apiserver.rbac.bootstrap import cluster_role_bindings, cluster_roles, reconciled, without_subjects
from k8py.apiserver.rbac.node import NodeAuthorizer, NodeGraph, node_identity
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

NODE_A = UserInfo("system:node:a", groups=("system:nodes", "system:authenticated"))
NODE_B = UserInfo("system:node:b", groups=("system:nodes", "system:authenticated"))


def pod(name: str, node: str = "", ns: str = "default", **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}], **spec}
    if node:
        s["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}"},
            "spec": s}


FULL_SPEC: dict[str, Any] = {
    "serviceAccountName": "sa",
    "imagePullSecrets": [{"name": "pull"}],
    "initContainers": [{"name": "i", "image": "x", "envFrom": [{"configMapRef": {"name": "init-cm"}}]}],
    "containers": [{"name": "c", "image": "x",
                    "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                            {"name": "C", "value": "plain"}],
                    "envFrom": [{"secretRef": {"name": "envfrom-secret"}}]}],
    "ephemeralContainers": [{"name": "e", "image": "x", "envFrom": [{"secretRef": {"name": "debug-secret"}}]}],
    "volumes": [
        {"name": "s", "secret": {"secretName": "vol-secret"}},
        {"name": "m", "configMap": {"name": "vol-cm"}},
        {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                {"configMap": {"name": "proj-cm"}},
                                                {"serviceAccountToken": {"path": "token"}}]}},
        {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}},
        {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
        {"name": "empty", "emptyDir": {}},
    ],
}


# --------------------------------------------------------------------------- what a pod refers to


def test_pod_references_are_kubes_visitors() -> None:
    p = pod("web", "a", **FULL_SPEC)
    assert pod_secret_names(p) == {"pull", "env-secret", "envfrom-secret", "debug-secret", "vol-secret",
                                   "proj-secret", "csi-secret"}
    assert pod_configmap_names(p) == {"init-cm", "env-cm", "vol-cm", "proj-cm"}
    assert pod_claim_names(p) == {"data", "web-scratch"}
    assert pod_secret_names(pod("bare")) == set()


# --------------------------------------------------------------------------- the graph


def test_graph_edges_follow_bound_pods() -> None:
    g = NodeGraph()
    g.set_pod("default", "web", pod("web", "a", **FULL_SPEC))
    for vertex, name in [("secret", "vol-secret"), ("secret", "debug-secret"), ("configmap", "proj-cm"),
                         ("pvc", "data"), ("pvc", "web-scratch"), ("serviceAccount", "sa"), ("pod", "web")]:
        assert g.has_path(vertex, "default", name, "a"), (vertex, name)
        assert not g.has_path(vertex, "default", name, "b"), (vertex, name)
        assert not g.has_path(vertex, "other", name, "a"), "an edge is within the pod's namespace"
    assert not g.has_path("secret", "default", "unrelated", "a")
    # an unbound pod gives nothing
    g.set_pod("default", "pending", pod("pending", "", volumes=[{"name": "s", "secret": {"secretName": "p"}}]))
    assert not g.has_path("secret", "default", "p", "a")
    # two pods share a secret: deleting one keeps the other's edge
    g.set_pod("default", "web2", pod("web2", "a", volumes=[{"name": "s", "secret": {"secretName": "vol-secret"}}]))
    g.set_pod("default", "web", None)
    assert g.has_path("secret", "default", "vol-secret", "a")
    assert not g.has_path("configmap", "default", "proj-cm", "a")
    g.set_pod("default", "web2", None)
    assert not g.has_path("secret", "default", "vol-secret", "a")
    assert not g._reach, "nothing is left behind"


def test_graph_follows_what_can_change_in_a_bound_pod() -> None:
    g = NodeGraph()
    p = pod("web", "a", volumes=[{"name": "s", "secret": {"secretName": "s1"}}])
    g.set_pod("default", "web", p)
    # a status write: nothing to redo
    g.set_pod("default", "web", {**p, "status": {"phase": "Running"}})
    assert g.has_path("secret", "default", "s1", "a")
    # an ephemeral container (kubectl debug) adds what it refers to
    debug = copy.deepcopy(p)
    debug["spec"]["ephemeralContainers"] = [{"name": "d", "image": "x", "envFrom": [{"secretRef": {"name": "dbg"}}]}]
    g.set_pod("default", "web", debug)
    assert g.has_path("secret", "default", "dbg", "a") and g.has_path("secret", "default", "s1", "a")
    # the same name, another pod (a new uid)
    again = pod("web", "a", volumes=[{"name": "s", "secret": {"secretName": "s2"}}])
    again["metadata"]["uid"] = "uid-web-2"
    g.set_pod("default", "web", again)
    assert g.has_path("secret", "default", "s2", "a") and not g.has_path("secret", "default", "s1", "a")


def test_graph_mirror_pods_and_rebinding() -> None:
    g = NodeGraph()
    mirror = pod("static", "a", volumes=[{"name": "s", "secret": {"secretName": "x"}}])
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    g.set_pod("default", "static", mirror)
    assert g.has_path("pod", "default", "static", "a")
    assert not g.has_path("secret", "default", "x", "a"), "a mirror pod grants nothing"
    # the same name, recreated on another node
    g.set_pod("default", "job", pod("job", "a", volumes=[{"name": "s", "secret": {"secretName": "y"}}]))
    g.set_pod("default", "job", pod("job", "b", volumes=[{"name": "s", "secret": {"secretName": "y"}}]))
    assert g.has_path("secret", "default", "y", "b") and not g.has_path("secret", "default", "y", "a")


def test_graph_persistent_volumes() -> None:
    g = NodeGraph()
    pv = {"metadata": {"name": "pv1"}, "spec": {"claimRef": {"namespace": "default", "name": "data"},
                                                 "csi": {"driver": "d", "nodeStageSecretRef": {"name": "stage"},
                                                         "controllerPublishSecretRef": {"name": "ctl"}}}}
    g.set_pv("pv1", pv)
    assert not g.has_path("pv", "", "pv1", "a"), "no pod uses the claim yet"
    g.set_pod("default", "db", pod("db", "a", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]))
    assert g.has_path("pv", "", "pv1", "a") and not g.has_path("pv", "", "pv1", "b")
    assert g.has_path("secret", "default", "stage", "a"), "node <- pod <- pvc <- pv <- secret"
    assert not g.has_path("secret", "default", "ctl", "a"), "a controller secret is not the node's"
    g.set_pv("pv1", {"metadata": {"name": "pv1"}, "spec": {}})  # released
    assert not g.has_path("pv", "", "pv1", "a") and not g.has_path("secret", "default", "stage", "a")


# --------------------------------------------------------------------------- decisions


def ra(verb: str, resource: str, name: str = "", ns: str = "default", group: str = "", sub: str = "",
       fields: tuple[tuple[str, str, str], ...] = ()) -> RequestAttributes:
    return RequestAttributes(verb=verb, api_group=group, resource=resource, subresource=sub, namespace=ns, name=name,
                             is_resource_request=True, api_version="v1", field_requirements=fields)


def test_node_identity() -> None:
    assert node_identity(NODE_A) == ("a", True)
    assert node_identity(UserInfo("system:node:a", groups=("system:authenticated",))) == ("", False)
    assert node_identity(UserInfo("alice", groups=("system:nodes",))) == ("", False)
    assert node_identity(UserInfo("system:node:", groups=("system:nodes",))) == ("", True)


def test_node_decisions_are_kubes() -> None:
    g = NodeGraph()
    g.set_pod("default", "web", pod("web", "a", **FULL_SPEC))
    auth = NodeAuthorizer(g)
    no_rel = "no relationship found between node 'b' and this object"
    cases: list[tuple[UserInfo, RequestAttributes, tuple[bool, str]]] = [
        (NODE_A, ra("get", "secrets", "vol-secret"), (True, "")),
        (NODE_A, ra("watch", "secrets", "vol-secret"), (True, "")),  # a watch of one name
        (NODE_B, ra("get", "secrets", "vol-secret"), (False, no_rel)),
        (NODE_A, ra("list", "secrets"), (False, "No Object name found")),
        (NODE_A, ra("update", "secrets", "vol-secret"), (False, "can only read resources of this type")),
        (NODE_A, ra("get", "secrets", "vol-secret", ns=""), (False, "can only read namespaced object of this type")),
        (NODE_A, ra("get", "configmaps", "env-cm"), (True, "")),
        (NODE_A, ra("get", "persistentvolumeclaims", "data"), (True, "")),
        (NODE_A, ra("list", "persistentvolumeclaims", "data"),
         (False, "can only get individual resources of this type")),
        (NODE_A, ra("patch", "persistentvolumeclaims", "data", sub="status"), (True, "")),
        (NODE_A, ra("create", "serviceaccounts", "sa", sub="token"), (True, "")),
        (NODE_B, ra("create", "serviceaccounts", "sa", sub="token"), (False, no_rel)),
        (NODE_A, ra("get", "serviceaccounts", "sa"), (False, "can only create tokens for individual service accounts")),
        # its own Node by name; others' not
        (NODE_A, ra("get", "nodes", "a", ns=""), (True, "")),
        (NODE_A, ra("get", "nodes", "b", ns=""), (False, "node 'a' cannot read 'b', only its own Node object")),
        (NODE_A, ra("list", "nodes", ns=""), (False, "node 'a' cannot read all nodes, only its own Node object")),
        (NODE_A, ra("patch", "nodes", "b", ns="", sub="status"), (True, "")),  # NodeRestriction's to refuse
        (NODE_A, ra("delete", "nodes", "a", ns=""), (False, "")),
        # pods bound to it
        (NODE_A, ra("get", "pods", "web"), (True, "")),
        (NODE_B, ra("get", "pods", "web"), (False, no_rel)),
        (NODE_A, ra("watch", "pods", ns="", fields=(("spec.nodeName", "=", "a"),)), (True, "")),
        (NODE_A, ra("watch", "pods", ns="", fields=(("spec.nodeName", "=", "b"),)),
         (False, "can only list/watch pods with spec.nodeName field selector")),
        (NODE_A, ra("list", "pods"), (False, "can only list/watch pods with spec.nodeName field selector")),
        (NODE_A, ra("patch", "pods", "x", sub="status"), (True, "")),
        (NODE_A, ra("create", "pods", "x", sub="eviction"), (True, "")),
        (NODE_A, ra("create", "pods", "x", sub="exec"), (False, "")),
        # leases: its own, in kube-node-lease
        (NODE_A, ra("update", "leases", "a", ns="kube-node-lease", group="coordination.k8s.io"), (True, "")),
        (NODE_A, ra("update", "leases", "b", ns="kube-node-lease", group="coordination.k8s.io"),
         (False, "can only access node lease with the same name as the requesting node")),
        (NODE_A, ra("get", "leases", "a", group="coordination.k8s.io"),
         (False, 'can only access leases in the "kube-node-lease" system namespace')),
        (NODE_A, ra("list", "leases", ns="kube-node-lease", group="coordination.k8s.io"),
         (False, "can only get, create, update, patch, or delete a node lease")),
        # the static rules
        (NODE_A, ra("create", "events"), (True, "")),
        (NODE_A, ra("list", "services", ns=""), (True, "")),
        (NODE_A, ra("create", "certificatesigningrequests", ns="", group="certificates.k8s.io"), (True, "")),
        (NODE_A, ra("create", "clusterrolebindings", ns="", group="rbac.authorization.k8s.io"), (False, "")),
        (NODE_A, ra("delete", "deployments", "d", group="apps"), (False, "")),
        # not nodes
        (UserInfo("alice", groups=("system:authenticated",)), ra("get", "secrets", "vol-secret"), (False, "")),
        (UserInfo("system:node:", groups=("system:nodes",)), ra("get", "secrets", "vol-secret"),
         (False, 'unknown node for user "system:node:"')),
    ]
    for user, attrs, want in cases:
        assert auth.authorize(user, attrs) == want, (user.name, attrs)


def _rbac() -> RBACAuthorizer:
    cache = PolicyCache()
    for r in cluster_roles():
        cache.put("clusterroles", "", r["metadata"]["name"], r)
    for b in cluster_role_bindings():
        cache.put("clusterrolebindings", "", b["metadata"]["name"], b)
    return RBACAuthorizer(cache)


def test_node_then_rbac() -> None:
    g = NodeGraph()
    g.set_pod("default", "web", pod("web", "a", volumes=[{"name": "s", "secret": {"secretName": "s1"}}]))
    rbac = _rbac()
    union = UnionAuthorizer(NodeAuthorizer(g), rbac)
    assert union.authorize(NODE_A, ra("get", "secrets", "s1")) == (True, "")
    assert union.authorize(NODE_B, ra("get", "secrets", "s1")) == (
        False, "no relationship found between node 'b' and this object")
    # what the Node authorizer has no opinion on, RBAC's bindings may still allow: nodes list Nodes
    # for their routes (k8py:node-network), and renew their own client certificates
    ok, reason = union.authorize(NODE_A, ra("list", "nodes", ns=""))
    assert ok and "k8py:node-network" in reason
    assert union.authorize(NODE_A, ra("get", "nodes", "b", ns="")) == (
        False, "node 'a' cannot read 'b', only its own Node object")
    assert union.authorize(NODE_A, ra("create", "certificatesigningrequests", ns="", group="certificates.k8s.io",
                                      sub="selfnodeclient"))[0]
    # RBAC alone gives a node nothing of kube's node rules any more
    assert not rbac.authorize(NODE_A, ra("get", "secrets", "s1"))[0]
    assert not rbac.authorize(NODE_A, ra("create", "events"))[0]
    # a denial's reasons are every authorizer's, joined by newlines (kube's union)
    class Says:
        def __init__(self, reason: str) -> None:
            self.reason = reason

        def authorize(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
            return False, self.reason

    assert UnionAuthorizer(Says("one"), Says(""), Says("two")).authorize(NODE_A, ra("get", "pods")) == (
        False, "one\ntwo")
    rules, errs = union.rules_for(NODE_A, "default")
    assert errs == ["node authorizer does not support user rule resolution"]
    assert any("/api" in r.non_resource_urls for r in rules), "RBAC's rules (system:discovery) are there"


def test_field_selector_is_not_in_rbacs_cache_key() -> None:
    one = ra("list", "pods", fields=(("spec.nodeName", "=", "a"),))
    two = ra("list", "pods", fields=(("spec.nodeName", "=", "b"),))
    assert one == two and hash(one) == hash(two)


def test_reconcile_retires_the_legacy_node_binding() -> None:
    expected = next(b for b in cluster_role_bindings() if b["metadata"]["name"] == "system:node")
    assert "subjects" not in expected
    legacy = copy.deepcopy(expected)
    legacy["subjects"] = [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:nodes"},
                          {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "someone"}]
    retired = ({"kind": "Group", "name": "system:nodes"},)
    base = without_subjects(legacy, retired)
    assert base["subjects"] == [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "someone"}]
    assert reconciled(base, expected) is None, "what a user added is kept"
    assert "subjects" not in without_subjects({**legacy, "subjects": legacy["subjects"][:1]}, retired)
    assert without_subjects(expected, retired) is expected


def test_forbidden_labels() -> None:
    assert forbidden_labels({"kubernetes.io/hostname": "a", "node.kubernetes.io/instance-type": "x",
                             "kubelet.kubernetes.io/x": "1", "example.com/team": "t", "plain": "p"}, None) == []
    assert forbidden_labels({"node-restriction.kubernetes.io/trusted": "1", "foo.k8s.io/x": "1",
                             "node-role.kubernetes.io/control-plane": ""}, {}) == [
        "foo.k8s.io/x", "node-restriction.kubernetes.io/trusted", "node-role.kubernetes.io/control-plane"]
    # removing a protected label is a change too; an unchanged one is not
    assert forbidden_labels({}, {"node-role.kubernetes.io/worker": ""}) == ["node-role.kubernetes.io/worker"]
    assert forbidden_labels({"node-role.kubernetes.io/worker": ""}, {"node-role.kubernetes.io/worker": ""}) == []


# --------------------------------------------------------------------------- through the API server

A = as_("system:node:a", "system:nodes")
B = as_("system:node:b", "system:nodes")
API = "/api/v1/namespaces/default"


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[TestClient]:
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    node = NodeAuthorizer()
    authz = UnionAuthorizer(node, RBACAuthorizer())
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store, authenticator=HeaderAuthn(), authorizer=authz)
    await cp.bootstrap()
    task = await authz.start(cp)
    cp.http.ready = True
    async with TestClient(TestServer(cp.http.build())) as c:
        c.node_authz = node  # type: ignore[attr-defined]
        yield c
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.close()


async def _create(api: TestClient, path: str, body: dict[str, Any], headers: dict[str, str] = ADMIN) -> Any:
    r = await api.post(path, json=body, headers=headers)
    assert r.status == 201, await r.text()
    return await r.json()


async def _nodes_and_pods(api: TestClient) -> None:
    for n in ("a", "b"):
        await _create(api, "/api/v1/nodes", {"metadata": {"name": n}}, as_(f"system:node:{n}", "system:nodes"))
    await _create(api, f"{API}/secrets", {"metadata": {"name": "s1"}, "stringData": {"k": "v"}})
    await _create(api, f"{API}/configmaps", {"metadata": {"name": "cm1"}, "data": {"k": "v"}})
    await _create(api, f"{API}/pods", pod("on-a", "a", volumes=[{"name": "s", "secret": {"secretName": "s1"}}],
                                          containers=[{"name": "c", "image": "busybox", "envFrom": [
                                              {"configMapRef": {"name": "cm1"}}]}]))
    await _create(api, f"{API}/pods", pod("on-b", "b"))

    async def in_graph() -> bool:
        return bool(api.node_authz.graph.has_path("secret", "default", "s1", "a"))  # type: ignore[attr-defined]
    await eventually(in_graph)


async def test_a_node_reads_only_its_pods_objects(api: TestClient) -> None:
    await _nodes_and_pods(api)
    assert (await api.get(f"{API}/secrets/s1", headers=A)).status == 200
    assert (await api.get(f"{API}/configmaps/cm1", headers=A)).status == 200
    r = await api.get(f"{API}/secrets/s1", headers=B)
    assert r.status == 403
    body = await r.json()
    assert body["message"] == ('secrets "s1" is forbidden: User "system:node:b" cannot get resource "secrets" in '
                               'API group "" in the namespace "default": no relationship found between node \'b\' '
                               "and this object")
    assert body["details"] == {"name": "s1", "kind": "secrets"}
    # a watch of that one name (what the agent's volume manager does) too, and no list of all
    r = await api.get(f"{API}/secrets?fieldSelector=metadata.name%3Ds1", headers=A)
    assert r.status == 200 and [i["metadata"]["name"] for i in (await r.json())["items"]] == ["s1"]
    assert (await api.get(f"{API}/secrets", headers=A)).status == 403
    # its pods, listed by node name; not everyone's
    r = await api.get("/api/v1/pods?fieldSelector=spec.nodeName%3Da", headers=A)
    assert r.status == 200 and [i["metadata"]["name"] for i in (await r.json())["items"]] == ["on-a"]
    r = await api.get("/api/v1/pods", headers=A)
    assert r.status == 403
    assert (await r.json())["message"].endswith("can only list/watch pods with spec.nodeName field selector")
    assert (await api.get(f"{API}/pods/on-b", headers=A)).status == 403
    assert (await api.get(f"{API}/pods/on-a", headers=A)).status == 200
    # the edge goes with the pod
    r = await api.delete(f"{API}/pods/on-a?gracePeriodSeconds=0", headers=ADMIN)
    assert r.status == 200

    async def forbidden_now() -> bool:
        return (await api.get(f"{API}/secrets/s1", headers=A)).status == 403
    await eventually(forbidden_now)


async def test_a_nodes_rules_review_is_incomplete(api: TestClient) -> None:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
              "spec": {"namespace": "default"}}
    r = await api.post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", json=review, headers=A)
    assert r.status == 201
    st = (await r.json())["status"]
    assert st["incomplete"] is True
    assert st["evaluationError"] == "node authorizer does not support user rule resolution"
    # RBAC's rules are listed all the same (discovery, and the Node reads of k8py:node-network)
    assert {"verbs": ["list", "watch"], "apiGroups": [""], "resources": ["nodes"]} in st["resourceRules"]
    r = await api.post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", json=review,
                       headers=as_("alice", "dev"))
    st = (await r.json())["status"]
    assert st["incomplete"] is False and "evaluationError" not in st


async def test_a_node_writes_only_its_own(api: TestClient) -> None:
    await _nodes_and_pods(api)
    # its own Node's status, not another's
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    hdr = {"Content-Type": "application/merge-patch+json"}
    r = await api.patch("/api/v1/nodes/a/status", json=patch, headers={**A, **hdr})
    assert r.status == 200, await r.text()
    r = await api.patch("/api/v1/nodes/b/status", json=patch, headers={**A, **hdr})
    assert r.status == 403
    body = await r.json()
    assert body["message"] == 'nodes "b" is forbidden: node "a" is not allowed to modify node "b"'
    assert body["details"] == {"name": "b", "kind": "nodes"}
    r = await api.patch("/api/v1/nodes/a", json={"metadata": {"labels": {"node-role.kubernetes.io/master": ""}}},
                        headers={**A, **hdr})
    assert r.status == 403
    assert (await r.json())["message"] == ('nodes "a" is forbidden: is not allowed to modify labels: '
                                           "node-role.kubernetes.io/master")
    r = await api.patch("/api/v1/nodes/a", json={"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}},
                        headers={**A, **hdr})
    assert r.status == 403 and (await r.json())["message"].endswith('node "a" is not allowed to modify taints')
    r = await api.patch("/api/v1/nodes/a", json={"metadata": {"labels": {"example.com/team": "x"}}},
                        headers={**A, **hdr})
    assert r.status == 200
    r = await api.post("/api/v1/nodes", json={"metadata": {"name": "c", "labels": {}}}, headers=A)
    assert r.status == 403 and (await r.json())["message"] == (
        'nodes "c" is forbidden: node "a" is not allowed to modify node "c"')
    # pods: the status and the delete of its own only
    r = await api.patch(f"{API}/pods/on-b/status", json={"status": {"phase": "Running"}}, headers={**A, **hdr})
    assert r.status == 403 and (await r.json())["message"] == (
        'pods "on-b" is forbidden: node "a" can only update pod status for pods with spec.nodeName set to itself')
    r = await api.patch(f"{API}/pods/on-a/status", json={"status": {"phase": "Running"}}, headers={**A, **hdr})
    assert r.status == 200, await r.text()
    r = await api.delete(f"{API}/pods/on-b", headers=A)
    assert r.status == 403 and (await r.json())["message"] == (
        'pods "on-b" is forbidden: node "a" can only delete pods with spec.nodeName set to itself')
    assert (await api.get(f"{API}/pods/on-b", headers=ADMIN)).status == 200, "a refused delete changes nothing"
    r = await api.post(f"{API}/pods/on-b/eviction", headers=A, json={
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "on-b", "namespace": "default"}})
    assert r.status == 403 and (await r.json())["message"] == (
        'pods "on-b" is forbidden: node a can only evict pods with spec.nodeName set to itself')
    r = await api.delete(f"{API}/pods/nothere", headers=A)
    assert r.status == 404
    # a pod of its own making must be a mirror pod of its own, referring to nothing
    r = await api.post(f"{API}/pods", json=pod("mine", "a"), headers=A)
    assert r.status == 403 and (await r.json())["message"] == (
        'pods "mine" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "a" can only '
        "create mirror pods")
    node_a = await (await api.get("/api/v1/nodes/a", headers=A)).json()
    mirror = pod("static-a", "a")
    mirror["metadata"].pop("uid")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "h"}
    mirror["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": "a", "controller": True,
                                              "uid": node_a["metadata"]["uid"]}]
    bad = copy.deepcopy(mirror)
    bad["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "s1"}}]
    bad["spec"]["containers"][0]["volumeMounts"] = [{"name": "s", "mountPath": "/s"}]
    r = await api.post(f"{API}/pods", json=bad, headers=A)
    # the ServiceAccount plugin, before NodeRestriction in the chain, refuses it first (as kube's)
    assert r.status == 403 and (await r.json())["message"] == (
        'pods "static-a" is forbidden: a mirror pod may not reference secrets')
    bad = copy.deepcopy(mirror)
    bad["spec"]["volumes"] = [{"name": "m", "configMap": {"name": "cm1"}}]
    r = await api.post(f"{API}/pods", json=bad, headers=A)
    assert r.status == 403 and (await r.json())["message"] == (
        'pods "static-a" is forbidden: node "a" can not create pods that reference configmaps')
    assert (await api.get(f"{API}/pods/static-a", headers=ADMIN)).status == 404
    r = await api.post(f"{API}/pods", json=mirror, headers=A)
    assert r.status == 201, await r.text()
    made = await r.json()
    assert "serviceAccountName" not in made["spec"], "a mirror pod's spec is left alone"
    assert not any(v["name"].startswith("kube-api-access-") for v in made["spec"].get("volumes") or ())

    async def mirror_in_graph() -> Any:
        return api.node_authz.graph.pods.get(("default", "static-a"))  # type: ignore[attr-defined]
    edges = await eventually(mirror_in_graph)
    assert edges.node == "a" and edges.refs == frozenset(), "a mirror pod grants its node nothing"
    # its own lease only
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "b"}, "spec": {}}
    r = await api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json=lease, headers=A)
    assert r.status == 403 and (await r.json())["message"] == (
        'leases.coordination.k8s.io "b" is forbidden: can only access node lease with the same name as the '
        "requesting node")
    lease["metadata"]["name"] = "a"
    r = await api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json=lease, headers=A)
    assert r.status == 201


def _csr_pem(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


async def test_a_node_asks_certificates_for_itself_only(api: TestClient) -> None:
    def csr(name: str, cn: str) -> dict[str, Any]:
        return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"name": name},
                "spec": {"request": _csr_pem(cn), "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                         "usages": ["digital signature", "client auth"]}}

    r = await api.post("/apis/certificates.k8s.io/v1/certificatesigningrequests", json=csr("x", "system:node:b"),
                       headers=A)
    assert r.status == 403
    assert (await r.json())["message"] == ('certificatesigningrequests.certificates.k8s.io "x" is forbidden: can '
                                           "only create a node CSR with CN=system:node:a")
    r = await api.post("/apis/certificates.k8s.io/v1/certificatesigningrequests", json=csr("y", "system:node:a"),
                       headers=A)
    assert r.status == 201, await r.text()


async def test_mirror_pods_of_its_own(tmp_path: Any) -> None:
    """NodeRestriction's mirror-pod rules, the plugin alone (in the chain, the ServiceAccount
    plugin refuses a mirror pod's account and secrets first, with its own words)."""
    from k8py.api.registry import Registry
    from k8py.apiserver.admission import Attributes
    from k8py.apiserver.admission.noderestriction import NodeRestriction
    from k8py.apiserver.objects import Objects

    store = MemoryStore()
    await store.start()
    try:
        registry, objects = Registry(), Objects(store)
        nodes = registry.by_resource("", "v1", "nodes")
        pods = registry.by_resource("", "v1", "pods")
        assert nodes is not None and pods is not None
        await objects.create(nodes, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "a", "uid": "u-a"}})
        plugin = NodeRestriction(objects, registry)

        def mirror(node: str = "a", **spec: Any) -> dict[str, Any]:
            p = pod("static", node, **spec)
            p["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "h"}
            p["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": "a", "controller": True,
                                                 "uid": "u-a"}]
            return p

        async def why(p: dict[str, Any]) -> str:
            a = Attributes("CREATE", pods, "default", "static", user=NODE_A)
            try:
                await plugin.admit(a, p, None)
            except Exception as e:  # noqa: BLE001 - the refusal is what is asserted
                return str(getattr(e, "message", e))
            return ""

        assert await why(mirror()) == ""
        assert await why(mirror("b")) == (
            'pods "static" is forbidden: node "a" can only create pods with spec.nodeName set to itself')
        assert await why(mirror(serviceAccountName="sa")) == (
            'pods "static" is forbidden: node "a" can not create pods that reference a service account')
        assert await why(mirror(volumes=[{"name": "s", "secret": {"secretName": "x"}}])) == (
            'pods "static" is forbidden: node "a" can not create pods that reference secrets')
        assert await why(mirror(volumes=[{"name": "m", "configMap": {"name": "x"}}])) == (
            'pods "static" is forbidden: node "a" can not create pods that reference configmaps')
        assert await why(mirror(volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "x"}}])) == (
            'pods "static" is forbidden: node "a" can not create pods that reference persistentvolumeclaims')
        other_owner = mirror()
        other_owner["metadata"]["ownerReferences"][0]["uid"] = "u-old"
        assert await why(other_owner) == 'pods "static" is forbidden: node a UID mismatch: expected u-old got u-a'
        blocking = mirror()
        blocking["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = True
        assert await why(blocking) == (
            'pods "static" is forbidden: node "a" must not set blockOwnerDeletion on an owner reference')
        # a token only for a pod bound to this node, with the pod's uid
        await objects.create(pods, pod("web", "a"))
        await objects.create(pods, pod("far", "b"))
        sas = registry.by_resource("", "v1", "serviceaccounts")
        assert sas is not None

        async def token_why(ref: dict[str, Any] | None) -> str:
            a = Attributes("CREATE", sas, "default", "default", subresource="token", user=NODE_A)
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"audiences": ["x"], **({"boundObjectRef": ref} if ref else {})}}
            try:
                await plugin.validate(a, body, None)
            except Exception as e:  # noqa: BLE001 - the refusal is what is asserted
                return str(getattr(e, "message", e))
            return ""

        web = await objects.get(pods, "default", "web")
        uid = web["metadata"]["uid"]
        assert await token_why({"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": uid}) == ""
        assert await token_why(None) == (
            'serviceaccounts "default" is forbidden: node requested token not bound to a pod')
        assert await token_why({"apiVersion": "v1", "kind": "Pod", "name": "web"}) == (
            'serviceaccounts "default" is forbidden: node requested token with a pod binding without a uid')
        assert await token_why({"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "other"}) == (
            'serviceaccounts "default" is forbidden: the UID in the bound object reference (other) does not match '
            "the UID in record. The object might have been deleted and then recreated")
        far = await objects.get(pods, "default", "far")
        assert await token_why({"apiVersion": "v1", "kind": "Pod", "name": "far", "uid": far["metadata"]["uid"]}) == (
            'serviceaccounts "default" is forbidden: node requested token bound to a pod scheduled on a different '
            "node")
    finally:
        await store.close()


async def test_reconcile_on_start_removes_the_legacy_subject(tmp_path: Any) -> None:
    """A data directory from before the Node authorizer has system:nodes bound to system:node:
    the start's reconcile takes that subject away and keeps what a user added."""
    from k8py.apiserver.rbac.bootstrap import reconcile

    store = MemoryStore()
    await store.start()
    try:
        cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store)
        await cp.bootstrap()
        kind = cp.registry.by_resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
        assert kind is not None
        legacy = next(b for b in cluster_role_bindings() if b["metadata"]["name"] == "system:node")
        legacy = {**copy.deepcopy(legacy), "subjects": [
            {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:nodes"},
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "system:node:pinned"}]}
        await cp.objects.create(kind, legacy)
        await reconcile(cp.api, cp.objects, cp.registry)
        got = await cp.objects.get(kind, None, "system:node")
        assert got["subjects"] == [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io",
                                    "name": "system:node:pinned"}]
        net = await cp.objects.get(kind, None, "k8py:node-network")
        assert net["subjects"] == [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:nodes"}]
        rv = got["metadata"]["resourceVersion"]
        await reconcile(cp.api, cp.objects, cp.registry)
        assert (await cp.objects.get(kind, None, "system:node"))["metadata"]["resourceVersion"] == rv, \
            "nothing to do the second time"
    finally:
        await store.close()
