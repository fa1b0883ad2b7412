"""``KubeSchedulerConfiguration`` (kubescheduler.config.k8s.io/v1) files: parsing, defaulting,
validation with field paths, and building one :class:`~k8py.scheduler.framework.Framework` per
profile.

Plugin sets merge as kube's do: the default plugins are enabled through ``multiPoint``; a
profile's ``multiPoint`` and per-extension-point ``enabled``/``disabled`` lists (``*`` for all)
change that; a plugin named at a specific extension point overrides its multiPoint entry there
(that is how a score weight is changed). ``pluginConfig`` gives each plugin its ``args``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from k8py.api import gotext
from k8py.scheduler.framework import Framework, Handle, PluginFactory, PluginSpec
from k8py.scheduler.plugins import REGISTRY, VALIDATORS

__all__ = [
    "DEFAULT_PLUGINS",
    "DEFAULT_SCHEDULER_NAME",
    "EXTENSION_POINTS",
    "ConfigError",
    "LeaderElectionSettings",
    "Profile",
    "SchedulerConfiguration",
    "build_framework",
    "default_config",
    "load_config",
    "parse_config",
]

Obj = dict[str, Any]

API_VERSIONS = ("kubescheduler.config.k8s.io/v1",)
KIND = "KubeSchedulerConfiguration"
DEFAULT_SCHEDULER_NAME = "default-scheduler"

# extension point -> the plugin method(s) that put a plugin there
EXTENSION_POINTS: dict[str, tuple[str, ...]] = {
    "queueSort": ("less",),
    "preEnqueue": ("pre_enqueue",),
    "preFilter": ("pre_filter",),
    "filter": ("filter",),
    "postFilter": ("post_filter",),
    "preScore": ("pre_score",),
    "score": ("score", "score_nodes"),
    "reserve": ("reserve",),
    "permit": ("permit",),
    "preBind": ("pre_bind",),
    "bind": ("bind",),
    "postBind": ("post_bind",),
}

# kube's v1 default plugins (getDefaultPlugins), all through multiPoint, in this order.
DEFAULT_PLUGINS: tuple[PluginSpec, ...] = (
    PluginSpec("SchedulingGates"),
    PluginSpec("PrioritySort"),
    PluginSpec("NodeUnschedulable"),
    PluginSpec("NodeName"),
    PluginSpec("TaintToleration", 3),
    PluginSpec("NodeAffinity", 2),
    PluginSpec("NodePorts"),
    PluginSpec("NodeResourcesFit", 1),
    PluginSpec("VolumeRestrictions"),
    PluginSpec("VolumeBinding"),
    PluginSpec("VolumeZone"),
    PluginSpec("PodTopologySpread", 2),
    PluginSpec("InterPodAffinity", 2),
    PluginSpec("DefaultPreemption"),
    PluginSpec("NodeResourcesBalancedAllocation", 1),
    PluginSpec("ImageLocality", 1),
    PluginSpec("DefaultBinder"),
)

_TOP_FIELDS = {"apiVersion", "kind", "parallelism", "leaderElection", "clientConnection", "healthzBindAddress",
               "metricsBindAddress", "enableProfiling", "enableContentionProfiling", "percentageOfNodesToScore",
               "podInitialBackoffSeconds", "podMaxBackoffSeconds", "profiles", "extenders", "delayCacheUntilActive"}
_PROFILE_FIELDS = {"schedulerName", "percentageOfNodesToScore", "plugins", "pluginConfig"}
_LE_FIELDS = {"leaderElect", "leaseDuration", "renewDeadline", "retryPeriod", "resourceLock", "resourceName",
              "resourceNamespace"}
_CC_FIELDS = {"kubeconfig", "acceptContentTypes", "contentType", "qps", "burst"}


class ConfigError(ValueError):
    """An invalid scheduler configuration; ``errors`` are field errors (``path: what``)."""

    def __init__(self, errors: list[str], source: str = "") -> None:
        self.errors = errors
        where = f"{source}: " if source else ""
        if len(errors) == 1:
            msg = f"invalid scheduler configuration: {where}{errors[0]}"
        else:
            msg = f"invalid scheduler configuration: {where}" + "".join(f"\n  - {e}" for e in errors)
        super().__init__(msg)


@dataclass(frozen=True, slots=True)
class LeaderElectionSettings:
    leader_elect: bool = True
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    resource_name: str = "kube-scheduler"
    resource_namespace: str = "kube-system"


@dataclass(frozen=True, slots=True)
class PluginSet:
    enabled: tuple[PluginSpec, ...] = ()
    disabled: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    percentage_of_nodes_to_score: int | None = None
    # extension point (or "multiPoint") -> merged plugin set
    plugins: Mapping[str, PluginSet] = field(default_factory=dict)
    plugin_args: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SchedulerConfiguration:
    profiles: tuple[Profile, ...] = (Profile(),)
    percentage_of_nodes_to_score: int = 0
    pod_initial_backoff_seconds: float = 1.0
    pod_max_backoff_seconds: float = 10.0
    leader_election: LeaderElectionSettings = LeaderElectionSettings()
    kubeconfig: str = ""

    def profile(self, scheduler_name: str) -> Profile | None:
        for p in self.profiles:
            if p.scheduler_name == scheduler_name:
                return p
        return None

    @property
    def scheduler_names(self) -> tuple[str, ...]:
        return tuple(p.scheduler_name for p in self.profiles)


# --------------------------------------------------------------------------- parsing



def parse_duration(v: Any) -> float | None:
    """A Go duration (``15s``, ``1m30s``, ``250ms``) or a number, in seconds; None when malformed."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    if not isinstance(v, str) or not v:
        return None
    try:
        return gotext.parse_duration(v.strip())
    except gotext.DurationError:
        return None


