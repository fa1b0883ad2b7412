"""Admission: mutating and validating plugins run after authorization, before storage.

Plugins (as kube-apiserver's defaults): NamespaceLifecycle, ServiceAccount
(default service account name), DefaultTolerationSeconds, Priority, and
service ClusterIP / NodePort allocation (kube does that in the Service REST
storage; it is here so all writes that allocate go through one place).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.api.registry import KindInfo

if TYPE_CHECKING:
    from k8py.apiserver.objects import Objects
    from k8py.api.registry import Registry

Obj = dict[str, Any]

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
NODE_PORT_RANGE = (30000, 32767)
DEFAULT_TOLERATION_SECONDS = 300


@dataclass(slots=True)
class Attributes:
    operation: str  # CREATE, UPDATE, DELETE, CONNECT
    kind: KindInfo
    namespace: str
    name: str
    subresource: str = ""
    dry_run: bool = False


class Admission:
    def __init__(self, objects: Objects, registry: Registry, service_cidr: str) -> None:
        self.objects = objects
        self.registry = registry
        self.service_net = ipaddress.ip_network(service_cidr, strict=False)
        self._alloc_lock = asyncio.Lock()
        self._ns_kind = registry.by_resource("", "v1", "namespaces")
        self._svc_kind = registry.by_resource("", "v1", "services")
        self._pc_kind = registry.by_resource("scheduling.k8s.io", "v1", "priorityclasses")

    # -- mutating ---------------------------------------------------------------
    async def mutate(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if a.subresource:
            return
        k = a.kind.kind
        if k == "Pod" and a.operation == "CREATE":
            await self._pod_defaults(obj)
        elif k == "Service" and a.kind.group == "":
            await self._allocate_service(obj, old)

    async def _pod_defaults(self, pod: Obj) -> None:
        spec = pod.setdefault("spec", {})
        # ServiceAccount admission: the default account unless one is named.
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        # DefaultTolerationSeconds: tolerate not-ready/unreachable for 300 s.
        tols = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute") for t in tols) and \
                    not any(t.get("operator") == "Exists" and not t.get("key") for t in tols):
                tols.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
        # Priority admission.
        pcname = spec.get("priorityClassName")
        if pcname:
            pc = await self.objects.try_get(self._pc_kind, None, pcname) if self._pc_kind else None
            if pc is None and pcname not in ("system-cluster-critical", "system-node-critical"):
                raise errors.forbidden_error(
                    f'pods "{pod["metadata"].get("name") or pod["metadata"].get("generateName", "")}" is '
                    f'forbidden: no PriorityClass with name {pcname} was found', "pods")
            value = pc.get("value", 0) if pc else (2000000000 if pcname == "system-cluster-critical" else 2000001000)
            if spec.get("priority") is not None and spec["priority"] != value:
                raise errors.forbidden_error("the integer value of priority must not be provided in pod spec; "
                                             "priority admission controller computed "
                                             f"{value} from the given PriorityClass name", "pods")
            spec["priority"] = value
            if pc and pc.get("preemptionPolicy"):
                spec.setdefault("preemptionPolicy", pc["preemptionPolicy"])
        else:
            spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")

    async def _allocate_service(self, svc: Obj, old: Obj | None) -> None:
        spec = svc.setdefault("spec", {})
        stype = spec.get("type") or "ClusterIP"
        async with self._alloc_lock:
            used_ips, used_ports = await self._used(exclude=svc["metadata"].get("name"),
                                                    exclude_ns=svc["metadata"].get("namespace"))
            if stype != "ExternalName":
                want = spec.get("clusterIP") or (old or {}).get("spec", {}).get("clusterIP")
                if not want:
                    ip = self._pick_ip(used_ips, svc)
                    spec["clusterIP"] = ip
                    spec["clusterIPs"] = [ip]
                elif want != "None":
                    if old is None or (old.get("spec") or {}).get("clusterIP") != want:
                        self._check_ip(want, used_ips)
                    spec["clusterIP"] = want
                    spec["clusterIPs"] = [want]
                else:
                    spec["clusterIPs"] = ["None"]
                fam = "IPv6" if spec["clusterIP"] not in ("None",) and ":" in spec["clusterIP"] else "IPv4"
                spec.setdefault("ipFamilies", [fam])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
            if stype in ("NodePort", "LoadBalancer"):
                old_ports = {(p.get("name"), p.get("port")): p.get("nodePort")
                             for p in ((old or {}).get("spec") or {}).get("ports") or []}
                for i, p in enumerate(spec.get("ports") or []):
                    np = p.get("nodePort")
                    if not np:
                        np = old_ports.get((p.get("name"), p.get("port")))
                    if not np:
                        np = self._pick_port(used_ports)
                    elif np in used_ports and np != old_ports.get((p.get("name"), p.get("port"))):
                        raise errors.invalid_error("Service", "", svc["metadata"].get("name", ""), [
                            errors.invalid(f"spec.ports[{i}].nodePort", np, "provided port is already allocated")])
                    p["nodePort"] = np
                    used_ports.add(np)
            else:
                for p in spec.get("ports") or []:
                    p.pop("nodePort", None) if not p.get("nodePort") else None

    async def _used(self, exclude: str | None, exclude_ns: str | None) -> tuple[set[str], set[int]]:
        assert self._svc_kind is not None
        page = await self.objects.list(self._svc_kind, None)
        ips: set[str] = set()
        ports: set[int] = set()
        for s in page.items:
            m = s["metadata"]
            if m.get("name") == exclude and m.get("namespace") == exclude_ns:
                continue
            sp = s.get("spec") or {}
            for ip in sp.get("clusterIPs") or [sp.get("clusterIP")]:
                if ip and ip != "None":
                    ips.add(ip)
            for p in sp.get("ports") or []:
                if p.get("nodePort"):
                    ports.add(int(p["nodePort"]))
        return ips, ports

    def kubernetes_service_ip(self) -> str:
        return str(self.service_net.network_address + 1)

    def _pick_ip(self, used: set[str], svc: Obj) -> str:
        m = svc["metadata"]
        if m.get("name") == "kubernetes" and m.get("namespace") == "default":
            return self.kubernetes_service_ip()
        size = self.service_net.num_addresses
        if size < 4:
            raise errors.internal_error("service CIDR too small")
        base = self.service_net.network_address
        for _ in range(64):
            ip = str(base + random.randint(2, min(size - 2, 1 << 20)))
            if ip not in used:
                return ip
        for off in range(2, size - 1):
            ip = str(base + off)
            if ip not in used:
                return ip
        raise errors.internal_error("failed to allocate a serviceIP: range is full")

    def _check_ip(self, want: str, used: set[str]) -> None:
        try:
            addr = ipaddress.ip_address(want)
        except ValueError:
            return  # validation reports the syntax
        if addr not in self.service_net:
            raise errors.invalid_error("Service", "", "", [errors.invalid(
                "spec.clusterIPs", [want],
                f"failed to allocate IP {want}: provided IP is not in the valid range. "
                f"The range of valid IPs is {self.service_net}")])
        if want in used:
            raise errors.invalid_error("Service", "", "", [errors.invalid(
                "spec.clusterIPs", [want], f"failed to allocate IP {want}: provided IP is already allocated")])

    def _pick_port(self, used: set[int]) -> int:
        lo, hi = NODE_PORT_RANGE
        for _ in range(64):
            p = random.randint(lo, hi)
            if p not in used:
                return p
        for p in range(lo, hi + 1):
            if p not in used:
                return p
        raise errors.internal_error("failed to allocate a nodePort: range is full")

    # -- validating -------------------------------------------------------------
    async def validate(self, a: Attributes, obj: Obj | None) -> None:
        k = a.kind
        if k.kind == "Namespace" and k.group == "" and a.operation == "DELETE" and a.name in IMMORTAL_NAMESPACES:
            raise errors.forbidden_error(f'namespaces "{a.name}" is forbidden: this namespace may not be deleted',
                                         "namespaces", "", a.name)
        if k.namespaced and a.operation == "CREATE" and self._ns_kind is not None:
            ns = await self.objects.try_get(self._ns_kind, None, a.namespace)
            if ns is None:
                raise errors.not_found_error("namespaces", "", a.namespace)
            if (ns.get("metadata") or {}).get("deletionTimestamp") or \
                    (ns.get("status") or {}).get("phase") == "Terminating":
                # Events may still be written into a terminating namespace, as in kube.
                if k.resource != "events":
                    res = f"{k.resource}.{k.group}" if k.group else k.resource
                    name = (obj or {}).get("metadata", {}).get("name", "") or a.name
                    raise errors.StatusError(
                        403, "Forbidden",
                        f'{res} "{name}" is forbidden: unable to create new content in namespace '
                        f"{a.namespace} because it is being terminated",
                        details={"name": name, "group": k.group, "kind": k.resource,
                                 "causes": [{"reason": "NamespaceTerminating",
                                             "message": f"namespace {a.namespace} is being terminated",
                                             "field": "metadata.namespace"}]})
