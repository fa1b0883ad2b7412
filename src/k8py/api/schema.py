"""Kubernetes' own OpenAPI definitions, as shipped by ``kubernetes-validate``.

The package carries the JSON-schema form of Kubernetes' OpenAPI definitions
(descriptions, required fields, ``x-kubernetes-patch-merge-key``,
``x-kubernetes-patch-strategy``, list types, group-version-kind tags). This
module loads them once and offers navigation by kind and field path, used by
OpenAPI serving, unknown-field detection and strategic merge patch.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import orjson

K8S_SCHEMA_VERSION = "v1.37.0"


def _definitions_path() -> str:
    # Only the package's data file is read: the package is found, not imported (importing it
    # imports jsonschema, ~0.15 s of a server's start; docs/benchmarks.md, "Server start").
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("kubernetes-validate, whose data holds Kubernetes' OpenAPI definitions, "
                                  "is not installed", name="kubernetes_validate")
    base = next(iter(spec.submodule_search_locations))
    return os.path.join(base, "kubernetes-json-schema", f"{K8S_SCHEMA_VERSION}-local", "_definitions.json")


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """Definition name (``io.k8s.api.apps.v1.Deployment``) -> JSON schema (refs as ``#/$defs/NAME``)."""
    with open(_definitions_path(), "rb") as f:
        data = orjson.loads(f.read())
    defs: dict[str, dict[str, Any]] = data["$defs"]
    return defs


@functools.cache
def gvk_index() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> definition name."""
    out: dict[tuple[str, str, str], str] = {}
    for name, d in definitions().items():
        for gvk in d.get("x-kubernetes-group-version-kind", ()):
            key = (gvk.get("group", ""), gvk["version"], gvk["kind"])
            # meta types (DeleteOptions, WatchEvent) are tagged with many GVKs; keep the first
            out.setdefault(key, name)
    return out


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class SchemaNode:
    """A view of one schema (object, array, or scalar), with ``$ref`` resolved."""

    raw: dict[str, Any]
    name: str = ""  # definition name when this node came from a $ref

    @staticmethod
    def of(schema: dict[str, Any]) -> SchemaNode:
        name = ""
        # A property may be {"$ref": ..., "description": ...} or {"allOf": [{"$ref": ...}]}
        while True:
            if "$ref" in schema:
                name = ref_name(schema["$ref"])
                schema = definitions()[name]
                continue
            all_of = schema.get("allOf")
            if all_of and len(all_of) == 1 and "$ref" in all_of[0]:
                name = ref_name(all_of[0]["$ref"])
                schema = definitions()[name]
                continue
            break
        return SchemaNode(schema, name)

    @property
    def types(self) -> tuple[str, ...]:
        t = self.raw.get("type")
        if t is None:
            return ()
        if isinstance(t, str):
            return (t,)
        return tuple(x for x in t if x != "null")

    @property
    def type(self) -> str:
        """The non-null type ("object", "array", "string", ...) or "" when unconstrained
        (IntOrString, Quantity, RawExtension, JSON)."""
        ts = self.types
        return ts[0] if len(ts) == 1 else ""

    @property
    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = self.raw.get("properties", {})
        return props

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(self.raw.get("required", ()))

    @property
    def description(self) -> str:
        return str(self.raw.get("description", ""))

    def field(self, name: str) -> SchemaNode | None:
        p = self.properties.get(name)
        return SchemaNode.of(p) if p is not None else None

    @property
    def field_raw(self) -> dict[str, Any]:
        return self.properties

    def field_extensions(self, name: str) -> dict[str, Any]:
        """``x-kubernetes-*`` keys set on the property itself (patch strategy lives there)."""
        p = self.properties.get(name) or {}
        return {k: v for k, v in p.items() if k.startswith("x-kubernetes-")}

    @property
    def items(self) -> SchemaNode | None:
        it = self.raw.get("items")
        return SchemaNode.of(it) if isinstance(it, dict) else None

    @property
    def additional_properties(self) -> SchemaNode | None:
        ap = self.raw.get("additionalProperties")
        return SchemaNode.of(ap) if isinstance(ap, dict) else None

    @property
    def is_map(self) -> bool:
        return self.type == "object" and not self.properties and self.additional_properties is not None

    @property
    def preserves_unknown(self) -> bool:
        """True when any content is allowed below (RawExtension, JSON, free-form objects)."""
        if self.raw.get("x-kubernetes-preserve-unknown-fields"):
            return True
        return self.type in ("object", "") and not self.properties and self.additional_properties is None

    @property
    def patch_merge_key(self) -> str | None:
        v = self.raw.get("x-kubernetes-patch-merge-key")
        return str(v) if v else None

    @property
    def patch_strategy(self) -> str:
        return str(self.raw.get("x-kubernetes-patch-strategy", ""))

    @property
    def list_type(self) -> str:
        return str(self.raw.get("x-kubernetes-list-type", ""))

    @property
    def list_map_keys(self) -> tuple[str, ...]:
        return tuple(self.raw.get("x-kubernetes-list-map-keys", ()))

    @property
    def map_type(self) -> str:
        return str(self.raw.get("x-kubernetes-map-type", ""))


def field_node(parent: SchemaNode, name: str) -> SchemaNode | None:
    """The schema of ``parent.name`` with the property's own extensions
    (patch strategy, merge key, list type) merged over the referenced schema."""
    p = parent.properties.get(name)
    if p is None:
        return None
    node = SchemaNode.of(p)
    ext = {k: v for k, v in p.items() if k.startswith("x-kubernetes-")}
    if ext and node.name:
        merged = dict(node.raw)
        merged.update(ext)
        return SchemaNode(merged, node.name)
    return node


def for_kind(group: str, version: str, kind: str) -> SchemaNode | None:
    name = gvk_index().get((group, version, kind))
    if name is None:
        return None
    return SchemaNode(definitions()[name], name)
