"""Objects over the key-value store: encoding, resourceVersions, list paging, guaranteed updates.

This is kube-apiserver's ``storage.Interface`` + ``cacher``-free generic registry
layer: it knows keys, revisions and versions, nothing about HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from k8py.api import errors
from k8py.api.registry import KindInfo
from k8py.storage.encryption import EncryptedStore, EncryptionConfig, StaleValue, UnreadableValue
from k8py.storage.interface import (
    CompactedError,
    ConflictError,
    DeleteResult,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    Store,
    StoreUnavailableError,
    Watch,
)

Obj = dict[str, Any]

log = logging.getLogger("k8py.apiserver.objects")

# How long a mirror (Objects.mirror) waits before listing again after its watch failed.
MIRROR_RETRY_SECONDS = 1.0

# How long a list/get with resourceVersion newer than ours waits before 504 (kube: 3 s).
FRESHNESS_WAIT_SECONDS = 3.0
# etcd's default --max-request-bytes: a larger value is refused by the store, whichever
# backend holds it, with etcd's words (kube-apiserver passes them on as they are).
MAX_VALUE_BYTES = 1536 * 1024


def check_size(data: bytes) -> bytes:
    if len(data) > MAX_VALUE_BYTES:
        raise errors.StatusError(500, "", "etcdserver: request is too large")
    return data


def convert_to(obj: Obj, kind: KindInfo) -> Obj:
    """Convert a decoded stored object to the served version of ``kind``."""
    if kind.version == kind.storage_version and obj.get("apiVersion") == kind.api_version:
        return obj
    if kind.custom:
        if obj.get("apiVersion") == kind.api_version:
            return obj
        if kind.conversion_webhook:
            raise _needs_webhook(kind)
        return {**obj, "apiVersion": kind.api_version}  # conversion strategy None: only apiVersion differs
    from k8py.api import conversion

    return conversion.convert(obj, kind.api_version)


def storage_api_version(kind: KindInfo) -> str:
    return f"{kind.group}/{kind.storage_version}" if kind.group else kind.storage_version


def to_storage(obj: Obj, kind: KindInfo) -> Obj:
    api_version = storage_api_version(kind)
    if obj.get("apiVersion") == api_version:
        return obj
    if kind.custom:
        if kind.conversion_webhook:
            raise _needs_webhook(kind)
        return {**obj, "apiVersion": api_version}
    from k8py.api import conversion

    return conversion.convert(obj, api_version)


def _needs_webhook(kind: KindInfo) -> errors.StatusError:
    # The synchronous converters cannot call a webhook: a caller that needs one must go through
    # Objects.read / Objects.to_version (which await it); this is the guard that no path forgets.
    return errors.internal_error(f"{kind.resource}.{kind.group}: converting to another version needs the CRD's "
                                 "conversion webhook, which this path cannot call")


class Converter(Protocol):
    """Converts custom resources with their CRD's conversion webhook
    (:class:`k8py.apiserver.conversionwebhook.ConversionWebhooks`)."""

    async def convert(self, kind: KindInfo, objs: list[Obj], desired: str) -> list[Obj]:
        ...

    async def close(self) -> None:
        ...


def unreadable_error(kv: KeyValue) -> errors.StatusError:
    """kube's answer for an object whose stored value cannot be decrypted (a corrupt object)."""
    reason = kv.reason if isinstance(kv, UnreadableValue) else "the stored value is encrypted"
    return errors.internal_error(f"StorageError: corrupt object, Code: 7, Key: {kv.key}, ResourceVersion: 0, "
                                 f"AdditionalErrorMsg: data from the storage is not transformable revision="
                                 f"{kv.mod_revision}: {reason}")


def unreadable_note(kind: KindInfo, kv: KeyValue) -> str:
    """The per-object report of a LIST that left ``kv`` out."""
    where = kv.key[len(kind.key_prefix(None)):].split("/")
    name = f'"{where[-1]}" in namespace "{where[0]}"' if len(where) == 2 else f'"{where[-1]}"'
    reason = kv.reason if isinstance(kv, UnreadableValue) else "the stored value is encrypted"
    return (f"{kind.resource} {name} is left out of this list: data from the storage is not "
            f"transformable: {reason}")


