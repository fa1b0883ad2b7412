"""The server side of ``k8py secrets-encrypt``: status, key rotation and re-encryption of the
objects encrypted at rest (k8py.storage.encryption), as k3s's ``secrets-encrypt`` commands.

The commands talk to the running server through its API, at non-resource paths under
``/k8py/v1/secrets-encrypt/`` (``GET status``, ``POST rotate``, ``POST reencrypt``), which
only cluster admins may use (RBAC: non-resource URLs; ``system:masters`` holds them): the server
holds the keys in use, so it is the one that can switch keys and re-write every object safely.

A rotation, in one server (k3s's prepare, rotate and reencrypt in one command):

1. a new key is put first in the generated EncryptionConfiguration (written atomically: a
   temporary file, fsync, rename), and the server switches to it: from here on every write is
   sealed with the new key, and the old keys still read;
2. every object of an encrypted resource that was written with another key (or before
   encryption was on) is re-written with the new one, compare-and-swap on its revision (a write
   that races it has used the new key already), in passes until a pass finds none left;
3. the old keys are dropped from the file, then from the server.

The file on disk always holds every key a stored object may need: a ``kill -9`` at any point
leaves every Secret readable after a restart, and running ``rotate`` (or ``reencrypt``) again
finishes the job. History the store keeps for watches (until compaction) may still hold old
ciphertexts; compaction drops them. On an etcd datastore, which several servers may share, ``rotate`` needs ``--single-server``
(each server reads its own copy of the generated file; k3s syncs its rotation stages through
the datastore, which k8py does not yet). A server started with ``--encryption-provider-config FILE``
has its keys managed by the operator, as kube-apiserver's: ``rotate`` is refused there, and
``reencrypt`` re-writes the objects without changing the file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import orjson
from aiohttp import web

from k8py.api import errors
from k8py.apiserver.context import Ctx
from k8py.apiserver.objects import Objects
from k8py.config import ServerConfig
from k8py.storage.encryption import (
    EncryptedStore,
    StaleValue,
    UnreadableValue,
    load_config,
    new_key,
    write_config_file,
)
from k8py.storage.interface import ConflictError, KeyNotFoundError

__all__ = ["PATH_PREFIX", "SecretsEncryption"]

log = logging.getLogger("k8py.apiserver.secretsencrypt")

PATH_PREFIX = "/k8py/v1/secrets-encrypt/"
PAGE = 500
MAX_PASSES = 10
ENCRYPTING = ("aescbc", "aesgcm", "secretbox")


class SecretsEncryption:
    def __init__(self, objects: Objects, config: ServerConfig) -> None:
        self.objects = objects
        self.config = config
        self._lock = asyncio.Lock()  # one rotation or re-encryption at a time

    @property
    def store(self) -> EncryptedStore | None:
        s = self.objects.store
        return s if isinstance(s, EncryptedStore) else None

    @property
    def generated(self) -> bool:
        return not self.config.encryption_provider_config

    async def handle(self, ctx: Ctx) -> web.Response:
        action = ctx.request.path[len(PATH_PREFIX):].strip("/")
        method = ctx.request.method
        if action == "status" and method in ("GET", "HEAD"):
            body = await self.status()
        elif action == "rotate" and method == "POST":
            body = await self.rotate(single_server=ctx.q("singleServer") == "true")
        elif action == "reencrypt" and method == "POST":
            body = await self.reencrypt()
        elif action in ("status", "rotate", "reencrypt"):
            raise errors.method_not_allowed()
        else:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource", details={})
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    # -- status ------------------------------------------------------------------------------------
    def prefixes(self) -> list[str]:
        """Store prefixes that hold every object of an encrypted resource."""
        store = self.store
        if store is None:
            return []
        out = []
        for group, resource in store.config.overrides:
            if group == "*":
                return ["/registry/"]
            seg = group or "core"
            out.append(f"/registry/{seg}/" if resource == "*" else f"/registry/{seg}/{resource}/")
        # a group's wildcard covers its resources' prefixes: keep the shortest
        out.sort()
        kept: list[str] = []
        for p in out:
            if not kept or not p.startswith(kept[-1]):
                kept.append(p)
        return kept

    async def _scan(self, rewrite: bool) -> dict[str, Any]:
        """Count (and with ``rewrite``, re-write) the objects not written with the active key."""
        store = self.store
        assert store is not None
        counts = {"total": 0, "active": 0, "stale": 0, "rewritten": 0, "conflicts": 0}
        unreadable: list[str] = []
        for prefix in self.prefixes():
            start: str | None = None
            while True:
                res = await store.list(prefix, start_key=start, limit=PAGE)
                for kv in res.kvs:
                    if store.chain(kv.key) is None:
                        continue
                    counts["total"] += 1
                    if kv.__class__ is UnreadableValue:
                        unreadable.append(f"{kv.key}: {getattr(kv, 'reason', '')}")
                    elif kv.__class__ is StaleValue:
                        counts["stale"] += 1
                        if rewrite:
                            try:
                                await store.update(kv.key, kv.value, kv.mod_revision)
                                counts["rewritten"] += 1
                            except ConflictError:
                                counts["conflicts"] += 1  # written meanwhile; the next pass looks again
                            except KeyNotFoundError:
                                pass
                    else:
                        counts["active"] += 1
                if not res.more or not res.kvs:
                    break
                start = res.kvs[-1].key + "\x00"
        return {**counts, "unreadable": unreadable}

    async def status(self) -> dict[str, Any]:
        store = self.store
        if store is None:
            return {"enabled": False, "file": "", "generated": self.generated}
        scan = await self._scan(rewrite=False)
        return {"enabled": True, "file": store.config.file, "generated": self.generated,
                "resources": store.config.describe(), "objects": scan}

    # -- re-encryption and rotation ------------------------------------------------------------------
    async def _rewrite_all(self) -> dict[str, Any]:
        total_rewritten = 0
        scan: dict[str, Any] = {}
        for _ in range(MAX_PASSES):
            scan = await self._scan(rewrite=True)
            total_rewritten += scan["rewritten"]
            if not scan["rewritten"] and not scan["conflicts"]:
                break
        else:
            scan = await self._scan(rewrite=False)
        return {**scan, "rewritten": total_rewritten}

    def _require_store(self) -> EncryptedStore:
        store = self.store
        if store is None:
            raise errors.bad_request("encryption at rest is off: the server runs without an EncryptionConfiguration")
        return store

    def _switch(self, document: dict[str, Any]) -> None:
        """Write the generated config and use it (file first: it must always hold every key in use)."""
        store = self._require_store()
        path = store.config.file
        write_config_file(path, document)
        store.reconfigure(load_config(path))

    def _retire_document(self, document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The document with only the writing key of each entry (and identity) left."""
        retired: list[str] = []
        doc = orjson.loads(orjson.dumps(document))
        for entry in doc.get("resources") or []:
            providers = entry.get("providers") or []
            if not providers or not any(k in providers[0] for k in ENCRYPTING):
                continue  # identity writes: nothing is encrypted, nothing to retire
            kind = next(k for k in ENCRYPTING if k in providers[0])
            keys = providers[0][kind]["keys"]
            retired.extend(f"{kind}:{k['name']}" for k in keys[1:])
            providers[0][kind]["keys"] = keys[:1]
            for p in providers[1:]:
                for k in ENCRYPTING:
                    if k in p:
                        retired.extend(f"{k}:{key['name']}" for key in p[k].get("keys") or [])
            entry["providers"] = [providers[0], *[p for p in providers[1:] if "identity" in p]]
        return doc, retired

    async def reencrypt(self) -> dict[str, Any]:
        """Re-write every object not written with the active key; on the generated config, then
        drop the keys nothing needs any more."""
        store = self._require_store()
        async with self._lock:
            result = await self._rewrite_all()
            retired: list[str] = []
            if self.generated and not result["unreadable"] and not result["stale"]:
                doc, retired = self._retire_document(store.config.document)
                if retired:
                    self._switch(doc)
            log.info("secrets-encrypt reencrypt: %d objects re-written, %d unreadable, retired %s",
                     result["rewritten"], len(result["unreadable"]), retired or "no key")
            return {**result, "retired": retired}

    async def rotate(self, single_server: bool = False) -> dict[str, Any]:
        store = self._require_store()
        if self.config.datastore_endpoint.startswith(("http://", "https://")) and not single_server:
            # Servers sharing an etcd each read their own copy of the generated file: a rotation on
            # one would leave the others unable to read what it writes (k3s syncs its stages
            # through the datastore; k8py does not yet).
            raise errors.bad_request(
                "the server stores its objects in etcd, which other servers may share: each of them reads its own "
                "copy of the encryption config, so a rotation here would leave them unable to read the Secrets "
                "written with the new key. With one server only, run `k8py secrets-encrypt rotate --single-server`; "
                "with several, use your own --encryption-provider-config on every server and kube's order (new key "
                "second everywhere, then first everywhere, then `reencrypt`, then remove the old one)")
        if not self.generated:
            raise errors.bad_request(
                f"the server runs with --encryption-provider-config {store.config.file}: its keys are yours to "
                "rotate, as kube-apiserver's (add the new key first in the file, restart, run `k8py "
                "secrets-encrypt reencrypt`, then remove the old key)")
        async with self._lock:
            doc = orjson.loads(orjson.dumps(store.config.document))
            added: list[str] = []
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
            for entry in doc.get("resources") or []:
                providers = entry.get("providers") or []
                if not providers or not any(k in providers[0] for k in ENCRYPTING):
                    continue
                kind = next(k for k in ENCRYPTING if k in providers[0])
                keys = providers[0][kind]["keys"]
                name = f"{kind}key-{stamp}"
                while any(k["name"] == name for k in keys):
                    name += "x"
                keys.insert(0, {"name": name, "secret": new_key()})
                added.append(f"{kind}:{name}")
            if not added:
                raise errors.bad_request("no resource is encrypted (every entry's first provider is identity): "
                                         "nothing to rotate")
            # 1: the new key writes from now on; the old ones still read
            self._switch(doc)
            log.info("secrets-encrypt rotate: new key %s is active; re-writing objects", ", ".join(added))
            # 2: every object re-written with it
            result = await self._rewrite_all()
            retired: list[str] = []
            # 3: the old keys dropped, only when nothing needs them any more
            if not result["unreadable"] and not result["stale"]:
                doc, retired = self._retire_document(store.config.document)
                if retired:
                    self._switch(doc)
            log.info("secrets-encrypt rotate: %d objects re-written, retired %s", result["rewritten"],
                     retired or "no key")
            return {**result, "added": added, "retired": retired}
