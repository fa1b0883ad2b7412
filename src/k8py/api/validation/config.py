"""core/v1 configuration and policy kinds: ConfigMap, Secret, ServiceAccount,
ResourceQuota, LimitRange, and Event (core/v1 and events.k8s.io/v1)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from k8py.api import quantity as q
from k8py.api.errors import duplicate, forbidden, invalid, not_supported, required, too_long
from k8py.api.validation.meta import (
    Errs,
    GoRaw,
    child,
    d_,
    immutable,
    index,
    is_config_map_key,
    is_dns1123_subdomain,
    is_qualified_name,
    key,
    l_,
    name_is_dns_subdomain,
    s_,
    semantic,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)
from k8py.api.validation.pod import (
    STANDARD_RESOURCES,
    _overcommit_allowed,
    validate_container_resource_name,
    validate_quantity_value,
    validate_resource_name,
)

MAX_SECRET_SIZE = 1024 * 1024
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def decode_base64(s: str) -> bytes:
    """Decode like Go's base64.StdEncoding; raises ValueError with Go's message."""
    for i, ch in enumerate(s):
        if ch not in _B64 and ch != "=" and ch not in "\r\n":
            raise ValueError(f"illegal base64 data at input byte {i}")
    stripped = s.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"illegal base64 data at input byte {max(len(stripped) - 1, 0) // 4 * 4}") from None


def _immutable_contents(new: dict[str, Any], old: dict[str, Any], fields: tuple[str, ...]) -> Errs:
    errs: Errs = []
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        for f in fields:
            if semantic(new.get(f)) != semantic(old.get(f)):
                errs.append(forbidden(f, "field is immutable when `immutable` is set"))
    return errs


# ---------------------------------------------------------------------------
# ConfigMap


def validate_config_map(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain)
    data, binary = d_(obj.get("data")), d_(obj.get("binaryData"))
    total = 0
    for k, v in data.items():
        errs += [invalid(key("data", k), k, m) for m in is_config_map_key(k)]
        if k in binary:
            errs.append(invalid(key("data", k), k, "duplicate of key present in binaryData"))
        total += len(s_(v).encode())
    for k, v in binary.items():
        errs += [invalid(key("binaryData", k), k, m) for m in is_config_map_key(k)]
        try:
            total += len(decode_base64(s_(v)))
        except ValueError as e:
            errs.append(invalid(key("binaryData", k), "<binary data redacted>", str(e)))
    if total > MAX_SECRET_SIZE:
        # kube reports the whole object: field.NewPath(""), which prints as "[]".
        errs.append(too_long("[]", MAX_SECRET_SIZE))
    return errs


def validate_config_map_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _immutable_contents(new, old, ("data", "binaryData"))
    errs += validate_config_map(new)[_meta_count(new):]
    return errs


def _meta_count(obj: dict[str, Any]) -> int:
    return len(validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain))


# ---------------------------------------------------------------------------
# Secret

SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _secret_body(obj: dict[str, Any]) -> Errs:
    errs: Errs = []
    data = d_(obj.get("data"))
    decoded: dict[str, bytes] = {}
    total = 0
    for k, v in data.items():
        errs += [invalid(key("data", k), k, m) for m in is_config_map_key(k)]
        try:
            b = decode_base64(s_(v))
        except ValueError as e:
            errs.append(invalid(key("data", k), "<secret contents redacted>", str(e)))
            continue
        decoded[k] = b
        total += len(b)
    if total > MAX_SECRET_SIZE:
        errs.append(too_long("data", MAX_SECRET_SIZE))
    t = s_(obj.get("type"))
    if t == "kubernetes.io/service-account-token":
        ann = d_(d_(obj.get("metadata")).get("annotations"))
        if not s_(ann.get("kubernetes.io/service-account.name")):
            errs.append(required("metadata.annotations[kubernetes.io/service-account.name]", ""))
    elif t in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        k = SECRET_REQUIRED_KEYS[t][0]
        if k not in data:
            errs.append(required(key("data", k), ""))
        elif k in decoded:
            try:
                doc = json.loads(decoded[k] or b"null")
            except ValueError as e:
                errs.append(invalid(key("data", k), "<secret contents redacted>", str(e)))
            else:
                if not isinstance(doc, dict | None):
                    errs.append(invalid(key("data", k), "<secret contents redacted>",
                                        "json: cannot unmarshal into Go value of type map[string]interface {}"))
    elif t == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            errs.append(required("data[username]", ""))
            errs.append(required("data[password]", ""))
    elif t == "kubernetes.io/ssh-auth":
        if not decoded.get("ssh-privatekey"):
            errs.append(required("data[ssh-privatekey]", ""))
    elif t == "kubernetes.io/tls":
        for k in ("tls.crt", "tls.key"):
            if k not in data:
                errs.append(required(key("data", k), ""))
    return errs


def validate_secret(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _secret_body(obj)


def validate_secret_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += immutable("type", new.get("type"), old.get("type"))
    errs += _immutable_contents(new, old, ("data",))
    errs += _secret_body(new)
    return errs


# ---------------------------------------------------------------------------
# ServiceAccount


def validate_service_account(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain)


def validate_service_account_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata"))


# ---------------------------------------------------------------------------
# ResourceQuota

QUOTA_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
                "CrossNamespacePodAffinity", "VolumeAttributesClass")


def _is_standard_quota_resource(name: str) -> bool:
    return name in STANDARD_RESOURCES or name.startswith(("hugepages-", "requests.hugepages-"))


def _quota_resources(lst: Any, path: str) -> Errs:
    errs: Errs = []
    for name, value in d_(lst).items():
        fp = key(path, name)
        rn = validate_resource_name(name, fp)
        if not rn and "/" not in name and not _is_standard_quota_resource(name):
            rn.append(invalid(fp, name, "must be a standard resource for quota"))
        errs += rn
        errs += validate_quantity_value(name, value, fp)[1]
    return errs


def validate_resource_quota(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain)
    return errs + _quota_body(obj)


def _quota_body(obj: dict[str, Any]) -> Errs:
    spec = d_(obj.get("spec"))
    errs = _quota_resources(spec.get("hard"), "spec.hard")
    hard = sorted(d_(spec.get("hard")))
    scopes = [s_(x) for x in l_(spec.get("scopes"))]
    for i, s in enumerate(scopes):
        if s not in QUOTA_SCOPES:
            errs.append(not_supported(index("spec.scopes", i), s, QUOTA_SCOPES))
    shown = _go_scopes(scopes)
    for s in scopes:
        errs += [invalid("spec.scopes", shown, "unsupported scope applied to resource")
                 for k in hard if _is_standard_quota_resource(k) and not _scope_valid_for(s, k)]
    errs += [invalid("spec.scopes", shown, "conflicting scopes") for pair in _CONFLICTING if pair <= set(scopes)]
    exprs = [d_(x) for x in l_(d_(spec.get("scopeSelector")).get("matchExpressions"))]
    mp = "spec.scopeSelector.matchExpressions"
    for i, sc in enumerate(exprs):
        p = index(mp, i)
        name = s_(sc.get("scopeName"))
        if name not in QUOTA_SCOPES:
            errs.append(not_supported(child(p, "scopeName"), name, QUOTA_SCOPES))
        errs += [invalid(mp, _go_selector(exprs), "unsupported scope applied to resource")
                 for k in hard if _is_standard_quota_resource(k) and not _scope_valid_for(name, k)]
        op = sc.get("operator")
        values = l_(sc.get("values"))
        if name in ("BestEffort", "NotBestEffort", "Terminating", "NotTerminating") and op != "Exists":
            errs.append(invalid(child(p, "operator"), s_(op),
                                "must be 'Exist' only operator when scope is any of ResourceQuotaScopeTerminating, "
                                "ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort and "
                                "ResourceQuotaScopeNotBestEffort"))
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(child(p, "values"),
                                     "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(invalid(child(p, "values"), GoRaw(_go_strings(values)),
                                    "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"))
        else:
            errs.append(not_supported(child(p, "operator"), s_(op), ("In", "NotIn", "Exists", "DoesNotExist")))
    names = {s_(sc.get("scopeName")) for sc in exprs}
    errs += [invalid(mp, shown, "conflicting scopes") for pair in _CONFLICTING if pair <= names]
    st = d_(obj.get("status"))
    errs += _quota_resources(st.get("hard"), "status.hard")
    errs += _quota_resources(st.get("used"), "status.used")
    return errs


# scopes that cannot both be asked for, and the quota names each scope can limit
_CONFLICTING = ({"BestEffort", "NotBestEffort"}, {"Terminating", "NotTerminating"})
_POD_COUNT = frozenset(("pods",))
_POD_COMPUTE = frozenset(("cpu", "memory", "limits.cpu", "limits.memory", "requests.cpu", "requests.memory"))


def _scope_valid_for(scope: str, resource: str) -> bool:
    """``IsResourceQuotaScopeValidForResource``: which standard quota names a scope can limit."""
    if scope in ("Terminating", "NotTerminating", "NotBestEffort", "PriorityClass"):
        return resource in _POD_COUNT or resource in _POD_COMPUTE
    if scope == "BestEffort":
        return resource in _POD_COUNT
    return True


def _go_strings(values: list[Any]) -> str:
    return "[]string{" + ", ".join(json.dumps(s_(v)) for v in values) + "}" if values else "[]string(nil)"


def _go_scopes(scopes: list[str]) -> GoRaw:
    """``spec.scopes`` as Go's ``%#v`` prints it in kube's messages."""
    if not scopes:
        return GoRaw("[]core.ResourceQuotaScope(nil)")
    return GoRaw("[]core.ResourceQuotaScope{" + ", ".join(json.dumps(x) for x in scopes) + "}")


def _go_selector(exprs: list[dict[str, Any]]) -> GoRaw:
    items = ", ".join(f'core.ScopedResourceSelectorRequirement{{ScopeName:{json.dumps(s_(e.get("scopeName")))}, '
                      f'Operator:{json.dumps(s_(e.get("operator")))}, Values:{_go_strings(l_(e.get("values")))}}}'
                      for e in exprs)
    return GoRaw(f"&core.ScopeSelector{{MatchExpressions:[]core.ScopedResourceSelectorRequirement{{{items}}}}}")


def validate_resource_quota_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _quota_body(new)
    errs += immutable("spec.scopes", d_(new.get("spec")).get("scopes"), d_(old.get("spec")).get("scopes"))
    return errs


def validate_resource_quota_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    st = d_(new.get("status"))
    errs += _quota_resources(st.get("hard"), "status.hard")
    errs += _quota_resources(st.get("used"), "status.used")
    return errs


# ---------------------------------------------------------------------------
# LimitRange

LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")


def _qraw(x: q.Quantity) -> GoRaw:
    return GoRaw(str(x))


def validate_limit_range(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain)
    return errs + _limit_range_body(obj)


def _limit_type_errors(t: str, path: str) -> Errs:
    """``validateLimitRangeTypeName``: a qualified name; without a prefix, one of kube's types."""
    errs = [invalid(path, t, m) for m in is_qualified_name(t)]
    if not errs and "/" not in t and t not in LIMIT_TYPES:
        errs.append(invalid(path, t, "must be a standard limit type or fully qualified"))
    return errs


