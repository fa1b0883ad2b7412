"""Debian's nginx as the controller's child: started, validated before every reload, reloaded
gracefully, restarted with back-off when it dies, stopped with the controller.

Everything lives in the state directory (``<data-dir>/ingress`` in ``k8py server``):
``nginx.conf`` (the configuration in force), ``nginx.conf.new`` (a candidate while it is
checked), ``certs/`` (PEM files, mode 0600), ``nginx.pid``, ``nginx.sock`` (the status socket),
``nginx.log`` (nginx's error log) and ``tmp/``. nginx runs as
``nginx -c <state>/nginx.conf -p <state>/ -e stderr`` with ``daemon off``; the system's nginx, its
``/etc/nginx`` and its service are never used.

A new configuration is written as a candidate and checked with ``nginx -t``; only a candidate
that passes replaces ``nginx.conf``, and the master is sent ``SIGHUP``: it starts workers with the
new configuration and lets the old ones finish the connections they hold (no connection is
dropped). The reload is known to be in force when the status socket answers the new
generation. A candidate that fails leaves the running configuration (and its files) untouched
and raises :class:`NginxError` with nginx's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

CONF = "nginx.conf"
CANDIDATE = "nginx.conf.new"
PID = "nginx.pid"
SOCK = "nginx.sock"
LOG = "nginx.log"
CERTS = "certs"
TMP = "tmp"


class NginxError(Exception):
    """A configuration nginx refused, or nginx that cannot be run."""


def find_nginx() -> str:
    return shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx") or ""


def port_free(port: int) -> bool:
    """Whether a listener can bind ``port`` on every IPv4 address (as nginx's ``listen PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def ipv6_available() -> bool:
    """Whether nginx can listen on [::] here (IPv6 enabled in the kernel)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def choose_port(wanted: int, aside: int, what: str, taken: tuple[int, ...] = ()) -> tuple[int, str]:
    """``wanted`` when it is free, else ``aside`` or the next free port after it; with the log
    line that says so ("" when ``wanted`` was free)."""
    if wanted not in taken and port_free(wanted):
        return wanted, ""
    for port in range(aside, min(aside + 100, 65536)):
        if port not in taken and port != wanted and port_free(port):
            return port, (f"ingress: port {wanted} for {what} is taken by another program; nginx listens for {what} "
                          f"on port {port} instead (choose with --ingress-{what.lower()}-port)")
    raise NginxError(f"port {wanted} for {what} is taken and no port from {aside} to {aside + 99} is free")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the controller's process dies (a killed server
    must not leave nginx behind; killall also stops it by its pid file)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Nginx:
    def __init__(self, state_dir: str, *, binary: str = "", backoff: tuple[float, float] = (1.0, 30.0),
                 check_timeout: float = 30.0) -> None:
        self.state_dir = os.path.abspath(state_dir)
        self.binary = binary or find_nginx()
        self.backoff = backoff
        self.check_timeout = check_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.generation = -1  # of the configuration in force
        self.restarts = 0
        self._stopping = False
        self._exited = asyncio.Event()

    # -- paths ----------------------------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.state_dir, name)

    @property
    def socket_path(self) -> str:
        """The status socket: in the state directory unless its path is too long for a unix
        socket (108 bytes), then in /tmp under a name derived from the state directory."""
        p = self.path(SOCK)
        if len(p.encode()) < 100:
            return p
        import hashlib

        return f"/tmp/k8py-ingress-{hashlib.sha256(self.state_dir.encode()).hexdigest()[:16]}.sock"

    def prepare(self) -> None:
        if not self.binary:
            raise NginxError("nginx is not installed (Debian package nginx)")
        os.makedirs(self.state_dir, 0o711, exist_ok=True)
        os.chmod(self.state_dir, 0o711)  # workers (nobody) reach tmp/; certs/ stays root's
        os.makedirs(self.path(CERTS), 0o700, exist_ok=True)
        os.makedirs(self.path(TMP), 0o755, exist_ok=True)

    def _cmd(self, conf: str, *extra: str) -> list[str]:
        return [self.binary, "-c", conf, "-p", self.state_dir + "/", "-e", "stderr", *extra]

    # -- configuration ------------------------------------------------------------------------------
    def write_certs(self, certs: Mapping[str, bytes]) -> None:
        for name, pem in certs.items():
            path = os.path.join(self.path(CERTS), name)
            if os.path.exists(path):
                continue  # the name carries the content's hash
            tmp = path + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            os.replace(tmp, path)

    def prune_certs(self, keep: set[str]) -> None:
        """Remove the certificate files the configuration in force does not use."""
        for name in os.listdir(self.path(CERTS)):
            if name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.path(CERTS), name))

    def _write_candidate(self, text: str) -> str:
        cand = self.path(CANDIDATE)
        with open(cand, "w") as f:
            f.write(text)
        return cand

    def _open_log(self) -> Any:
        return open(self.path(LOG), "ab")  # handed to the child, closed by the caller

    async def check(self, conf: str) -> None:
        proc = await asyncio.create_subprocess_exec(*self._cmd(conf, "-t", "-q"), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        try:
            async with asyncio.timeout(self.check_timeout):
                out, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise NginxError(f"nginx -t did not finish in {self.check_timeout:.0f}s") from None
        if proc.returncode != 0:
            lines = [ln for ln in out.decode(errors="replace").splitlines() if "[emerg]" in ln or "[crit]" in ln]
            msg = "; ".join(re.sub(r"^\d+#\d+: ", "", ln.split("] ", 1)[-1]) for ln in lines)
            msg = msg or out.decode(errors="replace").strip()
            raise NginxError(msg or f"nginx -t exited with {proc.returncode}")

    async def apply(self, text: str, certs: Mapping[str, bytes], generation: int, *, timeout: float = 15.0) -> None:
        """Make ``text`` the configuration in force (start nginx, or reload it); on a refused
        configuration raise :class:`NginxError` and keep the one in force."""
        self.prepare()
        self.write_certs(certs)
        cand = self._write_candidate(text)
        try:
            await self.check(cand)
        except NginxError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(cand)
            raise
        os.replace(cand, self.path(CONF))
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGHUP)
        else:
            await self.start()
        if not await self.wait_generation(generation, timeout):
            raise NginxError(f"nginx did not take configuration generation {generation} within {timeout:.0f}s "
                             f"(see {self.path(LOG)})")
        self.generation = generation
        self.prune_certs(set(certs))

    # -- the process ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self._stopping = False
        self.prepare()
        stale = self.read_pid()
        if stale:  # a master of a previous run that outlived it (killed server): it holds the ports
            await asyncio.to_thread(stop_pid, stale, self.state_dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)  # nginx refuses to bind a unix socket that exists
        logf = self._open_log()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self._cmd(self.path(CONF)), stdin=asyncio.subprocess.DEVNULL, stdout=logf, stderr=logf,
                preexec_fn=_die_with_parent, start_new_session=True)
        finally:
            logf.close()
        self._exited.clear()
        log.info("ingress: nginx started (pid %d, %s)", self.proc.pid, self.path(CONF))

    async def status_generation(self) -> int | None:
        try:
            async with asyncio.timeout(2):
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
        except (OSError, TimeoutError):
            return None
        try:
            writer.write(b"GET /generation HTTP/1.0\r\nHost: status\r\n\r\n")
            async with asyncio.timeout(2):
                data = await reader.read(4096)
        except (OSError, TimeoutError):
            return None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
            return None
        try:
            return int(body.strip())
        except ValueError:
            return None

    async def wait_generation(self, generation: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if await self.status_generation() == generation:
                return True
            await asyncio.sleep(0.02)  # poll interval of a bounded wait (a unix-socket request each)
        return False

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart nginx with back-off when it exits on its own, until ``stop``."""
        delay = self.backoff[0]
        while not stop.is_set():
            if self.proc is None or self._stopping:
                await asyncio.wait({asyncio.ensure_future(stop.wait())}, timeout=1.0)
                continue
            proc = self.proc
            waiter = asyncio.ensure_future(proc.wait())
            stopper = asyncio.ensure_future(stop.wait())
            started = time.monotonic()
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if stop.is_set() or self._stopping:
                waiter.cancel()
                return
            log.error("ingress: nginx exited with status %s; restarting in %.0fs (see %s)", proc.returncode, delay,
                      self.path(LOG))
            # a master killed outright leaves its workers holding the ports: they are in its
            # process group (its own session), end them before a new master binds
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if time.monotonic() - started > 60:
                delay = self.backoff[0]  # it had been running a while: a fresh fault
            await asyncio.wait({asyncio.ensure_future(stop.wait())}, timeout=delay)
            if stop.is_set():
                return
            delay = min(delay * 2, self.backoff[1])
            try:
                await self.start()
                self.restarts += 1
            except OSError as e:
                log.error("ingress: cannot start nginx: %s", e)

    async def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGQUIT: workers finish their requests), SIGTERM then SIGKILL after
        ``timeout``; then remove the state files but the log."""
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                async with asyncio.timeout(timeout):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # workers of a master that did not end them
        self.proc = None
        self.cleanup()

    def read_pid(self) -> int:
        try:
            with open(self.path(PID)) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def cleanup(self) -> None:
        for path in (*(self.path(n) for n in (CONF, CANDIDATE, PID)), self.socket_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        for d in (CERTS, TMP):
            shutil.rmtree(self.path(d), ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_pid(pid: int, state_dir: str, timeout: float = 10.0) -> bool:
    """Stop the nginx master ``pid`` if it is the one of ``state_dir`` (its command line names
    that prefix; another program that got the pid is left alone). True when one was stopped."""
    if f"-p {os.path.abspath(state_dir)}/" not in _cmdline(pid) or "nginx" not in _cmdline(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _cmdline(pid):
        time.sleep(0.05)  # poll interval of a bounded wait for the process to go
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # the master leads its group (own session): it and its workers
    return True


def killall(state_dir: str) -> list[str]:
    """``k8py killall``'s part: stop a leftover nginx of this state directory and remove its
    files (not the log). Returns what was done, for killall's report."""
    done: list[str] = []
    if not os.path.isdir(state_dir):
        return done
    n = Nginx(state_dir, binary="nginx")
    pid = n.read_pid()
    if pid and stop_pid(pid, state_dir):
        done.append(f"stopped nginx (pid {pid})")
    n.cleanup()
    return done
