"""``k8py agent``: join this machine (or network namespace) to a cluster as a node, as k3s's
agent does; ``k8py killall``: stop every container of this node and remove its network set-up.

The agent proves itself with a join token (``k8py token create --join`` on the server, or the
server's ``<data-dir>/token`` file's join form), gets its own client certificate for
``system:node:<name>`` through the CertificateSigningRequest API (kubelet's TLS bootstrap), a
serving certificate for its API the same way, and then runs the node with those credentials
only, never the admin's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
from typing import Any

from k8py.cli import nodepressure
from k8py.cli.server import _path, cidr_pair, ip_list, node_name, port, reserved
from k8py.config import default_data_dir
from k8py.runner import run_until_signal

__all__ = ["add_killall_parser", "add_parser"]

log = logging.getLogger("k8py.agent")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "agent", help="join this machine to a cluster as a node that runs pods",
        description="Run a node agent that joins the cluster at --server with a join token: it registers "
                    "the Node, runs the pods bound to it with runc and the CNI plugins, and serves its logs.")
    p.add_argument("--server", required=True, metavar="URL", help="the API server, e.g. https://10.0.0.1:6443")
    p.add_argument("--token", required=True, metavar="TOKEN",
                   help="a join token from `k8py token create --join` (K10<ca-hash>::<id>.<secret>)")
    p.add_argument("--node-name", type=node_name, metavar="NAME", help="this node's name (default: the host name)")
    p.add_argument("--data-dir", type=_path, metavar="DIR", help=f"state directory (default: {default_data_dir()})")
    p.add_argument("--node-ip", type=ip_list, default=(), metavar="IP[,IP]",
                   help="this node's address(es) (default: the addresses of the default routes)")
    p.add_argument("--kubelet-port", type=port, default=10250, metavar="PORT",
                   help="port of the agent's HTTPS API (default: 10250)")
    p.add_argument("--system-reserved", type=reserved, default={}, metavar="cpu=Q,memory=Q",
                   help="resources kept for the system (kubelet's --system-reserved)")
    p.add_argument("--kube-reserved", type=reserved, default={}, metavar="cpu=Q,memory=Q",
                   help="resources kept for Kubernetes' own daemons (kubelet's --kube-reserved)")
    p.add_argument("--cluster-cidr", type=cidr_pair, default="10.42.0.0/16", metavar="CIDR[,CIDR]",
                   help="the cluster's pod network, as the server's --cluster-cidr (default: 10.42.0.0/16); "
                        "traffic inside it is not masqueraded")
    p.add_argument("--disable-kube-proxy", action="store_true",
                   help="do not run the service proxy (nftables) beside the node agent (k3s's flag)")
    p.add_argument("--disable-network-policy", action="store_true",
                   help="do not enforce NetworkPolicies on this node (k3s's flag)")
    p.add_argument("--disable-local-storage", action="store_true",
                   help="do not provision local-path volumes on this node (k3s's --disable local-storage)")
    p.add_argument("--disable-ingress", action="store_true",
                   help="do not run the ingress controller (nginx) beside the node agent (k3s: --disable traefik)")
    from k8py.cli.ingress import add_flags as add_ingress_flags

    add_ingress_flags(p)
    p.add_argument("--debug", action="store_true", help="log at debug level")
    nodepressure.add_flags(p)
    p.set_defaults(func=run, parser=p)
    return p


def add_killall_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "killall", help="stop every container of this node and remove its network set-up",
        description="Stop and remove every container and pod sandbox the node agent made under --data-dir, "
                    "and remove the node's pod network (bridge, routes, nft table). Stop `k8py server` or "
                    "`k8py agent` first: a running agent would start the pods again.")
    p.add_argument("--data-dir", type=_path, metavar="DIR", help=f"state directory (default: {default_data_dir()})")
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run_killall, parser=p)
    return p


def run_killall(args: argparse.Namespace) -> int:
    from k8py.kubelet.run import teardown

    if os.geteuid() != 0:
        log.error("k8py killall must run as root")
        return 1
    problems = asyncio.run(teardown(args.data_dir or default_data_dir()))
    from k8py.nftables import remove_table

    # the tables of the service proxy and the NetworkPolicy agent (left behind by a kill -9)
    problems += remove_table("inet", "k8py-proxy", "the service proxy")
    problems += remove_table("inet", "k8py-netpol", "the NetworkPolicy agent")
    from k8py.ingress.nginx import killall as stop_ingress_nginx

    for done in stop_ingress_nginx(os.path.join(args.data_dir or default_data_dir(), "ingress")):  # a killed server's
        log.info("killall: %s", done)
    for p in problems:
        log.error("killall: %s", p)
    return 1 if problems else 0


def run(args: argparse.Namespace) -> int:
    from k8py.kubelet.run import missing_prerequisites

    data_dir = args.data_dir or default_data_dir()
    name = args.node_name or _default_name()
    args.node_pressure = nodepressure.flags_of(args, args.parser)
    missing = missing_prerequisites(data_dir)
    if missing:
        log.error("this machine cannot run pods. Missing:\n  - %s", "\n  - ".join(missing))
        return 1
    return run_until_signal(lambda stop: _main(args, data_dir, name, stop))


def _default_name() -> str:
    try:
        return node_name(socket.gethostname())
    except argparse.ArgumentTypeError:
        return "k8py-agent"


async def _main(args: argparse.Namespace, data_dir: str, name: str, stop: asyncio.Event) -> int:
    from k8py.client.api import Client
    from k8py.client.config import ClientConfig
    from k8py.kubelet.node import node_addresses
    from k8py.kubelet.run import NodeOptions, node_paths, run_node

    certs = os.path.join(node_paths(data_dir)["agent"], "tls")
    ips = tuple(a["address"] for a in node_addresses(name, args.node_ip) if a["type"] == "InternalIP")
    creds = await asyncio.to_thread(_credentials, args.server, args.token, name, certs, ips)
    if creds is None:
        return 1
    client = Client(ClientConfig(server=args.server, ca_file=creds["ca"], cert_file=creds["cert"],
                                 key_file=creds["key"]), component="kubelet")
    opts = NodeOptions(node_name=name, data_dir=data_dir, node_ips=ips, cluster_cidrs=tuple(args.cluster_cidr.split(",")),
                       kubelet_port=args.kubelet_port, system_reserved=args.system_reserved,
                       kube_reserved=args.kube_reserved,
                       eviction=nodepressure.eviction_config(args.node_pressure),
                       pod_max_pids=nodepressure.pod_max_pids(args.node_pressure),
                       container_gc_period=nodepressure.container_gc_period(args.node_pressure),
                       serving_cert=creds["serving_cert"], serving_key=creds["serving_key"], client_ca=creds["ca"])
    log.info("joining %s as node %s", args.server, name)
    from k8py.kubelet.certmanager import CertificateManager

    async def rotate(roles: list[str]) -> dict[str, Any] | None:
        new = await asyncio.to_thread(_credentials, args.server, args.token, name, certs, ips, roles)
        return None if new is None else dict(new["lifetimes"])

    def role_client(role: str, component: str) -> Client:
        """A client with the certificate of one of the node's components (``<role>_cert``)."""
        return Client(ClientConfig(server=args.server, ca_file=creds["ca"], cert_file=creds[f"{role}_cert"],
                                   key_file=creds[f"{role}_key"]), component=component)

    beside: list[tuple[asyncio.Task[Any], Client] | None] = []  # the node's components, each with its client
    # the service proxy, as system:kube-proxy (k3s's agents run kube-proxy beside the kubelet)
    if not args.disable_kube_proxy and creds.get("proxy_cert"):
        from k8py.cli import proxy

        beside.append(proxy.start_beside_agent(lambda: role_client("proxy", "kube-proxy"), name, args.cluster_cidr,
                                               stop, log))
    # the NetworkPolicy agent, as system:k8py-network-policy (k3s's embedded policy controller)
    if not args.disable_network_policy and creds.get("netpol_cert"):
        from k8py.cli import netpol

        beside.append(netpol.start_beside_agent(lambda: role_client("netpol", "k8py-network-policy"), name, stop, log))
    # the local-path provisioner, as system:k8py-local-path-provisioner (k3s's local-storage)
    if not args.disable_local_storage and creds.get("localpath_cert"):
        from k8py.kubelet.localpath import COMPONENT, LocalPathProvisioner

        localpath_client = role_client("localpath", COMPONENT)
        beside.append((asyncio.create_task(LocalPathProvisioner(localpath_client, name, data_dir).run(stop),
                                           name=COMPONENT), localpath_client))
    # the ingress controller, as system:k8py-ingress (k3s's bundled ingress answers on every node)
    if not args.disable_ingress and creds.get("ingress_cert"):
        from k8py.cli import ingress

        beside.append(ingress.start_beside_agent(lambda: role_client("ingress", "k8py-ingress"),
                                                 os.path.join(data_dir, "ingress"), args.ingress_http_port,
                                                 args.ingress_https_port, ips, stop, log))
    started = [b for b in beside if b is not None]

    def reloaded() -> None:
        client.reload_client_certificate()
        for _, other in started:
            other.reload_client_certificate()

    # kubelet's certificate rotation: new client and serving certificates at 70-90 % of their life
    certmgr = CertificateManager(creds["lifetimes"], rotate, reloaded)
    certmgr_task = asyncio.create_task(certmgr.run(stop), name="certificate-manager")
    try:
        await run_node(client, opts, stop)
    finally:
        certmgr_task.cancel()
        if started:
            stop.set()
            await asyncio.gather(*(task for task, _ in started), return_exceptions=True)
        await client.close()
        for _, other in started:
            await other.close()
    return 0


