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

from k8py.kubelet import ticks

__all__ = ["OUTPUT_LIMIT", "Result", "run", "spawn"]

OUTPUT_LIMIT = 16 << 20  # what :func:`spawn` keeps of each stream (CRI-O's exec sync limit); the rest is read and dropped
KILL_GRACE = 2.0  # after on_timeout, what :func:`spawn` gives the program to exit before SIGKILL
DRAIN_AFTER = 0.1  # a program still running this long has its output read as it comes (see _Spawned)


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
    """A child started by :func:`spawn`: its exit seen through its pidfd; its two pipes read
    when it has exited, or as output comes once it has run :data:`DRAIN_AFTER` seconds (a
    program that writes more than a pipe holds waits that long); ``done`` gets the exit code.

    One reader (the pidfd) and one timer a spawn: a program that ends quickly, as a probe's
    ``runc exec`` does, costs the loop one callback. Registering both pipes with the loop as
    well made a spawn cost the agent twice as much (measured with ``/bin/true``: 0.27 against
    0.48 ms of the loop's CPU, ``runc --version``: 0.52 against 0.91 ms)."""

    __slots__ = ("bufs", "check", "deadline", "done", "err", "exited", "kill", "limit", "loop", "out", "pid",
                 "pidfd", "reading", "timed_out", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, pid: int, pidfd: int, out: int, err: int, limit: int,
                 timeout: float | None, kill: Callable[[int], None], at_ticks: bool = False) -> None:
        self.loop = loop
        self.pid = pid
        self.pidfd = pidfd
        self.limit = limit
        self.out, self.err = out, err
        self.bufs = (bytearray(), bytearray())
        self.reading = False
        self.timed_out = False
        self.exited = False  # reaped (set in the callback that reaps it)
        self.kill = kill
        self.done: asyncio.Future[int] = loop.create_future()
        self.check: asyncio.TimerHandle | None = None
        self.deadline = loop.time() + timeout if timeout is not None and timeout > 0 else None
        first = DRAIN_AFTER if timeout is None or timeout <= 0 else min(DRAIN_AFTER, timeout)
        self.timer: asyncio.TimerHandle | None = loop.call_later(first, self._tick)
        if at_ticks:
            self.check = loop.call_at(ticks.next_tick(loop), self._poll)
        else:
            loop.add_reader(pidfd, self._exited)

    def _tick(self) -> None:
        """The timer: start reading the pipes, and end the program at its deadline."""
        self.timer = None
        if self.exited:
            return
        if not self.reading:
            self.reading = True
            self.loop.add_reader(self.out, self._readable, self.out, 0)
            self.loop.add_reader(self.err, self._readable, self.err, 1)
        if self.deadline is not None:
            left = self.deadline - self.loop.time()
            if left > 0:
                self.timer = self.loop.call_later(left, self._tick)
            else:
                self.deadline = None
                self.timed_out = True
                self.stop()

    def stop(self) -> None:
        """``kill`` the program; SIGKILL it if it has not exited :data:`KILL_GRACE` seconds later."""
        self.kill(self.pid)
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(KILL_GRACE, self._hard_kill)

    def _hard_kill(self) -> None:
        self.timer = None
        # exited is set in the callback that reaps the pid: until then the pid is still ours
        if not self.exited:
            _sigkill(self.pid)

    def _read(self, fd: int, i: int) -> bool:
        """Read what ``fd`` holds now; False at its end."""
        buf = self.bufs[i]
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

    def _readable(self, fd: int, i: int) -> None:
        if not self._read(fd, i):
            self.loop.remove_reader(fd)
            if i == 0:
                self.out = -1
            else:
                self.err = -1
            os.close(fd)

    def _poll(self) -> None:
        """At a tick (``at_ticks``): reaped if it has exited, else looked at again next tick."""
        self.check = None
        if self.exited:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: its code is lost
            self._reaped(-1)
            return
        if pid == 0:
            self.check = self.loop.call_at(ticks.next_tick(self.loop), self._poll)
        else:
            self._reaped(os.waitstatus_to_exitcode(status))

    def _exited(self) -> None:
        self.loop.remove_reader(self.pidfd)
        try:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped by someone else: its code is lost
            code = -1
        self._reaped(code)

    def _reaped(self, code: int) -> None:
        loop = self.loop
        self.exited = True
        if self.check is not None:
            self.check.cancel()
            self.check = None
        os.close(self.pidfd)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for i, fd in enumerate((self.out, self.err)):
            if fd >= 0:
                self._read(fd, i)  # what it wrote before it exited
                if self.reading:
                    loop.remove_reader(fd)
                os.close(fd)
        self.out = self.err = -1
        if not self.done.done():
            self.done.set_result(code)


async def spawn(argv: Sequence[str], *, timeout: float | None = None,
                on_timeout: Callable[[int], None] | None = None, limit: int = OUTPUT_LIMIT,
                at_ticks: bool = False) -> tuple[Result, bool]:
    """Run ``argv`` (stdin ``/dev/null``) until it exits; ``(result, timed_out)``. After
    ``timeout`` seconds ``on_timeout(pid)`` is called (default: SIGKILL to the program), and the
    program itself is killed if it has not exited ``KILL_GRACE`` seconds later (``runc exec``
    waits for the output of whatever the command left running). Each stream keeps its first
    ``limit`` bytes. Cancelled, the program is stopped the same way and reaped when it exits.
    A missing program raises :class:`OSError`. ``at_ticks``: its exit is looked for at the
    agent's ticks (:mod:`k8py.kubelet.ticks`) instead of as it comes, so that the programs that
    end within a tick are reaped in one wake-up of the loop."""
    loop = asyncio.get_running_loop()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        # posix_spawn returns once the child has called exec (vfork): it does not wait for the program
        pid = os.posix_spawnp(argv[0], list(argv), _environ(), file_actions=[  # noqa: ASYNC221 - see above
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
    # only the read ends: the program's own stdout and stderr stay blocking
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    child = _Spawned(loop, pid, pidfd, out_r, err_r, limit, timeout, on_timeout or _sigkill, at_ticks)
    try:
        # not shielded: a cancelled wait cancels ``done``, and _exited still reaps the program
        code = await child.done
    except asyncio.CancelledError:
        if not child.exited:
            child.stop()  # the caller gave up: the program goes too (reaped by _exited)
        raise
    out, err = child.bufs
    return Result(tuple(argv), code, bytes(out), bytes(err)), child.timed_out


def _environ() -> Mapping[bytes, bytes]:
    """This process's environment as it is now, as bytes, for posix_spawn. Handed ``os.environ``
    (or ``dict(os.environb)``), posix_spawn goes through the mapping's Python methods, a call
    or three per variable: with 35 variables that was a third of what a spawn costs the loop.
    The bytes dict behind ``os.environ`` (CPython's ``_Environ._data``, which every change through
    ``os.environ`` and ``os.environb`` updates) copies in C."""
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        return dict(data)
    return dict(os.environb)


def _sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
