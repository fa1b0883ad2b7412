"""The clustered store: etcd v3, through the JSON gateway that etcd itself serves.

Why the gateway
---------------
etcd (3.4 and later) answers its v3 API as JSON over plain HTTP on the client
port (``/v3/kv/range``, ``/v3/kv/txn``, ``/v3/kv/deleterange``,
``/v3/kv/compaction``, ``/v3/watch`` as a stream of JSON lines,
``/v3/maintenance/status``). It is the same API as gRPC: the same requests,
revisions, compares and watch semantics, translated by etcd's own gateway.
Talking to it with aiohttp (already a k8py dependency) needs no generated
protobuf code and no gRPC runtime, runs on the server's event loop (uvloop or
not), and uses the same TLS setup as every other HTTP client. Of the async
gRPC clients on PyPI, ``aetcd`` has no TLS, one host only, no limit/revision
on ranges and drops progress notifications; ``etcd3aio`` covers the API but
is a young one-person beta, dials IP literals only (``ipv4:`` targets) and
would add grpcio and protobuf. The price of the gateway: JSON and base64
instead of protobuf (about 170 us of client CPU per create, well below what
etcd itself takes) and one HTTP connection per watch instead of multiplexed
gRPC streams (etcd's gRPC clients, kube-apiserver included, also run one
watch per stream).

Mapping onto :mod:`k8py.storage.interface`
------------------------------------------
- keys: ``prefix + key``, UTF-8; the prefix is stripped on the way out;
- create: ``txn(create_revision(key) == 0, put, else range)``;
- update: ``txn(mod_revision(key) == expected, put, else range)``: the range
  tells KeyNotFoundError from ConflictError and carries the current value;
- delete: ``deleterange(prev_kv)`` or the same txn with ``deleterange``;
- get / list: ``range`` (linearizable) with ``revision``, ``limit`` and
  ``count``; ``count`` covers the whole prefix at the read revision, so a page
  that starts past the prefix's first key costs a second ``count_only`` range
  at the same revision;
- watch: one ``/v3/watch`` stream per watch, ``prev_kv`` always on,
  start revision 0 ("from now") = one past the newest revision this process
  has seen (no gap even if a write lands before etcd has set the watch up),
  ``progress_notify`` when asked. A broken stream is re-opened (on the next
  endpoint) from the revision after the last one delivered, so the consumer
  sees no gap and no duplicate; if that revision was compacted meanwhile, the
  watch ends with CompactedError and the consumer relists, as in etcd;
- compaction: ``compact(rev)`` asks etcd to compact to ``rev - 1`` and
  refuses reads and watches at ``rev - 1`` itself. Why one less: etcd finds an
  event's ``prev_kv`` by reading at ``event revision - 1``, so a watch from
  ``rev`` would get its first update events without their previous values if
  etcd had compacted ``rev - 1`` away. Our compacted revision is therefore
  etcd's compaction revision (etcd serves everything from it on; we, from one
  later). etcd does not report it directly: it is learned from this process's
  own compactions, from "required revision has been compacted" answers and
  watch cancellations, and found exactly (a binary search over ``count_only``
  ranges, a handful of requests) at ``start()`` and by
  :meth:`EtcdStore.compacted_revision`. A watch that still meets an update
  without its previous value (another client compacted further) ends with
  CompactedError, as kube-apiserver's etcd watcher does.

Endpoints and failures
----------------------
Requests go to one endpoint at a time. A request that could not be sent
(connection refused, connect timeout, TLS handshake) moves on to the next
endpoint; so do reads that fail in flight and requests refused with "no
leader". A write that fails after it was sent raises StoreUnavailableError
saying its outcome is unknown: it is never retried blindly.

Progress notifications come from etcd at its
``--experimental-watch-progress-notify-interval`` (etcd's default: 10 minutes;
run etcd with e.g. ``5s`` for timely bookmarks).

Use: ``start()`` and ``close()`` inside the event loop that will use the store;
every method must be called from that loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .interface import (
    MAX_LIST_LIMIT,
    CompactedError,
    ConflictError,
    DeleteResult,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    StoreError,
    StoreStats,
    StoreUnavailableError,
    WatchResponse,
)

__all__ = ["EtcdStore", "EtcdWatch", "parse_endpoints"]

log = logging.getLogger(__name__)

# ``hasleader`` (gRPC metadata, forwarded by the gateway) makes a member
# without a leader answer "no leader" at once instead of holding the request
# until etcd's own timeout, and end watches when it loses its leader: both
# then move to another member. etcd's Go client asks the same for watches.
_JSON_HEADERS = {"Content-Type": "application/json", "Grpc-Metadata-Hasleader": "true"}

# gRPC status codes etcd's gateway puts in error bodies.
_CODE_UNKNOWN = 2
_CODE_INVALID_ARGUMENT = 3
_CODE_DEADLINE_EXCEEDED = 4
_CODE_PERMISSION_DENIED = 7
_CODE_RESOURCE_EXHAUSTED = 8
_CODE_FAILED_PRECONDITION = 9
_CODE_OUT_OF_RANGE = 11
_CODE_UNAVAILABLE = 14
_CODE_UNAUTHENTICATED = 16

_MSG_COMPACTED = "required revision has been compacted"
_MSG_FUTURE = "required revision is a future revision"
_MSG_NO_LEADER = "no leader"

# The key current_revision() and compaction probes range over: any key works
# (only the response header and errors matter); this one is never written.
_PROBE_KEY = b"\x00k8py-revision-probe"

# Module-level alias: inside EtcdStore, ``list`` names the list() method.
_Dicts = list[dict[str, Any]]


def parse_endpoints(endpoints: str | Sequence[str]) -> list[str]:
    """``"http://a:2379,http://b:2379"`` (or a list) -> normalised base URLs.

    Every endpoint must be ``http://`` or ``https://`` (all the same scheme)
    with a host; the port defaults to 2379.
    """
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    urls: list[str] = []
    schemes: set[str] = set()
    for item in items:
        raw = item.strip()
        if not raw:
            continue
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"etcd endpoint {raw!r}: expected http://HOST:PORT or https://HOST:PORT")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"etcd endpoint {raw!r}: give only scheme, host and port (no path)")
        try:
            port = parts.port or 2379
        except ValueError:
            raise ValueError(f"etcd endpoint {raw!r}: bad port") from None
        host = parts.hostname
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        schemes.add(scheme)
        urls.append(f"{scheme}://{host}:{port}")
    if not urls:
        raise ValueError("no etcd endpoint given")
    if len(schemes) > 1:
        raise ValueError(f"etcd endpoints mix http and https: {', '.join(urls)}")
    return urls


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(data: str | None) -> bytes:
    return base64.b64decode(data) if data else b""


def _prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix``;
    ``b"\\x00"`` (etcd: "no upper bound") if there is none."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"
    return stripped[:-1] + bytes([stripped[-1] + 1])


class _GatewayError(Exception):
    """An error answer from etcd: gRPC ``code`` and etcd's message."""

    def __init__(self, code: int, message: str, endpoint: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.endpoint = endpoint


class EtcdStore:
    """:class:`~k8py.storage.interface.Store` on an etcd v3 cluster.

    ``endpoints``: ``"http://HOST:2379[,http://HOST2:2379...]"`` or a list;
    all ``http://`` or all ``https://``.
    ``prefix``: prepended to every key (default ``""``: k8py's keys already
    start with ``/registry/``); lets several clusters share one etcd.
    ``cafile``: CA bundle that signed the etcd server certificates (https;
    default: the system's CAs). ``certfile``/``keyfile``: client certificate
    and key, for etcd's ``--client-cert-auth``.
    ``request_timeout``: seconds a single request may take.
    ``dial_timeout``: seconds to connect to one endpoint before trying the next.
    ``max_connections``: HTTP connections kept for requests (watches have
    their own, one each).
    ``watch_retry_timeout``: seconds a watch keeps trying to re-open its
    stream on any endpoint before it ends with StoreUnavailableError.
    ``watch_buffer``: responses read ahead per watch before the stream is
    left to etcd's flow control.
    ``physical_compaction``: wait for etcd to reclaim the space of a
    compaction before ``compact()`` returns.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        prefix: str = "",
        cafile: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        request_timeout: float = 10.0,
        dial_timeout: float = 3.0,
        max_connections: int = 64,
        watch_retry_timeout: float = 30.0,
        watch_buffer: int = 64,
        physical_compaction: bool = False,
    ) -> None:
        self.endpoints = parse_endpoints(endpoints)
        self.prefix = prefix
        tls = self.endpoints[0].startswith("https://")
        if not tls and (cafile or certfile or keyfile):
            raise ValueError(
                "etcd CA / client certificate files were given but the endpoints are http://; "
                "use https:// endpoints for TLS"
            )
        if keyfile and not certfile:
            raise ValueError("an etcd client key file needs its certificate file too")
        if request_timeout <= 0 or dial_timeout <= 0 or watch_retry_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if max_connections < 1 or watch_buffer < 1:
            raise ValueError("max_connections and watch_buffer must be positive")
        self.cafile = cafile
        self.certfile = certfile
        self.keyfile = keyfile
        self._tls = tls
        self._request_timeout = request_timeout
        self._dial_timeout = dial_timeout
        self._max_connections = max_connections
        self._watch_retry_timeout = watch_retry_timeout
        self._watch_buffer = watch_buffer
        self._physical = physical_compaction
        self._prefix_b = prefix.encode("utf-8", "surrogateescape")
        self._plen = len(self._prefix_b)

        self._session: aiohttp.ClientSession | None = None
        self._watch_session: aiohttp.ClientSession | None = None
        self._started = False
        self._closing = False
        self._start_lock: asyncio.Lock | None = None
        self._active = 0  # index of the endpoint requests go to first
        self._seen_rev = 0  # highest store revision seen in any response
        self._compacted = 0  # every revision <= this is known to be compacted
        self._watches: set[EtcdWatch] = set()
        self.version = ""  # etcd server version, from start()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            return
        if self._closing:
            raise StoreUnavailableError("store is closed")
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            try:
                await self._start()
            except BaseException:
                await self._close_sessions()
                raise

    async def _start(self) -> None:
        ssl_ctx = self._ssl_context() if self._tls else None
        connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=ssl_ctx if ssl_ctx else True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._request_timeout, sock_connect=self._dial_timeout),
            skip_auto_headers=("User-Agent",),
        )
        # Watches hold their connection for as long as they run: a separate
        # pool, unlimited, never reused (the stream is closed to cancel).
        wconnector = aiohttp.TCPConnector(limit=0, force_close=True, ssl=ssl_ctx if ssl_ctx else True)
        self._watch_session = aiohttp.ClientSession(
            connector=wconnector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._dial_timeout, sock_read=None),
            skip_auto_headers=("User-Agent",),
        )
        self._started = True  # _call checks it; start() undoes it if what follows fails
        started = time.monotonic()
        try:
            status = await self._call("/v3/maintenance/status", {}, idempotent=True)
        except StoreUnavailableError as e:
            raise StoreUnavailableError(
                f"cannot reach etcd ({e}); is etcd running at {', '.join(self.endpoints)}, "
                "and is --datastore-endpoint right?"
            ) from None
        self.version = str(status.get("version", ""))
        try:
            rev = await self.current_revision()
        except StoreUnavailableError as e:
            raise StoreUnavailableError(
                f"etcd at {self.endpoints[self._active]} (version {self.version or '?'}) answers but "
                f"cannot serve a consistent read: {e}. Has the cluster lost quorum?"
            ) from None
        self._compacted = await self._find_compacted()
        log.info(
            "etcd store ready: %s (etcd %s, prefix %r, revision %d, compacted %d) in %.2fs",
            ",".join(self.endpoints),
            self.version or "?",
            self.prefix,
            rev,
            self._compacted,
            time.monotonic() - started,
        )

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(cafile=self.cafile)
            if self.certfile:
                ctx.load_cert_chain(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as e:
            what = ", ".join(f for f in (self.cafile, self.certfile, self.keyfile) if f)
            raise StoreError(f"cannot load the etcd TLS files ({what}): {e}") from None
        return ctx

    async def close(self) -> None:
        self._closing = True
        if not self._started:
            return
        self._started = False
        for w in list(self._watches):
            await w.close()
        await self._close_sessions()

    async def _close_sessions(self) -> None:
        self._started = False
        for session in (self._session, self._watch_session):
            if session is not None:
                await session.close()
        self._session = self._watch_session = None

    def _check_open(self) -> None:
        if self._closing:
            raise StoreUnavailableError("store is closed")
        if not self._started:
            raise StoreUnavailableError("store is not started; call await store.start() first")

    # ------------------------------------------------------------------ requests

    async def _call(self, path: str, body: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        """POST ``body`` to ``path`` on the active endpoint, failing over as
        the module doc says. Raises _GatewayError for OutOfRange answers
        (compacted / future revision: the caller knows the revision),
        StoreUnavailableError / StoreError for the rest."""
        self._check_open()
        assert self._session is not None
        data = json.dumps(body, separators=(",", ":"))
        failures: list[str] = []
        n = len(self.endpoints)
        for attempt in range(n):
            index = (self._active + attempt) % n
            endpoint = self.endpoints[index]
            try:
                async with self._session.post(endpoint + path, data=data, headers=_JSON_HEADERS) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
                # Not sent: safe to try the next member whatever the request.
                failures.append(f"{endpoint}: {_describe(e)}")
                continue
            except (aiohttp.ClientError, TimeoutError) as e:
                if idempotent:
                    failures.append(f"{endpoint}: {_describe(e)}")
                    continue
                raise StoreUnavailableError(
                    f"etcd {endpoint}: {_describe(e)} after the write was sent; "
                    "it may or may not have been applied"
                ) from None
            if status == 200:
                if index != self._active:
                    log.warning("etcd: now using %s (%s)", endpoint, "; ".join(failures))
                    self._active = index
                out: dict[str, Any] = json.loads(raw)
                header = out.get("header")
                if header is not None:
                    self._see(header)
                return out
            err = _gateway_error(status, raw, endpoint)
            if err.code == _CODE_OUT_OF_RANGE:
                raise err
            retry_elsewhere = err.code == _CODE_UNAVAILABLE and (idempotent or _MSG_NO_LEADER in err.message)
            if retry_elsewhere and attempt < n - 1:
                failures.append(f"{endpoint}: {err.message}")
                continue
            raise _store_error(err, path)
        message = "; ".join(failures)
        if any(_MSG_NO_LEADER in f for f in failures):
            message += " (no reachable etcd member has a leader: the cluster has lost quorum)"
        raise StoreUnavailableError(message)

    def _see(self, header: dict[str, Any]) -> int:
        rev = int(header.get("revision", 0))
        self._seen_rev = max(self._seen_rev, rev)
        return rev

    def _key(self, key: str) -> bytes:
        return self._prefix_b + key.encode("utf-8", "surrogateescape")

    def _kv(self, d: dict[str, Any]) -> KeyValue:
        return KeyValue(
            _unb64(d.get("key"))[self._plen :].decode("utf-8", "surrogateescape"),
            _unb64(d.get("value")),
            int(d.get("create_revision", 0)),
            int(d.get("mod_revision", 0)),
        )

    async def _range(self, body: dict[str, Any], revision: int) -> dict[str, Any]:
        try:
            return await self._call("/v3/kv/range", body, idempotent=True)
        except _GatewayError as e:
            raise await self._revision_error(e, revision) from None

    async def _revision_error(self, err: _GatewayError, requested: int) -> StoreError:
        if _MSG_COMPACTED in err.message:
            # etcd refuses revisions below its compaction revision, which is
            # our compacted revision: so ours is above ``requested``.
            self._compacted = max(self._compacted, requested + 1)
            with contextlib.suppress(StoreError):
                self._compacted = await self._find_compacted()
            return CompactedError(requested, self._compacted)
        if _MSG_FUTURE in err.message:
            current = self._seen_rev
            with contextlib.suppress(StoreError):
                current = await self.current_revision()
            return FutureRevisionError(requested, current)
        return StoreError(f"etcd {err.endpoint}: {err.message}")

    # ------------------------------------------------------------------ reads

    async def current_revision(self) -> int:
        out = await self._call(
            "/v3/kv/range", {"key": _b64(self._prefix_b + _PROBE_KEY), "count_only": True}, idempotent=True
        )
        return int(out["header"]["revision"])

    async def health(self) -> None:
        """Raise unless etcd serves a linearizable read (which needs a leader
        and a quorum): what kube-apiserver's etcd health check asks. Bound it
        with a timeout: a member that hangs is retried on the others."""
        self._check_open()
        await self.current_revision()

    async def compacted_revision(self) -> int:
        self._check_open()
        with contextlib.suppress(StoreUnavailableError):
            self._compacted = await self._find_compacted()
        return self._compacted

    async def _is_compacted(self, revision: int) -> bool:
        body = {"key": _b64(self._prefix_b + _PROBE_KEY), "count_only": True, "revision": revision}
        try:
            await self._call("/v3/kv/range", body, idempotent=True)
        except _GatewayError as e:
            if _MSG_COMPACTED in e.message:
                return True
            if _MSG_FUTURE in e.message:
                return False
            raise _store_error(e, "/v3/kv/range") from None
        return False

    async def _find_compacted(self) -> int:
        """Our compacted revision, from etcd: its compaction revision, which
        is one more than the newest revision etcd refuses to read."""
        # etcd refuses every revision below our compacted one; is it still
        # serving that one (or revision 1, when nothing is known)?
        probe = max(self._compacted, 1)
        if not await self._is_compacted(probe):
            return self._compacted
        # Invariant: etcd refuses ``low`` and serves ``high`` (it always serves
        # the revision it compacted to, and so the current one).
        low = probe
        high = await self.current_revision()
        while high - low > 1:
            mid = (low + high) // 2
            if await self._is_compacted(mid):
                low = mid
            else:
                high = mid
        return max(low + 1, self._compacted)

    def _check_revision(self, revision: int) -> None:
        # Why here and not only in etcd: etcd still serves our compacted
        # revision itself (see the module doc).
        if 0 < revision <= self._compacted:
            raise CompactedError(revision, self._compacted)

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        self._check_revision(revision)
        body: dict[str, Any] = {"key": _b64(self._key(key))}
        if revision:
            body["revision"] = revision
        out = await self._range(body, revision)
        kvs = out.get("kvs")
        return self._kv(kvs[0]) if kvs else None

    async def list(
        self,
        prefix: str,
        *,
        start_key: str | None = None,
        limit: int = 0,
        revision: int = 0,
        count: bool = False,
    ) -> ListResult:
        self._check_revision(revision)
        full = self._key(prefix)
        end = _prefix_end(full)
        low = full if start_key is None or start_key <= prefix else self._key(start_key)
        if not low:  # empty prefix and no store prefix: every key
            low = b"\x00"
        body: dict[str, Any] = {"key": _b64(low), "range_end": _b64(end)}
        if limit:
            body["limit"] = min(limit, MAX_LIST_LIMIT)
        if revision:
            body["revision"] = revision
        if end != b"\x00" and low >= end:
            # A start key past the prefix: nothing to return, but the read
            # still needs its revision (and the count).
            body = {"key": _b64(full or b"\x00"), "range_end": _b64(end), "count_only": True}
            if revision:
                body["revision"] = revision
            out = await self._range(body, revision)
            at = revision or int(out["header"]["revision"])
            return ListResult([], at, False, int(out.get("count", 0)) if count else 0)
        out = await self._range(body, revision)
        at = revision or int(out["header"]["revision"])
        kvs = [self._kv(d) for d in out.get("kvs", ())]
        more = bool(out.get("more", False))
        total = 0
        if count:
            if low == (full or b"\x00"):
                total = int(out.get("count", 0))  # etcd counts the whole range, whatever the limit
            else:
                # Same revision as the page: a consistent count of the prefix.
                cbody = {
                    "key": _b64(full or b"\x00"),
                    "range_end": _b64(end),
                    "count_only": True,
                    "revision": at,
                }
                total = int((await self._range(cbody, at)).get("count", 0))
        return ListResult(kvs, at, more, total)

    # ------------------------------------------------------------------ writes

    async def _txn(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._call("/v3/kv/txn", body, idempotent=False)
        except _GatewayError as e:
            raise _store_error(e, "/v3/kv/txn") from None

    async def create(self, key: str, value: bytes) -> int:
        _check_value(value)
        k = _b64(self._key(key))
        out = await self._txn(
            {
                "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": 0}],
                "success": [{"request_put": {"key": k, "value": _b64(value)}}],
                "failure": [{"request_range": {"key": k}}],
            }
        )
        if out.get("succeeded"):
            return int(out["header"]["revision"])
        kvs = _range_kvs(out)
        raise KeyExistsError(key, self._kv(kvs[0]) if kvs else None)

    def _compare_mod(self, k: str, expected: int) -> _Dicts:
        compare: _Dicts = [{"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": expected}]
        if expected <= 0:
            # mod_revision == 0 also holds for an absent key: demand existence.
            compare.append({"key": k, "target": "CREATE", "result": "GREATER", "create_revision": 0})
        return compare

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        _check_value(value)
        k = _b64(self._key(key))
        out = await self._txn(
            {
                "compare": self._compare_mod(k, expected_revision),
                "success": [{"request_put": {"key": k, "value": _b64(value)}}],
                "failure": [{"request_range": {"key": k}}],
            }
        )
        if out.get("succeeded"):
            return int(out["header"]["revision"])
        kvs = _range_kvs(out)
        if not kvs:
            raise KeyNotFoundError(key)
        raise ConflictError(key, expected_revision, self._kv(kvs[0]))

    async def delete(self, key: str, expected_revision: int | None = None) -> DeleteResult:
        k = _b64(self._key(key))
        if expected_revision is None:
            try:
                out = await self._call("/v3/kv/deleterange", {"key": k, "prev_kv": True}, idempotent=False)
            except _GatewayError as e:
                raise _store_error(e, "/v3/kv/deleterange") from None
            prev = out.get("prev_kvs")
            if not prev:
                raise KeyNotFoundError(key)
            return DeleteResult(int(out["header"]["revision"]), self._kv(prev[0]))
        out = await self._txn(
            {
                "compare": self._compare_mod(k, expected_revision),
                "success": [{"request_delete_range": {"key": k, "prev_kv": True}}],
                "failure": [{"request_range": {"key": k}}],
            }
        )
        if out.get("succeeded"):
            deleted = out["responses"][0]["response_delete_range"]
            prev = deleted.get("prev_kvs")
            if not prev:  # the compare proved the key existed: cannot happen
                raise KeyNotFoundError(key)
            return DeleteResult(int(out["header"]["revision"]), self._kv(prev[0]))
        kvs = _range_kvs(out)
        if not kvs:
            raise KeyNotFoundError(key)
        raise ConflictError(key, expected_revision, self._kv(kvs[0]))

    # ------------------------------------------------------------------ watch

    def watch(self, prefix: str, start_revision: int, *, progress_notify: bool = False) -> EtcdWatch:
        self._check_open()
        if start_revision < 0:
            raise ValueError(f"start_revision must be >= 0, got {start_revision}")
        if start_revision == 0:
            # "From now", without a gap: from just after the newest revision
            # this process has seen. Every write it has had acknowledged is
            # older; anything newer reaches the watcher, even if it commits
            # before etcd has set the watch up.
            start_revision = self._seen_rev + 1
        w = EtcdWatch(self, prefix, start_revision, progress_notify)
        self._watches.add(w)
        w._begin()
        return w

    # ------------------------------------------------------------------ compaction

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision``: reads and watches at
        ``revision`` and later keep working. Compacting to a revision at or
        below the compacted one does nothing."""
        self._check_open()
        if revision > self._seen_rev:
            # Checked here: etcd would accept ``current + 1`` (it compacts to
            # one less, see the module doc).
            current = await self.current_revision()
            if revision > current:
                raise FutureRevisionError(revision, current)
        target = revision - 1
        if target <= self._compacted:
            return
        body: dict[str, Any] = {"revision": target}
        if self._physical:
            body["physical"] = True
        try:
            await self._call("/v3/kv/compaction", body, idempotent=True)
        except _GatewayError as e:
            if _MSG_COMPACTED not in e.message:
                raise await self._revision_error(e, revision) from None
            # Someone compacted this far or further already.
        self._compacted = max(self._compacted, target)

    # ------------------------------------------------------------------ diagnostics

    async def stats(self) -> StoreStats:
        status = await self._call("/v3/maintenance/status", {}, idempotent=True)
        keys = await self._call(
            "/v3/kv/range",
            {
                "key": _b64(self._prefix_b or b"\x00"),
                "range_end": _b64(_prefix_end(self._prefix_b)),
                "count_only": True,
            },
            idempotent=True,
        )
        return StoreStats(
            revision=int(keys["header"]["revision"]),
            compacted=self._compacted,
            keys=int(keys.get("count", 0)),
            db_size_bytes=int(status.get("dbSize", 0)),
            extra={
                "db_size_in_use_bytes": int(status.get("dbSizeInUse", 0)),
                "raft_term": int(status.get("raftTerm", 0)),
                "watchers": len(self._watches),
            },
        )


def _check_value(value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"store values must be bytes, got {type(value).__name__}")


def _range_kvs(txn: dict[str, Any]) -> list[dict[str, Any]]:
    responses = txn.get("responses") or [{}]
    kvs: list[dict[str, Any]] = responses[0].get("response_range", {}).get("kvs", [])
    return kvs


def _describe(e: BaseException) -> str:
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate rejected ({e.certificate_error})"
    if isinstance(e, aiohttp.ClientConnectorSSLError):
        return f"TLS handshake failed ({e.os_error})"
    if isinstance(e, aiohttp.ClientConnectorError):
        if isinstance(e.os_error, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect ({e.os_error.strerror or e.os_error})"
    if isinstance(e, aiohttp.ConnectionTimeoutError):
        return "connect timed out"
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


def _gateway_error(status: int, raw: bytes, endpoint: str) -> _GatewayError:
    try:
        body = json.loads(raw)
        code = int(body.get("code", 0))
        message = str(body.get("message") or body.get("error") or "")
    except (ValueError, AttributeError):
        code, message = 0, raw[:200].decode("utf-8", "replace")
    if status == 404 and not code:
        message = (
            f"HTTP 404 from {endpoint}: not an etcd v3.4+ client URL with the JSON gateway "
            "(etcd --enable-grpc-gateway, on by default)"
        )
    return _GatewayError(code, message or f"HTTP {status}", endpoint)


def _store_error(err: _GatewayError, path: str) -> StoreError:
    message = f"etcd {err.endpoint}: {err.message}"
    if err.code in (_CODE_UNAVAILABLE, _CODE_DEADLINE_EXCEEDED) or (
        err.code == _CODE_UNKNOWN and "deadline exceeded" in err.message
    ):
        if _MSG_NO_LEADER in err.message:
            message += " (the etcd cluster has no leader: has it lost quorum?)"
        return StoreUnavailableError(message)
    if err.code == _CODE_RESOURCE_EXHAUSTED:
        return StoreUnavailableError(
            message + " (etcd is out of space or overloaded: compact and defragment it, or raise its quota)"
        )
    if err.code in (_CODE_UNAUTHENTICATED, _CODE_PERMISSION_DENIED):
        return StoreError(message + " (etcd has authentication on; k8py connects with client certificates)")
    if err.code == _CODE_INVALID_ARGUMENT and "too large" in err.message:
        return StoreError(message + " (raise etcd's --max-request-bytes)")
    return StoreError(f"{message} ({path})")


class EtcdWatch:
    """An open watch on an :class:`EtcdStore` (see :class:`~k8py.storage.interface.Watch`).

    A reader task holds the ``/v3/watch`` stream and puts responses into a
    bounded queue; when the consumer lags, the queue fills, the task stops
    reading, and etcd's own flow control takes over (it keeps the watcher in
    its "unsynced" set and catches it up from its history later).
    """

    def __init__(self, store: EtcdStore, prefix: str, start_revision: int, progress_notify: bool) -> None:
        self._store = store
        self.prefix = prefix
        self._start = start_revision
        self._next = start_revision  # first revision not yet handed to the queue
        self._progress = progress_notify
        self._queue: asyncio.Queue[WatchResponse | BaseException | None] = asyncio.Queue(store._watch_buffer)
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def _begin(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"k8py-etcd-watch {self.prefix}"
        )

    def __aiter__(self) -> EtcdWatch:
        return self

    async def __anext__(self) -> WatchResponse:
        if self._closed:
            raise StopAsyncIteration
        item = await self._queue.get()
        if self._closed or item is None:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            await self.close()
            raise item
        return item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._store._watches.discard(self)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        # Wake a consumer blocked in __anext__.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    # ------------------------------------------------------------------ reader task

    async def _run(self) -> None:
        try:
            self._store._check_revision(self._start)
            await self._stream_loop()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - delivered to the consumer, in order
            await self._queue.put(e)

    async def _stream_loop(self) -> None:
        store = self._store
        failing_since: float | None = None
        backoff = 0.05
        index = store._active
        loop = asyncio.get_running_loop()
        while True:
            endpoint = store.endpoints[index]
            try:
                async for _ in self._stream(endpoint):
                    # Established: the stream works again.
                    failing_since = None
                    backoff = 0.05
                problem = "stream ended"
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
                problem = _describe(e)
            except _GatewayError as e:
                if e.code not in (_CODE_UNAVAILABLE, _CODE_DEADLINE_EXCEEDED, 0):
                    raise _store_error(e, "/v3/watch") from None
                problem = e.message
            now = loop.time()
            if failing_since is None:
                failing_since = now
            elif now - failing_since > store._watch_retry_timeout:
                raise StoreUnavailableError(
                    f"etcd watch on {self.prefix!r} could not be re-established for "
                    f"{store._watch_retry_timeout:.0f}s ({endpoint}: {problem})"
                )
            log.info(
                "etcd watch on %r: %s: %s; re-opening from revision %d",
                self.prefix,
                endpoint,
                problem,
                self._next,
            )
            index = (index + 1) % len(store.endpoints)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _stream(self, endpoint: str) -> Any:
        """One ``/v3/watch`` stream; yields once it is established. Returns
        when the server ends the stream; raises on errors."""
        store = self._store
        assert store._watch_session is not None
        full = store._key(self.prefix)
        create = {
            "key": _b64(full or b"\x00"),
            "range_end": _b64(_prefix_end(full)),
            "start_revision": self._next,
            "prev_kv": True,
            "progress_notify": self._progress,
        }
        body = json.dumps({"create_request": create}, separators=(",", ":"))
        async with store._watch_session.post(
            endpoint + "/v3/watch", data=body, headers=_JSON_HEADERS
        ) as resp:
            if resp.status != 200:
                raise _gateway_error(resp.status, await resp.read(), endpoint)
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                # One JSON document per line; a large one spans many chunks.
                while (nl := buf.find(b"\n")) >= 0:
                    line, buf = buf[:nl], buf[nl + 1 :]
                    if line.strip() and await self._handle(json.loads(line), endpoint):
                        yield None

    async def _handle(self, msg: dict[str, Any], endpoint: str) -> bool:
        """Process one stream message; True when it says the watch is created."""
        store = self._store
        if "error" in msg and "result" not in msg:
            err = msg["error"]
            raise _GatewayError(int(err.get("grpc_code", 0)), str(err.get("message", err)), endpoint)
        result = msg.get("result", {})
        header = result.get("header", {})
        rev = store._see(header) if header else 0
        if result.get("canceled"):
            compact_rev = int(result.get("compact_revision", 0))
            if compact_rev:  # etcd's compaction revision is our compacted revision
                store._compacted = max(store._compacted, compact_rev)
                raise CompactedError(self._next, store._compacted)
            raise StoreError(
                f"etcd {endpoint} canceled the watch on {self.prefix!r}: "
                f"{result.get('cancel_reason') or 'no reason given'}"
            )
        if result.get("created"):
            return True
        raw_events = result.get("events")
        if raw_events:
            events = [self._event(e) for e in raw_events]
            last = events[-1].kv.mod_revision
            self._next = last + 1
            # Why the last event's revision, not the header's: while etcd
            # catches an unsynced watcher up, the header carries the store's
            # current revision, ahead of what this batch delivers.
            await self._queue.put(WatchResponse(events, last))
        elif self._progress and rev:
            # A progress notification: etcd sends them only to synced
            # watchers, so everything up to ``rev`` has been delivered.
            revision = max(rev, self._next - 1)
            self._next = revision + 1
            await self._queue.put(WatchResponse([], revision))
        return False

    def _event(self, raw: dict[str, Any]) -> Event:
        store = self._store
        kv = store._kv(raw["kv"])
        prevd = raw.get("prev_kv")
        is_delete = raw.get("type") == "DELETE"
        if not is_delete and kv.create_revision == kv.mod_revision:
            return Event(EventType.PUT, kv, None)  # a create
        if not prevd:
            # etcd reads the previous value at ``revision - 1``; it is missing
            # only when that was compacted (by another client: our own
            # compactions keep it). Without it the event cannot be told right.
            store._compacted = max(store._compacted, kv.mod_revision)
            raise CompactedError(self._next, store._compacted)
        prev = store._kv(prevd)
        if is_delete:
            kv = KeyValue(kv.key, prev.value, prev.create_revision, kv.mod_revision)
            return Event(EventType.DELETE, kv, prev)
        return Event(EventType.PUT, kv, prev)
