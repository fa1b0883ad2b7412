"""APIService availability (kube-aggregator's ``AvailableConditionController`` and its local
twin): keeps every APIService's ``Available`` condition true to whether its API can be served.

A local APIService (no ``spec.service``: the group is served by this API server) is Available
(``Local``). For one backed by a Service, kube's checks in kube's order, each with kube's reason
and message:

- the Service exists (``ServiceNotFound``);
- for a ClusterIP Service: it has the APIService's port (``ServicePortError``), EndpointSlices
  (``EndpointsNotFound``), and one of them a ready endpoint with that port's name
  (``MissingEndpoints``);
- the backend answers discovery: ``GET /apis/<group>/<version>`` on a ready endpoint (the API
  server's aggregation layer reaches the same endpoints, ``--enable-aggregator-routing``), HTTPS
  without verifying the backend (as kube: the check is best effort), presenting the front-proxy
  client certificate and asking as ``system:kube-aggregator`` in ``system:masters``, with a 2xx
  within 5 s; five tries at once, one success is enough (``FailedDiscoveryCheck``, the last
  error as message);
- then ``Passed``, "all checks passed".

Every remote APIService is checked again every 30 s (kube's resync: a backend that dies is not an
API event); one whose backend failed the discovery check is checked again with kube's back-off for
this controller (5 ms doubling to 30 s), so a backend that comes back is seen within about as long
as it was away. Service and EndpointSlice changes recheck the APIServices that name them at once.
The status is written only when it changed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import aiohttp

from k8py.api import aggregator as agg
from k8py.api.corev1 import get_condition, now_rfc3339
from k8py.client.controller import Controller, Result
from k8py.client.workqueue import ItemExponentialRateLimiter, WorkQueue
from k8py.controllers.base import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]

API_SERVICE = ("apiregistration.k8s.io/v1", "APIService")
SERVICE = ("v1", "Service")
ENDPOINT_SLICE = ("discovery.k8s.io/v1", "EndpointSlice")

# after a failed discovery check: kube's per-item back-off for this controller, tight so that a
# backend that comes back is seen soon, capped at the resync period
RETRY_BASE, RETRY_MAX = 0.005, 30.0
DISCOVERY_TIMEOUT = 5.0
DISCOVERY_ATTEMPTS = 5


def _cond(status: str, reason: str, message: str) -> Obj:
    return {"type": "Available", "status": status, "reason": reason, "message": message}


def service_condition(apiservice: Obj, service: Obj | None, slices: list[Obj]) -> Obj | None:
    """The condition the Service checks decide, or None when they pass and the discovery check
    decides (kube's order; ``slices`` are the Service's EndpointSlices)."""
    ref = agg.service_ref(apiservice)
    if ref is None:
        return _cond("True", "Local", "Local APIServices are always available")
    where = f'service/{ref.name} in "{ref.namespace}"'
    if service is None:
        return _cond("False", "ServiceNotFound", f"{where} is not present")
    if ((service.get("spec") or {}).get("type") or "ClusterIP") == "ClusterIP":
        try:
            port_name = agg.find_service_port(service, ref.port).get("name") or ""
        except agg.ResolveError:
            return _cond("False", "ServicePortError", f"{where} is not listening on port {ref.port}")
        if not slices:
            return _cond("False", "EndpointsNotFound", f"cannot find endpointslices for {where}")
        if not agg.has_available_endpoint(port_name, slices):
            return _cond("False", "MissingEndpoints",
                         f'endpointslices for {where} have no addresses with port name "{port_name}"')
    return None


def describe(e: BaseException) -> str:
    """An error as Go's HTTP client words it (``dial tcp 127.0.0.1:1: connect: connection refused``)."""
    if isinstance(e, aiohttp.ClientConnectorError) and not isinstance(e, aiohttp.ClientSSLError):
        err = e.os_error
        why = os.strerror(err.errno).lower() if err.errno else (err.strerror or str(err))
        return f"dial tcp {e.host}:{e.port}: connect: {why}"
    if isinstance(e, TimeoutError):
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    return str(e) or type(e).__name__


