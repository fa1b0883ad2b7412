"""CustomResourceDefinitions and the custom resources they define: their strategies, as kube's
apiextensions-apiserver ``pkg/registry/customresourcedefinition`` and ``pkg/registry/customresource``.

The custom resources are served by the one REST stack (``rest.py``) like every kind: what is
particular to them is here. :mod:`k8py.apiserver.crd_controller` registers their kinds and
strategies while their CRD is Established, and runs the CRD's controllers.
"""

from __future__ import annotations

import copy
from typing import Any

from k8py.api import cel, errors, tables
from k8py.api import crd as crdschema
from k8py.api.corev1 import now_rfc3339
from k8py.api.errors import FieldError
from k8py.api.registry import KindInfo
from k8py.api.schema import SchemaNode
from k8py.api.validation import apiextensions
from k8py.api.validation.meta import name_is_dns_subdomain, validate_object_meta, validate_object_meta_update
from k8py.apiserver.registry.base import Strategy, spec_part

Obj = dict[str, Any]
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _age(row: tables.Row) -> tables.Cell:
    return tables.age_of(row.obj, row.now)


_CRD_TABLE = tables.Table(tables.NAME, tables.Column("Created At", "date", cell=lambda r: str(
    tables.meta_of(r.obj).get("creationTimestamp") or "")))


class CRDStrategy(Strategy):
    """kube's customresourcedefinition strategy: status is the controllers' (acceptedNames,
    conditions), ``storedVersions`` starts with the storage version and keeps every version
    ever stored, generation counts spec changes, and a DELETE waits for the custom resources to
    be gone (the ``customresourcecleanup`` finalizer, a Terminating condition)."""

    group = crdschema.GROUP
    kind = "CustomResourceDefinition"
    generation = True
    reset_status_on_create = True
    table = _CRD_TABLE

    def prepare_for_create(self, kind: KindInfo, obj: Obj) -> None:
        super().prepare_for_create(kind, obj)
        apiextensions.set_defaults(obj)
        stored = crdschema.storage_version(obj)
        obj["status"] = {"acceptedNames": {"kind": "", "plural": ""}, "conditions": [],
                         "storedVersions": [stored] if stored else []}

    def prepare_for_update(self, kind: KindInfo, new: Obj, old: Obj) -> None:
        super().prepare_for_update(kind, new, old)
        apiextensions.set_defaults(new)
        stored = crdschema.storage_version(new)
        status = new.setdefault("status", {})
        versions = list(status.get("storedVersions") or [])
        if stored and stored not in versions:
            status["storedVersions"] = [*versions, stored]

    def waits_for_finalizers(self, kind: KindInfo, current: Obj) -> bool:
        return True

    def terminating(self, kind: KindInfo, obj: Obj) -> Obj:
        meta = obj["metadata"]
        fins = list(meta.get("finalizers") or [])
        if crdschema.CLEANUP_FINALIZER not in fins:
            meta["finalizers"] = [*fins, crdschema.CLEANUP_FINALIZER]
        set_condition(obj, "Terminating", "True", "InstanceDeletionPending",
                      "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon")
        return obj


def set_condition(crd: Obj, type_: str, status: str, reason: str, message: str) -> bool:
    """Set one condition (kube's ``SetCRDCondition``: the transition time moves only when the
    status does); returns whether anything changed."""
    conds = crd.setdefault("status", {}).setdefault("conditions", [])
    for c in conds:
        if c.get("type") == type_:
            if (c.get("status"), c.get("reason"), c.get("message")) == (status, reason, message):
                return False
            if c.get("status") != status:
                c["lastTransitionTime"] = now_rfc3339()
            c.update(status=status, reason=reason, message=message)
            return True
    conds.append({"type": type_, "status": status, "lastTransitionTime": now_rfc3339(), "reason": reason,
                  "message": message})
    return True


