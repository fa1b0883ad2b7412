"""``proc.spawn``: a program run from the event loop's thread (posix_spawn, pipes and a pidfd
watched by the loop), as ``runc exec`` for exec probes uses it."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from k8py.kubelet import proc


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _children() -> set[str]:
    """This process's children (zombies included): what was not reaped is still here."""
    out: set[str] = set()
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            out.update(f.read().split())
    return out


async def test_output_exit_code_and_nothing_left_open() -> None:
    before, kids = _fds(), _children()
    r, timed_out = await proc.spawn(["sh", "-c", "echo out; echo err >&2; read x; echo \"[$x]\"; exit 3"])
    assert (r.returncode, r.stdout, r.stderr, timed_out) == (3, b"out\n[]\n", b"err\n", False)
    assert _fds() == before and _children() == kids  # pipes and pidfd closed, the child reaped


async def test_more_output_than_a_pipe_holds_and_the_limit() -> None:
    r, _ = await proc.spawn(["sh", "-c", "head -c 300000 /dev/zero; head -c 5000 /dev/zero >&2"])
    assert (len(r.stdout), len(r.stderr), r.returncode) == (300000, 5000, 0)
    r, _ = await proc.spawn(["sh", "-c", "head -c 300000 /dev/zero"], limit=1000)
    assert (r.stdout, r.returncode) == (b"\0" * 1000, 0)  # the rest was read and dropped: no stall


async def test_a_timeout_kills_and_says_so() -> None:
    killed: list[int] = []

    def kill(pid: int) -> None:
        killed.append(pid)
        os.kill(pid, 9)

    t0 = time.monotonic()
    r, timed_out = await proc.spawn(["sh", "-c", "echo before; exec sleep 30"], timeout=0.3, on_timeout=kill)
    assert time.monotonic() - t0 < 5
    assert (timed_out, r.returncode, r.stdout, len(killed)) == (True, -9, b"before\n", 1)


async def test_done_when_the_program_exits_not_when_what_it_left_closes_the_pipes() -> None:
    """A background process that keeps the output open does not hold the caller (``runc exec``
    of ``sh -c "daemon &"``); what came before the exit is kept."""
    t0 = time.monotonic()
    r, _ = await proc.spawn(["sh", "-c", "sleep 30 & echo $!"])
    assert time.monotonic() - t0 < 5
    assert r.returncode == 0 and r.stdout.strip().isdigit()
    os.kill(int(r.stdout), 9)  # the orphan this test made


async def test_cancelled_the_program_is_killed_and_reaped() -> None:
    before, kids = _fds(), _children()
    task = asyncio.create_task(proc.spawn(["sleep", "30"]))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 5
    while (_fds() > before or _children() != kids) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)  # the loop sees the exit through the pidfd and reaps it
    assert _fds() == before and _children() == kids


async def test_a_missing_program_is_an_os_error() -> None:
    before = _fds()
    with pytest.raises(FileNotFoundError):
        await proc.spawn(["/no/such/program"])
    assert _fds() == before


async def test_a_program_that_outlives_on_timeout_is_killed_after_the_grace() -> None:
    t0 = time.monotonic()
    r, timed_out = await proc.spawn(["sleep", "30"], timeout=0.2, on_timeout=lambda pid: None)
    took = time.monotonic() - t0
    assert proc.KILL_GRACE <= took < proc.KILL_GRACE + 3
    assert (timed_out, r.returncode) == (True, -9)


async def test_the_program_gets_the_environment_as_it_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    # spawn hands posix_spawn a bytes copy of the environment taken at each call: a variable
    # set or removed after start-up reaches (or leaves) the program, non-UTF-8 bytes intact
    monkeypatch.setenv("K8PY_SPAWN_TEST", "one")
    monkeypatch.setitem(os.environb, b"K8PY_SPAWN_RAW", b"\xff\xfe")
    r, _ = await proc.spawn(["sh", "-c", 'printf "%s|" "$K8PY_SPAWN_TEST" "$K8PY_SPAWN_RAW"'])
    assert r.stdout == b"one|\xff\xfe|"
    monkeypatch.delenv("K8PY_SPAWN_TEST")
    r, _ = await proc.spawn(["sh", "-c", 'printf "%s|" "${K8PY_SPAWN_TEST-unset}"'])
    assert r.stdout == b"unset|"


async def test_at_ticks_an_exit_is_seen_at_the_next_tick() -> None:
    # the exec service's mode: programs that end within a tick are reaped in one wake-up
    from k8py.kubelet import ticks

    loop = asyncio.get_running_loop()
    before, kids = _fds(), _children()
    whens: list[float] = []
    call_at = loop.call_at

    def record(when: float, *args: object, **kw: object) -> asyncio.TimerHandle:
        whens.append(when)
        return call_at(when, *args, **kw)  # type: ignore[arg-type]

    loop.call_at = record  # type: ignore[assignment]
    try:
        r, timed_out = await proc.spawn(["sh", "-c", "echo out; echo err >&2; exit 3"], at_ticks=True)
        done = loop.time()
    finally:
        del loop.call_at
    assert (r.returncode, r.stdout, r.stderr, timed_out) == (3, b"out\n", b"err\n", False)
    tick = [w for w in whens if abs(w / ticks.TICK - round(w / ticks.TICK)) < 1e-6]
    assert tick and done >= tick[0], (whens, done)  # seen when the tick came, not as it exited
    assert _fds() == before and _children() == kids  # pipes and pidfd closed, the child reaped
    start = time.monotonic()
    r, timed_out = await proc.spawn(["sh", "-c", "echo started; exec sleep 60"], timeout=0.3, at_ticks=True)
    assert timed_out and r.returncode == -9 and r.stdout == b"started\n"
    assert time.monotonic() - start < 5
    assert _fds() == before and _children() == kids
