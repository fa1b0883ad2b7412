"""Running the node's tools (runc, CNI plugins, ip, nft, skopeo, umoci): one helper.

Each command runs with :func:`subprocess.run` in a worker thread, not with asyncio's
subprocess support: under uvloop (which ``k8py server`` installs) a plugin that exits while
its stdin is being written made the write fail ("the handler is closed"), and a parent that
exits at once after forking (conmon) was not always seen to exit. ``subprocess`` also closes
every other file descriptor in the child, so no socket of the server leaks into a tool that
outlives it.

:func:`spawn` is the light way for what runs every second (``runc exec`` for exec probes): the
program is started with ``posix_spawn`` (``vfork``: the parent's memory is not copied) on the
event loop's thread, its output read as it comes through the loop (``add_reader``) and its exit
seen through a pidfd, with no worker thread and no child watcher. It needs nothing on stdin, and
it is done when the program exits (output that something it left behind writes later is not
waited for). Every file descriptor of this process is close-on-exec (Python's default), so the
child gets its three standard ones only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["OUTPUT_LIMIT", "Result", "run", "spawn"]

OUTPUT_LIMIT = 16 << 20  # what :func:`spawn` keeps of each stream (CRI-O's exec sync limit); the rest is read and dropped
KILL_GRACE = 2.0  # after on_timeout, what :func:`spawn` gives the program to exit before SIGKILL


@dataclass(frozen=True, slots=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes


async def run(argv: Sequence[str], *, input: bytes | None = None, env: Mapping[str, str] | None = None,
              timeout: float | None = None, cwd: str | None = None) -> Result:
    """Run ``argv`` to its end; its stdin is ``input`` (or empty). On ``timeout`` the command is
    killed and :class:`TimeoutError` raised; a missing program raises :class:`OSError`."""
    def go() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(list(argv), input=input if input is not None else b"", capture_output=True,
                              env=dict(env) if env is not None else None, timeout=timeout, cwd=cwd, check=False)

    try:
        p = await asyncio.to_thread(go)
    except subprocess.TimeoutExpired as e:
        raise TimeoutError(f"{argv[0]} did not finish within {timeout:g}s") from e
    return Result(tuple(argv), p.returncode, p.stdout or b"", p.stderr or b"")


class _Spawned:
    """A child started by :func:`spawn`: its two pipes and its pidfd watched by the loop;
    ``done`` gets the exit code once it has exited (its pipes drained of what they hold)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pid: int, pidfd: int, out: int, err: int, limit: int) -> None:
        self.loop = loop
        self.pid = pid
        self.pidfd = pidfd
        self.limit = limit
        self.bufs = {out: bytearray(), err: bytearray()}
        self.out, self.err = out, err
        self._closed: set[int] = set()
        self.done: asyncio.Future[int] = loop.create_future()
        for fd in (out, err):
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._readable, fd)
        loop.add_reader(pidfd, self._exited)

    def _read(self, fd: int) -> bool:
        """Read what ``fd`` holds now; False at its end."""
        buf = self.bufs[fd]
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            room = self.limit - len(buf)
            if room > 0:
                buf += data[:room]

    def _readable(self, fd: int) -> None:
        if not self._read(fd):
            self._close(fd)

    def _close(self, fd: int) -> None:
        if fd not in self._closed:
            self._closed.add(fd)
            self.loop.remove_reader(fd)
            os.close(fd)

    def _exited(self) -> None:
        self.loop.remove_reader(self.pidfd)
        try:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped by someone else: its code is lost
            code = -1
        os.close(self.pidfd)
        for fd in (self.out, self.err):
            if fd not in self._closed:
                self._read(fd)  # what it wrote before it exited
                self._close(fd)
        if not self.done.done():
            self.done.set_result(code)


async def spawn(argv: Sequence[str], *, timeout: float | None = None,
                on_timeout: Callable[[int], None] | None = None, limit: int = OUTPUT_LIMIT) -> tuple[Result, bool]:
    """Run ``argv`` (stdin ``/dev/null``) until it exits; ``(result, timed_out)``. After
    ``timeout`` seconds ``on_timeout(pid)`` is called (default: SIGKILL to the program), and the
    program itself is killed if it has not exited ``KILL_GRACE`` seconds later (``runc exec``
    waits for the output of whatever the command left running). Each stream keeps its first
    ``limit`` bytes. Cancelled, the program is stopped the same way and reaped when it exits.
    A missing program raises :class:`OSError`."""
    loop = asyncio.get_running_loop()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        # posix_spawn returns once the child has called exec (vfork): it does not wait for the program
        # the environment as bytes: posix_spawn converting os.environ itself decodes and encodes
        # every variable through Python calls, a third of what a spawn costs the loop
        pid = os.posix_spawnp(argv[0], list(argv), dict(os.environb), file_actions=[  # noqa: ASYNC221 - see above
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2)])
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    try:
        pidfd = os.pidfd_open(pid)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)  # noqa: ASYNC222 - killed: it ends at once (a kernel without pidfds)
        os.close(out_r)
        os.close(err_r)
        raise
    child = _Spawned(loop, pid, pidfd, out_r, err_r, limit)
    kill = on_timeout or _sigkill
    timed_out = False

    def hard_kill() -> None:
        # done is set in the same callback that reaps the pid: not done, the pid is still ours
        if not child.done.done():
            _sigkill(pid)

    def stop() -> None:
        kill(pid)
        loop.call_later(KILL_GRACE, hard_kill)

    def expire() -> None:
        nonlocal timed_out
        if not child.done.done():
            timed_out = True
            stop()

    timer = loop.call_later(timeout, expire) if timeout is not None and timeout > 0 else None
    try:
        code = await asyncio.shield(child.done)
    except asyncio.CancelledError:
        if not child.done.done():
            stop()  # the caller gave up: the program goes too (reaped by _exited)
        raise
    finally:
        if timer is not None:
            timer.cancel()
    return Result(tuple(argv), code, bytes(child.bufs[out_r]), bytes(child.bufs[err_r])), timed_out


def _sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
