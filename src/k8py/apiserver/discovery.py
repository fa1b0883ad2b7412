"""Discovery documents: legacy (/api, /apis, per group-version) and aggregated (apidiscovery.k8s.io/v2)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from k8py.api.registry import KindInfo, Registry

if TYPE_CHECKING:
    from k8py.apiserver.aggregator_discovery import RemoteVersion

Obj = dict[str, Any]
# The aggregated group-versions (apiserver/aggregator_discovery.py) in kube's order, with their
# APIServices: listed after k8py's own groups (whose kube priorities, 15000 and more, are above
# what extension servers register).
Remote = Sequence[tuple[Obj, "RemoteVersion"]]

# Subresource verbs and response kinds as kube publishes them.
_SUB_VERBS: dict[str, tuple[str, ...]] = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "binding": ("create",),
    "eviction": ("create",),
    "log": ("get",),
    "exec": ("create", "get"),
    "attach": ("create", "get"),
    "portforward": ("create", "get"),
    "proxy": ("create", "delete", "get", "patch", "update"),
    "finalize": ("update",),
    "ephemeralcontainers": ("get", "patch", "update"),
    "resize": ("get", "patch", "update"),
    "token": ("create",),
}


def _sub_kind(k: KindInfo, sub: str) -> Obj:
    if sub == "scale":
        return {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    if sub in ("binding",):
        return {"group": "", "version": "v1", "kind": "Binding"}
    if sub == "eviction":
        return {"group": "policy", "version": "v1", "kind": "Eviction"}
    if sub in ("log", "exec", "attach", "portforward", "proxy"):
        return {"group": "", "version": "v1", "kind": {"log": "Pod", "exec": "PodExecOptions",
                                                        "attach": "PodAttachOptions",
                                                        "portforward": "PodPortForwardOptions",
                                                        "proxy": "PodProxyOptions" if k.kind == "Pod" else
                                                        f"{k.kind}ProxyOptions"}[sub]}
    if sub == "token":
        return {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}
    return {"group": k.group, "version": k.version, "kind": k.kind}


def api_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _all_groups(registry: Registry, remote: Remote) -> dict[str, list[str]]:
    """group -> versions (preferred first): k8py's own, then the aggregated ones (kube's
    ``convertToDiscoveryAPIGroup``: the first APIService of a group is its preferred version)."""
    groups = {g: list(vs) for g, vs in registry.groups().items()}
    for _, rv in remote:
        vs = groups.setdefault(rv.group, [])
        if rv.version not in vs:
            vs.append(rv.version)
    return groups


def api_group_list(registry: Registry, remote: Remote = ()) -> Obj:
    groups = []
    for g, versions in _all_groups(registry, remote).items():
        if g == "":
            continue
        vs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
        groups.append({"name": g, "versions": vs, "preferredVersion": vs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str, remote: Remote = ()) -> Obj | None:
    versions = _all_groups(registry, remote).get(group)
    if not versions or group == "":
        return None
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs, "preferredVersion": vs[0]}


def _storage_hash(k: KindInfo) -> str:
    # kube publishes a hash of the storage version so clients can tell versions share storage
    h = hashlib.sha256(f"{k.group}/{k.storage_version}/{k.kind}".encode()).digest()
    import base64

    return base64.b64encode(h[:8]).decode()


def api_resource_list(registry: Registry, group: str, version: str) -> Obj | None:
    kinds = registry.kinds_in(group, version)
    if not kinds:
        return None
    resources: list[Obj] = []
    for k in sorted(kinds, key=lambda k: k.resource):
        r: Obj = {"name": k.resource, "singularName": k.singular, "namespaced": k.namespaced, "kind": k.kind,
                  "verbs": sorted(k.verbs)}
        if k.short_names:
            r["shortNames"] = list(k.short_names)
        if k.categories:
            r["categories"] = list(k.categories)
        r["storageVersionHash"] = _storage_hash(k)
        resources.append(r)
        for sub in k.subresources:
            sk = _sub_kind(k, sub)
            sr: Obj = {"name": f"{k.resource}/{sub}", "singularName": "", "namespaced": k.namespaced,
                       "kind": sk["kind"], "verbs": list(_SUB_VERBS.get(sub, ("get",)))}
            if sk["group"] != k.group or sk["version"] != k.version:
                sr["group"], sr["version"] = sk["group"], sk["version"]
            resources.append(sr)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _discovery_resource(k: KindInfo) -> Obj:
    r: Obj = {
        "resource": k.resource,
        "responseKind": {"group": k.group, "version": k.version, "kind": k.kind},
        "scope": "Namespaced" if k.namespaced else "Cluster",
        "singularResource": k.singular,
        "verbs": sorted(k.verbs),
    }
    if k.short_names:
        r["shortNames"] = list(k.short_names)
    if k.categories:
        r["categories"] = list(k.categories)
    subs = []
    for sub in k.subresources:
        subs.append({"subresource": sub, "responseKind": _sub_kind(k, sub),
                     "verbs": list(_SUB_VERBS.get(sub, ("get",)))})
    if subs:
        r["subresources"] = subs
    return r


def aggregated(registry: Registry, legacy: bool, version: str = "v2", remote: Remote = ()) -> Obj:
    items = []
    fetched = {(rv.group, rv.version): rv for _, rv in remote}
    for g, versions in _all_groups(registry, remote).items():
        if legacy != (g == ""):
            continue
        vs = []
        for v in versions:
            rv = fetched.get((g, v))
            if rv is not None:  # an aggregated group-version: what its backend last said
                vs.append({"version": v, "resources": rv.resources, "freshness": "Stale" if rv.stale else "Current"})
                continue
            kinds = sorted(registry.kinds_in(g, v), key=lambda k: k.resource)
            vs.append({"version": v, "resources": [_discovery_resource(k) for k in kinds], "freshness": "Current"})
        items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": vs})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {}, "items": items}


class DiscoveryCache:
    """Encoded discovery documents with ETags; rebuilt when the registry changes."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._cache: dict[tuple[Any, ...], tuple[bytes, str]] = {}

    def invalidate(self) -> None:
        self._cache.clear()

    def get(self, key: tuple[Any, ...], build: Any) -> tuple[bytes, str] | None:
        hit = self._cache.get(key)
        if hit is None:
            doc = build()
            if doc is None:
                return None
            body = orjson.dumps(doc)
            hit = (body, '"' + hashlib.sha256(body).hexdigest()[:32].upper() + '"')
            self._cache[key] = hit
        return hit
