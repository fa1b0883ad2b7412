"""Ingress on a real node (runc pods behind Services, the ingress controller's nginx beside the
agent): requests from this test to 127.0.0.1 on the controller's ports reach the right pods by
host and path, over TLS with a certificate from a Secret (verified, with SNI); a missing Service
is an event while the rest is served; a changed Ingress routes anew within seconds; the
Ingress's status carries the node's address; nginx and its files are gone after the server stops
and ``k8py killall``.

Traffic: HTTP(S) to 127.0.0.1 only (nginx), which forwards to the pods of this cluster; each
request is bounded by a 5 s timeout, each wait by a deadline.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.conftest import Server, free_port, manifest, wait
from tests.helpers.realnode import IMAGE, namespace_for, nginx_pids, real_cluster
from tests.ingress.helpers import self_signed

NODE = "ingress-node"
HTTP_PORT = free_port()
HTTPS_PORT = free_port()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("ingress")
    with real_cluster(tmp, NODE, "--ingress-http-port", str(HTTP_PORT), "--ingress-https-port",
                      str(HTTPS_PORT)) as s:
        wait(lambda: "ingress controller ready" in s.log_path.read_text(), 30, "the ingress controller")
        assert nginx_pids(s.data_dir)
        yield s
    # after the server stopped and killall ran (real_cluster checks nginx is gone): no keys left
    assert not (s.data_dir / "ingress" / "certs").exists()


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "ing")


def app(ns: str, name: str) -> list[dict[str, Any]]:
    """A Deployment of busybox httpd answering its pod name on every path of /, /<name>/ and
    /shared/, and its Service."""
    labels = {"app": name}
    script = (f"mkdir -p /www/{name} /www/shared /www/x && for d in /www /www/{name} /www/shared /www/x; do "
              "hostname > $d/index.html; done && exec httpd -f -p 8080 -h /www")
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
              "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                       "template": {"metadata": {"labels": labels}, "spec": {
                           "terminationGracePeriodSeconds": 1,
                           "containers": [{"name": "httpd", "image": IMAGE, "command": ["sh", "-c", script],
                                           "ports": [{"containerPort": 8080, "name": "http"}],
                                           "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                              "periodSeconds": 1}}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    return [deploy, svc]


def http_get(host: str, path: str = "/") -> tuple[int, str, dict[str, str]]:
    c = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=5)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace").strip(), dict(r.getheaders())
    finally:
        c.close()


def https_get(host: str, ca: bytes, path: str = "/") -> tuple[int, str]:
    """GET over TLS to 127.0.0.1 with SNI ``host``, the certificate verified against ``ca``."""
    ctx = ssl.create_default_context(cadata=ca.decode())
    with socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace").strip()


def answers(host: str, path: str, prefix: str) -> bool:
    """``host``+``path`` through nginx is answered by a pod whose name starts with ``prefix``."""
    try:
        status, body, _ = http_get(host, path)
    except OSError:
        return False
    return status == 200 and body.startswith(prefix)


def ready(s: Server, ns: str, *apps: str) -> None:
    for a in apps:
        wait(lambda a=a: s.kjson("get", "deployment", a, "-n", ns)["status"].get("readyReplicas") == 1, 90,
             f"deployment {a} ready")


def events(s: Server, ns: str, name: str) -> list[dict[str, Any]]:
    return s.kjson("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]


def test_routes_by_host_and_path_with_tls_and_status(cluster: Server, ns: str) -> None:
    crt, key = self_signed(f"secure.{ns}.test")
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "secure-cert", "namespace": ns},
              "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}

    def route(p: str, svc: str, kind: str = "Prefix") -> dict[str, Any]:
        return {"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": {"name": "http"}}}}

    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "routes", "namespace": ns},
           "spec": {"tls": [{"hosts": [f"secure.{ns}.test"], "secretName": "secure-cert"}],
                    "rules": [
                        {"host": f"alpha.{ns}.test", "http": {"paths": [route("/", "alpha")]}},
                        {"host": f"both.{ns}.test", "http": {"paths": [route("/", "alpha"), route("/beta", "beta"),
                                                                        route("/x/", "beta", "Exact")]}},
                        {"host": f"*.wild.{ns}.test", "http": {"paths": [route("/", "beta")]}},
                        {"host": f"secure.{ns}.test", "http": {"paths": [route("/", "beta")]}}]}}
    cluster.kubectl("apply", "-f", "-", input=manifest(*app(ns, "alpha"), *app(ns, "beta"), secret, ing))
    ready(cluster, ns, "alpha", "beta")

    # the default class, made by the controller: this Ingress that named no class got it on
    # creation (the DefaultIngressClass admission plugin)
    ic = cluster.kjson("get", "ingressclass", "k8py-nginx")
    assert ic["spec"]["controller"] == "k8py.io/ingress-nginx"
    assert ic["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"
    assert cluster.kjson("get", "ingress", "routes", "-n", ns)["spec"]["ingressClassName"] == "k8py-nginx"

    # both backends' endpoints reach nginx on their own schedules: wait for each
    wait(lambda: answers(f"alpha.{ns}.test", "/", "alpha-"), 30, "alpha through the Ingress")
    wait(lambda: answers(f"both.{ns}.test", "/beta/", "beta-"), 30, "beta through the Ingress")
    # by host and path: element-wise Prefix, Exact, longest path first
    assert answers(f"both.{ns}.test", "/", "alpha-")
    assert answers(f"both.{ns}.test", "/beta/", "beta-")
    # /beta itself is beta's too: its httpd redirects the directory to /beta/ (alpha has no /beta: 404)
    assert http_get(f"both.{ns}.test", "/beta")[0] == 302
    assert answers(f"both.{ns}.test", "/betax", "alpha-") is False  # /betax is neither /beta nor beta's
    assert http_get(f"both.{ns}.test", "/betax")[0] == 404  # ... it is alpha's 404 (no such file)
    assert answers(f"both.{ns}.test", "/x/", "beta-")  # Exact /x/
    assert answers(f"both.{ns}.test", "/shared/", "alpha-")
    # a wildcard host is one label
    assert answers(f"a.wild.{ns}.test", "/", "beta-")
    assert http_get(f"a.b.wild.{ns}.test", "/")[0] == 404  # no rule: the default server's 404
    assert http_get(f"unknown.{ns}.test", "/")[0] == 404
    # X-Forwarded-* reach the pod? busybox httpd does not echo them: checked in tests/ingress/test_nginx.py

    # TLS: the Secret's certificate, verified, with SNI; plain HTTP is redirected (308)
    status, body = https_get(f"secure.{ns}.test", crt)
    assert status == 200 and body.startswith("beta-")
    status, _, headers = http_get(f"secure.{ns}.test", "/a")
    assert status == 308 and headers["Location"] == f"https://secure.{ns}.test:{HTTPS_PORT}/a"
    # no certificate for another host: the handshake is refused
    with pytest.raises(ssl.SSLError):
        https_get(f"alpha.{ns}.test", crt)

    # status.loadBalancer: the node's address (--node-ip 127.0.0.1); kubectl shows it
    lb = wait(lambda: cluster.kjson("get", "ingress", "routes", "-n", ns)["status"]["loadBalancer"].get("ingress"),
              20, "status.loadBalancer")
    assert lb == [{"ip": "127.0.0.1"}]
    row = cluster.kubectl("get", "ingress", "routes", "-n", ns).stdout.splitlines()[1]
    assert row.split()[1] == "k8py-nginx" and "   127.0.0.1   80, 443   " in row  # CLASS, ADDRESS, PORTS
    assert any(e["reason"] == "Sync" for e in events(cluster, ns, "routes"))


def test_missing_service_is_an_event_and_the_rest_serves(cluster: Server, ns: str) -> None:
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "partial", "namespace": ns},
           "spec": {"ingressClassName": "k8py-nginx", "tls": [{"hosts": [f"p.{ns}.test"], "secretName": "nosuch"}],
                    "rules": [{"host": f"p.{ns}.test", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": "alpha", "port": {"number": 80}}}},
                        {"path": "/x", "pathType": "Prefix",
                         "backend": {"service": {"name": "later", "port": {"number": 80}}}}]}}]}}
    ing["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}
    cluster.kubectl("apply", "-f", "-", input=manifest(*app(ns, "alpha"), ing))
    ready(cluster, ns, "alpha")
    wait(lambda: answers(f"p.{ns}.test", "/", "alpha-"), 30, "the served path")
    assert http_get(f"p.{ns}.test", "/x/")[0] == 503

    def warned() -> dict[str, str]:
        return {e["reason"]: e["message"] for e in events(cluster, ns, "partial") if e["type"] == "Warning"}

    got = wait(lambda: len(warned()) >= 2 and warned(), 20, "Warning events on the Ingress")
    assert got["BackendNotFound"] == (f'spec.rules[0].http.paths[1]: service "{ns}/later" not found; answering 503')
    assert got["SecretNotFound"] == (f'TLS secret "{ns}/nosuch" not found (Secrets of type kubernetes.io/tls only); '
                                     "its hosts are served without TLS")
    described = cluster.kubectl("describe", "ingress", "partial", "-n", ns).stdout
    assert "BackendNotFound" in described

    # the Service appears (the beta Deployment): the path is served within seconds
    cluster.kubectl("apply", "-f", "-", input=manifest(*app(ns, "later")))
    ready(cluster, ns, "later")
    wait(lambda: answers(f"p.{ns}.test", "/x/", "later-"), 20, "the new Service's pods through the Ingress")
    assert answers(f"p.{ns}.test", "/", "alpha-")


def test_changing_the_ingress_changes_routing_within_seconds(cluster: Server, ns: str) -> None:
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "flip", "namespace": ns},
           "spec": {"rules": [{"host": f"flip.{ns}.test", "http": {"paths": [
               {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "alpha", "port": {"number": 80}}}}]}}]}}
    # and an Ingress of another class, which is not ours: its host must stay unserved
    other = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": f"other-{ns}"},
             "spec": {"controller": "example.com/other"}}
    theirs = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "theirs", "namespace": ns},
              "spec": {"ingressClassName": f"other-{ns}", "rules": [{"host": f"theirs.{ns}.test", "http": {"paths": [
                  {"path": "/", "pathType": "Prefix",
                   "backend": {"service": {"name": "alpha", "port": {"number": 80}}}}]}}]}}
    cluster.kubectl("apply", "-f", "-", input=manifest(*app(ns, "alpha"), *app(ns, "beta"), ing, other, theirs))
    ready(cluster, ns, "alpha", "beta")
    wait(lambda: answers(f"flip.{ns}.test", "/", "alpha-"), 30, "alpha through the Ingress")
    t0 = time.monotonic()
    cluster.kubectl("patch", "ingress", "flip", "-n", ns, "--type=json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/rules/0/http/paths/0/backend/service/name", "value": "beta"}]))
    wait(lambda: answers(f"flip.{ns}.test", "/", "beta-"), 10, "beta after the change")
    took = time.monotonic() - t0
    assert took < 5, f"routing changed after {took:.1f}s"
    # the controller has synced after "theirs" was created (the same informer, in order): not served
    assert http_get(f"theirs.{ns}.test", "/")[0] == 404
    assert not cluster.kjson("get", "ingress", "theirs", "-n", ns)["status"]["loadBalancer"].get("ingress")
    cluster.kubectl("delete", "ingressclass", f"other-{ns}")
