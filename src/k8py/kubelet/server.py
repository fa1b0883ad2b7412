"""The node agent's HTTPS API: what kubelet serves on port 10250, for the API server.

- ``GET /healthz``: ``ok``.
- ``GET /pods``: a ``PodList`` of the pods this agent runs.
- ``GET /containerLogs/{namespace}/{pod}/{container}``: the container's log (:mod:`.logs`), with
  kube's ``PodLogOptions`` as query parameters (``follow``, ``previous``, ``tailLines``,
  ``sinceSeconds``, ``sinceTime``, ``timestamps``, ``limitBytes``; the old ``tail``), as chunked
  ``text/plain``; with ``follow`` until the container exits or the client goes.
- ``GET|POST /exec/{namespace}/{pod}/{container}`` and ``/attach/...``: ``kubectl exec`` and
  ``kubectl attach`` over WebSocket (:mod:`.streaming`).
- ``GET|POST /portForward/{namespace}/{pod}[/{uid}]``: port-forward into the pod (:mod:`.portforward`).
- ``GET /stats/summary``: kubelet's Summary API (``stats/v1alpha1``): the node's CPU and memory,
  and per pod its containers' from ``Runtime.container_stats`` and its local volumes' usage
  (``volume``: emptyDir, configMap, secret, downwardAPI, projected; the volume manager's ``stats``).
- ``GET /metrics/resource``: the same readings as kubelet's resource metrics, in the Prometheus
  text format (:mod:`.resourcemetrics`), what metrics-server scrapes.

Security as kubelet's with ``--client-ca-file`` and no anonymous access: TLS with the node's
serving certificate, and a client certificate signed by the cluster CA is *required*
(``CERT_REQUIRED``): a client without one fails the handshake. The API server presents its
``apiserver-kubelet-client`` certificate.

Which container a log request means (kubelet's ``validateContainerLogStatus``, over the runtime's
containers found by kubelet's labels ``io.kubernetes.pod.namespace/name/uid`` and
``io.kubernetes.container.name``): the current one is the highest attempt; it is read when it
runs or has exited, else the last exited one before it; ``previous`` means the newest exited
container with a lower attempt than the current one. Errors are plain text worded as kubelet's,
with its status codes (404 for an unknown pod or container, 400 for a container not there yet,
422 for bad options).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from k8py.api.corev1 import format_epoch
from k8py.kubelet import streaming
from k8py.kubelet.logs import LogOptions, parse_timestamp, stream_logs
from k8py.kubelet.portforward import PortForward
from k8py.kubelet.resourcemetrics import CONTENT_TYPE as RESOURCE_METRICS_CONTENT_TYPE
from k8py.kubelet.resourcemetrics import NodeSample, ResourceSample, render
from k8py.kubelet.runtime.types import ContainerState, ContainerStats, ContainerStatus, Runtime
from k8py.tlsfiles import tls_server_context

__all__ = ["KubeletServer", "PodsSource"]

log = logging.getLogger("k8py.kubelet.server")

Pod = Mapping[str, Any]
PodsSource = Callable[[], Sequence[Pod] | Awaitable[Sequence[Pod]]]

LABEL_NS = "io.kubernetes.pod.namespace"
LABEL_NAME = "io.kubernetes.pod.name"
LABEL_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER = "io.kubernetes.container.name"
NODE_SAMPLE = "\0node"  # the node's own cpu sample, next to the containers' (ids never hold a NUL)

_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False", "")


class _BadQuery(Exception):
    pass


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain", charset="utf-8")


def _bool(q: Mapping[str, str], name: str) -> bool:
    v = q.get(name, "")
    if v in _GO_TRUE:
        return True
    if v in _GO_FALSE:
        return False
    raise _BadQuery(name)


def _int(q: Mapping[str, str], name: str) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v, 10)
    except ValueError:
        raise _BadQuery(name) from None


def log_options(q: Mapping[str, str], now: float | None = None) -> tuple[LogOptions, bool]:
    """(options, previous) from a ``/containerLogs`` query, as kubelet decodes and validates
    ``PodLogOptions``; :class:`ValueError` for invalid ones, ``_BadQuery`` for undecodable ones."""
    tail_lines = _int(q, "tailLines")
    tail = q.get("tail")  # the old parameter; "all" means no limit
    if tail is not None and tail != "all" and tail_lines is None:
        tail_lines = _int(q, "tail")
    since_seconds = _int(q, "sinceSeconds")
    limit_bytes = _int(q, "limitBytes")
    since_time: float | None = None
    if q.get("sinceTime"):
        try:
            since_time = parse_timestamp(q["sinceTime"].encode()) / 1e9
        except ValueError:
            raise _BadQuery("sinceTime") from None
    follow, previous, timestamps = _bool(q, "follow"), _bool(q, "previous"), _bool(q, "timestamps")
    if since_seconds is not None and since_time is not None:
        raise ValueError("at most one of `sinceTime` or `sinceSeconds` may be specified")
    if since_seconds is not None and since_seconds < 1:
        raise ValueError("sinceSeconds: must be greater than 0")
    since: float | None = None
    if since_seconds is not None:
        since = (time.time() if now is None else now) - since_seconds
    if since_time is not None:
        since = since_time
    opts = LogOptions(tail_lines=tail_lines, since=since, timestamps=timestamps, limit_bytes=limit_bytes,
                      follow=follow)  # raises ValueError for a negative tail or a limit below 1
    return opts, previous


def _spec_has_container(pod: Pod, name: str) -> bool:
    spec = pod.get("spec") or {}
    return any(c.get("name") == name for key in ("containers", "initContainers", "ephemeralContainers")
               for c in spec.get(key) or ())


def _waiting_reason(pod: Pod, name: str) -> str:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or ():
            if cs.get("name") == name:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                reason = waiting.get("reason") or "ContainerCreating"
                if reason == "ErrImagePull":
                    return "image can't be pulled"
                if reason == "ImagePullBackOff":
                    return "trying and failing to pull image"
                return str(reason)
    return "ContainerCreating"


def _status_state(pod: Pod, name: str) -> str:
    """``running``, ``terminated`` or ``waiting``: the state the pod's status gives the
    container; "" when it has none yet."""
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or ():
            if cs.get("name") == name:
                return next(iter(cs.get("state") or {}), "")
    return ""


def choose_container(containers: Sequence[ContainerStatus], pod: Pod, name: str,
                     previous: bool) -> ContainerStatus:
    """The runtime container whose log a request means; :class:`LookupError` with kubelet's words."""
    pod_name = (pod.get("metadata") or {}).get("name", "")
    ordered = sorted(containers, key=lambda c: (c.attempt, c.created_at))
    exited = [c for c in ordered if c.state == ContainerState.EXITED]
    current = ordered[-1] if ordered else None
    if previous:
        if current is not None and current.state == ContainerState.EXITED and _status_state(pod, name) == "waiting":
            # kubelet's lastState: a container waiting to restart (crash loop back-off) has its
            # last run as the previous one, the newest exited container
            return current
        older = [c for c in exited if current is not None and c.attempt < current.attempt]
        if not older:
            raise LookupError(f'previous terminated container "{name}" in pod "{pod_name}" not found')
        return older[-1]
    if current is not None and current.state in (ContainerState.RUNNING, ContainerState.EXITED):
        return current
    if current is not None:
        older = [c for c in exited if c.attempt < current.attempt]
        if older:
            return older[-1]
    raise LookupError(f'container "{name}" in pod "{pod_name}" is waiting to start: {_waiting_reason(pod, name)}')


