"""The EndpointSlice controller: ``discovery.k8s.io/v1`` EndpointSlices for every Service with a
selector, as kube-controller-manager's ``endpointslice-controller.k8s.io`` keeps them.

Per address type the service has (its ``ipFamilies``: IPv4 and/or IPv6), pods the selector
matches become endpoints (addresses of that family, conditions ready/serving/terminating,
nodeName, zone from the node's ``topology.kubernetes.io/zone`` label, hostname, targetRef),
grouped by the set of ports they resolve (named ports per pod), at most
``max_endpoints_per_slice`` (option, default 100) to a slice. Slices are labelled
``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by``, named
``<service>-xxxxx`` and owned by the Service. A service with no endpoints of a type keeps one
empty placeholder slice for it. Churn is kept low as kube's reconciler does: unchanged slices
are left alone, changed ones are filled up first, a slice to delete is reused for one to create.

Our own writes are tracked by generation, so a reconcile that runs before the informer has
seen them retries instead of acting on a stale cache (and creating duplicate slices).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from k8py.api.corev1 import is_namespace_terminating
from k8py.client.controller import Controller, Result
from k8py.client.errors import ApiError, ForbiddenError, NotFoundError
from k8py.controllers.base import ControllerContext
from k8py.controllers.endpoints import (
    POD,
    SERVICE,
    add_pod_service_handlers,
    find_port,
    is_ipv6,
    is_pod_ready,
    is_service_ip_set,
    meta,
    pod_ips,
    selector_matches,
    service_selector,
    services_for_pod,
    should_pod_be_in_endpoints,
    should_set_hostname,
    target_ref,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SLICE = ("discovery.k8s.io/v1", "EndpointSlice")
NODE = ("v1", "Node")
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_ZONE = "topology.kubernetes.io/zone"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100
RESERVED_LABELS = (LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS)

SLICE_INDEX = "endpointslice:service"  # managed slices by "namespace/service"
POD_NODE_INDEX = "endpointslice:node"  # pods by spec.nodeName

PortKey = tuple[tuple[str, int, str, str], ...]
EndpointKey = tuple[tuple[str, ...], str, str, str]


# -- pure parts -----------------------------------------------------------------------------------

def address_types(svc: Obj) -> list[str]:
    """kube's getAddressTypesForService: the service's IP families; without them, the family of
    the cluster IP, and both for a headless service."""
    spec = svc.get("spec") or {}
    out = [f for f in ("IPv4", "IPv6") if f in (spec.get("ipFamilies") or ())]
    if out:
        return out
    if is_service_ip_set(svc):
        return ["IPv6" if is_ipv6(spec.get("clusterIP")) else "IPv4"]
    return ["IPv4", "IPv6"]


def endpoint_ports(svc: Obj, pod: Obj) -> list[Obj]:
    spec = svc.get("spec") or {}
    out: list[Obj] = []
    if not spec.get("ports") and spec.get("clusterIP") == "None":
        return out  # headless services may have no ports
    for sp in spec.get("ports") or ():
        num = find_port(pod, sp)
        if num is None:
            continue
        p: Obj = {"name": sp.get("name") or "", "port": num, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            p["appProtocol"] = sp["appProtocol"]
        out.append(p)
    return out


def port_key(ports: Iterable[Obj]) -> PortKey:
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"),
                         str(p.get("appProtocol") or "")) for p in ports))


def pod_to_endpoint(pod: Obj, node: Obj | None, svc: Obj, address_type: str) -> Obj:
    serving = is_pod_ready(pod)
    terminating = bool(meta(pod).get("deletionTimestamp"))
    # "ready" is never true for a terminating pod unless the service publishes not-ready addresses
    ready = bool((svc.get("spec") or {}).get("publishNotReadyAddresses")) or (serving and not terminating)
    ep: Obj = {"addresses": [ip for ip in pod_ips(pod) if is_ipv6(ip) == (address_type == "IPv6")],
               "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        ep["nodeName"] = node_name
    zone = ((meta(node).get("labels") or {}).get(LABEL_ZONE) if node is not None else None)
    if zone:
        ep["zone"] = zone
    if should_set_hostname(pod, svc):
        ep["hostname"] = pod["spec"]["hostname"]
    ep["targetRef"] = target_ref(pod)
    return ep


def endpoint_key(ep: Obj) -> EndpointKey:
    ref = ep.get("targetRef") or {}
    return (tuple(sorted(ep.get("addresses") or ())), str(ep.get("hostname") or ""),
            str(ref.get("namespace") or ""), str(ref.get("name") or ""))


def endpoints_equal_beyond_key(a: Obj, b: Obj) -> bool:
    """What the key does not cover: node, zone, conditions, targetRef (ignoring its resourceVersion)."""
    def ref(ep: Obj) -> Obj:
        return {k: v for k, v in (ep.get("targetRef") or {}).items() if k != "resourceVersion" and v}

    def cond(ep: Obj) -> tuple[Any, ...]:
        c = ep.get("conditions") or {}
        return (c.get("ready"), c.get("serving"), c.get("terminating"))

    return a.get("nodeName") == b.get("nodeName") and a.get("zone") == b.get("zone") and \
        cond(a) == cond(b) and ref(a) == ref(b)


def slice_labels(current: dict[str, str] | None, svc: Obj) -> tuple[dict[str, str], bool]:
    """kube's setEndpointSliceLabels: the service's labels (but the reserved ones) plus ours; and
    whether the non-reserved labels differ from the slice's."""
    cur = {k: v for k, v in (current or {}).items() if k not in RESERVED_LABELS}
    want = {k: v for k, v in (meta(svc).get("labels") or {}).items() if k not in RESERVED_LABELS}
    changed = cur != want
    if not is_service_ip_set(svc):
        want[LABEL_HEADLESS] = ""
    want[LABEL_SERVICE_NAME] = str(meta(svc).get("name") or "")
    want[LABEL_MANAGED_BY] = CONTROLLER_NAME
    return want, changed