def _credentials(server: str, token: str, name: str, cert_dir: str, ips: tuple[str, ...],
                 rotate: list[str] | None = None) -> dict[str, Any] | None:
    """The node's client and serving credentials (paths by role), from the TLS bootstrap run in a
    child process (:func:`_credentials_child`: the agent itself never loads ``cryptography``,
    which would cost it about 8 MB for good), or None after logging why they cannot be had."""
    req = {"server": server, "token": token, "node_name": name, "cert_dir": cert_dir, "ips": list(ips),
           "hostnames": [name], "rotate": rotate or []}
    p = subprocess.run([sys.executable, "-m", "k8py.cli.agent", "credentials"], input=json.dumps(req), text=True,
                       stdout=subprocess.PIPE, check=False)  # its log goes to our stderr
    if p.returncode != 0:
        log.error("cannot join %s: the TLS bootstrap failed (exit %d; see above)", server, p.returncode)
        return None
    return dict(json.loads(p.stdout))


def _credentials_child() -> int:
    """``python -m k8py.cli.agent credentials``: the TLS bootstrap alone, in a short-lived process.
    Reads its request as JSON on stdin (so the join token never shows in a process list), logs
    to stderr, prints the files' paths as JSON on stdout."""
    from k8py.cli.logs import setup_logging
    from k8py.kubelet.bootstrap import BootstrapError, node_credentials

    setup_logging()
    req = json.load(sys.stdin)
    try:
        out = asyncio.run(node_credentials(req["server"], req["token"], req["node_name"], req["cert_dir"],
                                           req["ips"], req["hostnames"], rotate=req.get("rotate") or ()))
    except BootstrapError as e:
        log.error("%s", e)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["credentials"]:
    raise SystemExit(_credentials_child())
