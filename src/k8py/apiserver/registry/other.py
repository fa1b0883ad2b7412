"""Kinds of the smaller groups whose strategies differ from the generic one only in their
bookkeeping: networking (Ingress, IngressClass, NetworkPolicy), autoscaling
(HorizontalPodAutoscaler), policy (PodDisruptionBudget), discovery (EndpointSlice), storage
(StorageClass)."""

from __future__ import annotations

from typing import Any

from k8py.api.corev1 import now_rfc3339
from k8py.api.registry import KindInfo
from k8py.apiserver.registry.base import Strategy

Obj = dict[str, Any]


class IngressStrategy(Strategy):
    group, kind = "networking.k8s.io", "Ingress"
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"loadBalancer": {}}


class IngressClassStrategy(Strategy):
    group, kind = "networking.k8s.io", "IngressClass"
    generation = True


class NetworkPolicyStrategy(Strategy):
    group, kind = "networking.k8s.io", "NetworkPolicy"
    generation = True


class HorizontalPodAutoscalerStrategy(Strategy):
    group, kind = "autoscaling", "HorizontalPodAutoscaler"
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"currentReplicas": 0, "desiredReplicas": 0} if kind.version == "v1" else {"desiredReplicas": 0}


class PodDisruptionBudgetStrategy(Strategy):
    group, kind = "policy", "PodDisruptionBudget"
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}


class EndpointSliceStrategy(Strategy):
    group, kind = "discovery.k8s.io", "EndpointSlice"
    generation = True


LOCAL_AVAILABLE = {"type": "Available", "status": "True", "reason": "Local",
                   "message": "Local APIServices are always available"}


class APIServiceStrategy(Strategy):
    """kube-aggregator's apiservice strategy: status is the availability controller's; a local
    APIService (no ``spec.service``) is available from its creation."""

    group, kind = "apiregistration.k8s.io", "APIService"
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        if (obj.get("spec") or {}).get("service") is None:
            return {"conditions": [{**LOCAL_AVAILABLE, "lastTransitionTime": now_rfc3339()}]}
        return {}


class StorageClassStrategy(Strategy):
    group, kind = "storage.k8s.io", "StorageClass"
    return_deleted_object = True


STRATEGIES: list[type[Strategy]] = [IngressStrategy, IngressClassStrategy, NetworkPolicyStrategy,
                                    HorizontalPodAutoscalerStrategy, PodDisruptionBudgetStrategy,
                                    EndpointSliceStrategy, StorageClassStrategy, APIServiceStrategy]
