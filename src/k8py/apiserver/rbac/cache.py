"""The RBAC objects the authorizer decides with, kept in memory and current by a store watch.

kube's RBAC authorizer reads Roles, ClusterRoles, RoleBindings and ClusterRoleBindings through
informer listers; here :class:`PolicyCache` lists the ``rbac.authorization.k8s.io`` keys once
through :class:`~k8py.apiserver.objects.Objects` (the one door to the store), then follows the
store's watch from that revision (:meth:`PolicyCache.run`), listing again when the watch ends or
falls behind compaction.

Bindings are indexed by subject, so a decision reads only the bindings that name the user or
one of their groups, never every binding. A ServiceAccount subject is indexed under the user
name it authenticates as (``system:serviceaccount:<ns>:<name>``; a RoleBinding's subject without
a namespace means the binding's own namespace), as kube's ``appliesToUser`` matches it.

Every change bumps :attr:`PolicyCache.generation` and calls the listeners: the authorizer's
decision cache is dropped on any RBAC change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from k8py.apiserver.rbac.rules import Rule, rule_from

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

__all__ = ["SA_PREFIX", "Binding", "PolicyCache", "role_not_found"]

log = logging.getLogger(__name__)

RBAC_GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"

SubjectKey = tuple[str, str]  # ("u", user name) or ("g", group name)


@dataclass(frozen=True, slots=True)
class Binding:
    namespace: str  # "" for a ClusterRoleBinding
    name: str
    role_kind: str  # Role or ClusterRole
    role_name: str
    subjects: tuple[SubjectKey, ...]


def role_not_found(kind: str, name: str) -> str:
    """kube's lister NotFound text: ``clusterrole.rbac.authorization.k8s.io "x" not found``."""
    return f'{kind.lower()}.{RBAC_GROUP} "{name}" not found'


def _subject_keys(subjects: Any, binding_ns: str) -> tuple[SubjectKey, ...]:
    out: list[SubjectKey] = []
    for s in subjects if isinstance(subjects, list) else ():
        if not isinstance(s, dict):
            continue
        kind, name = s.get("kind"), str(s.get("name") or "")
        if kind == "User":
            out.append(("u", name))
        elif kind == "Group":
            out.append(("g", name))
        elif kind == "ServiceAccount":
            ns = str(s.get("namespace") or binding_ns)
            if ns:
                out.append(("u", f"{SA_PREFIX}{ns}:{name}"))
    return tuple(dict.fromkeys(out))


def binding_from(obj: dict[str, Any], namespace: str) -> Binding:
    meta = obj.get("metadata") or {}
    ref = obj.get("roleRef") or {}
    return Binding(namespace=namespace, name=str(meta.get("name") or ""), role_kind=str(ref.get("kind") or ""),
                   role_name=str(ref.get("name") or ""), subjects=_subject_keys(obj.get("subjects"), namespace))


def rules_of(obj: dict[str, Any]) -> tuple[Rule, ...]:
    rules = obj.get("rules")
    return tuple(rule_from(r) for r in rules) if isinstance(rules, list) else ()


