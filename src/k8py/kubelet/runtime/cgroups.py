"""Containers' cgroups on the node: where they are, what they use, whether they met the OOM killer.

runc creates a container's cgroups from the spec's ``cgroupsPath`` (cgroupfs style, e.g.
``/k8py/<container id>``). On cgroup v1 (and the hybrid layout, v1 controllers plus an empty
``unified`` v2 mount) every controller has its own hierarchy, mounted where
``/proc/self/mountinfo`` says (``cpu`` and ``cpuacct`` may share one or not); on v2 there is one
tree under ``/sys/fs/cgroup``.

What is read, as kubelet's cAdvisor does:

- cpu: v1 ``cpuacct.usage`` (ns); v2 ``cpu.stat`` ``usage_usec`` * 1000.
- memory: usage v1 ``memory.usage_in_bytes``, v2 ``memory.current``; working set = usage minus
  inactive file pages (v1 ``total_inactive_file``, v2 ``inactive_file`` in ``memory.stat``);
  rss v1 ``total_rss``, v2 ``anon``.
- processes: ``pids.current`` (the pids controller; v1 has its own hierarchy).
- OOM kills: v1 ``memory.oom_control``'s ``oom_kill`` counter, v2 ``memory.events``'
  ``oom_kill``. (``memory.failcnt`` is no witness: a kill often happens with it at 0.) conmon's
  ``oom`` file (see :mod:`.runc`) outlives the cgroup; this counter is what is left to read
  while the cgroup exists.

What is written (:meth:`Cgroups.update`, kubelet's cgroup manager for its own cgroups: the pods'
``kubepods`` and its QoS children): memory v1 ``memory.limit_in_bytes`` / v2 ``memory.max``; CPU
shares v1 ``cpu.shares`` / v2 ``cpu.weight`` (converted as runc/libcontainer does); processes
``pids.max``.

The parsers are pure functions; :class:`Cgroups` does the (small, synchronous) file reads and
is meant to be called from a worker thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from k8py.kubelet.runtime.types import CgroupResources, ContainerStats

__all__ = [
    "CGROUP_ROOT",
    "CgroupResources",
    "Cgroups",
    "parse_flat_keyed",
    "parse_v1_mounts",
    "shares_to_weight",
]

CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = "unified"  # the key of the hybrid layout's v2 hierarchy in Cgroups.mounts


# super options of a v1 cgroup mount that are not controllers
_NOT_CONTROLLERS = frozenset(
    {"rw", "ro", "xattr", "clone_children", "noprefix", "cpuset_v2_mode", "favordynmods"}
)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``memory.stat``, ``cpu.stat``, ``memory.events``, ``memory.oom_control``: ``key value``
    lines (values that are not integers are left out)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def parse_v1_mounts(mountinfo: str) -> dict[str, str]:
    """Controller name -> mount point of its v1 hierarchy, from ``/proc/self/mountinfo``
    (named hierarchies as ``name=systemd``; the hybrid layout's v2 mount as ``unified``)."""
    out: dict[str, str] = {}
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fields = pre.split()
        post_fields = post.split()
        if len(fields) < 5 or len(post_fields) < 3 or post_fields[0] not in ("cgroup", "cgroup2"):
            continue
        mount_point = fields[4].replace("\\040", " ")
        if post_fields[0] == "cgroup2":
            out.setdefault(UNIFIED, mount_point)
            continue
        for opt in post_fields[2].split(","):
            if opt in _NOT_CONTROLLERS or ("=" in opt and not opt.startswith("name=")):
                continue
            out.setdefault(opt, mount_point)
    return out


def shares_to_weight(shares: int) -> int:
    """cgroup v2's ``cpu.weight`` (1..10000) for v1 CPU shares (2..262144), as libcontainer's
    ``ConvertCPUSharesToCgroupV2Value`` (which kubelet's cgroup manager uses on v2)."""
    if shares <= 0:
        return 0
    return 1 + ((max(2, min(shares, 262144)) - 2) * 9999) // 262142


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.strip().split()[0])
    except (ValueError, IndexError):
        return None


