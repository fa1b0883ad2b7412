"""The server's certificates over time: renewed before they expire while the server runs, and
``k8py certificate check | rotate`` (k3s's commands).

**Renewal in a running server** (:class:`ServerCertificates`, started by ``cli/process.py``):
the serving certificate, the admin certificate (and the kubeconfig that embeds it), the API
server's kubelet client certificate, the embedded node agent's serving certificate and the client
certificates of the in-process components (controller manager, scheduler, node agent) are issued
again when their renewal time comes (``pki.renewal_time``: 90 days before they expire, or in the
last quarter of a shorter life). Nothing restarts: the TLS servers present a replaced serving
certificate to new handshakes (``k8py.tlsfiles``), the components' clients load their new
certificate into their live TLS context (``Client.reload_client_certificate``), and the API
server reaches kubelets with a new connection object.

**``k8py certificate rotate [--service NAME]...``** issues the named certificates of the data
directory again, at once, with new keys (every one when no ``--service``): ``api-server``,
``admin``, ``apiserver-kubelet-client``, ``kubelet`` (the embedded node agent's serving one). Unlike k3s, which
asks for the server to be stopped, it may run beside a running server: the server presents the
new serving certificate to new connections within a second, rewrites nothing else, and keeps
using its in-memory component certificates (still valid) until their own renewal. The admin
kubeconfig in the data directory is rewritten with the new admin certificate.

**``k8py certificate check [-o json]``** lists the certificates of the data directory (the
cluster's and the embedded agent's) with their subject, names, expiry and status.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from k8py.cli.server import _path
from k8py.config import ServerConfig, default_data_dir

__all__ = ["ServerCertificates", "add_parser"]

log = logging.getLogger("k8py.certificate")

# The longest a renewal check waits (a clock that jumps, a file rotated by hand).
MAX_CHECK_INTERVAL = 3600.0
MIN_CHECK_INTERVAL = 1.0


def kubelet_serving_files(data_dir: str) -> tuple[str, str]:
    """Where the embedded node agent's serving certificate and key live."""
    from k8py.pki import KUBELET, SERVICES

    cert, key, _ = SERVICES[KUBELET]
    return os.path.join(data_dir, cert), os.path.join(data_dir, key)


# --------------------------------------------------------------------------- in a running server


