"""The OCI runtime spec (``config.json``) of a container, as containerd's CRI plugin writes it.

Nothing here does I/O: the runc runtime (:mod:`.runc`) reads what is needed (the image's
``/etc/passwd`` and ``/etc/group``, whether swap accounting exists) and passes it in, and writes
the returned dict as the bundle's ``config.json``. Bad input (no command, an unknown
capability, a user name the image does not know) raises :class:`CreateContainerError` with a
message the pod's status can show.

What the spec holds, and why:

- ``process.args`` by Kubernetes' rule (:func:`process_args`): ``command`` replaces the image's
  entrypoint and drops its cmd, ``args`` replaces the cmd.
- ``process.env``: ``PATH`` (runc's default), ``HOSTNAME``, then the image's env, then the
  container's, later values replacing earlier ones of the same name in place.
- ``process.user`` from ``runAsUser``/``runAsGroup``, else the image's ``USER`` (numeric, or a
  name resolved through the image's ``/etc/passwd`` and ``/etc/group``), plus the supplemental
  groups and the groups ``/etc/group`` lists the user in.
- capabilities: containerd's default set, ``ALL`` and single adds and drops in containerd's order;
  privileged gets every capability, every device, writable ``/sys`` and no masked paths.
- namespaces: a new mount and pid namespace per container; the network, ipc and uts namespaces
  are the sandbox's, joined by path, as kube's containers join the pause container's (the
  runtime keeps the ipc and uts ones as bind-mounted files; the uts one was given the pod's
  hostname when it was made, so the spec sets none: a container's start does not reset a
  hostname changed in the pod, as with containerd). Host network leaves out the network and uts
  namespaces (the node's, and its hostname); ``hostPID`` and ``hostIPC`` leave out the pid and
  ipc namespaces (the node's, as kubelet's NODE mode). Without a path (a sandbox made before the
  runtime kept them) a container gets its own ipc and uts namespace with the pod's hostname.
- the standard mounts, the sandbox's ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``,
  the pod's ``/dev/shm`` (one tmpfs shared by its containers, the node's for ``hostIPC``, as
  containerd's sandbox shm) and the container's own mounts (which win over a standard one at the
  same place).
- ``linux.resources`` from :class:`Resources`, ``cgroupsPath`` in cgroupfs style.
"""

from __future__ import annotations

import ipaddress
import os.path
import signal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from k8py.kubelet.runtime.types import (
    ContainerConfig,
    CreateContainerError,
    DNSConfig,
    Image,
    Mount,
    Resources,
    SandboxConfig,
    Security,
)

__all__ = [
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "MASKED_PATHS",
    "OCI_VERSION",
    "READONLY_PATHS",
    "SandboxFiles",
    "build_spec",
    "capabilities",
    "cgroups_path",
    "hosts_file",
    "merge_env",
    "pod_hostname",
    "process_args",
    "resolv_conf",
    "resolve_user",
    "stop_signal",
]

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# containerd's default set for containers (oci/spec.go defaultUnixCaps).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip

# Every capability Linux defines (capability.h, 0 .. 40), in number order.
ALL_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip

# containerd's CRI defaults (pkg/cri/opts/spec_linux.go); privileged containers get neither.
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

_PROPAGATION = {"": "rprivate", "None": "rprivate", "HostToContainer": "rslave", "Bidirectional": "rshared"}


# --------------------------------------------------------------------------- process


def process_args(config: ContainerConfig, image: Image) -> list[str]:
    """Kubernetes' rule: ``command`` replaces the image's entrypoint and drops its cmd; ``args``
    replaces the cmd; with neither, the image's entrypoint followed by its cmd."""
    if config.command:
        args = [*config.command, *config.args]
    elif config.args:
        args = [*image.entrypoint, *config.args]
    else:
        args = [*image.entrypoint, *image.cmd]
    if not args:
        raise CreateContainerError(
            f"container {config.name!r}: no command specified: neither the pod nor image "
            f"{config.image!r} gives a command or args"
        )
    return args


