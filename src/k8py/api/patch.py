"""PATCH bodies as kube-apiserver applies them: JSON patch, JSON merge patch, strategic merge patch.

Pure functions over JSON-like values (the parsed request body and the current object as a dict).
Inputs are never mutated; each function returns a new object.

Errors are ``StatusError`` worded and coded as kube-apiserver does:

* a body of the wrong shape is ``400 BadRequest`` (Go's decoding message);
* a JSON patch operation that does not apply (failed ``test``, missing path, unknown op) is
  ``422 Invalid`` with kube's fixed text "the server rejected our request due to an error in our
  request". kube drops the json-patch library's own message; k8py keeps it as the one cause
  (field ``patch``), worded as gopkg.in/evanphx/json-patch.v4 words it (``replace operation does not
  apply: doc is missing path: /spec/x/y: missing value``), so ``kubectl`` prints what failed. The
  operations follow that library's semantics too (``replace`` of an absent object key adds it);
* strategic-merge-patch format errors kube recognises (``$retainKeys``, ``$deleteFromPrimitiveList``,
  ``$setElementOrder``) are ``400``; lists of lists are ``422``. Every other strategic-merge error
  (missing merge key, unknown ``$patch`` value, ...) is a plain Go error in kube, which answers it as a
  ``500`` with an empty reason; k8py answers the same message as ``400 BadRequest``, since the patch,
  not the server, is at fault: ``unknown patch type: bogus in map: map[$patch:bogus]``;
* a patch document (or its result) nested deeper than ``fieldcheck.MAX_DEPTH`` is ``400``.

The result of a patch is what kube would then decode into the typed object: it may still carry
``null`` values and unknown keys (even stray directives inside replaced values), exactly where Go's
strategic merge leaves them; the caller decodes/prunes/validates it like a PUT body.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from k8py.api.errors import StatusError, bad_request, invalid
from k8py.api.fieldcheck import check_depth
from k8py.api.schema import SchemaNode, field_node

__all__ = [
    "MAX_JSON_PATCH_OPERATIONS",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]

MAX_JSON_PATCH_OPERATIONS = 10000

_REJECTED = "the server rejected our request due to an error in our request"


def _unprocessable(why: str = "") -> StatusError:
    # errors.NewGenericServerResponse(422, "", GroupResource{}, "", msg, 0, false): the message is fixed
    # and kube drops the library's text (details present but empty); k8py keeps it as a cause.
    details: dict[str, Any] = {"causes": [{"message": why, "field": "patch"}]} if why else {}
    return StatusError(422, "Invalid", _REJECTED, details=details)


def _go_json_kind(value: Any) -> str:
    """The Go type name json.Unmarshal into interface{} would give ``value`` (for decode messages)."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null"


# --------------------------------------------------------------------------------------------------
# JSON patch (RFC 6902)