def _unknown(obj: Mapping[str, Any], allowed: set[str], path: str, errs: list[str]) -> None:
    for k in obj:
        if k not in allowed:
            errs.append(f'{path}{"." if path else ""}{k}: Invalid value: unknown field "{k}"')


def _int(obj: Mapping[str, Any], key: str, path: str, errs: list[str]) -> int | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        errs.append(f"{path}{key}: Invalid value: {v!r}: must be an integer")
        return None
    return v


def _plugin_set(raw: Any, path: str, errs: list[str], registry: Mapping[str, Any]) -> PluginSet:
    if raw is None:
        return PluginSet()
    if not isinstance(raw, Mapping):
        errs.append(f"{path}: Invalid value: {raw!r}: must be an object with enabled/disabled lists")
        return PluginSet()
    _unknown(raw, {"enabled", "disabled"}, path, errs)
    enabled = []
    for i, p in enumerate(raw.get("enabled") or ()):
        pp = f"{path}.enabled[{i}]"
        if not isinstance(p, Mapping) or not p.get("name"):
            errs.append(f"{pp}.name: Required value")
            continue
        name = str(p["name"])
        if name not in registry:
            errs.append(f'{pp}.name: Invalid value: "{name}": plugin "{name}" does not exist; known plugins: '
                        + ", ".join(sorted(registry)))
            continue
        w = p.get("weight", 0)
        if not isinstance(w, int) or isinstance(w, bool) or w < 0:
            errs.append(f"{pp}.weight: Invalid value: {w!r}: must be a non-negative integer")
            w = 0
        enabled.append(PluginSpec(name, w))
    disabled = []
    for i, p in enumerate(raw.get("disabled") or ()):
        if not isinstance(p, Mapping) or not p.get("name"):
            errs.append(f"{path}.disabled[{i}].name: Required value")
            continue
        name = str(p["name"])
        if name != "*" and name not in registry:
            errs.append(f'{path}.disabled[{i}].name: Invalid value: "{name}": plugin "{name}" does not exist')
            continue
        disabled.append(name)
    return PluginSet(tuple(enabled), tuple(disabled))


