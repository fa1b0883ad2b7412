"""APIService availability (kube-aggregator's ``AvailableConditionController``): keeps every
APIService's ``Available`` condition true to what k8py can do with it.

A local APIService (no ``spec.service``: the group is served by this API server) is Available.
For one backed by a Service, kube proxies the group to that Service and checks it answers
discovery; k8py has no aggregation layer yet, so such an APIService is reported as it is:
``ServiceNotFound`` while the Service does not exist, and ``FailedDiscoveryCheck`` saying that
k8py does not proxy aggregated APIs once it does. Nothing is ever reported Available that is not.
"""

from __future__ import annotations

import logging
from typing import Any

from k8py.api.corev1 import get_condition, now_rfc3339
from k8py.client.controller import Controller, Result
from k8py.controllers.base import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]

API_SERVICE = ("apiregistration.k8s.io/v1", "APIService")
SERVICE = ("v1", "Service")


def desired_condition(apiservice: Obj, service_exists: bool) -> Obj:
    """The ``Available`` condition ``apiservice`` should carry (without its transition time)."""
    svc = (apiservice.get("spec") or {}).get("service")
    if svc is None:
        return {"type": "Available", "status": "True", "reason": "Local",
                "message": "Local APIServices are always available"}
    ns, name = svc.get("namespace", ""), svc.get("name", "")
    if not service_exists:
        return {"type": "Available", "status": "False", "reason": "ServiceNotFound",
                "message": f'service/{name} in "{ns}" is not present'}
    spec = apiservice.get("spec") or {}
    return {"type": "Available", "status": "False", "reason": "FailedDiscoveryCheck",
            "message": f"k8py does not proxy aggregated APIs yet: {spec.get('group', '')}/{spec.get('version', '')} "
                       f"is not served through service/{name} in \"{ns}\""}


class APIServiceAvailabilityController:
    NAME = "apiservice-availability"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.apiservices = ctx.factory.informer(API_SERVICE)
        self.services = ctx.factory.informer(SERVICE)
        self.controller = Controller("apiservice-availability-controller", self.reconcile,
                                     workers=ctx.options.workers or 2, clock=ctx.clock)
        self.controller.watch(self.apiservices, skip_unchanged=True)
        # a Service coming or going changes the APIServices that name it
        self.controller.watch(self.services, self._apiservices_of, skip_unchanged=True)

    def _apiservices_of(self, svc: Obj) -> list[str]:
        m = svc.get("metadata") or {}
        out = []
        for a in self.apiservices.list():
            ref = (a.get("spec") or {}).get("service") or {}
            if ref.get("namespace") == m.get("namespace") and ref.get("name") == m.get("name"):
                out.append(a["metadata"]["name"])
        return out

    async def reconcile(self, key: str) -> Result | None:
        a = self.apiservices.get(key)
        if a is None:
            return None
        ref = (a.get("spec") or {}).get("service")
        exists = ref is not None and self.services.get(ref.get("name", ""), ref.get("namespace", "")) is not None
        want = desired_condition(a, exists)
        cur = get_condition(a, "Available")
        if cur is not None and all(cur.get(k) == v for k, v in want.items()):
            return None
        new = {**want, "lastTransitionTime": cur.get("lastTransitionTime") if cur is not None
               and cur.get("status") == want["status"] else now_rfc3339()}
        status = dict(a.get("status") or {})
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "Available"] + [new]
        # (deleted or changed meanwhile: the runner retries such races, and the retry sees it)
        await self.client.update_status(API_SERVICE, {**a, "status": status})
        return None