def merge_env(*layers: Iterable[tuple[str, str]]) -> list[str]:
    """``K=V`` strings: later layers replace a variable of the same name where it first stood."""
    merged: dict[str, str] = {}
    for layer in layers:
        for key, value in layer:
            merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def _split_env(env: Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for item in env:
        key, sep, value = item.partition("=")
        if key:
            out.append((key, value if sep else ""))
    return out


def _parse_db(text: str | None) -> list[list[str]]:
    """The lines of ``/etc/passwd`` or ``/etc/group`` as their ``:``-separated fields."""
    rows = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def resolve_user(
    security: Security, image_user: str, passwd: str | None = None, group: str | None = None
) -> tuple[int, int, list[int]]:
    """``(uid, gid, additional gids)`` for the container's process.

    ``run_as_user``/``run_as_group`` win over the image's ``USER`` (``uid``, ``uid:gid``,
    ``name`` or ``name:group``; names need the image's ``/etc/passwd`` and ``/etc/group``). The
    gid defaults to the user's primary group in ``/etc/passwd``, else 0. The additional gids are
    the groups ``/etc/group`` lists the user in, then the pod's supplemental groups."""
    users = _parse_db(passwd)
    groups = _parse_db(group)
    name = ""
    uid: int | None = security.run_as_user
    gid: int | None = security.run_as_group
    user_part, _, group_part = (image_user or "").partition(":")
    if uid is None and user_part:
        if user_part.isdigit():
            uid = int(user_part)
        else:
            for row in users:
                if len(row) >= 4 and row[0] == user_part and row[2].isdigit():
                    uid, name = int(row[2]), row[0]
                    if gid is None and not group_part and row[3].isdigit():
                        gid = int(row[3])
                    break
            else:
                raise CreateContainerError(
                    f"unable to find user {user_part}: no matching entries in the image's /etc/passwd"
                )
    if uid is None:
        uid = 0
    if gid is None and group_part and security.run_as_user is None:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            for row in groups:
                if len(row) >= 3 and row[0] == group_part and row[2].isdigit():
                    gid = int(row[2])
                    break
            else:
                raise CreateContainerError(
                    f"unable to find group {group_part}: no matching entries in the image's /etc/group"
                )
    if not name or gid is None:
        for row in users:
            if len(row) >= 4 and row[2] == str(uid):
                name = name or row[0]
                if gid is None and row[3].isdigit():
                    gid = int(row[3])
                break
    if gid is None:
        gid = 0
    additional: list[int] = []
    if name:
        for row in groups:
            if len(row) >= 4 and name in row[3].split(",") and row[2].isdigit() and int(row[2]) != gid:
                additional.append(int(row[2]))
    for g in security.supplemental_groups:
        if g not in additional:
            additional.append(g)
    return uid, gid, additional


def _cap_name(name: str) -> str:
    upper = name.strip().upper()
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in ALL_CAPABILITIES:
        raise CreateContainerError(f"unknown capability {name!r}")
    return full


def capabilities(security: Security) -> list[str]:
    """The capability set, in containerd's order: everything when privileged; else the default
    set, ``ALL`` added, ``ALL`` dropped, then each single add, then each single drop."""
    if security.privileged:
        return list(ALL_CAPABILITIES)
    adds = [c for c in security.capabilities_add if c.strip().upper() != "ALL"]
    drops = [c for c in security.capabilities_drop if c.strip().upper() != "ALL"]
    caps = list(DEFAULT_CAPABILITIES)
    if len(adds) != len(security.capabilities_add):
        caps = list(ALL_CAPABILITIES)
    if len(drops) != len(security.capabilities_drop):
        caps = []
    for c in adds:
        full = _cap_name(c)
        if full not in caps:
            caps.append(full)
    for c in drops:
        full = _cap_name(c)
        if full in caps:
            caps.remove(full)
    return caps


def stop_signal(config: ContainerConfig, image: Image) -> str:
    """The signal that asks the container to stop, as a name (``SIGTERM``): the container's,
    else the image's ``StopSignal``, else SIGTERM. Numbers and names without ``SIG`` are taken."""
    raw = (config.stop_signal or image.stop_signal or "SIGTERM").strip()
    try:
        if raw.isdigit():
            return signal.Signals(int(raw)).name
        name = raw.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        return signal.Signals[name].name
    except (KeyError, ValueError):
        raise CreateContainerError(f"unknown stop signal {raw!r}") from None


# --------------------------------------------------------------------------- mounts


class SandboxFiles:
    """Where the sandbox's ``hosts``, ``resolv.conf`` and ``hostname`` files are on the node, and
    where the runtime mounts the pod's IPC and UTS namespaces (``ipcns``, ``utsns``: bind mounts
    of ``nsfs``) and its ``/dev/shm`` (``shm``: a tmpfs)."""

    __slots__ = ("hostname", "hosts", "ipc_ns", "resolv_conf", "shm", "uts_ns")

    def __init__(self, directory: str) -> None:
        self.hosts = os.path.join(directory, "hosts")
        self.resolv_conf = os.path.join(directory, "resolv.conf")
        self.hostname = os.path.join(directory, "hostname")
        self.ipc_ns = os.path.join(directory, "ipcns")
        self.uts_ns = os.path.join(directory, "utsns")
        self.shm = os.path.join(directory, "shm")


def _standard_mounts(privileged: bool) -> list[dict[str, Any]]:
    sys_ro = [] if privileged else ["ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", *sys_ro],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", *sys_ro],
        },
    ]


