"""PodSpec validation (``pkg/apis/core/validation``: ValidatePodSpec and friends).

Used by Pod itself and by every pod template (ReplicaSet, Deployment,
StatefulSet, DaemonSet, Job, CronJob, ReplicationController, PodTemplate).
"""

from __future__ import annotations

from typing import Any

from k8py.api import quantity as q
from k8py.api.errors import (
    duplicate,
    forbidden,
    invalid,
    not_found,
    not_supported,
    required,
)
from k8py.api.validation.meta import (
    Errs,
    GoRaw,
    child,
    d_,
    i_,
    inclusive_range_error,
    index,
    is_config_map_key,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_env_var_name,
    is_http_header_name,
    is_qualified_name,
    is_valid_port_name,
    is_valid_port_num,
    key,
    l_,
    nonnegative,
    s_,
    validate_annotations,
    validate_ip,
    validate_labels,
)
from k8py.api.validation.scheduling import (
    validate_affinity,
    validate_dns_config,
    validate_tolerations,
    validate_topology_spread,
)

MAX_INT32 = 2**31 - 1

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
PORT_PROTOCOLS = ("SCTP", "TCP", "UDP")
HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket")
URI_SCHEMES = ("HTTP", "HTTPS")
PREEMPTION_POLICIES = ("Never", "PreemptLowerPriority")
FILE_MODE_ERROR = "must be a number between 0 and 0777 (octal), both inclusive"

# Volume source fields in the order Kubernetes checks them.
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs", "iscsi",
    "glusterfs", "flexVolume", "persistentVolumeClaim", "rbd", "cinder", "cephfs", "flocker", "downwardAPI", "fc",
    "azureFile", "vsphereVolume", "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "configMap",
    "quobyte", "scaleIO", "projected", "csi", "ephemeral", "image",
)

STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
STANDARD_RESOURCES = frozenset({
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage",
    "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods", "services", "replicationcontrollers",
    "resourcequotas", "secrets", "persistentvolumeclaims", "configmaps", "services.nodeports",
    "services.loadbalancers", "requests.storage", "storage",
})
INTEGER_RESOURCES = frozenset({
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
})


# ---------------------------------------------------------------------------
# resources


def _is_hugepages(name: str) -> bool:
    return name.startswith(("hugepages-", "requests.hugepages-"))


def is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def is_extended_resource(name: str) -> bool:
    if is_native_resource(name) or name.startswith("requests."):
        return False
    return not is_qualified_name("requests." + name)


def is_integer_resource(name: str) -> bool:
    return name in INTEGER_RESOURCES or name.startswith("count/") or is_extended_resource(name)


def _overcommit_allowed(name: str) -> bool:
    return is_native_resource(name) and not _is_hugepages(name)


def validate_resource_name(name: str, path: str) -> Errs:
    errs = [invalid(path, name, m) for m in is_qualified_name(name)]
    if errs:
        return errs
    if "/" not in name and name not in STANDARD_RESOURCES and not _is_hugepages(name):
        return [invalid(path, name, "must be a standard resource type or fully qualified")]
    return []


def validate_container_resource_name(name: str, path: str) -> Errs:
    errs = validate_resource_name(name, path)
    if "/" not in name:
        if name not in STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            errs.append(invalid(path, name, "must be a standard resource for containers"))
    elif not is_native_resource(name) and not is_extended_resource(name):
        errs.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errs


def parse_q(value: Any, path: str, errs: Errs) -> q.Quantity | None:
    """Parse a quantity; on failure add Kubernetes' quantity error at ``path``."""
    try:
        return q.parse_quantity(value)
    except q.QuantityError as e:
        errs.append(invalid(path, value if isinstance(value, str) else str(value), str(e)))
        return None


def validate_quantity_value(res: str, value: Any, path: str) -> tuple[q.Quantity | None, Errs]:
    errs: Errs = []
    qty = parse_q(value, path, errs)
    if qty is None:
        return None, errs
    if qty.sign() < 0:
        errs.append(invalid(path, str(qty), "must be greater than or equal to 0"))
    if is_integer_resource(res) and qty.milli_value() % 1000 != 0:
        # kube passes the Quantity itself here, which prints unquoted via String()
        errs.append(invalid(path, GoRaw(str(qty)), "must be an integer"))
    return qty, errs


