"""Pod scheduling fields: tolerations, DNS config, affinity, topology spread
(``pkg/apis/core/validation``)."""

from __future__ import annotations

from typing import Any

from k8py.api.errors import duplicate, forbidden, invalid, not_supported, required
from k8py.api.validation.meta import (
    Errs,
    child,
    d_,
    i_,
    index,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    l_,
    s_,
    validate_ip,
    validate_label_name,
    validate_label_selector,
)

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def validate_tolerations(tols: Any, path: str) -> Errs:
    errs: Errs = []
    for i, t in enumerate(l_(tols)):
        t = d_(t)
        ip = index(path, i)
        k = s_(t.get("key"))
        op = t.get("operator") or ""
        eff = t.get("effect") or ""
        if k:
            errs += validate_label_name(k, child(ip, "key"))
        if not k and op != "Exists":
            errs.append(invalid(child(ip, "operator"), op,
                                "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
        if t.get("tolerationSeconds") is not None and eff != "NoExecute":
            errs.append(invalid(child(ip, "effect"), eff, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        v = s_(t.get("value"))
        if op in ("Equal", ""):
            msgs = is_label_value(v)
            if msgs:
                errs.append(invalid(child(ip, "operator"), v, ";".join(msgs)))
        elif op == "Exists":
            if v:
                errs.append(invalid(child(ip, "operator"), v, "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(child(ip, "operator"), op, ("Equal", "Exists")))
        if eff and eff not in TAINT_EFFECTS:
            errs.append(not_supported(child(ip, "effect"), eff, TAINT_EFFECTS))
    return errs


def validate_dns_config(cfg: Any, policy: Any, path: str) -> Errs:
    errs: Errs = []
    if policy == "None" and not isinstance(cfg, dict):
        return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
    if not isinstance(cfg, dict):
        return []
    ns = l_(cfg.get("nameservers"))
    if policy == "None" and not ns:
        errs.append(required(child(path, "nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    if len(ns) > 3:
        errs.append(invalid(child(path, "nameservers"), ns, "must not have more than 3 nameservers"))
    for i, n in enumerate(ns):
        errs += validate_ip(index(child(path, "nameservers"), i), s_(n))
    searches = l_(cfg.get("searches"))
    if len(searches) > 32:
        errs.append(invalid(child(path, "searches"), searches, "must not have more than 32 search paths"))
    for i, s in enumerate(searches):
        s = s_(s)
        if s == ".":
            continue
        errs += [invalid(index(child(path, "searches"), i), s, m) for m in is_dns1123_subdomain(s.rstrip("."))]
    for i, o in enumerate(l_(cfg.get("options"))):
        if not s_(d_(o).get("name")):
            errs.append(required(child(index(child(path, "options"), i), "name"), "Option.Name must not be empty"))
    return errs


def validate_affinity(aff: Any, path: str) -> Errs:
    if not isinstance(aff, dict):
        return []
    errs: Errs = []
    na = d_(aff.get("nodeAffinity"))
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    rp = child(child(path, "nodeAffinity"), "requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(req, dict):
        terms = l_(req.get("nodeSelectorTerms"))
        if not terms:
            errs.append(required(child(rp, "nodeSelectorTerms"), "must have at least one node selector term"))
        for i, term in enumerate(terms):
            errs += _node_selector_term(d_(term), index(child(rp, "nodeSelectorTerms"), i))
    pp = child(child(path, "nodeAffinity"), "preferredDuringSchedulingIgnoredDuringExecution")
    for i, pref in enumerate(l_(na.get("preferredDuringSchedulingIgnoredDuringExecution"))):
        pref = d_(pref)
        w = i_(pref.get("weight"))
        if w is not None and not 1 <= w <= 100:
            errs.append(invalid(child(index(pp, i), "weight"), w, "must be in the range 1-100"))
        errs += _node_selector_term(d_(pref.get("preference")), child(index(pp, i), "preference"))
    for kind in ("podAffinity", "podAntiAffinity"):
        pa = d_(aff.get(kind))
        kp = child(path, kind)
        for i, term in enumerate(l_(pa.get("requiredDuringSchedulingIgnoredDuringExecution"))):
            errs += _pod_affinity_term(d_(term), index(child(kp, "requiredDuringSchedulingIgnoredDuringExecution"), i))
        for i, wt in enumerate(l_(pa.get("preferredDuringSchedulingIgnoredDuringExecution"))):
            wt = d_(wt)
            wp = index(child(kp, "preferredDuringSchedulingIgnoredDuringExecution"), i)
            w = i_(wt.get("weight"))
            if w is not None and not 1 <= w <= 100:
                errs.append(invalid(child(wp, "weight"), w, "must be in the range 1-100"))
            errs += _pod_affinity_term(d_(wt.get("podAffinityTerm")), child(wp, "podAffinityTerm"))
    return errs


NODE_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


def _node_selector_term(term: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    for i, r in enumerate(l_(term.get("matchExpressions"))):
        r = d_(r)
        rp = index(child(path, "matchExpressions"), i)
        op = r.get("operator")
        vals = l_(r.get("values"))
        if op in ("In", "NotIn"):
            if not vals:
                errs.append(required(child(rp, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if vals:
                errs.append(forbidden(child(rp, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        elif op in ("Gt", "Lt"):
            if len(vals) != 1:
                errs.append(required(child(rp, "values"), "must be specified single value when `operator` is 'Lt' or 'Gt'"))
        else:
            errs.append(invalid(child(rp, "operator"), op if isinstance(op, str) else "", "not a valid selector operator"))
        errs += validate_label_name(s_(r.get("key")), child(rp, "key"))
    for i, f in enumerate(l_(term.get("matchFields"))):
        f = d_(f)
        fp = index(child(path, "matchFields"), i)
        if f.get("key") != "metadata.name":
            errs.append(invalid(child(fp, "key"), s_(f.get("key")), "not a valid field selector key"))
        op = f.get("operator")
        if op not in ("In", "NotIn"):
            errs.append(invalid(child(fp, "operator"), op if isinstance(op, str) else "", "not a valid selector operator"))
        elif len(l_(f.get("values"))) != 1:
            errs.append(required(child(fp, "values"), "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"))
    return errs


def _pod_affinity_term(term: dict[str, Any], path: str) -> Errs:
    errs = validate_label_selector(term.get("labelSelector"), child(path, "labelSelector"))
    errs += validate_label_selector(term.get("namespaceSelector"), child(path, "namespaceSelector"))
    for i, ns in enumerate(l_(term.get("namespaces"))):
        errs += [invalid(index(child(path, "namespaces"), i), ns, m) for m in is_dns1123_label(s_(ns))]
    tk = s_(term.get("topologyKey"))
    if not tk:
        errs.append(required(child(path, "topologyKey"), "can not be empty"))
    else:
        errs += validate_label_name(tk, child(path, "topologyKey"))
    return errs


def validate_topology_spread(tscs: Any, path: str) -> Errs:
    errs: Errs = []
    seen: set[tuple[str, str]] = set()
    for i, c in enumerate(l_(tscs)):
        c = d_(c)
        cp = index(path, i)
        skew = i_(c.get("maxSkew"))
        if skew is None or skew <= 0:
            errs.append(invalid(child(cp, "maxSkew"), skew if skew is not None else 0, "must be greater than zero"))
        tk = s_(c.get("topologyKey"))
        if not tk:
            errs.append(required(child(cp, "topologyKey"), "can not be empty"))
        else:
            errs += validate_label_name(tk, child(cp, "topologyKey"))
        wu = c.get("whenUnsatisfiable")
        if wu not in ("DoNotSchedule", "ScheduleAnyway"):
            if not wu:
                errs.append(required(child(cp, "whenUnsatisfiable"), ""))
            else:
                errs.append(not_supported(child(cp, "whenUnsatisfiable"), wu, ("DoNotSchedule", "ScheduleAnyway")))
        pair = (tk, s_(wu))
        if pair in seen:
            errs.append(duplicate(cp, f"{{{tk}, {s_(wu)}}}"))
        seen.add(pair)
        md = i_(c.get("minDomains"))
        if md is not None and md <= 0:
            errs.append(invalid(child(cp, "minDomains"), md, "must be greater than 0"))
        errs += validate_label_selector(c.get("labelSelector"), child(cp, "labelSelector"))
    return errs
