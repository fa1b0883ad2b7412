"""The HorizontalPodAutoscaler controller, as kube-controller-manager's
``horizontalpodautoscaling`` (``pkg/controller/podautoscaler/horizontal.go``).

Every ``--horizontal-pod-autoscaler-sync-period`` (15 s; an HPA is first looked at one period
after it appears, as kube's queue delays every add) each HPA is reconciled:

1. the target's ``scale`` subresource is read (any kind serving one: Deployment, ReplicaSet,
   StatefulSet, ReplicationController, ...), found from ``scaleTargetRef``'s group and kind
   (``AbleToScale`` False / ``FailedGetScale`` when it cannot be);
2. a target at 0 replicas (with ``minReplicas`` above 0) is not autoscaled (``ScalingActive``
   False / ``ScalingDisabled``); one outside ``[minReplicas, maxReplicas]`` is brought inside;
3. otherwise every metric proposes a count (``horizontalcalc``: Resource and
   ContainerResource from ``metrics.k8s.io``, Pods and Object from ``custom.metrics.k8s.io``,
   External from ``external.metrics.k8s.io``; ``horizontalmetrics``) and the highest wins;
   failing metrics give ``ScalingActive`` False with kube's reason (``FailedGetResourceMetric``,
   ``FailedGetPodsMetric`` ...) and a warning event, and stop a scale-down;
4. the proposal is stabilized and limited (``horizontalbehavior``: the downscale window without
   ``behavior``, the policies with it), giving ``AbleToScale`` and ``ScalingLimited``;
5. a changed count is written to the scale subresource (event ``SuccessfulRescale`` "New size:
   N; reason: ..."), and the status (current and desired replicas, current metrics,
   ``lastScaleTime``, conditions) is written when it changed.

The recommendations and scale events each HPA's behavior needs live in this process, as in
kube: a restarted controller manager starts them again.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from k8py.api.corev1 import format_epoch, milli_value
from k8py.api.quantity import Quantity, QuantityError, format_quantity, parse_quantity
from k8py.api.registry import KindInfo
from k8py.api.selectors import LabelSelector, SelectorError, format_label_selector, parse_label_selector
from k8py.client.api import object_key
from k8py.client.controller import Controller, Result
from k8py.client.errors import ApiError, NotFoundError
from k8py.controllers import horizontalbehavior as behavior
from k8py.controllers import horizontalcalc as calc
from k8py.controllers.base import ControllerContext
from k8py.controllers.horizontalcalc import MetricError, Tolerances
from k8py.controllers.horizontalmetrics import MetricsClient, RESTMetricsClient

__all__ = ["COMPONENT", "HorizontalController", "go_label_selector", "set_condition"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")
POD = ("v1", "Pod")
COMPONENT = "horizontal-pod-autoscaler"  # the events' source, as kube's recorder names it


class _MetricFailure(Exception):
    """One metric could not propose a count: ``condition`` is the ScalingActive condition
    (reason, message) kube would set, ``str(self)`` the error."""

    def __init__(self, message: str, reason: str, condition_message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.condition_message = condition_message


@dataclass(slots=True)
class _Proposal:
    replicas: int
    metric: str
    status: Obj


def set_condition(status: Obj, type_: str, value: str, reason: str, message: str, now: float) -> None:
    """kube's ``setConditionInList``: lastTransitionTime moves only when the status changes."""
    conds: list[Obj] = status.setdefault("conditions", [])
    for c in conds:
        if c.get("type") == type_:
            break
    else:
        c = {"type": type_}
        conds.append(c)
    if c.get("status") != value:
        c["lastTransitionTime"] = format_epoch(now)
    c["status"] = value
    c["reason"] = reason
    c["message"] = message


def go_label_selector(sel: Mapping[str, Any] | None) -> str:
    """A ``*metav1.LabelSelector`` as Go's ``%+v`` prints it (its generated ``String()``)."""
    if sel is None:
        return "nil"
    exprs = "".join(
        f"LabelSelectorRequirement{{Key:{e.get('key', '')},Operator:{e.get('operator', '')},"
        f"Values:[{' '.join(e.get('values') or [])}],}},"
        for e in sel.get("matchExpressions") or ())
    labels = "".join(f"{k}: {v}," for k, v in sorted((sel.get("matchLabels") or {}).items()))
    return f"&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}"


