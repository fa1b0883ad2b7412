"""RBAC policy rules: does a rule allow a request, does a set of rules cover another.

Pure functions over ``rbac.authorization.k8s.io/v1`` ``PolicyRule`` dicts, as kube's
``plugin/pkg/auth/authorizer/rbac`` (``RuleAllows``) and ``pkg/registry/rbac/validation``
(``Covers``, ``BreakdownRule``, ``CompactRules``, ``CompactString``). Nothing here does I/O.

Matching, as kube:

- verbs: ``*`` or the request's verb;
- apiGroups: ``*`` or the request's group;
- resources: ``*``, ``<resource>`` or ``<resource>/<subresource>`` exactly, or ``*/<subresource>``;
- resourceNames: empty matches every name, else the request's name is listed;
- nonResourceURLs: ``*``, the path exactly, or a prefix ending in ``*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from k8py.api.selectors import go_quote

__all__ = [
    "Rule",
    "breakdown",
    "compact_rules",
    "compact_string",
    "covers",
    "go_quote_list",
    "rule_allows",
    "rule_from",
    "rule_to_dict",
]

ALL = "*"


@dataclass(frozen=True, slots=True)
class Rule:
    """One PolicyRule, with tuples so that rules are hashable and cheap to match."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()


def _strs(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list | tuple):
        return ()
    return tuple(str(x) for x in v)


def rule_from(d: Any) -> Rule:
    """A Rule from a PolicyRule dict (anything malformed simply matches nothing)."""
    if not isinstance(d, dict):
        return Rule()
    return Rule(verbs=_strs(d.get("verbs")), api_groups=_strs(d.get("apiGroups")),
                resources=_strs(d.get("resources")), resource_names=_strs(d.get("resourceNames")),
                non_resource_urls=_strs(d.get("nonResourceURLs")))


def rule_to_dict(r: Rule) -> dict[str, Any]:
    """The PolicyRule dict of a Rule, with kube's omitempty fields (verbs always present)."""
    out: dict[str, Any] = {"verbs": list(r.verbs)}
    if r.api_groups:
        out["apiGroups"] = list(r.api_groups)
    if r.resources:
        out["resources"] = list(r.resources)
    if r.resource_names:
        out["resourceNames"] = list(r.resource_names)
    if r.non_resource_urls:
        out["nonResourceURLs"] = list(r.non_resource_urls)
    return out


# --------------------------------------------------------------------------- allows


def _verb_matches(rule: Rule, verb: str) -> bool:
    return ALL in rule.verbs or verb in rule.verbs


def _group_matches(rule: Rule, group: str) -> bool:
    return ALL in rule.api_groups or group in rule.api_groups


def _resource_matches(rule: Rule, combined: str, subresource: str) -> bool:
    for r in rule.resources:
        if r == ALL or r == combined:
            return True
        # "*/<subresource>" matches that subresource of every resource
        if subresource and len(r) == len(subresource) + 2 and r.startswith("*/") and r.endswith(subresource):
            return True
    return False


def _name_matches(rule: Rule, name: str) -> bool:
    return not rule.resource_names or name in rule.resource_names


def _url_matches(rule: Rule, path: str) -> bool:
    for u in rule.non_resource_urls:
        if u == ALL or u == path:
            return True
        if u.endswith("*") and path.startswith(u.rstrip("*")):
            return True
    return False


def rule_allows(rule: Rule, *, verb: str, is_resource_request: bool, api_group: str = "", resource: str = "",
                subresource: str = "", name: str = "", path: str = "") -> bool:
    """kube's ``RuleAllows``: does this rule allow the request?"""
    if not _verb_matches(rule, verb):
        return False
    if is_resource_request:
        combined = f"{resource}/{subresource}" if subresource else resource
        return (_group_matches(rule, api_group) and _resource_matches(rule, combined, subresource)
                and _name_matches(rule, name))
    return _url_matches(rule, path)


# --------------------------------------------------------------------------- covers


def breakdown(rule: Rule) -> list[Rule]:
    """One rule per (group, resource, verb[, name]) and per (url, verb), as kube's ``BreakdownRule``."""
    out: list[Rule] = []
    for g in rule.api_groups:
        for res in rule.resources:
            for v in rule.verbs:
                if rule.resource_names:
                    out.extend(Rule(verbs=(v,), api_groups=(g,), resources=(res,), resource_names=(n,))
                               for n in rule.resource_names)
                else:
                    out.append(Rule(verbs=(v,), api_groups=(g,), resources=(res,)))
    for u in rule.non_resource_urls:
        for v in rule.verbs:
            out.append(Rule(verbs=(v,), non_resource_urls=(u,)))
    return out


def _has_all(have: Sequence[str], want: Iterable[str]) -> bool:
    return all(w in have for w in want)


def _resources_cover(have: Sequence[str], want: Sequence[str]) -> bool:
    if ALL in have or _has_all(have, want):
        return True
    for path in want:
        if path in have:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in have:
            return False
    return True


def _url_covers(owner: str, sub: str) -> bool:
    return owner == sub or (owner.endswith("*") and sub.startswith(owner.rstrip("*")))


def _rule_covers(owner: Rule, sub: Rule) -> bool:
    if not (ALL in owner.verbs or _has_all(owner.verbs, sub.verbs)):
        return False
    if not (ALL in owner.api_groups or _has_all(owner.api_groups, sub.api_groups)):
        return False
    if not _resources_cover(owner.resources, sub.resources):
        return False
    if not all(any(_url_covers(o, u) for o in owner.non_resource_urls) for u in sub.non_resource_urls):
        return False
    if not sub.resource_names:
        return not owner.resource_names
    return not owner.resource_names or _has_all(owner.resource_names, sub.resource_names)


def covers(owner_rules: Sequence[Rule], servant_rules: Iterable[Rule]) -> tuple[bool, list[Rule]]:
    """kube's ``Covers``: whether the owner's rules grant everything the servant rules grant, and
    the broken-down servant rules that are not covered."""
    missing = [sub for r in servant_rules for sub in breakdown(r)
               if not any(_rule_covers(o, sub) for o in owner_rules)]
    return not missing, missing


def compact_rules(rules: Iterable[Rule]) -> list[Rule]:
    """kube's ``CompactRules``: simple rules (one group, one resource, at most one name, no URLs)
    on the same resource (and name) merged into one rule with all their verbs."""
    out: list[Rule] = []
    simple: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for r in rules:
        if (len(r.resource_names) <= 1 and not r.non_resource_urls and len(r.api_groups) == 1
                and len(r.resources) == 1):
            simple.setdefault((r.api_groups[0], r.resources[0], r.resource_names), []).extend(r.verbs)
        else:
            out.append(r)
    for (g, res, names), verbs in simple.items():
        out.append(Rule(verbs=tuple(verbs), api_groups=(g,), resources=(res,), resource_names=names))
    return out


def go_quote_list(vals: Iterable[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in vals) + "]"


def compact_string(r: Rule) -> str:
    """kube's ``CompactString``: ``{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}``."""
    parts = []
    if r.api_groups:
        parts.append("APIGroups:" + go_quote_list(r.api_groups))
    if r.resources:
        parts.append("Resources:" + go_quote_list(r.resources))
    if r.non_resource_urls:
        parts.append("NonResourceURLs:" + go_quote_list(r.non_resource_urls))
    if r.resource_names:
        parts.append("ResourceNames:" + go_quote_list(r.resource_names))
    if r.verbs:
        parts.append("Verbs:" + go_quote_list(r.verbs))
    return "{" + ", ".join(parts) + "}"
