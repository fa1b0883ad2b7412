"""``/healthz``, ``/livez`` and ``/readyz`` as kube-apiserver serves them.

Each endpoint runs a list of named checks (kube-apiserver's names, where we
have the same thing):

==================================  ========  ========  ========
check                               healthz   livez     readyz
==================================  ========  ========  ========
``ping``                            yes       yes       yes
``log``                             yes       yes       yes
``etcd``                            yes       yes       yes
``etcd-readiness``                                      yes
``poststarthook/k8py-bootstrap``    yes       yes       yes
``shutdown``                                            yes
==================================  ========  ========  ========

- ``ping``: the server answers HTTP (it always passes when it runs at all).
- ``log``: no log handler is stuck: each one's lock can be taken and its
  stream is open (a handler blocked on a full pipe would freeze every
  component that logs).
- ``etcd`` and ``etcd-readiness``: the store really answers, within
  ``STORE_TIMEOUT`` seconds (kube's ``--etcd-healthcheck-timeout`` and
  ``--etcd-readycheck-timeout``, both 2 s): :meth:`Store.health`, which for
  etcd is a linearizable read (so it fails without a quorum) and for SQLite a
  round trip through the writer thread plus a read. kube names it ``etcd``
  whatever the backend, as k3s does on kine. Concurrent probes share one
  store request, so a flood of probes never floods the store.
- ``poststarthook/k8py-bootstrap``: the start-up objects (namespaces,
  priority classes, the ``kubernetes`` Service) exist and the API listens.
  Once passed, it stays passed.
- ``shutdown``: fails once the server has begun shutting down, so load
  balancers stop sending it requests (readyz only: the process is still live).

The response format is kube's (``staging/src/k8s.io/apiserver/pkg/server/
healthz``): ``ok`` on success; with ``?verbose`` one ``[+]name ok`` line per
check and ``<endpoint> check passed``; on failure, always verbose, status 500,
``[-]name failed: reason withheld`` and ``<endpoint> check failed`` (reasons go
to the log, not to anonymous callers). ``?exclude=name`` (repeatable) skips a
check (``[+]name excluded: ok``). ``/<endpoint>/<check>`` runs one check:
``ok``, or 500 ``internal server error: <reason>`` (the reason only for
authenticated callers: these paths are public here).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from k8py.apiserver.app import APIServerApp

__all__ = ["Health", "serve_health"]

log = logging.getLogger("k8py.apiserver.health")

STORE_TIMEOUT = 2.0  # kube's --etcd-healthcheck-timeout / --etcd-readycheck-timeout
LOG_LOCK_TIMEOUT = 1.0  # seconds a log handler's lock may be held before "log" fails

_HEADERS = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}


class CheckFailed(Exception):
    """A health check's failure; the message says why (logged, shown to authenticated callers)."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    run: Callable[[], Awaitable[None]]  # raises on failure


