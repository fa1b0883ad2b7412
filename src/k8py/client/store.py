"""The informer's local cache: objects by ``namespace/name`` key, with incremental indexes.

An index maps each value an index function returns for an object (its namespace, its owners'
UIDs, anything a controller needs) to the keys of the objects that have it; updates touch only
the values that changed. Objects are shared, not copied: copy before mutating.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from k8py.client.api import object_key

__all__ = ["NAMESPACE_INDEX", "OWNER_UID_INDEX", "IndexFunc", "Store", "namespace_index", "owner_uid_index"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]

NAMESPACE_INDEX = "namespace"
OWNER_UID_INDEX = "owner-uid"


def namespace_index(obj: Obj) -> builtins.list[str]:
    """client-go's MetaNamespaceIndexFunc: the object's namespace ("" when cluster-scoped)."""
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


def owner_uid_index(obj: Obj) -> builtins.list[str]:
    """The UIDs of the object's ownerReferences, to find dependents of an owner."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return [str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("uid")]


class Store:
    """A keyed object cache with named indexes (``namespace`` and ``owner-uid`` built in)."""

    __slots__ = ("_index_fns", "_indices", "_items", "_values")

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._index_fns: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}  # index -> value -> keys
        self._values: dict[str, dict[str, tuple[str, ...]]] = {}  # index -> key -> values (for removal)
        self.add_indexer(NAMESPACE_INDEX, namespace_index)
        self.add_indexer(OWNER_UID_INDEX, owner_uid_index)

    # -- reads -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[Obj]:
        return iter(list(self._items.values()))

    def get(self, key: str) -> Obj | None:
        """The object stored under ``namespace/name`` (or ``name`` for cluster-scoped kinds)."""
        return self._items.get(key)

    def get_by_name(self, name: str, namespace: str | None = None) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def list(self, namespace: str | None = None) -> builtins.list[Obj]:
        """All objects, or those in ``namespace``."""
        if namespace is None:
            return list(self._items.values())
        return self.by_index(NAMESPACE_INDEX, namespace)

    def by_index(self, index: str, value: str) -> builtins.list[Obj]:
        """Objects whose index function returned ``value`` for ``index``."""
        items = self._items
        return [items[k] for k in self._index(index).get(value, ())]

    def index_keys(self, index: str, value: str) -> builtins.list[str]:
        return list(self._index(index).get(value, ()))

    def index_values(self, index: str) -> builtins.list[str]:
        return list(self._index(index))

    def _index(self, index: str) -> dict[str, set[str]]:
        try:
            return self._indices[index]
        except KeyError:
            raise KeyError(f"no index {index!r}; indexes: {', '.join(self._indices)}") from None

    # -- indexes ---------------------------------------------------------------------------------

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        """Add an index; objects already stored are indexed now."""
        if name in self._index_fns:
            raise ValueError(f"index {name!r} already exists")
        self._index_fns[name] = fn
        self._indices[name] = {}
        self._values[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, fn, key, obj)

    def _values_of(self, name: str, fn: IndexFunc, obj: Obj) -> tuple[str, ...]:
        try:
            return tuple(dict.fromkeys(fn(obj)))
        except Exception:  # why: a broken index function must not break the informer
            log.exception("index %r failed for %s", name, object_key(obj))
            return ()

    def _index_one(self, name: str, fn: IndexFunc, key: str, obj: Obj) -> None:
        vals = self._values_of(name, fn, obj)
        if vals:
            self._values[name][key] = vals
            idx = self._indices[name]
            for v in vals:
                idx.setdefault(v, set()).add(key)

    def _unindex_one(self, name: str, key: str, keep: tuple[str, ...] = ()) -> None:
        vals = self._values[name].pop(key, ())
        idx = self._indices[name]
        for v in vals:
            if v in keep:
                continue
            keys = idx.get(v)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del idx[v]

    # -- writes (the informer's) -----------------------------------------------------------------

    def put(self, obj: Obj, key: str | None = None) -> Obj | None:
        """Store ``obj``; returns the object it replaced, if any."""
        key = key or object_key(obj)
        old = self._items.get(key)
        self._items[key] = obj
        for name, fn in self._index_fns.items():
            new_vals = self._values_of(name, fn, obj)
            old_vals = self._values[name].get(key, ())
            if new_vals == old_vals:
                continue
            self._unindex_one(name, key, keep=new_vals)
            idx = self._indices[name]
            for v in new_vals:
                if v not in old_vals:
                    idx.setdefault(v, set()).add(key)
            if new_vals:
                self._values[name][key] = new_vals
        return old

    def remove(self, key: str) -> Obj | None:
        """Drop ``key``; returns the object it held, if any."""
        old = self._items.pop(key, None)
        if old is not None:
            for name in self._index_fns:
                self._unindex_one(name, key)
        return old

    def clear(self) -> None:
        self._items.clear()
        for name in self._index_fns:
            self._indices[name].clear()
            self._values[name].clear()
