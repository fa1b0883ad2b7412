"""The CustomResourceDefinitions at work in the API server, as kube's apiextensions-apiserver
runs them in-process: the naming controller (``status.acceptedNames``, ``NamesAccepted``), the
establishing controller (``Established``), the finalizer controller (a deleted CRD's custom
resources deleted, then the ``customresourcecleanup`` finalizer removed), and the serving of
the custom resources: their kinds in the registry (so routing and discovery see them) and
their strategies, while their CRD is Established.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from k8py.api import crd as crdschema
from k8py.api import errors
from k8py.api.registry import KindInfo, Registry
from k8py.apiserver.crd import CustomResourceStrategy, set_condition
from k8py.apiserver.objects import Objects

if TYPE_CHECKING:
    from k8py.apiserver.rest import ResourceAPI

log = logging.getLogger("k8py.apiserver.crd")

Obj = dict[str, Any]
# How soon a CRD whose custom resources are still going (their own finalizers) is looked at again.
CLEANUP_RETRY_SECONDS = 1.0
SYNC_TIMEOUT = 30.0


def accepted_names(crd: Obj, others: list[Obj]) -> tuple[Obj, str, str, str]:
    """kube's naming controller (``calculateNamesAndConditions``): the names this CRD may use
    beside the other CRDs of its group, and the NamesAccepted condition (status, reason, message)."""
    spec = crd.get("spec") or {}
    requested: Obj = dict(spec.get("names") or {})
    accepted: Obj = dict((crd.get("status") or {}).get("acceptedNames") or {})
    group = spec.get("group")
    used_resources: set[str] = set()
    used_kinds: set[str] = set()
    for o in others:
        if (o.get("spec") or {}).get("group") != group:
            continue
        names = (o.get("status") or {}).get("acceptedNames") or {}
        used_resources.update(str(n) for n in (names.get("plural"), names.get("singular")) if n)
        used_resources.update(str(n) for n in names.get("shortNames") or [])
        used_kinds.update(str(n) for n in (names.get("kind"), names.get("listKind")) if n)
    new = dict(accepted)
    status, reason, message = "Unknown", "", ""

    def conflict(why: str, name: str) -> None:
        nonlocal status, reason, message
        status, reason, message = "False", why, f'"{name}" is already in use'

    plural, singular = requested.get("plural"), requested.get("singular")
    if plural != accepted.get("plural") and plural in used_resources:
        conflict("PluralConflict", str(plural))
    else:
        new["plural"] = plural
    if singular != accepted.get("singular") and singular in used_resources:
        conflict("SingularConflict", str(singular))
    elif singular:
        new["singular"] = singular
    shorts = requested.get("shortNames") or []
    clash = [s for s in shorts if s not in (accepted.get("shortNames") or []) and s in used_resources]
    if clash:
        conflict("ShortNamesConflict", str(clash[0]))
    elif shorts or "shortNames" in new:
        new["shortNames"] = list(shorts)
        if not shorts:
            new.pop("shortNames")
    kind, list_kind = requested.get("kind"), requested.get("listKind")
    if kind != accepted.get("kind") and kind in used_kinds:
        conflict("KindConflict", str(kind))
    else:
        new["kind"] = kind
    if list_kind != accepted.get("listKind") and list_kind in used_kinds:
        conflict("ListKindConflict", str(list_kind))
    elif list_kind:
        new["listKind"] = list_kind
    if requested.get("categories"):
        new["categories"] = list(requested["categories"])
    else:
        new.pop("categories", None)
    if status == "Unknown":
        status, reason, message = "True", "NoConflicts", "no conflicts found"
    return new, status, reason, message


class CRDController:
    """Follows the CRDs (``Objects.mirror``) and keeps their status, their custom resources'
    kinds and strategies, and their cleanup current."""

    def __init__(self, api: ResourceAPI, objects: Objects, registry: Registry,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.api = api
        self.objects = objects
        self.registry = registry
        self.on_change = on_change  # the discovery documents are built again
        kind = registry.by_resource(crdschema.GROUP, "v1", "customresourcedefinitions")
        assert kind is not None
        self.kind: KindInfo = kind
        self.crds: dict[str, Obj] = {}  # by name
        self.served: dict[str, list[KindInfo]] = {}  # CRD name -> its registered kinds
        self._dirty = asyncio.Event()
        self._synced = asyncio.Event()

    # -- the mirror ----------------------------------------------------------------------------
    def _reset(self) -> None:
        self.crds.clear()

    def _apply(self, key: str, value: bytes | None) -> None:
        name = key.rsplit("/", 1)[-1]
        if value is None:
            self.crds.pop(name, None)
        else:
            try:
                self.crds[name] = orjson.loads(value)
            except orjson.JSONDecodeError:
                log.warning("CRD %s: stored value is not JSON; skipped", name)
                return
        self._dirty.set()

    async def start(self) -> list[asyncio.Task[Any]]:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self.objects.mirror(self.kind.key_prefix(None), reset=self._reset,
                                                      apply=self._apply, synced=self._synced.set,
                                                      what="customresourcedefinitions"), name="crd-mirror")]
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                await self._synced.wait()
        except TimeoutError:
            log.error("CRDs not listed in %.0fs; custom resources are served once they are", SYNC_TIMEOUT)
        self.serve()
        tasks.append(loop.create_task(self._run(), name="crd-controller"))
        return tasks

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            retry = False
            for name in list(self.crds):
                crd = self.crds.get(name)
                if crd is None:
                    continue
                try:
                    retry |= await self.sync(crd)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - one CRD's failure must not stop the others
                    log.warning("CRD %s: %s", name, e)
                    retry = True
            self.serve()
            if retry:
                await asyncio.sleep(CLEANUP_RETRY_SECONDS)
                self._dirty.set()

    # -- serving -------------------------------------------------------------------------------
    def serve(self) -> None:
        """The registry and strategies as the Established CRDs say (kube's
        ``crdHandler``/discovery controller)."""
        changed = False
        for name in list(self.served):
            if name not in self.crds or not crdschema.is_established(self.crds[name]):
                changed |= self._unserve(name)
        for name, crd in self.crds.items():
            if crdschema.is_established(crd):
                changed |= self._serve(name, crd)
        changed |= self._publish_schemas()
        if changed:
            self.on_change()

    def _publish_schemas(self) -> bool:
        """The served versions' schemas for /openapi/v3 (``kubectl explain``)."""
        schemas: dict[tuple[str, str, str], dict[str, object]] = {}
        for name, kinds in self.served.items():
            crd = self.crds.get(name)
            if crd is None:
                continue
            for k in kinds:
                schemas[(k.group, k.version, k.kind)] = crdschema.schema_of(crd, k.version)
        if schemas == self.registry.custom_schemas:
            return False
        self.registry.custom_schemas = schemas
        self.registry.custom_schemas_version += 1
        return True

    def _unserve(self, name: str) -> bool:
        kinds = self.served.pop(name, [])
        for k in kinds:
            if self.registry.by_resource(k.group, k.version, k.resource) == k:
                self.registry.remove(k)
        if kinds:
            self.api.strategies.unregister(kinds[0].group, kinds[0].kind)
        return bool(kinds)

    def _serve(self, name: str, crd: Obj) -> bool:
        kinds = crdschema.kinds_for(crd)
        old = self.served.get(name, [])
        # the strategy always follows the CRD (schemas, subresources, a deletion begun)
        if old and (old[0].group, old[0].kind) != ((kinds[0].group, kinds[0].kind) if kinds else None):
            self.api.strategies.unregister(old[0].group, old[0].kind)
        if kinds:
            self.api.strategies.register(CustomResourceStrategy(copy.deepcopy(crd)))
        if kinds == old:
            return False
        for k in old:
            if self.registry.by_resource(k.group, k.version, k.resource) == k:
                self.registry.remove(k)
        for k in kinds:
            if self.registry.by_resource(k.group, k.version, k.resource) is None:
                self.registry.add(k)
        self.served[name] = kinds
        return True

    # -- the controllers -----------------------------------------------------------------------
    async def sync(self, crd: Obj) -> bool:
        """One CRD: its names and conditions, or its cleanup; True when it wants another look soon."""
        meta = crd.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            if crdschema.CLEANUP_FINALIZER in (meta.get("finalizers") or []):
                return await self.cleanup(crd)
            return False
        others = [c for n, c in self.crds.items() if n != meta.get("name")]
        names, status, reason, message = accepted_names(crd, others)
        want = copy.deepcopy(crd)
        want["status"]["acceptedNames"] = names
        set_condition(want, "NamesAccepted", status, reason, message)
        established = crdschema.condition(crd, "Established")
        if status == "True":
            # kube's establishing controller: names accepted -> Established (served from now)
            set_condition(want, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted")
        elif established is None or established.get("status") != "True":
            set_condition(want, "Established", "False", "NotAccepted", "not all names are accepted")
        if want["status"] == crd.get("status"):
            return False
        if crdschema.is_established(want):
            self._serve(str(meta.get("name")), want)  # served before a client can see Established
            self.on_change()
        await self._write_status(crd, want["status"])
        return False

    async def _write_status(self, crd: Obj, status: Obj) -> Obj:
        meta = crd["metadata"]

        async def update(cur: Obj) -> Obj | None:
            if cur["metadata"].get("uid") != meta.get("uid"):
                return None
            new = copy.deepcopy(cur)
            new["status"] = {**(cur.get("status") or {}), **status}
            return new if new != cur else None

        _, new = await self.objects.guaranteed_update(self.kind, None, meta["name"], update)
        return new  # type: ignore[no-any-return]

    async def cleanup(self, crd: Obj) -> bool:
        """kube's finalizer controller: every custom resource deleted (their own finalizers
        honoured), then the CRD's cleanup finalizer removed and the CRD gone."""
        name = crd["metadata"]["name"]
        kinds = self.served.get(name) or crdschema.kinds_for(crd)
        remaining = 0
        if kinds:
            # through the storage version, as kube's finalizer: no conversion (webhook) needed
            kind = dataclasses.replace(kinds[0], version=kinds[0].storage_version or kinds[0].version)
            set_status = copy.deepcopy(crd)
            if set_condition(set_status, "Terminating", "True", "InstanceDeletionInProgress",
                             "CustomResource deletion is in progress"):
                await self._write_status(crd, set_status["status"])
            page = await self.objects.list(kind, None)
            for obj in page.items:
                m = obj["metadata"]
                remaining += 1
                if m.get("deletionTimestamp"):
                    continue
                with contextlib.suppress(errors.StatusError):
                    await self.api.delete(None, kind, m.get("namespace") if kind.namespaced else None,  # type: ignore[arg-type]
                                          m["name"], {})
            if remaining:
                page = await self.objects.list(kind, None)
                remaining = len(page.items)
        if remaining:
            return True

        async def drop_finalizer(cur: Obj) -> Obj | None:
            fins = list(cur["metadata"].get("finalizers") or [])
            if crdschema.CLEANUP_FINALIZER not in fins:
                return None
            new = copy.deepcopy(cur)
            new["metadata"]["finalizers"] = [f for f in fins if f != crdschema.CLEANUP_FINALIZER]
            set_condition(new, "Terminating", "False", "InstanceDeletionCompleted",
                          "removed all instances")
            return new

        _, new = await self.objects.guaranteed_update(self.kind, None, name, drop_finalizer)
        await self.api.after_update(self.kind, new)
        return False
