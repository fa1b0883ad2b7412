"""Pure helpers of the Deployment controller, with Kubernetes' semantics (pkg/controller/deployment/util).

Nothing here does I/O: objects are wire dicts, times are passed in as epoch seconds. The
controller (``deployment.py``) composes these into reconcile steps; the unit tests call them
directly.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from k8py.controllers.base import parse_time, rfc3339

Obj = dict[str, Any]

# -- names kube gives things -------------------------------------------------------------------

POD_TEMPLATE_HASH = "pod-template-hash"  # apps.DefaultDeploymentUniqueLabelKey
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
DEPRECATED_ROLLBACK_TO = "deprecated.deployment.rollback.to"

# Annotations that never travel between a Deployment and its ReplicaSets.
ANNOTATIONS_TO_SKIP = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                                 DEPRECATED_ROLLBACK_TO})

# The revision-history annotation keeps at most this many characters (kube: ~100 revisions).
MAX_REV_HISTORY_CHARS = 2000

# Condition types and reasons.
PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"
REPLICA_SET_UPDATED = "ReplicaSetUpdated"
FAILED_RS_CREATE = "ReplicaSetCreateError"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MIN_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"

ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"

MAX_INT32 = 2**31 - 1

# rand.SafeEncodeString's alphabet: no vowels (no words), no 0/1/3 (no look-alikes).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- small accessors ---------------------------------------------------------------------------

def meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def spec(obj: Obj) -> Obj:
    s = obj.get("spec")
    return s if isinstance(s, dict) else {}


def status(obj: Obj | None) -> Obj:
    if obj is None:
        return {}
    s = obj.get("status")
    return s if isinstance(s, dict) else {}


def annotations_of(obj: Obj) -> dict[str, str]:
    a = meta(obj).get("annotations")
    return a if isinstance(a, dict) else {}


def uid(obj: Obj | None) -> str:
    return str(meta(obj).get("uid") or "") if obj is not None else ""


def replicas(obj: Obj | None) -> int:
    """``spec.replicas`` of a Deployment or ReplicaSet (the API defaults it to 1)."""
    if obj is None:
        return 0
    v = spec(obj).get("replicas")
    return 1 if v is None else int(v)


def _st(obj: Obj | None, field: str) -> int:
    return int(status(obj).get(field) or 0)


def actual_replicas(rss: Iterable[Obj | None]) -> int:
    return sum(_st(rs, "replicas") for rs in rss if rs is not None)


def ready_replicas(rss: Iterable[Obj | None]) -> int:
    return sum(_st(rs, "readyReplicas") for rs in rss if rs is not None)


def available_replicas(rss: Iterable[Obj | None]) -> int:
    return sum(_st(rs, "availableReplicas") for rs in rss if rs is not None)


def spec_replicas(rss: Iterable[Obj | None]) -> int:
    return sum(replicas(rs) for rs in rss if rs is not None)


def available_of(rs: Obj | None) -> int:
    """Available pods of an RS for scale-down decisions: its status, but never more than it wants.

    why: right after a scale-down the RS's status still counts the pods it is about to delete;
    trusting it would let the next reconcile scale old RSs down again and break maxUnavailable.
    """
    if rs is None:
        return 0
    return min(_st(rs, "availableReplicas"), replicas(rs))


def pods_counted(rs: Obj | None) -> int:
    """Pods an RS has or will have: the larger of what it wants and what it still reports.

    why: after a scale-down, the RS controller may not have removed the extra pods yet; counting
    only spec would let the new RS grow first, and pods exceed replicas + maxSurge for a moment.
    """
    if rs is None:
        return 0
    return max(replicas(rs), _st(rs, "replicas"))


def filter_active(rss: Iterable[Obj | None]) -> list[Obj]:
    """ReplicaSets that want pods (``controller.FilterActiveReplicaSets``)."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def controller_ref(obj: Obj) -> Obj | None:
    for r in meta(obj).get("ownerReferences") or ():
        if isinstance(r, dict) and r.get("controller"):
            return r
    return None


