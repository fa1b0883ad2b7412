"""From a Pod to what the runtime is asked for, pure: the sandbox config, and each container's
config (command, args and env with ``$(VAR)`` expansion, ``valueFrom``, ``envFrom``, working
dir, mounts, cgroup resources from requests and limits, security context), as kubelet's
``kuberuntime`` builds its CRI requests. The pod worker fetches the ConfigMaps and Secrets a pod's
env refers to (:func:`referenced_objects`) and passes them in, so nothing here does I/O. Where
each volume is on the node, and its set-up, belong to :mod:`k8py.kubelet.volumes`; here the
container's mounts are only mapped onto those paths.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from k8py.api.corev1 import container_limits, int_value, milli_value, pod_limits, pod_requests
from k8py.api.defaults import pod_qos_class
from k8py.kubelet.runtime.types import (
    CgroupResources,
    ContainerConfig,
    DNSConfig,
    Mount,
    PortMapping,
    Resources,
    SandboxConfig,
    Security,
)

__all__ = [
    "ConfigError",
    "NodeFacts",
    "container_config",
    "container_labels",
    "expand",
    "metadata_field",
    "milli_cpu_to_shares",
    "pod_cgroup_resources",
    "pod_labels",
    "pod_qos",
    "referenced_objects",
    "resource_field_value",
    "sandbox_config",
]

Obj = dict[str, Any]

# kubelet's cgroup constants (pkg/kubelet/cm/helpers_linux.go)
MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
QUOTA_PERIOD = 100_000  # us
MIN_QUOTA = 1000
# kubelet's OOM score adjustments (pkg/kubelet/qos/policy.go)
GUARANTEED_OOM_ADJ = -997
BESTEFFORT_OOM_ADJ = 1000
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
HOSTNAME_MAX_LEN = 63

CLUSTER_DOMAIN = "cluster.local"


class ConfigError(Exception):
    """The container cannot be configured (a missing ConfigMap key, an unsupported volume):
    ``CreateContainerConfigError`` with this message."""


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the config depends on about the node."""

    name: str
    host_ips: tuple[str, ...] = ()
    memory_capacity: int = 0  # bytes
    cpu_allocatable_milli: int = 0
    memory_allocatable: int = 0
    pods_dir: str = "/var/lib/k8py/agent/pods"
    log_dir: str = "/var/log/pods"
    cluster_dns: tuple[str, ...] = ()  # the kube-dns Service's address, once there is one
    cluster_domain: str = CLUSTER_DOMAIN


def pod_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    meta = pod.get("metadata") or {}
    return {"io.kubernetes.pod.name": str(meta.get("name", "")),
            "io.kubernetes.pod.namespace": str(meta.get("namespace", "")),
            "io.kubernetes.pod.uid": str(meta.get("uid", ""))}


def container_labels(pod: Mapping[str, Any], name: str) -> dict[str, str]:
    return {**pod_labels(pod), "io.kubernetes.container.name": name}


# --------------------------------------------------------------------------- QoS and cgroups


def pod_qos(pod: Mapping[str, Any]) -> str:
    """The pod's QoS class, as the API server set it at create (kube computes it there)."""
    q = (pod.get("status") or {}).get("qosClass")
    if q:
        return str(q)
    return pod_qos_class(dict(pod))  # a pod from before the server set it: the API's own rules