def json_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 6902 JSON patch (already parsed from the body) to ``obj``.

    ``null`` is an empty patch. A body that is not a list of objects is 400; more than 10000
    operations is 413; any operation that fails is 422 (kube's generic wording, the library's
    message as the cause).
    """
    if patch is None:
        return copy.deepcopy(obj)
    if not isinstance(patch, list):
        raise bad_request(f"json: cannot unmarshal {_go_json_kind(patch)} into Go value of type jsonpatch.Patch")
    for op in patch:
        if not isinstance(op, dict):
            raise bad_request(
                f"json: cannot unmarshal {_go_json_kind(op)} into Go value of type jsonpatch.Operation")
    if len(patch) > MAX_JSON_PATCH_OPERATIONS:
        raise StatusError(413, "RequestEntityTooLarge",
                          "Request entity too large: The allowed maximum operations in a JSON patch is "
                          f"{MAX_JSON_PATCH_OPERATIONS}, got {len(patch)}")
    check_depth(patch)
    doc = copy.deepcopy(obj)
    for op in patch:
        try:
            _JP_OPS.get(_jp_kind(op), _jp_unknown)(doc, op)
        except _JPError as e:
            raise _unprocessable(str(e)) from None
    check_depth(doc)
    return doc


# ---- gopkg.in/evanphx/json-patch.v4, the library kube-apiserver applies JSON patches with: its
# semantics (an absent object key reads as null, so ``replace`` of one adds it; Go's strconv.Atoi for
# array indices; negative indices count from the end) and its error texts, which pkg/errors wraps as
# "<context>: <cause>".


class _JPError(Exception):
    pass


_MISSING = "missing value"
_INVALID_INDEX = "invalid index referenced"


def _jp_kind(op: dict[str, Any]) -> str:
    kind = op.get("op")
    return kind if isinstance(kind, str) else "unknown"


def _jp_field(op: dict[str, Any], name: str, missing: str) -> str:
    """Operation.Path/From: the string, or the error Go returns ("unknown", err)."""
    v = op.get(name)
    if v is None:
        raise _JPError(f"{missing}: {_MISSING}")
    if not isinstance(v, str):
        raise _JPError(f"json: cannot unmarshal {_go_json_kind(v)} into Go value of type string")
    return v


def _jp_path(op: dict[str, Any], context: str, keep_cause: bool = True) -> str:
    try:
        return _jp_field(op, "path", "operation missing path field")
    except _JPError as e:
        # add, remove and copy wrap ErrMissing itself; replace, move and test wrap the decode error
        raise _JPError(f"{context}: {e}" if keep_cause else f"{context}: {_MISSING}") from None


def _jp_from(op: dict[str, Any], context: str) -> str:
    try:
        return _jp_field(op, "from", "operation, missing from field")
    except _JPError as e:
        raise _JPError(f"{context}: {e}") from None


def _atoi(key: str) -> int:
    """Go's strconv.Atoi (an optional sign, then ASCII digits; 64-bit range)."""
    digits = key[1:] if key[:1] in ("+", "-") else key
    if not digits or not all("0" <= c <= "9" for c in digits):
        raise _JPError(f'strconv.Atoi: parsing "{key}": invalid syntax')
    n = int(key)
    if not -(2**63) <= n < 2**63:
        raise _JPError(f'strconv.Atoi: parsing "{key}": value out of range')
    return n