class KubeletServer:
    """The agent's API on ``host:port`` over TLS with client certificates required."""

    def __init__(self, runtime: Runtime, pods: PodsSource, *, node_name: str, host: str, port: int,
                 cert_file: str, key_file: str, client_ca_file: str, poll_interval: float = 0.1,
                 volume_stats: Callable[[Mapping[str, Any]], Awaitable[list[dict[str, Any]]]] | None = None) -> None:
        self.runtime = runtime
        self.volume_stats = volume_stats  # a pod's ``volume`` entries of the summary (the volume manager's)
        self.pods_source = pods
        self.node_name = node_name
        self.host = host
        self.port = port
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        self.poll_interval = poll_interval
        self.runner: web.AppRunner | None = None
        self._cpu_samples: dict[str, tuple[float, int]] = {}  # usageNanoCores from two samples

    # -- life cycle ---------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        return tls_server_context(self.cert_file, self.key_file, self.client_ca_file, ssl.CERT_REQUIRED)

    def build(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/pods", self.list_pods)
        r.add_get("/pods/", self.list_pods)
        r.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        r.add_get("/stats/summary", self.stats_summary)
        r.add_get("/metrics/resource", self.metrics_resource)
        PortForward(self.runtime, self.find_pod).add_routes(r)  # /portForward/{namespace}/{pod}[/{uid}]
        for verb in ("exec", "attach"):
            for path in (f"/{verb}/{{namespace}}/{{pod}}/{{container}}", f"/{verb}/{{namespace}}/{{pod}}/{{uid}}/{{container}}"):
                r.add_get(path, self.exec_attach)
                r.add_post(path, self.exec_attach)
        r.add_route("*", "/{tail:.*}", self.not_found)
        return app

    async def start(self) -> None:
        """Listen; with ``port`` 0 the chosen port is in :attr:`port` afterwards."""
        ssl_ctx = self.ssl_context()  # a bad certificate fails here, before anything listens
        runner = web.AppRunner(self.build(), handler_cancellation=True, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=ssl_ctx, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.runner = runner
        if self.port == 0 and runner.addresses:
            self.port = int(runner.addresses[0][1])
        log.info("kubelet API of node %s listening on https://%s:%d", self.node_name, self.host, self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # -- helpers ------------------------------------------------------------------------
    async def pods(self) -> list[Pod]:
        v = self.pods_source()
        if inspect.isawaitable(v):
            v = await v
        return list(v)

    async def find_pod(self, namespace: str, name: str) -> Pod | None:
        for p in await self.pods():
            m = p.get("metadata") or {}
            if m.get("namespace", "default") == namespace and m.get("name") == name:
                return p
        return None

    async def containers_of(self, pod: Pod, container: str | None = None) -> list[ContainerStatus]:
        return _of_pod(await self.runtime.list_containers(), pod, container)

    # -- handlers -----------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain", charset="utf-8")

    async def not_found(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="404 page not found\n", content_type="text/plain", charset="utf-8")

    async def list_pods(self, request: web.Request) -> web.Response:
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": await self.pods()}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns = request.match_info["namespace"]
        pod_name = request.match_info["pod"]
        cname = request.match_info["container"]
        try:
            opts, previous = log_options(request.query)
        except _BadQuery:
            return _text(400, '{"message": "Unable to decode query."}')
        except ValueError:
            return _text(422, '{"message": "Invalid request."}')
        pod = await self.find_pod(ns, pod_name)
        if pod is None:
            return _text(404, f'pod "{pod_name}" does not exist')
        if not _spec_has_container(pod, cname):
            return _text(404, f'container "{cname}" not found in pod "{pod_name}"')
        try:
            chosen = choose_container(await self.containers_of(pod, cname), pod, cname, previous)
        except LookupError as e:
            return _text(400, str(e.args[0]))
        cid = chosen.id

        async def exited() -> bool:
            st = await self.runtime.container_status(cid)
            return st is None or st.state != ContainerState.RUNNING

        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain; charset=utf-8"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        gen = stream_logs(chosen.log_path, opts, exited=exited, poll_interval=self.poll_interval)
        async with contextlib.aclosing(gen):
            async for piece in gen:
                await resp.write(piece)  # a client gone mid-stream ends the handler (and the follow)
        await resp.write_eof()
        return resp

    async def exec_attach(self, request: web.Request) -> web.StreamResponse:
        return await streaming.serve(self, request, attach=request.path.startswith("/attach/"))

    async def stats_summary(self, request: web.Request) -> web.Response:
        body, _node, _containers = await self.collect_stats(volumes=True)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def metrics_resource(self, request: web.Request) -> web.Response:
        """kubelet's ``/metrics/resource`` (:mod:`.resourcemetrics`), from the summary's readings."""
        try:
            _body, node, containers = await self.collect_stats()
            text = render(node, containers)
        except Exception as e:  # noqa: BLE001 - kubelet's collector reports any failure as resource_scrape_error 1
            log.warning("resource metrics: cannot read the stats: %s", e)
            text = render(None, (), error=True)
        return web.Response(body=text.encode(), headers={"Content-Type": RESOURCE_METRICS_CONTENT_TYPE})

    async def collect_stats(self, volumes: bool = False) -> tuple[dict[str, Any], NodeSample, list[ResourceSample]]:
        """One reading of the node and its running containers: the Summary API's body, and the
        same numbers (with their exact times) for ``/metrics/resource``; with ``volumes`` the
        pods' volume stats too (the summary's; the resource metrics have none)."""
        now = time.time()
        pods_out = []
        samples: list[ResourceSample] = []
        seen: set[str] = set()
        # the node's containers listed once, not once per pod (each listing reads them all), and
        # their stats read together (CRI's ListContainerStats)
        listed = await self.runtime.list_containers()
        stats = await self.runtime.list_container_stats([c.id for c in listed if c.state == ContainerState.RUNNING])
        for pod in await self.pods():
            m = pod.get("metadata") or {}
            containers = []
            pod_cpu = 0
            pod_cpu_rate = 0
            pod_ws = 0
            have_rate = True
            for c in _of_pod(listed, pod):
                if c.state != ContainerState.RUNNING:
                    continue
                st = stats.get(c.id)
                if st is None:
                    continue
                seen.add(c.id)
                entry = self._container_stats(c, st)
                containers.append(entry)
                samples.append(ResourceSample(
                    namespace=m.get("namespace", "default"), pod=m.get("name", ""), container=entry["name"],
                    start_time=c.started_at or c.created_at or st.timestamp, time=st.timestamp,
                    cpu_core_ns=st.cpu_usage_core_nanoseconds, working_set_bytes=st.memory_working_set_bytes))
                pod_cpu += st.cpu_usage_core_nanoseconds
                pod_ws += st.memory_working_set_bytes
                rate = entry["cpu"].get("usageNanoCores")
                if rate is None:
                    have_rate = False
                else:
                    pod_cpu_rate += rate
            ts = format_epoch(now)
            item: dict[str, Any] = {
                "podRef": {"name": m.get("name", ""), "namespace": m.get("namespace", "default"), "uid": m.get("uid", "")},
                "startTime": (pod.get("status") or {}).get("startTime") or m.get("creationTimestamp") or ts,
                "containers": containers,
                "cpu": {"time": ts, "usageCoreNanoSeconds": pod_cpu},
                "memory": {"time": ts, "workingSetBytes": pod_ws},
            }
            if have_rate and containers:
                item["cpu"]["usageNanoCores"] = pod_cpu_rate
            if volumes and self.volume_stats is not None and (vols := await self.volume_stats(pod)):
                item["volume"] = vols
            pods_out.append(item)
        node = self._node_stats(now)
        # samples of containers that are gone would otherwise pile up with every restart
        for key in [k for k in self._cpu_samples if k != NODE_SAMPLE and k not in seen]:
            del self._cpu_samples[key]
        node_sample = NodeSample(time=now, cpu_core_ns=(node.get("cpu") or {}).get("usageCoreNanoSeconds"),
                                 working_set_bytes=(node.get("memory") or {}).get("workingSetBytes"))
        return {"node": node, "pods": pods_out}, node_sample, samples

    def _rate(self, key: str, when: float, cpu_ns: int) -> int | None:
        prev = self._cpu_samples.get(key)
        self._cpu_samples[key] = (when, cpu_ns)
        if prev is None or when <= prev[0] or cpu_ns < prev[1]:
            return None
        return int((cpu_ns - prev[1]) / (when - prev[0]))

    def _container_stats(self, c: ContainerStatus, st: ContainerStats) -> dict[str, Any]:
        ts = format_epoch(st.timestamp)
        cpu: dict[str, Any] = {"time": ts, "usageCoreNanoSeconds": st.cpu_usage_core_nanoseconds}
        rate = self._rate(c.id, st.timestamp, st.cpu_usage_core_nanoseconds)
        if rate is not None:
            cpu["usageNanoCores"] = rate
        mem: dict[str, Any] = {"time": ts, "workingSetBytes": st.memory_working_set_bytes}
        if st.memory_usage_bytes:
            mem["usageBytes"] = st.memory_usage_bytes
        if st.rss_bytes:
            mem["rssBytes"] = st.rss_bytes
        return {"name": c.labels.get(LABEL_CONTAINER, c.name),
                "startTime": format_epoch(c.started_at or c.created_at or st.timestamp), "cpu": cpu, "memory": mem}

    def _node_stats(self, now: float) -> dict[str, Any]:
        ts = format_epoch(now)
        node: dict[str, Any] = {"nodeName": self.node_name, "startTime": ts}
        try:
            with open("/proc/stat") as f:
                stat = f.read().splitlines()
            fields = [int(x) for x in stat[0].split()[1:]]
            hz = os.sysconf("SC_CLK_TCK")
            # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
            busy = sum(fields[:3]) + sum(fields[5:8])
            cpu_ns = busy * 1_000_000_000 // hz
            cpu: dict[str, Any] = {"time": ts, "usageCoreNanoSeconds": cpu_ns}
            rate = self._rate(NODE_SAMPLE, now, cpu_ns)
            if rate is not None:
                cpu["usageNanoCores"] = rate
            node["cpu"] = cpu
            for line in stat:
                if line.startswith("btime "):
                    node["startTime"] = format_epoch(int(line.split()[1]))
        except (OSError, ValueError, IndexError) as e:
            log.debug("no node cpu stats: %s", e)
        try:
            info: dict[str, int] = {}
            with open("/proc/meminfo") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    info[k] = int(v.split()[0]) * 1024
            usage = info["MemTotal"] - info["MemFree"]
            node["memory"] = {"time": ts, "availableBytes": info["MemAvailable"], "usageBytes": usage,
                              "workingSetBytes": max(usage - info.get("Inactive(file)", 0), 0)}
        except (OSError, ValueError, KeyError) as e:
            log.debug("no node memory stats: %s", e)
        return node


def _of_pod(containers: Iterable[ContainerStatus], pod: Pod, container: str | None = None) -> list[ContainerStatus]:
    """The containers (of ``containers``) that belong to ``pod`` (by their labels), or only its
    ``container``."""
    m = pod.get("metadata") or {}
    ns, name, uid = m.get("namespace", "default"), m.get("name"), m.get("uid")
    out = []
    for c in containers:
        lb = c.labels
        if lb.get(LABEL_NS) != ns or lb.get(LABEL_NAME) != name:
            continue
        if uid and lb.get(LABEL_UID) and lb[LABEL_UID] != uid:
            continue  # an older pod of the same name
        if container is not None and lb.get(LABEL_CONTAINER, c.name) != container:
            continue
        out.append(c)
    return out
