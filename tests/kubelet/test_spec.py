"""From a Pod to the runtime's configs, against kubelet's rules: ``$(VAR)`` expansion
(third_party/forked/golang/expansion), makeEnvironmentVariables and its error texts, the cgroup
helpers (cm/helpers_linux.go, qos/policy.go), the effective security context, mounts and DNS."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from k8py.kubelet.runtime.types import CgroupResources, DNSConfig, Mount, PortMapping
from k8py.kubelet.spec import (
    ConfigError,
    NodeFacts,
    container_config,
    expand,
    pod_cgroup_resources,
    pod_qos,
    referenced_objects,
    sandbox_config,
)

GI = 1024**3
NODE = NodeFacts(name="node-1", host_ips=("192.168.1.10", "fd00::10"), memory_capacity=8 * GI,
                 cpu_allocatable_milli=4000, memory_allocatable=7 * GI, pods_dir="/var/lib/k8py/agent/pods",
                 log_dir="/var/log/pods", cluster_dns=("10.96.0.10",))


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"},
                         "annotations": {"note": "x"}},
            "spec": {"nodeName": "node-1", "serviceAccountName": "default",
                     "containers": list(containers) or [{"name": "app", "image": "busybox"}], **spec},
            "status": {}}


def c(**kw: Any) -> dict[str, Any]:
    return {"name": "app", "image": "busybox", **kw}


def config(p: dict[str, Any], container: dict[str, Any] | None = None, objects: dict[Any, Any] | None = None,
           volumes: dict[str, str] | None = None, **kw: Any) -> Any:
    return container_config(p, container or p["spec"]["containers"][0], 0, NODE, objects or {}, volumes or {}, **kw)


def env_of(container: dict[str, Any], objects: dict[Any, Any] | None = None, p: dict[str, Any] | None = None,
           **kw: Any) -> dict[str, str]:
    p = p or pod(container)
    return dict(config(p, container, objects, **kw).env)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


# --------------------------------------------------------------------------- $(VAR)


@pytest.mark.parametrize(("text", "out"), [
    ("$(A)", "alpha"),
    ("x-$(A)-$(A)-y", "x-alpha-alpha-y"),
    ("$(B)", "$(B)"),  # undefined: as written
    ("$$", "$"),
    ("$$(A)", "$(A)"),  # escaped reference
    ("$$$(A)", "$alpha"),
    ("$(A", "$(A"),  # unclosed
    ("$($$", "$($"),
    ("$", "$"),
    ("a$", "a$"),
    ("$a", "$a"),
    ("$()", "$()"),
    ("$(A$(A))", "$(A$(A))"),  # the name runs to the first ")"
    ("$(EMPTY)x", "x"),
    ("no refs", "no refs"),
])
def test_expand_follows_kubernetes_syntax(text: str, out: str) -> None:
    assert expand(text, {"A": "alpha", "EMPTY": ""}) == out


# --------------------------------------------------------------------------- env


def test_env_from_configmaps_and_secrets_with_prefix_then_env_over_them() -> None:
    container = c(envFrom=[{"configMapRef": {"name": "cm"}, "prefix": "CM_"}, {"secretRef": {"name": "s"}}],
                  env=[{"name": "PASSWORD", "value": "override"}, {"name": "URL", "value": "$(CM_HOST):$(PORT)"},
                       {"name": "PORT", "value": "8080"}, {"name": "LATE", "value": "$(URL)"}])
    objects = {("ConfigMap", "cm"): {"data": {"HOST": "db"}, "binaryData": {"BIN": b64("raw")}},
               ("Secret", "s"): {"data": {"PASSWORD": b64("hunter2"), "TOKEN": b64("t")}}}
    env = env_of(container, objects)
    assert env["CM_HOST"] == "db" and env["TOKEN"] == "t"
    assert "CM_BIN" not in env  # kubelet takes a ConfigMap's data, never its binaryData
    assert env["PASSWORD"] == "override"
    assert env["URL"] == "db:$(PORT)"  # PORT comes later: not yet defined
    assert env["LATE"] == "db:$(PORT)"


def test_value_from_keys() -> None:
    container = c(env=[{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}},
                       {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "b"}}},
                       {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "c", "optional": True}}},
                       {"name": "D", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope", "optional": True}}},
                       {"name": "E", "value": "$(A)$(B)"}])
    objects = {("ConfigMap", "cm"): {"data": {"a": "1"}}, ("Secret", "s"): {"data": {"b": b64("2")}},
               ("ConfigMap", "gone"): None}
    env = env_of(container, objects)
    assert env == {"A": "1", "B": "2", "E": "12"}


@pytest.mark.parametrize(("entry", "objects", "message"), [
    ({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}}]},
     {("ConfigMap", "cm"): None}, 'configmap "cm" not found'),
    ({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a"}}}]},
     {("Secret", "s"): None}, 'secret "s" not found'),
    ({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}}]},
     {("ConfigMap", "cm"): {"data": {"b": "1"}, "binaryData": {"a": b64("x")}}},
     "couldn't find key a in ConfigMap ns/cm"),
    ({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a"}}}]},
     {("Secret", "s"): {"data": {}}}, "couldn't find key a in Secret ns/s"),
    ({"envFrom": [{"configMapRef": {"name": "cm"}}]}, {("ConfigMap", "cm"): None}, 'configmap "cm" not found'),
    ({"envFrom": [{"secretRef": {"name": "s"}}]}, {("Secret", "s"): None}, 'secret "s" not found'),
])
def test_missing_references_fail_with_kubelets_messages(entry: dict[str, Any], objects: dict[Any, Any],
                                                         message: str) -> None:
    with pytest.raises(ConfigError) as e:
        env_of(c(**entry), objects)
    assert str(e.value) == message


def test_optional_env_from_that_is_missing_is_skipped() -> None:
    container = c(envFrom=[{"configMapRef": {"name": "cm", "optional": True}},
                           {"secretRef": {"name": "s", "optional": True}}])
    assert env_of(container, {("ConfigMap", "cm"): None, ("Secret", "s"): None}) == {}


def test_field_refs() -> None:
    def ref(path: str) -> dict[str, Any]:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    paths = {"NAME": "metadata.name", "NS": "metadata.namespace", "UID": "metadata.uid",
             "LABEL": "metadata.labels['app']", "ANN": "metadata.annotations['note']",
             "NOLABEL": "metadata.labels['missing']", "NODE": "spec.nodeName", "SA": "spec.serviceAccountName",
             "HOST_IP": "status.hostIP", "HOST_IPS": "status.hostIPs", "POD_IP": "status.podIP",
             "POD_IPS": "status.podIPs"}
    container = c(env=[{"name": k, **ref(v)} for k, v in paths.items()])
    p = pod(container)
    p["status"] = {"podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}]}
    env = env_of(container, p=p, pod_ips=["10.0.0.5", "fd00::5"])
    assert env == {"NAME": "web", "NS": "ns", "UID": "u-1", "LABEL": "web", "ANN": "x", "NOLABEL": "",
                   "NODE": "node-1", "SA": "default", "HOST_IP": "192.168.1.10", "HOST_IPS": "192.168.1.10,fd00::10",
                   "POD_IP": "10.0.0.5", "POD_IPS": "10.0.0.5,fd00::5"}
    # without the sandbox's addresses: what the API status has
    env = env_of(container, p=p)
    assert env["POD_IP"] == "10.0.0.9" and env["POD_IPS"] == "10.0.0.9"
    host = c(env=[{"name": "POD_IP", **ref("status.podIP")}])
    assert env_of(host, p=pod(host, hostNetwork=True), pod_ips=[]) == {"POD_IP": "192.168.1.10"}
    with pytest.raises(ConfigError, match=r"^unsupported fieldPath: spec\.bogus$"):
        env_of(c(env=[{"name": "X", **ref("spec.bogus")}]))


def test_resource_field_refs_round_up_and_default_limits_to_the_node() -> None:
    def ref(res: str, divisor: str | None = None, container: str | None = None) -> dict[str, Any]:
        r: dict[str, Any] = {"resource": res}
        if divisor:
            r["divisor"] = divisor
        if container:
            r["containerName"] = container
        return {"valueFrom": {"resourceFieldRef": r}}

    app = c(resources={"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "100Mi"}},
            env=[{"name": "CPU", **ref("limits.cpu")}, {"name": "CPU_M", **ref("limits.cpu", "1m")},
                 {"name": "REQ_CPU", **ref("requests.cpu", "1m")}, {"name": "MEM", **ref("limits.memory")},
                 {"name": "MEM_MI", **ref("limits.memory", "1Mi")}, {"name": "REQ_MI", **ref("requests.memory", "1Mi")},
                 {"name": "SIDE", **ref("limits.memory", "1Mi", "side")}])
    side = {"name": "side", "image": "busybox"}
    env = env_of(app, p=pod(app, side))
    assert env == {"CPU": "1", "CPU_M": "500", "REQ_CPU": "250", "MEM": str(100 * 1024**2), "MEM_MI": "100",
                   "REQ_MI": "64", "SIDE": str(7 * 1024)}  # side has no limit: the node's allocatable
    bare = c(env=[{"name": "CPU", **ref("limits.cpu")}, {"name": "REQ", **ref("requests.cpu")}])
    assert env_of(bare) == {"CPU": "4", "REQ": "0"}
    with pytest.raises(ConfigError, match=r"^unsupported container resource : limits\.gpu$"):
        env_of(c(env=[{"name": "X", **ref("limits.gpu")}]))
    with pytest.raises(ConfigError, match=r"^container nope not found$"):
        env_of(c(env=[{"name": "X", **ref("limits.cpu", None, "nope")}]))


def test_command_and_args_are_expanded_with_the_env() -> None:
    container = c(command=["/bin/sh", "-c", "echo $(GREETING) $$(HOME) $(NOPE)"], args=["$(GREETING)"],
                  env=[{"name": "GREETING", "value": "hi"}])
    cfg = config(pod(container))
    assert cfg.command == ("/bin/sh", "-c", "echo hi $(HOME) $(NOPE)") and cfg.args == ("hi",)


def test_referenced_objects() -> None:
    p = pod(c(env=[{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "a"}}}],
              envFrom=[{"secretRef": {"name": "s1"}}]),
            initContainers=[c(name="init", envFrom=[{"configMapRef": {"name": "cm2"}}],
                              env=[{"name": "B", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "b"}}}])])
    assert referenced_objects(p) == {("ConfigMap", "cm1"), ("Secret", "s1"), ("ConfigMap", "cm2"), ("Secret", "s2")}


# --------------------------------------------------------------------------- cgroups


def resources_of(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None,
                 **spec: Any) -> Any:
    res: dict[str, Any] = {}
    if requests is not None:
        res["requests"] = requests
    if limits is not None:
        res["limits"] = limits
    return config(pod(c(resources=res), **spec)).resources


@pytest.mark.parametrize(("cpu", "shares"), [
    ("250m", 256), ("1", 1024), ("1m", 2), ("0", 2), ("300", 262144), ("100m", 102)])
def test_cpu_shares_are_kubelets(cpu: str, shares: int) -> None:
    assert resources_of({"cpu": cpu}).cpu_shares == shares


def test_no_requests_at_all_get_the_minimum_shares_and_no_limits() -> None:
    r = resources_of()
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period, r.memory_limit) == (2, None, None, None)


def test_cpu_limit_gives_quota_and_the_request_when_none() -> None:
    r = resources_of({"cpu": "0"}, {"cpu": "500m", "memory": "128Mi"})
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period, r.memory_limit) == (512, 50_000, 100_000, 128 * 1024**2)
    assert resources_of(limits={"cpu": "1m"}).cpu_quota == 1000  # at least 1 ms


@pytest.mark.parametrize(("requests", "limits", "spec", "adj"), [
    ({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}, {}, -997),  # Guaranteed
    (None, None, {}, 1000),  # BestEffort
    ({"memory": "1Gi"}, None, {}, 875),  # Burstable: 1000 - 1000 * 1Gi / 8Gi
    ({"memory": "1"}, None, {}, 999),  # never as low as best effort
    ({"cpu": "100m"}, None, {}, 999),
    ({"memory": "8Gi"}, None, {}, 3),  # never as high as guaranteed
    ({"memory": "20Gi"}, None, {}, 3),
    ({"cpu": "100m"}, None, {"priorityClassName": "system-node-critical", "priority": 2000001000}, -997),
])
def test_oom_score_adj_is_kubelets(requests: dict[str, str] | None, limits: dict[str, str] | None,
                                   spec: dict[str, Any], adj: int) -> None:
    assert resources_of(requests, limits, **spec).oom_score_adj == adj


def test_qos_class_is_the_servers_or_computed_like_it() -> None:
    p = pod(c(resources={"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}))
    assert pod_qos(p) == "Guaranteed"
    p["status"]["qosClass"] = "Burstable"
    assert pod_qos(p) == "Burstable"
    # only cpu and memory count
    assert pod_qos(pod(c(resources={"requests": {"example.com/gpu": "1"}}))) == "BestEffort"
    assert pod_qos(pod(c(resources={"requests": {"memory": "1Gi"}}))) == "Burstable"


# --------------------------------------------------------------------------- security


def test_security_context_merges_pod_and_container() -> None:
    p = pod(c(securityContext={"runAsUser": 2000, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                               "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}),
            securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000, 5000]})
    s = config(p).security
    assert (s.run_as_user, s.run_as_group) == (2000, 3000)
    assert s.supplemental_groups == (2000, 4000, 5000)  # fsGroup first, as kubelet
    assert s.no_new_privs and s.readonly_rootfs and not s.privileged
    assert s.capabilities_add == ("NET_ADMIN",) and s.capabilities_drop == ("ALL",)
    plain = config(pod(c(securityContext={"privileged": True, "allowPrivilegeEscalation": True}))).security
    assert plain.privileged and not plain.no_new_privs and plain.run_as_user is None


@pytest.mark.parametrize(("sc", "image_user", "message"), [
    ({"runAsUser": 0}, None, "container's runAsUser breaks non-root policy"),
    ({}, "", "container has runAsNonRoot and image will run as root"),
    ({}, "0:0", "container has runAsNonRoot and image will run as root"),
    ({}, "nobody", ("container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is "
                   "non-root")),
])
def test_run_as_non_root_is_enforced(sc: dict[str, Any], image_user: str | None, message: str) -> None:
    p = pod(c(securityContext={"runAsNonRoot": True, **sc}))
    with pytest.raises(ConfigError) as e:
        config(p, image_user=image_user)
    assert str(e.value).startswith(message)
    assert str(e.value).endswith('(pod: "web_ns(u-1)", container: app)')


def test_run_as_non_root_passes_for_a_numeric_user() -> None:
    p = pod(c(), securityContext={"runAsNonRoot": True})
    assert config(p, image_user="1000:1000").security.run_as_user is None
    assert config(p).security.run_as_user is None  # the image unknown: not checked
    assert config(pod(c(securityContext={"runAsNonRoot": True, "runAsUser": 1000})), image_user="").security.run_as_user == 1000


# --------------------------------------------------------------------------- volumes and mounts


def test_mounts_and_sub_paths() -> None:
    container = c(env=[{"name": "DIR", "value": "logs"}],
                  volumeMounts=[{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b", "subPath": "x/y",
                                                                   "readOnly": True},
                                {"name": "v", "mountPath": "/c", "subPathExpr": "$(DIR)/web",
                                 "mountPropagation": "HostToContainer"}])
    cfg = config(pod(container), volumes={"v": "/vol"})
    assert cfg.mounts == (Mount("/a", "/vol"), Mount("/b", "/vol/x/y", True), Mount("/c", "/vol/logs/web", False,
                                                                                      "HostToContainer"))


@pytest.mark.parametrize(("mount", "message"), [
    ({"name": "w", "mountPath": "/a"}, 'cannot find volume "w" to mount into container "app"'),
    ({"name": "v", "mountPath": "/a", "subPath": "/etc"}, "error SubPath `/etc` must not be an absolute path"),
    ({"name": "v", "mountPath": "/a", "subPath": "x/../../etc"},
     "unable to provision SubPath `x/../../etc`: must not contain '..'"),
    ({"name": "v", "mountPath": "/a", "subPathExpr": "$(B)/$(A)"}, "missing value for A, B"),
])
def test_bad_mounts_fail_with_kubelets_messages(mount: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(pod(c(volumeMounts=[mount])), volumes={"v": "/vol"})
    assert str(e.value) == message


# --------------------------------------------------------------------------- the configs


def test_container_config() -> None:
    container = c(workingDir="/work", tty=True, stdin=True)
    p = pod(container, terminationGracePeriodSeconds=5)
    cfg = container_config(p, container, 3, NODE, {}, {})
    assert cfg.name == "app" and cfg.image == "busybox" and cfg.attempt == 3 and cfg.log_path == "app/3.log"
    assert cfg.working_dir == "/work" and cfg.tty and cfg.stdin
    assert cfg.labels == {"io.kubernetes.pod.name": "web", "io.kubernetes.pod.namespace": "ns",
                          "io.kubernetes.pod.uid": "u-1", "io.kubernetes.container.name": "app"}
    assert cfg.annotations == {"io.kubernetes.container.restartCount": "3",
                               "io.kubernetes.pod.terminationGracePeriod": "5"}


def test_sandbox_config() -> None:
    p = pod(c(ports=[{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "hostPort": 5353, "protocol": "UDP",
                                                               "hostIP": "127.0.0.1"},
                     {"containerPort": 9090}]),
            hostAliases=[{"ip": "10.1.1.1", "hostnames": ["a", "b"]}],
            securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]})
    sb = sandbox_config(p, NODE, attempt=2)
    assert (sb.name, sb.namespace, sb.uid, sb.attempt, sb.hostname) == ("web", "ns", "u-1", 2, "web")
    assert sb.labels == {"app": "web", "io.kubernetes.pod.name": "web", "io.kubernetes.pod.namespace": "ns",
                         "io.kubernetes.pod.uid": "u-1"}
    assert sb.annotations == {"note": "x"}
    assert sb.log_directory == os.path.join("/var/log/pods", "ns_web_u-1")
    assert sb.port_mappings == (PortMapping(80, 8080), PortMapping(53, 5353, "UDP", "127.0.0.1"))
    assert sb.host_aliases == (("10.1.1.1", ("a", "b")),)
    assert sb.sysctls == {"net.core.somaxconn": "1024"}
    assert sb.cgroup_parent == "kubepods/besteffort/podu-1"
    assert not (sb.host_network or sb.host_pid or sb.host_ipc)
    host = sandbox_config(pod(c(), hostPID=True, hostIPC=True), NODE)
    assert (host.host_pid, host.host_ipc) == (True, True)
    assert sandbox_config(pod(c(), shareProcessNamespace=True), NODE).share_pid
    assert not sandbox_config(pod(c(), shareProcessNamespace=True, hostPID=True), NODE).share_pid  # the node's


def test_cgroup_parent_per_qos() -> None:
    g = pod(c(resources={"limits": {"cpu": "1", "memory": "1Gi"}}))
    g["status"]["qosClass"] = "Guaranteed"
    assert sandbox_config(g, NODE).cgroup_parent == "kubepods/podu-1"
    b = pod(c(resources={"requests": {"cpu": "1"}}))
    assert sandbox_config(b, NODE).cgroup_parent == "kubepods/burstable/podu-1"


def _res(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None, name: str = "app",
         **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {}
    if requests:
        r["requests"] = requests
    if limits:
        r["limits"] = limits
    return c(name=name, resources=r, **kw)


def test_pod_cgroup_resources_are_kubelets_resource_config_for_pod() -> None:
    # Guaranteed: shares, quota and memory limit of the sum
    g = pod(_res(limits={"cpu": "500m", "memory": "128Mi"}), _res(limits={"cpu": "250m", "memory": "64Mi"}, name="b"))
    assert pod_cgroup_resources(g) == CgroupResources(cpu_shares=768, cpu_quota=75_000, cpu_period=100_000,
                                                      memory=192 * 1024**2)
    assert sandbox_config(g, NODE).resources == pod_cgroup_resources(g)
    # Burstable with every limit declared: the same limits
    b = pod(_res({"cpu": "100m", "memory": "32Mi"}, {"cpu": "200m", "memory": "64Mi"}))
    assert pod_cgroup_resources(b) == CgroupResources(cpu_shares=102, cpu_quota=20_000, cpu_period=100_000,
                                                      memory=64 * 1024**2)
    # a container without a memory limit: no memory limit for the pod, the CPU quota still
    b2 = pod(_res({"cpu": "100m"}, {"cpu": "200m"}), _res({"memory": "10Mi"}, {"cpu": "100m"}, name="b"))
    # (b's cpu request defaults to its limit, as the API server defaults it)
    assert pod_cgroup_resources(b2) == CgroupResources(cpu_shares=204, cpu_quota=30_000, cpu_period=100_000)
    # requests only: shares alone
    assert pod_cgroup_resources(pod(_res({"cpu": "1"}))) == CgroupResources(cpu_shares=1024)
    # BestEffort: the minimum shares, nothing else
    assert pod_cgroup_resources(pod(c())) == CgroupResources(cpu_shares=2)
    # init containers count as their peak; overhead is added to the limits there are
    i = pod(_res(limits={"cpu": "100m", "memory": "32Mi"}),
            initContainers=[_res(limits={"cpu": "1", "memory": "16Mi"}, name="init")],
            overhead={"cpu": "10m", "memory": "1Mi"})
    assert pod_cgroup_resources(i) == CgroupResources(cpu_shares=1034, cpu_quota=101_000, cpu_period=100_000,
                                                      memory=33 * 1024**2)
    # a tiny limit still gets kubelet's 1 ms quota
    assert pod_cgroup_resources(pod(_res(limits={"cpu": "1m", "memory": "8Mi"}))).cpu_quota == 1000


def test_hostname_is_cut_to_63_characters() -> None:
    p = pod(hostname="h" * 62 + "-x" + "y" * 10)
    assert sandbox_config(p, NODE).hostname == "h" * 62
    p["metadata"]["name"] = "n" * 70
    del p["spec"]["hostname"]
    assert sandbox_config(p, NODE).hostname == "n" * 63


CLUSTER = DNSConfig(("10.96.0.10",), ("ns.svc.cluster.local", "svc.cluster.local", "cluster.local"), ("ndots:5",))


@pytest.mark.parametrize(("spec", "node", "dns"), [
    ({}, NODE, CLUSTER),
    ({"dnsPolicy": "ClusterFirst"}, NodeFacts(name="n"), None),  # no cluster DNS yet: the node's
    ({"dnsPolicy": "ClusterFirst", "hostNetwork": True}, NODE, None),
    ({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True}, NODE, CLUSTER),
    ({"dnsPolicy": "Default"}, NODE, None),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1", "1.1.1.1"], "searches": ["a.example"],
                                         "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}},
     NODE, DNSConfig(("1.1.1.1",), ("a.example",), ("ndots:2", "edns0"))),
    ({"dnsConfig": {"nameservers": ["1.1.1.1", "10.96.0.10"], "searches": ["svc.cluster.local", "corp.example"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "timeout", "value": "1"}]}},
     NODE, DNSConfig(("10.96.0.10", "1.1.1.1"), (*CLUSTER.searches, "corp.example"), ("ndots:2", "timeout:1"))),
])
def test_dns_per_policy(spec: dict[str, Any], node: NodeFacts, dns: DNSConfig | None) -> None:
    assert sandbox_config(pod(**spec), node).dns == dns