def merge_plugin_set(default: PluginSet, custom: PluginSet) -> PluginSet:
    """kube's mergePluginSet: defaults minus the disabled ones, re-configured in place by custom
    entries of the same name, then the other custom entries appended."""
    disabled = set(custom.disabled) | set(default.disabled)
    custom_by_name = {p.name: i for i, p in enumerate(custom.enabled)}
    replaced: set[int] = set()
    out: list[PluginSpec] = []
    if "*" not in disabled:
        for p in default.enabled:
            if p.name in disabled:
                continue
            i = custom_by_name.get(p.name)
            if i is not None:
                p = custom.enabled[i]
                replaced.add(i)
            out.append(p)
    for i, p in enumerate(custom.enabled):
        if i not in replaced:
            out.append(p)
    return PluginSet(tuple(out), tuple(custom.disabled) + tuple(default.disabled))


def _profile(raw: Any, path: str, errs: list[str], registry: Mapping[str, Any]) -> Profile:
    if not isinstance(raw, Mapping):
        errs.append(f"{path}: Invalid value: {raw!r}: must be an object")
        return Profile()
    _unknown(raw, _PROFILE_FIELDS, path, errs)
    name = raw.get("schedulerName")
    if name is None:
        name = DEFAULT_SCHEDULER_NAME  # kube defaults an unnamed profile
    if not isinstance(name, str) or not name:
        errs.append(f"{path}.schedulerName: Required value")
        name = ""
    pct = _int(raw, "percentageOfNodesToScore", f"{path}.", errs)
    if pct is not None and not 0 <= pct <= 100:
        errs.append(f"{path}.percentageOfNodesToScore: Invalid value: {pct}: not in valid range [0-100]")
    plugins_raw = raw.get("plugins") or {}
    if not isinstance(plugins_raw, Mapping):
        errs.append(f"{path}.plugins: Invalid value: must be an object")
        plugins_raw = {}
    _unknown(plugins_raw, {"multiPoint", *EXTENSION_POINTS}, f"{path}.plugins", errs)
    plugins: dict[str, PluginSet] = {}
    custom_mp = _plugin_set(plugins_raw.get("multiPoint"), f"{path}.plugins.multiPoint", errs, registry)
    plugins["multiPoint"] = merge_plugin_set(PluginSet(DEFAULT_PLUGINS), custom_mp)
    for point in EXTENSION_POINTS:
        plugins[point] = _plugin_set(plugins_raw.get(point), f"{path}.plugins.{point}", errs, registry)
    args: dict[str, Mapping[str, Any]] = {}
    for i, pc in enumerate(raw.get("pluginConfig") or ()):
        pp = f"{path}.pluginConfig[{i}]"
        if not isinstance(pc, Mapping) or not pc.get("name"):
            errs.append(f"{pp}.name: Required value")
            continue
        _unknown(pc, {"name", "args"}, pp, errs)
        pname = str(pc["name"])
        if pname in args:
            errs.append(f'{pp}: Duplicate value: "{pname}"')
            continue
        if pname not in registry:
            errs.append(f'{pp}.name: Invalid value: "{pname}": plugin "{pname}" does not exist')
            continue
        a = pc.get("args") or {}
        if not isinstance(a, Mapping):
            errs.append(f"{pp}.args: Invalid value: must be an object")
            continue
        a = {k: v for k, v in a.items() if k not in ("apiVersion", "kind")}
        validator = VALIDATORS.get(pname)
        if validator is not None:
            errs.extend(validator(a, f"{pp}.args"))
        args[pname] = a
    return Profile(name, pct, plugins, args)


