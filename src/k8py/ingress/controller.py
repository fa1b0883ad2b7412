"""The ingress controller (ingress-nginx's place): informers on Ingresses, IngressClasses,
Services, EndpointSlices and TLS Secrets; a bounded-frequency sync that builds the
:class:`~k8py.ingress.model.Plan`, renders nginx.conf and has :class:`~k8py.ingress.nginx.Nginx`
take it; events and ``status.loadBalancer`` on the Ingresses it serves.

Sync loop (:class:`~k8py.client.syncloop.SyncLoop`, the service proxy's): any change asks for a
sync, which runs at once unless the last one was less than ``min_interval`` ago (changes in
between coalesce). A sync that fails unexpectedly, or whose status writes fail (the API server
away), is tried again after ``retry_interval`` while nginx keeps serving. A sync whose configuration is
the one in force changes nothing in nginx (endpoint churn that does not move an upstream costs
no reload). A configuration nginx refuses leaves the previous one in force, is reported as a
Warning ``ReloadFailed`` event on the Ingresses changed since the last good one, and is not
retried until something changes.

Problems of one Ingress (a missing Service or port, a missing or bad TLS Secret, a path taken by
an older Ingress) are Warning events on it, each once while it lasts; everything else is served.
``Sync`` (Normal) is recorded when a new generation of an Ingress is taken, as ingress-nginx does.

The controller creates the ``k8py-nginx`` IngressClass (controller ``k8py.io/ingress-nginx``,
marked the default class) when it is missing, and never changes one that exists. It survives the
API server going away: the informers re-list and watch again, and nginx keeps serving what it has.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from k8py.client.api import Client
from k8py.client.errors import AlreadyExistsError, ApiError, ForbiddenError, NotFoundError
from k8py.client.events import EventSink
from k8py.client.informer import SharedInformerFactory
from k8py.client.leaderelection import LeaderElectionConfig, LeaderElector
from k8py.client.syncloop import SyncLoop
from k8py.ingress.model import (
    CLASS_NAME,
    CONTROLLER,
    DEFAULT_CLASS_ANNOTATION,
    SERVICE_NAME_LABEL,
    TLS_SECRET_TYPE,
    Plan,
    Problem,
    build_plan,
    is_ours,
    key_of,
    meta,
    our_classes,
)
from k8py.ingress.nginx import Nginx, NginxError
from k8py.ingress.render import RenderOptions, render

log = logging.getLogger(__name__)

Obj = dict[str, Any]
USER = "system:k8py-ingress"
COMPONENT = "k8py-ingress-controller"
INGRESS = ("networking.k8s.io/v1", "Ingress")
INGRESS_CLASS = ("networking.k8s.io/v1", "IngressClass")
SLICE_INDEX = "k8py-ingress/service"
RELOAD_FAILED = "ReloadFailed"
# Several controllers (one per server with a node agent) would each write their own addresses to
# every Ingress's status and undo each other's writes forever: as ingress-nginx, only the holder
# of this Lease (kube-system) writes status; every controller serves.
STATUS_LEASE = "k8py-ingress-status"


def _slice_service(sl: Obj) -> list[str]:
    m = meta(sl)
    svc = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{m.get('namespace', '')}/{svc}"] if svc else []


def _spec_version(ing: Obj) -> str:
    """What of an Ingress the configuration depends on: its generation (spec changes) and its
    annotations; not the resourceVersion, which our own status writes move."""
    import json

    m = meta(ing)
    return f"{m.get('generation')}:{json.dumps(m.get('annotations') or {}, sort_keys=True)}"


def default_class() -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
                         "labels": {"app.kubernetes.io/managed-by": "k8py"}},
            "spec": {"controller": CONTROLLER}}


def load_balancer_status(addresses: tuple[str, ...]) -> list[Obj]:
    import ipaddress

    out: list[Obj] = []
    for a in addresses:
        try:
            ipaddress.ip_address(a)
            out.append({"ip": a})
        except ValueError:
            out.append({"hostname": a})
    return out


class IngressController:
    def __init__(self, client: Client, nginx: Nginx, *, http_port: int = 80, https_port: int = 443,
                 status_addresses: tuple[str, ...] = (), ipv6: bool = False, min_interval: float = 0.25,
                 retry_interval: float = 5.0, create_class: bool = True, worker_user: str = "nobody nogroup",
                 elect_status: bool = True) -> None:
        self.client = client
        self.nginx = nginx
        self.status_addresses = status_addresses
        self.loop = SyncLoop(self._sync_in_loop, min_interval=min_interval, retry_interval=retry_interval)
        self.create_class = create_class
        self.opts = RenderOptions(state_dir=nginx.state_dir, http_port=http_port, https_port=https_port, ipv6=ipv6,
                                  status_socket=nginx.socket_path, worker_user=worker_user)
        self.factory = SharedInformerFactory(client)
        self.ingresses = self.factory.informer(INGRESS)
        self.classes = self.factory.informer(INGRESS_CLASS)
        self.services = self.factory.informer(("v1", "Service"))
        self.slices = self.factory.informer(("discovery.k8s.io/v1", "EndpointSlice"))
        self.slices.add_indexer(SLICE_INDEX, _slice_service)
        # only TLS Secrets: a cluster's other Secrets (tokens, configs) are none of our business
        self.secrets = self.factory.informer(("v1", "Secret"), field_selector=f"type={TLS_SECRET_TYPE}")
        for inf in (self.ingresses, self.classes, self.services, self.slices, self.secrets):
            inf.add_handler(on_add=self._wake, on_update=lambda _o, _n: self.loop.request(), on_delete=self._wake)
        self.events = EventSink(client, COMPONENT)
        self.synced = asyncio.Event()  # set after every sync that left nginx serving the Ingresses
        self.generation = 0
        self.applied_text = ""  # the configuration in force (rendered at generation 0)
        self.failed_text = ""  # the last one nginx refused (not retried until something changes)
        self.applied_versions: dict[str, str] = {}  # ns/name -> _spec_version in the configuration in force
        self.reported: dict[str, set[Problem]] = {}  # uid -> problems already told
        self.seen_generation: dict[str, int] = {}  # uid -> generation told as Sync
        self.cert_cache: dict[tuple[str, str, str], str] = {}
        self.refused_regexes: dict[str, str] = {}  # regex path -> why nginx refused it (bounded below)
        self.syncs = 0
        self.reloads = 0
        self.last_error = ""
        self.retry = False  # a status write failed (the API server away): sync again after a while
        self.elect_status = elect_status
        self.status_leader = not elect_status  # writes status.loadBalancer (see STATUS_LEASE)
        self.plan: Plan | None = None

    def _wake(self, _obj: Obj) -> None:
        self.loop.request()

    # -- start -----------------------------------------------------------------------------------
    async def ensure_class(self) -> None:
        try:
            await self.client.get(INGRESS_CLASS, CLASS_NAME)
            return
        except (NotFoundError, ForbiddenError):
            pass  # missing, or not ours to read: try to create it
        try:
            await self.client.create(INGRESS_CLASS, default_class())
            log.info("ingress: created IngressClass %s (controller %s, the default class)", CLASS_NAME, CONTROLLER)
        except AlreadyExistsError:
            pass
        except ForbiddenError as e:  # credentials without that right: serve what exists, say what to do
            log.warning("ingress: cannot create the IngressClass %s (%s); create it (controller %s) or give the "
                        "controller's user the right", CLASS_NAME, e, CONTROLLER)

    async def run(self, stop: asyncio.Event) -> None:
        self.events.start()
        supervisor: asyncio.Task[None] | None = None
        campaign: asyncio.Task[None] | None = None
        try:
            if self.create_class:
                await self._until_done(self.ensure_class, stop)
            self.factory.start()
            if not await self.factory.wait_for_cache_sync(timeout=60):
                log.warning("ingress: informers not synced after 60 s; serving what is known")
            # the first sync starts nginx, before it is supervised; its failure ends the controller
            await self.loop.sync_now(self._sync_retry_status)
            supervisor = asyncio.create_task(self.nginx.supervise(stop), name="nginx-supervisor")
            if self.elect_status:
                campaign = asyncio.create_task(self._campaign(stop), name="ingress-status-election")
            log.info("ingress controller ready: nginx serves HTTP on port %d and HTTPS on port %d (class %s)",
                     self.opts.http_port, self.opts.https_port, CLASS_NAME)
            await self.loop.run(stop)
        finally:
            if campaign is not None:
                await campaign  # releases the lease: another controller takes status over at once
            if supervisor is not None:
                await supervisor
            await self.nginx.stop()
            await self.factory.shutdown()
            await self.events.stop()
            log.info("ingress controller stopped (nginx stopped, its files removed)")

    async def _campaign(self, stop: asyncio.Event) -> None:
        cfg = LeaderElectionConfig(name=STATUS_LEASE, namespace="kube-system")

        async def lead() -> None:
            self.status_leader = True
            self.loop.request()  # write the status now
            await asyncio.Event().wait()  # until leading ends (this task is cancelled)

        def stopped() -> None:
            self.status_leader = False

        while not stop.is_set():
            try:
                await LeaderElector(self.client, cfg, on_started_leading=lead, on_stopped_leading=stopped).run(stop)
            except Exception as e:  # noqa: BLE001 - the election goes on; serving never depended on it
                log.warning("ingress: status leader election failed (%s); campaigning again", e)
                await asyncio.wait({asyncio.ensure_future(stop.wait())}, timeout=cfg.retry_period)

    async def _until_done(self, fn: Any, stop: asyncio.Event) -> None:
        """Retry ``fn`` (an API call at start) until it succeeds or ``stop``: the API server
        may be starting or restarting."""
        delay = 0.5
        while not stop.is_set():
            try:
                await fn()
                return
            except (ApiError, OSError) as e:
                log.warning("ingress: %s failed (%s); retrying in %.0fs", fn.__name__, e, delay)
            except Exception as e:  # noqa: BLE001 - aiohttp's connection errors: the server is away
                log.warning("ingress: %s failed (%s); retrying in %.0fs", fn.__name__, e, delay)
            await asyncio.wait({asyncio.ensure_future(stop.wait())}, timeout=delay)
            delay = min(delay * 2, 10.0)

    # -- sync -------------------------------------------------------------------------------------
    def ours(self) -> list[Obj]:
        names, default = our_classes(self.classes.list())
        return [i for i in self.ingresses.list() if is_ours(i, names, default)]

    def build(self, ours: list[Obj]) -> Plan:
        services = {(str(meta(s).get("namespace") or ""), str(meta(s).get("name") or "")): s
                    for s in self.services.list()}
        wanted: set[tuple[str, str]] = set()
        for ing in ours:
            ns = str(meta(ing).get("namespace") or "")
            spec = ing.get("spec") or {}
            backends = [spec.get("defaultBackend")] + [p.get("backend") for r in spec.get("rules") or ()
                                                       for p in ((r or {}).get("http") or {}).get("paths") or ()]
            for b in backends:
                name = ((b or {}).get("service") or {}).get("name") if isinstance(b, dict) else None
                if name:
                    wanted.add((ns, str(name)))
        slices = {k: self.slices.store.by_index(SLICE_INDEX, f"{k[0]}/{k[1]}") for k in wanted}
        secrets = {(str(meta(s).get("namespace") or ""), str(meta(s).get("name") or "")): s
                   for s in self.secrets.list()}
        live = {(*k, str(meta(s).get("resourceVersion") or "")) for k, s in secrets.items()}
        for gone in [k for k in self.cert_cache if k not in live]:  # versions no longer current
            del self.cert_cache[gone]
        return build_plan(ours, services, slices, secrets, cert_cache=self.cert_cache,
                          refused_regexes=self.refused_regexes)

    async def _sync_retry_status(self) -> bool:
        """One sync, for the loop: False (try again after ``retry_interval``) when a status write
        failed. A configuration nginx refused is not retried until something changes."""
        await self.sync()
        return not self.retry

    async def _sync_in_loop(self) -> bool:
        try:
            return await self._sync_retry_status()
        except Exception:  # nginx keeps serving the last configuration meanwhile
            log.exception("ingress: sync failed; nginx keeps the configuration in force")
            return False

    async def sync(self) -> bool:
        """One sync; True when nginx serves the current Ingresses."""
        self.syncs += 1
        ours = self.ours()
        by_key = {key_of(i): i for i in ours}
        plan = self.build(ours)
        self.plan = plan
        self._report_syncs(ours)
        self._report_problems(plan, by_key)
        text = render(plan, replace(self.opts, generation=0))
        ok = True
        if text != self.applied_text and text != self.failed_text:
            ok = await self._apply(plan, text, by_key)
        elif text == self.failed_text:
            ok = False
        await self._update_status(ours)
        if ok:
            self.synced.set()
        return ok

    async def _apply(self, plan: Plan, text: str, by_key: dict[str, Obj]) -> bool:
        gen = self.generation + 1
        try:
            await self.nginx.apply(render(plan, replace(self.opts, generation=gen)), plan.certs, gen)
        except (NginxError, OSError) as e:
            # a certificate nginx (OpenSSL) refuses though it parsed, e.g. a key below the security
            # level: that Secret is bad, not the whole configuration; serve its hosts without TLS
            # and report it on its Ingresses, rather than hold back everyone's changes
            refused = [src for fname, src in plan.cert_sources.items() if fname in str(e)]
            # likewise a regex path Python's re compiled but nginx's PCRE does not (nginx names it)
            regexes = [loc.path for srv in plan.servers for loc in srv.locations.values()
                       if loc.regex and f'"^{loc.path}"' in str(e)]
            if (refused or regexes) and isinstance(e, NginxError):
                for src in refused:
                    self.cert_cache[src] = f"is refused by nginx: {e}"
                    log.warning("ingress: nginx refuses the certificate of Secret %s/%s: %s", src[0], src[1], e)
                if len(self.refused_regexes) > 1000:
                    self.refused_regexes.clear()
                for path in regexes:
                    self.refused_regexes[path] = str(e)
                    log.warning("ingress: nginx refuses the regex path %r: %s", path, e)
                plan = self.build(list(by_key.values()))
                self.plan = plan
                self._report_problems(plan, by_key)
                text = render(plan, replace(self.opts, generation=0))
                if text == self.applied_text:
                    return True
                return await self._apply(plan, text, by_key)
            self.failed_text = text
            self.last_error = str(e)
            changed = [k for k, i in by_key.items() if self.applied_versions.get(k) != _spec_version(i)] or list(by_key)
            log.error("ingress: nginx refused the new configuration, the previous one stays in force: %s", e)
            for k in changed:
                self._event(by_key[k], "Warning", RELOAD_FAILED,
                            f"Error reloading NGINX: {e}; the previous configuration stays in force")
            return False
        self.generation = gen
        self.applied_text = text
        self.failed_text = ""
        self.last_error = ""
        self.reloads += 1
        self.applied_versions = {k: _spec_version(i) for k, i in by_key.items()}
        log.info("ingress: nginx configuration generation %d in force (%d Ingress(es), %d upstream(s))", gen,
                 len(plan.ingresses), len(plan.upstreams))
        return True

    def _event(self, ing: Obj, type_: str, reason: str, message: str) -> None:
        self.events.event({**ing, "apiVersion": "networking.k8s.io/v1", "kind": "Ingress"}, type_, reason, message)

    def _report_syncs(self, ours: list[Obj]) -> None:
        live = set()
        for ing in ours:
            uid = str(meta(ing).get("uid") or "")
            live.add(uid)
            gen = int(meta(ing).get("generation") or 0)
            if self.seen_generation.get(uid) != gen:
                self.seen_generation[uid] = gen
                self._event(ing, "Normal", "Sync", "Scheduled for sync")
        for uid in set(self.seen_generation) - live:
            del self.seen_generation[uid]

    def _report_problems(self, plan: Plan, by_key: dict[str, Obj]) -> None:
        live = set()
        for k, ing in by_key.items():
            uid = str(meta(ing).get("uid") or "")
            live.add(uid)
            now = set(plan.problems.get(k, ()))
            told = self.reported.get(uid, set())
            for p in plan.problems.get(k, ()):
                if p not in told:
                    self._event(ing, "Warning", p.reason, p.message)
                    log.warning("ingress %s: %s", k, p.message)
            self.reported[uid] = now
        for uid in set(self.reported) - live:
            del self.reported[uid]

    async def _update_status(self, ours: list[Obj]) -> None:
        """``status.loadBalancer.ingress``: this node's addresses, written only when they differ."""
        if not self.status_leader:
            return
        want = load_balancer_status(self.status_addresses)
        self.retry = False
        for ing in ours:
            have = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if have == want:
                continue
            m = meta(ing)
            try:
                await self.client.patch(INGRESS, str(m.get("name")), {"status": {"loadBalancer": {"ingress": want}}},
                                        str(m.get("namespace")), subresource="status")
            except NotFoundError:
                continue
            except ApiError as e:
                self.retry = True
                log.warning("ingress: cannot update the status of %s: %s", key_of(ing), e)
            except Exception as e:  # noqa: BLE001 - the API server away: the next sync tries again
                self.retry = True
                log.warning("ingress: cannot update the status of %s: %s", key_of(ing), e)
