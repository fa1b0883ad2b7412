"""kube-apiserver's ``ValidatingAdmissionPolicy`` plugin: the CEL validations of
ValidatingAdmissionPolicies, applied through their ValidatingAdmissionPolicyBindings
(``k8s.io/apiserver/pkg/admission/plugin/policy/validating``).

- The policies (compiled when they are written: :func:`k8py.api.admissionpolicy.compile_policy`)
  and the bindings are kept in memory from store watches (``Objects.mirror``), as kube's plugin
  reads informers. A request that no policy's rules match costs a scan of the policies' rules.
- A binding applies a policy that exists to a request that both the policy's
  ``matchConstraints`` and the binding's ``matchResources`` match (rules with ``resourceNames``,
  exclusions, namespace and object selectors, ``matchPolicy: Equivalent``; the webhooks'
  matching, :class:`k8py.apiserver.admission.webhook.RequestMatching`), then the policy's
  ``matchConditions``; its params are read from the store (``paramKind`` + ``paramRef``: a name
  or a selector, the request's namespace for a namespaced kind unless the binding names one,
  ``parameterNotFoundAction``), and every validation runs once per param.
- A failed validation does what the binding's ``validationActions`` say: ``Deny`` refuses the
  request with kube's ``<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<p>' with
  binding '<b>' denied request: <message>`` (reason the validation's, ``Invalid`` 422 by default),
  ``Warn`` adds the ``Warning:`` header ``Validation failed for ValidatingAdmissionPolicy '<p>'
  with binding '<b>': <message>``, ``Audit`` the request's audit annotation
  ``validation.policy.admission.k8s.io/validation_failure``. The policy's ``auditAnnotations`` go
  into the audit event as ``<policy>/<key>``.
- An expression that fails when it runs, a paramKind that is not served, params that a binding
  requires and that are missing: the policy's ``failurePolicy`` decides (``Fail``: refused as a
  failed validation with the error as its message; ``Ignore``: as if it had passed).
- Policies have no side effects: a dry run is judged as the real request.

``authorizer`` checks (kube's authz library) ask the server's authorizer as the requesting user.

The policies' ``status.typeChecking`` is the controller manager's
(``controllers/admissionpolicystatus.py``). Not done: a CEL cost budget.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson

from k8py.api import admissionpolicy as ap
from k8py.api import admissionwebhook as aw
from k8py.api import errors
from k8py.api.validation.meta import selector_matches
from k8py.apiserver.admission import Attributes, Plugin
from k8py.apiserver.admission.webhook import RequestMatching, forbidden

if TYPE_CHECKING:
    from k8py.api.registry import KindInfo, Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

log = logging.getLogger(__name__)

SYNC_TIMEOUT = 10.0
GROUP = "admissionregistration.k8s.io"


class _Denial:
    __slots__ = ("binding", "message", "policy", "reason")

    def __init__(self, policy: str, binding: str, message: str, reason: str = "") -> None:
        self.policy, self.binding, self.message, self.reason = policy, binding, message, reason

    def error(self, a: Attributes) -> errors.StatusError:
        """kube's denial: NewForbidden's text, with the validation's reason and its code."""
        if self.binding:
            text = f"ValidatingAdmissionPolicy '{self.policy}' with binding '{self.binding}' denied request: {self.message}"
        else:
            text = f"ValidatingAdmissionPolicy '{self.policy}' denied request: {self.message}"
        e = forbidden(a, text)
        reason = self.reason or "Invalid"
        e.reason = reason
        e.code = ap.REASON_CODES.get(reason, 422)
        details = e.details if e.details is not None else {}
        details.setdefault("causes", []).append({"message": text})
        e.details = details
        return e


