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
import copy
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web
from tests.helpers.wardle import ServingFiles, serve_tls

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
        self.tls = ServingFiles(names, "webhooks-")
        self.ca_bundle = base64.b64encode(self.tls.ca_pem.encode()).decode()
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
        self.port = await serve_tls(self.runner, self.port, self.tls.server_context())

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
        self.tls.remove()


def convert_widget(obj: dict[str, Any], desired: str) -> dict[str, Any]:
    """The conversion-webhook tests' conversion of their Widget CRD: v1's ``spec.hostPort``
    ("host:port") is v2's ``spec.host`` and ``spec.port``."""
    out = copy.deepcopy(obj)
    out["apiVersion"] = desired
    spec = out.setdefault("spec", {})
    if desired.endswith("/v2") and "hostPort" in spec:
        host, _, port = spec.pop("hostPort").rpartition(":")
        spec["host"], spec["port"] = host, int(port)
    elif desired.endswith("/v1") and "host" in spec:
        spec["hostPort"] = f"{spec.pop('host')}:{spec.pop('port')}"
    return out
