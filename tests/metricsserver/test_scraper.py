"""The scraper: where a kubelet is reached, and one node's failure leaving the others' points."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from k8py.metricsserver.scraper import Scraper, node_url
from k8py.metricsserver.storage import MetricsBatch, MetricsPoint


def node(name: str, addresses: list[tuple[str, str]], port: int | None = None, ready: bool = True,
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"addresses": [{"type": t, "address": a} for t, a in addresses],
                              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if port is not None:
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    return {"metadata": {"name": name, "annotations": annotations or {}}, "status": status}


def test_node_url() -> None:
    assert node_url(node("a", [("Hostname", "a"), ("InternalIP", "10.0.0.5")], 10250)) == \
        "https://10.0.0.5:10250/metrics/resource"
    assert node_url(node("a", [("ExternalIP", "192.0.2.1"), ("Hostname", "a")])) == \
        "https://192.0.2.1:10250/metrics/resource"  # no port in the status: the default
    assert node_url(node("a", [("InternalIP", "fd00::5")], 12345)) == "https://[fd00::5]:12345/metrics/resource"
    assert node_url(node("a", [("InternalIP", "10.0.0.5")], 1,
                         annotations={"metrics.k8s.io/resource-metrics-path": "/custom"})) == "https://10.0.0.5:1/custom"
    with pytest.raises(ValueError, match="no preferred addresses"):
        node_url(node("a", []))


class Kubelets:
    def __init__(self) -> None:
        self.down: set[str] = set()

    async def get_metrics(self, n: Mapping[str, Any], timeout: float) -> MetricsBatch:
        name = n["metadata"]["name"]
        if name in self.down:
            raise OSError("connection refused")
        return MetricsBatch(nodes={name: MetricsPoint(0, 1.0, 1, 1)},
                            pods={("ns", f"pod-{name}"): {"c": MetricsPoint(0, 1.0, 1, 1)}})


async def test_failures_leave_the_others_and_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    k = Kubelets()
    s = Scraper(k, timeout=1.0)
    nodes = [node("a", [("InternalIP", "10.0.0.1")]), node("b", [("InternalIP", "10.0.0.2")]),
             node("c", [("InternalIP", "10.0.0.3")], ready=False)]
    k.down = {"b", "c"}
    with caplog.at_level(logging.DEBUG, "k8py.metricsserver.scraper"):
        batch = await s.scrape(nodes)
        assert set(batch.nodes) == {"a"} and set(batch.pods) == {("ns", "pod-a")}
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == ["failed to scrape node b: connection refused"]  # not c: not Ready
        caplog.clear()
        await s.scrape(nodes)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # still failing: debug only
        k.down = set()
        batch = await s.scrape(nodes)
        assert set(batch.nodes) == {"a", "b", "c"}
        assert "scraping node b works again" in caplog.text


async def test_nodes_sharing_a_kubelet_endpoint_are_scraped_once(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    class Counting(Kubelets):
        async def get_metrics(self, n: Mapping[str, Any], timeout: float) -> MetricsBatch:
            calls.append(n["metadata"]["name"])
            return await super().get_metrics(n, timeout)

    s = Scraper(Counting(), timeout=1.0)
    hollow = [node(f"hollow-{i}", [("InternalIP", "127.0.0.1")], 10250) for i in range(5)]
    real = node("real", [("InternalIP", "10.0.0.9")], 10250)
    batch = await s.scrape([*hollow, real])
    assert sorted(calls) == ["hollow-0", "real"]  # one request for the five
    assert set(batch.nodes) == {"real"}  # the shared endpoint's node point belongs to no one for sure
    assert ("ns", "pod-hollow-0") in batch.pods  # its pods count
    assert "nodes share kubelet endpoints (https://127.0.0.1:10250/metrics/resource: 5 nodes)" in caplog.text


async def test_kubelet_client_presents_a_renewed_certificate(tmp_path: Any) -> None:
    """The API client's certificate, renewed in place (as k8py server's renewal does), is the one
    new connections to kubelets present."""
    import ssl

    from aiohttp import web
    from tests.kubelet.test_server import make_certs

    from k8py import pki as pki_mod
    from k8py.client.config import ClientConfig
    from k8py.kubelet.resourcemetrics import NodeSample, render
    from k8py.metricsserver.scraper import KubeletClient

    certs = make_certs(tmp_path)
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append(dict(x[0] for x in peer["subject"])["commonName"] if peer else "")
        return web.Response(text=render(NodeSample(1.0, 1_000_000_000, 1024), []))

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certs.pki.ca_cert)
    ctx.load_cert_chain(certs.serving_cert, certs.serving_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    app = web.Application()
    app.router.add_get("/metrics/resource", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    cert, key = pki_mod.issue_client_certificate(certs.pki, "first")
    creds = ClientConfig(server="https://unused", cert_data=cert, key_data=key)
    client = KubeletClient(ssl.create_default_context(cafile=certs.pki.ca_cert), credentials=creds)
    n = node("n", [("InternalIP", "127.0.0.1")], port)
    try:
        b = await client.get_metrics(n, 5.0)
        assert b.nodes["n"].memory_bytes == 1024
        creds.cert_data, creds.key_data = pki_mod.issue_client_certificate(certs.pki, "renewed")
        await client.close()  # (a new connection: pooled ones keep the certificate they were made with)
        await client.get_metrics(n, 5.0)
        assert seen == ["first", "renewed"]
    finally:
        await client.close()
        await runner.cleanup()
