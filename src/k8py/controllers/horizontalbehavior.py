"""How the HorizontalPodAutoscaler turns the metrics' proposal into the replica count it sets, as
kube's ``horizontal.go`` (``normalizeDesiredReplicas`` and ``...WithBehaviors``). Pure: the
history it keeps per HPA (:class:`History`) and the time come in, a count and the
``AbleToScale`` / ``ScalingLimited`` condition reasons go out.

Without ``spec.behavior``: the highest recommendation of the last
``--horizontal-pod-autoscaler-downscale-stabilization`` (5 min) wins, then the count is kept
within ``minReplicas`` and ``max(2 * current, 4)`` capped by ``maxReplicas``.

With ``spec.behavior`` (defaulted by the API server: scale up by 100 % or 4 pods per 15 s,
whichever is more, no window; scale down by 100 % per 15 s after a 300 s window): the
recommendation is held between the lowest of the scale-up window and the highest of the
scale-down window, then the policies limit the change against the scale events of each
policy's period (``selectPolicy`` Max picks the policy allowing most change, Min the least,
Disabled none), then ``min/maxReplicas``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SCALE_UP_LIMIT_FACTOR",
    "SCALE_UP_LIMIT_MINIMUM",
    "History",
    "Normalized",
    "ScaleEvent",
    "convert_desired_replicas_with_rules",
    "normalize",
    "normalize_with_behaviors",
    "scale_down_limit",
    "scale_up_limit",
    "store_scale_event",
]

Obj = dict[str, Any]

SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0
MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)


@dataclass(slots=True)
class ScaleEvent:
    change: int  # replicas added (scale up) or removed (scale down), never negative
    timestamp: float
    outdated: bool = False


@dataclass(slots=True)
class History:
    """What the controller remembers of one HPA between syncs (kube keeps these in maps by key)."""

    recommendations: list[tuple[int, float]] = field(default_factory=list)  # (replicas, when)
    scale_up_events: list[ScaleEvent] = field(default_factory=list)
    scale_down_events: list[ScaleEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Normalized:
    replicas: int
    able_reason: str  # AbleToScale (True): ReadyForNewScale, ScaleUpStabilized, ScaleDownStabilized
    able_message: str
    limited: bool  # ScalingLimited
    limited_reason: str
    limited_message: str


READY_FOR_NEW_SCALE = ("ReadyForNewScale", "recommended size matches current size")
SCALE_DOWN_STABILIZED = ("ScaleDownStabilized", ("recent recommendations were higher than current one, "
                                                 "applying the highest recent recommendation"))
SCALE_UP_STABILIZED = ("ScaleUpStabilized", ("recent recommendations were lower than current one, "
                                             "applying the lowest recent recommendation"))
WITHIN_RANGE = ("DesiredWithinRange", "the desired count is within the acceptable range")
TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")
TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica count")
SCALE_UP_LIMIT = ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
SCALE_DOWN_LIMIT = ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")


def record_initial(history: History, current_replicas: int, now: float) -> None:
    """The first sync of an HPA remembers the current count as a recommendation (kube's
    ``recordInitialRecommendation``)."""
    if not history.recommendations:
        history.recommendations.append((current_replicas, now))


def _stabilize(history: History, desired: int, window: float, now: float) -> int:
    """kube's ``stabilizeRecommendation``: the highest recommendation within ``window``; the
    new one replaces an expired sample (or is appended)."""
    best = desired
    old = -1
    cutoff = now - window
    for i, (rec, ts) in enumerate(history.recommendations):
        if ts < cutoff:
            old = i
        elif rec > best:
            best = rec
    if old >= 0:
        history.recommendations[old] = (desired, now)
    else:
        history.recommendations.append((desired, now))
    return best


def scale_up_limit_without_behavior(current: int) -> int:
    return int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))


def convert_desired_replicas_with_rules(current: int, desired: int, min_replicas: int,
                                        max_replicas: int) -> tuple[int, str, str]:
    """kube's ``convertDesiredReplicasWithRules``: ``(replicas, reason, message)``."""
    limit = scale_up_limit_without_behavior(current)
    if max_replicas > limit:
        maximum, why = limit, SCALE_UP_LIMIT
    else:
        maximum, why = max_replicas, TOO_MANY
    if desired < min_replicas:
        return min_replicas, *TOO_FEW
    if desired > maximum:
        return maximum, *why
    return desired, *WITHIN_RANGE


def normalize(history: History, current: int, desired: int, min_replicas: int, max_replicas: int,
              downscale_stabilization: float, now: float) -> Normalized:
    """kube's ``normalizeDesiredReplicas`` (an HPA without ``behavior``)."""
    stabilized = _stabilize(history, desired, downscale_stabilization, now)
    able = SCALE_DOWN_STABILIZED if stabilized != desired else READY_FOR_NEW_SCALE
    replicas, reason, message = convert_desired_replicas_with_rules(current, stabilized, min_replicas, max_replicas)
    return Normalized(replicas, *able, replicas != stabilized, reason, message)


def _window(rules: Mapping[str, Any] | None) -> float:
    return float((rules or {}).get("stabilizationWindowSeconds") or 0)


