"""RBAC on a real ``k8py server`` with real kubectl and the official Python client: a user from a
bearer token (``k8py token create --user alice``) with a ``view`` RoleBinding reads pods but not
Secrets and cannot create; ``kubectl auth can-i`` (with ``--as`` and ``--list``) answers for
alice; impersonation without the ``impersonate`` verb is refused; a Role granting more than its
creator holds is refused; ``kubectl auth reconcile`` creates and completes roles and bindings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import Server, manifest, wait


@pytest.fixture(scope="module")
def cluster(server: Server) -> Server:
    """The session's server (tests/conftest.py): each test works in namespaces of its own, and the
    cluster-wide objects it makes have names of this module's."""
    return server


def user_kubeconfig(cluster: Server, user: str, groups: str = "") -> str:
    """A kubeconfig that authenticates with a fresh bearer token for ``user`` only (no client
    certificate: a certificate would be tried first and win, as in kube)."""
    token = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "-d", str(cluster.data_dir),
                            "--user", user, "--groups", groups], capture_output=True, text=True,
                           check=True).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    cfg = {**admin, "users": [{"name": "default", "user": {"token": token}}]}
    path = cluster.data_dir.parent / f"{user}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="module")
def alice(cluster: Server) -> str:
    return user_kubeconfig(cluster, "alice", "dev")