class PolicyCache:
    """Roles and bindings by key, bindings indexed by subject."""

    def __init__(self) -> None:
        self.roles: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self.cluster_roles: dict[str, tuple[Rule, ...]] = {}
        self.cluster_bindings: dict[str, Binding] = {}
        self.bindings: dict[tuple[str, str], Binding] = {}
        self._cluster_index: dict[SubjectKey, set[str]] = {}
        self._ns_index: dict[tuple[str, SubjectKey], set[str]] = {}
        self.generation = 0
        self.synced = asyncio.Event()
        self._listeners: list[Callable[[], None]] = []
        self._prefixes: dict[str, str] = {}  # key prefix -> resource

    def on_change(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def _changed(self) -> None:
        self.generation += 1
        for fn in self._listeners:
            fn()

    # -- updates -------------------------------------------------------------------------------
    def _unindex_cluster(self, name: str) -> None:
        old = self.cluster_bindings.pop(name, None)
        if old is not None:
            for k in old.subjects:
                names = self._cluster_index.get(k)
                if names is not None:
                    names.discard(name)
                    if not names:
                        del self._cluster_index[k]

    def _unindex_ns(self, ns: str, name: str) -> None:
        old = self.bindings.pop((ns, name), None)
        if old is not None:
            for k in old.subjects:
                names = self._ns_index.get((ns, k))
                if names is not None:
                    names.discard(name)
                    if not names:
                        del self._ns_index[(ns, k)]

    def put(self, resource: str, namespace: str, name: str, obj: dict[str, Any] | None) -> None:
        """Set (or with ``obj=None`` remove) one object; listeners are told."""
        if resource == "clusterroles":
            if obj is None:
                self.cluster_roles.pop(name, None)
            else:
                self.cluster_roles[name] = rules_of(obj)
        elif resource == "roles":
            if obj is None:
                self.roles.pop((namespace, name), None)
            else:
                self.roles[(namespace, name)] = rules_of(obj)
        elif resource == "clusterrolebindings":
            self._unindex_cluster(name)
            if obj is not None:
                b = binding_from(obj, "")
                self.cluster_bindings[name] = b
                for k in b.subjects:
                    self._cluster_index.setdefault(k, set()).add(name)
        elif resource == "rolebindings":
            self._unindex_ns(namespace, name)
            if obj is not None:
                b = binding_from(obj, namespace)
                self.bindings[(namespace, name)] = b
                for k in b.subjects:
                    self._ns_index.setdefault((namespace, k), set()).add(name)
        else:
            return
        self._changed()

    def clear(self) -> None:
        self.roles.clear()
        self.cluster_roles.clear()
        self.cluster_bindings.clear()
        self.bindings.clear()
        self._cluster_index.clear()
        self._ns_index.clear()
        self._changed()

    # -- reads ---------------------------------------------------------------------------------
    def role_rules(self, kind: str, name: str, namespace: str) -> tuple[Rule, ...] | None:
        """The rules of a roleRef (None when the role does not exist)."""
        if kind == "ClusterRole":
            return self.cluster_roles.get(name)
        if kind == "Role":
            return self.roles.get((namespace, name))
        return None

    def bindings_for(self, user: str, groups: tuple[str, ...], namespace: str) -> Iterator[Binding]:
        """The ClusterRoleBindings, then (with a namespace) the RoleBindings there, naming this
        user or one of their groups: kube's ``VisitRulesFor`` order."""
        keys: list[SubjectKey] = [("u", user), *(("g", g) for g in groups)]
        seen: set[str] = set()
        for k in keys:
            for name in tuple(self._cluster_index.get(k, ())):
                if name not in seen:
                    seen.add(name)
                    b = self.cluster_bindings.get(name)
                    if b is not None:
                        yield b
        if not namespace:
            return
        seen.clear()
        for k in keys:
            for name in tuple(self._ns_index.get((namespace, k), ())):
                if name not in seen:
                    seen.add(name)
                    b = self.bindings.get((namespace, name))
                    if b is not None:
                        yield b

    # -- the watch -----------------------------------------------------------------------------
    def _parse_key(self, key: str) -> tuple[str, str, str] | None:
        for prefix, resource in self._prefixes.items():
            if key.startswith(prefix):
                rest = key[len(prefix):].split("/")
                if resource in ("roles", "rolebindings"):
                    return (resource, rest[0], rest[1]) if len(rest) == 2 else None
                return (resource, "", rest[0]) if len(rest) == 1 else None
        return None

    def _apply(self, key: str, value: bytes | None) -> None:
        parsed = self._parse_key(key)
        if parsed is None:
            return
        resource, ns, name = parsed
        self.put(resource, ns, name, orjson.loads(value) if value is not None else None)

    async def run(self, objects: Objects, registry: Registry) -> None:
        """Mirror the rbac.authorization.k8s.io keys (:meth:`Objects.mirror`)."""
        for resource in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"):
            kind = registry.by_resource(RBAC_GROUP, "v1", resource)
            assert kind is not None
            self._prefixes[kind.key_prefix(None)] = resource
        common = "/registry/" + RBAC_GROUP + "/"
        assert all(p.startswith(common) for p in self._prefixes)

        def synced() -> None:
            self.synced.set()
            log.info("RBAC policy loaded: %d cluster roles, %d roles, %d cluster role bindings, "
                     "%d role bindings", len(self.cluster_roles), len(self.roles), len(self.cluster_bindings),
                     len(self.bindings))

        await objects.mirror(common, reset=self.clear, apply=self._apply, synced=synced, what="RBAC")