def parse_config(doc: Any, source: str = "", *, registry: Mapping[str, Any] | None = None
                 ) -> SchedulerConfiguration:
    """Validate and default a decoded configuration document; raises :class:`ConfigError`.
    ``registry`` (default: the in-tree plugins) is what plugin names may refer to."""
    registry = registry if registry is not None else REGISTRY
    errs: list[str] = []
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError([f"Invalid value: expected a {KIND} object"], source)
    av = doc.get("apiVersion")
    if av not in API_VERSIONS:
        errs.append(f'apiVersion: Unsupported value: "{av}": supported values: '
                    + ", ".join(f'"{v}"' for v in API_VERSIONS))
    if doc.get("kind") != KIND:
        errs.append(f'kind: Unsupported value: "{doc.get("kind")}": supported values: "{KIND}"')
    _unknown(doc, _TOP_FIELDS, "", errs)
    par = _int(doc, "parallelism", "", errs)
    if par is not None and par <= 0:
        errs.append(f"parallelism: Invalid value: {par}: should be an integer value greater than zero")
    pct = _int(doc, "percentageOfNodesToScore", "", errs)
    if pct is not None and not 0 <= pct <= 100:
        errs.append(f"percentageOfNodesToScore: Invalid value: {pct}: not in valid range [0-100]")
    init = _int(doc, "podInitialBackoffSeconds", "", errs)
    mx = _int(doc, "podMaxBackoffSeconds", "", errs)
    init_v = 1 if init is None else init
    max_v = 10 if mx is None else mx
    if init_v <= 0:
        errs.append(f"podInitialBackoffSeconds: Invalid value: {init_v}: must be greater than 0")
    if max_v < init_v:
        errs.append(f"podMaxBackoffSeconds: Invalid value: {max_v}: must be greater than or equal to "
                    "PodInitialBackoffSeconds")
    if doc.get("extenders"):
        errs.append("extenders: Forbidden: scheduler extenders are not supported by k8py")
    le_raw = doc.get("leaderElection") or {}
    le = LeaderElectionSettings()
    if isinstance(le_raw, Mapping):
        _unknown(le_raw, _LE_FIELDS, "leaderElection", errs)
        durs = {}
        for k, default in (("leaseDuration", 15.0), ("renewDeadline", 10.0), ("retryPeriod", 2.0)):
            v = le_raw.get(k)
            d = default if v is None else parse_duration(v)
            if d is None or d <= 0:
                errs.append(f"leaderElection.{k}: Invalid value: {v!r}: must be a positive duration like 15s")
                d = default
            durs[k] = d
        elect = le_raw.get("leaderElect", True)
        if not isinstance(elect, bool):
            errs.append(f"leaderElection.leaderElect: Invalid value: {elect!r}: must be true or false")
            elect = True
        if elect and not (durs["leaseDuration"] > durs["renewDeadline"] > durs["retryPeriod"]):
            errs.append("leaderElection.leaseDuration: Invalid value: leaseDuration must be greater than "
                        "renewDeadline, and renewDeadline greater than retryPeriod")
        lock = le_raw.get("resourceLock", "leases")
        if lock != "leases":
            errs.append(f'leaderElection.resourceLock: Unsupported value: "{lock}": supported values: "leases"')
        le = LeaderElectionSettings(elect, durs["leaseDuration"], durs["renewDeadline"], durs["retryPeriod"],
                                    str(le_raw.get("resourceName") or "kube-scheduler"),
                                    str(le_raw.get("resourceNamespace") or "kube-system"))
    cc = doc.get("clientConnection") or {}
    kubeconfig = ""
    if isinstance(cc, Mapping):
        _unknown(cc, _CC_FIELDS, "clientConnection", errs)
        kubeconfig = str(cc.get("kubeconfig") or "")
    raw_profiles = doc.get("profiles")
    if raw_profiles is None or raw_profiles == []:
        raw_profiles = [{}]
    if not isinstance(raw_profiles, list):
        errs.append("profiles: Invalid value: must be a list")
        raw_profiles = [{}]
    profiles = []
    names: set[str] = set()
    for i, rp in enumerate(raw_profiles):
        p = _profile(rp, f"profiles[{i}]", errs, registry)
        if p.scheduler_name in names:
            errs.append(f'profiles[{i}].schedulerName: Duplicate value: "{p.scheduler_name}"')
        names.add(p.scheduler_name)
        profiles.append(p)
    # Every profile must sort the queue the same way: there is one queue.
    sorts = {tuple(s.name for s in _queue_sort(p)) for p in profiles}
    if len(sorts) > 1:
        errs.append("profiles[1].plugins.queueSort: Invalid value: queueSort must be the same for all profiles")
    if errs:
        raise ConfigError(errs, source)
    return SchedulerConfiguration(tuple(profiles), pct or 0, float(init_v), float(max_v), le, kubeconfig)


def _queue_sort(p: Profile) -> list[PluginSpec]:
    qs = p.plugins.get("queueSort", PluginSet())
    if qs.enabled:
        return list(qs.enabled)
    return [s for s in p.plugins.get("multiPoint", PluginSet()).enabled if s.name == "PrioritySort"]


