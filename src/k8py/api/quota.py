"""Resource quota arithmetic: what an object costs, which quotas it counts against, and whether
a request fits (kube's ``k8s.io/apiserver/pkg/quota/v1`` and ``pkg/quota/v1/evaluator/core``).

Pure logic, shared by the ResourceQuota admission plugin (which charges a create or an update
against every matching quota, ``check_request``) and the resource quota controller (which
recomputes a quota's ``status.used`` from the objects, ``calculate_usage``), so the two can never
disagree. Nothing here does I/O; time comes in as an argument.

Resource lists are ``dict[str, Quantity]``; their sums keep Go's formatting rule (a zero takes
the other operand's format), so ``status.used`` reads ``128Mi`` rather than ``134217728``, as in
kube.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from k8py.api.corev1 import parse_time
from k8py.api.defaults import pod_qos_class
from k8py.api.quantity import Format, Quantity, QuantityError, format_quantity, parse_quantity
from k8py.api.validation.pod import is_extended_resource, is_native_resource

Obj = dict[str, Any]
ResourceList = dict[str, Quantity]

ONE = Quantity(parse_quantity("1").value, Format.DECIMAL_SI)
ZERO = Quantity(parse_quantity("0").value, Format.DECIMAL_SI)

# Scopes (``ResourceQuotaScope``) and their selector operators
TERMINATING, NOT_TERMINATING = "Terminating", "NotTerminating"
BEST_EFFORT, NOT_BEST_EFFORT = "BestEffort", "NotBestEffort"
PRIORITY_CLASS = "PriorityClass"
CROSS_NAMESPACE_POD_AFFINITY = "CrossNamespacePodAffinity"


class QuotaRefused(Exception):
    """The request does not fit; ``str(e)`` is kube's reason (the admission plugin words it as
    ``pods "x" is forbidden: <reason>``)."""


class ScopesUncovered(QuotaRefused):
    """A limited scope (``limitedResources[].matchScopes``) that no quota of the namespace covers.
    kube returns this one as a plain error, not a Forbidden: a 500 with the bare message."""


# --------------------------------------------------------------------------- resource lists


def qadd(a: Quantity, b: Quantity) -> Quantity:
    """Go's ``Quantity.Add``: the sum keeps ``a``'s format, unless ``a`` is zero."""
    return Quantity(a.value + b.value, b.format if a.value == 0 else a.format)


def qsub(a: Quantity, b: Quantity) -> Quantity:
    return Quantity(a.value - b.value, b.format if a.value == 0 else a.format)


def parse_list(raw: Any) -> ResourceList:
    """A resource list from JSON; malformed quantities (refused by validation anyway) are left out."""
    out: ResourceList = {}
    if isinstance(raw, Mapping):
        for k, v in raw.items():
            try:
                out[str(k)] = parse_quantity(v)
            except QuantityError:
                continue
    return out


def to_wire(rl: Mapping[str, Quantity]) -> dict[str, str]:
    return {k: format_quantity(v) for k, v in rl.items()}


def add(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    out = dict(a)
    for k, v in b.items():
        out[k] = qadd(out[k], v) if k in out else v
    return out


def subtract_non_negative(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    """``a - b`` for a's names, never below zero (``SubtractWithNonNegativeResult``)."""
    out: ResourceList = {}
    for k, v in a.items():
        d = qsub(v, b[k]) if k in b else v
        out[k] = d if d.value > 0 else Quantity(ZERO.value, d.format)
    for k, v in b.items():
        if k not in out:
            out[k] = Quantity(ZERO.value, v.format)
    return out


def mask(rl: Mapping[str, Quantity], names: Iterable[str]) -> ResourceList:
    keep = set(names)
    return {k: v for k, v in rl.items() if k in keep}


def remove_zeros(rl: Mapping[str, Quantity]) -> ResourceList:
    return {k: v for k, v in rl.items() if v.value != 0}


