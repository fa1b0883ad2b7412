"""apps/v1 kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision."""

from __future__ import annotations

from typing import Any

from k8py.api.registry import KindInfo
from k8py.apiserver.registry.base import Strategy

Obj = dict[str, Any]


class _Workload(Strategy):
    generation = True
    reset_status_on_create = True


class DeploymentStrategy(_Workload):
    group, kind = "apps", "Deployment"
    scalable = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {}


class ReplicaSetStrategy(_Workload):
    group, kind = "apps", "ReplicaSet"
    scalable = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"replicas": 0}


class StatefulSetStrategy(_Workload):
    group, kind = "apps", "StatefulSet"
    scalable = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"replicas": 0, "availableReplicas": 0}


class DaemonSetStrategy(_Workload):
    group, kind = "apps", "DaemonSet"

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}


STRATEGIES: list[type[Strategy]] = [DeploymentStrategy, ReplicaSetStrategy, StatefulSetStrategy, DaemonSetStrategy]
