"""Conversion between the versions of kinds that are stored once and served twice.

* ``Event``: core ``v1`` <-> ``events.k8s.io/v1`` (``pkg/apis/events/v1/conversion.go``):
  ``involvedObject``<->``regarding``, ``message``<->``note``, ``source``<->``deprecatedSource``,
  ``firstTimestamp``/``lastTimestamp``/``count`` <-> ``deprecated*``,
  ``reportingComponent``<->``reportingController``; the rest keeps its name.
* ``HorizontalPodAutoscaler``: ``autoscaling/v1`` <-> ``autoscaling/v2``
  (``pkg/apis/autoscaling/v1/conversion.go``). v1 only has a CPU utilization
  target; everything else survives a trip through v1 in the
  ``autoscaling.alpha.kubernetes.io/*`` annotations, in the v1 (v2beta1-shaped)
  metric format, exactly as kube-apiserver writes them.

Output dicts carry the fields in kube's struct order and kube's "always
present" fields (``eventTime: null`` and so on), so a converted object reads as
kube-apiserver would serve it. The input is never modified; the output may
share nested values with it, so treat both as read-only or copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson

Obj = dict[str, Any]

CORE_EVENT: Final = "v1"
EVENTS_V1: Final = "events.k8s.io/v1"
HPA_V1: Final = "autoscaling/v1"
HPA_V2: Final = "autoscaling/v2"

# autoscaling/annotations.go
METRIC_SPECS_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/metrics"
METRIC_STATUSES_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR_SPECS_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/behavior"
TOLERANCE_SCALE_DOWN_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/scale-down-tolerance"
TOLERANCE_SCALE_UP_ANNOTATION: Final = "autoscaling.alpha.kubernetes.io/scale-up-tolerance"
ROUND_TRIP_HPA_ANNOTATIONS: Final = (
    METRIC_SPECS_ANNOTATION,
    METRIC_STATUSES_ANNOTATION,
    CONDITIONS_ANNOTATION,
    BEHAVIOR_SPECS_ANNOTATION,
    TOLERANCE_SCALE_DOWN_ANNOTATION,
    TOLERANCE_SCALE_UP_ANNOTATION,
)
DEFAULT_CPU_UTILIZATION: Final = 80


class ConversionError(ValueError):
    """No conversion exists between the two versions of this kind."""


def convert(obj: Obj, to_api_version: str) -> Obj:
    """Return ``obj`` as ``to_api_version``; ``obj`` itself when it already is."""
    src = obj.get("apiVersion", "")
    if src == to_api_version:
        return obj
    kind = obj.get("kind", "")
    fn = _CONVERSIONS.get((kind, src, to_api_version))
    if fn is None:
        if not src:
            # Objects built in-process sometimes lack TypeMeta; assume they are already right.
            out = dict(obj)
            out["apiVersion"] = to_api_version
            return out
        raise ConversionError(f"no conversion for {kind} from {src!r} to {to_api_version!r}")
    return fn(obj)


def can_convert(kind: str, from_api_version: str, to_api_version: str) -> bool:
    return from_api_version == to_api_version or (kind, from_api_version, to_api_version) in _CONVERSIONS


# ---------------------------------------------------------------------------
# helpers


def _put(out: Obj, key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is empty (Go's ``omitempty``)."""
    if value is None or value == "" or value == 0 and not isinstance(value, bool) or value == [] or value == {}:
        return
    out[key] = value


