"""Streaming exec and attach for the runc runtime (``kubectl exec``, ``kubectl attach``).

An exec is ``runc exec`` in a child process, started in its own session:

- without a TTY its stdin, stdout and stderr are pipes to the agent (runc hands its own stdio to
  the process it starts); a stream the client did not ask for is ``/dev/null``;
- with a TTY ``runc exec -t`` makes the pseudo-terminal inside the container (its devpts) and,
  in the foreground, copies between it and its own stdin/stdout, which are a pseudo-terminal of
  ours (runc puts it in raw mode); stdin and output go through our master side. A resize sets
  the size of ours (``TIOCSWINSZ``) and sends runc ``SIGWINCH``, on which runc copies it to the
  container's terminal. (runc takes a ``--console-socket`` only when it detaches, and then
  nobody could wait for the command's exit code.)

The exec has started once runc wrote its ``--pid-file``; a runc that ends without writing it
failed to start the command ("executable file not found") and the session is not made: the
caller gets :class:`RuntimeServiceError` with runc's message. runc in the foreground copies the
command's output through pipes (or its terminal) of its own and reports the exit code once
those reach their end: a background child that keeps the command's stdout open holds the exec
until it lets go (as with CRI-O, which runs ``runc exec`` the same way; containerd's shim ends it
shortly after the command). Output still open :data:`DRAIN_TIMEOUT` after runc ended is cut. :meth:`RuncExec.close` kills the command with everything it started (a
client that went away leaves nothing behind) and releases every descriptor.

An attach connects to the container's conmon: its attach socket (``SOCK_SEQPACKET``; each
message from conmon is a pipe byte, 2 stdout or 3 stderr, then data; what we send is the
container's stdin) and its ``ctl`` fifo for resizes (``"1 <height> <width>\\n"``), as CRI-O does.
The container's stdin is there only when it was created with ``stdin: true`` (conmon ``--stdin``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import pty
import signal
import socket
import struct
import termios
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from k8py.kubelet.runtime.types import STDERR, STDOUT, RuntimeServiceError, StreamOptions

__all__ = ["ConmonAttach", "RuncExec"]

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0  # runc to start the command (write its pid file, send the console)
DRAIN_TIMEOUT = 2.0  # output still open this long after the command exited is cut
KILL_TIMEOUT = 10.0  # runc to be gone after the command was killed
POLL = 0.002  # how often the start looks for runc's pid file (10 ms cost 3.5 ms of exec latency)
READ_SIZE = 65536
QUEUE_SIZE = 16  # output pieces held while the client is slow (then the pipes fill: back-pressure)

# conmon's attach protocol (conmon's ``enum pipe_type``; CRI-O's AttachPipeStdout/Stderr)
CONMON_STDOUT = 2
CONMON_STDERR = 3
CONMON_BUF = 8192
RESIZE_SETTLE = 0.05  # resizes to an attached terminal this close together are written as one


def _set_winsize(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", max(height, 0), max(width, 0), 0, 0))


class _Output:
    """Output pieces from several readers, in order of arrival; ``None`` after the last."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(QUEUE_SIZE)
        self.done = False

    async def get(self) -> tuple[int, bytes] | None:
        if self.done and self.queue.empty():
            return None
        item = await self.queue.get()
        if item is None:
            self.done = True
        return item

    def finish(self) -> None:
        """No more output. Never blocks (a cancelled reader calls it): with the queue full the
        pieces in it are read first and then :attr:`done` ends the reading."""
        self.done = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


async def _pipe_reader(stream: asyncio.StreamReader, which: int, out: _Output) -> None:
    while chunk := await stream.read(READ_SIZE):
        await out.queue.put((which, chunk))


