"""The node agent's eviction and PID flags, shared by ``k8py server`` and ``k8py agent``: kubelet's
``--eviction-hard``, ``--eviction-soft``, ``--eviction-soft-grace-period``,
``--eviction-minimum-reclaim``, ``--eviction-pressure-transition-period``,
``--eviction-max-pod-grace-period``, ``--enforce-node-allocatable`` and ``--pod-max-pids``,
checked when the command line is read (kubelet's messages) and kept as (flag, value) pairs until
the node starts.

Two more are k8py's own: ``--eviction-monitoring-period`` and ``--container-gc-period`` set
periods that kubelet fixes in its code (``evictionMonitoringPeriod``, 10 s, and
``ContainerGCPeriod``, 1 minute). Their defaults are kubelet's; test clusters shorten them so
that what waits for the next round does not wait 10 s or a minute."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from k8py.kubelet.eviction import EvictionConfig

__all__ = ["DEFAULT_HARD_TEXT", "add_flags", "container_gc_period", "eviction_config", "flags_of", "pod_max_pids"]

# kubelet.eviction.DEFAULT_HARD as the flag is written (a test keeps the two equal); the node
# agent's modules are loaded only when a node starts, not for every k8py command's parser
DEFAULT_HARD_TEXT = ("memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,nodefs.inodesFree<5%,"
                     "imagefs.inodesFree<5%")


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("node pressure (kubelet's eviction flags)")
    g.add_argument("--eviction-hard", default=None, metavar="SIGNAL<Q,...",
                   help=f"hard eviction thresholds (default: {DEFAULT_HARD_TEXT.replace('%', '%%')}); given, it replaces "
                        "them all")
    g.add_argument("--eviction-soft", default="", metavar="SIGNAL<Q,...",
                   help="soft eviction thresholds, each acting after its --eviction-soft-grace-period")
    g.add_argument("--eviction-soft-grace-period", default="", metavar="SIGNAL=DURATION,...",
                   help="how long each soft threshold must hold before it evicts (e.g. memory.available=1m30s)")
    g.add_argument("--eviction-minimum-reclaim", default="", metavar="SIGNAL=Q,...",
                   help="how far beyond its threshold a signal must recover before the pressure ends")
    g.add_argument("--eviction-pressure-transition-period", default="", metavar="DURATION",
                   help="how long a pressure condition stays after its threshold was last met (default: 5m0s)")
    g.add_argument("--eviction-max-pod-grace-period", type=int, default=0, metavar="SECONDS",
                   help="the longest grace period of a soft eviction (0: the pod's own)")
    g.add_argument("--enforce-node-allocatable", default="pods", metavar="pods|none",
                   help="pods (default): the pods as a whole are evicted when their memory passes allocatable "
                        "(each hard memory.available threshold also applies to allocatableMemory.available); "
                        "none or empty: not")
    g.add_argument("--pod-max-pids", type=int, default=-1, metavar="N",
                   help="the most processes a pod may have (its cgroup's pids.max; default -1: unlimited)")
    g.add_argument("--eviction-monitoring-period", default="", metavar="DURATION",
                   help="how often the eviction manager observes the node and its pods (default: 10s, kubelet's "
                        "fixed evictionMonitoringPeriod; k8py's own flag, e.g. for test clusters)")
    g.add_argument("--container-gc-period", default="", metavar="DURATION",
                   help="how often dead containers, sandboxes and pod log directories are collected (default: "
                        "1m, kubelet's fixed ContainerGCPeriod; k8py's own flag, e.g. for test clusters)")


# each flag's default: a flag left at it is not recorded
_DEFAULTS: dict[str, object] = {"eviction_hard": None, "eviction_soft": "", "eviction_soft_grace_period": "",
                                "eviction_minimum_reclaim": "", "eviction_pressure_transition_period": "",
                                "eviction_max_pod_grace_period": 0, "pod_max_pids": -1,
                                "enforce_node_allocatable": "pods", "eviction_monitoring_period": "",
                                "container_gc_period": ""}


def flags_of(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> tuple[tuple[str, str], ...]:
    """The flags given, as (name, value) pairs, after checking them as kubelet does."""
    from k8py.kubelet.eviction import EvictionError

    out = tuple((k, str(v)) for k, d in _DEFAULTS.items() if (v := getattr(args, k, d)) != d)
    try:
        eviction_config(out)
        if pod_max_pids(out) < -1 or pod_max_pids(out) == 0:
            raise EvictionError(f"invalid --pod-max-pids {pod_max_pids(out)}: give a positive number, or -1")
        if "container_gc_period" in dict(out):  # checked when given; its default needs neither a check
            container_gc_period(out)             # nor the node agent's module (not imported with --disable-agent)
    except (EvictionError, ValueError) as e:
        if parser is not None:
            parser.error(f"invalid eviction flags: {e}")
        raise
    return out


def eviction_config(flags: Iterable[tuple[str, str]]) -> EvictionConfig:
    from k8py.kubelet.eviction import config_from_flags

    f = dict(flags)
    config = config_from_flags(hard=f.get("eviction_hard"), soft=f.get("eviction_soft", ""),
                               soft_grace=f.get("eviction_soft_grace_period", ""),
                               min_reclaim=f.get("eviction_minimum_reclaim", ""),
                               transition=f.get("eviction_pressure_transition_period", ""),
                               max_pod_grace=int(f.get("eviction_max_pod_grace_period", "0")),
                               enforce=f.get("enforce_node_allocatable", "pods"))
    monitoring = f.get("eviction_monitoring_period", "")
    if monitoring:
        config = dataclasses.replace(config, monitoring_interval=_period("--eviction-monitoring-period", monitoring))
    return config


def container_gc_period(flags: Iterable[tuple[str, str]]) -> float:
    """``--container-gc-period`` in seconds (kubelet's ContainerGCPeriod when not given)."""
    text = dict(flags).get("container_gc_period", "")
    if text:
        return _period("--container-gc-period", text)
    from k8py.kubelet.agent import CONTAINER_GC_PERIOD

    return CONTAINER_GC_PERIOD


def _period(flag: str, text: str) -> float:
    """A period flag's Go duration in seconds; it must be more than 0 (a loop's period)."""
    from k8py.kubelet.eviction import EvictionError, parse_duration

    seconds = parse_duration(text)
    if seconds <= 0:
        raise EvictionError(f"invalid {flag} {text}: must be greater than 0")
    return seconds


def pod_max_pids(flags: Iterable[tuple[str, str]]) -> int:
    return int(dict(flags).get("pod_max_pids", "-1"))
