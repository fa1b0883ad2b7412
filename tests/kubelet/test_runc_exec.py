"""``RuncRuntime.exec_sync`` (``runc exec`` through ``proc.spawn``) with real runc: done when
the exec'd command ends even if something it started keeps running, output larger than a pipe,
a caller that gives up takes the process with it. The fixtures are test_runc's (its own runtime
root, cgroup root and network namespace, checked empty at the end)."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.kubelet.test_runc import Env, busybox_rootfs, env, pytestmark, wait_for  # noqa: F401 - fixtures

from k8py.kubelet.runtime.types import ContainerState


async def _running(e: Env) -> str:
    pod = e.pod()
    sid = await e.rt.run_pod_sandbox(pod)
    cid = await e.run(sid, pod, "idle", ["sleep", "1000"])
    await wait_for(e.rt, cid, ContainerState.RUNNING)
    return cid


async def _ps(e: Env, cid: str) -> list[bytes]:
    return (await e.rt.exec_sync(cid, ["ps", "-o", "args"], timeout=10)).stdout.splitlines()


async def test_exec_sync_timeout_holds_when_the_command_leaves_something_running(env: Env) -> None:  # noqa: F811
    """``runc exec`` copies the output of the command and of what it started until the last
    one closes it: a background process keeps it waiting after the command has ended. The
    timeout still ends it (runc itself is killed after a short grace)."""
    cid = await _running(env)
    t0 = time.monotonic()
    res = await env.rt.exec_sync(cid, ["sh", "-c", "sleep 300 & echo started"], timeout=1)
    assert time.monotonic() - t0 < 8
    assert res.stdout == b"started\n" and res.exit_code != 0 and b"timed out" in res.stderr
    big = await env.rt.exec_sync(cid, ["sh", "-c", "head -c 200000 /dev/zero"], timeout=20)
    assert (big.exit_code, len(big.stdout)) == (0, 200000)


async def test_a_cancelled_exec_sync_kills_its_process(env: Env) -> None:  # noqa: F811
    cid = await _running(env)
    task = asyncio.create_task(env.rt.exec_sync(cid, ["sleep", "301"]))
    deadline = time.monotonic() + 15
    while b"sleep 301" not in await _ps(env, cid):
        assert time.monotonic() < deadline, "the exec'd sleep never showed"
        await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    while b"sleep 301" in await _ps(env, cid):
        assert time.monotonic() < deadline, "the exec'd sleep outlived its cancelled caller"
        await asyncio.sleep(0.1)
    assert not list((env.root).rglob("exec-*.pid"))  # its pid file went with it
