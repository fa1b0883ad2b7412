"""K8pySeedPolicy: the seed's anti-patterns (``k8py.api.seedpolicy``) as admission warnings, or
refusals where a namespace enforces them.

A create of a Pod or a workload (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
ReplicationController, PodTemplate), or an update that changes its pod spec, is checked in the
validating phase (after LimitRanger filled in limits). The namespace's ``k8py.io/policy`` label
chooses what happens to the findings:

- ``warn`` (the default): each finding is a ``Warning:`` header (kubectl prints them; dry-run
  requests warn too, which is how ``kubectl apply --dry-run=server`` shows them);
- ``enforce``: the write is refused, 403 Forbidden, with every finding in the message (Pod
  Security's form: ``deployments.apps "web" is forbidden: violates k8py policy "enforce": ...``)
  and one cause per finding;
- ``off``: nothing.

Objects a controller owns (the ReplicaSet of a Deployment, the pods of a ReplicaSet or a Job)
are not checked again in ``warn`` mode: their owner was, when it was written, and controllers'
creates are frequent, so they cost only the ``ownerReferences`` scan. In ``enforce`` mode they
are checked (without ``bare-pod``), so an ownerReference cannot be used to slip past the policy,
and a workload written before the namespace enforced gets its refusals as ``FailedCreate``
events, as with Pod Security.

The ``kube-system/k8py-policy`` ConfigMap tunes it (:func:`k8py.api.seedpolicy.parse_policy`):
the default mode, the checks that are on, more secret-ish env names and the exempt namespaces
(``kube-system`` by default). The ConfigMap and the namespaces' labels are kept in memory from
a store watch (``Objects.mirror``), never read per request. A malformed ConfigMap is reported by
warnings on the write that makes it so and by a log line naming each key at fault when it is
loaded; the wrong keys keep their defaults. A namespace label that names no mode is refused
(422 Invalid), as Pod Security refuses its own labels' wrong values; a namespace whose mode becomes
``enforce`` gets warnings naming the objects already there that violate the policy, as Pod
Security warns about existing pods when a namespace's enforce level tightens.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson

from k8py.api import errors
from k8py.api import seedpolicy as sp
from k8py.apiserver.admission import Attributes, Plugin

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

log = logging.getLogger(__name__)

SYNC_TIMEOUT = 30.0
# A namespace that starts enforcing is checked against at most this many existing objects (Pod
# Security's namespaceMaxPodsToCheck is 3000; these checks are cheaper, the objects fewer).
MAX_EXISTING_CHECKED = 3000


class SeedPolicy(Plugin):
    name = "K8pySeedPolicy"

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        ns_kind = registry.by_resource("", "v1", "namespaces")
        cm_kind = registry.by_resource("", "v1", "configmaps")
        assert ns_kind is not None and cm_kind is not None
        self._ns_prefix = ns_kind.key_prefix(None)
        self._cm_key = cm_kind.key(sp.CONFIGMAP_NAMESPACE, sp.CONFIGMAP_NAME)
        # Until the watch has loaded them (or when the server never starts it: in-process tests
        # that only build the API), the defaults: warn everywhere but kube-system.
        self.policy = sp.DEFAULT_POLICY
        self.modes: dict[str, str] = {}  # namespace -> its k8py.io/policy label, when it names a mode
        # what runs pods, for a namespace that starts enforcing (a PodTemplate runs nothing)
        self._workload_kinds = [k for k in registry.all()
                                if (k.group, k.kind) in sp.POD_SPEC_PATHS and k.kind != "PodTemplate"]
        self.synced = asyncio.Event()

    # -- the watched copy ------------------------------------------------------------------------
    def _set_namespace(self, key: str, value: bytes | None) -> None:
        name = key[len(self._ns_prefix):]
        mode = None
        if value is not None:
            try:
                labels = (orjson.loads(value).get("metadata") or {}).get("labels") or {}
            except (orjson.JSONDecodeError, AttributeError) as e:
                log.warning("k8py policy: cannot read namespace %s (%s); its label is ignored", name, e)
                labels = {}
            mode = labels.get(sp.LABEL) if isinstance(labels, dict) else None
        if mode in sp.MODES:
            self.modes[name] = mode
        else:
            self.modes.pop(name, None)

    def _set_config(self, key: str, value: bytes | None) -> None:
        if key != self._cm_key:
            return  # another ConfigMap whose name starts with k8py-policy
        if value is None:
            if self.policy is not sp.DEFAULT_POLICY:
                log.info("k8py policy: %s/%s removed; the defaults are in force", sp.CONFIGMAP_NAMESPACE,
                         sp.CONFIGMAP_NAME)
            self.policy = sp.DEFAULT_POLICY
            return
        try:
            data = orjson.loads(value).get("data") or {}
        except (orjson.JSONDecodeError, AttributeError) as e:
            log.warning("k8py policy: cannot read %s/%s (%s); the defaults are in force", sp.CONFIGMAP_NAMESPACE,
                        sp.CONFIGMAP_NAME, e)
            self.policy = sp.DEFAULT_POLICY
            return
        policy, errs = sp.parse_policy(data if isinstance(data, dict) else {})
        for err in errs:
            log.warning("k8py policy: %s/%s: %s; that key keeps its default", sp.CONFIGMAP_NAMESPACE,
                        sp.CONFIGMAP_NAME, err)
        self.policy = policy
        log.info("k8py policy: default mode %s, checks %s, exempt namespaces %s", policy.mode,
                 ",".join(c for c in sp.CHECKS if c in policy.checks) or "none",
                 ",".join(sorted(policy.exempt_namespaces)) or "none")

    async def _run(self) -> None:
        ns_synced, cm_synced = asyncio.Event(), asyncio.Event()

        async def both_synced() -> None:
            await ns_synced.wait()
            await cm_synced.wait()
            self.synced.set()

        def reset_config() -> None:
            self.policy = sp.DEFAULT_POLICY

        waiter = asyncio.create_task(both_synced())
        try:
            await asyncio.gather(
                self.objects.mirror(self._ns_prefix, reset=self.modes.clear, apply=self._set_namespace,
                                    synced=ns_synced.set, what="k8py policy namespaces"),
                self.objects.mirror(self._cm_key, reset=reset_config, apply=self._set_config,
                                    synced=cm_synced.set, what="k8py policy ConfigMap"))
        finally:
            waiter.cancel()

    async def start(self) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._run(), name="k8py-seed-policy")
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                await self.synced.wait()
        except TimeoutError:
            log.error("the k8py policy did not load in %.0fs; the defaults are in force until it does",
                      SYNC_TIMEOUT)
        return task

    # -- admission -------------------------------------------------------------------------------
    def mode_of(self, namespace: str) -> str:
        if namespace in self.policy.exempt_namespaces:
            return "off"
        return self.modes.get(namespace) or self.policy.mode

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if obj is None or a.subresource or a.operation not in ("CREATE", "UPDATE"):
            return
        k = a.kind
        if k.group == "":
            if k.kind == "Namespace":
                _check_namespace_label(a, obj, old)
                if a.operation == "UPDATE" and old is not None and self._starts_enforcing(a.name, obj, old):
                    a.warnings.extend(await self.existing_violations(a.name))
                return
            if k.kind == "ConfigMap":
                if a.namespace == sp.CONFIGMAP_NAMESPACE and a.name == sp.CONFIGMAP_NAME:
                    _check_config(a, obj)
                return
        found = sp.pod_spec_of(k.group, k.kind, obj)
        if found is None:
            return
        mode = self.mode_of(a.namespace)
        if mode == "off":
            return
        meta = obj.get("metadata") or {}
        owned = sp.controlled(meta)
        if owned and mode != "enforce":
            return  # its controller's object was checked when it was written
        if a.operation == "UPDATE" and old is not None:
            was = sp.pod_spec_of(k.group, k.kind, old)
            if was is not None and was[1] == found[1]:
                return  # the pod spec is what it was: scale, labels, status-like writes pass
        findings = sp.check(obj, self.policy)
        if owned:
            findings = [f for f in findings if f.check != "bare-pod"]
        if not findings:
            return
        if mode == "enforce":
            raise _refusal(a, meta, findings)
        a.warnings.extend(f.message for f in findings)


    # -- a namespace that starts enforcing ------------------------------------------------------
    def _starts_enforcing(self, namespace: str, obj: Obj, old: Obj) -> bool:
        if namespace in self.policy.exempt_namespaces:
            return False

        def mode(o: Obj) -> str:
            labels = (o.get("metadata") or {}).get("labels") or {}
            m = labels.get(sp.LABEL) if isinstance(labels, dict) else None
            return m if m in sp.MODES else self.policy.mode

        return mode(obj) == "enforce" and mode(old) != "enforce"

    async def existing_violations(self, namespace: str) -> list[str]:
        """What Pod Security says when a namespace's enforce level tightens, for this policy: the
        objects already there that the new mode would refuse (those a controller owns are
        their owner's), at most :data:`MAX_EXISTING_CHECKED` of them."""
        found: list[str] = []
        checked = total = 0
        for kind in self._workload_kinds:
            page = await self.objects.list(kind, namespace)
            for o in page.items:
                if sp.controlled(o.get("metadata") or {}):
                    continue
                total += 1
                if checked >= MAX_EXISTING_CHECKED:
                    continue
                checked += 1
                ids = list(dict.fromkeys(f.check for f in sp.check(o, self.policy)))
                if ids:
                    name = (o.get("metadata") or {}).get("name", "")
                    found.append(f'{errors.qualified(kind.resource, kind.group)} "{name}": {", ".join(ids)}')
        out = []
        if checked < total:
            out.append(f"the new k8py policy mode was only checked against the first {checked} of {total} "
                       "existing objects")
        if found:
            out.append(f'existing objects in namespace "{namespace}" violate the k8py policy it now enforces '
                       "(their next changes and new pods will be refused; kubectl apply --dry-run=server shows "
                       "why)")
        return out + found


def _refusal(a: Attributes, meta: Obj, findings: list[sp.Finding]) -> errors.StatusError:
    """Pod Security's form: ``pods "x" is forbidden: violates PodSecurity "restricted:latest": ...``."""
    k = a.kind
    name = meta.get("name") or meta.get("generateName") or a.name
    return errors.StatusError(
        403, "Forbidden",
        f'{errors.qualified(k.resource, k.group)} "{name}" is forbidden: violates k8py policy "enforce": '
        + "; ".join(f.message for f in findings),
        details={"name": name, **({"group": k.group} if k.group else {}), "kind": k.resource,
                 "causes": [{"reason": f.check, "message": f.message, "field": f.field} for f in findings]})


def _check_namespace_label(a: Attributes, obj: Obj, old: Obj | None) -> None:
    labels = (obj.get("metadata") or {}).get("labels")
    errs = sp.namespace_label_errors(labels)
    if not errs:
        return
    if a.operation == "UPDATE" and old is not None:
        old_labels = (old.get("metadata") or {}).get("labels") or {}
        if isinstance(labels, dict) and old_labels.get(sp.LABEL) == labels.get(sp.LABEL):
            return  # unchanged: a namespace labelled before the check existed stays writable
    raise errors.invalid_error("Namespace", "", a.name, errs)


def _check_config(a: Attributes, obj: Obj) -> None:
    data = obj.get("data")
    _, errs = sp.parse_policy(data if isinstance(data, dict) else {})
    a.warnings.extend(f"{sp.CONFIGMAP_NAMESPACE}/{sp.CONFIGMAP_NAME}: {e} (this key keeps its default)"
                      for e in errs)
