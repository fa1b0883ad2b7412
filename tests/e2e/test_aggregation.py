"""The aggregation layer on a real ``k8py server``, with real kubectl and the official Python
client: an extension API server (``tests/helpers/wardle.py``: ``wardle.example.com/v1alpha1``,
``flunders``) on a loopback port, registered as kube's sample-apiserver is (a Service without a
selector, a hand-made EndpointSlice naming 127.0.0.1:<port>, an APIService with its caBundle).

The backend checks the front-proxy client certificate against the request-header CA that k8py
publishes in ``kube-system/extension-apiserver-authentication`` and believes ``X-Remote-User``
only then; the tests check what it saw."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import KUBECTL, Server, manifest, start_server, wait
from tests.helpers.wardle import GROUP, GV, WardleThread

APISERVICE = f"v1alpha1.{GROUP}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    s = start_server(tmp_path_factory.mktemp("aggregation"))
    yield s
    s.stop()


def available(cluster: Server) -> dict[str, Any]:
    a = cluster.kjson("get", "apiservice", APISERVICE)
    return next((c for c in (a.get("status") or {}).get("conditions") or [] if c["type"] == "Available"), {})


@pytest.fixture(scope="module")
def wardle(cluster: Server) -> Iterator[WardleThread]:
    cm = wait(lambda: cluster.kjson("get", "configmap", "-n", "kube-system", "extension-apiserver-authentication"),
              30, "extension-apiserver-authentication")
    backend = WardleThread(cm["data"]["requestheader-client-ca-file"],
                           tuple(json.loads(cm["data"]["requestheader-allowed-names"]))).start()
    port = backend.server.port
    cluster.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "wardle"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "wardle"},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "api-1", "namespace": "wardle", "labels": {"kubernetes.io/service-name": "api"}},
         "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
         "spec": {"group": GROUP, "version": "v1alpha1", "groupPriorityMinimum": 1000, "versionPriority": 15,
                  "service": {"namespace": "wardle", "name": "api", "port": 443},
                  "caBundle": base64.b64encode(backend.server.ca_pem.encode()).decode()}}))
    try:
        wait(lambda: available(cluster).get("status") == "True", 60, "the APIService Available")
        yield backend
    finally:
        cluster.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        backend.close()


def test_authentication_configmap_as_kube_apiserver(cluster: Server) -> None:
    data = cluster.kjson("get", "configmap", "-n", "kube-system", "extension-apiserver-authentication")["data"]
    assert json.loads(data["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(data["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(data["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(data["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]
    assert data["client-ca-file"] == (cluster.data_dir / "tls" / "ca.crt").read_text()
    assert data["requestheader-client-ca-file"] == (cluster.data_dir / "tls" / "front-proxy-ca.crt").read_text()
    assert data["requestheader-client-ca-file"] != data["client-ca-file"]


def test_available_passed(cluster: Server, wardle: WardleThread) -> None:
    cond = available(cluster)
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "Passed", "all checks passed")
    row = next(r.split() for r in cluster.kubectl("get", "apiservices").stdout.splitlines()
               if r.startswith(APISERVICE))
    assert row[1:3] == ["wardle/api", "True"]
    # the availability check asked as kube's does
    assert any(s.user == "system:kube-aggregator" and s.groups == ["system:masters"] for s in wardle.server.seen)


def test_discovery_lists_the_group(cluster: Server, wardle: WardleThread) -> None:
    groups = json.loads(cluster.kubectl("get", "--raw", "/apis").stdout)["groups"]
    g = next(g for g in groups if g["name"] == GROUP)
    assert g["preferredVersion"] == {"groupVersion": GV, "version": "v1alpha1"}
    assert json.loads(cluster.kubectl("get", "--raw", f"/apis/{GROUP}").stdout)["versions"] == [
        {"groupVersion": GV, "version": "v1alpha1"}]
    # /apis/<group>/<version> is the backend's own document, proxied
    assert [r["name"] for r in json.loads(cluster.kubectl("get", "--raw", f"/apis/{GV}").stdout)["resources"]] == [
        "flunders", "flunders/status"]
    # kubectl reads the aggregated document (apidiscovery.k8s.io/v2): the remote resources are in it
    out = wait(lambda: (p := cluster.kubectl("api-resources", "--api-group", GROUP, check=False)).returncode == 0
               and "flunders" in p.stdout and p, 60, "flunders in kubectl api-resources")
    row = next(r.split() for r in out.stdout.splitlines() if r.startswith("flunders"))
    assert row == ["flunders", "fl", GV, "true", "Flunder"]
    # kubectl explain reads the backend's OpenAPI v3 document through k8py's /openapi/v3
    p = wait(lambda: (p := cluster.kubectl("explain", "flunders.spec", check=False)).returncode == 0 and p, 60,
             "kubectl explain flunders")
    assert "The name of another flunder." in p.stdout and "KIND:       Flunder" in p.stdout, p.stdout


def test_create_get_list_through_the_proxy(cluster: Server, wardle: WardleThread) -> None:
    cluster.kubectl("create", "namespace", "agg-crud")
    f = {"apiVersion": GV, "kind": "Flunder", "metadata": {"name": "f1", "namespace": "agg-crud"},
         "spec": {"reference": "x"}}
    cluster.kubectl("create", "-f", "-", "--validate=false", input=yaml.safe_dump(f))
    got = cluster.kjson("get", "flunder", "f1", "-n", "agg-crud")
    assert got["spec"] == {"reference": "x"} and got["metadata"]["namespace"] == "agg-crud"
    assert "f1" in cluster.kubectl("get", "fl", "-n", "agg-crud").stdout
    p = cluster.kubectl("get", "flunder", "nope", "-n", "agg-crud", check=False)
    assert p.returncode != 0 and f'flunders.{GROUP} "nope" not found' in p.stderr
    seen = [s for s in wardle.server.seen if "/namespaces/agg-crud/flunders" in s.path]
    assert seen and all(s.user == "system:admin" for s in seen)
    assert all("system:masters" in s.groups and "system:authenticated" in s.groups for s in seen)
    assert all(s.cert_cn == "front-proxy-client" for s in seen)


def test_python_dynamic_client_and_watch(cluster: Server, wardle: WardleThread) -> None:
    from kubernetes import dynamic

    cluster.kubectl("create", "namespace", "agg-dyn")
    api = cluster.client()
    dyn = dynamic.DynamicClient(api)
    flunders = dyn.resources.get(api_version=GV, kind="Flunder")
    flunders.create(body={"apiVersion": GV, "kind": "Flunder", "metadata": {"name": "a"}}, namespace="agg-dyn")
    assert [i.metadata.name for i in flunders.get(namespace="agg-dyn").items] == ["a"]
    assert flunders.get(name="a", namespace="agg-dyn").metadata.name == "a"

    # a watch streams through the proxy: the existing object, then one created while it is open
    events = flunders.watch(namespace="agg-dyn", timeout=20)
    try:
        first = next(events)
        assert (first["type"], first["object"].metadata.name) == ("ADDED", "a")
        t = threading.Thread(target=lambda: flunders.create(
            body={"apiVersion": GV, "kind": "Flunder", "metadata": {"name": "b"}}, namespace="agg-dyn"))
        t.start()
        second = next(events)
        t.join(30)
        assert (second["type"], second["object"].metadata.name) == ("ADDED", "b")
    finally:
        events.close()
    api.close()


def user_kubeconfig(cluster: Server, user: str) -> str:
    token = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "-d", str(cluster.data_dir),
                            "--user", user, "--groups", "dev"], capture_output=True, text=True, check=True).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    path = cluster.data_dir.parent / f"{user}.kubeconfig"
    path.write_text(yaml.safe_dump({**admin, "users": [{"name": "default", "user": {"token": token}}]}))
    path.chmod(0o600)
    return str(path)


def test_rbac_is_k8py_s_before_the_backend(cluster: Server, wardle: WardleThread) -> None:
    cluster.kubectl("create", "namespace", "agg-rbac")
    bob = user_kubeconfig(cluster, "bob")
    before = len(wardle.server.seen)
    p = cluster.kubectl("--kubeconfig", bob, "get", "flunders", "-n", "agg-rbac", check=False)
    assert p.returncode != 0
    assert (f'User "bob" cannot list resource "flunders" in API group "{GROUP}" in the namespace "agg-rbac"'
            in p.stderr), p.stderr
    assert not any(s.user == "bob" for s in wardle.server.seen[before:])
    # granted, bob reaches the backend as himself
    cluster.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "flunder-reader", "namespace": "agg-rbac"},
         "rules": [{"apiGroups": [GROUP], "resources": ["flunders"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "bob", "namespace": "agg-rbac"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "flunder-reader"},
         "subjects": [{"kind": "User", "name": "bob"}]}))
    wait(lambda: cluster.kubectl("--kubeconfig", bob, "get", "flunders", "-n", "agg-rbac",
                                 check=False).returncode == 0, 30, "bob allowed")
    mine = [s for s in wardle.server.seen if s.user == "bob"]
    assert mine and mine[-1].groups == ["dev", "system:authenticated"]


def test_backend_down_is_503_and_recovers(cluster: Server, wardle: WardleThread) -> None:
    cluster.kubectl("create", "namespace", "agg-down")
    wardle.stop()
    # A backend that dies is no API event: the availability controller sees it at its next recheck
    # of the APIService (kube's 30 s resync; tests/controllers/test_apiservice.py shows that one with
    # a 1 s period). A change to the Service rechecks the APIServices that name it at once, as in
    # kube (the controller watches Services and EndpointSlices): that stands for the 30 s here.
    cluster.kubectl("annotate", "service", "api", "-n", "wardle", "--overwrite", "example.com/poked=backend-down")
    try:
        cond = wait(lambda: (c := available(cluster)).get("status") == "False" and c, 60,
                    "the APIService unavailable")
        assert cond["reason"] == "FailedDiscoveryCheck"
        assert "connection refused" in cond["message"], cond
        p = cluster.kubectl("get", "flunders", "-n", "agg-down", check=False)
        assert p.returncode != 0
        assert "the server is currently unable to handle the request" in p.stderr, p.stderr
        raw = cluster.kubectl("get", "--raw", f"/apis/{GV}/namespaces/agg-down/flunders", check=False)
        assert raw.returncode != 0
        assert "Error from server (ServiceUnavailable): the server is currently unable to handle the request" \
            in raw.stderr, raw.stderr
    finally:
        wardle.run(wardle.server.start())  # the same port again
    wait(lambda: available(cluster).get("status") == "True", 60, "the APIService Available again")
    assert cluster.kubectl("get", "flunders", "-n", "agg-down").returncode == 0
