"""``k8py scheduler`` and ``k8py hollow-nodes``: argparse subcommands.

The program registers them with :func:`add_scheduler_parser` and :func:`add_hollow_nodes_parser`
(each takes the ``subparsers`` object of the top-level parser).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import re
import signal
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["add_hollow_nodes_parser", "add_scheduler_parser"]

log = logging.getLogger("k8py.scheduler")

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


def _seconds(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {value!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{value}: must be greater than zero")
    return v


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


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", metavar="FILE",
                   help="kubeconfig to reach the API server (default: the configuration file's "
                   "clientConnection.kubeconfig, $KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")
    p.add_argument("--debug", action="store_true", help="log at debug level")


def _run(main: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    async def wrapper() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    return asyncio.run(wrapper())


# --------------------------------------------------------------------------- k8py scheduler


def add_scheduler_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "scheduler", help="run the scheduler against an API server",
        description="Assign pending pods to nodes, as kube-scheduler does: filter and score plugins, "
                    "priorities and preemption, profiles from a KubeSchedulerConfiguration file. With several "
                    "running, a Lease in kube-system elects the one that schedules.")
    p.add_argument("--config", metavar="FILE",
                   help="a KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) YAML file; invalid "
                   "files are refused at start with the field at fault (default: one default-scheduler "
                   "profile with the default plugins)")
    p.add_argument("--leader-elect", choices=("true", "false"),
                   help="take part in leader election (default: the configuration's "
                   "leaderElection.leaderElect, true)")
    p.add_argument("--write-config-to", metavar="FILE",
                   help="write the effective configuration (defaults applied) as YAML and exit")
    _client_args(p)
    p.set_defaults(func=run_scheduler, parser=p)
    return p


def _effective(cfg: Any) -> dict[str, Any]:
    le = cfg.leader_election
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
        "percentageOfNodesToScore": cfg.percentage_of_nodes_to_score,
        "podInitialBackoffSeconds": int(cfg.pod_initial_backoff_seconds),
        "podMaxBackoffSeconds": int(cfg.pod_max_backoff_seconds),
        "leaderElection": {"leaderElect": le.leader_elect, "leaseDuration": f"{le.lease_duration:g}s",
                           "renewDeadline": f"{le.renew_deadline:g}s", "retryPeriod": f"{le.retry_period:g}s",
                           "resourceLock": "leases", "resourceName": le.resource_name,
                           "resourceNamespace": le.resource_namespace},
        "clientConnection": {"kubeconfig": cfg.kubeconfig},
        "profiles": [{
            "schedulerName": p.scheduler_name,
            **({"percentageOfNodesToScore": p.percentage_of_nodes_to_score}
               if p.percentage_of_nodes_to_score is not None else {}),
            "plugins": {point: {
                **({"enabled": [{"name": s.name, **({"weight": s.weight} if s.weight else {})} for s in ps.enabled]}
                   if ps.enabled else {}),
                **({"disabled": [{"name": n} for n in ps.disabled]} if ps.disabled else {})}
                for point, ps in p.plugins.items() if ps.enabled or ps.disabled},
            "pluginConfig": [{"name": n, "args": dict(a)} for n, a in p.plugin_args.items()],
        } for p in cfg.profiles],
    }


async def _freeze_when_ready(ready: asyncio.Event) -> None:
    """Once the caches are filled, move everything alive to the collector's permanent generation:
    the cluster state is long-lived, and rescanning it in full collections costs latency."""
    await ready.wait()
    gc.collect()
    gc.freeze()


def run_scheduler(args: argparse.Namespace) -> int:
    import yaml

    from k8py.client.api import Client
    from k8py.client.config import ConfigError as ClientConfigError
    from k8py.client.config import load_config as load_client_config
    from k8py.scheduler.config import ConfigError, default_config, load_config
    from k8py.scheduler.scheduler import Scheduler

    try:
        cfg = load_config(args.config) if args.config else default_config()
    except ConfigError as e:
        log.error("%s", e)
        return 1
    if args.write_config_to:
        with open(args.write_config_to, "w", encoding="utf-8") as f:
            yaml.safe_dump(_effective(cfg), f, sort_keys=False)
        log.info("wrote the effective configuration to %s", args.write_config_to)
        return 0
    try:
        ccfg = load_client_config(args.kubeconfig or cfg.kubeconfig or None, args.context)
    except ClientConfigError as e:
        log.error("%s", e)
        return 1
    leader = None if args.leader_elect is None else args.leader_elect == "true"

    async def main(stop: asyncio.Event) -> int:
        async with Client(ccfg, component="kube-scheduler", field_manager="kube-scheduler") as client:
            try:
                sched = Scheduler(client, cfg, leader_elect=leader)
            except ConfigError as e:
                log.error("%s", e)
                return 1
            log.info("scheduler starting against %s (profiles: %s, leader election: %s)", ccfg.server,
                     ", ".join(cfg.scheduler_names), "on" if sched.leader_elect else "off")
            freezer = asyncio.create_task(_freeze_when_ready(sched.ready))
            try:
                await sched.run(stop)
            finally:
                freezer.cancel()
        return 0

    return _run(main)


# --------------------------------------------------------------------------- k8py hollow-nodes


def add_hollow_nodes_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "hollow-nodes", help="simulate many nodes in one process (for scale tests)",
        description="Register N simulated nodes through the API server and keep them alive: each renews its "
                    "Lease and reports the pods bound to it as Running and Ready (containers run on a fake "
                    "runtime: nothing is executed). Stop with Ctrl-C; --delete-on-exit removes the nodes.")
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
    p.add_argument("--no-pods", action="store_true",
                   help="register nodes and leases only; do not report pods Running")
    p.add_argument("--delete-on-exit", action="store_true", help="delete the nodes and their leases on exit")
    _client_args(p)
    p.set_defaults(func=run_hollow_nodes, parser=p)
    return p


def run_hollow_nodes(args: argparse.Namespace) -> int:
    # Transitional: hollow nodes are the node agent's now (k8py.kubelet.hollowcli, which the
    # scheduler may not import). Until the program registers that module's parser, this entry
    # point says so instead of running; then this section goes.
    log.error("k8py hollow-nodes has moved to the node agent: the program must register "
              "k8py.kubelet.hollowcli.add_hollow_nodes_parser")
    return 1
