"""Defaulting per kind, as Kubernetes' generated defaulters for each
group/version do it (``pkg/apis/*/v1/defaults.go``), plus the decode-time
normalizations a typed API server applies to every body it stores:
quantities in canonical form (``"0.5"`` -> ``"500m"``), ``Secret.stringData``
folded into ``data``, ``serviceAccount`` mirroring ``serviceAccountName``.

Public surface:

- :func:`set_defaults` — on every write (create, update, patch), before validation;
- :func:`pod_qos_class` — what the Pod strategy computes from the defaulted pod.

What a create adds (Namespace ``kubernetes`` finalizer, Job generated selector, Pod
``Pending`` status) is each kind's strategy's, in ``k8py.apiserver.registry``.

Admission plugins' defaults (Priority: ``priority``/``preemptionPolicy`` on pods;
ServiceAccount: ``serviceAccountName: default`` and the token volume) are not here.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from k8py.api import quantity
from k8py.api.registry import KindInfo

Obj = dict[str, Any]

__all__ = ["image_pull_policy", "pod_qos_class", "set_defaults"]


def _d(parent: Obj, key: str) -> Obj:
    """``parent[key]`` as a dict, created when absent (Go's zero-valued struct)."""
    v = parent.get(key)
    if not isinstance(v, dict):
        v = parent[key] = {}
    return v


def _dicts(x: Any) -> list[Obj]:
    return [i for i in x if isinstance(i, dict)] if isinstance(x, list) else []


def _canon_list(parent: Obj, key: str) -> None:
    """A ResourceList: canonical quantities rounded up to milli (SetDefaults_ResourceList)."""
    rl = parent.get(key)
    if isinstance(rl, dict):
        for k, v in rl.items():
            rl[k] = quantity.canonicalize(v, round_milli=True)


def _canon(parent: Obj, key: str) -> None:
    if key in parent and parent[key] is not None:
        parent[key] = quantity.canonicalize(parent[key])


# ---------------------------------------------------------------------------
# images

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"((?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::({_TAG}))?(?:@({_DIGEST}))?")


def _image_tag(image: str) -> tuple[str, str] | None:
    """(tag, digest) of a docker reference, or None when it does not parse."""
    m = _REFERENCE.fullmatch(image)
    if not m or len(m.group(1)) > 255:
        return None
    return m.group(2) or "", m.group(3) or ""


def image_pull_policy(image: Any) -> str:
    """Always for ``:latest`` or an untagged, undigested image, else IfNotPresent."""
    parsed = _image_tag(image) if isinstance(image, str) else None
    if parsed is None:
        return "IfNotPresent"
    tag, digest = parsed
    if not tag and not digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


# ---------------------------------------------------------------------------
# core/v1 pod pieces


def _handler(h: Any) -> None:
    if not isinstance(h, dict):
        return
    http = h.get("httpGet")
    if isinstance(http, dict):
        if not http.get("path"):
            http["path"] = "/"
        if not http.get("scheme"):
            http["scheme"] = "HTTP"
    grpc = h.get("grpc")
    if isinstance(grpc, dict) and grpc.get("service") is None:
        grpc["service"] = ""


def _probe(p: Any) -> None:
    if not isinstance(p, dict):
        return
    _handler(p)
    for k, v in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
        if not p.get(k):
            p[k] = v


def _env(c: Obj) -> None:
    for e in _dicts(c.get("env")):
        vf = e.get("valueFrom")
        if not isinstance(vf, dict):
            continue
        fr = vf.get("fieldRef")
        if isinstance(fr, dict) and not fr.get("apiVersion"):
            fr["apiVersion"] = "v1"
        rf = vf.get("resourceFieldRef")
        if isinstance(rf, dict):
            rf["divisor"] = quantity.canonicalize(rf.get("divisor", "0") or "0")


