"""What the MutatingAdmissionPolicy plugin (``apiserver/admission/mutatingpolicy.py``) decides without
I/O, as kube's ``k8s.io/apiserver/pkg/admission/plugin/policy/mutating`` (and its ``patch``
package) and the mutation library of its CEL environment (``k8s.io/apiserver/pkg/cel/mutation``):

- a policy compiled once per version of it (:func:`compile_policy`): its match conditions and its
  variables as a ValidatingAdmissionPolicy's (:mod:`k8py.api.admissionpolicy`, one home for
  both), and each mutation's expression;
- the mutation expressions' types: ``Object{...}`` / ``Object.spec{...}`` build an apply
  configuration, ``JSONPatch{op, path, from, value}`` a JSON patch operation,
  ``jsonpatch.escapeKey(k)`` escapes a key for a JSON patch path. cel-expr-python has no message
  types of its own, so an expression is compiled twice from a rewrite of its text: once for the
  type checker, where each initializer is a function returning an abstract type of that name
  (so ``[JSONPatch{...}]`` is a ``list(JSONPatch)`` and kube's ``must evaluate to Object but got
  string`` is told at write time), once to run, where an initializer is a map that keeps its type
  name (``TYPE_KEY``) for kube's check that an initializer's name is its field path from
  ``Object``. Errors of the rewrite are given at the user's positions;
- a mutation applied (:func:`apply_mutation`): an apply configuration merged into the object with
  server-side apply's merge rules (:func:`k8py.api.managedfields.merge_apply_configuration`: a
  field the schema lacks and an atomic list, map or struct in the configuration are kube's
  errors), a JSON patch applied with k8py's JSON patch (:func:`k8py.api.patch.json_patch`; a
  failed ``test`` leaves the object as it was, as kube's) and its result decoded strictly into
  the kind (:mod:`k8py.api.fieldcheck`: a field the kind lacks is kube's 500 ``strict decoding
  error: unknown field "..."``).

Not done: the CEL cost budget; an initializer's fields are not checked against the kind's schema
when the policy is written (kube neither: they fail when the configuration is merged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from k8py.api import admissionpolicy as ap
from k8py.api import cel, errors, fieldcheck, managedfields, patch
from k8py.api.schema import SchemaNode

Obj = dict[str, Any]

APPLY_CONFIGURATION = "ApplyConfiguration"
JSON_PATCH = "JSONPatch"
PATCH_TYPES = (APPLY_CONFIGURATION, JSON_PATCH)
REINVOCATION_POLICIES = ("IfNeeded", "Never")
# an initializer's value at run time: a map that keeps the type it was built as
TYPE_KEY = "__k8py_cel_type__"
JSON_PATCH_FIELDS = ("op", "path", "from", "value")

_RUN_FN = "__k8py_new"  # the run-time initializer: (type name, fields) -> map with TYPE_KEY
_ESCAPE_KEY = "jsonpatch.escapeKey"


# --------------------------------------------------------------------------- the rewrite of initializers


_TOKEN = re.compile(r"""
    (?P<ws>\s+|//[^\n]*)
  | (?P<str>(?:[rR][bB]?|[bB][rR]?|[bB])?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<num>\d[\w.]*)
  | (?P<punct>.)
""", re.VERBOSE | re.DOTALL)

_KEYWORDS = frozenset({"in", "true", "false", "null"})


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    start: int
    end: int


def _tokens(expr: str) -> list[_Tok]:
    return [_Tok(m.lastgroup or "", m.group(), m.start(), m.end())
            for m in _TOKEN.finditer(expr) if m.lastgroup != "ws"]


@dataclass(slots=True)
class Initializer:
    name: str  # "Object", "Object.spec", "JSONPatch", or another (an undeclared type)
    start: int  # offset of the name in the user's text
    fields: list[tuple[str, int]] = field(default_factory=list)  # (field, offset)


@dataclass(slots=True)
class _Rewrite:
    text: str
    # (start in the rewrite, end in the rewrite, start in the user's text, whether it was replaced)
    segments: list[tuple[int, int, int, bool]]


def _initializers(toks: list[_Tok]) -> tuple[dict[int, tuple[int, str]], dict[int, int], set[int], list[Initializer]]:
    """Where the initializers are: the token index of each ``{`` that opens one (with the index of
    the first token of its name and the name), the index of its closing ``}``, the indices of the
    field names, and the initializers found."""
    opens: dict[int, tuple[int, str]] = {}
    closes: dict[int, int] = {}
    field_toks: set[int] = set()
    found: list[Initializer] = []
    stack: list[tuple[int, Initializer | None]] = []  # (index of "{", its initializer or None for a map)
    expect_field = False
    for i, t in enumerate(toks):
        if t.kind == "punct" and t.text == "{":
            # a (qualified) name right before "{" is a message initializer (a map literal follows
            # an operator, a "(", "[", ",", ":" or "?" instead)
            j = i - 1
            if j >= 0 and toks[j].kind == "ident" and toks[j].text not in _KEYWORDS:
                while j - 2 >= 0 and toks[j - 1].text == "." and toks[j - 2].kind == "ident":
                    j -= 2
                if j - 1 >= 0 and toks[j - 1].text == "." and (j - 2 < 0 or toks[j - 2].kind == "punct"
                                                                and toks[j - 2].text not in (")", "]", "}")):
                    j -= 1  # a leading "." (a fully qualified name)
                name = "".join(x.text for x in toks[j:i]).lstrip(".")
                init = Initializer(name, toks[j].start)
                found.append(init)
                opens[i] = (j, name)
                stack.append((i, init))
                expect_field = True
            else:
                stack.append((i, None))
            continue
        if t.kind == "punct" and t.text == "}":
            if stack:
                at, closed = stack.pop()
                if closed is not None:
                    closes[i] = at
            expect_field = False
            continue
        top = stack[-1][1] if stack else None
        if top is not None and expect_field:
            if t.text == "?":
                continue
            if t.kind == "ident" and i + 1 < len(toks) and toks[i + 1].text == ":":
                field_toks.add(i)
                top.fields.append((t.text, t.start))
            expect_field = False
            continue
        if top is not None and t.text == "," and _depth_is_top(toks, stack, i):
            expect_field = True
    return opens, closes, field_toks, found


def _depth_is_top(toks: list[_Tok], stack: list[tuple[int, Initializer | None]], i: int) -> bool:
    """Whether the "," at ``i`` separates the entries of the innermost initializer (not the
    arguments of a call or the items of a list inside one)."""
    depth = 0
    for k in range(i - 1, stack[-1][0], -1):
        x = toks[k].text
        if toks[k].kind != "punct":
            continue
        if x in (")", "]", "}"):
            depth += 1
        elif x in ("(", "[", "{"):
            if depth == 0:
                return False
            depth -= 1
    return True


def _rewrite(expr: str, toks: list[_Tok], for_check: bool, names: list[str]) -> _Rewrite:
    """The expression with each initializer made a call: to run, ``__k8py_new("Object.spec",
    {"f": ...})``; to check, ``__k8py_tN({"f": ...})`` where ``N`` is the type name's index in
    ``names`` (a function returning that abstract type)."""
    opens, closes, field_toks, _ = _initializers(toks)
    out: list[str] = []
    segments: list[tuple[int, int, int, bool]] = []
    pos = 0  # next offset of the user's text to copy
    length = 0
    name_at = {j: i for i, (j, _) in opens.items()}  # first token of a name -> its "{"
    close_of = {at: i for i, at in closes.items()}
    # an initializer whose field is read (``JSONPatch{op: "add"}.op``): to check, it is dyn (an
    # abstract type has no fields), as the run's map has them
    selected = {i for i, c in close_of.items() if for_check and c + 1 < len(toks) and toks[c + 1].text == "."}
    wrapped_closes = {close_of[i] for i in selected}

    def emit(orig_start: int, text: str, orig_end: int) -> None:
        nonlocal pos, length
        gap = expr[pos:orig_start]
        segments.append((length, length + len(gap), pos, False))
        out.append(gap)
        length += len(gap)
        segments.append((length, length + len(text), orig_start, True))
        out.append(text)
        length += len(text)
        pos = orig_end

    i = 0
    while i < len(toks):
        t = toks[i]
        if i in name_at:
            brace = name_at[i]
            name = opens[brace][1]
            call = f"__k8py_t{names.index(name)}({{" if for_check else f"{_RUN_FN}({_quote(name)}, {{"
            emit(t.start, ("dyn(" + call) if brace in selected else call, toks[brace].end)
            i = brace + 1
            continue
        if i in field_toks:
            emit(t.start, _quote(t.text), t.end)
        elif i in closes:
            emit(t.start, "}))" if i in wrapped_closes else "})", t.end)
        i += 1
    segments.append((length, length + len(expr) - pos, pos, False))
    out.append(expr[pos:])
    return _Rewrite("".join(out), segments)


def _quote(s: str) -> str:
    return '"' + s + '"'


def _original_offset(rw: _Rewrite, offset: int) -> int:
    """Where an offset of the rewrite is in the user's text (a replaced piece: at its start)."""
    for start, end, orig, replaced in rw.segments:
        if start <= offset < end or (offset == end and not replaced):
            return orig if replaced else orig + offset - start
    return rw.segments[-1][2] if rw.segments else 0


_ERROR_AT = re.compile(r"^ERROR: <input>:(\d+):(\d+): (.*)$")


def _located(expr: str, offset: int, message: str) -> str:
    """cel-go's text of a compile error at ``offset`` of ``expr``."""
    offset = max(0, min(offset, len(expr)))
    line = expr.count("\n", 0, offset) + 1
    col = offset - (expr.rfind("\n", 0, offset) + 1)
    src = expr.split("\n")[line - 1] if expr else ""
    return f"ERROR: <input>:{line}:{col + 1}: {message}\n | {src}\n | {'.' * col}^"


def _map_errors(expr: str, rw: _Rewrite, text: str) -> str:
    """The compile errors of the rewrite at the user's positions."""
    new_lines = rw.text.split("\n")
    starts = [0]
    for ln in new_lines[:-1]:
        starts.append(starts[-1] + len(ln) + 1)
    out = []
    lines = text.split("\n")
    k = 0
    while k < len(lines):
        m = _ERROR_AT.match(lines[k])
        if not m:
            k += 1
            continue
        line, col = int(m.group(1)), int(m.group(2))
        offset = (starts[line - 1] if line - 1 < len(starts) else 0) + col - 1
        out.append(_located(expr, _original_offset(rw, offset), m.group(3)))
        k += 3  # the source line and the caret line follow
    return "\n".join(out) if out else text


# --------------------------------------------------------------------------- compiling


def _escape_key(k: str) -> str:
    """kube's ``jsonpatch.escapeKey``: RFC 6901's escapes of a key for a JSON patch path."""
    return k.replace("~", "~0").replace("/", "~1")


def _new(name: str, fields: Any) -> Obj:
    out = {str(k): cel._plain(v) for k, v in fields.items()}
    out[TYPE_KEY] = name
    return out


def _functions(type_names: tuple[str, ...] | None) -> list[Any]:
    """The mutation library: to check (``type_names``: one initializer function per type), or to run."""
    lib, _, _ = cel._load()
    T = lib.Type
    fields_t = T.Map(T.STRING, T.DYN)
    fns = [lib.FunctionDecl(_ESCAPE_KEY, [lib.Overload("jsonpatch_escape_key_string", T.STRING, [T.STRING],
                                                       is_member=False, impl=_escape_key)])]
    if type_names is None:
        fns.append(lib.FunctionDecl(_RUN_FN, [lib.Overload("k8py_new_object", fields_t, [T.STRING, fields_t],
                                                           is_member=False, impl=_new)]))
    else:
        for n, name in enumerate(type_names):
            fns.append(lib.FunctionDecl(f"__k8py_t{n}", [lib.Overload(
                f"k8py_type_{n}", T.AbstractType(name), [fields_t], is_member=False,
                impl=lambda f, name=name: _new(name, f))]))
    return fns


_ENVS: dict[tuple[tuple[str, ...], tuple[str, ...] | None], Any] = {}
_MAX_ENVS = 256


def _env(names: tuple[str, ...], type_names: tuple[str, ...] | None) -> Any:
    key = (names, type_names)
    env = _ENVS.get(key)
    if env is None:
        lib, exts, funcs = cel._load()
        T = lib.Type
        decls = {n: (T.Map(T.STRING, T.DYN) if n in ("variables", "authorizer") else T.DYN) for n in names}
        if len(_ENVS) >= _MAX_ENVS:
            _ENVS.clear()
        env = _ENVS[key] = lib.NewEnv(variables=decls, extensions=exts,
                                      functions=[*funcs, *_functions(type_names)])
    return env


def cel_type_string(t: Any) -> str:
    """A type as cel-go prints it (``string``, ``list(JSONPatch)``, ``map(string, dyn)``)."""
    name = str(t.name())
    return _type_string(name)


_SCALARS = {"STRING": "string", "INT": "int", "UINT": "uint", "DOUBLE": "double", "BOOL": "bool",
            "BYTES": "bytes", "DYN": "dyn", "NULL": "null_type", "NULL_TYPE": "null_type",
            "TIMESTAMP": "google.protobuf.Timestamp", "DURATION": "google.protobuf.Duration", "ERROR": "*error*"}


def _type_string(name: str) -> str:
    m = re.fullmatch(r"(LIST|MAP|TYPE)<(.*)>", name)
    if m:
        inner = _split_params(m.group(2))
        args = ", ".join(_type_string(x) for x in inner)
        return f"{m.group(1).lower()}({args})"
    return _SCALARS.get(name, name)


def _split_params(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


@dataclass(slots=True)
class Mutation:
    patch_type: str
    expression: str
    program: Any = None
    refs: tuple[str, ...] = ()
    error: str = ""  # a compile error (an object stored before this server validated it)


def compile_mutation(expr: str, patch_type: str, names: tuple[str, ...]) -> tuple[Any, str]:
    """Compile a mutation's expression (kube's ``CompileMutatingEvaluator``): ``(program, "")`` or
    ``(None, detail)`` with kube's detail (``compilation failed: ERROR: ...``, ``must evaluate to
    Object but got string``)."""
    lib, _, _ = cel._load()
    # the user's syntax errors, at the user's positions (initializers parse as they are)
    try:
        _env(names, None).compile(expr, disable_check=True)
    except RuntimeError as e:
        return None, "compilation failed: " + cel._cel_error(e)
    toks = _tokens(expr)
    _, _, _, inits = _initializers(toks)
    errs = []
    for init in inits:
        if init.name != "Object" and not init.name.startswith("Object.") and init.name != JSON_PATCH:
            errs.append(_located(expr, init.start, f"undeclared reference to '{init.name}' (in container '')"))
        elif init.name == JSON_PATCH:
            errs += [_located(expr, at, f"undefined field '{f}'") for f, at in init.fields
                     if f not in JSON_PATCH_FIELDS]
    if errs:
        return None, "compilation failed: " + "\n".join(errs)
    type_names = tuple(dict.fromkeys(i.name for i in inits))
    checked = _rewrite(expr, toks, True, list(type_names))
    try:
        prog = _env(names, type_names).compile(checked.text)
    except RuntimeError as e:
        return None, "compilation failed: " + _map_errors(expr, checked, cel._cel_error(e))
    rt = prog.return_type()
    T = lib.Type
    want = T.AbstractType("Object") if patch_type == APPLY_CONFIGURATION else T.List(T.AbstractType(JSON_PATCH))
    got = cel_type_string(rt)
    if got != cel_type_string(want):
        return None, f"must evaluate to {cel_type_string(want)} but got {got}"
    run = _rewrite(expr, toks, False, [])
    try:
        return _env(names, None).compile(run.text), ""
    except RuntimeError as e:  # cannot be: the checked rewrite compiled
        return None, "compilation failed: " + _map_errors(expr, run, cel._cel_error(e))


@dataclass(slots=True)
class CompiledMutatingPolicy(ap.CompiledPolicy):
    """A MutatingAdmissionPolicy compiled once (per resourceVersion): its match conditions and
    variables as a ValidatingAdmissionPolicy's, and its mutations."""

    mutations: list[Mutation] = field(default_factory=list)

    @property
    def reinvoke_if_needed(self) -> bool:
        return self.spec.get("reinvocationPolicy") == "IfNeeded"


def mutation_expression(m: Any) -> tuple[str, str]:
    """A mutation's (patch type, expression) as written."""
    if not isinstance(m, dict):
        return "", ""
    pt = str(m.get("patchType") or "")
    body = m.get("applyConfiguration" if pt == APPLY_CONFIGURATION else "jsonPatch")
    return pt, str(body.get("expression") or "") if isinstance(body, dict) else ""


def compile_policy(policy: Obj) -> CompiledMutatingPolicy:
    """Compile a MutatingAdmissionPolicy (kube's ``compilePolicy``); what does not compile is the
    policy's ``error``, for its failure policy when it is invoked."""
    base = ap.compile_policy({"metadata": policy.get("metadata"),
                              "spec": {k: v for k, v in (policy.get("spec") or {}).items()
                                       if k in ("paramKind", "matchConditions", "variables", "failurePolicy")}})
    cp = CompiledMutatingPolicy(base.name, policy, base.conditions, base.variables, error=base.error)
    names = ap.policy_names(cp.param_kind is not None)
    known = set(cp.variables)
    for raw in cp.spec.get("mutations") or ():
        pt, expr = mutation_expression(raw)
        prog, err = (compile_mutation(expr.strip(), pt, names) if pt in PATCH_TYPES and expr.strip()
                     else (None, "expression is required"))
        err = err or ap.undefined_field(expr, known)
        cp.mutations.append(Mutation(pt, expr, prog if not err else None,
                                     tuple(n for n, _ in ap.variable_refs(expr)), err))
        if err and not cp.error:
            cp.error = err
    return cp


# --------------------------------------------------------------------------- evaluating and applying


class MutationError(Exception):
    """A mutation that cannot be applied; the text is kube's."""


def evaluate(act: ap.Activation, m: Mutation) -> Any:
    """The value of a mutation's expression (``cel.EvalError`` with kube's text when it fails)."""
    return act.run(m.program, m.expression, m.refs)


def type_mismatch(value: Any, expected: str | None = None) -> str:
    """kube's ``CheckTypeNamesMatchFieldPathNames``: each initializer inside an initializer is
    named by its field path from it (``Object.spec{selector: Object.spec.selector{}}``)."""
    if isinstance(value, dict):
        name = value.get(TYPE_KEY)
        if isinstance(name, str):
            if expected is not None and name != expected:
                return (f'unexpected type name "{name}", expected "{expected}", which matches field name path '
                        f"from root Object type")
            for k, v in value.items():
                if k != TYPE_KEY:
                    err = type_mismatch(v, f"{name}.{k}")
                    if err:
                        return err
            return ""
        for v in value.values():
            err = type_mismatch(v, expected)
            if err:
                return err
    elif isinstance(value, list):
        for v in value:
            err = type_mismatch(v, expected)
            if err:
                return err
    return ""


def plain(value: Any) -> Any:
    """A value without the initializers' type names: JSON as the patch carries it."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != TYPE_KEY}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        raise MutationError("JSONPath valueExpression evaluated to a type that could not marshal to JSON: bytes")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise MutationError("JSONPath valueExpression evaluated to a type that could not marshal to JSON: "
                        f"{type(value).__name__}")


def json_patch_operations(value: Any) -> list[Obj]:
    """The JSON patch a ``JSONPatch`` mutation's value describes (kube's ``evaluatePatchExpression``)."""
    if not isinstance(value, list):
        raise MutationError("type mismatch: JSONPatchType.expression should evaluate to array")
    ops: list[Obj] = []
    for v in value:
        if not isinstance(v, dict) or v.get(TYPE_KEY) != JSON_PATCH:
            raise MutationError("type mismatch: JSONPatchType.expression should evaluate to array of JSONPatch")
        op: Obj = {"op": str(v.get("op") or ""), "path": str(v.get("path") or "")}
        if v.get("from"):
            op["from"] = str(v["from"])
        if "value" in v and v["value"] is not None:
            val = v["value"]
            if isinstance(val, dict) and isinstance(val.get(TYPE_KEY), str):
                err = type_mismatch(val)
                if err:
                    raise MutationError(f"type mismatch: {err}")
            op["value"] = plain(val)
        ops.append(op)
    return ops


def apply_mutation(m: Mutation, value: Any, obj: Obj, node: SchemaNode | None) -> Obj:
    """``obj`` (in the version the policy matched) with a mutation's value applied, a new object;
    ``MutationError`` with kube's text when it cannot be."""
    if m.patch_type == JSON_PATCH:
        ops = json_patch_operations(value)
        try:
            patched = patch.json_patch(obj, ops)
        except errors.StatusError as e:
            causes = (e.details or {}).get("causes") or []
            why = str(causes[0].get("message") or "") if causes else e.message
            if why.endswith(": test failed"):
                return obj  # a failed test: the patch is not applied, and that is no error
            raise MutationError(f"JSON Patch: {why}") from None
        if node is not None:
            _decode_strictly(patched, obj, node)
        return patched
    if not isinstance(value, dict) or value.get(TYPE_KEY) != "Object":
        raise MutationError(f"unsupported return type from ApplyConfiguration expression: {type(value).__name__}")
    err = type_mismatch(value)
    if err:
        raise MutationError(f"type mismatch: {err}")
    config = plain(value)
    config["apiVersion"] = obj.get("apiVersion")
    config["kind"] = obj.get("kind")
    try:
        return managedfields.merge_apply_configuration(obj, config, node)
    except ValueError as e:
        raise MutationError(f"error applying patch: {e}") from None


def _decode_strictly(patched: Obj, before: Obj, node: SchemaNode) -> None:
    """kube decodes a JSON patch's result strictly into the kind's type: a value the type cannot
    hold, or a field it lacks (one the patch added), is a 500 whatever the failure policy."""
    bad = fieldcheck.type_errors(patched, node)
    if bad:
        raise errors.internal_error(bad[0])
    had = set(fieldcheck.unknown_fields(before, node))
    unknown = [u for u in fieldcheck.unknown_fields(patched, node) if u not in had]
    if unknown:
        raise errors.internal_error("strict decoding error: " + ", ".join(unknown))


__all__ = [
    "APPLY_CONFIGURATION",
    "JSON_PATCH",
    "PATCH_TYPES",
    "REINVOCATION_POLICIES",
    "CompiledMutatingPolicy",
    "Mutation",
    "MutationError",
    "apply_mutation",
    "cel_type_string",
    "compile_mutation",
    "compile_policy",
    "evaluate",
    "json_patch_operations",
    "mutation_expression",
    "plain",
    "type_mismatch",
]