def as_user(cluster: Server, kubeconfig: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("--kubeconfig", kubeconfig, *args, check=check)


def view_rules_aggregated(cluster: Server) -> Any:
    """The aggregation controller fills view's rules from system:aggregate-to-view."""
    return wait(lambda: cluster.kjson("get", "clusterrole", "view").get("rules"), 30, "view's aggregated rules")


def test_view_binding_reads_pods_not_secrets(cluster: Server, alice: str) -> None:
    cluster.kubectl("create", "namespace", "team-view")
    cluster.kubectl("create", "configmap", "c", "-n", "team-view", "--from-literal=a=b")
    p = as_user(cluster, alice, "get", "pods", "-n", "team-view")
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource '
                                '"pods" in API group "" in the namespace "team-view"')
    view_rules_aggregated(cluster)
    cluster.kubectl("create", "rolebinding", "alice-view", "-n", "team-view", "--clusterrole=view", "--user=alice")
    wait(lambda: as_user(cluster, alice, "get", "pods", "-n", "team-view").returncode == 0, 10, "alice may list")
    assert as_user(cluster, alice, "get", "configmap", "c", "-n", "team-view", "-o", "name",
                   check=True).stdout.strip() == "configmap/c"
    p = as_user(cluster, alice, "get", "secrets", "-n", "team-view")
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (Forbidden): secrets is forbidden: User "alice" cannot list '
                                'resource "secrets" in API group "" in the namespace "team-view"')
    p = as_user(cluster, alice, "create", "configmap", "x", "-n", "team-view", "--from-literal=a=b")
    assert p.returncode == 1
    assert p.stderr.strip() == ('error: failed to create configmap: configmaps is forbidden: User "alice" cannot '
                                'create resource "configmaps" in API group "" in the namespace "team-view"')
    p = as_user(cluster, alice, "get", "pods", "-n", "default")
    assert p.returncode == 1, "the RoleBinding grants in its own namespace only"
    assert as_user(cluster, alice, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                   check=True).stdout == "alice"

    # the official Python client, as alice
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    cfg = client.Configuration()
    config.load_kube_config(config_file=alice, client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        core = client.CoreV1Api(api_client)
        assert [c.metadata.name for c in core.list_namespaced_config_map("team-view").items if
                c.metadata.name == "c"] == ["c"]
        with pytest.raises(ApiException) as e:
            core.read_namespaced_secret("nope", "team-view")
        assert e.value.status == 403
        body = yaml.safe_load(e.value.body)
        assert body["reason"] == "Forbidden"
        assert body["message"] == ('secrets "nope" is forbidden: User "alice" cannot get resource "secrets" in API '
                                   'group "" in the namespace "team-view"')
        assert body["details"] == {"name": "nope", "kind": "secrets"}


def test_can_i_answers_for_alice(cluster: Server, alice: str) -> None:
    cluster.kubectl("create", "namespace", "team-cani")
    view_rules_aggregated(cluster)
    cluster.kubectl("create", "rolebinding", "alice-view", "-n", "team-cani", "--clusterrole=view", "--user=alice")
    wait(lambda: cluster.kubectl("auth", "can-i", "list", "pods", "-n", "team-cani", "--as", "alice",
                                 check=False).stdout.strip() == "yes", 10, "alice can list pods")
    p = cluster.kubectl("auth", "can-i", "list", "secrets", "-n", "team-cani", "--as", "alice", check=False)
    assert (p.returncode, p.stdout.strip()) == (1, "no")
    p = as_user(cluster, alice, "auth", "can-i", "get", "pods/log", "-n", "team-cani")
    assert p.stdout.strip() == "yes"
    assert cluster.kubectl("auth", "can-i", "delete", "nodes").stdout.strip() == "yes", "the admin may"
    lines = cluster.kubectl("auth", "can-i", "--list", "-n", "team-cani", "--as", "alice").stdout.splitlines()
    assert lines[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    rows = {tuple(line.split()) for line in lines[1:]}
    for want in [("selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"),
                 ("selfsubjectrulesreviews.authorization.k8s.io", "[]", "[]", "[create]"),
                 ("selfsubjectreviews.authentication.k8s.io", "[]", "[]", "[create]"),
                 ("pods", "[]", "[]", "[get", "list", "watch]"),
                 ("pods/log", "[]", "[]", "[get", "list", "watch]"),
                 ("deployments.apps", "[]", "[]", "[get", "list", "watch]"),
                 ("[/api/*]", "[]", "[get]"), ("[/version]", "[]", "[get]")]:
        assert want in rows, (want, lines)
    assert not any(r[0].startswith("secrets") for r in rows)
    # in a namespace without the binding only the cluster-wide rules are left
    other = cluster.kubectl("auth", "can-i", "--list", "-n", "default", "--as", "alice").stdout
    assert "pods " not in other and "selfsubjectaccessreviews.authorization.k8s.io" in other


def test_impersonation_needs_the_impersonate_verb(cluster: Server, alice: str) -> None:
    p = as_user(cluster, alice, "get", "pods", "--as", "bob")
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (Forbidden): users "bob" is forbidden: User "alice" cannot '
                                'impersonate resource "users" in API group "" at the cluster scope')
    p = as_user(cluster, alice, "get", "pods", "--as", "bob", "--as-group", "system:masters")
    assert p.returncode == 1
    cluster.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "impersonate-bob"},
         "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["bob"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "alice-impersonates-bob"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "impersonate-bob"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}))
    who = wait(lambda: as_user(cluster, alice, "auth", "whoami", "--as", "bob", "-o",
                               "jsonpath={.status.userInfo.username}").stdout, 10, "alice may act as bob")
    assert who == "bob"
    p = as_user(cluster, alice, "get", "pods", "--as", "bob")
    assert p.stderr.strip() == ('Error from server (Forbidden): pods is forbidden: User "bob" cannot list resource '
                                '"pods" in API group "" in the namespace "default"')
    p = as_user(cluster, alice, "get", "pods", "--as", "bob", "--as-group", "system:masters")
    assert p.returncode == 1
    assert 'groups "system:masters" is forbidden: User "alice" cannot impersonate resource "groups"' in p.stderr


def test_role_granting_more_than_its_creator_holds_is_refused(cluster: Server) -> None:
    carol = user_kubeconfig(cluster, "carol")
    cluster.kubectl("create", "namespace", "team-esc")
    wait(lambda: cluster.kjson("get", "clusterrole", "admin").get("rules"), 30, "admin's aggregated rules")
    cluster.kubectl("create", "rolebinding", "carol-admin", "-n", "team-esc", "--clusterrole=admin", "--user=carol")
    wait(lambda: as_user(cluster, carol, "get", "roles", "-n", "team-esc").returncode == 0, 10, "carol is admin")
    as_user(cluster, carol, "create", "role", "pod-reader", "-n", "team-esc", "--verb=get,list",
            "--resource=pods", check=True)
    p = as_user(cluster, carol, "create", "role", "node-reader", "-n", "team-esc", "--verb=get,list",
                "--resource=nodes,pods")
    assert p.returncode == 1
    assert p.stderr.strip() == (
        'Error from server (Forbidden): roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "carol" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list"]}')
    assert cluster.kubectl("get", "role", "node-reader", "-n", "team-esc", check=False).returncode == 1
    p = as_user(cluster, carol, "create", "rolebinding", "grab", "-n", "team-esc", "--clusterrole=cluster-admin",
                "--user=carol")
    assert p.returncode == 1
    assert ('rolebindings.rbac.authorization.k8s.io "grab" is forbidden: user "carol" (groups=["system:authenticated"]) '
            "is attempting to grant RBAC permissions not currently held:") in p.stderr
    # binding a role carol holds is fine
    as_user(cluster, carol, "create", "rolebinding", "dave-reads", "-n", "team-esc", "--role=pod-reader",
            "--user=dave", check=True)


