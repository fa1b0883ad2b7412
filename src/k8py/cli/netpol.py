"""``k8py network-policy``: the NetworkPolicy agent alone (the place of Calico's Felix or
kube-router's policy controller on a node), against any API server.

``k8py server`` runs it beside its node agent (``--disable-network-policy`` turns it off, as k3s's
flag). This command is for running it by hand on a node (another node, a test): it needs root and
``nft``.
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

__all__ = ["add_parser", "missing_prerequisites", "start_beside_agent"]

log = logging.getLogger("k8py.netpol")


def missing_prerequisites() -> list[str]:
    from k8py.nftables import missing_prerequisites as nft_missing

    return nft_missing("the NetworkPolicy agent")


def start_beside_agent(client_for: Callable[[], Client], node: str, stop: asyncio.Event,
                       log: logging.Logger) -> tuple[asyncio.Task[None], Client] | None:
    """The NetworkPolicy agent for the pods of ``node`` beside its node agent (``k8py server``'s,
    a joined ``k8py agent``'s) as a task of this process, with the client ``client_for()`` makes;
    None when this machine cannot run it, after saying on ``log`` what it lacks."""
    from k8py.netpol.controller import PolicyAgent

    if cannot_run_here(log, "the NetworkPolicy agent", "NetworkPolicies will not be enforced", missing_prerequisites()):
        return None
    client = client_for()
    return asyncio.create_task(PolicyAgent(client, node).run(stop), name="network-policy"), client


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from k8py.cli.proxy import add_min_sync_period_flag
    from k8py.cli.server import node_name

    p = subparsers.add_parser(
        "network-policy", help="enforce NetworkPolicies for this node's pods (nftables)",
        description="Program this machine's nftables (table inet k8py-netpol) so that the pods of --node-name "
                    "get the traffic their NetworkPolicies allow and no other: ingress and egress rules with pod "
                    "and namespace selectors, ipBlocks and ports. Removes its table when stopped.")
    add_kubeconfig_flags(p)
    p.add_argument("--node-name", type=node_name, required=True, metavar="NAME",
                   help="this node's name: the pods bound to it are the ones whose traffic is filtered here")
    add_min_sync_period_flag(p)
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    from k8py.netpol.controller import PolicyAgent

    cfg = component_config(args, log, what="the NetworkPolicy agent", missing=missing_prerequisites())
    if cfg is None:
        return 1
    return run_with_client(cfg, "k8py-network-policy", lambda client, stop: PolicyAgent(
        client, args.node_name, min_interval=args.min_sync_period).run(stop))
