"""Custom resources: the structural schema of a CustomResourceDefinition version applied to
objects (kube's apiextensions-apiserver ``pkg/apiserver/schema``: pruning, defaulting, and the
OpenAPI validation of ``kube-openapi``), and the kinds a CRD serves.

Pure functions on the wire form; the API server's CRD and custom-resource strategies
(``apiserver/crd.py``) call them.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson

from k8py.api import cel, errors
from k8py.api.errors import FieldError
from k8py.api.registry import KindInfo

Obj = dict[str, Any]

GROUP = "apiextensions.k8s.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED = "x-kubernetes-embedded-resource"

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


# -- kinds -------------------------------------------------------------------------------------


def version_priority(v: str) -> tuple[int, int, int, str]:
    """kube's ``version.CompareKubeAwareVersionStrings`` as a sort key (smallest first: GA by
    major descending, then beta, then alpha, then the rest by name)."""
    m = _VERSION_RE.match(v)
    if m is None:
        return (3, 0, 0, v)
    major = int(m.group(1))
    level = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (level, -major, -minor, v)


def condition(crd: Obj, type_: str) -> Obj | None:
    for c in (crd.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def is_established(crd: Obj) -> bool:
    c = condition(crd, "Established")
    return c is not None and c.get("status") == "True"


def storage_version(crd: Obj) -> str:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("storage"):
            return str(v.get("name"))
    return ""


def kinds_for(crd: Obj) -> list[KindInfo]:
    """The kinds an Established CRD serves: one per served version, the preferred (kube's version
    priority) first, named by ``status.acceptedNames``."""
    spec = crd.get("spec") or {}
    names = (crd.get("status") or {}).get("acceptedNames") or spec.get("names") or {}
    group = str(spec.get("group") or "")
    plural = str(names.get("plural") or "")
    if not plural or not group:
        return []
    stored = storage_version(crd)
    conv = spec.get("conversion") or {}
    webhook = orjson.dumps(conv.get("webhook") or {}, option=orjson.OPT_SORT_KEYS).decode() \
        if conv.get("strategy") == "Webhook" else ""
    out = []
    versions = [v for v in spec.get("versions") or [] if v.get("served")]
    for v in sorted(versions, key=lambda v: version_priority(str(v.get("name")))):
        subs = (v.get("subresources") or {})
        sub: tuple[str, ...] = tuple(s for s in ("status", "scale") if s in subs)
        out.append(KindInfo(
            group=group, version=str(v["name"]), kind=str(names.get("kind") or ""), resource=plural,
            singular=str(names.get("singular") or str(names.get("kind") or "").lower()),
            namespaced=spec.get("scope") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            subresources=sub, storage=f"{group}/{plural}", storage_version=stored,
            list_kind=str(names.get("listKind") or ""), custom=True,
            conversion_webhook=webhook))
    return out


def version_of(crd: Obj, version: str) -> Obj:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("name") == version:
            return dict(v)
    return {}


def schema_of(crd: Obj, version: str) -> Obj:
    return ((version_of(crd, version).get("schema") or {}).get("openAPIV3Schema")) or {}


# -- objects against a structural schema --------------------------------------------------------


def _go_type(v: Any) -> str:
    """The JSON type name kube-openapi reports for a value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "integer" if v.is_integer() else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _props(s: Obj) -> dict[str, Obj]:
    p = s.get("properties")
    return p if isinstance(p, dict) else {}


def _items(s: Obj) -> Obj | None:
    it = s.get("items")
    return it if isinstance(it, dict) else None


def _additional(s: Obj) -> Obj | None:
    a = s.get("additionalProperties")
    return a if isinstance(a, dict) else None


