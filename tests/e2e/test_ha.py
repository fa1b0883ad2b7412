"""High availability: two `k8py server` processes on one three-member etcd cluster serve the same
API. A write through one is seen by a watch on the other; and when one etcd member and one server
are SIGKILLed in the middle of a stream of creates through both, every acknowledged write is there
afterwards and the watch on the surviving server saw every event once, in order."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import signal
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from tests.helpers.etcd import ETCD, EtcdCluster, share_cluster_ca, start_k8py_server

from .conftest import Server, free_port

pytestmark = pytest.mark.skipif(not shutil.which(ETCD), reason="etcd not installed")

LIGHT = ("--disable-controller-manager", "--disable-scheduler")


@dataclass
class HA:
    etcd: EtcdCluster
    a: Server
    b: Server
    first: Any  # the etcd member both servers talk to first: the leader when they started


def _server(tmp: Path, name: str) -> Server:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    return Server(tmp / name, free_port(), None, tmp / f"{name}.log", home)


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[HA]:
    etcd = EtcdCluster(3)
    etcd.start()
    a, b = _server(tmp_path, "a"), _server(tmp_path, "b")
    try:
        leader = etcd.leader()
        # Both servers talk to the leader first: losing it costs a fail-over and an election.
        endpoints = ",".join(m.client_url for m in [leader, *(m for m in etcd.members if m is not leader)])
        start_k8py_server(a, endpoints, *LIGHT)
        share_cluster_ca(a, b)  # one CA: a's kubeconfig works against both
        start_k8py_server(b, endpoints, *LIGHT)
        yield HA(etcd, a, b, leader)
    finally:
        for s in (a, b):
            if s.proc is not None:
                s.stop(timeout=10)
        etcd.stop()


def _ssl_context(kubeconfig: str, tmp: Path) -> ssl.SSLContext:
    kc = yaml.safe_load(Path(kubeconfig).read_text())
    user, cluster = kc["users"][0]["user"], kc["clusters"][0]["cluster"]
    paths = {}
    for name, data in (("ca", cluster["certificate-authority-data"]), ("crt", user["client-certificate-data"]),
                       ("key", user["client-key-data"])):
        paths[name] = tmp / f"admin.{name}"
        paths[name].write_bytes(base64.b64decode(data))
    ctx = ssl.create_default_context(cafile=str(paths["ca"]))
    ctx.load_cert_chain(str(paths["crt"]), str(paths["key"]))
    return ctx


@pytest.fixture
async def http(ha: HA, tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    # a's admin credentials, for both servers: they share the cluster CA.
    ctx = _ssl_context(ha.a.kubeconfig, tmp_path)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=50),
                                     timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s
    # TLS connections finish their shutdown in the background: let them, before the loop closes
    # (else their sockets are collected unclosed, a ResourceWarning).
    await asyncio.sleep(0.25)


def url(s: Server, path: str) -> str:
    return f"https://127.0.0.1:{s.port}{path}"


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": name}}


CMS = "/api/v1/namespaces/ha/configmaps"


async def _setup_namespace(http: aiohttp.ClientSession, s: Server) -> int:
    async with http.post(url(s, "/api/v1/namespaces"),
                         json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ha"}}) as r:
        assert r.status == 201, await r.text()
    async with http.get(url(s, CMS)) as r:
        return int((await r.json())["metadata"]["resourceVersion"])


class Watcher:
    """A watch on configmaps in namespace ha through one server, collecting its events."""

    def __init__(self, http: aiohttp.ClientSession, s: Server, rv: int) -> None:
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._task = asyncio.create_task(self._run(http, s, rv))

    async def _run(self, http: aiohttp.ClientSession, s: Server, rv: int) -> None:
        try:
            async with http.get(url(s, f"{CMS}?watch=1&resourceVersion={rv}&timeoutSeconds=120"),
                                timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
                assert r.status == 200, await r.text()
                async for line in r.content:
                    if line.strip():
                        self.events.append(json.loads(line))
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def names(self) -> set[str]:
        return {e["object"]["metadata"]["name"] for e in self.events if e["type"] == "ADDED"}

    async def wait_for(self, names: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not names <= self.names():
            assert self.error is None, f"the watch failed: {self.error!r}"
            assert not self._task.done(), f"the watch ended after {len(self.events)} events"
            assert time.monotonic() < deadline, f"the watch never saw {sorted(names - self.names())[:10]}"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_write_through_one_server_is_seen_by_a_watch_on_the_other(ha: HA, http: aiohttp.ClientSession) -> None:
    rv = await _setup_namespace(http, ha.a)
    w = Watcher(http, ha.b, rv)
    try:
        await asyncio.sleep(0.2)
        async with http.post(url(ha.a, CMS), json=cm("from-a")) as r:
            assert r.status == 201
            created = await r.json()
        await w.wait_for({"from-a"}, 10)
        (ev,) = w.events
        assert ev["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        # and the other way round, read back through the other server
        async with http.post(url(ha.b, CMS), json=cm("from-b")) as r:
            assert r.status == 201
            rv_b = (await r.json())["metadata"]["resourceVersion"]
        async with http.get(url(ha.a, f"{CMS}/from-b")) as r:
            assert r.status == 200 and (await r.json())["metadata"]["resourceVersion"] == rv_b
    finally:
        await w.close()


async def test_losing_an_etcd_member_and_a_server_mid_stream(ha: HA, http: aiohttp.ClientSession) -> None:
    total, writers = 300, 6
    kill_member_at, kill_server_at = 80, 160
    rv = await _setup_namespace(http, ha.a)
    w = Watcher(http, ha.b, rv)  # on the server that survives, started before the stream
    await asyncio.sleep(0.2)
    acked: dict[str, int] = {}  # name -> resourceVersion of every acknowledged create
    a_alive = True
    started = 0
    retries = 0

    async def create(i: int) -> None:
        nonlocal a_alive, retries
        name = f"cm-{i:03}"
        # Half the creates go through a while it lives; after that, everything through b.
        target = ha.a if a_alive and i % 2 else ha.b
        deadline = time.monotonic() + 20
        tried = False
        while True:
            try:
                async with http.post(url(target, CMS), json=cm(name)) as r:
                    body = await r.json()
                    if r.status == 201:
                        acked[name] = int(body["metadata"]["resourceVersion"])
                        return
                    if r.status == 409 and tried:
                        # An earlier try whose outcome was unknown (the store went away after the
                        # write was sent) had been applied: it is in the store, so it counts.
                        async with http.get(url(ha.b, f"{CMS}/{name}")) as g:
                            acked[name] = int((await g.json())["metadata"]["resourceVersion"])
                        return
                    # 5xx while etcd elects a new leader: the outcome is unknown; try again.
                    assert r.status >= 500, (r.status, body)
            except (TimeoutError, aiohttp.ClientConnectionError):
                if target is ha.a:
                    a_alive = False
                    target = ha.b
            tried = True
            retries += 1
            assert time.monotonic() < deadline, f"create {name} kept failing"
            await asyncio.sleep(0.1)

    async def writer(k: int) -> None:
        nonlocal started
        while started < total:
            i = started
            started += 1
            if i == kill_member_at:
                await asyncio.to_thread(ha.etcd.kill, ha.first)
            if i == kill_server_at:
                assert ha.a.proc is not None
                ha.a.proc.send_signal(signal.SIGKILL)
            await create(i)

    t0 = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(writer(k) for k in range(writers))), 45)
        assert ha.a.proc is not None and ha.a.proc.wait(5) == -signal.SIGKILL
        assert len(acked) == total, sorted({f"cm-{i:03}" for i in range(total)} - set(acked))

        # Every acknowledged write is there, as acknowledged.
        async with http.get(url(ha.b, CMS)) as r:
            listed = {o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in (await r.json())["items"]}
        for name, rev in acked.items():
            assert listed.get(name) == rev, (name, rev, listed.get(name))

        # The watch on b saw every event, in order, none twice, across the fail-over.
        await w.wait_for(set(acked), 20)
        revs = [int(e["object"]["metadata"]["resourceVersion"]) for e in w.events]
        assert revs == sorted(set(revs)), "resourceVersions not strictly increasing"
        assert all(e["type"] == "ADDED" for e in w.events)
        assert {e["object"]["metadata"]["name"]: int(e["object"]["metadata"]["resourceVersion"])
                for e in w.events} == listed
    finally:
        await w.close()
    print(f"{total} creates through two servers in {time.monotonic() - t0:.1f}s, {retries} retried")