def owned_by(sl: Obj, svc: Obj) -> bool:
    uid = meta(svc).get("uid")
    return any(o.get("uid") == uid and o.get("kind") == "Service" and o.get("apiVersion") == "v1"
               for o in meta(sl).get("ownerReferences") or ())


def new_slice(svc: Obj, ports: list[Obj], address_type: str) -> Obj:
    m = meta(svc)
    labels, _ = slice_labels({}, svc)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{m.get('name')}-", "namespace": m.get("namespace"), "labels": labels,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": m.get("name"),
                                              "uid": m.get("uid"), "controller": True,
                                              "blockOwnerDeletion": True}]},
            "addressType": address_type, "ports": copy.deepcopy(ports), "endpoints": []}


def _is_placeholder_of(sl: Obj, placeholder: Obj) -> bool:
    a, b = meta(sl), meta(placeholder)
    return a.get("namespace") == b.get("namespace") and (a.get("labels") or {}) == (b.get("labels") or {}) and \
        sl.get("addressType") == placeholder.get("addressType") and not sl.get("endpoints") and \
        not sl.get("ports") and [(o.get("uid"), o.get("kind")) for o in a.get("ownerReferences") or ()] == \
        [(o.get("uid"), o.get("kind")) for o in b.get("ownerReferences") or ()]


@dataclass(slots=True)
class Plan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    missing_nodes: set[str] = field(default_factory=set)