class ServerCertificates:
    """Renews a running server's certificates before they expire (see the module docstring).

    ``clients`` are the in-process components' API clients, whose client certificates (held in
    memory, ``ClientConfig.cert_data``) are renewed for the same subject; ``on_kubelet_client``
    is called with the new (cert, key) paths of the API server's kubelet client certificate.
    """

    def __init__(self, config: ServerConfig, *, clients: list[Any], on_kubelet_client: Callable[[str, str], None],
                 kubelet_serving: tuple[str, tuple[str, ...], tuple[str, ...]] | None = None) -> None:
        self.config = config
        self.clients = clients
        self.on_kubelet_client = on_kubelet_client
        self.kubelet_serving = kubelet_serving  # (node name, IPs, host names) of the embedded agent

    def next_check(self, now: dt.datetime | None = None) -> float:
        """Seconds until the earliest renewal time of any certificate we keep (bounded)."""
        from k8py import pki

        now = now or dt.datetime.now(dt.UTC)
        p = pki.PKI.in_dir(self.config.tls_dir)
        times: list[dt.datetime] = []
        for path in (p.serving_cert, p.admin_cert, os.path.join(p.tls_dir, pki.KUBELET_CLIENT_CERT),
                     os.path.join(p.tls_dir, pki.FRONT_PROXY_CLIENT_CERT),
                     *([kubelet_serving_files(self.config.data_dir)[0]] if self.kubelet_serving else [])):
            info = pki.inspect_certificate(path)
            if info is not None:
                times.append(pki.renewal_at(info.not_before, info.not_after))
        for c in self.clients:
            if c.config.cert_data:
                times.append(pki.certificate_renewal_time(c.config.cert_data))
        if not times:
            return MAX_CHECK_INTERVAL
        return max(MIN_CHECK_INTERVAL, min(MAX_CHECK_INTERVAL, (min(times) - now).total_seconds()))

    def renew_due(self) -> list[str]:
        """Issue again every certificate whose renewal time has come; returns what was renewed."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        from k8py import pki
        from k8py.kubeconfig import write_admin_kubeconfig
        from k8py.tlsfiles import write_private_file

        validity = dt.timedelta(seconds=self.config.cert_validity_seconds)
        renewed: list[str] = []
        p = pki.PKI.in_dir(self.config.tls_dir)
        before = {path: _mtime(path) for path in (p.serving_cert, p.admin_cert)}
        pki.ensure_pki(self.config)  # reissues the serving and admin certificates when due
        if _mtime(p.serving_cert) != before[p.serving_cert]:
            renewed.append(pki.API_SERVER)
        if _mtime(p.admin_cert) != before[p.admin_cert]:
            write_admin_kubeconfig(self.config, p)
            renewed.append(pki.ADMIN)
        kc = os.path.join(p.tls_dir, pki.KUBELET_CLIENT_CERT)
        was = _mtime(kc)
        cert, key = pki.ensure_kubelet_client_certificate(p, validity=validity)
        if _mtime(kc) != was:
            self.on_kubelet_client(cert, key)
            renewed.append(pki.KUBELET_CLIENT)
        # the aggregation layer's proxy client certificate: its next connection uses the new file
        fp = os.path.join(p.tls_dir, pki.FRONT_PROXY_CLIENT_CERT)
        was = _mtime(fp)
        pki.ensure_front_proxy_certificates(p, validity=validity)
        if _mtime(fp) != was:
            renewed.append(pki.FRONT_PROXY_CLIENT_CN)
        if self.kubelet_serving is not None:
            cert_file, key_file = kubelet_serving_files(self.config.data_dir)
            info = pki.inspect_certificate(cert_file)
            if info is None or pki.renewal_at(info.not_before, info.not_after) <= dt.datetime.now(dt.UTC):
                name, ips, hosts = self.kubelet_serving
                c_pem, k_pem = pki.issue_kubelet_serving_certificate(p, name, ips, hosts, validity=validity)
                write_private_file(key_file, k_pem)  # key first: the reloading context skips a mismatch
                write_private_file(cert_file, c_pem, 0o644)
                renewed.append("kubelet")
        for c in self.clients:
            data = c.config.cert_data
            if not data or not pki.renewal_due(x509.load_pem_x509_certificate(data)):
                continue
            subject = x509.load_pem_x509_certificate(data).subject
            cn = str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
            orgs = tuple(str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
            c.config.cert_data, c.config.key_data = pki.issue_client_certificate(p, cn, orgs, validity=validity)
            c.reload_client_certificate()
            renewed.append(cn)
        return renewed

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with asyncio.timeout(self.next_check()):
                    await stop.wait()
                return
            except TimeoutError:
                pass
            try:
                renewed = self.renew_due()
            except Exception as e:  # noqa: BLE001 - keep serving; try again at the next check
                log.error("renewing certificates failed (trying again in a minute): %s", e)
                await _wait(stop, 60.0)
                continue
            if renewed:
                log.info("renewed certificates: %s", ", ".join(renewed))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        pass


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


# --------------------------------------------------------------------------- k8py certificate


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from k8py.pki import SERVICES

    p = subparsers.add_parser(
        "certificate", help="check or rotate the cluster's certificates",
        description="Check the certificates in the server's data directory, or issue them again (rotate). "
                    "The cluster CA is never replaced.")
    sub = p.add_subparsers(dest="certificate_command", metavar="COMMAND", title="commands")
    check = sub.add_parser("check", help="list the certificates with their expiry",
                           description="List the certificates in the data directory: subject, names, expiry, "
                                       "status (OK, RENEWAL DUE, EXPIRED).")
    check.add_argument("--data-dir", "-d", type=_path, metavar="DIR",
                       help=f"the server's data directory (default: {default_data_dir()})")
    check.add_argument("--output", "-o", choices=("table", "json"), default="table", help="output format")
    check.set_defaults(func=run_check, parser=check)
    rot = sub.add_parser(
        "rotate", help="issue certificates again, with new keys",
        description="Issue the named certificates (every one without --service) again, signed by the cluster "
                    "CA with new keys, for the same subject and names. A running server presents a new serving "
                    "certificate to new connections at once; the admin kubeconfig in the data directory is "
                    "rewritten.")
    rot.add_argument("--data-dir", "-d", type=_path, metavar="DIR",
                     help=f"the server's data directory (default: {default_data_dir()})")
    rot.add_argument("--service", "-s", action="append", default=[], metavar="NAME",
                     help=f"a certificate to rotate, repeatable: {', '.join(SERVICES)} (default: all)")
    rot.add_argument("--certificate-validity", type=_duration, default=365 * 86400.0, metavar="DURATION",
                     help="life of the new certificates (default: 8760h)")
    rot.set_defaults(func=run_rotate, parser=rot)
    p.set_defaults(func=lambda args: _need_command(p), parser=p)
    return p


def _duration(value: str) -> float:
    from k8py.cli.server import duration

    return duration(value)


def _need_command(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    print("\nk8py certificate: error: choose a command (check, rotate)", file=sys.stderr)
    return 2


def _tls_dir(args: argparse.Namespace) -> str | None:
    tls = os.path.join(args.data_dir or default_data_dir(), "tls")
    if not os.path.isfile(os.path.join(tls, "ca.crt")):
        log.error("no cluster certificates in %s: is --data-dir the server's data directory?", tls)
        return None
    return tls


def run_check(args: argparse.Namespace) -> int:
    from k8py import pki

    tls = _tls_dir(args)
    if tls is None:
        return 1
    data_dir = os.path.dirname(tls)
    paths = sorted(os.path.join(tls, n) for n in os.listdir(tls) if n.endswith(".crt"))
    paths += [p for p in kubelet_serving_files(data_dir)[:1] if os.path.exists(p)]
    now = dt.datetime.now(dt.UTC)
    infos = [i for i in map(pki.inspect_certificate, paths) if i is not None]
    if args.output == "json":
        print(json.dumps([{"file": i.path, "subject": i.subject, "issuer": i.issuer,
                           "notBefore": i.not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "notAfter": i.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), "names": list(i.names),
                           "ca": i.is_ca, "status": i.status(now)} for i in infos], indent=2))
        return 0
    rows = [("FILE", "SUBJECT", "EXPIRES", "RESIDUAL TIME", "STATUS")]
    for i in infos:
        rows.append((os.path.relpath(i.path, data_dir), i.subject, i.not_after.strftime("%Y-%m-%d %H:%M:%S UTC"),
                     _residual(i.not_after - now), i.status(now)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _residual(left: dt.timedelta) -> str:
    s = int(left.total_seconds())
    if s <= 0:
        return "expired"
    if s >= 86400:
        return f"{s // 86400}d"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60}m"
    return f"{s // 60}m{s % 60}s"


def run_rotate(args: argparse.Namespace) -> int:
    from k8py import pki

    tls = _tls_dir(args)
    if tls is None:
        return 1
    services = list(dict.fromkeys(args.service)) or list(pki.SERVICES)
    try:
        # every certificate there is without --service (no kubelet one under --disable-agent); a named one must be
        written = pki.rotate(os.path.dirname(tls), services, dt.timedelta(seconds=args.certificate_validity),
                             missing_ok=not args.service)
    except ValueError as e:
        args.parser.error(str(e))
    except OSError as e:
        log.error("%s", e)
        return 1
    if pki.ADMIN in services:
        _rewrite_admin_kubeconfig(os.path.dirname(tls), pki.PKI.in_dir(tls))
    for path in written:
        print(f"rotated {path}")
    return 0


def _rewrite_admin_kubeconfig(data_dir: str, p: Any) -> None:
    """The data directory's admin kubeconfig, with the new admin certificate embedded."""
    import yaml

    from k8py.tlsfiles import write_private_file

    path = os.path.join(data_dir, "kubeconfig.yaml")
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        mode = os.stat(path).st_mode & 0o777
    except (OSError, yaml.YAMLError):
        return
    with open(p.admin_cert, "rb") as f:
        cert = base64.b64encode(f.read()).decode()
    with open(p.admin_key, "rb") as f:
        key = base64.b64encode(f.read()).decode()
    for u in doc.get("users") or []:
        user = u.get("user") or {}
        if "client-certificate-data" in user:
            user["client-certificate-data"], user["client-key-data"] = cert, key
    write_private_file(path, yaml.safe_dump(doc, sort_keys=False).encode(), mode)
    print(f"rewrote {path}")
