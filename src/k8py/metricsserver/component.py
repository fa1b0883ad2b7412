"""metrics-server as a k8py component: the scrape loop, the API it serves, and its registration.

It runs as an API client (user ``system:metrics-server``, RBAC as kube's metrics-server manifest
binds its service account, plus what it needs to register itself) and does what the metrics-server
Deployment of k3s does:

- keeps informers of the Nodes and of the running Pods (``status.phase=Running``), and reads
  ``kube-system/extension-apiserver-authentication`` every 10 s for the CAs and headers its
  delegated authentication trusts (:mod:`.auth`);
- every ``resolution`` (15 s) scrapes every node's kubelet (:mod:`.scraper`) and stores the batch
  (:mod:`.storage`);
- serves ``metrics.k8s.io/v1beta1`` over HTTPS (:mod:`.server`) with a certificate of its own CA
  (:mod:`.certs`);
- publishes what kube's manifest deploys, so the aggregator proxies the group to it: the Service
  ``kube-system/metrics-server`` (no selector, port 443 ``https``), an EndpointSlice
  ``metrics-server-k8py`` naming the address and port it listens on (as the cluster DNS publishes
  itself), and the APIService ``v1beta1.metrics.k8s.io`` with its CA as ``caBundle``. They are
  written again when they differ (a new port, a new CA). With several servers, only the holder of
  the Lease ``kube-system/metrics-server-k8py`` registers, so one registration stands.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.client.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from k8py.client.informer import SharedInformerFactory
from k8py.client.leaderelection import LeaderElectionConfig, LeaderElector, default_identity
from k8py.metricsserver.auth import CONFIGMAP, AuthConfig, Authorizer, TokenCache, UserInfo
from k8py.metricsserver.certs import ServingFiles, ensure_serving_certificate, service_names
from k8py.metricsserver.scraper import KubeletClient, MetricsGetter, Scraper
from k8py.metricsserver.server import MetricsAPI
from k8py.metricsserver.storage import Storage

__all__ = ["APISERVICE", "SERVICE", "SLICE", "USER", "MetricsServer", "Options"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

USER = "system:metrics-server"
NAMESPACE = "kube-system"
SERVICE = "metrics-server"
SLICE = "metrics-server-k8py"
APISERVICE = "v1beta1.metrics.k8s.io"
MANAGED_BY = "k8py-metrics-server"
AUTH_POLL = 10.0
LEASE_NAME = "metrics-server-k8py"  # held by the metrics-server whose registration stands
REPUBLISH = 300.0

SERVICE_KIND = ("v1", "Service")
SLICE_KIND = ("discovery.k8s.io/v1", "EndpointSlice")
APISERVICE_KIND = ("apiregistration.k8s.io/v1", "APIService")
CONFIGMAP_KIND = ("v1", "ConfigMap")


@dataclass(frozen=True)
class Options:
    listen_host: str  # where to listen ("0.0.0.0" for every address)
    port: int  # 0: any free port (the EndpointSlice says which)
    advertise: str  # the address the API server reaches it at
    cert_dir: str
    resolution: float = 15.0  # metrics-server's --metric-resolution (k3s: 15s)
    scrape_timeout: float = 10.0  # --kubelet-request-timeout


def service(port_name: str = "https") -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": {"k8s-app": "metrics-server"}},
            "spec": {"ports": [{"name": port_name, "port": 443, "protocol": "TCP", "targetPort": port_name,
                                "appProtocol": "https"}]}}


def endpoint_slice(address: str, port: int) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": SLICE, "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": SERVICE, "k8s-app": "metrics-server",
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": "IPv6" if ":" in address else "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True, "serving": True,
                                                                  "terminating": False}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP", "appProtocol": "https"}]}


def apiservice(ca_bundle: bytes) -> Obj:
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": APISERVICE, "labels": {"k8s-app": "metrics-server"}},
            "spec": {"service": {"name": SERVICE, "namespace": NAMESPACE, "port": 443},
                     "group": "metrics.k8s.io", "version": "v1beta1", "caBundle": base64.b64encode(ca_bundle).decode(),
                     "groupPriorityMinimum": 100, "versionPriority": 100}}


class MetricsServer:
    def __init__(self, client: Client, opts: Options, kubelets: MetricsGetter) -> None:
        self.client = client
        self.opts = opts
        self.kubelets = kubelets
        self.storage = Storage(opts.resolution)
        self.scraper = Scraper(kubelets, opts.scrape_timeout)
        self.factory = SharedInformerFactory(client)
        self.nodes = self.factory.informer(("v1", "Node"))
        self.pods = self.factory.informer(("v1", "Pod"), field_selector="status.phase=Running")
        self.auth_config = AuthConfig()
        self.last_tick = 0.0
        self.port = opts.port
        self.files: ServingFiles | None = None
        self._contexts: dict[AuthConfig, ssl.SSLContext] = {}
        self.api = MetricsAPI(self.storage, self.nodes, self.pods, auth_config=lambda: self.auth_config,
                              authorizer=Authorizer(self._subject_access_review),
                              tokens=TokenCache(self._token_review), synced=self._synced,
                              last_tick=lambda: self.last_tick, resolution=opts.resolution)
        self._runner: web.AppRunner | None = None
        self.identity = default_identity()

    def _synced(self) -> bool:
        return self.nodes.has_synced and self.pods.has_synced

    # -- delegated authentication and authorization through the API --------------------------
    async def _token_review(self, token: str) -> UserInfo | None:
        tr = await self.client.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                       body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                             "spec": {"token": token}})
        st = tr.get("status") or {}
        if not st.get("authenticated"):
            return None
        u = st.get("user") or {}
        return UserInfo(u.get("username", ""), tuple(u.get("groups") or ()), u.get("uid", ""),
                        {k: tuple(v) for k, v in (u.get("extra") or {}).items()})

    async def _subject_access_review(self, spec: Obj) -> tuple[bool, str]:
        sar = await self.client.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                                        body={"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                                              "spec": spec})
        st = sar.get("status") or {}
        return bool(st.get("allowed")) and not st.get("denied"), str(st.get("reason") or "")

    async def refresh_auth_config(self) -> None:
        try:
            cm = await self.client.get(CONFIGMAP_KIND, CONFIGMAP, namespace=NAMESPACE)
        except NotFoundError:
            cm = None
        cfg = AuthConfig.from_configmap(cm)
        if cfg != self.auth_config:
            log.info("metrics-server: client CAs from %s/%s %s", NAMESPACE, CONFIGMAP,
                     "loaded" if cm is not None else "not published yet")
            self.auth_config = cfg

    # -- TLS: the context follows the ConfigMap's CAs ----------------------------------------
    def _context(self) -> ssl.SSLContext:
        assert self.files is not None
        cfg = self.auth_config
        ctx = self._contexts.get(cfg)
        if ctx is None:
            ctx = cfg.ssl_context(self.files.cert_file, self.files.key_file)
            self._contexts = {cfg: ctx}  # the newest only
        return ctx

    def _server_context(self) -> ssl.SSLContext:
        assert self.files is not None
        base = AuthConfig().ssl_context(self.files.cert_file, self.files.key_file)
        # the handshake's verify mode is this context's (OpenSSL keeps it when the callback switches
        # contexts); the switched-to context's CAs verify the certificate
        base.verify_mode = ssl.CERT_OPTIONAL

        def pick(sslobj: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
            # each handshake takes the context of the CAs known now (a CA published or changed later)
            sslobj.context = self._context()

        base.sni_callback = pick
        return base

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        dns = ("localhost", *service_names(SERVICE, NAMESPACE))
        ips = tuple(dict.fromkeys(a for a in (self.opts.advertise, "127.0.0.1") if a))
        self.files = await asyncio.to_thread(ensure_serving_certificate, self.opts.cert_dir, dns, ips)
        runner = web.AppRunner(self.api.build(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.opts.listen_host, self.opts.port, ssl_context=self._server_context())
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:
            self.port = int(runner.addresses[0][1])

    async def stop_serving(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def tick(self) -> None:
        started = time.time()
        self.last_tick = started
        try:
            async with asyncio.timeout(self.opts.resolution):
                batch = await self.scraper.scrape(self.nodes.list())
        except TimeoutError:
            log.error("metrics-server: the scrape took more than %gs", self.opts.resolution)
            return
        self.storage.store(batch)

    async def publish(self) -> None:
        """The Service, its EndpointSlice and the APIService, made or brought up to date."""
        assert self.files is not None
        want = [(SERVICE_KIND, service(), NAMESPACE, ("spec",)),
                (SLICE_KIND, endpoint_slice(self.opts.advertise, self.port), NAMESPACE,
                 ("addressType", "endpoints", "ports")),
                (APISERVICE_KIND, apiservice(self.files.ca_bundle()), None, ("spec",))]
        for kind, obj, ns, fields in want:
            await self._ensure(kind, obj, ns, fields)

    async def _ensure(self, kind: tuple[str, str], want: Obj, ns: str | None, fields: tuple[str, ...]) -> None:
        name = want["metadata"]["name"]
        for _ in range(5):
            try:
                await self.client.create(kind, want, namespace=ns)
                return
            except AlreadyExistsError:
                pass
            cur = await self.client.get(kind, name, namespace=ns)
            if kind == SERVICE_KIND:
                # the API server's defaults (clusterIP, sessionAffinity ...) stay: only our ports count
                if cur.get("spec", {}).get("ports") == want["spec"]["ports"] and not cur["spec"].get("selector"):
                    return
                new = {**cur, "spec": {**cur["spec"], "ports": want["spec"]["ports"]}}
                new["spec"].pop("selector", None)
            elif kind == APISERVICE_KIND:
                if all(cur.get("spec", {}).get(k) == v for k, v in want["spec"].items()):
                    return
                new = {**cur, "spec": {**cur.get("spec", {}), **want["spec"]}}
            else:
                if all(cur.get(f) == want[f] for f in fields):
                    return
                new = {**cur, **{f: want[f] for f in fields}}
            try:
                await self.client.update(kind, new, namespace=ns)
                return
            except (ConflictError, NotFoundError):
                continue

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.start()
        except OSError as e:
            log.error("metrics-server not started: cannot listen on %s:%d: %s (set --metrics-server-port, or "
                      "--disable-metrics-server)", self.opts.listen_host, self.opts.port, e)
            return
        tasks: list[asyncio.Task[Any]] = []
        try:
            self.factory.start()
            tasks.append(asyncio.create_task(self._auth_loop(stop), name="metrics-server-auth"))
            if not await self.factory.wait_for_cache_sync(timeout=60):
                log.warning("metrics-server: informers not synced after 60 s")
            log.info("metrics-server serving metrics.k8s.io/v1beta1 on https://%s:%d (resolution %gs)",
                     self.opts.advertise, self.port, self.opts.resolution)
            tasks += [asyncio.create_task(self._loop(stop), name="metrics-server-scrape"),
                      asyncio.create_task(self._campaign(stop), name="metrics-server-publish")]
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.stop_serving()
            await self.factory.shutdown()
            close = getattr(self.kubelets, "close", None)
            if close is not None:
                await close()

    async def _every(self, stop: asyncio.Event, period: float, fn: Any, what: str) -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                await fn()
            except Exception as e:  # noqa: BLE001 - one failed round must not end the loop; the next retries
                log.error("metrics-server: %s failed: %s", what, e)
            try:
                async with asyncio.timeout(max(0.0, period - (time.monotonic() - t0))):
                    await stop.wait()
            except TimeoutError:
                pass

    async def _loop(self, stop: asyncio.Event) -> None:
        await self._every(stop, self.opts.resolution, self.tick, "a scrape")

    async def _campaign(self, stop: asyncio.Event) -> None:
        """Register while holding the Lease ``kube-system/metrics-server-k8py``: with several
        servers (each running its own metrics-server, with its own CA) one registration stands,
        the leader's, and another server's takes over when it goes (as one replica of kube's
        metrics-server Deployment is the Service's endpoint)."""
        cfg = LeaderElectionConfig(name=LEASE_NAME, namespace=NAMESPACE, identity=self.identity)
        while not stop.is_set():
            try:
                await LeaderElector(self.client, cfg, on_started_leading=lambda: self._publish_loop(stop)).run(stop)
            except Exception as e:  # noqa: BLE001 - the election goes on; serving never depended on it
                log.warning("metrics-server: registration leader election failed (%s); campaigning again", e)
            try:
                async with asyncio.timeout(cfg.retry_period):
                    await stop.wait()
            except TimeoutError:
                pass

    async def _publish_loop(self, stop: asyncio.Event) -> None:
        """Register at once, again after a failure (5 s), and every 5 minutes to put back what was
        changed or removed (as k3s's add-on controller re-applies its manifests)."""
        while not stop.is_set():
            try:
                await self.publish()
                period = REPUBLISH
            except (ApiError, OSError) as e:
                log.error("metrics-server: cannot register v1beta1.metrics.k8s.io: %s", e)
                period = 5.0
            try:
                async with asyncio.timeout(period):
                    await stop.wait()
            except TimeoutError:
                pass

    async def _auth_loop(self, stop: asyncio.Event) -> None:
        await self._every(stop, AUTH_POLL, self.refresh_auth_config, f"reading {NAMESPACE}/{CONFIGMAP}")


def kubelet_client(ca_file: str, credentials: ClientConfig) -> KubeletClient:
    """A client for kubelets: their serving certificates verified against ``ca_file``, and the
    client certificate of ``credentials`` (this component's API client, whose certificate the
    server renews in place) presented, which a kubelet of k8py requires."""
    return KubeletClient(ssl.create_default_context(cafile=ca_file), credentials=credentials)