def test_auth_reconcile(cluster: Server, tmp_path: Path) -> None:
    cluster.kubectl("create", "namespace", "team-rec")
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "app", "namespace": "team-rec"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "app", "namespace": "team-rec"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "app"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "erin"}]}
    f = tmp_path / "rbac.yaml"
    f.write_text(manifest(role, binding))
    out = cluster.kubectl("auth", "reconcile", "-f", str(f)).stdout
    assert "role.rbac.authorization.k8s.io/app reconciled" in out
    assert "rolebinding.rbac.authorization.k8s.io/app reconciled" in out
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]})
    binding["subjects"].append({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "frank"})
    f.write_text(manifest(role, binding))
    cluster.kubectl("auth", "reconcile", "-f", str(f))
    got = cluster.kjson("get", "role", "app", "-n", "team-rec")
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]} in got["rules"]
    assert {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]} in got["rules"]
    names = [s["name"] for s in cluster.kjson("get", "rolebinding", "app", "-n", "team-rec")["subjects"]]
    assert names == ["erin", "frank"]
    wait(lambda: cluster.kubectl("auth", "can-i", "list", "secrets", "-n", "team-rec", "--as", "frank",
                                 check=False).stdout.strip() == "yes", 10, "frank may list secrets")


def test_put_creates_a_missing_role_and_is_authorized_as_create(cluster: Server, tmp_path: Path) -> None:
    """kube's AllowCreateOnUpdate for RBAC kinds: PUT of a Role that is not there creates it (201)
    and is authorized as a create too; a kind without it (ConfigMap) answers 404."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    cluster.kubectl("create", "namespace", "team-put")
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "upsert", "namespace": "team-put"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    with cluster.client() as api_client:
        rbac = client.RbacAuthorizationV1Api(api_client)
        _, status, _ = rbac.replace_namespaced_role_with_http_info("upsert", "team-put", role)
        assert status == 201
        role["rules"][0]["verbs"] = ["get", "list"]
        got, status, _ = rbac.replace_namespaced_role_with_http_info("upsert", "team-put", role)
        assert status == 200 and got.rules[0].verbs == ["get", "list"]
        with pytest.raises(ApiException) as e:
            client.CoreV1Api(api_client).replace_namespaced_config_map(
                "missing", "team-put", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "missing", "namespace": "team-put"}})
        assert e.value.status == 404
    # a user who may update roles but not create them cannot create one with a PUT
    cluster.kubectl("create", "role", "role-updater", "-n", "team-put", "--verb=get,update",
                    "--resource=roles.rbac.authorization.k8s.io")
    cluster.kubectl("create", "rolebinding", "gina-updates", "-n", "team-put", "--role=role-updater", "--user=gina")
    gina = user_kubeconfig(cluster, "gina")
    cfg = client.Configuration()
    config.load_kube_config(config_file=gina, client_configuration=cfg)
    other = {**role, "metadata": {"name": "other", "namespace": "team-put"}, "rules": []}
    with client.ApiClient(cfg) as api_client, pytest.raises(ApiException) as e:
        client.RbacAuthorizationV1Api(api_client).replace_namespaced_role("other", "team-put", other)
    assert e.value.status == 403
    assert yaml.safe_load(e.value.body)["message"] == (
        'roles.rbac.authorization.k8s.io "other" is forbidden: User "gina" cannot create resource "roles" in API '
        'group "rbac.authorization.k8s.io" in the namespace "team-put"')