def plan_slices(svc: Obj, pods: Iterable[Obj], existing: Iterable[Obj], get_node: Callable[[str], Obj | None],
                max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> Plan:
    """What to create, update and delete so that ``existing`` slices show ``pods`` for ``svc``."""
    plan = Plan()
    types = address_types(svc)
    by_type: dict[str, list[Obj]] = {t: [] for t in types}
    for sl in existing:
        t = sl.get("addressType")
        if t in by_type:
            by_type[t].append(sl)
        else:
            plan.delete.append(sl)  # a family the service no longer has
    pods = list(pods)
    for t in types:
        _plan_address_type(plan, svc, pods, by_type[t], get_node, t, max_per_slice)
    _reuse_deletes_for_creates(plan, svc)
    return plan


def _plan_address_type(plan: Plan, svc: Obj, pods: list[Obj], existing: list[Obj],
                       get_node: Callable[[str], Obj | None], address_type: str, max_per_slice: int) -> None:
    to_create: list[Obj] = []
    to_update: list[Obj] = []
    to_delete: list[Obj] = []
    existing_by_ports: dict[PortKey, list[Obj]] = {}
    for sl in existing:
        if owned_by(sl, svc):
            existing_by_ports.setdefault(port_key(sl.get("ports") or ()), []).append(sl)
        else:
            to_delete.append(sl)  # left from an older service of the same name
    desired_meta: dict[PortKey, list[Obj]] = {}
    desired: dict[PortKey, dict[EndpointKey, Obj]] = {}
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, True):
            continue
        ports = endpoint_ports(svc, pod)
        pk = port_key(ports)
        desired.setdefault(pk, {})
        desired_meta.setdefault(pk, ports)
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        node = get_node(node_name) if node_name else None
        if node is None and not publish:
            # why: a pod on a node that does not exist (yet, or any more) is left out for now and
            # the service looked at again later, rather than leaving the slice stuck on it
            plan.missing_nodes.add(node_name)
            continue
        ep = pod_to_endpoint(pod, node, svc, address_type)
        if ep["addresses"]:
            desired[pk][endpoint_key(ep)] = ep
    for pk, want in desired.items():
        c, u, d = _plan_port_mapping(svc, existing_by_ports.get(pk, []), want, desired_meta[pk], address_type,
                                     max_per_slice)
        to_create += c
        to_update += u
        to_delete += d
    for pk, slices in existing_by_ports.items():
        if pk not in desired:
            to_delete += slices
    # When no slice would exist, keep one empty placeholder (so consumers can tell "no endpoints").
    if len(existing) == len(to_delete) and not to_create:
        placeholder = new_slice(svc, [], address_type)
        if len(to_delete) == 1 and _is_placeholder_of(to_delete[0], placeholder):
            to_delete = []
        else:
            to_create.append(placeholder)
    plan.create += to_create
    plan.update += to_update
    plan.delete += to_delete


def _plan_port_mapping(svc: Obj, existing: list[Obj], want: dict[EndpointKey, Obj], ports: list[Obj],
                       address_type: str, max_per_slice: int) -> tuple[list[Obj], list[Obj], list[Obj]]:
    by_name: dict[str, Obj] = {}
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[str] = []
    want = dict(want)
    # 1. drop endpoints no longer wanted, refresh changed ones
    for sl in existing:
        name = meta(sl)["name"]
        by_name[name] = sl
        kept: list[Obj] = []
        changed = False
        for ep in sl.get("endpoints") or ():
            got = want.pop(endpoint_key(ep), None)
            if got is not None:
                kept.append(got)
                if not endpoints_equal_beyond_key(got, ep):
                    changed = True
        labels, labels_changed = slice_labels(meta(sl).get("labels"), svc)
        if changed or len(kept) != len(sl.get("endpoints") or ()):
            if not kept:
                to_delete.append(name)
            else:
                new = copy.deepcopy(sl)
                new["endpoints"] = kept
                new["metadata"]["labels"] = labels
                by_name[name] = new
                to_update.append(name)
        elif labels_changed:
            new = copy.deepcopy(sl)
            new["metadata"]["labels"] = labels
            by_name[name] = new
            to_update.append(name)
        else:
            unchanged.append(name)
    remaining = list(want.values())
    # 2. fill the slices we update anyway, fullest first
    if remaining and to_update:
        for name in sorted(to_update, key=lambda n: -len(by_name[n].get("endpoints") or ())):
            sl = by_name[name]
            while remaining and len(sl["endpoints"]) < max_per_slice:
                sl["endpoints"].append(remaining.pop())
    # 3. what is left goes into the unchanged slice it fits best, else into new slices
    to_create: list[Obj] = []
    while remaining:
        target: Obj | None = None
        if len(remaining) < max_per_slice and unchanged:
            target = _slice_to_fill([by_name[n] for n in unchanged], len(remaining), max_per_slice)
        if target is None:
            target = new_slice(svc, ports, address_type)
        else:
            target = copy.deepcopy(target)
            target.setdefault("endpoints", [])
            by_name[meta(target)["name"]] = target
        while remaining and len(target["endpoints"]) < max_per_slice:
            target["endpoints"].append(remaining.pop())
        name = meta(target).get("name")
        if name:
            to_update.append(name)
            unchanged.remove(name)
        else:
            to_create.append(target)
    return to_create, [by_name[n] for n in to_update], [by_name[n] for n in to_delete]


def _slice_to_fill(slices: list[Obj], n: int, max_per_slice: int) -> Obj | None:
    """The slice that ends up closest to full with ``n`` more endpoints (kube's getSliceToFill)."""
    best, best_diff = None, max_per_slice
    for sl in slices:
        diff = max_per_slice - (n + len(sl.get("endpoints") or ()))
        if 0 <= diff < best_diff:
            best, best_diff = sl, diff
            if diff == 0:
                break
    return best


