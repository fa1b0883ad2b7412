"""Start order, as k3s: store -> API -> bootstrap objects -> ready. Clean shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from k8py.api import errors
from k8py.api.registry import Registry
from k8py.apiserver import httplog
from k8py.apiserver.admission import Admission
from k8py.apiserver.app import APIServerApp
from k8py.apiserver.objects import Objects
from k8py.apiserver.rest import ResourceAPI
from k8py.config import ServerConfig
from k8py.storage.interface import Store, StoreError

log = logging.getLogger("k8py.server")

BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SYSTEM_PRIORITY_CLASSES = (("system-node-critical", 2000001000), ("system-cluster-critical", 2000000000))


@dataclass
class ControlPlane:
    """Everything one API server process runs. Built by :func:`build`."""

    config: ServerConfig
    store: Store
    registry: Registry
    objects: Objects
    api: ResourceAPI
    http: APIServerApp
    runner: web.AppRunner | None = None
    tasks: list[asyncio.Task[Any]] | None = None

    async def bootstrap(self) -> None:
        """Create what kube-apiserver's post-start hooks create, if missing."""
        reg = self.registry
        ns_kind = reg.by_resource("", "v1", "namespaces")
        svc_kind = reg.by_resource("", "v1", "services")
        ep_kind = reg.by_resource("", "v1", "endpoints")
        pc_kind = reg.by_resource("scheduling.k8s.io", "v1", "priorityclasses")
        assert ns_kind and svc_kind and ep_kind and pc_kind
        for name in BOOTSTRAP_NAMESPACES:
            await self._ensure(ns_kind, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for name, value in SYSTEM_PRIORITY_CLASSES:
            await self._ensure(pc_kind, None, {
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                "value": value, "description": "Used for system critical pods that must not be moved from their "
                "current node." if name == "system-node-critical" else
                "Used for system critical pods that must run in the cluster, but can be moved to another node "
                "if necessary."})
        port = self.config.https_listen_port
        await self._ensure(svc_kind, "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}})
        addr = self.config.bind_address if self.config.bind_address not in ("0.0.0.0", "::", "") else "127.0.0.1"
        await self._ensure(ep_kind, "default", {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": addr}],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]})

    async def _ensure(self, kind: Any, ns: str | None, obj: dict[str, Any]) -> None:
        if await self.objects.try_get(kind, ns, obj["metadata"]["name"]) is not None:
            return
        try:
            await self.api.create_object(None, kind, ns, obj, False, "kube-apiserver")  # type: ignore[arg-type]
        except errors.StatusError as e:
            if e.code != 409:
                raise


def build(config: ServerConfig, store: Store, *, authenticator: Any = None, authorizer: Any = None) -> ControlPlane:
    registry = Registry()
    objects = Objects(store)
    admission = Admission(objects, registry, config.service_cidr)
    api = ResourceAPI(objects, registry, admission, authorizer)
    host = config.bind_address if config.bind_address not in ("0.0.0.0", "::", "") else "127.0.0.1"
    http = APIServerApp(api, registry, authenticator, authorizer, f"{host}:{config.https_listen_port}")
    return ControlPlane(config, store, registry, objects, api, http)


async def start(config: ServerConfig, *, store: Store | None = None, ssl_context: Any = None,
                authenticator: Any = None, authorizer: Any = None) -> ControlPlane:
    """Start a control plane in the running loop (used by run_server and by tests)."""
    if store is None:
        from k8py.storage.factory import open_store

        os.makedirs(os.path.dirname(config.db_path), mode=0o700, exist_ok=True)
        store = open_store(config.datastore_endpoint, config.db_path, prefix=config.datastore_prefix,
                           cafile=config.datastore_cafile, certfile=config.datastore_certfile,
                           keyfile=config.datastore_keyfile,
                           compaction_interval=config.compact_interval_seconds,
                           compaction_retention=config.compact_keep_revisions)
    await store.start()
    cp = build(config, store, authenticator=authenticator, authorizer=authorizer)
    await cp.bootstrap()
    cp.tasks = [asyncio.create_task(_compactor(cp), name="compactor")]
    app = cp.http.build()
    # kube's httplog (one debug line per request, watches when they end) instead of aiohttp's
    # access log, which misses requests the client abandons.
    httplog.install(app)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, config.bind_address, config.https_listen_port, ssl_context=ssl_context,
                       reuse_address=True, backlog=1024)
    await site.start()
    cp.runner = runner
    cp.http.ready = True
    return cp


async def stop(cp: ControlPlane) -> None:
    cp.http.ready = False
    for t in cp.tasks or []:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    if cp.runner is not None:
        await cp.runner.cleanup()
    await cp.store.close()


async def _compactor(cp: ControlPlane) -> None:
    """Compact old revisions on a schedule, as kube-apiserver asks etcd to every 5 minutes."""
    interval = cp.config.compact_interval_seconds
    keep = cp.config.compact_keep_revisions
    while True:
        await asyncio.sleep(interval)
        try:
            rev = await cp.store.current_revision()
            target = rev - keep
            if target > await cp.store.compacted_revision():
                await cp.store.compact(target)
                log.info("compacted store history up to revision %d", target)
        except Exception as e:  # keep compacting on the next tick
            log.warning("compaction failed: %s", e)


def run_server(config: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio works too
        pass
    return asyncio.run(_main(config))


async def _main(config: ServerConfig) -> int:
    from k8py import pki as pki_mod
    from k8py.apiserver.authn import Authenticator
    from k8py.apiserver.authz import Authorizer

    t0 = time.monotonic()
    p = pki_mod.ensure_pki(config)
    ssl_ctx = pki_mod.server_ssl_context(p) if config.tls else None
    authn = Authenticator(config, p)
    authz = Authorizer()
    try:
        cp = await start(config, ssl_context=ssl_ctx, authenticator=authn, authorizer=authz)
    except StoreError as e:
        log.error("cannot open the datastore: %s", e)
        return 1
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", config.bind_address, config.https_listen_port, e)
        return 1
    stop_ev = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_ev.set)
    components = start_components(config, p, stop_ev)
    scheme = "https" if config.tls else "http"
    log.info("k8py API server ready on %s://%s:%d (store %s, revision %d, kubeconfig %s) in %.2fs",
             scheme, config.bind_address, config.https_listen_port,
             config.datastore_endpoint or f"sqlite:{config.db_path}", await cp.store.current_revision(),
             config.kubeconfig_path, time.monotonic() - t0)
    await stop_ev.wait()
    log.info("shutting down")
    for task, client in components:
        try:
            await asyncio.wait_for(task, 15)
        except (TimeoutError, asyncio.CancelledError, Exception) as e:  # stop the rest regardless
            log.warning("component %s did not stop cleanly: %s", task.get_name(), e or type(e).__name__)
        await client.close()
    await stop(cp)
    log.info("stopped")
    return 0


def loopback_client(config: ServerConfig, pki: Any, user: str, groups: tuple[str, ...], component: str) -> Any:
    """An API client for an in-process component, with its own client certificate: components
    talk to this server over HTTPS like any other client (the one rule of the architecture)."""
    from k8py import pki as pki_mod
    from k8py.client.api import Client
    from k8py.client.config import ClientConfig

    host = config.bind_address if config.bind_address not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    cert, key = pki_mod.issue_client_certificate(pki, user, groups)
    scheme = "https" if config.tls else "http"
    cc = ClientConfig(server=f"{scheme}://{host}:{config.https_listen_port}", ca_file=pki.ca_cert, cert_data=cert,
                      key_data=key)
    return Client(cc, component=component)


def start_components(config: ServerConfig, pki: Any, stop_ev: asyncio.Event) -> list[tuple[asyncio.Task[Any], Any]]:
    """The controller manager and the scheduler in this process, as k3s runs them."""
    out: list[tuple[asyncio.Task[Any], Any]] = []
    if not config.disable_controller_manager:
        from k8py.controllers.manager import ControllerManager

        client = loopback_client(config, pki, "system:kube-controller-manager", (), "kube-controller-manager")
        mgr = ControllerManager(client, identity=f"{config.node_name or socket.gethostname()}_{os.getpid()}",
                                options={"root_ca_file": pki.ca_cert})  # kube's --root-ca-file
        out.append((asyncio.create_task(mgr.run(stop_ev), name="controller-manager"), client))
    if not config.disable_scheduler:
        from k8py.scheduler import Scheduler

        client = loopback_client(config, pki, "system:kube-scheduler", (), "kube-scheduler")
        sched = Scheduler(client, None, identity=f"{config.node_name or socket.gethostname()}_{os.getpid()}")
        out.append((asyncio.create_task(sched.run(stop_ev), name="scheduler"), client))
    return out


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
