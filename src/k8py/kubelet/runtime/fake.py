"""The ``fake`` runtime: runs nothing (kubemark's hollow kubelet). Sandboxes and containers are
records, so the agent's real code (pod workers, status, node registration) serves simulated
nodes at scale: a started container is Running at once; one whose pod carries the annotation
``k8py.io/fake-exit-code`` exits with that code as soon as it starts (for Jobs and restart
tests). Images "pull" instantly unless named in :attr:`FakeRuntime.missing_images`. A test can
choose exit codes per container instead (``exit_code=``: asked at each create; None falls back
to the annotation).

A streaming exec runs one of a few built-in commands (:func:`fake_command`): ``echo``, ``cat``
(stdin to stdout), ``true``, ``false``, ``exit N``, ``stderr TEXT``, ``sleep``; any other is
"executable file not found", as runc says it. An attach streams nothing until closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from k8py.kubelet.runtime.types import (
    STDERR,
    STDOUT,
    ContainerConfig,
    ContainerNotFoundError,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    CreateContainerError,
    ExecResult,
    Image,
    ImagePullError,
    RegistryAuth,
    RuntimeServiceError,
    RuntimeVersion,
    SandboxConfig,
    SandboxNotFoundError,
    SandboxState,
    SandboxStatus,
    StreamOptions,
    StreamSession,
)

__all__ = ["EXIT_CODE_ANNOTATION", "FakeRuntime", "FakeStream", "fake_command"]

EXIT_CODE_ANNOTATION = "k8py.io/fake-exit-code"


class FakeStream:
    """A :class:`StreamSession` whose "process" is a coroutine reading :meth:`stdin` and calling
    :meth:`emit`; it records resizes. Closing it cancels the process."""

    def __init__(self, opts: StreamOptions, program: Callable[[FakeStream], Awaitable[int | None]]) -> None:
        self.opts = opts
        self.resizes: list[tuple[int, int]] = []
        self._in: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._out: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self.closed = False
        self.task = asyncio.create_task(self._run(program))

    async def _run(self, program: Callable[[FakeStream], Awaitable[int | None]]) -> int | None:
        try:
            return await program(self)
        finally:
            self._out.put_nowait(None)

    # the "process" side
    async def stdin(self) -> bytes | None:
        return await self._in.get() if self.opts.stdin else None

    def emit(self, which: int, data: bytes) -> None:
        if self.opts.tty:
            which = STDOUT  # a terminal has one output
        if (which == STDOUT and self.opts.stdout) or (which == STDERR and self.opts.stderr):
            self._out.put_nowait((which, data))

    # the StreamSession side
    async def read(self) -> tuple[int, bytes] | None:
        return await self._out.get()

    async def write(self, data: bytes) -> None:
        if not self.closed:
            self._in.put_nowait(data)

    async def close_stdin(self) -> None:
        self._in.put_nowait(None)

    def resize(self, width: int, height: int) -> None:
        self.resizes.append((width, height))

    async def wait(self) -> int | None:
        return await asyncio.shield(self.task)

    async def close(self) -> None:
        self.closed = True
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def fake_command(cmd: Sequence[str]) -> Callable[[FakeStream], Awaitable[int | None]] | None:
    """The built-in "program" for ``cmd``, or None when there is no such executable."""
    name, args = cmd[0], list(cmd[1:])

    async def echo(s: FakeStream) -> int:
        s.emit(STDOUT, (" ".join(args) + "\n").encode())
        return 0

    async def stderr(s: FakeStream) -> int:
        s.emit(STDERR, (" ".join(args) + "\n").encode())
        return 0

    async def cat(s: FakeStream) -> int:
        while (data := await s.stdin()) is not None:
            s.emit(STDOUT, data)
        return 0

    async def code(s: FakeStream) -> int:
        if name == "exit":
            return int(args[0]) if args else 0
        return 0 if name == "true" else 1

    async def sleep(s: FakeStream) -> int:
        await asyncio.sleep(float(args[0]) if args else 3600.0)
        return 0

    table: dict[str, Callable[[FakeStream], Awaitable[int | None]]] = {
        "echo": echo, "stderr": stderr, "cat": cat, "true": code, "false": code, "exit": code, "sleep": sleep}
    return table.get(name)


class FakeRuntime:
    name = "fake"

    def __init__(self, pod_cidr: str = "10.244.0.0/24", *,
                 exit_code: Callable[[SandboxConfig, ContainerConfig], int | None] | None = None) -> None:
        base = pod_cidr.partition("/")[0]
        self._prefix = base.rsplit(".", 1)[0]
        self._ips = itertools.cycle(range(2, 255))
        self.sandboxes: dict[str, SandboxStatus] = {}
        self.containers: dict[str, ContainerStatus] = {}
        self._exit_on_start: dict[str, int] = {}
        self.images: dict[str, Image] = {}
        self.missing_images: set[str] = set()  # references that fail to pull
        self.calls: list[str] = []  # the verbs called, in order (tests)
        self.exit_code = exit_code

    async def version(self) -> RuntimeVersion:
        return RuntimeVersion("fake", "0.1.0")

    # -- sandboxes -----------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: SandboxConfig) -> str:
        self.calls.append("run_pod_sandbox")
        sid = uuid.uuid4().hex
        ips = () if config.host_network else (f"{self._prefix}.{next(self._ips)}",)
        self.sandboxes[sid] = SandboxStatus(
            sid, config.name, config.namespace, config.uid, config.attempt, SandboxState.READY, time.time(), ips,
            dict(config.labels), dict(config.annotations), "" if config.host_network else f"/run/netns/fake-{sid[:12]}")
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append("stop_pod_sandbox")
        sb = self.sandboxes.get(sandbox_id)
        if sb is None:
            return
        for c in list(self.containers.values()):
            if c.sandbox_id == sandbox_id and c.state == ContainerState.RUNNING:
                self._exit(c, 137, "Error")
        sb.state = SandboxState.NOTREADY

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append("remove_pod_sandbox")
        for cid in [c.id for c in self.containers.values() if c.sandbox_id == sandbox_id]:
            self.containers.pop(cid, None)
        self.sandboxes.pop(sandbox_id, None)

    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus | None:
        return self.sandboxes.get(sandbox_id)

    async def list_pod_sandboxes(self) -> list[SandboxStatus]:
        return list(self.sandboxes.values())

    # -- containers ----------------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, config: ContainerConfig, sandbox: SandboxConfig) -> str:
        self.calls.append(f"create_container {config.name}")
        if sandbox_id not in self.sandboxes:
            raise SandboxNotFoundError(f"sandbox {sandbox_id} not found")
        img = await self.image_status(config.image)
        if img is None:
            raise CreateContainerError(f"image {config.image!r} is not on the node")
        cid = uuid.uuid4().hex
        chosen = self.exit_code(sandbox, config) if self.exit_code is not None else None
        code = sandbox.annotations.get(EXIT_CODE_ANNOTATION)
        if chosen is not None:
            self._exit_on_start[cid] = chosen
        elif code is not None:
            self._exit_on_start[cid] = int(code) if code.lstrip("-").isdigit() else 1
        self.containers[cid] = ContainerStatus(
            cid, sandbox_id, config.name, config.attempt, config.image, img.id, ContainerState.CREATED,
            created_at=time.time(), labels=dict(config.labels), annotations=dict(config.annotations))
        return cid

    async def start_container(self, container_id: str) -> None:
        self.calls.append("start_container")
        c = self.containers.get(container_id)
        if c is None:
            raise ContainerNotFoundError(f"container {container_id} not found")
        c.started_at = time.time()
        code = self._exit_on_start.pop(container_id, None)
        if code is not None:
            self._exit(c, code, "Completed" if code == 0 else "Error")
        else:
            c.state = ContainerState.RUNNING

    def _exit(self, c: ContainerStatus, code: int, reason: str) -> None:
        c.state = ContainerState.EXITED
        c.exit_code = code
        c.reason = reason
        c.finished_at = time.time()

    async def stop_container(self, container_id: str, timeout: float) -> None:
        self.calls.append("stop_container")
        c = self.containers.get(container_id)
        if c is not None and c.state in (ContainerState.RUNNING, ContainerState.CREATED):
            # the stop signal is honoured at once: a clean exit (SIGTERM -> 143 for a shell)
            self._exit(c, 143 if timeout > 0 else 137, "Error")

    async def remove_container(self, container_id: str) -> None:
        self.calls.append("remove_container")
        self.containers.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        return self.containers.get(container_id)

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [c for c in self.containers.values() if sandbox_id is None or c.sandbox_id == sandbox_id]

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float = 0) -> ExecResult:
        """Nothing runs, so every command "succeeds" with no output (probes pass)."""
        if container_id not in self.containers:
            return ExecResult(b"", b"container not found", 1)
        return ExecResult(b"", b"", 0)

    def _running(self, container_id: str) -> None:
        c = self.containers.get(container_id)
        if c is None:
            raise ContainerNotFoundError(f"container {container_id} not found")
        if c.state != ContainerState.RUNNING:
            raise RuntimeServiceError(f"container {container_id[:12]} is not running ({c.state.value})")

    async def exec_stream(self, container_id: str, cmd: Sequence[str], opts: StreamOptions) -> StreamSession:
        self._running(container_id)
        program = fake_command(cmd) if cmd else None
        if program is None:
            raise RuntimeServiceError(f"exec failed: unable to start container process: exec: "
                                      f"\"{cmd[0] if cmd else ''}\": executable file not found in $PATH")
        return FakeStream(opts, program)

    async def attach(self, container_id: str, opts: StreamOptions) -> StreamSession:
        self._running(container_id)

        async def idle(s: FakeStream) -> None:
            await asyncio.Event().wait()  # the container's process goes on until the attach is closed

        return FakeStream(opts, idle)

    async def container_stats(self, container_id: str) -> ContainerStats | None:
        if container_id not in self.containers:
            return None
        return ContainerStats(time.time(), 0, 0)

    async def list_container_stats(self, container_ids: Sequence[str]) -> dict[str, ContainerStats]:
        return {cid: st for cid in container_ids if (st := await self.container_stats(cid)) is not None}

    async def writable_layer(self, container_id: str) -> str | None:
        return None  # nothing is written anywhere

    def kill(self, container_id: str, code: int = 137, reason: str = "Error") -> None:
        """Make a running container exit (tests: a crash)."""
        self._exit(self.containers[container_id], code, reason)

    # -- images --------------------------------------------------------------------------------

    async def pull_image(self, ref: str, auth: RegistryAuth | None = None) -> str:
        self.calls.append(f"pull_image {ref}")
        if ref in self.missing_images:
            raise ImagePullError(f'failed to pull image "{ref}": not found (fake runtime)')
        img = self.images.get(ref)
        if img is None:
            img = self.images[ref] = Image(f"sha256:{uuid.uuid5(uuid.NAMESPACE_URL, ref).hex * 2}", [ref])
        return img.id

    async def image_status(self, ref: str) -> Image | None:
        return self.images.get(ref) or next((i for i in self.images.values() if i.id == ref), None)

    async def list_images(self) -> list[Image]:
        return list(self.images.values())

    async def remove_image(self, ref: str) -> None:
        """By reference, or by id (every reference of it)."""
        self.images.pop(ref, None)
        for k in [k for k, i in self.images.items() if i.id == ref]:
            del self.images[k]
