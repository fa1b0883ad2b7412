"""``k8py controller-manager``: the controllers alone, against any API server (leader-elected)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from k8py.runner import run_until_signal

__all__ = ["add_parser"]

log = logging.getLogger("k8py.controller-manager")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "controller-manager", help="run the controllers against an API server",
        description="Run the controllers (ReplicaSet, Deployment, garbage collector, namespaces, endpoints, "
                    "nodes, ...) against an API server. With several running, a Lease in kube-system elects "
                    "the one that works; the others wait to take over.")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to reach the API server (default: "
                   "$KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")
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
    from k8py.client.api import Client
    from k8py.client.config import ConfigError, load_config
    from k8py.controllers.manager import CONTROLLERS, ControllerManager

    try:
        cfg = load_config(args.kubeconfig, args.context)
    except ConfigError as e:
        log.error("%s", e)
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

    async def main(stop: asyncio.Event) -> int:
        async with Client(cfg, component="kube-controller-manager") as client:
            mgr = ControllerManager(client, controllers=names, leader_elect=args.leader_elect == "true",
                                    workers=args.concurrent_syncs,
                                    options={"root_ca_file": args.root_ca_file} if args.root_ca_file else None)
            log.info("controller manager starting against %s (controllers: %s)", cfg.server,
                     ", ".join(mgr.names) or "none built")
            await mgr.run(stop)
        return 0

    return run_until_signal(main)
