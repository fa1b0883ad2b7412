"""The ClusterRole aggregation controller (kube-controller-manager's
``clusterrole-aggregation``).

A ClusterRole with an ``aggregationRule`` gets, as its ``rules``, the rules of every other
ClusterRole that one of its ``clusterRoleSelectors`` selects: the roles taken by name order, each
rule once, in the order met. That is how ``admin``, ``edit`` and ``view`` grow when a CRD's author
labels a role ``rbac.authorization.k8s.io/aggregate-to-view: "true"``. Any ClusterRole change
enqueues every aggregating ClusterRole (a label added to one role may change any of them).
"""

from __future__ import annotations

import logging
from typing import Any

from k8py.api.selectors import from_label_selector
from k8py.client.controller import Controller, Result
from k8py.client.errors import NotFoundError
from k8py.controllers.base import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CLUSTER_ROLE = ("rbac.authorization.k8s.io/v1", "ClusterRole")


def aggregated_rules(role: Obj, all_roles: list[Obj]) -> list[Obj]:
    """The rules ``role``'s aggregationRule collects from ``all_roles`` (kube's order and dedup)."""
    name = (role.get("metadata") or {}).get("name")
    out: list[Obj] = []
    ordered = sorted(all_roles, key=lambda r: str((r.get("metadata") or {}).get("name") or ""))
    for sel in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        selector = from_label_selector(sel)
        for other in ordered:
            meta = other.get("metadata") or {}
            if meta.get("name") == name or not selector.matches(meta.get("labels") or {}):
                continue
            for rule in other.get("rules") or []:
                if rule not in out:
                    out.append(rule)
    return out


class ClusterRoleAggregationController:
    NAME = "clusterrole-aggregation"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.roles = ctx.factory.informer(CLUSTER_ROLE)
        self.controller = Controller("clusterrole-aggregation", self.reconcile, workers=ctx.options.workers or 2,
                                     clock=ctx.clock)
        self.controller.wait_for(self.roles)
        self.roles.add_handler(on_add=self._changed, on_update=lambda old, new: self._changed(new),
                               on_delete=self._changed)

    def _changed(self, _obj: Obj) -> None:
        for role in self.roles.list():
            if role.get("aggregationRule") is not None:
                self.controller.enqueue_key(str(role["metadata"]["name"]))

    async def reconcile(self, key: str) -> Result | None:
        role = self.roles.get(key)
        if role is None or role.get("aggregationRule") is None:
            return None
        rules = aggregated_rules(role, self.roles.list())
        if rules == (role.get("rules") or []):
            return None
        try:
            # an update with the cached resourceVersion: on conflict the runner retries with
            # what the informer holds then
            await self.client.update(CLUSTER_ROLE, {**role, "rules": rules})
        except NotFoundError:
            return None
        log.info("clusterrole-aggregation: %s now has %d rules", key, len(rules))
        return None
