"""Watch: a chunked stream of ``{"type": ..., "object": ...}`` lines, as kube serves it.

Slow watchers are bounded, as kube-apiserver's cacher bounds them:

- events wait for a watcher in the store's per-watcher queue, which has a
  bound (SQLite: ``watch_buffer`` events, then the watcher falls back to
  reading the ring / database when it asks for more; memory store: the same
  from its log; etcd: a bounded queue, then etcd's own flow control). This
  handler takes the next batch only when the previous one is written, so
  nothing else queues up in the server;
- each batch is one write to the connection, bounded in time: if the client
  has not read enough for a write (at most ``WRITE_CHUNK`` bytes) to finish
  within ``WRITE_TIMEOUT`` seconds (its receive window and our socket buffer
  are full), the watch is
  ended and the connection closed, and the client watches again from the last
  resourceVersion it saw (client-go's reflector does), as when kube's cacher
  closes an unresponsive watcher.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from k8py.api import errors, tables
from k8py.api.registry import KindInfo
from k8py.apiserver import options
from k8py.apiserver.context import Ctx
from k8py.apiserver.objects import Objects, decode, parse_rv
from k8py.storage.interface import CompactedError, EventType, StoreUnavailableError

if TYPE_CHECKING:
    from k8py.apiserver.rest import ResourceAPI

Obj = dict[str, Any]

log = logging.getLogger("k8py.apiserver.watch")

MIN_REQUEST_TIMEOUT = 1800  # kube's --min-request-timeout: watches last 30-60 minutes
BOOKMARK_INTERVAL = 60.0  # kube sends a bookmark about every minute when asked
WRITE_TIMEOUT = 10.0  # seconds a client may leave a write unread before its watch is ended
WRITE_CHUNK = 64 * 1024  # bytes per bounded write (aiohttp's and asyncio's flow-control size)


class SlowClientError(Exception):
    """The client did not read the watch stream for WRITE_TIMEOUT seconds."""


class WatchStream:
    """Writes watch events to an HTTP response in the negotiated form."""

    def __init__(self, resp: web.StreamResponse, kind: KindInfo, transform: str, include_object: str,
                 table: tables.Table) -> None:
        self.resp = resp
        self.kind = kind
        self.table = table  # the kind's columns, for Table watches (kubectl get -w)
        self.transform = transform
        self.include_object = include_object
        self.sent_headers = False

    def _object(self, obj: Obj) -> Obj:
        obj.setdefault("apiVersion", self.kind.api_version)
        obj.setdefault("kind", self.kind.kind)
        if self.transform == "Table":
            t = tables.table(self.table, [obj], include_object=self.include_object)
            if self.sent_headers:
                t["columnDefinitions"] = []
            self.sent_headers = True
            return t
        if self.transform in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return tables.partial_object_metadata(self.kind, obj)
        return obj

    def encode(self, type_: str, obj: Obj) -> bytes:
        body = obj if type_ in ("BOOKMARK", "ERROR") else self._object(obj)
        return orjson.dumps({"type": type_, "object": body}, option=orjson.OPT_APPEND_NEWLINE)

    async def write(self, data: bytes) -> None:
        """One write, bounded in time: SlowClientError if the client leaves it unread."""
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self.resp.write(data)
        except TimeoutError:
            raise SlowClientError(f"the client did not read {len(data)} bytes within {WRITE_TIMEOUT:g}s") from None

    async def write_lines(self, lines: Iterable[bytes]) -> None:
        """Write event lines in writes of about WRITE_CHUNK bytes, so the time bound
        asks a client to read WRITE_CHUNK bytes per WRITE_TIMEOUT, however large the batch."""
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            chunk.append(line)
            size += len(line)
            if size >= WRITE_CHUNK:
                await self.write(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            await self.write(b"".join(chunk))

    async def send(self, type_: str, obj: Obj) -> None:
        await self.write(self.encode(type_, obj))

    async def bookmark(self, rv: int, initial_end: bool = False) -> None:
        meta: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        await self.send("BOOKMARK", {"kind": self.kind.kind, "apiVersion": self.kind.api_version, "metadata": meta})

    async def error(self, err: errors.StatusError) -> None:
        await self.send("ERROR", err.status())


async def serve_watch(api: ResourceAPI, ctx: Ctx, kind: KindInfo, ns: str | None) -> web.StreamResponse:
    q = ctx.query
    rv_s = q.get("resourceVersion", "")
    rv = parse_rv(rv_s)
    rv_match = q.get("resourceVersionMatch", "")
    # (ListOptions' parameters were decoded as Go would by options.check_list_query already)
    bookmarks = options.query_bool(q, "allowWatchBookmarks") is True
    send_initial = options.query_bool(q, "sendInitialEvents")
    if send_initial is True:
        if rv_match != "NotOlderThan":
            raise errors.invalid_error("ListOptions", "meta.k8s.io", "", [errors.forbidden(
                "resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")])
        if not bookmarks:
            raise errors.invalid_error("ListOptions", "meta.k8s.io", "", [errors.forbidden(
                "allowWatchBookmarks", "sendInitialEvents requires setting allowWatchBookmarks to true")])
    elif rv_match:
        raise errors.invalid_error("ListOptions", "meta.k8s.io", "", [errors.forbidden(
            "resourceVersionMatch", "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")])
    timeout_s = options.query_int(q, "timeoutSeconds")
    timeout = float(timeout_s) if timeout_s is not None else MIN_REQUEST_TIMEOUT * (1 + random.random())
    match = api.matcher(ctx, kind)
    out = ctx.output()
    prefix = kind.key_prefix(ns)

    initial: list[Obj] = []
    want_initial = send_initial is True or (send_initial is None and rv_s in ("", "0"))
    if want_initial:
        if rv and rv_s != "0":
            await api.objects.wait_for_revision(rv)
        page = await api.objects.list(kind, ns, match=match.matches if match else None)
        initial = page.items
        start = page.resource_version + 1
        start_rv = page.resource_version
    else:
        start = rv + 1
        start_rv = rv
        cur = await api.objects.current_revision()
        if rv > cur:
            await api.objects.wait_for_revision(rv)

    ct = "application/json" if out.serializer != "application/yaml" else "application/yaml"
    resp = web.StreamResponse(status=200, headers={"Content-Type": ct, "Cache-Control": "no-cache, private"})
    api.add_warnings(ctx, resp)
    resp.enable_chunked_encoding()
    await resp.prepare(ctx.request)
    stream = WatchStream(resp, kind, out.transform, q.get("includeObject", "Metadata") or "Metadata",
                         api.strategies.for_kind(kind).table_for(kind))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    w = api.objects.watch(prefix, start, progress_notify=bookmarks or True)
    slow = False
    task = asyncio.current_task()
    if task is not None:
        api.open_watches.add(task)  # end_watches() ends it when the server shuts down
    try:
        await stream.write_lines(stream.encode("ADDED", obj) for obj in initial)
        if send_initial is True:
            await stream.bookmark(start_rv, initial_end=True)
        last_bookmark = loop.time()
        it = w.__aiter__()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            transport = ctx.request.transport
            if transport is None or transport.is_closing():
                break
            try:
                async with asyncio.timeout(min(remaining, 5.0)):
                    wr = await it.__anext__()
            except TimeoutError:
                continue
            except StopAsyncIteration:
                break
            except CompactedError as e:
                await stream.error(errors.StatusError(
                    410, "Expired", f"too old resource version: {start_rv} ({e.compacted + 1})"))
                break
            except StoreUnavailableError as e:
                # the store went away (etcd lost): end the stream; the client re-watches from its last RV
                await stream.error(errors.service_unavailable(f"watch ended: the datastore is unavailable: {e}"))
                break
            if not wr.events:
                if bookmarks and loop.time() - last_bookmark >= BOOKMARK_INTERVAL:
                    await stream.bookmark(wr.revision)
                    last_bookmark = loop.time()
                continue
            # One write per batch: the client's reading paces how fast we take from the store.
            try:
                if kind.conversion_webhook:
                    lines = [line for ev in wr.events
                             if (line := await _encode_converted_event(api.objects, stream, kind, ev, match))]
                else:
                    lines = [line for ev in wr.events if (line := _encode_event(stream, kind, ev, match))]
            except errors.StatusError as e:
                # a value that cannot be decrypted (lost encryption key): kube's watcher sends the
                # error and ends the watch; the client relists, where the object is reported alone
                await stream.error(e)
                break
            await stream.write_lines(lines)
    except SlowClientError as e:
        slow = True
        log.info("ending watch on %s for %s: %s", prefix, ctx.request.remote, e)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        if task is not None:
            api.open_watches.discard(task)
        await w.close()
    if slow:
        # What is buffered cannot be delivered in order any more; the client re-watches.
        transport = ctx.request.transport
        if transport is not None:
            transport.abort()
        return resp
    try:
        await resp.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


def end_watches(api: ResourceAPI) -> None:
    """The server is shutting down: every open watch ends now, its stream closed as a watch's
    end (a client watches again, elsewhere or once the server is back), as kube-apiserver ends
    its watches when it shuts down instead of keeping them until its shutdown times out."""
    for task in list(api.open_watches):
        task.cancel()


def _encode_event(stream: WatchStream, kind: KindInfo, ev: Any, match: Any) -> bytes | None:
    """The line for one store event, or None when the selector filters it out."""
    return _event_line(stream, ev, match, decode(ev.kv, kind), lambda: decode(ev.prev_kv, kind))


async def _encode_converted_event(objects: Objects, stream: WatchStream, kind: KindInfo, ev: Any,
                                  match: Any) -> bytes | None:
    """:func:`_encode_event` for a kind whose CRD converts with a webhook: each object is
    converted to the watched version (kube converts every event)."""
    obj = await objects.read(ev.kv, kind)
    old = None
    if ev.type is not EventType.DELETE and ev.prev_kv is not None and match is not None:
        old = await objects.read(ev.prev_kv, kind)
    return _event_line(stream, ev, match, obj, lambda: old)


def _event_line(stream: WatchStream, ev: Any, match: Any, obj: Obj, old_obj: Callable[[], Obj | None]) -> bytes | None:
    if ev.type is EventType.DELETE:
        if match is None or match.matches(obj):
            return stream.encode("DELETED", obj)
        return None
    new_ok = match is None or match.matches(obj)
    if ev.prev_kv is None:
        return stream.encode("ADDED", obj) if new_ok else None
    if match is None:
        return stream.encode("MODIFIED", obj)
    old_ok = match.matches(old_obj())
    if new_ok and old_ok:
        return stream.encode("MODIFIED", obj)
    if new_ok:
        return stream.encode("ADDED", obj)
    if old_ok:
        # left the selection: kube sends DELETED with the new object state
        return stream.encode("DELETED", obj)
    return None
