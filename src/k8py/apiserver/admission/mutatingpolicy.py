"""kube-apiserver's ``MutatingAdmissionPolicy`` plugin: the CEL mutations of
MutatingAdmissionPolicies, applied through their MutatingAdmissionPolicyBindings
(``k8s.io/apiserver/pkg/admission/plugin/policy/mutating``).

- It runs in the mutating phase, just before the mutating webhooks (kube's plugin order), on
  CREATE, UPDATE and CONNECT (there is nothing to mutate on DELETE). Policies and bindings are
  kept, matched and given their params as the ValidatingAdmissionPolicy plugin's
  (:class:`k8py.apiserver.admission.policy.PolicyPlugin`, one home for both).
- Each (policy, binding, param) whose ``matchConditions`` hold runs the policy's mutations in
  order on the object in the version its rules matched: an ``ApplyConfiguration`` is merged with
  server-side apply's rules, a ``JSONPatch`` applied (:mod:`k8py.api.mutatingpolicy`); the object is
  defaulted after each, and the next mutation (and policy) sees the result. The mutated object is
  then validated as any write.
- Reinvocation as kube's: a policy with ``reinvocationPolicy: IfNeeded`` runs again in the chain's
  second run when the object changed after it ran (a later policy or a webhook mutated it).
- Errors (an expression that fails when it runs, a configuration that does not fit the kind's
  schema or sets an atomic list, a JSON patch that does not apply, a match condition's error, a
  params or paramKind configuration error) obey the policy's ``failurePolicy``: ``Fail`` refuses
  the request with kube's 403 ``policy '<p>' with binding '<b>' denied request: <error>`` (reason
  ``Invalid`` for an invocation's error), ``Ignore`` skips the failed mutation.

Not done: a CEL cost budget.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from k8py.api import admissionpolicy as ap
from k8py.api import admissionwebhook as aw
from k8py.api import cel, conversion, defaults, errors, omitempty, schema
from k8py.api import mutatingpolicy as mp
from k8py.apiserver.admission import Attributes
from k8py.apiserver.admission.policy import PolicyPlugin, cp_constraints
from k8py.apiserver.admission.webhook import forbidden

if TYPE_CHECKING:
    from k8py.api.registry import KindInfo

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PolicyError:
    """kube's ``generic.PolicyError``: a policy that could not be applied."""

    policy: str
    binding: str
    message: str
    fail: bool  # the policy's failurePolicy is Fail
    reason: str = ""  # Invalid for an invocation's error

    def text(self) -> str:
        if self.binding:
            return f"policy '{self.policy}' with binding '{self.binding}' denied request: {self.message}"
        return f'policy "{self.policy}" denied request: {self.message}'


