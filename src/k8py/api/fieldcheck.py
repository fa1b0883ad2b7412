"""Request-body decoding and field checking, as kube-apiserver's decoder does it.

kube-apiserver decodes a create/update body straight into the versioned Go
struct. Three kinds of failure come out of that, and this module reproduces
each with kube's wording:

* **Syntax errors** (``decode_body``): Go's ``encoding/json`` messages
  (``invalid character '}' looking for beginning of object key string``,
  ``unexpected end of JSON input``) or the YAML converter's
  (``error converting YAML to JSON: yaml: line 3: ...``), wrapped as
  ``the object provided is unrecognized (must be of type Deployment): couldn't
  get version/kind; json parse error: ... (<first 30 bytes>)``.
* **Type errors** (``type_errors``): a value the Go field cannot hold, e.g.
  ``json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas
  of type int32``, or a custom decoder's message (quantities, timestamps,
  base64). These fail the request whatever ``fieldValidation`` says.
* **Strict errors** (``unknown_fields`` + duplicates from ``decode_body``):
  ``unknown field "spec.template.spec.containers[0].foo"``, ``duplicate field
  "metadata.name"``; ``fieldValidation=Strict`` fails the request with
  ``strict decoding error: <errors joined by ", ">``, ``Warn`` (the default)
  turns each into a ``Warning`` header, ``Ignore`` drops them.

``check`` runs the last two in one walk over the object against a compiled,
cached form of the kind's schema (one ``_Shape`` per definition, built once
per process), so it costs one pass over the body.

Known approximations: Go type names in type errors come from the OpenAPI
definitions, so named Go string/map types (``v1.PullPolicy``,
``v1.ResourceList``) are reported as ``string`` / ``map[string]resource.Quantity``;
a number literal is echoed as Python prints it (``1000.0`` where Go echoes
the raw ``1e3``).
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml

from k8py.api.errors import StatusError, bad_request, invalid_error, not_supported, unsupported_media_type
from k8py.api.schema import SchemaNode, definitions, ref_name

__all__ = [
    "GO_MAX_DEPTH",
    "MAX_DEPTH",
    "FieldValidation",
    "check",
    "check_depth",
    "decode_body",
    "json_kind",
    "parse_field_validation",
    "type_errors",
    "unknown_field_paths",
    "unknown_fields",
]


class FieldValidation(str, enum.Enum):
    """The ``fieldValidation`` query parameter (``metav1.FieldValidation*``)."""

    IGNORE = "Ignore"
    WARN = "Warn"
    STRICT = "Strict"


_FV_SUPPORTED = ("", "Ignore", "Strict", "Warn")


def parse_field_validation(value: str | None, options_kind: str = "CreateOptions") -> FieldValidation:
    """The directive for a request; unset means ``Warn`` as in kube 1.27+.

    An unknown value fails like kube's options validation:
    ``CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: ...``.
    """
    if not value:
        return FieldValidation.WARN
    try:
        return FieldValidation(value)
    except ValueError:
        raise invalid_error(options_kind, "meta.k8s.io", "",
                            [not_supported("fieldValidation", value, _FV_SUPPORTED)]) from None


# =========================================================================== nesting depth

# Go's encoding/json (scanner.maxNestingDepth) and go-yaml (max_flow_level, max_indents) refuse input
# nested deeper than this; kube-apiserver reports their errors as 400s.
GO_MAX_DEPTH = 10000
# k8py's own bound, far below Go's: every walk over an object (field checks, patches, managedFields)
# recurses once per level, and orjson encodes at most 254 levels (a list response or a watch event
# adds a few around each object). Real objects stay under ~40 levels; big CRD schemas under ~120.
MAX_DEPTH = 200


class _TooDeep(Exception):
    """A body nested deeper than MAX_DEPTH; ``go`` is Go's own error when it is deeper than Go allows."""

    def __init__(self, depth: int, go: str | None) -> None:
        super().__init__(go or f"nested {depth} levels deep")
        self.depth = depth
        self.go = go


def _too_deep_message(depth: int | None) -> str:
    deep = f"{depth} levels" if depth is not None else f"more than {MAX_DEPTH} levels"
    return (f"the request body is nested {deep} deep; k8py accepts at most {MAX_DEPTH} levels of "
            "objects and arrays")


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse (400 BadRequest) a decoded value nested deeper than ``limit`` objects/arrays.

    Iterative, so it is safe on any input; callers run it before a recursive walk over values
    that did not come through ``decode_body`` (PATCH documents, their results).
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if type(v) is dict:
            children: Any = v.values()
        elif type(v) is list:
            children = v
        else:
            continue
        if d > limit:
            raise bad_request(_too_deep_message(None))
        for c in children:
            if type(c) is dict or type(c) is list:
                stack.append((c, d + 1))


