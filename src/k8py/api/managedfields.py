"""Field ownership (``metadata.managedFields``) and server-side apply, as kube-apiserver does them
with sigs.k8s.io/structured-merge-diff.

Pure functions over JSON-like dicts and the kind's OpenAPI schema (``k8py.api.schema``).

Field sets are Python sets of paths; a path is a tuple of path elements in their ``FieldsV1`` text
form: ``"f:spec"`` (a field), ``'k:{"name":"nginx"}'`` (an associative-list item by its keys),
``'v:"a"'`` (a set item by value), ``"i:0"`` (an item by index). ``fields_to_set``/``set_to_fields``
convert from and to the wire format, which marks a path that is both owned and has owned children
with ``".": {}``.

Entry points for the API server:

* ``update_managed_fields`` after a create/update/patch (the ``Update`` operation);
* ``server_side_apply`` for ``application/apply-patch+yaml`` (the ``Apply`` operation).

How the schema maps to ownership (kube-openapi's schemaconv): lists with ``x-kubernetes-list-type``
``map`` are keyed by ``x-kubernetes-list-map-keys``, ``set`` by value, ``atomic`` are a leaf; lists
without a list type but with patch strategy ``merge`` are keyed by the patch merge key (or by value);
other lists are atomic; objects are granular unless ``x-kubernetes-map-type: atomic``; values without
a schema are "deduced" (maps granular, lists atomic).
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from k8py.api.errors import StatusError, bad_request
from k8py.api.schema import SchemaNode, field_node

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "Path",
    "compare",
    "field_set",
    "fields_to_set",
    "merge_apply_configuration",
    "path_string",
    "server_side_apply",
    "set_to_fields",
    "update_managed_fields",
]

Path = tuple[str, ...]

_log = logging.getLogger(__name__)

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS = 10  # kube's DefaultMaxUpdateManagers
_ANCIENT_CHANGES = "ancient-changes"
_CURRENT_OPERATION = "current-operation"
_BEFORE_FIRST_APPLY = "before-first-apply"

# Paths that never appear in a manager's set (kube's stripMetaManager).
_STRIP_SET: frozenset[Path] = frozenset({
    ("f:apiVersion",), ("f:kind",), ("f:metadata",),
    ("f:metadata", "f:name"), ("f:metadata", "f:namespace"), ("f:metadata", "f:creationTimestamp"),
    ("f:metadata", "f:selfLink"), ("f:metadata", "f:uid"), ("f:metadata", "f:clusterName"),
    ("f:metadata", "f:generation"), ("f:metadata", "f:managedFields"), ("f:metadata", "f:resourceVersion"),
})

# Defaults of list-map key fields. Kube's OpenAPI carries these (`default: "TCP"`) but the schema
# package we read strips defaults; structured-merge-diff fills a missing key from them.
_KEY_DEFAULTS: dict[str, dict[str, Any]] = {
    "io.k8s.api.core.v1.ContainerPort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.ServicePort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.EndpointPort": {"protocol": "TCP"},
    "io.k8s.api.discovery.v1.EndpointPort": {"protocol": "TCP"},
}

_MISSING: Any = object()


class _TypedError(Exception):
    """A value does not fit its schema (structured-merge-diff's ValidationErrors)."""


class _DecodeError(Exception):
    pass


# ==================================================================================================
# Go-compatible JSON text (path elements, the last-applied annotation)


def _go_str(s: str) -> str:
    out = orjson.dumps(s).decode()
    # Go's encoder escapes HTML characters and the JS line separators.
    return (out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _go_float(v: float) -> str:
    if v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    r = repr(v)
    if "e" in r:
        mant, exp = r.split("e")
        sign = "-" if exp.startswith("-") else "+"
        exp = exp.lstrip("+-").lstrip("0") or "0"
        return f"{mant}e{sign}{exp.zfill(2)}"
    return r


def _go_json(v: Any, sort_keys: bool = False) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return _go_str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, dict):
        keys = sorted(v) if sort_keys else list(v)
        return "{" + ",".join(f"{_go_str(k)}:{_go_json(v[k], sort_keys)}" for k in keys) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_go_json(x, sort_keys) for x in v) + "]"
    raise TypeError(f"not a JSON value: {v!r}")


