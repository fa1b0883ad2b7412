"""An async Kubernetes API client on aiohttp: CRUD, patch, subresources and watch, in plain JSON.

Objects are plain dicts as they travel on the wire. A kind is named by a :class:`KindInfo`,
an ``(apiVersion, kind)`` pair or a ``(group, version, resource)`` triple; kinds the built-in
registry does not know (custom resources) are found through discovery and cached.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

import aiohttp
import orjson

from k8py import __version__
from k8py.api.registry import KindInfo, Registry
from k8py.client.config import ClientConfig, load_client_certificate
from k8py.client.errors import GoneError, NotFoundError, api_error, error_from_response

__all__ = ["Client", "KindRef", "PatchType", "Watch", "WatchEvent", "object_key"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KindRef = KindInfo | tuple[str, str] | tuple[str, str, str]
PatchType = Literal["merge", "json", "strategic", "apply"]

_PATCH_CT: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
# 429/503 with Retry-After mean the request was not processed: safe to resend (client-go does too).
_MAX_RETRY_AFTER = 10
_RETRY_AFTER_CAP = 10.0


def object_key(obj: Obj) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects): the workqueue key of ``obj``."""
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name', '')}" if ns else str(md.get("name", ""))


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: ``type`` is ADDED, MODIFIED, DELETED or BOOKMARK."""

    type: str
    object: Obj

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


class Client:
    """An API client. Use as ``async with Client(cfg, component="scheduler") as c: ...``
    or call :meth:`close` when done; the aiohttp session opens on first use."""

    def __init__(self, config: ClientConfig, *, component: str = "client", field_manager: str | None = None,
                 registry: Registry | None = None, timeout: float = 60.0) -> None:
        self.config = config
        self.component = component
        # Writes name their manager (managedFields) after the component unless told otherwise.
        self.field_manager = field_manager if field_manager is not None else component
        self.registry = registry if registry is not None else Registry()
        self.timeout = timeout
        self.user_agent = f"k8py/{__version__} ({component})"
        self._base = config.server.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._ssl_ctx: ssl.SSLContext | None = None
        self._discovered: dict[str, dict[tuple[str, str], KindInfo]] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            s, self._session = self._session, None
            await s.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_ctx = self._ssl_ctx = self.config.ssl_context()
            # No connection limit: every watch holds a connection for its whole life.
            conn = aiohttp.TCPConnector(limit=0, ssl=ssl_ctx if ssl_ctx is not None else True)
            auth = None
            if self.config.username and self.config.password and not self.config.bearer_token():
                auth = aiohttp.BasicAuth(self.config.username, self.config.password)
            self._session = aiohttp.ClientSession(
                connector=conn, auth=auth, json_serialize=lambda o: orjson.dumps(o).decode(),
                headers={"User-Agent": self.user_agent, "Accept": "application/json"})
        return self._session

    def reload_client_certificate(self) -> None:
        """Load the config's client certificate (files or data, replaced by a rotation) into the
        session's TLS context: new connections present it, open ones (watches) keep theirs, as
        client-go's rotating transport. Without a session yet, the first one reads it anyway."""
        if self._ssl_ctx is not None and (self.config.cert_data or self.config.cert_file):
            load_client_certificate(self._ssl_ctx, self.config)

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        h: dict[str, str] = {}
        token = self.config.bearer_token()
        if token:
            h["Authorization"] = f"Bearer {token}"
        if content_type:
            h["Content-Type"] = content_type
        return h

    # -- raw requests ----------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout: float | None = None) -> Obj:
        """Send one request to ``path`` (e.g. ``/api/v1/namespaces``); returns the decoded JSON answer.

        Raises :class:`ApiError` (a subclass per reason) on an error status, and aiohttp/OS errors
        when the server cannot be reached.
        """
        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        kw: dict[str, Any] = {}
        if self.config.tls_server_name:
            kw["server_hostname"] = self.config.tls_server_name
        tmo = aiohttp.ClientTimeout(total=timeout if timeout is not None else self.timeout)
        for attempt in range(_MAX_RETRY_AFTER + 1):
            async with self._get_session().request(
                    method, self._base + path, params=params, data=data, timeout=tmo,
                    headers=self._headers(content_type if data is not None else None), **kw) as resp:
                raw = await resp.read()
                if resp.status < 400:
                    return orjson.loads(raw) if raw else {}
                retry_after = resp.headers.get("Retry-After")
                if resp.status in (429, 503) and retry_after and attempt < _MAX_RETRY_AFTER:
                    try:
                        delay = min(float(retry_after), _RETRY_AFTER_CAP)
                    except ValueError:
                        delay = 1.0
                    log.debug("%s %s: HTTP %d, retrying in %.1fs", method, path, resp.status, delay)
                    await asyncio.sleep(delay)
                    continue
                raise error_from_response(resp.status, raw)
        raise AssertionError("unreachable")

    # -- kinds and paths -------------------------------------------------------------------------

    def kind_info(self, kind: KindRef) -> KindInfo | None:
        """The kind from the built-in registry or earlier discovery, without asking the server."""
        if isinstance(kind, KindInfo):
            return kind
        if len(kind) == 2:
            api_version, k = kind  # type: ignore[misc]
            group, _, version = api_version.rpartition("/")
            return self.registry.by_kind(group, version, k) or \
                self._discovered.get(api_version, {}).get(("kind", k))
        group, version, resource = kind  # type: ignore[misc]
        gv = f"{group}/{version}" if group else version
        return self.registry.by_resource(group, version, resource) or \
            self._discovered.get(gv, {}).get(("resource", resource))

    async def resolve(self, kind: KindRef) -> KindInfo:
        """The :class:`KindInfo` for ``kind``, asking the server's discovery for kinds it does not know."""
        info = self.kind_info(kind)
        if info is not None:
            return info
        assert isinstance(kind, tuple)
        if len(kind) == 2:
            api_version, name = kind  # type: ignore[misc]
            key: tuple[str, str] = ("kind", name)
        else:
            g, v, name = kind  # type: ignore[misc]
            api_version = f"{g}/{v}" if g else v
            key = ("resource", name)
        await self._discover(api_version)
        info = self._discovered.get(api_version, {}).get(key)
        if info is None:
            raise NotFoundError({"kind": "Status", "status": "Failure", "code": 404, "reason": "NotFound",
                                 "message": f'the server does not serve {key[0]} "{name}" in {api_version}'})
        return info

    async def _discover(self, api_version: str) -> None:
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            doc = await self.request("GET", path)
        except NotFoundError:
            doc = {}
        group, _, version = api_version.rpartition("/")
        found: dict[tuple[str, str], KindInfo] = {}
        subs: dict[str, list[str]] = {}
        for r in doc.get("resources") or []:
            name = str(r.get("name") or "")
            if "/" in name:
                base, _, sub = name.partition("/")
                subs.setdefault(base, []).append(sub)
        for r in doc.get("resources") or []:
            name = str(r.get("name") or "")
            if not name or "/" in name:
                continue
            info = KindInfo(group, version, str(r.get("kind") or ""), name, str(r.get("singularName") or ""),
                            bool(r.get("namespaced")), short_names=tuple(r.get("shortNames") or ()),
                            verbs=tuple(r.get("verbs") or ()), subresources=tuple(subs.get(name, ())))
            found[("resource", name)] = info
            found.setdefault(("kind", info.kind), info)
        self._discovered[api_version] = found

    def path(self, kind: KindInfo, namespace: str | None, name: str | None = None,
             subresource: str | None = None) -> str:
        """The URL path of a collection (``name`` None) or of one object and its subresource."""
        p = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
        if kind.namespaced and namespace:
            p += f"/namespaces/{quote(namespace, safe='')}"
        p += f"/{kind.resource}"
        if name is not None:
            if not name:
                raise ValueError(f"{kind.kind}: an object name is required")
            p += f"/{quote(name, safe='')}"
            if subresource:
                p += f"/{subresource}"
        return p

    def _ns(self, kind: KindInfo, namespace: str | None, obj: Obj | None = None) -> str | None:
        # Single-object calls on a namespaced kind: the argument, the object's own namespace,
        # else the config's default namespace (what kubectl does with its context).
        if not kind.namespaced:
            return None
        if namespace:
            return namespace
        if obj is not None:
            ns = (obj.get("metadata") or {}).get("namespace")
            if ns:
                return str(ns)
        return self.config.namespace

    def _write_params(self, field_manager: str | None, dry_run: bool) -> dict[str, str]:
        p: dict[str, str] = {}
        fm = field_manager or self.field_manager
        if fm:
            p["fieldManager"] = fm
        if dry_run:
            p["dryRun"] = "All"
        return p

    # -- verbs -----------------------------------------------------------------------------------

    async def get(self, kind: KindRef, name: str, namespace: str | None = None, *,
                  subresource: str | None = None) -> Obj:
        k = await self.resolve(kind)
        return await self.request("GET", self.path(k, self._ns(k, namespace), name, subresource))

    async def list(self, kind: KindRef, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int | None = None, continue_token: str | None = None,
                   resource_version: str | None = None, resource_version_match: str | None = None,
                   timeout: float | None = None) -> Obj:
        """One list call (one page if ``limit`` is set). ``namespace=None`` lists all namespaces."""
        k = await self.resolve(kind)
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if resource_version_match:
            params["resourceVersionMatch"] = resource_version_match
        return await self.request("GET", self.path(k, namespace), params=params, timeout=timeout)

    async def list_all(self, kind: KindRef, namespace: str | None = None, *, label_selector: str | None = None,
                       field_selector: str | None = None, page_size: int = 500) -> Obj:
        """A consistent list of everything, fetched in pages of ``page_size`` (0: one request).

        All pages come from the first page's snapshot; if the continue token expires (410),
        the list restarts without paging, as client-go's pager does.
        """
        out = await self.list(kind, namespace, label_selector=label_selector, field_selector=field_selector,
                              limit=page_size or None)
        items: list[Obj] = list(out.get("items") or [])
        token = (out.get("metadata") or {}).get("continue")
        while token:
            try:
                page = await self.list(kind, namespace, label_selector=label_selector,
                                       field_selector=field_selector, limit=page_size, continue_token=token)
            except GoneError:
                log.info("%s: continue token expired, listing without paging", kind)
                return await self.list(kind, namespace, label_selector=label_selector,
                                       field_selector=field_selector)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
        out["items"] = items
        out.setdefault("metadata", {}).pop("continue", None)
        out["metadata"].pop("remainingItemCount", None)
        return out

    async def create(self, kind: KindRef, obj: Obj, namespace: str | None = None, *,
                     subresource: str | None = None, name: str | None = None,
                     field_manager: str | None = None, dry_run: bool = False) -> Obj:
        """POST ``obj``; with ``subresource`` (e.g. ``binding``, ``eviction``) POST to ``name``'s one."""
        if subresource and name is None:
            raise ValueError("create with a subresource needs the object name")
        k = await self.resolve(kind)
        path = self.path(k, self._ns(k, namespace, obj), name if subresource else None, subresource)
        return await self.request("POST", path, params=self._write_params(field_manager, dry_run), body=obj)

    async def update(self, kind: KindRef, obj: Obj, namespace: str | None = None, *,
                     subresource: str | None = None, field_manager: str | None = None,
                     dry_run: bool = False) -> Obj:
        """PUT ``obj``; its ``metadata.resourceVersion`` (if set) makes this compare-and-swap (409 on a race)."""
        k = await self.resolve(kind)
        name = str((obj.get("metadata") or {}).get("name") or "")
        path = self.path(k, self._ns(k, namespace, obj), name, subresource)
        return await self.request("PUT", path, params=self._write_params(field_manager, dry_run), body=obj)

    async def update_status(self, kind: KindRef, obj: Obj, namespace: str | None = None, *,
                            field_manager: str | None = None, dry_run: bool = False) -> Obj:
        """PUT ``obj`` to its ``/status`` subresource."""
        return await self.update(kind, obj, namespace, subresource="status", field_manager=field_manager,
                                 dry_run=dry_run)

    async def patch(self, kind: KindRef, name: str, patch: Any, namespace: str | None = None, *,
                    type: PatchType = "merge", subresource: str | None = None,
                    field_manager: str | None = None, force: bool | None = None, dry_run: bool = False) -> Obj:
        """PATCH ``name`` with a merge (default), JSON, strategic-merge or server-side-apply patch."""
        if type not in _PATCH_CT:
            raise ValueError(f"unknown patch type {type!r}; one of {', '.join(_PATCH_CT)}")
        k = await self.resolve(kind)
        params = self._write_params(field_manager, dry_run)
        if type == "apply":
            params.setdefault("fieldManager", self.component)  # apply requires a manager
            if force is not None:
                params["force"] = "true" if force else "false"
        obj = patch if isinstance(patch, dict) else None
        path = self.path(k, self._ns(k, namespace, obj), name, subresource)
        return await self.request("PATCH", path, params=params, body=patch, content_type=_PATCH_CT[type])

    async def delete(self, kind: KindRef, name: str, namespace: str | None = None, *,
                     propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
                     grace_period_seconds: int | None = None, uid: str | None = None,
                     resource_version: str | None = None, dry_run: bool = False) -> Obj:
        """DELETE ``name``; ``uid``/``resource_version`` are preconditions. Returns the server's answer
        (a Status, or the object when finalizers keep it around)."""
        k = await self.resolve(kind)
        opts: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            opts["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        pre: Obj = {}
        if uid:
            pre["uid"] = uid
        if resource_version:
            pre["resourceVersion"] = resource_version
        if pre:
            opts["preconditions"] = pre
        if dry_run:
            opts["dryRun"] = ["All"]
        return await self.request("DELETE", self.path(k, self._ns(k, namespace), name), body=opts)

    def watch(self, kind: KindRef, namespace: str | None = None, *, resource_version: str | None = None,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout_seconds: int | None = None, allow_bookmarks: bool = True) -> Watch:
        """A watch stream; iterate it with ``async with client.watch(...) as w: async for ev in w``.

        The iteration ends when the server ends the stream (``timeout_seconds``); an ERROR event
        raises its :class:`ApiError` (:class:`GoneError` when ``resource_version`` is too old).
        """
        params: dict[str, str] = {"watch": "1"}
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(int(timeout_seconds))
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        return Watch(self, kind, namespace, params, timeout_seconds)


class Watch:
    """An open watch: an async iterator of :class:`WatchEvent` and an async context manager.

    Leaving the ``async with`` block (or :meth:`close`) releases the connection; a stream
    iterated to its end closes itself.
    """

    __slots__ = ("_buf", "_client", "_closed", "_kind", "_namespace", "_params", "_resp", "_timeout")

    def __init__(self, client: Client, kind: KindRef, namespace: str | None, params: dict[str, str],
                 timeout_seconds: int | None) -> None:
        self._client = client
        self._kind = kind
        self._namespace = namespace
        self._params = params
        self._timeout = timeout_seconds
        self._resp: aiohttp.ClientResponse | None = None
        self._buf = bytearray()
        self._closed = False

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self

    async def _open(self) -> None:
        if self._resp is not None or self._closed:
            return
        c = self._client
        k = await c.resolve(self._kind)
        # Half-open connections: with a server-side timeout, give up a little after it.
        total = None if self._timeout is None else self._timeout + 30.0
        tmo = aiohttp.ClientTimeout(total=total, sock_connect=c.timeout)
        kw: dict[str, Any] = {}
        if c.config.tls_server_name:
            kw["server_hostname"] = c.config.tls_server_name
        resp = await c._get_session().get(c._base + c.path(k, self._namespace), params=self._params,
                                          headers=c._headers(), timeout=tmo, **kw)
        if resp.status >= 400:
            try:
                raw = await resp.read()
            finally:
                resp.release()
            self._closed = True
            raise error_from_response(resp.status, raw)
        self._resp = resp

    async def __anext__(self) -> WatchEvent:
        if self._closed:
            raise StopAsyncIteration
        if self._resp is None:
            await self._open()
        resp = self._resp
        assert resp is not None
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[:nl + 1]
                if not line.strip():
                    continue
                return self._event(line)
            # Read whatever arrived rather than readline(): aiohttp caps line length, objects are not.
            try:
                chunk = await resp.content.readany()
            except BaseException:
                await self.close()
                raise
            if not chunk:
                if self._buf.strip():  # a last event without its newline
                    line = bytes(self._buf)
                    self._buf.clear()
                    return self._event(line)
                await self.close()
                raise StopAsyncIteration
            self._buf += chunk

    def _event(self, line: bytes) -> WatchEvent:
        ev = orjson.loads(line)
        typ = str(ev.get("type") or "")
        obj = ev.get("object") or {}
        if typ == "ERROR":
            self._closed = True
            if self._resp is not None:
                self._resp.close()
                self._resp = None
            raise api_error(obj)
        return WatchEvent(typ, obj)

    async def close(self) -> None:
        self._closed = True
        if self._resp is not None:
            resp, self._resp = self._resp, None
            # close(), not release(): the rest of a watch stream is never wanted, so the
            # connection cannot go back to the pool.
            resp.close()