_JSON_DEPTH_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def _json_depth(raw: bytes) -> None:
    """Raise _TooDeep if the JSON text nests deeper than MAX_DEPTH (strings skipped, no recursion).

    Go's scanner stops at the first bracket past GO_MAX_DEPTH with ``invalid character '[' exceeded
    max depth``; that is the error when the text goes that deep, else k8py's own.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    depth = deepest = 0
    for m in _JSON_DEPTH_TOKENS.finditer(raw):
        c = raw[m.start()]
        if c == 0x22:  # a string
            continue
        if c == 0x5B or c == 0x7B:  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if depth > GO_MAX_DEPTH:
                    raise _TooDeep(depth, f"invalid character {_go_quote_char(chr(c))} exceeded max depth")
        else:
            depth -= 1
    if deepest > MAX_DEPTH:
        raise _TooDeep(deepest, None)


# =========================================================================== decoding

_JSON_TYPES = frozenset({
    "application/json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
})
_YAML_TYPES = frozenset({"application/yaml", "application/apply-patch+yaml", "application/yml", "text/yaml",
                         "application/x-yaml"})
_ANY_TOP = frozenset({"application/json-patch+json"})  # bodies that are not objects

_FIND_KIND_TYPE = ('struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
                   'Kind string "json:\\"kind,omitempty\\"" }')


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower() or "application/json"


def _summarize(data: bytes, max_len: int = 30) -> str:
    """apimachinery's summarizeData: raw text for JSON objects, hex otherwise."""
    if not data:
        return "<empty>"
    if data[:1] == b"{":
        if len(data) > max_len:
            return data[:max_len].decode("utf-8", "replace") + " ..."
        return data.decode("utf-8", "replace")
    if len(data) > max_len:
        return data[:max_len].hex() + " ..."
    return data.hex()


def _unrecognized(kind: str | None, raw: bytes, err: str) -> StatusError:
    if kind:
        return bad_request(f"the object provided is unrecognized (must be of type {kind}): {err} ({_summarize(raw)})")
    return bad_request(err)


def decode_body(raw: bytes, content_type: str, strict: bool, *, kind: str | None = None
                ) -> tuple[Any, list[str]]:
    """Parse a request body; return ``(object, duplicate-field messages)``.

    ``content_type`` is the request's Content-Type (empty means JSON). JSON
    bodies are parsed as Go does (no NaN, no BOM); YAML bodies as sigs.k8s.io/yaml
    converts them (timestamps stay strings, keys become strings, integral floats
    become integers). With ``strict``, repeated keys are reported as kube words
    them: ``duplicate field "metadata.name"`` for JSON, and for YAML the
    converter's ``error converting YAML to JSON: yaml: unmarshal errors:\\n  line
    7: key "replicas" already set in map``. Without ``strict`` the last value wins
    silently.

    Malformed input raises ``StatusError`` 400 BadRequest. With ``kind`` (the
    endpoint's kind) the message is kube's create/update wording, ``the object
    provided is unrecognized (must be of type <kind>): couldn't get version/kind;
    json parse error: <Go error> (<summary>)``; without it, just the parser's
    message (patch handlers wrap it their own way). A body that is not an object
    (except for JSON patches) is refused the same way; ``null`` and an empty YAML
    document decode to ``{}``. More than one YAML document is refused.
    """
    mt = _media_type(content_type)
    dups: list[str] = []
    if mt in _JSON_TYPES:
        try:
            obj, dups = _decode_json(raw, strict)
        except _TooDeep as e:
            if e.go is None:
                raise bad_request(_too_deep_message(e.depth)) from None
            msg = e.go if mt in _ANY_TOP else f"couldn't get version/kind; json parse error: {e.go}"
            raise _unrecognized(kind, raw, msg) from None
        except _GoJSONError as e:
            msg = str(e) if mt in _ANY_TOP else f"couldn't get version/kind; json parse error: {e}"
            raise _unrecognized(kind, raw, msg) from None
    elif mt in _YAML_TYPES:
        obj, dups = _decode_yaml(raw, strict, kind)
    else:
        raise unsupported_media_type(content_type)
    if mt in _ANY_TOP:
        return obj, dups
    if obj is None:
        return {}, dups
    if not isinstance(obj, dict):
        what = json_kind(obj)
        raise _unrecognized(kind, raw, f"couldn't get version/kind; json parse error: json: cannot unmarshal "
                                       f"{what} into Go value of type {_FIND_KIND_TYPE}")
    return obj, dups


def json_kind(v: Any) -> str:
    """What Go's encoding/json calls a JSON value in its errors (``cannot unmarshal string ...``)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, str):
        return "string"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, list):
        return "array"
    return "object"


# --------------------------------------------------------------------------- JSON


class _GoJSONError(Exception):
    """A JSON syntax error, worded as Go's encoding/json words it."""