def _reuse_deletes_for_creates(plan: Plan, svc: Obj) -> None:
    """Turn a create plus a delete of the same address type into one update (less churn). Only
    slices owned by this service are reused: others may be garbage of an older namesake."""
    i = 0
    while i < len(plan.delete) and plan.create:
        old = plan.delete[i]
        new = plan.create[-1]
        if old.get("addressType") == new.get("addressType") and owned_by(old, svc):
            reused = copy.deepcopy(new)
            reused["metadata"] = copy.deepcopy(old["metadata"])
            reused["metadata"]["labels"] = new["metadata"]["labels"]
            plan.create.pop()
            plan.update.append(reused)
            plan.delete.pop(i)
        else:
            i += 1


# -- tracking our own writes ----------------------------------------------------------------------

DELETION_EXPECTED = -1


class SliceTracker:
    """Generations of the slices this controller wrote, per service (kube's EndpointSliceTracker)."""

    def __init__(self) -> None:
        self._gens: dict[str, dict[str, int]] = {}

    def update(self, svc_key: str, sl: Obj) -> None:
        m = meta(sl)
        self._gens.setdefault(svc_key, {})[str(m.get("uid"))] = int(m.get("generation") or 0)

    def expect_deletion(self, svc_key: str, sl: Obj) -> None:
        self._gens.setdefault(svc_key, {})[str(meta(sl).get("uid"))] = DELETION_EXPECTED

    def should_sync(self, svc_key: str, sl: Obj) -> bool:
        """True unless ``sl`` is a version we wrote ourselves."""
        gens = self._gens.get(svc_key)
        if gens is None:
            return True
        g = gens.get(str(meta(sl).get("uid")))
        return g is None or int(meta(sl).get("generation") or 0) > g

    def stale(self, svc_key: str, slices: list[Obj]) -> bool:
        """True when the cache lacks a write of ours or still shows a slice we deleted."""
        gens = self._gens.get(svc_key)
        if not gens:
            return False
        seen = set()
        for sl in slices:
            uid = str(meta(sl).get("uid"))
            seen.add(uid)
            g = gens.get(uid)
            if g is not None and (g == DELETION_EXPECTED or g > int(meta(sl).get("generation") or 0)):
                return True
        return any(g != DELETION_EXPECTED and uid not in seen for uid, g in gens.items())

    def handle_deleted(self, svc_key: str, sl: Obj) -> bool:
        """Forget a deleted slice; True when the deletion was not ours (so the service needs a look)."""
        gens = self._gens.get(svc_key)
        if gens is None:
            return True
        g = gens.pop(str(meta(sl).get("uid")), None)
        if not gens:
            del self._gens[svc_key]
        return g != DELETION_EXPECTED

    def delete_service(self, svc_key: str) -> None:
        self._gens.pop(svc_key, None)


def managed_service_key(sl: Obj) -> str | None:
    labels = meta(sl).get("labels") or {}
    if labels.get(LABEL_MANAGED_BY) != CONTROLLER_NAME or not labels.get(LABEL_SERVICE_NAME):
        return None
    return f"{meta(sl).get('namespace')}/{labels[LABEL_SERVICE_NAME]}"


def _try_add_indexer(informer: Any, name: str, fn: Callable[[Obj], list[str]]) -> None:
    try:
        informer.add_indexer(name, fn)
    except ValueError:
        pass  # another controller of this process registered the same index on the shared informer


