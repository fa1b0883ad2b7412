"""``k8py cloud-controller-manager``: the cloud controller alone (kube's cloud-controller-manager
with k8py's local load-balancer provider), against any API server. ``k8py server`` runs it
in-process unless ``--disable-cloud-controller``."""

from __future__ import annotations

import argparse
import logging

from k8py.runner import add_kubeconfig_flags, component_config, run_with_client

__all__ = ["add_parser"]

log = logging.getLogger("k8py.cloud-controller-manager")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from k8py.cli.server import lb_pool

    p = subparsers.add_parser(
        "cloud-controller-manager", help="run the cloud controller (LoadBalancer addresses) against an API server",
        description="Give LoadBalancer Services addresses (status.loadBalancer.ingress) from --lb-pool, or the "
                    "nodes' addresses without one, with events saying why when a Service cannot get one.")
    add_kubeconfig_flags(p)
    p.add_argument("--lb-pool", type=lb_pool, default=None, metavar="CIDR|FIRST-LAST[,...]",
                   help="addresses for LoadBalancer Services (default: the nodes' addresses)")
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    from k8py.cloud.controller import ServiceLBController
    from k8py.cloud.provider import LocalProvider

    cfg = component_config(args, log)
    if cfg is None:
        return 1
    return run_with_client(cfg, "cloud-controller-manager", lambda client, stop: ServiceLBController(
        client, LocalProvider(args.lb_pool or "")).run(stop))
