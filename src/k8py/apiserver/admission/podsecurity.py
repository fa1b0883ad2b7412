"""PodSecurity: kube-apiserver's Pod Security admission (``plugin/pkg/admission/security/
podsecurity`` over ``k8s.io/pod-security-admission/admission``). The checks themselves are pure
and live in :mod:`k8py.api.podsecurity`; this is the shell that reads namespaces and pods.

- **Pods** are evaluated against their namespace's policy (labels
  ``pod-security.kubernetes.io/{enforce,audit,warn}[-version]``, or the configured defaults):
  *enforce* refuses (403 ``pods "x" is forbidden: violates PodSecurity "restricted:latest":
  ...``), *audit* adds the ``pod-security.kubernetes.io/audit-violations`` audit annotation,
  *warn* sends ``Warning: would violate PodSecurity ...``. An update is evaluated only when it
  can change what the checks read (images, seccomp annotations, ephemeral containers); status,
  binding, exec and the other subresources that do not carry a pod spec are never evaluated.
- **Workloads** (Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs,
  ReplicationControllers, PodTemplates) get audit and warn for their pod template, never a
  refusal: the pods they create are what enforce refuses.
- **Namespaces**: invalid label values are refused (422); setting or tightening the enforce
  label evaluates the namespace's existing pods (at most 3000, at most 1 second) and warns about
  those that violate it, never refusing.
- **Exemptions** (``--admission-control-config-file``'s PodSecurityConfiguration): usernames,
  runtime classes and namespaces that are never evaluated, recorded in the
  ``pod-security.kubernetes.io/exempt`` audit annotation.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.api import podsecurity as ps
from k8py.apiserver.admission import Attributes, Plugin

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

__all__ = ["PodSecurity"]

# Pod subresources that carry no pod spec change (kube's ignoredPodSubresources); any other
# (ephemeralcontainers, resize, ...) is evaluated like an update of the pod.
IGNORED_POD_SUBRESOURCES = frozenset({"exec", "attach", "binding", "eviction", "log", "portforward", "proxy",
                                      "status"})
# Checking a namespace's pods when its enforce label changes: bounded as kube bounds it.
NAMESPACE_MAX_PODS_TO_CHECK = 3000
NAMESPACE_POD_CHECK_TIMEOUT = 1.0


class PodSecurity(Plugin):
    name = "PodSecurity"

    def __init__(self, objects: Objects, registry: Registry, config: ps.Configuration | None = None) -> None:
        self.objects = objects
        self.config = config if config is not None else ps.Configuration()
        self._ns_kind = registry.by_resource("", "v1", "namespaces")
        self._pod_kind = registry.by_resource("", "v1", "pods")

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if a.operation not in ("CREATE", "UPDATE") or obj is None:
            return
        k = a.kind
        if k.group == "" and k.kind == "Namespace":
            await self._validate_namespace(a, obj, old)
        elif k.group == "" and k.kind == "Pod":
            await self._validate_pod(a, obj, old)
        elif ps.has_pod_template(k.group, k.kind) and not a.subresource:
            await self._validate_workload(a, obj)

    # -- pods and workloads -----------------------------------------------------------------

    def _exempt(self, a: Attributes) -> bool:
        """Exempt namespace or user: recorded in the audit annotation, nothing evaluated."""
        if a.namespace and a.namespace in self.config.exempt_namespaces:
            a.audit_annotations[ps.EXEMPT_ANNOTATION] = "namespace"
            return True
        if a.user is not None and a.user.name and a.user.name in self.config.exempt_usernames:
            a.audit_annotations[ps.EXEMPT_ANNOTATION] = "user"
            return True
        return False

    async def _namespace_policy(self, namespace: str) -> tuple[ps.Policy, list[errors.FieldError]] | None:
        """The namespace's policy; None when the namespace cannot be read."""
        ns = await self.objects.try_get(self._ns_kind, None, namespace) if self._ns_kind is not None else None
        if ns is None:
            return None
        return ps.policy_to_evaluate((ns.get("metadata") or {}).get("labels"), self.config.defaults)

    async def _validate_pod(self, a: Attributes, pod: Obj, old: Obj | None) -> None:
        if a.subresource in IGNORED_POD_SUBRESOURCES or self._exempt(a):
            return
        found = await self._namespace_policy(a.namespace)
        if found is None:  # fail closed for pods, as kube
            a.audit_annotations[ps.ERROR_ANNOTATION] = f"failed to lookup namespace {a.namespace}"
            raise errors.StatusError(500, "InternalError",
                                     f"Internal error occurred: failed to lookup namespace {a.namespace}")
        policy, perrs = found
        privileged = ps.Level.PRIVILEGED
        if not perrs and policy.enforce.level is privileged and policy.warn.level is privileged \
                and policy.audit.level is privileged:
            a.audit_annotations[ps.ENFORCED_POLICY_ANNOTATION] = str(policy.enforce)
            return
        if a.operation == "UPDATE" and old is not None and not ps.is_significant_pod_update(pod, old):
            return  # nothing the checks read changed: always allowed, as kube
        meta_spec = ps.pod_spec_of("", "Pod", pod)
        assert meta_spec is not None
        self._evaluate(a, policy, perrs, *meta_spec, enforce=True)

    async def _validate_workload(self, a: Attributes, obj: Obj) -> None:
        if self._exempt(a):
            return
        found = await self._namespace_policy(a.namespace)
        if found is None:  # a workload is never refused: allowed, the audit event says why
            a.audit_annotations[ps.ERROR_ANNOTATION] = f"failed to lookup namespace {a.namespace}"
            return
        policy, perrs = found
        privileged = ps.Level.PRIVILEGED
        if not perrs and policy.warn.level is privileged and policy.audit.level is privileged:
            return
        meta_spec = ps.pod_spec_of(a.kind.group, a.kind.kind, obj)
        if meta_spec is None:  # a workload without a template: nothing to evaluate
            return
        self._evaluate(a, policy, perrs, *meta_spec, enforce=False)

    def _evaluate(self, a: Attributes, policy: ps.Policy, perrs: list[errors.FieldError], meta: Obj, spec: Obj,
                  *, enforce: bool) -> None:
        """kube's EvaluatePod: enforce (pods only) refuses, audit annotates, warn warns."""
        runtime_class = spec.get("runtimeClassName")
        if runtime_class and runtime_class in self.config.exempt_runtime_classes:
            a.audit_annotations[ps.EXEMPT_ANNOTATION] = "runtimeClass"
            return
        annotations: dict[str, str] = {}
        if perrs:
            agg = str(perrs[0]) if len(perrs) == 1 else "[" + ", ".join(str(e) for e in perrs) + "]"
            annotations[ps.ERROR_ANNOTATION] = f"Failed to parse policy: {agg}"
        pod = ps.PodView(meta, spec)  # each check runs once, whatever the three modes ask

        def evaluate(lv: ps.LevelVersion) -> list[ps.Violation]:
            return ps.evaluate(lv, pod)

        refusal: errors.StatusError | None = None
        if enforce:
            annotations[ps.ENFORCED_POLICY_ANNOTATION] = str(policy.enforce)
            violations = evaluate(policy.enforce)
            if violations:
                res = errors.qualified(a.kind.resource, a.kind.group)
                refusal = errors.forbidden_error(
                    f'{res} "{a.name}" is forbidden: violates PodSecurity "{policy.enforce}": '
                    f"{ps.forbidden_detail(violations)}", a.kind.resource, a.kind.group, a.name)
        violations = evaluate(policy.audit)
        if violations:
            annotations[ps.AUDIT_VIOLATIONS_ANNOTATION] = \
                f'would violate PodSecurity "{policy.audit}": {ps.forbidden_detail(violations)}'
        if refusal is None:  # no warnings on a request refused anyway
            violations = evaluate(policy.warn)
            if violations:
                a.warnings.append(f'would violate PodSecurity "{policy.warn}": {ps.forbidden_detail(violations)}')
        a.audit_annotations.update(annotations)
        if refusal is not None:
            raise refusal

    # -- namespaces ---------------------------------------------------------------------------

    async def _validate_namespace(self, a: Attributes, ns: Obj, old: Obj | None) -> None:
        if a.subresource:
            return
        name = (ns.get("metadata") or {}).get("name") or a.name
        policy, errs = ps.policy_to_evaluate((ns.get("metadata") or {}).get("labels"), self.config.defaults)
        if a.operation == "CREATE" or old is None:
            if errs:
                raise errors.invalid_error("Namespace", "", name, errs)
            return
        old_policy, old_errs = ps.policy_to_evaluate((old.get("metadata") or {}).get("labels"),
                                                     self.config.defaults)
        # invalid labels are refused only when they changed (a namespace that already had them
        # can still be updated otherwise)
        if errs and (not old_errs or errs != old_errs):
            raise errors.invalid_error("Namespace", "", name, errs)
        new, prev = policy.enforce, old_policy.enforce
        if new == prev or new.level is ps.Level.PRIVILEGED:
            return
        if new.version == prev.version and ps.compare_levels(new.level, prev.level) < 1:
            return  # relaxed at the same version: nothing can newly violate it
        if name in self.config.exempt_namespaces:
            a.audit_annotations[ps.EXEMPT_ANNOTATION] = "namespace"
            return
        a.warnings.extend(await self.evaluate_pods_in_namespace(name, new))

    async def evaluate_pods_in_namespace(self, namespace: str, enforce: ps.LevelVersion) -> list[str]:
        """kube's EvaluatePodsInNamespace: warnings naming the existing pods that violate the
        new enforce level, pods with the same violations grouped, one pod per controller first,
        at most :data:`NAMESPACE_MAX_PODS_TO_CHECK` pods and :data:`NAMESPACE_POD_CHECK_TIMEOUT`."""
        deadline = time.monotonic() + NAMESPACE_POD_CHECK_TIMEOUT
        try:
            assert self._pod_kind is not None
            pods = (await self.objects.list(self._pod_kind, namespace)).items
        except (errors.StatusError, AssertionError):
            return ["failed to list pods while checking new PodSecurity enforce level"]
        pods = self._prioritize(pods)
        total = len(pods)
        pods = pods[:NAMESPACE_MAX_PODS_TO_CHECK]
        checked = len(pods)
        by_warning: dict[str, list[Any]] = {}  # reasons -> [first pod name, count]
        order: list[str] = []
        for i, pod in enumerate(pods):
            meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
            violations = ps.evaluate_pod(enforce, meta, spec)
            if violations:
                warning = ps.forbidden_reason(violations)
                name = str(meta.get("name") or "")
                seen = by_warning.get(warning)
                if seen is None:
                    by_warning[warning] = [name, 1]
                    order.append(warning)
                else:
                    seen[0] = min(seen[0], name)
                    seen[1] += 1
            if time.monotonic() > deadline:
                checked = i + 1
                break
        out = []
        if checked < total:
            out.append(f"new PodSecurity enforce level only checked against the first {checked} of {total} "
                       "existing pods")
        if order:
            out.append(f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
                       f'"{enforce}"')
        pod_warnings = []
        for warning in order:
            first, count = by_warning[warning]
            if count == 1:
                pod_warnings.append(f"{first}: {warning}")
            elif count == 2:
                pod_warnings.append(f"{first} (and 1 other pod): {warning}")
            else:
                pod_warnings.append(f"{first} (and {count - 1} other pods): {warning}")
        return out + sorted(pod_warnings)

    def _prioritize(self, pods: list[Obj]) -> list[Obj]:
        """Pods of exempt runtime classes dropped; one pod per controller first, then the rest."""
        first, rest = [], []
        controllers: set[str] = set()
        for pod in pods:
            spec = pod.get("spec") or {}
            if spec.get("runtimeClassName") and spec["runtimeClassName"] in self.config.exempt_runtime_classes:
                continue
            owner = next((r for r in (pod.get("metadata") or {}).get("ownerReferences") or []
                          if isinstance(r, dict) and r.get("controller")), None)
            if owner is None:
                first.append(pod)
            elif owner.get("uid") in controllers:
                rest.append(pod)
            else:
                controllers.add(str(owner.get("uid")))
                first.append(pod)
        return first + rest