def negative(rl: Mapping[str, Quantity]) -> list[str]:
    return sorted(k for k, v in rl.items() if v.value < 0)


def less_than_or_equal(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> tuple[bool, list[str]]:
    """Whether every value of ``a`` that ``b`` names is within it, and the names that are not."""
    exceeded = [k for k, v in a.items() if k in b and v.value > b[k].value]
    return not exceeded, exceeded


def equals(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> bool:
    return a.keys() == b.keys() and all(a[k].value == b[k].value for k in a)


def pretty(rl: Mapping[str, Quantity]) -> str:
    """``cpu=1,pods=2``: names sorted, as kube's quota messages print them."""
    return ",".join(f"{k}={format_quantity(rl[k])}" for k in sorted(rl))


def object_count_name(resource: str, group: str) -> str:
    """``count/pods``, ``count/deployments.apps`` (``ObjectCountQuotaResourceNameFor``)."""
    return f"count/{resource}.{group}" if group else f"count/{resource}"


# --------------------------------------------------------------------------- pods' resources


def _container_list(c: Mapping[str, Any], field: str) -> ResourceList:
    res = c.get("resources")
    return parse_list(res.get(field)) if isinstance(res, Mapping) else {}


def _into(acc: ResourceList, rl: Mapping[str, Quantity]) -> None:
    for k, v in rl.items():
        acc[k] = qadd(acc[k], v) if k in acc else v


def _max_into(acc: ResourceList, rl: Mapping[str, Quantity]) -> None:
    for k, v in rl.items():
        if k not in acc or v.value > acc[k].value:
            acc[k] = v


def pod_resource_list(pod: Mapping[str, Any], field: str, *, overhead: bool = True) -> ResourceList:
    """``resourcehelper.PodRequests`` (``field="requests"``) or ``PodLimits`` (``"limits"``) as
    quantities: containers summed; init containers as their peak, restartable ("sidecar") ones
    running alongside and adding up; pod-level resources override what they name; the overhead is
    added (to limits only where a limit is set). ``overhead=False`` leaves out the last two, as
    LimitRanger's own sum does.

    ``corev1.pod_requests`` is the scheduler's integer version of the first; quota needs the
    quantities themselves (their formats show in ``status.used``) and limits too.
    """
    spec = pod.get("spec") if isinstance(pod.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    allocated: dict[str, ResourceList] = {}
    if field == "requests":
        # in-place resize: a container is charged the larger of what it asks and what it holds
        for cs in (pod.get("status") or {}).get("containerStatuses") or ():
            if isinstance(cs, Mapping) and cs.get("allocatedResources"):
                allocated[str(cs.get("name"))] = parse_list(cs.get("allocatedResources"))
    total: ResourceList = {}
    for c in spec.get("containers") or ():
        if not isinstance(c, Mapping):
            continue
        rl = _container_list(c, field)
        held = allocated.get(str(c.get("name")))
        if held:
            rl = dict(rl)
            _max_into(rl, held)
        _into(total, rl)
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for c in spec.get("initContainers") or ():
        if not isinstance(c, Mapping):
            continue
        rl = _container_list(c, field)
        if c.get("restartPolicy") == "Always":
            _into(total, rl)
            _into(sidecars, rl)
            cur = dict(sidecars)
        else:
            cur = dict(rl)
            _into(cur, sidecars)
        _max_into(init_peak, cur)
    _max_into(total, init_peak)
    if not overhead:
        return total
    pod_level = spec.get("resources")
    if isinstance(pod_level, Mapping):
        for k, v in parse_list(pod_level.get(field)).items():
            if k in ("cpu", "memory") or k.startswith("hugepages-"):
                total[k] = v
    for k, v in parse_list(spec.get("overhead")).items():
        if field == "requests" or k in total:
            total[k] = qadd(total[k], v) if k in total else v
    return total


def pod_compute_usage(requests: Mapping[str, Quantity], limits: Mapping[str, Quantity]) -> ResourceList:
    """``podComputeUsageHelper``: a pod's (or a container's) compute quota names."""
    out: ResourceList = {"pods": ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = requests[name]
            out[f"requests.{name}"] = requests[name]
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    for name, q in requests.items():
        if name.startswith("hugepages-"):
            out[name] = q
            out[f"requests.{name}"] = q
        if is_extended_resource(name):
            out[f"requests.{name}"] = q
    return out


def pod_counts(pod: Mapping[str, Any], now: dt.datetime) -> bool:
    """``QuotaV1Pod``: a pod is charged compute quota unless it is terminal, or being deleted with
    its grace period over (a pod stuck terminating on a lost node must not hold quota)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deleted = parse_time(meta.get("deletionTimestamp"))
    grace = meta.get("deletionGracePeriodSeconds")
    return not (deleted is not None and isinstance(grace, int) and now > deleted + dt.timedelta(seconds=grace))


def _is_terminating(pod: Mapping[str, Any]) -> bool:
    ads = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    return isinstance(ads, int) and ads >= 0


def _cross_namespace_affinity(pod: Mapping[str, Any]) -> bool:
    aff = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        a = aff.get(kind) or {}
        terms = list(a.get("requiredDuringSchedulingIgnoredDuringExecution") or ())
        terms += [w.get("podAffinityTerm") or {} for w in a.get("preferredDuringSchedulingIgnoredDuringExecution") or ()]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


def selector_matches(sel: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A ``ScopedResourceSelectorRequirement`` against a one-label set (its scope name as key)."""
    key = str(sel.get("scopeName") or "")
    op = sel.get("operator")
    values = sel.get("values") or ()
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


# --------------------------------------------------------------------------- evaluators


@dataclass(frozen=True, slots=True)
class Evaluator:
    """How quota sees one kind (kube's ``quota.Evaluator``): a generic object count, with a legacy
    alias for the kinds quota counted before ``count/`` names (``secrets``, ``configmaps`` ...)."""

    group: str
    resource: str
    alias: str = ""

    @property
    def count_name(self) -> str:
        return object_count_name(self.resource, self.group)

    def resources(self) -> tuple[str, ...]:
        return (self.count_name, self.alias) if self.alias else (self.count_name,)

    def handles(self, operation: str, subresource: str, obj: Obj | None, old: Obj | None) -> bool:
        return operation == "CREATE" and not subresource

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        own = self.resources()
        return [n for n in names if n in own]

    def matches_scope(self, sel: Mapping[str, Any], obj: Obj) -> bool:
        return False

    def usage(self, obj: Obj, now: dt.datetime) -> ResourceList:
        return dict.fromkeys(self.resources(), ONE)

    def constraints(self, required: Sequence[str], obj: Obj) -> str | None:
        return None

    def usage_changed(self, old: Obj, new: Obj, now: dt.datetime) -> bool:
        """An update that changes what the object is charged (the quota controller recomputes)."""
        return False


# The quota names whose containers must all say them (a mistake kube keeps for compatibility).
_POD_VALIDATION_SET = frozenset(("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"))
_POD_RESOURCES = ("count/pods", "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
                  "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods")


@dataclass(frozen=True, slots=True)
class PodEvaluator(Evaluator):
    group: str = ""
    resource: str = "pods"

    def handles(self, operation: str, subresource: str, obj: Obj | None, old: Obj | None) -> bool:
        return operation == "CREATE" and not subresource

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        out = []
        for n in names:
            if n in _POD_RESOURCES or n.startswith(("hugepages-", "requests.hugepages-")) or \
                    (not is_native_resource(n) and n.startswith("requests.")):
                out.append(n)
        return out

    def matches_scope(self, sel: Mapping[str, Any], obj: Obj) -> bool:
        name = sel.get("scopeName")
        if name == TERMINATING:
            return _is_terminating(obj)
        if name == NOT_TERMINATING:
            return not _is_terminating(obj)
        if name == BEST_EFFORT:
            return pod_qos_class(obj) == "BestEffort"
        if name == NOT_BEST_EFFORT:
            return pod_qos_class(obj) != "BestEffort"
        if name == PRIORITY_CLASS:
            pc = str((obj.get("spec") or {}).get("priorityClassName") or "")
            if sel.get("operator") in ("Exists", None, ""):
                return bool(pc)
            return selector_matches(sel, {PRIORITY_CLASS: pc} if pc else {})
        if name == CROSS_NAMESPACE_POD_AFFINITY:
            return _cross_namespace_affinity(obj)
        return False

    def usage(self, obj: Obj, now: dt.datetime) -> ResourceList:
        # count/pods: every pod in storage; "pods" and compute: only pods still alive
        out: ResourceList = {"count/pods": ONE}
        if not pod_counts(obj, now):
            return out
        return add(out, pod_compute_usage(pod_resource_list(obj, "requests"), pod_resource_list(obj, "limits")))

    def constraints(self, required: Sequence[str], obj: Obj) -> str | None:
        """``must specify limits.cpu for: c``: a quota on cpu or memory wants every container to
        say it (kube's backward-compatible rule; not for other resources)."""
        req = _POD_VALIDATION_SET.intersection(required)
        if not req:
            return None
        missing: dict[str, set[str]] = {}
        spec = obj.get("spec") or {}
        for c in (*(spec.get("containers") or ()), *(spec.get("initContainers") or ())):
            if not isinstance(c, Mapping):
                continue
            have = pod_compute_usage(_container_list(c, "requests"), _container_list(c, "limits"))
            for r in req - have.keys():
                missing.setdefault(r, set()).add(str(c.get("name") or ""))
        if not missing:
            return None
        return "must specify " + "; ".join(f"{r} for: {','.join(sorted(missing[r]))}" for r in sorted(missing))

    def usage_changed(self, old: Obj, new: Obj, now: dt.datetime) -> bool:
        return pod_counts(old, now) and not pod_counts(new, now)


_SERVICE_RESOURCES = ("count/services", "services", "services.nodeports", "services.loadbalancers")


@dataclass(frozen=True, slots=True)
class ServiceEvaluator(Evaluator):
    group: str = ""
    resource: str = "services"

    def handles(self, operation: str, subresource: str, obj: Obj | None, old: Obj | None) -> bool:
        # a service's type can change: updates are charged too
        return operation in ("CREATE", "UPDATE") and not subresource

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if n in _SERVICE_RESOURCES]

    def usage(self, obj: Obj, now: dt.datetime) -> ResourceList:
        spec = obj.get("spec") or {}
        ports = [p for p in spec.get("ports") or () if isinstance(p, Mapping)]
        out: ResourceList = {"count/services": ONE, "services": ONE, "services.loadbalancers": ZERO,
                             "services.nodeports": ZERO}
        t = spec.get("type")
        if t == "NodePort":
            out["services.nodeports"] = Quantity(ONE.value * len(ports), Format.DECIMAL_SI)
        elif t == "LoadBalancer":
            n = len(ports)
            if spec.get("allocateLoadBalancerNodePorts") is False:
                # no node ports allocated: only the ones asked for explicitly count
                n = sum(1 for p in ports if p.get("nodePort"))
            out["services.nodeports"] = Quantity(ONE.value * n, Format.DECIMAL_SI)
            out["services.loadbalancers"] = ONE
        return out

    def usage_changed(self, old: Obj, new: Obj, now: dt.datetime) -> bool:
        return not equals(self.usage(old, now), self.usage(new, now))


_STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_PVC_RESOURCES = ("persistentvolumeclaims", "requests.storage")


def _pvc_class(pvc: Mapping[str, Any]) -> str:
    ann = (pvc.get("metadata") or {}).get("annotations") or {}
    if ann.get("volume.beta.kubernetes.io/storage-class"):
        return str(ann["volume.beta.kubernetes.io/storage-class"])
    return str((pvc.get("spec") or {}).get("storageClassName") or "")


@dataclass(frozen=True, slots=True)
class PVCEvaluator(Evaluator):
    group: str = ""
    resource: str = "persistentvolumeclaims"

    def handles(self, operation: str, subresource: str, obj: Obj | None, old: Obj | None) -> bool:
        if not subresource:
            return operation in ("CREATE", "UPDATE")
        if subresource == "status" and obj is not None and old is not None:
            return self._allocated(obj) != self._allocated(old)
        return False

    @staticmethod
    def _allocated(pvc: Mapping[str, Any]) -> Any:
        return ((pvc.get("status") or {}).get("allocatedResources") or {}).get("storage")

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        out = []
        for n in names:
            if n == "count/persistentvolumeclaims" or n in _PVC_RESOURCES or \
                    any(n.endswith(_STORAGE_CLASS_SUFFIX + r) for r in _PVC_RESOURCES):
                out.append(n)
        return out

    def usage(self, obj: Obj, now: dt.datetime) -> ResourceList:
        out: ResourceList = {"persistentvolumeclaims": ONE, "count/persistentvolumeclaims": ONE}
        sc = _pvc_class(obj)
        if sc:
            out[sc + _STORAGE_CLASS_SUFFIX + "persistentvolumeclaims"] = ONE
        storage = self._storage(obj)
        if storage is not None:
            out["requests.storage"] = storage
            if sc:
                out[sc + _STORAGE_CLASS_SUFFIX + "requests.storage"] = storage
        return out

    def _storage(self, pvc: Mapping[str, Any]) -> Quantity | None:
        # whole bytes (a fractional request would not pass quota validation), and a resize in
        # progress is charged the larger of what is asked and what is allocated
        asked = parse_list(((pvc.get("spec") or {}).get("resources") or {}).get("requests")).get("storage")
        if asked is None:
            return None
        asked = asked.round_up(0)
        alloc = parse_list((pvc.get("status") or {}).get("allocatedResources")).get("storage")
        if alloc is not None and alloc.value > asked.value:
            return alloc.round_up(0)
        return asked

    def usage_changed(self, old: Obj, new: Obj, now: dt.datetime) -> bool:
        return self._allocated(old) != self._allocated(new)


# kube's legacy object-count names (``legacyObjectCountAliases``)
_LEGACY = {"configmaps": "configmaps", "resourcequotas": "resourcequotas",
           "replicationcontrollers": "replicationcontrollers", "secrets": "secrets"}
_BUILTIN: dict[tuple[str, str], Evaluator] = {
    ("", "pods"): PodEvaluator(),
    ("", "services"): ServiceEvaluator(),
    ("", "persistentvolumeclaims"): PVCEvaluator(),
    **{("", r): Evaluator("", r, alias) for r, alias in _LEGACY.items()},
}


# kube's quota ignores these (``pkg/quota/v1/install``): neither charged nor counted
IGNORED = frozenset({("", "events")})


def evaluator_for(group: str, resource: str) -> Evaluator:
    """The evaluator of a kind: pods, services and claims have their own; every other kind is
    an object count (``count/<resource>.<group>``)."""
    return _BUILTIN.get((group, resource)) or Evaluator(group, resource)


def builtin_evaluators() -> list[Evaluator]:
    return list(_BUILTIN.values())


def parse_count_name(name: str) -> tuple[str, str] | None:
    """``count/deployments.apps`` -> ("apps", "deployments"); ``count/pods`` -> ("", "pods")."""
    if not name.startswith("count/"):
        return None
    resource, _, group = name[len("count/"):].partition(".")
    return (group, resource) if resource else None


def tracked_kinds(hard_names: Iterable[str]) -> set[tuple[str, str]]:
    """The (group, resource) kinds whose objects a quota with these hard names counts."""
    names = list(hard_names)
    out = {(ev.group, ev.resource) for ev in _BUILTIN.values() if ev.matching_resources(names)}
    for n in names:
        gr = parse_count_name(n)
        if gr is not None and gr not in IGNORED:
            out.add(gr)
    return out


# --------------------------------------------------------------------------- configuration

CONFIG_API_VERSIONS = ("apiserver.config.k8s.io/v1", "resourcequota.admission.k8s.io/v1beta1",
                       "resourcequota.admission.k8s.io/v1alpha1")


@dataclass(frozen=True, slots=True)
class LimitedResource:
    """``limitedResources[]`` of a ResourceQuotaConfiguration: objects of this kind may consume
    the names containing one of ``match_contains``, and pods may be in the ``match_scopes``, only
    where a quota covers them."""

    api_group: str
    resource: str
    match_contains: tuple[str, ...] = ()
    match_scopes: tuple[Obj, ...] = ()


def parse_configuration(doc: Any) -> tuple[tuple[LimitedResource, ...], list[Any]]:
    """The ResourceQuota admission plugin's configuration (kind ``ResourceQuotaConfiguration``),
    checked as kube-apiserver does (each limited resource names its resource), unknown fields
    refused; returns the limited resources and the field errors."""
    from k8py.api import errors

    if not isinstance(doc, dict):
        return (), [errors.invalid("", type(doc).__name__, "must be a ResourceQuotaConfiguration object")]
    errs: list[Any] = []
    if doc.get("apiVersion") not in CONFIG_API_VERSIONS:
        errs.append(errors.not_supported("apiVersion", doc.get("apiVersion"), CONFIG_API_VERSIONS))
    if doc.get("kind") not in ("ResourceQuotaConfiguration", "Configuration"):
        errs.append(errors.not_supported("kind", doc.get("kind"), ["ResourceQuotaConfiguration"]))
    errs += [errors.forbidden(str(k), "unknown field") for k in doc if k not in ("apiVersion", "kind",
                                                                              "limitedResources")]
    items = doc.get("limitedResources") or []
    if not isinstance(items, list):
        return (), [*errs, errors.invalid("limitedResources", type(items).__name__, "must be a list")]
    out = []
    for i, item in enumerate(items):
        path = f"limitedResources[{i}]"
        if not isinstance(item, dict):
            errs.append(errors.invalid(path, type(item).__name__, "must be an object"))
            continue
        errs += [errors.forbidden(f"{path}.{k}", "unknown field") for k in item
                 if k not in ("apiGroup", "resource", "matchContains", "matchScopes")]
        if not item.get("resource"):
            errs.append(errors.required(f"{path}.resource", ""))
        contains = item.get("matchContains") or []
        scopes = item.get("matchScopes") or []
        if not isinstance(contains, list) or not all(isinstance(c, str) for c in contains):
            errs.append(errors.invalid(f"{path}.matchContains", type(contains).__name__, "must be a list of strings"))
            contains = []
        if not isinstance(scopes, list) or not all(isinstance(x, dict) for x in scopes):
            errs.append(errors.invalid(f"{path}.matchScopes", type(scopes).__name__, "must be a list of objects"))
            scopes = []
        for j, sc in enumerate(scopes):
            if sc.get("operator") not in ("In", "NotIn", "Exists", "DoesNotExist"):
                errs.append(errors.not_supported(f"{path}.matchScopes[{j}].operator", sc.get("operator"),
                                                 ("In", "NotIn", "Exists", "DoesNotExist")))
        out.append(LimitedResource(str(item.get("apiGroup") or ""), str(item.get("resource") or ""),
                                   tuple(contains), tuple(dict(x) for x in scopes)))
    return tuple(out), errs


def _go_selector(sel: Mapping[str, Any]) -> str:
    """A ScopedResourceSelectorRequirement as Go's ``%v`` prints it: ``{PriorityClass In [a b]}``."""
    values = " ".join(str(v) for v in sel.get("values") or ())
    return f"{{{sel.get('scopeName', '')} {sel.get('operator', '')} [{values}]}}"


# --------------------------------------------------------------------------- quotas


def scope_selectors(rq: Mapping[str, Any]) -> list[Obj]:
    """The quota's ``spec.scopes`` (each as an ``Exists`` selector) and its ``scopeSelector``."""
    spec = rq.get("spec") or {}
    out: list[Obj] = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or ()]
    out += [dict(e) for e in (spec.get("scopeSelector") or {}).get("matchExpressions") or () if isinstance(e, Mapping)]
    return out


def quota_matches(rq: Mapping[str, Any], ev: Evaluator, obj: Obj) -> bool:
    """The quota tracks one of the kind's resources (in ``status.hard``: what the controller
    has taken in) and the object is in every one of its scopes."""
    hard = parse_list((rq.get("status") or {}).get("hard"))
    if not ev.matching_resources(hard):
        return False
    return all(ev.matches_scope(sel, obj) for sel in scope_selectors(rq))


def _name(rq: Mapping[str, Any]) -> str:
    return str((rq.get("metadata") or {}).get("name") or "")


def check_request(quotas: Sequence[Obj], ev: Evaluator, operation: str, obj: Obj, old: Obj | None,
                  now: dt.datetime, limited: Sequence[LimitedResource] = ()) -> list[Obj]:
    """kube's ``CheckRequest``: the quotas as they would be with this request charged (copies;
    the same objects where nothing changed), or :class:`QuotaRefused` with kube's reason.

    Each quota that matches the object must allow it: cpu/memory quotas want every container to
    say them; the quota must know its usage already; and the charge (on update, only what grew,
    for quotas the old object was in too) must fit within ``status.hard``. With ``limited``
    (the plugin's configuration), what it names may be consumed only under a covering quota.
    """
    # what the configuration limits: names this object consumes, scopes it is in
    limited_scopes = [sel for lr in limited for sel in lr.match_scopes if ev.matches_scope(sel, obj)]
    limited_names: set[str] = set()
    for lr in limited:
        if (lr.api_group, lr.resource) == (ev.group, ev.resource):
            limited_names.update(k for k, v in ev.usage(obj, now).items()
                                 if v.value > 0 and any(m in k for m in lr.match_contains))
    interesting: list[int] = []
    restricted_all: set[str] = set()
    restricted_scopes: set[str] = set()  # scope names of every quota's selectors the object is in
    for i, rq in enumerate(quotas):
        restricted_scopes.update(str(sel.get("scopeName")) for sel in scope_selectors(rq) if ev.matches_scope(sel, obj))
        if not quota_matches(rq, ev, obj):
            continue
        hard = parse_list((rq.get("status") or {}).get("hard"))
        restricted = ev.matching_resources(hard)
        err = ev.constraints(restricted, obj)
        if err:
            raise QuotaRefused(f"failed quota: {_name(rq)}: {err}")
        used = (rq.get("status") or {}).get("used") or {}
        if any(r not in used for r in restricted):
            raise QuotaRefused(f"status unknown for quota: {_name(rq)}, resources: {','.join(sorted(restricted))}")
        interesting.append(i)
        restricted_all.update(restricted)
    if not interesting and not limited:
        return list(quotas)
    usage = ev.usage(obj, now)
    neg = negative(usage)
    if neg:
        raise QuotaRefused(f"quota usage is negative for resource(s): {','.join(neg)}")
    delta_by_quota = dict.fromkeys(interesting, usage)
    delta_alone: ResourceList = usage if operation == "CREATE" else {}  # the charge when no quota matches
    if operation == "UPDATE":
        if old is None:
            raise QuotaRefused("unable to get previous usage since prior version of object was not found")
        if (old.get("metadata") or {}).get("resourceVersion"):
            delta = subtract_non_negative(usage, ev.usage(old, now))
            delta_alone = delta
            for i in interesting:
                if quota_matches(quotas[i], ev, old):
                    delta_by_quota[i] = delta
        else:
            delta_alone = usage
    charges = {i: d for i, d in ((i, remove_zeros(d)) for i, d in delta_by_quota.items()) if d}
    if not (charges if interesting else remove_zeros(delta_alone)):
        return list(quotas)  # nothing this request changes is counted
    uncovered = limited_names - restricted_all
    if uncovered:
        raise QuotaRefused(f"insufficient quota to consume: {','.join(sorted(uncovered))}")
    scopes_uncovered = [sel for sel in limited_scopes if sel.get("scopeName") not in restricted_scopes]
    if scopes_uncovered:
        raise ScopesUncovered("insufficient quota to match these scopes: "
                              f"[{' '.join(_go_selector(x) for x in scopes_uncovered)}]")
    out = list(quotas)
    for i, requested_all in charges.items():
        rq = quotas[i]
        status = rq.get("status") or {}
        hard = parse_list(status.get("hard"))
        used = parse_list(status.get("used"))
        requested = mask(requested_all, hard)
        new_used = add(used, requested)
        fits, exceeded = less_than_or_equal(mask(new_used, requested), hard)
        if not fits:
            raise QuotaRefused(f"exceeded quota: {_name(rq)}, requested: {pretty(mask(requested, exceeded))}, "
                               f"used: {pretty(mask(used, exceeded))}, limited: {pretty(mask(hard, exceeded))}")
        out[i] = {**rq, "status": {**status, "used": to_wire(new_used)}}
    return out


def calculate_usage(rq: Mapping[str, Any], list_objects: Callable[[str, str], Iterable[Obj] | None],
                    now: dt.datetime) -> tuple[ResourceList, set[str]]:
    """kube's ``CalculateUsage`` for the quota controller: the usage of every resource of
    ``spec.hard`` that some evaluator tracks, summed over the matching objects of the quota's
    namespace. ``list_objects(group, resource)`` gives them, or None when they cannot be listed
    (yet): those resources are left out of the answer and returned as the second value."""
    hard_names = list(parse_list((rq.get("spec") or {}).get("hard")))
    selectors = scope_selectors(rq)
    evs: list[Evaluator] = [ev for ev in _BUILTIN.values() if ev.matching_resources(hard_names)]
    for n in hard_names:
        gr = parse_count_name(n)
        if gr is not None and gr not in _BUILTIN and gr not in IGNORED:
            evs.append(Evaluator(*gr))
    used: ResourceList = {}
    unknown: set[str] = set()
    for ev in evs:
        names = ev.matching_resources(hard_names)
        objs = list_objects(ev.group, ev.resource)
        if objs is None:
            unknown.update(names)
            continue
        total: ResourceList = {n: ZERO for n in names}
        for o in objs:
            if all(ev.matches_scope(sel, o) for sel in selectors):
                total = add(total, ev.usage(o, now))
        used.update(mask(total, names))
    return used, unknown


def quota_status(rq: Mapping[str, Any], used: Mapping[str, Quantity], unknown: Iterable[str] = ()) -> Obj:
    """The status the controller writes: ``hard`` from the spec, ``used`` for each hard name (the
    last observed value kept for those that could not be measured now)."""
    hard = parse_list((rq.get("spec") or {}).get("hard"))
    old_used = parse_list((rq.get("status") or {}).get("used"))
    out: ResourceList = {}
    skip = set(unknown)
    for n in hard:
        if n in used and n not in skip:
            out[n] = used[n]
        elif n in old_used:
            out[n] = old_used[n]
    return {"hard": to_wire(hard), "used": to_wire(out)}