def is_rolling_update(d: Obj) -> bool:
    return (spec(d).get("strategy") or {}).get("type", ROLLING_UPDATE) == ROLLING_UPDATE


def has_progress_deadline(d: Obj) -> bool:
    v = spec(d).get("progressDeadlineSeconds")
    return v is not None and int(v) != MAX_INT32


def has_revision_history_limit(d: Obj) -> bool:
    v = spec(d).get("revisionHistoryLimit")
    return v is not None and int(v) != MAX_INT32


# -- ordering ----------------------------------------------------------------------------------

def _created(rs: Obj) -> float:
    t = parse_time(meta(rs).get("creationTimestamp"))
    return t.timestamp() if t is not None else 0.0


def by_creation(rs: Obj) -> tuple[float, str]:
    """``controller.ReplicaSetsByCreationTimestamp``: oldest first, name breaks ties."""
    return (_created(rs), str(meta(rs).get("name") or ""))


def sort_by_size_newer(rss: list[Obj]) -> list[Obj]:
    """``ReplicaSetsBySizeNewer``: largest first; among equals, newest first (for scaling up)."""
    return sorted(sorted(rss, key=by_creation, reverse=True), key=lambda rs: -replicas(rs))


def sort_by_size_older(rss: list[Obj]) -> list[Obj]:
    """``ReplicaSetsBySizeOlder``: largest first; among equals, oldest first (for scaling down)."""
    return sorted(sorted(rss, key=by_creation), key=lambda rs: -replicas(rs))


def revision(obj: Obj) -> int:
    """The ``deployment.kubernetes.io/revision`` number (0 when absent); ValueError if not a number."""
    v = annotations_of(obj).get(REVISION)
    if v is None:
        return 0
    return int(v)


def _revision_or_none(obj: Obj) -> int | None:
    try:
        return revision(obj)
    except ValueError:
        return None


def max_revision(rss: Iterable[Obj]) -> int:
    out = 0
    for rs in rss:
        v = _revision_or_none(rs)
        if v is not None and v > out:
            out = v
    return out


def sort_by_revision(rss: list[Obj]) -> list[Obj]:
    """``ReplicaSetsByRevision``: lowest revision first; unparsable ones by creation time."""
    return sorted(rss, key=lambda rs: ((_revision_or_none(rs) or 0), *by_creation(rs)))


# -- hashing -----------------------------------------------------------------------------------

def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(s: str) -> str:
    """``rand.SafeEncodeString``: each character mapped into the vowel-free alphabet."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in s)


def compute_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of a pod template, as ``controller.ComputeHash`` builds it:
    fnv32a over the template (here its canonical JSON, keys sorted), then the collision count
    as 8 little-endian bytes when set, then the decimal sum safe-encoded (up to 10 characters)."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += struct.pack("<I", int(collision_count) & 0xFFFFFFFF) + b"\x00" * 4
    return safe_encode(str(fnv32a(data)))


def _strip_empty(v: Any) -> Any:
    """Drop None, {} and [] values so that omitted and empty fields compare equal."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            x = _strip_empty(x)
            if x is None or x == {} or x == []:
                continue
            out[k] = x
        return out
    if isinstance(v, list):
        return [_strip_empty(x) for x in v]
    return v


def template_without_hash(template: Mapping[str, Any] | None) -> Obj:
    t = copy.deepcopy(dict(template or {}))
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return t


def equal_ignore_hash(t1: Mapping[str, Any] | None, t2: Mapping[str, Any] | None) -> bool:
    """``EqualIgnoreHash``: two pod templates are the same apart from the pod-template-hash label."""
    return bool(_strip_empty(template_without_hash(t1)) == _strip_empty(template_without_hash(t2)))


def find_new_replica_set(d: Obj, rss: Sequence[Obj]) -> Obj | None:
    """The RS whose template is the Deployment's (the oldest one if, rarely, several are)."""
    tmpl = spec(d).get("template")
    for rs in sorted(rss, key=by_creation):
        if equal_ignore_hash(spec(rs).get("template"), tmpl):
            return rs
    return None


