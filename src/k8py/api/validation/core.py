"""core/v1 kinds with a workload or network shape: Pod, PodTemplate,
ReplicationController, Service, Endpoints, Namespace, Node, Binding.
"""

from __future__ import annotations

from typing import Any

from k8py.api.errors import duplicate, forbidden, invalid, not_supported, required
from k8py.api.validation.meta import (
    Errs,
    GoRaw,
    child,
    d_,
    go_map,
    go_quote,
    i_,
    index,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
    is_valid_port_num,
    key,
    l_,
    name_is_dns1035_label,
    name_is_dns_label,
    name_is_dns_subdomain,
    nonnegative,
    parse_ip,
    s_,
    semantic,
    validate_cidr,
    validate_ip,
    validate_label_name,
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
)
from k8py.api.validation.pod import (
    PORT_PROTOCOLS,
    validate_pod_spec,
    validate_pod_template_spec,
    validate_port_num_or_name,
    validate_quantity_value,
    validate_resource_name,
)
from k8py.api.validation.scheduling import TAINT_EFFECTS

# ---------------------------------------------------------------------------
# Pod

POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
POD_UPDATABLE = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
)


def validate_pod(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain)
    spec = d_(obj.get("spec"))
    errs += validate_pod_spec(spec, "spec")
    for f in ("containers", "initContainers"):
        for i, c in enumerate(l_(spec.get(f))):
            img = s_(d_(c).get("image"))
            if img and img != img.strip():
                errs.append(invalid(child(index(child("spec", f), i), "image"), img,
                                    "must not have leading or trailing whitespace"))
    if l_(spec.get("ephemeralContainers")):
        errs.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if s_(spec.get("nodeName")) and l_(spec.get("schedulingGates")):
        errs.append(forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared"))
    return errs


def _pod_spec_diff(old: Any, new: Any, indent: str = "\t") -> list[str]:
    """A compact, cmp.Diff-like listing of the top-level fields that differ."""
    old, new = d_(old), d_(new)
    lines = []
    for k in sorted(set(old) | set(new)):
        if semantic(old.get(k)) == semantic(new.get(k)):
            continue
        if k in old:
            lines.append(f"-{indent}{k}: {_compact(old[k])},")
        if k in new:
            lines.append(f"+{indent}{k}: {_compact(new[k])},")
    return lines


def _compact(v: Any) -> str:
    import orjson

    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()


def validate_pod_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += validate_pod_spec(new.get("spec"), "spec")
    nspec, ospec = d_(new.get("spec")), d_(old.get("spec"))
    for f in ("containers", "initContainers"):
        if len(l_(nspec.get(f))) != len(l_(ospec.get(f))):
            errs.append(forbidden(child("spec", f), "pod updates may not add or remove containers"))
            return errs
    ads = i_(nspec.get("activeDeadlineSeconds"))
    old_ads = i_(ospec.get("activeDeadlineSeconds"))
    if ads is not None:
        if ads < 0 or ads > 2**31 - 1:
            return errs  # range already reported by the spec validation
        if old_ads is not None and old_ads < ads:
            errs.append(invalid("spec.activeDeadlineSeconds", ads, "must be less than or equal to previous value"))
            return errs
    elif old_ads is not None:
        errs.append(invalid("spec.activeDeadlineSeconds", "null", "must not update from a positive integer to nil value"))

    munged = dict(nspec)
    for f in ("containers", "initContainers"):
        cs = []
        for c, oc in zip(l_(nspec.get(f)), l_(ospec.get(f)), strict=False):
            c = dict(d_(c))
            if "image" in d_(oc):
                c["image"] = d_(oc)["image"]
            else:
                c.pop("image", None)
            cs.append(c)
        if f in nspec:
            munged[f] = cs
    for f in ("activeDeadlineSeconds", "tolerations"):
        if f in ospec:
            munged[f] = ospec[f]
        else:
            munged.pop(f, None)
    errs += _only_added_tolerations(l_(nspec.get("tolerations")), l_(ospec.get("tolerations")))
    old_grace = i_(ospec.get("terminationGracePeriodSeconds"))
    if old_grace is not None and old_grace < 0 and i_(nspec.get("terminationGracePeriodSeconds")) == 1:
        munged["terminationGracePeriodSeconds"] = ospec["terminationGracePeriodSeconds"]
    # Scheduling gates may only be removed.
    old_gates = [d_(g).get("name") for g in l_(ospec.get("schedulingGates"))]
    new_gates = [d_(g).get("name") for g in l_(nspec.get("schedulingGates"))]
    if set(new_gates) <= set(old_gates):
        if "schedulingGates" in ospec:
            munged["schedulingGates"] = ospec["schedulingGates"]
        else:
            munged.pop("schedulingGates", None)
    if semantic(munged) != semantic(ospec):
        diff = "\n".join(["  v1.PodSpec{", *(_pod_spec_diff(ospec, munged)), "  }"])
        errs.append(forbidden("spec", "pod updates may not change fields other than " + ",".join(POD_UPDATABLE)
                              + "\n" + diff))
    return errs


def _only_added_tolerations(new: list[Any], old: list[Any]) -> Errs:
    for o in old:
        o = d_(o)
        found = False
        for n in new:
            n = d_(n)
            oc = dict(o)
            oc["tolerationSeconds"] = n.get("tolerationSeconds")
            if semantic(oc) == semantic(n):
                found = True
                break
        if not found:
            return [forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds")]
    return []


def validate_pod_status_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    status, ostatus = d_(new.get("status")), d_(old.get("status"))
    if s_(d_(new.get("spec")).get("nodeName")) != s_(d_(old.get("spec")).get("nodeName")):
        errs.append(forbidden("status.nodeName", "may not be changed directly"))
    phase = status.get("phase")
    if phase is not None and phase not in POD_PHASES:
        errs.append(not_supported("status.phase", phase, POD_PHASES))
    ophase = ostatus.get("phase")
    if ophase in ("Succeeded", "Failed") and phase not in (ophase, None):
        errs.append(forbidden("status.phase", f"cannot transition from terminal phase {ophase} to {phase}"))
    nn = s_(status.get("nominatedNodeName"))
    if nn and nn != s_(ostatus.get("nominatedNodeName")):
        errs += [invalid("status.nominatedNodeName", nn, m) for m in is_dns1123_subdomain(nn)]
    for f in ("podIPs", "hostIPs"):
        seen: set[str] = set()
        for i, ip in enumerate(l_(status.get(f))):
            a = s_(d_(ip).get("ip"))
            e = validate_ip(index(child("status", f), i), a)
            errs += e
            if not e and a in seen:
                errs.append(duplicate(index(child("status", f), i), a))
            seen.add(a)
    for i, c in enumerate(l_(status.get("conditions"))):
        ct = s_(d_(c).get("type"))
        errs += [invalid(child(index("status.conditions", i), "type"), ct, m) for m in is_qualified_name(ct)]
    return errs


# ---------------------------------------------------------------------------
# PodTemplate, ReplicationController


def validate_pod_template(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain)
    errs += validate_pod_template_spec(obj.get("template"), "template")
    return errs


def validate_pod_template_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += validate_pod_template_spec(new.get("template"), "template")
    return errs


def validate_replication_controller(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _rc_spec(d_(obj.get("spec")))


def validate_replication_controller_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _rc_spec(d_(new.get("spec")))


def _rc_spec(spec: dict[str, Any]) -> Errs:
    errs: Errs = []
    errs += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    sel = spec.get("selector")
    if not d_(sel):
        errs.append(required("spec.selector", ""))
    errs += validate_labels(sel, "spec.selector")
    errs += nonnegative("spec.replicas", spec.get("replicas"))
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict):
        errs.append(required("spec.template", ""))
        return errs
    labels = d_(tmpl.get("metadata")).get("labels")
    if d_(sel) and any(d_(labels).get(k) != v for k, v in d_(sel).items()):
        errs.append(invalid("spec.template.metadata.labels", go_map(labels), "`selector` does not match template `labels`"))
    errs += validate_pod_template_spec(tmpl, "spec.template")
    rp = d_(tmpl.get("spec")).get("restartPolicy")
    if rp != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy", rp if rp is not None else "", ("Always",)))
    if d_(tmpl.get("spec")).get("activeDeadlineSeconds") is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              "activeDeadlineSeconds in ReplicationController is not Supported"))
    return errs