def _bind(destination: str, source: str, readonly: bool, propagation: str = "") -> dict[str, Any]:
    if propagation not in _PROPAGATION:
        raise CreateContainerError(
            f"mount {destination}: unknown propagation {propagation!r} (None, HostToContainer or Bidirectional)"
        )
    return {
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind", _PROPAGATION[propagation], "ro" if readonly else "rw"],
    }


def _mounts(config: ContainerConfig, files: SandboxFiles, shm_path: str = "") -> list[dict[str, Any]]:
    user: list[dict[str, Any]] = []
    for m in config.mounts:
        _check_mount(m)
        user.append(_bind(os.path.normpath(m.container_path), m.host_path, m.readonly, m.propagation))
    taken = {m["destination"] for m in user}
    ro = config.security.readonly_rootfs
    sandbox = [
        _bind("/etc/hosts", files.hosts, ro),
        _bind("/etc/resolv.conf", files.resolv_conf, ro),
        _bind("/etc/hostname", files.hostname, ro),
    ]
    standard = _standard_mounts(config.security.privileged)
    if shm_path:
        # the pod's /dev/shm in place of the container's own, where the standard one stood
        standard = [_bind("/dev/shm", shm_path, False) if m["destination"] == "/dev/shm" else m for m in standard]
    defaults = [m for m in (*standard, *sandbox) if m["destination"] not in taken]
    # The container's mounts go last, shallow ones first, so that a mount inside another lands
    # on top of it (containerd sorts them the same way).
    user.sort(key=lambda m: len([p for p in m["destination"].split("/") if p]))
    return [*defaults, *user]


def _check_mount(m: Mount) -> None:
    if not m.container_path.startswith("/"):
        raise CreateContainerError(f"mount path {m.container_path!r} must be absolute")
    if not m.host_path.startswith("/"):
        raise CreateContainerError(f"mount {m.container_path}: host path {m.host_path!r} must be absolute")


# --------------------------------------------------------------------------- resources


