"""The ``pods/eviction`` subresource: delete a pod only if its PodDisruptionBudget allows it
(kube's ``pkg/registry/core/pod/storage/eviction.go``).

``POST /api/v1/namespaces/NS/pods/NAME/eviction`` with a policy/v1 (or v1beta1) ``Eviction``:

- a pod that is Pending, Succeeded or Failed, or already being deleted, is deleted without
  looking at budgets (it is not serving, or already going);
- otherwise the PDBs whose selector matches the pod decide: none -> delete; more than one ->
  500 (kube does not support that); one -> if the pod is not Ready and the budget is healthy
  anyway (or its ``unhealthyPodEvictionPolicy`` is ``AlwaysAllow``) delete it without spending
  the budget, else spend one of ``status.disruptionsAllowed``: the PDB's status is written with
  the count decremented and the pod recorded in ``disruptedPods`` (compare-and-swap on its
  resourceVersion, retried on conflict), then the pod is deleted. No budget left -> 429
  ``TooManyRequests`` with a ``DisruptionBudget`` cause; a budget the disruption controller has
  not caught up with (observedGeneration behind) -> 429 with ``Retry-After``;
- the pod gets the ``DisruptionTarget`` condition (reason ``EvictionByEvictionAPI``) before
  the delete, which honours the Eviction's ``deleteOptions`` (grace period, preconditions);
- ``dryRun=All`` (query or deleteOptions) checks everything and changes nothing.

Success is ``201`` with a ``Status`` of ``Success``.
"""

from __future__ import annotations

import asyncio
import copy
import random
from typing import TYPE_CHECKING, Any

from aiohttp import web

from k8py.api import errors
from k8py.api.corev1 import now_rfc3339
from k8py.api.registry import KindInfo
from k8py.api.selectors import SelectorError, from_label_selector
from k8py.apiserver import options
from k8py.apiserver.context import Ctx
from k8py.apiserver.objects import decode
from k8py.storage.interface import ConflictError

if TYPE_CHECKING:
    from k8py.apiserver.rest import ResourceAPI

__all__ = ["MAX_DISRUPTED_POD_SIZE", "evict"]

Obj = dict[str, Any]

# More approved-but-unseen evictions than this on one PDB and the handler refuses (kube's value).
MAX_DISRUPTED_POD_SIZE = 2000
# kube's EvictionsRetry: 20 steps. Its 500 ms step suits etcd across a network; one store in the
# same process settles a conflict far sooner, so the step here is shorter (still jittered, so that
# evictions racing for one budget spread out).
RETRY_STEPS = 20
RETRY_DELAY = 0.05

TOO_MANY = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_PDBS = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
EVICTION_VERSIONS = ("policy/v1", "policy/v1beta1")


def _too_many_requests(cause: str, retry_after: int = 0) -> errors.StatusError:
    details: Obj = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    headers: dict[str, str] = {}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return errors.StatusError(429, "TooManyRequests", TOO_MANY, details=details, headers=headers)


def _still_processing(pdb_name: str) -> errors.StatusError:
    return _too_many_requests(f"The disruption budget {pdb_name} is still being processed by the server.", 10)


def _pdb_forbidden(name: str, why: str) -> errors.StatusError:
    return errors.forbidden_error(f'poddisruptionbudget.policy "{name}" is forbidden: {why}',
                                  "poddisruptionbudget", "policy", name)


async def _pause() -> None:
    await asyncio.sleep(RETRY_DELAY * (1 + random.random() * 0.1))


# -- the request ------------------------------------------------------------------------------------

def _decode_eviction(ctx: Ctx, raw: bytes, ns: str | None, name: str) -> Obj:
    if not raw.strip():
        raise errors.bad_request("the body of the request was empty; expected a policy/v1 Eviction")
    body = options.decode_plain(ctx, raw, options.field_validation(ctx) != "Ignore")
    if not isinstance(body, dict):
        raise errors.bad_request("expected a policy/v1 Eviction object")
    k, av = body.get("kind"), body.get("apiVersion")
    if k and k != "Eviction":
        raise errors.bad_request(f"the kind in the data ({k}) does not match the expected kind (Eviction)")
    if av and av not in EVICTION_VERSIONS:
        raise errors.bad_request(f"the API version in the data ({av}) does not match the expected API version "
                                 "(policy/v1)")
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if meta.get("namespace") and meta["namespace"] != ns:
        raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the "
                                 "request")
    if meta.get("name") != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    return body


# -- pod state ----------------------------------------------------------------------------------------