def _equal(a: Any, b: Any) -> bool:
    """Deep equality of JSON values where booleans never equal numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


# ==================================================================================================
# Path elements


def _pe_key(fields: dict[str, Any]) -> str:
    return "k:" + "{" + ",".join(f"{_go_str(k)}:{_go_json(fields[k])}" for k in sorted(fields)) + "}"


def _pe_value(v: Any) -> str:
    return "v:" + _go_json(v)


def _value_sort_key(v: Any) -> tuple[Any, ...]:
    # structured-merge-diff's value ordering: numbers < strings < booleans < lists < maps < null
    if isinstance(v, bool):
        return (2, v)
    if isinstance(v, int | float):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, list):
        return (3, tuple(_value_sort_key(x) for x in v))
    if isinstance(v, dict):
        return (4, tuple((k, _value_sort_key(v[k])) for k in sorted(v)))
    return (5,)


@functools.lru_cache(maxsize=65536)
def _pe_sort_key(pe: str) -> tuple[Any, ...]:
    kind, text = pe[:2], pe[2:]
    if kind == "f:":
        return (0, text)
    if kind == "k:":
        fields = orjson.loads(text)
        return (1, tuple((k, _value_sort_key(fields[k])) for k in sorted(fields)))
    if kind == "v:":
        return (2, _value_sort_key(orjson.loads(text)))
    return (3, int(text))


def _value_string(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, str):
        return orjson.dumps(v).decode()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, int):
        return str(v)
    return _go_json(v)


def _pe_string(pe: str) -> str:
    kind, text = pe[:2], pe[2:]
    if kind == "f:":
        return "." + text
    if kind == "k:":
        fields = orjson.loads(text)
        return "[" + ",".join(f"{k}={_value_string(fields[k])}" for k in sorted(fields)) + "]"
    if kind == "v:":
        return f"[={_value_string(orjson.loads(text))}]"
    return f"[{text}]"


def path_string(path: Path) -> str:
    """A path as kube prints it in conflicts: ``.spec.template.spec.containers[name="nginx"].image``."""
    return "".join(_pe_string(pe) for pe in path)


def _path_iter_key(path: Path) -> tuple[Any, ...]:
    """Order of fieldpath.Set.Iterate: at each level the paths ending there first, then deeper ones."""
    n = len(path)
    return tuple((0 if i == n - 1 else 1, _pe_sort_key(pe)) for i, pe in enumerate(path))


def _canonical_pe(text: str) -> str:
    kind, rest = text[:2], text[2:]
    try:
        if kind == "f:":
            return text
        if kind == "k:":
            fields = orjson.loads(rest)
            if not isinstance(fields, dict):
                raise _DecodeError(f"expected key to be a map, got {rest}")
            return _pe_key(fields)
        if kind == "v:":
            return _pe_value(orjson.loads(rest))
        if kind == "i:":
            return f"i:{int(rest)}"
    except (orjson.JSONDecodeError, ValueError) as e:
        raise _DecodeError(f"parsing JSON: {e}") from None
    raise _DecodeError(f"unknown path element prefix in {text!r}")


# ==================================================================================================
# FieldsV1 <-> set


def fields_to_set(fields_v1: dict[str, Any]) -> set[Path]:
    """Decode a ``FieldsV1`` object into a set of paths. Raises ``ValueError`` when malformed."""
    out: set[Path] = set()
    try:
        _decode_fields(fields_v1, (), out)
    except _DecodeError as e:
        raise ValueError(str(e)) from None
    return out


def _decode_fields(node: Any, prefix: Path, out: set[Path]) -> None:
    if not isinstance(node, dict):
        raise _DecodeError(f"expected an object, got {node!r}")
    for key, child in node.items():
        if key == ".":
            if prefix:
                out.add(prefix)
            continue
        path = prefix + (_canonical_pe(key),)
        if not isinstance(child, dict):
            raise _DecodeError(f"expected an object for {key!r}")
        if child:
            _decode_fields(child, path, out)
        else:
            out.add(path)


def set_to_fields(paths: Iterable[Path]) -> dict[str, Any]:
    """Encode a set of paths as ``FieldsV1`` (children in structured-merge-diff's order)."""
    root: dict[str, Any] = {}
    members: set[Path] = set(paths)
    # trie of dicts keyed by path element; "." marks membership of an inner node
    for path in members:
        node = root
        for pe in path:
            node = node.setdefault(pe, {})
    return _encode_trie(root, (), members)


def _encode_trie(node: dict[str, Any], prefix: Path, members: set[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if prefix and node and prefix in members:
        out["."] = {}
    for pe in sorted(node, key=_pe_sort_key):
        out[pe] = _encode_trie(node[pe], prefix + (pe,), members)
    return out


# ==================================================================================================
# Types: the OpenAPI schema seen as structured-merge-diff sees it

_SCALAR, _STRUCT, _MAP, _LIST, _DEDUCED = range(5)


@dataclass(slots=True, eq=False)
class _Type:
    kind: int
    atomic: bool = False
    assoc: bool = False           # lists: keyed (map) or by value (set)
    keys: tuple[str, ...] = ()    # lists with list-map keys
    node: SchemaNode | None = None
    _children: dict[str, tuple[_Type, bool]] = field(default_factory=dict)
    _elem: _Type | None = None

    def field(self, name: str) -> tuple[_Type, bool]:
        """(type of child ``name``, whether it is a declared struct field)."""
        if self.kind == _STRUCT and self.node is not None and name in self.node.properties:
            hit = self._children.get(name)
            if hit is None:
                hit = self._children[name] = (_resolve(field_node(self.node, name)), True)
            return hit
        # map values and undeclared fields: one element type (not cached per key: keys are unbounded)
        if self._elem is None:
            ap = self.node.additional_properties if (self.kind == _MAP and self.node is not None) else None
            self._elem = _resolve(ap) if ap is not None else _DEDUCED_T
        return self._elem, False

    def elem(self) -> _Type:
        """Element type of a list (for maps and structs: the type of undeclared keys)."""
        if self._elem is None:
            if self.kind == _LIST and self.node is not None and self.node.items is not None:
                self._elem = _resolve(self.node.items)
            elif self.kind == _MAP and self.node is not None and self.node.additional_properties is not None:
                self._elem = _resolve(self.node.additional_properties)
            else:
                self._elem = _DEDUCED_T
        return self._elem

    @property
    def strict_struct(self) -> bool:
        """A struct that rejects undeclared fields."""
        if self.kind != _STRUCT or self.node is None:
            return False
        raw = self.node.raw
        return not raw.get("x-kubernetes-preserve-unknown-fields") and not isinstance(
            raw.get("additionalProperties"), dict)


_DEDUCED_T = _Type(_DEDUCED)
_SCALAR_T = _Type(_SCALAR)
_type_cache: dict[tuple[str, str], _Type] = {}


def _resolve(node: SchemaNode | None) -> _Type:
    if node is None:
        return _DEDUCED_T
    ext = tuple(sorted((k, str(v)) for k, v in node.raw.items() if k.startswith("x-kubernetes-")))
    cache_key = (node.name, repr(ext)) if node.name else None
    if cache_key is not None:
        hit = _type_cache.get(cache_key)
        if hit is not None:
            return hit
    t = _resolve_uncached(node)
    if cache_key is not None:
        _type_cache[cache_key] = t
    return t


def _resolve_uncached(node: SchemaNode) -> _Type:
    raw = node.raw
    if raw.get("x-kubernetes-int-or-string") or "oneOf" in raw or "anyOf" in raw:
        return _Type(_SCALAR, node=node)
    typ = node.type
    if typ == "array":
        lt = node.list_type
        if lt == "atomic":
            return _Type(_LIST, atomic=True, node=node)
        if lt == "set":
            return _Type(_LIST, assoc=True, node=node)
        if lt == "map":
            return _Type(_LIST, assoc=True, keys=node.list_map_keys, node=node)
        if lt == "" and "merge" in node.patch_strategy.split(","):
            key = node.patch_merge_key
            return _Type(_LIST, assoc=True, keys=(key,) if key else (), node=node)
        return _Type(_LIST, atomic=True, node=node)
    if typ == "object" or (typ == "" and (node.properties or node.additional_properties is not None)):
        atomic = node.map_type == "atomic"
        if node.properties:
            return _Type(_STRUCT, atomic=atomic, node=node)
        if node.additional_properties is not None:
            return _Type(_MAP, atomic=atomic, node=node)
        return _Type(_MAP, atomic=atomic, node=None)  # free-form object: a map of deduced values
    if typ in ("string", "integer", "number", "boolean"):
        return _Type(_SCALAR, node=node)
    return _DEDUCED_T


def _atom(t: _Type, v: Any) -> int:
    """How a value is walked under its type: _SCALAR, _MAP or _LIST (mismatches are leaves)."""
    k = t.kind
    if k == _DEDUCED:
        if v is None or isinstance(v, dict):
            return _MAP
        return _LIST if isinstance(v, list) else _SCALAR
    if k == _LIST:
        return _LIST if v is None or isinstance(v, list) else _SCALAR
    if k in (_STRUCT, _MAP):
        return _MAP if v is None or isinstance(v, dict) else _SCALAR
    return _SCALAR


def _list_atomic(t: _Type) -> bool:
    return t.kind != _LIST or t.atomic or not t.assoc


def _item_pe(t: _Type, item: Any, index: int) -> str:
    """The path element of a list item (raises _TypedError if a key is missing)."""
    if _list_atomic(t):
        return f"i:{index}"
    if not t.keys:
        return _pe_value(item)
    if not isinstance(item, dict):
        raise _TypedError(f"element {index}: expected map, got {_go_json(item)}")
    elem = t.elem()
    defaults = _KEY_DEFAULTS.get(elem.node.name, {}) if elem.node is not None else {}
    kv: dict[str, Any] = {}
    for k in t.keys:
        if k in item:
            kv[k] = item[k]
        elif k in defaults:
            kv[k] = defaults[k]
        else:
            raise _TypedError(f"element {index}: associative list with keys has an element that omits "
                              f"key field {_go_str(k)} (and doesn't have default value)")
    return _pe_key(kv)


def _item_pe_lenient(t: _Type, item: Any, index: int) -> str:
    try:
        return _item_pe(t, item, index)
    except _TypedError:
        return f"i:{index}"


# ==================================================================================================
# Validation of an applied configuration (ObjectToTyped without AllowDuplicates)


def _validate(v: Any, t: _Type, where: str) -> None:
    a = _atom(t, v)
    if a == _LIST:
        if not isinstance(v, list):
            return
        elem = t.elem()
        seen: set[str] = set()
        for i, item in enumerate(v):
            try:
                pe = _item_pe(t, item, i)
            except _TypedError as e:
                raise _TypedError(f"{where}: {e}") from None
            if not _list_atomic(t):
                if pe in seen:
                    raise _TypedError(f"{where}: duplicate entries for key {_pe_string(pe)}")
                seen.add(pe)
            _validate(item, elem, where + (_pe_string(pe) if not _list_atomic(t) else f"[{i}]"))
    elif a == _MAP:
        if not isinstance(v, dict):
            return
        strict = t.strict_struct
        for k, val in v.items():
            ft, declared = t.field(k)
            if strict and not declared:
                raise _TypedError(f"{where}.{k}: field not declared in schema")
            _validate(val, ft, f"{where}.{k}")


# ==================================================================================================
# ToFieldSet


def field_set(obj: Any, node: SchemaNode | None) -> set[Path]:
    """The set of fields an object sets (structured-merge-diff's ``ToFieldSet``)."""
    out: set[Path] = set()
    _tofs(obj, _resolve(node), (), out)
    return out


def _tofs(v: Any, t: _Type, path: Path, out: set[Path]) -> None:
    a = _atom(t, v)
    if a == _SCALAR:
        out.add(path)
        return
    if a == _LIST:
        if _list_atomic(t):
            out.add(path)
            return
        if not isinstance(v, list):
            return
        elem = t.elem()
        for i, item in enumerate(v):
            child = path + (_item_pe_lenient(t, item, i),)
            _tofs(item, elem, child, out)
            out.add(child)
        return
    if t.atomic:
        out.add(path)
        return
    if not isinstance(v, dict):
        return
    for k, val in v.items():
        ft, declared = t.field(k)
        child = path + ("f:" + k,)
        _tofs(val, ft, child, out)
        if val is None or (isinstance(val, dict) and not val) or not declared:
            out.add(child)


# ==================================================================================================
# Compare


@dataclass(slots=True)
class Comparison:
    added: set[Path] = field(default_factory=set)
    modified: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)

    def filtered(self, ignore: Iterable[Path]) -> Comparison:
        ig = tuple(ignore)
        return Comparison(_recursive_difference(self.added, ig), _recursive_difference(self.modified, ig),
                          _recursive_difference(self.removed, ig))


def compare(old: Any, new: Any, node: SchemaNode | None) -> Comparison:
    """Fields added, modified and removed between two objects (structured-merge-diff's Compare)."""
    res = Comparison()
    _cmp(old, new, _resolve(node), (), res)
    return res


def _leaf(lhs: Any, rhs: Any, path: Path, res: Comparison) -> bool:
    if lhs is _MISSING:
        res.added.add(path)
    elif rhs is _MISSING:
        res.removed.add(path)
    elif not _equal(lhs, rhs):
        res.modified.add(path)
    return True


def _cmp(lhs: Any, rhs: Any, t: _Type, path: Path, res: Comparison) -> None:
    probe = rhs if rhs is not _MISSING else lhs
    a = _atom(t, probe)
    if a == _SCALAR or (lhs is not _MISSING and rhs is not _MISSING and _atom(t, lhs) != a):
        in_leaf = _leaf(lhs, rhs, path, res)
    elif a == _LIST:
        lv = lhs if isinstance(lhs, list) else None
        rv = rhs if isinstance(rhs, list) else None
        if _list_atomic(t) or (not lv and not rv):
            in_leaf = _leaf(lhs, rhs, path, res)
        else:
            in_leaf = False
            _cmp_list(t, lv or [], rv or [], path, res)
    else:
        lm = lhs if isinstance(lhs, dict) else None
        rm = rhs if isinstance(rhs, dict) else None
        if t.atomic or (not lm and not rm):
            in_leaf = _leaf(lhs, rhs, path, res)
        else:
            in_leaf = False
            lm = lm or {}
            rm = rm or {}
            for k in list(lm) + [k for k in rm if k not in lm]:
                ft, _ = t.field(k)
                _cmp(lm.get(k, _MISSING), rm.get(k, _MISSING), ft, path + ("f:" + k,), res)
    if not in_leaf:
        if lhs is _MISSING:
            res.added.add(path)
        elif rhs is _MISSING:
            res.removed.add(path)


def _index_items(t: _Type, items: list[Any]) -> tuple[list[str], dict[str, list[Any]]]:
    order: list[str] = []
    by_pe: dict[str, list[Any]] = {}
    for i, item in enumerate(items):
        pe = _item_pe_lenient(t, item, i)
        if pe in by_pe:
            by_pe[pe].append(item)
        else:
            by_pe[pe] = [item]
            order.append(pe)
    return order, by_pe


def _cmp_list(t: _Type, lhs: list[Any], rhs: list[Any], path: Path, res: Comparison) -> None:
    elem = t.elem()
    lorder, lmap = _index_items(t, lhs)
    rorder, rmap = _index_items(t, rhs)
    for pe in lorder + [pe for pe in rorder if pe not in lmap]:
        ls = lmap.get(pe)
        rs = rmap.get(pe)
        child = path + (pe,)
        if ls is not None and rs is not None and len(ls) == 1 and len(rs) == 1:
            _cmp(ls[0], rs[0], elem, child, res)
        elif rs is None:
            for item in ls or ():
                _cmp(item, _MISSING, elem, child, res)
        elif ls is None:
            for item in rs:
                _cmp(_MISSING, item, elem, child, res)
        elif not _equal(ls, rs):
            res.modified.add(child)


# ==================================================================================================
# Merge (apply a configuration over the live object)


def _merge(lhs: Any, rhs: Any, t: _Type) -> Any:
    if rhs is _MISSING:
        return lhs
    if lhs is _MISSING:
        return rhs
    a = _atom(t, rhs)
    if _atom(t, lhs) != a or a == _SCALAR:
        return rhs
    if a == _LIST:
        lv = lhs if isinstance(lhs, list) else None
        rv = rhs if isinstance(rhs, list) else None
        if _list_atomic(t) or (not lv and not rv):
            return rhs
        return _merge_list(t, lv or [], rv or [])
    lm = lhs if isinstance(lhs, dict) else None
    rm = rhs if isinstance(rhs, dict) else None
    if t.atomic or (not lm and not rm):
        return rhs
    if lm is None:
        return rhs
    if rm is None:
        return lhs
    out: dict[str, Any] = {}
    for k, lval in lm.items():
        ft, _ = t.field(k)
        out[k] = _merge(lval, rm.get(k, _MISSING), ft)
    for k, rval in rm.items():
        if k not in lm:
            out[k] = rval
    return out


def _merge_list(t: _Type, lhs: list[Any], rhs: list[Any]) -> list[Any]:
    """Merge associative lists: shared items take the configuration's order, live-only items keep
    their place relative to them (structured-merge-diff's mergingWalker.visitListItems)."""
    elem = t.elem()
    lpes = [_item_pe_lenient(t, item, i) for i, item in enumerate(lhs)]
    rpes = [_item_pe_lenient(t, item, i) for i, item in enumerate(rhs)]
    lobs: dict[str, Any] = {}
    for pe, item in zip(lpes, lhs, strict=True):
        lobs[pe] = _MISSING if pe in lobs else item  # duplicated live items merge as absent
    robs = dict(zip(rpes, rhs, strict=True))
    shared = [pe for pe in rpes if pe in lobs]
    shared.reverse()
    next_shared = shared.pop() if shared else None
    merged_r: set[str] = set()
    out: list[Any] = []
    li = ri = 0
    nl, nr = len(lhs), len(rhs)
    while li < nl or ri < nr:
        if li < nl and ri < nr:
            pe = lpes[li]
            if pe == rpes[ri]:
                merged_r.add(pe)
                out.append(_merge(lobs[pe], robs[pe], elem))
                li += 1
                ri += 1
                next_shared = shared.pop() if shared else None
                continue
            if pe in robs and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < nl:
            pe = lpes[li]
            if pe not in robs:
                out.append(lhs[li])
                li += 1
                continue
            if pe in merged_r:
                li += 1
                continue
        if ri < nr:
            pe = rpes[ri]
            merged_r.add(pe)
            out.append(_merge(lobs.get(pe, _MISSING), robs[pe], elem))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop() if shared else None
    return out


# ==================================================================================================
# Removing items (RemoveItems) and set helpers


def _trie(paths: Iterable[Path]) -> dict[str, Any]:
    """Nested dicts; the key "" marks that the path ending at this node is in the set."""
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for pe in path:
            node = node.setdefault(pe, {})
        node[""] = True
    return root


_NULL: Any = object()  # "the walker produced nothing" (Go's nil out)


def _remove_items(v: Any, paths: Iterable[Path], node_t: _Type) -> Any:
    trie = _trie(paths)
    if trie.get(""):
        return None
    out = _remove(v, node_t, trie)
    return None if out is _NULL else out


def _remove(v: Any, t: _Type, trie: dict[str, Any]) -> Any:
    a = _atom(t, v)
    if a == _SCALAR:
        return v
    if a == _LIST:
        if not isinstance(v, list) or not v or _list_atomic(t):
            return _NULL
        elem = t.elem()
        items: list[Any] = []
        had = False
        for i, item in enumerate(v):
            sub = trie.get(_item_pe_lenient(t, item, i))
            if sub is not None and sub.get(""):
                continue
            if sub:
                had = True
                was = item
                item = _remove(item, elem, sub)
                if item is _NULL:
                    item = {} if isinstance(was, dict) else [] if isinstance(was, list) else None
            items.append(item)
        return items if items or had else _NULL
    if not isinstance(v, dict) or not v or t.atomic:
        return _NULL
    out: dict[str, Any] = {}
    had = False
    for k, val in v.items():
        sub = trie.get("f:" + k)
        if sub is not None and sub.get(""):
            continue
        if sub:
            had = True
            ft, _ = t.field(k)
            was = val
            val = _remove(val, ft, sub)
            if val is _NULL:
                val = {} if isinstance(was, dict) else [] if isinstance(was, list) else None
        out[k] = val
    return out if out or had else _NULL


def _ensure_named(paths: set[Path], root: _Type) -> set[Path]:
    """EnsureNamedFieldsAreMembers: also own every declared struct field that has owned children."""
    out = set(paths)
    for path in paths:
        t = root
        for i in range(len(path) - 1):
            pe = path[i]
            if pe.startswith("f:"):
                name = pe[2:]
                ft, declared = t.field(name) if t.kind in (_STRUCT, _MAP, _DEDUCED) else (_DEDUCED_T, False)
                if declared and t.kind == _STRUCT:
                    out.add(path[: i + 1])
                t = ft
            else:
                t = t.elem() if t.kind == _LIST else _DEDUCED_T
    return out


def _recursive_difference(paths: set[Path], ignore: tuple[Path, ...]) -> set[Path]:
    if not ignore:
        return set(paths)
    return {p for p in paths if not any(p[: len(ig)] == ig for ig in ignore)}


# ==================================================================================================
# Managers (the decoded managedFields)


@dataclass(slots=True)
class _Entry:
    fields: set[Path]
    api_version: str
    applied: bool


# (manager, operation, apiVersion for Update / "" for Apply, subresource) — kube's BuildManagerIdentifier
_Key = tuple[str, str, str, str]


@dataclass(slots=True)
class _Managed:
    fields: dict[_Key, _Entry] = field(default_factory=dict)
    times: dict[_Key, str | None] = field(default_factory=dict)

    def copy(self) -> _Managed:
        return _Managed({k: _Entry(set(e.fields), e.api_version, e.applied) for k, e in self.fields.items()},
                        dict(self.times))


def _manager_key(manager: str, operation: str, api_version: str, subresource: str) -> _Key:
    return (manager, operation, "" if operation == "Apply" else api_version, subresource)


def _key_json(key: _Key) -> str:
    d: dict[str, str] = {}
    for name, val in zip(("manager", "operation", "apiVersion", "subresource"), key, strict=True):
        if val:
            d[name] = val
    return orjson.dumps(d).decode()


def _decode_managed(entries: Any) -> _Managed:
    managed = _Managed()
    if entries is None:
        return managed
    if not isinstance(entries, list):
        raise _DecodeError("managedFields must be a list")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise _DecodeError(f"managed fields entry {i} is not an object")
        op = e.get("operation")
        if op not in ("Apply", "Update"):
            raise _DecodeError("operation must be `Apply` or `Update`")
        api_version = e.get("apiVersion")
        if not api_version or not isinstance(api_version, str):
            raise _DecodeError("apiVersion must not be empty")
        ft = e.get("fieldsType")
        if ft != "FieldsV1":
            if not ft:
                raise _DecodeError(f"missing fieldsType in managed fields entry {i}")
            raise _DecodeError(f"invalid fieldsType {_go_str(str(ft))} in managed fields entry {i}")
        key = _manager_key(str(e.get("manager") or ""), op, api_version, str(e.get("subresource") or ""))
        paths: set[Path] = set()
        _decode_fields(e.get("fieldsV1") or {}, (), paths)
        managed.fields[key] = _Entry(paths, api_version, op == "Apply")
        managed.times[key] = e.get("time")
    return managed


def _unix(t: str | None) -> int:
    if not t:
        return 0
    try:
        return int(datetime.fromisoformat(t).timestamp())
    except ValueError:
        return 0


def _encode_managed(managed: _Managed) -> list[dict[str, Any]] | None:
    if not managed.fields:
        return None
    out = []
    for key, e in managed.fields.items():
        manager, _, _, subresource = key
        entry: dict[str, Any] = {}
        if manager:
            entry["manager"] = manager
        entry["operation"] = "Apply" if e.applied else "Update"
        entry["apiVersion"] = e.api_version
        t = managed.times.get(key)
        if t:
            entry["time"] = t
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = set_to_fields(e.fields)
        if subresource:
            entry["subresource"] = subresource
        out.append(entry)
    out.sort(key=lambda x: (x["operation"], _unix(x.get("time")), x.get("manager", ""), x["apiVersion"],
                            x.get("subresource", "")))
    return out


def _is_reset(mf: Any) -> bool:
    """An update that sends ``managedFields: []`` or ``[{}]`` clears them (kube's isResetManagedFields)."""
    if not isinstance(mf, list) or len(mf) > 1:
        return False
    return not mf or (isinstance(mf[0], dict) and not any(mf[0].values()))


# ==================================================================================================
# The "Go zero value" of an object: what kube compares a create against


_STRUCT_ZERO = "struct"
# Fields Go always serializes for a zero object (non-pointer structs; slices/pointers without
# omitempty as null). They decide whether a created map is itself owned (".") in Update entries.
_ZERO_FIELDS: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"creationTimestamp": None},
    "io.k8s.api.apps.v1.DeploymentSpec": {"selector": None, "template": _STRUCT_ZERO, "strategy": _STRUCT_ZERO},
    "io.k8s.api.apps.v1.StatefulSetSpec": {"selector": None, "template": _STRUCT_ZERO,
                                           "updateStrategy": _STRUCT_ZERO},
    "io.k8s.api.apps.v1.DaemonSetSpec": {"selector": None, "template": _STRUCT_ZERO,
                                         "updateStrategy": _STRUCT_ZERO},
    "io.k8s.api.apps.v1.ReplicaSetSpec": {"selector": None, "template": _STRUCT_ZERO},
    "io.k8s.api.core.v1.PodTemplateSpec": {"metadata": _STRUCT_ZERO, "spec": _STRUCT_ZERO},
    "io.k8s.api.core.v1.PodTemplate": {"template": _STRUCT_ZERO},
    "io.k8s.api.core.v1.PodSpec": {"containers": None},
    "io.k8s.api.batch.v1.JobSpec": {"template": _STRUCT_ZERO},
    "io.k8s.api.batch.v1.CronJobSpec": {"jobTemplate": _STRUCT_ZERO},
    "io.k8s.api.batch.v1.JobTemplateSpec": {"metadata": _STRUCT_ZERO, "spec": _STRUCT_ZERO},
    "io.k8s.api.core.v1.ServiceStatus": {"loadBalancer": _STRUCT_ZERO},
    "io.k8s.api.networking.v1.IngressStatus": {"loadBalancer": _STRUCT_ZERO},
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec": {"resources": _STRUCT_ZERO},
    "io.k8s.api.core.v1.NodeStatus": {"daemonEndpoints": _STRUCT_ZERO, "nodeInfo": _STRUCT_ZERO},
}


