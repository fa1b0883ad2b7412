"""Scraping kubelets (metrics-server's ``pkg/scraper``): every node's ``/metrics/resource``, all
at once, each within the scrape timeout.

A kubelet is reached as k8py's API server reaches it (and as k3s configures metrics-server:
``--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname --kubelet-use-node-status-port``):
the node's address by preferred type and ``status.daemonEndpoints.kubeletEndpoint.Port``, over
HTTPS with a client certificate the kubelet accepts, its serving certificate verified against the
cluster CA. The annotation ``metrics.k8s.io/resource-metrics-path`` replaces the path, as
metrics-server's. A node that fails is left out of the batch and logged (quietly when it is not
Ready, as metrics-server does); the others still count.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import aiohttp

from k8py.api.corev1 import get_condition, kubelet_address, kubelet_port
from k8py.client.config import ClientConfig, load_client_certificate
from k8py.metricsserver.decode import decode_batch
from k8py.metricsserver.prometheus import ParseError
from k8py.metricsserver.storage import MetricsBatch

__all__ = ["KubeletClient", "MetricsGetter", "Scraper", "node_url"]

log = logging.getLogger(__name__)

PATH_ANNOTATION = "metrics.k8s.io/resource-metrics-path"
MAX_BODY = 64 << 20


def node_url(node: Mapping[str, Any], default_port: int = 10250) -> str:
    """Where ``node``'s resource metrics are; :class:`ValueError` when it has no usable address."""
    host = kubelet_address(node)
    if not host:
        raise ValueError("no preferred addresses found")
    path = ((node.get("metadata") or {}).get("annotations") or {}).get(PATH_ANNOTATION) or "/metrics/resource"
    h = f"[{host}]" if ":" in host else host
    return f"https://{h}:{kubelet_port(node, default_port)}{path}"


class MetricsGetter(Protocol):
    async def get_metrics(self, node: Mapping[str, Any], timeout: float) -> MetricsBatch: ...


class KubeletClient:
    """HTTPS to kubelets with one TLS context and one connection pool. With ``credentials`` (an
    API client's configuration), its client certificate is presented, and loaded again when a
    renewal replaces it (new connections present the new one)."""

    def __init__(self, ssl_context: ssl.SSLContext | None, default_port: int = 10250, *,
                 credentials: ClientConfig | None = None) -> None:
        self.ssl_context = ssl_context
        self.default_port = default_port
        self.credentials = credentials
        self._loaded: bytes | str | None = None  # the certificate loaded (data or file name)
        self._session: aiohttp.ClientSession | None = None

    def _refresh_certificate(self) -> None:
        c = self.credentials
        if c is None or self.ssl_context is None:
            return
        current = c.cert_data if c.cert_data is not None else c.cert_file
        if current is None or current is self._loaded:
            return
        load_client_certificate(self.ssl_context, c)
        self._loaded = current

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_metrics(self, node: Mapping[str, Any], timeout: float) -> MetricsBatch:
        self._refresh_certificate()
        url = node_url(node, self.default_port)
        name = (node.get("metadata") or {}).get("name", "")
        started = time.time()
        async with self._get_session().get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            if r.status != 200:
                raise ValueError(f'request failed, status: "{r.status} {r.reason or ""}"')
            body = await r.content.read(MAX_BODY)
        try:
            return decode_batch(body.decode("utf-8", "replace"), started, name)
        except ParseError as e:
            raise ValueError(f"failed parsing metrics: {e}") from None


def node_is_ready(node: Mapping[str, Any]) -> bool:
    c = get_condition(node, "Ready")
    return c is not None and c.get("status") == "True"


class Scraper:
    """``concurrency`` kubelets are asked at once (metrics-server staggers its requests over up to
    4 s instead, "to prevent network congestion"). A node's failure is logged as an error when it
    starts failing, and at debug level while it goes on (metrics-server logs every one; a cluster
    of hollow nodes without kubelet APIs would log thousands a minute)."""

    def __init__(self, client: MetricsGetter, timeout: float, concurrency: int = 50) -> None:
        self.client = client
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._failing: set[str] = set()
        self._shared: set[str] = set()  # kubelet URLs several nodes name (warned about once)

    async def scrape(self, nodes: Iterable[Mapping[str, Any]]) -> MetricsBatch:
        """One batch of every node's points; failures are logged and left out.

        Nodes that name the same kubelet endpoint (hollow nodes all say 127.0.0.1:10250, where
        a real agent may listen) are scraped once, not once each: its pods count, and no node
        gets its node point, which belongs to none of them for sure."""
        nodes = list(nodes)
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for i, n in enumerate(nodes):
            try:
                key = node_url(n)
            except ValueError:
                key = f"#{i}"  # no address: scraped alone, to fail and say so
            groups.setdefault(key, []).append(n)
        shared = {url for url, g in groups.items() if len(g) > 1}
        if shared - self._shared:
            log.warning("nodes share kubelet endpoints (%s): each is scraped once, without node metrics",
                        ", ".join(f"{u}: {len(groups[u])} nodes" for u in sorted(shared - self._shared)))
        self._shared = shared
        results = await asyncio.gather(*(self._one(g[0]) for g in groups.values()))
        out = MetricsBatch()
        for url, b in zip(groups, results, strict=True):
            if b is not None:
                if url in shared:
                    b.nodes.clear()
                out.merge(b)
        names = {(n.get("metadata") or {}).get("name", "") for n in nodes}
        self._failing &= names  # forget nodes that are gone
        log.debug("scrape finished: %d nodes, %d pods", len(out.nodes), len(out.pods))
        return out

    async def _one(self, node: Mapping[str, Any]) -> MetricsBatch | None:
        name = (node.get("metadata") or {}).get("name", "")
        try:
            async with self._slots:
                batch = await self.client.get_metrics(node, self.timeout)
        except TimeoutError:
            self._failed(node, f"timeout ({self.timeout:g}s) to access kubelet")
        except (aiohttp.ClientError, OSError, ValueError) as e:
            self._failed(node, str(e) or type(e).__name__)
        else:
            if name in self._failing:
                self._failing.discard(name)
                log.info("scraping node %s works again", name)
            return batch
        return None

    def _failed(self, node: Mapping[str, Any], why: str) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        first = name not in self._failing
        self._failing.add(name)
        if first and node_is_ready(node):
            log.error("failed to scrape node %s: %s", name, why)
        else:
            log.debug("failed to scrape node %s%s: %s", name, "" if node_is_ready(node) else ", node is not ready",
                      why)