def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def can_ignore_pdb(pod: Obj) -> bool:
    """Pods not serving (Pending, finished) or already going are evicted without budgets."""
    return _phase(pod) in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def _should_enforce_resource_version(pod: Obj) -> bool:
    # why: a Pending pod may turn Ready between our read and the delete; pin the version read
    return _phase(pod) not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _rv_unset(opts: Obj) -> bool:
    return not (opts.get("preconditions") or {}).get("resourceVersion")


def _with_rv(opts: Obj, rv: str) -> Obj:
    new = copy.deepcopy(opts)
    new.setdefault("preconditions", {})["resourceVersion"] = rv
    return new


# -- budgets --------------------------------------------------------------------------------------------

def matching_pdbs(pdbs: list[Obj], pod: Obj) -> list[Obj]:
    """The PDBs selecting ``pod``. Here, unlike the disruption controller, an empty selector
    selects nothing: kube's eviction handler keeps that v1beta1 rule."""
    out = []
    labels = pod["metadata"].get("labels") or {}
    for pdb in pdbs:
        try:
            sel = from_label_selector((pdb.get("spec") or {}).get("selector"))
        except SelectorError:
            continue  # an invalid selector matches nothing
        if sel.empty or not sel.matches(labels):
            continue
        out.append(pdb)
    return out


