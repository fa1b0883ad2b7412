"""The runtime interface: the CRI (``k8s.io/cri-api`` RuntimeService and ImageService) as
Python types. The agent speaks only this; :mod:`.fake` and :mod:`.runc` implement it.

Times are Unix epoch seconds as floats (0.0 = not yet). A pod sandbox is what the pod's
containers share: here its network namespace (there is no pause container), its DNS and hosts
files and its cgroup parent. The runtime merges a container's ``command``/``args`` with the
image's entrypoint and cmd as Kubernetes defines (kubelet passes them through unchanged).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "STDERR",
    "STDOUT",
    "ContainerConfig",
    "ContainerNotFoundError",
    "ContainerState",
    "ContainerStats",
    "ContainerStatus",
    "CreateContainerError",
    "DNSConfig",
    "ExecResult",
    "Image",
    "ImageNotFoundError",
    "ImagePullError",
    "ImageService",
    "Mount",
    "PodNetwork",
    "PortMapping",
    "RegistryAuth",
    "Resources",
    "RunContainerError",
    "Runtime",
    "RuntimeServiceError",
    "RuntimeVersion",
    "SandboxConfig",
    "SandboxError",
    "SandboxNotFoundError",
    "SandboxState",
    "SandboxStatus",
    "Security",
    "StreamOptions",
    "StreamSession",
]


# --------------------------------------------------------------------------- errors
# The agent turns these into the waiting reasons kubectl users know.


class RuntimeServiceError(Exception):
    """A runtime call failed; the message is what the pod's status and events show."""


class SandboxError(RuntimeServiceError):
    """The sandbox (network namespace, CNI) could not be set up: ``FailedCreatePodSandBox``."""


class SandboxNotFoundError(RuntimeServiceError):
    pass


class ContainerNotFoundError(RuntimeServiceError):
    pass


class ImageNotFoundError(RuntimeServiceError):
    """The image is not on the node (and was not pulled): ``ErrImageNeverPull`` or a reason to pull."""


class ImagePullError(RuntimeServiceError):
    """Pulling failed (no such image, no registry, refused credentials): ``ErrImagePull``."""


class CreateContainerError(RuntimeServiceError):
    """The container could not be created (bad bundle, missing mount source): ``CreateContainerError``."""


class RunContainerError(RuntimeServiceError):
    """The container was created but would not start (no such executable): ``RunContainerError``."""


# --------------------------------------------------------------------------- sandboxes


class SandboxState(enum.StrEnum):
    READY = "SANDBOX_READY"
    NOTREADY = "SANDBOX_NOTREADY"


@dataclass(frozen=True, slots=True)
class PortMapping:
    """A ``hostPort``: traffic to ``host_ip:host_port`` goes to the pod's ``container_port``."""

    container_port: int
    host_port: int
    protocol: str = "TCP"  # TCP, UDP, SCTP
    host_ip: str = ""


