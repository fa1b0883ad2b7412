"""Pod Security Standards as kube's ``k8s.io/pod-security-admission`` defines them: the
privileged / baseline / restricted levels, their checks with each check's version history, and
the namespace labels that choose a level and version per mode. Pure logic, nothing here does
I/O: the admission plugin (``apiserver/admission/podsecurity.py``) is the shell around it.

How a level is evaluated (kube's ``policy/registry.go``):

- every check has a level (baseline or restricted) and one or more versions, each with the
  first policy version it applies to; a policy version ``v1.X`` runs, per check, the newest
  version whose minimum is ``<= v1.X`` (a check newer than ``v1.X`` does not run at all);
  ``latest``, and any version newer than the newest check version (:data:`MAX_VERSION`), mean
  :data:`MAX_VERSION`;
- baseline runs the baseline checks; restricted runs the restricted checks plus the baseline
  checks that no restricted check (at that version) overrides (``hostPathVolumes`` is covered by
  ``restrictedVolumes``, ``capabilities_baseline`` by ``capabilities_restricted``, ...);
- results come baseline checks first, then restricted ones, each group sorted by check ID, so
  that messages are stable: ``allowPrivilegeEscalation != false (container "c" must set
  securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (...)``.

Each check reads a pod's metadata and spec (the wire JSON) and returns ``None`` when the pod is
allowed, or a :class:`Violation` with kube's exact forbidden reason and detail texts.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from k8py.api import errors
from k8py.api.validation.meta import is_dns1123_label, is_dns1123_subdomain

Obj = dict[str, Any]

__all__ = [
    "AUDIT_VIOLATIONS_ANNOTATION",
    "ENFORCED_POLICY_ANNOTATION",
    "EXEMPT_ANNOTATION",
    "LABEL_PREFIX",
    "MAX_VERSION",
    "Configuration",
    "Level",
    "LevelVersion",
    "PodView",
    "Policy",
    "Version",
    "Violation",
    "evaluate",
    "evaluate_pod",
    "forbidden_detail",
    "forbidden_reason",
    "is_significant_pod_update",
    "parse_configuration",
    "parse_level",
    "parse_version",
    "pod_spec_of",
    "policy_to_evaluate",
]

# --------------------------------------------------------------------------- labels and levels

LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE_LABEL = LABEL_PREFIX + "enforce"
ENFORCE_VERSION_LABEL = LABEL_PREFIX + "enforce-version"
AUDIT_LABEL = LABEL_PREFIX + "audit"
AUDIT_VERSION_LABEL = LABEL_PREFIX + "audit-version"
WARN_LABEL = LABEL_PREFIX + "warn"
WARN_VERSION_LABEL = LABEL_PREFIX + "warn-version"

# Audit annotations (kube's api.AuditAnnotationPrefix + key).
ENFORCED_POLICY_ANNOTATION = LABEL_PREFIX + "enforce-policy"
AUDIT_VIOLATIONS_ANNOTATION = LABEL_PREFIX + "audit-violations"
EXEMPT_ANNOTATION = LABEL_PREFIX + "exempt"
ERROR_ANNOTATION = LABEL_PREFIX + "error"

# The newest policy version any check has (sysctls' 1.37 safe set): what ``latest`` evaluates.
MAX_VERSION = 37


class Level(str, enum.Enum):
    PRIVILEGED = "privileged"
    BASELINE = "baseline"
    RESTRICTED = "restricted"

    def __str__(self) -> str:
        return self.value


_STRICTNESS = {Level.PRIVILEGED: 0, Level.BASELINE: 1, Level.RESTRICTED: 2}


def compare_levels(a: Level, b: Level) -> int:
    """-1 when ``a`` is less strict than ``b``, 0 when equal, 1 when stricter (kube's CompareLevels)."""
    d = _STRICTNESS[a] - _STRICTNESS[b]
    return (d > 0) - (d < 0)


@dataclass(frozen=True, slots=True)
class Version:
    """``v1.X`` (``minor``) or ``latest`` (``minor`` None)."""

    minor: int | None = None

    @property
    def latest(self) -> bool:
        return self.minor is None

    def effective(self) -> int:
        """The policy version the checks run at: ``latest`` and future versions are the newest."""
        return MAX_VERSION if self.minor is None else min(self.minor, MAX_VERSION)

    def __str__(self) -> str:
        return "latest" if self.minor is None else f"v1.{self.minor}"


LATEST = Version()


@dataclass(frozen=True, slots=True)
class LevelVersion:
    level: Level = Level.PRIVILEGED
    version: Version = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


@dataclass(frozen=True, slots=True)
class Policy:
    enforce: LevelVersion = LevelVersion()
    audit: LevelVersion = LevelVersion()
    warn: LevelVersion = LevelVersion()


_VALID_LEVELS = "privileged, baseline, restricted"
_LEVELS = {level.value: level for level in Level}
_VERSION_RE = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")


def parse_level(value: Any) -> tuple[Level, str]:
    """The level, and an error detail ("" when valid); an invalid level means restricted."""
    if isinstance(value, str) and value in _LEVELS:
        return _LEVELS[value], ""
    return Level.RESTRICTED, f"must be one of {_VALID_LEVELS}"


def parse_version(value: Any) -> tuple[Version, str]:
    """The version, and an error detail ("" when valid); an invalid version means latest."""
    if value == "latest":
        return LATEST, ""
    m = _VERSION_RE.match(value) if isinstance(value, str) else None
    if m is None:
        return LATEST, 'must be "latest" or "v1.x"'
    return Version(int(m.group(1))), ""


def policy_to_evaluate(labels: Mapping[str, str] | None, defaults: Policy) -> tuple[Policy, list[errors.FieldError]]:
    """The namespace's policy from its labels, falling back to ``defaults`` for a label not set.
    A policy is always returned: a bad enforce label means restricted:latest (fail closed), a
    bad audit or warn level means privileged (fail open), as kube's PolicyToEvaluate."""
    if not labels:
        return defaults, []
    errs: list[errors.FieldError] = []

    def bad(label: str, value: Any, detail: str) -> None:
        if detail:
            errs.append(errors.invalid(f"metadata.labels[{label}]", value, detail))

    modes = {"enforce": defaults.enforce, "audit": defaults.audit, "warn": defaults.warn}
    for mode, level_label, version_label in (("enforce", ENFORCE_LABEL, ENFORCE_VERSION_LABEL),
                                              ("audit", AUDIT_LABEL, AUDIT_VERSION_LABEL),
                                              ("warn", WARN_LABEL, WARN_VERSION_LABEL)):
        lv = modes[mode]
        if level_label in labels:
            value = labels[level_label]
            level, detail = parse_level(value)
            bad(level_label, value, detail)
            if detail and mode != "enforce":
                level = Level.PRIVILEGED  # fail open for audit and warn
            lv = LevelVersion(level, lv.version)
        if version_label in labels:
            value = labels[version_label]
            version, detail = parse_version(value)
            bad(version_label, value, detail)
            lv = LevelVersion(lv.level, version)
        modes[mode] = lv
    return Policy(modes["enforce"], modes["audit"], modes["warn"]), errs


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Violation:
    """A check that forbade the pod: its short reason, and the detail naming what is wrong."""

    reason: str
    detail: str = ""


def forbidden_reason(results: list[Violation]) -> str:
    """``host ports, privileged`` (kube's AggregateCheckResult.ForbiddenReason)."""
    return ", ".join(v.reason for v in results)


def forbidden_detail(results: list[Violation]) -> str:
    """``hostPort (container "a" uses hostPort 80), privileged (...)`` (ForbiddenDetail)."""
    return ", ".join(f"{v.reason} ({v.detail})" if v.detail else v.reason for v in results)


# --------------------------------------------------------------------------- helpers


def _d(x: Any) -> Obj:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _join_quote(items: list[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def _containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, containers, then ephemeral containers (kube's visitContainers)."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _l(spec.get(key)):
            if isinstance(c, dict):
                yield c


def _name(c: Obj) -> str:
    return str(c.get("name") or "")


def _sc(c: Obj) -> Obj | None:
    sc = c.get("securityContext")
    return sc if isinstance(sc, dict) else None


def _pod_sc(spec: Obj) -> Obj | None:
    sc = spec.get("securityContext")
    return sc if isinstance(sc, dict) else None


def _windows(spec: Obj) -> bool:
    return _d(spec.get("os")).get("name") == "windows"


def _user_namespace(spec: Obj) -> bool:
    """``hostUsers: false``: the pod runs in a user namespace (KEP-127's relaxations)."""
    return spec.get("hostUsers") is False


def _setters(pod: bool, containers: list[str]) -> list[str]:
    out = ["pod"] if pod else []
    if containers:
        out.append(f"{_plural('container', 'containers', len(containers))} {_join_quote(containers)}")
    return out


class PodView:
    """A pod (or pod template) as the checks read it: its containers gathered once (init,
    regular, ephemeral), and the results of the checks already run on it, so that evaluating
    several levels (enforce, audit, warn) runs each check once."""

    __slots__ = ("containers", "meta", "pod_sc", "results", "spec")

    def __init__(self, meta: Mapping[str, Any] | None, spec: Mapping[str, Any] | None) -> None:
        self.meta = _d(meta)
        self.spec = _d(spec)
        self.containers = tuple(_containers(self.spec))
        self.pod_sc = _pod_sc(self.spec)
        self.results: dict[CheckFn, Violation | None] = {}


CheckFn = Callable[[PodView], "Violation | None"]

# --------------------------------------------------------------------------- baseline checks


def _app_armor_1_0(p: PodView) -> Violation | None:
    allowed_types = ("RuntimeDefault", "Localhost")
    bad_values: set[str] = set()
    pod_bad = False
    psc = p.pod_sc
    if psc is not None and isinstance(psc.get("appArmorProfile"), dict):
        t = str(psc["appArmorProfile"].get("type") or "")
        if t not in allowed_types:
            pod_bad = True
            bad_values.add(t)
    bad_containers = []
    for c in p.containers:
        sc = _sc(c)
        if sc is not None and isinstance(sc.get("appArmorProfile"), dict):
            t = str(sc["appArmorProfile"].get("type") or "")
            if t not in allowed_types:
                bad_containers.append(_name(c))
                bad_values.add(t)
    setters = _setters(pod_bad, bad_containers)
    prefix = "container.apparmor.security.beta.kubernetes.io/"
    annotations = sorted(f"{k}={_go_quote(v)}" for k, v in _d(p.meta.get("annotations")).items()
                         if k.startswith(prefix) and not _allowed_apparmor_annotation(str(v)))
    values = sorted(bad_values) + annotations
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return Violation(_plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
                     f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(values)}")


def _allowed_apparmor_annotation(v: str) -> bool:
    return v in ("", "runtime/default") or v.startswith("localhost/")


def _go_quote(s: Any) -> str:
    """Go's %q for the plain strings of annotations."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


_CAPABILITIES_BASELINE = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def _capabilities_baseline_1_0(p: PodView) -> Violation | None:
    bad_containers = []
    caps: set[str] = set()
    for c in p.containers:
        sc = _sc(c)
        added = [str(x) for x in _l(_d(sc.get("capabilities")).get("add"))] if sc is not None else []
        bad = [x for x in added if x not in _CAPABILITIES_BASELINE]
        if bad:
            bad_containers.append(_name(c))
            caps.update(bad)
    if not bad_containers:
        return None
    return Violation("non-default capabilities",
                     f"{_plural('container', 'containers', len(bad_containers))} {_join_quote(bad_containers)} "
                     f"must not include {_join_quote(sorted(caps))} in securityContext.capabilities.add")


def _host_namespaces_1_0(p: PodView) -> Violation | None:
    used = [f"{f}=true" for f in ("hostNetwork", "hostPID", "hostIPC") if p.spec.get(f) is True]
    return Violation("host namespaces", ", ".join(used)) if used else None


def _host_path_volumes_1_0(p: PodView) -> Violation | None:
    names = [str(v.get("name") or "") for v in _l(p.spec.get("volumes"))
             if isinstance(v, dict) and v.get("hostPath") is not None]
    if not names:
        return None
    return Violation("hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}")


def _host_ports_1_0(p: PodView) -> Violation | None:
    bad_containers = []
    ports: set[str] = set()
    for c in p.containers:
        found = [str(p["hostPort"]) for p in _l(c.get("ports")) if isinstance(p, dict) and p.get("hostPort")]
        if found:
            bad_containers.append(_name(c))
            ports.update(found)
    if not bad_containers:
        return None
    n = len(bad_containers)
    return Violation("hostPort", f"{_plural('container', 'containers', n)} {_join_quote(bad_containers)} "
                                 f"{_plural('uses', 'use', n)} {_plural('hostPort', 'hostPorts', len(ports))} "
                                 f"{', '.join(sorted(ports))}")


def _host_probes_and_lifecycle_1_34(p: PodView) -> Violation | None:
    bad_containers: set[str] = set()
    hosts: set[str] = set()
    for c in p.containers:
        handlers = [_d(c.get(p)) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        lifecycle = _d(c.get("lifecycle"))
        handlers += [_d(lifecycle.get("postStart")), _d(lifecycle.get("preStop"))]
        for h in handlers:
            for action in ("httpGet", "tcpSocket"):
                host = _d(h.get(action)).get("host")
                if host:
                    bad_containers.add(_name(c))
                    hosts.add(str(host))
    if not bad_containers:
        return None
    n = len(bad_containers)
    return Violation("probe or lifecycle host",
                     f"{_plural('container', 'containers', n)} {_join_quote(sorted(bad_containers))} "
                     f"{_plural('uses', 'use', n)} "
                     f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
                     f"{_join_quote(sorted(hosts))}")


def _privileged_1_0(p: PodView) -> Violation | None:
    bad = [_name(c) for c in p.containers if (_sc(c) or {}).get("privileged") is True]
    if not bad:
        return None
    return Violation("privileged", f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} "
                                   "must not set securityContext.privileged=true")


def _proc_mount_1_0(p: PodView) -> Violation | None:
    bad_containers = []
    types: set[str] = set()
    for c in p.containers:
        pm = (_sc(c) or {}).get("procMount")
        if pm is not None and pm != "Default":
            bad_containers.append(_name(c))
            types.add(str(pm))
    if not bad_containers:
        return None
    return Violation("procMount",
                     f"{_plural('container', 'containers', len(bad_containers))} {_join_quote(bad_containers)} "
                     f"must not set securityContext.procMount to {_join_quote(sorted(types))}")


def _proc_mount_1_35_baseline(p: PodView) -> Violation | None:
    # a pod in a user namespace may unmask /proc under baseline (not under restricted)
    return None if _user_namespace(p.spec) else _proc_mount_1_0(p)


_SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31 = _SELINUX_TYPES_1_0 | {"container_engine_t"}


def _selinux(allowed: frozenset[str]) -> CheckFn:
    def check(p: PodView) -> Violation | None:
        bad_types: set[str] = set()
        set_user = set_role = False

        def valid(opts: Obj) -> bool:
            nonlocal set_user, set_role
            ok = True
            t = str(opts.get("type") or "")
            if t not in allowed:
                ok = False
                bad_types.add(t)
            if opts.get("user"):
                set_user = True
                ok = False
            if opts.get("role"):
                set_role = True
                ok = False
            return ok

        psc = p.pod_sc
        pod_bad = psc is not None and isinstance(psc.get("seLinuxOptions"), dict) and not valid(psc["seLinuxOptions"])
        bad_containers = [_name(c) for c in p.containers
                          if isinstance((_sc(c) or {}).get("seLinuxOptions"), dict)
                          and not valid(_d(_sc(c)).get("seLinuxOptions") or {})]
        setters = _setters(pod_bad, bad_containers)
        if not setters:
            return None
        data = []
        if bad_types:
            data.append(f"{_plural('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
        if set_user:
            data.append("user may not be set")
        if set_role:
            data.append("role may not be set")
        return Violation("seLinuxOptions",
                         f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}")

    return check


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_baseline_1_0(p: PodView) -> Violation | None:
    """Before policy 1.19 seccomp was set with the alpha annotations."""
    annotations = _d(p.meta.get("annotations"))

    def ok(v: Any) -> bool:
        return v in ("runtime/default", "docker/default") or str(v).startswith("localhost/")

    bad: set[str] = set()
    if _SECCOMP_POD_ANNOTATION in annotations and not ok(annotations[_SECCOMP_POD_ANNOTATION]):
        bad.add(f"{_SECCOMP_POD_ANNOTATION}={_go_quote(annotations[_SECCOMP_POD_ANNOTATION])}")
    for c in p.containers:
        key = _SECCOMP_CONTAINER_ANNOTATION + _name(c)
        if key in annotations and not ok(annotations[key]):
            bad.add(f"{key}={_go_quote(annotations[key])}")
    if not bad:
        return None
    return Violation("seccompProfile", f"forbidden {_plural('annotation', 'annotations', len(bad))} "
                                       f"{', '.join(sorted(bad))}")


def _valid_seccomp(profile: Obj) -> bool:
    return profile.get("type") in ("RuntimeDefault", "Localhost")


def _seccomp(restricted: bool, windows_exempt: bool) -> CheckFn:
    def check(p: PodView) -> Violation | None:
        if windows_exempt and _windows(p.spec):
            return None
        bad_values: set[str] = set()
        pod_bad = pod_set = False
        psc = p.pod_sc
        if psc is not None and isinstance(psc.get("seccompProfile"), dict):
            if _valid_seccomp(psc["seccompProfile"]):
                pod_set = True
            else:
                pod_bad = True
                bad_values.add(str(psc["seccompProfile"].get("type") or ""))
        explicit, implicit = [], []
        for c in p.containers:
            profile = (_sc(c) or {}).get("seccompProfile")
            if isinstance(profile, dict):
                if not _valid_seccomp(profile):
                    explicit.append(_name(c))
                    bad_values.add(str(profile.get("type") or ""))
            elif not pod_set:
                implicit.append(_name(c))
        setters = _setters(pod_bad, explicit)
        if setters:
            return Violation("seccompProfile", f"{' and '.join(setters)} must not set "
                                               f"securityContext.seccompProfile.type to {_join_quote(sorted(bad_values))}")
        if restricted and implicit:
            return Violation("seccompProfile",
                             f"pod or {_plural('container', 'containers', len(implicit))} {_join_quote(implicit)} "
                             'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')
        return None

    return check


_SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                          "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"})
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                                 "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
_SYSCTLS_1_37 = _SYSCTLS_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(p: PodView) -> Violation | None:
        bad = [str(s.get("name") or "") for s in _l((p.pod_sc or {}).get("sysctls"))
               if isinstance(s, dict) and s.get("name") not in allowed]
        return Violation("forbidden sysctls", ", ".join(bad)) if bad else None

    return check


def _windows_host_process_1_0(p: PodView) -> Violation | None:
    def host_process(sc: Obj | None) -> bool:
        return sc is not None and _d(sc.get("windowsOptions")).get("hostProcess") is True

    bad = [_name(c) for c in p.containers if host_process(_sc(c))]
    setters = _setters(host_process(p.pod_sc), bad)
    if not setters:
        return None
    return Violation("hostProcess",
                     f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")


# --------------------------------------------------------------------------- restricted checks


def _allow_privilege_escalation(windows_exempt: bool) -> CheckFn:
    def check(p: PodView) -> Violation | None:
        if windows_exempt and _windows(p.spec):
            return None
        bad = [_name(c) for c in p.containers if (_sc(c) or {}).get("allowPrivilegeEscalation") is not False]
        if not bad:
            return None
        return Violation("allowPrivilegeEscalation != false",
                         f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} "
                         "must set securityContext.allowPrivilegeEscalation=false")

    return check


def _capabilities_restricted(windows_exempt: bool) -> CheckFn:
    def check(p: PodView) -> Violation | None:
        if windows_exempt and _windows(p.spec):
            return None
        missing_drop, adding = [], []
        forbidden: set[str] = set()
        for c in p.containers:
            sc = _sc(c)
            caps = sc.get("capabilities") if sc is not None else None
            if not isinstance(caps, dict):
                missing_drop.append(_name(c))
                continue
            if "ALL" not in [str(x) for x in _l(caps.get("drop"))]:
                missing_drop.append(_name(c))
            bad = [str(x) for x in _l(caps.get("add")) if x != "NET_BIND_SERVICE"]
            if bad:
                adding.append(_name(c))
                forbidden.update(bad)
        details = []
        if missing_drop:
            details.append(f"{_plural('container', 'containers', len(missing_drop))} {_join_quote(missing_drop)} "
                           'must set securityContext.capabilities.drop=["ALL"]')
        if adding:
            details.append(f"{_plural('container', 'containers', len(adding))} {_join_quote(adding)} "
                           f"must not include {_join_quote(sorted(forbidden))} in securityContext.capabilities.add")
        return Violation("unrestricted capabilities", "; ".join(details)) if details else None

    return check


def _proc_mount_restricted_1_35(p: PodView) -> Violation | None:
    return _proc_mount_1_0(p)  # no user-namespace relaxation under restricted


_ALLOWED_VOLUME_SOURCES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                           "persistentVolumeClaim", "projected", "secret")
_RESTRICTED_VOLUME_SOURCES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
                              "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
                              "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
                              "scaleIO", "storageos")


def _restricted_volumes_1_0(p: PodView) -> Violation | None:
    bad_volumes = []
    types: set[str] = set()
    for v in _l(p.spec.get("volumes")):
        if not isinstance(v, dict) or any(v.get(s) is not None for s in _ALLOWED_VOLUME_SOURCES):
            continue
        bad_volumes.append(str(v.get("name") or ""))
        types.add(next((s for s in _RESTRICTED_VOLUME_SOURCES if v.get(s) is not None), "unknown"))
    if not bad_volumes:
        return None
    n = len(bad_volumes)
    return Violation("restricted volume types",
                     f"{_plural('volume', 'volumes', n)} {_join_quote(bad_volumes)} {_plural('uses', 'use', n)} "
                     f"{_plural('restricted volume type', 'restricted volume types', len(types))} "
                     f"{_join_quote(sorted(types))}")


def _run_as_non_root(userns_relaxed: bool) -> CheckFn:
    def check(p: PodView) -> Violation | None:
        if userns_relaxed and _user_namespace(p.spec):
            return None
        pod_bad = pod_non_root = False
        value = (p.pod_sc or {}).get("runAsNonRoot")
        if value is not None:
            pod_bad, pod_non_root = value is False, value is not False
        explicit, implicit = [], []
        for c in p.containers:
            cv = (_sc(c) or {}).get("runAsNonRoot")
            if cv is not None:
                if cv is False:
                    explicit.append(_name(c))
            elif not pod_non_root:
                implicit.append(_name(c))
        setters = _setters(pod_bad, explicit)
        if setters:
            return Violation("runAsNonRoot != true",
                             f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
        if implicit:
            return Violation("runAsNonRoot != true",
                             f"pod or {_plural('container', 'containers', len(implicit))} {_join_quote(implicit)} "
                             "must set securityContext.runAsNonRoot=true")
        return None

    return check


def _run_as_user(userns_relaxed: bool) -> CheckFn:
    def check(p: PodView) -> Violation | None:
        if userns_relaxed and _user_namespace(p.spec):
            return None
        pod_bad = (p.pod_sc or {}).get("runAsUser") == 0
        bad = [_name(c) for c in p.containers if (_sc(c) or {}).get("runAsUser") == 0]
        setters = _setters(pod_bad, bad)
        if not setters:
            return None
        return Violation("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")

    return check


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True, slots=True)
class VersionedCheck:
    minimum: int  # the first policy version v1.<minimum> this revision applies to
    check: CheckFn
    overrides: tuple[str, ...] = ()  # baseline check IDs this restricted check replaces


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    level: Level
    versions: tuple[VersionedCheck, ...]

    def at(self, minor: int) -> VersionedCheck | None:
        """The revision in force at policy version v1.<minor> (None: the check is newer)."""
        found = None
        for v in self.versions:
            if v.minimum <= minor:
                found = v
        return found


B, R = Level.BASELINE, Level.RESTRICTED
CHECKS: tuple[Check, ...] = (
    Check("appArmorProfile", B, (VersionedCheck(0, _app_armor_1_0),)),
    Check("capabilities_baseline", B, (VersionedCheck(0, _capabilities_baseline_1_0),)),
    Check("hostNamespaces", B, (VersionedCheck(0, _host_namespaces_1_0),)),
    Check("hostPathVolumes", B, (VersionedCheck(0, _host_path_volumes_1_0),)),
    Check("hostPorts", B, (VersionedCheck(0, _host_ports_1_0),)),
    Check("hostProbesAndHostLifecycle", B, (VersionedCheck(34, _host_probes_and_lifecycle_1_34),)),
    Check("privileged", B, (VersionedCheck(0, _privileged_1_0),)),
    Check("procMount", B, (VersionedCheck(0, _proc_mount_1_0), VersionedCheck(35, _proc_mount_1_35_baseline))),
    Check("seLinuxOptions", B, (VersionedCheck(0, _selinux(_SELINUX_TYPES_1_0)),
                                VersionedCheck(31, _selinux(_SELINUX_TYPES_1_31)))),
    Check("seccompProfile_baseline", B, (VersionedCheck(0, _seccomp_baseline_1_0),
                                         VersionedCheck(19, _seccomp(restricted=False, windows_exempt=False)))),
    Check("sysctls", B, (VersionedCheck(0, _sysctls(_SYSCTLS_1_0)), VersionedCheck(27, _sysctls(_SYSCTLS_1_27)),
                         VersionedCheck(29, _sysctls(_SYSCTLS_1_29)), VersionedCheck(32, _sysctls(_SYSCTLS_1_32)),
                         VersionedCheck(37, _sysctls(_SYSCTLS_1_37)))),
    Check("windowsHostProcess", B, (VersionedCheck(0, _windows_host_process_1_0),)),
    Check("allowPrivilegeEscalation", R, (VersionedCheck(8, _allow_privilege_escalation(windows_exempt=False)),
                                          VersionedCheck(25, _allow_privilege_escalation(windows_exempt=True)))),
    Check("capabilities_restricted", R, (
        VersionedCheck(22, _capabilities_restricted(windows_exempt=False), ("capabilities_baseline",)),
        VersionedCheck(25, _capabilities_restricted(windows_exempt=True), ("capabilities_baseline",)))),
    Check("procMount_restricted", R, (VersionedCheck(35, _proc_mount_restricted_1_35, ("procMount",)),)),
    Check("restrictedVolumes", R, (VersionedCheck(0, _restricted_volumes_1_0, ("hostPathVolumes",)),)),
    Check("runAsNonRoot", R, (VersionedCheck(0, _run_as_non_root(userns_relaxed=False)),
                              VersionedCheck(35, _run_as_non_root(userns_relaxed=True)))),
    Check("runAsUser", R, (VersionedCheck(23, _run_as_user(userns_relaxed=False)),
                           VersionedCheck(35, _run_as_user(userns_relaxed=True)))),
    Check("seccompProfile_restricted", R, (
        VersionedCheck(19, _seccomp(restricted=True, windows_exempt=False), ("seccompProfile_baseline",)),
        VersionedCheck(25, _seccomp(restricted=True, windows_exempt=True), ("seccompProfile_baseline",)))),
)


def _checks_at(level: Level, minor: int) -> tuple[CheckFn, ...]:
    baseline = {c.id: v for c in CHECKS if c.level is B and (v := c.at(minor)) is not None}
    if level is B:
        return tuple(baseline[i].check for i in sorted(baseline))
    restricted = {c.id: v for c in CHECKS if c.level is R and (v := c.at(minor)) is not None}
    overridden = {o for v in restricted.values() for o in v.overrides}
    kept = sorted(i for i in baseline if i not in overridden)
    return tuple(baseline[i].check for i in kept) + tuple(restricted[i].check for i in sorted(restricted))


# (level, policy version) -> the checks in message order; built once (kube's inflateVersions)
_TABLE: dict[tuple[Level, int], tuple[CheckFn, ...]] = {
    (level, minor): _checks_at(level, minor) for level in (B, R) for minor in range(MAX_VERSION + 1)}


def evaluate_pod(lv: LevelVersion, meta: Mapping[str, Any] | None, spec: Mapping[str, Any] | None) -> list[Violation]:
    """The violations of the pod (metadata and spec) at a level and version, in kube's order."""
    return evaluate(lv, PodView(meta, spec))


def evaluate(lv: LevelVersion, pod: PodView) -> list[Violation]:
    """:func:`evaluate_pod` on a :class:`PodView`; a check already run on it is not run again."""
    if lv.level is Level.PRIVILEGED:
        return []
    out = []
    results = pod.results
    for check in _TABLE[(lv.level, lv.version.effective())]:
        if check in results:
            v = results[check]
        else:
            v = results[check] = check(pod)
        if v is not None:
            out.append(v if v.reason else Violation("unknown forbidden reason", v.detail))
    return out


# --------------------------------------------------------------------------- objects with pods

# What holds a pod template, by (group, kind): the path to the template (kube's
# DefaultPodSpecExtractor; PodTemplate's own is "template").
_TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "PodTemplate"): ("template",),
    ("", "ReplicationController"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
}


def has_pod_template(group: str, kind: str) -> bool:
    return (group, kind) in _TEMPLATE_PATHS


def pod_spec_of(group: str, kind: str, obj: Mapping[str, Any]) -> tuple[Obj, Obj] | None:
    """(metadata, spec) of a Pod, or of the pod template of a workload; None when it has none."""
    if (group, kind) == ("", "Pod"):
        return _d(obj.get("metadata")), _d(obj.get("spec"))
    path = _TEMPLATE_PATHS.get((group, kind))
    if path is None:
        return None
    cur: Any = obj
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
    if not isinstance(cur, dict):
        return None
    return _d(cur.get("metadata")), _d(cur.get("spec"))


def is_significant_pod_update(pod: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether a pod update can change what the checks see (kube's isSignificantPodUpdate):
    pods are mostly immutable, so only images, the seccomp annotations and added or changed
    ephemeral containers count; a label or status change is never re-evaluated."""
    ann, old_ann = _d(_d(pod.get("metadata")).get("annotations")), _d(_d(old.get("metadata")).get("annotations"))
    if ann.get(_SECCOMP_POD_ANNOTATION) != old_ann.get(_SECCOMP_POD_ANNOTATION):
        return True
    spec, old_spec = _d(pod.get("spec")), _d(old.get("spec"))

    def changed(c: Obj, oc: Obj) -> bool:
        key = _SECCOMP_CONTAINER_ANNOTATION + _name(c)
        return c.get("image") != oc.get("image") or ann.get(key) != old_ann.get(key)

    for key in ("containers", "initContainers"):
        cs, ocs = _l(spec.get(key)), _l(old_spec.get(key))
        if len(cs) != len(ocs):
            return True
        if any(changed(_d(c), _d(oc)) for c, oc in zip(cs, ocs, strict=True)):
            return True
    old_ephemeral = {_name(_d(c)): _d(c) for c in _l(old_spec.get("ephemeralContainers"))}
    for c in _l(spec.get("ephemeralContainers")):
        oc = old_ephemeral.get(_name(_d(c)))
        if oc is None or changed(_d(c), oc):
            return True
    return False


# --------------------------------------------------------------------------- PodSecurityConfiguration

CONFIG_GROUP = "pod-security.admission.config.k8s.io"
CONFIG_VERSIONS = ("v1", "v1beta1", "v1alpha1")


@dataclass(frozen=True, slots=True)
class Configuration:
    """The PodSecurity plugin's configuration: the policy for namespaces without labels, and who
    and what is exempt. kube's defaults: privileged:latest everywhere, nothing exempt."""

    defaults: Policy = Policy()
    exempt_usernames: frozenset[str] = frozenset()
    exempt_runtime_classes: frozenset[str] = frozenset()
    exempt_namespaces: frozenset[str] = frozenset()


def parse_configuration(doc: Any) -> tuple[Configuration, list[errors.FieldError]]:
    """A ``PodSecurityConfiguration`` (``pod-security.admission.config.k8s.io/v1``), checked as
    kube-apiserver does (validation.ValidatePodSecurityConfiguration), unknown fields refused."""
    errs: list[errors.FieldError] = []
    if not isinstance(doc, dict):
        return Configuration(), [errors.invalid("", doc, "must be a PodSecurityConfiguration object")]
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    wanted = [f"{CONFIG_GROUP}/{v}" for v in CONFIG_VERSIONS]
    if api_version not in wanted:
        errs.append(errors.not_supported("apiVersion", api_version, wanted))
    if kind != "PodSecurityConfiguration":
        errs.append(errors.not_supported("kind", kind, ["PodSecurityConfiguration"]))
    errs += _unknown_fields(doc, ("apiVersion", "kind", "defaults", "exemptions"), "")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        errs.append(errors.invalid("defaults", defaults, "must be an object"))
        defaults = {}
    errs += _unknown_fields(defaults, ("enforce", "enforce-version", "audit", "audit-version", "warn",
                                       "warn-version"), "defaults")
    modes = []
    for mode in ("enforce", "audit", "warn"):
        level_value = defaults.get(mode, "privileged")
        version_value = defaults.get(f"{mode}-version", "latest")
        level, detail = parse_level(level_value)
        if detail:
            errs.append(errors.invalid(f"defaults.{mode}", level_value, detail))
        version, detail = parse_version(version_value)
        if detail:
            errs.append(errors.invalid(f"defaults.{mode}-version", version_value, detail))
        modes.append(LevelVersion(level, version))
    exemptions = doc.get("exemptions") or {}
    if not isinstance(exemptions, dict):
        errs.append(errors.invalid("exemptions", exemptions, "must be an object"))
        exemptions = {}
    errs += _unknown_fields(exemptions, ("usernames", "runtimeClasses", "namespaces"), "exemptions")
    lists: dict[str, frozenset[str]] = {}
    for name, check in (("namespaces", is_dns1123_label), ("runtimeClasses", is_dns1123_subdomain),
                        ("usernames", None)):
        values = exemptions.get(name) or []
        path = f"exemptions.{name}"
        if not isinstance(values, list):
            errs.append(errors.invalid(path, values, "must be a list of strings"))
            values = []
        seen: set[str] = set()
        for i, v in enumerate(values):
            p = f"{path}[{i}]"
            if not isinstance(v, str):
                errs.append(errors.invalid(p, v, "must be a string"))
            elif check is None and v == "":
                errs.append(errors.required(p))
            elif check is not None and (bad := check(v)):
                errs.append(errors.invalid(p, v, ", ".join(bad)))
            elif v in seen:
                errs.append(errors.duplicate(p, v))
            else:
                seen.add(v)
        lists[name] = frozenset(seen)
    conf = Configuration(Policy(*modes), exempt_usernames=lists["usernames"],
                         exempt_runtime_classes=lists["runtimeClasses"], exempt_namespaces=lists["namespaces"])
    return conf, errs


def _unknown_fields(d: Mapping[str, Any], known: tuple[str, ...], path: str) -> list[errors.FieldError]:
    """kube decodes the file strictly: a misspelt field is an error, not a silent default."""
    return [errors.forbidden(f"{path}.{k}" if path else str(k), "unknown field") for k in d if k not in known]