def _decode_key(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _find(doc: dict[str, Any], path: str) -> tuple[dict[str, Any] | list[Any] | None, str]:
    """findObject: the container of the last path segment, and that (decoded) key."""
    split = path.split("/")
    if len(split) < 2:
        return None, ""
    cur: Any = doc
    for part in split[1:-1]:
        key = _decode_key(part)
        if isinstance(cur, dict):
            nxt = cur.get(key)
        else:
            try:
                idx = _atoi(key)
            except _JPError:
                return None, ""
            if idx >= len(cur) or idx < 0:
                return None, ""
            nxt = cur[idx]
        if not isinstance(nxt, dict | list):
            return None, ""
        cur = nxt
    return cur, _decode_key(split[-1])


def _get(con: dict[str, Any] | list[Any], key: str) -> Any:
    if isinstance(con, dict):
        return con.get(key)  # partialDoc.get: absent reads as nil, no error
    idx = _atoi(key)
    if idx >= len(con) or idx < 0:
        raise _JPError(f"Unable to access invalid index: {idx}: {_INVALID_INDEX}")
    return con[idx]


def _add(con: dict[str, Any] | list[Any], key: str, value: Any) -> None:
    if isinstance(con, dict):
        con[key] = value
        return
    if key == "-":
        con.append(value)
        return
    try:
        idx = _atoi(key)
    except _JPError as e:
        raise _JPError(f"value was not a proper array index: '{key}': {e}") from None
    size = len(con) + 1
    if idx >= size or idx < -size:
        raise _JPError(f"Unable to access invalid index: {idx}: {_INVALID_INDEX}")
    con.insert(idx + size if idx < 0 else idx, value)


def _remove(con: dict[str, Any] | list[Any], key: str) -> None:
    if isinstance(con, dict):
        if key not in con:
            raise _JPError(f"Unable to remove nonexistent key: {key}: {_MISSING}")
        del con[key]
        return
    idx = _atoi(key)
    if idx >= len(con) or idx < -len(con):
        raise _JPError(f"Unable to access invalid index: {idx}: {_INVALID_INDEX}")
    del con[idx]


def _value(op: dict[str, Any]) -> Any:
    return copy.deepcopy(op.get("value"))


def _jp_add(doc: dict[str, Any], op: dict[str, Any]) -> None:
    path = _jp_path(op, "add operation failed to decode path", keep_cause=False)
    con, key = _find(doc, path)
    if con is None:
        raise _JPError(f'add operation does not apply: doc is missing path: "{path}": {_MISSING}')
    try:
        _add(con, key, _value(op))
    except _JPError as e:
        raise _JPError(f"error in add for path: '{path}': {e}") from None


def _jp_remove(doc: dict[str, Any], op: dict[str, Any]) -> None:
    path = _jp_path(op, "remove operation failed to decode path", keep_cause=False)
    con, key = _find(doc, path)
    if con is None:
        raise _JPError(f'remove operation does not apply: doc is missing path: "{path}": {_MISSING}')
    try:
        _remove(con, key)
    except _JPError as e:
        raise _JPError(f"error in remove for path: '{path}': {e}") from None


def _jp_replace(doc: dict[str, Any], op: dict[str, Any]) -> None:
    path = _jp_path(op, "replace operation failed to decode path")
    con, key = _find(doc, path)
    if con is None:
        raise _JPError(f"replace operation does not apply: doc is missing path: {path}: {_MISSING}")
    try:
        _get(con, key)
    except _JPError:
        raise _JPError(f"replace operation does not apply: doc is missing key: {path}: {_MISSING}") from None
    if isinstance(con, dict):
        con[key] = _value(op)
    else:
        con[_atoi(key)] = _value(op)


def _jp_move(doc: dict[str, Any], op: dict[str, Any]) -> None:
    frm = _jp_from(op, "move operation failed to decode from")
    con, key = _find(doc, frm)
    if con is None:
        raise _JPError(f"move operation does not apply: doc is missing from path: {frm}: {_MISSING}")
    try:
        val = _get(con, key)
        _remove(con, key)
    except _JPError as e:
        raise _JPError(f"error in move for path: '{key}': {e}") from None
    path = _jp_path(op, "move operation failed to decode path")
    con, key = _find(doc, path)
    if con is None:
        raise _JPError(f"move operation does not apply: doc is missing destination path: {path}: {_MISSING}")
    try:
        _add(con, key, val)
    except _JPError as e:
        raise _JPError(f"error in move for path: '{path}': {e}") from None


def _json_equal(a: Any, b: Any) -> bool:
    """lazyNode.equal: structural for objects and arrays; scalars by their JSON text (1 != 1.0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _jp_test(doc: dict[str, Any], op: dict[str, Any]) -> None:
    path = _jp_path(op, "test operation failed to decode path")
    con, key = _find(doc, path)
    if con is None:
        raise _JPError(f"test operation does not apply: is missing path: {path}: {_MISSING}")
    try:
        val = _get(con, key)
    except _JPError as e:
        raise _JPError(f"error in test for path: '{path}': {e}") from None
    want = op.get("value")
    if val is None and want is None and "value" in op:
        return
    if val is not None and "value" in op and _json_equal(val, want):
        return
    raise _JPError(f"testing value {path} failed: test failed")


def _jp_copy(doc: dict[str, Any], op: dict[str, Any]) -> None:
    frm = _jp_from(op, "copy operation failed to decode from")
    con, key = _find(doc, frm)
    if con is None:
        raise _JPError(f"copy operation does not apply: doc is missing from path: {frm}: {_MISSING}")
    try:
        val = _get(con, key)
    except _JPError as e:
        raise _JPError(f"error in copy for from: '{frm}': {e}") from None
    path = _jp_path(op, "copy operation failed to decode path", keep_cause=False)
    con, key = _find(doc, path)
    if con is None:
        raise _JPError(f"copy operation does not apply: doc is missing destination path: {path}: {_MISSING}")
    try:
        _add(con, key, copy.deepcopy(val))
    except _JPError as e:
        raise _JPError(f"error while adding value during copy: {e}") from None
    check_depth(doc)  # copies can double the depth of what they copy into


def _jp_unknown(doc: dict[str, Any], op: dict[str, Any]) -> None:
    raise _JPError(f"Unexpected kind: {_jp_kind(op)}")


_JP_OPS = {"add": _jp_add, "remove": _jp_remove, "replace": _jp_replace, "move": _jp_move,
           "test": _jp_test, "copy": _jp_copy}


# --------------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386), as evanphx/json-patch's MergePatch


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def _merge_docs(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            doc.pop(k, None)
            continue
        cur = doc.get(k)
        if cur is None:
            doc[k] = _prune_nulls(copy.deepcopy(v))
        elif isinstance(cur, dict) and isinstance(v, dict):
            _merge_docs(cur, v)
        elif isinstance(cur, dict):
            doc[k] = copy.deepcopy(v)
        else:
            doc[k] = _prune_nulls(copy.deepcopy(v))


def merge_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 7386 merge patch: ``null`` deletes a key, objects merge, everything else
    (lists included) replaces. A ``null`` body is 400 "Invalid JSON Patch" (evanphx's error)."""
    if patch is None:
        raise bad_request("Invalid JSON Patch")
    if not isinstance(patch, dict):
        # evanphx returns the (null-pruned) patch itself, which then fails to decode as an object:
        # kube answers errors.NewInvalid(GroupKind{}, "", [patch: Invalid value: <document>: ...]).
        doc_text = orjson.dumps(_prune_nulls(patch)).decode()
        fe = invalid("patch", doc_text, "the patched document is not a JSON object")
        raise StatusError(422, "Invalid", f' "" is invalid: {fe}', details={"causes": [fe.cause()]})
    check_depth(patch)
    doc = copy.deepcopy(obj)
    _merge_docs(doc, patch)
    check_depth(doc)
    return doc


# --------------------------------------------------------------------------------------------------
# Strategic merge patch (k8s.io/apimachinery/pkg/util/strategicpatch, server side:
# MergeParallelList=true, IgnoreUnmatchedNulls=true)

_DIRECTIVE = "$patch"
_DELETE = "delete"
_REPLACE = "replace"
_MERGE = "merge"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"

# mergepatch's sentinel errors that kube maps to 400 / 422
_ERR_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_ERR_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_ERR_BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
_ERR_NO_LIST_OF_LISTS = "lists of lists are not supported"


class _SMPError(Exception):
    """Internal: a strategicpatch error; ``code`` is what kube's interpretStrategicMergePatchError gives,
    400 for the plain errors kube lets through as 500s (see the module docstring)."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def status_error(self) -> StatusError:
        if self.code == 422:
            return _unprocessable()
        return bad_request(self.message)


def _go_v(value: Any) -> str:
    """Go's ``%v`` of a JSON value decoded into interface{} (maps print with sorted keys)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_v(v) for v in value) + "]"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


def _go_s(value: Any) -> str:
    """Go's ``%s`` of a JSON value decoded with UnmarshalCaseSensitivePreserveInts (ints are int64):
    strings as they are, other scalars as ``%!s(int64=1)``, maps and slices element by element."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_s(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_s(v) for v in value) + "]"
    if value is None:
        return "%!s(<nil>)"
    return f"%!s({_go_type(value)}={_go_v(value)})"


def _go_type(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    return "float64"


def _err_no_merge_key(m: Any, key: str) -> _SMPError:
    return _SMPError(f"map: {_go_v(m)} does not contain declared merge key: {key}")


def _err_bad_arg_type(expected: Any, actual: Any) -> _SMPError:
    return _SMPError(f"expected a {_go_type(expected)}, but received a {_go_type(actual)}")


def _err_bad_patch_type(t: Any, m: Any) -> _SMPError:
    # mergepatch.ErrBadPatchType: fmt.Errorf("unknown patch type: %s in map: %v", t, m)
    return _SMPError(f"unknown patch type: {_go_s(t)} in map: {_go_v(m)}")


def _same(a: Any, b: Any) -> bool:
    """Go interface equality for scalars decoded from JSON: types must match (1 != 1.0, 1 != true)."""
    return type(a) is type(b) and a == b


def _hkey(v: Any) -> Any:
    """A hashable key with Go's interface-equality semantics, for scalars."""
    if isinstance(v, dict | list):
        return ("#", id(v))
    return (type(v).__name__, v)


# ---- schema lookups (the Go struct tags appear in the OpenAPI as x-kubernetes-patch-*)


def _child_node(node: SchemaNode | None, key: str) -> SchemaNode | None:
    """Schema of ``key`` inside object ``node`` (with property-level patch extensions)."""
    if node is None:
        return None
    if key in node.properties:
        return field_node(node, key)
    ap = node.additional_properties
    if ap is not None:
        return ap
    return None


def _patch_meta(node: SchemaNode | None) -> tuple[str, str]:
    """(patch strategy without retainKeys, merge key) of a field's schema."""
    if node is None:
        return "", ""
    strategies = [s for s in node.patch_strategy.split(",") if s]
    if len(strategies) > 2 or (len(strategies) == 2 and "retainKeys" not in strategies):
        raise _SMPError(f"unexpected patch strategy: [{' '.join(strategies)}]")
    strategy = next((s for s in strategies if s != "retainKeys"), "")
    return strategy, node.patch_merge_key or ""


def _items_node(node: SchemaNode | None) -> SchemaNode | None:
    return node.items if node is not None else None


# ---- helpers


def _remove_directives(obj: Any) -> tuple[Any, bool]:
    """Strip directive maps from a value taken wholesale; (value, keep)."""
    if isinstance(obj, dict):
        if _DIRECTIVE in obj:
            return None, False
        for k in list(obj):
            v, keep = _remove_directives(obj[k])
            if keep:
                obj[k] = v
            else:
                del obj[k]
        return obj, True
    if isinstance(obj, list):
        out = []
        for v in obj:
            nv, keep = _remove_directives(v)
            if keep:
                out.append(nv)
        return out, True
    return obj, True


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for k in list(value):
            if value[k] is None:
                del value[k]
            else:
                _discard_nulls(value[k])
    elif isinstance(value, list):
        for v in value:
            _discard_nulls(v)


def _extract_key(s: str, prefix: str) -> str:
    parts = s.split("/", 1)
    if len(parts) <= 1 or parts[0] != prefix:
        if prefix == _DELETE_FROM_PRIMITIVE_LIST:
            raise _SMPError(_ERR_BAD_PRIMITIVE_LIST, 400)
        if prefix == _SET_ELEMENT_ORDER:
            raise _SMPError(_ERR_BAD_SET_ELEMENT_ORDER, 400)
        raise _SMPError(f"fail to find unknown prefix {prefix!r} in {s}")
    return parts[1]


def _elem_kind(*lists: list[Any]) -> str:
    """sliceElementType: the common element kind of all lists ("map", "str", "int", ...)."""
    prev: str | None = None
    for lst in lists:
        for v in lst:
            kind = "map" if isinstance(v, dict) else "slice" if isinstance(v, list) else type(v).__name__
            if prev is None:
                prev = kind
                if kind == "slice":
                    raise _SMPError(_ERR_NO_LIST_OF_LISTS, 422)
            elif prev != kind:
                raise _SMPError("list element types are not identical: "
                                + "[" + " ".join(_go_v(x) for x in lists) + "]")
    if prev is None:
        raise _SMPError("no elements in any of the given slices")
    return prev


def _find_by_key(items: list[Any], key: str, value: Any) -> int:
    for i, v in enumerate(items):
        if not isinstance(v, dict):
            raise _SMPError(f"value for key {i} is not a map")
        if key in v and _same(v[key], value):
            return i
    return -1


def _index(order: list[Any], item: Any, merge_key: str, is_map: bool) -> int:
    if is_map:
        want = item.get(merge_key) if isinstance(item, dict) else None
        for i, v in enumerate(order):
            if isinstance(v, dict) and _same(v.get(merge_key), want):
                return i
        return -1
    for i, v in enumerate(order):
        if _same(v, item):
            return i
    return -1


def _normalize_slice_order(to_sort: list[Any], order: list[Any], merge_key: str, is_map: bool) -> list[Any]:
    to_delete: list[Any] = []
    if is_map:
        for lst in (to_sort, order):
            for item in lst:
                if not isinstance(item, dict):
                    raise _err_bad_arg_type({}, item)
                if merge_key not in item:
                    raise _err_no_merge_key(item, merge_key)
        keep = []
        for v in to_sort:
            if v.get(_DIRECTIVE) == _DELETE:
                to_delete.append(v)
            else:
                keep.append(v)
        to_sort = keep
    n = len(order)
    decorated = []
    for pos, v in enumerate(to_sort):
        i = _index(order, v, merge_key, is_map)
        decorated.append((i if i >= 0 else n, pos, v))
    decorated.sort(key=lambda t: (t[0], t[1]))
    return [v for _, _, v in decorated] + to_delete


def _merge_sorted(left: list[Any], right: list[Any], server_order: list[Any], merge_key: str,
                  is_map: bool) -> list[Any]:
    """Interleave server-only items (left) into patch items (right), keeping both relative orders."""
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, is_map)
            ri = _index(server_order, right[j], merge_key, is_map)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _normalize_element_order(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
                             server_order: list[Any], merge_key: str, is_map: bool) -> list[Any]:
    patch_items = _normalize_slice_order(patch_items, patch_order, merge_key, is_map)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, is_map)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, is_map)


