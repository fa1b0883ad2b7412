"""The Endpoints controller: one ``v1/Endpoints`` per Service with a selector, as
kube-controller-manager's ``endpoint-controller`` keeps it.

For each pod the selector matches (and that has an IP and has not finished), each service port
is resolved on that pod (a named ``targetPort`` is looked up among the pod's container ports; a
pod without it is left out of that port), and the address goes to ``addresses`` when the pod is
Ready (or the service sets ``publishNotReadyAddresses``), to ``notReadyAddresses`` otherwise.
Subsets are then packed as kube's ``RepackSubsets`` does: addresses offering the same set of
ports share one subset. Headless services without ports get their addresses with no ports.

Services without a selector, ``ExternalName`` services and the apiserver's own
``default/kubernetes`` Endpoints are never touched. When a service goes, its Endpoints go.

Also here: the pod/service helpers the EndpointSlice controller shares (readiness, ports,
service membership, which pod changes matter).
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import math
from collections.abc import Iterable
from typing import Any

from k8py.api.corev1 import is_namespace_terminating, is_pod_ready, is_pod_terminal
from k8py.client.api import object_key
from k8py.client.controller import Controller, Result
from k8py.client.errors import AlreadyExistsError, ApiError, ForbiddenError, NotFoundError
from k8py.client.informer import Informer
from k8py.controllers.base import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]

POD = ("v1", "Pod")
SERVICE = ("v1", "Service")
ENDPOINTS = ("v1", "Endpoints")

LABEL_MANAGED_BY = "endpoints.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpoint-controller"
LABEL_HEADLESS = "service.kubernetes.io/headless"
ANNOTATION_OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
MAX_CAPACITY = 1000  # addresses per Endpoints object, as kube


# -- shared helpers (also used by the EndpointSlice controller) ----------------------------------

def meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def pod_ips(pod: Obj) -> list[str]:
    st = pod.get("status") or {}
    ips = [str(p["ip"]) for p in st.get("podIPs") or () if isinstance(p, dict) and p.get("ip")]
    if not ips and st.get("podIP"):
        ips = [str(st["podIP"])]
    return ips


def is_ipv6(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip).version == 6
    except ValueError:
        return False


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """kube's ShouldPodBeInEndpoints: not finished, has an IP, and (unless asked) not terminating."""
    if is_pod_terminal(pod):
        return False
    if not pod_ips(pod):
        return False
    return include_terminating or not meta(pod).get("deletionTimestamp")


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == meta(svc).get("name") and \
        meta(pod).get("namespace") == meta(svc).get("namespace")


def is_service_ip_set(svc: Obj) -> bool:
    cip = (svc.get("spec") or {}).get("clusterIP")
    return bool(cip) and cip != "None"


def service_selector(svc: Obj) -> dict[str, str] | None:
    """The selector, or None when the service has none (which selects nothing, not everything)."""
    sel = (svc.get("spec") or {}).get("selector")
    return dict(sel) if isinstance(sel, dict) and sel else None