class _BadConstant(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _reject_constant(name: str) -> Any:
    raise _BadConstant(name)


def _go_quote_char(ch: str) -> str:
    """Go's quoteChar for the first byte of ``ch``."""
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    b = ch.encode("utf-8", "surrogatepass")[0]
    specials = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 92: "\\\\"}
    if b in specials:
        return f"'{specials[b]}'"
    if b < 0x20 or b >= 0x7F:
        return f"'\\x{b:02x}'"
    return f"'{chr(b)}'"


def _container_at(text: str, pos: int) -> str:
    """'{' or '[': the innermost open container at ``pos`` (strings skipped)."""
    stack: list[str] = []
    in_str = esc = False
    for ch in text[:pos]:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _go_syntax_message(text: str, e: json.JSONDecodeError) -> str:
    msg, pos = e.msg, e.pos
    eof = "unexpected end of JSON input"
    if msg.startswith("Unterminated string"):
        return eof
    if pos >= len(text):
        return eof
    c = text[pos]
    if msg == "Expecting value":
        if c in "tfn":
            for lit in ("true", "false", "null"):
                if lit[0] == c:
                    for i, want in enumerate(lit):
                        if pos + i >= len(text):
                            return eof
                        if text[pos + i] != want:
                            return (f"invalid character {_go_quote_char(text[pos + i])} in literal {lit} "
                                    f"(expecting {_go_quote_char(want)})")
        if c == "-":
            if pos + 1 >= len(text):
                return eof
            return f"invalid character {_go_quote_char(text[pos + 1])} in numeric literal"
        return f"invalid character {_go_quote_char(c)} looking for beginning of value"
    if msg.startswith("Expecting property name"):
        return f"invalid character {_go_quote_char(c)} looking for beginning of object key string"
    if msg.startswith("Expecting ':'"):
        return f"invalid character {_go_quote_char(c)} after object key"
    if msg.startswith("Expecting ','"):
        where = "object key:value pair" if _container_at(text, pos) == "{" else "array element"
        return f"invalid character {_go_quote_char(c)} after {where}"
    if msg.startswith("Extra data"):
        return f"invalid character {_go_quote_char(c)} after top-level value"
    if msg.startswith("Invalid control character"):
        return f"invalid character {_go_quote_char(c)} in string literal"
    if msg.startswith("Invalid \\escape"):
        if pos + 1 >= len(text):
            return eof
        return f"invalid character {_go_quote_char(text[pos + 1])} in string escape code"
    if msg.startswith("Invalid \\u"):
        for i in range(pos + 1, min(pos + 5, len(text))):
            if text[i] not in "0123456789abcdefABCDEF":
                return f"invalid character {_go_quote_char(text[i])} in \\u hexadecimal character escape"
        return eof
    return f"invalid character {_go_quote_char(c)} looking for beginning of value"


