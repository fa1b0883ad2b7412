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
import os
import shutil

from k8py.runner import run_until_signal

__all__ = ["add_parser", "missing_prerequisites"]

log = logging.getLogger("k8py.netpol")


def missing_prerequisites() -> list[str]:
    out = []
    if os.geteuid() != 0:
        out.append("root (the NetworkPolicy agent programs nftables)")
    if not shutil.which("nft"):
        out.append("the nft command (Debian package nftables)")
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from k8py.cli.server import node_name

    p = subparsers.add_parser(
        "network-policy", help="enforce NetworkPolicies for this node's pods (nftables)",
        description="Program this machine's nftables (table inet k8py-netpol) so that the pods of --node-name "
                    "get the traffic their NetworkPolicies allow and no other: ingress and egress rules with pod "
                    "and namespace selectors, ipBlocks and ports. Removes its table when stopped.")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to reach the API server (default: "
                   "$KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")
    p.add_argument("--node-name", type=node_name, required=True, metavar="NAME",
                   help="this node's name: the pods bound to it are the ones whose traffic is filtered here")
    p.add_argument("--min-sync-period", type=float, default=0.25, metavar="SECONDS",
                   help="shortest time between two syncs: changes meanwhile are applied together (default 0.25)")
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    from k8py.client.api import Client
    from k8py.client.config import ConfigError, load_config
    from k8py.netpol.controller import PolicyAgent

    if args.min_sync_period < 0:
        args.parser.error(f"argument --min-sync-period: {args.min_sync_period:g} is negative")
    missing = missing_prerequisites()
    if missing:
        log.error("cannot run the NetworkPolicy agent; missing: %s", "; ".join(missing))
        return 1
    try:
        cfg = load_config(args.kubeconfig, args.context)
    except ConfigError as e:
        log.error("%s", e)
        return 1

    async def main(stop: asyncio.Event) -> int:
        async with Client(cfg, component="k8py-network-policy") as client:
            await PolicyAgent(client, args.node_name, min_interval=args.min_sync_period).run(stop)
        return 0

    return run_until_signal(main)