def selector_matches(selector: dict[str, str], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The pod's port for a service port: a number as is, a name looked up among the ports of the
    pod's containers (and sidecars: init containers with restartPolicy Always) of the same protocol."""
    target = svc_port.get("targetPort")
    if target is None or target == "":
        target = svc_port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    proto = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or ())
    containers += [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in c.get("ports") or ():
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return int(p["containerPort"])
    return None


def target_ref(pod: Obj) -> Obj:
    m = meta(pod)
    return {"kind": "Pod", "namespace": m.get("namespace", ""), "name": m.get("name", ""), "uid": m.get("uid", "")}


def services_for_pod(services: Iterable[Obj], pod: Obj) -> set[str]:
    """Keys of the services (of the pod's namespace) whose selector matches the pod."""
    labels = meta(pod).get("labels") or {}
    out = set()
    for svc in services:
        sel = service_selector(svc)
        if sel is not None and selector_matches(sel, labels):
            out.add(object_key(svc))
    return out


def pod_endpoints_changed(old: Obj, new: Obj) -> tuple[bool, bool]:
    """(the pod changed in a way its endpoints show, its labels/hostname changed) -- kube's
    podEndpointsChanged."""
    om, nm = meta(old), meta(new)
    os_, ns_ = old.get("spec") or {}, new.get("spec") or {}
    labels_changed = (om.get("labels") or {}) != (nm.get("labels") or {}) or \
        os_.get("hostname") != ns_.get("hostname") or os_.get("subdomain") != ns_.get("subdomain")
    changed = om.get("deletionTimestamp") != nm.get("deletionTimestamp") or \
        is_pod_ready(old) != is_pod_ready(new) or pod_ips(old) != pod_ips(new) or \
        os_.get("nodeName") != ns_.get("nodeName") or is_pod_terminal(old) != is_pod_terminal(new)
    return changed, labels_changed


def services_to_update_on_pod_change(services: list[Obj], old: Obj, new: Obj) -> set[str]:
    """kube's GetServicesToUpdateOnPodChange: nothing for resyncs and irrelevant changes; on a
    label change only the services the pod joined or left (all of both when it also changed)."""
    if old is new or meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
        return set()
    changed, labels_changed = pod_endpoints_changed(old, new)
    if not changed and not labels_changed:
        return set()
    now = services_for_pod(services, new)
    if not labels_changed:
        return now
    before = services_for_pod(services, old)
    return now | before if changed else now ^ before


def add_pod_service_handlers(controller: Controller, pods: Informer, services: Informer) -> None:
    """Enqueue the keys of services whose endpoints a pod event may change."""

    def ns_services(pod: Obj) -> list[Obj]:
        return services.store.by_index("namespace", str(meta(pod).get("namespace") or ""))

    def on_add(pod: Obj) -> None:
        for k in services_for_pod(ns_services(pod), pod):
            controller.enqueue_key(k)

    def on_update(old: Obj, new: Obj) -> None:
        for k in services_to_update_on_pod_change(ns_services(new), old, new):
            controller.enqueue_key(k)

    pods.add_handler(on_add, on_update, on_add)


# -- Endpoints, pure ------------------------------------------------------------------------------

def _address_for_service(svc: Obj, pod: Obj) -> Obj | None:
    """kube's podToEndpointAddressForService: the pod IP of the service's (first) IP family."""
    spec = svc.get("spec") or {}
    fams = spec.get("ipFamilies") or ()
    if fams:
        want_v6 = fams[0] == "IPv6"
    elif is_service_ip_set(svc):
        want_v6 = is_ipv6(spec.get("clusterIP"))
    else:
        ips = pod_ips(pod)
        want_v6 = bool(ips) and is_ipv6(ips[0])
    ip = next((i for i in pod_ips(pod) if is_ipv6(i) == want_v6), None)
    if ip is None:
        return None
    addr: Obj = {"ip": ip}
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        addr["nodeName"] = node
    addr["targetRef"] = target_ref(pod)
    if should_set_hostname(pod, svc):
        addr["hostname"] = pod["spec"]["hostname"]
    return addr


def _endpoint_port(svc_port: Obj, port: int) -> Obj:
    p: Obj = {"port": port, "protocol": svc_port.get("protocol") or "TCP"}
    if svc_port.get("name"):
        p["name"] = svc_port["name"]
    if svc_port.get("appProtocol"):
        p["appProtocol"] = svc_port["appProtocol"]
    return p


def _port_key(p: Obj) -> tuple[str, int, str, str]:
    return (str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or ""),
            str(p.get("appProtocol") or ""))


def _addr_key(a: Obj) -> tuple[str, str]:
    return (str(a.get("ip") or ""), str((a.get("targetRef") or {}).get("uid") or ""))