def validate_resource_requirements(res: Any, path: str) -> Errs:
    res = d_(res)
    errs: Errs = []
    lim_path = child(path, "limits")
    req_path = child(path, "requests")
    limits: dict[str, q.Quantity] = {}
    has_cpu_mem = False
    has_huge = False
    for name, value in d_(res.get("limits")).items():
        fp = key(lim_path, name)
        errs += validate_container_resource_name(name, fp)
        qty, e = validate_quantity_value(name, value, fp)
        errs += e
        if qty is not None:
            limits[name] = qty
        has_huge = has_huge or name.startswith("hugepages-")
        has_cpu_mem = has_cpu_mem or name in ("cpu", "memory")
    for name, value in d_(res.get("requests")).items():
        fp = key(req_path, name)
        errs += validate_container_resource_name(name, fp)
        qty, e = validate_quantity_value(name, value, fp)
        errs += e
        has_huge = has_huge or name.startswith("hugepages-")
        has_cpu_mem = has_cpu_mem or name in ("cpu", "memory")
        if qty is None:
            continue
        lim = limits.get(name)
        if lim is not None:
            if qty.cmp(lim) != 0 and not _overcommit_allowed(name):
                errs.append(invalid(req_path, str(qty), f"must be equal to {name} limit of {lim}"))
            elif qty.cmp(lim) > 0:
                errs.append(invalid(req_path, str(qty), f"must be less than or equal to {name} limit of {lim}"))
        elif not _overcommit_allowed(name) and name not in d_(res.get("limits")):
            errs.append(required(lim_path, "Limit must be set for non overcommitable resources"))
    if has_huge and not has_cpu_mem:
        errs.append(forbidden(path, "HugePages require cpu or memory"))
    return errs


# ---------------------------------------------------------------------------
# volumes


def _validate_local_descending_path(p: str, path: str) -> Errs:
    errs: Errs = []
    if p.startswith("/"):
        errs.append(invalid(path, p, "must be a relative path"))
    errs += _no_backsteps(p, path)
    return errs


def _no_backsteps(p: str, path: str) -> Errs:
    if ".." in p.replace("\\", "/").split("/"):
        return [invalid(path, p, "must not contain '..'")]
    return []


def _file_mode(mode: Any, path: str) -> Errs:
    m = i_(mode)
    if m is not None and not 0 <= m <= 0o777:
        return [invalid(path, m, FILE_MODE_ERROR)]
    return []


def _key_to_paths(items: Any, path: str) -> Errs:
    errs: Errs = []
    for i, it in enumerate(l_(items)):
        it = d_(it)
        ip = index(path, i)
        if not s_(it.get("key")):
            errs.append(required(child(ip, "key"), ""))
        p = s_(it.get("path"))
        if not p:
            errs.append(required(child(ip, "path"), ""))
        else:
            errs += _validate_local_descending_path(p, child(ip, "path"))
        errs += _file_mode(it.get("mode"), child(ip, "mode"))
    return errs