def find_old_replica_sets(d: Obj, rss: Sequence[Obj]) -> tuple[list[Obj], list[Obj]]:
    """(old RSs with pods wanted, all old RSs)."""
    new = find_new_replica_set(d, rss)
    new_uid = uid(new) if new is not None else None
    all_old = [rs for rs in rss if new_uid is None or uid(rs) != new_uid]
    return [rs for rs in all_old if replicas(rs) != 0], all_old


# -- maxSurge / maxUnavailable -----------------------------------------------------------------

def scaled_value(v: int | str | None, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: an int as is, ``"N%"`` of ``total`` rounded
    up (surge) or down (unavailable). Raises ValueError for anything else."""
    if v is None:
        return 0
    if isinstance(v, bool):
        raise TypeError(f"invalid value for IntOrString: {v!r}")
    if isinstance(v, int):
        return v
    s = str(v)
    if not s.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {s!r}")
    pct = int(s[:-1])
    n = pct * total
    return -(-n // 100) if round_up else n // 100


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    """Both bounds at once; if both resolve to 0 (rounding), unavailable becomes 1 so a rollout
    can still move (validation forbids an explicit 0/0)."""
    surge = scaled_value(max_surge if max_surge is not None else 0, desired, True)
    unavailable = scaled_value(max_unavailable if max_unavailable is not None else 0, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling(d: Obj) -> Obj:
    return (spec(d).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(d: Obj) -> int:
    if not is_rolling_update(d):
        return 0
    ru = _rolling(d)
    return resolve_fenceposts(ru.get("maxSurge"), ru.get("maxUnavailable"), replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    if not is_rolling_update(d) or replicas(d) == 0:
        return 0
    ru = _rolling(d)
    u = resolve_fenceposts(ru.get("maxSurge"), ru.get("maxUnavailable"), replicas(d))[1]
    return min(u, replicas(d))


def min_available(d: Obj) -> int:
    if not is_rolling_update(d):
        return 0
    return replicas(d) - max_unavailable(d)


# -- sizing ------------------------------------------------------------------------------------

def go_round(x: float) -> int:
    """Go's math.Round: halves away from zero (Python's round() goes to even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def new_rs_new_replicas(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj) -> int:
    """How many replicas the new RS may have now (``NewRSNewReplicas``)."""
    if is_rolling_update(d):
        surge = scaled_value(_rolling(d).get("maxSurge"), replicas(d), True)
        current = sum(pods_counted(rs) for rs in all_rss)
        max_total = replicas(d) + surge
        if current >= max_total:
            return replicas(new_rs)
        scale_up = min(max_total - current, replicas(d) - replicas(new_rs))
        return replicas(new_rs) + scale_up
    if (spec(d).get("strategy") or {}).get("type") == RECREATE:
        return replicas(d)
    raise ValueError(f"deployment strategy type {(spec(d).get('strategy') or {}).get('type')!r} isn't supported")


def int_annotation(rs: Obj, key: str) -> int | None:
    v = annotations_of(rs).get(key)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    """The new RS owns all desired replicas, knows it (annotation), and all are available."""
    if rs is None:
        return False
    desired = int_annotation(rs, DESIRED_REPLICAS)
    if desired is None:
        return False
    n = replicas(d)
    return replicas(rs) == n and desired == n and _st(rs, "availableReplicas") == n


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """The only active RS, or the newest one when none is active; None when several are active."""
    if new_rs is None and not old_rss:
        return None
    olds = sorted(old_rss, key=by_creation, reverse=True)
    active = filter_active([*olds, new_rs])
    if not active:
        return new_rs if new_rs is not None else olds[0]
    if len(active) == 1:
        return active[0]
    return None


def replica_set_fraction(rs: Obj, d: Obj) -> int:
    """How much ``rs`` should grow (or shrink, negative) for its share of the new deployment size."""
    if replicas(d) == 0:
        return -replicas(rs)
    deployment_replicas = replicas(d) + max_surge(d)
    annotated = int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        # Without the annotation fall back to the current size; the min/max in proportion()
        # still keeps the result within bounds.
        annotated = _st(d, "replicas")
    if annotated <= 0:
        return 0
    return go_round(replicas(rs) * deployment_replicas / annotated) - replicas(rs)


def proportion(rs: Obj | None, d: Obj, to_add: int, added: int) -> int:
    """``GetProportion``: this RS's share of ``to_add``, never beyond what is left to add."""
    if rs is None or replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    frac = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(frac, allowed) if to_add > 0 else max(frac, allowed)


def proportional_sizes(d: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]) -> tuple[list[tuple[Obj, int]], int]:
    """Target sizes of the active RSs when a rolling Deployment is scaled mid-rollout (the
    arithmetic of ``DeploymentController.scale``): the difference between ``replicas + maxSurge``
    and what the RSs hold now is spread in proportion to each RS's size, leftovers going to the
    first (largest) one. Returns the RSs in the order they are to be scaled, with their sizes,
    and the difference (> 0: scaling up)."""
    active = filter_active([*old_rss, new_rs])
    total = spec_replicas(active)
    allowed = replicas(d) + max_surge(d) if replicas(d) > 0 else 0
    to_add = allowed - total
    if to_add > 0:
        active = sort_by_size_newer(active)
    elif to_add < 0:
        active = sort_by_size_older(active)
    sizes: list[int] = []
    added = 0
    for rs in active:
        if to_add != 0:
            p = proportion(rs, d, to_add, added)
            sizes.append(replicas(rs) + p)
            added += p
        else:
            sizes.append(replicas(rs))
    if sizes and to_add != 0:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return list(zip(active, sizes, strict=True)), to_add


