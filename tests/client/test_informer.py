"""Informers against the in-process API server: list+watch, resume, relist on 410, indexes, handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from k8py.client import (
    NAMESPACE_INDEX,
    OWNER_UID_INDEX,
    Client,
    FakeClock,
    Informer,
    SharedInformerFactory,
    Store,
    object_key,
)

from .conftest import Api, Proxy, cm, until

CM = ("v1", "ConfigMap")
FAST = (0.01, 0.05)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.objs: dict[str, Any] = {}

    def add(self, o: Any) -> None:
        self.events.append(("add", object_key(o)))

    def update(self, old: Any, new: Any) -> None:
        self.events.append(("update", object_key(new)))

    def delete(self, o: Any) -> None:
        self.events.append(("delete", object_key(o)))
        self.objs[object_key(o)] = o

    def of(self, typ: str) -> list[str]:
        return [k for t, k in self.events if t == typ]


@pytest.fixture
async def running() -> AsyncIterator[list[Informer]]:
    infs: list[Informer] = []
    yield infs
    for i in infs:
        await i.stop()


def start(infs: list[Informer], inf: Informer) -> Informer:
    infs.append(inf)
    inf.start()
    return inf


async def test_list_then_watch_with_handlers(client: Client, running: list[Informer]) -> None:
    await client.create(CM, cm("pre1"))
    await client.create(CM, cm("pre2", ns="kube-public"))
    inf = Informer(client, CM, backoff=FAST)
    rec = Recorder()
    inf.add_handler(rec.add, rec.update, rec.delete)
    start(running, inf)
    assert await inf.wait_for_sync(5) and inf.has_synced
    assert sorted(rec.of("add")) == ["default/pre1", "kube-public/pre2"]
    assert (inf.store.get("default/pre1") or {})["kind"] == "ConfigMap"  # list items get apiVersion/kind
    a = await client.create(CM, cm("new"))
    a["data"] = {"k": "v"}
    upd = await client.update(CM, a)
    await client.delete(CM, "pre1", "default")
    await until(lambda: len(rec.events) == 5, what="watch events")
    assert rec.events[2:] == [("add", "default/new"), ("update", "default/new"), ("delete", "default/pre1")]
    assert (inf.get("new", "default") or {})["data"] == {"k": "v"}
    assert inf.get("pre1", "default") is None
    assert inf.resource_version == str(int(upd["metadata"]["resourceVersion"]) + 1)
    assert [object_key(o) for o in inf.list("kube-public")] == ["kube-public/pre2"]
    assert inf.lists == 1


async def test_resume_after_dropped_connection(api: Api, proxied: Client, proxy: Proxy,
                                               running: list[Informer]) -> None:
    inf = start(running, Informer(proxied, CM, "default", backoff=FAST))
    rec = Recorder()
    inf.add_handler(rec.add, rec.update, rec.delete)
    await inf.wait_for_sync(5)
    await until(lambda: inf.watches == 1, what="watch")
    async with Client(proxied.config.__class__(server=api.url)) as direct:
        proxy.refusing = True
        proxy.drop()
        for i in range(3):
            await direct.create(CM, cm(f"while-down-{i}"))
        await asyncio.sleep(0.05)  # the informer retries against a refusing proxy meanwhile
        proxy.refusing = False
        await until(lambda: len(inf.store) == 3, what="catch-up after reconnect")
    assert rec.of("add") == [f"default/while-down-{i}" for i in range(3)]
    assert inf.lists == 1, "a dropped connection resumes the watch, it does not list again"
    assert inf.watches >= 2


async def test_relist_on_gone(api: Api, proxied: Client, proxy: Proxy, running: list[Informer]) -> None:
    async with Client(proxied.config.__class__(server=api.url)) as direct:
        await direct.create(CM, cm("stays"))
        await direct.create(CM, cm("goes"))
        inf = start(running, Informer(proxied, CM, "default", backoff=FAST))
        rec = Recorder()
        inf.add_handler(rec.add, rec.update, rec.delete)
        await inf.wait_for_sync(5)
        await until(lambda: inf.watches == 1, what="watch")
        proxy.refusing = True
        proxy.drop()
        await direct.delete(CM, "goes", "default")
        await direct.create(CM, cm("new1"))
        await direct.create(CM, cm("new2"))
        await api.store.compact(await api.store.current_revision())
        proxy.refusing = False
        await until(lambda: inf.lists == 2, what="relist after 410")
        await until(lambda: sorted(inf.store.keys()) == ["default/new1", "default/new2", "default/stays"],
                    what="cache after relist")
    assert rec.of("delete") == ["default/goes"]
    assert rec.objs["default/goes"]["metadata"]["name"] == "goes"  # its last known state
    assert sorted(rec.of("add")) == ["default/goes", "default/new1", "default/new2", "default/stays"]
    assert "default/stays" in rec.of("update")  # relist re-delivers what is still there


async def test_bookmarks_advance_resource_version(client: Client, fast_bookmarks: None,
                                                  running: list[Informer]) -> None:
    inf = start(running, Informer(client, CM, "quiet", backoff=FAST))
    await inf.wait_for_sync(5)
    other = await client.create(CM, cm("elsewhere"))  # not an event for this informer
    rv = int(other["metadata"]["resourceVersion"])
    await until(lambda: int(inf.resource_version or 0) >= rv, what="bookmark")
    assert len(inf.store) == 0


async def test_label_selector_leaving_is_delete(client: Client, running: list[Informer]) -> None:
    inf = start(running, Informer(client, CM, "default", label_selector="app=web", backoff=FAST))
    rec = Recorder()
    inf.add_handler(rec.add, rec.update, rec.delete)
    await inf.wait_for_sync(5)
    o = await client.create(CM, cm("w", labels={"app": "web"}))
    await client.create(CM, cm("x", labels={"app": "db"}))
    await until(lambda: "default/w" in inf.store, what="add")
    o["metadata"]["labels"] = {"app": "db"}
    await client.update(CM, o)
    await until(lambda: "default/w" not in inf.store, what="leave selection")
    assert rec.events == [("add", "default/w"), ("delete", "default/w")]


async def test_handlers_that_raise_do_not_break_it(client: Client, running: list[Informer],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    inf = Informer(client, CM, "default", backoff=FAST)
    seen: list[str] = []
    async_seen: list[str] = []

    def boom(_: Any, *rest: Any) -> None:
        raise RuntimeError("handler bug")

    async def slow(o: Any) -> None:
        async_seen.append(object_key(o))
        raise RuntimeError("async handler bug")

    inf.add_handler(boom, boom, boom)
    inf.add_handler(lambda o: seen.append(object_key(o)))
    inf.add_handler(slow)
    start(running, inf)
    await inf.wait_for_sync(5)
    with caplog.at_level(logging.ERROR, logger="k8py.client.informer"):
        for n in ("h1", "h2"):
            await client.create(CM, cm(n))
        await until(lambda: len(seen) == 2 and len(async_seen) == 2, what="events past a raising handler")
        await asyncio.sleep(0)
    assert seen == ["default/h1", "default/h2"] and len(inf.store) == 2
    assert "handler bug" in caplog.text and "async handler failed" in caplog.text
    assert inf.lists == 1 and inf.watches == 1


async def test_late_handler_replays_cache(client: Client, running: list[Informer]) -> None:
    await client.create(CM, cm("old"))
    inf = start(running, Informer(client, CM, "default", backoff=FAST))
    await inf.wait_for_sync(5)
    seen: list[str] = []
    h = inf.add_handler(lambda o: seen.append(object_key(o)))
    assert seen == ["default/old"]
    inf.remove_handler(h)
    await client.create(CM, cm("after"))
    await until(lambda: "default/after" in inf.store)
    assert seen == ["default/old"]


async def test_resync_on_fake_clock(client: Client, running: list[Informer]) -> None:
    await client.create(CM, cm("r"))
    clock = FakeClock()
    inf = Informer(client, CM, "default", resync=30, clock=clock, backoff=FAST)
    rec = Recorder()
    inf.add_handler(rec.add, rec.update, rec.delete)
    start(running, inf)
    await inf.wait_for_sync(5)
    await until(lambda: clock.waiters > 0, what="resync timer")
    clock.advance(30)
    await until(lambda: rec.of("update") == ["default/r"], what="resync")


def test_store_indexes() -> None:
    s = Store()
    s.add_indexer("by-app", lambda o: [o["metadata"].get("labels", {}).get("app", "")])
    owner = {"uid": "u1", "kind": "ReplicaSet", "name": "rs", "apiVersion": "apps/v1"}
    a = {"metadata": {"name": "a", "namespace": "n1", "labels": {"app": "web"}, "ownerReferences": [owner]}}
    b = {"metadata": {"name": "b", "namespace": "n2", "labels": {"app": "web"}}}
    s.put(a)
    s.put(b)
    assert [o["metadata"]["name"] for o in s.by_index(OWNER_UID_INDEX, "u1")] == ["a"]
    assert sorted(s.index_keys("by-app", "web")) == ["n1/a", "n2/b"]
    assert s.index_keys(NAMESPACE_INDEX, "n2") == ["n2/b"]
    # an update moves only what changed
    a2 = {"metadata": {"name": "a", "namespace": "n1", "labels": {"app": "db"}}}
    assert s.put(a2) is a
    assert s.by_index(OWNER_UID_INDEX, "u1") == [] and "u1" not in s.index_values(OWNER_UID_INDEX)
    assert s.index_keys("by-app", "db") == ["n1/a"] and s.index_keys("by-app", "web") == ["n2/b"]
    assert s.remove("n2/b") is b and s.index_keys("by-app", "web") == []
    # an indexer added late indexes what is there; a broken one is logged, not fatal
    s.add_indexer("name", lambda o: [o["metadata"]["name"]])
    s.add_indexer("broken", lambda o: [o["nope"]])
    assert s.index_keys("name", "a") == ["n1/a"] and s.index_keys("broken", "x") == []
    with pytest.raises(ValueError):
        s.add_indexer("name", lambda o: [])
    with pytest.raises(KeyError):
        s.by_index("missing", "x")


async def test_custom_indexer_on_informer(client: Client, running: list[Informer]) -> None:
    inf = Informer(client, CM, backoff=FAST)
    inf.add_indexer("data-key", lambda o: list((o.get("data") or {}).keys()))
    start(running, inf)
    await inf.wait_for_sync(5)
    await client.create(CM, cm("i1", color="red"))
    await client.create(CM, cm("i2", ns="kube-public", color="blue", size="L"))
    await until(lambda: len(inf.store) == 2)
    assert sorted(o["metadata"]["name"] for o in inf.store.by_index("data-key", "color")) == ["i1", "i2"]
    assert [o["metadata"]["name"] for o in inf.store.by_index("data-key", "size")] == ["i2"]


async def test_shared_informer_factory(client: Client) -> None:
    f = SharedInformerFactory(client, backoff=FAST)
    a = f.informer(CM)
    assert f.informer(("", "v1", "configmaps")) is a
    assert f.informer(CM, "default") is not a
    assert f.informer(CM, label_selector="x=y") is not a
    await client.create(CM, cm("f1"))
    f.start()
    try:
        assert await f.wait_for_cache_sync(5)
        assert all(i.has_synced for i in f.informers) and len(f.informers) == 3
        assert a.get("f1", "default") is not None
    finally:
        await f.shutdown()
    assert not any(i.started for i in f.informers)
