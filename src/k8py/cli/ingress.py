"""``k8py ingress-controller``: the ingress controller alone (ingress-nginx's place), against any
API server; ``k8py server`` and a joined ``k8py agent`` run the same controller beside their node
agent (:func:`start_beside_agent`). It runs Debian's nginx as its child: see docs/ingress.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from k8py.runner import add_kubeconfig_flags, component_config, run_with_client

if TYPE_CHECKING:
    from k8py.client.api import Client

__all__ = ["add_parser", "build_controller", "missing_prerequisites", "start_beside_agent"]

log = logging.getLogger("k8py.ingress")

HTTP_ASIDE, HTTPS_ASIDE = 8080, 8443


def missing_prerequisites() -> list[str]:
    from k8py.ingress.nginx import find_nginx

    return [] if find_nginx() else ["nginx (Debian package nginx)"]


def build_controller(client: Any, state_dir: str, http_port: int, https_port: int,
                     addresses: tuple[str, ...]) -> Any:
    """The controller with its nginx, on ``http_port``/``https_port`` or, when one is taken by
    another program, on 8080/8443 or the next free port (with a log line that says so). Raises
    :class:`~k8py.ingress.nginx.NginxError` when no port can be had."""
    from k8py.ingress.controller import IngressController
    from k8py.ingress.nginx import Nginx, NginxError, choose_port, ipv6_available, killall

    if http_port == https_port:
        raise NginxError(f"--ingress-http-port and --ingress-https-port are both {http_port}: give two ports")
    killall(state_dir)  # an nginx of a previous run of this data dir (killed server) holds our ports
    http, msg = choose_port(http_port, HTTP_ASIDE if http_port != HTTP_ASIDE else HTTP_ASIDE + 1, "HTTP")
    if msg:
        log.warning("%s", msg)
    https, msg = choose_port(https_port, HTTPS_ASIDE if https_port != HTTPS_ASIDE else HTTPS_ASIDE + 1, "HTTPS",
                             taken=(http,))
    if msg:
        log.warning("%s", msg)
    worker_user = "nobody nogroup" if os.geteuid() == 0 else ""
    return IngressController(client, Nginx(state_dir), http_port=http, https_port=https, status_addresses=addresses,
                             ipv6=ipv6_available(), worker_user=worker_user)


def start_beside_agent(client_for: Any, state_dir: str, http_port: int, https_port: int,
                       addresses: tuple[str, ...], stop: asyncio.Event,
                       out: logging.Logger) -> tuple[asyncio.Task[Any], Any] | None:
    """The ingress controller of this machine beside its node agent (k3s's bundled ingress on every
    node), as ``system:k8py-ingress`` with the client ``client_for()`` makes, its nginx's files in
    ``state_dir``; None when it cannot run here, after saying why on ``out``."""
    from k8py.ingress.nginx import NginxError
    from k8py.runner import cannot_run_here

    if cannot_run_here(out, "the ingress controller", "Ingresses will not be served", missing_prerequisites()):
        return None
    client = client_for()
    try:
        ctl = build_controller(client, state_dir, http_port, https_port, addresses)
    except NginxError as e:
        out.error("the ingress controller cannot run (Ingresses will not be served): %s", e)
        return None
    return asyncio.create_task(ctl.run(stop), name="ingress-controller"), client


def port(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}: a number from 1 to 65535")
    return n


def add_flags(p: argparse.ArgumentParser) -> None:
    """The port flags, shared by ``k8py server`` and ``k8py ingress-controller``."""
    p.add_argument("--ingress-http-port", type=port, default=80, metavar="PORT",
                   help="port nginx serves Ingresses on over HTTP (default 80; when taken, 8080 or the next free "
                        "port, with a log line)")
    p.add_argument("--ingress-https-port", type=port, default=443, metavar="PORT",
                   help="port nginx serves Ingresses on over HTTPS (default 443; when taken, 8443 or the next free "
                        "port, with a log line)")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from k8py.config import default_data_dir

    p = subparsers.add_parser(
        "ingress-controller", help="run the ingress controller (nginx) against an API server",
        description="Serve the Ingresses of the IngressClass k8py-nginx (created, as the default class, when "
                    "missing) with Debian's nginx, run as this command's child: hosts, paths, TLS from Secrets, "
                    "the default backend; status.loadBalancer is set to --publish-status-address.")
    add_kubeconfig_flags(p)
    p.add_argument("--state-dir", metavar="DIR", default=None,
                   help=f"where nginx's configuration, certificates and log live (default: "
                        f"{os.path.join(default_data_dir(), 'ingress')})")
    add_flags(p)
    p.add_argument("--publish-status-address", metavar="IP[,IP]", default="",
                   help="addresses written to the Ingresses' status.loadBalancer (default: this machine's "
                        "default-route addresses)")
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run, parser=p)
    return p


def status_addresses(value: str) -> tuple[str, ...]:
    if value:
        return tuple(a.strip() for a in value.split(",") if a.strip())
    from k8py.kubelet.node import node_addresses

    return tuple(a["address"] for a in node_addresses(socket.gethostname().lower(), ())
                 if a["type"] == "InternalIP")


def run(args: argparse.Namespace) -> int:
    from k8py.config import default_data_dir
    from k8py.ingress.nginx import NginxError

    cfg = component_config(args, log, what="the ingress controller", missing=missing_prerequisites())
    if cfg is None:
        return 1
    state_dir = os.path.abspath(args.state_dir or os.path.join(default_data_dir(), "ingress"))
    addresses = status_addresses(args.publish_status_address)

    async def main(client: Client, stop: asyncio.Event) -> int:
        try:
            ctl = build_controller(client, state_dir, args.ingress_http_port, args.ingress_https_port, addresses)
        except NginxError as e:
            log.error("cannot run the ingress controller: %s", e)
            return 1
        await ctl.run(stop)
        return 0

    return run_with_client(cfg, "k8py-ingress", main)