def validate_replication_controller_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    st = d_(new.get("status"))
    for f in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"):
        errs += nonnegative(child("status", f), st.get(f))
    errs += _replica_counts(st)
    return errs


def _replica_counts(st: dict[str, Any]) -> Errs:
    errs: Errs = []
    replicas = i_(st.get("replicas")) or 0
    ready = i_(st.get("readyReplicas")) or 0
    available = i_(st.get("availableReplicas")) or 0
    if "fullyLabeledReplicas" in st and (i_(st.get("fullyLabeledReplicas")) or 0) > replicas:
        errs.append(invalid("status.fullyLabeledReplicas", i_(st.get("fullyLabeledReplicas")),
                            "cannot be greater than status.replicas"))
    if ready > replicas:
        errs.append(invalid("status.readyReplicas", ready, "cannot be greater than status.replicas"))
    if available > replicas:
        errs.append(invalid("status.availableReplicas", available, "cannot be greater than status.replicas"))
    if available > ready:
        errs.append(invalid("status.availableReplicas", available, "cannot be greater than readyReplicas"))
    return errs


replica_counts = _replica_counts

# ---------------------------------------------------------------------------
# Service

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
IP_FAMILIES = ("IPv4", "IPv6")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
TRAFFIC_POLICIES = ("Cluster", "Local")
DEFAULT_NODE_PORT_RANGE = (30000, 32767)