def _decode_json(raw: bytes, strict: bool) -> tuple[Any, list[str]]:
    if not strict:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # re-parse below for Go's wording
        else:
            _json_depth(raw)
            return obj, []
    # Before the stdlib parser, which recurses per level. (A text both too deep and malformed earlier
    # on is reported as too deep; Go would name the earlier syntax error.)
    _json_depth(raw)
    text = raw.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        raise _GoJSONError("invalid character '\\xef' looking for beginning of value")
    dup_keys: dict[int, list[str]] = {}

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(pairs)
        if len(d) != len(pairs):
            seen: set[str] = set()
            repeated: list[str] = []
            for k, _ in pairs:
                if k in seen:
                    repeated.append(k)
                seen.add(k)
            # Every dict built here stays alive in the result tree, so its id is a stable key.
            dup_keys[id(d)] = repeated
        return d

    try:
        obj = json.loads(text, object_pairs_hook=pairs_hook if strict else None, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise _GoJSONError(_go_syntax_message(text, e)) from None
    except _BadConstant as e:
        where = "in numeric literal" if e.name.startswith("-") else "looking for beginning of value"
        ch = e.name.lstrip("-")[0]
        raise _GoJSONError(f"invalid character {_go_quote_char(ch)} {where}") from None
    if not dup_keys:
        return obj, []
    out: list[str] = []
    _collect_dups(obj, "", dup_keys, out)
    return obj, out


def _collect_dups(v: Any, path: str, dup_keys: dict[int, list[str]], out: list[str]) -> None:
    if isinstance(v, dict):
        rep = dup_keys.get(id(v))
        for k, x in v.items():
            p = f"{path}.{k}" if path else k
            if rep and k in rep:
                out.extend(f'duplicate field "{p}"' for r in rep if r == k)
            _collect_dups(x, p, dup_keys, out)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _collect_dups(x, f"{path}[{i}]", dup_keys, out)


# --------------------------------------------------------------------------- YAML


class _KubeYAMLLoader(yaml.SafeLoader):
    """SafeLoader shaped like sigs.k8s.io/yaml's YAML -> JSON conversion."""

    strict_dups: list[str]
    check_dups: bool
    depth: int
    anchors_of: dict[int, str]  # id(collection node) -> its anchor, for go-yaml's alias messages

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # Composing recurses per level: count collections and stop before Python's stack does.
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        anchor = self.peek_event().anchor
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                self._drain_too_deep()
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if anchor is not None:
            self.anchors_of[id(node)] = anchor
        return node

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # PyYAML's scanner is quadratic in the flow level (it rescans every level's possible simple
        # key per token), so deep flow nesting is refused here, before the composer ever sees it.
        if self.flow_level >= MAX_DEPTH:
            self._flow_too_deep()
        super().fetch_flow_collection_start(token_class)  # type: ignore[misc]

    def _flow_too_deep(self) -> None:
        """Measure the rest of the flow nesting from the raw text (quoted scalars skipped), without
        tokenizing it, and raise _TooDeep: go-yaml's error past GO_MAX_DEPTH, else k8py's."""
        base = len(self.indents) + self.flow_level  # enclosing block collections + open flow ones
        depth = deepest = base
        rest = self.buffer[self.pointer:]
        for m in _YAML_FLOW_TOKENS.finditer(rest):
            c = m.group()[0]
            if c in "[{":
                depth += 1
                if depth > deepest:
                    deepest = depth
                    if depth > GO_MAX_DEPTH:
                        line = self.line + rest.count("\n", 0, m.start()) + 1
                        raise _TooDeep(depth, f"line {line}: exceeded max depth of {GO_MAX_DEPTH}")
            elif c in "]}":
                depth -= 1
                if depth <= base - self.flow_level:
                    break  # the outermost flow collection closed
        raise _TooDeep(deepest, None)

    def _drain_too_deep(self) -> None:
        """Past MAX_DEPTH: read on (events only, no recursion) to learn whether go-yaml, whose limit is
        GO_MAX_DEPTH, would refuse it too; raise _TooDeep either way."""
        depth = deepest = self.depth - 1  # the collection about to start is counted by its event below
        while not self.check_event(yaml.DocumentEndEvent, yaml.StreamEndEvent):
            ev = self.get_event()
            if isinstance(ev, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                depth += 1
                deepest = max(deepest, depth)
                if depth > GO_MAX_DEPTH:
                    line = ev.start_mark.line + 1 if ev.start_mark is not None else 0
                    raise _TooDeep(depth, f"line {line}: exceeded max depth of {GO_MAX_DEPTH}")
            elif isinstance(ev, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                depth -= 1
        raise _TooDeep(deepest, None)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _json_key(self.construct_object(key_node, deep=True))
            if self.check_dups and key in out:
                self.strict_dups.append(f'line {key_node.start_mark.line + 1}: key "{key}" already set in map')
            out[key] = self.construct_object(value_node, deep=deep)
        return out

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        v = super().construct_yaml_float(node)
        if math.isnan(v) or math.isinf(v):
            raise yaml.constructor.ConstructorError(None, None, f"json: unsupported value: {v}", node.start_mark)
        # JSON re-encoding writes integral floats without a fraction (1.0 -> 1).
        if v.is_integer() and abs(v) < 1e21:
            return int(v)
        return v


def _json_key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bool):
        return "true" if k else "false"
    if k is None:
        return "null"
    return str(k)


_YAML_FLOW_TOKENS = re.compile(r"""'(?:[^']|'')*'?|"(?:[^"\\]|\\.)*"?|[\[\]{}]""", re.DOTALL)


class _AliasError(Exception):
    """go-yaml's refusal of an alias: a cycle, or a document that is mostly alias expansion."""


def _alias_ratio(decoded: int) -> float:
    """go-yaml v2's allowedAliasRatio: 99% of small documents may come from aliases, 10% of huge ones."""
    if decoded <= 400_000:
        return 0.99
    if decoded >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * ((decoded - 400_000) / 3_600_000)


def _check_aliases(root: yaml.Node, anchors_of: dict[int, str]) -> None:
    """What go-yaml checks once aliases are in play, on the composed node graph (shared nodes, so
    nothing is expanded here): a node inside itself (``anchor 'x' value contains itself``), nesting
    through aliases past MAX_DEPTH, and "billion laughs" expansion (``document contains excessive
    aliasing``). Sizes and depths are memoized per node, so this is linear in the distinct nodes."""
    size: dict[int, int] = {}  # id(node) -> nodes in its expansion
    depth: dict[int, int] = {}  # id(node) -> collection levels in its expansion
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            on_path.discard(nid)
            kids = _node_children(node)
            size[nid] = 1 + sum(size[id(k)] for k in kids)
            depth[nid] = 1 + max((depth[id(k)] for k in kids), default=0)
            if depth[nid] > MAX_DEPTH:
                raise _TooDeep(depth[nid], None)
            continue
        if nid in size:
            continue
        if nid in on_path:
            raise _AliasError(f"anchor '{anchors_of.get(nid, '')}' value contains itself")
        if not isinstance(node, yaml.CollectionNode):
            size[nid] = 1
            depth[nid] = 0
            continue
        on_path.add(nid)
        stack.append((node, True))
        for k in _node_children(node):
            if id(k) in on_path:
                raise _AliasError(f"anchor '{anchors_of.get(id(k), '')}' value contains itself")
            stack.append((k, False))
    decoded = size[id(root)]
    distinct = len(size)
    aliased = decoded - distinct
    if aliased > 100 and decoded > 1000 and aliased / decoded > _alias_ratio(decoded):
        raise _AliasError("document contains excessive aliasing")


def _node_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


# No timestamp resolution: sigs.k8s.io/yaml leaves dates as strings.
_KubeYAMLLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_KubeYAMLLoader.add_constructor("tag:yaml.org,2002:float", _KubeYAMLLoader.construct_yaml_float)

# PyYAML problem texts -> libyaml's (which go-yaml reports).
_YAML_PROBLEMS = {
    "mapping values are not allowed here": "mapping values are not allowed in this context",
    "found character '\\t' that cannot start any token": "found character that cannot start any token",
}


def _decode_yaml(raw: bytes, strict: bool, kind: str | None) -> tuple[Any, list[str]]:
    loader = _KubeYAMLLoader(raw.decode("utf-8", "replace"))
    loader.strict_dups = []
    loader.check_dups = strict
    loader.depth = 0
    loader.anchors_of = {}
    docs: list[Any] = []
    try:
        while loader.check_data():
            node = loader.get_node()
            if loader.anchors_of and node is not None:
                _check_aliases(node, loader.anchors_of)
            docs.append(loader.construct_document(node))
    except _TooDeep as e:
        if e.go is None:
            raise bad_request(_too_deep_message(e.depth)) from None
        raise _unrecognized(kind, raw, f"error converting YAML to JSON: yaml: {e.go}") from None
    except _AliasError as e:
        raise _unrecognized(kind, raw, f"error converting YAML to JSON: yaml: {e}") from None
    except yaml.MarkedYAMLError as e:
        problem = e.problem or e.context or "invalid YAML"
        problem = _YAML_PROBLEMS.get(problem, problem)
        line = (e.problem_mark.line + 1) if e.problem_mark is not None else 0
        raise _unrecognized(kind, raw, f"error converting YAML to JSON: yaml: line {line}: {problem}") from None
    except yaml.YAMLError as e:
        raise _unrecognized(kind, raw, f"error converting YAML to JSON: yaml: {e}") from None
    finally:
        loader.dispose()
    docs = [d for d in docs if d is not None] or [None]
    if len(docs) > 1:
        raise _unrecognized(kind, raw, "the request body holds more than one YAML document; "
                                       "send one object per request")
    dups: list[str] = []
    if loader.strict_dups:
        dups.append("error converting YAML to JSON: yaml: unmarshal errors:\n  " + "\n  ".join(loader.strict_dups))
    return docs[0], dups


# =========================================================================== schema shapes

_OBJ, _MAP, _ARR, _STR, _INT, _NUM, _BOOL, _INTSTR, _QTY, _ANY, _BYTES, _TIME = range(12)

_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1), "int": (-(2**63), 2**63 - 1)}


