"""What the ValidatingAdmissionPolicy plugin (``apiserver/admission/policy.py``) and the webhooks'
``matchConditions`` (``apiserver/admission/webhook.py``) decide without I/O, as kube's
``k8s.io/apiserver/pkg/admission/plugin/cel``, ``.../webhook/matchconditions`` and
``.../policy/validating``:

- the variables an admission expression sees: ``object`` and ``oldObject`` (null where there is
  none), ``request`` (kube's ``CreateAdmissionRequest``: the AdmissionRequest without the objects),
  ``authorizer`` (kube's authz library, :func:`k8py.api.cel.authorizer_value`), and for policies
  ``params``, ``namespaceObject`` and ``variables``;
- match conditions (kube's ``matchconditions.Matcher``): every condition is run; a false one
  means "does not match", whatever errors the others had; errors without a false one are the
  caller's failure policy's to decide;
- a policy compiled once per version of it (:class:`CompiledPolicy`), its variables evaluated
  lazily (only those an expression names, each at most once per evaluation, as kube's lazy
  ``variables``), and its validations turned into decisions with kube's messages
  (``failed expression: <expression>``, ``message``, ``messageExpression``) and reasons;
- which policy and binding a request matches: ``matchConstraints`` / ``matchResources`` with
  their resource rules (``resourceNames`` too) and exclusions, through the webhooks' rule matching
  (:mod:`k8py.api.admissionwebhook`), so both plugins match requests the same way.

The expressions run on cel-expr-python through :mod:`k8py.api.cel` (one home for CEL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from k8py.api import admissionwebhook as aw
from k8py.api import cel, schema

Obj = dict[str, Any]

# the variables of each kind of expression (kube's OptionalVariableDeclarations)
# (kube declares namespaceObject for webhooks' conditions too; it is null there)
MATCH_CONDITION_VARS = ("object", "oldObject", "request", "authorizer", "namespaceObject")
POLICY_VARS = ("object", "oldObject", "request", "authorizer", "namespaceObject", "variables")
POLICY_PARAM_VARS = (*POLICY_VARS, "params")
MAX_MATCH_CONDITIONS = 64
MAX_MESSAGE_BYTES = 5 * 1024  # kube's MaxEvaluatedMessageExpressionSizeBytes
REASON_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}

_FIELD_REF = re.compile(r"(?<![\w.])(variables|request|namespaceObject)\s*\.\s*([_a-zA-Z][_a-zA-Z0-9]*)")
# the fields of kube's typed variables (``request`` is an AdmissionRequest, ``namespaceObject`` a
# Namespace with only these); ``object``, ``oldObject`` and ``params`` are dyn in kube too
TYPED_FIELDS = {
    "request": frozenset({"uid", "kind", "resource", "subResource", "requestKind", "requestResource",
                          "requestSubResource", "name", "namespace", "operation", "userInfo", "dryRun", "options"}),
    "namespaceObject": frozenset({"metadata", "spec", "status"}),
}


def _field_refs(expr: str) -> list[tuple[str, str, int]]:
    """``(variable, field, offset of the '.')`` of each ``variables.x``, ``request.x`` and
    ``namespaceObject.x`` in the expression (outside string literals)."""
    blank = cel.blank_string_literals(expr)
    return [(m.group(1), m.group(2), m.start() + blank[m.start():].index("."))
            for m in _FIELD_REF.finditer(blank)]


def variable_refs(expr: str) -> list[tuple[str, int]]:
    """The ``variables.<name>`` an expression names, with the offset of the ``.``."""
    return [(f, dot) for v, f, dot in _field_refs(expr) if v == "variables"]


def undefined_field(expr: str, variables: set[str] | None) -> str:
    """cel-go's compile error for a field that kube's types do not have: ``variables.x`` where no
    variable ``x`` is declared before (``variables`` None: not checked), or a field that
    ``request`` / ``namespaceObject`` lack."""
    for var, name, dot in _field_refs(expr):
        if var == "variables":
            if variables is None or name in variables:
                continue
        elif name in TYPED_FIELDS[var]:
            continue
        line = expr.count("\n", 0, dot) + 1
        col = dot - (expr.rfind("\n", 0, dot) + 1)
        src = expr.splitlines()[line - 1] if expr else ""
        return (f"compilation failed: ERROR: <input>:{line}:{col + 1}: undefined field '{name}'\n"
                f" | {src}\n | {'.' * col}^")
    return ""


# --------------------------------------------------------------------------- the variables


def admission_request(req: aw.Request, kind: tuple[str, str, str], name: str, user: Any, dry_run: bool,
                      uid: str, *, request_kind: tuple[str, str, str] | None = None,
                      request: aw.Request | None = None) -> Obj:
    """kube's ``CreateAdmissionRequest``: the AdmissionRequest an AdmissionReview would carry,
    without ``object`` and ``oldObject`` (they are variables of their own)."""
    review = aw.review_request(aw.Hook("", {}, False), uid, req, kind, name, user, None, None, dry_run,
                               request_kind=request_kind, request=request)
    out: Obj = review["request"]
    return out


def namespace_object(ns: Obj | None) -> Obj | None:
    """kube's ``CreateNamespaceObject``: the namespace's name, metadata, spec and status as a
    policy may read them (without managedFields)."""
    if ns is None:
        return None
    meta = {k: v for k, v in (ns.get("metadata") or {}).items() if k != "managedFields"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta, "spec": ns.get("spec") or {},
            "status": ns.get("status") or {}}


# --------------------------------------------------------------------------- match conditions


@dataclass(frozen=True, slots=True)
class Condition:
    name: str
    expression: str
    program: Any = None
    error: str = ""  # a compile error (only for objects stored before validation caught it)


def compile_conditions(raw: Any, names: tuple[str, ...] = MATCH_CONDITION_VARS) -> list[Condition]:
    out = []
    for c in raw or ():
        if not isinstance(c, dict):
            continue
        expr = str(c.get("expression") or "").strip()
        prog, err = cel.compile_admission(expr, names, ("bool",)) if expr else (None, "expression is required")
        err = err or undefined_field(expr, None)
        if err:
            prog = None
        out.append(Condition(str(c.get("name") or ""), expr, prog, err))
    return out


@dataclass(frozen=True, slots=True)
class MatchResult:
    matches: bool
    error: str = ""  # errors of conditions when none was false (the failure policy decides)
    failed: str = ""  # the name of the false condition


def _expression_error(expr: str, why: str) -> str:
    return f"expression '{expr}' resulted in error: {why}"


def match_conditions(conds: list[Condition], data: Obj) -> MatchResult:
    """kube's ``matchconditions.Matcher.Match`` (without the failure policy, which the caller
    applies to ``error``)."""
    errs: list[str] = []
    for c in conds:
        if c.program is None:
            errs.append(_expression_error(c.expression, c.error))
            continue
        try:
            v = cel.run_admission(c.program, data)
        except cel.EvalError as e:
            errs.append(_expression_error(c.expression, str(e)))
            continue
        if v is False:
            return MatchResult(False, failed=c.name)
        if v is not True:
            errs.append(_expression_error(c.expression, "no such overload"))
    if errs:
        return MatchResult(False, error=errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
    return MatchResult(True)


# --------------------------------------------------------------------------- policies


@dataclass(slots=True)
class Validation:
    expression: str
    message: str
    reason: str
    program: Any
    message_program: Any
    refs: tuple[str, ...]
    message_refs: tuple[str, ...]


@dataclass(slots=True)
class Variable:
    name: str
    expression: str
    program: Any
    refs: tuple[str, ...]


@dataclass(slots=True)
class AuditAnnotation:
    key: str
    expression: str
    program: Any
    refs: tuple[str, ...]


@dataclass(slots=True)
class CompiledPolicy:
    """A ValidatingAdmissionPolicy compiled once (per resourceVersion)."""

    name: str
    policy: Obj
    conditions: list[Condition] = field(default_factory=list)
    variables: dict[str, Variable] = field(default_factory=dict)
    validations: list[Validation] = field(default_factory=list)
    audit_annotations: list[AuditAnnotation] = field(default_factory=list)
    # an expression that does not compile (an object stored before this server validated it):
    # every request the policy matches meets its failure policy, as kube's ConfigurationError
    error: str = ""

    @property
    def spec(self) -> Obj:
        s = self.policy.get("spec")
        return s if isinstance(s, dict) else {}

    @property
    def failure_policy(self) -> str:
        return str(self.spec.get("failurePolicy") or "Fail")

    @property
    def param_kind(self) -> Obj | None:
        pk = self.spec.get("paramKind")
        return pk if isinstance(pk, dict) else None


def policy_names(has_params: bool) -> tuple[str, ...]:
    return POLICY_PARAM_VARS if has_params else POLICY_VARS


def condition_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """A policy's matchConditions' variables: the validations', without ``variables`` (kube
    compiles them without composition)."""
    return tuple(n for n in names if n != "variables")


def message_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """A messageExpression's variables: the validation's, without ``authorizer`` (kube's)."""
    return tuple(n for n in names if n != "authorizer")


def compile_policy(policy: Obj) -> CompiledPolicy:
    name = str((policy.get("metadata") or {}).get("name") or "")
    cp = CompiledPolicy(name, policy)
    spec = cp.spec
    names = policy_names(cp.param_kind is not None)
    errors: list[str] = []
    cp.conditions = compile_conditions(spec.get("matchConditions"), condition_names(names))
    errors += [c.error for c in cp.conditions if c.error]
    known: set[str] = set()
    for v in spec.get("variables") or ():
        if not isinstance(v, dict):
            continue
        vname, expr = str(v.get("name") or ""), str(v.get("expression") or "")
        prog, err = cel.compile_admission(expr, names, ())
        err = err or undefined_field(expr, known)
        if err:
            errors.append(err)
        cp.variables[vname] = Variable(vname, expr, prog, tuple(n for n, _ in variable_refs(expr)))
        known.add(vname)
    for v in spec.get("validations") or ():
        if not isinstance(v, dict):
            continue
        expr = str(v.get("expression") or "")
        prog, err = cel.compile_admission(expr, names, ("bool",))
        err = err or undefined_field(expr, known)
        mexpr = str(v.get("messageExpression") or "")
        mprog = None
        if mexpr.strip():
            mprog, merr = cel.compile_admission(mexpr, message_names(names), ("string",))
            err = err or merr or undefined_field(mexpr, known)
        if err:
            errors.append(err)
        cp.validations.append(Validation(expr, str(v.get("message") or ""), str(v.get("reason") or ""), prog, mprog,
                                         tuple(n for n, _ in variable_refs(expr)),
                                         tuple(n for n, _ in variable_refs(mexpr))))
    for a in spec.get("auditAnnotations") or ():
        if not isinstance(a, dict):
            continue
        expr = str(a.get("valueExpression") or "")
        prog, err = cel.compile_admission(expr, names, ("string", "null_type"))
        err = err or undefined_field(expr, known)
        if err:
            errors.append(err)
        cp.audit_annotations.append(AuditAnnotation(str(a.get("key") or ""), expr, prog,
                                                    tuple(n for n, _ in variable_refs(expr))))
    if errors:
        cp.error = errors[0]
    return cp


@dataclass(frozen=True, slots=True)
class Decision:
    """One validation's outcome that is not "admit" (kube's PolicyDecision)."""

    index: int
    message: str
    reason: str = ""  # for a false validation: its reason (Invalid when unset)
    error: bool = False  # an evaluation error (the failure policy decides)


class Activation:
    """The data of one evaluation, with ``variables`` filled in on demand (kube's lazy variables);
    a MutatingAdmissionPolicy's mutations run in one too (:mod:`k8py.api.mutatingpolicy`)."""

    def __init__(self, cp: CompiledPolicy, data: Obj) -> None:
        self.cp = cp
        self.data = data
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        data["variables"] = self.values

    def need(self, refs: tuple[str, ...], seen: frozenset[str] = frozenset()) -> str:
        """Evaluate the variables ``refs`` (and those they name); the first error, or ""."""
        for n in refs:
            if n in self.values:
                continue
            if n in self.errors:
                return self.errors[n]
            v = self.cp.variables.get(n)
            if v is None or v.program is None or n in seen:
                continue  # undeclared: the expression's own "no such key" error says so
            err = self.need(v.refs, seen | {n})
            if not err:
                try:
                    self.values[n] = cel.run_admission(v.program, self.data)
                    continue
                except cel.EvalError as e:
                    err = _expression_error(v.expression, str(e))
            self.errors[n] = err
            return err
        return ""

    def run(self, program: Any, expr: str, refs: tuple[str, ...]) -> Any:
        err = self.need(refs)
        if err:
            raise cel.EvalError(err)
        try:
            return cel.run_admission(program, self.data)
        except cel.EvalError as e:
            raise cel.EvalError(_expression_error(expr, str(e))) from None


@dataclass(slots=True)
class Outcome:
    """A policy's evaluation for one binding (and one param)."""

    matched: bool = True  # False: a match condition was false (nothing else ran)
    decisions: list[Decision] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    annotation_errors: list[str] = field(default_factory=list)


def evaluate(cp: CompiledPolicy, data: Obj) -> Outcome:
    """Run the policy's match conditions, validations and audit annotations on ``data``
    (``object``, ``oldObject``, ``request``, ``namespaceObject``, and ``params`` when the policy
    has a paramKind). Errors are decisions with ``error`` set, for the failure policy."""
    act = Activation(cp, data)
    out = Outcome()
    if cp.conditions:
        m = match_conditions(cp.conditions, data)
        if m.error:
            out.decisions.append(Decision(-1, m.error, error=True))
            return out
        if not m.matches:
            out.matched = False
            return out
    for i, v in enumerate(cp.validations):
        try:
            ok = act.run(v.program, v.expression, v.refs)
        except cel.EvalError as e:
            out.decisions.append(Decision(i, str(e), error=True))
            continue
        if ok is True:
            continue
        if ok is not False:
            out.decisions.append(Decision(i, _expression_error(v.expression, "no such overload"), error=True))
            continue
        out.decisions.append(Decision(i, _message(act, v), v.reason or "Invalid"))
    for a in cp.audit_annotations:
        try:
            value = act.run(a.program, a.expression, a.refs)
        except cel.EvalError as e:
            out.annotation_errors.append(str(e))
            continue
        if value is None:
            continue
        if not isinstance(value, str):
            out.annotation_errors.append(f"valueExpression '{a.expression}' resulted in unsupported return type: "
                                         f"{type(value).__name__}. Return type must be either string or null.")
            continue
        value = value.strip()
        if value:
            out.annotations[a.key] = value[:10 * 1024]
    return out


def _message(act: Activation, v: Validation) -> str:
    """kube's message of a false validation: messageExpression's string, else message, else
    ``failed expression: <expression>``."""
    msg = ""
    if v.message_program is not None:
        try:
            r = act.run(v.message_program, "", v.message_refs)
        except cel.EvalError:
            r = None
        if isinstance(r, str):
            msg = r.strip()
            if len(msg.encode()) > MAX_MESSAGE_BYTES or "\n" in msg:
                msg = ""
    if not msg and v.message.strip():
        msg = v.message.strip()
    return msg or f"failed expression: {v.expression.strip()}"


# --------------------------------------------------------------------------- type checking
#
# kube's ``validatingadmissionpolicy-status-controller`` (``policy/validating/typechecking.go``):
# the expressions are compiled again with ``object`` and ``oldObject`` typed by the schema of each
# kind the policy's resource rules name (rules with a ``*`` group, version or resource, and
# subresources, name none), ``params`` by its paramKind's; what does not check is a warning in
# ``status.typeChecking``. Here the check finds fields a schema does not have (cel-go's
# ``undefined field``), on the built-in kinds (kube's OpenAPI definitions); custom resources are
# not checked.


def _structural(raw: Obj, depth: int, stack: tuple[str, ...], memo: dict[str, Obj]) -> Obj:
    """A definition of kube's OpenAPI (``$ref`` resolved) as the structural schema the CEL field
    walk reads: objects with their properties, maps, arrays; anything else open (``{}``)."""
    node = schema.SchemaNode.of(raw)
    if node.name:
        if node.name in memo:
            return memo[node.name]
        if node.name in stack or depth > 32:
            return {}  # a recursive type: open below
        stack = (*stack, node.name)
    out: Obj = {}
    if node.properties:
        out = {"type": "object", "properties": {k: _structural(v, depth + 1, stack, memo)
                                                for k, v in node.properties.items() if isinstance(v, dict)}}
    elif node.type in ("object", "") and isinstance(node.raw.get("additionalProperties"), dict):
        out = {"type": "object",
               "additionalProperties": _structural(node.raw["additionalProperties"], depth + 1, stack, memo)}
    elif node.type == "array" and isinstance(node.raw.get("items"), dict):
        out = {"type": "array", "items": _structural(node.raw["items"], depth + 1, stack, memo)}
    elif node.type and node.type != "object":
        out = {"type": node.type}
    if node.name:
        memo[node.name] = out
    return out


_KIND_SCHEMAS: dict[tuple[str, str, str], Obj] = {}  # kube's kinds only: bounded


def kind_schema(group: str, version: str, kind: str) -> Obj | None:
    """The structural schema of a built-in kind, None for one kube's definitions do not have."""
    key = (group, version, kind)
    got = _KIND_SCHEMAS.get(key)
    if got is None:
        name = schema.gvk_index().get(key)
        if name is None:
            return None  # not cached: the keys would be whatever policies name
        got = _KIND_SCHEMAS[key] = _structural({"$ref": f"#/$defs/{name}"}, 0, (), {})
    return got


def gvk_string(group: str, version: str, kind: str) -> str:
    """Go's ``GroupVersionKind.String()``."""
    return f"{group}/{version}, Kind={kind}"


def kinds_to_check(policy: Obj, kind_of: Any) -> list[tuple[str, str, str]]:
    """kube's ``typesToCheck``: the (group, version, kind) each resource rule names without
    wildcards; ``kind_of(group, version, resource)`` gives a resource's kind (None: unknown)."""
    mc = ((policy.get("spec") or {}).get("matchConstraints")) or {}
    out: set[tuple[str, str, str]] = set()
    for rule in mc.get("resourceRules") or ():
        if not isinstance(rule, dict):
            continue
        groups, versions = rule.get("apiGroups") or [], rule.get("apiVersions") or []
        resources = [r for r in rule.get("resources") or [] if r != "*" and "/" not in str(r)]
        if "*" in groups or "*" in versions or "*" in (rule.get("resources") or []):
            continue
        for g in groups:
            for v in versions:
                for r in resources:
                    k = kind_of(str(g), str(v), str(r))
                    if k:
                        out.add((str(g), str(v), str(k)))
    return sorted(out)


def type_check(policy: Obj, kind_of: Any) -> list[Obj]:
    """The ``status.typeChecking.expressionWarnings`` of a policy (kube's fieldRef and text:
    ``apps/v1, Kind=Deployment: ERROR: <input>:1:8: undefined field 'replicass'...``)."""
    spec = policy.get("spec") or {}
    kinds = [(gvk_string(*k), sch) for k in kinds_to_check(policy, kind_of) if (sch := kind_schema(*k)) is not None]
    if not kinds:
        return []
    pk = spec.get("paramKind") if isinstance(spec.get("paramKind"), dict) else None
    params_schema: Obj | None = None
    if pk is not None:
        group, _, version = str(pk.get("apiVersion") or "").rpartition("/")
        params_schema = kind_schema(group, version, str(pk.get("kind") or ""))
    names = policy_names(pk is not None)
    exprs: list[tuple[str, str, tuple[str, ...]]] = []
    for i, v in enumerate(spec.get("validations") or ()):
        if isinstance(v, dict):
            exprs.append((f"spec.validations[{i}].expression", str(v.get("expression") or ""), names))
            if str(v.get("messageExpression") or "").strip():
                exprs.append((f"spec.validations[{i}].messageExpression", str(v["messageExpression"]),
                              message_names(names)))
    for i, a in enumerate(spec.get("auditAnnotations") or ()):
        if isinstance(a, dict):
            exprs.append((f"spec.auditAnnotations[{i}].valueExpression", str(a.get("valueExpression") or ""), names))
    for i, c in enumerate(spec.get("matchConditions") or ()):
        if isinstance(c, dict):
            exprs.append((f"spec.matchConditions[{i}].expression", str(c.get("expression") or ""),
                          condition_names(names)))
    for i, v in enumerate(spec.get("variables") or ()):
        if isinstance(v, dict):
            exprs.append((f"spec.variables[{i}].expression", str(v.get("expression") or ""), names))
    warnings = []
    for ref, expr, expr_names in exprs:
        prog, err = cel.compile_admission(expr, expr_names, ())
        if prog is None or err:
            continue  # refused when the policy was written
        issues = []
        for gvk, sch in kinds:
            typed = {"object": sch, "oldObject": sch}
            if params_schema is not None:
                typed["params"] = params_schema
            found = cel.undefined_fields(prog, expr, typed)
            if found:
                issues.append(f"{gvk}: {found}")
        if issues:
            warnings.append({"fieldRef": ref, "warning": "\n".join(issues)})
    return warnings


# --------------------------------------------------------------------------- matching


ALL_RULE: Obj = {"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"], "scope": "*"}


