"""An admission webhook backend for the tests: HTTPS on a loopback port with a serving certificate
for ``<service>.<namespace>.svc`` signed by a CA of the test's own (the configurations'
``caBundle``), on its own event loop in a thread. Each path answers AdmissionReviews with a
function of the review (``handlers``); every review received is recorded (``seen``)::

    hooks = WebhookThread(("hooks.webhooks.svc",), {"/deny": deny_fn}).start()
    hooks.port, hooks.ca_bundle          # for an EndpointSlice and the configuration
    hooks.stop() / hooks.start()         # down: the port refuses connections
    hooks.close()
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import ssl
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web
from tests.helpers.wardle import serving_tls

Review = dict[str, Any]


def allow(review: Review, **extra: Any) -> Review:
    """The answer allowing ``review``'s request (``extra`` goes into ``response``)."""
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True, **extra}}


def deny(review: Review, message: str, code: int = 403, reason: str = "Forbidden") -> Review:
    """A refusal as controller-runtime's ``admission.Denied`` words it (403 Forbidden by default)."""
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": False,
                         "status": {"code": code, "reason": reason, "message": message}}}


def json_patch(review: Review, ops: list[dict[str, Any]], **extra: Any) -> Review:
    return allow(review, patchType="JSONPatch", patch=base64.b64encode(json.dumps(ops).encode()).decode(), **extra)


class WebhookThread:
    def __init__(self, names: tuple[str, ...], handlers: dict[str, Callable[[Review], Any]]) -> None:
        self.handlers = handlers
        ca, cert, key = serving_tls(names)
        self.ca_bundle = base64.b64encode(ca.encode()).decode()
        self._dir = tempfile.mkdtemp(prefix="webhooks-")
        self.cert_file, self.key_file = os.path.join(self._dir, "tls.crt"), os.path.join(self._dir, "tls.key")
        with open(self.cert_file, "wb") as f:
            f.write(cert)
        with open(self.key_file, "wb") as f:
            f.write(key)
        self.port = 0
        self.seen: list[tuple[str, Review]] = []  # (path with query, review)
        self.runner: web.AppRunner | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="webhooks", daemon=True)
        self.thread.start()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _handle(self, req: web.Request) -> web.Response:
        review = await req.json()
        self.seen.append((req.path_qs, review))
        fn = self.handlers.get(req.path)
        if fn is None:
            return web.Response(status=404, text="no such webhook")
        answer = fn(review)
        if inspect.isawaitable(answer):  # a handler may take its time (timeouts)
            answer = await answer
        return web.json_response(answer)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=ctx, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def start(self) -> WebhookThread:
        self._run(self._start())
        return self

    def stop(self) -> None:
        self._run(self._stop())

    def close(self) -> None:
        self._run(self._stop())
        self._run(asyncio.sleep(0.25))  # let TLS transports finish closing
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        for f in (self.cert_file, self.key_file):
            os.unlink(f)
        os.rmdir(self._dir)
