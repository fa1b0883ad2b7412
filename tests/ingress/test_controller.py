"""``k8py ingress-controller`` against a running API server (no node agent: the backends are
HTTP servers of this test on loopback, behind a selector-less Service and a hand-made
EndpointSlice): the controller routes through nginx, reports a TLS Secret nginx refuses and
serves the rest, keeps serving while the API server is down and follows changes after it is
back (re-list and watch), and leaves nothing behind when stopped."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import KUBECTL, Server, free_port, manifest, start_server, wait
from tests.helpers.realnode import nginx_pids

from k8py.ingress.nginx import find_nginx

pytestmark = pytest.mark.skipif(not KUBECTL or not find_nginx() or os.geteuid() != 0,
                                reason="needs kubectl, nginx (Debian) and root")


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[dict[str, int]]:
    """Two static HTTP servers on loopback answering their name."""
    procs, ports = [], {}
    for name in ("one", "two"):
        d = tmp_path / f"www-{name}"
        d.mkdir()
        (d / "index.html").write_text(name + "\n")
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                       "--directory", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports[name] = port
    try:
        yield ports
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def backend_objects(ns: str, name: str, port: int) -> list[dict[str, Any]]:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}}
    sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
          "metadata": {"name": f"{name}-manual", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
          "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
          "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}
    return [svc, sl]


def get(port: int, host: str) -> tuple[int, str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/", headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read().decode().strip()
    except OSError:
        return 0, ""
    finally:
        c.close()


def rsa_1024_secret(ns: str, host: str) -> dict[str, Any]:
    """A TLS Secret that parses but that OpenSSL refuses at its default security level (2048 bits)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    crt = cert.public_bytes(serialization.Encoding.PEM)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "weak",
                                                                                               "namespace": ns},
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(pem).decode()}}


def test_standalone_controller_survives_api_restart(tmp_path: Path, backends: dict[str, int]) -> None:
    s: Server = start_server(tmp_path / "cp")
    http_port, https_port = free_port(), free_port()
    state = tmp_path / "ingress"  # as in a data dir: nginx_pids looks for <dir>/ingress/
    log = tmp_path / "ingress.log"
    ctl = None
    try:
        ns = "web"
        s.kubectl("create", "namespace", ns)
        ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "site", "namespace": ns},
               "spec": {"tls": [{"hosts": ["weak.test"], "secretName": "weak"}],
                        "rules": [{"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                            "service": {"name": "one", "port": {"name": "http"}}}}]}}
                                  for h in ("site.test", "weak.test")]}}
        s.kubectl("apply", "-f", "-", input=manifest(*backend_objects(ns, "one", backends["one"]),
                                                       *backend_objects(ns, "two", backends["two"]),
                                                       rsa_1024_secret(ns, "weak.test"), ing))
        with open(log, "wb") as f:
            ctl = subprocess.Popen(
                [sys.executable, "-m", "k8py.cli", "ingress-controller", "--kubeconfig", s.kubeconfig,
                 "--state-dir", str(state), "--ingress-http-port", str(http_port), "--ingress-https-port",
                 str(https_port), "--publish-status-address", "192.0.2.7"],
                stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        wait(lambda: get(http_port, "site.test") == (200, "one"), 30, "the Ingress served")
        assert nginx_pids(tmp_path)  # the controller's child, found by its state directory
        # the certificate nginx refuses: an event on the Ingress, its host served over HTTP, the rest too
        ev = wait(lambda: [e for e in s.kjson("get", "events", "-n", ns)["items"] if e["reason"] == "InvalidSecret"],
                  20, "the InvalidSecret event")
        assert ev[0]["involvedObject"]["name"] == "site" and "is refused by nginx" in ev[0]["message"]
        assert "key too small" in ev[0]["message"]
        assert get(http_port, "weak.test") == (200, "one")
        lb = wait(lambda: s.kjson("get", "ingress", "site", "-n", ns)["status"]["loadBalancer"].get("ingress"),
                  20, "status.loadBalancer")
        assert lb == [{"ip": "192.0.2.7"}]
        assert s.kjson("get", "ingressclass", "k8py-nginx")["spec"]["controller"] == "k8py.io/ingress-nginx"

        # the API server goes away: nginx keeps serving; it comes back: changes are followed
        s.stop()
        assert get(http_port, "site.test") == (200, "one")
        s.start()
        s.kubectl("patch", "ingress", "site", "-n", ns, "--type=json", "-p",
                  '[{"op":"replace","path":"/spec/rules/0/http/paths/0/backend/service/name","value":"two"}]')
        wait(lambda: get(http_port, "site.test") == (200, "two"), 30, "the change after the API server restarted")
        assert ctl.poll() is None
    finally:
        if ctl is not None:
            ctl.send_signal(signal.SIGTERM)
            rc = ctl.wait(30)
        s.stop()
    assert rc == 0, log.read_text()[-3000:]
    assert not nginx_pids(tmp_path)
    assert sorted(os.listdir(state)) == ["nginx.log"], log.read_text()[-2000:]
