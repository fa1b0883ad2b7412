"""kubelet's /exec and /attach (k8py.kubelet.streaming): the channel protocols as pure
functions, then the handlers over real TLS and real WebSockets on loopback, with the fake
runtime's built-in commands (echo, cat, exit N, sleep, ...)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.helpers.spdyclient import UpgradeRefused, upgraded
from tests.kubelet.test_server import Env, make_pod, running_env

from k8py.kubelet import streaming
from k8py.kubelet.runtime.fake import FakeStream
from k8py.kubelet.runtime.types import ContainerState, StreamOptions

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4B64 = "v4.base64.channel.k8s.io"

# --------------------------------------------------------------------------- the protocol, pure


def test_negotiate_takes_the_clients_first_supported_protocol() -> None:
    assert streaming.negotiate(f"{V5}, {V4}").name == V5  # type: ignore[union-attr]
    assert streaming.negotiate(f"v9.channel.k8s.io,{V4B64}").name == V4B64  # type: ignore[union-attr]
    assert streaming.negotiate("").name == "channel.k8s.io"  # type: ignore[union-attr]
    assert streaming.negotiate("SPDY/3.1+portforward.k8s.io") is None


def test_frames_binary_and_base64() -> None:
    v5, b64 = streaming.PROTOCOLS[V5], streaming.PROTOCOLS[V4B64]
    assert streaming.encode_frame(v5, 1, b"hi\n") == b"\x01hi\n"
    assert streaming.decode_frame(v5, b"\x00abc") == (0, b"abc")
    assert streaming.decode_frame(v5, b"\xff\x00") == (255, b"\x00")
    assert streaming.encode_frame(b64, 2, b"err") == "2" + base64.b64encode(b"err").decode()
    assert streaming.decode_frame(b64, "0" + base64.b64encode(b"\x00\xff").decode()) == (0, b"\x00\xff")
    assert streaming.decode_frame(b64, "0!!not base64") is None
    assert streaming.decode_frame(v5, b"") is None


def test_stream_options_as_kubelet_reads_them() -> None:
    assert streaming.parse_stream_options({"stdout": "1", "stderr": "1"}) == StreamOptions(False, True, True, False)
    # a terminal has no stderr of its own
    assert streaming.parse_stream_options({"stdin": "true", "stdout": "1", "stderr": "1", "tty": "1"}) == \
        StreamOptions(True, True, False, True)
    with pytest.raises(streaming.OptionsError, match="you must specify at least 1 of stdin, stdout, stderr"):
        streaming.parse_stream_options({"tty": "1", "stderr": "1"})
    with pytest.raises(streaming.OptionsError):
        streaming.parse_stream_options({"stdout": "0"})


def test_exit_status_as_kubelet_writes_it() -> None:
    assert streaming.exit_status(["true"], 0) == {"metadata": {}, "status": "Success"}
    st = streaming.exit_status(["sh", "-c", "exit 3"], 3)
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert st["message"] == ("command terminated with non-zero exit code: error executing command "
                             "[sh -c exit 3], exit code 3")
    err = streaming.exit_status(["nope"], None, 'exec: "nope": executable file not found in $PATH')
    assert err["reason"] == "InternalError" and err["code"] == 500
    assert err["message"].startswith("Internal error occurred: error executing command in container: exec:")


def test_resize_documents_split_between_messages() -> None:
    sizes: list[tuple[int, int]] = []

    class S:
        def resize(self, w: int, h: int) -> None:
            sizes.append((w, h))

    s: Any = S()
    rest = streaming._resize(s, b'{"Width":80,"Height":24}{"Width":1')
    assert sizes == [(80, 24)] and rest == b'{"Width":1'
    assert streaming._resize(s, rest + b'00,"Height":50}') == b""
    assert sizes == [(80, 24), (100, 50)]
    assert streaming._resize(s, b"garbage") == b""  # dropped, nothing resized
    assert len(sizes) == 2


# --------------------------------------------------------------------------- the handlers


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_env(tmp_path) as e:
        yield e


async def _running(env: Env, pod: str = "p", container: str = "c") -> None:
    p = make_pod(pod, container)
    env.pods.append(p)
    env.rt.add("default", pod, p["metadata"]["uid"], container)


async def _ws(env: Env, query: list[tuple[str, str]], protocol: str = V5,
              path: str = "/exec/default/p/c") -> aiohttp.ClientWebSocketResponse:
    return await env.session.ws_connect(env.base + path, params=query, protocols=(protocol,))


async def _collect(ws: aiohttp.ClientWebSocketResponse, b64: bool = False,
                   timeout: float = 10.0) -> list[tuple[int, bytes]]:
    """Every (channel, data) until the server closes."""
    out: list[tuple[int, bytes]] = []
    async with asyncio.timeout(timeout):
        async for msg in ws:
            if b64:
                out.append((int(msg.data[0]), base64.b64decode(msg.data[1:])))
            else:
                out.append((msg.data[0], msg.data[1:]))
    return out


def _joined(frames: list[tuple[int, bytes]], channel: int) -> bytes:
    return b"".join(d for c, d in frames if c == channel)


def _status(frames: list[tuple[int, bytes]]) -> dict[str, Any]:
    return json.loads(_joined(frames, 3))  # type: ignore[no-any-return]


async def test_exec_echo_over_v5(env: Env) -> None:
    await _running(env)
    ws = await _ws(env, [("command", "echo"), ("command", "hi"), ("stdout", "1"), ("stderr", "1")])
    assert ws.protocol == V5
    frames = await _collect(ws)
    assert frames[0] == (1, b"")  # the streams are ready
    assert _joined(frames, 1) == b"hi\n" and _joined(frames, 2) == b""
    assert _status(frames) == {"metadata": {}, "status": "Success"}
    assert frames[-1][0] == 3  # the status is the last message


async def test_exec_exit_codes_and_stderr(env: Env) -> None:
    await _running(env)
    frames = await _collect(await _ws(env, [("command", "exit"), ("command", "3"), ("stdout", "1")]))
    st = _status(frames)
    assert st["reason"] == "NonZeroExitCode" and st["details"]["causes"][0] == {"reason": "ExitCode", "message": "3"}
    frames = await _collect(await _ws(env, [("command", "stderr"), ("command", "oops"), ("stderr", "1")]))
    assert frames[0] == (2, b"") and _joined(frames, 2) == b"oops\n"


async def test_exec_stdin_and_v5_close(env: Env) -> None:
    await _running(env)
    ws = await _ws(env, [("command", "cat"), ("stdin", "1"), ("stdout", "1")])
    for piece in (b"one\n", b"two\n"):
        await ws.send_bytes(b"\x00" + piece)
    await ws.send_bytes(b"\xff\x00")  # v5: the end of stdin; cat then ends
    frames = await _collect(ws)
    assert _joined(frames, 1) == b"one\ntwo\n"
    assert _status(frames)["status"] == "Success"


async def test_exec_over_v4_base64(env: Env) -> None:
    await _running(env)
    ws = await _ws(env, [("command", "echo"), ("command", "b64"), ("stdout", "1")], protocol=V4B64)
    assert ws.protocol == V4B64
    frames = await _collect(ws, b64=True)
    assert _joined(frames, 1) == b"b64\n" and _status(frames)["status"] == "Success"


async def test_tty_resize_storm(env: Env) -> None:
    await _running(env)
    ws = await _ws(env, [("command", "cat"), ("stdin", "1"), ("stdout", "1"), ("tty", "1")])
    for i in range(200):
        await ws.send_bytes(b"\x04" + json.dumps({"Width": 80 + i % 5, "Height": 24}).encode())
    await ws.send_bytes(b"\x00typed\r")
    await ws.send_bytes(b"\xff\x00")  # a terminal ignores the end of stdin: the client hangs up
    got = b""
    async with asyncio.timeout(10):
        while b"typed" not in got:
            msg = await ws.receive()
            got += msg.data[1:]
    await ws.close()
    stream = env.rt.streams[-1]
    await _until(lambda: stream.closed, "the exec ended when the client went")
    assert len(stream.resizes) == 200 and stream.resizes[-1] == (84, 24)


async def test_unknown_command_is_an_internal_error_on_the_error_channel(env: Env) -> None:
    await _running(env)
    frames = await _collect(await _ws(env, [("command", "nope"), ("stdout", "1")]))
    st = _status(frames)
    assert st["status"] == "Failure" and st["reason"] == "InternalError"
    assert 'executable file not found in $PATH' in st["message"]


async def test_client_that_goes_away_ends_the_command(env: Env) -> None:
    await _running(env)
    ws = await _ws(env, [("command", "sleep"), ("stdout", "1")])
    assert (await ws.receive()).data == b"\x01"
    await _until(lambda: bool(env.rt.streams), "the exec started")
    stream: FakeStream = env.rt.streams[-1]
    assert not stream.task.done()
    await ws.close()
    await _until(lambda: stream.closed and stream.task.done(), "the command killed")
    # the server still serves
    frames = await _collect(await _ws(env, [("command", "echo"), ("command", "again"), ("stdout", "1")]))
    assert _joined(frames, 1) == b"again\n"


async def test_attach_streams_the_containers_process(env: Env) -> None:
    await _running(env)
    ws = await _ws(env, [("stdin", "1"), ("stdout", "1")], path="/attach/default/p/c")
    assert (await ws.receive()).data == b"\x01"
    await ws.send_bytes(b"\x00ping\n")
    async with asyncio.timeout(10):
        assert (await ws.receive()).data == b"\x01ping\n"
    await ws.close()
    await _until(lambda: env.rt.streams[-1].closed, "the attach closed")
    # the container's process ends: Success on the error channel, as kubelet's attach
    ws = await _ws(env, [("stdin", "1"), ("stdout", "1")], path="/attach/default/p/c")
    await ws.send_bytes(b"\x00last\n")
    await ws.send_bytes(b"\xff\x00")
    frames = await _collect(ws)
    assert _joined(frames, 1) == b"last\n" and _status(frames) == {"metadata": {}, "status": "Success"}
    # the terminal is the container's: a tty asked of a container without one is not given
    assert env.rt.streams[-1].opts == StreamOptions(stdin=True, stdout=True, stderr=False, tty=False)
    env.pods[-1]["spec"]["containers"][0]["tty"] = True
    ws = await _ws(env, [("stdin", "1"), ("stdout", "1"), ("stderr", "1")], path="/attach/default/p/c")
    assert (await ws.receive()).data == b"\x01"
    await ws.close()
    await _until(lambda: env.rt.streams[-1].closed, "the attach closed")
    assert env.rt.streams[-1].opts == StreamOptions(stdin=True, stdout=True, stderr=False, tty=True)


async def test_errors_before_the_upgrade(env: Env) -> None:
    await _running(env)
    env.rt.add("default", "p", "uid-p", "gone", state=ContainerState.EXITED)
    env.pods[-1]["spec"]["containers"].append({"name": "gone", "image": "busybox"})
    ok = {"command": "echo", "stdout": "1"}
    assert await env.get("/exec/default/p/c", command="echo") == \
        (400, "text/plain; charset=utf-8", "you must specify at least 1 of stdin, stdout, stderr")
    assert (await env.get("/exec/default/nope/c", **ok))[::2] == (404, "pod does not exist")
    assert (await env.get("/exec/default/p/gone", **ok))[::2] == (500, 'container not found ("gone")')
    assert (await env.get("/exec/default/p/other", **ok))[::2] == (500, 'container not found ("other")')
    status, _, body = await env.get("/exec/default/p/c", **ok)  # neither WebSocket nor SPDY
    assert status == 400 and body.startswith("unable to upgrade: missing upgrade headers in request: http.Header{")
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await _ws(env, [("command", "echo"), ("stdout", "1")], protocol="v9.channel.k8s.io")
    assert e.value.status == 400
    # the uid form of the path must name this pod's uid
    assert (await env.get("/exec/default/p/other-uid/c", **ok))[::2] == (404, "pod does not exist")


# --------------------------------------------------------------------------- SPDY


def _spdy_path(path: str, query: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return f"{path}?{urlencode(query)}"


async def _spdy_exec(env: Env, query: list[tuple[str, str]], kinds: tuple[str, ...], *,
                     protocol: str = "v4.channel.k8s.io", path: str = "/exec/default/p/c",
                     stdin: bytes | None = None) -> dict[str, bytes]:
    """client-go's SPDY executor: one stream per kind (error first), stdin written and closed,
    then everything each stream carried until the server closes them."""
    async with upgraded("127.0.0.1", env.server.port, _spdy_path(path, query), ssl_ctx=env.certs.client_ssl(),
                        protocols=(protocol,)) as (client, head):
        assert f"X-Stream-Protocol-Version: {protocol}" in head
        streams = {k: await client.open({"streamtype": [k]}) for k in kinds}
        async with asyncio.timeout(10):
            for st in streams.values():
                await st.replied.wait()
        if "stdin" in streams:
            await streams["stdin"].write(stdin or b"", fin=True)
        out = {k: await st.read_all() for k, st in streams.items() if k != "stdin"}
        async with asyncio.timeout(10):
            await client.closed.wait()  # GOAWAY and the end of the connection
        assert client.goaway is not None
        return out


async def test_spdy_exec_v4_stdout_stderr_and_the_status(env: Env) -> None:
    await _running(env)
    out = await _spdy_exec(env, [("command", "echo"), ("command", "hi"), ("stdout", "1"), ("stderr", "1")],
                           ("error", "stdout", "stderr"))
    assert out["stdout"] == b"hi\n" and out["stderr"] == b""
    assert json.loads(out["error"]) == {"metadata": {}, "status": "Success"}
    out = await _spdy_exec(env, [("command", "exit"), ("command", "3"), ("stdout", "1")], ("error", "stdout"),
                           protocol="v5.channel.k8s.io")  # v5 over SPDY is v4
    st = json.loads(out["error"])
    assert st["reason"] == "NonZeroExitCode" and st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


async def test_spdy_exec_stdin_until_its_fin(env: Env) -> None:
    await _running(env)
    out = await _spdy_exec(env, [("command", "cat"), ("stdin", "1"), ("stdout", "1")], ("error", "stdin", "stdout"),
                           stdin=b"one\ntwo\n")
    assert out["stdout"] == b"one\ntwo\n" and json.loads(out["error"])["status"] == "Success"


async def test_spdy_older_protocols_write_only_errors_as_text(env: Env) -> None:
    await _running(env)
    out = await _spdy_exec(env, [("command", "echo"), ("command", "x"), ("stdout", "1")], ("error", "stdout"),
                           protocol="v3.channel.k8s.io")
    assert out == {"error": b"", "stdout": b"x\n"}
    out = await _spdy_exec(env, [("command", "exit"), ("command", "2"), ("stdout", "1")], ("error", "stdout"),
                           protocol="v2.channel.k8s.io")
    assert out["error"] == (b"command terminated with non-zero exit code: error executing command [exit 2], "
                            b"exit code 2")


async def test_spdy_tty_resize_and_attach(env: Env) -> None:
    await _running(env)
    query = [("command", "cat"), ("stdin", "1"), ("stdout", "1"), ("tty", "1")]
    async with upgraded("127.0.0.1", env.server.port, _spdy_path("/exec/default/p/c", query),
                        ssl_ctx=env.certs.client_ssl(), protocols=("v4.channel.k8s.io",)) as (client, _):
        streams = {k: await client.open({"streamtype": [k]}) for k in ("error", "stdin", "stdout", "resize")}
        for i in range(50):
            await streams["resize"].write(json.dumps({"Width": 100 + i, "Height": 40}).encode())
        await streams["stdin"].write(b"typed")
        assert b"typed" in await streams["stdout"].read_at_least(5)
    stream = env.rt.streams[-1]
    await _until(lambda: stream.closed, "the exec ended when the client went")
    assert len(stream.resizes) == 50 and stream.resizes[-1] == (149, 40)
    # attach: the container's own process
    out = await _spdy_exec(env, [("stdin", "1"), ("stdout", "1")], ("error", "stdin", "stdout"),
                           path="/attach/default/p/c", stdin=b"ping\n")
    assert out["stdout"] == b"ping\n" and json.loads(out["error"]) == {"metadata": {}, "status": "Success"}


async def test_spdy_refusals_and_a_client_that_never_opens_its_streams(env: Env,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    await _running(env)
    query = [("command", "echo"), ("stdout", "1")]
    with pytest.raises(UpgradeRefused) as e:
        async with upgraded("127.0.0.1", env.server.port, _spdy_path("/exec/default/p/c", query),
                            ssl_ctx=env.certs.client_ssl(), protocols=("v9.channel.k8s.io",)):
            pass
    assert e.value.args[0].startswith("HTTP/1.1 403")
    assert ("unable to upgrade: unable to negotiate protocol: client supports [v9.channel.k8s.io], server accepts "
            "[v5.channel.k8s.io v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]"
            ) in e.value.args[0]
    # an unknown command: InternalError on the error stream
    out = await _spdy_exec(env, [("command", "nope"), ("stdout", "1")], ("error", "stdout"))
    assert json.loads(out["error"])["reason"] == "InternalError"
    # the streams never all come: the connection ends after the creation timeout, nothing ran
    monkeypatch.setattr(streaming, "STREAM_CREATION_TIMEOUT", 0.5)
    before = len(env.rt.streams)
    async with upgraded("127.0.0.1", env.server.port, _spdy_path("/exec/default/p/c", query),
                        ssl_ctx=env.certs.client_ssl(), protocols=("v4.channel.k8s.io",)) as (client, _):
        await client.open({"streamtype": ["error"]})
        async with asyncio.timeout(10):
            await client.closed.wait()
    assert len(env.rt.streams) == before


async def _until(cond: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- the fake runtime's sessions


async def test_fake_runtime_streams() -> None:
    from k8py.kubelet.runtime.fake import FakeRuntime as SimRuntime
    from k8py.kubelet.runtime.types import ContainerConfig, RuntimeServiceError, SandboxConfig

    rt = SimRuntime()
    await rt.pull_image("busybox")
    sb = SandboxConfig("p", "default", "uid-p")
    sid = await rt.run_pod_sandbox(sb)
    cid = await rt.create_container(sid, ContainerConfig("c", "busybox"), sb)
    with pytest.raises(RuntimeServiceError, match="is not running"):
        await rt.exec_stream(cid, ["echo"], StreamOptions())
    await rt.start_container(cid)
    s = await rt.exec_stream(cid, ["echo", "a", "b"], StreamOptions())
    assert await s.read() == (1, b"a b\n") and await s.read() is None and await s.wait() == 0
    await s.close()
    s = await rt.exec_stream(cid, ["cat"], StreamOptions(stdin=True, tty=True))
    await s.write(b"x")
    s.resize(100, 30)
    await s.close_stdin()
    assert await s.read() == (1, b"x") and await s.wait() == 0 and s.resizes == [(100, 30)]  # type: ignore[attr-defined]
    with pytest.raises(RuntimeServiceError, match='"nope": executable file not found in \\$PATH'):
        await rt.exec_stream(cid, ["nope"], StreamOptions())
    a = await rt.attach(cid, StreamOptions())
    await a.close()
    rt.kill(cid)
    with pytest.raises(RuntimeServiceError):
        await rt.attach(cid, StreamOptions())