def _milli_quantity(milli: int) -> str:
    """``resource.NewMilliQuantity(v, DecimalSI)`` as written to the status."""
    return format_quantity(Quantity(Fraction(milli, 1000)))


def _float(q: Any) -> float | None:
    try:
        return float(parse_quantity(q).value)
    except (QuantityError, ValueError, TypeError):
        return None


class HorizontalController:
    NAME = "horizontalpodautoscaling"

    def __init__(self, ctx: ControllerContext, metrics: MetricsClient | None = None) -> None:
        self.ctx = ctx
        o = ctx.options
        self.sync_period = o.hpa_sync_period
        self.tolerance = o.hpa_tolerance
        self.downscale_stabilization = o.hpa_downscale_stabilization
        self.cpu_initialization_period = o.hpa_cpu_initialization_period
        self.initial_readiness_delay = o.hpa_initial_readiness_delay
        self.metrics: MetricsClient = metrics if metrics is not None else RESTMetricsClient(ctx.client)
        self.hpas = ctx.factory.informer(HPA)
        self.pods = ctx.factory.informer(POD)
        self.controller = Controller("horizontal-pod-autoscaler", self.reconcile, workers=o.workers or 1,
                                     clock=ctx.clock, wait_for=(self.hpas, self.pods))
        self.history: dict[str, behavior.History] = {}
        # the pod selector of every HPA reconciled so far (kube's hpaSelectors): an HPA whose
        # pods another HPA also selects is ambiguous
        self.selectors: dict[str, LabelSelector] = {}
        self.hpas.add_handler(self._on_add, lambda _old, new: self._on_add(new), self._on_delete)

    # -- events -------------------------------------------------------------------------------
    def _on_add(self, hpa: Obj) -> None:
        # why: kube's queue delays every add by the sync period (a fixed-interval rate limiter),
        # and an HPA already waiting keeps its turn: updates never make it sync sooner
        key = object_key(hpa)
        self.controller.enqueue_after(key, self.sync_period)
        self.selectors.setdefault(key, LabelSelector.nothing())

    def _on_delete(self, hpa: Obj) -> None:
        key = object_key(hpa)
        self.selectors.pop(key, None)
        self.controller.enqueue_key(key)  # the reconcile finds it gone and forgets its history

    # -- reconcile ----------------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result | None:
        ns, _, name = key.rpartition("/")
        hpa = self.hpas.get(name, ns or None)
        if hpa is None:
            log.info("horizontal pod autoscaler %s has been deleted", key)
            self.history.pop(key, None)
            self.selectors.pop(key, None)
            return None
        try:
            await self.reconcile_autoscaler(hpa, key)
        except (ApiError, MetricError, _MetricFailure, ValueError) as e:
            # as kube: logged, and the HPA is looked at again one sync period later
            log.warning("horizontal pod autoscaler %s: %s", key, e)
        return Result(requeue_after=self.sync_period)

    def _event(self, hpa: Obj, type_: str, reason: str, message: str) -> None:
        self.ctx.record(hpa, type_, reason, message, component=COMPONENT)

    async def reconcile_autoscaler(self, shared: Obj, key: str) -> None:
        hpa = copy.deepcopy(shared)
        hpa.setdefault("apiVersion", HPA[0])
        hpa.setdefault("kind", HPA[1])
        original = copy.deepcopy(hpa.get("status") or {})
        status: Obj = hpa.setdefault("status", {})
        spec = hpa.get("spec") or {}
        md = hpa["metadata"]
        ns = str(md.get("namespace") or "")
        ref = spec.get("scaleTargetRef") or {}
        reference = f"{ref.get('kind', '')}/{ns}/{ref.get('name', '')}"
        now = self.ctx.clock.wall()

        try:
            info, scale = await self._get_scale(ref, ns)
        except _ScaleError as e:
            self._event(hpa, "Warning", "FailedGetScale", str(e))
            set_condition(status, "AbleToScale", "False", "FailedGetScale",
                          f"the HPA controller was unable to get the target's current scale: {e}", now)
            await self._update_status_if_needed(original, hpa)
            raise MetricError(f"failed to query scale subresource for {reference}: {e}") from None
        set_condition(status, "AbleToScale", "True", "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale", now)
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        history = self.history.setdefault(key, behavior.History())
        behavior.record_initial(history, current, now)

        min_replicas = int(spec["minReplicas"]) if spec.get("minReplicas") is not None else 1
        max_replicas = int(spec.get("maxReplicas") or 0)
        metric_statuses: list[Obj] | None = None
        desired = 0
        reason = ""
        rescale = True
        err: Exception | None = None
        if current == 0 and min_replicas != 0:
            desired, rescale = 0, False
            set_condition(status, "ScalingActive", "False", "ScalingDisabled",
                          "scaling is disabled since the replica count of the target is zero", now)
        elif current > max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", max_replicas
        elif current < min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", min_replicas
        else:
            proposed, metric, metric_statuses, err = await self._compute_replicas_for_metrics(hpa, scale, now)
            if proposed < 0:
                self._set_status(hpa, current, int(status.get("desiredReplicas") or 0), metric_statuses, False, now)
                await self._update_status_if_needed(original, hpa)
                self._event(hpa, "Warning", "FailedComputeMetricsReplicas", str(err))
                raise MetricError(f"failed to compute desired number of replicas based on listed metrics for "
                                  f"{reference}: {err}")
            if proposed > desired:
                desired = proposed
                if desired > current:
                    reason = f"{metric} above target"
            if desired < current:
                reason = "All metrics below target"
            beh = spec.get("behavior")
            if beh is None:
                n = behavior.normalize(history, current, desired, min_replicas, max_replicas,
                                       self.downscale_stabilization, now)
            else:
                n = behavior.normalize_with_behaviors(history, beh, current, desired, min_replicas, max_replicas,
                                                      self.downscale_stabilization, now)
            set_condition(status, "AbleToScale", "True", n.able_reason, n.able_message, now)
            set_condition(status, "ScalingLimited", "True" if n.limited else "False", n.limited_reason,
                          n.limited_message, now)
            desired = n.replicas
            rescale = desired != current

        if rescale:
            new_scale = copy.deepcopy(scale)
            new_scale.setdefault("spec", {})["replicas"] = desired
            try:
                await self.ctx.client.update(info, new_scale, ns, subresource="scale")
            except ApiError as e:
                msg = e.message or str(e)
                self._event(hpa, "Warning", "FailedRescale", f"New size: {desired}; reason: {reason}; error: {msg}")
                set_condition(status, "AbleToScale", "False", "FailedUpdateScale",
                              f"the HPA controller was unable to update the target scale: {msg}", now)
                self._set_status(hpa, current, int(status.get("desiredReplicas") or 0), metric_statuses, False, now)
                await self._update_status_if_needed(original, hpa)
                raise MetricError(f"failed to rescale {reference}: {msg}") from None
            set_condition(status, "AbleToScale", "True", "SucceededRescale",
                          f"the HPA controller was able to update the target scale to {desired}", now)
            self._event(hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
            behavior.store_scale_event(history, spec.get("behavior"), current, desired,
                                       self.downscale_stabilization, now)
            log.info("horizontal pod autoscaler %s: rescaled %s from %d to %d (%s)", key, reference, current,
                     desired, reason)
        else:
            desired = current
        self._set_status(hpa, current, desired, metric_statuses, rescale, now)
        await self._update_status_if_needed(original, hpa)
        if err is not None:
            raise MetricError(str(err))  # scaled on the metrics that worked; the others are reported

    # -- the scale subresource ----------------------------------------------------------------
    async def _mappings(self, api_version: str, kind: str) -> list[KindInfo]:
        """The kinds ``scaleTargetRef`` may mean: its group and kind in any served version, the
        one it names first (kube's RESTMapper ignores the version)."""
        if api_version in ("", "/"):
            group, version = "", ""
        elif api_version.count("/") == 0:
            group, version = "", api_version
        elif api_version.count("/") == 1:
            group, _, version = api_version.partition("/")
        else:
            raise _ScaleError(f"unexpected GroupVersion string: {api_version}")
        found = [k for k in self.ctx.client.registry.all() if k.group == group and k.kind == kind]
        found.sort(key=lambda k: k.version != version)
        if not found and version:
            try:
                found = [await self.ctx.client.resolve((api_version, kind))]
            except (NotFoundError, ApiError):
                found = []
        if not found:
            raise _ScaleError(f'no matches for kind "{kind}" in group "{group}"')
        return found

    async def _get_scale(self, ref: Mapping[str, Any], ns: str) -> tuple[KindInfo, Obj]:
        mappings = await self._mappings(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""))
        first: str | None = None
        for info in mappings:
            try:
                return info, await self.ctx.client.get(info, str(ref.get("name") or ""), ns, subresource="scale")
            except ApiError as e:
                if first is None:
                    first = e.message or str(e)
        raise _ScaleError(first or "unrecognized resource")

    # -- metrics ------------------------------------------------------------------------------
    def _tolerances(self, spec: Mapping[str, Any]) -> Tolerances:
        """The flag's tolerance, or the HPA's own per direction (``behavior.*.tolerance``)."""
        down = up = self.tolerance
        beh = spec.get("behavior") or {}
        t = _float((beh.get("scaleDown") or {}).get("tolerance"))
        if t is not None:
            down = t
        t = _float((beh.get("scaleUp") or {}).get("tolerance"))
        if t is not None:
            up = t
        return Tolerances(down, up)

    def _pods(self, ns: str, selector: LabelSelector) -> list[Obj]:
        return [p for p in self.pods.list(ns) if selector.matches((p.get("metadata") or {}).get("labels") or {})]

    def _validate_selector(self, hpa: Obj, key: str, raw: str, now: float) -> LabelSelector:
        """kube's ``validateAndParseSelector``: a selector, valid, whose pods no other HPA selects."""
        status = hpa["status"]
        if not raw:
            self._event(hpa, "Warning", "SelectorRequired", "selector is required")
            set_condition(status, "ScalingActive", "False", "InvalidSelector",
                          "the HPA target's scale is missing a selector", now)
            raise MetricError("selector is required")
        try:
            selector = parse_label_selector(raw)
        except (SelectorError, ValueError) as e:
            msg = f"couldn't convert selector into a corresponding internal selector object: {e}"
            self._event(hpa, "Warning", "InvalidSelector", msg)
            set_condition(status, "ScalingActive", "False", "InvalidSelector", msg, now)
            raise MetricError(msg) from None
        if key in self.selectors:
            self.selectors[key] = selector  # only an HPA the informer announced (kube: registered in enqueue)
        ns = key.rpartition("/")[0]
        pods = self._pods(ns, selector)
        controlling = sorted({k for k, sel in self.selectors.items()
                              if k.rpartition("/")[0] == ns and any(sel.matches(
                                  (p.get("metadata") or {}).get("labels") or {}) for p in pods)})
        if len(controlling) > 1:
            msg = f"pods by selector {raw} are controlled by multiple HPAs: [{' '.join(controlling)}]"
            self._event(hpa, "Warning", "AmbiguousSelector", msg)
            set_condition(status, "ScalingActive", "False", "AmbiguousSelector", msg, now)
            raise MetricError(msg)
        return selector

    async def _compute_replicas_for_metrics(self, hpa: Obj, scale: Obj,
                                            now: float) -> tuple[int, str, list[Obj] | None, Exception | None]:
        """kube's ``computeReplicasForMetrics``: ``(replicas or -1, metric, statuses, error)``."""
        key = object_key(hpa)
        status = hpa["status"]
        try:
            selector = self._validate_selector(hpa, key, str((scale.get("status") or {}).get("selector") or ""), now)
        except MetricError as e:
            return -1, "", None, e
        spec_replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        status_replicas = int((scale.get("status") or {}).get("replicas") or 0)
        specs: list[Obj] = list((hpa.get("spec") or {}).get("metrics") or [])
        statuses: list[Obj] = [{"type": ""} for _ in specs]
        replicas, metric = 0, ""
        invalid = 0
        first: _MetricFailure | None = None
        for i, ms in enumerate(specs):
            try:
                p = await self._compute_replicas_for_metric(hpa, ms, spec_replicas, status_replicas, selector, now)
            except _MetricFailure as e:
                if first is None:
                    first = e
                invalid += 1
                continue
            statuses[i] = p.status
            if replicas == 0 or p.replicas > replicas:
                replicas, metric = p.replicas, p.metric
        err: Exception | None = None
        if first is not None:
            err = MetricError(f"invalid metrics ({invalid} invalid out of {len(specs)}), first error is: {first}")
        if invalid >= len(specs) or (invalid > 0 and replicas < spec_replicas):
            if first is not None:
                set_condition(status, "ScalingActive", "False", first.reason, first.condition_message, now)
            return -1, "", statuses, err or MetricError("no metrics to compute a replica count from")
        set_condition(status, "ScalingActive", "True", "ValidMetricFound",
                      f"the HPA was able to successfully calculate a replica count from {metric}", now)
        return replicas, metric, statuses, err

    def _unable(self, hpa: Obj, reason: str, err: Exception, wrapped: str) -> _MetricFailure:
        """kube's ``getUnableComputeReplicaCountCondition``: a warning event now, the condition for later."""
        self._event(hpa, "Warning", reason, str(err))
        return _MetricFailure(wrapped, reason, f"the HPA was unable to compute the replica count: {err}")

    async def _compute_replicas_for_metric(self, hpa: Obj, ms: Obj, spec_replicas: int, status_replicas: int,
                                           selector: LabelSelector, now: float) -> _Proposal:
        t = ms.get("type")
        if t in ("Resource", "ContainerResource"):
            return await self._resource_metric(hpa, ms, spec_replicas, selector, now)
        if t == "Pods":
            return await self._pods_metric(hpa, ms, spec_replicas, selector, now)
        if t == "Object":
            return await self._object_metric(hpa, ms, spec_replicas, status_replicas, selector)
        if t == "External":
            return await self._external_metric(hpa, ms, spec_replicas, status_replicas, selector)
        err = MetricError(f"unknown metric source type {t!r}".replace("'", '"'))
        raise self._unable(hpa, "InvalidMetricSourceType", err, str(err))

    async def _resource_metric(self, hpa: Obj, ms: Obj, current: int, selector: LabelSelector,
                               now: float) -> _Proposal:
        container_type = ms.get("type") == "ContainerResource"
        src = ms.get("containerResource" if container_type else "resource") or {}
        resource = str(src.get("name") or "")
        container = str(src.get("container") or "") if container_type else ""
        target = src.get("target") or {}
        ns = str(hpa["metadata"].get("namespace") or "")
        tol = self._tolerances(hpa.get("spec") or {})
        reason = "FailedGetContainerResourceMetric" if container_type else "FailedGetResourceMetric"
        outer = (f"failed to get {container} container metric value" if container_type
                 else f"failed to get {resource} resource metric value")
        pods = self._pods(ns, selector)

        async def fetch() -> dict[str, calc.PodMetric]:
            try:
                metrics, _ = await self.metrics.resource_metric(resource, ns, str(selector), container)
            except MetricError as e:
                raise MetricError(f"unable to get metrics for resource {resource}: {e}") from None
            return metrics

        try:
            if target.get("averageValue") is not None:
                try:
                    replicas, usage = calc.plain_metric_replicas(
                        current, milli_value(target["averageValue"]), resource, tol, pods, await fetch(),
                        self.cpu_initialization_period, self.initial_readiness_delay, now)
                except MetricError as e:
                    raise MetricError(f"failed to get {resource} usage: {e}") from None
                current_status: Obj = {"averageValue": _milli_quantity(usage)}
                name = f"{resource} resource"
            else:
                if target.get("averageUtilization") is None:
                    raise MetricError("invalid resource metric source: neither an average utilization target nor "
                                      "an average value (usage) target was set")
                try:
                    replicas, utilization, raw = calc.resource_replicas(
                        current, int(target["averageUtilization"]), resource, tol, pods, await fetch(), container,
                        self.cpu_initialization_period, self.initial_readiness_delay, now)
                except MetricError as e:
                    raise MetricError(f"failed to get {resource} utilization: {e}") from None
                current_status = {"averageUtilization": utilization, "averageValue": _milli_quantity(raw)}
                name = (f"{resource} container resource utilization (percentage of request)" if container_type
                        else f"{resource} resource utilization (percentage of request)")
        except MetricError as e:
            raise self._unable(hpa, reason, e, f"{outer}: {e}") from None
        if container_type:
            st: Obj = {"type": "ContainerResource", "containerResource": {
                "name": resource, "container": container, "current": current_status}}
        else:
            st = {"type": "Resource", "resource": {"name": resource, "current": current_status}}
        return _Proposal(replicas, name, st)

    async def _pods_metric(self, hpa: Obj, ms: Obj, current: int, selector: LabelSelector, now: float) -> _Proposal:
        src = ms.get("pods") or {}
        metric = src.get("metric") or {}
        name = str(metric.get("name") or "")
        ns = str(hpa["metadata"].get("namespace") or "")
        target = milli_value(((src.get("target") or {}).get("averageValue")) or "0")
        try:
            try:
                metrics, _ = await self.metrics.raw_metric(name, ns, str(selector),
                                                           format_label_selector(metric.get("selector")))
            except MetricError as e:
                raise MetricError(f"unable to get metric {name}: {e}") from None
            replicas, usage = calc.plain_metric_replicas(
                current, target, "", self._tolerances(hpa.get("spec") or {}), self._pods(ns, selector), metrics,
                self.cpu_initialization_period, self.initial_readiness_delay, now)
        except MetricError as e:
            raise self._unable(hpa, "FailedGetPodsMetric", e, f"failed to get pods metric value: {e}") from None
        st = {"type": "Pods", "pods": {"metric": _identifier(metric),
                                       "current": {"averageValue": _milli_quantity(usage)}}}
        return _Proposal(replicas, f"pods metric {name}", st)

    async def _object_metric(self, hpa: Obj, ms: Obj, spec_replicas: int, status_replicas: int,
                             selector: LabelSelector) -> _Proposal:
        src = ms.get("object") or {}
        metric = src.get("metric") or {}
        name = str(metric.get("name") or "")
        obj_ref = src.get("describedObject") or {}
        target = src.get("target") or {}
        ns = str(hpa["metadata"].get("namespace") or "")
        tol = self._tolerances(hpa.get("spec") or {})
        outer = "failed to get object metric value"

        async def fetch() -> int:
            try:
                usage, _ = await self.metrics.object_metric(name, ns, obj_ref, format_label_selector(
                    metric.get("selector")))
            except MetricError as e:
                # kube's format string takes its arguments in this order
                raise MetricError(f"unable to get metric {name}: {obj_ref.get('kind', '')} on {ns} "
                                  f"{obj_ref.get('name', '')}/{e}") from None
            return usage

        if target.get("type") == "Value" and target.get("value") is not None:
            try:
                usage = await fetch()
                replicas = calc.object_metric_replicas(spec_replicas, milli_value(target["value"]), usage, tol,
                                                       self._pods(ns, selector))
            except MetricError as e:
                raise self._unable(hpa, "FailedGetObjectMetric", e, f"{outer}: {e}") from None
            st = {"type": "Object", "object": {"describedObject": obj_ref, "metric": _identifier(metric),
                                               "current": {"value": _milli_quantity(usage)}}}
            return _Proposal(replicas, f"{obj_ref.get('kind', '')} metric {name}", st)
        if target.get("type") == "AverageValue" and target.get("averageValue") is not None:
            try:
                usage = await fetch()
            except MetricError as e:
                raise self._unable(hpa, "FailedGetObjectMetric", e,
                                   f"{outer}: failed to get {name} object metric: {e}") from None
            replicas, per_pod = calc.object_per_pod_metric_replicas(status_replicas,
                                                                    milli_value(target["averageValue"]), usage, tol)
            st = {"type": "Object", "object": {"metric": _identifier(metric),
                                               "current": {"averageValue": _milli_quantity(per_pod)}}}
            return _Proposal(replicas, f"external metric {name}({go_label_selector(metric.get('selector'))})", st)
        err = MetricError("invalid object metric source: neither a value target nor an average value target was set")
        raise self._unable(hpa, "FailedGetObjectMetric", err, f"{outer}: {err}")

    async def _external_metric(self, hpa: Obj, ms: Obj, spec_replicas: int, status_replicas: int,
                               selector: LabelSelector) -> _Proposal:
        src = ms.get("external") or {}
        metric = src.get("metric") or {}
        name = str(metric.get("name") or "")
        target = src.get("target") or {}
        ns = str(hpa["metadata"].get("namespace") or "")
        tol = self._tolerances(hpa.get("spec") or {})
        outer = f"failed to get {name} external metric value"
        described = f"external metric {name}({go_label_selector(metric.get('selector'))})"

        async def fetch() -> list[int]:
            try:
                values, _ = await self.metrics.external_metric(name, ns, format_label_selector(metric.get("selector")))
            except MetricError as e:
                raise MetricError(f"unable to get external metric {ns}/{name}/"
                                  f"{go_label_selector(metric.get('selector'))}: {e}") from None
            return values

        if target.get("averageValue") is not None:
            try:
                values = await fetch()
            except MetricError as e:
                raise self._unable(hpa, "FailedGetExternalMetric", e,
                                   f"{outer}: failed to get {name} external metric: {e}") from None
            replicas, per_pod = calc.external_per_pod_metric_replicas(
                status_replicas, milli_value(target["averageValue"]), values, tol)
            st = {"type": "External", "external": {"metric": _identifier(metric),
                                                   "current": {"averageValue": _milli_quantity(per_pod)}}}
            return _Proposal(replicas, described, st)
        if target.get("value") is not None:
            try:
                values = await fetch()
                replicas, usage = calc.external_metric_replicas(spec_replicas, milli_value(target["value"]), values,
                                                                tol, self._pods(ns, selector))
            except MetricError as e:
                raise self._unable(hpa, "FailedGetExternalMetric", e,
                                   f"{outer}: failed to get external metric {name}: {e}") from None
            st = {"type": "External", "external": {"metric": _identifier(metric),
                                                   "current": {"value": _milli_quantity(usage)}}}
            return _Proposal(replicas, described, st)
        err = MetricError("invalid external metric source: neither a value target nor an average value target was set")
        raise self._unable(hpa, "FailedGetExternalMetric", err, f"{outer}: {err}")

    # -- status -------------------------------------------------------------------------------
    @staticmethod
    def _set_status(hpa: Obj, current: int, desired: int, metric_statuses: Sequence[Obj] | None, rescale: bool,
                    now: float) -> None:
        """kube's ``setStatus``: the status made again from these, keeping lastScaleTime and conditions."""
        old = hpa.get("status") or {}
        st: Obj = {"currentReplicas": current, "desiredReplicas": desired}
        if old.get("lastScaleTime"):
            st["lastScaleTime"] = old["lastScaleTime"]
        if metric_statuses:
            st["currentMetrics"] = list(metric_statuses)
        if old.get("conditions"):
            st["conditions"] = old["conditions"]
        if rescale:
            st["lastScaleTime"] = format_epoch(now)
        hpa["status"] = st

    async def _update_status_if_needed(self, original: Obj, hpa: Obj) -> None:
        if original == hpa.get("status"):
            return  # why: an unchanged status is not written (every HPA syncs every 15 s)
        try:
            await self.ctx.client.update_status(HPA, hpa)
        except ApiError as e:
            self._event(hpa, "Warning", "FailedUpdateStatus", e.message or str(e))
            raise MetricError(f"failed to update status for {hpa['metadata'].get('name')}: "
                              f"{e.message or e}") from None


class _ScaleError(Exception):
    pass


def _identifier(metric: Mapping[str, Any]) -> Obj:
    out: Obj = {"name": metric.get("name", "")}
    if metric.get("selector") is not None:
        out["selector"] = metric["selector"]
    return out