def _json_path(obj: Any, path: str) -> Any:
    """A simple ``.a.b`` JSONPath (what scale paths and printer columns use)."""
    cur = obj
    for part in [p for p in path.strip().lstrip("{").rstrip("}").split(".") if p]:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set_path(obj: Obj, path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    cur = obj
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = cur[p] = {}
        cur = nxt
    cur[parts[-1]] = value


def _printer_cell(path: str, type_: str) -> tables.CellFn:
    def cell(row: tables.Row) -> tables.Cell:
        v = _json_path(row.obj, path)
        if v is None:
            return None
        if type_ == "date" and isinstance(v, str):
            return tables.since(v, row.now)
        if isinstance(v, dict | list):
            import orjson

            return orjson.dumps(v).decode()
        return v

    return cell


def printer_table(version: Obj) -> tables.Table:
    """kube's CR table: Name, the version's additionalPrinterColumns (Age when there are none)."""
    cols = [tables.NAME]
    extra = version.get("additionalPrinterColumns") or []
    if not extra:
        cols.append(tables.Column("Age", "date", cell=_age))
    for c in extra:
        t = str(c.get("type") or "string")
        cols.append(tables.Column(str(c.get("name")), t, doc=str(c.get("description") or ""),
                                  priority=int(c.get("priority") or 0), format=str(c.get("format") or ""),
                                  cell=_printer_cell(str(c.get("jsonPath") or ""), t)))
    return tables.Table(*cols)


class CustomResourceStrategy(Strategy):
    """One CRD's custom resources (all its versions): pruning and defaults from the version's
    structural schema, validation against it, status and scale subresources as the version
    declares them, generation on spec changes."""

    generation = True
    scalable = True  # whether a version serves /scale is the kind's subresources (rest.kind_for)

    def __init__(self, crd: Obj) -> None:
        self.crd = crd
        spec = crd.get("spec") or {}
        self.group = str(spec.get("group") or "")  # type: ignore[misc]
        names = (crd.get("status") or {}).get("acceptedNames") or spec.get("names") or {}
        self.kind = str(names.get("kind") or "")  # type: ignore[misc]
        self.terminating_crd = bool((crd.get("metadata") or {}).get("deletionTimestamp"))
        self._tables = {str(v.get("name")): printer_table(v) for v in spec.get("versions") or []}
        stored = crdschema.storage_version(crd)
        self.table = self._tables.get(stored) or printer_table({})  # type: ignore[misc]
        self._rules: dict[str, cel.Validator | None] = {}
        self._ratcheted: dict[int, list[str]] = {}  # id of an object just validated -> its warnings

    def request_warnings(self, kind: KindInfo) -> list[str]:
        v = crdschema.version_of(self.crd, kind.version)
        if not v.get("deprecated"):
            return []
        if v.get("deprecationWarning"):
            return [str(v["deprecationWarning"])]
        # kube's defaultDeprecationWarning: the newest served, not deprecated, newer version named
        msg = f"{kind.group}/{kind.version} {kind.kind} is deprecated"
        mine = crdschema.version_priority(kind.version)
        newer = [str(o.get("name")) for o in (self.crd.get("spec") or {}).get("versions") or []
                 if o.get("served") and not o.get("deprecated")
                 and crdschema.version_priority(str(o.get("name"))) < mine]
        if newer:
            msg += f"; use {kind.group}/{min(newer, key=crdschema.version_priority)} {kind.kind}"
        return [msg]

    def table_for(self, kind: KindInfo) -> tables.Table:
        return self._tables.get(kind.version, self.table)

    def fields_schema(self, kind: KindInfo) -> SchemaNode | None:
        """The version's schema, metadata as ObjectMeta: server-side apply merges lists by their
        ``x-kubernetes-list-type``/``list-map-keys`` (kube builds its typed schema the same way)."""
        s = copy.deepcopy(self._schema(kind))
        if not s:
            return None
        props = s.setdefault("properties", {})
        props["metadata"] = {"$ref": "#/definitions/" + OBJECT_META}
        props["apiVersion"] = props["kind"] = {"type": "string"}
        return SchemaNode(s, "")

    def _schema(self, kind: KindInfo) -> Obj:
        return crdschema.schema_of(self.crd, kind.version)

    def _scale(self, kind: KindInfo) -> Obj:
        return ((crdschema.version_of(self.crd, kind.version).get("subresources") or {}).get("scale")) or {}

    def normalize(self, kind: KindInfo, obj: Obj) -> list[str]:
        """Prune unknown fields and fill defaults (kube does both when decoding a request and
        reading from storage); returns the pruned paths."""
        s = self._schema(kind)
        dropped = crdschema.prune(obj, s)
        crdschema.default(obj, s)
        return dropped

    def prepare_for_create(self, kind: KindInfo, obj: Obj) -> None:
        if self.terminating_crd:
            raise errors.StatusError(405, "MethodNotAllowed",
                                     f'create is not supported on resources of kind "{kind.resource}.{kind.group}"',
                                     details={"group": kind.group, "kind": kind.resource})
        super().prepare_for_create(kind, obj)
        if kind.has_status:
            obj.pop("status", None)
        self.normalize(kind, obj)

    def prepare_for_update(self, kind: KindInfo, new: Obj, old: Obj) -> None:
        self.normalize(kind, new)  # pruned and defaulted before the generation compares it
        super().prepare_for_update(kind, new, old)

    def generation_part(self, kind: KindInfo, obj: Obj) -> Obj:
        if kind.has_status:
            return spec_part(obj)
        # without a status subresource, status is part of what a generation counts
        return {**spec_part(obj), "status": obj.get("status")}

    def prepare_for_status_update(self, kind: KindInfo, new: Obj, old: Obj) -> Obj:
        out = super().prepare_for_status_update(kind, new, old)
        self.normalize(kind, out)
        return out

    def _validate(self, kind: KindInfo, obj: Obj, old: Obj | None = None) -> list[FieldError]:
        """The schema's validation, then its CEL rules (``old`` on updates, for transition rules
        and ratcheting)."""
        s = self._schema(kind)
        errs = crdschema.validate(obj, s)
        if kind.version not in self._rules:
            self._rules[kind.version] = crdschema.rules_validator(s)  # compiled once per CRD version
        ratcheted: list[FieldError] = []
        errs += crdschema.rule_errors(self._rules[kind.version], obj, old, errs, ratcheted)
        if ratcheted:
            # read by validation_warnings right after this validation (no await between them)
            if len(self._ratcheted) >= 64:
                self._ratcheted.clear()
            self._ratcheted[id(obj)] = [str(e) for e in ratcheted]
        return errs

    def validation_warnings(self, kind: KindInfo, obj: Obj) -> list[str]:
        return self._ratcheted.pop(id(obj), [])

    def validate(self, kind: KindInfo, obj: Obj) -> list[FieldError]:
        name_rule = name_is_dns_subdomain
        return validate_object_meta(obj.get("metadata"), kind.namespaced, name_rule) + self._validate(kind, obj)

    def validate_update(self, kind: KindInfo, new: Obj, old: Obj) -> list[FieldError]:
        return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + self._validate(kind, new, old)

    def validate_status_update(self, kind: KindInfo, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate_update(kind, new, old)

    # -- scale --------------------------------------------------------------------------------------
    def scale_replicas(self, kind: KindInfo, obj: Obj) -> tuple[int, int]:
        sc = self._scale(kind)
        spec = _json_path(obj, str(sc.get("specReplicasPath") or ".spec.replicas"))
        status = _json_path(obj, str(sc.get("statusReplicasPath") or ".status.replicas"))
        return (spec if isinstance(spec, int) else 0), (status if isinstance(status, int) else 0)

    def set_spec_replicas(self, kind: KindInfo, obj: Obj, replicas: int) -> None:
        _set_path(obj, str(self._scale(kind).get("specReplicasPath") or ".spec.replicas"), replicas)

    def scale_selector_of(self, kind: KindInfo, obj: Obj) -> str:
        path = self._scale(kind).get("labelSelectorPath")
        v = _json_path(obj, str(path)) if path else None
        return v if isinstance(v, str) else ""


def copy_crd(crd: Obj) -> Obj:
    return copy.deepcopy(crd)
