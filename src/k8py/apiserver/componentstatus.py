"""``v1 ComponentStatus`` (``kubectl get componentstatuses``): probed on every request, never stored.

kube-apiserver answers it by probing etcd (a read through its storage client) and the
scheduler and controller manager at ``https://127.0.0.1:<port>/healthz``. k8py has no such
ports: the scheduler and the controller manager run in the server's process or in processes of
their own anywhere (``k8py scheduler``, ``k8py controller-manager``), each leader-elected. So:

- ``etcd-0`` is the store's health check (a quorum read on etcd; on SQLite the writer thread
  answering and the file reading) within 2 seconds, as kube's probe.
- ``scheduler`` and ``controller-manager`` are healthy when their leader Lease in ``kube-system``
  (``kube-scheduler``, ``kube-controller-manager``) has a holder whose term has not run out
  (``renewTime + leaseDurationSeconds`` is not in the past). That says truthfully that *some*
  instance is alive and working for the cluster, which is what a user asking wants to know. It
  cannot see an instance run with leader election off (it holds no Lease): that one is reported
  Unhealthy, with an error saying why. ``renewTime`` is compared with this server's clock, so
  clocks must roughly agree, as for leader election itself.

Like kube: one ``Healthy`` condition per component (``status`` True or False, ``message`` "ok"
when healthy, ``error`` when not); the list is filtered by label and field selectors; a name
that is no component is kube's plain error (500, ``Component not found: NAME``); every answer
carries the warning ``v1 ComponentStatus is deprecated in v1.19+``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from k8py.api import errors, tables
from k8py.api.registry import KindInfo
from k8py.apiserver.negotiate import Output, encode

if TYPE_CHECKING:
    from k8py.apiserver.context import Ctx
    from k8py.apiserver.objects import Objects
    from k8py.apiserver.rest import ResourceAPI

Obj = dict[str, Any]

DEPRECATION_WARNING = "v1 ComponentStatus is deprecated in v1.19+"
STORE_PROBE_TIMEOUT = 2.0  # kube's etcd probe timeout
LEASE_NAMESPACE = "kube-system"


@dataclass(frozen=True, slots=True)
class Probe:
    """Healthy (with a message) or not (with an error)."""

    healthy: bool
    message: str = ""
    error: str = ""


ProbeFn = Callable[["Objects", Any, float], Awaitable[Probe]]


async def probe_store(objects: Objects, _registry: Any, _now: float) -> Probe:
    """The store's own health check: for etcd a read that needs a quorum, for SQLite the writer
    thread answering and the file reading (``Store.health``), bounded as kube's etcd probe."""
    try:
        await objects.health(STORE_PROBE_TIMEOUT)
    except Exception as e:  # noqa: BLE001 - whatever the store raises is the answer to "is it healthy"
        return Probe(False, error=f"store health check failed: {e or type(e).__name__}")
    return Probe(True, "ok")


def _lease_probe(lease_name: str, what: str) -> ProbeFn:
    async def probe(objects: Objects, registry: Any, now: float) -> Probe:
        kind = registry.by_kind("coordination.k8s.io", "v1", "Lease")
        where = f"Lease {LEASE_NAMESPACE}/{lease_name}"
        try:
            async with asyncio.timeout(STORE_PROBE_TIMEOUT):
                lease = await objects.try_get(kind, LEASE_NAMESPACE, lease_name)
        except TimeoutError:
            return Probe(False, error=f"reading {where} timed out after {STORE_PROBE_TIMEOUT:g}s")
        except Exception as e:  # noqa: BLE001 - a store failure: this component's health is unknown, say why
            return Probe(False, error=f"reading {where} failed: {e or type(e).__name__}")
        return lease_health(lease, where, what, now)

    return probe


def lease_health(lease: Obj | None, where: str, what: str, now: float) -> Probe:
    """Whether a leader Lease shows a live leader at wall-clock time ``now`` (pure)."""
    if lease is None:
        return Probe(False, error=f"no {where}: no {what} has run with leader election")
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if not holder:
        return Probe(False, error=f"no {what} holds {where} (it was released)")
    renewed = _parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int) or duration <= 0:
        return Probe(False, error=f"{where} held by {holder} has no renewTime or leaseDurationSeconds")
    late = now - (renewed + duration)
    if late > 0:
        return Probe(False, error=f"{where} held by {holder} expired {late:.0f}s ago (last renewed "
                                  f"{now - renewed:.0f}s ago, for {duration}s): no {what} is working")
    return Probe(True, "ok")


def _parse_time(s: Any) -> float | None:
    if not isinstance(s, str) or not s:
        return None
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError:
        return None


# kube's names, in a fixed order (kube's comes from a Go map: any order)
COMPONENTS: dict[str, ProbeFn] = {
    "controller-manager": _lease_probe("kube-controller-manager", "controller manager"),
    "scheduler": _lease_probe("kube-scheduler", "scheduler"),
    "etcd-0": probe_store,
}


def component_status(name: str, p: Probe) -> Obj:
    cond: Obj = {"type": "Healthy", "status": "True" if p.healthy else "False"}
    if p.message:
        cond["message"] = p.message
    if p.error:
        cond["error"] = p.error
    return {"kind": "ComponentStatus", "apiVersion": "v1",
            "metadata": {"name": name, "creationTimestamp": None}, "conditions": [cond]}


async def statuses(objects: Objects, registry: Any, names: list[str], now: float | None = None) -> list[Obj]:
    """Probe ``names`` concurrently (as kube does), in the order given."""
    t = time.time() if now is None else now
    results = await asyncio.gather(*(COMPONENTS[n](objects, registry, t) for n in names))
    return [component_status(n, p) for n, p in zip(names, results, strict=True)]


async def handle(api: ResourceAPI, ctx: Ctx, kind: KindInfo) -> web.Response:
    """get and list; every other verb (watch too) is not allowed, as kube's REST has only those."""
    verb = ctx.info.verb
    ctx.warnings.append(DEPRECATION_WARNING)
    if verb == "get":
        name = ctx.info.name
        if name not in COMPONENTS:
            # kube returns a plain Go error here, which the API serves as a 500 with no reason
            raise errors.StatusError(500, "", f"Component not found: {name}")
        (obj,) = await statuses(api.objects, api.registry, [name])
        return api.respond(ctx, obj, kind=kind)
    if verb != "list":
        raise errors.method_not_allowed()
    match = api.matcher(ctx, kind)  # kube filters too: a label selector matches nothing (no labels)
    items = [o for o in await statuses(api.objects, api.registry, list(COMPONENTS))
             if match is None or match.matches(o)]
    out = ctx.output()
    if out.transform == "Table":
        body_obj: Obj = tables.table(api.strategies.for_kind(kind).table, items,
                                     include_object=ctx.q("includeObject", "Metadata") or "Metadata", list_meta={})
    elif out.transform in ("PartialObjectMetadataList", "PartialObjectMetadata"):
        body_obj = tables.partial_object_metadata_list(kind, items, {})
    else:
        body_obj = {"kind": kind.list_kind_name, "apiVersion": kind.api_version, "metadata": {}, "items": items}
    body, ct = encode(body_obj, Output(out.serializer))
    resp = web.Response(body=body, content_type=ct)
    api.add_warnings(ctx, resp)
    return resp


__all__ = ["COMPONENTS", "DEPRECATION_WARNING", "Probe", "component_status", "handle", "lease_health", "statuses"]