def _cluster_ips(spec: dict[str, Any]) -> list[str]:
    ips = [s_(x) for x in l_(spec.get("clusterIPs"))]
    if not ips and s_(spec.get("clusterIP")):
        # The service strategy fills clusterIPs from clusterIP before validation.
        ips = [s_(spec.get("clusterIP"))]
    return ips


def _is_headless(spec: dict[str, Any]) -> bool:
    ips = _cluster_ips(spec)
    return len(ips) == 1 and ips[0] == "None"


def _externally_accessible(spec: dict[str, Any]) -> bool:
    t = spec.get("type")
    return t in ("LoadBalancer", "NodePort") or (t == "ClusterIP" and bool(l_(spec.get("externalIPs"))))


def _go_service_port(p: dict[str, Any]) -> GoRaw:
    proto, port = go_quote(s_(p.get("protocol"))), i_(p.get("port")) or 0
    return GoRaw(f'core.ServicePort{{Name:"", Protocol:{proto}, AppProtocol:(*string)(nil), Port:{port}, '
                 'TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}')


def validate_endpoint_ip(ip: str, path: str, allow_loopback: bool = False) -> Errs:
    a = parse_ip(ip)
    if a is None:
        return []
    if a.is_unspecified:
        return [invalid(path, ip, f"may not be unspecified ({ip})")]
    if a.is_loopback and not allow_loopback:
        return [invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)")]
    if a.is_link_local:
        return [invalid(path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")]
    if a.is_multicast and (str(a).startswith("224.0.0.") or str(a).lower().startswith("ff02:")):
        return [invalid(path, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")]
    return []


def validate_service(obj: dict[str, Any], node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), True, name_is_dns1035_label)
    return errs + _service_spec(d_(obj.get("spec")), node_port_range)


def _service_spec(spec: dict[str, Any], node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE) -> Errs:
    errs: Errs = []
    ports = l_(spec.get("ports"))
    stype = spec.get("type")
    headless = _is_headless(spec)
    cips = _cluster_ips(spec)
    if not ports and not headless and stype != "ExternalName":
        errs.append(required("spec.ports", ""))
    if stype == "LoadBalancer":
        for i, p in enumerate(ports):
            if i_(d_(p).get("port")) == 10250:
                errs.append(invalid(index("spec.ports", i), 10250,
                                    "may not expose port 10250 externally since it is used by kubelet"))
        if headless:
            errs.append(invalid("spec.clusterIPs[0]", "None", "may not be set to 'None' for LoadBalancer services"))
    elif stype == "NodePort":
        if headless:
            errs.append(invalid("spec.clusterIPs[0]", "None", "may not be set to 'None' for NodePort services"))
    elif stype == "ExternalName":
        if cips:
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if l_(spec.get("ipFamilies")):
            errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = s_(spec.get("externalName")).removesuffix(".")
        if not cname:
            errs.append(required("spec.externalName", ""))
        else:
            errs += [invalid("spec.externalName", cname, m) for m in is_dns1123_subdomain(cname)]
    names: set[str] = set()
    for i, p in enumerate(ports):
        p = d_(p)
        pp = index("spec.ports", i)
        name = s_(p.get("name"))
        if len(ports) > 1 and not name:
            errs.append(required(child(pp, "name"), ""))
        elif name:
            errs += [invalid(child(pp, "name"), name, m) for m in is_dns1123_label(name)]
            if name in names:
                errs.append(duplicate(child(pp, "name"), name))
            names.add(name)
        port = i_(p.get("port")) or 0
        errs += [invalid(child(pp, "port"), port, m) for m in is_valid_port_num(port)]
        proto = p.get("protocol")
        if not proto:
            errs.append(required(child(pp, "protocol"), ""))
        elif proto not in PORT_PROTOCOLS:
            errs.append(not_supported(child(pp, "protocol"), proto, PORT_PROTOCOLS))
        if "targetPort" in p:
            errs += validate_port_num_or_name(p.get("targetPort"), child(pp, "targetPort"))
        ap = p.get("appProtocol")
        if isinstance(ap, str):
            errs += [invalid(child(pp, "appProtocol"), ap, m) for m in is_qualified_name(ap)]
    if spec.get("selector") is not None:
        errs += validate_labels(spec.get("selector"), "spec.selector")
    sa = spec.get("sessionAffinity")
    if not sa:
        errs.append(required("spec.sessionAffinity", ""))
    elif sa not in SESSION_AFFINITIES:
        errs.append(not_supported("spec.sessionAffinity", sa, SESSION_AFFINITIES))
    if sa == "ClientIP":
        cfg = d_(d_(spec.get("sessionAffinityConfig")).get("clientIP"))
        ts = i_(cfg.get("timeoutSeconds"))
        if not spec.get("sessionAffinityConfig"):
            errs.append(required("spec.sessionAffinityConfig", "when session affinity type is ClientIP"))
        elif not cfg:
            errs.append(required("spec.sessionAffinityConfig.clientIP", "when session affinity type is ClientIP"))
        elif ts is None:
            errs.append(required("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                                 "when session affinity type is ClientIP"))
        elif not 0 < ts <= 86400:
            errs.append(invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", ts,
                                "must be greater than 0 and less than 86400"))
    elif sa == "None" and spec.get("sessionAffinityConfig") is not None:
        errs.append(forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"))
    errs += _validate_cluster_ips(spec)
    for i, ip in enumerate(l_(spec.get("externalIPs"))):
        e = validate_ip(index("spec.externalIPs", i), s_(ip))
        errs += e or validate_endpoint_ip(s_(ip), index("spec.externalIPs", i))
    if not stype:
        errs.append(required("spec.type", ""))
    elif stype not in SERVICE_TYPES:
        errs.append(not_supported("spec.type", stype, SERVICE_TYPES))
    lo, hi = node_port_range
    for i, p in enumerate(ports):
        np_ = i_(d_(p).get("nodePort"))
        if not np_:
            continue
        if stype == "ClusterIP":
            errs.append(forbidden(child(index("spec.ports", i), "nodePort"), "may not be used when `type` is 'ClusterIP'"))
        elif stype in ("NodePort", "LoadBalancer") and not lo <= np_ <= hi:
            errs.append(invalid(child(index("spec.ports", i), "nodePort"), np_,
                                f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}"))
    seen_np: set[tuple[str, int]] = set()
    seen_p: set[tuple[str, int]] = set()
    for i, p in enumerate(ports):
        p = d_(p)
        np_ = i_(p.get("nodePort"))
        proto = s_(p.get("protocol"))
        if np_:
            if (proto, np_) in seen_np:
                errs.append(duplicate(child(index("spec.ports", i), "nodePort"), np_))
            seen_np.add((proto, np_))
        k = (proto, i_(p.get("port")) or 0)
        if k in seen_p:
            errs.append(duplicate(index("spec.ports", i), _go_service_port(p)))
        seen_p.add(k)
    ranges = l_(spec.get("loadBalancerSourceRanges"))
    if ranges:
        fp = "spec.LoadBalancerSourceRanges"
        if stype != "LoadBalancer":
            errs.append(forbidden(fp, "may only be used when `type` is 'LoadBalancer'"))
        for i, r in enumerate(ranges):
            errs += validate_cidr(index(fp, i), s_(r).strip())
    if spec.get("allocateLoadBalancerNodePorts") is not None and stype != "LoadBalancer":
        errs.append(forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"))
    if stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        errs.append(required("allocateLoadBalancerNodePorts", ""))
    lbc = spec.get("loadBalancerClass")
    if isinstance(lbc, str):
        if stype != "LoadBalancer":
            errs.append(forbidden("spec.loadBalancerClass", "may only be used when service type is 'LoadBalancer'"))
        else:
            errs += [invalid("spec.loadBalancerClass", lbc, m) for m in is_qualified_name(lbc)]
    etp = spec.get("externalTrafficPolicy")
    if not _externally_accessible(spec):
        if etp:
            errs.append(invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services"))
    elif not etp:
        errs.append(required("spec.externalTrafficPolicy", ""))
    elif etp not in TRAFFIC_POLICIES:
        errs.append(not_supported("spec.externalTrafficPolicy", etp, TRAFFIC_POLICIES))
    hc = i_(spec.get("healthCheckNodePort"))
    if hc and not (stype == "LoadBalancer" and etp == "Local"):
        errs.append(invalid("spec.healthCheckNodePort", hc,
                            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    itp = spec.get("internalTrafficPolicy")
    if itp is None:
        if stype in ("NodePort", "LoadBalancer", "ClusterIP"):
            errs.append(required("spec.internalTrafficPolicy", ""))
    elif itp not in TRAFFIC_POLICIES:
        errs.append(not_supported("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES))
    td = spec.get("trafficDistribution")
    if td is not None and td not in ("PreferClose", "PreferSameZone", "PreferSameNode"):
        errs.append(not_supported("spec.trafficDistribution", td, ("PreferClose", "PreferSameZone", "PreferSameNode")))
    return errs


def _validate_cluster_ips(spec: dict[str, Any]) -> Errs:
    if spec.get("type") == "ExternalName":
        return []
    errs: Errs = []
    cip = s_(spec.get("clusterIP"))
    cips = _cluster_ips(spec)
    if cip:
        if cips and cips[0] != cip:
            errs.append(invalid("spec.clusterIPs", cips, "first value must match `clusterIP`"))
    elif cips:
        errs.append(invalid("spec.clusterIPs", cips, "must be empty when `clusterIP` is not specified"))
    seen: set[str] = set()
    fams = [s_(f) for f in l_(spec.get("ipFamilies"))]
    for i, fam in enumerate(fams):
        if fam not in IP_FAMILIES:
            errs.append(not_supported(index("spec.ipFamilies", i), fam, IP_FAMILIES))
        if fam in seen:
            errs.append(duplicate(index("spec.ipFamilies", i), fam))
        seen.add(fam)
    pol = spec.get("ipFamilyPolicy")
    if pol is not None and pol not in IP_FAMILY_POLICIES:
        errs.append(not_supported("spec.ipFamilyPolicy", pol, IP_FAMILY_POLICIES))
    for i, ip in enumerate(cips):
        if i == 0 and ip == "None":
            if len(cips) > 1:
                errs.append(invalid("spec.clusterIPs", cips, "'None' must be the first and only value"))
            continue
        errs += validate_ip(index("spec.clusterIPs", i), ip)
    if len(cips) > 2:
        errs.append(invalid("spec.clusterIPs", cips, "may only hold up to 2 values"))
    if errs:
        return errs
    if len(cips) == 2:
        a, b = parse_ip(cips[0]), parse_ip(cips[1])
        if a is not None and b is not None and a.version == b.version:
            errs.append(invalid("spec.clusterIPs", cips, "may specify no more than one IP for each IP family"))
    if cips and cips[0] != "None":
        for i, ip in enumerate(cips[: len(fams)]):
            a = parse_ip(ip)
            if a is None:
                continue
            if fams[i] == "IPv4" and a.version == 6:
                errs.append(invalid(index("spec.clusterIPs", i), ip,
                                    f"expected an IPv4 value as indicated by `ipFamilies[{i}]`"))
            if fams[i] == "IPv6" and a.version == 4:
                errs.append(invalid(index("spec.clusterIPs", i), ip,
                                    f"expected an IPv6 value as indicated by `ipFamilies[{i}]`"))
    return errs


def _needs_health_check(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


validate_cluster_ips = _validate_cluster_ips  # kube's ValidateServiceClusterIPsRelatedFields (for allocation)


def validate_service_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    ns, os_ = d_(new.get("spec")), d_(old.get("spec"))
    if "ExternalName" not in (ns.get("type"), os_.get("type")) and not (_is_headless(ns) and _is_headless(os_)):
        nips, oips = _cluster_ips(ns), _cluster_ips(os_)
        if len(nips) == len(oips):
            for i, ip in enumerate(oips):
                if ip != nips[i]:
                    errs.append(invalid(index("spec.clusterIPs", i), nips, "may not change once set"))
        elif len(oips) > len(nips):
            if not nips:
                errs.append(invalid("spec.clusterIPs[0]", nips, "primary clusterIP can not be unset"))
            elif nips[0] != oips[0]:
                errs.append(invalid("spec.clusterIPs[0]", nips, "may not change once set"))
            if len(nips) == 1 and ns.get("ipFamilyPolicy") != "SingleStack":
                errs.append(invalid("spec.clusterIPs[0]", nips,
                                    "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP"))
        elif oips and nips[0] != oips[0]:
            errs.append(invalid("spec.clusterIPs[0]", nips, "may not change once set"))
        nf, of = l_(ns.get("ipFamilies")), l_(os_.get("ipFamilies"))
        if nf and of and nf[0] != of[0]:
            errs.append(invalid("spec.ipFamilies[0]", nf[0], "may not change once set"))
    olbc, nlbc = os_.get("loadBalancerClass"), ns.get("loadBalancerClass")
    if os_.get("type") == "LoadBalancer" and ns.get("type") == "LoadBalancer" and olbc != nlbc:
        errs.append(invalid("spec.loadBalancerClass", nlbc if nlbc is not None else "null", "may not change once set"))
    # validateServiceExternalTrafficFieldsUpdate
    if _needs_health_check(os_) and _needs_health_check(ns) and \
            i_(ns.get("healthCheckNodePort")) != i_(os_.get("healthCheckNodePort")):
        errs.append(forbidden("spec.healthCheckNodePort", "field is immutable"))
    errs += _service_spec(ns)
    return errs


def validate_service_status_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    lb = d_(d_(new.get("status")).get("loadBalancer"))
    for i, ing in enumerate(l_(lb.get("ingress"))):
        ing = d_(ing)
        ip = index("status.loadBalancer.ingress", i)
        if s_(ing.get("ip")):
            errs += validate_ip(child(ip, "ip"), s_(ing.get("ip")))
        if s_(ing.get("hostname")):
            h = s_(ing.get("hostname"))
            errs += [invalid(child(ip, "hostname"), h, m) for m in is_dns1123_subdomain(h)]
            if parse_ip(h) is not None:
                errs.append(invalid(child(ip, "hostname"), h, "must be a DNS name, not an IP address"))
        mode = ing.get("ipMode")
        if mode is not None:
            if not s_(ing.get("ip")):
                errs.append(forbidden(child(ip, "ipMode"), "may not be specified when `ip` is not set"))
            elif mode not in ("Proxy", "VIP"):
                errs.append(not_supported(child(ip, "ipMode"), mode, ("Proxy", "VIP")))
    return errs


# ---------------------------------------------------------------------------
# Endpoints


def validate_endpoints(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _endpoints_body(obj)


def validate_endpoints_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _endpoints_body(new)


def _endpoints_body(obj: dict[str, Any]) -> Errs:
    errs: Errs = []
    for i, ss in enumerate(l_(obj.get("subsets"))):
        ss = d_(ss)
        sp = index("subsets", i)
        addrs, nraddrs = l_(ss.get("addresses")), l_(ss.get("notReadyAddresses"))
        if not addrs and not nraddrs:
            errs.append(required(sp, "must specify `addresses` or `notReadyAddresses`"))
        for f, lst in (("addresses", addrs), ("notReadyAddresses", nraddrs)):
            for j, a in enumerate(lst):
                a = d_(a)
                ap = index(child(sp, f), j)
                ipv = s_(a.get("ip"))
                e = validate_ip(child(ap, "ip"), ipv)
                # Deviation: kube refuses loopback here; k8py's own API server (the
                # "kubernetes" service) listens on loopback on a single machine.
                errs += e or validate_endpoint_ip(ipv, child(ap, "ip"), allow_loopback=True)
                hn = s_(a.get("hostname"))
                if hn:
                    errs += [invalid(child(ap, "hostname"), hn, m) for m in is_dns1123_label(hn)]
                nn = a.get("nodeName")
                if isinstance(nn, str) and nn:
                    errs += [invalid(child(ap, "nodeName"), nn, m) for m in is_dns1123_subdomain(nn)]
        ports = l_(ss.get("ports"))
        for j, p in enumerate(ports):
            p = d_(p)
            pp = index(child(sp, "ports"), j)
            name = s_(p.get("name"))
            if len(ports) > 1 and not name:
                errs.append(required(child(pp, "name"), ""))
            elif name:
                errs += [invalid(child(pp, "name"), name, m) for m in is_dns1123_label(name)]
            port = i_(p.get("port")) or 0
            errs += [invalid(child(pp, "port"), port, m) for m in is_valid_port_num(port)]
            proto = p.get("protocol")
            if not proto:
                errs.append(required(child(pp, "protocol"), ""))
            elif proto not in PORT_PROTOCOLS:
                errs.append(not_supported(child(pp, "protocol"), proto, PORT_PROTOCOLS))
    return errs


# ---------------------------------------------------------------------------
# Namespace


def validate_namespace(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), False, name_is_dns_label)
    errs += _namespace_finalizers(obj)
    return errs


def _namespace_finalizers(obj: dict[str, Any]) -> Errs:
    errs: Errs = []
    for f in l_(d_(obj.get("spec")).get("finalizers")):
        f = s_(f)
        msgs = is_qualified_name(f)
        errs += [invalid("spec.finalizers", f, m) for m in msgs]
        if not msgs and "/" not in f and f not in ("kubernetes", "orphan", "foregroundDeletion"):
            errs.append(invalid("spec.finalizers", f, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def validate_namespace_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata"))


def validate_namespace_status_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    phase = d_(new.get("status")).get("phase", "")
    if not d_(new.get("metadata")).get("deletionTimestamp"):
        if phase != "Active":
            errs.append(invalid("status.Phase", phase, "may only be 'Active' if `deletionTimestamp` is empty"))
    elif phase != "Terminating":
        errs.append(invalid("status.Phase", phase, "may only be 'Terminating' if `deletionTimestamp` is not empty"))
    return errs


def validate_namespace_finalize_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _namespace_finalizers(new)


# ---------------------------------------------------------------------------
# Node


def _node_resources(lst: Any, path: str) -> Errs:
    errs: Errs = []
    for name, value in d_(lst).items():
        fp = key(path, name)
        errs += validate_resource_name(name, fp)
        errs += validate_quantity_value(name, value, fp)[1]
    return errs


def validate_node(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), False, name_is_dns_subdomain) + _node_body(obj)


def _node_body(obj: dict[str, Any]) -> Errs:
    errs: Errs = []
    spec = d_(obj.get("spec"))
    seen: set[tuple[str, str]] = set()
    for i, t in enumerate(l_(spec.get("taints"))):
        t = d_(t)
        tp = index("spec.taints", i)
        k = s_(t.get("key"))
        errs += validate_label_name(k, child(tp, "key"))
        v = s_(t.get("value"))
        errs += [invalid(child(tp, "value"), v, m) for m in is_label_value(v)]
        eff = s_(t.get("effect"))
        if not eff:
            errs.append(required(child(tp, "effect"), ""))
        elif eff not in TAINT_EFFECTS:
            errs.append(not_supported(child(tp, "effect"), eff, TAINT_EFFECTS))
        if (k, eff) in seen:
            errs.append(duplicate(tp, GoRaw(f"core.Taint{{Key:{go_quote(k)}, Value:{go_quote(v)}, Effect:{go_quote(eff)}}}")))
        seen.add((k, eff))
    cidrs = [s_(c) for c in l_(spec.get("podCIDRs"))]
    if s_(spec.get("podCIDR")) and not cidrs:
        cidrs = [s_(spec.get("podCIDR"))]
    for i, c in enumerate(cidrs):
        errs += validate_cidr(index("spec.podCIDRs", i), c)
    if len(cidrs) > 2:
        errs.append(invalid("spec.podCIDRs", cidrs, "may contain at most 2 CIDRs"))
    status = d_(obj.get("status"))
    errs += _node_resources(status.get("capacity"), "status.capacity")
    errs += _node_resources(status.get("allocatable"), "status.allocatable")
    for i, a in enumerate(l_(status.get("addresses"))):
        t = d_(a).get("type")
        if t not in ("Hostname", "ExternalIP", "InternalIP", "ExternalDNS", "InternalDNS"):
            errs.append(not_supported(child(index("status.addresses", i), "type"), t if t is not None else "",
                                      ("ExternalDNS", "ExternalIP", "Hostname", "InternalDNS", "InternalIP")))
    return errs


def validate_node_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _node_body(new)
    ns, os_ = d_(new.get("spec")), d_(old.get("spec"))
    oc = l_(os_.get("podCIDRs")) or ([os_["podCIDR"]] if s_(os_.get("podCIDR")) else [])
    nc = l_(ns.get("podCIDRs")) or ([ns["podCIDR"]] if s_(ns.get("podCIDR")) else [])
    if oc and nc != oc:
        errs.append(forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid"))
    op, np_ = s_(os_.get("providerID")), s_(ns.get("providerID"))
    if op and op != np_:
        errs.append(forbidden("spec.providerID", "node updates may not change providerID except from \"\" to valid"))
    return errs


# ---------------------------------------------------------------------------
# Binding


def validate_binding(obj: dict[str, Any]) -> Errs:
    errs: Errs = []
    target = d_(obj.get("target"))
    k = s_(target.get("kind"))
    if k and k != "Node":
        errs.append(not_supported("target.kind", k, ("Node", "<empty>")))
    if not s_(target.get("name")):
        errs.append(required("target.name", ""))
    return errs