def _zero(node: SchemaNode | None, top: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if node is None:
        return out
    spec = dict(_ZERO_FIELDS.get(node.name, {}))
    if top:
        for name in ("metadata", "spec", "status"):
            if name in node.properties:
                child = node.field(name)
                if child is not None and child.type == "object":
                    spec.setdefault(name, _STRUCT_ZERO)
    for name, zv in spec.items():
        if name not in node.properties:
            continue
        if zv == _STRUCT_ZERO:
            out[name] = _zero(node.field(name))
        else:
            out[name] = copy.deepcopy(zv)
    return out


def _overlay_zero(obj: Any, zero: dict[str, Any]) -> Any:
    """``obj`` with the zero object's fields filled in where absent (inputs untouched)."""
    if not isinstance(obj, dict) or not zero:
        return obj
    out = dict(obj)
    for k, zv in zero.items():
        if k not in out:
            out[k] = copy.deepcopy(zv)
        elif isinstance(zv, dict) and isinstance(out[k], dict):
            out[k] = _overlay_zero(out[k], zv)
    return out


# ==================================================================================================
# The updater (structured-merge-diff's merge.Updater)


class _Conflicts(Exception):
    def __init__(self, conflicts: list[tuple[_Key, Path]]) -> None:
        super().__init__("conflicts")
        self.conflicts = conflicts


def _conflicts_from(sets: dict[_Key, set[Path]]) -> _Conflicts:
    items: list[tuple[_Key, Path]] = []
    for key in sorted(sets, key=_key_json):
        for p in sorted(sets[key], key=_path_iter_key):
            items.append((key, p))
    return _Conflicts(items)


@dataclass(slots=True)
class _Ctx:
    root: _Type
    version: str
    ignore: tuple[Path, ...]
    zero: dict[str, Any] = field(default_factory=dict)

    def filter(self, paths: set[Path]) -> set[Path]:
        return _recursive_difference(paths, self.ignore)


def _update_managers(ctx: _Ctx, live: Any, new: Any, managed: _Managed, workflow: _Key,
                     force: bool) -> Comparison:
    cmp = Comparison()
    # Compare as Go's typed objects would: non-pointer structs are always there.
    _cmp(_overlay_zero(live, ctx.zero), _overlay_zero(new, ctx.zero), ctx.root, (), cmp)
    cmp = cmp.filtered(ctx.ignore)
    changed = cmp.modified | cmp.added
    conflicts: dict[_Key, set[Path]] = {}
    for key, e in managed.fields.items():
        if key == workflow:
            continue
        c = e.fields & changed
        if c:
            conflicts[key] = c
    if conflicts and not force:
        raise _conflicts_from(conflicts)
    for key, e in list(managed.fields.items()):
        if key == workflow:
            continue
        e.fields -= conflicts.get(key, set())
        e.fields -= cmp.removed
        if not e.fields:
            del managed.fields[key]
    return cmp


def _updater_update(ctx: _Ctx, live: Any, new: Any, managed: _Managed, manager: _Key) -> None:
    cmp = _update_managers(ctx, live, new, managed, manager, True)
    prev = managed.fields.get(manager)
    paths = (prev.fields if prev else set()) - cmp.removed | cmp.modified | cmp.added
    paths = ctx.filter(paths)
    if paths:
        managed.fields[manager] = _Entry(paths, ctx.version, False)
    else:
        managed.fields.pop(manager, None)


def _updater_apply(ctx: _Ctx, live: Any, config: dict[str, Any], managed: _Managed, manager: _Key,
                   force: bool) -> Any:
    """Returns the new object, or _MISSING when applying changed nothing."""
    merged = _merge(live, config, ctx.root)
    last = managed.fields.get(manager)
    managed.fields[manager] = _Entry(ctx.filter(field_set_typed(config, ctx.root)), ctx.version, True)
    merged = _prune(ctx, merged, managed, last)
    _update_managers(ctx, live, merged, managed, manager, force)
    if _equal(live, merged):
        return _MISSING
    return merged


def field_set_typed(obj: Any, t: _Type) -> set[Path]:
    out: set[Path] = set()
    _tofs(obj, t, (), out)
    return out


def _prune(ctx: _Ctx, merged: Any, managed: _Managed, last: _Entry | None) -> Any:
    """Remove what the applier owned before and no longer applies, unless someone else owns it."""
    if last is None or not last.fields:
        return merged
    root = ctx.root
    last_set = _ensure_named(last.fields, root)
    pruned = _remove_items(merged, last_set, root)
    # add back items owned by anyone (including the new configuration)
    all_owned: set[Path] = set()
    for e in managed.fields.values():
        all_owned |= e.fields
    merged_set = _ensure_named(field_set_typed(merged, root), root)
    pruned_set = _ensure_named(field_set_typed(pruned, root), root)
    pruned = _remove_items(merged, merged_set - (pruned_set | _ensure_named(all_owned, root)), root)
    # add back dangling items: remove only what the applier itself used to own
    pruned_set = _ensure_named(field_set_typed(pruned, root), root)
    return _remove_items(merged, (merged_set - pruned_set) & last_set, root)


def _drop_emptied(obj: Any, before: Any) -> None:
    """Drop maps/lists that pruning emptied (Go's omitempty would not serialize them)."""
    if isinstance(obj, dict) and isinstance(before, dict):
        for k in list(obj):
            v, b = obj[k], before.get(k)
            if isinstance(v, dict | list) and not v and isinstance(b, type(v)) and b:
                del obj[k]
            else:
                _drop_emptied(v, b)
    elif isinstance(obj, list) and isinstance(before, list) and len(obj) == len(before):
        for v, b in zip(obj, before, strict=True):
            _drop_emptied(v, b)


def _drop_nulls(obj: Any) -> None:
    if isinstance(obj, dict):
        for k in [k for k, v in obj.items() if v is None]:
            del obj[k]
        for v in obj.values():
            _drop_nulls(v)
    elif isinstance(obj, list):
        for v in obj:
            _drop_nulls(v)


def _strip(managed: _Managed, key: _Key) -> None:
    e = managed.fields.get(key)
    if e is None:
        return
    e.fields -= _STRIP_SET
    if not e.fields:
        del managed.fields[key]


def _cap_update_managers(managed: _Managed) -> None:
    updaters = [k for k, e in managed.fields.items() if not e.applied]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda k: (_unix(managed.times.get(k)), _key_json(k)))
    first_for_version: dict[str, _Key] = {}
    length = len(updaters)
    for k in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        e = managed.fields[k]
        bucket = _manager_key(_ANCIENT_CHANGES, "Update", e.api_version, "")
        first = first_for_version.get(e.api_version)
        if first is None:
            first_for_version[e.api_version] = k
            continue
        if bucket not in managed.fields:
            managed.fields[bucket] = managed.fields.pop(first)
            managed.times[bucket] = managed.times.pop(first, None)
        b = managed.fields[bucket]
        managed.fields[bucket] = _Entry(e.fields | b.fields, e.api_version, e.applied)
        del managed.fields[k]
        managed.times[bucket] = managed.times.pop(k, None)
        length -= 1