def decode_stored(kv: KeyValue) -> Obj:
    """The object as stored (in the version it was written in), with its resourceVersion."""
    if kv.__class__ is UnreadableValue:
        raise unreadable_error(kv)
    obj: Obj = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def decode(kv: KeyValue, kind: KindInfo) -> Obj:
    return convert_to(decode_stored(kv), kind)


def encode(obj: Obj, kind: KindInfo) -> bytes:
    """Stored form: apiVersion, kind and metadata (without resourceVersion) first, so that
    lists can splice resourceVersions into stored bytes (:func:`splice_rv`)."""
    stored = to_storage(obj, kind)
    meta = stored.get("metadata") or {}
    if "resourceVersion" in meta:
        meta = {k: v for k, v in meta.items() if k != "resourceVersion"}
    head = {"apiVersion": stored.get("apiVersion"), "kind": stored.get("kind"), "metadata": meta}
    return orjson.dumps(head | {k: v for k, v in stored.items() if k not in head})


_META_OPEN = b'"metadata":{'


def splice_rv(kv: KeyValue) -> bytes | None:
    """The stored JSON with ``metadata.resourceVersion`` added, without decoding it; None
    when the value is not in :func:`encode`'s layout (then decode it instead)."""
    v = kv.value
    if not v.startswith(b'{"apiVersion":'):
        return None
    i = v.find(_META_OPEN, 0, 160)  # apiVersion and kind are short: metadata comes right after
    if i < 0:
        return None
    j = i + len(_META_OPEN)
    rv = b'"resourceVersion":"%d"' % kv.mod_revision
    return v[:j] + rv + (b"," if v[j:j + 1] != b"}" else b"") + v[j:]


def parse_rv(value: str | None, what: str = "resourceVersion") -> int:
    if value in (None, ""):
        return 0
    try:
        rv = int(value)  # type: ignore[arg-type]
    except ValueError:
        raise errors.bad_request(f'invalid {what}: "{value}"') from None
    if rv < 0:
        raise errors.bad_request(f'invalid {what}: "{value}"')
    return rv


@dataclass(slots=True)
class ContinueToken:
    rv: int
    start: str  # key suffix (relative to the list prefix) to start at, inclusive

    def encode(self) -> str:
        raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": self.rv, "start": self.start})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(token: str) -> ContinueToken:
        try:
            pad = "=" * (-len(token) % 4)
            data = orjson.loads(base64.urlsafe_b64decode(token + pad))
            if data.get("v") != "meta.k8s.io/v1" or not isinstance(data.get("rv"), int):
                raise ValueError("bad version")
            return ContinueToken(int(data["rv"]), str(data["start"]))
        except (ValueError, binascii.Error, orjson.JSONDecodeError, KeyError, TypeError):
            raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                     "(version meta.k8s.io/v1)") from None


EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)


@dataclass(slots=True)
class ListPage:
    items: list[Any]  # dicts, or JSON bytes for list(..., raw=True)
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None
    # Objects left out because their stored value cannot be decrypted: one message each, sent
    # as warnings (a lost encryption key is reported per object, not as a 500 for the list).
    unreadable: list[str] | None = None