# -- annotations -------------------------------------------------------------------------------

def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for k, v in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if ann.get(k) != v:
            ann[k] = v
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = annotations_of(rs)
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    """Copy the Deployment's annotations (but the skipped ones) onto the RS; True if any changed.
    Only adds and overwrites: an annotation removed from the Deployment stays on its RSs."""
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for k, v in annotations_of(d).items():
        if k in ANNOTATIONS_TO_SKIP or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    return changed


def set_new_replica_set_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool,
                                    history_limit_chars: int = MAX_REV_HISTORY_CHARS) -> bool:
    """Copy the Deployment's annotations, raise the RS's revision to ``new_revision`` (keeping the
    revisions it served before in ``revision-history``, as when rolling back to it), and for a
    new RS set the replicas annotations. True if anything changed."""
    changed = copy_deployment_annotations(d, rs)
    ann = rs["metadata"]["annotations"]
    old = ann.get(REVISION)
    try:
        old_int = int(old) if old not in (None, "") else 0
    except ValueError:
        return False
    if old_int < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old is not None:
            hist = ann.get(REVISION_HISTORY) or ""
            parts = hist.split(",") if hist else []
            if not parts:
                ann[REVISION_HISTORY] = old
            else:
                total = len(hist) + len(old) + 1
                start = 0
                while total > history_limit_chars and start < len(parts):
                    total -= len(parts[start]) + 1
                    start += 1
                if total <= history_limit_chars:
                    ann[REVISION_HISTORY] = ",".join([*parts[start:], old])
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


# -- conditions --------------------------------------------------------------------------------

def ts(now: float) -> str:
    return rfc3339(dt.datetime.fromtimestamp(now, dt.UTC))


def new_condition(type_: str, status_: str, reason: str, message: str, now: float) -> Obj:
    t = ts(now)
    return {"type": type_, "status": status_, "lastUpdateTime": t, "lastTransitionTime": t,
            "reason": reason, "message": message}


def get_condition(st: Obj, type_: str) -> Obj | None:
    for c in st.get("conditions") or ():
        if c.get("type") == type_:
            return dict(c)
    return None