def _update_chain(ctx: _Ctx, live: Any, new: Any, managed: _Managed, manager: str, subresource: str,
                  now: str) -> None:
    """capManagers(buildManagerInfo(managedFieldsUpdater(stripMeta(structuredMerge)))).Update"""
    key = _manager_key(manager or "unknown", "Update", ctx.version, subresource)
    current: _Key = (_CURRENT_OPERATION, "Update", ctx.version, "")
    _updater_update(ctx, live, new, managed, current)
    _strip(managed, current)
    vs = managed.fields.pop(current, None)
    if vs is not None:
        prev = managed.fields.get(key)
        paths = vs.fields | prev.fields if prev is not None else vs.fields
        managed.fields[key] = _Entry(paths, vs.api_version, False)
        managed.times[key] = now
    managed.times.pop(current, None)
    _cap_update_managers(managed)


def _default_ignore(node: SchemaNode | None, subresource: str) -> tuple[Path, ...]:
    if node is None:
        return ()
    if subresource == "":
        return (("f:status",),) if "status" in node.properties else ()
    if subresource == "status":
        return (("f:spec",),) if "spec" in node.properties else ()
    return ()


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    md = obj.get("metadata")
    if isinstance(md, dict):
        md.pop("managedFields", None)
    return obj


def _set_managed_fields(obj: dict[str, Any], managed: _Managed) -> None:
    encoded = _encode_managed(managed)
    md = obj.get("metadata")
    if encoded is None:
        if isinstance(md, dict):
            md.pop("managedFields", None)
        return
    if not isinstance(md, dict):
        md = obj["metadata"] = {}
    md["managedFields"] = encoded


