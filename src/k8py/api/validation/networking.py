"""networking.k8s.io/v1: Ingress, IngressClass, NetworkPolicy; discovery.k8s.io/v1 EndpointSlice."""

from __future__ import annotations

import ipaddress
from typing import Any

from k8py.api.errors import duplicate, forbidden, invalid, not_supported, required, too_long, too_many
from k8py.api.validation.core import validate_service_status_update
from k8py.api.validation.meta import (
    Errs,
    GoRaw,
    child,
    d_,
    i_,
    immutable,
    index,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_port_name,
    is_valid_port_num,
    is_wildcard_dns1123_subdomain,
    l_,
    name_is_dns_subdomain,
    parse_ip,
    s_,
    validate_cidr,
    validate_ip,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)
from k8py.api.validation.pod import PORT_PROTOCOLS

# ---------------------------------------------------------------------------
# Ingress

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
_BAD_SEQS = ("//", "/./", "/../", "%2f", "%2F")
_BAD_SUFFIXES = ("/..", "/.")


def _typed_ref(ref: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    if not s_(ref.get("name")):
        errs.append(required(child(path, "name"), ""))
    if not s_(ref.get("kind")):
        errs.append(required(child(path, "kind"), ""))
    ag = ref.get("apiGroup")
    if isinstance(ag, str) and ag:
        errs += [invalid(child(path, "apiGroup"), ag, m) for m in is_dns1123_subdomain(ag)]
    return errs


def _backend(b: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    res, svc = b.get("resource"), b.get("service")
    if res is not None and svc is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if isinstance(res, dict):
        return _typed_ref(res, child(path, "resource"))
    if not isinstance(svc, dict):
        return [invalid(path, "", "resource or service backend is required")]
    name = s_(svc.get("name"))
    if not name:
        errs.append(required(child(path, "service.name"), ""))
    else:
        errs += [invalid(child(path, "service.name"), name, m) for m in is_dns1035_label(name)]
    port = d_(svc.get("port"))
    pname, pnum = s_(port.get("name")), i_(port.get("number")) or 0
    if pname and pnum:
        errs.append(invalid(path, "", "cannot set both port name & port number"))
    elif pname:
        errs += [invalid(child(path, "service.port.name"), pname, m) for m in is_valid_port_name(pname)]
    elif pnum:
        errs += [invalid(child(path, "service.port.number"), pnum, m) for m in is_valid_port_num(pnum)]
    else:
        errs.append(required(path, "port name or number is required"))
    return errs


def _http_path(p: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    pt = p.get("pathType")
    if pt is None:
        return [required(child(path, "pathType"), "pathType must be specified")]
    value = s_(p.get("path"))
    if pt in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.append(invalid(child(path, "path"), value, "must be an absolute path"))
        if value:
            errs += [invalid(child(path, "path"), value, f"must not contain '{s}'") for s in _BAD_SEQS if s in value]
            errs += [invalid(child(path, "path"), value, f"cannot end with '{s}'") for s in _BAD_SUFFIXES
                     if value.endswith(s)]
    elif pt == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(invalid(child(path, "path"), value, "must be an absolute path"))
    else:
        errs.append(not_supported(child(path, "pathType"), pt, PATH_TYPES))
    errs += _backend(d_(p.get("backend")), child(path, "backend"))
    return errs


def _host_errors(host: str, path: str) -> Errs:
    errs: Errs = []
    if parse_ip(host) is not None:
        errs.append(invalid(path, host, "must be a DNS name, not an IP address"))
    if "*" in host:
        errs += [invalid(path, host, m) for m in is_wildcard_dns1123_subdomain(host)]
    else:
        errs += [invalid(path, host, m) for m in is_dns1123_subdomain(host)]
    return errs


def _ingress_spec(spec: dict[str, Any]) -> Errs:
    errs: Errs = []
    rules = l_(spec.get("rules"))
    if not rules and spec.get("defaultBackend") is None:
        errs.append(invalid("spec", GoRaw("[]networking.IngressRule(nil)"),
                            "either `defaultBackend` or `rules` must be specified"))
    if isinstance(spec.get("defaultBackend"), dict):
        errs += _backend(spec["defaultBackend"], "spec.defaultBackend")
    for i, r in enumerate(rules):
        r = d_(r)
        rp = index("spec.rules", i)
        host = s_(r.get("host"))
        if host:
            errs += _host_errors(host, child(rp, "host"))
        http = r.get("http")
        if isinstance(http, dict):
            paths = l_(http.get("paths"))
            if not paths:
                errs.append(required(child(rp, "http.paths"), ""))
            for j, p in enumerate(paths):
                errs += _http_path(d_(p), index(child(rp, "http.paths"), j))
    for i, tls in enumerate(l_(spec.get("tls"))):
        tls = d_(tls)
        tp = index("spec.tls", i)
        for j, h in enumerate(l_(tls.get("hosts"))):
            h = s_(h)
            hp = index(child(tp, "hosts"), j)
            if "*" in h:
                errs += [invalid(hp, h, m) for m in is_wildcard_dns1123_subdomain(h)]
            else:
                errs += [invalid(hp, h, m) for m in is_dns1123_subdomain(h)]
        sn = s_(tls.get("secretName"))
        if sn:
            errs += [invalid(child(tp, "secretName"), sn, m) for m in is_dns1123_subdomain(sn)]
    icn = spec.get("ingressClassName")
    if isinstance(icn, str):
        errs += [invalid("spec.ingressClassName", icn, m) for m in is_dns1123_subdomain(icn)]
    return errs


def validate_ingress(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _ingress_spec(d_(obj.get("spec")))


def validate_ingress_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _ingress_spec(d_(new.get("spec")))


def validate_ingress_status_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    # Ingress load balancer status has the Service status shape (ip, hostname).
    return validate_service_status_update(new, old)


# ---------------------------------------------------------------------------
# IngressClass


def _domain_prefixed_path(path: str, value: str) -> Errs:
    if not value:
        return [required(path, "")]
    parts = value.split("/", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return [invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    errs = [invalid(path, parts[0], m) for m in is_dns1123_subdomain(parts[0])]
    import re

    fmt = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
    if not re.fullmatch(fmt, parts[1]):
        errs.append(invalid(path, parts[1], f"Invalid path (regex used for validation is '{fmt}')"))
    return errs


def _ingress_class_spec(spec: dict[str, Any]) -> Errs:
    errs: Errs = []
    ctrl = s_(spec.get("controller"))
    if len(ctrl) > 250:
        errs.append(too_long("spec.controller", 250))
    errs += _domain_prefixed_path("spec.controller", ctrl)
    params = spec.get("parameters")
    if isinstance(params, dict):
        pp = "spec.parameters"
        errs += _typed_ref(params, pp)
        scope = params.get("scope")
        ns = params.get("namespace")
        if scope is None:
            pass
        elif scope not in ("Cluster", "Namespace"):
            errs.append(not_supported(child(pp, "scope"), scope, ("Cluster", "Namespace")))
        elif scope == "Namespace":
            if not s_(ns):
                errs.append(required(child(pp, "namespace"), "`parameters.scope` is set to 'Namespace'"))
            else:
                errs += [invalid(child(pp, "namespace"), ns, m) for m in is_dns1123_label(s_(ns))]
        elif scope == "Cluster" and ns is not None:
            errs.append(forbidden(child(pp, "namespace"), "`parameters.scope` is set to 'Cluster'"))
    return errs


def validate_ingress_class(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), False, name_is_dns_subdomain)
    return errs + _ingress_class_spec(d_(obj.get("spec")))


def validate_ingress_class_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += immutable("spec.controller", d_(new.get("spec")).get("controller"), d_(old.get("spec")).get("controller"))
    return errs + _ingress_class_spec(d_(new.get("spec")))


# ---------------------------------------------------------------------------
# NetworkPolicy


def _np_port(port: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    proto = port.get("protocol")
    if proto is not None and proto not in ("TCP", "UDP", "SCTP"):
        errs.append(not_supported(child(path, "protocol"), proto, ("TCP", "UDP", "SCTP")))
    p = port.get("port")
    end = i_(port.get("endPort"))
    if p is not None:
        if isinstance(p, int) and not isinstance(p, bool):
            errs += [invalid(child(path, "port"), p, m) for m in is_valid_port_num(p)]
            if end is not None:
                if end < p:
                    errs.append(invalid(child(path, "endPort"), p, "must be greater than or equal to `port`"))
                errs += [invalid(child(path, "endPort"), end, m) for m in is_valid_port_num(end)]
        else:
            if end is not None:
                errs.append(invalid(child(path, "endPort"), end, "may not be specified when `port` is non-numeric"))
            errs += [invalid(child(path, "port"), s_(p), m) for m in is_valid_port_name(s_(p))]
    elif end is not None:
        errs.append(invalid(child(path, "endPort"), end, "may not be specified when `port` is not specified"))
    return errs


def _np_peer(peer: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    n = 0
    for f in ("podSelector", "namespaceSelector"):
        if peer.get(f) is not None:
            n += 1
            errs += validate_label_selector(peer[f], child(path, f))
    ipb = peer.get("ipBlock")
    if ipb is not None:
        n += 1
        ipb = d_(ipb)
        bp = child(path, "ipBlock")
        cidr = s_(ipb.get("cidr"))
        if not cidr:
            errs.append(required(child(bp, "cidr"), ""))
        else:
            e = validate_cidr(child(bp, "cidr"), cidr)
            errs += e
            if not e:
                net = ipaddress.ip_network(cidr, strict=False)
                for i, ex in enumerate(l_(ipb.get("except"))):
                    ep = index(child(bp, "except"), i)
                    ee = validate_cidr(ep, s_(ex))
                    errs += ee
                    if ee:
                        continue
                    exn = ipaddress.ip_network(s_(ex), strict=False)
                    if exn.version != net.version or exn.network_address not in net or net.prefixlen >= exn.prefixlen:
                        errs.append(invalid(ep, s_(ex), "must be a strict subset of `cidr`"))
    if n == 0:
        errs.append(required(path, "must specify a peer"))
    elif n > 1 and ipb is not None:
        errs.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return errs


def _np_spec(spec: dict[str, Any]) -> Errs:
    errs = validate_label_selector(spec.get("podSelector"), "spec.podSelector")
    for i, rule in enumerate(l_(spec.get("ingress"))):
        rule = d_(rule)
        rp = index("spec.ingress", i)
        for j, p in enumerate(l_(rule.get("ports"))):
            errs += _np_port(d_(p), index(child(rp, "ports"), j))
        for j, peer in enumerate(l_(rule.get("from"))):
            errs += _np_peer(d_(peer), index(child(rp, "from"), j))
    for i, rule in enumerate(l_(spec.get("egress"))):
        rule = d_(rule)
        rp = index("spec.egress", i)
        for j, peer in enumerate(l_(rule.get("to"))):
            errs += _np_peer(d_(peer), index(child(rp, "to"), j))
        for j, p in enumerate(l_(rule.get("ports"))):
            errs += _np_port(d_(p), index(child(rp, "ports"), j))
    types = l_(spec.get("policyTypes"))
    if len(types) > 2:
        errs.append(invalid("spec.policyTypes", types, "may not specify more than two policyTypes"))
        return errs
    for i, t in enumerate(types):
        if t not in ("Ingress", "Egress"):
            errs.append(not_supported(index("spec.policyTypes", i), t, ("Ingress", "Egress")))
    return errs


def validate_network_policy(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _np_spec(d_(obj.get("spec")))


def validate_network_policy_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _np_spec(d_(new.get("spec")))


# ---------------------------------------------------------------------------
# EndpointSlice

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")


def _slice_body(obj: dict[str, Any]) -> Errs:
    errs: Errs = []
    at = obj.get("addressType")
    if not at:
        errs.append(required("addressType", ""))
    elif at not in ADDRESS_TYPES:
        errs.append(not_supported("addressType", at, ADDRESS_TYPES))
    eps = l_(obj.get("endpoints"))
    if len(eps) > 1000:
        errs.append(too_many("endpoints", len(eps), 1000))
    for i, ep in enumerate(eps):
        ep = d_(ep)
        p = index("endpoints", i)
        addrs = l_(ep.get("addresses"))
        ap = child(p, "addresses")
        if not addrs:
            errs.append(required(ap, "must contain at least 1 address"))
        elif len(addrs) > 100:
            errs.append(too_many(ap, len(addrs), 100))
        for j, a in enumerate(addrs):
            a = s_(a)
            aj = index(ap, j)
            if at in ("IPv4", "IPv6"):
                e = validate_ip(aj, a)
                errs += e
                ip = parse_ip(a)
                if not e and ip is not None:
                    if at == "IPv4" and ip.version != 4:
                        errs.append(invalid(aj, a, "must be an IPv4 address"))
                    if at == "IPv6" and ip.version != 6:
                        errs.append(invalid(aj, a, "must be an IPv6 address"))
            elif at == "FQDN":
                errs += _fqdn(aj, a)
        hn = ep.get("hostname")
        if isinstance(hn, str) and hn:
            errs += [invalid(child(p, "hostname"), hn, m) for m in is_dns1123_label(hn)]
        nn = ep.get("nodeName")
        if isinstance(nn, str) and nn:
            errs += [invalid(child(p, "nodeName"), nn, m) for m in is_dns1123_subdomain(nn)]
    ports = l_(obj.get("ports"))
    if len(ports) > 20000:
        errs.append(too_many("ports", len(ports), 20000))
    names: set[str] = set()
    for i, port in enumerate(ports):
        port = d_(port)
        pp = index("ports", i)
        pname = port.get("name")
        if isinstance(pname, str):
            name = pname
            if name:
                errs += [invalid(child(pp, "name"), name, m) for m in is_dns1123_label(name)]
            if name in names:
                errs.append(duplicate(child(pp, "name"), name))
            names.add(name)
        proto = port.get("protocol")
        if proto is None:
            errs.append(required(child(pp, "protocol"), ""))
        elif proto not in PORT_PROTOCOLS:
            errs.append(not_supported(child(pp, "protocol"), proto, PORT_PROTOCOLS))
        pn = i_(port.get("port"))
        if pn is not None:
            errs += [invalid(child(pp, "port"), pn, m) for m in is_valid_port_num(pn)]
        app_proto = port.get("appProtocol")
        if isinstance(app_proto, str):
            errs += [invalid(child(pp, "appProtocol"), app_proto, m) for m in is_qualified_name(app_proto)]
    return errs


def _fqdn(path: str, name: str) -> Errs:
    if not name:
        return [required(path, "")]
    name = name.removesuffix(".")
    msgs = is_dns1123_subdomain(name)
    if msgs:
        return [invalid(path, name, ",".join(msgs))]
    if len(name.split(".")) < 2:
        return [invalid(path, name, "should be a domain with at least two segments separated by dots")]
    for label in name.split("."):
        lm = is_dns1123_label(label)
        if lm:
            return [invalid(path, label, ",".join(lm))]
    return []


def validate_endpoint_slice(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _slice_body(obj)


def validate_endpoint_slice_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _slice_body(new)
    errs += immutable("addressType", new.get("addressType"), old.get("addressType"))
    return errs