def cgroups_path(cgroup_parent: str, cgroup_root: str, container_id: str) -> str:
    """cgroupfs style, absolute (a relative path would land under the agent's own cgroup):
    ``/<cgroup_parent or cgroup_root>/<container id>``."""
    parent = (cgroup_parent or cgroup_root).strip("/")
    if ".." in parent.split("/"):
        raise CreateContainerError(f"cgroup parent {parent!r} may not contain '..'")
    return "/" + "/".join(p for p in (parent, container_id) if p)


def _resources(res: Resources, privileged: bool, swap_accounting: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": [{"allow": privileged, "access": "rwm"}]}
    cpu: dict[str, int] = {}
    if res.cpu_shares is not None:
        cpu["shares"] = max(2, res.cpu_shares)
    if res.cpu_quota is not None and res.cpu_quota > 0:
        cpu["quota"] = res.cpu_quota
        cpu["period"] = res.cpu_period or 100000
    elif res.cpu_period is not None:
        cpu["period"] = res.cpu_period
    if cpu:
        out["cpu"] = cpu
    if res.memory_limit is not None and res.memory_limit > 0:
        memory: dict[str, int] = {"limit": res.memory_limit}
        if swap_accounting:
            memory["swap"] = res.memory_limit  # memory+swap: no swap on top of the limit
        out["memory"] = memory
    if res.pids_limit is not None and res.pids_limit != 0:
        out["pids"] = {"limit": res.pids_limit}
    return out


# --------------------------------------------------------------------------- the spec


def build_spec(
    *,
    config: ContainerConfig,
    image: Image,
    sandbox: SandboxConfig,
    sandbox_dir: str,
    netns_path: str,
    cgroups_path: str,
    passwd: str | None = None,
    group: str | None = None,
    swap_accounting: bool = True,
    annotations: Mapping[str, str] | None = None,
    min_oom_score_adj: int | None = None,
    pid_namespace_path: str = "",
    ipc_namespace_path: str = "",
    uts_namespace_path: str = "",
    shm_path: str = "",
) -> dict[str, Any]:
    """The ``config.json`` of the container's bundle (rootfs at ``rootfs`` beside it).
    ``min_oom_score_adj``: the lowest OOM score adjustment the node may give (without
    CAP_SYS_RESOURCE a process cannot go below its own); kubelet's value is raised to it.
    ``pid_namespace_path``: a PID namespace to join (``/proc/<pid>/ns/pid`` of a target
    container) instead of a new one. ``ipc_namespace_path``, ``uts_namespace_path``: the pod's
    IPC and UTS namespaces to join (ignored for ``hostIPC``, resp. host network, which keep the
    node's); "" gives the container its own. ``shm_path``: the pod's ``/dev/shm`` to bind
    instead of a tmpfs of the container's own."""
    sec = config.security
    hostname = pod_hostname(sandbox)
    args = process_args(config, image)
    env = merge_env(
        [("PATH", DEFAULT_PATH), ("HOSTNAME", hostname)],
        _split_env(image.env),
        config.env,
    )
    uid, gid, additional = resolve_user(sec, image.user, passwd, group)
    caps = capabilities(sec)
    process: dict[str, Any] = {
        "terminal": config.tty,
        "user": {"uid": uid, "gid": gid, **({"additionalGids": additional} if additional else {})},
        "args": args,
        "env": env,
        "cwd": config.working_dir or image.working_dir or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": sec.no_new_privs and not sec.privileged,
    }
    if config.resources.oom_score_adj is not None:
        adj = config.resources.oom_score_adj
        process["oomScoreAdj"] = adj if min_oom_score_adj is None else max(adj, min_oom_score_adj)
    if not process["cwd"].startswith("/"):
        raise CreateContainerError(f"working directory {process['cwd']!r} must be absolute")

    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    if not sandbox.host_pid:
        namespaces.append({"type": "pid", "path": pid_namespace_path} if pid_namespace_path else {"type": "pid"})
    if not sandbox.host_ipc:
        namespaces.append({"type": "ipc", "path": ipc_namespace_path} if ipc_namespace_path else {"type": "ipc"})
    if sandbox.host_network:
        pass  # the node's network and uts namespaces (its hostname), as kubelet does
    else:
        namespaces.append({"type": "uts", "path": uts_namespace_path} if uts_namespace_path else {"type": "uts"})
        if not netns_path:
            raise CreateContainerError("the sandbox has no network namespace")
        namespaces.append({"type": "network", "path": netns_path})

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": _resources(config.resources, sec.privileged, swap_accounting),
        "cgroupsPath": cgroups_path,
    }
    if not sec.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    sysctls = dict(sandbox.sysctls)
    if sandbox.host_network:
        # the node's own settings: a host-network pod may not change them
        sysctls = {k: v for k, v in sysctls.items() if not k.startswith("net.")}
    if sysctls:
        linux["sysctl"] = sysctls

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": "rootfs", "readonly": sec.readonly_rootfs},
        "mounts": _mounts(config, SandboxFiles(sandbox_dir), shm_path),
        "linux": linux,
        "annotations": dict(annotations or {}),
    }
    if not sandbox.host_network and not uts_namespace_path:
        # A container of its own UTS namespace is given the pod's hostname; one that joins the
        # pod's finds it there (set once when the namespace was made, as containerd sets it on
        # the pause only), so its start does not undo a change made in the pod.
        spec["hostname"] = hostname
    return spec


