"""Storage: PersistentVolumeClaim, PersistentVolume (core/v1) and StorageClass
(storage.k8s.io/v1)."""

from __future__ import annotations

from typing import Any

from k8py.api.errors import forbidden, invalid, not_supported, required, too_long
from k8py.api.validation.core import _pod_spec_diff
from k8py.api.validation.meta import (
    Errs,
    child,
    d_,
    immutable,
    index,
    is_dns1123_subdomain,
    is_qualified_name,
    key,
    l_,
    name_is_dns_subdomain,
    s_,
    semantic,
    validate_label_name,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)
from k8py.api.validation.pod import (
    HOST_PATH_TYPES,
    VOLUME_SOURCES,
    parse_q,
    validate_quantity_value,
)

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
PV_PHASES = ("Available", "Bound", "Failed", "Pending", "Released")
PVC_PHASES = ("Bound", "Lost", "Pending")


def _access_modes(modes: list[Any], path: str) -> Errs:
    errs: Errs = []
    rwop = other = False
    for m in modes:
        if m not in ACCESS_MODES:
            errs.append(not_supported(path, m, ACCESS_MODES))
        if m == "ReadWriteOncePod":
            rwop = True
        else:
            other = True
    if rwop and other:
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def validate_pvc_spec(spec: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    modes = l_(spec.get("accessModes"))
    if not modes:
        errs.append(required(child(path, "accessModes"), "at least 1 access mode is required"))
    if spec.get("selector") is not None:
        errs += validate_label_selector(spec.get("selector"), child(path, "selector"))
    errs += _access_modes(modes, child(path, "accessModes"))
    requests = d_(d_(spec.get("resources")).get("requests"))
    sp = key(child(path, "resources"), "storage")
    if "storage" not in requests:
        errs.append(required(sp, ""))
    else:
        qerrs: Errs = []
        qty = parse_q(requests["storage"], sp, qerrs)
        errs += qerrs
        if qty is not None:
            if qty.sign() <= 0:
                errs.append(invalid(sp, str(qty), "must be greater than zero"))
            else:
                errs += validate_quantity_value("storage", requests["storage"], sp)[1]
    scn = spec.get("storageClassName")
    if isinstance(scn, str) and scn:
        errs += [invalid(child(path, "storageClassName"), scn, m) for m in is_dns1123_subdomain(scn)]
    vm = spec.get("volumeMode")
    if vm is not None and vm not in VOLUME_MODES:
        errs.append(not_supported(child(path, "volumeMode"), vm, VOLUME_MODES))
    for f in ("dataSource", "dataSourceRef"):
        ds = spec.get(f)
        if isinstance(ds, dict):
            if not s_(ds.get("name")):
                errs.append(required(child(child(path, f), "name"), ""))
            if not s_(ds.get("kind")):
                errs.append(required(child(child(path, f), "kind"), ""))
            if not s_(ds.get("apiGroup")) and ds.get("kind") not in (None, "", "PersistentVolumeClaim"):
                errs.append(invalid(child(child(path, f), "kind"), ds.get("kind"),
                                    "must be 'PersistentVolumeClaim' when referencing the default apiGroup"))
    return errs


def validate_pvc(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain)
    return errs + validate_pvc_spec(d_(obj.get("spec")), "spec")


def validate_pvc_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    ns, os_ = d_(new.get("spec")), d_(old.get("spec"))
    errs += validate_pvc_spec(ns, "spec")
    a, b = dict(ns), dict(os_)
    if not s_(os_.get("volumeName")):
        # The volume binder may set volumeName once.
        a.pop("volumeName", None)
        b.pop("volumeName", None)
    if not s_(os_.get("storageClassName")) and s_(ns.get("storageClassName")) and "storageClassName" not in os_:
        a.pop("storageClassName", None)
        b.pop("storageClassName", None)
    for d in (a, b):
        d.pop("volumeAttributesClassName", None)
    # Only a bound claim's resources.requests may change (expansion); the status an update
    # carries is the stored one (the strategy keeps it)
    if d_(new.get("status")).get("phase") == "Bound":
        ra, rb = dict(d_(a.get("resources"))), dict(d_(b.get("resources")))
        ra.pop("requests", None)
        rb.pop("requests", None)
        a["resources"], b["resources"] = ra, rb
    if semantic(a) != semantic(b):
        diff = "\n".join(["  core.PersistentVolumeClaimSpec{", *_pod_spec_diff(b, a), "  }"])
        errs.append(forbidden("spec", "spec is immutable after creation except resources.requests and "
                                      "volumeAttributesClassName for bound claims\n" + diff))
    nsz = d_(d_(ns.get("resources")).get("requests")).get("storage")
    osz = d_(d_(os_.get("resources")).get("requests")).get("storage")
    if nsz is not None and osz is not None:
        tmp: Errs = []
        nq, oq = parse_q(nsz, "", tmp), parse_q(osz, "", tmp)
        if nq is not None and oq is not None and nq < oq:
            # RecoverVolumeExpansionFailure (GA): a request may go back down, but not to the
            # capacity the claim has (none recorded: zero)
            status_cap = d_(d_(old.get("status")).get("capacity")).get("storage")
            sq = parse_q(status_cap, "", tmp) if status_cap is not None else None
            if sq is not None and nq <= sq:
                errs.append(forbidden("spec.resources.requests.storage", "field can not be less than status.capacity"))
    errs += immutable("volumeMode", ns.get("volumeMode"), os_.get("volumeMode"))
    return errs


def validate_pvc_status_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    st = d_(new.get("status"))
    phase = st.get("phase")
    if phase is not None and phase not in PVC_PHASES:
        errs.append(not_supported("status.phase", phase, PVC_PHASES))
    errs += _access_modes(l_(st.get("accessModes")), "status.accessModes")
    for name, value in d_(st.get("capacity")).items():
        errs += validate_quantity_value(name, value, key("status.capacity", name))[1]
    return errs


# ---------------------------------------------------------------------------
# PersistentVolume


def _pv_source_count(spec: dict[str, Any]) -> list[str]:
    return [s for s in (*VOLUME_SOURCES, "local") if spec.get(s) is not None]


def validate_pv(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), False, name_is_dns_subdomain)
    return errs + _pv_spec(d_(obj.get("spec")))