@dataclass(slots=True, eq=False)
class _Shape:
    """What Go's decoder expects at one place in an object."""

    tag: int
    go: str  # the Go type as reflect prints it: int32, []v1.Container, v1.DeploymentSpec
    struct: str = ""  # Go struct name (for _OBJ), used as error context of its fields
    props: dict[str, _Shape] = field(default_factory=dict)
    elem: _Shape | None = None
    time_layout: str = ""


_ANY_SHAPE = _Shape(_ANY, "interface {}")
_SPECIAL: dict[str, _Shape] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": _Shape(_INTSTR, "intstr.IntOrString"),
    "io.k8s.apimachinery.pkg.api.resource.Quantity": _Shape(_QTY, "resource.Quantity"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": _Shape(_TIME, "v1.Time", time_layout="2006-01-02T15:04:05Z07:00"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": _Shape(
        _TIME, "v1.MicroTime", time_layout="2006-01-02T15:04:05.000000Z07:00"),
    "io.k8s.apimachinery.pkg.runtime.RawExtension": _Shape(_ANY, "runtime.RawExtension"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": _Shape(_ANY, "v1.FieldsV1"),
}

# Definition name -> compiled shape; definitions are static, so this lives for the process.
_NAMED: dict[str, _Shape] = {}
_BY_RAW: dict[int, tuple[dict[str, Any], _Shape]] = {}


def _go_name(defname: str) -> tuple[str, str]:
    """``io.k8s.api.apps.v1.DeploymentSpec`` -> (``v1.DeploymentSpec``, ``DeploymentSpec``)."""
    parts = defname.split(".")
    if len(parts) >= 2:
        return f"{parts[-2]}.{parts[-1]}", parts[-1]
    return defname, defname


def _ref_of(schema: dict[str, Any]) -> str | None:
    r = schema.get("$ref")
    if isinstance(r, str):
        return ref_name(r)
    all_of = schema.get("allOf")
    if all_of and len(all_of) == 1 and isinstance(all_of[0], dict) and "$ref" in all_of[0]:
        return ref_name(all_of[0]["$ref"])
    return None


def _named(name: str) -> _Shape:
    sh = _NAMED.get(name)
    if sh is not None:
        return sh
    if name in _SPECIAL:
        sh = _SPECIAL[name]
        _NAMED[name] = sh
        return sh
    raw = definitions().get(name)
    if raw is None:
        _NAMED[name] = _ANY_SHAPE
        return _ANY_SHAPE
    go, struct = _go_name(name)
    return _compile(raw, name, go, struct)


def _first_type(schema: dict[str, Any]) -> str:
    t = schema.get("type")
    if isinstance(t, str):
        return t
    if isinstance(t, list):
        ts = [x for x in t if x != "null"]
        return ts[0] if len(ts) == 1 else ""
    return ""


def _compile(schema: dict[str, Any], name: str = "", go: str = "", struct: str = "") -> _Shape:
    ref = _ref_of(schema)
    if ref is not None:
        return _named(ref)
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        sh = _Shape(_ANY, go or "interface {}")
        if name:
            _NAMED[name] = sh
        return sh
    t = _first_type(schema)
    if t == "object":
        props = schema.get("properties")
        ap = schema.get("additionalProperties")
        if props:
            sh = _Shape(_OBJ, go or "struct", struct)
            if name:
                _NAMED[name] = sh  # before the fields: definitions can be recursive
            for pname, p in props.items():
                sh.props[pname] = _compile(p)
            return sh
        if isinstance(ap, dict):
            elem = _compile(ap)
            sh = _Shape(_MAP, go or f"map[string]{elem.go}", elem=elem)
        else:
            sh = _Shape(_ANY, go or "map[string]interface {}")
    elif t == "array":
        items = schema.get("items")
        elem = _compile(items) if isinstance(items, dict) else _ANY_SHAPE
        sh = _Shape(_ARR, go or f"[]{elem.go}", elem=elem)
    elif t == "string":
        sh = _Shape(_BYTES, "[]uint8") if schema.get("format") == "byte" else _Shape(_STR, go or "string")
    elif t == "integer":
        sh = _Shape(_INT, {"int32": "int32", "int64": "int64"}.get(schema.get("format", ""), "int"))
    elif t == "number":
        sh = _Shape(_NUM, "float32" if schema.get("format") == "float" else "float64")
    elif t == "boolean":
        sh = _Shape(_BOOL, "bool")
    else:
        sh = _Shape(_ANY, go or "interface {}")
    if name:
        _NAMED[name] = sh
    return sh


def _shape_of(node: SchemaNode) -> _Shape:
    if node.name:
        return _named(node.name)
    hit = _BY_RAW.get(id(node.raw))
    if hit is not None and hit[0] is node.raw:
        return hit[1]
    sh = _compile(node.raw)
    _BY_RAW[id(node.raw)] = (node.raw, sh)  # keep raw alive so its id stays unique
    return sh


# =========================================================================== checking

_QTY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
QTY_FORMAT_ERR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
QTY_NUMERIC_ERR = "unable to parse numeric part of quantity"
QTY_SUFFIX_ERR = "unable to parse quantity's suffix"
_QTY_SUFFIXES = frozenset({"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"})
_QTY_EXP = re.compile(r"^[eE][-+]?[0-9]+$")
_NUM_PART = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$")


def quantity_error(s: str) -> str | None:
    """Why ``resource.ParseQuantity`` refuses ``s``, or None."""
    s = s.strip()
    if not s:
        return QTY_FORMAT_ERR
    m = _QTY_RE.match(s)
    if m is None:
        return QTY_FORMAT_ERR
    num, suffix = m.group(1), m.group(2)
    if not _NUM_PART.match(num):
        return QTY_FORMAT_ERR if num.count(".") > 1 else QTY_NUMERIC_ERR
    if suffix not in _QTY_SUFFIXES and not _QTY_EXP.match(suffix):
        return QTY_SUFFIX_ERR
    return None


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _time_error(s: str, layout: str) -> str | None:
    if _RFC3339.match(s):
        return None
    return f'parsing time "{s}" as "{layout}": cannot parse "{s}" as "2006"'


_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_NL = frozenset(b"\r\n")


def base64_error(s: str) -> str | None:
    """Why Go's ``base64.StdEncoding.DecodeString`` refuses ``s``, or None.

    A port of Go's ``decodeQuantum`` (encoding/base64): 4-character quanta, ``=``
    padding only as the last one or two characters of the final quantum (``eA==``,
    ``eHk=``), ``\r`` and ``\n`` skipped anywhere, non-canonical trailing bits
    accepted (StdEncoding is not strict). The error is Go's ``illegal base64 data at
    input byte N``, N a byte offset in the UTF-8 text, computed as Go computes it.
    """
    src = s.encode("utf-8", "surrogatepass")
    n = len(src)
    si = 0
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                # a partial quantum at the end (StdEncoding pads, so any is an error)
                return _b64_err(si - j)
            c = src[si]
            si += 1
            if c in _B64:
                j += 1
                continue
            if c in _NL:
                continue
            if c != 0x3D:  # '='
                return _b64_err(si - 1)
            # padding: it ends the input
            if j < 2:
                return _b64_err(si - 1)
            if j == 2:
                # "==" is expected; the first '=' is consumed
                while si < n and src[si] in _NL:
                    si += 1
                if si == n:
                    return _b64_err(n)  # not enough padding
                if src[si] != 0x3D:
                    return _b64_err(si - 1)  # incorrect padding
                si += 1
            while si < n and src[si] in _NL:
                si += 1
            if si < n:
                return _b64_err(si)  # trailing garbage
            return None
    return None


def _b64_err(offset: int) -> str:
    return f"illegal base64 data at input byte {offset}"


def _type_msg(value: str, go: str, struct: str, fieldpath: str) -> str:
    if struct or fieldpath:
        return f"json: cannot unmarshal {value} into Go struct field {struct}.{fieldpath} of type {go}"
    return f"json: cannot unmarshal {value} into Go value of type {go}"


def _number_literal(v: float) -> str:
    return repr(v)


class _Result:
    __slots__ = ("fatal", "types", "unknown", "want_unknown")

    def __init__(self, want_unknown: bool) -> None:
        self.unknown: list[str] = []
        self.types: list[str] = []  # saved type errors, in document order (Go reports the first)
        self.fatal: str | None = None  # an error that stops Go's decoder (custom UnmarshalJSON)
        self.want_unknown = want_unknown


def _scalar(v: Any, sh: _Shape, struct: str, fp: str, res: _Result) -> None:
    """Check a non-null value against a scalar or custom-decoded shape."""
    tag = sh.tag
    tv = type(v)
    if tag == _STR:
        if tv is not str:
            res.types.append(_type_msg(json_kind(v), sh.go, struct, fp))
    elif tag == _INT:
        if tv is int:
            lo, hi = _INT_RANGE[sh.go]
            if not lo <= v <= hi:
                res.types.append(_type_msg(f"number {v}", sh.go, struct, fp))
        elif tv is float:
            res.types.append(_type_msg(f"number {_number_literal(v)}", sh.go, struct, fp))
        else:
            res.types.append(_type_msg(json_kind(v), sh.go, struct, fp))
    elif tag == _BOOL:
        if tv is not bool:
            res.types.append(_type_msg(json_kind(v), sh.go, struct, fp))
    elif tag == _NUM:
        if tv is not float and tv is not int:
            res.types.append(_type_msg(json_kind(v), sh.go, struct, fp))
    elif tag == _INTSTR:
        # IntOrString.UnmarshalJSON: a string, or else json.Unmarshal into int32
        if tv is str:
            return
        if tv is int:
            if not -(2**31) <= v <= 2**31 - 1:
                res.fatal = _type_msg(f"number {v}", "int32", struct, fp)
        elif tv is float:
            res.fatal = _type_msg(f"number {_number_literal(v)}", "int32", struct, fp)
        else:
            res.fatal = _type_msg(json_kind(v), "int32", struct, fp)
    elif tag == _QTY:
        # Quantity.UnmarshalJSON parses the raw text (quotes stripped) whatever its JSON type
        if tv is str:
            err = quantity_error(v)
        elif tv is int or tv is float:
            err = quantity_error(repr(v))
        else:
            err = QTY_FORMAT_ERR
        if err:
            res.fatal = err
    elif tag == _TIME:
        # Time.UnmarshalJSON: json.Unmarshal into a string, then time.Parse
        if tv is not str:
            res.fatal = _type_msg(json_kind(v), "string", struct, fp)
        else:
            err = _time_error(v, sh.time_layout)
            if err:
                res.fatal = err
    elif tag == _BYTES:
        if tv is str:
            err = base64_error(v)
            if err:
                res.types.append(err)
        elif tv is list:
            for x in v:
                if type(x) is not int or not 0 <= x <= 255:
                    res.types.append(_type_msg(json_kind(x) if type(x) is not int else f"number {x}",
                                               "uint8", struct, fp))
                    break
        else:
            res.types.append(_type_msg(json_kind(v), sh.go, struct, fp))


def _walk(v: Any, sh: _Shape, path: str, struct: str, fp: str, res: _Result, depth: int = 1) -> None:
    """One pass: unknown fields (strict path ``a.b[0].c``) and Go type errors (context struct + field path).

    Recurses once per typed level; ``depth`` bounds that (free-form values are not entered).
    """
    if v is None:
        return  # null decodes into anything as "unset"
    if depth > MAX_DEPTH:
        raise bad_request(_too_deep_message(None))
    tag = sh.tag
    if tag == _OBJ:
        if type(v) is not dict:
            res.types.append(_type_msg(json_kind(v), sh.go, struct, fp))
            return
        props = sh.props
        own = sh.struct
        for k, x in v.items():
            sub = props.get(k)
            if sub is None:
                if res.want_unknown:
                    res.unknown.append(f"{path}.{k}" if path else k)
                continue
            if x is None:
                continue
            st = sub.tag
            # fast paths for the common scalar leaves
            if st == _STR:
                if type(x) is str:
                    continue
            elif st == _ANY:
                continue
            _walk(x, sub, f"{path}.{k}" if path else k, own, f"{fp}.{k}" if fp else k, res, depth + 1)
            if res.fatal is not None:
                return
    elif tag == _ARR:
        if type(v) is not list:
            res.types.append(_type_msg(json_kind(v), sh.go, struct, fp))
            return
        elem = sh.elem or _ANY_SHAPE
        if elem.tag == _ANY:
            return
        for i, x in enumerate(v):
            _walk(x, elem, f"{path}[{i}]", struct, fp, res, depth + 1)
            if res.fatal is not None:
                return
    elif tag == _MAP:
        if type(v) is not dict:
            res.types.append(_type_msg(json_kind(v), sh.go, struct, fp))
            return
        elem = sh.elem or _ANY_SHAPE
        et = elem.tag
        if et == _ANY:
            return
        for k, x in v.items():
            if et == _STR and type(x) is str:
                continue
            _walk(x, elem, f"{path}.{k}" if path else k, struct, fp, res, depth + 1)
            if res.fatal is not None:
                return
    elif tag != _ANY:
        _scalar(v, sh, struct, fp, res)


def _run(obj: Any, node: SchemaNode, want_unknown: bool) -> _Result:
    res = _Result(want_unknown)
    _walk(obj, _shape_of(node), "", "", "", res)
    return res


def unknown_field_paths(obj: Any, node: SchemaNode) -> list[str]:
    """Paths (``spec.template.spec.containers[0].foo``) of fields the schema does not declare.

    Maps (``additionalProperties``) take any key; free-form places (RawExtension,
    FieldsV1, preserve-unknown-fields) take anything below them.
    """
    return _run(obj, node, True).unknown


def unknown_fields(obj: Any, node: SchemaNode) -> list[str]:
    """kube's strict-decoding messages for unknown fields: ``unknown field "spec.foo"``."""
    return [f'unknown field "{p}"' for p in unknown_field_paths(obj, node)]


def type_errors(obj: Any, node: SchemaNode) -> list[str]:
    """Values Go's decoder would refuse, worded as it does; the first is the one kube reports.

    ``json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas
    of type int32``; custom decoders speak for themselves (quantities, timestamps,
    base64). IntOrString takes a string or an int32, Quantity a string or a number.
    """
    res = _run(obj, node, False)
    return ([res.fatal] if res.fatal is not None else []) + res.types


def _wrap(msg: str, kind: str | None, version: str | None) -> str:
    if kind:
        return f'{kind} in version "{version or ""}" cannot be handled as a {kind}: {msg}'
    return msg


def check(obj: Any, node: SchemaNode, mode: FieldValidation | str, duplicates: list[str] | tuple[str, ...] = (),
          *, kind: str | None = None, version: str | None = None) -> list[str]:
    """Field validation of a decoded create/update body; returns the warnings to send.

    ``duplicates`` are ``decode_body``'s messages. Type errors fail the request
    in every mode (400 BadRequest, the decoder's message). Then, by ``mode``:
    ``Strict`` fails with ``strict decoding error: unknown field "spec.foo",
    duplicate field "x"`` if there is anything to say, ``Warn`` returns each
    message for a ``Warning: 299 - "<message>"`` header, ``Ignore`` returns [].
    With ``kind`` (and ``version``, the body's), messages are wrapped as kube
    wraps decode errors: ``Deployment in version "v1" cannot be handled as a
    Deployment: ...``.
    """
    mode = FieldValidation(mode)
    res = _run(obj, node, mode is not FieldValidation.IGNORE)
    first = res.fatal if res.fatal is not None else (res.types[0] if res.types else None)
    if first is not None:
        raise bad_request(_wrap(first, kind, version))
    if mode is FieldValidation.IGNORE:
        return []
    errs = [*duplicates, *(f'unknown field "{p}"' for p in res.unknown)]
    if not errs:
        return []
    if mode is FieldValidation.STRICT:
        raise bad_request(_wrap("strict decoding error: " + ", ".join(errs), kind, version))
    return errs