def prune(obj: Any, s: Obj, path: str = "", root: bool = True) -> list[str]:
    """Drop fields the schema does not specify (kube's ``structuralpruning.Prune``), in place;
    returns the paths dropped. At the root, apiVersion, kind and metadata are kept."""
    dropped: list[str] = []
    if s.get(PRESERVE) is True and not _props(s) and _additional(s) is None and _items(s) is None:
        return dropped
    if isinstance(obj, dict):
        props = _props(s)
        add = _additional(s)
        for k in list(obj):
            if root and k in ("apiVersion", "kind", "metadata"):
                if k == "metadata" and isinstance(obj[k], dict):
                    _prune_meta(obj[k])
                continue
            p = _child(path, k)
            if k in props:
                dropped += prune(obj[k], props[k], p, False)
            elif add is not None:
                dropped += prune(obj[k], add, p, False)
            elif s.get("additionalProperties") is True or s.get(PRESERVE) is True:
                continue
            else:
                del obj[k]
                dropped.append(p)
        if s.get(EMBEDDED) is True and isinstance(obj.get("metadata"), dict):
            _prune_meta(obj["metadata"])
    elif isinstance(obj, list):
        it = _items(s)
        if it is not None:
            for i, v in enumerate(obj):
                dropped += prune(v, it, f"{path}[{i}]", False)
    return dropped


_META_FIELDS = frozenset({"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
                          "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
                          "annotations", "ownerReferences", "finalizers", "managedFields"})


def _prune_meta(meta: Obj) -> None:
    for k in [k for k in meta if k not in _META_FIELDS]:
        del meta[k]


def default(obj: Any, s: Obj) -> None:
    """Fill ``default`` values of absent properties, in place (kube's ``structuraldefaulting``)."""
    if isinstance(obj, dict):
        for k, ps in _props(s).items():
            if k not in obj and "default" in ps:
                obj[k] = copy.deepcopy(ps["default"])
            if k in obj:
                default(obj[k], ps)
        add = _additional(s)
        if add is not None:
            for k, v in obj.items():
                if k not in _props(s):
                    default(v, add)
    elif isinstance(obj, list):
        it = _items(s)
        if it is not None:
            for v in obj:
                default(v, it)


