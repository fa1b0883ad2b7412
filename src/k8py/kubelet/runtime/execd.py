"""The runtime's exec service: ``runc exec`` for :meth:`RuncRuntime.exec_sync` (exec probes and
exec hooks) started by a small process of its own instead of by the agent.

kubelet does not start the command of an exec probe: it asks the runtime (CRI ``ExecSync``), and
containerd's shim (or CRI-O's conmon) starts ``runc exec``. Here the agent talks to this service
over a socket pair, one request and one answer per command. A process started per probe cost the
agent 0.7 ms of CPU or more (``posix_spawn`` on its event loop's thread, the loop stalled while
the child ``vfork``s, and the reaping: ``docs/benchmarks.md``); a request and its answer cost it
about 0.06 ms. The service is started on the first exec and again after it ends (a new one for
the next request; the requests it had get an error); it ends when the agent does (the socket's
end is its signal), killing what it started.

The wire format, all integers big-endian:

- request: ``kind`` (1 byte: 1 run, 2 cancel), ``id``, ``timeout`` in ms (0: none), body length
  (4 bytes each); a run's body is the argv, NUL-separated.
- answer (to a run that was not cancelled): ``id``, exit code (signed), flags (1 byte: 1 timed
  out, 2 could not be started: stderr is why), stdout length, stderr length; then the two outputs.

The service runs each command as :func:`k8py.kubelet.proc.spawn` does in the agent (stdin
``/dev/null``, each stream's first :data:`~k8py.kubelet.proc.OUTPUT_LIMIT` bytes); at its timeout
(or a cancel) what the command started is killed (:func:`kill_below`: ``runc`` cannot forward
SIGKILL), and ``runc`` itself a grace period later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence

from k8py.kubelet import proc, ticks

__all__ = ["ExecService", "ExecServiceError", "children", "kill_below"]

log = logging.getLogger(__name__)

_REQ = struct.Struct("!BIII")  # kind, id, timeout (ms), body length
_ANS = struct.Struct("!IiBII")  # id, exit code, flags, stdout length, stderr length
RUN, CANCEL = 1, 2
TIMED_OUT, NOT_STARTED = 1, 2

_Answer = tuple[int, bytes, bytes, bool]  # exit code, stdout, stderr, timed out


class ExecServiceError(Exception):
    """The command could not be run: the service could not start it, or ended first."""


def children(pid: int) -> list[int]:
    """The children of ``pid`` (``/proc/<pid>/task/*/children``)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                out.extend(int(x) for x in f.read().split())
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, walked down from it (not found by reading all of ``/proc``:
    a timeout comes when the machine is busy)."""
    todo, tree = children(pid), []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children(p))
    return tree


def kill_below(pid: int) -> None:
    """SIGKILL what ``pid`` started. ``runc exec`` forwards signals, but SIGKILL cannot be
    forwarded: the command (and what it started) is killed here and runc reports 137, with what
    the command wrote before. (A runc that has not started it yet, or waits on what it left,
    :func:`~k8py.kubelet.proc.spawn` kills itself after its grace period.) The command is runc's
    child: runc init's stages are cloned with CLONE_PARENT."""
    for p in descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


# --------------------------------------------------------------------------- the service


async def _serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    running: dict[int, asyncio.Task[None]] = {}

    async def run(rid: int, argv: list[str], timeout: float) -> None:
        try:
            # exits looked for at ticks: the commands that end within a tick are reaped in one
            # wake-up (their answers are read by the agent at its next tick anyway)
            r, timed_out = await proc.spawn(argv, timeout=timeout or None, on_timeout=kill_below, at_ticks=True)
        except OSError as e:
            answer = _ANS.pack(rid, -1, NOT_STARTED, 0, len(msg := str(e).encode())) + msg
        else:
            answer = b"".join((_ANS.pack(rid, r.returncode, TIMED_OUT if timed_out else 0, len(r.stdout),
                                         len(r.stderr)), r.stdout, r.stderr))
        finally:
            running.pop(rid, None)
        writer.write(answer)

    try:
        while True:
            try:
                kind, rid, timeout_ms, n = _REQ.unpack(await reader.readexactly(_REQ.size))
                body = await reader.readexactly(n)
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the agent has gone
            if kind == RUN:
                argv = [a.decode("utf-8", "surrogateescape") for a in body.split(b"\0")]
                running[rid] = loop.create_task(run(rid, argv, timeout_ms / 1000))
            elif kind == CANCEL and (t := running.pop(rid, None)) is not None:
                t.cancel()  # proc.spawn stops the command; no answer is sent
    finally:
        # everything this service started goes with it. The commands are killed first and each
        # runc given proc.KILL_GRACE to end on its own: a runc exec killed outright in the
        # middle of its work leaves its mounts behind (the bind mount of its own binary in its
        # state directory); then whatever is left is killed.
        for t in running.values():
            t.cancel()  # proc.spawn stops each: kill_below, runc then reports and exits
        await asyncio.sleep(0)
        left = children(os.getpid())
        for pid in left:
            kill_below(pid)
        deadline = loop.time() + proc.KILL_GRACE
        while left and loop.time() < deadline:
            await asyncio.sleep(0.05)
            left = [pid for pid in left if not _reaped(pid)]
        for pid in [*left, *descendants(os.getpid())]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        writer.close()


def _reaped(pid: int) -> bool:
    """Whether ``pid`` (a child) has ended, reaping it if so."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # reaped already (by proc.spawn's own wait)
    return done != 0


def main(argv: Sequence[str]) -> None:
    fd = int(argv[0])
    # inherited through exec, so not close-on-exec: made so again, or every command started
    # would hold the agent's socket open (and a service killed would not be seen to end)
    os.set_inheritable(fd, False)
    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C to the agent: it ends the service (EOF)
    try:
        import uvloop  # the agent's loop: proc.spawn is measured on it
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(_serve(sock))
    else:
        uvloop.run(_serve(sock))


# --------------------------------------------------------------------------- the agent's side


class _Answers(asyncio.Protocol):
    """Reads the service's answers and hands each to its waiting request."""

    def __init__(self, svc: ExecService) -> None:
        self.svc = svc
        self.buf = bytearray()
        self.transport: asyncio.WriteTransport | None = None
        self.paused = False
        self.resume: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # a stream's (uvloop's is no asyncio.Transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= _ANS.size:
            rid, code, flags, n_out, n_err = _ANS.unpack_from(buf)
            end = _ANS.size + n_out + n_err
            if len(buf) < end:
                return
            out, err = bytes(buf[_ANS.size:_ANS.size + n_out]), bytes(buf[_ANS.size + n_out:end])
            del buf[:end]
            fut = self.svc.waiting.pop(rid, None)
            if fut is None or fut.done():
                continue  # a request given up on
            if flags & NOT_STARTED:
                fut.set_exception(ExecServiceError(err.decode(errors="replace")))
            else:
                fut.set_result((code, out, err, bool(flags & TIMED_OUT)))
        if not buf and self.transport is not None:
            # between answers: the next ones are read at the next tick, with the probes of that
            # tick (kubelet/ticks.py), not each as it comes
            self.transport.pause_reading()  # type: ignore[attr-defined]
            self.paused = True
            self.expect()

    def expect(self) -> None:
        """An answer is awaited: read at the next tick if reading is paused."""
        if self.paused and self.resume is None and self.svc.waiting:
            self.resume = asyncio.get_running_loop().call_at(ticks.next_tick(asyncio.get_running_loop()),
                                                             self._resume)

    def _resume(self) -> None:
        self.resume = None
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.resume is not None:
            self.resume.cancel()
            self.resume = None
        self.svc.ended(self, exc)


class ExecService:
    """The agent's connection to the exec service (:func:`main`), started on the first
    :meth:`run` and again after it ends."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[_Answer]] = {}
        self._conn: _Answers | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._starting: asyncio.Lock | None = None
        self._next = 0
        self._closed = False

    @property
    def pid(self) -> int:
        """The service's process id (0 when it is not running)."""
        return self._proc.pid if self._proc is not None and self._conn is not None else 0

    async def _connect(self) -> _Answers:
        if self._conn is not None:
            return self._conn
        if self._closed:
            raise ExecServiceError("the exec service is closed")
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._conn is not None:
                return self._conn
            self._reap()
            ours, theirs = socket.socketpair()
            try:
                # started from a thread: forking the agent's interpreter takes milliseconds
                self._proc = await asyncio.to_thread(
                    subprocess.Popen, [sys.executable, "-m", "k8py.kubelet.runtime.execd", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            _, conn = await asyncio.get_running_loop().create_unix_connection(lambda: _Answers(self), sock=ours)
            self._conn = conn
            log.debug("exec service started (pid %d)", self._proc.pid)
            return conn

    async def run(self, argv: Sequence[str], timeout: float | None = None) -> tuple[proc.Result, bool]:
        """Run ``argv`` as :func:`k8py.kubelet.proc.spawn` does (stdin ``/dev/null``; at
        ``timeout`` what it started is killed, see :func:`kill_below`); ``(result, timed_out)``.
        Cancelled, the command is stopped. :class:`ExecServiceError` when it could not be run."""
        args = [a.encode("utf-8", "surrogateescape") for a in argv]
        if not args or any(b"\0" in a for a in args):
            raise ExecServiceError("exec: an argument is empty or holds a NUL byte" if args else "exec: no command")
        conn = await self._connect()
        assert conn.transport is not None
        self._next = (self._next + 1) & 0xFFFFFFFF
        rid = self._next
        fut: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        self.waiting[rid] = fut
        body = b"\0".join(args)
        ms = max(1, int(timeout * 1000)) if timeout is not None and timeout > 0 else 0
        conn.transport.write(_REQ.pack(RUN, rid, ms, len(body)) + body)
        conn.expect()
        try:
            code, out, err, timed_out = await fut
        except asyncio.CancelledError:
            if self.waiting.pop(rid, None) is not None and self._conn is conn and conn.transport is not None:
                conn.transport.write(_REQ.pack(CANCEL, rid, 0, 0))
            raise
        return proc.Result(tuple(argv), code, out, err), timed_out

    def ended(self, conn: _Answers, exc: Exception | None) -> None:
        if self._conn is not conn:
            return
        self._conn = None
        why = f": {exc}" if exc is not None else ""
        err = ExecServiceError(f"the runtime's exec service ended{why}")
        waiting, self.waiting = self.waiting, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(err)
        if not self._closed:
            log.warning("the runtime's exec service (pid %s) ended%s; it is started again for the next exec",
                        self._proc.pid if self._proc is not None else "?", why)
        self._reap()

    def _reap(self) -> None:
        p = self._proc
        if p is not None and p.poll() is not None:
            self._proc = None

    async def close(self) -> None:
        """End the service (and what it is running) and wait for it to exit."""
        self._closed = True
        conn, p = self._conn, self._proc
        if conn is not None and conn.transport is not None:
            conn.transport.close()
        if p is not None:
            try:
                await asyncio.to_thread(p.wait, 5)
            except subprocess.TimeoutExpired:
                p.kill()
                await asyncio.to_thread(p.wait)
            self._proc = None


if __name__ == "__main__":
    main(sys.argv[1:])
