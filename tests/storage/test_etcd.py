"""The etcd backend: the shared store contract against a real etcd, plus what
is etcd's own (endpoints and fail-over, key prefix, TLS, compaction learned
from another client, a three-member cluster losing a member mid-stream).

The tests start Debian's ``/usr/bin/etcd`` (package ``etcd-server``) on free
loopback ports through :class:`tests.helpers.etcd.EtcdCluster`, and stop and
remove it at the end.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.etcd import EtcdCluster, free_ports

from k8py.storage.etcd import EtcdStore, parse_endpoints
from k8py.storage.factory import open_store
from k8py.storage.interface import (
    CompactedError,
    EventType,
    KeyExistsError,
    KeyValue,
    StoreError,
    StoreUnavailableError,
)

try:
    from .contract import StoreContract, collect
except ImportError:
    from contract import StoreContract, collect  # type: ignore[no-redef]


# ---------------------------------------------------------------------- running etcd


@pytest.fixture(scope="module")
def etcd1() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(1)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def etcd_factory(etcd1: EtcdCluster):
    """``await etcd_factory(endpoints=None, **options)``: a started EtcdStore
    on the module's etcd, closed at teardown."""
    opened: list[EtcdStore] = []

    async def make(endpoints: str | None = None, **options) -> EtcdStore:
        store = EtcdStore(endpoints or etcd1.endpoints, **options)
        await store.start()
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        await store.close()


# ---------------------------------------------------------------------- the contract


class TestEtcdContract(StoreContract):
    @pytest.fixture
    async def store(self, etcd_factory):
        return await etcd_factory()


class TestEtcdContractUnderPrefix(StoreContract):
    """The same, with every key under a store prefix (a shared etcd)."""

    @pytest.fixture
    async def store(self, etcd_factory):
        return await etcd_factory(prefix=f"/tenant-{uuid.uuid4().hex[:6]}")


# ---------------------------------------------------------------------- etcd specifics


async def test_prefix_is_prepended_and_isolates(etcd_factory) -> None:
    raw = await etcd_factory()
    a = await etcd_factory(prefix="/k8py-a")
    b = await etcd_factory(prefix="/k8py-b")
    ra = await a.create("/registry/pods/default/p", b"in a")
    await b.create("/registry/pods/default/p", b"in b")
    assert await a.get("/registry/pods/default/p") == KeyValue("/registry/pods/default/p", b"in a", ra, ra)
    assert [kv.value for kv in (await b.list("/registry/")).kvs] == [b"in b"]
    assert (await raw.get("/k8py-a/registry/pods/default/p")).value == b"in a"  # type: ignore[union-attr]
    w = a.watch("/registry/", 0)
    await asyncio.sleep(0.05)
    await b.create("/registry/pods/default/q", b"b only")
    r = await a.create("/registry/pods/default/q", b"a only")
    (ev,) = await collect(w, 1)
    assert ev.kv == KeyValue("/registry/pods/default/q", b"a only", r, r)
    await w.close()


async def test_unreachable_etcd_fails_start_clearly() -> None:
    (port,) = free_ports(1)
    store = EtcdStore(f"http://127.0.0.1:{port}", dial_timeout=1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        await store.start()
    assert f"127.0.0.1:{port}" in str(info.value) and "cannot reach etcd" in str(info.value)
    assert time.monotonic() - started < 5
    with pytest.raises(StoreUnavailableError):
        await store.get("/x")
    await store.close()


async def test_fails_over_to_the_next_endpoint(etcd1: EtcdCluster, etcd_factory) -> None:
    (dead,) = free_ports(1)
    store = await etcd_factory(f"http://127.0.0.1:{dead},{etcd1.endpoints}")
    rev = await store.create("/failover/a", b"v")
    assert store._active == 1
    assert await store.get("/failover/a") == KeyValue("/failover/a", b"v", rev, rev)


async def test_compaction_by_another_client_is_learned(etcd_factory) -> None:
    one = await etcd_factory()
    other = await etcd_factory()
    r1 = await one.create("/learn/a", b"1")
    r2 = await one.update("/learn/a", b"2", r1)
    await one.update("/learn/a", b"3", r2)
    await one.compact(r2)
    assert await other.compacted_revision() == r2 - 1
    with pytest.raises(CompactedError) as info:
        await other.get("/learn/a", r1)
    assert info.value.compacted == r2 - 1
    # A third client starting now finds it too.
    third = await etcd_factory()
    assert third._compacted == r2 - 1
    await other.compact(r1)  # older: nothing to do


async def test_watch_ends_when_another_client_compacted_its_previous_values(etcd1, etcd_factory) -> None:
    """etcd compacted exactly to the watch's start (as a foreign client may):
    the first update there comes without its previous value, so the watch
    ends with CompactedError instead of delivering a wrong event."""
    store = await etcd_factory()
    r1 = await store.create("/foreign/a", b"1")
    r2 = await store.update("/foreign/a", b"2", r1)
    await store.create("/foreign/b", b"b")
    endpoint = etcd1.members[0].client_url
    req = urllib.request.Request(endpoint + "/v3/kv/compaction", data=json.dumps({"revision": r2}).encode())
    await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=5).read())
    assert store._compacted < r2  # not learned yet
    w = store.watch("/foreign/", r2)
    with pytest.raises(CompactedError) as info:
        await collect(w, 2)
    assert info.value.compacted >= r2
    with pytest.raises(StopAsyncIteration):
        await w.__anext__()
    assert await store.compacted_revision() == r2