def check_and_decrement(pdb: Obj, pod_name: str, dry: bool, now: str) -> Obj:
    """The PDB with one disruption spent on ``pod_name``, or the error that refuses it."""
    meta, st = pdb["metadata"], pdb.get("status") or {}
    name = meta["name"]
    if int(st.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        raise _still_processing(name)
    allowed = int(st.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise _pdb_forbidden(name, "pdb disruptions allowed is negative")
    if len(st.get("disruptedPods") or {}) > MAX_DISRUPTED_POD_SIZE:
        raise _pdb_forbidden(name, "DisruptedPods map too big - too many evictions not confirmed by PDB controller")
    if allowed == 0:
        raise _too_many_requests(f"The disruption budget {name} needs {int(st.get('desiredHealthy') or 0)} healthy "
                                 f"pods and has {int(st.get('currentHealthy') or 0)} currently")
    new = copy.deepcopy(pdb)
    ns = new.setdefault("status", {})
    ns["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        _insufficient_pods(ns, now)
    if not dry:
        # why: tells the disruption controller this pod is about to go, so that it does not count it
        # healthy (and hand its disruption out again) before the deletion shows up
        ns.setdefault("disruptedPods", {})[pod_name] = now
    return new


def _insufficient_pods(status: Obj, now: str) -> None:
    """The budget is spent: ``DisruptionAllowed`` turns False/InsufficientPods (kube's
    pdbhelper.UpdateDisruptionAllowedCondition; the disruption controller writes the same)."""
    conds = status.setdefault("conditions", [])
    gen = int(status.get("observedGeneration") or 0)
    cond = next((c for c in conds if c.get("type") == "DisruptionAllowed"), None)
    if cond is None:
        cond = {"type": "DisruptionAllowed", "status": "False", "lastTransitionTime": now}
        conds.append(cond)
    elif cond.get("status") != "False":
        cond["status"] = "False"
        cond["lastTransitionTime"] = now
    cond["reason"] = "InsufficientPods"
    cond["message"] = ""
    if gen:
        cond["observedGeneration"] = gen
    else:
        cond.pop("observedGeneration", None)


async def _spend_budget(api: ResourceAPI, pdb_kind: KindInfo, ns: str | None, pdb_name: str, pod_name: str,
                        dry: bool) -> None:
    """Verify-and-decrement the PDB's budget, compare-and-swap on its resourceVersion; a
    conflict re-reads and re-checks (the budget may be gone by then)."""
    for _ in range(RETRY_STEPS):
        kv = await api.objects.get_kv(pdb_kind, ns, pdb_name)
        new = check_and_decrement(decode(kv, pdb_kind), pod_name, dry, now_rfc3339())
        if dry:
            return
        try:
            await api.objects.replace(pdb_kind, new, kv.mod_revision)
            return
        except ConflictError:
            await _pause()
    raise errors.StatusError(504, "Timeout", f'Timeout: couldn\'t update PodDisruptionBudget "{pdb_name}" due to '
                             "conflicts", details={"retryAfterSeconds": 10}, headers={"Retry-After": "10"})


# -- deleting ---------------------------------------------------------------------------------------------

async def _add_condition_and_delete(api: ResourceAPI, ctx: Ctx, kind: KindInfo, ns: str | None, name: str,
                                    opts: Obj) -> None:
    """Mark the pod ``DisruptionTarget`` (unless dry run), then delete it with ``opts``."""
    if not opts.get("dryRun"):
        pre = opts.get("preconditions") or {}

        async def add_condition(pod: Obj) -> Obj | None:
            m = pod["metadata"]
            if pre.get("uid") and pre["uid"] != m.get("uid"):
                raise errors.conflict("Pod", "", name, f"the UID in the precondition ({pre['uid']}) does not match "
                                      f"the UID in record ({m.get('uid')}). The object might have been deleted and "
                                      "then recreated")
            if pre.get("resourceVersion") and pre["resourceVersion"] != m.get("resourceVersion"):
                raise errors.conflict("Pod", "", name, f"the ResourceVersion in the precondition "
                                      f"({pre['resourceVersion']}) does not match the ResourceVersion in record "
                                      f"({m.get('resourceVersion')}). The object might have been modified")
            conds = pod.setdefault("status", {}).setdefault("conditions", [])
            cond = {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339(), "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting"}
            for i, c in enumerate(conds):
                if c.get("type") == "DisruptionTarget":
                    if c.get("status") == "True":
                        cond["lastTransitionTime"] = c.get("lastTransitionTime")  # no transition
                    conds[i] = cond
                    break
            else:
                conds.append(cond)
            return pod

        _, new = await api.objects.guaranteed_update(kind, ns, name, add_condition)
        if not _rv_unset(opts):
            # we changed the pod ourselves: the version the caller pinned is now this one
            opts = _with_rv(opts, new["metadata"]["resourceVersion"])
    await api.delete(ctx, kind, ns, name, opts)


def _success(api: ResourceAPI, ctx: Ctx) -> web.Response:
    return api.respond(ctx, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                             "code": 201}, 201)


async def evict(api: ResourceAPI, ctx: Ctx, kind: KindInfo, ns: str | None, name: str) -> web.Response:
    """Handle ``POST pods/NAME/eviction``; see the module docstring."""
    raw = await options.read_body(ctx.request)
    body = _decode_eviction(ctx, raw, ns, name)
    original = options.eviction_delete_options(ctx, body)
    dry = bool(original.get("dryRun"))
    await api.admission.validate(api.admission_attributes(ctx, "CREATE", kind, ns or "", name, dry, "eviction"),
                                 body, None)

    # 1. Pods the budgets do not guard go at once.
    retry_conflicts = _rv_unset(original)  # a caller-pinned version is theirs to retry
    pod: Obj | None = None
    for attempt in range(RETRY_STEPS):
        pod = await api.objects.get(kind, ns, name)
        if not can_ignore_pdb(pod):
            break
        opts = original
        if _should_enforce_resource_version(pod) and _rv_unset(original):
            opts = _with_rv(original, pod["metadata"]["resourceVersion"])
        try:
            await _add_condition_and_delete(api, ctx, kind, ns, name, opts)
        except errors.StatusError as e:
            if e.code == 409 and retry_conflicts and attempt + 1 < RETRY_STEPS:
                await _pause()
                continue
            raise
        return _success(api, ctx)
    assert pod is not None

    # 2. The budget decides.
    pdb_kind = api.registry.by_resource("policy", "v1", "poddisruptionbudgets")
    if pdb_kind is None:  # pragma: no cover - the kind is built in
        raise errors.internal_error("PodDisruptionBudget is not served")
    pdbs = matching_pdbs((await api.objects.list(pdb_kind, ns)).items, pod)
    if len(pdbs) > 1:
        raise errors.StatusError(500, "", MULTIPLE_PDBS)
    pdb_name = ""
    pin_version = False
    if pdbs:
        pdb = pdbs[0]
        pdb_name = pdb["metadata"]["name"]
        st = pdb.get("status") or {}
        if not _is_ready(pod):
            policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy")
            current, desired = int(st.get("currentHealthy") or 0), int(st.get("desiredHealthy") or 0)
            # An unready pod does not count as healthy: deleting it spends nothing, either because
            # the budget says so (AlwaysAllow) or because the rest are healthy enough (IfHealthyBudget,
            # the default). Otherwise its eviction waits for budget like any other.
            if policy == "AlwaysAllow" or current >= desired > 0:
                pin_version = True
        if not pin_version:
            await _spend_budget(api, pdb_kind, ns, pdb_name, name, dry)

    # 3. Delete.
    opts = original
    if pin_version:
        # why: the pod must still be the unready one we judged, not one that became ready since
        opts = _with_rv(original, pod["metadata"]["resourceVersion"])
    try:
        await _add_condition_and_delete(api, ctx, kind, ns, name, opts)
    except errors.StatusError as e:
        if e.code == 409 and pin_version and _rv_unset(original):
            raise _still_processing(pdb_name) from None
        raise
    return _success(api, ctx)