def pod_hostname(sandbox: SandboxConfig) -> str:
    """The hostname of the pod's containers (kubelet's, cut to 63 characters already): the
    sandbox's ``hostname``, else the pod's name. A host-network pod has the node's instead."""
    return sandbox.hostname or sandbox.name


# --------------------------------------------------------------------------- sandbox files

_HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
_HOSTS_LOCAL = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def hosts_file(config: SandboxConfig, ips: Sequence[str], node_hosts: str = "") -> str:
    """The pod's ``/etc/hosts`` as kubelet writes it: localhost lines and the pod's addresses
    with its hostname (a host-network pod gets the node's file instead), then the host aliases."""
    hostname = pod_hostname(config)
    if config.host_network:
        text = "# Kubernetes-managed hosts file (host network).\n" + node_hosts
        if text and not text.endswith("\n"):
            text += "\n"
    else:
        text = _HOSTS_HEADER + _HOSTS_LOCAL + "".join(f"{ip}\t{hostname}\n" for ip in ips)
    if config.host_aliases:
        text += "\n# Entries added by HostAliases.\n"
        text += "".join(f"{ip}\t{chr(9).join(names)}\n" for ip, names in config.host_aliases if names)
    return text


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def resolv_conf(dns: DNSConfig | None, node_resolv_conf: str, host_network: bool) -> tuple[str, str]:
    """The pod's ``/etc/resolv.conf`` and a warning ("" when none).

    ``dns`` (when given and not empty) is written as it is. Otherwise the node's file is used,
    less its loopback nameservers when the pod has its own network namespace: a pod cannot reach
    a resolver on the node's 127.0.0.53 (systemd-resolved) or ::1."""
    if dns is not None and (dns.servers or dns.searches or dns.options):
        lines = [f"nameserver {s}" for s in dns.servers]
        if dns.searches:
            lines.append("search " + " ".join(dns.searches))
        if dns.options:
            lines.append("options " + " ".join(dns.options))
        return "\n".join(lines) + "\n", ""
    kept: list[str] = []
    dropped: list[str] = []
    servers = 0
    for line in node_resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            if not host_network and _is_loopback(parts[1]):
                dropped.append(parts[1])
                continue
            servers += 1
        kept.append(line)
    warning = ""
    if dropped and not servers:
        warning = (
            f"the node's resolv.conf names only loopback nameservers ({', '.join(dropped)}), which a pod "
            "cannot reach from its network namespace: the pod has no nameserver; give the pod a dnsConfig "
            "or run a resolver on a reachable address"
        )
    text = "\n".join(kept)
    return (text + "\n" if text else ""), warning