class Health:
    """The checks of one API server and the three endpoints built from them."""

    def __init__(self, app: APIServerApp, *, store_timeout: float | None = None) -> None:
        self._app = app
        self._store_timeout = STORE_TIMEOUT if store_timeout is None else store_timeout
        self._store_probe: asyncio.Task[None] | None = None
        self._started = False  # the post-start hook has passed once (latched, as kube's)
        ping = Check("ping", self._ping)
        logc = Check("log", self._log)
        etcd = Check("etcd", self._store)
        hook = Check("poststarthook/k8py-bootstrap", self._bootstrap)
        self.endpoints: dict[str, list[Check]] = {
            "healthz": [ping, logc, etcd, hook],
            "livez": [ping, logc, etcd, hook],
            "readyz": [ping, logc, etcd, Check("etcd-readiness", self._store), hook,
                       Check("shutdown", self._shutdown)],
        }

    # ------------------------------------------------------------------ checks

    async def _ping(self) -> None:
        return None  # answering at all is the check

    async def _log(self) -> None:
        handlers: list[logging.Handler] = []
        seen: set[int] = set()
        for logger in (logging.getLogger(), logging.getLogger("k8py")):
            for h in logger.handlers:
                if id(h) not in seen:
                    seen.add(id(h))
                    handlers.append(h)
        if not handlers:
            return
        # Why a thread: a handler stuck in write() holds its lock; waiting for
        # it on the event loop would freeze the server the check is about.
        problem = await asyncio.get_running_loop().run_in_executor(None, _probe_log_handlers, handlers)
        if problem:
            raise CheckFailed(problem)

    async def _store(self) -> None:
        # One store request however many checks and callers ask at once.
        probe = self._store_probe
        if probe is None or probe.done():
            probe = asyncio.get_running_loop().create_task(self._probe_store(), name="k8py-health-store")
            # Retrieved here too: every caller may have gone (cancelled) before it ends.
            probe.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._store_probe = probe
        await asyncio.shield(probe)

    async def _probe_store(self) -> None:
        try:
            await self._app.api.objects.health(self._store_timeout)
        except Exception as e:  # noqa: BLE001 - any store failure is the check's failure
            raise CheckFailed(str(e) or type(e).__name__) from None

    def _observe(self) -> None:
        if self._app.ready:
            self._started = True

    async def _bootstrap(self) -> None:
        self._observe()
        if not self._started:
            raise CheckFailed("not finished")

    async def _shutdown(self) -> None:
        self._observe()
        if self._started and not self._app.ready:
            raise CheckFailed("process is shutting down")

    # ------------------------------------------------------------------ HTTP

    async def serve(self, request: web.Request) -> web.StreamResponse:
        endpoint, _, sub = request.path.lstrip("/").partition("/")
        checks = self.endpoints.get(endpoint)
        if checks is None:
            return _not_found()
        if sub:
            return await self._serve_one(request, checks, sub)
        return await self._serve_all(request, endpoint, checks)

    async def _serve_one(self, request: web.Request, checks: list[Check], name: str) -> web.StreamResponse:
        check = next((c for c in checks if c.name == name), None)
        if check is None:
            return _not_found()
        err = await _run(check)
        if err is None:
            return web.Response(text="ok", headers=_HEADERS)
        log.warning("%s check failed: %s", name, err)
        reason = err if self._may_see_reasons(request) else "reason withheld"
        return web.Response(text=f"internal server error: {reason}\n", status=500, headers=_HEADERS)

    async def _serve_all(self, request: web.Request, endpoint: str, checks: list[Check]) -> web.StreamResponse:
        excluded = list(dict.fromkeys(request.query.getall("exclude", [])))
        to_run = [c for c in checks if c.name not in excluded]
        # Concurrently: the slowest check bounds the answer, not their sum.
        results = dict(zip((c.name for c in to_run), await asyncio.gather(*(_run(c) for c in to_run)), strict=True))
        lines: list[str] = []
        failed: list[str] = []
        for c in checks:
            if c.name in excluded:
                lines.append(f"[+]{c.name} excluded: ok\n")
                continue
            err = results[c.name]
            if err is None:
                lines.append(f"[+]{c.name} ok\n")
            else:
                # The reason is logged, never sent: these endpoints are public.
                lines.append(f"[-]{c.name} failed: reason withheld\n")
                failed.append(f"[-]{c.name} failed: {err}")
        unknown = [name for name in excluded if all(c.name != name for c in checks)]
        if unknown:
            quoted = ",".join(_go_quote(n) for n in unknown)
            lines.append(f"warn: some health checks cannot be excluded: no matches for {quoted}\n")
        if failed:
            log.warning("%s check failed:\n%s", endpoint, "\n".join(failed))
            body = "".join(lines) + f"{endpoint} check failed\n"
            return web.Response(text=body, status=500, headers=_HEADERS)
        if "verbose" not in request.query:
            return web.Response(text="ok", headers=_HEADERS)
        return web.Response(text="".join(lines) + f"{endpoint} check passed\n", headers=_HEADERS)

    def _may_see_reasons(self, request: web.Request) -> bool:
        authn = self._app.authn
        if authn is None:  # no authentication configured (in-process tests): everyone is trusted
            return True
        try:
            return authn.authenticate(request) is not None
        except Exception:  # noqa: BLE001 - a bad credential just means "anonymous" here
            return False


async def _run(check: Check) -> str | None:
    """None if the check passes, else why not."""
    try:
        await check.run()
    except CheckFailed as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - a check that breaks has failed
        return f"{type(e).__name__}: {e}"
    return None


def _probe_log_handlers(handlers: list[logging.Handler]) -> str:
    """In a thread: '' if every handler's lock can be taken and its stream is open."""
    for h in handlers:
        lock = h.lock
        if lock is not None:
            if not lock.acquire(timeout=LOG_LOCK_TIMEOUT):
                return f"log handler {h!r} has been busy for more than {LOG_LOCK_TIMEOUT:g}s"
            lock.release()
        stream = getattr(h, "stream", None)
        if stream is not None and getattr(stream, "closed", False):
            return f"log handler {h!r} writes to a closed stream"
    return ""


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _not_found() -> web.Response:
    return web.Response(text="404 page not found\n", status=404, headers=_HEADERS)


_HEALTH: weakref.WeakKeyDictionary[APIServerApp, Health] = weakref.WeakKeyDictionary()


async def serve_health(app: APIServerApp, request: web.Request) -> web.StreamResponse:
    """Answer a ``/healthz``, ``/livez`` or ``/readyz`` request for ``app``."""
    health = _HEALTH.get(app)
    if health is None:
        health = _HEALTH[app] = Health(app)
    return await health.serve(request)