@dataclass(frozen=True, slots=True)
class DNSConfig:
    """What goes into the pod's ``/etc/resolv.conf``; empty means the node's own."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CgroupResources:
    """What kubelet's ``ResourceConfig`` sets on one of its own cgroups, a pod's or the pods' (None:
    left as it is)."""

    memory: int | None = None  # bytes; 0 or less: unlimited
    cpu_shares: int | None = None
    cpu_quota: int | None = None  # microseconds a period; None or 0 or less with a period: unlimited
    cpu_period: int | None = None  # microseconds
    pids: int | None = None  # the most processes; -1 or 0: unlimited


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    name: str  # the pod's name
    namespace: str
    uid: str
    attempt: int = 0
    hostname: str = ""  # default: the pod's name
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    log_directory: str = ""  # the pod's log dir; containers' log paths are relative to it
    dns: DNSConfig | None = None  # None: the node's resolv.conf
    port_mappings: tuple[PortMapping, ...] = ()
    host_network: bool = False
    host_pid: bool = False  # the node's PID namespace for every container (hostPID)
    host_ipc: bool = False  # the node's IPC namespace (hostIPC)
    share_pid: bool = False  # one PID namespace for the pod's containers (shareProcessNamespace)
    host_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (ip, hostnames) for /etc/hosts
    cgroup_parent: str = ""  # e.g. "kubepods/burstable/pod<uid>"
    # the pod cgroup's own limits (kubelet's ResourceConfigForPod; CRI's LinuxPodSandboxConfig.resources)
    resources: CgroupResources | None = None
    sysctls: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SandboxStatus:
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    state: SandboxState
    created_at: float
    ips: tuple[str, ...] = ()  # the pod's addresses, IPv4 first
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    netns_path: str = ""  # "" for host network


# --------------------------------------------------------------------------- containers


class ContainerState(enum.StrEnum):
    CREATED = "CONTAINER_CREATED"
    RUNNING = "CONTAINER_RUNNING"
    EXITED = "CONTAINER_EXITED"
    UNKNOWN = "CONTAINER_UNKNOWN"


@dataclass(frozen=True, slots=True)
class Mount:
    container_path: str
    host_path: str
    readonly: bool = False
    propagation: str = ""  # "", "HostToContainer", "Bidirectional"


@dataclass(frozen=True, slots=True)
class Resources:
    """The cgroup settings kubelet derives from requests and limits (kubelet's
    ``LinuxContainerResources``)."""

    cpu_shares: int | None = None  # from the cpu request: milli * 1024 / 1000, at least 2
    cpu_period: int | None = None  # 100000 us when there is a cpu limit
    cpu_quota: int | None = None  # from the cpu limit: milli * period / 1000
    memory_limit: int | None = None  # bytes, from the memory limit
    pids_limit: int | None = None
    oom_score_adj: int | None = None


@dataclass(frozen=True, slots=True)
class Security:
    run_as_user: int | None = None  # None: the image's user
    run_as_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    privileged: bool = False
    readonly_rootfs: bool = False
    capabilities_add: tuple[str, ...] = ()  # "NET_ADMIN" or "CAP_NET_ADMIN"
    capabilities_drop: tuple[str, ...] = ()  # "ALL" drops every one
    no_new_privs: bool = False  # allowPrivilegeEscalation: false


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    name: str
    image: str  # as the pod names it; the runtime resolves it in its image store
    attempt: int = 0  # the restart count this container will have
    command: tuple[str, ...] = ()  # overrides the image's entrypoint (and drops its cmd)
    args: tuple[str, ...] = ()  # overrides the image's cmd
    env: tuple[tuple[str, str], ...] = ()  # already expanded by the agent; merged over the image's
    working_dir: str = ""
    mounts: tuple[Mount, ...] = ()
    log_path: str = ""  # relative to the sandbox's log_directory, e.g. "app/0.log"
    tty: bool = False
    stdin: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    security: Security = field(default_factory=Security)
    stop_signal: str = ""  # "" : the image's, else SIGTERM
    # the name of a running container of the same sandbox whose PID namespace this one joins
    # (an ephemeral container's ``targetContainerName``: ``kubectl debug --target``)
    pid_namespace_of: str = ""


@dataclass(slots=True)
class ContainerStatus:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    image: str  # the reference the pod gave
    image_ref: str  # the image's id (sha256:...) or digest reference
    state: ContainerState
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # "Completed", "Error", "OOMKilled", "ContainerCannotRun"
    message: str = ""
    log_path: str = ""  # absolute
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Which of a streaming exec's or attach's streams the client wants (kubelet's
    ``remotecommand`` options); ``tty`` merges stderr into stdout, as a terminal does."""

    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


STDOUT = 1
STDERR = 2


@runtime_checkable
class StreamSession(Protocol):
    """A running exec (or an attach to a container's own process), with its streams.

    ``read`` gives ``(STDOUT | STDERR, bytes)`` as output comes and ``None`` once every output
    stream has ended; ``wait`` then gives the exec's exit code (``None`` for an attach: the
    container's process goes on). ``close`` ends it: an exec still running is killed with what
    it started, and every descriptor is released; it may be called more than once."""

    async def read(self) -> tuple[int, bytes] | None: ...
    async def write(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...
    def resize(self, width: int, height: int) -> None: ...
    async def wait(self) -> int | None: ...
    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ContainerStats:
    timestamp: float
    cpu_usage_core_nanoseconds: int
    memory_working_set_bytes: int
    memory_usage_bytes: int = 0
    rss_bytes: int = 0
    processes: int = 0  # tasks in the cgroup (pids.current)


# --------------------------------------------------------------------------- images


@dataclass(frozen=True, slots=True)
class RegistryAuth:
    username: str = ""
    password: str = ""
    identity_token: str = ""


@dataclass(slots=True)
class Image:
    id: str  # sha256:<config digest>
    repo_tags: list[str] = field(default_factory=list)  # docker.io/library/busybox:1.36
    repo_digests: list[str] = field(default_factory=list)  # docker.io/library/busybox@sha256:...
    size: int = 0  # bytes on disk
    # the image config's process defaults
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)  # "K=V"
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""