class RuncExec:
    """A ``runc exec`` with its streams (see the module's docstring)."""

    def __init__(self, proc: asyncio.subprocess.Process, pid_file: Path, opts: StreamOptions,
                 kill_tree: Callable[[int], None]) -> None:
        self.proc = proc
        self.pid_file = pid_file
        self.opts = opts
        self.kill_tree = kill_tree
        self.master = -1  # the pty's master side (tty only)
        self.out = _Output()
        self.readers: list[asyncio.Task[None]] = []
        self.monitor: asyncio.Task[None] | None = None
        self.closed = False
        self._writable: asyncio.Future[None] | None = None

    # -- start --------------------------------------------------------------------------
    @classmethod
    async def start(cls, runc_argv: Sequence[str], container_id: str, cmd: Sequence[str], pid_file: Path,
                    opts: StreamOptions, kill_tree: Callable[[int], None]) -> RuncExec:
        """``runc_argv`` is runc with its global options (``runc --root ...``)."""
        if opts.tty:
            return await cls._start_tty(runc_argv, container_id, cmd, pid_file, opts, kill_tree)
        pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        proc = await asyncio.create_subprocess_exec(
            *runc_argv, "exec", "--pid-file", str(pid_file), container_id, *cmd,
            stdin=pipe if opts.stdin else null,
            stdout=pipe if opts.stdout else null,
            stderr=pipe,  # runc's own failure is read from here too (see _started)
            start_new_session=True,
        )  # fmt: skip
        self = cls(proc, pid_file, opts, kill_tree)
        try:
            assert proc.stderr is not None
            await self._started(proc.stderr)
            if proc.stdout is not None:
                self.readers.append(asyncio.create_task(_pipe_reader(proc.stdout, STDOUT, self.out)))
            if opts.stderr:
                self.readers.append(asyncio.create_task(_pipe_reader(proc.stderr, STDERR, self.out)))
            else:
                self.readers.append(asyncio.create_task(_discard(proc.stderr)))
            self.monitor = asyncio.create_task(self._watch())
        except BaseException:
            await self.close()
            raise
        return self

    @classmethod
    async def _start_tty(cls, runc_argv: Sequence[str], container_id: str, cmd: Sequence[str], pid_file: Path,
                         opts: StreamOptions, kill_tree: Callable[[int], None]) -> RuncExec:
        # runc takes a console socket only when it detaches (and then nobody waits for the
        # command's exit code); in the foreground it makes the container's terminal itself and
        # copies between it and its own stdin/stdout, which must then be a terminal: ours.
        master, slave = pty.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                *runc_argv, "exec", "-t", "--pid-file", str(pid_file), container_id, *cmd,
                stdin=slave, stdout=slave,
                stderr=asyncio.subprocess.PIPE,  # runc's own failure
                start_new_session=True,
            )  # fmt: skip
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)  # runc holds it now: when runc ends, the master reads EIO
        self = cls(proc, pid_file, opts, kill_tree)
        self.master = master
        try:
            os.set_blocking(self.master, False)
            assert proc.stderr is not None
            await self._started(proc.stderr)
            self.readers.append(asyncio.create_task(self._read_master()))
            self.readers.append(asyncio.create_task(_discard(proc.stderr)))
            self.monitor = asyncio.create_task(self._watch())
        except BaseException:
            await self.close()
            raise
        return self

    async def _started(self, stderr: asyncio.StreamReader) -> None:
        """Wait (bounded) until runc wrote the pid file; a runc that ended without it failed."""
        deadline = time.monotonic() + START_TIMEOUT
        while not self.pid_file.exists():
            if self.proc.returncode is not None:
                if self.pid_file.exists():
                    return
                raise RuntimeServiceError(_runc_error(await stderr.read(), self.proc.returncode))
            if time.monotonic() > deadline:
                raise RuntimeServiceError(f"runc exec did not start the command within {START_TIMEOUT:g}s")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await asyncio.shield(self.proc.wait())

    # -- output -------------------------------------------------------------------------
    async def _read_master(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, READ_SIZE)
            except BlockingIOError:
                await _fd_ready(self.master, write=False)
                continue
            except OSError as e:
                if e.errno == errno.EIO:  # every slave side closed: the command and its children are done
                    return
                raise
            if not chunk:
                return
            await self.out.queue.put((STDOUT, chunk))

    async def _watch(self) -> None:
        """The end of output: every reader done, or the command gone and DRAIN_TIMEOUT passed."""
        readers: asyncio.Future[Any] = asyncio.gather(*self.readers, return_exceptions=True)
        exited: asyncio.Future[Any] = asyncio.ensure_future(self.proc.wait())
        try:
            await asyncio.wait([readers, exited], return_when=asyncio.FIRST_COMPLETED)
            if not readers.done():
                await asyncio.wait({readers}, timeout=DRAIN_TIMEOUT)
            if not readers.done():
                log.debug("exec output still open %gs after the command exited: cut", DRAIN_TIMEOUT)
                for t in self.readers:
                    t.cancel()
        finally:
            exited.cancel()
            self.out.finish()

    async def read(self) -> tuple[int, bytes] | None:
        return await self.out.get()

    # -- input --------------------------------------------------------------------------
    async def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        if self.master >= 0:
            await self._write_master(data)
            return
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            return
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            pass  # the command closed its stdin or ended: what it did not read is dropped, as in kube

    async def _write_master(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.closed:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                await _fd_ready(self.master, write=True)
                continue
            except OSError:
                return  # the terminal is gone
            view = view[n:]

    async def close_stdin(self) -> None:
        if self.master >= 0:
            return  # a terminal has no end of input of its own (the user types Ctrl-D)
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self.master >= 0 and not self.closed:
            with contextlib.suppress(OSError):
                _set_winsize(self.master, width, height)
            if self.proc.returncode is None:
                # runc passes its terminal's size on to the container's when it gets SIGWINCH
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGWINCH)

    # -- end ----------------------------------------------------------------------------
    async def wait(self) -> int | None:
        code = await self.proc.wait()
        # runc reports a command killed by a signal as 128 + n; runc itself killed is -n here
        return 128 - code if code < 0 else code

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.proc.returncode is None:
                pid = _read_pid(self.pid_file)
                if pid > 0:
                    await asyncio.to_thread(self.kill_tree, pid)
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                try:
                    async with asyncio.timeout(KILL_TIMEOUT):
                        await self.proc.wait()
                except TimeoutError:
                    log.warning("runc exec %d still there %gs after it was killed", self.proc.pid, KILL_TIMEOUT)
        finally:
            for t in self.readers:
                t.cancel()
            if self.monitor is not None:
                self.monitor.cancel()
            await asyncio.gather(*self.readers, *([self.monitor] if self.monitor else []), return_exceptions=True)
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            # A background child of the command may still hold our pipes' other ends: close our
            # side now rather than when that child ends. asyncio's Process has no public close;
            # its transport's close() releases every pipe (the process has exited by now).
            transport = getattr(self.proc, "_transport", None)
            if transport is not None:
                transport.close()
            if self.master >= 0:
                os.close(self.master)
                self.master = -1
            with contextlib.suppress(FileNotFoundError):
                self.pid_file.unlink()


