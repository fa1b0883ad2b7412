"""apiregistration.k8s.io/v1 APIService, as kube-aggregator's ``ValidateAPIService``."""

from __future__ import annotations

from typing import Any

from k8py.api.errors import invalid, required
from k8py.api.validation.meta import (
    Errs,
    d_,
    i_,
    is_dns1035_label,
    is_dns1123_subdomain,
    is_valid_path_segment_name,
    is_valid_port_num,
    s_,
    validate_object_meta,
    validate_object_meta_update,
)


def validate_api_service(obj: dict[str, Any]) -> Errs:
    spec = d_(obj.get("spec"))
    group, version = s_(spec.get("group")), s_(spec.get("version"))
    want = f"{version}.{group}"

    def name_rule(name: str, prefix: bool) -> list[str]:
        bad = is_valid_path_segment_name(name)
        if bad:
            return bad
        return [] if name == want else [f'must be `spec.version+"."+spec.group`: "{want}"']

    errs = validate_object_meta(obj.get("metadata"), False, name_rule)
    if not group and version != "v1":
        errs.append(required("spec.group", "only v1 may have an empty group and it better be legacy kube"))
    if group:
        errs += [invalid("spec.group", group, e) for e in is_dns1123_subdomain(group)]
    errs += [invalid("spec.version", version, e) for e in is_dns1035_label(version)]
    gpm = i_(spec.get("groupPriorityMinimum")) or 0
    if gpm <= 0 or gpm > 20000:
        errs.append(invalid("spec.groupPriorityMinimum", gpm, "must be positive and less than 20000"))
    vp = i_(spec.get("versionPriority")) or 0
    if vp <= 0 or vp > 1000:
        errs.append(invalid("spec.versionPriority", vp, "must be positive and less than 1000"))
    ca = s_(spec.get("caBundle"))
    skip = spec.get("insecureSkipTLSVerify") is True
    svc = spec.get("service")
    if svc is None:
        if ca:
            errs.append(invalid("spec.caBundle", f"{len(ca) * 3 // 4} bytes", "local APIServices may not have a caBundle"))
        if skip:
            errs.append(invalid("spec.insecureSkipTLSVerify", True, "local APIServices may not have "
                                                                     "insecureSkipTLSVerify"))
        return errs
    svc = d_(svc)
    if not s_(svc.get("namespace")):
        errs.append(required("spec.service.namespace"))
    if not s_(svc.get("name")):
        errs.append(required("spec.service.name"))
    port = i_(svc.get("port"))
    if port is not None:
        errs += [invalid("spec.service.port", port, e) for e in is_valid_port_num(port)]
    if skip and ca:
        errs.append(invalid("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present"))
    return errs


def validate_api_service_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + validate_api_service(new)


def validate_api_service_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    for i, c in enumerate(d_(new.get("status")).get("conditions") or []):
        c = d_(c)
        if c.get("status") not in ("True", "False", "Unknown"):
            errs.append(invalid(f"status.conditions[{i}].status", c.get("status"),
                                "must be True, False, or Unknown"))
        if not s_(c.get("type")):
            errs.append(required(f"status.conditions[{i}].type"))
    return errs