def _shares(milli: int) -> int:
    """kubelet's ``MilliCPUToShares``."""
    if milli == 0:
        return MIN_SHARES
    return min(max(milli * SHARES_PER_CPU // 1000, MIN_SHARES), MAX_SHARES)


milli_cpu_to_shares = _shares  # the public name: the pods' QoS and node-allocatable cgroups use it too


def _node_critical(pod: Mapping[str, Any]) -> bool:
    """kubelet's ``IsNodeCriticalPod``: the ``system-node-critical`` class at a system priority."""
    spec = pod.get("spec") or {}
    prio = spec.get("priority")
    return spec.get("priorityClassName") == "system-node-critical" and (
        prio is None or int(prio) >= SYSTEM_CRITICAL_PRIORITY)


def _resources(pod: Mapping[str, Any], c: Mapping[str, Any], node: NodeFacts) -> Resources:
    res = c.get("resources") or {}
    req = res.get("requests") or {}
    lim = res.get("limits") or {}
    cpu_req = milli_value(req.get("cpu", 0))
    cpu_lim = milli_value(lim.get("cpu", 0))
    # kubelet (calculateLinuxResources): no cpu request but a limit: the request is the limit
    shares = _shares(cpu_lim if cpu_req == 0 and cpu_lim else cpu_req)
    quota = period = None
    if cpu_lim > 0:
        period = QUOTA_PERIOD
        quota = _quota(cpu_lim)
    mem = int_value(lim["memory"]) if "memory" in lim and int_value(lim["memory"]) > 0 else None
    qos = pod_qos(pod)
    if qos == "Guaranteed" or _node_critical(pod):
        adj = GUARANTEED_OOM_ADJ
    elif qos == "BestEffort":
        adj = BESTEFFORT_OOM_ADJ
    else:
        # kubelet's GetContainerOOMScoreAdjust: 1000 - 1000 * request / capacity, kept above a
        # guaranteed container's (3) and below a best-effort one's (999)
        mem_req = int_value(req.get("memory", 0))
        adj = 1000 - (1000 * mem_req) // node.memory_capacity if node.memory_capacity else 999
        if adj < 1000 + GUARANTEED_OOM_ADJ:
            adj = 1000 + GUARANTEED_OOM_ADJ
        elif adj == BESTEFFORT_OOM_ADJ:
            adj -= 1
    return Resources(cpu_shares=shares, cpu_period=period, cpu_quota=quota, memory_limit=mem, oom_score_adj=adj)


PODS_CGROUP = "kubepods"  # kubelet's cgroup of all pods (the eviction manager reads its memory)


def _cgroup_parent(pod: Mapping[str, Any]) -> str:
    """kubelet's cgroupfs layout: kubepods[/burstable|/besteffort]/pod<uid>."""
    uid = (pod.get("metadata") or {}).get("uid", "")
    qos = pod_qos(pod)
    return f"{PODS_CGROUP}/pod{uid}" if qos == "Guaranteed" else f"{PODS_CGROUP}/{qos.lower()}/pod{uid}"


def _quota(milli: int) -> int:
    """kubelet's ``MilliCPUToQuota`` (with its 100 ms period): at least 1 ms."""
    return max(MIN_QUOTA, milli * QUOTA_PERIOD // 1000)


def pod_cgroup_resources(pod: Mapping[str, Any]) -> CgroupResources:
    """kubelet's ``ResourceConfigForPod``: the pod cgroup's CPU shares from the pod's requests
    (2 for BestEffort); its CPU quota and memory limit from the pod's limits, for a Guaranteed pod,
    and for a Burstable one when every container declares that limit (one without would make the
    sum meaningless); nothing more for BestEffort. Init containers count as kube's ``PodRequests``
    and ``PodLimits`` count them (their peak), so the pod cgroup never holds its own containers
    below their limits."""
    spec = pod.get("spec") or {}
    qos = pod_qos(pod)
    if qos == "BestEffort":
        return CgroupResources(cpu_shares=MIN_SHARES)
    reqs, limits = pod_requests(spec), pod_limits(spec)
    shares = _shares(reqs.get("cpu", 0))
    cpu_limit, mem_limit = limits.get("cpu", 0), limits.get("memory", 0)
    containers = spec.get("containers") or ()
    declared = [container_limits(c) for c in containers]
    cpu_declared = all(lim.get("cpu", 0) > 0 for lim in declared)
    mem_declared = all(lim.get("memory", 0) > 0 for lim in declared)
    quota = period = memory = None
    if cpu_limit > 0 and (qos == "Guaranteed" or cpu_declared):
        quota, period = _quota(cpu_limit), QUOTA_PERIOD
    if mem_limit > 0 and (qos == "Guaranteed" or mem_declared):
        memory = mem_limit
    return CgroupResources(cpu_shares=shares, cpu_quota=quota, cpu_period=period, memory=memory)


# --------------------------------------------------------------------------- env


_VAR = re.compile(r"\$\$|\$\(([^)]*)\)")


def expand(s: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: a defined VAR is replaced, ``$$`` is a literal ``$``,
    anything else (an undefined VAR, an unclosed ``$(``) stays as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, s)


def metadata_field(pod: Mapping[str, Any], path: str) -> str:
    """kubelet's ``fieldpath.ExtractFieldPathAsString`` for one value of the pod's metadata
    (``metadata.name``, ``metadata.labels['k']`` ...); the whole-map forms are the downward API
    volume's (:mod:`k8py.kubelet.volumes`)."""
    meta = pod.get("metadata") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}
    if path not in simple:
        raise ConfigError(f"unsupported fieldPath: {path}")
    return str(meta.get(simple[path]) or "")


def _field_ref(pod: Mapping[str, Any], path: str, node: NodeFacts, pod_ips: Sequence[str] | None) -> str:
    """kubelet's ``podFieldSelectorRuntimeValue``; the pod's addresses are the sandbox's (the
    API status may not have them yet when the first containers start)."""
    if path.startswith("metadata."):
        return metadata_field(pod, path)
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if pod_ips is None:
        pod_ips = [p.get("ip", "") for p in status.get("podIPs") or ()] or (
            [status["podIP"]] if status.get("podIP") else [])
    if not pod_ips and spec.get("hostNetwork"):
        pod_ips = list(node.host_ips)  # a host-network pod's addresses are the node's
    simple = {
        "spec.nodeName": spec.get("nodeName") or node.name,
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": node.host_ips[0] if node.host_ips else status.get("hostIP"),
        "status.hostIPs": ",".join(node.host_ips) if node.host_ips else "",
        "status.podIP": pod_ips[0] if pod_ips else "", "status.podIPs": ",".join(pod_ips),
    }
    if path not in simple:
        raise ConfigError(f"unsupported fieldPath: {path}")
    return str(simple[path] or "")


def resource_field_value(pod: Mapping[str, Any], c: Mapping[str, Any], ref: Mapping[str, Any], node: NodeFacts) -> str:
    """``resourceFieldRef``: the container's limit or request (limits default to the node's
    allocatable), divided by ``divisor`` and rounded up, as kubelet's ``ExtractResourceValue``."""
    res = ref.get("resource", "")
    target = c
    if ref.get("containerName"):
        spec = pod.get("spec") or {}
        found = [x for x in (*(spec.get("containers") or ()), *(spec.get("initContainers") or ()))
                 if x.get("name") == ref["containerName"]]
        if not found:
            raise ConfigError(f"container {ref['containerName']} not found")
        target = found[0]
    kind, _, name = str(res).partition(".")
    values = ((target.get("resources") or {}).get(kind) or {})
    divisor = ref.get("divisor") or "1"
    if name == "cpu":
        milli = milli_value(values["cpu"]) if "cpu" in values else (
            node.cpu_allocatable_milli if kind == "limits" else 0)
        div = milli_value(divisor) or 1000
        return str(math.ceil(milli / div))
    if name in ("memory", "ephemeral-storage"):
        v = int_value(values[name]) if name in values else (
            node.memory_allocatable if kind == "limits" and name == "memory" else 0)
        return str(math.ceil(v / (int_value(divisor) or 1)))
    raise ConfigError(f"unsupported container resource : {res}")


def referenced_objects(pod: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (kind, name) of every ConfigMap and Secret the pod's env refers to."""
    out: set[tuple[str, str]] = set()
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        for e in c.get("env") or ():
            vf = e.get("valueFrom") or {}
            if vf.get("configMapKeyRef"):
                out.add(("ConfigMap", vf["configMapKeyRef"].get("name", "")))
            if vf.get("secretKeyRef"):
                out.add(("Secret", vf["secretKeyRef"].get("name", "")))
        for ef in c.get("envFrom") or ():
            if ef.get("configMapRef"):
                out.add(("ConfigMap", ef["configMapRef"].get("name", "")))
            if ef.get("secretRef"):
                out.add(("Secret", ef["secretRef"].get("name", "")))
    return out


def _data(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """What env can take from a Secret (its data, decoded) or a ConfigMap (its ``data`` only:
    kubelet never puts ``binaryData`` into the environment)."""
    if kind == "Secret":
        return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()}
    return {k: str(v) for k, v in (obj.get("data") or {}).items()}


def _env(pod: Mapping[str, Any], c: Mapping[str, Any], node: NodeFacts,
         objects: Mapping[tuple[str, str], Obj | None], pod_ips: Sequence[str] | None = None) -> dict[str, str]:
    """kubelet's ``makeEnvironmentVariables``: ``envFrom`` first, then ``env`` in order, each
    value expanded against what is defined before it. The errors are kubelet's texts."""
    ns = (pod.get("metadata") or {}).get("namespace", "")
    env: dict[str, str] = {}
    for ef in c.get("envFrom") or ():
        kind, ref = ("ConfigMap", ef["configMapRef"]) if ef.get("configMapRef") else ("Secret", ef.get("secretRef"))
        if not ref:
            continue
        obj = objects.get((kind, ref.get("name", "")))
        if obj is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
        prefix = ef.get("prefix") or ""
        for k, v in _data(kind, obj).items():
            env[prefix + k] = v
    for e in c.get("env") or ():
        name = e.get("name", "")
        if "value" in e or not e.get("valueFrom"):
            env[name] = expand(str(e.get("value") or ""), env)
            continue
        vf = e["valueFrom"]
        if vf.get("fieldRef"):
            env[name] = _field_ref(pod, vf["fieldRef"].get("fieldPath", ""), node, pod_ips)
        elif vf.get("resourceFieldRef"):
            env[name] = resource_field_value(pod, c, vf["resourceFieldRef"], node)
        else:
            kind, ref = ("ConfigMap", vf["configMapKeyRef"]) if vf.get("configMapKeyRef") else (
                "Secret", vf.get("secretKeyRef") or {})
            obj = objects.get((kind, ref.get("name", "")))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            data = _data(kind, obj)
            if ref.get("key") not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"couldn't find key {ref.get('key')} in {kind} {ns}/{ref.get('name')}")
            env[name] = data[ref["key"]]
    return env


# --------------------------------------------------------------------------- volumes


def _sub_path_expr(expr: str, env: Mapping[str, str]) -> str:
    """kubelet's ``ExpandContainerVolumeMounts``: every ``$(VAR)`` must have a value."""
    missing: set[str] = set()

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        value = env.get(m.group(1), "")
        if not value:
            missing.add(m.group(1))
        return value

    out = _VAR.sub(sub, expr)
    if missing:
        raise ConfigError(f"missing value for {', '.join(sorted(missing))}")
    return out


def _mounts(c: Mapping[str, Any], volumes: Mapping[str, str], env: Mapping[str, str]) -> tuple[Mount, ...]:
    """kubelet's ``makeMounts``: each mount's volume, at its ``subPath`` (or ``subPathExpr``
    expanded with the container's env), which must stay inside the volume."""
    out = []
    for m in c.get("volumeMounts") or ():
        src = volumes.get(m.get("name", ""))
        if src is None:
            raise ConfigError(f"cannot find volume \"{m.get('name')}\" to mount into container \"{c.get('name')}\"")
        sub = str(m.get("subPath") or "")
        if m.get("subPathExpr"):
            sub = _sub_path_expr(str(m["subPathExpr"]), env)
        if sub:
            if os.path.isabs(sub):
                raise ConfigError(f"error SubPath `{sub}` must not be an absolute path")
            if ".." in sub.split("/"):
                raise ConfigError(f"unable to provision SubPath `{sub}`: must not contain '..'")
            src = os.path.join(src, sub)
        prop = {"HostToContainer": "HostToContainer", "Bidirectional": "Bidirectional"}.get(
            m.get("mountPropagation") or "", "")
        out.append(Mount(m.get("mountPath", ""), src, bool(m.get("readOnly")), prop))
    return tuple(out)


# --------------------------------------------------------------------------- security


def _pod_ref(pod: Mapping[str, Any]) -> str:
    """kubelet's ``format.Pod``: name_namespace(uid)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def _verify_non_root(pod: Mapping[str, Any], c: Mapping[str, Any], user: Any, image_user: str | None) -> None:
    """kubelet's ``verifyRunAsNonRoot``, with the image's ``User`` when it is known (``""``:
    the image runs as root)."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = c.get("securityContext") or {}
    if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
        return
    name = c.get("name", "")
    if user is not None:
        if int(user) == 0:
            raise ConfigError(f'container\'s runAsUser breaks non-root policy (pod: "{_pod_ref(pod)}", '
                              f"container: {name})")
        return
    if image_user is None:
        return
    uid = image_user.partition(":")[0]
    if uid == "" or (uid.isdigit() and int(uid) == 0):
        raise ConfigError(f'container has runAsNonRoot and image will run as root (pod: "{_pod_ref(pod)}", '
                          f"container: {name})")
    if not uid.isdigit():
        raise ConfigError(f"container has runAsNonRoot and image has non-numeric user ({uid}), cannot verify "
                          f'user is non-root (pod: "{_pod_ref(pod)}", container: {name})')


def _security(pod: Mapping[str, Any], c: Mapping[str, Any], image_user: str | None = None) -> Security:
    """kubelet's ``determineEffectiveSecurityContext``: the pod's user and group under the
    container's; fsGroup then the supplemental groups; privilege, capabilities and the root
    filesystem from the container alone."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    groups = [int(psc["fsGroup"])] if psc.get("fsGroup") is not None else []
    groups += [int(g) for g in psc.get("supplementalGroups") or ()]
    user = sc["runAsUser"] if sc.get("runAsUser") is not None else psc.get("runAsUser")
    group = sc["runAsGroup"] if sc.get("runAsGroup") is not None else psc.get("runAsGroup")
    _verify_non_root(pod, c, user, image_user)
    ape = sc.get("allowPrivilegeEscalation")
    return Security(run_as_user=int(user) if user is not None else None,
                    run_as_group=int(group) if group is not None else None,
                    supplemental_groups=tuple(groups), privileged=bool(sc.get("privileged")),
                    readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
                    capabilities_add=tuple(caps.get("add") or ()), capabilities_drop=tuple(caps.get("drop") or ()),
                    no_new_privs=ape is False)


# --------------------------------------------------------------------------- configs


def _dedup(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _merge_dns(base: DNSConfig, cfg: Mapping[str, Any]) -> DNSConfig:
    """kubelet's ``appendDNSConfig``: the pod's ``dnsConfig`` nameservers and searches after the
    policy's (duplicates dropped), its options over the policy's by name."""
    options: dict[str, str] = {}
    for o in base.options:
        k, _, v = o.partition(":")
        options[k] = v
    for o in cfg.get("options") or ():
        options[str(o.get("name", ""))] = str(o.get("value") or "")
    return DNSConfig(_dedup([*base.servers, *(cfg.get("nameservers") or ())]),
                     _dedup([*base.searches, *(cfg.get("searches") or ())]),
                     tuple(f"{k}:{v}" if v else k for k, v in options.items()))


def _dns(pod: Mapping[str, Any], node: NodeFacts) -> DNSConfig | None:
    """kubelet's ``GetPodDNS``. ``None`` is the node's own resolv.conf: policy ``Default``, a
    host-network pod under ``ClusterFirst``, or ``ClusterFirst`` before there is a cluster DNS
    (kubelet falls back to the node's then too); a ``dnsConfig`` is merged in where the policy's
    settings are known here."""
    spec = pod.get("spec") or {}
    ns = str((pod.get("metadata") or {}).get("namespace", ""))
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_net = bool(spec.get("hostNetwork"))
    cfg = spec.get("dnsConfig") or {}
    if policy == "None":
        return _merge_dns(DNSConfig(), cfg)
    cluster = policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_net)
    if cluster and node.cluster_dns:
        d = node.cluster_domain
        return _merge_dns(DNSConfig(node.cluster_dns, (f"{ns}.svc.{d}", f"svc.{d}", d), ("ndots:5",)), cfg)
    return None


def _hostname(pod: Mapping[str, Any]) -> str:
    """kubelet's ``GeneratePodHostNameAndDomain``: ``spec.hostname`` or the pod's name, cut to
    63 characters without a trailing ``-`` or ``.``."""
    meta = pod.get("metadata") or {}
    name = str((pod.get("spec") or {}).get("hostname") or meta.get("name", ""))
    if len(name) > HOSTNAME_MAX_LEN:
        name = name[:HOSTNAME_MAX_LEN].rstrip("-.")
    return name


def sandbox_config(pod: Mapping[str, Any], node: NodeFacts, attempt: int = 0) -> SandboxConfig:
    """The CRI PodSandboxConfig (kubelet's ``generatePodSandboxConfig``)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ns = str(meta.get("namespace", ""))
    ports = []
    for c in spec.get("containers") or ():
        for p in c.get("ports") or ():
            if p.get("hostPort"):
                ports.append(PortMapping(int(p["containerPort"]), int(p["hostPort"]), p.get("protocol") or "TCP",
                                         p.get("hostIP") or ""))
    host_net = bool(spec.get("hostNetwork"))
    aliases = tuple((a.get("ip", ""), tuple(a.get("hostnames") or ())) for a in spec.get("hostAliases") or ())
    sysctls = {s["name"]: str(s.get("value", "")) for s in (spec.get("securityContext") or {}).get("sysctls") or ()}
    return SandboxConfig(
        name=str(meta.get("name", "")), namespace=ns, uid=str(meta.get("uid", "")), attempt=attempt,
        hostname=_hostname(pod), labels={**(meta.get("labels") or {}), **pod_labels(pod)},
        annotations=dict(meta.get("annotations") or {}),
        log_directory=os.path.join(node.log_dir, f"{ns}_{meta.get('name', '')}_{meta.get('uid', '')}"),
        dns=_dns(pod, node), port_mappings=tuple(ports), host_network=host_net, host_aliases=aliases,
        host_pid=bool(spec.get("hostPID")), host_ipc=bool(spec.get("hostIPC")),
        share_pid=bool(spec.get("shareProcessNamespace")) and not spec.get("hostPID"),
        cgroup_parent=_cgroup_parent(pod), resources=pod_cgroup_resources(pod), sysctls=sysctls)


def container_config(pod: Mapping[str, Any], c: Mapping[str, Any], attempt: int, node: NodeFacts,
                     objects: Mapping[tuple[str, str], Obj | None], volumes: Mapping[str, str], *,
                     pod_ips: Sequence[str] | None = None, image_user: str | None = None) -> ContainerConfig:
    """The CRI ContainerConfig for container ``c`` of ``pod`` (kubelet's ``generateContainerConfig``).

    ``pod_ips`` are the sandbox's addresses (for ``status.podIP(s)`` env; default: the API
    status's); ``image_user`` is the image's ``User`` ("" runs as root), which lets
    ``runAsNonRoot`` be checked against the image as kubelet does (default: not checked).
    Raises :class:`ConfigError` with kubelet's message when the container cannot be configured."""
    env = _env(pod, c, node, objects, pod_ips)
    name = str(c.get("name", ""))
    return ContainerConfig(
        name=name, image=str(c.get("image", "")), attempt=attempt,
        command=tuple(expand(str(x), env) for x in c.get("command") or ()),
        args=tuple(expand(str(x), env) for x in c.get("args") or ()),
        env=tuple(env.items()), working_dir=str(c.get("workingDir") or ""),
        mounts=_mounts(c, volumes, env), log_path=f"{name}/{attempt}.log",
        tty=bool(c.get("tty")), stdin=bool(c.get("stdin")), labels=container_labels(pod, name),
        annotations={"io.kubernetes.container.restartCount": str(attempt),
                     "io.kubernetes.pod.terminationGracePeriod": str(
                         (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))},
        resources=_resources(pod, c, node), security=_security(pod, c, image_user),
        pid_namespace_of=str(c.get("targetContainerName") or ""))