class PolicyPlugin(RequestMatching, Plugin):
    """What the ValidatingAdmissionPolicy and MutatingAdmissionPolicy plugins share (kube's
    ``policy/generic``): the policies and bindings kept from store watches, matching through
    matchConstraints and matchResources, params, the request's Namespace. A subclass names its
    kinds' resources and compiles its policies."""

    policy_resource = ""
    binding_resource = ""

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self.registry = registry
        self._ns_kind = registry.by_resource("", "v1", "namespaces")
        self._policy_kind = registry.by_resource(GROUP, "v1", self.policy_resource)
        self._binding_kind = registry.by_resource(GROUP, "v1", self.binding_resource)
        self._policies: dict[str, ap.CompiledPolicy] = {}
        self._bindings: dict[str, Obj] = {}
        self._policies_synced = asyncio.Event()
        self._bindings_synced = asyncio.Event()
        self.authorizer: Any = None  # set by Admission.set_authorizer, for the expressions' ``authorizer``

    # -- the policies and bindings, kept from store watches -----------------------------------------
    def _apply_policy(self, key: str, value: bytes | None) -> None:
        name = key.rsplit("/", 1)[-1]
        obj = self._decode(key, value)
        if obj is None:
            self._policies.pop(name, None)
        else:
            self._policies[name] = self.compile(obj)

    def _apply_binding(self, key: str, value: bytes | None) -> None:
        name = key.rsplit("/", 1)[-1]
        obj = self._decode(key, value)
        if obj is None:
            self._bindings.pop(name, None)
        else:
            self._bindings[name] = obj

    def _decode(self, key: str, value: bytes | None) -> Obj | None:
        if value is None:
            return None
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as e:  # e.g. an object whose encryption key is lost
            log.warning("%s: cannot read %s: %s; it is not applied", self.name, key, e)
            return None
        return obj if isinstance(obj, dict) else None

    async def start(self) -> asyncio.Task[None] | None:
        if self._policy_kind is None or self._binding_kind is None:
            return None
        task = asyncio.get_running_loop().create_task(self._run(self._policy_kind, self._binding_kind),
                                                      name=f"{self.name}-admission")
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                await self._policies_synced.wait()
                await self._bindings_synced.wait()
        except TimeoutError:
            log.error("%s: policies not listed in %.0fs; reading them per request until they are",
                      self.name, SYNC_TIMEOUT)
        return task

    async def _run(self, policies: KindInfo, bindings: KindInfo) -> None:
        await asyncio.gather(
            self.objects.mirror(policies.key_prefix(None), reset=self._policies.clear, apply=self._apply_policy,
                                synced=self._policies_synced.set, what=f"{self.name} policies"),
            self.objects.mirror(bindings.key_prefix(None), reset=self._bindings.clear, apply=self._apply_binding,
                                synced=self._bindings_synced.set, what=f"{self.name} bindings"))

    async def _current(self) -> tuple[dict[str, ap.CompiledPolicy], dict[str, Obj]]:
        if (self._policies_synced.is_set() and self._bindings_synced.is_set()) or self._policy_kind is None \
                or self._binding_kind is None:
            return self._policies, self._bindings
        # not started (or not synced yet): ask the store
        policies = await self.objects.list(self._policy_kind, None)
        bindings = await self.objects.list(self._binding_kind, None)
        return ({o["metadata"]["name"]: self.compile(o) for o in policies.items if isinstance(o, dict)},
                {o["metadata"]["name"]: o for o in bindings.items if isinstance(o, dict)})

    # -- matching ------------------------------------------------------------------------------------
    async def _matches(self, mr: Obj | None, label: str, a: Attributes, req: aw.Request, obj: Obj | None,
                       old: Obj | None, labels: list[Any]) -> KindInfo | None:
        """The version through which ``mr`` (matchConstraints or matchResources) takes the
        request, None when it does not (kube's ``matching.Matcher``: exclusions first)."""
        exclude = ap.as_hook(label, mr, exclude=True)
        if exclude.webhook["rules"] and ap.names_match(exclude.webhook["rules"], req, a.name):
            return None
        hook = ap.as_hook(label, mr)
        matched = await self._matching([hook], a, req, obj, old, labels)
        if not matched:
            return None
        via = matched[0][1]
        vreq = aw.Request(req.operation, via.group, via.version, via.resource, req.subresource, req.namespace)
        return via if ap.names_match(hook.webhook["rules"], vreq, a.name) else None

    # -- params ------------------------------------------------------------------------------------------
    async def _params(self, cp: ap.CompiledPolicy, pkind: KindInfo | None, binding: Obj,
                      a: Attributes) -> list[Obj | None]:
        """kube's ``CollectParams``: [None] without paramKind or paramRef; raises ValueError with
        kube's text for a configuration error."""
        ref = (binding.get("spec") or {}).get("paramRef")
        if cp.param_kind is None or not isinstance(ref, dict):
            return [None]
        if pkind is None:  # checked by the caller
            raise ValueError("paramKind kind not known")
        ns: str | None = None
        if pkind.namespaced:
            ns = str(ref.get("namespace") or "") or a.namespace
            if not ns:
                raise ValueError("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources")
        elif ref.get("namespace"):
            raise ValueError("paramRef.namespace must not be provided for a cluster-scoped `paramKind`")
        params: list[Obj | None]
        if ref.get("name"):
            p = await self.objects.try_get(pkind, ns, str(ref["name"]))
            params = [p] if p is not None else []
        elif isinstance(ref.get("selector"), dict):
            sel = ref["selector"]
            page = await self.objects.list(
                pkind, ns, match=lambda o: selector_matches(sel, (o.get("metadata") or {}).get("labels") or {}))
            params = [o for o in page.items if isinstance(o, dict)]
        else:
            raise ValueError("one of name or selector must be provided")
        if not params and ref.get("parameterNotFoundAction") == "Deny":
            raise ValueError("no params found for policy binding with `Deny` parameterNotFoundAction")
        return params

    def _param_kind(self, cp: ap.CompiledPolicy) -> tuple[KindInfo | None, str]:
        pk = cp.param_kind
        if pk is None:
            return None, ""
        api_version = str(pk.get("apiVersion") or "")
        group, _, version = api_version.rpartition("/")
        kind = str(pk.get("kind") or "")
        k = self.registry.by_kind(group, version, kind)
        if k is None:
            # Go's GroupVersionKind.String(): "/v1, Kind=X" for the core group
            return None, f"failed to find resource referenced by paramKind: '{group}/{version}, Kind={kind}'"
        return k, ""

    def compile_policy(self, obj: Obj) -> ap.CompiledPolicy:
        """The subclass's compiler (raises on a policy it cannot compile)."""
        raise NotImplementedError

    def failed_policy(self, name: str, obj: Obj) -> ap.CompiledPolicy:
        """The compiled form of a policy that could not be compiled (its ``error`` set by :meth:`compile`)."""
        return ap.CompiledPolicy(name, obj)

    def compile(self, obj: Obj) -> ap.CompiledPolicy:
        name = str((obj.get("metadata") or {}).get("name") or "")
        try:
            return self.compile_policy(obj)
        except Exception as e:  # a policy that cannot be compiled fails the requests it matches, not the server
            log.exception("compiling %s %s", self.name, name)
            cp = self.failed_policy(name, obj)
            cp.error = f"internal error compiling the policy: {e}"
            return cp

    async def _candidates(self, a: Attributes) -> tuple[list[ap.CompiledPolicy], dict[str, list[Obj]]]:
        """The policies some binding applies whose rules may take the request (a cheap test before
        reading anything), and each policy's bindings in their names' order."""
        policies, bindings = await self._current()
        if not policies or not bindings or aw.exempt(a.kind.group, a.kind.resource):
            return [], {}
        by_policy: dict[str, list[Obj]] = {}
        for bname in sorted(bindings):
            b = bindings[bname]
            pname = str((b.get("spec") or {}).get("policyName") or "")
            if pname in policies:
                by_policy.setdefault(pname, []).append(b)
        if not by_policy:
            return [], {}
        req = self._request(a)
        candidates = [policies[p] for p in sorted(by_policy)
                      if aw.rules_match(ap.as_hook(p, cp_constraints(policies[p])), req)
                      or aw.may_match_equivalent(ap.as_hook(p, cp_constraints(policies[p])), req)]
        return candidates, by_policy

    async def _namespace_object(self, a: Attributes) -> Obj | None:
        """The request's Namespace (none for cluster-scoped objects and for Namespaces themselves)."""
        if not a.namespace or (a.kind.group == "" and a.kind.resource == "namespaces") or self._ns_kind is None:
            return None
        return ap.namespace_object(await self.objects.try_get(self._ns_kind, None, a.namespace))


