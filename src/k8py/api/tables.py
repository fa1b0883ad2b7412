"""Server-side printing: ``meta.k8s.io/v1`` ``Table`` and ``PartialObjectMetadata``.

``kubectl get`` asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``
and prints whatever columns the server sends; ``-o wide`` shows the
priority-1 columns too. Like kube-apiserver (``printers/storage.TableConvertor``)
every row carries the wide cells and kubectl hides what it does not show.

This module is the machinery only: :class:`Column` (a column definition and the
function that fills its cell, declared together, so a column without a cell
cannot exist), :class:`Table` (a kind's columns, plus the form it reads and its
row conditions), :func:`table` (the ``Table`` envelope), kube's default table
(``Name``, ``Created At``) for kinds without columns of their own, the shared
``Name``/``Age`` columns and the small helpers printers share (ages, container
and image lists). Each kind's own columns are declared by its strategy
(``Strategy.table`` in ``k8py.apiserver.registry``), as kube's are registered by
its ``pkg/printers/internalversion/printers.go`` per kind; custom resources will
bring theirs through the same door.

Metadata-only clients (client-go's metadata informers: the garbage collector,
the namespace deleter) ask for ``as=PartialObjectMetadata`` /
``as=PartialObjectMetadataList``; kubectl's get/delete do not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from k8py.api.errors import bad_request
from k8py.api.schema import definitions
from k8py.api.selectors import format_label_selector

Obj = dict[str, Any]
Cell = str | int | bool | None
T = TypeVar("T")

TABLE_GROUP_VERSION: Final = "meta.k8s.io/v1"
INCLUDE_OBJECT_VALUES: Final = ("None", "Metadata", "Object")

# ---------------------------------------------------------------------------
# time formatting (k8s.io/apimachinery/pkg/util/duration)


def human_duration(d: timedelta) -> str:
    """``duration.HumanDuration``: ~2-3 significant figures, e.g. ``"5s"``, ``"3h5m"``, ``"2d3h"``."""
    micros = d // timedelta(microseconds=1)
    seconds = int(micros / 1_000_000)  # Go truncates towards zero
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


@functools.lru_cache(maxsize=8192)
def parse_time(value: str) -> datetime | None:
    """RFC 3339 ``Time``/``MicroTime`` -> aware datetime (``None`` if empty or unparsable)."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def time_of(value: Any) -> datetime | None:
    """A timestamp field as an aware datetime (``None`` when unset, empty or unparsable)."""
    return parse_time(value) if isinstance(value, str) and value else None


