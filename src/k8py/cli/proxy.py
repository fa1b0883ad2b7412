"""``k8py proxy``: the service proxy alone (kube-proxy's place), against any API server.

``k8py server`` runs it beside its node agent; a machine joined with ``k8py agent`` runs it
too. This command is for running it by hand (another node, a test): it needs root and ``nft``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from k8py.runner import add_kubeconfig_flags, cannot_run_here, component_config, run_with_client

if TYPE_CHECKING:
    from k8py.client.api import Client

__all__ = ["add_min_sync_period_flag", "add_parser", "missing_prerequisites", "start_beside_agent"]

log = logging.getLogger("k8py.proxy")


def missing_prerequisites() -> list[str]:
    from k8py.nftables import missing_prerequisites as nft_missing

    return nft_missing("the proxy")


def cidr_list(value: str) -> tuple[str, ...]:
    import ipaddress

    try:
        return tuple(str(ipaddress.ip_network(part.strip(), strict=False)) for part in value.split(",") if part.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid CIDR list {value!r}: {e}") from None


def start_beside_agent(client_for: Callable[[], Client], node: str, cluster_cidr: str, stop: asyncio.Event,
                       log: logging.Logger) -> tuple[asyncio.Task[None], Client] | None:
    """The service proxy beside a node agent (``k8py server``'s, a joined ``k8py agent``'s) as a
    task of this process, with the client ``client_for()`` makes; None when this machine cannot
    run it, after saying on ``log`` what it lacks."""
    from k8py.proxy.proxier import Proxier
    from k8py.proxy.rules import ProxyConfig

    if cannot_run_here(log, "the service proxy", "Services' addresses will not answer", missing_prerequisites()):
        return None
    client = client_for()
    proxier = Proxier(client, ProxyConfig(node, tuple(c for c in cluster_cidr.split(",") if c)))
    return asyncio.create_task(proxier.run(stop), name="service-proxy"), client


def min_sync_period(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {value!r}") from None
    if seconds < 0:  # kube-proxy: "must be greater than or equal to 0"
        raise argparse.ArgumentTypeError(f"{seconds:g} is negative")
    return seconds


def add_min_sync_period_flag(p: argparse.ArgumentParser) -> None:
    """``--min-sync-period``, of the components on the bounded-frequency sync loop (the service
    proxy, the NetworkPolicy agent)."""
    p.add_argument("--min-sync-period", type=min_sync_period, default=0.25, metavar="SECONDS",
                   help="shortest time between two syncs: changes meanwhile are applied together (default 0.25)")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from k8py.cli.server import cidr_pair, node_name

    p = subparsers.add_parser(
        "proxy", help="run the service proxy (nftables) against an API server",
        description="Program this machine's nftables (table inet k8py-proxy) so that Service addresses "
                    "(ClusterIPs, NodePorts, external and load-balancer IPs) reach their ready endpoints, "
                    "as kube-proxy's nftables mode. Removes its table when stopped.")
    add_kubeconfig_flags(p)
    p.add_argument("--node-name", type=node_name, required=True, metavar="NAME",
                   help="this node's name (for internal/externalTrafficPolicy: Local)")
    p.add_argument("--cluster-cidr", type=cidr_pair, default=None, metavar="CIDR[,CIDR]",
                   help="the pod network: traffic from elsewhere to a ClusterIP is masqueraded")
    p.add_argument("--nodeport-addresses", type=cidr_list, default=(), metavar="CIDR[,CIDR]",
                   help="addresses NodePorts answer on (default: every local address but loopback)")
    add_min_sync_period_flag(p)
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    from k8py.proxy.proxier import Proxier
    from k8py.proxy.rules import ProxyConfig

    cfg = component_config(args, log, what="the service proxy", missing=missing_prerequisites())
    if cfg is None:
        return 1
    pcfg = ProxyConfig(args.node_name, tuple(c for c in (args.cluster_cidr or "").split(",") if c),
                       tuple(args.nodeport_addresses))
    return run_with_client(cfg, "kube-proxy",
                           lambda client, stop: Proxier(client, pcfg, min_interval=args.min_sync_period).run(stop))