class Objects:
    """Typed access to objects of any registered kind."""

    def __init__(self, store: Store, encryption: EncryptionConfig | None = None) -> None:
        # Encryption at rest (k8py.storage.encryption) wraps the store: every reader below, the
        # mirrors and the watches included, sees plain values.
        self.store: Store = store if encryption is None else EncryptedStore(store, encryption)
        # the CRD conversion webhooks' caller (set by the server); without one, a custom resource
        # of a Webhook-converting CRD is served only in the version it is stored in
        self.converter: Converter | None = None

    async def current_revision(self) -> int:
        return await self.store.current_revision()

    # -- conversion (a CRD's conversion webhook is an HTTP call: these await it) ------------------
    async def to_version(self, kind: KindInfo, objs: list[Obj], desired: str) -> list[Obj]:
        """``objs`` in apiVersion ``desired`` (``kind``'s served or storage version); a list's
        items go to a conversion webhook in one review, as kube's converter sends them."""
        if not kind.conversion_webhook:
            if desired == kind.api_version:
                return [convert_to(o, kind) for o in objs]
            return [to_storage(o, kind) for o in objs]
        if all(o.get("apiVersion") == desired for o in objs):
            return objs
        if self.converter is None:
            raise _needs_webhook(kind)
        return await self.converter.convert(kind, objs, desired)

    async def read(self, kv: KeyValue, kind: KindInfo) -> Obj:
        """A stored value decoded in ``kind``'s version (:func:`decode`, a webhook awaited)."""
        if not kind.conversion_webhook:
            return decode(kv, kind)
        return (await self.to_version(kind, [decode_stored(kv)], kind.api_version))[0]

    async def stored_form(self, obj: Obj, kind: KindInfo) -> bytes:
        """The stored form of ``obj`` (:func:`encode`, converted by a webhook when it must be)."""
        if kind.conversion_webhook:
            obj = (await self.to_version(kind, [obj], storage_api_version(kind)))[0]
        return encode(obj, kind)

    # -- raw keys -----------------------------------------------------------------------------
    # Bookkeeping that is not an API object (the Service allocator's reservations) goes through
    # here too, with the store's own semantics and errors: the one door to the store.
    async def raw_get(self, key: str) -> KeyValue | None:
        return await self.store.get(key)

    async def raw_create(self, key: str, value: bytes) -> int:
        return await self.store.create(key, value)

    async def raw_update(self, key: str, value: bytes, expected_rev: int) -> int:
        return await self.store.update(key, value, expected_rev)

    async def raw_delete(self, key: str, expected_rev: int | None = None) -> DeleteResult:
        return await self.store.delete(key, expected_rev)

    async def raw_list(self, prefix: str) -> ListResult:
        return await self.store.list(prefix)

    def watch(self, prefix: str, start_revision: int, *, progress_notify: bool = False) -> Watch:
        """A watch on the store from ``start_revision`` (inclusive), for the watch handler."""
        return self.store.watch(prefix, start_revision, progress_notify=progress_notify)

    async def mirror(self, prefix: str, *, reset: Callable[[], None], apply: Callable[[str, bytes | None], None],
                     synced: Callable[[], None], what: str) -> None:
        """Keep an in-process copy of the keys under ``prefix``: list them (``reset``, then
        ``apply(key, value)`` for each, then ``synced``), follow the watch (``apply(key, None)``
        for a delete), and list again when the watch falls behind compaction or fails. Runs
        until cancelled; ``what`` names the copy in the log."""
        while True:
            try:
                res = await self.raw_list(prefix)
                reset()
                for kv in res.kvs:
                    apply(kv.key, None if kv.__class__ is UnreadableValue else kv.value)
                synced()
                w = self.watch(prefix, res.revision + 1)
                try:
                    async for resp in w:
                        for ev in resp.events:
                            gone = ev.type is EventType.DELETE or ev.kv.__class__ is UnreadableValue
                            apply(ev.kv.key, None if gone else ev.kv.value)
                finally:
                    await w.close()
            except asyncio.CancelledError:
                raise
            except CompactedError:
                log.info("%s watch fell behind compaction; listing again", what)
            except Exception as e:  # noqa: BLE001 - the store may be briefly unavailable: keep trying
                log.warning("%s watch failed: %s; retrying", what, e)
                await asyncio.sleep(MIRROR_RETRY_SECONDS)

    async def health(self, timeout: float) -> None:
        """Raise unless the store answers its own health check (``Store.health``) within
        ``timeout`` seconds, as kube bounds its etcd probe; the health checks and
        componentstatuses ask."""
        try:
            async with asyncio.timeout(timeout):
                await self.store.health()
        except TimeoutError:
            raise StoreUnavailableError(f"the datastore did not answer within {timeout:g}s") from None

    async def wait_for_revision(self, rv: int) -> int:
        """Wait until the store has reached ``rv`` (a client may have seen it from
        another server in an HA setup), or fail like kube with 504."""
        cur = await self.store.current_revision()
        if cur >= rv:
            return cur
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FRESHNESS_WAIT_SECONDS
        w = self.store.watch("/registry/", cur + 1, progress_notify=True)
        try:
            while loop.time() < deadline:
                try:
                    async with asyncio.timeout_at(deadline):
                        resp = await w.__anext__()
                except (TimeoutError, StopAsyncIteration):
                    break
                if resp.revision >= rv:
                    return resp.revision
        finally:
            await w.close()
        raise errors.StatusError(504, "Timeout", f"Too large resource version: {rv}, current: {cur}",
                                 details={"causes": [{"reason": "ResourceVersionTooLarge",
                                                      "message": "Too large resource version"}],
                                          "retryAfterSeconds": 1})

    async def get_kv(self, kind: KindInfo, namespace: str | None, name: str) -> KeyValue:
        kv = await self.store.get(kind.key(namespace, name))
        if kv is None:
            raise errors.not_found_error(kind.resource, kind.group, name)
        return kv

    async def get(self, kind: KindInfo, namespace: str | None, name: str, rv: int = 0) -> Obj:
        if rv:
            await self.wait_for_revision(rv)
        return await self.read(await self.get_kv(kind, namespace, name), kind)

    async def try_get(self, kind: KindInfo, namespace: str | None, name: str) -> Obj | None:
        kv = await self.store.get(kind.key(namespace, name))
        return await self.read(kv, kind) if kv is not None else None

    async def create(self, kind: KindInfo, obj: Obj) -> Obj:
        meta = obj["metadata"]
        key = kind.key(meta.get("namespace"), meta["name"])
        try:
            rev = await self.store.create(key, check_size(await self.stored_form(obj, kind)))
        except KeyExistsError:
            raise errors.already_exists(kind.resource, kind.group, meta["name"]) from None
        meta["resourceVersion"] = str(rev)
        return obj

    async def replace(self, kind: KindInfo, obj: Obj, expected_rev: int) -> Obj:
        """Write ``obj`` if the stored revision is still ``expected_rev``; raises ConflictError."""
        meta = obj["metadata"]
        key = kind.key(meta.get("namespace"), meta["name"])
        try:
            rev = await self.store.update(key, check_size(await self.stored_form(obj, kind)), expected_rev)
        except KeyNotFoundError:
            raise errors.not_found_error(kind.resource, kind.group, meta["name"]) from None
        meta["resourceVersion"] = str(rev)
        return obj

    async def guaranteed_update(
        self,
        kind: KindInfo,
        namespace: str | None,
        name: str,
        try_update: Callable[[Obj], Awaitable[Obj | None]],
        *,
        retries: int = 20,
    ) -> tuple[Obj, Obj]:
        """Read-modify-write with retry on conflict, like kube's GuaranteedUpdate.

        ``try_update(current)`` returns the new object, or None for "no change".
        It may raise StatusError (e.g. a precondition failed) which is passed on.
        Returns (old, new); new is old when nothing changed.
        """
        key = kind.key(namespace, name)
        kv = await self.store.get(key)
        for _ in range(retries):
            if kv is None:
                raise errors.not_found_error(kind.resource, kind.group, name)
            current = await self.read(kv, kind)
            new = await try_update(orjson.loads(orjson.dumps(current)))
            if new is None:
                return current, current
            data = await self.stored_form(new, kind)
            if data == kv.value and kv.__class__ is not StaleValue:
                # No-op update: kube does not write, the resourceVersion stays (unless the value
                # was read with an encryption key that no longer writes: then it is re-encrypted).
                return current, current
            check_size(data)
            try:
                rev = await self.store.update(key, data, kv.mod_revision)
            except ConflictError as e:
                kv = e.current
                continue
            except KeyNotFoundError:
                raise errors.not_found_error(kind.resource, kind.group, name) from None
            new.setdefault("metadata", {})["resourceVersion"] = str(rev)
            return current, new
        raise errors.conflict(kind.resource, kind.group, name, errors.OPTIMISTIC_LOCK_MSG)

    async def delete_at(self, kind: KindInfo, namespace: str | None, name: str, expected_rev: int) -> int:
        """Delete the object if it is still at ``expected_rev``; returns the delete's revision.
        Raises ConflictError when it changed meanwhile and 404 when it is already gone (a
        concurrent delete won), never the store's own errors."""
        try:
            res = await self.store.delete(kind.key(namespace, name), expected_rev)
        except KeyNotFoundError:
            raise errors.not_found_error(kind.resource, kind.group, name) from None
        return res.revision

    async def delete(self, kind: KindInfo, namespace: str | None, name: str, expected_rev: int | None) -> Obj:
        try:
            res = await self.store.delete(kind.key(namespace, name), expected_rev)
        except KeyNotFoundError:
            raise errors.not_found_error(kind.resource, kind.group, name) from None
        except ConflictError:
            raise errors.conflict(kind.resource, kind.group, name, errors.OPTIMISTIC_LOCK_MSG) from None
        obj = await self.read(res.prev_kv, kind)
        obj["metadata"]["resourceVersion"] = str(res.revision)
        return obj

    async def list(
        self,
        kind: KindInfo,
        namespace: str | None,
        *,
        match: Callable[[Obj], bool] | None = None,
        limit: int = 0,
        continue_token: str = "",
        rv: str = "",
        rv_match: str = "",
        raw: bool = False,
    ) -> ListPage:
        """A page of objects. ``raw`` (only without ``match``, for kinds served in their storage
        version) returns each item as its JSON bytes, spliced rather than decoded: the fast path
        for plain JSON lists."""
        raw = raw and match is None and kind.version == kind.storage_version and not kind.conversion_webhook
        prefix = kind.key_prefix(namespace)
        start_key: str | None = None
        read_rev = 0
        if continue_token:
            if rv not in ("", None):
                raise errors.bad_request("specifying resource version is not allowed when using continue")
            tok = ContinueToken.decode(continue_token)
            if "\x00" in tok.start.rstrip("\x00") or tok.start.startswith("/") or ".." in tok.start:
                raise errors.bad_request("continue key is not valid: invalid start key")
            start_key = prefix + tok.start
            read_rev = tok.rv
        elif rv_match == "Exact":
            read_rev = parse_rv(rv)
            if read_rev == 0:
                raise errors.bad_request('resourceVersionMatch "Exact" requires a non-zero resourceVersion')
        elif rv_match not in ("", "NotOlderThan"):
            raise errors.bad_request(f'invalid resourceVersionMatch: "{rv_match}"')
        elif rv not in ("", "0"):
            await self.wait_for_revision(parse_rv(rv))
        elif rv_match == "NotOlderThan" and rv == "":
            raise errors.bad_request('resourceVersionMatch "NotOlderThan" requires a resourceVersion')

        items: list[Any] = []  # dicts, or JSON bytes when raw
        more = False
        last_key = ""
        page_size = max(0, limit)
        count_needed = limit > 0 and match is None
        remaining: int | None = None
        unreadable: list[str] = []
        while True:
            try:
                res = await self.store.list(prefix, start_key=start_key, limit=page_size, revision=read_rev,
                                            count=count_needed)
            except CompactedError:
                if continue_token:
                    raise errors.StatusError(410, "Expired", EXPIRED_CONTINUE) from None
                raise errors.gone(f"The resourceVersion for the provided list is too old. (requested {read_rev})") \
                    from None
            except FutureRevisionError as e:
                raise errors.StatusError(504, "Timeout", f"Too large resource version: {e.requested}, "
                                         f"current: {e.current}") from None
            read_rev = res.revision
            converted = await self._converted_page(res.kvs, kind) if kind.conversion_webhook else None
            for kv in res.kvs:
                last_key = kv.key
                if kv.__class__ is UnreadableValue:
                    unreadable.append(unreadable_note(kind, kv))
                    continue
                if raw:
                    items.append(splice_rv(kv) or orjson.dumps(decode(kv, kind)))
                    if limit and len(items) >= limit:
                        break
                    continue
                obj = converted[kv.key] if converted is not None else decode(kv, kind)
                if match is None or match(obj):
                    items.append(obj)
                    if limit and len(items) >= limit:
                        break
            if limit and len(items) >= limit:
                more = res.more or kv is not res.kvs[-1]
                if count_needed and more and not continue_token:
                    # The store counts the whole prefix, so this is exact only on the first page.
                    remaining = max(res.count - len(items), 0)
                break
            if not res.more:
                more = False
                break
            start_key = last_key + "\x00"
            count_needed = False
        token = ""
        if more:
            token = ContinueToken(read_rev, last_key[len(prefix):] + "\x00").encode()
        return ListPage(items, read_rev, token, remaining if more else None, unreadable or None)

    async def _converted_page(self, kvs: Iterable[KeyValue], kind: KindInfo) -> dict[str, Obj]:
        """A store page's readable objects in ``kind``'s version by key: one conversion review."""
        readable = [kv for kv in kvs if kv.__class__ is not UnreadableValue]
        objs = await self.to_version(kind, [decode_stored(kv) for kv in readable], kind.api_version)
        return {kv.key: o for kv, o in zip(readable, objs, strict=True)}