def since(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: the age of a timestamp, ``"<unknown>"`` when unset."""
    t = time_of(value)
    if t is None:
        return "<unknown>"
    return human_duration(now - t)


# ---------------------------------------------------------------------------
# columns and tables


class Row:
    """What a cell function reads: ``obj`` (in the form its table reads, see :attr:`Table.view`)
    and ``now``. :meth:`memo` computes a value several cells share once per row (a pod's
    ready count, status and restarts come out of one pass over its container statuses)."""

    __slots__ = ("_fn", "_more", "_value", "now", "obj")

    def __init__(self, obj: Obj, now: datetime) -> None:
        self.obj = obj
        self.now = now
        # one shared value is the common case: kept in slots, further ones in a dict
        self._fn: Callable[[Obj, datetime], Any] | None = None
        self._value: Any = None
        self._more: dict[Callable[[Obj, datetime], Any], Any] | None = None

    def memo(self, fn: Callable[[Obj, datetime], T]) -> T:
        """``fn(obj, now)``, computed once per row."""
        if self._fn is fn:
            return self._value  # type: ignore[no-any-return]
        if self._fn is None:
            self._fn = fn
            self._value = value = fn(self.obj, self.now)
            return value
        more = self._more
        if more is None:
            more = self._more = {}
        elif fn in more:
            return more[fn]  # type: ignore[no-any-return]
        value = more[fn] = fn(self.obj, self.now)
        return value


CellFn = Callable[[Row], Cell]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its definition as kube serves it and ``cell``, the function that fills it."""

    name: str
    type: str = "string"
    # literal description, or (OpenAPI definition, property) whose description kube's SwaggerDoc gives
    doc: str | tuple[str, str] = ""
    priority: int = 0
    format: str = ""
    cell: CellFn = field(kw_only=True)

    def definition(self) -> Obj:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": _describe(self.doc), "priority": self.priority}


def _describe(doc: str | tuple[str, str]) -> str:
    if isinstance(doc, str):
        return doc
    return _schema_doc(*doc)


@functools.cache
def _schema_doc(definition: str, prop: str) -> str:
    try:
        d = definitions().get(definition) or {}
    except (ImportError, OSError):  # descriptions are cosmetic; never fail a table over them
        return ""
    desc = ((d.get("properties") or {}).get(prop) or {}).get("description")
    return desc if isinstance(desc, str) else ""


class Table:
    """A kind's printed columns, in order, each with its cell.

    ``view`` gives the form the cells read (kube prints the internal type: v2 HPAs, core
    Events); ``conditions`` gives a row's conditions (pods report Completed for terminal
    phases). Both see the object as the table reads it.
    """

    __slots__ = ("_definitions", "columns", "conditions", "view")

    def __init__(self, *columns: Column, view: Callable[[Obj], Obj] | None = None,
                 conditions: Callable[[Obj], list[Obj]] | None = None) -> None:
        if not columns:
            raise ValueError("a table needs at least one column")
        self.columns: tuple[Column, ...] = columns
        self.view = view
        self.conditions = conditions
        self._definitions: tuple[Obj, ...] | None = None

    def definitions(self) -> list[Obj]:
        """The ``columnDefinitions`` (descriptions come from the OpenAPI schema: read once, on first use)."""
        defs = self._definitions
        if defs is None:
            defs = self._definitions = tuple(c.definition() for c in self.columns)
        return [dict(d) for d in defs]

    def cells(self, obj: Obj, now: datetime) -> list[Cell]:
        """One row's cells for ``obj`` (already in the form the table reads)."""
        row = Row(obj, now)
        return [c.cell(row) for c in self.columns]

    def __repr__(self) -> str:
        return f"Table({', '.join(c.name for c in self.columns)})"


# --- what printers share -------------------------------------------------------

META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
CORE: Final = "io.k8s.api.core.v1."
APPS: Final = "io.k8s.api.apps.v1."
BATCH: Final = "io.k8s.api.batch.v1."


def meta_of(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def spec_of(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def status_of(obj: Obj) -> Obj:
    return obj.get("status") or {}


def name_of(obj: Obj) -> str:
    return meta_of(obj).get("name", "")


def age_of(obj: Obj, now: datetime) -> str:
    return since(meta_of(obj).get("creationTimestamp"), now)


def int_or_zero(v: Any) -> int:
    """An integer field as Go reads it: absent (or not an integer) is 0."""
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def quantity(v: Any) -> str:
    """``resource.Quantity.String()``; a missing quantity is the zero quantity."""
    if v is None or v == "":
        return "0"
    return str(v)


def bool_ptr(v: Any) -> str:
    """``printBoolPtr``: ``<unset>`` for nil."""
    if v is None:
        return "<unset>"
    return "True" if v else "False"


def condition_true(conditions: Iterable[Obj], type_: str) -> bool:
    """The first condition of ``type_`` has status True."""
    for c in conditions:
        if c.get("type") == type_:
            return c.get("status") == "True"
    return False


def template_pod_spec(obj: Obj) -> Obj:
    """``spec.template.spec`` of a workload."""
    return ((spec_of(obj).get("template") or {}).get("spec")) or {}


def _containers(row: Row, pod_spec: Callable[[Obj], Obj | None]) -> list[Obj]:
    return (pod_spec(row.obj) or {}).get("containers") or []


def containers_columns(pod_spec: Callable[[Obj], Obj | None], priority: int = 1) -> tuple[Column, Column]:
    """``layoutContainerCells``: the Containers and Images columns of the pod template
    ``pod_spec(obj)`` gives."""
    return (
        Column("Containers", priority=priority, doc="Names of each container in the template.",
               cell=lambda r: ",".join(c.get("name", "") for c in _containers(r, pod_spec))),
        Column("Images", priority=priority, doc="Images referenced by each container in the template.",
               cell=lambda r: ",".join(c.get("image", "") for c in _containers(r, pod_spec))),
    )


def selector_column(definition: str, selector: Callable[[Obj], Any] = lambda o: spec_of(o).get("selector"),
                    fmt: Callable[[Any], str] = format_label_selector) -> Column:
    """The wide Selector column: ``fmt(selector(obj))`` described by ``definition``'s ``selector``."""
    return Column("Selector", priority=1, doc=(definition, "selector"), cell=lambda r: fmt(selector(r.obj)))


NAME: Final = Column("Name", format="name", doc=(META, "name"), cell=lambda r: name_of(r.obj))
AGE: Final = Column("Age", doc=(META, "creationTimestamp"), cell=lambda r: age_of(r.obj, r.now))


def _created_at(row: Row) -> str:
    # kube's default TableConvertor: the creation time as RFC 3339 UTC, not an age
    t = time_of(meta_of(row.obj).get("creationTimestamp"))
    return (t or datetime(1, 1, 1, tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# kube's default table, for kinds that declare no columns of their own
DEFAULT_TABLE: Final = Table(
    NAME,
    Column("Created At", "date", doc=(META, "creationTimestamp"), cell=_created_at),
)


# ---------------------------------------------------------------------------
# Table and PartialObjectMetadata


def partial_object_metadata(kind: Any, obj: Obj, *, group_version: str = TABLE_GROUP_VERSION) -> Obj:
    """The ``as=PartialObjectMetadata`` form of ``obj``: its whole ``metadata``, nothing else."""
    return {"kind": "PartialObjectMetadata", "apiVersion": group_version, "metadata": obj.get("metadata") or {}}


def _list_metadata(list_meta: Obj | None) -> Obj:
    out: Obj = {}
    if not list_meta:
        return out
    for key in ("resourceVersion", "continue"):
        if list_meta.get(key):
            out[key] = list_meta[key]
    if list_meta.get("remainingItemCount") is not None:
        out["remainingItemCount"] = list_meta["remainingItemCount"]
    return out


def partial_object_metadata_list(kind: Any, objs: Iterable[Obj], list_meta: Obj | None = None, *,
                                 group_version: str = TABLE_GROUP_VERSION) -> Obj:
    """The ``as=PartialObjectMetadataList`` form of a list (``list_meta``: the list's ``metadata``)."""
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": group_version,
        "metadata": _list_metadata(list_meta),
        "items": [partial_object_metadata(kind, o, group_version=group_version) for o in objs],
    }


def check_include_object(value: str | None) -> str:
    """Validate ``?includeObject=``; ``""``/``None`` mean ``Metadata``. Raises a 400 like kube."""
    if not value:
        return "Metadata"
    if value not in INCLUDE_OBJECT_VALUES:
        raise bad_request(f'unrecognized includeObject value: "{value}"')
    return value


def table(
    spec: Table,
    objs: Sequence[Obj],
    *,
    include_object: str | None = "Metadata",
    now: datetime | None = None,
    list_meta: Obj | None = None,
    no_headers: bool = False,
    group_version: str = TABLE_GROUP_VERSION,
) -> Obj:
    """Render ``objs`` (all of one kind, in the version being served) as a ``Table`` of
    ``spec``'s columns (the kind strategy's ``table``; :data:`DEFAULT_TABLE` for kube's default).

    ``list_meta`` is the list's ``metadata`` (``resourceVersion``, ``continue``,
    ``remainingItemCount``) for a list request; leave it ``None`` for a single
    object, whose own ``resourceVersion`` the table then carries.
    ``include_object``: ``None`` (no object), ``Metadata`` (``PartialObjectMetadata``;
    the default), ``Object`` (the object itself). ``no_headers`` drops the column
    definitions (``?noHeaders=true``, later events of a table watch).
    """
    mode = check_include_object(include_object)
    when = now or datetime.now(UTC)
    view, conditions = spec.view, spec.conditions
    rows: list[Obj] = []
    for obj in objs:
        seen = view(obj) if view is not None else obj
        row: Obj = {"cells": spec.cells(seen, when)}
        if conditions is not None:
            conds = conditions(seen)
            if conds:
                row["conditions"] = [dict(c) for c in conds]
        if mode == "Metadata":
            row["object"] = partial_object_metadata(None, obj, group_version=group_version)
        elif mode == "Object":
            row["object"] = obj
        else:
            row["object"] = None
        rows.append(row)
    if list_meta is not None:
        meta = _list_metadata(list_meta)
    elif len(objs) == 1 and meta_of(objs[0]).get("resourceVersion"):
        meta = {"resourceVersion": meta_of(objs[0])["resourceVersion"]}
    else:
        meta = {}
    return {
        "kind": "Table",
        "apiVersion": group_version,
        "metadata": meta,
        "columnDefinitions": [] if no_headers else spec.definitions(),
        "rows": rows,
    }


__all__ = [
    "AGE",
    "APPS",
    "BATCH",
    "CORE",
    "DEFAULT_TABLE",
    "META",
    "NAME",
    "Cell",
    "CellFn",
    "Column",
    "Row",
    "Table",
    "age_of",
    "bool_ptr",
    "check_include_object",
    "condition_true",
    "containers_columns",
    "human_duration",
    "int_or_zero",
    "meta_of",
    "name_of",
    "parse_time",
    "partial_object_metadata",
    "partial_object_metadata_list",
    "quantity",
    "selector_column",
    "since",
    "spec_of",
    "status_of",
    "table",
    "template_pod_spec",
    "time_of",
]
