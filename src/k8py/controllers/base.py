"""What every controller gets: the API client, shared informers, a clock, an event recorder.

A controller module defines one class with ``NAME`` and a constructor taking a
:class:`ControllerContext`; its ``controller`` attribute is a
:class:`k8py.client.controller.Controller` whose ``reconcile`` is the class's
level-based ``reconcile(key)``. Handlers only enqueue keys. The manager
(``manager.py``) starts the informers, waits for their caches, runs every
controller, and does all of it only while this process holds the leader lease.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from k8py.api.corev1 import format_time, parse_time
from k8py.client.api import Client
from k8py.client.clock import Clock, RealClock
from k8py.client.controller import Controller
from k8py.client.events import EventSink
from k8py.client.informer import SharedInformerFactory

__all__ = ["ControllerContext", "ControllerOptions", "HasController", "parse_time", "rfc3339"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]


rfc3339 = format_time  # the controllers' name for it


@dataclass(frozen=True, slots=True)
class ControllerOptions:
    """kube-controller-manager's flags that the controllers read, with kube's defaults (``None``:
    the controller's own default). Frozen: every controller sees the same values for its life."""

    workers: int | None = None  # concurrent syncs per controller (kube: --concurrent-*-syncs)
    burst_replicas: int | None = None  # ReplicaSet: creates/deletes per sync
    daemonset_set_node_name: bool = False
    gc_workers: int | None = None
    gc_sync_timeout: float = 60.0
    # how often the GC looks at discovery for new resources to watch (custom resources): kube's
    # fixed 30 s (no flag); tests of the GC shorten it
    gc_resync_period: float = 30.0
    stale_pod_disruption_timeout: float | None = None
    root_ca_file: str | None = None  # --root-ca-file
    service_accounts: tuple[str, ...] | None = None
    max_endpoints_per_slice: int | None = None
    job_backoff_base: float | None = None
    job_backoff_max: float | None = None
    job_sync_batch_period: float | None = None
    node_monitor_period: float = 5.0
    node_monitor_grace_period: float = 40.0
    node_startup_grace_period: float = 60.0
    node_eviction_rate: float = 0.1
    secondary_node_eviction_rate: float = 0.01
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size_threshold: int = 50
    terminated_pod_gc_threshold: int | None = None
    pod_gc_period: float | None = None
    pod_gc_quarantine: float | None = None
    cluster_cidr: str | None = None  # --cluster-cidr (nodeipam); comma-separated for dual-stack
    node_cidr_mask_size: int | None = None  # --node-cidr-mask-size (None: 24 for IPv4, 64 for IPv6)
    cluster_signing_cert_file: str | None = None  # --cluster-signing-cert-file (the CSR signer's CA)
    cluster_signing_key_file: str | None = None  # --cluster-signing-key-file
    cluster_signing_duration: float | None = None  # --cluster-signing-duration, seconds (None: a year)
    service_account_private_key_file: str | None = None  # --service-account-private-key-file (token Secrets)
    hpa_sync_period: float = 15.0  # --horizontal-pod-autoscaler-sync-period
    hpa_tolerance: float = 0.1  # --horizontal-pod-autoscaler-tolerance
    hpa_downscale_stabilization: float = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
    hpa_cpu_initialization_period: float = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
    hpa_initial_readiness_delay: float = 30.0  # --horizontal-pod-autoscaler-initial-readiness-delay
    # kube-apiserver's --proxy-client-cert-file / --proxy-client-key-file: the APIService availability
    # check presents them to extension API servers (controllers/apiservice.py)
    proxy_client_cert_file: str | None = None
    proxy_client_key_file: str | None = None
    apiservice_resync_period: float = 30.0  # how often an available APIService is checked again (kube: 30 s)

    @classmethod
    def of(cls, values: ControllerOptions | Mapping[str, Any] | None) -> ControllerOptions:
        """From the flags' mapping; an unknown name is an error (a typo must not pass silently)."""
        if values is None:
            return cls()
        if isinstance(values, ControllerOptions):
            return values
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown controller option(s): {', '.join(unknown)}")
        kw = dict(values)
        if kw.get("service_accounts") is not None:
            kw["service_accounts"] = tuple(kw["service_accounts"])
        return cls(**kw)


@dataclass
class ControllerContext:
    client: Client
    factory: SharedInformerFactory
    clock: Clock = field(default_factory=RealClock)
    recorder: EventSink | None = None
    options: ControllerOptions = field(default_factory=ControllerOptions)

    def __post_init__(self) -> None:
        self.options = ControllerOptions.of(self.options)  # a mapping is accepted, and checked

    def record(self, obj: Obj, type_: str, reason: str, message: str, component: str | None = None) -> None:
        """Record an event; ``component``: the source it names, when kube's controller has its own."""
        if self.recorder is None:
            return
        if component is None:
            self.recorder.event(obj, type_, reason, message)
        else:
            self.recorder.event(obj, type_, reason, message, component=component)


class HasController(Protocol):
    NAME: str
    controller: Controller


ControllerFactory = Callable[[ControllerContext], HasController]