# ==================================================================================================
# Public entry points


def update_managed_fields(old: dict[str, Any] | None, new: dict[str, Any], *, manager: str,
                          operation: str = "Update", api_version: str, subresource: str = "", now: str,
                          node: SchemaNode | None,
                          ignore: Iterable[Path] | None = None) -> None:
    """Record in ``new["metadata"]["managedFields"]`` who owns what after a create (``old`` None) or an
    update/patch (``old`` the stored object), as kube's field manager does for non-apply writes.

    * ``new`` is the object about to be stored (after defaulting); it is modified in place.
    * ``manager`` is the fieldManager query parameter or the user-agent's first segment ("" ->
      "unknown"); ``api_version`` the group/version of the request; ``subresource`` e.g. "status".
    * ``now`` is an RFC 3339 time (``2024-01-01T00:00:00Z``) stamped on the manager's entry when it
      took any field.
    * ``ignore``: top-level paths whose changes are not tracked (kube's reset fields); default
      ``status`` for the main resource and ``spec`` for the status subresource.

    Rules kept from kube: managedFields the client sent are used when they are valid and non-empty
    (a client can edit them), ``[]`` or ``[{}]`` clears them, otherwise the stored ones are kept; on a
    subresource the stored ones are always used; an existing object without managedFields is not
    tracked on update; invalid managedFields are dropped rather than failing the request.
    """
    if operation != "Update":
        raise ValueError("update_managed_fields records Update operations; use server_side_apply for Apply")
    md = new.get("metadata")
    if not isinstance(md, dict):
        return
    sent = md.pop("managedFields", None)
    live_md = (old or {}).get("metadata") or {}
    try:
        stored = _decode_managed(live_md.get("managedFields"))
    except _DecodeError:
        stored = _Managed()
    if subresource:
        managed = stored
    elif _is_reset(sent):
        managed = _Managed()
    else:
        try:
            managed = _decode_managed(sent)
        except _DecodeError:
            managed = _Managed()
        if not managed.fields:
            managed = stored
    if not managed.fields and old is not None:
        return  # kube's skipNonAppliedManager: untracked objects stay untracked on update
    root = _resolve(node)
    zero = _zero(node, top=True)
    ctx = _Ctx(root, api_version, tuple(ignore) if ignore is not None else _default_ignore(node, subresource),
               zero)
    live = _without_managed_fields(old) if old is not None else zero
    current = _without_managed_fields(new)
    try:
        _update_chain(ctx, live, current, managed, manager, subresource, now)
    except Exception:  # noqa: BLE001 - kube's UpdateNoErrors: never fail a write over managedFields
        _log.exception("[SHOULD NOT HAPPEN] failed to update managedFields of %s/%s",
                       md.get("namespace", ""), md.get("name", ""))
        return  # and leave them cleared
    _set_managed_fields(new, managed)


