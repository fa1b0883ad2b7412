"""RBAC's pure parts: rule matching, coverage, kube's compact rule text, the decision cache and
its invalidation, the subject index, escalation checks and the bootstrap policy's reconciliation."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.api import errors
from k8py.api.registry import Registry
from k8py.apiserver.authn import UserInfo
from k8py.apiserver.authz import RequestAttributes, forbidden, impersonate
from k8py.apiserver.rbac import PolicyCache, RBACAuthorizer
from k8py.apiserver.rbac.bootstrap import cluster_role_bindings, cluster_roles, reconciled
from k8py.apiserver.rbac.rules import Rule, compact_rules, compact_string, covers, rule_allows, rule_from
from k8py.controllers.clusterroleaggregation import aggregated_rules

RBAC = "rbac.authorization.k8s.io"
ALICE = UserInfo("alice", groups=("dev", "system:authenticated"))


def res(verb: str, resource: str, *, group: str = "", sub: str = "", name: str = "", ns: str = "default"
        ) -> RequestAttributes:
    return RequestAttributes(verb=verb, api_group=group, resource=resource, subresource=sub, name=name, namespace=ns,
                             is_resource_request=True)


def url(verb: str, path: str) -> RequestAttributes:
    return RequestAttributes(verb=verb, path=path)


def allows(rule: dict[str, Any], a: RequestAttributes) -> bool:
    return rule_allows(rule_from(rule), verb=a.verb, is_resource_request=a.is_resource_request,
                       api_group=a.api_group, resource=a.resource, subresource=a.subresource, name=a.name,
                       path=a.path)


# ----------------------------------------------------------------------------- matching


def test_rule_matching_like_kube() -> None:
    pods = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
    assert allows(pods, res("get", "pods", name="p"))
    assert not allows(pods, res("delete", "pods", name="p"))
    assert not allows(pods, res("get", "pods", group="apps"))
    assert not allows(pods, res("get", "pods", sub="log", name="p")), "a subresource is its own resource"
    logs = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}
    assert allows(logs, res("get", "pods", sub="log", name="p"))
    assert not allows(logs, res("get", "pods", name="p"))
    any_status = {"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/status"]}
    assert allows(any_status, res("update", "deployments", group="apps", sub="status", name="d"))
    assert not allows(any_status, res("update", "deployments", group="apps", sub="scale", name="d"))
    named = {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"]}
    assert allows(named, res("get", "configmaps", name="one"))
    assert not allows(named, res("get", "configmaps", name="two"))
    assert not allows(named, res("list", "configmaps")), "a named rule never allows a list"
    star = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
    assert allows(star, res("escalate", "roles", group=RBAC, name="r"))
    assert not allows(star, url("get", "/healthz")), "resource rules do not match paths"


def test_non_resource_urls() -> None:
    rule = {"verbs": ["get"], "nonResourceURLs": ["/apis/*", "/version"]}
    assert allows(rule, url("get", "/apis/apps/v1"))
    assert allows(rule, url("get", "/apis/"))
    assert allows(rule, url("get", "/version"))
    assert not allows(rule, url("get", "/version/x"))
    assert not allows(rule, url("post", "/version"))
    assert allows({"verbs": ["*"], "nonResourceURLs": ["*"]}, url("delete", "/anything"))
    assert not allows(rule, res("get", "apis")), "URL rules do not match resource requests"


# ----------------------------------------------------------------------------- coverage


def R(verbs: str, groups: str = "", resources: str = "", names: str = "", urls: str = "") -> Rule:
    def t(s: str) -> tuple[str, ...]:
        return tuple(s.split(",")) if s else ()
    return Rule(verbs=t(verbs), api_groups=tuple(groups.split(",")) if resources else (), resources=t(resources),
                resource_names=t(names), non_resource_urls=t(urls))


def test_covers_breaks_rules_down() -> None:
    owner = [R("get,list", "", "pods,secrets"), R("*", "apps", "deployments"), R("get", "", "*/log"),
             R("get", urls="/apis/*")]
    assert covers(owner, [R("get", "", "pods")])[0]
    assert covers(owner, [R("list", "", "secrets", names="a")])[0], "all names cover one name"
    assert covers(owner, [R("delete,patch", "apps", "deployments")])[0]
    assert covers(owner, [R("get", "", "pods/log")])[0], "*/log covers pods/log"
    assert covers(owner, [R("get", urls="/apis/apps")])[0]
    ok, missing = covers(owner, [R("get,delete", "", "pods,nodes")])
    assert not ok
    assert set(missing) == {R("delete", "", "pods"), R("get", "", "nodes"), R("delete", "", "nodes")}
    # a named owner rule does not cover all names
    assert not covers([R("get", "", "configmaps", names="a")], [R("get", "", "configmaps")])[0]
    assert covers([R("get", "", "configmaps", names="a,b")], [R("get", "", "configmaps", names="b")])[0]
    assert not covers(owner, [R("get", urls="/healthz")])[0]


def test_compact_string_and_rules_like_kube() -> None:
    missing = [R("get", "", "nodes"), R("list", "", "nodes"), R("get", "", "secrets", names="s")]
    lines = sorted(compact_string(r) for r in compact_rules(missing))
    assert lines == ['{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list"]}',
                     '{APIGroups:[""], Resources:["secrets"], ResourceNames:["s"], Verbs:["get"]}']
    assert compact_string(R("*", urls="*")) == '{NonResourceURLs:["*"], Verbs:["*"]}'


# ----------------------------------------------------------------------------- the authorizer


def cluster_role(name: str, *rules: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "rules": list(rules)}


def binding(name: str, role_kind: str, role: str, *subjects: tuple[str, str], ns: str = "") -> dict[str, Any]:
    subs = []
    for kind, sname in subjects:
        if kind == "ServiceAccount":
            sa_ns, _, n = sname.rpartition("/")
            subs.append({"kind": kind, "name": n, **({"namespace": sa_ns} if sa_ns else {})})
        else:
            subs.append({"kind": kind, "name": sname, "apiGroup": RBAC})
    return {"metadata": {"name": name, "namespace": ns}, "roleRef": {"apiGroup": RBAC, "kind": role_kind,
                                                                      "name": role}, "subjects": subs}


POD_READER = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}


def test_bindings_by_user_group_and_service_account() -> None:
    cache = PolicyCache()
    auth = RBACAuthorizer(cache)
    cache.put("clusterroles", "", "pod-reader", cluster_role("pod-reader", POD_READER))
    assert auth.authorize(ALICE, res("list", "pods")) == (False, "")
    cache.put("rolebindings", "team", "b", binding("b", "ClusterRole", "pod-reader", ("Group", "dev"), ns="team"))
    assert auth.authorize(ALICE, res("list", "pods", ns="team")) == (
        True, 'RBAC: allowed by RoleBinding "b/team" of ClusterRole "pod-reader" to Group "dev"')
    assert not auth.authorize(ALICE, res("list", "pods", ns="other"))[0], "a RoleBinding is its namespace's only"
    assert not auth.authorize(ALICE, res("list", "pods", ns=""))[0]
    # a ServiceAccount subject without a namespace means the binding's namespace
    cache.put("rolebindings", "team", "sa", binding("sa", "ClusterRole", "pod-reader", ("ServiceAccount", "bot"),
                                                    ns="team"))
    bot = UserInfo("system:serviceaccount:team:bot", groups=("system:serviceaccounts",))
    assert auth.authorize(bot, res("get", "pods", ns="team", name="p")) == (
        True, 'RBAC: allowed by RoleBinding "sa/team" of ClusterRole "pod-reader" to ServiceAccount "bot/team"')
    cache.put("clusterrolebindings", "", "c", binding("c", "ClusterRole", "pod-reader", ("User", "alice")))
    assert auth.authorize(ALICE, res("list", "pods", ns=""))[0]
    assert auth.authorize(ALICE, res("list", "pods", ns="anywhere"))[0]


def test_masters_always_allowed_and_missing_role_is_the_reason() -> None:
    cache = PolicyCache()
    auth = RBACAuthorizer(cache)
    assert auth.authorize(UserInfo("root", groups=("system:masters",)), res("delete", "nodes", ns=""))[0]
    cache.put("clusterrolebindings", "", "x", binding("x", "ClusterRole", "gone", ("User", "alice")))
    assert auth.authorize(ALICE, res("get", "pods")) == (
        False, 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found')
    msg = forbidden("alice", res("get", "pods", sub="log", name="p"), "").status()["message"]
    assert msg == ('pods "p" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the '
                   'namespace "default"')
    msg = forbidden("alice", RequestAttributes(verb="list", api_group="apps", resource="deployments",
                                               is_resource_request=True), "").status()["message"]
    assert msg == ('deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group '
                   '"apps" at the cluster scope')
    assert forbidden("alice", url("get", "/metrics")).status()["message"] == (
        'forbidden: User "alice" cannot get path "/metrics"')


def test_decisions_cached_until_any_rbac_change() -> None:
    cache = PolicyCache()
    auth = RBACAuthorizer(cache)
    calls = []
    real = auth.decide

    def counting(u: UserInfo, a: RequestAttributes) -> tuple[bool, str]:
        calls.append(a)
        return real(u, a)

    auth.decide = counting  # type: ignore[method-assign]
    a = res("get", "pods", name="p")
    assert not auth.authorize(ALICE, a)[0]
    assert not auth.authorize(ALICE, a)[0]
    assert len(calls) == 1, "the second decision came from the cache"
    cache.put("clusterroles", "", "pod-reader", cluster_role("pod-reader", POD_READER))
    cache.put("rolebindings", "default", "b", binding("b", "ClusterRole", "pod-reader", ("User", "alice"),
                                                      ns="default"))
    assert auth.authorize(ALICE, a)[0], "a new binding is seen at once"
    cache.put("clusterroles", "", "pod-reader", cluster_role("pod-reader"))
    assert not auth.authorize(ALICE, a)[0], "a role losing its rules is seen at once"
    cache.put("clusterroles", "", "pod-reader", cluster_role("pod-reader", POD_READER))
    assert auth.authorize(ALICE, a)[0]
    cache.put("rolebindings", "default", "b", None)
    assert not auth.authorize(ALICE, a)[0], "a deleted binding is seen at once"
    assert not cache._ns_index, "the subject index forgets deleted bindings"
    # bounded
    small = RBACAuthorizer(PolicyCache(), max_cached=3)
    for i in range(10):
        small.authorize(ALICE, res("get", "pods", name=f"p{i}"))
    assert len(small._decisions) <= 3


def test_rules_for_lists_cluster_then_namespace_rules() -> None:
    cache = PolicyCache()
    auth = RBACAuthorizer(cache)
    cache.put("clusterroles", "", "basic", cluster_role("basic", {"verbs": ["get"], "nonResourceURLs": ["/api"]}))
    cache.put("clusterrolebindings", "", "basic", binding("basic", "ClusterRole", "basic",
                                                          ("Group", "system:authenticated")))
    cache.put("roles", "team", "r", cluster_role("r", POD_READER))
    cache.put("rolebindings", "team", "r", binding("r", "Role", "r", ("User", "alice"), ns="team"))
    cache.put("rolebindings", "team", "bad", binding("bad", "Role", "nope", ("User", "alice"), ns="team"))
    rules, errs = auth.rules_for(ALICE, "team")
    assert rules == [rule_from({"verbs": ["get"], "nonResourceURLs": ["/api"]}), rule_from(POD_READER)]
    assert errs == ['role.rbac.authorization.k8s.io "nope" not found']
    assert auth.rules_for(ALICE, "default") == ([rule_from({"verbs": ["get"], "nonResourceURLs": ["/api"]})], [])


# ----------------------------------------------------------------------------- escalation


def rbac_kind(kind: str) -> Any:
    reg = Registry()
    resource = {"Role": "roles", "ClusterRole": "clusterroles", "RoleBinding": "rolebindings",
                "ClusterRoleBinding": "clusterrolebindings"}[kind]
    k = reg.by_resource(RBAC, "v1", resource)
    assert k is not None
    return k


def test_escalation_checks() -> None:
    cache = PolicyCache()
    auth = RBACAuthorizer(cache)
    cache.put("clusterroles", "", "pod-reader", cluster_role("pod-reader", POD_READER))
    cache.put("clusterroles", "", "admin", cluster_role("admin", {"verbs": ["*"], "apiGroups": ["*"],
                                                                  "resources": ["*"]}))
    cache.put("rolebindings", "team", "b", binding("b", "ClusterRole", "pod-reader", ("User", "alice"), ns="team"))
    role = {"metadata": {"name": "r", "namespace": "team"}, "rules": [POD_READER]}
    auth.confirm_no_escalation(ALICE, rbac_kind("Role"), "team", role, None)  # held: allowed
    more = {"metadata": {"name": "r", "namespace": "team"},
            "rules": [POD_READER, {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]}
    with pytest.raises(errors.StatusError) as e:
        auth.confirm_no_escalation(ALICE, rbac_kind("Role"), "team", more, None)
    assert e.value.code == 403
    assert e.value.status()["message"] == (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["dev" "system:authenticated"]) '
        'is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}')
    with pytest.raises(errors.StatusError):
        auth.confirm_no_escalation(ALICE, rbac_kind("Role"), "other", role, None)  # not held there
    # a binding to a role alice holds is fine; to admin it is not, unless she may bind it
    rb = {"metadata": {"name": "x", "namespace": "team"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole",
                                                                     "name": "pod-reader"}, "subjects": []}
    auth.confirm_no_escalation(ALICE, rbac_kind("RoleBinding"), "team", rb, None)
    rb_admin = {**rb, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "admin"}}
    with pytest.raises(errors.StatusError) as e:
        auth.confirm_no_escalation(ALICE, rbac_kind("RoleBinding"), "team", rb_admin, None)
    assert "is attempting to grant RBAC permissions not currently held" in e.value.status()["message"]
    rb_gone = {**rb, "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "gone"}}
    with pytest.raises(errors.StatusError) as e:
        auth.confirm_no_escalation(ALICE, rbac_kind("RoleBinding"), "team", rb_gone, None)
    assert e.value.status()["message"] == ('rolebindings.rbac.authorization.k8s.io "x" is forbidden: '
                                           'role.rbac.authorization.k8s.io "gone" not found')
    cache.put("clusterroles", "", "binder", cluster_role("binder", {
        "verbs": ["bind"], "apiGroups": [RBAC], "resources": ["clusterroles"], "resourceNames": ["admin"]}))
    cache.put("rolebindings", "team", "binder", binding("binder", "ClusterRole", "binder", ("User", "alice"),
                                                        ns="team"))
    auth.confirm_no_escalation(ALICE, rbac_kind("RoleBinding"), "team", rb_admin, None)  # bind allows it
    # escalate on roles allows granting anything
    cache.put("clusterroles", "", "escalator", cluster_role("escalator", {
        "verbs": ["escalate"], "apiGroups": [RBAC], "resources": ["roles"]}))
    cache.put("rolebindings", "team", "esc", binding("esc", "ClusterRole", "escalator", ("User", "alice"),
                                                     ns="team"))
    auth.confirm_no_escalation(ALICE, rbac_kind("Role"), "team", more, None)
    # an aggregationRule needs cluster-admin powers
    agg = {"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}
    with pytest.raises(errors.StatusError) as e:
        auth.confirm_no_escalation(ALICE, rbac_kind("ClusterRole"), "", agg, None)
    assert e.value.status()["message"] == ('clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have '
                                           "cluster-admin privileges to use the aggregationRule")
    # the garbage collector's writes (ownerReferences, finalizers) are never refused
    owned = {**more, "metadata": {**more["metadata"], "ownerReferences": [{"name": "o"}], "resourceVersion": "9"}}
    auth.confirm_no_escalation(UserInfo("gc"), rbac_kind("Role"), "team", owned, more)
    # system:masters may grant anything
    auth.confirm_no_escalation(UserInfo("root", groups=("system:masters",)), rbac_kind("ClusterRole"), "", agg, None)


# ----------------------------------------------------------------------------- impersonation


def test_impersonation_is_authorized_per_header() -> None:
    cache = PolicyCache()
    auth = RBACAuthorizer(cache)
    headers = {"Impersonate-User": "bob", "Impersonate-Group": "ops"}
    with pytest.raises(errors.StatusError) as e:
        impersonate(ALICE, headers, auth)
    assert e.value.code == 403
    assert e.value.status()["message"] == ('users "bob" is forbidden: User "alice" cannot impersonate resource '
                                           '"users" in API group "" at the cluster scope')
    cache.put("clusterroles", "", "imp", cluster_role("imp", {"verbs": ["impersonate"], "apiGroups": [""],
                                                              "resources": ["users"], "resourceNames": ["bob"]}))
    cache.put("clusterrolebindings", "", "imp", binding("imp", "ClusterRole", "imp", ("User", "alice")))
    with pytest.raises(errors.StatusError) as e:
        impersonate(ALICE, headers, auth)
    assert 'groups "ops" is forbidden' in e.value.status()["message"], "each group is checked too"
    cache.put("clusterroles", "", "imp", cluster_role("imp", {"verbs": ["impersonate"], "apiGroups": [""],
                                                              "resources": ["users", "groups"]}))
    got = impersonate(ALICE, headers, auth)
    assert (got.name, got.groups) == ("bob", ("ops", "system:authenticated"))
    assert impersonate(ALICE, {}, auth) is ALICE
    # a service account is impersonated through serviceaccounts in its namespace
    with pytest.raises(errors.StatusError) as e:
        impersonate(ALICE, {"Impersonate-User": "system:serviceaccount:team:bot"}, auth)
    assert e.value.status()["message"] == (
        'serviceaccounts "bot" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" in API '
        'group "" in the namespace "team"')
    root = UserInfo("root", groups=("system:masters",))
    sa = impersonate(root, {"Impersonate-User": "system:serviceaccount:team:bot"}, auth)
    assert sa.groups == ("system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated")
    extra = impersonate(root, {"Impersonate-User": "x", "Impersonate-Extra-Scopes": "view",
                               "Impersonate-Uid": "42"}, auth)
    assert (extra.uid, dict(extra.extra)) == ("42", {"scopes": ("view",)})
    with pytest.raises(errors.StatusError) as e:
        impersonate(root, {"Impersonate-Group": "ops"}, auth)
    assert "without impersonating a user" in e.value.status()["message"]


# ----------------------------------------------------------------------------- bootstrap policy


def test_bootstrap_policy_is_kube_shaped() -> None:
    roles = {r["metadata"]["name"]: r for r in cluster_roles()}
    for name in ("cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
                 "system:public-info-viewer", "system:node", "system:node-bootstrapper", "system:kube-scheduler",
                 "system:kube-controller-manager", "system:controller:generic-garbage-collector",
                 "system:controller:clusterrole-aggregation-controller",
                 "system:certificates.k8s.io:certificatesigningrequests:nodeclient"):
        assert name in roles, name
        assert roles[name]["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        assert roles[name]["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
    assert roles["view"]["aggregationRule"] == {
        "clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}
    bindings = {b["metadata"]["name"]: b for b in cluster_role_bindings()}
    assert bindings["cluster-admin"]["subjects"] == [{"kind": "Group", "apiGroup": RBAC, "name": "system:masters"}]
    # kube's binding for nodes is kept with no subjects: the Node authorizer serves them
    assert "subjects" not in bindings["system:node"]
    for name, b in bindings.items():
        assert b["roleRef"]["name"] in roles, f"{name} refers to a role the policy has"
    # every controller role is held by the controller manager's single identity
    for name in roles:
        if name.startswith("system:controller:"):
            assert {"kind": "User", "apiGroup": RBAC, "name": "system:kube-controller-manager"} in \
                bindings[name]["subjects"]


def test_reconcile_adds_and_never_removes() -> None:
    expected = cluster_roles()[1]  # system:discovery
    existing = {**expected, "metadata": {"name": expected["metadata"]["name"], "labels": {"mine": "x"}},
                "rules": [{"verbs": ["get"], "nonResourceURLs": ["/api"]}, {"verbs": ["get"],
                                                                           "nonResourceURLs": ["/custom"]}]}
    new = reconciled(existing, expected)
    assert new is not None
    assert new["metadata"]["labels"] == {"mine": "x", "kubernetes.io/bootstrapping": "rbac-defaults"}
    assert {"verbs": ["get"], "nonResourceURLs": ["/custom"]} in new["rules"], "extra rules are kept"
    assert covers([rule_from(r) for r in new["rules"]], [rule_from(r) for r in expected["rules"]])[0]
    assert reconciled(new, expected) is None, "nothing more to do the second time"
    b = cluster_role_bindings()[0]
    more = {**b, "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "me"}]}
    got = reconciled(more, b)
    assert got is not None and got["subjects"] == [{"kind": "User", "apiGroup": RBAC, "name": "me"},
                                                   *b["subjects"]]


def test_aggregation_collects_selected_roles_rules() -> None:
    view = {"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [
        {"matchLabels": {"agg": "view"}}]}, "rules": []}
    a = cluster_role("b-role", POD_READER, labels={"agg": "view"})
    b = cluster_role("a-role", {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}, POD_READER,
                     labels={"agg": "view"})
    other = cluster_role("other", {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
    assert aggregated_rules(view, [view, a, b, other]) == [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}, POD_READER]


def _bootstrap_authorizer() -> RBACAuthorizer:
    from k8py.apiserver.rbac.bootstrap import role_bindings, roles

    cache = PolicyCache()
    for r in cluster_roles():
        cache.put("clusterroles", "", r["metadata"]["name"], r)
    for b in cluster_role_bindings():
        cache.put("clusterrolebindings", "", b["metadata"]["name"], b)
    for r in roles():
        cache.put("roles", r["metadata"]["namespace"], r["metadata"]["name"], r)
    for b in role_bindings():
        cache.put("rolebindings", b["metadata"]["namespace"], b["metadata"]["name"], b)
    return RBACAuthorizer(cache)


@pytest.mark.parametrize(("user", "groups", "requests"), [
    # what k8py's controllers do, all as the controller manager's one identity
    ("system:kube-controller-manager", (), [
        ("list", "", "pods", ""), ("watch", "apps", "deployments", ""), ("create", "", "pods", ""),
        ("delete", "", "pods", ""), ("patch", "", "pods", ""), ("update", "", "pods", "status"),
        ("patch", "", "pods", "status"), ("create", "apps", "replicasets", ""), ("update", "apps", "replicasets", ""),
        ("update", "apps", "deployments", "status"), ("update", "apps", "statefulsets", "status"),
        ("create", "", "persistentvolumeclaims", ""), ("create", "apps", "controllerrevisions", ""),
        ("update", "apps", "daemonsets", "status"), ("create", "batch", "jobs", ""), ("delete", "batch", "jobs", ""),
        ("update", "batch", "cronjobs", "status"), ("update", "batch", "jobs", "status"),
        ("update", "policy", "poddisruptionbudgets", "status"), ("get", "apps", "deployments", "scale"),
        ("create", "", "endpoints", ""), ("update", "", "endpoints", ""),
        ("create", "discovery.k8s.io", "endpointslices", ""), ("delete", "discovery.k8s.io", "endpointslices", ""),
        ("create", "", "serviceaccounts", ""), ("create", "", "configmaps", ""), ("update", "", "configmaps", ""),
        ("update", "", "nodes", ""), ("patch", "", "nodes", ""), ("patch", "", "nodes", "status"),
        ("delete", "", "namespaces", ""), ("update", "", "namespaces", "finalize"),
        ("update", "", "namespaces", "status"), ("deletecollection", "apps", "deployments", ""),
        ("patch", "rbac.authorization.k8s.io", "roles", ""), ("delete", "networking.k8s.io", "ingresses", ""),
        ("update", "certificates.k8s.io", "certificatesigningrequests", "status"),
        ("update", "certificates.k8s.io", "certificatesigningrequests", "approval"),
        ("update", "rbac.authorization.k8s.io", "clusterroles", ""),
        ("escalate", "rbac.authorization.k8s.io", "clusterroles", ""),
        ("update", "apiregistration.k8s.io", "apiservices", "status"),
        ("create", "", "events", ""), ("patch", "", "events", ""), ("create", "coordination.k8s.io", "leases", ""),
    ]),
    ("system:kube-scheduler", (), [
        ("list", "", "pods", ""), ("watch", "", "nodes", ""), ("create", "", "pods", "binding"),
        ("patch", "", "pods", "status"), ("delete", "", "pods", ""), ("list", "", "namespaces", ""),
        ("list", "policy", "poddisruptionbudgets", ""), ("list", "", "persistentvolumeclaims", ""),
        ("create", "", "events", ""), ("create", "coordination.k8s.io", "leases", ""),
    ]),
    # a node agent: RBAC gives it only the routes' Node reads and its own client certificate's
    # renewal; the Node authorizer gives the rest (tests/apiserver/test_node_authorizer.py)
    ("system:node:n1", ("system:nodes",), [
        ("list", "", "nodes", ""), ("watch", "", "nodes", ""),
        ("create", "certificates.k8s.io", "certificatesigningrequests", "selfnodeclient"),
    ]),
    # a joining node's bootstrap token
    ("system:bootstrap:abcdef", ("system:bootstrappers",), [
        ("create", "certificates.k8s.io", "certificatesigningrequests", ""),
        ("watch", "certificates.k8s.io", "certificatesigningrequests", ""),
        ("create", "certificates.k8s.io", "certificatesigningrequests", "nodeclient"),
    ]),
])
def test_components_may_do_their_work(user: str, groups: tuple[str, ...],
                                      requests: list[tuple[str, str, str, str]]) -> None:
    auth = _bootstrap_authorizer()
    who = UserInfo(user, groups=(*groups, "system:authenticated"))
    for verb, group, resource, sub in requests:
        a = RequestAttributes(verb=verb, api_group=group, resource=resource, subresource=sub, namespace="ns",
                              is_resource_request=True)
        assert auth.authorize(who, a)[0], (user, verb, group, resource, sub)


def test_components_hold_no_more_than_kube_gives() -> None:
    auth = _bootstrap_authorizer()
    sched = UserInfo("system:kube-scheduler", groups=("system:authenticated",))
    node = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))
    boot = UserInfo("system:bootstrap:abcdef", groups=("system:bootstrappers", "system:authenticated"))
    for who, verb, group, resource in [(sched, "get", "", "secrets"), (sched, "create", "", "pods"),
                                       (node, "create", "rbac.authorization.k8s.io", "clusterrolebindings"),
                                       (node, "delete", "", "nodes"), (boot, "get", "", "secrets"),
                                       (boot, "list", "", "pods")]:
        a = RequestAttributes(verb=verb, api_group=group, resource=resource, namespace="ns", is_resource_request=True)
        assert not auth.authorize(who, a)[0], (who.name, verb, resource)
    # the bootstrap token reads only the cluster CA's ConfigMap, in kube-public
    ca = RequestAttributes(verb="get", resource="configmaps", namespace="kube-public", name="kube-root-ca.crt",
                           is_resource_request=True)
    assert auth.authorize(boot, ca)[0]
    assert not auth.authorize(boot, RequestAttributes(verb="get", resource="configmaps", namespace="kube-public",
                                                      name="other", is_resource_request=True))[0]