def _pv_spec(spec: dict[str, Any]) -> Errs:
    errs: Errs = []
    modes = l_(spec.get("accessModes"))
    if not modes:
        errs.append(required("spec.accessModes", "must specify at least 1 access mode"))
    errs += _access_modes(modes, "spec.accessModes")
    cap = d_(spec.get("capacity"))
    if not cap:
        errs.append(required("spec.capacity", ""))
    elif "storage" not in cap or len(cap) > 1:
        errs.append(not_supported("spec.capacity", go_resource_list(cap), ("storage",)))
    for name, value in cap.items():
        errs += validate_quantity_value(name, value, key("spec.capacity", name))[1]
    rp = spec.get("persistentVolumeReclaimPolicy")
    if rp and rp not in RECLAIM_POLICIES:
        errs.append(not_supported("spec.persistentVolumeReclaimPolicy", rp, RECLAIM_POLICIES))
    scn = spec.get("storageClassName")
    if isinstance(scn, str) and scn:
        errs += [invalid("spec.storageClassName", scn, m) for m in is_dns1123_subdomain(scn)]
    vm = spec.get("volumeMode")
    if vm is not None and vm not in VOLUME_MODES:
        errs.append(not_supported("spec.volumeMode", vm, VOLUME_MODES))
    sources = _pv_source_count(spec)
    if not sources:
        errs.append(required("spec", "must specify a volume type"))
    for extra in sources[1:]:
        errs.append(forbidden(child("spec", extra), "may not specify more than 1 volume type"))
    if sources:
        src = d_(spec.get(sources[0]))
        sp = child("spec", sources[0])
        if sources[0] in ("hostPath", "local"):
            p = s_(src.get("path"))
            if not p:
                errs.append(required(child(sp, "path"), ""))
            elif ".." in p.split("/"):
                errs.append(invalid(child(sp, "path"), p, "must not contain '..'"))
            t = src.get("type")
            if sources[0] == "hostPath" and isinstance(t, str) and t not in HOST_PATH_TYPES:
                errs.append(not_supported(child(sp, "type"), t, HOST_PATH_TYPES))
            if sources[0] == "local" and not isinstance(spec.get("nodeAffinity"), dict):
                errs.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
        elif sources[0] == "nfs":
            if not s_(src.get("server")):
                errs.append(required(child(sp, "server"), ""))
            if not s_(src.get("path")):
                errs.append(required(child(sp, "path"), ""))
        elif sources[0] == "csi":
            if not s_(src.get("driver")):
                errs.append(required(child(sp, "driver"), ""))
            if not s_(src.get("volumeHandle")):
                errs.append(required(child(sp, "volumeHandle"), ""))
    na = spec.get("nodeAffinity")
    if isinstance(na, dict):
        req = d_(na.get("required"))
        if "required" in na and not l_(req.get("nodeSelectorTerms")):
            errs.append(required("spec.nodeAffinity.required.nodeSelectorTerms", "must have at least one node selector term"))
        for i, term in enumerate(l_(req.get("nodeSelectorTerms"))):
            for j, expr in enumerate(l_(d_(term).get("matchExpressions"))):
                errs += validate_label_name(s_(d_(expr).get("key")), child(index(child(index(
                    "spec.nodeAffinity.required.nodeSelectorTerms", i), "matchExpressions"), j), "key"))
    return errs


