"""Encryption at rest (k8py.storage.encryption): providers, the EncryptionConfiguration file,
the store wrapper, the API's per-object report of an unreadable object, and key rotation."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from k8py.api import errors
from k8py.api.configfile import ConfigFileError
from k8py.api.registry import Registry
from k8py.apiserver.objects import Objects
from k8py.apiserver.secretsencrypt import SecretsEncryption
from k8py.config import ServerConfig
from k8py.storage.encryption import (
    Chain,
    DecryptError,
    EncryptedStore,
    KeyTransformer,
    StaleValue,
    UnreadableValue,
    ensure_default_config,
    load_config,
    write_config_file,
)
from k8py.storage.interface import ConflictError, EventType, KeyValue
from k8py.storage.memory import MemoryStore

try:
    from .contract import StoreContract
except ImportError:
    from contract import StoreContract  # type: ignore[no-redef]

K16 = base64.b64encode(b"k" * 16).decode()
K32 = base64.b64encode(b"s" * 32).decode()
K32B = base64.b64encode(b"t" * 32).decode()
SECRET_KEY = "/registry/core/secrets/default/s1"
PLAIN = b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s1"},"data":{"password":"aHVudGVyMg=="}}'


def write(tmp: Path, doc: Any, name: str = "enc.yaml") -> str:
    p = tmp / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return str(p)


def read_json(path: str) -> Any:
    return json.loads(Path(path).read_text())


def config_doc(*providers: dict[str, Any], resources: tuple[str, ...] = ("secrets",)) -> dict[str, Any]:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": list(resources), "providers": list(providers)}]}


def aescbc(*keys: tuple[str, str]) -> dict[str, Any]:
    return {"aescbc": {"keys": [{"name": n, "secret": s} for n, s in keys]}}


# --------------------------------------------------------------------------- providers


@pytest.mark.parametrize(("kind", "key"), [("aescbc", b"a" * 32), ("aescbc", b"a" * 16), ("aesgcm", b"g" * 24),
                                           ("secretbox", b"x" * 32)])
def test_provider_round_trip_in_kubes_format(kind: str, key: bytes) -> None:
    t = KeyTransformer(kind, "key1", key)
    sealed = t.seal(PLAIN, SECRET_KEY.encode())
    assert sealed.startswith(f"k8s:enc:{kind}:v1:key1:".encode())
    assert b"aHVudGVyMg" not in sealed and b"Secret" not in sealed
    assert sealed != t.seal(PLAIN, SECRET_KEY.encode())  # a random IV / nonce each time
    assert t.open(sealed[len(t.prefix):], SECRET_KEY.encode()) == PLAIN


def test_aescbc_layout_is_iv_then_pkcs7_blocks() -> None:
    t = KeyTransformer("aescbc", "k", b"a" * 32)
    body = t.seal(b"x" * 16, b"")[len(t.prefix):]
    assert len(body) == 16 + 32  # IV + 16 bytes of data + a whole block of padding


def test_aesgcm_binds_the_store_key() -> None:
    t = KeyTransformer("aesgcm", "k", b"g" * 32)
    sealed = t.seal(PLAIN, b"/registry/core/secrets/default/a")[len(t.prefix):]
    with pytest.raises(DecryptError):
        t.open(sealed, b"/registry/core/secrets/default/b")  # copied to another object: refused


@pytest.mark.parametrize("kind", ["aesgcm", "secretbox"])
def test_tampering_is_detected(kind: str) -> None:
    t = KeyTransformer(kind, "k", b"z" * 32)
    sealed = bytearray(t.seal(PLAIN, b"k")[len(t.prefix):])
    sealed[-1] ^= 1
    with pytest.raises(DecryptError):
        t.open(bytes(sealed), b"k")


def test_chain_reads_by_prefix_and_flags_stale() -> None:
    new, old = KeyTransformer("aescbc", "new", b"n" * 32), KeyTransformer("secretbox", "old", b"o" * 32)
    ident = KeyTransformer("identity", "", b"")
    chain = Chain([new, old, ident])
    assert chain.open(chain.seal(PLAIN, b"k"), b"k") == (PLAIN, False)
    assert chain.open(old.seal(PLAIN, b"k"), b"k") == (PLAIN, True)  # an old key reads, and is stale
    assert chain.open(PLAIN, b"k") == (PLAIN, True)  # written before encryption: identity reads it
    with pytest.raises(DecryptError, match="written with aesgcm key 'gone'"):
        chain.open(KeyTransformer("aesgcm", "gone", b"q" * 32).seal(PLAIN, b"k"), b"k")
    with pytest.raises(DecryptError, match="do not include identity"):
        Chain([new]).open(PLAIN, b"k")


# --------------------------------------------------------------------------- the configuration file


def test_config_matching_as_kube(tmp_path: Path) -> None:
    doc = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration", "resources": [
        {"resources": ["secrets", "deployments.apps"], "providers": [aescbc(("a", K32))]},
        {"resources": ["*.apps"], "providers": [{"secretbox": {"keys": [{"name": "b", "secret": K32}]}}]},
        {"resources": ["*.*"], "providers": [{"identity": {}}]},
    ]}
    cfg = load_config(write(tmp_path, doc))
    assert cfg.chain_for("", "secrets").writer.name == "a"  # type: ignore[union-attr]
    assert cfg.chain_for("apps", "deployments").writer.name == "a"  # type: ignore[union-attr]
    assert cfg.chain_for("apps", "statefulsets").writer.kind == "secretbox"  # type: ignore[union-attr]
    assert cfg.chain_for("", "configmaps").writer.kind == "identity"  # type: ignore[union-attr]
    only = load_config(write(tmp_path, config_doc(aescbc(("a", K16)), resources=("*.",)), "core.yaml"))
    assert only.chain_for("", "configmaps") is not None
    assert only.chain_for("apps", "deployments") is None


def test_yaml_config_with_several_keys(tmp_path: Path) -> None:
    path = write(tmp_path, f"""\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - aesgcm:
          keys:
            - name: key2
              secret: {K32B}
            - name: key1
              secret: {K32}
      - identity: {{}}