async def test_large_values_and_many_keys(etcd_factory) -> None:
    store = await etcd_factory()
    big = os.urandom(512 * 1024)
    rev = await store.create("/big/one", big)
    w = store.watch("/big/", rev)
    (ev,) = await collect(w, 1)
    assert ev.kv.value == big
    await w.close()
    await asyncio.gather(*(store.create(f"/big/k{i:04}", b"v") for i in range(1500)))
    res = await store.list("/big/k", count=True)
    assert len(res.kvs) == 1500 and res.count == 1500


async def test_write_to_a_closed_store(etcd_factory) -> None:
    store = await etcd_factory()
    w = store.watch("/", 0)
    await store.close()
    with pytest.raises(StoreUnavailableError):
        await store.create("/closed", b"")
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(w.__anext__(), 2)
    with pytest.raises(TypeError):
        await (await etcd_factory()).create("/a", "text")  # type: ignore[arg-type]


def test_endpoint_parsing_and_factory(tmp_path: Path) -> None:
    assert parse_endpoints("http://a:2379, http://b") == ["http://a:2379", "http://b:2379"]
    assert parse_endpoints(["https://[::1]:2379"]) == ["https://[::1]:2379"]
    for bad in ("a:2379", "http://a:2379,https://b:2379", "http://a:2379/v3", ""):
        with pytest.raises(ValueError):
            parse_endpoints(bad)
    db = str(tmp_path / "state.db")
    store = open_store("http://127.0.0.1:2379,http://127.0.0.2:2379", db, prefix="/p")
    assert isinstance(store, EtcdStore) and store.prefix == "/p" and len(store.endpoints) == 2
    ca = tmp_path / "ca.pem"
    store = open_store("https://etcd.example:2379", db, cafile=str(ca), certfile="c.pem", keyfile="k.pem")
    assert isinstance(store, EtcdStore) and store.cafile == str(ca)
    with pytest.raises(StoreError, match="https://"):
        open_store("http://127.0.0.1:2379", db, cafile=str(ca))
    with pytest.raises(StoreError, match="apply to an https"):
        open_store("", db, cafile=str(ca))
    with pytest.raises(StoreError, match="HOST:PORT"):
        open_store("http://", db)


# ---------------------------------------------------------------------- TLS