def go_resource_list(cap: dict[str, Any]) -> Any:
    from k8py.api.validation.meta import GoRaw, go_quote

    inner = ", ".join(f"{go_quote(k)}:{v}" for k, v in sorted(cap.items()))
    return GoRaw("core.ResourceList{" + inner + "}")


def validate_pv_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    ns, os_ = d_(new.get("spec")), d_(old.get("spec"))
    errs += _pv_spec(ns)
    ns_src = {s: ns.get(s) for s in _pv_source_count(ns)}
    os_src = {s: os_.get(s) for s in _pv_source_count(os_)}
    if semantic(ns_src) != semantic(os_src):
        errs.append(forbidden("spec.persistentvolumesource", "spec.persistentvolumesource is immutable after creation"))
    errs += immutable("volumeMode", ns.get("volumeMode"), os_.get("volumeMode"))
    if os_.get("nodeAffinity") is not None:
        errs += immutable("nodeAffinity", ns.get("nodeAffinity"), os_.get("nodeAffinity"))
    return errs


def validate_pv_status_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    phase = d_(new.get("status")).get("phase")
    if phase is not None and phase not in PV_PHASES:
        errs.append(not_supported("status.phase", phase, PV_PHASES))
    return errs


# ---------------------------------------------------------------------------
# StorageClass

MAX_PARAMETERS = 512
MAX_PARAMETERS_SIZE = 256 * 1024


def validate_storage_class(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), False, name_is_dns_subdomain)
    prov = s_(obj.get("provisioner"))
    if not prov:
        errs.append(required("provisioner", ""))
    else:
        errs += [invalid("provisioner", prov.lower(), m) for m in is_qualified_name(prov.lower())]
    params = d_(obj.get("parameters"))
    if len(params) > MAX_PARAMETERS:
        errs.append(too_long("parameters", MAX_PARAMETERS))
    else:
        size = 0
        for k, v in params.items():
            if not k:
                errs.append(invalid("parameters", k, "field can not be empty."))
            size += len(k) + len(s_(v))
        if size > MAX_PARAMETERS_SIZE:
            errs.append(too_long("parameters", MAX_PARAMETERS_SIZE))
    rp = obj.get("reclaimPolicy")
    if rp and rp not in ("Delete", "Retain"):
        errs.append(not_supported("reclaimPolicy", rp, ("Delete", "Retain")))
    vbm = obj.get("volumeBindingMode")
    if vbm is None:
        errs.append(required("volumeBindingMode", ""))
    elif vbm not in ("Immediate", "WaitForFirstConsumer"):
        errs.append(not_supported("volumeBindingMode", vbm, ("Immediate", "WaitForFirstConsumer")))
    for i, term in enumerate(l_(obj.get("allowedTopologies"))):
        exprs = l_(d_(term).get("matchLabelExpressions"))
        tp = index("allowedTopologies", i)
        if not exprs:
            errs.append(required(child(tp, "matchLabelExpressions"), "must have at least one label expression"))
        for j, e in enumerate(exprs):
            e = d_(e)
            ep = index(child(tp, "matchLabelExpressions"), j)
            errs += validate_label_name(s_(e.get("key")), child(ep, "key"))
            if not l_(e.get("values")):
                errs.append(required(child(ep, "values"), "must specify as least one value"))
    return errs


def validate_storage_class_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    if semantic(new.get("parameters")) != semantic(old.get("parameters")):
        errs.append(forbidden("parameters", "updates to parameters are forbidden."))
    if new.get("provisioner") != old.get("provisioner"):
        errs.append(forbidden("provisioner", "updates to provisioner are forbidden."))
    if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
        errs.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
    errs += immutable("volumeBindingMode", new.get("volumeBindingMode"), old.get("volumeBindingMode"))
    return errs
