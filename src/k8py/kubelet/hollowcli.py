"""``k8py hollow-nodes``: many simulated nodes in one process (:mod:`k8py.kubelet.hollow`), for
scale tests. The program registers the command with :func:`add_hollow_nodes_parser`, which takes
the ``subparsers`` object of the top-level parser.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from typing import TYPE_CHECKING

from k8py.runner import add_kubeconfig_flags, component_config, run_with_client

if TYPE_CHECKING:
    from k8py.client.api import Client

__all__ = ["add_hollow_nodes_parser"]

log = logging.getLogger("k8py.hollow")

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise argparse.ArgumentTypeError(f"invalid quantity {value!r} (examples: 32, 500m, 256Gi)")
    return value


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{n}: must be greater than zero")
    return n


def _seconds(value: str, *, zero: bool = False) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {value!r}") from None
    if v < 0 or (v == 0 and not zero):
        raise argparse.ArgumentTypeError(f"{value}: must be greater than zero" + (" or 0" if zero else ""))
    return v


def _seconds_or_zero(value: str) -> float:
    return _seconds(value, zero=True)


def _pairs(value: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        k, sep, v = part.partition("=")
        if not sep or not k:
            raise argparse.ArgumentTypeError(f"invalid {part!r}: use key=value[,key=value]")
        out[k] = v
    return out


def _taints(value: str) -> list[dict[str, str]]:
    out = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        kv, sep, effect = part.rpartition(":")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise argparse.ArgumentTypeError(
                f"invalid taint {part!r}: use key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
        k, _, v = kv.partition("=")
        out.append({"key": k, "value": v, "effect": effect} if v else {"key": k, "effect": effect})
    return out


def add_hollow_nodes_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "hollow-nodes", help="simulate many nodes in one process (for scale tests)",
        description="Register N simulated nodes through the API server and keep them alive: each is the node "
                    "agent on a fake runtime (nothing is executed): it renews its Lease and runs the pods bound "
                    "to it, reporting them Running and Ready (a pod annotated k8py.io/fake-exit-code=N exits "
                    "with N). Stop with Ctrl-C; --delete-on-exit removes the nodes.")
    p.add_argument("--count", type=_positive, default=10, metavar="N", help="how many nodes (default: 10)")
    p.add_argument("--name-prefix", default="hollow-node-", metavar="PREFIX",
                   help="node names are PREFIX0, PREFIX1, ... (default: hollow-node-)")
    p.add_argument("--start-index", type=int, default=0, metavar="I", help="first node number (default: 0)")
    p.add_argument("--cpu", type=_quantity, default="32", metavar="Q", help="cpu of each node (default: 32)")
    p.add_argument("--memory", type=_quantity, default="256Gi", metavar="Q",
                   help="memory of each node (default: 256Gi)")
    p.add_argument("--pods", type=_positive, default=110, metavar="N", help="pods per node (default: 110)")
    p.add_argument("--ephemeral-storage", type=_quantity, default="100Gi", metavar="Q",
                   help="ephemeral-storage of each node (default: 100Gi)")
    p.add_argument("--extended-resource", type=_pairs, default={}, metavar="NAME=Q[,NAME=Q]",
                   help="extended resources per node, e.g. nvidia.com/gpu=4")
    p.add_argument("--labels", type=_pairs, default={}, metavar="K=V[,K=V]", help="extra labels on every node")
    p.add_argument("--zones", default="", metavar="A,B,C",
                   help="spread nodes over these topology.kubernetes.io/zone values, round-robin")
    p.add_argument("--taints", type=_taints, default=[], metavar="K[=V]:EFFECT[,...]", help="taints on every node")
    p.add_argument("--lease-interval", type=_seconds, default=10.0, metavar="S",
                   help="renew each node's Lease every S seconds (default: 10, as the kubelet)")
    p.add_argument("--status-interval", type=_seconds_or_zero, default=60.0, metavar="S",
                   help="look at each node's status every S seconds, posting it when it changed and at least "
                        "every 5 minutes (default: 60; 0: only at registration)")
    p.add_argument("--no-pods", action="store_true",
                   help="register nodes and leases only; do not run the pods bound to them")
    p.add_argument("--delete-on-exit", action="store_true", help="delete the nodes and their leases on exit")
    add_kubeconfig_flags(p)
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run_hollow_nodes, parser=p)
    return p


def run_hollow_nodes(args: argparse.Namespace) -> int:
    from k8py.kubelet.hollow import HollowNodes, node_specs

    ccfg = component_config(args, log)
    if ccfg is None:
        return 1
    zones = [z.strip() for z in args.zones.split(",") if z.strip()]
    specs = node_specs(args.count, prefix=args.name_prefix, cpu=args.cpu, memory=args.memory, pods=args.pods,
                       ephemeral_storage=args.ephemeral_storage, extended=args.extended_resource,
                       labels=args.labels, zones=zones, taints=args.taints, start=args.start_index)

    async def main(client: Client, stop: asyncio.Event) -> None:
        nodes = HollowNodes(client, specs, lease_interval=args.lease_interval,
                            lease_duration=max(40, int(args.lease_interval * 4)),
                            status_interval=args.status_interval, report_pods=not args.no_pods,
                            delete_on_stop=args.delete_on_exit)
        log.info("registering %d hollow node(s) with %s", len(specs), ccfg.server)
        await nodes.run(stop)

    return run_with_client(ccfg, "hollow-nodes", main, field_manager="kubelet")