def _limit_range_body(obj: dict[str, Any]) -> Errs:
    """kube's ValidateLimitRange (after the metadata)."""
    errs: Errs = []
    seen_types: set[str] = set()
    for i, item in enumerate(l_(d_(obj.get("spec")).get("limits"))):
        item = d_(item)
        ip = index("spec.limits", i)
        t = s_(item.get("type"))
        errs += _limit_type_errors(t, child(ip, "type"))
        if t in seen_types:
            errs.append(duplicate(child(ip, "type"), t))
        seen_types.add(t)
        fields = ["max", "min", "default", "defaultRequest", "maxLimitRequestRatio"]
        if t == "Pod":
            for f in ("default", "defaultRequest"):
                if d_(item.get(f)):
                    errs.append(forbidden(child(ip, f), "may not be specified when `type` is 'Pod'"))
            fields = ["max", "min", "maxLimitRequestRatio"]
        parsed: dict[str, dict[str, q.Quantity]] = {f: {} for f in ("max", "min", "default", "defaultRequest",
                                                                     "maxLimitRequestRatio")}
        for f in fields:
            for name, value in d_(item.get(f)).items():
                fp = key(child(ip, f), name)
                # Pod and Container limits name container resources; others (claims) any resource
                errs += validate_container_resource_name(name, fp) if t in ("Pod", "Container") \
                    else validate_resource_name(name, fp)
                qty, e = validate_quantity_value(name, value, fp)
                errs += e
                if qty is not None:
                    parsed[f][name] = qty
        mx, mn, df, dr, ratio = (parsed[f] for f in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"))
        if t == "PersistentVolumeClaim" and "storage" not in d_(item.get("min")) and \
                "storage" not in d_(item.get("max")):
            errs.append(required(child(ip, "limits"),
                                 "either minimum or maximum storage value is required, but neither was provided"))
        for k in list(dict.fromkeys([*mx, *mn, *df, *dr, *ratio])):
            if k in mn and k in mx and mn[k] > mx[k]:
                errs.append(invalid(key(child(ip, "min"), k), _qraw(mn[k]),
                                    f"min value {mn[k]} is greater than max value {mx[k]}"))
            if k in dr and k in mn and mn[k] > dr[k]:
                errs.append(invalid(key(child(ip, "defaultRequest"), k), _qraw(dr[k]),
                                    f"min value {mn[k]} is greater than default request value {dr[k]}"))
            if k in dr and k in mx and dr[k] > mx[k]:
                errs.append(invalid(key(child(ip, "defaultRequest"), k), _qraw(dr[k]),
                                    f"default request value {dr[k]} is greater than max value {mx[k]}"))
            if k in dr and k in df and dr[k] > df[k]:
                errs.append(invalid(key(child(ip, "defaultRequest"), k), _qraw(dr[k]),
                                    f"default request value {dr[k]} is greater than default limit value {df[k]}"))
            if k in df and k in mn and mn[k] > df[k]:
                errs.append(invalid(key(child(ip, "default"), k), _qraw(mn[k]),
                                    f"min value {mn[k]} is greater than default value {df[k]}"))
            if k in df and k in mx and df[k] > mx[k]:
                errs.append(invalid(key(child(ip, "default"), k), _qraw(mx[k]),
                                    f"default value {df[k]} is greater than max value {mx[k]}"))
            if k in ratio and ratio[k] < q.parse_quantity("1"):
                errs.append(invalid(key(child(ip, "maxLimitRequestRatio"), k), _qraw(ratio[k]),
                                    f"ratio {ratio[k]} is less than 1"))
            if k in ratio and k in mn and k in mx:
                errs += _ratio_within_bounds(ratio[k], mn[k], mx[k], key(child(ip, "maxLimitRequestRatio"), k))
            if not _overcommit_allowed(k) and k in df and k in dr and df[k].cmp(dr[k]) != 0:
                errs.append(invalid(key(child(ip, "defaultRequest"), k), _qraw(dr[k]),
                                    f"default value {df[k]} must equal to defaultRequest value {dr[k]} in {k}"))
    return errs


def _ratio_within_bounds(ratio: q.Quantity, mn: q.Quantity, mx: q.Quantity, path: str) -> Errs:
    """The ratio may not exceed max/min (compared in milli-units unless that would overflow)."""
    big = (2**63 - 1) // 1000
    r, lo, hi = float(ratio.int_value()), mn.int_value(), mx.int_value()
    if ratio.int_value() < big and lo < big and hi < big:
        r, lo, hi = ratio.milli_value() / 1000, mn.milli_value(), mx.milli_value()
    if lo == 0:
        return []
    bound = hi / lo
    if r > bound:
        return [invalid(path, _qraw(ratio), f"ratio {ratio} is greater than max/min = {bound:f}")]
    return []


def validate_limit_range_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _limit_range_body(new)


# ---------------------------------------------------------------------------
# Event

REPORTING_INSTANCE_LIMIT = 128
ACTION_LIMIT = 128
REASON_LIMIT = 128
NOTE_LIMIT = 1024


def validate_core_event(obj: dict[str, Any]) -> Errs:
    """core/v1 events: the legacy rules only (Kubernetes does not check their metadata)."""
    errs: Errs = []
    meta = d_(obj.get("metadata"))
    ns = s_(meta.get("namespace"))
    inv = d_(obj.get("involvedObject"))
    inv_ns = s_(inv.get("namespace"))
    if not obj.get("eventTime"):
        if not inv_ns:
            if ns not in ("", "default"):
                errs.append(invalid("involvedObject.namespace", inv_ns, "does not match event.namespace"))
        elif ns != inv_ns:
            errs.append(invalid("involvedObject.namespace", inv_ns, "does not match event.namespace"))
    else:
        if not inv_ns and ns not in ("default", "kube-system"):
            errs.append(invalid("involvedObject.namespace", inv_ns, "does not match event.namespace"))
        rc = s_(obj.get("reportingComponent"))
        if not rc:
            errs.append(required("reportingComponent", ""))
        errs += [invalid("reportingComponent", rc, m) for m in is_qualified_name(rc)]
        errs += _event_lengths(obj, "message")
    errs += [invalid("namespace", ns, m) for m in is_dns1123_subdomain(ns)]
    return errs


def _event_lengths(obj: dict[str, Any], note_field: str) -> Errs:
    errs: Errs = []
    ri = s_(obj.get("reportingInstance"))
    if not ri:
        errs.append(required("reportingInstance", ""))
    if len(ri) > REPORTING_INSTANCE_LIMIT:
        errs.append(invalid("reportingInstance", "", f"can have at most {REPORTING_INSTANCE_LIMIT} characters"))
    action = s_(obj.get("action"))
    if not action:
        errs.append(required("action", ""))
    if len(action) > ACTION_LIMIT:
        errs.append(invalid("action", "", f"can have at most {ACTION_LIMIT} characters"))
    reason = s_(obj.get("reason"))
    if not reason:
        errs.append(required("reason", ""))
    if len(reason) > REASON_LIMIT:
        errs.append(invalid("reason", "", f"can have at most {REASON_LIMIT} characters"))
    if len(s_(obj.get(note_field))) > NOTE_LIMIT:
        errs.append(invalid("message", "", f"can have at most {NOTE_LIMIT} characters"))
    return errs


def validate_core_event_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_core_event(new)


def validate_events_v1(obj: dict[str, Any]) -> Errs:
    """events.k8s.io/v1: the strict rules (paths use the internal names, as Kubernetes reports them)."""
    errs: Errs = []
    meta = d_(obj.get("metadata"))
    ns = s_(meta.get("namespace"))
    reg = d_(obj.get("regarding"))
    if not s_(reg.get("namespace")) and ns not in ("default", "kube-system"):
        errs.append(invalid("involvedObject.namespace", s_(reg.get("namespace")), "does not match event.namespace"))
    rc = s_(obj.get("reportingController"))
    if not rc:
        errs.append(required("reportingController", ""))
    errs += [invalid("reportingController", rc, m) for m in is_qualified_name(rc)]
    errs += _event_lengths(obj, "note")
    errs += [invalid("namespace", ns, m) for m in is_dns1123_subdomain(ns)]
    errs += validate_object_meta(meta, True, name_is_dns_subdomain)
    series = obj.get("series")
    if isinstance(series, dict):
        cnt = series.get("count")
        if not isinstance(cnt, int) or cnt < 2:
            errs.append(invalid("series.count", "", "should be at least 2"))
        if not series.get("lastObservedTime"):
            errs.append(required("series.lastObservedTime", ""))
    if not obj.get("eventTime"):
        errs.append(required("eventTime", ""))
    t = obj.get("type")
    if t not in ("Normal", "Warning"):
        errs.append(invalid("type", "", f"has invalid value: {s_(t)}"))
    if obj.get("deprecatedFirstTimestamp"):
        errs.append(invalid("firstTimestamp", "", "needs to be unset"))
    if obj.get("deprecatedLastTimestamp"):
        errs.append(invalid("lastTimestamp", "", "needs to be unset"))
    if obj.get("deprecatedCount"):
        errs.append(invalid("count", "", "needs to be unset"))
    src = d_(obj.get("deprecatedSource"))
    if src.get("component") or src.get("host"):
        errs.append(invalid("source", "", "needs to be unset"))
    return errs


_EVENT_IMMUTABLE = (
    ("regarding", "involvedObject"), ("reason", "reason"), ("note", "message"), ("type", "type"),
    ("eventTime", "eventTime"), ("action", "action"), ("related", "related"),
    ("reportingController", "reportingController"), ("reportingInstance", "reportingInstance"),
    ("deprecatedSource", "source"), ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count"),
)


def validate_events_v1_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += [e for e in validate_events_v1(new) if not e.field.startswith("metadata.")]
    for f, path in _EVENT_IMMUTABLE:
        errs += immutable(path, new.get(f), old.get(f))
    return errs


def validate_selector_field(sel: Any, path: str) -> Errs:
    return validate_label_selector(sel, path)
