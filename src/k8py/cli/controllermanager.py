"""``k8py controller-manager``: the controllers alone, against any API server (leader-elected)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import TYPE_CHECKING

from k8py.runner import add_kubeconfig_flags, component_config, run_with_client

if TYPE_CHECKING:
    from k8py.client.api import Client

__all__ = ["add_parser"]

log = logging.getLogger("k8py.controller-manager")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "controller-manager", help="run the controllers against an API server",
        description="Run the controllers (ReplicaSet, Deployment, garbage collector, namespaces, endpoints, "
                    "nodes, ...) against an API server. With several running, a Lease in kube-system elects "
                    "the one that works; the others wait to take over.")
    add_kubeconfig_flags(p)
    p.add_argument("--controllers", default="*", metavar="A,B",
                   help="controllers to run, comma-separated; '*' for all (default)")
    p.add_argument("--leader-elect", default="true", choices=("true", "false"),
                   help="take part in leader election (default: true)")
    p.add_argument("--root-ca-file", metavar="FILE",
                   help="the cluster CA (PEM) published as kube-root-ca.crt in every namespace (default: the "
                   "certificate authority of the kubeconfig)")
    p.add_argument("--concurrent-syncs", type=int, default=2, metavar="N", help="workers per controller")
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    from k8py.controllers.manager import CONTROLLERS, ControllerManager

    cfg = component_config(args, log)
    if cfg is None:
        return 1
    if args.root_ca_file:
        from k8py.controllers.rootcacert import RootCAError, read_root_ca

        try:
            read_root_ca(args.root_ca_file)
        except RootCAError as e:
            log.error("%s", e)
            return 1
    names = None if args.controllers.strip() in ("*", "") else [n.strip() for n in args.controllers.split(",")]
    if names:
        unknown = [n for n in names if n not in CONTROLLERS]
        if unknown:
            log.error("unknown controllers: %s (known: %s)", ", ".join(unknown), ", ".join(sorted(CONTROLLERS)))
            return 2

    async def main(client: Client, stop: asyncio.Event) -> None:
        mgr = ControllerManager(client, controllers=names, leader_elect=args.leader_elect == "true",
                                workers=args.concurrent_syncs,
                                options={"root_ca_file": args.root_ca_file} if args.root_ca_file else None)
        log.info("controller manager starting against %s (controllers: %s)", cfg.server,
                 ", ".join(mgr.names) or "none built")
        await mgr.run(stop)

    return run_with_client(cfg, "kube-controller-manager", main)
