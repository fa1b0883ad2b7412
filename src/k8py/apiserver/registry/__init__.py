"""The per-kind registry (kube's ``pkg/registry``): see :mod:`k8py.apiserver.registry.base`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from k8py.apiserver.registry import apps, batch, certificates, core, other
from k8py.apiserver.registry.base import Strategies, Strategy, random_suffix
from k8py.apiserver.registry.core import ServiceStrategy
from k8py.apiserver.registry.serviceallocation import ServiceAllocation

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

__all__ = ["ServiceAllocation", "Strategies", "Strategy", "build", "random_suffix"]


def build(objects: Objects | None = None, registry: Registry | None = None, service_cidr: str = "") -> Strategies:
    """Every built-in kind's strategy. With ``objects``, ``registry`` and ``service_cidr`` the
    Service strategy allocates addresses and ports; without (pure tests of create and update
    semantics) it allocates nothing."""
    allocation = None
    if objects is not None and registry is not None and service_cidr:
        svc = registry.by_resource("", "v1", "services")
        assert svc is not None
        allocation = ServiceAllocation(objects, svc, service_cidr)
    strategies: list[Strategy] = [cls() for mod in (core, apps, batch, other, certificates) for cls in mod.STRATEGIES]
    strategies.append(ServiceStrategy(allocation))
    from k8py.apiserver.crd import CRDStrategy  # the custom resources' strategies come with their CRDs

    strategies.append(CRDStrategy())
    return Strategies(strategies)
