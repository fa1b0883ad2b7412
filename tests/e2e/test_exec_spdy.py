"""kubectl exec and attach over SPDY/3.1 on real containers: kubectl 1.37 with its WebSocket
executor turned off (``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``), as older clients speak it.
The API server passes the SPDY upgrade through to the agent's /exec and /attach, which serve
the ``v4.channel.k8s.io`` streams (stdin, stdout, stderr, error, resize)."""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Iterator

import pytest
from tests.e2e.conftest import KUBECTL, Server, wait
from tests.e2e.test_exec import IDLE, Terminal, _apply, _end, _kenv, _phase, _pod
from tests.helpers.realnode import SHARED_NODE, SharedRealNode

NODE = SHARED_NODE
SPDY = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        _apply(s, _pod("shell", IDLE))
        _apply(s, _pod("console", "exec sh", stdin=True, tty=True))
        _apply(s, _pod("talker", "while read line; do echo got $line; done; echo stdin closed; sleep 3600",
                       stdin=True))
        for name in ("shell", "console", "talker"):
            wait(lambda n=name: _phase(s, n) == "Running", 90, f"{name} Running")  # type: ignore[misc]
        yield s


@pytest.fixture(autouse=True)
def spdy_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kubectl of these tests (``_kenv`` copies the environment) speaks SPDY only."""
    for k, v in SPDY.items():
        monkeypatch.setenv(k, v)


def kubectl(s: Server, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return s.kubectl(*args, input=input, check=check, env=SPDY)


def test_kubectl_speaks_spdy_here(cluster: Server) -> None:
    # kubectl's own log names the upgrade it made
    p = kubectl(cluster, "exec", "-v=8", "shell", "--", "echo", "hi")
    assert p.stdout == "hi\n"
    assert "Upgrade: SPDY/3.1" in p.stderr or "SPDY" in p.stderr, p.stderr[-3000:]
    assert "websocket" not in p.stderr.lower().replace("remote_command_websockets", ""), p.stderr[-3000:]


def test_exec_output_stderr_and_exit_codes_over_spdy(cluster: Server) -> None:
    s = cluster
    p = kubectl(s, "exec", "shell", "--", "sh", "-c", "echo out; echo err >&2")
    assert p.stdout == "out\n" and "err\n" in p.stderr
    p = kubectl(s, "exec", "shell", "--", "false", check=False)
    assert p.returncode == 1 and "command terminated with exit code 1" in p.stderr, p.stderr
    p = kubectl(s, "exec", "shell", "--", "sh", "-c", "exit 3", check=False)
    assert p.returncode == 3 and "command terminated with exit code 3" in p.stderr
    p = kubectl(s, "exec", "shell", "--", "no-such-tool", check=False)
    assert p.returncode != 0 and "executable file not found" in p.stderr, p.stderr


def test_exec_with_stdin_piped_over_spdy(cluster: Server) -> None:
    import hashlib

    text = "".join(f"line {i}\n" for i in range(5000))  # well past one SPDY frame
    p = kubectl(cluster, "exec", "-i", "shell", "--", "sh", "-c", "cat > /tmp/in && wc -l < /tmp/in && md5sum /tmp/in",
                input=text)
    assert p.stdout.split()[:2] == ["5000", hashlib.md5(text.encode()).hexdigest()], p.stdout


def test_interactive_tty_and_resize_over_spdy(cluster: Server) -> None:
    t = Terminal(cluster, "exec", "-it", "shell", "--", "sh", rows=30, cols=100)
    try:
        t.type("echo $((6*7))\r")
        t.read_until(b"42")
        t.size_seen(30, 100)  # the terminal's size came on the resize stream
        t.resize(24, 80)
        t.size_seen(24, 80, resend=True)
        t.type("exit 4\r")
        assert t.proc.wait(30) == 4
    finally:
        t.close()


def test_attach_over_spdy(cluster: Server) -> None:
    proc = subprocess.Popen([KUBECTL, "attach", "-i", "talker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_kenv(cluster))
    try:
        assert proc.stdin is not None and proc.stdout is not None
        got = b""
        deadline = time.monotonic() + 20
        while b"got hello" not in got and time.monotonic() < deadline:
            proc.stdin.write(b"hello\n")
            proc.stdin.flush()
            r, _, _ = select.select([proc.stdout], [], [], 1)
            if r:
                got += os.read(proc.stdout.fileno(), 4096)
        assert b"got hello" in got, got
    finally:
        _end(proc)
    t = Terminal(cluster, "attach", "-it", "console", rows=35, cols=110)
    try:
        t.type("\r")
        t.type("echo $((7*6))\r")
        t.read_until(b"42")
        t.size_seen(35, 110)
    finally:
        t.close()