def _copy_metadata(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return dict(meta) if isinstance(meta, dict) else {}


# ---------------------------------------------------------------------------
# Event


def _event_core_to_v1(obj: Obj) -> Obj:
    out: Obj = {"kind": "Event", "apiVersion": EVENTS_V1, "metadata": _copy_metadata(obj)}
    out["eventTime"] = obj.get("eventTime")
    _put(out, "series", obj.get("series"))
    _put(out, "reportingController", obj.get("reportingComponent"))
    _put(out, "reportingInstance", obj.get("reportingInstance"))
    _put(out, "action", obj.get("action"))
    _put(out, "reason", obj.get("reason"))
    out["regarding"] = obj.get("involvedObject") or {}
    _put(out, "related", obj.get("related"))
    _put(out, "note", obj.get("message"))
    _put(out, "type", obj.get("type"))
    out["deprecatedSource"] = obj.get("source") or {}
    out["deprecatedFirstTimestamp"] = obj.get("firstTimestamp")
    out["deprecatedLastTimestamp"] = obj.get("lastTimestamp")
    _put(out, "deprecatedCount", obj.get("count"))
    return out


def _event_v1_to_core(obj: Obj) -> Obj:
    out: Obj = {"kind": "Event", "apiVersion": CORE_EVENT, "metadata": _copy_metadata(obj)}
    out["involvedObject"] = obj.get("regarding") or {}
    _put(out, "reason", obj.get("reason"))
    _put(out, "message", obj.get("note"))
    out["source"] = obj.get("deprecatedSource") or {}
    out["firstTimestamp"] = obj.get("deprecatedFirstTimestamp")
    out["lastTimestamp"] = obj.get("deprecatedLastTimestamp")
    _put(out, "count", obj.get("deprecatedCount"))
    _put(out, "type", obj.get("type"))
    out["eventTime"] = obj.get("eventTime")
    _put(out, "series", obj.get("series"))
    _put(out, "action", obj.get("action"))
    _put(out, "related", obj.get("related"))
    out["reportingComponent"] = obj.get("reportingController") or ""
    out["reportingInstance"] = obj.get("reportingInstance") or ""
    return out


# ---------------------------------------------------------------------------
# HorizontalPodAutoscaler: metric specs and statuses, v2 <-> v1 (annotation) form


def _qty(v: Any) -> Any:
    # a zero resource.Quantity marshals as "0"
    return "0" if v is None else v


def _cross_ref(ref: Any) -> Obj:
    ref = ref or {}
    out: Obj = {"kind": ref.get("kind", ""), "name": ref.get("name", "")}
    _put(out, "apiVersion", ref.get("apiVersion"))
    return out


def _metric_spec_v2_to_v1(m: Obj) -> Obj:
    t = m.get("type", "")
    out: Obj = {"type": t}
    if (o := m.get("object")) is not None:
        target = o.get("target") or {}
        metric = o.get("metric") or {}
        src: Obj = {"target": _cross_ref(o.get("describedObject")), "metricName": metric.get("name", ""),
                    "targetValue": _qty(target.get("value"))}
        _put(src, "selector", metric.get("selector"))
        _put(src, "averageValue", target.get("averageValue"))
        out["object"] = src
    if (p := m.get("pods")) is not None:
        target = p.get("target") or {}
        metric = p.get("metric") or {}
        src = {"metricName": metric.get("name", ""), "targetAverageValue": _qty(target.get("averageValue"))}
        _put(src, "selector", metric.get("selector"))
        out["pods"] = src
    for key in ("resource", "containerResource"):
        if (r := m.get(key)) is not None:
            target = r.get("target") or {}
            src = {"name": r.get("name", "")}
            _put(src, "targetAverageUtilization", target.get("averageUtilization"))
            _put(src, "targetAverageValue", target.get("averageValue"))
            if key == "containerResource":
                src["container"] = r.get("container", "")
            out[key] = src
    if (e := m.get("external")) is not None:
        target = e.get("target") or {}
        metric = e.get("metric") or {}
        src = {"metricName": metric.get("name", "")}
        _put(src, "metricSelector", metric.get("selector"))
        _put(src, "targetValue", target.get("value"))
        _put(src, "targetAverageValue", target.get("averageValue"))
        out["external"] = src
    return out


def _target(type_: str, value: Any = None, average_value: Any = None, average_utilization: Any = None) -> Obj:
    out: Obj = {"type": type_}
    _put(out, "value", value)
    _put(out, "averageValue", average_value)
    if average_utilization is not None:
        out["averageUtilization"] = average_utilization
    return out


def _identifier(name: Any, selector: Any) -> Obj:
    out: Obj = {"name": name or ""}
    _put(out, "selector", selector)
    return out


def _metric_spec_v1_to_v2(m: Obj) -> Obj:
    out: Obj = {"type": m.get("type", "")}
    if (o := m.get("object")) is not None:
        avg = o.get("averageValue")
        out["object"] = {
            "describedObject": _cross_ref(o.get("target")),
            "target": _target("Value" if avg is None else "AverageValue", _qty(o.get("targetValue")), avg),
            "metric": _identifier(o.get("metricName"), o.get("selector")),
        }
    if (p := m.get("pods")) is not None:
        out["pods"] = {
            "metric": _identifier(p.get("metricName"), p.get("selector")),
            "target": _target("AverageValue", average_value=_qty(p.get("targetAverageValue"))),
        }
    for key in ("resource", "containerResource"):
        if (r := m.get(key)) is not None:
            util = r.get("targetAverageUtilization")
            src: Obj = {"name": r.get("name", ""),
                        "target": _target("AverageValue" if util is None else "Utilization",
                                          average_value=r.get("targetAverageValue"), average_utilization=util)}
            if key == "containerResource":
                src["container"] = r.get("container", "")
            out[key] = src
    if (e := m.get("external")) is not None:
        value = e.get("targetValue")
        out["external"] = {
            "metric": _identifier(e.get("metricName"), e.get("metricSelector")),
            "target": _target("AverageValue" if value is None else "Value", value, e.get("targetAverageValue")),
        }
    return out


def _metric_status_v2_to_v1(m: Obj) -> Obj:
    out: Obj = {"type": m.get("type", "")}
    if (o := m.get("object")) is not None:
        cur = o.get("current") or {}
        metric = o.get("metric") or {}
        src: Obj = {"target": _cross_ref(o.get("describedObject")), "metricName": metric.get("name", ""),
                    "currentValue": _qty(cur.get("value"))}
        _put(src, "selector", metric.get("selector"))
        _put(src, "averageValue", cur.get("averageValue"))
        out["object"] = src
    if (p := m.get("pods")) is not None:
        cur = p.get("current") or {}
        metric = p.get("metric") or {}
        src = {"metricName": metric.get("name", ""), "currentAverageValue": _qty(cur.get("averageValue"))}
        _put(src, "selector", metric.get("selector"))
        out["pods"] = src
    for key in ("resource", "containerResource"):
        if (r := m.get(key)) is not None:
            cur = r.get("current") or {}
            src = {"name": r.get("name", "")}
            _put(src, "currentAverageUtilization", cur.get("averageUtilization"))
            src["currentAverageValue"] = _qty(cur.get("averageValue"))
            if key == "containerResource":
                src["container"] = r.get("container", "")
            out[key] = src
    if (e := m.get("external")) is not None:
        cur = e.get("current") or {}
        metric = e.get("metric") or {}
        src = {"metricName": metric.get("name", "")}
        _put(src, "metricSelector", metric.get("selector"))
        src["currentValue"] = _qty(cur.get("value"))
        _put(src, "currentAverageValue", cur.get("averageValue"))
        out["external"] = src
    return out


def _value_status(value: Any = None, average_value: Any = None, average_utilization: Any = None) -> Obj:
    out: Obj = {}
    _put(out, "value", value)
    _put(out, "averageValue", average_value)
    if average_utilization is not None:
        out["averageUtilization"] = average_utilization
    return out


def _metric_status_v1_to_v2(m: Obj) -> Obj:
    out: Obj = {"type": m.get("type", "")}
    if (o := m.get("object")) is not None:
        out["object"] = {
            "metric": _identifier(o.get("metricName"), o.get("selector")),
            "current": _value_status(_qty(o.get("currentValue")), o.get("averageValue")),
            "describedObject": _cross_ref(o.get("target")),
        }
    if (p := m.get("pods")) is not None:
        out["pods"] = {
            "metric": _identifier(p.get("metricName"), p.get("selector")),
            "current": _value_status(average_value=_qty(p.get("currentAverageValue"))),
        }
    for key in ("resource", "containerResource"):
        if (r := m.get(key)) is not None:
            src: Obj = {"name": r.get("name", ""),
                        "current": _value_status(average_value=_qty(r.get("currentAverageValue")),
                                                 average_utilization=r.get("currentAverageUtilization"))}
            if key == "containerResource":
                src["container"] = r.get("container", "")
            out[key] = src
    if (e := m.get("external")) is not None:
        out["external"] = {
            "metric": _identifier(e.get("metricName"), e.get("metricSelector")),
            "current": _value_status(_qty(e.get("currentValue")), e.get("currentAverageValue")),
        }
    return out


def _condition(c: Obj) -> Obj:
    out: Obj = {"type": c.get("type", ""), "status": c.get("status", "")}
    out["lastTransitionTime"] = c.get("lastTransitionTime")
    _put(out, "reason", c.get("reason"))
    _put(out, "message", c.get("message"))
    return out


# The behavior annotation holds kube's *internal* type marshalled by encoding/json,
# so its keys are Go field names (a TODO in kube keeps it that way for skew).
_BEHAVIOR_RULE_KEYS: Final = (("stabilizationWindowSeconds", "StabilizationWindowSeconds"),
                              ("selectPolicy", "SelectPolicy"), ("policies", "Policies"), ("tolerance", "Tolerance"))
_POLICY_KEYS: Final = (("type", "Type"), ("value", "Value"), ("periodSeconds", "PeriodSeconds"))


def _behavior_to_annotation(behavior: Obj) -> str:
    def rules(r: Obj | None) -> Obj | None:
        if r is None:
            return None
        out: Obj = {}
        for json_key, go_key in _BEHAVIOR_RULE_KEYS:
            v = r.get(json_key)
            if json_key == "policies" and v is not None:
                v = [{gk: p.get(jk, "" if jk == "type" else 0) for jk, gk in _POLICY_KEYS} for p in v]
            out[go_key] = v
        return out

    enc = {"ScaleUp": rules(behavior.get("scaleUp")), "ScaleDown": rules(behavior.get("scaleDown"))}
    return orjson.dumps(enc).decode()


def _ci_get(d: Obj, name: str) -> Any:
    # encoding/json matches keys case-insensitively
    if name in d:
        return d[name]
    low = name.lower()
    for k, v in d.items():
        if k.lower() == low:
            return v
    return None


def _behavior_from_annotation(text: str) -> Obj | None:
    data = orjson.loads(text)
    if not isinstance(data, dict):
        return None
    out: Obj = {}
    for json_key in ("scaleUp", "scaleDown"):
        r = _ci_get(data, json_key)
        if not isinstance(r, dict):
            continue
        rules: Obj = {}
        for rk, _ in _BEHAVIOR_RULE_KEYS:
            v = _ci_get(r, rk)
            if rk == "policies" and isinstance(v, list):
                v = [{pk: _ci_get(p, pk) for pk, _ in _POLICY_KEYS} for p in v if isinstance(p, dict)]
            if v is not None:
                rules[rk] = v
        out[json_key] = rules
    return out or None


def _is_cpu_utilization(m: Obj) -> bool:
    r = m.get("resource")
    return (m.get("type") == "Resource" and isinstance(r, dict) and r.get("name") == "cpu"
            and (r.get("target") or {}).get("averageUtilization") is not None)


def _drop_round_trip(annotations: Obj) -> Obj:
    return {k: v for k, v in annotations.items() if k not in ROUND_TRIP_HPA_ANNOTATIONS}


def _hpa_v2_to_v1(obj: Obj) -> Obj:
    meta = _copy_metadata(obj)
    spec_in = obj.get("spec") or {}
    status_in = obj.get("status") or {}
    annotations = _drop_round_trip(meta.get("annotations") or {})

    spec: Obj = {"scaleTargetRef": _cross_ref(spec_in.get("scaleTargetRef"))}
    if spec_in.get("minReplicas") is not None:
        spec["minReplicas"] = spec_in["minReplicas"]
    spec["maxReplicas"] = spec_in.get("maxReplicas", 0)
    metrics = spec_in.get("metrics") or []
    for m in metrics:
        r = m.get("resource")
        if m.get("type") == "Resource" and isinstance(r, dict) and r.get("name") == "cpu":
            util = (r.get("target") or {}).get("averageUtilization")
            if util is not None:
                spec["targetCPUUtilizationPercentage"] = util
            break

    status: Obj = {}
    if status_in.get("observedGeneration") is not None:
        status["observedGeneration"] = status_in["observedGeneration"]
    _put(status, "lastScaleTime", status_in.get("lastScaleTime"))
    status["currentReplicas"] = status_in.get("currentReplicas", 0)
    status["desiredReplicas"] = status_in.get("desiredReplicas", 0)
    current = status_in.get("currentMetrics") or []
    for m in current:
        r = m.get("resource")
        if m.get("type") == "Resource" and isinstance(r, dict) and r.get("name") == "cpu":
            util = (r.get("current") or {}).get("averageUtilization")
            if util is not None:
                status["currentCPUUtilizationPercentage"] = util

    other = [_metric_spec_v2_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    if other:
        annotations[METRIC_SPECS_ANNOTATION] = orjson.dumps(other).decode()
    if current:
        annotations[METRIC_STATUSES_ANNOTATION] = orjson.dumps([_metric_status_v2_to_v1(m) for m in current]).decode()
    conditions = status_in.get("conditions") or []
    if conditions:
        annotations[CONDITIONS_ANNOTATION] = orjson.dumps([_condition(c) for c in conditions]).decode()
    if spec_in.get("behavior") is not None:
        annotations[BEHAVIOR_SPECS_ANNOTATION] = _behavior_to_annotation(spec_in["behavior"])
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {"kind": "HorizontalPodAutoscaler", "apiVersion": HPA_V1, "metadata": meta, "spec": spec,
            "status": status}


def _load_list(text: str) -> list[Obj] | None:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, list):
        return None
    return [d for d in data if isinstance(d, dict)]


def _hpa_v1_to_v2(obj: Obj) -> Obj:
    meta = _copy_metadata(obj)
    spec_in = obj.get("spec") or {}
    status_in = obj.get("status") or {}
    annotations = dict(meta.get("annotations") or {})

    spec: Obj = {"scaleTargetRef": _cross_ref(spec_in.get("scaleTargetRef"))}
    if spec_in.get("minReplicas") is not None:
        spec["minReplicas"] = spec_in["minReplicas"]
    spec["maxReplicas"] = spec_in.get("maxReplicas", 0)
    cpu = spec_in.get("targetCPUUtilizationPercentage")
    metrics: list[Obj] = []
    if cpu is not None:
        metrics.append(_cpu_metric(cpu))
    if (enc := annotations.get(METRIC_SPECS_ANNOTATION)) is not None:
        other = _load_list(enc)
        if other is not None:
            # the annotation's metrics first, then the explicit CPU target (as kube orders them)
            metrics = [_metric_spec_v1_to_v2(m) for m in other] + metrics
    if not metrics:
        # autoscaling/v1's implicit default, made explicit
        metrics = [_cpu_metric(DEFAULT_CPU_UTILIZATION)]
    spec["metrics"] = metrics
    if (enc := annotations.get(BEHAVIOR_SPECS_ANNOTATION)) is not None:
        try:
            behavior = _behavior_from_annotation(enc)
        except orjson.JSONDecodeError:
            behavior = None
        if behavior:
            spec["behavior"] = behavior

    status: Obj = {}
    if status_in.get("observedGeneration") is not None:
        status["observedGeneration"] = status_in["observedGeneration"]
    _put(status, "lastScaleTime", status_in.get("lastScaleTime"))
    _put(status, "currentReplicas", status_in.get("currentReplicas"))
    status["desiredReplicas"] = status_in.get("desiredReplicas", 0)
    current: list[Obj] | None = None
    cur_cpu = status_in.get("currentCPUUtilizationPercentage")
    if cur_cpu is not None:
        current = [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cur_cpu}}}]
    if (enc := annotations.get(METRIC_STATUSES_ANNOTATION)) is not None:
        statuses = _load_list(enc)
        if statuses is not None:
            # ignore the CPU percentage: the annotation has more information
            current = [_metric_status_v1_to_v2(m) for m in statuses]
    status["currentMetrics"] = current
    if (enc := annotations.get(CONDITIONS_ANNOTATION)) is not None:
        conds = _load_list(enc)
        if conds:
            status["conditions"] = [_condition(c) for c in conds]

    annotations = _drop_round_trip(annotations)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {"kind": "HorizontalPodAutoscaler", "apiVersion": HPA_V2, "metadata": meta, "spec": spec,
            "status": status}


def _cpu_metric(utilization: int) -> Obj:
    return {"type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}}}


_CONVERSIONS: Final[dict[tuple[str, str, str], Callable[[Obj], Obj]]] = {
    ("Event", CORE_EVENT, EVENTS_V1): _event_core_to_v1,
    ("Event", EVENTS_V1, CORE_EVENT): _event_v1_to_core,
    ("HorizontalPodAutoscaler", HPA_V2, HPA_V1): _hpa_v2_to_v1,
    ("HorizontalPodAutoscaler", HPA_V1, HPA_V2): _hpa_v1_to_v2,
}

__all__ = [
    "BEHAVIOR_SPECS_ANNOTATION",
    "CONDITIONS_ANNOTATION",
    "METRIC_SPECS_ANNOTATION",
    "METRIC_STATUSES_ANNOTATION",
    "ROUND_TRIP_HPA_ANNOTATIONS",
    "ConversionError",
    "can_convert",
    "convert",
]