class MutatingAdmissionPolicy(PolicyPlugin):
    name = "MutatingAdmissionPolicy"
    policy_resource = "mutatingadmissionpolicies"
    binding_resource = "mutatingadmissionpolicybindings"

    def compile_policy(self, obj: Obj) -> ap.CompiledPolicy:
        return mp.compile_policy(obj)

    def failed_policy(self, name: str, obj: Obj) -> ap.CompiledPolicy:
        return mp.CompiledMutatingPolicy(name, obj)

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if a.operation not in ("CREATE", "UPDATE", "CONNECT") or not obj:
            return
        candidates, by_policy = await self._candidates(a)
        if not candidates:
            return
        # kube's policyReinvokeContext: the IfNeeded invocations run since the object last changed,
        # those to run again in the chain's second run, and the object as this plugin left it
        state = a.plugin_state.setdefault(self.name, {"invoked": set(), "reinvoke": set(), "last": None})
        if a.reinvoking and state["last"] != obj:
            # a later plugin (a webhook, or a built-in plugin's second run) changed it
            _require_reinvoke(state)
        try:
            await self._admit(a, candidates, by_policy, obj, old, state)
        finally:
            state["last"] = copy.deepcopy(obj)

    async def _admit(self, a: Attributes, candidates: list[ap.CompiledPolicy], by_policy: dict[str, list[Obj]],
                     obj: Obj, old: Obj | None, state: dict[str, Any]) -> None:
        req = self._request(a)
        labels: list[Any] = []
        namespace: list[Obj | None] = []
        failures: list[PolicyError] = []
        for base in candidates:
            assert isinstance(base, mp.CompiledMutatingPolicy)
            cp = base
            fail = cp.failure_policy != "Ignore"
            via = await self._matches(cp_constraints(cp), cp.name, a, req, obj, old, labels)
            if via is None:
                continue
            pkind, pk_error = self._param_kind(cp)
            if pk_error:
                failures.append(PolicyError(cp.name, "", f"failed to configure policy: {pk_error}", fail))
                continue
            for b in by_policy[cp.name]:
                bname = str((b.get("metadata") or {}).get("name") or "")
                mr = (b.get("spec") or {}).get("matchResources")
                if isinstance(mr, dict) and await self._matches(mr, bname, a, req, obj, old, labels) is None:
                    continue
                try:
                    params = await self._params(cp, pkind, b, a)
                except ValueError as e:
                    failures.append(PolicyError(cp.name, bname, f"failed to configure binding: {e}", fail))
                    continue
                if not namespace:
                    namespace.append(await self._namespace_object(a))
                for param in params:
                    key = (cp.name, bname, _param_key(param))
                    await self._invoke(cp, bname, key, param, via, a, req, obj, old, namespace[0], state, failures)
        kept = [f for f in failures if f.fail]
        if kept:
            denial = forbidden(a, "admission request denied by policy")
            # kube's generic dispatcher: the first error's text and reason, every error a cause
            denial.message = kept[0].text()
            if kept[0].reason:
                denial.reason = kept[0].reason
            details = denial.details if denial.details is not None else {}
            details["causes"] = [{"message": f.text()} for f in kept]
            denial.details = details
            raise denial

    async def _invoke(self, cp: mp.CompiledMutatingPolicy, bname: str, key: tuple[str, str, str], param: Obj | None,
                      via: KindInfo, a: Attributes, req: aw.Request, obj: Obj, old: Obj | None,
                      namespace: Obj | None, state: dict[str, Any], failures: list[PolicyError]) -> None:
        """One (policy, binding, param): its match conditions, then its mutations in order; ``obj``
        is changed in place."""
        fail = cp.failure_policy != "Ignore"

        def failed(message: str) -> None:
            failures.append(PolicyError(cp.name, bname, message, fail, "Invalid"))

        data = await self.variables(via, a, req, obj, old)
        data["namespaceObject"] = namespace
        if cp.param_kind is not None:
            data["params"] = param
        with self.authorizing():
            if cp.conditions:
                m = ap.match_conditions(cp.conditions, data)
                if m.error:
                    failed(m.error)
                    return
                if not m.matches:
                    return
            if a.reinvoking and key not in state["reinvoke"]:
                return
            versioned = _in_version(via, a)
            before = data["object"]
            current = before
            act = ap.Activation(cp, data)
            for mutation in cp.mutations:
                if mutation.program is None:
                    failed(mutation.error or cp.error)
                    continue
                try:
                    value = mp.evaluate(act, mutation)
                    patched = mp.apply_mutation(mutation, value, current, _schema_node(data, via))
                except cel.EvalError as e:
                    failed(str(e))
                    continue
                except mp.MutationError as e:
                    failed(str(e))
                    continue
                if versioned is not None:
                    # decoded into the Go type (omitempty) and defaulted, as kube
                    if not versioned.custom:
                        omitempty.normalize(patched)
                    defaults.set_defaults(versioned, patched)
                current = patched
                data["object"] = current
        if current == before:
            changed = False
        else:
            try:
                back = await self._to(a.kind, current) if versioned is not None and versioned is not a.kind else current
            except conversion.ConversionError as e:
                raise errors.internal_error(f"failed to convert object: {e}") from None
            changed = back != obj
            if changed:
                obj.clear()
                obj.update(copy.deepcopy(back))
        if changed:
            # kube: a mutation changed the object; the IfNeeded ones before it may want to see it
            _require_reinvoke(state)
            a.reinvoke = True
        if cp.reinvoke_if_needed:
            state["invoked"].add(key)


def _require_reinvoke(state: dict[str, Any]) -> None:
    state["reinvoke"] |= state["invoked"]
    state["invoked"] = set()


def _param_key(param: Obj | None) -> str:
    if param is None:
        return ""
    md = param.get("metadata") or {}
    return f"{md.get('namespace') or ''}/{md.get('name') or ''}"


def _in_version(via: KindInfo, a: Attributes) -> KindInfo | None:
    """The kind the mutated object is in (None: a subresource of another kind, a Scale or a
    CONNECT's options, which is not defaulted)."""
    if aw.subresource_kind(a.kind.group, a.kind.resource, a.subresource) is not None:
        return None
    if (via.group, via.version) == (a.kind.group, a.kind.version):
        return a.kind
    return via


def _schema_node(data: Obj, via: KindInfo) -> schema.SchemaNode | None:
    """The schema the apply configuration is merged by: the kind of the object as the policy
    sees it (None for a kind kube's definitions lack: a custom resource's values are deduced)."""
    k = (data.get("request") or {}).get("kind") or {}
    return schema.for_kind(str(k.get("group") or ""), str(k.get("version") or via.version), str(k.get("kind") or via.kind))


__all__ = ["MutatingAdmissionPolicy", "PolicyError"]