def compute_subsets(svc: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The packed, sorted subsets for ``svc`` given the pods its selector matches."""
    spec = svc.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    svc_ports = list(spec.get("ports") or ())
    headless = spec.get("clusterIP") == "None"
    # (port key or None for "no ports") -> address key -> ready; and one address dict per key
    by_port: dict[tuple[str, int, str, str] | None, dict[tuple[str, str], bool]] = {}
    port_objs: dict[tuple[str, int, str, str], Obj] = {}
    addrs: dict[tuple[str, str], Obj] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, publish):
            continue
        addr = _address_for_service(svc, pod)
        if addr is None:
            continue  # no IP of the service's family (e.g. a single-stack pod on a v6 service)
        ready = publish or is_pod_ready(pod)
        akey = _addr_key(addr)
        addrs.setdefault(akey, addr)
        entries: list[tuple[str, int, str, str] | None] = []
        if not svc_ports:
            if headless:  # headless services may have no ports: addresses only
                entries.append(None)
        else:
            for sp in svc_ports:
                num = find_port(pod, sp)
                if num is None:
                    continue  # this pod does not offer this (named) port
                ep = _endpoint_port(sp, num)
                pk = _port_key(ep)
                port_objs.setdefault(pk, ep)
                entries.append(pk)
        for entry in entries:
            m = by_port.setdefault(entry, {})
            # not ready trumps ready, as RepackSubsets
            m[akey] = m.get(akey, True) and ready
    # group ports by the exact set of (address, readiness) that offers them
    groups: dict[tuple[tuple[tuple[str, str], bool], ...], list[tuple[str, int, str, str]]] = {}
    for port, m in by_port.items():
        sig = tuple(sorted(m.items()))
        lst = groups.setdefault(sig, [])
        if port is not None:
            lst.append(port)
    subsets = []
    for sig, pks in groups.items():
        sub: Obj = {}
        ready_a = [copy.deepcopy(addrs[k]) for k, r in sig if r]
        notready_a = [copy.deepcopy(addrs[k]) for k, r in sig if not r]
        if ready_a:
            sub["addresses"] = ready_a
        if notready_a:
            sub["notReadyAddresses"] = notready_a
        if pks:
            sub["ports"] = [port_objs[k] for k in sorted(pks)]
        subsets.append(sub)
    subsets.sort(key=_subset_sort_key)
    return subsets


def _subset_sort_key(sub: Obj) -> tuple[Any, ...]:
    return (tuple(_port_key(p) for p in sub.get("ports") or ()),
            tuple(_addr_key(a) for a in (sub.get("addresses") or []) + (sub.get("notReadyAddresses") or [])))


def truncate_subsets(subsets: list[Obj], max_capacity: int = MAX_CAPACITY) -> bool:
    """kube's truncateEndpoints: keep at most ``max_capacity`` addresses, ready ones first, spread in
    proportion over the subsets. True when something was cut."""
    total_ready = sum(len(s.get("addresses") or ()) for s in subsets)
    total_not = sum(len(s.get("notReadyAddresses") or ()) for s in subsets)
    if total_ready + total_not <= max_capacity:
        return False
    truncate_ready = total_ready > max_capacity
    limit = max_capacity if truncate_ready else max_capacity - total_ready
    num_total = total_ready if truncate_ready else total_not
    can_add = limit
    for s in subsets:
        field = "addresses" if truncate_ready else "notReadyAddresses"
        have = list(s.get(field) or ())
        n = min(math.ceil(len(have) / num_total * limit) if num_total else 0, can_add)
        if have:
            s[field] = have[:n]
            if not s[field]:
                del s[field]
        if truncate_ready:
            s.pop("notReadyAddresses", None)
        can_add -= len(s.get(field) or ())
    return True


def _normalize(value: Any) -> Any:
    """For comparisons: drop empty values and targetRef resourceVersions (pod updates that do not
    change an address must not rewrite the Endpoints)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "resourceVersion":
                continue
            nv = _normalize(v)
            if nv in (None, "", [], {}):
                continue
            out[k] = nv
        return out
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def desired_labels(svc: Obj) -> dict[str, str]:
    labels = dict(meta(svc).get("labels") or {})
    labels[LABEL_MANAGED_BY] = CONTROLLER_NAME
    if is_service_ip_set(svc):
        labels.pop(LABEL_HEADLESS, None)
    else:
        labels[LABEL_HEADLESS] = ""
    return labels


class EndpointsController:
    NAME = "endpoints"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        f = ctx.factory
        self.services = f.informer(SERVICE)
        self.pods = f.informer(POD)
        self.endpoints = f.informer(ENDPOINTS)
        self.max_capacity = MAX_CAPACITY
        self.controller = Controller("endpoint-controller", self.reconcile,
                                     workers=ctx.options.workers or 2, clock=ctx.clock, max_retries=15)
        self.controller.watch(self.services)
        add_pod_service_handlers(self.controller, self.pods, self.services)
        self.controller.watch(self.pods, lambda _p: ())  # only so run() waits for the pod cache
        # Endpoints: a deleted one is recreated; ones we made are looked at once at start
        # (kube's checkLeftoverEndpoints), so those whose service went while we were down go too.
        self.endpoints.add_handler(on_add=self._on_endpoints_add, on_delete=self.controller.enqueue)
        # resourceVersions we already replaced: a cache still showing one is stale.
        self._stale: dict[str, str] = {}

    def _on_endpoints_add(self, ep: Obj) -> None:
        m = meta(ep)
        if (m.get("labels") or {}).get(LABEL_MANAGED_BY) == CONTROLLER_NAME and \
                LEADER_ANNOTATION not in (m.get("annotations") or {}):
            self.controller.enqueue(ep)

    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.partition("/")
        svc = self.services.get(name, ns)
        if svc is None:
            self._stale.pop(key, None)
            # The service is gone: so are its Endpoints (kube deletes them by name).
            try:
                await self.client.delete(ENDPOINTS, name, ns)
            except NotFoundError:
                pass
            return None
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            return None  # receive no endpoints from this controller (issues.k8s.io/105986)
        selector = service_selector(svc)
        if selector is None:
            return None  # selector-less services get their Endpoints out of band (or from the apiserver)
        pods = [p for p in self.pods.store.by_index("namespace", ns)
                if selector_matches(selector, meta(p).get("labels"))]
        subsets = compute_subsets(svc, pods)

        current = self.endpoints.get(name, ns)
        new: Obj
        if current is not None and self._stale.get(key) == meta(current).get("resourceVersion"):
            # why: we replaced this version already; writing from it would undo our own update.
            # Look again (with backoff) once the informer has caught up.
            log.debug("endpoints informer cache is out of date for %s; retrying", key)
            return Result(requeue=True)
        create = current is None
        labels = desired_labels(svc)
        truncated = truncate_subsets(subsets, self.max_capacity)
        if current is not None:
            annotations = dict(meta(current).get("annotations") or {})
            over = annotations.get(ANNOTATION_OVER_CAPACITY) is not None
            if _normalize(current.get("subsets") or []) == _normalize(subsets) and \
                    (meta(current).get("labels") or {}) == labels and over == truncated:
                return None
            new = copy.deepcopy(current)
        else:
            new = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns}}
            annotations = {}
        if truncated:
            annotations[ANNOTATION_OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(ANNOTATION_OVER_CAPACITY, None)
        new["subsets"] = subsets
        new["metadata"]["labels"] = labels
        if annotations:
            new["metadata"]["annotations"] = annotations
        else:
            new["metadata"].pop("annotations", None)
        try:
            if create:
                await self.client.create(ENDPOINTS, new, ns)
            else:
                out = await self.client.update(ENDPOINTS, new, ns)
                assert current is not None
                if meta(out).get("resourceVersion") != meta(current).get("resourceVersion"):
                    self._stale[key] = str(meta(current).get("resourceVersion") or "")
        except AlreadyExistsError:
            # why: our cache has not seen the Endpoints we (or the apiserver) made; look again later
            log.debug("endpoints %s exist but are not in the cache yet; retrying", key)
            return Result(requeue=True)
        except ForbiddenError as e:
            if create and is_namespace_terminating(e):
                return None  # creates keep failing in a terminating namespace; drop the key
            self._failed(new, create, e)
            raise
        except ApiError as e:
            self._failed(new, create, e)
            raise
        return None

    def _failed(self, ep: Obj, create: bool, e: ApiError) -> None:
        ns, name = meta(ep).get("namespace"), meta(ep).get("name")
        if create:
            self.ctx.record(ep, "Warning", "FailedToCreateEndpoint",
                            f"Failed to create endpoint for service {ns}/{name}: {e.message}")
        else:
            self.ctx.record(ep, "Warning", "FailedToUpdateEndpoint",
                            f"Failed to update endpoint {ns}/{name}: {e.message}")
