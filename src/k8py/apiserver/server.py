"""Start order, as k3s: store -> API -> bootstrap objects -> ready. Clean shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from k8py.api import errors
from k8py.api.registry import Registry
from k8py.apiserver import audit, httplog
from k8py.apiserver.admission import Admission
from k8py.apiserver.admission import config as admission_config
from k8py.apiserver.app import APIServerApp
from k8py.apiserver.objects import Objects
from k8py.apiserver.registry import build as build_strategies
from k8py.apiserver.rest import ResourceAPI
from k8py.apiserver.secretsencrypt import SecretsEncryption
from k8py.config import ServerConfig
from k8py.storage.encryption import EncryptionConfig
from k8py.storage.encryption import load_config as load_encryption_config
from k8py.storage.encryption import summary as encryption_summary
from k8py.storage.interface import Store

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
        # kube's endpoint reconciler: the `kubernetes` Service's Endpoints and EndpointSlice name this
        # server's advertised address (what pods reach through the Service), kept current on start
        addr = advertise_address(self.config)
        await self._reconcile(ep_kind, "default", {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": addr}],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}, ("subsets",))
        slice_kind = reg.by_resource("discovery.k8s.io", "v1", "endpointslices")
        assert slice_kind
        await self._reconcile(slice_kind, "default", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv6" if ":" in addr else "IPv4",
            "endpoints": [{"addresses": [addr], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}, ("addressType", "endpoints", "ports"))

    async def _reconcile(self, kind: Any, ns: str | None, obj: dict[str, Any], fields: tuple[str, ...]) -> None:
        """Create ``obj``, or bring ``fields`` of the stored one to it."""
        if await self.objects.try_get(kind, ns, obj["metadata"]["name"]) is None:
            await self._ensure(kind, ns, obj)
            return

        async def update(cur: dict[str, Any]) -> dict[str, Any] | None:
            if all(cur.get(f) == obj[f] for f in fields):
                return None
            return {**cur, **{f: obj[f] for f in fields}}

        await self.objects.guaranteed_update(kind, ns, obj["metadata"]["name"], update)

    async def _ensure(self, kind: Any, ns: str | None, obj: dict[str, Any]) -> None:
        if await self.objects.try_get(kind, ns, obj["metadata"]["name"]) is not None:
            return
        try:
            await self.api.create_object(None, kind, ns, obj, False, "kube-apiserver")  # type: ignore[arg-type]
        except errors.StatusError as e:
            if e.code != 409:
                raise


def advertise_address(config: ServerConfig) -> str:
    """The address this server is reached at (kube-apiserver's --advertise-address): the bind
    address when it is a specific one, else this node's first address (--node-ip), else the
    address of the default route, else loopback."""
    if config.bind_address not in ("0.0.0.0", "::", ""):
        return config.bind_address
    if config.node_ips:
        return config.node_ips[0]
    from k8py.hostnet import default_route_ip

    return default_route_ip(socket.AF_INET) or default_route_ip(socket.AF_INET6) or "127.0.0.1"


def build(config: ServerConfig, store: Store, *, authenticator: Any = None, authorizer: Any = None,
          encryption: EncryptionConfig | None = None) -> ControlPlane:
    registry = Registry()
    objects = Objects(store, encryption)
    admission = Admission(objects, registry, config=admission_config.from_file(config.admission_control_config_file))
    admission.set_authorizer(authorizer)  # CertificateApproval and CertificateSigning decide with it
    strategies = build_strategies(objects, registry, config.service_cidr)
    api = ResourceAPI(objects, registry, admission, strategies, authorizer)
    host = config.bind_address if config.bind_address not in ("0.0.0.0", "::", "") else "127.0.0.1"
    http = APIServerApp(api, registry, authenticator, authorizer, f"{host}:{config.https_listen_port}")
    # service-account tokens: TokenRequest, their authentication, TokenReview, OIDC discovery
    from k8py.apiserver.serviceaccounts import ServiceAccountTokens

    sa_tokens = ServiceAccountTokens(config, objects, registry, http.server_address)
    api.sa_tokens = http.sa_tokens = sa_tokens
    api.authenticator = authenticator
    if hasattr(authenticator, "use_service_account_tokens"):
        authenticator.use_service_account_tokens(sa_tokens)
    # the aggregation layer; its proxy client certificate is set by the composition root (cli/process.py)
    from k8py.apiserver.aggregator import Aggregator

    http.aggregator = Aggregator(objects, registry, None, on_change=http.discovery.invalidate)
    admission.set_service_resolver(http.aggregator)  # admission webhooks of Services dial their endpoints
    # CRD conversion webhooks: Objects awaits them when a custom resource changes version
    from k8py.apiserver.conversionwebhook import ConversionWebhooks

    objects.converter = ConversionWebhooks(registry.all)
    objects.converter.service_resolver = http.aggregator
    # CustomResourceDefinitions: their controllers, and their custom resources served
    from k8py.apiserver.crd_controller import CRDController

    http.crds = CRDController(api, objects, registry, on_change=http.discovery.invalidate)
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
    # A malformed encryption config or audit policy refuses to start (ConfigFileError names the line).
    encryption = load_encryption(config)
    audit_log = audit.from_config(config)
    await store.start()
    cp = build(config, store, authenticator=authenticator, authorizer=authorizer, encryption=encryption)
    cp.http.secrets_encrypt = SecretsEncryption(cp.objects, config)
    if audit_log is not None:
        cp.http.audit = audit_log
        audit_log.start()
    await cp.bootstrap()
    cp.tasks = [asyncio.create_task(_compactor(cp), name="compactor")]
    if hasattr(authorizer, "start"):
        # RBAC: the bootstrap policy reconciled and the policy cache loaded before serving
        cp.tasks.append(await authorizer.start(cp))
    # admission plugins that decide from a watched copy of objects load it before serving
    cp.tasks.extend(await cp.api.admission.start())
    if cp.http.aggregator is not None:  # APIServices, Services and EndpointSlices loaded before serving
        cp.tasks.extend(await cp.http.aggregator.start())
    if cp.http.crds is not None:  # the CRDs listed (their custom resources served) before serving
        cp.tasks.extend(await cp.http.crds.start())
    app = cp.http.build()
    # kube's httplog (one debug line per request, watches when they end) instead of aiohttp's
    # access log, which misses requests the client abandons. Installed only when its lines are
    # logged (--debug): a middleware costs every request something.
    if httplog.log.isEnabledFor(logging.DEBUG):
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
    if cp.http.audit is not None:
        await cp.http.audit.close()  # after the last request: its events are written
    if cp.objects.converter is not None:
        await cp.objects.converter.close()
    await cp.store.close()


def load_encryption(config: ServerConfig) -> EncryptionConfig | None:
    """The EncryptionConfiguration: the flag's file, or the one generated in the data directory
    (``k8py server`` makes it on first start); None when there is neither."""
    path = config.encryption_config_path
    if not config.encryption_provider_config and not os.path.exists(path):
        return None
    encryption = load_encryption_config(path)
    log.info("encryption at rest: %s", encryption_summary(encryption))
    return encryption


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
        except Exception as e:  # noqa: BLE001 - keep compacting on the next tick
            log.warning("compaction failed: %s", e)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