class ValidatingAdmissionPolicy(PolicyPlugin):
    name = "ValidatingAdmissionPolicy"
    policy_resource = "validatingadmissionpolicies"
    binding_resource = "validatingadmissionpolicybindings"

    def compile_policy(self, obj: Obj) -> ap.CompiledPolicy:
        return ap.compile_policy(obj)

    # -- the plugin --------------------------------------------------------------------------------------
    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        candidates, by_policy = await self._candidates(a)
        if not candidates:
            return
        req = self._request(a)
        if a.operation == "DELETE" and old is None and not a.subresource:
            old = await self.objects.try_get(a.kind, a.namespace or None, a.name)
            if old is None:
                return  # nothing to delete: the request answers 404
        labels: list[Any] = []
        denials: list[_Denial] = []
        namespace: list[Obj | None] = []
        # the expressions' variables per matched version, built once per request
        bases: dict[tuple[str, str], Obj] = {}
        for cp in candidates:
            await self._policy(cp, by_policy[cp.name], a, req, obj, old, labels, namespace, denials, bases)
        if denials:
            raise denials[0].error(a)

    async def _policy(self, cp: ap.CompiledPolicy, bindings: list[Obj], a: Attributes, req: aw.Request,
                      obj: Obj | None, old: Obj | None, labels: list[Any], namespace: list[Obj | None],
                      denials: list[_Denial], bases: dict[tuple[str, str], Obj]) -> None:
        fail = cp.failure_policy != "Ignore"
        via = await self._matches(cp_constraints(cp), cp.name, a, req, obj, old, labels)
        if via is None:
            return
        pkind, pk_error = self._param_kind(cp)
        config_error = cp.error or pk_error
        if config_error:
            if fail:
                denials.append(_Denial(cp.name, "", f"failed to configure policy: {config_error}"))
            return
        annotations: dict[str, list[str]] = {}
        for b in bindings:
            bname = str((b.get("metadata") or {}).get("name") or "")
            spec = b.get("spec") or {}
            mr = spec.get("matchResources")
            if isinstance(mr, dict) and await self._matches(mr, bname, a, req, obj, old, labels) is None:
                continue
            try:
                params = await self._params(cp, pkind, b, a)
            except ValueError as e:
                if fail:
                    denials.append(_Denial(cp.name, bname, f"failed to configure binding: {e}"))
                continue
            if not params:
                continue  # parameterNotFoundAction Allow
            if not namespace:
                namespace.append(await self._namespace_object(a))
            for param in params:
                base = bases.get((via.group, via.version))
                if base is None:
                    base = bases[(via.group, via.version)] = await self.variables(via, a, req, obj, old)
                data = dict(base)  # each evaluation adds its own params and variables
                data["namespaceObject"] = namespace[0]
                if cp.param_kind is not None:
                    data["params"] = param
                try:
                    with self.authorizing():
                        outcome = ap.evaluate(cp, data)
                except Exception as e:  # a bug evaluating one binding fails it (its failurePolicy), not the server
                    log.exception("%s: evaluating policy %s with binding %s", self.name, cp.name, bname)
                    outcome = ap.Outcome(decisions=[ap.Decision(-1, f"internal error: {e}", error=True)])
                self._act(cp, b, outcome, a, denials, fail)
                for k, v in outcome.annotations.items():
                    if v not in annotations.setdefault(k, []):
                        annotations[k].append(v)
        for k, vs in annotations.items():
            a.audit_annotations[f"{cp.name}/{k}"] = ", ".join(vs)

    def _act(self, cp: ap.CompiledPolicy, binding: Obj, outcome: ap.Outcome, a: Attributes,
             denials: list[_Denial], fail: bool) -> None:
        bname = str((binding.get("metadata") or {}).get("name") or "")
        actions = [str(x) for x in (binding.get("spec") or {}).get("validationActions") or ()]
        for d in outcome.decisions:
            if d.error and not fail:
                continue  # failurePolicy Ignore: as if the validation had passed
            for action in actions:
                if action == "Deny":
                    denials.append(_Denial(cp.name, bname, d.message, "" if d.error else d.reason))
                elif action == "Warn":
                    a.warnings.append(f"Validation failed for ValidatingAdmissionPolicy '{cp.name}' with binding "
                                      f"'{bname}': {d.message}")
                elif action == "Audit":
                    a.audit_annotations[ap.VALIDATION_FAILURE_KEY] = ap.validation_failure_annotation(
                        cp.name, bname, d.index, d.message, actions)
        if fail:
            for err in outcome.annotation_errors:
                denials.append(_Denial(cp.name, bname, err))


def cp_constraints(cp: ap.CompiledPolicy) -> Obj | None:
    mc = cp.spec.get("matchConstraints")
    return mc if isinstance(mc, dict) else None


__all__ = ["PolicyPlugin", "ValidatingAdmissionPolicy", "cp_constraints"]
