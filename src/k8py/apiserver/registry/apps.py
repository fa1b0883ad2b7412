"""apps/v1 kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision.

None of them registers a field label conversion in kube: their field selectors know only
metadata.name and metadata.namespace (the generic ``field_labels``)."""

from __future__ import annotations

from typing import Any

from k8py.api.registry import KindInfo
from k8py.api.selectors import SelectorError, format_labels, from_label_selector
from k8py.api.tables import (
    AGE,
    APPS,
    CORE,
    NAME,
    CellFn,
    Column,
    Table,
    containers_columns,
    int_or_zero,
    meta_of,
    selector_column,
    spec_of,
    status_of,
    template_pod_spec,
)
from k8py.apiserver.registry.base import Strategy

Obj = dict[str, Any]


def _ready_of_desired(obj: Obj) -> str:
    return f"{int_or_zero(status_of(obj).get('readyReplicas'))}/{int_or_zero(spec_of(obj).get('replicas', 1))}"


def _status_int(key: str) -> CellFn:
    return lambda r: int_or_zero(status_of(r.obj).get(key))


_READY = Column("Ready", doc="Number of the pod with ready state", cell=lambda r: _ready_of_desired(r.obj))


class _Workload(Strategy):
    generation = True
    reset_status_on_create = True


def _deployment_selector(selector: Any) -> str:
    # printDeployment: the selector's String(), "<invalid>" when it does not convert
    try:
        return str(from_label_selector(selector))
    except SelectorError:
        return "<invalid>"


class DeploymentStrategy(_Workload):
    group, kind = "apps", "Deployment"
    scalable = True
    table = Table(
        NAME,
        _READY,
        Column("Up-to-date", doc=(APPS + "DeploymentStatus", "updatedReplicas"), cell=_status_int("updatedReplicas")),
        Column("Available", doc=(APPS + "DeploymentStatus", "availableReplicas"),
               cell=_status_int("availableReplicas")),
        AGE,
        *containers_columns(template_pod_spec),
        selector_column(APPS + "DeploymentSpec", fmt=_deployment_selector),
    )

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {}


class ReplicaSetStrategy(_Workload):
    group, kind = "apps", "ReplicaSet"
    scalable = True
    table = Table(
        NAME,
        Column("Desired", "integer", doc=(APPS + "ReplicaSetSpec", "replicas"),
               cell=lambda r: int_or_zero(spec_of(r.obj).get("replicas", 1))),
        Column("Current", "integer", doc=(APPS + "ReplicaSetStatus", "replicas"), cell=_status_int("replicas")),
        Column("Ready", "integer", doc=(APPS + "ReplicaSetStatus", "readyReplicas"),
               cell=_status_int("readyReplicas")),
        AGE,
        *containers_columns(template_pod_spec),
        selector_column(APPS + "ReplicaSetSpec"),
    )

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"replicas": 0}


class StatefulSetStrategy(_Workload):
    group, kind = "apps", "StatefulSet"
    scalable = True
    table = Table(NAME, _READY, AGE, *containers_columns(template_pod_spec))

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"replicas": 0, "availableReplicas": 0}


class DaemonSetStrategy(_Workload):
    group, kind = "apps", "DaemonSet"
    table = Table(
        NAME,
        Column("Desired", "integer", doc=(APPS + "DaemonSetStatus", "desiredNumberScheduled"),
               cell=_status_int("desiredNumberScheduled")),
        Column("Current", "integer", doc=(APPS + "DaemonSetStatus", "currentNumberScheduled"),
               cell=_status_int("currentNumberScheduled")),
        Column("Ready", "integer", doc=(APPS + "DaemonSetStatus", "numberReady"), cell=_status_int("numberReady")),
        Column("Up-to-date", "integer", doc=(APPS + "DaemonSetStatus", "updatedNumberScheduled"),
               cell=_status_int("updatedNumberScheduled")),
        Column("Available", "integer", doc=(APPS + "DaemonSetStatus", "numberAvailable"),
               cell=_status_int("numberAvailable")),
        Column("Node Selector", doc=(CORE + "PodSpec", "nodeSelector"),
               cell=lambda r: format_labels(template_pod_spec(r.obj).get("nodeSelector"))),
        AGE,
        *containers_columns(template_pod_spec),
        selector_column(APPS + "DaemonSetSpec"),
    )

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}


def _controller(obj: Obj) -> str:
    for ref in meta_of(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            # formatResourceName(GroupKind, name, withKind=true): "statefulset.apps/web"
            group = ref.get("apiVersion", "").rpartition("/")[0]
            kind = ref.get("kind", "")
            gk = f"{kind}.{group}" if group else kind
            return f"{gk.lower()}/{ref.get('name', '')}" if kind else ref.get("name", "")
    return "<none>"


class ControllerRevisionStrategy(Strategy):
    group, kind = "apps", "ControllerRevision"
    table = Table(
        NAME,
        Column("Controller", doc="Controller of the object", cell=lambda r: _controller(r.obj)),
        Column("Revision", doc=(APPS + "ControllerRevision", "revision"),
               cell=lambda r: int_or_zero(r.obj.get("revision"))),
        AGE,
    )


STRATEGIES: list[type[Strategy]] = [DeploymentStrategy, ReplicaSetStrategy, StatefulSetStrategy, DaemonSetStrategy,
                                    ControllerRevisionStrategy]