@dataclass
class Cgroups:
    """The node's cgroup layout: ``version`` 1 (v1 or hybrid) or 2."""

    version: int
    mounts: dict[str, str] = field(default_factory=dict)  # v1: controller -> mount point
    root: str = CGROUP_ROOT

    @classmethod
    def detect(cls, root: str = CGROUP_ROOT) -> Cgroups:
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            return cls(version=2, root=root)
        return cls(version=1, mounts=parse_v1_mounts(_read("/proc/self/mountinfo") or ""), root=root)

    # ---------------------------------------------------------------- paths

    def path(self, controller: str, cgroups_path: str) -> str | None:
        """The directory of ``cgroups_path`` (absolute, cgroupfs style) for ``controller``;
        None when that controller is not mounted."""
        rel = cgroups_path.strip("/")
        if self.version == 2:
            return os.path.join(self.root, rel)
        mount = self.mounts.get(controller)
        return os.path.join(mount, rel) if mount else None

    def directories(self, cgroups_path: str) -> list[str]:
        """Every directory ``cgroups_path`` has (one per v1 hierarchy, one on v2)."""
        rel = cgroups_path.strip("/")
        if self.version == 2:
            return [os.path.join(self.root, rel)]
        return sorted({os.path.join(m, rel) for m in self.mounts.values()})

    def swap_accounting(self) -> bool:
        """Whether a memory+swap limit can be set (v1 ``memory.memsw.*``, v2 ``memory.swap.max``)."""
        if self.version == 2:
            return os.path.exists(os.path.join(self.root, "memory.swap.max")) or os.path.exists(
                os.path.join(self.root, "init.scope", "memory.swap.max")
            )
        mount = self.mounts.get("memory")
        return bool(mount) and os.path.exists(os.path.join(mount or "", "memory.memsw.limit_in_bytes"))

    # ---------------------------------------------------------------- reading

    def stats(self, cgroups_path: str) -> ContainerStats | None:
        """CPU and memory use of the cgroup; None when it does not exist (any more)."""
        now = time.time()
        if self.version == 2:
            d = self.path("", cgroups_path) or ""
            cpu_stat = _read(os.path.join(d, "cpu.stat"))
            current = _read_int(os.path.join(d, "memory.current"))
            if cpu_stat is None and current is None:
                return None
            cpu_ns = parse_flat_keyed(cpu_stat or "").get("usage_usec", 0) * 1000
            mstat = parse_flat_keyed(_read(os.path.join(d, "memory.stat")) or "")
            usage = current or 0
            return ContainerStats(
                timestamp=now,
                cpu_usage_core_nanoseconds=cpu_ns,
                memory_working_set_bytes=max(0, usage - mstat.get("inactive_file", 0)),
                memory_usage_bytes=usage,
                rss_bytes=mstat.get("anon", 0),
                processes=_read_int(os.path.join(d, "pids.current")) or 0,
            )
        cpuacct = self.path("cpuacct", cgroups_path)
        memory = self.path("memory", cgroups_path)
        cpu_v1 = _read_int(os.path.join(cpuacct, "cpuacct.usage")) if cpuacct else None
        usage_v1 = _read_int(os.path.join(memory, "memory.usage_in_bytes")) if memory else None
        if cpu_v1 is None and usage_v1 is None:
            return None
        mstat = parse_flat_keyed((_read(os.path.join(memory, "memory.stat")) if memory else None) or "")
        usage = usage_v1 or 0
        pids = self.path("pids", cgroups_path)
        return ContainerStats(
            timestamp=now,
            cpu_usage_core_nanoseconds=cpu_v1 or 0,
            memory_working_set_bytes=max(0, usage - mstat.get("total_inactive_file", 0)),
            memory_usage_bytes=usage,
            rss_bytes=mstat.get("total_rss", 0),
            processes=(_read_int(os.path.join(pids, "pids.current")) if pids else None) or 0,
        )

    def oom_kills(self, cgroups_path: str) -> int:
        """How many processes the OOM killer killed in the cgroup (0 when it is gone)."""
        d = self.path("memory", cgroups_path)
        if not d:
            return 0
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return parse_flat_keyed(_read(os.path.join(d, name)) or "").get("oom_kill", 0)

    def read(self, controller: str, cgroups_path: str, filename: str) -> str | None:
        """One file of the cgroup, stripped; None when absent."""
        d = self.path(controller, cgroups_path)
        text = _read(os.path.join(d, filename)) if d else None
        return text.strip() if text is not None else None

    # ---------------------------------------------------------------- limits, moving in, removing

    def update(self, cgroups_path: str, res: CgroupResources) -> list[str]:
        """Make ``cgroups_path`` (in the memory, cpu and pids hierarchies; on v2 with those
        controllers enabled for it) and write ``res`` into it; what failed, one line per file
        (e.g. a memory limit below what the cgroup uses now: the kernel refuses it with EBUSY)."""
        writes: list[tuple[str, str, str]] = []  # (controller, file, value)
        v2 = self.version == 2
        if res.memory is not None:
            writes.append(("memory", "memory.max" if v2 else "memory.limit_in_bytes",
                           str(res.memory) if res.memory > 0 else ("max" if v2 else "-1")))
        if res.cpu_shares is not None:
            writes.append(("cpu", "cpu.weight", str(shares_to_weight(res.cpu_shares))) if v2
                          else ("cpu", "cpu.shares", str(res.cpu_shares)))
        if res.cpu_period is not None:
            if v2:
                quota = str(res.cpu_quota) if res.cpu_quota is not None and res.cpu_quota > 0 else "max"
                writes.append(("cpu", "cpu.max", f"{quota} {res.cpu_period}"))
            else:  # the period first: the kernel checks the quota against it
                writes.append(("cpu", "cpu.cfs_period_us", str(res.cpu_period)))
                writes.append(("cpu", "cpu.cfs_quota_us", str(res.cpu_quota if res.cpu_quota is not None
                                                               and res.cpu_quota > 0 else -1)))
        if res.pids is not None:
            writes.append(("pids", "pids.max", str(res.pids) if res.pids > 0 else "max"))
        errors: list[str] = []
        if v2 and writes:
            errors += self._enable_v2_controllers(cgroups_path, {c for c, _, _ in writes})
        for controller, name, value in writes:
            d = self.path(controller, cgroups_path)
            if d is None:
                errors.append(f"the {controller} cgroup controller is not mounted")
                continue
            try:
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, name), "w", encoding="ascii") as f:
                    f.write(value)
            except OSError as e:
                errors.append(f"{os.path.join(d, name)}: {e}")
        return errors

    def _enable_v2_controllers(self, cgroups_path: str, controllers: set[str]) -> list[str]:
        """v2: a controller's files exist in a cgroup only when its parent lists it in
        ``cgroup.subtree_control``: enabled from the root down to ``cgroups_path``'s parent."""
        parts = [p for p in cgroups_path.strip("/").split("/") if p]
        errors: list[str] = []
        d = self.root
        for part in parts:
            try:
                with open(os.path.join(d, "cgroup.subtree_control"), "w", encoding="ascii") as f:
                    f.write(" ".join(f"+{c}" for c in sorted(controllers)))
            except OSError as e:
                errors.append(f"{d}/cgroup.subtree_control: {e}")
            d = os.path.join(d, part)
            try:
                os.makedirs(d, exist_ok=True)
            except OSError as e:
                errors.append(f"{d}: {e}")
                break
        return errors

    def enter(self, cgroups_path: str, pid: int, skip: Iterable[str] = ("cpuset",)) -> list[str]:
        """Move process ``pid`` into ``cgroups_path`` in every hierarchy (made as needed) but
        ``skip`` (a new v1 cpuset cgroup has no cpus until someone gives it some); returns what
        failed, one line per hierarchy."""
        errors: list[str] = []
        if self.version == 2:
            targets = [os.path.join(self.root, cgroups_path.strip("/"))]
        else:
            skipped = set(skip)
            targets = sorted(
                {os.path.join(m, cgroups_path.strip("/")) for c, m in self.mounts.items() if c not in skipped}
                - {os.path.join(m, cgroups_path.strip("/")) for c, m in self.mounts.items() if c in skipped}
            )
        for d in targets:
            try:
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "cgroup.procs"), "w", encoding="ascii") as f:
                    f.write(str(pid))
            except OSError as e:
                errors.append(f"{d}: {e}")
        return errors

    def remove(self, cgroups_paths: Iterable[str]) -> list[str]:
        """rmdir each path (deepest first) in every hierarchy where it is empty of processes and
        children; returns the directories that could not be removed (busy)."""
        busy: list[str] = []
        paths = sorted(set(cgroups_paths), key=lambda p: -p.strip("/").count("/"))
        for cg in paths:
            if not cg.strip("/"):
                continue
            for d in self.directories(cg):
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    continue
                except OSError:
                    busy.append(d)
        return busy
