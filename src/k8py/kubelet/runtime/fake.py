"""The ``fake`` runtime: runs nothing (kubemark's hollow kubelet). Sandboxes and containers are
records, so the agent's real code (pod workers, status, node registration) serves simulated
nodes at scale: a started container is Running at once; one whose pod carries the annotation
``k8py.io/fake-exit-code`` exits with that code as soon as it starts (for Jobs and restart
tests). Images "pull" instantly unless named in :attr:`FakeRuntime.missing_images`. A test can
choose exit codes per container instead (``exit_code=``: asked at each create; None falls back
to the annotation).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Sequence

from k8py.kubelet.runtime.types import (
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
    RuntimeVersion,
    SandboxConfig,
    SandboxNotFoundError,
    SandboxState,
    SandboxStatus,
)

__all__ = ["EXIT_CODE_ANNOTATION", "FakeRuntime"]

EXIT_CODE_ANNOTATION = "k8py.io/fake-exit-code"


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

    async def container_stats(self, container_id: str) -> ContainerStats | None:
        if container_id not in self.containers:
            return None
        return ContainerStats(time.time(), 0, 0)

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
        self.images.pop(ref, None)
