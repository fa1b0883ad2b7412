"""RBAC through the API server in-process (aiohttp's test client, the in-memory store): the
bootstrap policy reconciled on start, the policy cache following the store, 403s in kube's
words, escalation refused on the wire, the review kinds, impersonation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.helpers.headerauthn import HeaderAuthn, as_

from k8py.apiserver import server as srv
from k8py.apiserver.rbac import RBACAuthorizer
from k8py.apiserver.rbac.rules import covers, rule_from
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

RBAC = "/apis/rbac.authorization.k8s.io/v1"
AUTHZ = "/apis/authorization.k8s.io/v1"


ADMIN = as_("root", "system:masters")
ALICE = as_("alice", "dev")


async def eventually(cond: Any, timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await cond()
        if got:
            return got
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[TestClient]:
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    authz = RBACAuthorizer()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store, authenticator=HeaderAuthn(), authorizer=authz)
    await cp.bootstrap()
    task = await authz.start(cp)
    cp.http.ready = True
    async with TestClient(TestServer(cp.http.build())) as c:
        c.cp = cp  # type: ignore[attr-defined]
        c.authz = authz  # type: ignore[attr-defined]
        yield c
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.close()


async def bind_view(api: TestClient, ns: str = "default", user: str = "alice") -> None:
    # the aggregation controller is not running here: view's rules are given directly
    r = await api.get(f"{RBAC}/clusterroles/system:aggregate-to-view", headers=ADMIN)
    rules = (await r.json())["rules"]
    r = await api.get(f"{RBAC}/clusterroles/view", headers=ADMIN)
    view = await r.json()
    r = await api.put(f"{RBAC}/clusterroles/view", json={**view, "rules": rules}, headers=ADMIN)
    assert r.status == 200
    r = await api.post(f"{RBAC}/namespaces/{ns}/rolebindings", headers=ADMIN, json={
        "metadata": {"name": f"{user}-view"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                         "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]})
    assert r.status == 201, await r.text()


async def test_view_binding_reads_pods_not_secrets(api: TestClient) -> None:
    r = await api.get("/api/v1/namespaces/default/pods", headers=ALICE)
    assert r.status == 403
    body = await r.json()
    assert body["reason"] == "Forbidden"
    assert body["message"] == ('pods is forbidden: User "alice" cannot list resource "pods" in API group "" in '
                               'the namespace "default"')
    assert body["details"] == {"kind": "pods"}
    await bind_view(api)
    # the cache follows the store's watch: the binding is seen without a restart
    async def can_list() -> bool:
        return (await api.get("/api/v1/namespaces/default/pods", headers=ALICE)).status == 200
    await eventually(can_list)
    r = await api.get("/api/v1/namespaces/default/secrets", headers=ALICE)
    assert r.status == 403
    r = await api.post("/api/v1/namespaces/default/configmaps", headers=ALICE,
                       json={"metadata": {"name": "x"}, "data": {"a": "b"}})
    assert r.status == 403
    assert (await r.json())["message"] == ('configmaps is forbidden: User "alice" cannot create resource '
                                           '"configmaps" in API group "" in the namespace "default"')
    r = await api.get("/api/v1/namespaces/other/pods", headers=ALICE)
    assert r.status == 403, "a RoleBinding grants in its namespace only"
    # discovery is everyone's
    r = await api.get("/apis", headers=ALICE)
    assert r.status == 200


async def test_rules_review_and_access_reviews(api: TestClient) -> None:
    await bind_view(api)
    await eventually(lambda: _status(api, "/api/v1/namespaces/default/pods", ALICE, 200))
    r = await api.post(f"{AUTHZ}/selfsubjectrulesreviews", headers=ALICE,
                       json={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                             "spec": {"namespace": "default"}})
    assert r.status == 201
    st = (await r.json())["status"]
    assert st["incomplete"] is False
    assert {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]} in st["resourceRules"]
    assert any("pods" in x["resources"] and x["verbs"] == ["get", "list", "watch"] for x in st["resourceRules"])
    assert {"verbs": ["get"], "nonResourceURLs": ["/livez", "/readyz", "/healthz", "/version", "/version/"]} in \
        st["nonResourceRules"]
    r = await api.post(f"{AUTHZ}/selfsubjectrulesreviews", headers=ALICE, json={"spec": {}})
    assert r.status == 400 and (await r.json())["message"] == "no namespace on request"
    # SelfSubjectAccessReview answers for the caller
    ssar = {"spec": {"resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "default"}}}
    r = await api.post(f"{AUTHZ}/selfsubjectaccessreviews", headers=ALICE, json=ssar)
    assert (await r.json())["status"] == {"allowed": False}
    # SubjectAccessReview needs the right to create it (alice has not), and answers for the subject
    sar = {"spec": {"user": "alice", "resourceAttributes": {"verb": "list", "resource": "pods",
                                                            "namespace": "default"}}}
    r = await api.post(f"{AUTHZ}/subjectaccessreviews", headers=ALICE, json=sar)
    assert r.status == 403
    r = await api.post(f"{AUTHZ}/subjectaccessreviews", headers=ADMIN, json=sar)
    st = (await r.json())["status"]
    assert st == {"allowed": True, "reason": 'RBAC: allowed by RoleBinding "alice-view/default" of ClusterRole '
                                             '"view" to User "alice"'}
    # LocalSubjectAccessReview: the namespace must be the request's
    lsar = {"spec": {"user": "alice", "resourceAttributes": {"verb": "list", "resource": "pods",
                                                             "namespace": "default"}}}
    r = await api.post(f"{AUTHZ}/namespaces/default/localsubjectaccessreviews", headers=ADMIN, json=lsar)
    assert r.status == 201 and (await r.json())["status"]["allowed"] is True
    r = await api.post(f"{AUTHZ}/namespaces/other/localsubjectaccessreviews", headers=ADMIN, json=lsar)
    assert r.status == 400
    assert (await r.json())["message"] == "spec.resourceAttributes.namespace must match namespace: other"


async def _status(api: TestClient, path: str, headers: dict[str, str], want: int) -> bool:
    return (await api.get(path, headers=headers)).status == want


async def test_escalation_refused_on_the_wire(api: TestClient) -> None:
    await bind_view(api)
    # alice may write roles and bindings in default (admin's powers over RBAC; "*" would include
    # escalate and bind), nothing more
    r = await api.post(f"{RBAC}/namespaces/default/roles", headers=ADMIN, json={
        "metadata": {"name": "rbac-writer"},
        "rules": [{"verbs": ["get", "list", "create", "update", "patch", "delete"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles",
                                                                                            "rolebindings"]}]})
    assert r.status == 201
    r = await api.post(f"{RBAC}/namespaces/default/rolebindings", headers=ADMIN, json={
        "metadata": {"name": "alice-rbac"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                       "name": "rbac-writer"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]})
    assert r.status == 201
    await eventually(lambda: _status(api, f"{RBAC}/namespaces/default/roles", ALICE, 200))
    r = await api.post(f"{RBAC}/namespaces/default/roles", headers=ALICE, json={
        "metadata": {"name": "reader"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]})
    assert r.status == 201, await r.text()
    r = await api.post(f"{RBAC}/namespaces/default/roles", headers=ALICE, json={
        "metadata": {"name": "thief"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]})
    assert r.status == 403
    assert (await r.json())["message"] == (
        'roles.rbac.authorization.k8s.io "thief" is forbidden: user "alice" (groups=["dev" "system:authenticated"]) '
        'is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}')
    r = await api.get(f"{RBAC}/namespaces/default/roles/thief", headers=ADMIN)
    assert r.status == 404, "a refused write changes nothing"
    r = await api.post(f"{RBAC}/namespaces/default/rolebindings", headers=ALICE, json={
        "metadata": {"name": "grab"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                 "name": "cluster-admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]})
    assert r.status == 403
    assert "is attempting to grant RBAC permissions not currently held" in (await r.json())["message"]
    # an update that widens a role is refused too
    r = await api.get(f"{RBAC}/namespaces/default/roles/reader", headers=ALICE)
    reader = await r.json()
    reader["rules"][0]["resources"] = ["pods", "secrets"]
    r = await api.put(f"{RBAC}/namespaces/default/roles/reader", headers=ALICE, json=reader)
    assert r.status == 403


async def test_impersonation_on_the_wire(api: TestClient) -> None:
    r = await api.get("/api/v1/namespaces/default/pods", headers={**ALICE, "Impersonate-User": "root"})
    assert r.status == 403
    assert (await r.json())["message"] == ('users "root" is forbidden: User "alice" cannot impersonate resource '
                                           '"users" in API group "" at the cluster scope')
    # an admin impersonating alice gets alice's answers
    r = await api.get("/api/v1/namespaces/default/pods", headers={**ADMIN, "Impersonate-User": "alice"})
    assert r.status == 403
    assert 'User "alice" cannot list resource "pods"' in (await r.json())["message"]
    r = await api.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={},
                       headers={**ADMIN, "Impersonate-User": "alice", "Impersonate-Group": "dev"})
    assert (await r.json())["status"]["userInfo"] == {"username": "alice",
                                                      "groups": ["dev", "system:authenticated"]}


async def test_bootstrap_reconcile_restores_and_respects_autoupdate(api: TestClient) -> None:
    from k8py.apiserver.rbac.bootstrap import reconcile

    cp = api.cp  # type: ignore[attr-defined]
    r = await api.get(f"{RBAC}/clusterroles/system:basic-user", headers=ADMIN)
    basic = await r.json()
    r = await api.put(f"{RBAC}/clusterroles/system:basic-user", headers=ADMIN, json={**basic, "rules": []})
    assert r.status == 200
    r = await api.delete(f"{RBAC}/clusterrolebindings/system:discovery", headers=ADMIN)
    assert r.status == 200
    r = await api.get(f"{RBAC}/clusterroles/system:public-info-viewer", headers=ADMIN)
    piv = await r.json()
    piv["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = "false"
    r = await api.put(f"{RBAC}/clusterroles/system:public-info-viewer", headers=ADMIN, json={**piv, "rules": []})
    assert r.status == 200
    await reconcile(cp.api, cp.objects, cp.registry)  # what the next start does
    r = await api.get(f"{RBAC}/clusterroles/system:basic-user", headers=ADMIN)
    got = [rule_from(x) for x in (await r.json())["rules"]]
    assert covers(got, [rule_from(x) for x in basic["rules"]])[0], "the missing rules are back (broken down)"
    r = await api.get(f"{RBAC}/clusterrolebindings/system:discovery", headers=ADMIN)
    assert r.status == 200
    r = await api.get(f"{RBAC}/clusterroles/system:public-info-viewer", headers=ADMIN)
    assert (await r.json())["rules"] == [], "autoupdate: false is left alone"
    rv = (await (await api.get(f"{RBAC}/clusterroles/system:basic-user", headers=ADMIN)).json())["metadata"][
        "resourceVersion"]
    await reconcile(cp.api, cp.objects, cp.registry)
    rv2 = (await (await api.get(f"{RBAC}/clusterroles/system:basic-user", headers=ADMIN)).json())["metadata"][
        "resourceVersion"]
    assert rv == rv2, "a second reconcile writes nothing"


async def test_named_list_and_watch_are_authorized_by_name(api: TestClient) -> None:
    r = await api.post(f"{RBAC}/namespaces/default/roles", headers=ADMIN, json={
        "metadata": {"name": "one-cm"},
        "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["configmaps"],
                   "resourceNames": ["c1"]}]})
    assert r.status == 201
    r = await api.post(f"{RBAC}/namespaces/default/rolebindings", headers=ADMIN, json={
        "metadata": {"name": "one-cm"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                   "name": "one-cm"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]})
    assert r.status == 201
    cms = "/api/v1/namespaces/default/configmaps"
    await eventually(lambda: _status(api, f"{cms}/c1", ALICE, 404))
    assert (await api.get(f"{cms}?fieldSelector=metadata.name%3Dc1", headers=ALICE)).status == 200
    r = await api.get(f"{cms}?fieldSelector=metadata.name%3Dc2", headers=ALICE)
    assert r.status == 403
    assert (await r.json())["message"] == ('configmaps "c2" is forbidden: User "alice" cannot list resource '
                                           '"configmaps" in API group "" in the namespace "default"')
    assert (await api.get(cms, headers=ALICE)).status == 403
    assert (await api.get(f"{cms}?fieldSelector=metadata.namespace%3Ddefault", headers=ALICE)).status == 403


async def test_websocket_exec_needs_create(api: TestClient) -> None:
    """kube 1.35+: a WebSocket upgrade (a GET) to pods/exec, attach or portforward must also be
    allowed to create, as the SPDY POST is."""
    async def grant(verbs: list[str]) -> None:
        rules = [{"verbs": verbs, "apiGroups": [""], "resources": ["pods/exec", "pods/portforward"]}]
        r = await api.get(f"{RBAC}/namespaces/default/roles/exec", headers=ADMIN)
        if r.status == 404:
            r = await api.post(f"{RBAC}/namespaces/default/roles", headers=ADMIN,
                               json={"metadata": {"name": "exec"}, "rules": rules})
        else:
            r = await api.put(f"{RBAC}/namespaces/default/roles/exec", headers=ADMIN,
                              json={**(await r.json()), "rules": rules})
        assert r.status in (200, 201), await r.text()

    await grant(["get"])
    r = await api.post(f"{RBAC}/namespaces/default/rolebindings", headers=ADMIN, json={
        "metadata": {"name": "exec"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                 "name": "exec"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]})
    assert r.status == 201
    ws = {**ALICE, "Upgrade": "websocket", "Connection": "Upgrade"}
    exec_path = "/api/v1/namespaces/default/pods/p/exec?command=true"

    async def forbidden_text() -> str | None:
        r = await api.get(exec_path, headers=ws)
        return (await r.json())["message"] if r.status == 403 else None

    msg = await eventually(forbidden_text)
    assert msg == ('pods "p" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the '
                   'namespace "default"')
    await grant(["get", "create"])

    async def passes_authorization() -> bool:
        return (await api.get(exec_path, headers=ws)).status != 403

    await eventually(passes_authorization)


async def test_rules_review_reports_a_missing_role(api: TestClient) -> None:
    r = await api.post(f"{RBAC}/namespaces/default/rolebindings", headers=ADMIN, json={
        "metadata": {"name": "dangling"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                     "name": "not-there"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]})
    assert r.status == 201

    async def review() -> dict[str, Any] | None:
        r = await api.post(f"{AUTHZ}/selfsubjectrulesreviews", headers=ALICE, json={"spec": {"namespace": "default"}})
        st: dict[str, Any] = (await r.json())["status"]
        return st if "evaluationError" in st else None

    st = await eventually(review)
    assert st["evaluationError"] == 'role.rbac.authorization.k8s.io "not-there" not found'
    assert st["incomplete"] is False, "kube's RBAC resolver reports the error, not incompleteness"
    # and a request the missing role would decide says why in its 403, as kube-apiserver's does
    r = await api.get("/api/v1/namespaces/default/pods", headers=ALICE)
    assert (await r.json())["message"] == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default": '
        'RBAC: role.rbac.authorization.k8s.io "not-there" not found')
