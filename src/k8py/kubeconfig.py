"""Kubeconfig documents: the admin kubeconfig that ``k8py server`` writes, so kubectl works with
no extra flags, and a user's (``k8py kubeconfig create``), all with embedded certificates."""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
from typing import Any

import yaml

from k8py.config import ServerConfig
from k8py.pki import PKI
from k8py.tlsfiles import write_private_file

__all__ = ["admin_kubeconfig", "server_url", "user_kubeconfig", "write_admin_kubeconfig"]

log = logging.getLogger(__name__)

# The names k3s uses, so scripts written for k3s's kubeconfig keep working.
CLUSTER = USER = CONTEXT = "default"


def server_url(config: ServerConfig) -> str:
    """Where a client on this machine reaches the API server.

    A wildcard bind address (0.0.0.0 or ::) is reached on loopback; any other bind address
    is used as is (it is among the serving certificate's SANs).
    """
    scheme = "https" if config.tls else "http"
    host = "127.0.0.1"
    if config.bind_address:
        ip = ipaddress.ip_address(config.bind_address)
        if not ip.is_unspecified:
            host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{scheme}://{host}:{config.https_listen_port}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def user_kubeconfig(server: str, ca_pem: bytes | None, cert_pem: bytes, key_pem: bytes, *, user: str = USER,
                    cluster: str = CLUSTER, context: str = CONTEXT) -> dict[str, Any]:
    """A kubeconfig document for ``server`` (its CA embedded, unless plain HTTP) and a client
    certificate (embedded)."""
    entry: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        entry["certificate-authority-data"] = _b64(ca_pem)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": entry}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}}],
    }


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def admin_kubeconfig(config: ServerConfig, pki: PKI) -> dict[str, Any]:
    """The kubeconfig document for the cluster admin (client certificate, embedded)."""
    return user_kubeconfig(server_url(config), _read(pki.ca_cert) if config.tls else None, _read(pki.admin_cert),
                           _read(pki.admin_key))


def write_admin_kubeconfig(config: ServerConfig, pki: PKI) -> str:
    """Write the admin kubeconfig to ``config.kubeconfig_path`` with ``config.write_kubeconfig_mode``.

    Written on every start (certificates may have been re-issued), atomically, so a kubectl
    reading it meanwhile sees the old or the new file, never half of one. Returns the path.
    """
    path = os.path.abspath(config.kubeconfig_path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o755, exist_ok=True)
    text = yaml.safe_dump(admin_kubeconfig(config, pki), sort_keys=False, default_flow_style=False)
    write_private_file(path, text.encode(), mode=config.write_kubeconfig_mode)
    log.info("wrote kubeconfig %s (mode %04o)", path, config.write_kubeconfig_mode)
    return path