def _make_pki(d: Path) -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    files: dict[str, str] = {}
    for ca_name in ("ca", "other-ca"):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(name(ca_name))
            .issuer_name(name(ca_name))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        (d / f"{ca_name}.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        files[ca_name] = str(d / f"{ca_name}.pem")
        if ca_name == "other-ca":
            break
        for leaf in ("server", "client"):
            key = ec.generate_private_key(ec.SECP256R1())
            builder = (
                x509.CertificateBuilder()
                .subject_name(name(f"k8py-etcd-{leaf}"))
                .issuer_name(name(ca_name))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
            )
            if leaf == "server":
                # etcd's gateway dials its own gRPC port with this certificate
                # as a client too: no extended key usage limits it to "server".
                builder = builder.add_extension(
                    x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                    critical=False,
                )
            cert = builder.sign(ca_key, hashes.SHA256())
            (d / f"{leaf}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            write_key(key, d / f"{leaf}-key.pem")
            files[leaf] = str(d / f"{leaf}.pem")
            files[f"{leaf}-key"] = str(d / f"{leaf}-key.pem")
    return files


async def test_tls_with_client_certificates(tmp_path: Path) -> None:
    pki = _make_pki(tmp_path)
    cluster = EtcdCluster(1, tls={"cert": pki["server"], "key": pki["server-key"], "ca": pki["ca"]})
    await asyncio.to_thread(cluster.start)
    try:
        endpoint = cluster.endpoints
        store = open_store(endpoint, "", cafile=pki["ca"], certfile=pki["client"], keyfile=pki["client-key"])
        await store.start()
        try:
            rev = await store.create("/tls/a", b"secret")
            assert await store.get("/tls/a") == KeyValue("/tls/a", b"secret", rev, rev)
            w = store.watch("/tls/", rev)
            assert (await collect(w, 1))[0].kv.value == b"secret"
            await w.close()
        finally:
            await store.close()
        # A CA that did not sign the server's certificate.
        wrong_ca = EtcdStore(
            endpoint, cafile=pki["other-ca"], certfile=pki["client"], keyfile=pki["client-key"]
        )
        with pytest.raises(StoreUnavailableError, match="certificate"):
            await wrong_ca.start()
        await wrong_ca.close()
        # No client certificate: etcd refuses the connection.
        anonymous = EtcdStore(endpoint, cafile=pki["ca"])
        with pytest.raises(StoreUnavailableError, match=endpoint.split("//")[1]):
            await anonymous.start()
        await anonymous.close()
        with pytest.raises(StoreError, match="cannot load the etcd TLS files"):
            await EtcdStore(endpoint, cafile=str(tmp_path / "missing.pem")).start()
    finally:
        await asyncio.to_thread(cluster.stop)


# ---------------------------------------------------------------------- three members


async def test_three_members_survive_losing_one_mid_stream() -> None:
    """Writes go on when the member the client talks to is SIGKILLed; every
    acknowledged write is there afterwards and a watch sees every event once,
    in order, across the fail-over."""
    cluster = EtcdCluster(3)
    await asyncio.to_thread(cluster.start)
    try:
        leader = await asyncio.to_thread(cluster.leader)
        # The client talks to the leader first: killing it costs an election too.
        order = [leader] + [m for m in cluster.members if m is not leader]
        store = EtcdStore([m.client_url for m in order], request_timeout=3, dial_timeout=1)
    except BaseException:
        await asyncio.to_thread(cluster.stop)
        raise
    try:
        await store.start()
        start = await store.current_revision() + 1
        w = store.watch("/ha/", start)
        acked: dict[str, int] = {}
        unavailable = 0
        for i in range(120):
            if i == 40:
                await asyncio.to_thread(cluster.kill, leader)
            key = f"/ha/{i:03}"
            while key not in acked:
                try:
                    acked[key] = await store.create(key, str(i).encode())
                except StoreUnavailableError:
                    unavailable += 1  # outcome unknown: retry, as an API client would
                    await asyncio.sleep(0.1)
                except KeyExistsError as e:  # the unknown outcome had been applied
                    assert e.current is not None and e.current.value == str(i).encode()
                    acked[key] = e.current.mod_revision
            assert unavailable < 50
        assert store._active != 0
        for key, rev in acked.items():
            kv = await store.get(key)
            assert kv is not None and kv.mod_revision == rev
        events = await collect(w, len(acked), timeout=20)
        assert all(e.type is EventType.PUT for e in events)
        assert [e.kv.key for e in events] == sorted(acked)
        assert [e.revision for e in events] == sorted(acked.values())

        # Losing a second member loses quorum: writes fail with a clear error...
        second = next(
            m for m in cluster.members if m is not leader and m.client_url in store.endpoints[store._active]
        )
        await asyncio.to_thread(cluster.kill, second)
        await asyncio.sleep(1.0)  # the survivor notices it has no leader
        with pytest.raises(StoreUnavailableError, match="quorum"):
            await store.create("/ha/no-quorum", b"")
        # ... and resume when the members come back; the watch goes on.
        for m in (leader, second):
            cluster.restart(m)
        deadline = time.monotonic() + 15
        while True:
            try:
                rev = await store.create("/ha/back", b"")
                break
            except StoreUnavailableError:
                assert time.monotonic() < deadline, "writes did not resume after quorum returned"
                await asyncio.sleep(0.2)
            except KeyExistsError as e:  # an unknown outcome had been applied
                assert e.current is not None
                rev = e.current.mod_revision
                break
        more = await collect(w, 1, timeout=20)
        assert more[0].kv.key in ("/ha/no-quorum", "/ha/back")
        assert (await store.get("/ha/back")).mod_revision == rev  # type: ignore[union-attr]
        await w.close()
    finally:
        await store.close()
        await asyncio.to_thread(cluster.stop)
