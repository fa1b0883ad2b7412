"""The runtime's exec service (``runtime/execd.py``): the process that starts ``runc exec`` for
exec probes and hooks on the agent's behalf, driven here with plain programs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from k8py.kubelet.runtime.execd import ExecService, ExecServiceError, children, descendants


def _children() -> set[int]:
    """This process's children (zombies included)."""
    return set(children(os.getpid()))


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def _until(cond: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


Scenario = Callable[[ExecService], Awaitable[None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Scenario], None]:
    """Run a scenario with a fresh service on the test loop's kind (the agent runs on uvloop),
    then close the service and check it and its children are gone."""
    def go(scenario: Scenario) -> None:
        async def main() -> None:
            kids = _children()
            svc = ExecService()
            try:
                await scenario(svc)
            finally:
                pid = svc.pid
                await svc.close()
                assert pid == 0 or _gone(pid)
                assert _children() <= kids  # the service reaped

        if request.param == "uvloop":
            uvloop.run(main())
        else:
            asyncio.run(main())
    return go


def test_output_exit_code_and_one_process_for_many_commands(run: Callable[[Scenario], None]) -> None:
    run(_output_exit_code_and_one_process_for_many_commands)


async def _output_exit_code_and_one_process_for_many_commands(svc: ExecService) -> None:
    r, timed_out = await svc.run(["sh", "-c", "echo out; echo err >&2; read x; echo \"[$x]\"; exit 3"])
    assert (r.returncode, r.stdout, r.stderr, timed_out) == (3, b"out\n[]\n", b"err\n", False)
    pid = svc.pid
    assert pid > 0
    results = await asyncio.gather(*(svc.run(["sh", "-c", f"echo {i}; exit {i % 4}"], 10) for i in range(30)))
    assert [(r.stdout, r.returncode, t) for r, t in results] == [(f"{i}\n".encode(), i % 4, False) for i in range(30)]
    assert svc.pid == pid  # the same service ran them all
    big, _ = await svc.run(["sh", "-c", "head -c 3000000 /dev/zero; head -c 70000 /dev/zero >&2"])
    assert (len(big.stdout), len(big.stderr), big.returncode) == (3000000, 70000, 0)


def test_a_command_past_its_timeout_is_killed_with_what_it_started(run: Callable[[Scenario], None]) -> None:
    run(_a_command_past_its_timeout_is_killed_with_what_it_started)


async def _a_command_past_its_timeout_is_killed_with_what_it_started(svc: ExecService) -> None:
    start = time.monotonic()
    r, timed_out = await svc.run(["sh", "-c", "echo started; sleep 300; exit $?"], timeout=0.3)
    assert timed_out and r.stdout == b"started\n"
    assert r.returncode == 137  # sh saw its sleep killed
    assert time.monotonic() - start < 5
    await _until(lambda: not descendants(svc.pid), "the timed-out command's processes are gone")


def test_a_cancelled_command_is_stopped(run: Callable[[Scenario], None]) -> None:
    run(_a_cancelled_command_is_stopped)


async def _a_cancelled_command_is_stopped(svc: ExecService) -> None:
    task = asyncio.ensure_future(svc.run(["sh", "-c", "sleep 300 & wait"]))
    await _until(lambda: svc.pid and len(descendants(svc.pid)) == 2, "sh and its sleep run")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _until(lambda: not descendants(svc.pid), "the cancelled command is gone")
    r, _ = await svc.run(["echo", "next"])
    assert r.stdout == b"next\n"


def test_a_missing_program_is_named(run: Callable[[Scenario], None]) -> None:
    run(_a_missing_program_is_named)


async def _a_missing_program_is_named(svc: ExecService) -> None:
    with pytest.raises(ExecServiceError, match="no-such-program-here"):
        await svc.run(["no-such-program-here"])
    with pytest.raises(ExecServiceError, match="NUL"):
        await svc.run(["echo", "a\0b"])
    r, _ = await svc.run(["true"])  # the service is still there
    assert r.returncode == 0


def test_a_killed_service_fails_its_requests_and_is_started_again(run: Callable[[Scenario], None]) -> None:
    run(_a_killed_service_fails_its_requests_and_is_started_again)


async def _a_killed_service_fails_its_requests_and_is_started_again(svc: ExecService) -> None:
    await svc.run(["true"])
    first = svc.pid
    task = asyncio.ensure_future(svc.run(["sleep", "300"]))
    await _until(lambda: len(descendants(first)) == 1, "the sleep runs")
    (sleeper,) = descendants(first)
    os.kill(first, signal.SIGKILL)
    with pytest.raises(ExecServiceError, match="exec service ended"):
        await task
    r, _ = await svc.run(["echo", "again"])
    assert r.stdout == b"again\n" and svc.pid not in (0, first)
    os.kill(sleeper, signal.SIGKILL)  # orphaned by the kill -9 (a real agent's runc exec would be too)


def test_closing_ends_the_service_and_what_it_runs(run: Callable[[Scenario], None]) -> None:
    run(_closing_ends_the_service_and_what_it_runs)


async def _closing_ends_the_service_and_what_it_runs(svc: ExecService) -> None:
    task = asyncio.ensure_future(svc.run(["sh", "-c", "sleep 300 & wait"]))
    await _until(lambda: svc.pid and len(descendants(svc.pid)) == 2, "sh and its sleep run")
    pid, below = svc.pid, descendants(svc.pid)
    await svc.close()
    with pytest.raises(ExecServiceError, match="ended"):
        await task
    assert _gone(pid)
    await _until(lambda: all(_gone(p) for p in below), "what the service ran is gone")
    with pytest.raises(ExecServiceError, match="closed"):
        await svc.run(["true"])


def test_closing_lets_a_program_end_on_its_own_once_its_command_is_killed(
        run: Callable[[Scenario], None], tmp_path: Path) -> None:
    # runc exec stands between the service and the command: killed outright in the middle of its
    # work it leaves mounts behind, so on close the command is killed first and runc may end
    done = tmp_path / "ended-on-its-own"

    async def scenario(svc: ExecService) -> None:
        task = asyncio.ensure_future(svc.run(["sh", "-c", f"sleep 300 & wait; echo yes > {done}"]))
        await _until(lambda: svc.pid and len(descendants(svc.pid)) == 2, "sh and its sleep run")
        await svc.close()
        with pytest.raises(ExecServiceError, match="ended"):
            await task

    run(scenario)
    assert done.read_text() == "yes\n"
