"""The per-kind registry: one :class:`Strategy` object per kind, as kube's
``pkg/registry/<group>/<kind>/strategy.go``, found by (group, kind).

A strategy owns what is particular to its kind on the write path: what create and update
keep or reset (``prepare_for_create`` / ``prepare_for_update``, the status subresource's
``prepare_for_status_update``), what is computed after defaulting (``finish_create``),
validation, hooks before a write and after a delete (address allocation), graceful deletion,
and whether the DELETE answer is the object; and what is particular to it on the read path:
the columns ``kubectl get`` prints (``table``: each column declared with the function that
fills its cell) and the field labels a ``fieldSelector`` may use (``field_labels``).
:class:`Strategy` itself is the generic default that plain kinds use; kinds override what
differs. Defaulting and validation rules live in ``k8py.api.defaults`` and
``k8py.api.validation`` (pure functions on the wire form); the machinery of tables and
selectors in ``k8py.api.tables`` and ``k8py.api.selectors``.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from k8py.api import schema, tables
from k8py.api.corev1 import now_rfc3339
from k8py.api.errors import FieldError
from k8py.api.registry import KindInfo
from k8py.api.schema import SchemaNode
from k8py.api.selectors import DEFAULT_FIELD_LABELS, FieldLabels, label_selector_string
from k8py.api.validation import kinds as validation

if TYPE_CHECKING:
    from k8py.apiserver.authn import UserInfo

Obj = dict[str, Any]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # kube's utilrand alphabet (no vowels, no confusables)


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_NAME_CHARS) for _ in range(n))


def spec_part(obj: Obj) -> Obj:
    """Everything but metadata and status: what a generation counts."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Strategy:
    """The generic strategy (kube's defaults for a plain kind): a new uid and creation time on
    create, bookkeeping fields kept on update, status only through ``/status`` when the kind has
    that subresource, and, for kinds that keep one, ``metadata.generation`` bumped when anything
    but metadata and status changed."""

    group: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    generation: ClassVar[bool] = False  # maintains metadata.generation
    reset_status_on_create: ClassVar[bool] = False  # status is the server's: a create starts it anew
    return_deleted_object: ClassVar[bool] = False  # DELETE answers with the object, not a Status
    scalable: ClassVar[bool] = False  # serves the scale subresource
    # PUT of an object that does not exist creates it (kube's AllowCreateOnUpdate: RBAC kinds,
    # Endpoints, Events, Leases, LimitRanges), so ``kubectl replace`` and reconcilers can upsert.
    allow_create_on_update: ClassVar[bool] = False
    # what `kubectl get` prints (kube's default: Name, Created At)
    table: tables.Table = tables.DEFAULT_TABLE
    # the fieldSelector labels (kube's default: metadata.name and metadata.namespace)
    field_labels: FieldLabels = DEFAULT_FIELD_LABELS

    def fields_schema(self, kind: KindInfo) -> SchemaNode | None:
        """The schema managedFields and server-side apply follow (list types, map keys)."""
        return schema.for_kind(kind.group, kind.version, kind.kind)

    def request_warnings(self, kind: KindInfo) -> list[str]:
        """Warnings every request to ``kind`` carries (a deprecated custom resource version)."""
        return []

    def table_for(self, kind: KindInfo) -> tables.Table:
        """The columns of ``kind``'s version (a CRD declares them per version)."""
        return self.table

    # -- create ------------------------------------------------------------------------------------
    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        """The status a created object starts with (None: leave what the create left)."""
        return None

    def prepare_for_create(self, kind: KindInfo, obj: Obj) -> None:
        meta = obj.setdefault("metadata", {})
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
            meta.pop(k, None)
        if self.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if self.reset_status_on_create:
            obj.pop("status", None)
        status = self.initial_status(kind, obj)
        if status is not None:
            obj["status"] = status

    def prepare_for_create_by(self, kind: KindInfo, obj: Obj, user: UserInfo | None) -> None:
        """kube's PrepareForCreate reading the requesting user (``genericapirequest.UserFrom``):
        right after :meth:`prepare_for_create`, with the request's authenticated user."""

    def finish_create(self, kind: KindInfo, obj: Obj) -> None:
        """After defaulting, before validation: what the create computes from the defaulted object."""

    # -- update ------------------------------------------------------------------------------------
    def prepare_for_update(self, kind: KindInfo, new: Obj, old: Obj) -> None:
        """Main-resource update: bookkeeping fields are the old object's; status too when the kind
        has a status subresource; generation bumps when the spec changed."""
        meta = new.setdefault("metadata", {})
        old_meta = old.get("metadata") or {}
        # Immutable bookkeeping fields are carried over (validation reports attempts to change name etc.).
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        self.keep_status(kind, new, old)
        if self.generation:
            gen = int(old_meta.get("generation") or 1)
            meta["generation"] = gen + 1 if self.generation_part(kind, new) != self.generation_part(kind, old) else gen
        else:
            meta.pop("generation", None)

    def generation_part(self, kind: KindInfo, obj: Obj) -> Obj:
        """What a change of bumps ``metadata.generation``: the spec (all but metadata and status)."""
        return spec_part(obj)

    def keep_status(self, kind: KindInfo, new: Obj, old: Obj) -> None:
        if kind.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)

    def prepare_for_status_update(self, kind: KindInfo, new: Obj, old: Obj) -> Obj:
        """Status subresource: only status may change; everything else is the old object's."""
        out = copy.deepcopy(old)
        out["status"] = copy.deepcopy(new.get("status")) if new.get("status") is not None else {}
        # metadata.resourceVersion of the request (for preconditions) is checked by the caller
        out["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get("resourceVersion") or \
            old["metadata"].get("resourceVersion")
        return out

    def prepare_for_subresource_update(self, kind: KindInfo, sub: str, new: Obj, old: Obj) -> Obj:
        """A write to an update subresource other than scale (``status``; ``approval`` for
        CertificateSigningRequests): the status rules unless the kind says otherwise."""
        return self.prepare_for_status_update(kind, new, old)

    def validate_subresource_update(self, kind: KindInfo, sub: str, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate_status_update(kind, new, old)

    # -- validation --------------------------------------------------------------------------------
    def validate(self, kind: KindInfo, obj: Obj) -> list[FieldError]:
        return validation.validate(kind, obj)

    def validate_update(self, kind: KindInfo, new: Obj, old: Obj) -> list[FieldError]:
        return validation.validate_update(kind, new, old)

    def validate_status_update(self, kind: KindInfo, new: Obj, old: Obj) -> list[FieldError]:
        return validation.validate_status_update(kind, new, old)

    def validation_warnings(self, kind: KindInfo, obj: Obj) -> list[str]:
        """Warnings the update validation of ``obj`` just gave instead of errors (kube's
        ratcheting of CRD validation rules); the REST handler reads them right after it."""
        return []

    # -- hooks -------------------------------------------------------------------------------------
    async def begin_write(self, kind: KindInfo, obj: Obj, old: Obj | None, dry: bool) -> None:
        """kube's BeginCreate/BeginUpdate: after mutating admission, before validation, for a
        create (``old`` None) or an update of the main resource (allocations happen here)."""

    async def after_delete(self, kind: KindInfo, obj: Obj) -> None:
        """After the object left the store (directly, or when its last finalizer went)."""

    # -- delete ------------------------------------------------------------------------------------
    def graceful_delete(self, kind: KindInfo, current: Obj, opts: Obj) -> int:
        """The grace period a DELETE with ``opts`` gives (0: no graceful deletion)."""
        return 0

    def waits_for_finalizers(self, kind: KindInfo, current: Obj) -> bool:
        """Whether a DELETE must leave the object in place beyond its metadata.finalizers."""
        return False

    def terminating(self, kind: KindInfo, obj: Obj) -> Obj:
        """The object as it is marked for deletion (a namespace's phase says Terminating)."""
        return obj

    def delete_on_update(self, kind: KindInfo, obj: Obj) -> bool:
        """An object being deleted whose last finalizer went: is it removed now?"""
        meta = obj.get("metadata") or {}
        return bool(meta.get("deletionTimestamp")) and not meta.get("finalizers")

    # -- scale ----------------------------------------------------------------------------------
    def scale_selector(self, obj: Obj) -> str:
        """``Scale.status.selector``: the label selector of a scalable object, as a string."""
        sel = (obj.get("spec") or {}).get("selector")
        return label_selector_string(sel) if sel else ""

    def scale_replicas(self, kind: KindInfo, obj: Obj) -> tuple[int, int]:
        """``Scale.spec.replicas`` and ``Scale.status.replicas`` of a scalable object."""
        return (obj.get("spec") or {}).get("replicas", 0), (obj.get("status") or {}).get("replicas", 0)

    def set_spec_replicas(self, kind: KindInfo, obj: Obj, replicas: int) -> None:
        """A Scale written to the object: its spec's replica count."""
        obj.setdefault("spec", {})["replicas"] = replicas

    def scale_selector_of(self, kind: KindInfo, obj: Obj) -> str:
        return self.scale_selector(obj)


class Strategies:
    """The strategies by (group, kind); kinds without one of their own get the generic one,
    configured from the kind (status subresource or not)."""

    def __init__(self, strategies: list[Strategy]) -> None:
        self._by_kind: dict[tuple[str, str], Strategy] = {}
        for s in strategies:
            if (s.group, s.kind) in self._by_kind:  # one home per kind
                raise ValueError(f"two strategies for {s.kind}.{s.group or 'core'}")
            self._by_kind[(s.group, s.kind)] = s
        self._generic = Strategy()

    def for_kind(self, kind: KindInfo) -> Strategy:
        return self._by_kind.get((kind.group, kind.kind), self._generic)

    def register(self, s: Strategy) -> None:
        """A kind's strategy added while the server runs (custom resources: apiserver/crd_controller.py)."""
        self._by_kind[(s.group, s.kind)] = s

    def unregister(self, group: str, kind: str) -> None:
        self._by_kind.pop((group, kind), None)