def _object_field_selector(sel: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    if not s_(sel.get("apiVersion")):
        errs.append(required(child(path, "apiVersion"), ""))
    if not s_(sel.get("fieldPath")):
        errs.append(required(child(path, "fieldPath"), ""))
    return errs


def _downward_items(items: Any, path: str) -> Errs:
    errs: Errs = []
    for i, it in enumerate(l_(items)):
        it = d_(it)
        ip = index(path, i)
        p = s_(it.get("path"))
        if not p:
            errs.append(required(child(ip, "path"), ""))
        else:
            errs += _validate_local_descending_path(p, child(ip, "path"))
        errs += _file_mode(it.get("mode"), child(ip, "mode"))
        has_field = isinstance(it.get("fieldRef"), dict)
        has_res = isinstance(it.get("resourceFieldRef"), dict)
        if has_field and has_res:
            errs.append(invalid(ip, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
        elif has_field:
            errs += _object_field_selector(it["fieldRef"], child(ip, "fieldRef"))
        elif not has_res:
            errs.append(required(ip, "one of fieldRef and resourceFieldRef is required"))
    return errs


def _validate_one_source(name: str, src: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    if name == "hostPath":
        if not s_(src.get("path")):
            errs.append(required(child(path, "path"), ""))
        else:
            errs += _no_backsteps(s_(src.get("path")), child(path, "path"))
        t = src.get("type")
        if isinstance(t, str) and t not in HOST_PATH_TYPES:
            errs.append(not_supported(child(path, "type"), t, HOST_PATH_TYPES))
    elif name == "emptyDir":
        if "sizeLimit" in src and src["sizeLimit"] is not None:
            qty = parse_q(src["sizeLimit"], child(path, "sizeLimit"), errs)
            if qty is not None and qty.sign() < 0:
                errs.append(invalid(child(path, "sizeLimit"), str(qty), "must be greater than or equal to 0"))
    elif name == "secret":
        if not s_(src.get("secretName")):
            errs.append(required(child(path, "secretName"), ""))
        errs += _file_mode(src.get("defaultMode"), child(path, "defaultMode"))
        errs += _key_to_paths(src.get("items"), child(path, "items"))
    elif name == "configMap":
        if not s_(src.get("name")):
            errs.append(required(child(path, "name"), ""))
        errs += _file_mode(src.get("defaultMode"), child(path, "defaultMode"))
        errs += _key_to_paths(src.get("items"), child(path, "items"))
    elif name == "persistentVolumeClaim":
        if not s_(src.get("claimName")):
            errs.append(required(child(path, "claimName"), ""))
    elif name == "nfs":
        if not s_(src.get("server")):
            errs.append(required(child(path, "server"), ""))
        p = s_(src.get("path"))
        if not p:
            errs.append(required(child(path, "path"), ""))
        elif not p.startswith("/"):
            errs.append(invalid(child(path, "path"), p, "must be an absolute path"))
    elif name == "downwardAPI":
        errs += _file_mode(src.get("defaultMode"), child(path, "defaultMode"))
        errs += _downward_items(src.get("items"), child(path, "items"))
    elif name == "csi":
        if not s_(src.get("driver")):
            errs.append(required(child(path, "driver"), ""))
    elif name == "ephemeral":
        if not isinstance(src.get("volumeClaimTemplate"), dict):
            errs.append(required(child(path, "volumeClaimTemplate"), ""))
    elif name == "image":
        if not s_(src.get("reference")):
            errs.append(required(child(path, "reference"), ""))
    elif name == "projected":
        errs += _file_mode(src.get("defaultMode"), child(path, "defaultMode"))
        for i, proj in enumerate(l_(src.get("sources"))):
            proj = d_(proj)
            pp = index(child(path, "sources"), i)
            kinds = [k for k in ("secret", "downwardAPI", "configMap", "serviceAccountToken", "clusterTrustBundle",
                                 "podCertificate") if isinstance(proj.get(k), dict)]
            for extra in kinds[1:]:
                errs.append(forbidden(child(pp, extra), "may not specify more than 1 volume type per source"))
            if not kinds:
                errs.append(required(pp, "must specify exactly 1 volume type"))
            for k in kinds[:1]:
                sub = proj[k]
                sp = child(pp, k)
                if k in ("secret", "configMap"):
                    if not s_(sub.get("name")):
                        errs.append(required(child(sp, "name"), ""))
                    errs += _key_to_paths(sub.get("items"), child(sp, "items"))
                elif k == "downwardAPI":
                    errs += _downward_items(sub.get("items"), child(sp, "items"))
                elif k == "serviceAccountToken":
                    exp = i_(sub.get("expirationSeconds"))
                    if exp is not None and exp < 600:
                        errs.append(invalid(child(sp, "expirationSeconds"), exp,
                                            "may not specify a duration less than 10 minutes"))
                    elif exp is not None and exp > 2**32:
                        errs.append(invalid(child(sp, "expirationSeconds"), exp,
                                            "may not specify a duration larger than 2^32 seconds"))
                    if not s_(sub.get("path")):
                        errs.append(required(child(sp, "path"), ""))
    return errs


def validate_volume_source(vol: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    count = 0
    for name in VOLUME_SOURCES:
        src = vol.get(name)
        if src is None:
            continue
        if count > 0:
            errs.append(forbidden(child(path, name), "may not specify more than 1 volume type"))
            continue
        count += 1
        errs += _validate_one_source(name, d_(src), child(path, name))
    if count == 0:
        errs.append(required(path, "must specify a volume type"))
    return errs


def validate_volumes(volumes: Any, path: str) -> tuple[dict[str, dict[str, Any]], Errs]:
    errs: Errs = []
    names: dict[str, dict[str, Any]] = {}
    for i, vol in enumerate(l_(volumes)):
        vol = d_(vol)
        ip = index(path, i)
        name = s_(vol.get("name"))
        el = validate_volume_source(vol, ip)
        if not name:
            el.append(required(child(ip, "name"), ""))
        else:
            el += [invalid(child(ip, "name"), name, m) for m in is_dns1123_label(name)]
        if name in names:
            el.append(duplicate(child(ip, "name"), name))
        if el:
            errs += el
        else:
            names[name] = vol
    return names, errs


def validate_volume_mounts(mounts: Any, devices: Any, volumes: dict[str, dict[str, Any]], path: str) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    dev_names = {s_(d_(d).get("name")) for d in l_(devices)}
    dev_paths = {s_(d_(d).get("devicePath")) for d in l_(devices)}
    for i, m in enumerate(l_(mounts)):
        m = d_(m)
        ip = index(path, i)
        name = s_(m.get("name"))
        mp = s_(m.get("mountPath"))
        if not name:
            errs.append(required(child(ip, "name"), ""))
        if name not in volumes:
            errs.append(not_found(child(ip, "name"), name))
        if not mp:
            errs.append(required(child(ip, "mountPath"), ""))
        if mp in seen:
            errs.append(invalid(child(ip, "mountPath"), mp, "must be unique"))
        seen.add(mp)
        if name and name in dev_names:
            errs.append(invalid(child(ip, "name"), name, "must not already exist in volumeDevices"))
        if mp and mp in dev_paths:
            errs.append(invalid(child(ip, "mountPath"), mp, "must not already exist as a path in volumeDevices"))
        sub = s_(m.get("subPath"))
        if sub:
            errs += _validate_local_descending_path(sub, child(path, "subPath"))
        sub_expr = s_(m.get("subPathExpr"))
        if sub_expr:
            if sub:
                errs.append(invalid(child(ip, "subPathExpr"), sub_expr, "subPathExpr and subPath are mutually exclusive"))
            errs += _validate_local_descending_path(sub_expr, child(path, "subPathExpr"))
        prop = m.get("mountPropagation")
        if isinstance(prop, str) and prop not in ("Bidirectional", "HostToContainer", "None"):
            errs.append(not_supported(child(path, "mountPropagation"), prop,
                                      ("Bidirectional", "HostToContainer", "None")))
    return errs


# ---------------------------------------------------------------------------
# containers


def validate_port_num_or_name(port: Any, path: str) -> Errs:
    if isinstance(port, bool):
        return [invalid(path, port, "must be an int or a string")]
    if isinstance(port, int):
        return [invalid(path, port, m) for m in is_valid_port_num(port)]
    if isinstance(port, str):
        return [invalid(path, port, m) for m in is_valid_port_name(port)]
    return [required(path, "")] if port is None else []


def validate_container_ports(ports: Any, path: str) -> Errs:
    errs: Errs = []
    names: set[str] = set()
    for i, p in enumerate(l_(ports)):
        p = d_(p)
        ip = index(path, i)
        name = s_(p.get("name"))
        if name:
            msgs = is_valid_port_name(name)
            if msgs:
                errs += [invalid(child(ip, "name"), name, m) for m in msgs]
            elif name in names:
                errs.append(duplicate(child(ip, "name"), name))
            else:
                names.add(name)
        cp = i_(p.get("containerPort"))
        if not cp:
            errs.append(required(child(ip, "containerPort"), ""))
        else:
            errs += [invalid(child(ip, "containerPort"), cp, m) for m in is_valid_port_num(cp)]
        hp = i_(p.get("hostPort"))
        if hp:
            errs += [invalid(child(ip, "hostPort"), hp, m) for m in is_valid_port_num(hp)]
        proto = p.get("protocol")
        if not proto:
            errs.append(required(child(ip, "protocol"), ""))
        elif proto not in PORT_PROTOCOLS:
            errs.append(not_supported(child(ip, "protocol"), proto, PORT_PROTOCOLS))
    return errs


def validate_env(env: Any, path: str) -> Errs:
    errs: Errs = []
    for i, ev in enumerate(l_(env)):
        ev = d_(ev)
        ip = index(path, i)
        name = s_(ev.get("name"))
        if not name:
            errs.append(required(child(ip, "name"), ""))
        errs += [invalid(child(ip, "name"), name, m) for m in is_env_var_name(name)]
        vf = ev.get("valueFrom")
        if vf is None:
            continue
        vf = d_(vf)
        vp = child(ip, "valueFrom")
        sources = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef")
                   if isinstance(vf.get(k), dict)]
        if s_(ev.get("value")) and sources:
            errs.append(invalid(vp, "", "may not be specified when `value` is not empty"))
        if not sources:
            errs.append(invalid(vp, "",
                                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
        elif len(sources) > 1:
            errs.append(invalid(vp, "", "may not have more than one field specified at a time"))
        for k in sources[:1]:
            sp = child(vp, k)
            ref = vf[k]
            if k == "fieldRef":
                errs += _object_field_selector(ref, sp)
            elif k == "resourceFieldRef":
                if not s_(ref.get("resource")):
                    errs.append(required(child(sp, "resource"), ""))
            elif k in ("configMapKeyRef", "secretKeyRef"):
                if not s_(ref.get("name")) and k == "secretKeyRef":
                    errs.append(required(child(sp, "name"), ""))
                kk = s_(ref.get("key"))
                if not kk:
                    errs.append(required(child(sp, "key"), ""))
                else:
                    errs += [invalid(child(sp, "key"), kk, m) for m in is_config_map_key(kk)]
    return errs


def validate_env_from(env_from: Any, path: str) -> Errs:
    errs: Errs = []
    for i, ef in enumerate(l_(env_from)):
        ef = d_(ef)
        ip = index(path, i)
        prefix = s_(ef.get("prefix"))
        if prefix:
            errs += [invalid(child(ip, "prefix"), prefix, m) for m in is_env_var_name(prefix)]
        n = 0
        for k in ("configMapRef", "secretRef"):
            ref = ef.get(k)
            if isinstance(ref, dict):
                n += 1
                if not s_(ref.get("name")):
                    errs.append(required(child(child(ip, k), "name"), ""))
                else:
                    errs += [invalid(child(child(ip, k), "name"), ref["name"], m)
                             for m in is_dns1123_subdomain(ref["name"])]
        if n == 0:
            errs.append(invalid(ip, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif n > 1:
            errs.append(invalid(ip, "", "may not have more than one field specified at a time"))
    return errs


def validate_handler(h: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    n = 0
    for kind in ("exec", "httpGet", "tcpSocket", "grpc", "sleep"):
        v = h.get(kind)
        if not isinstance(v, dict):
            continue
        kp = child(path, kind)
        if n > 0:
            errs.append(forbidden(kp, "may not specify more than 1 handler type"))
            continue
        n += 1
        if kind == "exec":
            if not l_(v.get("command")):
                errs.append(required(child(kp, "command"), ""))
        elif kind == "httpGet":
            if not s_(v.get("path")):
                errs.append(required(child(kp, "path"), ""))
            errs += validate_port_num_or_name(v.get("port"), child(kp, "port"))
            scheme = v.get("scheme")
            if scheme not in URI_SCHEMES:
                errs.append(not_supported(child(kp, "scheme"), scheme if scheme is not None else "", URI_SCHEMES))
            for hdr in l_(v.get("httpHeaders")):
                hn = s_(d_(hdr).get("name"))
                errs += [invalid(child(kp, "httpHeaders"), hn, m) for m in is_http_header_name(hn)]
        elif kind == "tcpSocket":
            errs += validate_port_num_or_name(v.get("port"), child(kp, "port"))
        elif kind == "grpc":
            port = i_(v.get("port"))
            if port is None:
                errs.append(required(child(kp, "port"), ""))
            else:
                errs += [invalid(child(kp, "port"), port, m) for m in is_valid_port_num(port)]
        elif kind == "sleep":
            secs = i_(v.get("seconds"))
            if secs is not None and secs < 0:
                errs.append(invalid(child(kp, "seconds"), secs, "must be non-negative integer"))
    if n == 0:
        errs.append(required(path, "must specify a handler type"))
    return errs


def validate_probe(probe: Any, path: str, kind: str) -> Errs:
    if probe is None:
        return []
    probe = d_(probe)
    errs = validate_handler(probe, path)
    for f in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        errs += nonnegative(child(path, f), probe.get(f))
    tgps = i_(probe.get("terminationGracePeriodSeconds"))
    if tgps is not None and tgps <= 0:
        errs.append(invalid(child(path, "terminationGracePeriodSeconds"), tgps, "must be greater than 0"))
    st = i_(probe.get("successThreshold"))
    if kind in ("liveness", "startup") and st is not None and st != 1:
        errs.append(invalid(child(path, "successThreshold"), st, "must be 1"))
    if kind == "readiness" and tgps is not None:
        errs.append(invalid(child(path, "terminationGracePeriodSeconds"), tgps,
                            "must not be set for readinessProbes"))
    return errs


def validate_lifecycle(lc: Any, path: str) -> Errs:
    errs: Errs = []
    for hook in ("postStart", "preStop"):
        h = d_(lc).get(hook)
        if isinstance(h, dict):
            errs += validate_handler(h, child(path, hook))
    return errs


def validate_security_context(sc: Any, path: str) -> Errs:
    if not isinstance(sc, dict):
        return []
    errs: Errs = []
    for f in ("runAsUser", "runAsGroup"):
        v = i_(sc.get(f))
        if v is not None and not 0 <= v <= MAX_INT32:
            errs.append(invalid(child(path, f), v, inclusive_range_error(0, MAX_INT32)))
    if sc.get("privileged") is True and sc.get("allowPrivilegeEscalation") is False:
        errs.append(invalid(path, "", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
    if "procMount" in sc and sc["procMount"] not in ("Default", "Unmasked", None):
        errs.append(not_supported(child(path, "procMount"), sc["procMount"], ("Default", "Unmasked")))
    errs += _seccomp(sc.get("seccompProfile"), child(path, "seccompProfile"))
    return errs


def _seccomp(prof: Any, path: str) -> Errs:
    if not isinstance(prof, dict):
        return []
    t = prof.get("type")
    errs: Errs = []
    if t not in ("Localhost", "RuntimeDefault", "Unconfined"):
        return [not_supported(child(path, "type"), t if t is not None else "", ("Localhost", "RuntimeDefault", "Unconfined"))]
    if t == "Localhost" and not s_(prof.get("localhostProfile")):
        errs.append(required(child(path, "localhostProfile"), "must be set when seccomp type is Localhost"))
    if t != "Localhost" and prof.get("localhostProfile"):
        errs.append(invalid(child(path, "localhostProfile"), prof["localhostProfile"],
                            "can only be set when seccomp type is Localhost"))
    return errs


def _container_common(c: dict[str, Any], volumes: dict[str, dict[str, Any]], path: str) -> Errs:
    errs: Errs = []
    name = s_(c.get("name"))
    if not name:
        errs.append(required(child(path, "name"), ""))
    else:
        errs += [invalid(child(path, "name"), name, m) for m in is_dns1123_label(name)]
    if not s_(c.get("image")):
        errs.append(required(child(path, "image"), ""))
    tmp = c.get("terminationMessagePolicy")
    if not tmp:
        errs.append(required(child(path, "terminationMessagePolicy"), ""))
    elif tmp not in TERMINATION_MESSAGE_POLICIES:
        errs.append(not_supported(child(path, "terminationMessagePolicy"), tmp, TERMINATION_MESSAGE_POLICIES))
    errs += validate_container_ports(c.get("ports"), child(path, "ports"))
    errs += validate_env(c.get("env"), child(path, "env"))
    errs += validate_env_from(c.get("envFrom"), child(path, "envFrom"))
    errs += validate_volume_mounts(c.get("volumeMounts"), c.get("volumeDevices"), volumes, child(path, "volumeMounts"))
    for i, dev in enumerate(l_(c.get("volumeDevices"))):
        dev = d_(dev)
        dp = index(child(path, "volumeDevices"), i)
        if not s_(dev.get("name")):
            errs.append(required(child(dp, "name"), ""))
        elif dev.get("name") not in volumes:
            errs.append(not_found(child(dp, "name"), dev.get("name")))
        if not s_(dev.get("devicePath")):
            errs.append(required(child(dp, "devicePath"), ""))
    ipp = c.get("imagePullPolicy")
    if not ipp:
        errs.append(required(child(path, "imagePullPolicy"), ""))
    elif ipp not in PULL_POLICIES:
        errs.append(not_supported(child(path, "imagePullPolicy"), ipp, PULL_POLICIES))
    errs += validate_resource_requirements(c.get("resources"), child(path, "resources"))
    errs += validate_security_context(c.get("securityContext"), child(path, "securityContext"))
    return errs


def validate_containers(containers: Any, volumes: dict[str, dict[str, Any]], path: str) -> Errs:
    containers = l_(containers)
    if not containers:
        return [required(path, "")]
    errs: Errs = []
    names: set[str] = set()
    for i, c in enumerate(containers):
        c = d_(c)
        cp = index(path, i)
        errs += _container_common(c, volumes, cp)
        name = s_(c.get("name"))
        if name in names:
            errs.append(duplicate(child(cp, "name"), name))
        else:
            names.add(name)
        if isinstance(c.get("lifecycle"), dict):
            errs += validate_lifecycle(c["lifecycle"], child(cp, "lifecycle"))
        errs += validate_probe(c.get("livenessProbe"), child(cp, "livenessProbe"), "liveness")
        errs += validate_probe(c.get("readinessProbe"), child(cp, "readinessProbe"), "readiness")
        errs += validate_probe(c.get("startupProbe"), child(cp, "startupProbe"), "startup")
        rp = c.get("restartPolicy")
        if rp is not None and rp not in RESTART_POLICIES:
            errs.append(not_supported(child(cp, "restartPolicy"), rp, RESTART_POLICIES))
    errs += _unique_host_ports(containers, path)
    return errs


def _unique_host_ports(containers: list[Any], path: str) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    for ci, c in enumerate(containers):
        for pi, p in enumerate(l_(d_(c).get("ports"))):
            p = d_(p)
            hp = i_(p.get("hostPort"))
            if not hp:
                continue
            s = f"{s_(p.get('hostIP'))}/{s_(p.get('protocol'))}/{hp}"
            if s in seen:
                errs.append(duplicate(child(index(child(index(path, ci), "ports"), pi), "hostPort"), s))
            seen.add(s)
    return errs


def validate_init_containers(inits: Any, containers: Any, volumes: dict[str, dict[str, Any]], path: str) -> Errs:
    errs: Errs = []
    names = {s_(d_(c).get("name")) for c in l_(containers)}
    for i, c in enumerate(l_(inits)):
        c = d_(c)
        cp = index(path, i)
        errs += _container_common(c, volumes, cp)
        name = s_(c.get("name"))
        if name in names:
            errs.append(duplicate(child(cp, "name"), name))
        else:
            names.add(name)
        rp = c.get("restartPolicy")
        sidecar = rp == "Always"
        if rp is not None and rp not in RESTART_POLICIES:
            errs.append(not_supported(child(cp, "restartPolicy"), rp, RESTART_POLICIES))
        if sidecar:
            if isinstance(c.get("lifecycle"), dict):
                errs += validate_lifecycle(c["lifecycle"], child(cp, "lifecycle"))
            errs += validate_probe(c.get("livenessProbe"), child(cp, "livenessProbe"), "liveness")
            errs += validate_probe(c.get("readinessProbe"), child(cp, "readinessProbe"), "readiness")
            errs += validate_probe(c.get("startupProbe"), child(cp, "startupProbe"), "startup")
        else:
            for f in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(f) is not None:
                    errs.append(forbidden(child(cp, f), "may not be set for init containers without restartPolicy=Always"))
    return errs


# ---------------------------------------------------------------------------
# pod-level fields


def validate_pod_spec(spec: Any, path: str = "spec", extra_volumes: tuple[str, ...] = ()) -> Errs:
    """ValidatePodSpec. ``extra_volumes``: names mounts may also refer to
    (a StatefulSet's volumeClaimTemplates)."""
    spec = d_(spec)
    vols, errs = validate_volumes(spec.get("volumes"), child(path, "volumes"))
    for name in extra_volumes:
        vols.setdefault(name, {"persistentVolumeClaim": {"claimName": name}})
    errs += validate_containers(spec.get("containers"), vols, child(path, "containers"))
    errs += validate_init_containers(spec.get("initContainers"), spec.get("containers"), vols,
                                     child(path, "initContainers"))
    rp = spec.get("restartPolicy")
    if not rp:
        errs.append(required(child(path, "restartPolicy"), ""))
    elif rp not in RESTART_POLICIES:
        errs.append(not_supported(child(path, "restartPolicy"), rp, RESTART_POLICIES))
    dp = spec.get("dnsPolicy")
    if not dp:
        errs.append(required(child(path, "dnsPolicy"), ""))
    elif dp not in DNS_POLICIES:
        errs.append(not_supported(child(path, "dnsPolicy"), dp, DNS_POLICIES))
    errs += validate_labels(spec.get("nodeSelector"), child(path, "nodeSelector"))
    errs += validate_security_context(spec.get("securityContext"), child(path, "securityContext"))
    for i, s in enumerate(l_(spec.get("imagePullSecrets"))):
        if not s_(d_(s).get("name")):
            errs.append(required(child(index(child(path, "imagePullSecrets"), i), "name"), ""))
    errs += validate_affinity(spec.get("affinity"), child(path, "affinity"))
    errs += validate_dns_config(spec.get("dnsConfig"), dp, child(path, "dnsConfig"))
    for i, g in enumerate(l_(spec.get("readinessGates"))):
        ct = s_(d_(g).get("conditionType"))
        errs += [invalid(child(index(child(path, "readinessGates"), i), "conditionType"), ct, m)
                 for m in is_qualified_name(ct)]
    sg_seen: set[str] = set()
    for i, g in enumerate(l_(spec.get("schedulingGates"))):
        gp = index(child(path, "schedulingGates"), i)
        n = s_(d_(g).get("name"))
        errs += [invalid(gp, n, m) for m in is_qualified_name(n)]
        if n in sg_seen:
            errs.append(duplicate(gp, n))
        sg_seen.add(n)
    errs += validate_topology_spread(spec.get("topologySpreadConstraints"), child(path, "topologySpreadConstraints"))
    for f, fn in (("serviceAccountName", is_dns1123_subdomain), ("nodeName", is_dns1123_subdomain),
                  ("priorityClassName", is_dns1123_subdomain)):
        v = s_(spec.get(f))
        if v:
            errs += [invalid(child(path, f), v, m) for m in fn(v)]
    ads = i_(spec.get("activeDeadlineSeconds"))
    if ads is not None and not 1 <= ads <= MAX_INT32:
        errs.append(invalid(child(path, "activeDeadlineSeconds"), ads, inclusive_range_error(1, MAX_INT32)))
    for f in ("hostname", "subdomain"):
        v = s_(spec.get(f))
        if v:
            errs += [invalid(child(path, f), v, m) for m in is_dns1123_label(v)]
    errs += validate_tolerations(spec.get("tolerations"), child(path, "tolerations"))
    for i, ha in enumerate(l_(spec.get("hostAliases"))):
        ha = d_(ha)
        hp = index(child(path, "hostAliases"), i)
        errs += validate_ip(child(hp, "ip"), s_(ha.get("ip")))
        for j, hn in enumerate(l_(ha.get("hostnames"))):
            errs += [invalid(index(child(hp, "hostnames"), j), hn, m) for m in is_dns1123_subdomain(s_(hn))]
    rcn = spec.get("runtimeClassName")
    if isinstance(rcn, str):
        errs += [invalid(child(path, "runtimeClassName"), rcn, m) for m in is_dns1123_subdomain(rcn)]
    pp = spec.get("preemptionPolicy")
    if pp is not None and pp not in PREEMPTION_POLICIES:
        errs.append(not_supported(child(path, "preemptionPolicy"), pp, PREEMPTION_POLICIES))
    os_ = spec.get("os")
    if isinstance(os_, dict):
        name = s_(os_.get("name"))
        if not name:
            errs.append(required(child(child(path, "os"), "name"), ""))
        elif name not in ("linux", "windows"):
            errs.append(not_supported(child(child(path, "os"), "name"), name, ("linux", "windows")))
    for i, rc in enumerate(l_(spec.get("resourceClaims"))):
        n = s_(d_(rc).get("name"))
        errs += [invalid(child(index(child(path, "resourceClaims"), i), "name"), n, m) for m in is_dns1123_label(n)]
    ov = spec.get("overhead")
    for name, value in d_(ov).items():
        fp = key(child(path, "overhead"), name)
        errs += validate_resource_name(name, fp)
        errs += validate_quantity_value(name, value, fp)[1]
    return errs


def validate_pod_template_spec(tmpl: Any, path: str, extra_volumes: tuple[str, ...] = ()) -> Errs:
    """ValidatePodTemplateSpec: template labels/annotations plus the spec."""
    tmpl = d_(tmpl)
    meta = d_(tmpl.get("metadata"))
    # Kubernetes reports template metadata without ".metadata" (spec.template.labels).
    errs = validate_labels(meta.get("labels"), child(path, "labels"))
    errs += validate_annotations(meta.get("annotations"), child(path, "annotations"))
    errs += validate_pod_spec(tmpl.get("spec"), child(path, "spec"), extra_volumes)
    spec = d_(tmpl.get("spec"))
    if l_(spec.get("ephemeralContainers")):
        errs.append(forbidden(child(child(path, "spec"), "ephemeralContainers"),
                              "ephemeral containers not allowed in pod template"))
    return errs


# Fields an ephemeral container may not have (kube's validateEphemeralContainers)
_EPHEMERAL_FORBIDDEN = ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources",
                        "resizePolicy")


def validate_ephemeral_containers_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    """kube's ValidatePodEphemeralContainersUpdate, for ``pods/ephemeralcontainers``: existing
    ephemeral containers may be neither removed nor changed; added ones are containers with a
    unique name, an image, none of the fields that make no sense for a one-off container, and a
    ``targetContainerName`` that names one of the pod's containers."""
    path = "spec.ephemeralContainers"
    new_spec, old_spec = d_(new.get("spec")), d_(old.get("spec"))
    new_ecs = [d_(c) for c in l_(new_spec.get("ephemeralContainers"))]
    by_name = {s_(c.get("name")): c for c in new_ecs}
    errs: Errs = []
    old_names = set()
    for oc in l_(old_spec.get("ephemeralContainers")):
        oc = d_(oc)
        name = s_(oc.get("name"))
        old_names.add(name)
        if name not in by_name:
            errs.append(forbidden(path, f'existing ephemeral containers "{name}" may not be removed\n'))
        elif by_name[name] != oc:
            errs.append(forbidden(path, f'existing ephemeral containers "{name}" may not be changed\n'))
    volumes, _ = validate_volumes(new_spec.get("volumes"), "spec.volumes")
    others = {s_(d_(c).get("name")) for key in ("containers", "initContainers")
              for c in l_(new_spec.get(key))}
    seen: set[str] = set()
    for i, c in enumerate(new_ecs):
        cp = index(path, i)
        name = s_(c.get("name"))
        if name in others or name in seen:
            errs.append(duplicate(child(cp, "name"), name))
        seen.add(name)
        if name in old_names:
            continue
        errs += _container_common(c, volumes, cp)
        for f in _EPHEMERAL_FORBIDDEN:
            if c.get(f):
                errs.append(forbidden(child(cp, f), "cannot be set for an Ephemeral Container"))
        if c.get("restartPolicy") is not None:
            errs.append(forbidden(child(cp, "restartPolicy"), "cannot be set for an Ephemeral Container"))
        target = s_(c.get("targetContainerName"))
        if target and target not in others:
            errs.append(not_found(child(cp, "targetContainerName"), target))
    return errs
