"""The admin kubeconfig that ``k8py server`` writes, so kubectl works with no extra flags."""

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

__all__ = ["admin_kubeconfig", "server_url", "write_admin_kubeconfig"]

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


def _b64_file(path: str) -> str:
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode("ascii")


def admin_kubeconfig(config: ServerConfig, pki: PKI) -> dict[str, Any]:
    """The kubeconfig document for the cluster admin (client certificate, embedded)."""
    cluster: dict[str, Any] = {"server": server_url(config)}
    if config.tls:
        cluster["certificate-authority-data"] = _b64_file(pki.ca_cert)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": cluster}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CLUSTER, "user": USER}}],
        "current-context": CONTEXT,
        "preferences": {},
        "users": [
            {
                "name": USER,
                "user": {
                    "client-certificate-data": _b64_file(pki.admin_cert),
                    "client-key-data": _b64_file(pki.admin_key),
                },
            }
        ],
    }


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
