"""/healthz, /livez and /readyz: kube-apiserver's named checks and output, and checks that
really ask the store (in-memory, SQLite, and a real etcd that is stopped)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.helpers.etcd import EtcdCluster

from k8py.apiserver import health
from k8py.apiserver import server as srv
from k8py.config import ServerConfig
from k8py.storage.etcd import EtcdStore
from k8py.storage.interface import Store, StoreUnavailableError
from k8py.storage.memory import MemoryStore
from k8py.storage.sqlite import SQLiteStore

READYZ_OK = (
    "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]etcd-readiness ok\n[+]poststarthook/k8py-bootstrap ok\n"
    "[+]shutdown ok\nreadyz check passed\n"
)
LIVEZ_OK = "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]poststarthook/k8py-bootstrap ok\nlivez check passed\n"
DEADLINE = 10.0


class GatedStore(MemoryStore):
    """A memory store whose health() can be made to fail or to hang, and counts its calls."""

    def __init__(self) -> None:
        super().__init__(progress_interval=0.1)
        self.calls = 0
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None  # set: health() waits for it

    async def health(self) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error


Client = Callable[..., Any]


async def serve(tmp_path: Path, store: Store, *, ready: bool = True) -> tuple[TestClient, Any]:
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store)
    await cp.bootstrap()
    cp.http.ready = ready
    client = TestClient(TestServer(cp.http.build()))
    await client.start_server()
    return client, cp


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Any, GatedStore]]:
    store = GatedStore()
    client, cp = await serve(tmp_path, store)
    yield client, cp, store
    await client.close()
    await store.close()


async def get(client: TestClient, path: str) -> tuple[int, str]:
    r = await client.get(path)
    return r.status, await r.text()


async def test_all_pass_plain_and_verbose(gated: Any) -> None:
    client, _cp, _store = gated
    for path in ("/readyz", "/livez", "/healthz"):
        r = await client.get(path)
        assert (r.status, await r.text()) == (200, "ok")
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert await get(client, "/readyz?verbose") == (200, READYZ_OK)
    assert await get(client, "/livez?verbose") == (200, LIVEZ_OK)
    assert await get(client, "/healthz?verbose") == (200, LIVEZ_OK.replace("livez", "healthz"))


async def test_exclude_and_single_checks(gated: Any) -> None:
    client, _cp, _store = gated
    status, body = await get(client, "/readyz?verbose&exclude=etcd&exclude=log&exclude=nosuch")
    assert status == 200
    assert body == (
        "[+]ping ok\n[+]log excluded: ok\n[+]etcd excluded: ok\n[+]etcd-readiness ok\n"
        "[+]poststarthook/k8py-bootstrap ok\n[+]shutdown ok\n"
        'warn: some health checks cannot be excluded: no matches for "nosuch"\n'
        "readyz check passed\n"
    )
    assert await get(client, "/readyz/etcd") == (200, "ok")
    assert await get(client, "/livez/poststarthook/k8py-bootstrap") == (200, "ok")
    assert await get(client, "/readyz/shutdown") == (200, "ok")
    assert (await get(client, "/livez/shutdown"))[0] == 404  # a readyz-only check
    assert await get(client, "/readyz/nosuch") == (404, "404 page not found\n")
    assert (await client.head("/readyz")).status == 200


async def test_failing_store_fails_etcd_checks(gated: Any) -> None:
    client, _cp, store = gated
    store.error = StoreUnavailableError("etcd 127.0.0.1:2379: connection refused")
    status, body = await get(client, "/readyz")  # verbose on failure, always
    assert status == 500
    assert body == (
        "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[-]etcd-readiness failed: reason withheld\n"
        "[+]poststarthook/k8py-bootstrap ok\n[+]shutdown ok\nreadyz check failed\n"
    )
    status, body = await get(client, "/livez")
    assert status == 500 and "[-]etcd failed: reason withheld\n" in body and body.endswith("livez check failed\n")
    assert (await get(client, "/healthz"))[0] == 500
    assert (await get(client, "/readyz?exclude=etcd&exclude=etcd-readiness"))[0] == 200
    assert (await get(client, "/livez?exclude=etcd")) == (200, "ok")
    # One check alone gives its reason (no authentication is configured in this server).
    assert await get(client, "/readyz/etcd") == (
        500, "internal server error: etcd 127.0.0.1:2379: connection refused\n")
    store.error = None
    assert await get(client, "/readyz") == (200, "ok")


async def test_hanging_store_fails_within_the_timeout(gated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client, cp, store = gated
    monkeypatch.setattr(health, "STORE_TIMEOUT", 0.2)
    health._HEALTH.pop(cp.http, None)  # built again with the short timeout
    store.gate = asyncio.Event()  # never set: health() hangs
    status, body = await asyncio.wait_for(get(client, "/livez?verbose"), DEADLINE)
    assert status == 500 and "[-]etcd failed: reason withheld\n" in body
    assert await get(client, "/livez/etcd") == (500, "internal server error: the datastore did not answer within 0.2s\n")
    store.gate.set()


async def test_concurrent_probes_share_one_store_request(gated: Any) -> None:
    client, _cp, store = gated
    store.gate = asyncio.Event()
    probes = [asyncio.ensure_future(get(client, "/readyz")) for _ in range(8)]
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while store.calls == 0:  # the first probe has reached the store
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # let the other probes arrive (they must not call the store again)
    store.gate.set()
    assert [s for s, _ in await asyncio.gather(*probes)] == [200] * 8
    assert store.calls == 1


async def test_not_started_and_shutting_down(tmp_path: Path) -> None:
    store = GatedStore()
    client, cp = await serve(tmp_path, store, ready=False)
    try:
        status, body = await get(client, "/readyz")
        assert status == 500 and "[-]poststarthook/k8py-bootstrap failed: reason withheld\n" in body
        assert "[+]shutdown ok\n" in body  # not started is not shutting down
        assert (await get(client, "/livez"))[0] == 500
        cp.http.ready = True
        assert await get(client, "/readyz") == (200, "ok")
        cp.http.ready = False  # what server.stop() does first
        status, body = await get(client, "/readyz")
        assert status == 500
        assert "[+]poststarthook/k8py-bootstrap ok\n[-]shutdown failed: reason withheld\nreadyz check failed\n" in body
        assert await get(client, "/livez") == (200, "ok")  # still live while it drains
        assert await get(client, "/readyz/shutdown") == (500, "internal server error: process is shutting down\n")
    finally:
        await client.close()
        await store.close()


async def test_sqlite_store_health(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "db" / "state.db"))
    client, _cp = await serve(tmp_path, store)
    try:
        assert await get(client, "/readyz?verbose") == (200, READYZ_OK)
        await store.close()
        status, body = await get(client, "/readyz")
        assert status == 500 and "[-]etcd failed: reason withheld\n" in body
        assert await get(client, "/livez/etcd") == (500, "internal server error: store is closed\n")
    finally:
        await client.close()
        await store.close()


@pytest.fixture
def etcd() -> Any:
    cluster = EtcdCluster(1)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_stopped_etcd_fails_readyz_and_livez(tmp_path: Path, etcd: EtcdCluster) -> None:
    store = EtcdStore(etcd.endpoints, request_timeout=3.0, dial_timeout=1.0)
    client, _cp = await serve(tmp_path, store)
    try:
        assert await get(client, "/readyz?verbose") == (200, READYZ_OK)
        assert await get(client, "/livez") == (200, "ok")
        for m in etcd.members:  # etcd goes down, the API server stays up
            etcd.kill(m)
        status, body = await asyncio.wait_for(get(client, "/readyz"), DEADLINE)
        assert status == 500
        assert "[-]etcd failed: reason withheld\n[-]etcd-readiness failed: reason withheld\n" in body
        assert body.endswith("readyz check failed\n")
        status, body = await asyncio.wait_for(get(client, "/livez"), DEADLINE)
        assert status == 500 and "[-]etcd failed: reason withheld\n" in body
        assert body.endswith("livez check failed\n")
        status, body = await get(client, "/readyz/etcd")
        assert status == 500 and "connection refused" in body
        assert (await get(client, "/livez?exclude=etcd")) == (200, "ok")
    finally:
        await client.close()
        await store.close()
