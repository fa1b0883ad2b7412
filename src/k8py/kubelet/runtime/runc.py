"""The runc runtime: real containers, each watched by its own conmon, all state on disk.

Layout under ``root`` (the agent's ``<data-dir>/agent/containers``)::

    sandboxes/<id>/config.json   the SandboxConfig
                   status.json   state, created_at, netns path, ips, whether the network is up,
                                 the paths below that the pod's containers join, the pause's pid
                   hosts resolv.conf hostname     bind-mounted into every container of the pod
                   ipcns utsns   the pod's IPC and UTS namespaces (bind mounts of nsfs)
                   shm/          the pod's /dev/shm (a tmpfs), bind-mounted into its containers
    containers/<id>/config.json  the OCI bundle's spec (:mod:`.oci`); rootfs/ is an overlayfs of
                                 the image's unpacked tree (lower) and upper/ + work/ here
                   meta.json     the container's identity and ContainerConfig, written at create
                   pid conmon.pid   the container's init and its conmon
                   exits/<id>    conmon writes the exit code here when the container ends
                   oom           conmon creates it when the OOM killer struck in the cgroup
                   started       when ``runc start`` returned
                   start_error   why ``runc start`` failed (the container is ContainerCannotRun)
    runc/                        ``runc --root``: runc's own state

A sandbox is a network namespace (made by the :class:`PodNetwork`), an IPC namespace (unless
``hostIPC``) and a UTS namespace holding the pod's hostname (unless host network), each kept by
a bind mount as ``ip netns add`` keeps a network namespace, a ``/dev/shm`` tmpfs, plus those three
files; every container of the pod joins them, as kube's join the pause container's. There is no
pause container (a ``catatonit`` pause only for a pod whose containers share one PID namespace).

Each container is created by ``conmon``, which runs ``runc create``, reports the result on its
sync pipe (``_OCI_SYNCPIPE``: ``{"data": pid}`` or ``{"data": -1, "message": runc's stderr}``),
then holds the container's stdout and stderr, writes them to the CRI log file (``k8s-file``:
``<RFC3339Nano> stdout F line``), and writes the exit code when the container ends. conmon
double-forks into its own session and is moved into the cgroup ``/<cgroup_root>/conmon`` before
it forks (it waits on ``_OCI_STARTPIPE`` for that), so it outlives the agent, its signals and
its cgroup: an agent restart (a new :class:`RuncRuntime` on the same ``root``) finds every
container where it was, running ones still running, and each sandbox's namespaces with them.
Containers' cgroups are ``/<cgroup_parent or cgroup_root>/<container id>`` (cgroupfs style).

A container's state comes from files and ``/proc``, not from ``runc state`` (a relist must not
start a process per container): an exit file means EXITED; else a live init process means
CREATED while it is still ``runc init`` (waiting for ``runc start``) and RUNNING after.

Every blocking step (runc, conmon, mount, file reads in bulk) runs in a subprocess awaited by
asyncio or in a worker thread; waiting for a container to stop polls its exit file with a short
interval up to a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import logging
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from k8py.kubelet import proc
from k8py.kubelet.runtime import execd, oci
from k8py.kubelet.runtime.cgroups import Cgroups
from k8py.kubelet.runtime.runcstream import ConmonAttach, RuncExec
from k8py.kubelet.runtime.types import (
    CgroupResources,
    ContainerConfig,
    ContainerNotFoundError,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    CreateContainerError,
    DNSConfig,
    ExecResult,
    Image,
    ImageNotFoundError,
    ImageService,
    PodNetwork,
    PortMapping,
    RegistryAuth,
    RunContainerError,
    RuntimeServiceError,
    RuntimeVersion,
    SandboxConfig,
    SandboxError,
    SandboxNotFoundError,
    SandboxState,
    SandboxStatus,
    StreamOptions,
    StreamSession,
)
from k8py.kubelet.spec import PODS_CGROUP

__all__ = ["RuncRuntime", "runc_message"]

_T = TypeVar("_T")

log = logging.getLogger(__name__)

# How long conmon may take to report `runc create`, runc commands to answer, a killed container
# to be reported gone, and how often a wait looks.
CREATE_TIMEOUT = 60.0
RUNC_TIMEOUT = 60.0
KILL_WAIT = 10.0
POLL_INTERVAL = 0.05
DEFAULT_LOG_SIZE_MAX = 10 * 1024 * 1024  # kubelet's containerLogMaxSize default
# The exit code reported for a container whose start failed (docker and CRI-O use 128).
CANNOT_RUN_EXIT_CODE = 128

_MSG = re.compile(r'\bmsg="((?:[^"\\]|\\.)*)"')
_GO_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}


def runc_message(stderr: str) -> str:
    """runc's error out of its stderr: the ``msg="..."`` of its logrus lines, unquoted, plus any
    plain line; e.g. ``runc create failed: unable to start container process: exec: "nope":
    executable file not found in $PATH``."""
    parts: list[str] = []
    for line in stderr.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _MSG.search(line)
        if m is None:
            parts.append(line)
        elif "level=warning" not in line and "level=info" not in line and "level=debug" not in line:
            parts.append(re.sub(r"\\(.)", lambda e: _GO_ESCAPES.get(e.group(1), e.group(1)), m.group(1)))
    return "; ".join(parts) or stderr.strip()


# --------------------------------------------------------------------------- small file helpers


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _read_json(path: str | Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("unreadable %s: %s", path, e)
        return None


class _JsonCache:
    """Parsed JSON state files, re-read only when the file changed (its inode, size or mtime):
    the agent lists sandboxes and containers every second and on every pod sync, and reading
    and parsing every state file each time made that cost grow with the square of the pods."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[tuple[int, int, int], Any]] = {}

    def read(self, path: str | Path, copy_: bool = True) -> Any:
        """The parsed file (a private copy, unless ``copy_`` is false: then the caller must
        not change it), or None when it is not there."""
        key = str(path)
        try:
            st = os.stat(key)
        except FileNotFoundError:
            self._items.pop(key, None)
            return None
        except OSError as e:
            log.warning("unreadable %s: %s", path, e)
            return None
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        hit = self._items.get(key)
        if hit is not None and hit[0] == sig:
            return copy.deepcopy(hit[1]) if copy_ else hit[1]
        value = _read_json(path)
        if value is not None:
            self._items[key] = (sig, value)
            if len(self._items) > 50_000:  # bounded: forget the oldest
                self._items.pop(next(iter(self._items)))
        return copy.deepcopy(value) if copy_ else value


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _read_pid(path: Path) -> int:
    text = _read_text(path)
    try:
        return int((text or "").strip() or 0)
    except ValueError:
        return 0


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a live process, None when there is none."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _alive(pid: int, start_time: int = 0) -> bool:
    st = _proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return not start_time or st[1] == start_time


def _names(directory: Path) -> list[str]:
    """The entries of a state directory, sorted; none when it is not there."""
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def _running_init_alive(facts: dict[str, Any], pid: int, start_time: int) -> bool:
    """Whether the init of a container that is running for good still runs: through a pidfd
    opened once (it becomes readable when the process exits; one poll instead of reading
    ``/proc/<pid>/stat`` for every container at every relist), else :func:`_alive`."""
    fd = facts.get("pidfd")
    if fd is None:
        if not _alive(pid, start_time):
            return False
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # a kernel without pidfds (< 5.3): read /proc each time
            facts["pidfd"] = -1
            return True
        if not _alive(pid, start_time):  # the pid ended (and was reused) before it was opened
            os.close(fd)
            return False
        if facts.setdefault("pidfd", fd) != fd:  # another thread opened one first
            os.close(fd)
            fd = facts["pidfd"]
    if fd < 0:
        return _alive(pid, start_time)
    p = select.poll()
    p.register(fd, select.POLLIN)
    return not p.poll(0)


