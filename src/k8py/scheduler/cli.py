"""``k8py scheduler``: the argparse subcommand.

The program registers it with :func:`add_scheduler_parser`, which takes the ``subparsers``
object of the top-level parser. (``k8py hollow-nodes`` is the node agent's:
:mod:`k8py.kubelet.hollowcli`.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
from typing import Any

from k8py.runner import run_until_signal

__all__ = ["add_scheduler_parser"]

log = logging.getLogger("k8py.scheduler")

def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", metavar="FILE",
                   help="kubeconfig to reach the API server (default: the configuration file's "
                   "clientConnection.kubeconfig, $KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")
    p.add_argument("--debug", action="store_true", help="log at debug level")


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

    return run_until_signal(main)