class ConmonAttach:
    """A connection to a container's conmon: its stdout and stderr, and its stdin if it has one."""

    def __init__(self, sock: socket.socket, ctl_path: Path, opts: StreamOptions) -> None:
        self.sock = sock
        self.ctl_path = ctl_path
        self.opts = opts
        self.out = _Output()
        self.closed = False
        self._size: tuple[int, int] | None = None
        self._resize_timer: asyncio.TimerHandle | None = None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, bundle: Path, opts: StreamOptions) -> ConmonAttach:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The bundle's path may be longer than a socket address holds: go through an fd to it.
        dirfd = os.open(bundle, os.O_PATH | os.O_DIRECTORY)
        try:
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{dirfd}/attach")
        except OSError as e:
            sock.close()
            raise RuntimeServiceError(f"cannot attach to the container's monitor (conmon): {e.strerror or e}") \
                from None
        finally:
            os.close(dirfd)
        return cls(sock, bundle / "ctl", opts)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                msg = await loop.sock_recv(self.sock, CONMON_BUF + 1)
                if not msg:
                    return
                pipe, data = msg[0], msg[1:]
                if not data:
                    continue
                if pipe == CONMON_STDOUT and self.opts.stdout:
                    await self.out.queue.put((STDOUT, data))
                elif pipe == CONMON_STDERR and self.opts.stderr:
                    await self.out.queue.put((STDERR if not self.opts.tty else STDOUT, data))
        except OSError:
            return
        finally:
            self.out.finish()

    async def read(self) -> tuple[int, bytes] | None:
        return await self.out.get()

    async def write(self, data: bytes) -> None:
        if self.closed or not self.opts.stdin:
            return
        loop = asyncio.get_running_loop()
        try:
            for i in range(0, len(data), CONMON_BUF):
                await loop.sock_sendall(self.sock, data[i:i + CONMON_BUF])
        except OSError:
            pass  # conmon went away with the container

    async def close_stdin(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    def resize(self, width: int, height: int) -> None:
        """Sizes that come close together are written as the last one alone: conmon (2.1) reads
        its ctl fifo in pieces and, of several messages in one piece, applies the first."""
        if self.closed:
            return
        self._size = (width, height)
        if self._resize_timer is None:
            self._resize_timer = asyncio.get_running_loop().call_later(RESIZE_SETTLE, self._write_size)

    def _write_size(self) -> None:
        self._resize_timer = None
        if self.closed or self._size is None:
            return
        width, height = self._size
        try:
            fd = os.open(self.ctl_path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return  # no conmon reading it: the container is gone
        try:
            os.write(fd, f"1 {height} {width}\n".encode())
        except OSError:
            pass
        finally:
            os.close(fd)

    async def wait(self) -> int | None:
        return None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._resize_timer is not None:
            self._resize_timer.cancel()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader
        self.sock.close()


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _fd_ready(fd: int, *, write: bool) -> None:
    """Until the non-blocking ``fd`` (the terminal's master side) can be read, or written."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    (loop.add_writer if write else loop.add_reader)(fd, _set_done, ready)
    try:
        await ready
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(READ_SIZE):
        pass


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _runc_error(stderr: bytes, code: int | None) -> str:
    from k8py.kubelet.runtime.runc import runc_message  # runc imports this module

    text = runc_message(stderr.decode(errors="replace")) or stderr.decode(errors="replace").strip()
    return text or f"runc exec exited with {code} before it started the command"
