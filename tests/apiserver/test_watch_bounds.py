"""Slow watchers are bounded: a client that opens a watch and never reads costs the server a
bounded queue, its watch is ended once a write stays unread, and other watchers get every event."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from k8py.apiserver import server as srv
from k8py.apiserver import watch
from k8py.config import ServerConfig
from k8py.storage.sqlite import SQLiteStore

CM = "/api/v1/namespaces/default/configmaps"
WRITES = 3000
BUFFER = 200  # the store's per-watcher queue bound in this test
DEADLINE = 60.0


async def until(cond: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not cond():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_watcher_that_never_reads_is_bounded_and_ended(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "WRITE_TIMEOUT", 1.0)
    store = SQLiteStore(str(tmp_path / "db" / "state.db"), watch_buffer=BUFFER, progress_interval=0.2)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store)
    await cp.bootstrap()
    cp.http.ready = True
    client = TestClient(TestServer(cp.http.build()))
    await client.start_server()
    raw = socket.socket()
    try:
        rv = (await (await client.get(CM)).json())["metadata"]["resourceVersion"]
        # The client that never reads: a small receive window, a watch request, then nothing.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", client.port))  # type: ignore[arg-type]
        raw.sendall(f"GET {CM}?watch=1&resourceVersion={rv} HTTP/1.1\r\nHost: k8py\r\n\r\n".encode())
        await until(lambda: len(store._watches) == 1, "the silent watch to open")

        got: list[str] = []
        revisions: list[int] = []
        got_bytes = 0

        async def good_watcher() -> None:
            nonlocal got_bytes
            async with client.get(f"{CM}?watch=1&resourceVersion={rv}") as r:
                assert r.status == 200
                while len(got) < WRITES:
                    line = await r.content.readline()
                    assert line, "the reading watcher's stream ended early"
                    got_bytes += len(line)
                    ev = json.loads(line)
                    assert ev["type"] == "ADDED", ev
                    got.append(ev["object"]["metadata"]["name"])
                    revisions.append(int(ev["object"]["metadata"]["resourceVersion"]))

        reader = asyncio.ensure_future(good_watcher())
        await until(lambda: len(store._watches) == 2, "the reading watch to open")

        max_pending = 0
        # About 7 MB of watch stream: more than Linux lets a socket buffer (4 MB of send buffer at
        # most, and the silent client's 8 kB receive window), so its writes must block.
        payload = "x" * 2000
        sem = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            nonlocal max_pending
            async with sem:
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:05}"},
                        "data": {"payload": payload}}
                async with client.post(CM, json=body) as r:
                    assert r.status == 201, await r.text()
            max_pending = max(max_pending, *(len(w._pending) for w in store._watches), 0)

        await asyncio.gather(*(create(i) for i in range(WRITES)))
        # The silent watcher's queue never grew past the bound (what it has not taken is read
        # back from the ring or the database when it asks, never held for it).
        assert max_pending <= BUFFER
        # Its watch ends once a write to it stayed unread for WRITE_TIMEOUT: only the reader is left.
        await until(lambda: len(store._watches) == 1, "the silent watch to be ended")
        await asyncio.wait_for(reader, DEADLINE)
        # every event once, in the order of the writes (the creates run 16 at a time: the server
        # may take them in another order than their names')
        assert sorted(got) == [f"cm-{i:05}" for i in range(WRITES)]
        assert revisions == sorted(revisions) and len(set(revisions)) == WRITES
        # The server closed the silent connection: what it buffered, then the end of the stream.
        raw.setblocking(False)
        loop = asyncio.get_running_loop()
        received = 0
        while True:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(raw, 65536), DEADLINE)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += len(chunk)
        # Its stream was cut: the rest of the events were never queued or encoded for it.
        assert 0 < received < got_bytes * 0.75, (received, got_bytes)
    finally:
        raw.close()
        await client.close()
        await store.close()


async def test_open_watches_end_when_the_server_shuts_down(tmp_path: Path) -> None:
    # kube-apiserver ends its watches when it shuts down: the stream ends cleanly (the client
    # watches again), instead of the shutdown waiting for it to time out
    store = SQLiteStore(str(tmp_path / "db" / "state.db"), progress_interval=0.2)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store)
    await cp.bootstrap()
    cp.http.ready = True
    client = TestClient(TestServer(cp.http.build()))
    await client.start_server()
    try:
        async with client.get(f"{CM}?watch=1&timeoutSeconds=3600") as r:
            assert r.status == 200
            await until(lambda: len(cp.http.api.open_watches) == 1, "the watch to open")
            await client.app.shutdown()  # what aiohttp's runner calls once its listeners are closed
            # the stream ends (a clean end of the chunked body, not a reset), long before its hour
            body = await asyncio.wait_for(r.content.read(), DEADLINE)
            assert body == b"" and r.content.at_eof()
        await until(lambda: not cp.http.api.open_watches, "the watch to be forgotten")
    finally:
        await client.close()
        await store.close()