def _gvk_string(api_version: Any, kind: Any) -> str:
    av = api_version if isinstance(api_version, str) else ""
    group, _, version = av.rpartition("/")
    return f"{group}/{version}, Kind={kind if isinstance(kind, str) else ''}"


def _expected_kind(node: SchemaNode | None, api_version: str) -> str | None:
    if node is None:
        return None
    group, _, version = api_version.rpartition("/")
    for gvk in node.raw.get("x-kubernetes-group-version-kind", ()):
        if gvk.get("group", "") == group and gvk.get("version") == version:
            return str(gvk.get("kind"))
    return None


def _conflict_error(conflicts: list[tuple[_Key, Path]]) -> StatusError:
    def who(key: _Key) -> str:
        manager, op, api_version, subresource = key
        s = _go_str(manager)
        if subresource:
            s += f" with subresource {_go_str(subresource)}"
        if op == "Update":
            s += f" using {api_version}"
        return s

    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who(k)}", "field": path_string(p)}
              for k, p in conflicts]
    if len(conflicts) == 1:
        k, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {who(k)}: {path_string(p)}"
    else:
        by_manager: dict[_Key, list[Path]] = {}
        for k, p in conflicts:
            by_manager.setdefault(k, []).append(p)
        lines: list[str] = []
        for k in sorted(by_manager, key=_key_json):
            lines.append(f"conflicts with {who(k)}:")
            lines.extend(f"- {path_string(p)}" for p in by_manager[k])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return StatusError(409, "Conflict", message, details={"causes": causes})