def _num(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def validate(obj: Any, s: Obj, path: str = "", root: bool = True) -> list[FieldError]:
    """The object against a structural schema: kube-openapi's validation errors turned into
    field errors as the CR strategy's ``ValidateCustomResource`` reports them."""
    errs: list[FieldError] = []
    where = path or "body"
    if obj is None:
        if s.get("nullable") is True or (not s.get("type") and not s.get(INT_OR_STRING)):
            return errs
        want = "integer,string" if s.get(INT_OR_STRING) else s.get("type")
        return [errors.invalid(path, "null", f"{where} in body must be of type {want}: \"null\"")]
    t = s.get("type")
    actual = _go_type(obj)
    if s.get(INT_OR_STRING):
        if actual not in ("integer", "string"):
            return [errors.invalid(path, actual, f"{where} in body must be of type integer,string: \"{actual}\"")]
    elif t and not (t == actual or (t == "number" and actual == "integer")):
        return [errors.invalid(path, actual, f"{where} in body must be of type {t}: \"{actual}\"")]
    enum = s.get("enum")
    if isinstance(enum, list) and obj not in enum:
        errs.append(errors.not_supported(path, obj, [errors.go_repr(e).strip('"') for e in enum]))
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        mx, mn = s.get("maximum"), s.get("minimum")
        if mx is not None:
            if s.get("exclusiveMaximum") and obj >= mx:
                errs.append(errors.invalid(path, obj, f"{where} in body should be less than {_num(mx)}"))
            elif obj > mx:
                errs.append(errors.invalid(path, obj, f"{where} in body should be less than or equal to {_num(mx)}"))
        if mn is not None:
            if s.get("exclusiveMinimum") and obj <= mn:
                errs.append(errors.invalid(path, obj, f"{where} in body should be greater than {_num(mn)}"))
            elif obj < mn:
                errs.append(errors.invalid(path, obj,
                                           f"{where} in body should be greater than or equal to {_num(mn)}"))
        mo = s.get("multipleOf")
        if mo and (obj / mo) != int(obj / mo):
            errs.append(errors.invalid(path, obj, f"{where} in body should be a multiple of {_num(mo)}"))
    if isinstance(obj, str):
        n = len(obj)
        if s.get("maxLength") is not None and n > s["maxLength"]:
            errs.append(errors.too_long(path, int(s["maxLength"])))
        if s.get("minLength") is not None and n < s["minLength"]:
            errs.append(errors.invalid(path, obj, f"{where} in body should be at least {s['minLength']} chars long"))
        pat = s.get("pattern")
        if isinstance(pat, str):
            try:
                ok = re.search(pat, obj) is not None
            except re.error:
                ok = True
            if not ok:
                errs.append(errors.invalid(path, obj, f"{where} in body should match '{pat}'"))
    if isinstance(obj, list):
        if s.get("maxItems") is not None and len(obj) > s["maxItems"]:
            errs.append(errors.too_many(path, len(obj), int(s["maxItems"])))
        if s.get("minItems") is not None and len(obj) < s["minItems"]:
            errs.append(errors.invalid(path, len(obj), f"{where} in body should have at least {s['minItems']} items"))
        it = _items(s)
        if it is not None:
            for i, v in enumerate(obj):
                errs += validate(v, it, f"{path}[{i}]", False)
    if isinstance(obj, dict):
        if s.get("maxProperties") is not None and len(obj) > s["maxProperties"]:
            errs.append(errors.too_many(path, len(obj), int(s["maxProperties"])))
        if s.get("minProperties") is not None and len(obj) < s["minProperties"]:
            errs.append(errors.invalid(path, len(obj),
                                       f"{where} in body should have at least {s['minProperties']} properties"))
        for r in s.get("required") or []:
            if r not in obj:
                errs.append(errors.required(_child(path, r), ""))
        props = _props(s)
        add = _additional(s)
        for k, v in obj.items():
            if root and k in ("apiVersion", "kind", "metadata"):
                continue
            if k in props:
                errs += validate(v, props[k], _child(path, k), False)
            elif add is not None:
                errs += validate(v, add, _child(path, k), False)
    return errs


def _list_type_errors(s: Obj, path: str) -> list[FieldError]:
    """kube's rules for ``x-kubernetes-list-type`` and ``x-kubernetes-list-map-keys``."""
    errs: list[FieldError] = []
    lt = s.get("x-kubernetes-list-type")
    keys = s.get("x-kubernetes-list-map-keys")
    if lt is not None:
        if lt not in ("atomic", "set", "map"):
            errs.append(errors.not_supported(f"{path}.x-kubernetes-list-type", lt, ("atomic", "set", "map")))
        if s.get("type") != "array":
            errs.append(errors.invalid(f"{path}.type", s.get("type"),
                                       "must be array if x-kubernetes-list-type is specified"))
    if keys and lt != "map":
        errs.append(errors.forbidden(f"{path}.x-kubernetes-list-map-keys",
                                     "must only be set if x-kubernetes-list-type is map"))
    if lt == "map":
        if not keys:
            errs.append(errors.required(f"{path}.x-kubernetes-list-map-keys",
                                        "must not be empty if x-kubernetes-list-type is map"))
        it = _items(s) or {}
        if it.get("type") != "object":
            errs.append(errors.invalid(f"{path}.items.type", it.get("type"),
                                       "must be object if parent array's x-kubernetes-list-type is map"))
        else:
            required = set(it.get("required") or [])
            for k in keys or []:
                prop = _props(it).get(k)
                if prop is None:
                    errs.append(errors.required(f"{path}.items.properties[{k}]",
                                                "entries in x-kubernetes-list-map-keys must be properties of the "
                                                "items"))
                elif k not in required and "default" not in prop:
                    errs.append(errors.required(f"{path}.items.properties[{k}].default",
                                                "this property is in x-kubernetes-list-map-keys, so it must have a "
                                                "default or be a required property"))
    return errs


# -- the schemas a CRD may declare (kube's structural schema rules) ------------------------------

_ALLOWED_TYPES = ("array", "boolean", "integer", "number", "object", "string")


def structural_errors(s: Any, path: str, root: bool = True, uncorrelatable: str | None = None) -> list[FieldError]:
    """kube's ``structuralschema.ValidateStructural`` for the parts users meet: a type at every
    level (unless int-or-string or preserve-unknown-fields), object root, no ``uniqueItems``, no
    ``additionalProperties`` beside ``properties``, x-kubernetes-preserve-unknown-fields only true;
    and the CEL rules (``x-kubernetes-validations``) of each node, compiled when the node and
    everything under it is otherwise valid (api/cel.py). ``uncorrelatable`` is the outermost list
    above whose items cannot be matched to old ones (where ``oldSelf`` is refused)."""
    errs: list[FieldError] = []
    if not isinstance(s, dict):
        return [errors.invalid(path, s, "must be an object")]
    t = s.get("type")
    if root:
        if not t:
            errs.append(errors.required(f"{path}.type", "must not be empty at the root"))
        elif t != "object":
            errs.append(errors.invalid(f"{path}.type", t, "must be object at the root"))
    meta = _props(s).get("metadata") if root else None
    if isinstance(meta, dict):
        extra = set(_props(meta)) - {"name", "generateName"}
        if extra or set(meta) - {"type", "properties", "description"}:
            errs.append(errors.forbidden(f"{path}.properties[metadata]",
                                         "must not specify anything other than name and generateName, but "
                                         "metadata is implicitly specified"))
    if t and t not in _ALLOWED_TYPES:
        errs.append(errors.not_supported(f"{path}.type", t, _ALLOWED_TYPES))
    if not t and not s.get(INT_OR_STRING) and not s.get(PRESERVE) and not root:
        errs.append(errors.required(f"{path}.type", "must not be empty for specified object fields"))
    if s.get(INT_OR_STRING) and t:
        errs.append(errors.invalid(f"{path}.type", t, "must be empty if x-kubernetes-int-or-string is true"))
    if PRESERVE in s and s[PRESERVE] is not True:
        errs.append(errors.invalid(f"{path}.{PRESERVE}", s[PRESERVE], "must be true or undefined"))
    if s.get("uniqueItems") is True:
        errs.append(errors.forbidden(f"{path}.uniqueItems", "uniqueItems cannot be set to true since the runtime "
                                     "complexity becomes quadratic"))
    if "properties" in s and "additionalProperties" in s and s["additionalProperties"] is not False:
        errs.append(errors.forbidden(f"{path}.additionalProperties",
                                     "additionalProperties and properties are mutual exclusive"))
    if t == "array" and _items(s) is None:
        errs.append(errors.required(f"{path}.items", "must be specified"))
    errs += _list_type_errors(s, path)
    for k, v in _props(s).items():
        errs += structural_errors(v, f"{path}.properties[{k}]", False, uncorrelatable)
    it = _items(s)
    if it is not None:
        # only the items of map lists are matched to old ones (kube's withForbidOldSelfValidations)
        below = uncorrelatable if s.get("x-kubernetes-list-type") == "map" else (uncorrelatable or path)
        errs += structural_errors(it, f"{path}.items", False, below)
    add = _additional(s)
    if add is not None:
        errs += structural_errors(add, f"{path}.additionalProperties", False, uncorrelatable)
    for k in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(k) or []):
            if isinstance(sub, dict) and sub.get("type"):
                errs.append(errors.forbidden(f"{path}.{k}[{i}].type", "must be empty to be structural"))
    if "default" in s and not root:
        for e in validate(copy.deepcopy(s["default"]), s, "", False):
            errs.append(errors.invalid(f"{path}.default", s["default"], e.message_body()))
    errs += cel.rule_errors(s, path, uncorrelatable, schema_errors=bool(errs), root=root)
    return errs


