"""Quotas and limit ranges on a real ``k8py server`` (controllers on, no node agent: pods stay
Pending, which is all quota needs) with real kubectl and the official Python client: a quota of
two pods refuses the third with kube's message and a deleted pod frees its slot; ``kubectl get``
and ``describe`` show used/hard; a LimitRange fills in limits and refuses an over-max pod; a quota
on cpu refuses a pod without cpu limits; a Deployment whose ReplicaSet hits the quota gets
FailedCreate events carrying the quota's message."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from tests.e2e.conftest import KUBECTL, Server, manifest, start_server, wait


@pytest.fixture(scope="module")
def cluster(server: Server) -> Server:
    """The session's server (tests/conftest.py): each test works in a namespace of its own (the
    test that needs an admission configuration starts a server of its own)."""
    return server


def used(cluster: Server, ns: str, name: str = "q") -> Any:
    return (cluster.kjson("get", "quota", name, "-n", ns).get("status") or {}).get("used")


def test_quota_of_two_pods_refuses_the_third_and_a_delete_frees_a_slot(cluster: Server) -> None:
    ns = "quota-pods"
    cluster.kubectl("create", "namespace", ns)
    # the namespace's kube-root-ca.crt first, so that the quota's first measure counts it
    wait(lambda: cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n", ns, check=False).returncode == 0, 30,
         "the namespace's kube-root-ca.crt")
    cluster.kubectl("create", "quota", "q", "--hard=pods=2,count/configmaps=5", "-n", ns)
    wait(lambda: used(cluster, ns) == {"pods": "0", "count/configmaps": "1"}, 30, "the quota controller to measure usage")
    cms = 1
    cluster.kubectl("create", "configmap", "settings", "--from-literal=a=b", "-n", ns)
    assert int(used(cluster, ns)["count/configmaps"]) == cms + 1  # charged by admission
    for p in ("p1", "p2"):
        cluster.kubectl("run", p, "--image=busybox", "--restart=Never", "-n", ns)
    r = cluster.kubectl("run", "p3", "--image=busybox", "--restart=Never", "-n", ns, check=False)
    assert r.returncode == 1
    # the last line, after the seed policy's warnings
    assert r.stderr.strip().splitlines()[-1] == ('Error from server (Forbidden): pods "p3" is forbidden: exceeded '
                                                 "quota: q, requested: pods=1, used: pods=2, limited: pods=2")
    out = cluster.kubectl("get", "quota", "-n", ns).stdout.splitlines()
    assert re.split(r"\s{2,}", out[0].strip()) == ["NAME", "REQUEST", "LIMIT", "AGE"]
    assert re.split(r"\s{2,}", out[1].strip())[:2] == ["q", f"count/configmaps: {cms + 1}/5, pods: 2/2"]
    described = cluster.kubectl("describe", "quota", "q", "-n", ns).stdout
    assert re.search(r"^Resource\s+Used\s+Hard$", described, re.MULTILINE), described
    assert re.search(r"^pods\s+2\s+2$", described, re.MULTILINE), described

    cluster.kubectl("delete", "pod", "p1", "-n", ns)
    wait(lambda: used(cluster, ns)["pods"] == "1", 30, "the deleted pod's slot to be given back")
    cluster.kubectl("run", "p3", "--image=busybox", "--restart=Never", "-n", ns)
    assert used(cluster, ns)["pods"] == "2"


def test_limitrange_fills_in_limits_and_refuses_an_over_max_pod(cluster: Server) -> None:
    ns = "quota-limits"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=manifest({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                             "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                             "max": {"cpu": "1", "memory": "1Gi"}}]}}))
    described = cluster.kubectl("describe", "limitrange", "limits", "-n", ns).stdout
    assert re.search(r"^Container\s+cpu\s+-\s+1\s+100m\s+500m\s+-$", described, re.MULTILINE), described
    assert re.search(r"^Container\s+memory\s+-\s+1Gi\s+128Mi\s+256Mi\s+-$", described, re.MULTILINE), described

    cluster.kubectl("run", "web", "--image=busybox", "--restart=Never", "-n", ns)
    from kubernetes import client

    with cluster.client() as api_client:
        core = client.CoreV1Api(api_client)
        p = core.read_namespaced_pod("web", ns)
        res = p.spec.containers[0].resources
        assert res.limits == {"cpu": "500m", "memory": "256Mi"}
        assert res.requests == {"cpu": "100m", "memory": "128Mi"}
        assert p.metadata.annotations["kubernetes.io/limit-ranger"] == (
            "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web")
        assert p.status.qos_class == "Burstable"

    r = cluster.kubectl("run", "big", "--image=busybox", "--restart=Never", "-n", ns,
                        "--overrides", '{"spec":{"containers":[{"name":"big","image":"busybox",'
                        '"resources":{"limits":{"cpu":"2","memory":"2Gi"}}}]}}', check=False)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        'Error from server (Forbidden): pods "big" is forbidden: [maximum cpu usage per Container is 1, '
        "but limit is 2, maximum memory usage per Container is 1Gi, but limit is 2Gi]")


def test_cpu_quota_refuses_a_pod_without_cpu_limits(cluster: Server) -> None:
    ns = "quota-cpu"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "quota", "compute", "--hard=limits.cpu=1,requests.cpu=500m", "-n", ns)
    wait(lambda: used(cluster, ns, "compute") is not None, 30, "the quota's status")
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nolimits"},
            "spec": {"containers": [{"name": "app", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}
    with cluster.client() as api_client:
        core = client.CoreV1Api(api_client)
        with pytest.raises(ApiException) as e:
            core.create_namespaced_pod(ns, body)
        assert e.value.status == 403
        st = json.loads(e.value.body)
        assert st["reason"] == "Forbidden"
        assert st["message"] == 'pods "nolimits" is forbidden: failed quota: compute: must specify limits.cpu for: app'
        body["spec"]["containers"][0]["resources"]["limits"] = {"cpu": "200m"}
        core.create_namespaced_pod(ns, body)
        rq = core.read_namespaced_resource_quota("compute", ns)
        assert rq.status.used == {"limits.cpu": "200m", "requests.cpu": "100m"}


def test_deployment_hitting_the_quota_gets_failed_create_events(cluster: Server) -> None:
    ns = "quota-deploy"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "quota", "q", "--hard=pods=1", "-n", ns)
    wait(lambda: used(cluster, ns) == {"pods": "0"}, 30, "the quota's status")
    cluster.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=3", "-n", ns)

    def failed_creates() -> list[Any]:
        evs = cluster.kjson("get", "events", "-n", ns, "--field-selector", "reason=FailedCreate")["items"]
        return [e for e in evs if e["involvedObject"]["kind"] == "ReplicaSet"]

    evs = wait(failed_creates, 60, "FailedCreate events on the ReplicaSet")
    msg = evs[0]["message"]
    assert re.fullmatch(r'Error creating: pods "web-[a-z0-9]+-[a-z0-9]{5}" is forbidden: exceeded quota: q, '
                        r"requested: pods=1, used: pods=1, limited: pods=1", msg), msg
    assert evs[0]["type"] == "Warning"
    pods = cluster.kjson("get", "pods", "-n", ns)["items"]
    assert len(pods) == 1
    # more quota: the ReplicaSet's retries create the rest
    cluster.kubectl("patch", "quota", "q", "-n", ns, "-p", '{"spec":{"hard":{"pods":"3"}}}')
    wait(lambda: len(cluster.kjson("get", "pods", "-n", ns)["items"]) == 3, 60, "the other two pods once quota allows")
    wait(lambda: used(cluster, ns) == {"pods": "3"}, 30, "the quota's usage")


def test_limited_priority_class_needs_a_covering_quota(tmp_path_factory: pytest.TempPathFactory) -> None:
    """kube-apiserver's ResourceQuotaConfiguration (as GKE sets it): pods of a critical priority
    class only where a quota covers that class."""
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    tmp = tmp_path_factory.mktemp("quota-limited")
    conf = tmp / "admission.yaml"
    conf.write_text(manifest({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration",
        "plugins": [{"name": "ResourceQuota", "configuration": {
            "apiVersion": "apiserver.config.k8s.io/v1", "kind": "ResourceQuotaConfiguration",
            "limitedResources": [{"resource": "pods", "matchScopes": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["system-cluster-critical"]}]}]}}]}))
    s = start_server(tmp, "--admission-control-config-file", str(conf))
    try:
        s.kubectl("create", "namespace", "apps")
        critical = ('{"spec":{"priorityClassName":"system-cluster-critical","containers":[{"name":"c",'
                    '"image":"busybox:1.36"}]}}')
        r = s.kubectl("run", "c", "--image=busybox:1.36", "--restart=Never", "-n", "apps", "--overrides", critical,
                      check=False)
        assert r.returncode == 1
        assert r.stderr.strip().splitlines()[-1] == (
            "Error from server: insufficient quota to match these scopes: [{PriorityClass In [system-cluster-critical]}]")
        s.kubectl("run", "ordinary", "--image=busybox:1.36", "--restart=Never", "-n", "apps")
        s.kubectl("apply", "-n", "apps", "-f", "-", input=manifest({
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "critical"},
            "spec": {"hard": {"pods": "5"}, "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["system-cluster-critical"]}]}}}))
        wait(lambda: used(s, "apps", "critical") == {"pods": "0"}, 30, "the covering quota's status")
        s.kubectl("run", "c", "--image=busybox:1.36", "--restart=Never", "-n", "apps", "--overrides", critical)
        assert used(s, "apps", "critical") == {"pods": "1"}
    finally:
        s.stop()