@dataclass(frozen=True, slots=True)
class RuntimeVersion:
    runtime_name: str
    runtime_version: str
    runtime_api_version: str = "v1"


# --------------------------------------------------------------------------- the interface


@runtime_checkable
class Runtime(Protocol):
    """RuntimeService + ImageService. Every call is a coroutine; a runtime does its blocking
    work (runc, CNI plugins, unpacking) off the event loop. Calls on things that are already
    gone are no-ops for stop/remove, and ``None`` for status."""

    name: str

    async def version(self) -> RuntimeVersion: ...

    # sandboxes
    async def run_pod_sandbox(self, config: SandboxConfig) -> str: ...
    async def stop_pod_sandbox(self, sandbox_id: str) -> None: ...  # kills its containers, tears down its network
    async def remove_pod_sandbox(self, sandbox_id: str) -> None: ...
    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus | None: ...
    async def list_pod_sandboxes(self) -> list[SandboxStatus]: ...

    # containers
    async def create_container(self, sandbox_id: str, config: ContainerConfig, sandbox: SandboxConfig) -> str: ...
    async def start_container(self, container_id: str) -> None: ...
    async def stop_container(self, container_id: str, timeout: float) -> None: ...  # stop signal, SIGKILL after timeout
    async def remove_container(self, container_id: str) -> None: ...
    async def container_status(self, container_id: str) -> ContainerStatus | None: ...
    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: ...
    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float = 0) -> ExecResult: ...
    # a streaming exec (``kubectl exec``) and an attach (``kubectl attach``); both raise
    # ContainerNotFoundError for a container not there and RuntimeServiceError for one not running
    async def exec_stream(self, container_id: str, cmd: Sequence[str], opts: StreamOptions) -> StreamSession: ...
    async def attach(self, container_id: str, opts: StreamOptions) -> StreamSession: ...
    async def container_stats(self, container_id: str) -> ContainerStats | None: ...
    # CRI's ListContainerStats: the stats of each of ``container_ids`` that has them, read together
    async def list_container_stats(self, container_ids: Sequence[str]) -> dict[str, ContainerStats]: ...
    # the directory of the container's writable layer on the node (what it wrote to its root
    # filesystem), None when it has none there (the eviction manager measures it)
    async def writable_layer(self, container_id: str) -> str | None: ...

    # images
    async def pull_image(self, ref: str, auth: RegistryAuth | None = None) -> str: ...  # the image id
    async def image_status(self, ref: str) -> Image | None: ...
    async def list_images(self) -> list[Image]: ...
    async def remove_image(self, ref: str) -> None: ...


# --------------------------------------------------------------------------- the runc runtime's parts


@runtime_checkable
class ImageService(Protocol):
    """The node's image store (``kubelet/images.py``): what the runc runtime pulls from and
    starts containers on. Images are unpacked once; :meth:`rootfs` is that read-only tree,
    which containers use as the lower layer of an overlayfs (starting a pod copies nothing)."""

    async def pull_image(self, ref: str, auth: RegistryAuth | None = None) -> str: ...
    async def image_status(self, ref: str) -> Image | None: ...  # by reference or id
    async def list_images(self) -> list[Image]: ...
    async def remove_image(self, ref: str) -> None: ...
    def rootfs(self, image_id: str) -> str: ...


@runtime_checkable
class PodNetwork(Protocol):
    """Pod networking (``kubelet/cni.py``): a network namespace per sandbox, set up by the CNI
    plugins. ``create`` returns the namespace's path and the pod's addresses (IPv4 first)."""

    async def create(self, sandbox_id: str, config: SandboxConfig) -> tuple[str, tuple[str, ...]]: ...
    async def destroy(self, sandbox_id: str, netns_path: str, config: SandboxConfig) -> None: ...