# -- CEL rules on custom resources ----------------------------------------------------------------

_BLOCKING = "some validation rules were not checked because the object was invalid; correct the existing errors to " \
    "complete validation"


def rules_validator(s: Obj) -> cel.Validator | None:
    """The compiled rules of a version's schema, or None when it has none (then the CEL binding
    is never loaded)."""
    return cel.Validator.build(s) if cel.has_rules(s) else None


def rule_errors(validator: cel.Validator | None, obj: Obj, old: Obj | None, schema_errs: list[FieldError],
                ratcheted: list[FieldError] | None = None) -> list[FieldError]:
    """The rules evaluated on a custom resource after its schema validation, as kube's
    customResourceStrategy: not when the schema found a wrong type or value (``hasBlockingErr``),
    then one error says so. On updates, errors of unchanged values go to ``ratcheted``
    (cel.Validator.validate)."""
    if validator is None:
        return []
    if any(e.type in (errors.FieldErrorType.NOT_SUPPORTED, errors.FieldErrorType.TYPE_INVALID)
           or "in body must be of type" in e.detail for e in schema_errs):
        return [errors.invalid(cel.NIL_PATH, "null", _BLOCKING)]  # kube: field.Invalid(nil, nil, ...), printed "null"
    return validator.validate(obj, old, ratcheted=ratcheted)
