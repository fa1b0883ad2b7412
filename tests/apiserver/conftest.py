"""The API server in-process (aiohttp's test client) over the in-memory store: no TLS, no
subprocess, a fresh cluster per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from k8py.apiserver import server as srv
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[TestClient]:
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store)
    await cp.bootstrap()
    cp.http.ready = True
    async with TestClient(TestServer(cp.http.build())) as c:
        c.cp = cp  # type: ignore[attr-defined]
        yield c
    await store.close()