def _partition(merged: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    present: list[Any] = []
    server_only: list[Any] = []
    if not merge_key:
        keys = {_hkey(v) for v in by}
        for v in merged:
            (present if _hkey(v) in keys else server_only).append(v)
        return present, server_only
    for v in merged:
        if not isinstance(v, dict):
            raise _err_bad_arg_type({}, v)
        if merge_key not in v:
            raise _err_no_merge_key(v, merge_key)
        (present if _find_by_key(by, merge_key, v[merge_key]) >= 0 else server_only).append(v)
    return present, server_only


def _dedupe(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for v in items:
        k = _hkey(v)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


# ---- the merge


def _merge_map(original: dict[str, Any] | None, patch: dict[str, Any], node: SchemaNode | None) -> dict[str, Any]:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == _REPLACE:
            del patch[_DIRECTIVE]
            return patch
        if directive == _DELETE:
            return {}
        raise _err_bad_patch_type(directive, patch)
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_set_element_order(original, patch, node)

    for k in list(patch):
        if k not in patch:
            continue
        patch_v = patch[k]
        is_delete_list = False
        if k.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            k = _extract_key(k, _DELETE_FROM_PRIMITIVE_LIST)
            is_delete_list = True

        if patch_v is None:
            original.pop(k, None)
            continue

        if k not in original:
            if not is_delete_list:
                _discard_nulls(patch_v)
                v, keep = _remove_directives(patch_v)
                if keep:
                    original[k] = v
            continue

        orig_v = original[k]
        if type(orig_v) is not type(patch_v):
            # Different Go types: the patch value replaces (never for a deletion list).
            if not is_delete_list:
                _discard_nulls(patch_v)
                v, keep = _remove_directives(patch_v)
                if keep:
                    original[k] = v
                else:
                    del original[k]
            continue
        if not isinstance(orig_v, dict | list):
            original[k] = patch_v
            continue

        child = _child_node(node, k)
        strategy, merge_key = _patch_meta(child)
        if isinstance(orig_v, dict):
            if strategy == _REPLACE:
                original[k] = patch_v
            else:
                original[k] = _merge_map(orig_v, patch_v, child)
        else:
            if strategy == _MERGE or is_delete_list:
                original[k] = _merge_slice(orig_v, patch_v, child, merge_key, is_delete_list)
            else:
                original[k] = patch_v
    return original


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise _SMPError(_ERR_BAD_RETAIN_KEYS, 400)
    keep = {_hkey(v) for v in retain}
    for k, v in patch.items():
        if v is None or k.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if _hkey(k) not in keep:
            raise _SMPError(_ERR_BAD_RETAIN_KEYS, 400)
    for k in list(original):
        if _hkey(k) not in keep:
            del original[k]


def _validate_set_order(patch_list: Any, order: Any, merge_key: str) -> None:
    if not isinstance(order, list) or not isinstance(patch_list, list):
        raise _SMPError(_ERR_BAD_SET_ELEMENT_ORDER, 400)
    if not order or not patch_list:
        return
    if merge_key:
        non_delete = []
        for v in patch_list:
            if not isinstance(v, dict):
                raise _err_bad_arg_type({}, v)
            if v.get(_DIRECTIVE) != _DELETE:
                non_delete.append(v)
    else:
        non_delete = list(patch_list)
    pi = oi = 0
    while pi < len(non_delete) and oi < len(order):
        item = non_delete[pi]
        if isinstance(item, dict) and _DIRECTIVE in item:
            pi += 1
            continue
        if merge_key:
            target = order[oi]
            if not isinstance(item, dict):
                raise _err_bad_arg_type({}, item)
            if not isinstance(target, dict):
                raise _err_bad_arg_type({}, target)
            if merge_key not in item:
                raise _err_no_merge_key(item, merge_key)
            if merge_key not in target:
                raise _err_no_merge_key(target, merge_key)
            equal = _same(item[merge_key], target[merge_key])
        else:
            equal = _same(item, order[oi])
        if equal:
            pi += 1
        oi += 1
    if pi < len(non_delete) and oi >= len(order):
        raise _SMPError(f"the order in patch list:\n{_go_v(patch_list)}\n doesn't match "
                        f"{_SET_ELEMENT_ORDER} list:\n{_go_v(order)}")


def _merge_set_element_order(original: dict[str, Any], patch: dict[str, Any], node: SchemaNode | None) -> None:
    for key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise _err_bad_arg_type([], order)
        okey = _extract_key(key, _SET_ELEMENT_ORDER)
        found_orig = okey in original
        found_patch = okey in patch
        orig_list: list[Any] = []
        patch_list: list[Any] = []
        if found_orig:
            if not isinstance(original[okey], list):
                raise _err_bad_arg_type([], original[okey])
            orig_list = original[okey]
        if found_patch:
            if not isinstance(patch[okey], list):
                raise _err_bad_arg_type([], patch[okey])
            patch_list = patch[okey]
        child = _child_node(node, okey)
        strategy, merge_key = _patch_meta(child)
        _validate_set_order(patch_list, order, merge_key)
        if found_orig and not found_patch:
            merged = orig_list
        elif not found_orig and found_patch:
            merged, _ = _remove_directives(patch_list)
        elif found_orig and found_patch:
            if strategy == _MERGE:
                merged = _merge_slice(orig_list, patch_list, child, merge_key, False)
            else:
                merged = patch_list
        else:
            continue
        present, server_only = _partition(merged, order, merge_key)
        is_map = _elem_kind(orig_list, patch_list) == "map"
        original[okey] = _normalize_element_order(present, server_only, order, orig_list, merge_key, is_map)
        patch.pop(okey, None)


def _merge_slice(original: list[Any], patch: list[Any], node: SchemaNode | None, merge_key: str,
                 is_delete_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    kind = _elem_kind(original, patch)
    if kind != "map":
        if is_delete_list:
            drop = {_hkey(v) for v in patch}
            return [v for v in original if _hkey(v) not in drop]
        merged = _dedupe(original + patch)
        is_map = False
    else:
        if not merge_key:
            name = node.name if node is not None and node.name else "list"
            raise _SMPError(f"cannot merge lists without merge key for {name}")
        original, patch = _merge_special_elements(original, patch, merge_key)
        merged = _merge_plain_elements(list(original), patch, merge_key, _items_node(node))
        is_map = True
    present, server_only = _partition(merged, patch, merge_key if is_map else "")
    return _normalize_element_order(present, server_only, patch, original, merge_key, is_map)


def _merge_special_elements(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    plain = []
    replace = False
    original = list(original)
    for v in patch:
        if not isinstance(v, dict):
            raise _err_bad_arg_type({}, v)
        if _DIRECTIVE not in v:
            plain.append(v)
            continue
        directive = v[_DIRECTIVE]
        if directive == _DELETE:
            if merge_key not in v:
                raise _err_no_merge_key(v, merge_key)
            value = v[merge_key]
            while (i := _find_by_key(original, merge_key, value)) >= 0:
                del original[i]
        elif directive == _REPLACE:
            replace = True
        elif directive == _MERGE:
            raise _SMPError("merging lists cannot yet be specified in the patch")
        else:
            raise _err_bad_patch_type(directive, v)
    if replace:
        return plain, []
    return original, plain


def _merge_plain_elements(original: list[Any], patch: list[Any], merge_key: str,
                          items: SchemaNode | None) -> list[Any]:
    for v in patch:
        if merge_key not in v:
            raise _err_no_merge_key(v, merge_key)
        i = _find_by_key(original, merge_key, v[merge_key])
        if i >= 0:
            original[i] = _merge_map(original[i], v, items)
        else:
            original.append(v)
    return original


def strategic_merge_patch(obj: dict[str, Any], patch: Any, node: SchemaNode | None) -> dict[str, Any]:
    """Apply a strategic merge patch to ``obj`` using ``node`` (the kind's schema) for patch strategies
    and merge keys. Fields without a schema (free-form) merge like a JSON merge patch (maps merge,
    lists replace), still honouring directives.

    ``null`` as the body is an empty patch; any other non-object body is 400 with Go's decode message.
    """
    if patch is None:
        return copy.deepcopy(obj)
    if not isinstance(patch, dict):
        raise bad_request(
            f"json: cannot unmarshal {_go_json_kind(patch)} into Go value of type map[string]interface {{}}")
    check_depth(patch)
    original = copy.deepcopy(obj)
    work = copy.deepcopy(patch)
    try:
        result = _merge_map(original, work, node)
    except _SMPError as e:
        raise e.status_error() from None
    check_depth(result)
    return result