""")
    chain = load_config(path).chain_for("", "secrets")
    assert chain is not None
    assert [(t.kind, t.name) for t in chain.readers] == [("aesgcm", "key2"), ("aesgcm", "key1"), ("identity", "")]


@pytest.mark.parametrize(("body", "where"), [
    (("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n"
     "    providers:\n      - aescbc:\n          keys:\n            - name: k\n              secret: c2hvcnQ=\n"),
     (":9: resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the "
     "expected length, got 5, expected one of [16, 24, 32]")),
    (("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n"
     "    providers:\n      - aescbc:\n          keys:\n            - name: k\n              secret: '%%%'\n"),
     ":9: resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secrets must be base64"),
    (("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n"
     "    providers:\n      - aescbcc: {}\n"),
     ":6: resources[0].providers[0]: provider does not contain any of the expected providers"),
    ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n",
     ":4: resources[0].providers: Required value"),
    (("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
     "  - resources: [secrets, '*.']\n    providers: [{identity: {}}]\n"),
     ":4: resources[0].resources: Invalid value: ['secrets', '*.']: using overlapping resources"),
    (("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
     "  - resources: [Secrets]\n    providers: [{identity: {}}]\n"),
     ":4: resources[0].resources[0]: Invalid value: 'Secrets': resource name should not contain capital letters"),
    (("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
     "  - resources: ['*.*']\n    providers: [{identity: {}}]\n  - resources: [secrets]\n"
     "    providers: [{identity: {}}]\n"),
     ":6: resources[1].resources[0]: resource 'secrets' is masked by an earlier rule '*.*'"),
    (("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n"
     "    providers:\n      - kms: {name: x, endpoint: unix:///tmp/x}\n"),
     ":6: resources[0].providers[0].kms: kms providers are not supported"),
    ("apiVersion: v1\nkind: EncryptionConfig\nresources: []\n", ":2: kind: must be kind: EncryptionConfiguration"),
    (("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets\n"
     "    providers: []\n"), "is not valid YAML or JSON"),
])
def test_malformed_config_names_the_line(tmp_path: Path, body: str, where: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    assert str(info.value).startswith(path + ":" if where.startswith(":") else path)
    assert where in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="--encryption-provider-config .*nope.yaml: cannot read it"):
        load_config(str(tmp_path / "nope.yaml"))


def test_generated_default_is_private_and_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "cred" / "encryption-config.json")
    assert ensure_default_config(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    first = Path(path).read_text()
    assert not ensure_default_config(path)
    assert Path(path).read_text() == first
    chain = load_config(path).chain_for("", "secrets")
    assert chain is not None and chain.writer.kind == "aescbc"
    assert [t.kind for t in chain.readers] == ["aescbc", "identity"]


# --------------------------------------------------------------------------- the store wrapper


class TestEncryptedStoreContract(StoreContract):
    """The wrapper keeps every semantic of the store it wraps (the shared contract, with every
    key under an encrypted resource)."""

    @pytest.fixture
    def root(self) -> str:
        return f"/registry/core/secrets/contract-{uuid.uuid4().hex[:8]}/"

    @pytest.fixture
    async def store(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        inner = MemoryStore(progress_interval=0.2)
        s = EncryptedStore(inner, load_config(write(tmp_path, config_doc(aescbc(("k", K32)), {"identity": {}}))))
        await s.start()
        yield s
        await s.close()


async def wrapped(tmp_path: Path, *providers: dict[str, Any]) -> tuple[MemoryStore, EncryptedStore]:
    inner = MemoryStore(progress_interval=0.2)
    await inner.start()
    return inner, EncryptedStore(inner, load_config(write(tmp_path, config_doc(*providers), f"{uuid.uuid4()}.json")))


async def test_values_are_sealed_on_the_way_in_and_opened_on_the_way_out(tmp_path: Path) -> None:
    inner, store = await wrapped(tmp_path, {"secretbox": {"keys": [{"name": "k", "secret": K32}]}})
    w = store.watch("/registry/core/secrets/", 0)
    rev = await store.create(SECRET_KEY, PLAIN)
    raw = await inner.get(SECRET_KEY)
    assert raw is not None and raw.value.startswith(b"k8s:enc:secretbox:v1:k:") and b"hunter" not in raw.value
    assert await store.get(SECRET_KEY) == KeyValue(SECRET_KEY, PLAIN, rev, rev)
    assert (await store.list("/registry/core/secrets/")).kvs[0].value == PLAIN
    assert (await store.list("/registry/")).kvs[0].value == PLAIN  # a prefix above several resources
    with pytest.raises(ConflictError) as info:
        await store.update(SECRET_KEY, PLAIN + b" ", rev - 1)
    assert info.value.current is not None and info.value.current.value == PLAIN
    rev2 = await store.update(SECRET_KEY, PLAIN.replace(b"s1", b"s2"), rev)
    deleted = await store.delete(SECRET_KEY)
    assert deleted.prev_kv.value == PLAIN.replace(b"s1", b"s2")
    got = []
    async for resp in w:
        for ev in resp.events:
            got.append((ev.type, ev.kv.value, ev.prev_kv.value if ev.prev_kv else None))
        if len(got) >= 3:
            break
    await w.close()
    assert got == [(EventType.PUT, PLAIN, None), (EventType.PUT, PLAIN.replace(b"s1", b"s2"), PLAIN),
                   (EventType.DELETE, PLAIN.replace(b"s1", b"s2"), PLAIN.replace(b"s1", b"s2"))]
    assert rev2 > rev
    # resources the config does not list are stored as they are
    await store.create("/registry/core/configmaps/default/c", b"{}")
    assert (await inner.get("/registry/core/configmaps/default/c")).value == b"{}"  # type: ignore[union-attr]
    await inner.close()


async def test_a_lost_key_is_reported_per_object(tmp_path: Path) -> None:
    inner, store = await wrapped(tmp_path, aescbc(("old", K32)))
    await store.create(SECRET_KEY, PLAIN)
    await store.create("/registry/core/secrets/default/s0", PLAIN.replace(b"s1", b"s0"))
    store.reconfigure(load_config(write(tmp_path, config_doc(aescbc(("new", K32B))), "new.json")))
    await store.create("/registry/core/secrets/default/s2", PLAIN.replace(b"s1", b"s2"))
    kv = await store.get(SECRET_KEY)
    assert isinstance(kv, UnreadableValue) and "written with aescbc key 'old'" in kv.reason

    reg = Registry()
    kind = reg.by_resource("", "v1", "secrets")
    assert kind is not None
    objects = Objects(inner)
    objects.store = store  # the same wrapper, as Objects(inner, config) builds it
    page = await objects.list(kind, "default")
    assert [o["metadata"]["name"] for o in page.items] == ["s2"]
    assert page.unreadable == [
        f'secrets "{n}" in namespace "default" is left out of this list: data from the storage is not transformable: '
        f"no matching prefix found: the value was written with aescbc key 'old', which the encryption "
        "configuration does not have" for n in ("s0", "s1")]
    raw_page = await objects.list(kind, None, raw=True, limit=1)
    assert [orjson.loads(i)["metadata"]["name"] for i in raw_page.items] == ["s2"]
    with pytest.raises(errors.StatusError) as info:
        await objects.get(kind, "default", "s1")
    assert info.value.code == 500 and info.value.reason == "InternalError"
    assert info.value.message.startswith("Internal error occurred: StorageError: corrupt object, Code: 7, "
                                         "Key: /registry/core/secrets/default/s1")
    await inner.close()


async def test_a_stale_value_is_rewritten_by_a_no_op_update(tmp_path: Path) -> None:
    inner, store = await wrapped(tmp_path, aescbc(("old", K32)))
    kind = Registry().by_resource("", "v1", "secrets")
    assert kind is not None
    objects = Objects(inner)
    objects.store = store
    await objects.create(kind, orjson.loads(PLAIN) | {"metadata": {"name": "s1", "namespace": "default"}})
    store.reconfigure(load_config(write(tmp_path, config_doc(aescbc(("new", K32B), ("old", K32))), "n.json")))
    assert isinstance(await store.get(SECRET_KEY), StaleValue)

    async def same(cur: dict[str, Any]) -> dict[str, Any]:
        return cur

    old, new = await objects.guaranteed_update(kind, "default", "s1", same)
    assert new["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]  # written again
    assert (await inner.get(SECRET_KEY)).value.startswith(b"k8s:enc:aescbc:v1:new:")  # type: ignore[union-attr]
    old, new = await objects.guaranteed_update(kind, "default", "s1", same)
    assert new is old  # now a true no-op
    await inner.close()


# --------------------------------------------------------------------------- rotation


async def rotation_setup(tmp_path: Path, n: int) -> tuple[MemoryStore, Objects, SecretsEncryption, str]:
    config = ServerConfig(data_dir=str(tmp_path))
    path = config.encryption_config_path
    assert ensure_default_config(path)
    inner = MemoryStore()
    await inner.start()
    objects = Objects(inner, load_config(path))
    kind = Registry().by_resource("", "v1", "secrets")
    assert kind is not None
    for i in range(n):
        await objects.create(kind, {"apiVersion": "v1", "kind": "Secret",
                                    "metadata": {"name": f"s{i}", "namespace": "default"},
                                    "data": {"v": base64.b64encode(f"value-{i}".encode()).decode()}})
    return inner, objects, SecretsEncryption(objects, config), path


async def test_rotate_rewrites_everything_and_retires_the_old_key(tmp_path: Path) -> None:
    inner, _objects, se, path = await rotation_setup(tmp_path, 5)
    # one Secret written before encryption was on: read by identity, encrypted by the rotation
    await inner.create("/registry/core/secrets/default/plain", PLAIN.replace(b"s1", b"plain"))
    old_key = read_json(path)["resources"][0]["providers"][0]["aescbc"]["keys"][0]["name"]
    before = await se.status()
    assert before["objects"] | {"unreadable": []} == {"total": 6, "active": 5, "stale": 1, "rewritten": 0,
                                                       "conflicts": 0, "unreadable": []}
    result = await se.rotate()
    assert result["rewritten"] == 6 and result["retired"] == [f"aescbc:{old_key}"] and not result["unreadable"]
    keys = read_json(path)["resources"][0]["providers"][0]["aescbc"]["keys"]
    assert [k["name"] for k in keys] == [result["added"][0].split(":", 1)[1]]
    assert os.stat(path).st_mode & 0o777 == 0o600
    for kv in (await inner.list("/registry/core/secrets/")).kvs:
        assert kv.value.startswith(f"k8s:enc:aescbc:v1:{keys[0]['name']}:".encode())
    after = await se.status()
    assert after["objects"]["active"] == 6 and after["objects"]["stale"] == 0
    # a restart reads every Secret with the file as it is now
    fresh = Objects(inner, load_config(path))
    kind = Registry().by_resource("", "v1", "secrets")
    assert kind is not None
    page = await fresh.list(kind, "default")
    assert not page.unreadable and len(page.items) == 6
    assert base64.b64decode((await fresh.get(kind, "default", "s3"))["data"]["v"]) == b"value-3"
    await inner.close()


async def test_a_rotation_killed_half_way_leaves_every_secret_readable(tmp_path: Path) -> None:
    inner, objects, se, path = await rotation_setup(tmp_path, 6)
    store = objects.store
    assert isinstance(store, EncryptedStore)
    real_update = store.update
    calls = 0

    async def dying_update(key: str, value: bytes, rev: int) -> int:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise SystemExit("kill -9")  # the process dies here: nothing after this runs
        return await real_update(key, value, rev)

    store.update = dying_update  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        await se.rotate()
    # what a restart sees: the file on disk and the store
    cfg = load_config(path)
    assert len(cfg.chain_for("", "secrets").readers) == 3  # type: ignore[union-attr]  # new, old, identity
    restarted = Objects(inner, cfg)
    kind = Registry().by_resource("", "v1", "secrets")
    assert kind is not None
    page = await restarted.list(kind, "default")
    assert not page.unreadable and len(page.items) == 6
    se2 = SecretsEncryption(restarted, se.config)
    status = await se2.status()
    assert status["objects"]["stale"] == 3  # the rest still with the old key
    done = await se2.reencrypt()
    assert done["rewritten"] == 3 and len(done["retired"]) == 1
    assert len(load_config(path).chain_for("", "secrets").readers) == 2  # type: ignore[union-attr]
    await inner.close()


async def test_rotate_is_refused_for_an_operator_config(tmp_path: Path) -> None:
    path = write(tmp_path, config_doc(aescbc(("k", K32))))
    inner = MemoryStore()
    await inner.start()
    se = SecretsEncryption(Objects(inner, load_config(path)), ServerConfig(data_dir=str(tmp_path),
                                                                           encryption_provider_config=path))
    with pytest.raises(errors.StatusError, match="its keys are yours to rotate"):
        await se.rotate()
    result = await se.reencrypt()
    assert result["retired"] == []
    assert read_json(path) == config_doc(aescbc(("k", K32)))
    await inner.close()


def test_config_file_writes_are_atomic(tmp_path: Path) -> None:
    path = str(tmp_path / "c.json")
    write_config_file(path, {"a": 1})
    write_config_file(path, {"a": 2})
    assert read_json(path) == {"a": 2}
    assert os.listdir(tmp_path) == ["c.json"]


async def test_mirrors_see_plain_values_and_skip_unreadable_ones(tmp_path: Path) -> None:
    """The in-process copies of kube-system Secrets (bootstrap tokens, RBAC) read through the
    wrapper: plain values, and an undecryptable one as absent instead of a failing loop."""
    inner, store = await wrapped(tmp_path, aescbc(("old", K32)))
    await store.create("/registry/core/secrets/kube-system/a", b'{"a":1}')
    store.reconfigure(load_config(write(tmp_path, config_doc(aescbc(("new", K32B))), "m.json")))
    await store.create("/registry/core/secrets/kube-system/b", b'{"b":2}')
    objects = Objects(inner)
    objects.store = store
    seen: dict[str, bytes | None] = {}
    synced = asyncio.Event()
    task = asyncio.create_task(objects.mirror("/registry/core/secrets/kube-system/", reset=seen.clear,
                                              apply=seen.__setitem__, synced=synced.set, what="test"))
    try:
        await asyncio.wait_for(synced.wait(), 5)
        assert seen == {"/registry/core/secrets/kube-system/a": None, "/registry/core/secrets/kube-system/b": b'{"b":2}'}
        await store.create("/registry/core/secrets/kube-system/c", b'{"c":3}')
        async with asyncio.timeout(5):
            while "/registry/core/secrets/kube-system/c" not in seen:
                await asyncio.sleep(0.01)
        assert seen["/registry/core/secrets/kube-system/c"] == b'{"c":3}'
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await inner.close()


async def test_a_watch_meeting_an_unreadable_object_ends_with_kubes_error(tmp_path: Path) -> None:
    """kube's watcher sends the decryption failure as an ERROR event and ends; the client lists
    again, and the list reports the object on its own."""
    import aiohttp
    from aiohttp import web

    from k8py.apiserver import server as srv

    store = MemoryStore(progress_interval=0.2)
    await store.start()
    cfg = load_config(write(tmp_path, config_doc(aescbc(("k", K32)), {"identity": {}})))
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store, encryption=cfg)
    await cp.bootstrap()
    cp.http.ready = True
    runner = web.AppRunner(cp.http.build(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession(url) as s:
            secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ok"}, "data": {"a": "Yg=="}}
            async with s.post("/api/v1/namespaces/default/secrets", json=secret) as r:
                assert r.status == 201
                rv = (await r.json())["metadata"]["resourceVersion"]
            async with s.get(f"/api/v1/namespaces/default/secrets?watch=1&resourceVersion={rv}"
                             "&timeoutSeconds=10") as r:
                # written by a server with a key this one does not have
                other = KeyTransformer("aescbc", "elsewhere", b"e" * 32)
                await store.create("/registry/core/secrets/default/bad", other.seal(PLAIN, b""))
                lines = [json.loads(line) async for line in r.content if line.strip()]
            assert [ev["type"] for ev in lines] == ["ERROR"]
            status = lines[0]["object"]
            assert status["code"] == 500 and status["reason"] == "InternalError"
            assert "Key: /registry/core/secrets/default/bad" in status["message"]
            async with s.get("/api/v1/namespaces/default/secrets") as r:
                assert r.status == 200
                assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["ok"]
                assert 'secrets \\"bad\\" in namespace \\"default\\" is left out' in r.headers["Warning"]
    finally:
        await runner.cleanup()
        await store.close()


async def test_a_resource_dropped_from_the_config_is_reported_per_object(tmp_path: Path) -> None:
    """ConfigMaps encrypted, then the config no longer lists them: kube's identity check names
    each object, and the plain ones still read (list, get and watch)."""
    inner, store = await wrapped(tmp_path, aescbc(("k", K32)))
    store.reconfigure(load_config(write(tmp_path, config_doc(aescbc(("k", K32)), resources=("secrets", "configmaps")),
                                        "both.json")))
    first = await store.create("/registry/core/configmaps/default/sealed", b'{"a":1}')
    store.reconfigure(load_config(write(tmp_path, config_doc(aescbc(("k", K32))), "secrets.json")))
    w = store.watch("/registry/core/configmaps/", first)
    await store.create("/registry/core/configmaps/default/plain", b'{"b":2}')
    res = await store.list("/registry/core/configmaps/")
    good, bad = res.kvs  # in key order
    assert isinstance(bad, UnreadableValue) and "identity transformer tried to read encrypted data" in bad.reason
    assert good.value == b'{"b":2}' and type(good) is KeyValue
    assert isinstance(await store.get("/registry/core/configmaps/default/sealed"), UnreadableValue)
    seen: list[KeyValue] = []
    async for resp in w:
        seen += [ev.kv for ev in resp.events]
        if len(seen) >= 2:
            break
    await w.close()
    assert isinstance(seen[0], UnreadableValue) and seen[1].value == b"{\"b\":2}", seen
    await inner.close()