def set_condition(st: Obj, cond: Obj) -> None:
    """Set ``cond``; nothing changes when one of the type with the same status and reason is there,
    and ``lastTransitionTime`` is kept when only the reason changes."""
    cur = get_condition(st, cond["type"])
    if cur is not None and cur.get("status") == cond["status"] and cur.get("reason") == cond["reason"]:
        return
    cond = dict(cond)
    if cur is not None and cur.get("status") == cond["status"]:
        cond["lastTransitionTime"] = cur.get("lastTransitionTime")
    st["conditions"] = [*(c for c in st.get("conditions") or () if c.get("type") != cond["type"]), cond]


def remove_condition(st: Obj, type_: str) -> None:
    conds = [c for c in st.get("conditions") or () if c.get("type") != type_]
    if conds:
        st["conditions"] = conds
    else:
        st.pop("conditions", None)


def rs_condition_to_deployment(c: Obj) -> Obj:
    return {"type": c.get("type"), "status": c.get("status"),
            "lastUpdateTime": c.get("lastTransitionTime"), "lastTransitionTime": c.get("lastTransitionTime"),
            "reason": c.get("reason", ""), "message": c.get("message", "")}


# -- status ------------------------------------------------------------------------------------

STATUS_COUNTS = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                 "unavailableReplicas")