class EndpointSliceController:
    NAME = "endpointslice"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        f = ctx.factory
        self.services = f.informer(SERVICE)
        self.pods = f.informer(POD)
        self.nodes = f.informer(NODE)
        self.slices = f.informer(SLICE)
        self.max_per_slice = ctx.options.max_endpoints_per_slice or MAX_ENDPOINTS_PER_SLICE
        self.tracker = SliceTracker()
        _try_add_indexer(self.slices, SLICE_INDEX, lambda sl: [k] if (k := managed_service_key(sl)) else [])
        _try_add_indexer(self.pods, POD_NODE_INDEX,
                         lambda p: [n] if (n := (p.get("spec") or {}).get("nodeName")) else [])
        self.controller = Controller("endpointslice-controller", self.reconcile,
                                     workers=ctx.options.workers or 2, clock=ctx.clock, max_retries=15)
        c = self.controller
        c.watch(self.services)
        add_pod_service_handlers(c, self.pods, self.services)
        for inf in (self.pods, self.nodes, self.slices):
            c.watch(inf, lambda _o: ())  # only so run() waits for these caches
        self.slices.add_handler(self._on_slice_add, self._on_slice_update, self._on_slice_delete)
        self.nodes.add_handler(self._on_node, self._on_node_update, self._on_node)

    # -- handlers ----------------------------------------------------------------------------------

    def _on_slice_add(self, sl: Obj) -> None:
        key = managed_service_key(sl)
        if key is not None and self.tracker.should_sync(key, sl):
            self.controller.enqueue_key(key)

    def _on_slice_update(self, old: Obj, new: Obj) -> None:
        ok, nk = managed_service_key(old), managed_service_key(new)
        if ok != nk:  # relabelled (or no longer ours): both services need a look
            for k in {ok, nk} - {None}:
                self.controller.enqueue_key(k)  # type: ignore[arg-type]
            return
        if nk is not None and old is not new and self.tracker.should_sync(nk, new):
            self.controller.enqueue_key(nk)

    def _on_slice_delete(self, sl: Obj) -> None:
        key = managed_service_key(sl)
        if key is not None and self.tracker.handle_deleted(key, sl):
            self.controller.enqueue_key(key)  # someone else deleted it: put it back

    def _services_on_node(self, node_name: str) -> set[str]:
        keys: set[str] = set()
        for pod in self.pods.store.by_index(POD_NODE_INDEX, node_name):
            ns = str(meta(pod).get("namespace") or "")
            keys |= services_for_pod(self.services.store.by_index("namespace", ns), pod)
        return keys

    def _on_node(self, node: Obj) -> None:
        for k in self._services_on_node(str(meta(node).get("name"))):
            self.controller.enqueue_key(k)

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if (meta(old).get("labels") or {}).get(LABEL_ZONE) != (meta(new).get("labels") or {}).get(LABEL_ZONE):
            self._on_node(new)

    # -- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        svc = self.services.get(name, ns)
        existing = self.slices.store.by_index(SLICE_INDEX, key)
        if svc is None:
            self.tracker.delete_service(key)
            # kube leaves this to the garbage collector (the slices are owned by the service); doing
            # it here too means slices never outlive their service when the collector is not running.
            for sl in existing:
                if any(o.get("kind") == "Service" and o.get("name") == name
                       for o in meta(sl).get("ownerReferences") or ()):
                    try:
                        await self.client.delete(SLICE, meta(sl)["name"], ns, uid=meta(sl).get("uid"))
                    except NotFoundError:
                        pass
                    except ApiError as e:
                        if e.code != 409:  # 409: a precondition failed, it is another slice now
                            raise
            return None
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            return None
        selector = service_selector(svc)
        if selector is None:
            return None  # selector-less services get their slices from someone else
        if self.tracker.stale(key, existing):
            log.debug("endpointslice informer cache is out of date for %s; retrying", key)
            return Result(requeue=True)
        pods = [p for p in self.pods.store.by_index("namespace", ns)
                if selector_matches(selector, meta(p).get("labels"))]
        plan = plan_slices(svc, pods, existing, lambda n: self.nodes.get(n), self.max_per_slice)
        await self._apply(key, svc, plan)
        if plan.missing_nodes:
            log.info("service %s: skipped pods on nodes not found: %s; will retry", key,
                     ", ".join(sorted(plan.missing_nodes)))
            return Result(requeue=True)
        return None

    async def _apply(self, key: str, svc: Obj, plan: Plan) -> None:
        ns = str(meta(svc).get("namespace"))
        # why: creating slices for a service being deleted races the garbage collector removing them
        if not meta(svc).get("deletionTimestamp"):
            for sl in plan.create:
                try:
                    created = await self.client.create(SLICE, sl, ns)
                except ForbiddenError as e:
                    if is_namespace_terminating(e):
                        return
                    raise
                self.tracker.update(key, created)
        for sl in plan.update:
            updated = await self.client.update(SLICE, sl, ns)
            self.tracker.update(key, updated)
        for sl in plan.delete:
            try:
                await self.client.delete(SLICE, meta(sl)["name"], ns)
            except NotFoundError:
                continue  # already gone: nothing to wait for
            self.tracker.expect_deletion(key, sl)