def _close_pidfd(facts: dict[str, Any]) -> None:
    fd = facts.pop("pidfd", None)
    if fd is not None and fd >= 0:
        os.close(fd)


def _is_runc_init(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return len(argv) >= 2 and argv[1] == b"init" and os.path.basename(argv[0]).startswith(b"runc")


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (found through ``/proc``'s parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                text = f.read()
            ppid = int(text[text.rfind(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    for p in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def _conmon_alive(d: Path, container_id: str) -> bool:
    """Whether the conmon of the container (pid in ``d/conmon.pid``) still runs: the pid lives
    and its command line names the container (a reused pid does not)."""
    pid = _read_pid(d / "conmon.pid")
    if not _alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return container_id.encode() in f.read().split(b"\0")
    except OSError:
        return False


async def _finished(aw: Awaitable[_T]) -> _T:
    """``await aw``, which goes on to its end when the caller is cancelled (the cancellation is
    raised after): a mount it makes is there when the caller's clean-up looks for it."""
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


def _check_pod_namespaces(sb_status: Mapping[str, Any]) -> None:
    """CreateContainerError when a namespace or the ``/dev/shm`` of the pod that its containers
    join is no longer mounted (the node restarted, or someone unmounted it): a container there
    would not share them, as one cannot join a dead pause container in kube."""
    for key, what in (("ipc_ns_path", "IPC namespace"), ("uts_ns_path", "UTS namespace"), ("shm_path", "/dev/shm")):
        path = sb_status.get(key) or ""
        if path and path != "/dev/shm" and not os.path.ismount(path):
            raise CreateContainerError(f"the pod's {what} is gone ({path} is no longer mounted)")


def _sandbox_config_to_json(config: SandboxConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _sandbox_config_from_json(d: Mapping[str, Any]) -> SandboxConfig:
    dns = d.get("dns")
    return SandboxConfig(
        name=d["name"],
        namespace=d["namespace"],
        uid=d["uid"],
        attempt=int(d.get("attempt", 0)),
        hostname=d.get("hostname", ""),
        labels=dict(d.get("labels") or {}),
        annotations=dict(d.get("annotations") or {}),
        log_directory=d.get("log_directory", ""),
        dns=DNSConfig(
            servers=tuple(dns.get("servers", ())),
            searches=tuple(dns.get("searches", ())),
            options=tuple(dns.get("options", ())),
        )
        if dns is not None
        else None,
        port_mappings=tuple(PortMapping(**p) for p in d.get("port_mappings") or ()),
        host_network=bool(d.get("host_network", False)),
        host_pid=bool(d.get("host_pid", False)),
        host_ipc=bool(d.get("host_ipc", False)),
        share_pid=bool(d.get("share_pid", False)),
        host_aliases=tuple((ip, tuple(names)) for ip, names in d.get("host_aliases") or ()),
        cgroup_parent=d.get("cgroup_parent", ""),
        resources=CgroupResources(**d["resources"]) if d.get("resources") else None,
        sysctls=dict(d.get("sysctls") or {}),
    )


class _Proc:
    """The outcome of one command."""

    __slots__ = ("code", "stderr", "stdout")

    def __init__(self, code: int, stdout: bytes, stderr: bytes) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    @property
    def message(self) -> str:
        return (
            runc_message(self.stderr.decode(errors="replace")) or self.stdout.decode(errors="replace").strip()
        )


def _not_there(message: str) -> bool:
    """runc's answers for a container that is already gone or already stopped."""
    m = message.lower()
    return any(s in m for s in ("does not exist", "not running", "container not found", "no such process"))


# --------------------------------------------------------------------------- the runtime


CAP_SYS_RESOURCE = 24


def _min_oom_score_adj() -> int | None:
    """None when this process may give any OOM score adjustment; else its own (a process
    without CAP_SYS_RESOURCE, e.g. in a container, cannot lower it, and runc would fail)."""
    try:
        with open("/proc/self/status") as f:
            cap_eff = next((int(line.split()[1], 16) for line in f if line.startswith("CapEff:")), 0)
        if cap_eff & (1 << CAP_SYS_RESOURCE):
            return None
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _require_running(container_id: str, status: ContainerStatus | None) -> ContainerStatus:
    """``status`` of a running container, else the runtime's error for exec and attach."""
    if status is None:
        raise ContainerNotFoundError(f"container {container_id} not found")
    if status.state != ContainerState.RUNNING:
        raise RuntimeServiceError(f"container {container_id[:12]} is not running ({status.state.value})")
    return status


class RuncRuntime:
    """The :class:`~k8py.kubelet.runtime.types.Runtime` that runs containers with runc + conmon."""

    name = "runc"

    def __init__(
        self,
        root: str,
        images: ImageService,
        network: PodNetwork,
        *,
        runc: str = "runc",
        conmon: str = "conmon",
        cgroup_root: str = "k8py",
        log_size_max: int = DEFAULT_LOG_SIZE_MAX,
        resolv_conf: str = "/etc/resolv.conf",
        hosts: str = "/etc/hosts",
        pod_pids_limit: int = -1,
    ) -> None:
        self.root = Path(root)
        # kubelet's --pod-max-pids: the pids.max of each pod's cgroup (-1: unlimited)
        self.pod_pids_limit = pod_pids_limit
        self.images = images
        self.network = network
        self.runc = shutil.which(runc) or runc
        self.conmon = shutil.which(conmon) or conmon
        self.cgroup_root = cgroup_root.strip("/")
        self.log_size_max = log_size_max
        self.node_resolv_conf = resolv_conf
        self.node_hosts = hosts
        self.runc_root = self.root / "runc"
        self.conmon_cgroup = f"/{self.cgroup_root}/conmon"
        self._sandboxes = self.root / "sandboxes"
        self._containers = self.root / "containers"
        self._cgroups: Cgroups | None = None
        self._pauses: dict[str, subprocess.Popen[bytes]] = {}  # sandbox id -> its pause (unshare), ours to reap
        self._execd = execd.ExecService()  # runs exec_sync's runc exec (exec probes and hooks)
        self._locks: dict[str, asyncio.Lock] = {}
        self._version: RuntimeVersion | None = None
        self._json = _JsonCache()
        self._facts: dict[str, dict[str, Any]] = {}  # container id -> what does not change
        self._sandbox_configs: dict[str, tuple[Any, SandboxConfig]] = {}  # id -> (its JSON, parsed)
        # this boot of the machine: a sandbox made in another is NOTREADY (see _sandbox_state)
        self._boot_id = (_read_text(Path("/proc/sys/kernel/random/boot_id")) or "").strip()

    # ------------------------------------------------------------------ plumbing

    @property
    def cgroups(self) -> Cgroups:
        if self._cgroups is None:
            self._cgroups = Cgroups.detect()
        return self._cgroups

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _ensure_dirs(self) -> None:
        for d in (self._sandboxes, self._containers, self.runc_root):
            d.mkdir(parents=True, exist_ok=True)

    async def _run(self, *argv: str, timeout: float = RUNC_TIMEOUT) -> _Proc:
        """Run a command to its end off the event loop; a command that outlives ``timeout`` is
        killed and reported."""
        try:
            r = await proc.run(argv, timeout=timeout)
        except TimeoutError:
            raise RuntimeServiceError(f"{' '.join(argv[:3])} ... did not finish within {timeout:g}s") from None
        except OSError as e:
            raise RuntimeServiceError(f"cannot run {argv[0]}: {e}") from e
        return _Proc(r.returncode, r.stdout, r.stderr)

    async def _runc_cmd(self, *args: str, timeout: float = RUNC_TIMEOUT) -> _Proc:
        return await self._run(self.runc, "--root", str(self.runc_root), *args, timeout=timeout)

    # ------------------------------------------------------------------ version, prerequisites

    async def version(self) -> RuntimeVersion:
        if self._version is None:
            p = await self._run(self.runc, "--version")
            if p.code != 0:
                raise RuntimeServiceError(f"runc --version failed: {p.message}")
            first = p.stdout.decode(errors="replace").splitlines()[0] if p.stdout else ""
            self._version = RuntimeVersion("runc", first.removeprefix("runc version").strip() or first)
        return self._version

    def missing(self) -> list[str]:
        """What this node lacks to run containers, each with how to get it (empty: ready)."""
        out: list[str] = []
        if os.geteuid() != 0:
            out.append(
                "root: the runc runtime mounts overlayfs and makes namespaces and cgroups; run the agent as root"
            )
        if not os.access(self.runc, os.X_OK):
            out.append(
                f"runc: {self.runc!r} not found; install Debian's runc (apt-get install runc, or scripts/install)"
            )
        if not os.access(self.conmon, os.X_OK):
            out.append(
                f"conmon: {self.conmon!r} not found; install Debian's conmon (apt-get install conmon, or scripts/install)"
            )
        try:
            filesystems = Path("/proc/filesystems").read_text()
        except OSError:
            filesystems = ""
        if not re.search(r"\boverlay\b", filesystems):
            out.append("overlayfs: the kernel has no overlay filesystem; load it with `modprobe overlay`")
        try:
            self._ensure_dirs()
            if not os.access(self.root, os.W_OK):
                out.append(f"state directory {self.root}: not writable")
        except OSError as e:
            out.append(f"state directory {self.root}: {e}")
        return out

    # ------------------------------------------------------------------ sandboxes

    def _sandbox_dir(self, sandbox_id: str) -> Path:
        return Path(self._sandbox_path(sandbox_id))

    def _sandbox_path(self, sandbox_id: str, name: str = "") -> str:
        """The sandbox's directory, or a file in it, as a string: the once-a-second relist reads
        two files per sandbox, and building them with pathlib cost more than reading them."""
        if not sandbox_id or "/" in sandbox_id or sandbox_id in (".", ".."):
            raise SandboxNotFoundError(f"invalid sandbox id {sandbox_id!r}")
        return f"{self._sandboxes}/{sandbox_id}/{name}" if name else f"{self._sandboxes}/{sandbox_id}"

    def _load_sandbox(self, sandbox_id: str, mutable: bool = True) -> tuple[SandboxConfig, dict[str, Any]] | None:
        # only read: parsed into a dataclass
        config = self._json.read(self._sandbox_path(sandbox_id, "config.json"), copy_=False)
        status = self._json.read(self._sandbox_path(sandbox_id, "status.json"), copy_=mutable)
        if config is None or status is None:
            return None
        # the file is written once; its parse (a frozen dataclass) is kept while the JSON cache
        # hands out the same object: the agent lists every sandbox every second
        parsed = self._sandbox_configs.get(sandbox_id)
        if parsed is None or parsed[0] is not config:
            parsed = self._sandbox_configs[sandbox_id] = (config, _sandbox_config_from_json(config))
        return parsed[1], status

    def _sandbox_status_sync(self, sandbox_id: str) -> SandboxStatus | None:
        loaded = self._load_sandbox(sandbox_id, mutable=False)
        if loaded is None:
            return None
        config, st = loaded
        if st.get("creating"):
            return None  # run_pod_sandbox has not returned it yet
        return SandboxStatus(
            id=sandbox_id,
            name=config.name,
            namespace=config.namespace,
            uid=config.uid,
            attempt=config.attempt,
            state=self._sandbox_state(st),
            created_at=float(st.get("created_at", 0.0)),
            ips=tuple(st.get("ips") or ()),
            labels=dict(config.labels),
            annotations=dict(config.annotations),
            netns_path=st.get("netns_path", ""),
        )

    def _sandbox_state(self, st: Mapping[str, Any]) -> SandboxState:
        """The state in the sandbox's status, but NOTREADY for one made before the machine last
        booted: its namespaces, network and pause went with that boot, as a pause container dies
        with it in kube, and the pod worker makes the pod a new sandbox. (A status without a boot
        id, from before it was recorded, is taken as this boot's.)"""
        state = SandboxState(st.get("state", SandboxState.NOTREADY))
        if state == SandboxState.READY and st.get("boot_id", self._boot_id) != self._boot_id:
            return SandboxState.NOTREADY
        return state

    async def run_pod_sandbox(self, config: SandboxConfig) -> str:
        sandbox_id = secrets.token_hex(32)
        d = self._sandbox_dir(sandbox_id)
        status: dict[str, Any] = {
            "state": SandboxState.NOTREADY.value,
            "created_at": time.time(),
            "netns_path": "",
            "ips": [],
            "network_up": False,
            "creating": True,
            "boot_id": self._boot_id,
        }

        def prepare() -> None:
            self._ensure_dirs()
            d.mkdir()
            _write_json(d / "config.json", _sandbox_config_to_json(config))
            _write_json(d / "status.json", status)

        await asyncio.to_thread(prepare)
        res = config.resources or CgroupResources()
        if self.pod_pids_limit > 0:
            res = dataclasses.replace(res, pids=self.pod_pids_limit)
        if config.cgroup_parent and res != CgroupResources():
            # kubelet's pod cgroup with its own limits (ResourceConfigForPod, --pod-max-pids), made
            # before the containers' go under it
            errs = await asyncio.to_thread(self.cgroups.update, "/" + config.cgroup_parent.strip("/"), res)
            if errs:
                log.warning("pod %s/%s: cannot set its cgroup's limits: %s", config.namespace, config.name,
                            "; ".join(errs))
        try:
            if config.share_pid:
                status.update(await self._start_pause(sandbox_id, config))
                await asyncio.to_thread(_write_json, d / "status.json", status)
            status.update(await self._make_pod_namespaces(d, config))
            await asyncio.to_thread(_write_json, d / "status.json", status)
            if not config.host_network:
                try:
                    netns, ips = await self.network.create(sandbox_id, config)
                except SandboxError:
                    raise
                except Exception as e:
                    raise SandboxError(f"setting up the pod network: {e}") from e
                status.update(netns_path=netns, ips=list(ips), network_up=True)
                await asyncio.to_thread(_write_json, d / "status.json", status)
            await asyncio.to_thread(self._write_sandbox_files, d, config, tuple(status["ips"]))
        except BaseException:
            await self._undo_sandbox(sandbox_id, config, status)
            raise
        status["state"] = SandboxState.READY.value
        del status["creating"]
        await asyncio.to_thread(_write_json, d / "status.json", status)
        log.info(
            "sandbox %s for pod %s/%s ready (netns %s)",
            sandbox_id[:12],
            config.namespace,
            config.name,
            status["netns_path"] or "host",
        )
        return sandbox_id

    async def _undo_sandbox(self, sandbox_id: str, config: SandboxConfig, status: Mapping[str, Any]) -> None:
        await self._stop_pause(sandbox_id, status)
        try:
            await self._release_pod_namespaces(self._sandbox_dir(sandbox_id))
        except Exception as e:  # noqa: BLE001 - the original error is what the caller must see
            log.warning("sandbox %s: releasing its namespaces after a failed start: %s", sandbox_id[:12], e)
        if status.get("network_up"):
            try:
                await self.network.destroy(sandbox_id, status["netns_path"], config)
            except Exception as e:  # noqa: BLE001 - the original error is what the caller must see
                log.warning(
                    "sandbox %s: tearing down its network after a failed start: %s", sandbox_id[:12], e
                )
        await asyncio.to_thread(shutil.rmtree, self._sandbox_dir(sandbox_id), True)

    def _write_sandbox_files(self, d: Path, config: SandboxConfig, ips: tuple[str, ...]) -> None:
        node_hosts = (_read_text(Path(self.node_hosts)) or "") if config.host_network else ""
        (d / "hosts").write_text(oci.hosts_file(config, ips, node_hosts))
        resolv, warning = oci.resolv_conf(
            config.dns, _read_text(Path(self.node_resolv_conf)) or "", config.host_network
        )
        if warning:
            log.warning("pod %s/%s: %s", config.namespace, config.name, warning)
        (d / "resolv.conf").write_text(resolv)
        hostname = oci.pod_hostname(config)
        if config.host_network:
            hostname = os.uname().nodename
        (d / "hostname").write_text(hostname + "\n")

    async def _make_pod_namespaces(self, d: Path, config: SandboxConfig) -> dict[str, str]:
        """What kube's pause container holds for the pod's containers to join: an IPC namespace
        (unless ``hostIPC``) and a UTS namespace given the pod's hostname (unless host network),
        made by util-linux's ``unshare --ipc=FILE --uts=FILE hostname NAME``, which bind-mounts
        each onto a file in the sandbox's directory: they need no process to live, and outlive an
        agent restart. Also the pod's ``/dev/shm``: a tmpfs there (the node's for ``hostIPC``), as
        containerd mounts one per sandbox. Their paths, for the sandbox's status."""
        files = oci.SandboxFiles(str(d))
        out: dict[str, str] = {}
        flags: list[str] = []
        if not config.host_ipc:
            flags.append(f"--ipc={files.ipc_ns}")
            out["ipc_ns_path"] = files.ipc_ns
        if not config.host_network:
            flags.append(f"--uts={files.uts_ns}")
            out["uts_ns_path"] = files.uts_ns
        if flags:
            unshare, hostname, true = shutil.which("unshare"), shutil.which("hostname"), shutil.which("true")
            if unshare is None or hostname is None or true is None:
                raise SandboxError("the pod's IPC and UTS namespaces need unshare (util-linux), hostname (Debian "
                                   "package hostname) and true (coreutils) on the node")

            def touch() -> None:  # unshare mounts onto files that exist
                for path in out.values():
                    Path(path).touch(exist_ok=False)

            await asyncio.to_thread(touch)
            # the uts namespace gets the pod's hostname once, here (containerd sets it on the pause)
            cmd = [hostname, oci.pod_hostname(config)] if not config.host_network else [true]
            p = await _finished(self._run(unshare, *flags, "--", *cmd))
            if p.code != 0:
                raise SandboxError(f"making the pod's namespaces (unshare {' '.join(flags)}): {p.message}")
        if config.host_ipc:
            # the node's (a node without one leaves each container its own tmpfs)
            if await asyncio.to_thread(os.path.isdir, "/dev/shm"):
                out["shm_path"] = "/dev/shm"
        else:
            await asyncio.to_thread(os.mkdir, files.shm)
            # containerd's sandbox shm: 64 MiB, what a container's own /dev/shm had
            p = await _finished(self._run("mount", "-t", "tmpfs", "-o", "nosuid,nodev,noexec,mode=1777,size=65536k",
                                          "shm", files.shm))
            if p.code != 0:
                raise SandboxError(f"mounting the pod's /dev/shm: {p.message}")
            out["shm_path"] = files.shm
        return out

    async def _release_pod_namespaces(self, d: Path) -> None:
        """The pod's namespaces and ``/dev/shm`` (:meth:`_make_pod_namespaces`) unmounted and their
        files removed: a namespace ends with its last process. Nothing there is fine."""
        files = oci.SandboxFiles(str(d))
        for path in (Path(files.ipc_ns), Path(files.uts_ns), Path(files.shm)):
            await self._unmount(path)

            def remove(path: Path = path) -> None:
                with contextlib.suppress(FileNotFoundError):
                    if path.is_dir():
                        path.rmdir()
                    else:
                        path.unlink()

            await asyncio.to_thread(remove)

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        async with self._lock(sandbox_id):
            loaded = await asyncio.to_thread(self._load_sandbox, sandbox_id)
            if loaded is None:
                return
            config, status = loaded
            ids = await asyncio.to_thread(self._container_ids, sandbox_id)
            # The agent has stopped them gracefully before; what is left is killed.
            results = await asyncio.gather(
                *(self.stop_container(cid, 0) for cid in ids), return_exceptions=True
            )
            status["state"] = SandboxState.NOTREADY.value
            await self._stop_pause(sandbox_id, status)
            await self._release_pod_namespaces(self._sandbox_dir(sandbox_id))
            if status.get("network_up"):
                await self.network.destroy(sandbox_id, status.get("netns_path", ""), config)
                status["network_up"] = False
            await asyncio.to_thread(_write_json, self._sandbox_dir(sandbox_id) / "status.json", status)
            for r in results:
                if isinstance(r, BaseException):
                    raise r

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        d = self._sandbox_dir(sandbox_id)
        if not d.exists():
            return
        await self.stop_pod_sandbox(sandbox_id)
        loaded = await asyncio.to_thread(self._load_sandbox, sandbox_id)
        async with self._lock(sandbox_id):
            for cid in await asyncio.to_thread(self._container_ids, sandbox_id):
                await self.remove_container(cid)
            # stop released them; again for a sandbox an agent left half made (no status to stop)
            await self._release_pod_namespaces(d)
            await asyncio.to_thread(shutil.rmtree, d, True)
        self._locks.pop(sandbox_id, None)
        self._sandbox_configs.pop(sandbox_id, None)
        if loaded is not None and loaded[0].cgroup_parent:
            # the pod's own cgroup (kubepods/<qos>/pod<uid>), which runc made as its containers'
            # parent: nothing of a removed pod stays behind
            busy = await asyncio.to_thread(self.cgroups.remove, ["/" + loaded[0].cgroup_parent.strip("/")])
            if busy:
                log.info("pod cgroup of sandbox %s still in use: %s", sandbox_id[:12], ", ".join(busy))

    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus | None:
        try:
            return await asyncio.to_thread(self._sandbox_status_sync, sandbox_id)
        except SandboxNotFoundError:
            return None

    async def list_pod_sandboxes(self) -> list[SandboxStatus]:
        def scan() -> list[SandboxStatus]:
            out = []
            for name in _names(self._sandboxes):
                st = self._sandbox_status_sync(name)
                if st is not None:
                    out.append(st)
            return out

        return await asyncio.to_thread(scan)

    # ------------------------------------------------------------------ containers: files

    def _container_dir(self, container_id: str) -> Path:
        return Path(self._container_path(container_id))

    def _container_path(self, container_id: str, name: str = "") -> str:
        """The container's directory, or a file in it, as a string (see :meth:`_sandbox_path`)."""
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise ContainerNotFoundError(f"invalid container id {container_id!r}")
        return f"{self._containers}/{container_id}/{name}" if name else f"{self._containers}/{container_id}"

    def _meta(self, container_id: str) -> dict[str, Any] | None:
        # read-only: nothing changes a meta read here (create writes its own)
        meta = self._json.read(self._container_path(container_id, "meta.json"), copy_=False)
        return meta if isinstance(meta, dict) else None

    def _container_ids(self, sandbox_id: str | None = None) -> list[str]:
        out = []
        for name in _names(self._containers):
            meta = self._meta(name)
            if meta is not None and (sandbox_id is None or meta.get("sandbox_id") == sandbox_id):
                out.append(name)
        return out

    def _exit_file(self, container_id: str) -> Path:
        return self._container_dir(container_id) / "exits" / container_id

    def _exited(self, container_id: str, meta: Mapping[str, Any]) -> bool:
        """Whether the container has ended: conmon wrote its exit code, or both the container's
        init and its conmon are gone (conmon killed; the exit code is lost)."""
        d = self._container_dir(container_id)
        if self._exit_file(container_id).exists():
            return True
        return not _alive(_read_pid(d / "pid"), int(meta.get("pid_start", 0))) and not _conmon_alive(
            d, container_id
        )

    def _status_sync(self, container_id: str) -> ContainerStatus | None:
        meta = self._meta(container_id)
        if meta is None or meta.get("creating"):
            return None  # create_container has not returned it yet
        config = meta.get("config", {})
        status = ContainerStatus(
            id=container_id,
            sandbox_id=meta["sandbox_id"],
            name=meta["name"],
            attempt=int(meta.get("attempt", 0)),
            image=meta["image"],
            image_ref=meta["image_ref"],
            state=ContainerState.UNKNOWN,
            created_at=float(meta.get("created_at", 0.0)),
            log_path=meta.get("log_path", ""),
            labels=dict(config.get("labels") or {}),
            annotations=dict(config.get("annotations") or {}),
        )
        facts = self._facts.setdefault(container_id, {})
        final = facts.get("final")
        if final is not None:  # an exited container never changes again
            return dataclasses.replace(final, labels=dict(final.labels), annotations=dict(final.annotations))
        # What does not change once known (the pids, the start time) is read once: the agent
        # lists every container every second.
        pid = facts.get("pid") or _read_pid(Path(self._container_path(container_id, "pid")))
        if pid > 0:
            facts["pid"] = pid
        if "started_at" not in facts:
            started = _read_text(Path(self._container_path(container_id, "started")))
            if started:
                with contextlib.suppress(ValueError):
                    facts["started_at"] = float(started)
        status.started_at = facts.get("started_at", 0.0)
        if facts.get("running"):
            init_alive = _running_init_alive(facts, pid, int(meta.get("pid_start", 0)))
        else:
            init_alive = _alive(pid, int(meta.get("pid_start", 0)))
        if init_alive and facts.get("running"):
            status.state = ContainerState.RUNNING
            return status
        d = self._container_dir(container_id)
        start_error = None if facts.get("running") else _read_text(d / "start_error")
        exit_file = self._exit_file(container_id)
        code_text = _read_text(exit_file)
        conmon_alive = False
        if start_error is None and code_text is None and not init_alive:
            # conmon writes the exit file before it exits: seen gone, its file is there now
            conmon_alive = _conmon_alive(d, container_id)
            if not conmon_alive:
                code_text = _read_text(exit_file)
        if start_error is not None:
            status.state = ContainerState.EXITED
            status.exit_code = CANNOT_RUN_EXIT_CODE
            status.reason = "ContainerCannotRun"
            status.message = start_error
            status.finished_at = (d / "start_error").stat().st_mtime
            facts["final"] = status
            _close_pidfd(facts)
            return dataclasses.replace(status)
        if code_text is not None:
            try:
                code = int(code_text.strip())
            except ValueError:
                code = 255
            status.state = ContainerState.EXITED
            status.exit_code = code if code >= 0 else 255
            if code < 0:
                status.message = "conmon could not learn the container's exit status"
            # file times come from the kernel's coarse clock, a tick behind time.time()
            status.finished_at = max(exit_file.stat().st_mtime, status.started_at)
            if code == 0:
                status.reason = "Completed"
            elif (d / "oom").exists() or self.cgroups.oom_kills(meta.get("cgroups_path", "")) > 0:
                status.reason = "OOMKilled"
            else:
                status.reason = "Error"
            facts["final"] = status
            _close_pidfd(facts)
            return dataclasses.replace(status)
        if init_alive:
            # After `runc start` returned (the started file) the init may still be `runc init` for
            # an instant, before its execve: runc calls that running, and so does this (seen as
            # CREATED, the pod worker would kill it as a container that never started).
            if _is_runc_init(pid) and not status.started_at:
                status.state = ContainerState.CREATED
            else:
                status.state = ContainerState.RUNNING
                facts["running"] = True  # started for good: from now on its init's life is enough
            return status
        if conmon_alive:
            # The init is gone and conmon is writing its exit code: still running, for an instant.
            status.state = ContainerState.RUNNING if status.started_at else ContainerState.CREATED
            return status
        status.state = ContainerState.EXITED
        status.exit_code = 255
        status.reason = "Error"
        status.message = "the container's monitor (conmon) is gone and left no exit code"
        status.finished_at = status.finished_at or time.time()
        return status

    # ------------------------------------------------------------------ containers: calls

    async def create_container(self, sandbox_id: str, config: ContainerConfig, sandbox: SandboxConfig) -> str:
        sb = await asyncio.to_thread(self._load_sandbox, sandbox_id)
        if sb is None:
            raise SandboxNotFoundError(f"pod sandbox {sandbox_id} not found")
        sb_status = sb[1]
        if self._sandbox_state(sb_status) != SandboxState.READY:
            raise CreateContainerError(f"pod sandbox {sandbox_id[:12]} is not ready")
        image = await self.images.image_status(config.image)
        if image is None:
            raise ImageNotFoundError(f"image {config.image!r} is not present on the node")
        container_id = secrets.token_hex(32)
        d = self._container_dir(container_id)
        await asyncio.to_thread(self._ensure_dirs)
        async with self._lock(container_id):
            try:
                await self._create(container_id, d, sandbox_id, config, sandbox, sb_status, image)
            except BaseException:
                await self._discard(container_id)
                raise
        log.info("container %s (%s) created in sandbox %s", container_id[:12], config.name, sandbox_id[:12])
        return container_id

    def _log_path(self, d: Path, config: ContainerConfig, sandbox: SandboxConfig) -> str:
        if config.log_path and os.path.isabs(config.log_path):
            return config.log_path
        if config.log_path and sandbox.log_directory:
            return os.path.join(sandbox.log_directory, config.log_path)
        return str(d / "container.log")

    async def _create(
        self,
        container_id: str,
        d: Path,
        sandbox_id: str,
        config: ContainerConfig,
        sandbox: SandboxConfig,
        sb_status: Mapping[str, Any],
        image: Image,
    ) -> None:
        cg_path = oci.cgroups_path(sandbox.cgroup_parent, self.cgroup_root, container_id)
        log_path = self._log_path(d, config, sandbox)
        meta: dict[str, Any] = {
            "id": container_id,
            "sandbox_id": sandbox_id,
            "name": config.name,
            "attempt": config.attempt,
            "image": config.image,
            "image_ref": image.id,
            "created_at": time.time(),
            "log_path": log_path,
            "cgroups_path": cg_path,
            "stop_signal": oci.stop_signal(config, image),
            "config": dataclasses.asdict(config),
            "creating": True,
        }

        def prepare() -> None:
            d.mkdir()
            for sub in ("rootfs", "upper", "work", "exits"):
                (d / sub).mkdir()
            _write_json(d / "meta.json", meta)
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)

        await asyncio.to_thread(prepare)
        lower = self.images.rootfs(image.id)
        for p in (lower, str(d)):
            if any(c in p for c in ",:"):
                raise CreateContainerError(f"path {p!r} has a ',' or ':' that overlayfs options cannot hold")
        if not os.path.isdir(lower):
            raise CreateContainerError(f"image {config.image!r}: its unpacked tree {lower} is missing")
        mnt = await self._run(
            "mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={lower},upperdir={d / 'upper'},workdir={d / 'work'}", str(d / "rootfs"),
        )  # fmt: skip
        if mnt.code != 0:
            raise CreateContainerError(f"mounting the container's root filesystem: {mnt.message}")

        pid_ns = await asyncio.to_thread(self._pid_namespace_of, sandbox_id, config.pid_namespace_of)
        await asyncio.to_thread(_check_pod_namespaces, sb_status)

        def spec() -> dict[str, Any]:
            rootfs = d / "rootfs"
            return oci.build_spec(
                pid_namespace_path=pid_ns,
                ipc_namespace_path=sb_status.get("ipc_ns_path", ""),
                uts_namespace_path=sb_status.get("uts_ns_path", ""),
                shm_path=sb_status.get("shm_path", ""),
                config=config,
                image=image,
                sandbox=sandbox,
                sandbox_dir=str(self._sandbox_dir(sandbox_id)),
                netns_path=sb_status.get("netns_path", ""),
                cgroups_path=cg_path,
                passwd=_read_text(rootfs / "etc" / "passwd"),
                group=_read_text(rootfs / "etc" / "group"),
                swap_accounting=self.cgroups.swap_accounting(),
                min_oom_score_adj=_min_oom_score_adj(),
                annotations={
                    "io.kubernetes.cri.container-type": "container",
                    "io.kubernetes.cri.sandbox-id": sandbox_id,
                    "io.kubernetes.cri.container-name": config.name,
                },
            )

        try:
            spec_doc = await asyncio.to_thread(spec)
        except CreateContainerError:
            raise
        except (OSError, ValueError) as e:
            raise CreateContainerError(f"writing the container's spec: {e}") from e
        await asyncio.to_thread(_write_json, d / "config.json", spec_doc)
        pid = await self._conmon_create(container_id, d, config, log_path)
        st = _proc_stat(pid)
        meta["pid_start"] = st[1] if st else 0
        del meta["creating"]
        await asyncio.to_thread(_write_json, d / "meta.json", meta)

    def _pid_namespace_of(self, sandbox_id: str, target: str) -> str:
        """``/proc/<pid>/ns/pid`` of the running container named ``target`` in the sandbox, else of
        the sandbox's pause when its containers share one ("" for neither); CreateContainerError
        when there is none."""
        if not target:
            loaded = self._load_sandbox(sandbox_id, mutable=False)
            if loaded is None or not loaded[0].share_pid:
                return ""
            pid, start = int(loaded[1].get("pause_pid") or 0), int(loaded[1].get("pause_start") or 0)
            if _alive(pid, start):
                return f"/proc/{pid}/ns/pid"
            raise CreateContainerError("the pod's shared process namespace is gone (its pause process ended)")
        running = [st for cid in self._container_ids(sandbox_id) if (st := self._status_sync(cid)) is not None
                   and st.name == target and st.state == ContainerState.RUNNING]
        if running:
            newest = max(running, key=lambda st: st.attempt)
            pid = _read_pid(self._container_dir(newest.id) / "pid")
            if pid > 0 and os.path.exists(f"/proc/{pid}/ns/pid"):
                return f"/proc/{pid}/ns/pid"
        raise CreateContainerError(f'target container "{target}" is not running: its process namespace cannot '
                                   "be shared")

    async def _start_pause(self, sandbox_id: str, config: SandboxConfig) -> dict[str, int]:
        """kubelet's pause for a pod whose containers share one process namespace
        (``shareProcessNamespace``): ``catatonit -P`` (the pause of podman) as PID 1 of a new PID
        namespace, started by ``unshare --pid --fork``; it reaps what is orphaned there, and the
        pod's containers join its namespace, as kube's join the pause container's. It sits in the
        pod's cgroup (else the agent's), outside the agent's session. Its pid and start time go
        into the sandbox's status."""
        catatonit, unshare = shutil.which("catatonit"), shutil.which("unshare")
        if catatonit is None or unshare is None:
            raise SandboxError("shareProcessNamespace needs catatonit (Debian package catatonit) and unshare "
                               "(util-linux) on the node")
        p = subprocess.Popen(  # noqa: ASYNC220 - returns once started; the pause outlives this call
            [unshare, "--pid", "--fork", "--kill-child", catatonit, "-P"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._pauses[sandbox_id] = p
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        pause = 0
        while not pause:
            children = self._children(p.pid)
            if children:
                pause = children[0]
            elif p.poll() is not None or loop.time() > deadline:
                await self._stop_pause(sandbox_id, {})
                raise SandboxError(f"the pod's pause (catatonit) did not start (unshare exit {p.returncode})")
            else:
                await asyncio.sleep(0.01)  # unshare forks at once: a few polls
        if config.cgroup_parent:
            errs = await asyncio.to_thread(
                lambda: [e for pid in (p.pid, pause) for e in self.cgroups.enter("/" + config.cgroup_parent.strip("/"),
                                                                                 pid)])
            if errs:
                log.warning("pod %s/%s: its pause stays out of the pod's cgroup: %s", config.namespace, config.name,
                            "; ".join(errs))
        st = _proc_stat(pause)
        return {"pause_pid": pause, "pause_start": st[1] if st is not None else 0, "pause_parent": p.pid}

    async def _stop_pause(self, sandbox_id: str, status: Mapping[str, Any]) -> None:
        """The pod's pause killed (its PID namespace goes with it) and, when this agent started it,
        reaped."""
        pid, start = int(status.get("pause_pid") or 0), int(status.get("pause_start") or 0)
        if pid and _alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        p = self._pauses.pop(sandbox_id, None)
        if p is not None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            await asyncio.to_thread(p.wait)

    async def _conmon_create(self, container_id: str, d: Path, config: ContainerConfig, log_path: str) -> int:
        """Start conmon, which runs ``runc create``; the container's init pid, or
        CreateContainerError with runc's message."""
        argv = [
            self.conmon,
            "--api-version", "1",
            "-b", str(d),
            "-c", container_id,
            "-u", container_id,
            "-n", config.name,
            "-r", self.runc,
            "--runtime-arg", f"--root={self.runc_root}",
            "-l", f"k8s-file:{log_path}",
            "--exit-dir", str(d / "exits"),
            "-0", str(d),
            "--conmon-pidfile", str(d / "conmon.pid"),
            "-p", str(d / "pid"),
            "--full-attach",
        ]  # fmt: skip
        if self.log_size_max > 0:
            argv += ["--log-size-max", str(self.log_size_max)]
        if config.stdin:
            argv.append("--stdin")
        if config.tty:
            argv.append("--terminal")
        r, w = os.pipe()
        start_r, start_w = os.pipe()
        try:
            env = {
                "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "_OCI_SYNCPIPE": str(w),
                "_OCI_STARTPIPE": str(start_r),
            }
            # Why subprocess.Popen in a thread, not asyncio's subprocess: the first conmon exits
            # as soon as it has forked its monitor, and uvloop's child watcher did not always see
            # that exit (the create then waited forever); Popen also closes every other fd.
            try:
                child = await asyncio.to_thread(
                    subprocess.Popen,
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    pass_fds=(w, start_r),
                    env=env,
                    cwd=str(d),  # conmon writes its "oom" file into its working directory
                    start_new_session=True,  # conmon must outlive the agent and its signals
                )
            except OSError as e:
                os.close(start_w)
                raise CreateContainerError(f"cannot run conmon ({self.conmon}): {e}") from e
            finally:
                os.close(w)
                os.close(start_r)
            # conmon waits on the start pipe: move it out of the agent's cgroups first, so that
            # a service manager that stops the agent with its cgroup leaves conmon (and so the
            # container's stdio and exit code) alone. Its children inherit the cgroup.
            try:
                errors = await asyncio.to_thread(self.cgroups.enter, self.conmon_cgroup, child.pid)
            finally:
                os.write(start_w, b"0")
                os.close(start_w)
            if errors:
                log.warning(
                    "conmon of %s stays in the agent's cgroups: %s", container_id[:12], "; ".join(errors)
                )
            # The first conmon forks the monitor and exits at once.
            _, err = await asyncio.to_thread(child.communicate)
            sync_fd, r = r, -1  # _read_sync_pipe closes it, even when this task is cancelled
            report = await asyncio.to_thread(_read_sync_pipe, sync_fd, CREATE_TIMEOUT)
        finally:
            if r >= 0:
                os.close(r)
        conmon_err = err.decode(errors="replace").strip()
        if report is None:
            detail = conmon_err or f"conmon exited with {child.returncode}"
            raise CreateContainerError(f"conmon did not report the container's creation: {detail}")
        pid = report.get("data")
        if not isinstance(pid, int) or pid <= 0:
            message = runc_message(str(report.get("message") or "")) or "runc create failed"
            raise CreateContainerError(message)
        return pid

    async def _discard(self, container_id: str) -> None:
        """Undo a create that failed part way."""
        try:
            await self._remove(container_id)
        except Exception as e:  # noqa: BLE001 - the create's own error is what the caller must see
            log.warning("container %s: cleaning up after a failed create: %s", container_id[:12], e)

    async def start_container(self, container_id: str) -> None:
        async with self._lock(container_id):
            status = await asyncio.to_thread(self._status_sync, container_id)
            if status is None:
                raise ContainerNotFoundError(f"container {container_id} not found")
            if status.state != ContainerState.CREATED:
                raise RunContainerError(f"container {container_id[:12]} is {status.state.value}, not created")
            d = self._container_dir(container_id)
            started_at = time.time()  # before: a short container may be done when runc returns
            p = await self._runc_cmd("start", container_id)
            if p.code != 0:
                message = p.message or f"runc start exited with {p.code}"
                await asyncio.to_thread((d / "start_error").write_text, message)
                # Nothing will ever start it: take the half-made container away (its conmon
                # then records the exit), keeping the bundle for status and logs.
                await self._runc_cmd("delete", "--force", container_id)
                raise RunContainerError(message)
            await asyncio.to_thread((d / "started").write_text, repr(started_at))

    async def _wait_exited(self, container_id: str, meta: Mapping[str, Any], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if await asyncio.to_thread(self._exited, container_id, meta):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_INTERVAL)

    async def _kill(self, container_id: str, sig: str, *, all_processes: bool = False) -> None:
        args = ["kill", *(["--all"] if all_processes else []), container_id, sig]
        p = await self._runc_cmd(*args)
        if p.code != 0 and not _not_there(p.message):
            raise RuntimeServiceError(f"runc kill {sig} {container_id[:12]}: {p.message}")

    async def stop_container(self, container_id: str, timeout: float) -> None:
        status = await self.container_status(container_id)
        meta = await asyncio.to_thread(self._meta, container_id)
        if status is None or meta is None or status.state == ContainerState.EXITED:
            return
        # A created container is still `runc init`, which no stop signal reaches: kill it.
        if timeout > 0 and status.state != ContainerState.CREATED:
            await self._kill(container_id, meta.get("stop_signal") or "SIGTERM")
            if await self._wait_exited(container_id, meta, timeout):
                return
            log.info("container %s did not stop within %gs: killing it", container_id[:12], timeout)
        await self._kill(container_id, "SIGKILL", all_processes=True)
        if not await self._wait_exited(container_id, meta, KILL_WAIT):
            raise RuntimeServiceError(
                f"container {container_id[:12]} did not die within {KILL_WAIT:g}s of SIGKILL"
            )

    async def remove_container(self, container_id: str) -> None:
        try:
            d = self._container_dir(container_id)
        except ContainerNotFoundError:
            return
        if not d.exists():
            return
        async with self._lock(container_id):
            await self._remove(container_id)
        self._locks.pop(container_id, None)
        _close_pidfd(self._facts.pop(container_id, {}))

    async def _remove(self, container_id: str) -> None:
        d = self._container_dir(container_id)
        meta = await asyncio.to_thread(self._meta, container_id) or {}
        p = await self._runc_cmd("delete", "--force", container_id)
        if p.code != 0 and not _not_there(p.message):
            raise RuntimeServiceError(f"runc delete {container_id[:12]}: {p.message}")
        # conmon leaves once the container is gone; wait for it so nothing holds the rootfs.
        conmon_pid = _read_pid(d / "conmon.pid")
        deadline = time.monotonic() + KILL_WAIT
        while _conmon_alive(d, container_id) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL)
        if _conmon_alive(d, container_id):
            log.warning(
                "container %s: conmon %d still there after the container went: killing it",
                container_id[:12],
                conmon_pid,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(conmon_pid, signal.SIGKILL)
        await self._unmount(d / "rootfs")
        if meta.get("cgroups_path"):
            await asyncio.to_thread(self.cgroups.remove, [meta["cgroups_path"]])
        await asyncio.to_thread(shutil.rmtree, d, True)

    async def _unmount(self, path: Path) -> None:
        if not await asyncio.to_thread(os.path.ismount, path):
            return
        p = await self._run("umount", str(path))
        if p.code != 0:
            log.warning("umount %s: %s; detaching it lazily", path, p.message)
            p = await self._run("umount", "-l", str(path))
            if p.code != 0:
                raise RuntimeServiceError(f"umount {path}: {p.message}")

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        try:
            return await asyncio.to_thread(self._status_sync, container_id)
        except ContainerNotFoundError:
            return None

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        def scan() -> list[ContainerStatus]:
            out = []
            for cid in self._container_ids(sandbox_id):
                st = self._status_sync(cid)
                if st is not None:
                    out.append(st)
            return out

        return await asyncio.to_thread(scan)

    async def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: float = 0) -> ExecResult:
        self._exec_target(container_id)
        if not cmd:
            raise RuntimeServiceError("exec: no command given")
        # No --pid-file (a file written and removed per probe): the command is runc's child
        # (runc init's stages are cloned with CLONE_PARENT), found through /proc when it has to
        # be killed (execd.kill_below).
        argv = [self.runc, "--root", str(self.runc_root), "exec", container_id, *cmd]
        # started by the runtime's exec service, not by the agent (containerd's shim starts
        # kubelet's ExecSync): exec probes run every period of every probed container
        try:
            r, timed_out = await self._execd.run(argv, timeout if timeout > 0 else None)
        except execd.ExecServiceError as e:
            raise RuntimeServiceError(f"exec in container {container_id}: {e}") from e
        err = r.stderr
        if timed_out:
            err += f"\ncommand timed out after {timeout:g}s and was killed\n".encode()
        return ExecResult(stdout=r.stdout, stderr=err, exit_code=r.returncode)

    _children = staticmethod(execd.children)

    async def close(self) -> None:
        """End what the runtime runs for this process (its exec service); the containers stay."""
        await self._execd.close()

    def _exec_target(self, container_id: str) -> None:
        """:meth:`_running` on the loop's thread, for exec_sync: a running container's status is
        a few cached reads and one poll, less than the hop to a worker thread, and exec probes
        ask for it every period."""
        try:
            status = self._status_sync(container_id)
        except ContainerNotFoundError:
            status = None
        _require_running(container_id, status)

    async def _running(self, container_id: str) -> ContainerStatus:
        return _require_running(container_id, await self.container_status(container_id))

    async def exec_stream(self, container_id: str, cmd: Sequence[str], opts: StreamOptions) -> StreamSession:
        """``runc exec`` with its streams (:mod:`.runcstream`)."""
        await self._running(container_id)
        if not cmd:
            raise RuntimeServiceError("exec: no command given")
        pid_file = self._container_dir(container_id) / f"exec-{secrets.token_hex(6)}.pid"
        return await RuncExec.start((self.runc, "--root", str(self.runc_root)), container_id, cmd, pid_file, opts,
                                    _kill_tree)

    async def attach(self, container_id: str, opts: StreamOptions) -> StreamSession:
        """The container's own stdio through its conmon's attach socket (:mod:`.runcstream`)."""
        await self._running(container_id)
        return await ConmonAttach.connect(self._container_dir(container_id), opts)

    def _stats_sync(self, container_id: str) -> ContainerStats | None:
        meta = self._meta(container_id)
        if meta is None or not meta.get("cgroups_path"):
            return None
        return self.cgroups.stats(meta["cgroups_path"])

    async def container_stats(self, container_id: str) -> ContainerStats | None:
        return await asyncio.to_thread(self._stats_sync, container_id)

    async def list_container_stats(self, container_ids: Sequence[str]) -> dict[str, ContainerStats]:
        def read() -> dict[str, ContainerStats]:
            return {cid: st for cid in container_ids if (st := self._stats_sync(cid)) is not None}

        # one hop to a thread for them all: every container's stats are read every scrape
        return await asyncio.to_thread(read)

    async def writable_layer(self, container_id: str) -> str | None:
        """The overlay's upper directory (what the container wrote to its root filesystem)."""
        d = self._container_dir(container_id) / "upper"
        return str(d) if await asyncio.to_thread(d.is_dir) else None

    # ------------------------------------------------------------------ images

    async def pull_image(self, ref: str, auth: RegistryAuth | None = None) -> str:
        return await self.images.pull_image(ref, auth)

    async def image_status(self, ref: str) -> Image | None:
        return await self.images.image_status(ref)

    async def list_images(self) -> list[Image]:
        return await self.images.list_images()

    async def remove_image(self, ref: str) -> None:
        await self.images.remove_image(ref)

    # ------------------------------------------------------------------ everything away

    async def cleanup_all(self) -> None:
        """``k8py killall``: every container and sandbox of this root stopped and removed, and
        whatever runc or the mount table still has of them."""
        for cid in await asyncio.to_thread(self._container_ids):
            try:
                await self.remove_container(cid)
            except Exception as e:  # noqa: BLE001 - go on with the rest; report each
                log.warning("killall: container %s: %s", cid[:12], e)
        if self.runc_root.is_dir():
            p = await self._runc_cmd("list", "--format", "json")
            leftovers = json.loads(p.stdout or b"null") if p.code == 0 else None
            for c in leftovers or []:
                await self._runc_cmd("delete", "--force", c["id"])
        # every sandbox directory, also one an agent left half made
        sandbox_ids = sorted(p.name for p in self._sandboxes.iterdir()) if self._sandboxes.is_dir() else []
        for sid in sandbox_ids:
            try:
                await self.remove_pod_sandbox(sid)
            except Exception as e:  # noqa: BLE001 - go on with the rest; report each
                log.warning("killall: sandbox %s: %s", sid[:12], e)
        for mount_point in await asyncio.to_thread(self._mounts_under_root):
            await self._unmount(Path(mount_point))
        if self._containers.is_dir():
            for d in list(self._containers.iterdir()):
                await asyncio.to_thread(shutil.rmtree, d, True)
        busy = await asyncio.to_thread(self.cgroups.remove, [self.conmon_cgroup, self.cgroup_root])
        if busy:
            log.warning("killall: cgroups still in use: %s", ", ".join(busy))
        # the pods' cgroup and its QoS cgroups, with the limits the agent gave them, when no pod
        # is left in them (another node's agent on this machine may still have some)
        busy = await asyncio.to_thread(self.cgroups.remove, [f"/{PODS_CGROUP}/burstable", f"/{PODS_CGROUP}/besteffort",
                                                             f"/{PODS_CGROUP}"])
        if busy:
            log.info("killall: the pods' cgroups stay, still in use: %s", ", ".join(busy))

    def _mounts_under_root(self) -> list[str]:
        root = os.path.realpath(self.root)
        out = []
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2:
                    point = parts[1].replace("\\040", " ")
                    if point == root or point.startswith(root + "/"):
                        out.append(point)
        return sorted(out, key=len, reverse=True)


def _read_sync_pipe(fd: int, timeout: float) -> dict[str, Any] | None:
    """conmon's first message on the sync pipe (then the pipe is closed); None when conmon
    closed it without a word or said nothing within ``timeout``."""
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
    finally:
        os.close(fd)
    line = buf.split(b"\n", 1)[0].strip()
    if not line:
        return None
    try:
        msg = json.loads(line)
    except ValueError:
        return {"data": -1, "message": line.decode(errors="replace")}
    return msg if isinstance(msg, dict) else None