def _allowed_from_last_applied(ctx: _Ctx, live: dict[str, Any] | None) -> set[Path] | None:
    """Fields the client-side-apply annotation shows were applied with their current values."""
    if live is None:
        return None
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(LAST_APPLIED_ANNOTATION)
    if not text:
        return None
    try:
        last = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(last, dict) or last.get("apiVersion") != ctx.version:
        return None
    owned = field_set_typed(last, ctx.root)
    cmp = Comparison()
    _cmp(last, live, ctx.root, (), cmp)
    return owned - cmp.modified - cmp.added - cmp.removed


def _atomics(v: Any, t: _Type, path: str, out: list[str]) -> None:
    """structured-merge-diff's walk for atomic lists, maps and structs a configuration sets
    (kube's MutatingAdmissionPolicy ``findAtomics``); list items are named by index."""
    a = _atom(t, v)
    if a == _MAP and isinstance(v, dict):
        if t.atomic and t.kind in (_STRUCT, _MAP):
            out.append(path)
        for k, val in v.items():
            ft, declared = t.field(k)
            if declared or t.kind in (_MAP, _DEDUCED):
                _atomics(val, ft, f"{path}.{k}", out)
    elif a == _LIST and isinstance(v, list):
        if _list_atomic(t):
            out.append(path)
        for i, item in enumerate(v):
            _atomics(item, t.elem(), f"{path}[{i}]", out)