def _container(c: Obj) -> None:
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = image_pull_policy(c.get("image"))
    if not c.get("terminationMessagePath"):
        c["terminationMessagePath"] = "/dev/termination-log"
    if not c.get("terminationMessagePolicy"):
        c["terminationMessagePolicy"] = "File"
    for p in _dicts(c.get("ports")):
        if not p.get("protocol"):
            p["protocol"] = "TCP"
    res = _d(c, "resources")
    _canon_list(res, "limits")
    _canon_list(res, "requests")
    for k in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(c.get(k))
    lc = c.get("lifecycle")
    if isinstance(lc, dict):
        _handler(lc.get("postStart"))
        _handler(lc.get("preStop"))
    _env(c)


def _items_field_refs(items: Any) -> None:
    for it in _dicts(items):
        fr = it.get("fieldRef")
        if isinstance(fr, dict) and not fr.get("apiVersion"):
            fr["apiVersion"] = "v1"
        rf = it.get("resourceFieldRef")
        if isinstance(rf, dict):
            rf["divisor"] = quantity.canonicalize(rf.get("divisor", "0") or "0")


_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI", "fc",
    "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
    "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)


def _volume(v: Obj) -> None:
    if not any(v.get(s) is not None for s in _SOURCES):
        v["emptyDir"] = {}
    for s in ("secret", "configMap", "downwardAPI", "projected"):
        src = v.get(s)
        if isinstance(src, dict) and src.get("defaultMode") is None:
            src["defaultMode"] = 0o644
    hp = v.get("hostPath")
    if isinstance(hp, dict) and hp.get("type") is None:
        hp["type"] = ""
    ed = v.get("emptyDir")
    if isinstance(ed, dict):
        _canon(ed, "sizeLimit")
    da = v.get("downwardAPI")
    if isinstance(da, dict):
        _items_field_refs(da.get("items"))
    pj = v.get("projected")
    if isinstance(pj, dict):
        for src in _dicts(pj.get("sources")):
            sat = src.get("serviceAccountToken")
            if isinstance(sat, dict) and sat.get("expirationSeconds") is None:
                sat["expirationSeconds"] = 3600
            dapi = src.get("downwardAPI")
            if isinstance(dapi, dict):
                _items_field_refs(dapi.get("items"))
    for s in ("iscsi",):
        src = v.get(s)
        if isinstance(src, dict) and not src.get("iscsiInterface"):
            src["iscsiInterface"] = "default"
    eph = v.get("ephemeral")
    if isinstance(eph, dict) and isinstance(eph.get("volumeClaimTemplate"), dict):
        _pvc_spec(_d(eph["volumeClaimTemplate"], "spec"))