def as_hook(name: str, mr: Obj | None, exclude: bool = False) -> aw.Hook:
    """A policy's ``matchConstraints`` or a binding's ``matchResources`` as a webhook-shaped
    matcher (rules, selectors, matchPolicy), so the webhooks' matching serves both."""
    mr = mr or {}
    rules = mr.get("excludeResourceRules" if exclude else "resourceRules") or []
    if not rules and not exclude:
        # kube's matcher: no resource rules (a binding's matchResources) takes every request
        rules = [ALL_RULE]
    return aw.Hook(name, {"rules": rules, "namespaceSelector": mr.get("namespaceSelector") or {},
                          "objectSelector": mr.get("objectSelector") or {},
                          "matchPolicy": mr.get("matchPolicy") or "Equivalent"}, False)


def names_match(rules: Any, req: aw.Request, name: str) -> bool:
    """Whether a rule that matches ``req`` also takes ``name`` (``resourceNames``; empty: any)."""
    for r in rules or ():
        if isinstance(r, dict) and aw.rule_matches(r, req):
            names = r.get("resourceNames") or []
            if not names or name in names:
                return True
    return False


def validation_failure_annotation(policy: str, binding: str, index: int, message: str, actions: list[str]) -> str:
    """kube's ``validation.policy.admission.k8s.io/validation_failure`` audit annotation value."""
    return orjson.dumps([{"message": message, "policy": policy, "binding": binding, "expressionIndex": index,
                          "validationActions": actions}]).decode()


VALIDATION_FAILURE_KEY = "validation.policy.admission.k8s.io/validation_failure"

__all__ = [
    "MATCH_CONDITION_VARS",
    "POLICY_VARS",
    "VALIDATION_FAILURE_KEY",
    "Activation",
    "CompiledPolicy",
    "Condition",
    "Decision",
    "MatchResult",
    "Outcome",
    "admission_request",
    "as_hook",
    "compile_conditions",
    "compile_policy",
    "condition_names",
    "evaluate",
    "kind_schema",
    "kinds_to_check",
    "match_conditions",
    "message_names",
    "names_match",
    "namespace_object",
    "policy_names",
    "type_check",
    "undefined_field",
    "validation_failure_annotation",
    "variable_refs",
]
