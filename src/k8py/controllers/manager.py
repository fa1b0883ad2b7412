"""The controller manager: every controller in one process, run only by the leader.

``k8py controller-manager --kubeconfig FILE`` runs it against any API server; ``k8py server``
runs it in-process (talking to itself over HTTPS, as every component talks only through the
API). With several managers on one cluster, a ``kube-system/kube-controller-manager`` Lease
picks the one that runs the controllers; the others wait to take over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from k8py.client.api import Client
from k8py.client.clock import Clock, RealClock
from k8py.client.events import EventSink
from k8py.client.informer import SharedInformerFactory
from k8py.client.leaderelection import LeaderElectionConfig, LeaderElector
from k8py.controllers.base import ControllerContext, ControllerOptions, HasController

log = logging.getLogger(__name__)

# name -> "module:Class"; each class takes a ControllerContext and has a `.controller`.
CONTROLLERS: dict[str, str] = {
    "replicaset": "k8py.controllers.replicaset:ReplicaSetController",
    "replicationcontroller": "k8py.controllers.replicaset:ReplicationControllerController",
    "deployment": "k8py.controllers.deployment:DeploymentController",
    "garbagecollector": "k8py.controllers.garbagecollector:GarbageCollector",
    "namespace": "k8py.controllers.namespace:NamespaceController",
    "endpoints": "k8py.controllers.endpoints:EndpointsController",
    "endpointslice": "k8py.controllers.endpointslice:EndpointSliceController",
    "serviceaccount": "k8py.controllers.serviceaccount:ServiceAccountController",
    "serviceaccount-token": "k8py.controllers.serviceaccounttokens:ServiceAccountTokensController",
    "root-ca-cert-publisher": "k8py.controllers.rootcacert:RootCACertPublisher",
    "nodelifecycle": "k8py.controllers.nodelifecycle:NodeLifecycleController",
    "podgc": "k8py.controllers.podgc:PodGCController",
    "ttlafterfinished": "k8py.controllers.ttlafterfinished:TTLAfterFinishedController",
    "daemonset": "k8py.controllers.daemonset:DaemonSetController",
    "statefulset": "k8py.controllers.statefulset:StatefulSetController",
    "job": "k8py.controllers.job:JobController",
    "cronjob": "k8py.controllers.cronjob:CronJobController",
    "disruption": "k8py.controllers.disruption:DisruptionController",
    "apiservice-availability": "k8py.controllers.apiservice:APIServiceAvailabilityController",
    "nodeipam": "k8py.controllers.nodeipam:NodeIPAMController",
    "csrsigning": "k8py.controllers.certificates:CSRSigningController",
    "csrapproving": "k8py.controllers.certificates:CSRApprovingController",
    "clusterrole-aggregation": "k8py.controllers.clusterroleaggregation:ClusterRoleAggregationController",
    "resourcequota": "k8py.controllers.resourcequota:ResourceQuotaController",
    "persistentvolume-binder": "k8py.controllers.persistentvolume:PersistentVolumeController",
    "pvc-protection": "k8py.controllers.pvcprotection:PVCProtectionController",
    "pv-protection": "k8py.controllers.pvprotection:PVProtectionController",
    "ephemeral-volume": "k8py.controllers.ephemeral:EphemeralVolumeController",
    "horizontalpodautoscaling": "k8py.controllers.horizontal:HorizontalController",
    "validatingadmissionpolicy-status-controller":
        "k8py.controllers.admissionpolicystatus:ValidatingAdmissionPolicyStatusController",
}

LEASE_NAME = "kube-controller-manager"


def load(name: str) -> type[Any]:
    target = CONTROLLERS[name]
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def available(names: Iterable[str] | None = None) -> list[str]:
    """The controllers to run, each loaded once: an unknown name, or a controller whose module
    does not import, is an error at start (never a controller silently missing)."""
    out = []
    for n in names or CONTROLLERS:
        if n not in CONTROLLERS:
            raise ValueError(f"unknown controller {n!r}; known: {', '.join(sorted(CONTROLLERS))}")
        try:
            load(n)
        except (ImportError, AttributeError) as e:
            raise RuntimeError(f"controller {n} cannot be loaded: {e}") from e
        out.append(n)
    return out


class ControllerManager:
    def __init__(self, client: Client, *, controllers: Iterable[str] | None = None, leader_elect: bool = True,
                 identity: str | None = None, clock: Clock | None = None, workers: int = 2,
                 options: ControllerOptions | Mapping[str, Any] | None = None) -> None:
        self.client = client
        self.names = available(controllers)
        self.leader_elect = leader_elect
        self.identity = identity
        self.clock: Clock = clock or RealClock()
        self.workers = workers
        self.options = ControllerOptions.of(options)
        self.running: list[HasController] = []
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        if not self.leader_elect:
            await self._run_controllers(stop)
            return
        cfg = LeaderElectionConfig(name=LEASE_NAME, namespace="kube-system")
        if self.identity:
            cfg = dataclasses.replace(cfg, identity=self.identity)
        while not stop.is_set():
            elector = LeaderElector(self.client, cfg, clock=self.clock,
                                    on_started_leading=lambda: self._run_controllers(stop))
            await elector.run(stop)
            if not stop.is_set():
                log.warning("controller manager lost its lease; campaigning again")

    async def _run_controllers(self, stop: asyncio.Event) -> None:
        factory = SharedInformerFactory(self.client, clock=self.clock)
        recorder = EventSink(self.client, "controller-manager", clock=self.clock)
        recorder.start()
        ctx = ControllerContext(self.client, factory, self.clock, recorder,
                                dataclasses.replace(self.options, workers=self.options.workers or self.workers))
        self.running = [load(n)(ctx) for n in self.names]
        factory.start()
        try:
            await factory.wait_for_cache_sync(60)
            log.info("controller manager running %d controllers: %s", len(self.running), ", ".join(self.names))
            self.ready.set()
            await asyncio.gather(*(c.controller.run(stop) for c in self.running))
        finally:
            self.ready.clear()
            await factory.shutdown()
            await recorder.stop()
