"""Objects for the ingress tests: Ingresses, Services, EndpointSlices, TLS Secrets, certificates."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

Obj = dict[str, Any]


def backend(svc: str, port: int | str = 80) -> Obj:
    return {"service": {"name": svc, "port": {"number": port} if isinstance(port, int) else {"name": port}}}


def path(p: str, svc: str, path_type: str = "Prefix", port: int | str = 80) -> Obj:
    return {"path": p, "pathType": path_type, "backend": backend(svc, port)}


def rule(host: str, *paths: Obj) -> Obj:
    out: Obj = {"http": {"paths": list(paths)}}
    if host:
        out["host"] = host
    return out


def ingress(name: str, *rules: Obj, ns: str = "default", created: str = "2024-01-01T00:00:00Z",
            default_backend: Obj | None = None, tls: list[Obj] | None = None, cls: str | None = None,
            annotations: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"rules": list(rules)}
    if default_backend:
        spec["defaultBackend"] = default_backend
    if tls is not None:
        spec["tls"] = tls
    if cls:
        spec["ingressClassName"] = cls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "creationTimestamp": created,
                         "resourceVersion": "1", "generation": 1, "annotations": annotations or {}},
            "spec": spec}


def service(name: str, ns: str = "default", ports: tuple[tuple[str, int], ...] = (("http", 80),),
            typ: str = "ClusterIP") -> Obj:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"type": typ, "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}}


def endpoint_slice(svc: str, ips: list[str], port: int, port_name: str = "http", ns: str = "default",
                   ready: bool = True) -> Obj:
    return {"metadata": {"name": f"{svc}-abc", "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}


def self_signed(*hosts: str) -> tuple[bytes, bytes]:
    """A certificate for ``hosts`` (SANs) and its key, PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def tls_secret(name: str, crt: bytes, key: bytes, ns: str = "default", typ: str = "kubernetes.io/tls") -> Obj:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "7"}, "type": typ,
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}