def default_config() -> SchedulerConfiguration:
    return parse_config({"apiVersion": API_VERSIONS[0], "kind": KIND})


def load_config(path: str, *, registry: Mapping[str, Any] | None = None) -> SchedulerConfiguration:
    """Read a configuration file (YAML or JSON); raises :class:`ConfigError` naming the field."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError([f"cannot read the file: {e.strerror or e}"], path) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"not valid YAML: {e}"], path) from None
    return parse_config(doc, path, registry=registry)


# --------------------------------------------------------------------------- building frameworks


def _implements(plugin: Any, point: str) -> bool:
    return any(hasattr(plugin, m) for m in EXTENSION_POINTS[point])


def expand_points(profile: Profile, instances: Mapping[str, Any], path: str = "profiles[0]"
                  ) -> dict[str, list[PluginSpec]]:
    """kube's expandMultiPointPlugins: per extension point, the plugins named there explicitly
    (which override their multiPoint entry), then multiPoint plugins that implement the point."""
    errs: list[str] = []
    mp = profile.plugins.get("multiPoint", PluginSet())
    out: dict[str, list[PluginSpec]] = {}
    for point in EXTENSION_POINTS:
        ps = profile.plugins.get(point, PluginSet())
        for i, spec in enumerate(ps.enabled):
            if not _implements(instances[spec.name], point):
                errs.append(f'{path}.plugins.{point}.enabled[{i}]: Invalid value: "{spec.name}": plugin '
                            f'"{spec.name}" does not extend {point} plugin')
        disabled = set(ps.disabled)
        if "*" in disabled:
            out[point] = list(ps.enabled)
            continue
        explicit = {s.name for s in ps.enabled}
        overrides: list[str] = []
        multi: list[PluginSpec] = []
        seen: set[str] = set()
        for spec in mp.enabled:
            if not _implements(instances[spec.name], point) or spec.name in disabled:
                continue
            if spec.name in explicit:
                overrides.append(spec.name)
                continue
            if spec.name in seen:
                errs.append(f'{path}.plugins.multiPoint: Duplicate value: "{spec.name}"')
                continue
            seen.add(spec.name)
            multi.append(spec)
        by_name = {s.name: s for s in ps.enabled}
        first = [by_name[n] for n in overrides]
        rest = [s for s in ps.enabled if s.name not in overrides]
        lst = first + multi + rest
        names = [s.name for s in lst]
        if len(set(names)) != len(names):
            errs.append(f"{path}.plugins.{point}: Duplicate value: a plugin is enabled twice")
        out[point] = lst
    if len(out.get("queueSort", [])) != 1:
        errs.append(f"{path}.plugins.queueSort: Invalid value: exactly one queueSort plugin is required")
    if not out.get("bind"):
        errs.append(f"{path}.plugins.bind: Invalid value: at least one bind plugin is required")
    if errs:
        raise ConfigError(errs)
    return out


def build_framework(profile: Profile, handle: Handle, *, registry: Mapping[str, PluginFactory] | None = None,
                    global_percentage: int = 0, path: str = "profiles[0]") -> Framework:
    """Instantiate the profile's plugins with their args and wire them per extension point."""
    reg = registry if registry is not None else REGISTRY
    names: list[str] = []
    for ps in profile.plugins.values():
        for s in ps.enabled:
            if s.name not in names:
                names.append(s.name)
    instances: dict[str, Any] = {}
    for name in names:
        factory = reg.get(name)
        if factory is None:
            raise ConfigError([f'{path}.plugins: Invalid value: "{name}": plugin "{name}" does not exist'])
        instances[name] = factory(dict(profile.plugin_args.get(name) or {}), handle)
    points = expand_points(profile, instances, path)
    used = {s.name for lst in points.values() for s in lst}
    fw = Framework(profile.scheduler_name, handle, {n: instances[n] for n in names if n in used}, points,
                   percentage_of_nodes_to_score=profile.percentage_of_nodes_to_score,
                   global_percentage=global_percentage)
    handle.framework = fw
    return fw