def _stabilize_with_behaviors(history: History, current: int, desired: int, up: Mapping[str, Any],
                              down: Mapping[str, Any], now: float) -> tuple[int, str, str]:
    """kube's ``stabilizeRecommendationWithBehaviors``."""
    up_rec = down_rec = desired
    up_cutoff = now - _window(up)
    down_cutoff = now - _window(down)
    old = -1
    for i, (rec, ts) in enumerate(history.recommendations):
        if ts > up_cutoff:
            up_rec = min(rec, up_rec)
        if ts > down_cutoff:
            down_rec = max(rec, down_rec)
        if ts < up_cutoff and ts < down_cutoff:
            old = i
    recommendation = current
    recommendation = max(recommendation, up_rec)
    recommendation = min(recommendation, down_rec)
    if old >= 0:
        history.recommendations[old] = (desired, now)
    else:
        history.recommendations.append((desired, now))
    reason, message = SCALE_UP_STABILIZED if desired >= current else SCALE_DOWN_STABILIZED
    return recommendation, reason, message


def _change_in_period(period: float, events: Sequence[ScaleEvent], now: float) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.timestamp > cutoff)


def scale_up_limit(current: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent],
                   rules: Mapping[str, Any], now: float) -> int:
    """The most replicas the scale-up policies allow now (kube's
    ``calculateScaleUpLimitWithScalingRules``)."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    pick_min = select == "Min"
    result = MAX_INT32 if pick_min else MIN_INT32
    for p in rules.get("policies") or ():
        period = float(p.get("periodSeconds") or 0)
        start = current - _change_in_period(period, up_events, now) + _change_in_period(period, down_events, now)
        value = int(p.get("value") or 0)
        if p.get("type") == "Pods":
            proposed = start + value
        elif p.get("type") == "Percent":
            # rounded up, or a small percentage of a few pods would never add one
            proposed = math.ceil(start * (1 + value / 100))
        else:
            continue
        result = min(result, proposed) if pick_min else max(result, proposed)
    return result


def scale_down_limit(current: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent],
                     rules: Mapping[str, Any], now: float) -> int:
    """The fewest replicas the scale-down policies allow now (kube's
    ``calculateScaleDownLimitWithBehaviors``)."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    pick_min = select == "Min"  # the least change: the highest count
    result = MIN_INT32 if pick_min else MAX_INT32
    for p in rules.get("policies") or ():
        period = float(p.get("periodSeconds") or 0)
        start = current - _change_in_period(period, up_events, now) + _change_in_period(period, down_events, now)
        value = int(p.get("value") or 0)
        if p.get("type") == "Pods":
            proposed = start - value
        elif p.get("type") == "Percent":
            proposed = int(start * (1 - value / 100))  # Go's int32() truncates toward zero
        else:
            continue
        result = max(result, proposed) if pick_min else min(result, proposed)
    return result


def _rate(history: History, current: int, desired: int, min_replicas: int, max_replicas: int,
          up: Mapping[str, Any], down: Mapping[str, Any], now: float) -> tuple[int, str, str]:
    """kube's ``convertDesiredReplicasWithBehaviorRate``."""
    if desired > current:
        limit = max(scale_up_limit(current, history.scale_up_events, history.scale_down_events, up, now), current)
        if max_replicas > limit:
            maximum, why = limit, SCALE_UP_LIMIT
        else:
            maximum, why = max_replicas, TOO_MANY
        if desired > maximum:
            return maximum, *why
    elif desired < current:
        limit = min(scale_down_limit(current, history.scale_up_events, history.scale_down_events, down, now),
                    current)
        if min_replicas < limit:
            minimum, why = limit, SCALE_DOWN_LIMIT
        else:
            minimum, why = min_replicas, TOO_FEW
        if desired < minimum:
            return minimum, *why
    return desired, *WITHIN_RANGE


def scaling_rules(behavior: Mapping[str, Any], downscale_stabilization: float) -> tuple[Obj, Obj]:
    """The scale-up and scale-down rules, with a scale-down window the API did not default taken
    from the flag (kube's ``maybeInitScaleDownStabilizationWindow``)."""
    up = dict(behavior.get("scaleUp") or {})
    down = dict(behavior.get("scaleDown") or {})
    if down.get("stabilizationWindowSeconds") is None:
        down["stabilizationWindowSeconds"] = int(downscale_stabilization)
    return up, down


def normalize_with_behaviors(history: History, behavior: Mapping[str, Any], current: int, desired: int,
                             min_replicas: int, max_replicas: int, downscale_stabilization: float,
                             now: float) -> Normalized:
    """kube's ``normalizeDesiredReplicasWithBehaviors``."""
    up, down = scaling_rules(behavior, downscale_stabilization)
    stabilized, reason, message = _stabilize_with_behaviors(history, current, desired, up, down, now)
    able = (reason, message) if stabilized != desired else READY_FOR_NEW_SCALE
    replicas, lreason, lmessage = _rate(history, current, stabilized, min_replicas, max_replicas, up, down, now)
    return Normalized(replicas, *able, replicas != stabilized, lreason, lmessage)


def _longest_period(rules: Mapping[str, Any]) -> float:
    return float(max((int(p.get("periodSeconds") or 0) for p in rules.get("policies") or ()), default=0))


def store_scale_event(history: History, behavior: Mapping[str, Any] | None, prev: int, new: int,
                      downscale_stabilization: float, now: float) -> None:
    """Remember a rescale for the policies' periods (kube's ``storeScaleEvent``): an event older
    than the longest period is reused. Nothing is kept without ``behavior``."""
    if behavior is None:
        return
    up, down = scaling_rules(behavior, downscale_stabilization)
    if new > prev:
        events, rules, change = history.scale_up_events, up, new - prev
    else:
        events, rules, change = history.scale_down_events, down, prev - new
    cutoff = now - _longest_period(rules)
    old = -1
    for i, e in enumerate(events):
        if e.timestamp < cutoff:
            e.outdated = True
        if e.outdated:
            old = i
    ev = ScaleEvent(change, now)
    if old >= 0:
        events[old] = ev
    else:
        events.append(ev)
