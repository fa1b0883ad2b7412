"""LimitRanger admission (kube's ``plugin/pkg/admission/limitranger``): the LimitRanges of a
namespace fill in a pod's missing container requests and limits (``default``,
``defaultRequest``; the pod is annotated ``kubernetes.io/limit-ranger`` with what was set), and
refuse pods and claims outside their bounds (``min``, ``max``, ``maxLimitRequestRatio``, per
Container, per Pod, per PersistentVolumeClaim), with kube's messages::

    pods "x" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, ...]

Pods are handled on create only (their containers' resources cannot change afterwards); claims
on create and update. Objects being deleted are let through. The checks are pure functions
(``merge_defaults``, ``pod_errors``, ``pvc_errors``); the plugin applies each LimitRange of the
namespace in turn (by name). The LimitRanges are kept in memory from a store watch
(``Objects.mirror``), as kube's plugin reads an informer: a pod create reads nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from k8py.api import errors
from k8py.api.quantity import Quantity, format_quantity
from k8py.api.quota import ResourceList, parse_list, pod_resource_list
from k8py.apiserver.admission import Attributes, Plugin

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

log = logging.getLogger(__name__)

ANNOTATION = "kubernetes.io/limit-ranger"
SYNC_TIMEOUT = 10.0
# resource.MaxMilliValue: beyond it kube compares whole units rather than milli-units
_MAX_MILLI = (2**63 - 1) // 1000


# --------------------------------------------------------------------------- defaults


def _items(lr: Mapping[str, Any]) -> list[Obj]:
    return [i for i in ((lr.get("spec") or {}).get("limits") or ()) if isinstance(i, dict)]


def merge_defaults(lr: Mapping[str, Any], pod: Obj) -> None:
    """Fill in each container's (and init container's) missing requests and limits from the
    LimitRange's Container ``defaultRequest`` and ``default``; annotate the pod with what was set
    (``LimitRanger plugin set: cpu, memory request for container c; ...``)."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for item in _items(lr):
        if item.get("type") == "Container":
            requests.update(item.get("defaultRequest") or {})
            limits.update(item.get("default") or {})
    if not requests and not limits:
        return
    notes: list[str] = []
    spec = pod.setdefault("spec", {})
    for field, what in (("containers", "container"), ("initContainers", "init container")):
        for c in spec.get(field) or ():
            if not isinstance(c, dict):
                continue
            res = c.get("resources")
            if not isinstance(res, dict):
                res = c["resources"] = {}
            set_req = _fill(res, "requests", requests)
            set_lim = _fill(res, "limits", limits)
            if set_req:
                notes.append(f"{', '.join(sorted(set_req))} request for {what} {c.get('name', '')}")
            if set_lim:
                notes.append(f"{', '.join(sorted(set_lim))} limit for {what} {c.get('name', '')}")
    if notes:
        meta = pod.setdefault("metadata", {})
        ann = meta.get("annotations")
        if not isinstance(ann, dict):
            ann = meta["annotations"] = {}
        ann[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def _fill(res: Obj, field: str, defaults: Mapping[str, Any]) -> list[str]:
    if not defaults:
        return []
    have = res.get(field)
    if not isinstance(have, dict):
        have = res[field] = {}
    added = [k for k in defaults if k not in have]
    for k in added:
        have[k] = defaults[k]
    return added


# --------------------------------------------------------------------------- bounds


def _values(req: Quantity | None, lim: Quantity | None, enforced: Quantity) -> tuple[int, int, int]:
    """``requestLimitEnforcedValues``: milli-units when none of the three is too large for them."""
    qs = [req, lim, enforced]
    whole = [q.int_value() if q is not None else 0 for q in qs]
    if all(v <= _MAX_MILLI for v in whole):
        m = [q.milli_value() if q is not None else 0 for q in qs]
        return m[0], m[1], m[2]
    return whole[0], whole[1], whole[2]


def _min(kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, lv, e = _values(req, lim, enforced)
    es = format_quantity(enforced)
    if req is None:
        return f"minimum {name} usage per {kind} is {es}.  No request is specified"
    if r < e:
        return f"minimum {name} usage per {kind} is {es}, but request is {format_quantity(req)}"
    if lim is not None and lv < e:
        return f"minimum {name} usage per {kind} is {es}, but limit is {format_quantity(lim)}"
    return None


def _max(kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, lv, e = _values(req, lim, enforced)
    es = format_quantity(enforced)
    if lim is None:
        return f"maximum {name} usage per {kind} is {es}.  No limit is specified"
    if lv > e:
        return f"maximum {name} usage per {kind} is {es}, but limit is {format_quantity(lim)}"
    if req is not None and r > e:
        return f"maximum {name} usage per {kind} is {es}, but request is {format_quantity(req)}"
    return None


def _max_request(kind: str, name: str, enforced: Quantity, requests: ResourceList) -> str | None:
    """``maxRequestConstraint``: for claims, whose limits are not user input."""
    req = requests.get(name)
    r, _, e = _values(req, None, enforced)
    es = format_quantity(enforced)
    if req is None:
        return f"maximum {name} usage per {kind} is {es}.  No request is specified"
    if r > e:
        return f"maximum {name} usage per {kind} is {es}, but request is {format_quantity(req)}"
    return None


def _ratio(kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, lv, _ = _values(req, lim, enforced)
    es = format_quantity(enforced)
    if req is None or r == 0:
        return f"{name} max limit to request ratio per {kind} is {es}, but no request is specified or request is 0"
    if lim is None or lv == 0:
        return f"{name} max limit to request ratio per {kind} is {es}, but no limit is specified or limit is 0"
    observed = lv / r
    bound = float(enforced.int_value())
    compared = observed
    if enforced.int_value() <= _MAX_MILLI:
        compared = observed * 1000
        bound = float(enforced.milli_value())
    if compared > bound:
        return f"{name} max limit to request ratio per {kind} is {es}, but provided ratio is {observed:f}"
    return None


def _check(kind: str, item: Mapping[str, Any], requests: ResourceList, limits: ResourceList) -> list[str]:
    out: list[str] = []
    for field, fn in (("min", _min), ("max", _max), ("maxLimitRequestRatio", _ratio)):
        for name, enforced in sorted(parse_list(item.get(field)).items()):
            err = fn(kind, name, enforced, requests, limits)
            if err:
                out.append(err)
    return out


def _container_lists(c: Mapping[str, Any]) -> tuple[ResourceList, ResourceList]:
    res = c.get("resources") if isinstance(c.get("resources"), Mapping) else {}
    assert isinstance(res, Mapping)
    return parse_list(res.get("requests")), parse_list(res.get("limits"))


def pod_errors(lr: Mapping[str, Any], pod: Mapping[str, Any]) -> list[str]:
    """What a pod breaks of one LimitRange: each container and init container against the
    Container item, and the pod's total (init containers at their peak) against the Pod item."""
    errs: list[str] = []
    spec = pod.get("spec") or {}
    for item in _items(lr):
        t = item.get("type")
        if t == "Container":
            for c in (*(spec.get("containers") or ()), *(spec.get("initContainers") or ())):
                if isinstance(c, Mapping):
                    errs += _check("Container", item, *_container_lists(c))
        elif t == "Pod":
            errs += _check("Pod", item, pod_resource_list(pod, "requests", overhead=False),
                           pod_resource_list(pod, "limits", overhead=False))
    return errs


def pvc_errors(lr: Mapping[str, Any], pvc: Mapping[str, Any]) -> list[str]:
    """A claim's storage request against the PersistentVolumeClaim item's min and max."""
    errs: list[str] = []
    requests = parse_list(((pvc.get("spec") or {}).get("resources") or {}).get("requests"))
    for item in _items(lr):
        if item.get("type") != "PersistentVolumeClaim":
            continue
        for name, enforced in sorted(parse_list(item.get("min")).items()):
            err = _min("PersistentVolumeClaim", name, enforced, requests, {})
            if err:
                errs.append(err)
        for name, enforced in sorted(parse_list(item.get("max")).items()):
            err = _max_request("PersistentVolumeClaim", name, enforced, requests)
            if err:
                errs.append(err)
    return errs


def aggregate(errs: list[str]) -> str:
    """Go's ``utilerrors.NewAggregate(errs).Error()``: one message alone, several (each once) in
    brackets."""
    if len(errs) == 1:
        return errs[0]
    seen = list(dict.fromkeys(errs))
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


# --------------------------------------------------------------------------- the plugin


class LimitRanger(Plugin):
    name = "LimitRanger"

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self._lr_kind = registry.by_resource("", "v1", "limitranges")
        # namespace -> name -> LimitRange, from the store watch
        self._by_ns: dict[str, dict[str, Obj]] = {}
        self._synced = asyncio.Event()

    @staticmethod
    def _applies(a: Attributes) -> str:
        """"pod", "pvc", or "" when the request is not LimitRanger's."""
        k = a.kind
        if a.subresource or k.group != "":
            return ""
        if k.kind == "Pod" and a.operation == "CREATE":
            return "pod"
        if k.kind == "PersistentVolumeClaim" and a.operation in ("CREATE", "UPDATE"):
            return "pvc"
        return ""

    # -- the LimitRanges, kept from a store watch --------------------------------------------------
    def _reset(self) -> None:
        self._by_ns.clear()

    def _apply(self, key: str, value: bytes | None) -> None:
        assert self._lr_kind is not None
        ns, _, name = key[len(self._lr_kind.key_prefix(None)):].partition("/")
        if value is None:
            lrs = self._by_ns.get(ns)
            if lrs is not None:
                lrs.pop(name, None)
                if not lrs:
                    del self._by_ns[ns]
            return
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as e:  # e.g. an object whose encryption key is lost
            log.warning("LimitRanger: cannot read %s: %s; it is not applied", key, e)
            return
        if isinstance(obj, dict):
            self._by_ns.setdefault(ns, {})[name] = obj

    async def start(self) -> asyncio.Task[None] | None:
        if self._lr_kind is None:
            return None
        task = asyncio.get_running_loop().create_task(
            self.objects.mirror(self._lr_kind.key_prefix(None), reset=self._reset, apply=self._apply,
                                synced=self._synced.set, what="LimitRanger"),
            name="limitranger-admission")
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                await self._synced.wait()
        except TimeoutError:
            log.error("LimitRanger: limit ranges not listed in %.0fs; reading them per request until they are",
                      SYNC_TIMEOUT)
        return task

    async def _limit_ranges(self, namespace: str) -> list[Obj]:
        if self._lr_kind is None or not namespace:
            return []
        if self._synced.is_set():
            lrs = self._by_ns.get(namespace) or {}
            return [lrs[n] for n in sorted(lrs)]
        # not started (or not synced yet): ask the store
        page = await self.objects.list(self._lr_kind, namespace)
        return [o for o in page.items if isinstance(o, dict)]

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if self._applies(a) != "pod":
            return
        for lr in await self._limit_ranges(a.namespace):
            merge_defaults(lr, obj)

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        what = self._applies(a)
        if not what or obj is None:
            return
        if old is not None and (old.get("metadata") or {}).get("deletionTimestamp"):
            return  # an object on its way out is not held to today's limits
        for lr in await self._limit_ranges(a.namespace):
            errs = pod_errors(lr, obj) if what == "pod" else pvc_errors(lr, obj)
            if errs:
                meta = obj.get("metadata") or {}
                name = a.name or meta.get("name") or meta.get("generateName") or "Unknown"
                res = errors.qualified(a.kind.resource, a.kind.group)
                raise errors.forbidden_error(f'{res} "{name}" is forbidden: {aggregate(errs)}',
                                             a.kind.resource, a.kind.group, name)