def calculate_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, d: Obj, now: float) -> Obj:
    """The Deployment's status as its ReplicaSets report it, with the Available condition."""
    available = available_replicas(all_rss)
    unavailable = max(0, spec_replicas(all_rss) - available)
    old = status(d)
    st: Obj = {
        "observedGeneration": int(meta(d).get("generation") or 0),
        "replicas": actual_replicas(all_rss),
        "updatedReplicas": actual_replicas([new_rs]),
        "readyReplicas": ready_replicas(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    # Zero counts are left out on the wire, as Go's omitempty does.
    st = {k: v for k, v in st.items() if v}
    terminating = terminating_replicas(all_rss)
    if terminating is not None:  # a pointer in Go: 0 is written
        st["terminatingReplicas"] = terminating
    if old.get("collisionCount") is not None:
        st["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        st["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= replicas(d) - max_unavailable(d):
        set_condition(st, new_condition(AVAILABLE, "True", MIN_REPLICAS_AVAILABLE,
                                        "Deployment has minimum availability.", now))
    else:
        set_condition(st, new_condition(AVAILABLE, "False", MIN_REPLICAS_UNAVAILABLE,
                                        "Deployment does not have minimum availability.", now))
    return st


def terminating_replicas(rss: Iterable[Obj | None]) -> int | None:
    """Pods of the RSs being deleted; None when an RS that has reported status does not say
    (``GetTerminatingReplicaCountForReplicaSets``; RSs never synced yet are skipped)."""
    total = 0
    for rs in rss:
        if rs is None:
            continue
        st = status(rs)
        if "terminatingReplicas" not in st:
            if not st.get("observedGeneration"):
                continue
            return None
        total += int(st["terminatingReplicas"] or 0)
    return total


def normalized_status(st: Obj) -> Obj:
    """A status with zero counts and empty lists dropped, for change detection."""
    return {k: v for k, v in st.items() if v not in (0, None, [], {}) or k == "terminatingReplicas"}


def deployment_complete(d: Obj, st: Obj) -> bool:
    """All desired replicas are updated and available, no old pods run, the spec is observed."""
    n = replicas(d)
    return (int(st.get("updatedReplicas") or 0) == n and int(st.get("replicas") or 0) == n
            and int(st.get("availableReplicas") or 0) == n
            and int(st.get("observedGeneration") or 0) >= int(meta(d).get("generation") or 0))


def deployment_progressing(d: Obj, new: Obj) -> bool:
    """Progress since the last status: more updated, fewer old, more ready or more available pods."""
    old = status(d)

    def g(s: Obj, k: str) -> int:
        return int(s.get(k) or 0)

    old_old = g(old, "replicas") - g(old, "updatedReplicas")
    new_old = g(new, "replicas") - g(new, "updatedReplicas")
    return (g(new, "updatedReplicas") > g(old, "updatedReplicas") or new_old < old_old
            or g(new, "readyReplicas") > g(old, "readyReplicas")
            or g(new, "availableReplicas") > g(old, "availableReplicas"))


def deployment_timed_out(d: Obj, new: Obj, now: float) -> bool:
    """No progress reported for ``progressDeadlineSeconds`` (or already reported as timed out)."""
    if not has_progress_deadline(d):
        return False
    cond = get_condition(new, PROGRESSING)
    if cond is None:
        return False
    # A finished rollout is not judged: its condition may be older than the deadline when a
    # resync arrives before the condition of the next rollout is written.
    if cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    frm = parse_time(cond.get("lastUpdateTime"))
    if frm is None:
        return False
    return frm.timestamp() + int(spec(d)["progressDeadlineSeconds"]) < now


def progress_check_after(d: Obj, new: Obj, now: float) -> float | None:
    """Seconds until the Deployment should be looked at again for a progress deadline
    (``requeueStuckDeployment``): None when not needed, 0 for "now (rate limited)"."""
    cur = get_condition(status(d), PROGRESSING)
    if not has_progress_deadline(d) or cur is None:
        return None
    if deployment_complete(d, new) or cur.get("reason") == TIMED_OUT:
        return None
    frm = parse_time(cur.get("lastUpdateTime"))
    if frm is None:
        return None
    after = frm.timestamp() + int(spec(d)["progressDeadlineSeconds"]) - now
    if after < 1:
        return 0.0
    # one second more, against rounding of the condition's timestamps (kube does the same)
    return after + 1


def rollout_progress(d: Obj, new: Obj, new_rs: Obj | None, now: float) -> None:
    """Update the Progressing condition in ``new`` (the computed status) as ``syncRolloutStatus`` does."""
    if not has_progress_deadline(d):
        remove_condition(new, PROGRESSING)
        return
    cur = get_condition(status(d), PROGRESSING)
    complete_before = (int(new.get("replicas") or 0) == int(new.get("updatedReplicas") or 0)
                       and cur is not None and cur.get("reason") == NEW_RS_AVAILABLE)
    if complete_before:
        return
    name = str(meta(d).get("name"))
    rs_name = str(meta(new_rs).get("name")) if new_rs is not None else None
    if deployment_complete(d, new):
        msg = f'ReplicaSet "{rs_name}" has successfully progressed.' if rs_name else \
            f'Deployment "{name}" has successfully progressed.'
        set_condition(new, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now))
    elif deployment_progressing(d, new):
        msg = f'ReplicaSet "{rs_name}" is progressing.' if rs_name else f'Deployment "{name}" is progressing.'
        cond = new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, msg, now)
        # Progress refreshes lastUpdateTime even when the reason stays the same (the deadline
        # counts from the last progress), and keeps lastTransitionTime while it stays True.
        if cur is not None:
            if cur.get("status") == "True":
                cond["lastTransitionTime"] = cur.get("lastTransitionTime")
            remove_condition(new, PROGRESSING)
        set_condition(new, cond)
    elif deployment_timed_out(d, new, now):
        msg = f'ReplicaSet "{rs_name}" has timed out progressing.' if rs_name else \
            f'Deployment "{name}" has timed out progressing.'
        set_condition(new, new_condition(PROGRESSING, "False", TIMED_OUT, msg, now))


def replica_failures(all_rss: Sequence[Obj | None], new_rs: Obj | None) -> list[Obj]:
    """ReplicaFailure conditions of the new RS, else of any RS, as Deployment conditions."""
    out = [rs_condition_to_deployment(c) for c in status(new_rs).get("conditions") or ()
           if c.get("type") == REPLICA_FAILURE] if new_rs is not None else []
    if out:
        return out
    for rs in all_rss:
        if rs is None:
            continue
        out.extend(rs_condition_to_deployment(c) for c in status(rs).get("conditions") or ()
                   if c.get("type") == REPLICA_FAILURE)
    return out
