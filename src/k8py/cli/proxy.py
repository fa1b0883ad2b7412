"""``k8py proxy``: the service proxy alone (kube-proxy's place), against any API server.

``k8py server`` runs it beside its node agent; a machine joined with ``k8py agent`` runs it
too. This command is for running it by hand (another node, a test): it needs root and ``nft``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil

from k8py.runner import run_until_signal

__all__ = ["add_parser", "missing_prerequisites"]

log = logging.getLogger("k8py.proxy")


def missing_prerequisites() -> list[str]:
    out = []
    if os.geteuid() != 0:
        out.append("root (the proxy programs nftables)")
    if not shutil.which("nft"):
        out.append("the nft command (Debian package nftables)")
    return out


def cidr_list(value: str) -> tuple[str, ...]:
    import ipaddress

    try:
        return tuple(str(ipaddress.ip_network(part.strip(), strict=False)) for part in value.split(",") if part.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid CIDR list {value!r}: {e}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from k8py.cli.server import cidr_pair, node_name

    p = subparsers.add_parser(
        "proxy", help="run the service proxy (nftables) against an API server",
        description="Program this machine's nftables (table inet k8py-proxy) so that Service addresses "
                    "(ClusterIPs, NodePorts, external and load-balancer IPs) reach their ready endpoints, "
                    "as kube-proxy's nftables mode. Removes its table when stopped.")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to reach the API server (default: "
                   "$KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")
    p.add_argument("--node-name", type=node_name, required=True, metavar="NAME",
                   help="this node's name (for internal/externalTrafficPolicy: Local)")
    p.add_argument("--cluster-cidr", type=cidr_pair, default=None, metavar="CIDR[,CIDR]",
                   help="the pod network: traffic from elsewhere to a ClusterIP is masqueraded")
    p.add_argument("--nodeport-addresses", type=cidr_list, default=(), metavar="CIDR[,CIDR]",
                   help="addresses NodePorts answer on (default: every local address but loopback)")
    p.add_argument("--min-sync-period", type=float, default=0.25, metavar="SECONDS",
                   help="shortest time between two syncs: changes meanwhile are applied together (default 0.25)")
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    from k8py.client.api import Client
    from k8py.client.config import ConfigError, load_config
    from k8py.proxy.proxier import Proxier
    from k8py.proxy.rules import ProxyConfig

    missing = missing_prerequisites()
    if missing:
        log.error("cannot run the service proxy; missing: %s", "; ".join(missing))
        return 1
    try:
        cfg = load_config(args.kubeconfig, args.context)
    except ConfigError as e:
        log.error("%s", e)
        return 1
    pcfg = ProxyConfig(args.node_name, tuple(c for c in (args.cluster_cidr or "").split(",") if c),
                       tuple(args.nodeport_addresses))

    async def main(stop: asyncio.Event) -> int:
        async with Client(cfg, component="kube-proxy") as client:
            await Proxier(client, pcfg, min_interval=args.min_sync_period).run(stop)
        return 0

    return run_until_signal(main)
