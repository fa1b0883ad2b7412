"""The kubelet API server over real TLS on loopback: client certificates required, each endpoint,
the log options and kubelet's error texts. The runtime is a small fake whose containers have log
files written here in the CRI format."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from k8py import pki as pki_mod
from k8py.config import ServerConfig
from k8py.kubelet.runtime.fake import FakeStream, fake_command
from k8py.kubelet.runtime.types import (
    ContainerState,
    ContainerStats,
    ContainerStatus,
    RuntimeServiceError,
    StreamOptions,
)
from k8py.kubelet.server import KubeletServer, log_options

# --------------------------------------------------------------------------- fakes (shared)


def cri(content: str, stream: str = "stdout", tag: str = "F", at: float | None = None) -> str:
    t = time.time() if at is None else at
    base = dt.datetime.fromtimestamp(int(t), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{int((t % 1) * 1e9):09d}+00:00 {stream} {tag} {content}\n"


@dataclass
class FakeRuntime:
    """Just what the kubelet API uses of a runtime: containers, their status and stats."""

    log_dir: Path
    containers: dict[str, ContainerStatus] = field(default_factory=dict)
    stats: dict[str, ContainerStats] = field(default_factory=dict)
    streams: list[FakeStream] = field(default_factory=list)  # every exec and attach, in order
    name: str = "fake"

    def add(self, ns: str, pod: str, uid: str, cname: str, attempt: int = 0,
            state: ContainerState = ContainerState.RUNNING, lines: tuple[str, ...] = ()) -> ContainerStatus:
        cid = f"{pod}-{cname}-{attempt}"
        d = self.log_dir / f"{ns}_{pod}_{uid}" / cname
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{attempt}.log"
        path.write_text("".join(lines))
        c = ContainerStatus(
            id=cid, sandbox_id=f"sb-{pod}", name=cname, attempt=attempt, image="busybox", image_ref="sha256:x",
            state=state, created_at=time.time() - 10 + attempt, started_at=time.time() - 9 + attempt,
            log_path=str(path),
            labels={"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.name": pod,
                    "io.kubernetes.pod.uid": uid, "io.kubernetes.container.name": cname})
        self.containers[cid] = c
        return c

    def append(self, c: ContainerStatus, *lines: str) -> None:
        with open(c.log_path, "a") as f:
            f.write("".join(lines))

    def exit(self, c: ContainerStatus) -> None:
        c.state = ContainerState.EXITED
        c.finished_at = time.time()

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [c for c in self.containers.values() if sandbox_id is None or c.sandbox_id == sandbox_id]

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        return self.containers.get(container_id)

    async def container_stats(self, container_id: str) -> ContainerStats | None:
        return self.stats.get(container_id)

    async def list_container_stats(self, container_ids: Sequence[str]) -> dict[str, ContainerStats]:
        return {cid: st for cid in container_ids if (st := self.stats.get(cid)) is not None}

    async def exec_stream(self, container_id: str, cmd: Sequence[str], opts: StreamOptions) -> FakeStream:
        program = fake_command(cmd)
        if program is None:
            raise RuntimeServiceError(f'exec: "{cmd[0]}": executable file not found in $PATH')
        s = FakeStream(opts, program)
        self.streams.append(s)
        return s

    async def attach(self, container_id: str, opts: StreamOptions) -> FakeStream:
        async def echo_stdin(s: FakeStream) -> None:  # the container's process: its stdin back on stdout,
            while (data := await s.stdin()) is not None:  # and it ends with its stdin
                s.emit(1, data)
            if not s.opts.stdin:
                await asyncio.Event().wait()

        s = FakeStream(opts, echo_stdin)
        self.streams.append(s)
        return s


def make_pod(name: str, *containers: str, ns: str = "default", uid: str = "", node: str = "node-1",
             labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": uid or f"uid-{name}", "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": c, "image": "busybox"} for c in containers]}}


@dataclass
class Certs:
    pki: pki_mod.PKI
    serving_cert: str
    serving_key: str
    client_cert: str
    client_key: str

    def client_ssl(self, with_cert: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.pki.ca_cert)
        if with_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


def make_certs(tmp: Path, node: str = "node-1") -> Certs:
    p = pki_mod.ensure_pki(ServerConfig(data_dir=str(tmp / "data")))
    cert, key = pki_mod.issue_kubelet_serving_certificate(p, node, ips=("127.0.0.1",), hostnames=("localhost",))
    (tmp / "kubelet.crt").write_bytes(cert)
    (tmp / "kubelet.key").write_bytes(key)
    ccert, ckey = pki_mod.ensure_kubelet_client_certificate(p)
    return Certs(p, str(tmp / "kubelet.crt"), str(tmp / "kubelet.key"), ccert, ckey)


# --------------------------------------------------------------------------- fixtures


@dataclass
class Env:
    rt: FakeRuntime
    pods: list[dict[str, Any]]
    server: KubeletServer
    certs: Certs
    session: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    async def get(self, path: str, **params: str) -> tuple[int, str, str]:
        async with self.session.get(self.base + path, params=params) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.text()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_env(tmp_path) as e:
        yield e


@contextlib.asynccontextmanager
async def running_env(tmp_path: Path) -> AsyncIterator[Env]:
    """A KubeletServer on loopback over the fake runtime, and a client session with the API
    server's client certificate (other modules' ``env`` fixtures)."""
    certs = make_certs(tmp_path)
    rt = FakeRuntime(tmp_path / "logs")
    pods: list[dict[str, Any]] = []
    server = KubeletServer(cast(Any, rt), lambda: pods, node_name="node-1", host="127.0.0.1", port=0,
                           cert_file=certs.serving_cert, key_file=certs.serving_key,
                           client_ca_file=certs.pki.ca_cert, poll_interval=0.02)
    await server.start()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=certs.client_ssl()))
    try:
        yield Env(rt, pods, server, certs, session)
    finally:
        await session.close()
        await server.stop()


# --------------------------------------------------------------------------- TLS


async def test_client_certificate_required(env: Env) -> None:
    # no client certificate: the handshake fails (or the first read, with TLS 1.3)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=env.certs.client_ssl(False))) as s:
        with pytest.raises(aiohttp.ClientError):
            async with s.get(env.base + "/healthz") as r:
                await r.read()
    # a certificate from another CA is refused too
    other = make_certs(env.rt.log_dir.parent / "other")
    ctx = env.certs.client_ssl(False)
    ctx.load_cert_chain(other.client_cert, other.client_key)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        with pytest.raises(aiohttp.ClientError):
            async with s.get(env.base + "/healthz") as r:
                await r.read()
    # the cluster's certificate works, and the server's certificate verifies against the CA
    assert await env.get("/healthz") == (200, "text/plain; charset=utf-8", "ok")


# --------------------------------------------------------------------------- endpoints


async def test_pods_and_unknown_paths(env: Env) -> None:
    env.pods.append(make_pod("p1", "c"))
    status, ct, body = await env.get("/pods")
    assert status == 200 and ct.startswith("application/json")
    import json

    doc = json.loads(body)
    assert doc["kind"] == "PodList" and [p["metadata"]["name"] for p in doc["items"]] == ["p1"]
    assert (await env.get("/nope"))[0::2] == (404, "404 page not found\n")


async def test_logs_with_options(env: Env) -> None:
    env.pods.append(make_pod("p", "c"))
    now = time.time()
    c = env.rt.add("default", "p", "uid-p", "c", lines=(
        cri("one", at=now - 100), cri("tw", tag="P", at=now - 50), cri("o", at=now - 50),
        cri("err", stream="stderr", at=now - 5), cri("four", at=now - 1)))
    path = "/containerLogs/default/p/c"
    assert await env.get(path) == (200, "text/plain; charset=utf-8", "one\ntwo\nerr\nfour\n")
    assert (await env.get(path, tailLines="2"))[2] == "err\nfour\n"
    assert (await env.get(path, sinceSeconds="10"))[2] == "err\nfour\n"
    since = dt.datetime.fromtimestamp(int(now - 60), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (await env.get(path, sinceTime=since))[2] == "two\nerr\nfour\n"
    assert (await env.get(path, limitBytes="6"))[2] == "one\ntw"
    assert (await env.get(path, tail="1"))[2] == "four\n"
    stamped = (await env.get(path, timestamps="true", tailLines="1"))[2]
    stamp, _, text = stamped.partition(" ")
    assert text == "four\n" and stamp.endswith("Z") and stamp.startswith(
        dt.datetime.fromtimestamp(int(now - 1), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    assert c.state == ContainerState.RUNNING


async def test_log_errors_as_kubelet_words_them(env: Env) -> None:
    pod = make_pod("p", "c", "d", "w")
    pod["status"] = {"containerStatuses": [{"name": "w", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
    env.pods.append(pod)
    env.rt.add("default", "p", "uid-p", "c", lines=(cri("x"),))
    # an older pod of the same name: its containers are not this pod's
    env.rt.add("default", "p", "uid-old", "d", lines=(cri("stale"),))
    cases = [
        ({"tailLines": "-1"}, "c", 422, '{"message": "Invalid request."}'),
        ({"limitBytes": "0"}, "c", 422, '{"message": "Invalid request."}'),
        ({"sinceSeconds": "5", "sinceTime": "2026-01-01T00:00:00Z"}, "c", 422, '{"message": "Invalid request."}'),
        ({"tailLines": "x"}, "c", 400, '{"message": "Unable to decode query."}'),
        ({"follow": "maybe"}, "c", 400, '{"message": "Unable to decode query."}'),
        ({}, "nope", 404, 'container "nope" not found in pod "p"'),
        ({"previous": "true"}, "c", 400, 'previous terminated container "c" in pod "p" not found'),
        ({}, "d", 400, 'container "d" in pod "p" is waiting to start: ContainerCreating'),
        ({}, "w", 400, 'container "w" in pod "p" is waiting to start: trying and failing to pull image'),
    ]
    for params, cname, code, text in cases:
        status, ct, body = await env.get(f"/containerLogs/default/p/{cname}", **params)
        assert (status, body) == (code, text), params
        assert ct.startswith("text/plain")
    assert (await env.get("/containerLogs/default/ghost/c"))[0::2] == (404, 'pod "ghost" does not exist')
    assert (await env.get("/containerLogs/other/p/c"))[0::2] == (404, 'pod "p" does not exist')


async def test_previous_and_restarted_containers(env: Env) -> None:
    env.pods.append(make_pod("p", "c"))
    first = env.rt.add("default", "p", "uid-p", "c", 0, ContainerState.EXITED, (cri("attempt 0"),))
    second = env.rt.add("default", "p", "uid-p", "c", 1, ContainerState.EXITED, (cri("attempt 1"),))
    third = env.rt.add("default", "p", "uid-p", "c", 2, ContainerState.CREATED)
    path = "/containerLogs/default/p/c"
    # the current one has not started (crash loop back-off): its last exited one is shown
    assert (await env.get(path))[2] == "attempt 1\n"
    assert (await env.get(path, previous="true"))[2] == "attempt 1\n"
    third.state = ContainerState.RUNNING
    env.rt.append(third, cri("attempt 2"))
    assert (await env.get(path))[2] == "attempt 2\n"
    assert (await env.get(path, previous="1"))[2] == "attempt 1\n"
    assert first.attempt < second.attempt


async def test_previous_of_a_container_waiting_to_restart_is_its_last_run(env: Env) -> None:
    """kubelet answers ``--previous`` from the status' lastState: in a crash loop's back-off the
    newest exited container (the one before it may be gone to the container GC)."""
    pod = make_pod("p", "c")
    pod["status"] = {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    env.pods.append(pod)
    env.rt.add("default", "p", "uid-p", "c", 1, ContainerState.EXITED, (cri("attempt 1"),))
    env.rt.add("default", "p", "uid-p", "c", 2, ContainerState.EXITED, (cri("attempt 2"),))
    path = "/containerLogs/default/p/c"
    assert (await env.get(path))[2] == "attempt 2\n"
    assert (await env.get(path, previous="true"))[2] == "attempt 2\n"
    # terminated for good: the previous one is the run before the last
    pod["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 1}}
    assert (await env.get(path, previous="true"))[2] == "attempt 1\n"


async def test_follow_streams_until_the_container_exits(env: Env) -> None:
    env.pods.append(make_pod("p", "c"))
    c = env.rt.add("default", "p", "uid-p", "c", lines=(cri("hello"),))
    got: list[str] = []
    async with env.session.get(env.base + "/containerLogs/default/p/c", params={"follow": "true"}) as r:
        assert r.status == 200 and r.headers.get("Transfer-Encoding") == "chunked"

        async def read_until(want: str) -> None:
            while "".join(got) != want:
                chunk = await asyncio.wait_for(r.content.readany(), 10)
                assert chunk, f"stream ended early: {''.join(got)!r}"
                got.append(chunk.decode())

        await read_until("hello\n")
        env.rt.append(c, cri("world"))
        await read_until("hello\nworld\n")
        env.rt.append(c, cri("bye"))
        env.rt.exit(c)
        rest = await asyncio.wait_for(r.content.read(), 10)  # the stream ends by itself
    assert "".join(got) + rest.decode() == "hello\nworld\nbye\n"


async def test_follow_ends_when_client_leaves(env: Env) -> None:
    env.pods.append(make_pod("p", "c"))
    env.rt.add("default", "p", "uid-p", "c", lines=(cri("hello"),))
    async with env.session.get(env.base + "/containerLogs/default/p/c", params={"follow": "true"}) as r:
        assert await asyncio.wait_for(r.content.readany(), 10) == b"hello\n"
    # the server is still fine afterwards (its follower ended with the connection)
    assert (await env.get("/healthz"))[2] == "ok"


async def test_stats_summary(env: Env) -> None:
    env.pods.append(make_pod("p", "c", "d"))
    c = env.rt.add("default", "p", "uid-p", "c")
    d = env.rt.add("default", "p", "uid-p", "d")
    env.rt.add("default", "p", "uid-p", "old", 0, ContainerState.EXITED)
    t = time.time()
    env.rt.stats[c.id] = ContainerStats(t, 1_000_000_000, 10 << 20)
    env.rt.stats[d.id] = ContainerStats(t, 500_000_000, 5 << 20, memory_usage_bytes=6 << 20, rss_bytes=4 << 20)
    import json

    first = json.loads((await env.get("/stats/summary"))[2])
    node = first["node"]
    assert node["nodeName"] == "node-1" and node["cpu"]["usageCoreNanoSeconds"] > 0
    assert node["memory"]["workingSetBytes"] > 0 and node["startTime"].endswith("Z")
    (pod,) = first["pods"]
    assert pod["podRef"] == {"name": "p", "namespace": "default", "uid": "uid-p"}
    by_name = {x["name"]: x for x in pod["containers"]}
    assert set(by_name) == {"c", "d"}  # running containers only
    assert by_name["c"]["cpu"]["usageCoreNanoSeconds"] == 1_000_000_000
    assert by_name["d"]["memory"] == {"time": by_name["d"]["memory"]["time"], "workingSetBytes": 5 << 20,
                                      "usageBytes": 6 << 20, "rssBytes": 4 << 20}
    assert pod["cpu"]["usageCoreNanoSeconds"] == 1_500_000_000 and pod["memory"]["workingSetBytes"] == 15 << 20
    assert "usageNanoCores" not in by_name["c"]["cpu"]  # one sample gives no rate
    # a second sample one second later: half a core used by c
    env.rt.stats[c.id] = ContainerStats(t + 1, 1_500_000_000, 10 << 20)
    env.rt.stats[d.id] = ContainerStats(t + 1, 500_000_000, 5 << 20)
    second = json.loads((await env.get("/stats/summary"))[2])
    by_name = {x["name"]: x for x in second["pods"][0]["containers"]}
    assert by_name["c"]["cpu"]["usageNanoCores"] == 500_000_000
    assert second["pods"][0]["cpu"]["usageNanoCores"] == 500_000_000
    # d exits: it leaves the summary, and its cpu sample is not kept
    env.rt.exit(d)
    third = json.loads((await env.get("/stats/summary"))[2])
    assert [x["name"] for x in third["pods"][0]["containers"]] == ["c"]
    assert d.id not in env.server._cpu_samples and c.id in env.server._cpu_samples


async def test_a_scrape_lists_the_nodes_containers_once(env: Env) -> None:
    # every listing reads every container's state: once per pod made a scrape of 100 pods read
    # 10,000 container states (the metrics pipeline scrapes every node every 15 s)
    for i in range(5):
        env.pods.append(make_pod(f"p{i}", "c"))
        c = env.rt.add("default", f"p{i}", f"uid-p{i}", "c")
        env.rt.stats[c.id] = ContainerStats(time.time(), 1_000_000, 1 << 20)
    listed = env.rt.list_containers
    calls = 0

    async def counting(sandbox_id: str | None = None) -> list[ContainerStatus]:
        nonlocal calls
        calls += 1
        return await listed(sandbox_id)

    env.rt.list_containers = counting  # type: ignore[method-assign]
    one_by_one = env.rt.container_stats

    async def not_one_by_one(container_id: str) -> ContainerStats | None:
        raise AssertionError("a scrape reads the stats together (list_container_stats)")

    env.rt.container_stats = not_one_by_one  # type: ignore[method-assign]
    body, _node, samples = await env.server.collect_stats()
    env.rt.container_stats = one_by_one  # type: ignore[method-assign]
    assert calls == 1
    assert sorted(p["podRef"]["name"] for p in body["pods"]) == [f"p{i}" for i in range(5)]
    assert sorted(s.pod for s in samples) == [f"p{i}" for i in range(5)]


def test_log_options_decoding() -> None:
    opts, prev = log_options({"tailLines": "3", "timestamps": "1", "previous": "True"}, now=1000.0)
    assert (opts.tail_lines, opts.timestamps, prev, opts.since) == (3, True, True, None)
    opts, _ = log_options({"sinceSeconds": "10"}, now=1000.0)
    assert opts.since == 990.0
    opts, _ = log_options({"tail": "all"})
    assert opts.tail_lines is None
    with pytest.raises(ValueError, match="sinceSeconds"):
        log_options({"sinceSeconds": "0"})
