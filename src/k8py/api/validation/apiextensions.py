"""apiextensions.k8s.io/v1 CustomResourceDefinition, as kube's apiextensions
``ValidateCustomResourceDefinition`` (and its update and status rules), with the defaults
kube's ``SetDefaults_CustomResourceDefinition*`` fill in."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from cryptography import x509

from k8py.api import crd as crdschema
from k8py.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from k8py.api.validation.admissionregistration import (
    validate_review_versions,
    validate_webhook_service,
    validate_webhook_url,
)
from k8py.api.validation.meta import (
    Errs,
    GoRaw,
    d_,
    is_dns1035_label,
    is_dns1123_subdomain,
    l_,
    name_is_dns_subdomain,
    s_,
    validate_object_meta,
    validate_object_meta_update,
)

SCOPES = ("Cluster", "Namespaced")
_VERSIONS_VALUE = GoRaw("[]apiextensions.CustomResourceDefinitionVersion{...}")


def set_defaults(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str) and names["kind"]:
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    conv = spec.get("conversion")
    if not isinstance(conv, dict):
        spec["conversion"] = {"strategy": "None"}
    else:
        conv.setdefault("strategy", "None")
        svc = d_(d_(d_(conv.get("webhook")).get("clientConfig")).get("service"))
        if svc:
            svc.setdefault("port", 443)  # kube's SetDefaults_ServiceReference


def _names(names: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    for f in ("plural", "singular"):
        v = s_(names.get(f))
        if not v:
            if f == "plural":
                errs.append(required(f"{path}.{f}"))
            continue
        bad = is_dns1035_label(v)
        if bad:
            errs.append(invalid(f"{path}.{f}", v, ",".join(bad)))
    for f in ("kind", "listKind"):
        v = s_(names.get(f))
        if not v:
            errs.append(required(f"{path}.{f}"))
            continue
        bad = is_dns1035_label(v.lower())
        if bad:
            errs.append(invalid(f"{path}.{f}", v, "may have mixed case, but should otherwise match: " + ",".join(bad)))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errs.append(invalid(f"{path}.listKind", names.get("listKind"), "kind and listKind may not be the same."))
    for f in ("shortNames", "categories"):
        for i, v in enumerate(l_(names.get(f))):
            bad = is_dns1035_label(s_(v))
            if bad:
                errs.append(invalid(f"{path}.{f}[{i}]", v, ",".join(bad)))
    return errs


def _versions(spec: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    versions = l_(spec.get("versions"))
    if not versions:
        return [required(path, "must have exactly one version marked as storage version")]
    seen: set[str] = set()
    storage = served = 0
    # kube's internal form moves a schema that every version shares to spec.validation (v1's
    # conversion), so its errors are reported there
    schemas = [d_(d_(v).get("schema")).get("openAPIV3Schema") for v in versions]
    shared = schemas[0] if schemas[0] is not None and all(s == schemas[0] for s in schemas) else None
    if shared is not None:
        errs += crdschema.structural_errors(shared, f"{path.rsplit('.', 1)[0]}.validation.openAPIV3Schema")
    for i, v in enumerate(versions):
        vp = f"{path}[{i}]"
        v = d_(v)
        name = s_(v.get("name"))
        if not name:
            errs.append(required(f"{vp}.name"))
        else:
            bad = is_dns1035_label(name)
            if bad:
                errs.append(invalid(f"{vp}.name", name, ",".join(bad)))
            if name in seen:
                errs.append(duplicate(f"{vp}.name", name))
            seen.add(name)
        storage += v.get("storage") is True
        served += v.get("served") is True
        sch = d_(v.get("schema")).get("openAPIV3Schema")
        if sch is None:
            errs.append(required(f"{vp}.schema.openAPIV3Schema", "schemas are required"))
        elif shared is None:
            errs += crdschema.structural_errors(sch, f"{vp}.schema.openAPIV3Schema")
        subs = d_(v.get("subresources"))
        if "scale" in subs:
            sc = d_(subs.get("scale"))
            for f in ("specReplicasPath", "statusReplicasPath"):
                p = s_(sc.get(f))
                if not p:
                    errs.append(required(f"{vp}.subresources.scale.{f}"))
                elif not p.startswith(".") or p.endswith("."):
                    errs.append(invalid(f"{vp}.subresources.scale.{f}", p,
                                        "should be a valid path with a leading dot, like .spec.replicas"))
            if s_(sc.get("specReplicasPath")) and not s_(sc.get("specReplicasPath")).startswith(".spec."):
                errs.append(invalid(f"{vp}.subresources.scale.specReplicasPath", sc.get("specReplicasPath"),
                                    "should be a json path under .spec"))
            if s_(sc.get("statusReplicasPath")) and not s_(sc.get("statusReplicasPath")).startswith(".status."):
                errs.append(invalid(f"{vp}.subresources.scale.statusReplicasPath", sc.get("statusReplicasPath"),
                                    "should be a json path under .status"))
    if storage != 1:
        errs.append(invalid(path, _VERSIONS_VALUE, "must have exactly one version marked as storage version"))
    if not served:
        errs.append(invalid(path, _VERSIONS_VALUE, "must have at least one version marked as served"))
    return errs


_PEM_BLOCK = re.compile(rb"-----BEGIN ([^-\r\n]*)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def ca_bundle_error(ca_bundle: str) -> str:
    """client-go's ``cert.NewPoolFromBytes`` of a caBundle (base64 in JSON): '' when it holds a
    certificate, else its error."""
    try:
        data = base64.b64decode(ca_bundle, validate=True)
    except (binascii.Error, ValueError) as e:
        return f"illegal base64 data: {e}"
    found = False
    for m in _PEM_BLOCK.finditer(data):
        body = m.group(2)
        head, blank, _ = body.partition(b"\n\n")
        if m.group(1) != b"CERTIFICATE" or (blank and b":" in head):
            continue  # only CERTIFICATE blocks without headers count
        try:
            x509.load_der_x509_certificate(base64.b64decode(b"".join(body.split())))
        except ValueError:
            return "x509: malformed certificate"
        found = True
    return "" if found else "data does not contain any valid RSA or ECDSA certificates"


def _conversion(conv: dict[str, Any], require_known_review_version: bool, check_ca_bundle: bool) -> Errs:
    """kube's ``validateCustomResourceConversion``, on the internal form v1 converts to: the
    errors name ``spec.conversion.webhookClientConfig`` and ``spec.conversion.conversionReviewVersions``
    (v1's ``webhook.clientConfig`` and ``webhook.conversionReviewVersions``)."""
    path = "spec.conversion"
    strategy = conv.get("strategy")
    webhook = d_(conv.get("webhook"))
    cc, versions = webhook.get("clientConfig"), webhook.get("conversionReviewVersions")
    errs: Errs = []
    if strategy == "":  # (absent, it is defaulted to None)
        errs.append(required(f"{path}.strategy"))
    elif strategy is not None and strategy not in ("None", "Webhook"):
        errs.append(not_supported(f"{path}.strategy", strategy, ("None", "Webhook")))
    if strategy != "Webhook":
        if cc is not None:
            errs.append(forbidden(f"{path}.webhookClientConfig", "should not be set when strategy is not set to Webhook"))
        if versions:
            errs.append(forbidden(f"{path}.conversionReviewVersions",
                                  "should not be set when strategy is not set to Webhook"))
        return errs
    if cc is None:
        errs.append(required(f"{path}.webhookClientConfig", "required when strategy is set to Webhook"))
    else:
        cc = d_(cc)
        url, svc = cc.get("url"), cc.get("service")
        if (url is None) == (svc is None):
            errs.append(required(f"{path}.webhookClientConfig", "exactly one of url or service is required"))
        elif url is not None:
            errs += validate_webhook_url(f"{path}.webhookClientConfig.url", s_(url))
        else:
            errs += validate_webhook_service(f"{path}.webhookClientConfig.service", d_(svc))
        ca = s_(cc.get("caBundle"))
        bad = ca_bundle_error(ca) if ca and check_ca_bundle else ""
        if bad:
            raw = base64.b64decode(ca, validate=False) if not bad.startswith("illegal base64") else ca.encode()
            shown = GoRaw("[]byte{" + ", ".join(f"0x{b:x}" for b in raw) + "}")
            errs.append(invalid(f"{path}.webhookClientConfig.caBundle", shown, bad))
    listed = [s_(v) for v in l_(versions)]
    if not listed:
        errs.append(required(f"{path}.conversionReviewVersions"))
    else:
        errs += validate_review_versions(listed, require_known_review_version, f"{path}.conversionReviewVersions")
    return errs


def validate_crd(obj: dict[str, Any], require_known_review_version: bool = True, check_ca_bundle: bool = False) -> Errs:
    """kube's ``ValidateCustomResourceDefinition`` (a created CRD may carry any caBundle: it is
    not Established yet)."""
    meta = d_(obj.get("metadata"))
    errs: Errs = validate_object_meta(obj.get("metadata"), False, name_is_dns_subdomain)
    spec = d_(obj.get("spec"))
    names = d_(spec.get("names"))
    group = s_(spec.get("group"))
    want = f"{s_(names.get('plural'))}.{group}"
    if meta.get("name") and meta.get("name") != want:
        errs.append(invalid("metadata.name", meta.get("name"), 'must be spec.names.plural+"."+spec.group'))
    if not group:
        errs.append(required("spec.group"))
    else:
        bad = is_dns1123_subdomain(group)
        if bad:
            errs.append(invalid("spec.group", group, ",".join(bad)))
        elif "." not in group:
            errs.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope")
    if not scope:
        errs.append(required("spec.scope"))
    elif scope not in SCOPES:
        errs.append(not_supported("spec.scope", scope, SCOPES))
    errs += _names(names, "spec.names")
    errs += _versions(spec, "spec.versions")
    errs += _conversion(d_(spec.get("conversion")), require_known_review_version, check_ca_bundle)
    strategy = d_(spec.get("conversion")).get("strategy")
    if strategy and strategy != "None" and spec.get("preserveUnknownFields") is True:
        errs.append(invalid("spec.conversion.strategy", strategy, "must be None if spec.preserveUnknownFields is true"))
    if spec.get("preserveUnknownFields") is True:
        errs.append(invalid("spec.preserveUnknownFields", True,
                            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                            "spec.versions[*].schema instead"))
    return errs


def validate_crd_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    # kube: an update need not name a known review version if the old CRD did not either
    old_versions = [s_(v) for v in l_(d_(d_(d_(old.get("spec")).get("conversion")).get("webhook"))
                                      .get("conversionReviewVersions"))]
    # kube's allowInvalidCABundle: only an Established CRD whose bundle was valid (or empty) must keep a valid one
    old_ca = s_(d_(d_(d_(d_(old.get("spec")).get("conversion")).get("webhook")).get("clientConfig")).get("caBundle"))
    check_ca = crdschema.is_established(old) and not (old_ca and ca_bundle_error(old_ca))
    errs += validate_crd(new, not old_versions or any(v in ("v1", "v1beta1") for v in old_versions), check_ca)
    ns, os_ = d_(new.get("spec")), d_(old.get("spec"))
    if ns.get("group") != os_.get("group"):
        errs.append(invalid("spec.group", ns.get("group"), "field is immutable"))
    if ns.get("scope") != os_.get("scope"):
        errs.append(invalid("spec.scope", ns.get("scope"), "field is immutable"))
    errs += _stored_versions(new)
    return errs


def _stored_versions(obj: dict[str, Any]) -> Errs:
    errs: Errs = []
    names = {s_(d_(v).get("name")) for v in l_(d_(obj.get("spec")).get("versions"))}
    for i, v in enumerate(l_(d_(obj.get("status")).get("storedVersions"))):
        if v not in names:
            errs.append(invalid(f"status.storedVersions[{i}]", v, "must appear in spec.versions"))
    return errs


def validate_crd_status_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    return errs + _stored_versions(new)