class APIServiceAvailabilityController:
    NAME = "apiservice-availability"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.cert_file = ctx.options.proxy_client_cert_file
        self.key_file = ctx.options.proxy_client_key_file
        self.resync = ctx.options.apiservice_resync_period  # kube's resync of this controller's informer
        self.apiservices = ctx.factory.informer(API_SERVICE)
        self.services = ctx.factory.informer(SERVICE)
        self.slices = ctx.factory.informer(ENDPOINT_SLICE)
        name = "apiservice-availability-controller"
        queue: WorkQueue[str] = WorkQueue(name, rate_limiter=ItemExponentialRateLimiter(RETRY_BASE, RETRY_MAX),
                                          clock=ctx.clock)
        self.controller = Controller(name, self.reconcile, queue, workers=ctx.options.workers or 2, clock=ctx.clock)
        self.controller.watch(self.apiservices, skip_unchanged=True)
        # a Service or its EndpointSlices changing changes the APIServices that name it
        self.controller.watch(self.services, self._apiservices_of, skip_unchanged=True)
        self.controller.watch(self.slices, self._apiservices_of_slice, skip_unchanged=True)

    def _apiservices_named(self, ns: str, name: str) -> list[str]:
        out = []
        for a in self.apiservices.list():
            ref = agg.service_ref(a)
            if ref is not None and ref.namespace == ns and ref.name == name:
                out.append(a["metadata"]["name"])
        return out

    def _apiservices_of(self, svc: Obj) -> list[str]:
        m = svc.get("metadata") or {}
        return self._apiservices_named(m.get("namespace", ""), m.get("name", ""))

    def _apiservices_of_slice(self, s: Obj) -> list[str]:
        m = s.get("metadata") or {}
        svc = (m.get("labels") or {}).get("kubernetes.io/service-name")
        return self._apiservices_named(m.get("namespace", ""), svc) if svc else []

    async def reconcile(self, key: str) -> Result | None:
        a = self.apiservices.get(key)
        if a is None:
            return None
        ref = agg.service_ref(a)
        svc = self.services.get(ref.name, ref.namespace) if ref is not None else None
        slices = agg.slices_of(self.slices.list(ref.namespace), ref.namespace, ref.name) if ref is not None else []
        want = service_condition(a, svc, slices)
        err = None
        if want is None:
            err = await self.discovery_check(a, svc, slices)
            want = _cond("True", "Passed", "all checks passed") if err is None else \
                _cond("False", "FailedDiscoveryCheck", err)
        await self._write(a, want)
        if ref is None:
            return None
        if err is not None:
            return Result(requeue=True)  # the back-off (kube returns the error: AddRateLimited)
        # (the Service checks depend on API objects only: their changes recheck at once)
        return Result(requeue_after=self.resync)

    async def discovery_check(self, apiservice: Obj, service: Obj | None, slices: list[Obj]) -> str | None:
        """None when the backend answered discovery with a 2xx, else the last error."""
        ref = agg.service_ref(apiservice)
        assert ref is not None
        group, version = agg.group_version(apiservice)
        path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        try:
            ssl_ctx = agg.client_ssl_context(apiservice, self.cert_file, self.key_file, insecure=True)
        except (ValueError, OSError) as e:
            return str(e)
        headers = agg.auth_proxy_headers(agg.AGGREGATOR_USER, "", ("system:masters",), {})
        timeout = aiohttp.ClientTimeout(total=DISCOVERY_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(ssl=ssl_ctx,
                                                                                       force_close=True)) as s:
            async def attempt() -> str | None:
                try:
                    host, port = agg.resolve_endpoint(service, slices, ref)
                except agg.ResolveError as e:
                    return str(e)
                hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                url = f"https://{hostport}{path}"
                try:
                    async with s.get(url, headers=headers, allow_redirects=False) as r:
                        if not 200 <= r.status < 300:
                            return f"failing or missing response from {url}: bad status from {url}: {r.status}"
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    return f'failing or missing response from {url}: Get "{url}": {describe(e)}'
                return None

            results = await asyncio.gather(*(attempt() for _ in range(DISCOVERY_ATTEMPTS)))
        if any(r is None for r in results):
            return None
        return results[-1]

    async def _write(self, a: Obj, want: Obj) -> None:
        cur = get_condition(a, "Available")
        if cur is not None and all(cur.get(k) == v for k, v in want.items()):
            return
        if cur is None or cur.get("status") != want["status"]:
            log.info("APIService %s: Available=%s (%s: %s)", a["metadata"]["name"], want["status"], want["reason"],
                     want["message"])
        new = {**want, "lastTransitionTime": cur.get("lastTransitionTime") if cur is not None
               and cur.get("status") == want["status"] else now_rfc3339()}
        status = dict(a.get("status") or {})
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "Available"] + [new]
        # (deleted or changed meanwhile: the runner retries such races, and the retry sees it)
        await self.client.update_status(API_SERVICE, {**a, "status": status})