def merge_apply_configuration(live: dict[str, Any], config: dict[str, Any], node: SchemaNode | None) -> dict[str, Any]:
    """``live`` with apply configuration ``config`` merged in by the schema's merge rules, owning
    nothing (kube's MutatingAdmissionPolicy ``ApplyStructuredMergeDiff``): a new object. Raises
    ValueError with kube's text for a configuration that does not fit the schema or sets an
    atomic list, map or struct."""
    root = _resolve(node)
    try:
        _validate(config, root, "")
    except _TypedError as e:
        raise ValueError(f"failed to convert patch object to typed object: {e}") from None
    atomics: list[str] = []
    _atomics(config, root, "", atomics)
    if atomics:
        raise ValueError(f"invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: "
                         f"{', '.join(atomics)}")
    out = copy.deepcopy(_merge(live, config, root))
    _drop_nulls(out)
    return out if isinstance(out, dict) else live


def server_side_apply(live: dict[str, Any] | None, applied: dict[str, Any], *, manager: str, force: bool,
                      api_version: str, now: str, node: SchemaNode | None, subresource: str = "",
                      ignore: Iterable[Path] | None = None) -> dict[str, Any]:
    """Server-side apply of configuration ``applied`` by ``manager`` onto ``live`` (None to create).

    Returns the new object with ``metadata.managedFields`` set (inputs are not modified). The caller
    still defaults, validates and stores it (kube defaults after merging). When the apply changes
    nothing the live object is returned with only managedFields possibly updated.

    Errors (``StatusError``): wrong apiVersion/kind in the body -> 400 ``invalid object type: ...``;
    ``metadata.managedFields`` set in the body -> 400 ``metadata.managedFields must be nil``; a body
    that does not fit the schema (unknown field, list item missing its key, duplicate keys) -> 500
    ``failed to create typed patch object (...)``; fields owned by other managers with different
    values and ``force`` false -> 409 Conflict with ``FieldManagerConflict`` causes.

    Like kube, for manager "kubectl" conflicts on fields that the client-side-apply annotation shows
    were applied with the same values are taken over (the client-side -> server-side upgrade), and
    an existing last-applied annotation is kept in sync with the applied configuration.
    """
    if not isinstance(applied, dict):
        raise bad_request("invalid object type: /, Kind=")
    live_md = (live or {}).get("metadata") or {}
    try:
        managed = _decode_managed(live_md.get("managedFields"))
    except _DecodeError as e:
        raise StatusError(500, "", f"failed to decode managed fields: {e}") from None

    expected_kind = _expected_kind(node, api_version)
    if applied.get("apiVersion") != api_version or (
            expected_kind is not None and applied.get("kind") != expected_kind):
        raise bad_request(f"invalid object type: {_gvk_string(applied.get('apiVersion'), applied.get('kind'))}")

    root = _resolve(node)
    zero = _zero(node, top=True)
    ctx = _Ctx(root, api_version, tuple(ignore) if ignore is not None else _default_ignore(node, subresource),
               zero)
    live_obj: dict[str, Any] = _without_managed_fields(live) if live is not None else {}

    # skipNonAppliedManager: an object nobody owned yet gets its current fields owned by
    # "before-first-apply", so applying different values conflicts instead of silently winning.
    if not managed.fields and live is not None:
        try:
            _update_chain(ctx, zero, live_obj, managed, _BEFORE_FIRST_APPLY, subresource, now)
        except _TypedError as e:
            raise StatusError(500, "", f"failed to create manager for existing fields: {e}") from None

    applied_md = applied.get("metadata")
    if isinstance(applied_md, dict) and applied_md.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    try:
        _validate(applied, root, "")
    except _TypedError as e:
        md = applied_md if isinstance(applied_md, dict) else {}
        who = f"{md.get('namespace', '')}/{md.get('name', '')}; " + _gvk_string(api_version, expected_kind or "")
        raise StatusError(500, "", f"failed to create typed patch object ({who}): {e}") from None

    config = copy.deepcopy(applied)
    key = _manager_key(manager or "unknown", "Apply", api_version, subresource)

    def attempt(force_: bool) -> tuple[Any, _Managed]:
        m = managed.copy()
        result = _updater_apply(ctx, live_obj, config, m, key, force_)
        return result, m

    try:
        result, new_managed = attempt(force)
    except _Conflicts as c:
        conflicts = c.conflicts
        if manager == "kubectl":
            allowed = _allowed_from_last_applied(ctx, live_obj if live is not None else None)
            if allowed is not None:
                remaining = [(k, p) for k, p in conflicts if p not in allowed]
                if remaining:
                    raise _conflict_error(remaining) from None
                result, new_managed = attempt(True)
                conflicts = []
        if conflicts:
            raise _conflict_error(conflicts) from None

    _strip(new_managed, key)
    if result is _MISSING:
        out = copy.deepcopy(live_obj)
    else:
        # the merge shares unchanged subtrees with its inputs: copy before touching it
        out = copy.deepcopy(result)
        new_managed.times[key] = now
        _drop_emptied(out, _merge(live_obj, config, root))
        _drop_nulls(out)  # a null in the configuration means "unset" once decoded

    # lastAppliedUpdater: keep an existing client-side-apply annotation in sync (manager "kubectl")
    annotations = (out.get("metadata") or {}).get("annotations")
    if manager == "kubectl" and isinstance(annotations, dict) and annotations.get(LAST_APPLIED_ANNOTATION):
        last = copy.deepcopy(applied)
        last_annotations = (last.get("metadata") or {}).get("annotations")
        if isinstance(last_annotations, dict):
            last_annotations.pop(LAST_APPLIED_ANNOTATION, None)
        annotations[LAST_APPLIED_ANNOTATION] = _go_json(last, sort_keys=True) + "\n"

    _set_managed_fields(out, new_managed)
    return out
