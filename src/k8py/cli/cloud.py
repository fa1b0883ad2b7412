"""``k8py cloud-controller-manager``: the cloud controller alone (kube's cloud-controller-manager
with k8py's local load-balancer provider), against any API server. ``k8py server`` runs it
in-process unless ``--disable-cloud-controller``."""

from __future__ import annotations

import argparse
import asyncio
import logging

from k8py.runner import run_until_signal

__all__ = ["add_parser"]

log = logging.getLogger("k8py.cloud-controller-manager")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from k8py.cli.server import lb_pool

    p = subparsers.add_parser(
        "cloud-controller-manager", help="run the cloud controller (LoadBalancer addresses) against an API server",
        description="Give LoadBalancer Services addresses (status.loadBalancer.ingress) from --lb-pool, or the "
                    "nodes' addresses without one, with events saying why when a Service cannot get one.")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to reach the API server (default: "
                   "$KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")
    p.add_argument("--lb-pool", type=lb_pool, default=None, metavar="CIDR|FIRST-LAST[,...]",
                   help="addresses for LoadBalancer Services (default: the nodes' addresses)")
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    from k8py.client.api import Client
    from k8py.client.config import ConfigError, load_config
    from k8py.cloud.controller import ServiceLBController
    from k8py.cloud.provider import LocalProvider

    try:
        cfg = load_config(args.kubeconfig, args.context)
    except ConfigError as e:
        log.error("%s", e)
        return 1

    async def main(stop: asyncio.Event) -> int:
        async with Client(cfg, component="cloud-controller-manager") as client:
            await ServiceLBController(client, LocalProvider(args.lb_pool or "")).run(stop)
        return 0

    return run_until_signal(main)