def _pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and the defaulters of everything inside it."""
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    # v1 conversion keeps the deprecated serviceAccount in step with serviceAccountName.
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in _dicts(spec.get(key)):
            _container(c)
    for v in _dicts(spec.get("volumes")):
        _volume(v)
    _canon_list(spec, "overhead")
    if isinstance(spec.get("resources"), dict):
        _canon_list(spec["resources"], "limits")
        _canon_list(spec["resources"], "requests")


def _template(parent: Obj, key: str = "template") -> None:
    tmpl = _d(parent, key)
    _pod_spec(_d(tmpl, "spec"))


def _pod(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    _pod_spec(spec)
    # SetDefaults_Pod: requests default to limits (pods only, not templates)
    for key in ("containers", "initContainers"):
        for c in _dicts(spec.get(key)):
            res = _d(c, "resources")
            lim = res.get("limits")
            if isinstance(lim, dict) and lim:
                req = _d(res, "requests")
                for k, v in lim.items():
                    req.setdefault(k, v)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for c in _dicts(spec.get(key)):
                for p in _dicts(c.get("ports")):
                    if not p.get("hostPort"):
                        p["hostPort"] = p.get("containerPort")


# ---------------------------------------------------------------------------
# other core/v1 kinds


def _replication_controller(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    tmpl = spec.get("template")
    labels = tmpl.get("metadata", {}).get("labels") if isinstance(tmpl, dict) else None
    if isinstance(labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = _d(obj, "metadata")
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if isinstance(tmpl, dict):
        _pod_spec(_d(tmpl, "spec"))


def _pod_template(obj: Obj, version: str) -> None:
    _template(obj)


def _service(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    for p in _dicts(spec.get("ports")):
        if not p.get("protocol"):
            p["protocol"] = "TCP"
        if p.get("targetPort") in (None, 0, ""):
            p["targetPort"] = p.get("port")
    t = spec["type"]
    if spec["sessionAffinity"] == "ClientIP":
        cfg = _d(_d(spec, "sessionAffinityConfig"), "clientIP")
        if cfg.get("timeoutSeconds") is None:
            cfg["timeoutSeconds"] = 10800
    externally = t in ("LoadBalancer", "NodePort") or (t == "ClusterIP" and bool(spec.get("externalIPs")))
    if externally and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and t in ("NodePort", "LoadBalancer", "ClusterIP"):
        spec["internalTrafficPolicy"] = "Cluster"
    if t == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if t == "LoadBalancer":
        for ing in _dicts(obj.get("status", {}).get("loadBalancer", {}).get("ingress")):
            if ing.get("ip") and ing.get("ipMode") is None:
                ing["ipMode"] = "VIP"
    if t == "ExternalName":
        return
    # clusterIP <-> clusterIPs in step (kube's normalizeClusterIPs); the families and the policy
    # are the Service REST storage's, which knows the cluster's ranges (the Service strategy).
    cip = spec.get("clusterIP")
    cips = spec.get("clusterIPs")
    if cip and not cips:
        spec["clusterIPs"] = [cip]
    elif cips and not cip and isinstance(cips, list) and cips and isinstance(cips[0], str):
        spec["clusterIP"] = cips[0]


def _namespace(obj: Obj, version: str) -> None:
    meta = _d(obj, "metadata")
    name = meta.get("name")
    if name:
        labels = _d(meta, "labels")
        labels["kubernetes.io/metadata.name"] = name
    status = _d(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Active"


def _secret(obj: Obj, version: str) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"
    sd = obj.pop("stringData", None)
    if isinstance(sd, dict) and sd:
        data = _d(obj, "data")
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def _endpoints(obj: Obj, version: str) -> None:
    for ss in _dicts(obj.get("subsets")):
        for p in _dicts(ss.get("ports")):
            if not p.get("protocol"):
                p["protocol"] = "TCP"


def _node(obj: Obj, version: str) -> None:
    status = obj.get("status")
    if isinstance(status, dict):
        _canon_list(status, "capacity")
        _canon_list(status, "allocatable")
        if status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
            status["allocatable"] = dict(status["capacity"])


def _pvc_spec(spec: Obj) -> None:
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    res = spec.get("resources")
    if isinstance(res, dict):
        _canon_list(res, "requests")
        _canon_list(res, "limits")


def _pvc(obj: Obj, version: str) -> None:
    _pvc_spec(_d(obj, "spec"))
    status = _d(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Pending"
    _canon_list(status, "capacity")
    _canon_list(status, "allocatedResources")


def _pv(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    if not spec.get("persistentVolumeReclaimPolicy"):
        spec["persistentVolumeReclaimPolicy"] = "Retain"
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    hp = spec.get("hostPath")
    if isinstance(hp, dict) and hp.get("type") is None:
        hp["type"] = ""
    _canon_list(spec, "capacity")
    status = _d(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Pending"


def _limit_range(obj: Obj, version: str) -> None:
    for item in _dicts(obj.get("spec", {}).get("limits")):
        for k in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            _canon_list(item, k)
        if item.get("type") != "Container":
            continue
        default = dict(item.get("default") or {})
        default_request = dict(item.get("defaultRequest") or {})
        for k, v in (item.get("max") or {}).items():
            default.setdefault(k, v)
        for k, v in default.items():
            default_request.setdefault(k, v)
        for k, v in (item.get("min") or {}).items():
            default_request.setdefault(k, v)
        if default:
            item["default"] = default
        if default_request:
            item["defaultRequest"] = default_request


def _resource_quota(obj: Obj, version: str) -> None:
    _canon_list(_d(obj, "spec"), "hard")
    status = obj.get("status")
    if isinstance(status, dict):
        _canon_list(status, "hard")
        _canon_list(status, "used")


# ---------------------------------------------------------------------------
# apps/v1


def _deployment(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _d(spec, "strategy")
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        ru = _d(strategy, "rollingUpdate")
        if ru.get("maxUnavailable") is None:
            ru["maxUnavailable"] = "25%"
        if ru.get("maxSurge") is None:
            ru["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _template(spec)


def _replica_set(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _template(spec)


def _stateful_set(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    if not spec.get("podManagementPolicy"):
        spec["podManagementPolicy"] = "OrderedReady"
    us = _d(spec, "updateStrategy")
    if not us.get("type"):
        us["type"] = "RollingUpdate"
        if us.get("rollingUpdate") is None:
            us["rollingUpdate"] = {}
    ru = us.get("rollingUpdate")
    if us["type"] == "RollingUpdate" and isinstance(ru, dict) and ru.get("partition") is None:
        ru["partition"] = 0
    pol = _d(spec, "persistentVolumeClaimRetentionPolicy")
    if not pol.get("whenDeleted"):
        pol["whenDeleted"] = "Retain"
    if not pol.get("whenScaled"):
        pol["whenScaled"] = "Retain"
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _template(spec)
    for pvc in _dicts(spec.get("volumeClaimTemplates")):
        _pvc(pvc, version)


def _daemon_set(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    us = _d(spec, "updateStrategy")
    if not us.get("type"):
        us["type"] = "RollingUpdate"
    if us["type"] == "RollingUpdate":
        ru = _d(us, "rollingUpdate")
        if ru.get("maxUnavailable") is None:
            ru["maxUnavailable"] = 1
        if ru.get("maxSurge") is None:
            ru["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _template(spec)


# ---------------------------------------------------------------------------
# batch/v1


def _job(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    tmpl = _d(spec, "template")
    labels = _d(tmpl, "metadata").get("labels") if isinstance(tmpl.get("metadata"), dict) else None
    meta = _d(obj, "metadata")
    if isinstance(labels, dict) and labels and not meta.get("labels"):
        meta["labels"] = dict(labels)
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    pfp = spec.get("podFailurePolicy")
    if isinstance(pfp, dict):
        for rule in _dicts(pfp.get("rules")):
            for cond in _dicts(rule.get("onPodConditions")):
                if not cond.get("status"):
                    cond["status"] = "True"
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if pfp is not None else "TerminatingOrFailed"
    _pod_spec(_d(tmpl, "spec"))


def _cron_job(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    jt = _d(spec, "jobTemplate")
    _template(_d(jt, "spec"))


# ---------------------------------------------------------------------------
# other groups


def _network_policy(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    for rule in (*_dicts(spec.get("ingress")), *_dicts(spec.get("egress"))):
        for p in _dicts(rule.get("ports")):
            if p.get("protocol") is None:
                p["protocol"] = "TCP"
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    if spec.get("podSelector") is None:
        spec["podSelector"] = {}


def _ingress_class(obj: Obj, version: str) -> None:
    params = obj.get("spec", {}).get("parameters") if isinstance(obj.get("spec"), dict) else None
    if isinstance(params, dict) and params.get("scope") is None:
        params["scope"] = "Cluster"


_SCALE_UP: Obj = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
             "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                          {"type": "Percent", "value": 100, "periodSeconds": 15}]}
_SCALE_DOWN: Obj = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _hpa_rules(rules: Any, defaults: Obj) -> Obj:
    out = dict(rules) if isinstance(rules, dict) else {}
    for k, v in defaults.items():
        if k == "policies":
            if not out.get(k):
                out[k] = [dict(p) for p in v]
        elif out.get(k) is None:
            out[k] = v
    return out


def _hpa(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if version == "v1":
        return
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    for m in _dicts(spec.get("metrics")):
        for src in m.values():
            if isinstance(src, dict) and isinstance(src.get("target"), dict):
                _canon(src["target"], "value")
                _canon(src["target"], "averageValue")
    beh = spec.get("behavior")
    if isinstance(beh, dict):
        beh["scaleUp"] = _hpa_rules(beh.get("scaleUp"), _SCALE_UP)
        beh["scaleDown"] = _hpa_rules(beh.get("scaleDown"), {**_SCALE_DOWN, "stabilizationWindowSeconds": 300})


def _endpoint_slice(obj: Obj, version: str) -> None:
    for p in _dicts(obj.get("ports")):
        if p.get("name") is None:
            p["name"] = ""
        if p.get("protocol") is None:
            p["protocol"] = "TCP"


def _binding_rbac(obj: Obj, version: str) -> None:
    ref = _d(obj, "roleRef")
    if not ref.get("apiGroup"):
        ref["apiGroup"] = "rbac.authorization.k8s.io"
    _subjects(obj, version)


def _subjects(obj: Obj, version: str) -> None:
    for s in _dicts(obj.get("subjects")):
        if not s.get("apiGroup"):
            if s.get("kind") == "ServiceAccount":
                s["apiGroup"] = ""
            elif s.get("kind") in ("User", "Group"):
                s["apiGroup"] = "rbac.authorization.k8s.io"
        if s.get("apiGroup") == "" and s.get("kind") == "ServiceAccount":
            s.pop("apiGroup")  # omitempty: an empty apiGroup is not written


def _priority_class(obj: Obj, version: str) -> None:
    if obj.get("preemptionPolicy") is None:
        obj["preemptionPolicy"] = "PreemptLowerPriority"


def _storage_class(obj: Obj, version: str) -> None:
    if not obj.get("reclaimPolicy"):
        obj["reclaimPolicy"] = "Delete"
    if obj.get("volumeBindingMode") is None:
        obj["volumeBindingMode"] = "Immediate"


def _api_service(obj: Obj) -> None:
    # kube-aggregator's SetDefaults_ServiceReference
    svc = _d(obj, "spec").get("service")
    if isinstance(svc, dict) and svc.get("port") is None:
        svc["port"] = 443


def _webhook_configuration(obj: Obj, mutating: bool) -> None:
    # admissionregistration/v1's SetDefaults_ValidatingWebhook / _MutatingWebhook, _Rule and
    # _ServiceReference
    for hook in _dicts(obj.get("webhooks")):
        hook.setdefault("failurePolicy", "Fail")
        hook.setdefault("matchPolicy", "Equivalent")
        if hook.get("namespaceSelector") is None:
            hook["namespaceSelector"] = {}
        if hook.get("objectSelector") is None:
            hook["objectSelector"] = {}
        if hook.get("timeoutSeconds") is None:
            hook["timeoutSeconds"] = 10
        if mutating and hook.get("reinvocationPolicy") is None:
            hook["reinvocationPolicy"] = "Never"
        for rule in _dicts(hook.get("rules")):
            if rule.get("scope") is None:
                rule["scope"] = "*"
        cc = hook.get("clientConfig")
        svc = cc.get("service") if isinstance(cc, dict) else None
        if isinstance(svc, dict) and svc.get("port") is None:
            svc["port"] = 443


def _match_resources(mr: Any) -> None:
    # admissionregistration/v1's SetDefaults_MatchResources and _Rule (for each named rule)
    if not isinstance(mr, dict):
        return
    mr.setdefault("matchPolicy", "Equivalent")
    if mr.get("namespaceSelector") is None:
        mr["namespaceSelector"] = {}
    if mr.get("objectSelector") is None:
        mr["objectSelector"] = {}
    for k in ("resourceRules", "excludeResourceRules"):
        for rule in _dicts(mr.get(k)):
            if rule.get("scope") is None:
                rule["scope"] = "*"


def _validating_admission_policy(obj: Obj) -> None:
    # SetDefaults_ValidatingAdmissionPolicySpec: failurePolicy Fail
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("failurePolicy", "Fail")
        _match_resources(spec.get("matchConstraints"))


def _validating_admission_policy_binding(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        _match_resources(spec.get("matchResources"))


_DEFAULTERS: dict[tuple[str, str], Callable[[Obj, str], None]] = {
    ("", "Pod"): _pod,
    ("", "PodTemplate"): _pod_template,
    ("", "ReplicationController"): _replication_controller,
    ("", "Service"): _service,
    ("", "Namespace"): _namespace,
    ("", "Secret"): _secret,
    ("", "Endpoints"): _endpoints,
    ("", "Node"): _node,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "PersistentVolume"): _pv,
    ("", "LimitRange"): _limit_range,
    ("", "ResourceQuota"): _resource_quota,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replica_set,
    ("apps", "StatefulSet"): _stateful_set,
    ("apps", "DaemonSet"): _daemon_set,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cron_job,
    ("networking.k8s.io", "NetworkPolicy"): _network_policy,
    ("networking.k8s.io", "IngressClass"): _ingress_class,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("discovery.k8s.io", "EndpointSlice"): _endpoint_slice,
    ("rbac.authorization.k8s.io", "RoleBinding"): _binding_rbac,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _binding_rbac,
    ("scheduling.k8s.io", "PriorityClass"): _priority_class,
    ("storage.k8s.io", "StorageClass"): _storage_class,
    ("apiregistration.k8s.io", "APIService"): lambda obj, _v: _api_service(obj),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"):
        lambda obj, _v: _webhook_configuration(obj, False),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): lambda obj, _v: _webhook_configuration(obj, True),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): lambda obj, _v: _validating_admission_policy(obj),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"):
        lambda obj, _v: _validating_admission_policy_binding(obj),
    # SetDefaults_MutatingAdmissionPolicySpec is the same: failurePolicy Fail (no reinvocationPolicy default)
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"): lambda obj, _v: _validating_admission_policy(obj),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"):
        lambda obj, _v: _validating_admission_policy_binding(obj),
}


def set_defaults(kind: KindInfo, obj: dict[str, Any]) -> None:
    """Fill in what Kubernetes' defaulters for ``kind``'s group/version fill in."""
    fn = _DEFAULTERS.get((kind.group, kind.kind))
    if fn is not None:
        fn(obj, kind.version)


# ---------------------------------------------------------------------------
# create-only


def pod_qos_class(pod: Obj) -> str:
    """Guaranteed, Burstable or BestEffort (``qos.GetPodQOS``)."""
    spec: Obj = pod["spec"] if isinstance(pod.get("spec"), dict) else {}
    requests: dict[str, quantity.Quantity] = {}
    limits: dict[str, quantity.Quantity] = {}
    guaranteed = True
    for c in (*_dicts(spec.get("initContainers")), *_dicts(spec.get("containers"))):
        res: Obj = c["resources"] if isinstance(c.get("resources"), dict) else {}
        for src, acc in ((res.get("requests"), requests), (res.get("limits"), limits)):
            found = set()
            for name, v in (src or {}).items() if isinstance(src, dict) else ():
                if name not in ("cpu", "memory"):
                    continue
                try:
                    qv = quantity.parse_quantity(v)
                except quantity.QuantityError:
                    continue
                if qv.is_zero():
                    continue
                found.add(name)
                acc[name] = acc[name] + qv if name in acc else qv
            if acc is limits and found != {"cpu", "memory"}:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed:
        for name, qv in requests.items():
            if name not in limits or limits[name].cmp(qv) != 0:
                guaranteed = False
                break
    if guaranteed and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"
