"""Discovery of the aggregated groups (kube-aggregator's ``discoveryManager``,
``handler_discovery.go``): the resources of every remote APIService, fetched from its backend and
kept fresh, for ``apiserver/discovery.py`` to merge into ``/apis``, ``/apis/<group>`` and the
aggregated discovery document (``apidiscovery.k8s.io/v2``, what kubectl reads).

Each APIService backed by a Service is fetched when it appears or changes (its ``Available``
condition coming true is such a change) and again every minute, as kube's; a failure is retried
sooner, with a doubling delay (1 s to 30 s). The fetch asks the backend, as
``system:kube-aggregator`` and within 5 s, for its aggregated discovery (``GET /apis`` with the
``apidiscovery.k8s.io/v2`` type) and, when it serves none, for ``/apis/<group>/<version>``
(``APIResourceList``), converted as kube's ``ConvertGroupVersionIntoToDiscovery`` (subresources
under their resource). An APIService
that is not available, or whose backend does not answer, stays listed with what was last fetched
(nothing, the first time) and ``freshness: Stale``; kubectl then reports
``stale GroupVersion discovery: <group>/<version>`` for it alone, as against kube.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from k8py.api import aggregator as agg

if TYPE_CHECKING:
    from k8py.apiserver.aggregator import Aggregator

__all__ = ["RemoteDiscovery", "RemoteVersion", "to_discovery_resources"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

ACCEPT_V2 = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
             "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
FETCH_TIMEOUT = 5.0
REFRESH_SECONDS = 60.0
RETRY_MIN, RETRY_MAX = 1.0, 30.0


@dataclass(slots=True)
class RemoteVersion:
    """One remote group-version as discovery lists it."""

    group: str
    version: str
    resources: list[Obj] = field(default_factory=list)  # APIResourceDiscovery entries, as last fetched
    stale: bool = True
    # the backend's OpenAPI v3 document of this group-version and its hash (kube's openapiv3
    # aggregator), None while it has not been fetched or the backend serves none
    openapi: tuple[bytes, str] | None = None


def to_discovery_resources(resources: list[Obj]) -> list[Obj]:
    """kube's ``ConvertGroupVersionIntoToDiscovery``: an ``APIResourceList``'s resources as
    ``APIResourceDiscovery`` entries, each subresource (``flunders/status``) under its resource
    (a subresource without one gets an empty parent, as kube makes it)."""
    out: list[Obj] = []
    parents: dict[str, Obj] = {}
    for r in resources:
        name = str(r.get("name") or "")
        if not name or "/" in name:
            continue
        d: Obj = {"resource": name,
                  "responseKind": {"group": r.get("group", ""), "version": r.get("version", ""),
                                   "kind": r.get("kind", "")},
                  "scope": "Namespaced" if r.get("namespaced") else "Cluster",
                  "singularResource": r.get("singularName", ""),
                  "verbs": list(r.get("verbs") or [])}
        if r.get("shortNames"):
            d["shortNames"] = list(r["shortNames"])
        if r.get("categories"):
            d["categories"] = list(r["categories"])
        out.append(d)
        parents[name] = d
    for r in resources:
        parent_name, slash, sub = str(r.get("name") or "").partition("/")
        if not slash:
            continue
        parent = parents.get(parent_name)
        if parent is None:
            parent = {"resource": parent_name, "responseKind": {"group": "", "version": "", "kind": ""},
                      "scope": "Namespaced" if r.get("namespaced") else "Cluster", "verbs": []}
            out.append(parent)
            parents[parent_name] = parent
        kind = {"group": r.get("group", ""), "version": r.get("version", ""), "kind": r.get("kind", "")} \
            if r.get("kind") else {"group": "", "version": "", "kind": ""}
        parent.setdefault("subresources", []).append(
            {"subresource": sub, "responseKind": kind, "verbs": list(r.get("verbs") or [])})
    return out


def _version_resources(doc: Any, group: str, version: str) -> list[Obj]:
    """The resources of ``group/version`` in a backend's ``APIGroupDiscoveryList``; none when it
    does not list that version (kube lists the APIService's version empty then)."""
    for g in doc.get("items") or []:
        if (g.get("metadata") or {}).get("name") != group:
            continue
        for v in g.get("versions") or []:
            if v.get("version") == version:
                return [r for r in v.get("resources") or [] if isinstance(r, dict)]
    return []


class RemoteDiscovery:
    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator
        self.results: dict[str, RemoteVersion] = {}  # APIService name -> what discovery lists
        self._due: dict[str, float] = {}  # APIService name -> when to fetch it next (monotonic)
        self._retry: dict[str, float] = {}
        self._wake = asyncio.Event()

    def apiservice_changed(self, name: str, old: Obj | None, new: Obj | None) -> None:
        """From the APIService mirror: fetch a new or changed remote APIService now; forget a
        deleted (or now local) one."""
        if new is None or agg.service_ref(new) is None:
            if self.results.pop(name, None) is not None:
                self.aggregator.on_change()
            self._due.pop(name, None)
            self._retry.pop(name, None)
            return
        group, version = agg.group_version(new)
        cur = self.results.get(name)
        if cur is None or (cur.group, cur.version) != (group, version):
            self.results[name] = RemoteVersion(group, version)
        if old is None or old.get("spec") != new.get("spec") or agg.is_available(old) != agg.is_available(new):
            self._due[name] = 0.0
            self._retry.pop(name, None)
            self._wake.set()

    def snapshot(self) -> list[tuple[Obj, RemoteVersion]]:
        """The remote group-versions in kube's order (:func:`agg.sorted_by_group_and_version`),
        with their APIServices."""
        out = []
        for group in agg.sorted_by_group_and_version(self.aggregator.remote.values()):
            for a in group:
                rv = self.results.get(a["metadata"]["name"])
                if rv is not None:
                    out.append((a, rv))
        return out

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            due = [n for n, t in self._due.items() if t <= now]
            for name in due:
                await self.sync(name)
            nxt = min(self._due.values(), default=now + REFRESH_SECONDS)
            self._wake.clear()
            try:
                async with asyncio.timeout(max(0.0, nxt - time.monotonic())):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def sync(self, name: str) -> None:
        """Fetch one APIService's group-version and store the result; the discovery documents
        are rebuilt when what they list changed."""
        a = self.aggregator.apiservices.get(name)
        rv = self.results.get(name)
        if a is None or rv is None:
            self._due.pop(name, None)
            return
        resources, err = await self.fetch(a)
        before = (rv.resources, rv.stale)
        if err is None and resources is not None:
            rv.resources, rv.stale = resources, False
            openapi = await self.fetch_openapi(a)
            if openapi is not None and openapi != rv.openapi:
                rv.openapi = openapi
                self.aggregator.on_change()
            self._due[name] = time.monotonic() + REFRESH_SECONDS
            self._retry.pop(name, None)
        else:
            rv.stale = True  # what was fetched before stays listed, marked stale
            delay = min(RETRY_MAX, self._retry.get(name, RETRY_MIN / 2) * 2)
            self._retry[name] = delay
            self._due[name] = time.monotonic() + delay
            log.info("aggregator: discovery of %s failed (again in %.0fs): %s", name, delay, err)
        if (rv.resources, rv.stale) != before:
            self.aggregator.on_change()

    async def fetch(self, apiservice: Obj) -> tuple[list[Obj] | None, str | None]:
        """(resources, None), or (None, why not)."""
        if not agg.is_available(apiservice):
            return None, "service unavailable"
        group, version = agg.group_version(apiservice)
        try:
            # the backend's aggregated discovery first (kube's discovery manager); a backend that
            # does not serve it (404, 406, another type) is asked for the group-version's list
            status, ctype, body = await self.aggregator.get(apiservice, "/apis", FETCH_TIMEOUT, accept=ACCEPT_V2)
            if status == 200 and "apidiscovery.k8s.io" in ctype:
                return _version_resources(orjson.loads(body), group, version), None
            status, _, body = await self.aggregator.get(apiservice, f"/apis/{group}/{version}", FETCH_TIMEOUT)
        except agg.ResolveError as e:
            return None, str(e)
        except TimeoutError:
            return None, "request timed out"
        except (aiohttp.ClientError, OSError, ValueError, AttributeError, TypeError) as e:
            return None, str(e) or type(e).__name__
        if status != 200:
            return None, f"failed to download discovery for /apis/{group}/{version}: ResponseCode: {status}"
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            return None, f"not an APIResourceList: {e}"
        if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
            return None, "not an APIResourceList"
        return to_discovery_resources([r for r in doc["resources"] if isinstance(r, dict)]), None

    async def fetch_openapi(self, apiservice: Obj) -> tuple[bytes, str] | None:
        """The backend's ``/openapi/v3/apis/<group>/<version>`` (found through its ``/openapi/v3``
        index, as kube's openapiv3 aggregator), with its SHA-512; None when it serves none or the
        fetch fails (what was fetched before is kept)."""
        group, version = agg.group_version(apiservice)
        path = f"apis/{group}/{version}"
        try:
            status, _, body = await self.aggregator.get(apiservice, "/openapi/v3", FETCH_TIMEOUT)
            if status != 200:
                return None
            url = ((orjson.loads(body).get("paths") or {}).get(path) or {}).get("serverRelativeURL")
            if not isinstance(url, str) or not url.startswith("/"):
                return None
            status, _, doc = await self.aggregator.get(apiservice, url, FETCH_TIMEOUT)
        except (agg.ResolveError, TimeoutError, aiohttp.ClientError, OSError, ValueError, AttributeError) as e:
            log.info("aggregator: OpenAPI v3 of %s not fetched: %s", path, e or type(e).__name__)
            return None
        if status != 200:
            return None
        return doc, hashlib.sha512(doc).hexdigest().upper()
