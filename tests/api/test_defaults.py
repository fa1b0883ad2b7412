"""Defaulting per kind, compared with what a real cluster stores."""

import copy

import pytest
from validation_cases import VALID, kind_of

from k8py.api.defaults import image_pull_policy, pod_qos_class, set_defaults

TEMPLATE_SPEC_DEFAULTS = {
    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
    "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
}
CONTAINER_DEFAULTS = {
    "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File", "resources": {},
}


def defaulted(obj):
    obj = copy.deepcopy(obj)
    set_defaults(kind_of(obj), obj)
    return obj


def test_pod_defaults():
    pod = defaulted({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
         "resources": {"limits": {"cpu": "0.5", "memory": 134217728}},
         "readinessProbe": {"httpGet": {"port": 80}}}]}})
    assert pod["spec"] == {
        **TEMPLATE_SPEC_DEFAULTS,
        "enableServiceLinks": True,
        "containers": [{
            "name": "c", "image": "nginx", "imagePullPolicy": "Always",
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            # a bare number is a decimal quantity: kube writes it back as "134217728", not "128Mi"
            "resources": {"limits": {"cpu": "500m", "memory": "134217728"},
                          "requests": {"cpu": "500m", "memory": "134217728"}},
            "readinessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                               "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
        }],
    }


def test_pod_defaults_are_idempotent():
    once = defaulted(VALID["Pod"])
    assert defaulted(once) == once


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("docker.io/library/nginx", "Always"),
        ("localhost:5000/app", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("registry.example.com:5000/team/app:v2", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
        ("", "IfNotPresent"),
        ("Nginx", "IfNotPresent"),  # does not parse: kube ignores the error
    ],
)
def test_image_pull_policy(image, policy):
    assert image_pull_policy(image) == policy


def test_pod_volumes_and_host_network():
    pod = defaulted({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "hostNetwork": True, "serviceAccountName": "builder",
        "containers": [{"name": "c", "image": "x:1", "ports": [{"containerPort": 8080}], "env": [
            {"name": "LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]}],
        "volumes": [{"name": "a"}, {"name": "s", "secret": {"secretName": "s"}},
                    {"name": "h", "hostPath": {"path": "/tmp"}}, {"name": "e", "emptyDir": {"sizeLimit": "0.5Gi"}},
                    {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}},
                                                            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {
                                                                "fieldPath": "metadata.namespace"}}]}}]}}]}})
    spec = pod["spec"]
    assert spec["serviceAccount"] == "builder"
    assert spec["containers"][0]["ports"] == [{"containerPort": 8080, "protocol": "TCP", "hostPort": 8080}]
    assert spec["containers"][0]["env"][0]["valueFrom"]["resourceFieldRef"]["divisor"] == "0"
    assert spec["volumes"] == [
        {"name": "a", "emptyDir": {}},
        {"name": "s", "secret": {"secretName": "s", "defaultMode": 420}},
        {"name": "h", "hostPath": {"path": "/tmp", "type": ""}},
        {"name": "e", "emptyDir": {"sizeLimit": "512Mi"}},
        {"name": "t", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace",
                                                                   "apiVersion": "v1"}}]}}]}},
    ]


def test_template_defaults_are_not_pod_defaults():
    dep = defaulted(VALID["Deployment"])
    tspec = dep["spec"]["template"]["spec"]
    assert "enableServiceLinks" not in tspec
    assert {k: tspec[k] for k in TEMPLATE_SPEC_DEFAULTS} == TEMPLATE_SPEC_DEFAULTS
    assert tspec["containers"][0] == {**VALID["Deployment"]["spec"]["template"]["spec"]["containers"][0],
                                      **CONTAINER_DEFAULTS, "ports": [{"containerPort": 80, "protocol": "TCP"}]}


def test_apps_defaults():
    dep = defaulted({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}})
    spec = {k: v for k, v in dep["spec"].items() if k != "template"}
    assert spec == {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": "25%", "maxSurge": "25%"}}, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    recreate = defaulted({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                          "spec": {"strategy": {"type": "Recreate"}}})
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}

    rs = defaulted({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"}, "spec": {}})
    assert rs["spec"]["replicas"] == 1

    sts = defaulted(VALID["StatefulSet"])["spec"]
    assert sts["podManagementPolicy"] == "OrderedReady"
    assert sts["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert sts["revisionHistoryLimit"] == 10
    assert sts["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    assert sts["volumeClaimTemplates"][0]["status"] == {"phase": "Pending"}

    ds = defaulted(VALID["DaemonSet"])["spec"]
    assert ds["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["revisionHistoryLimit"] == 10


def test_batch_defaults():
    job = defaulted(VALID["Job"])["spec"]
    assert {k: job[k] for k in ("completions", "parallelism", "backoffLimit", "completionMode", "suspend",
                                "podReplacementPolicy")} == {
        "completions": 1, "parallelism": 1, "backoffLimit": 4, "completionMode": "NonIndexed", "suspend": False,
        "podReplacementPolicy": "TerminatingOrFailed"}
    par = defaulted({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"parallelism": 3}})
    assert "completions" not in par["spec"] and par["spec"]["backoffLimit"] == 6
    labelled = defaulted({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                          "spec": {"template": {"metadata": {"labels": {"app": "x"}}}}})
    assert labelled["metadata"]["labels"] == {"app": "x"}

    cj = defaulted(VALID["CronJob"])["spec"]
    assert {k: cj[k] for k in ("concurrencyPolicy", "suspend", "successfulJobsHistoryLimit",
                               "failedJobsHistoryLimit")} == {
        "concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1}
    # the job template is not a Job: no Job defaults inside it, pod template defaults only
    assert "completions" not in cj["jobTemplate"]["spec"]
    assert cj["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_service_defaults():
    svc = defaulted(VALID["Service"])["spec"]
    assert svc == {
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                  {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}],
        "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
    }
    lb = defaulted({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"}, "spec": {
        "type": "LoadBalancer", "clusterIP": "10.96.0.9", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}})
    assert lb["spec"]["externalTrafficPolicy"] == "Cluster"
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    assert lb["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert lb["spec"]["clusterIPs"] == ["10.96.0.9"]
    assert lb["spec"]["ports"][0]["targetPort"] == 80
    ext = defaulted(VALID["Service/external"])["spec"]
    assert ext == {"type": "ExternalName", "externalName": "db.example.com.", "sessionAffinity": "None"}


def test_core_small_kinds():
    ns = defaulted(VALID["Namespace"])
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert ns["status"] == {"phase": "Active"}
    assert "spec" not in ns  # the kubernetes finalizer is added on create only

    sec = defaulted(VALID["Secret"])
    assert sec["type"] == "Opaque"
    assert sec["data"] == {"password": "czNjcjN0", "user": "YWRtaW4="}
    assert "stringData" not in sec

    pvc = defaulted(VALID["PersistentVolumeClaim"])
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"] == {"phase": "Pending"}
    pv = defaulted(VALID["PersistentVolume"])
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["spec"]["hostPath"] == {"path": "/mnt/data", "type": ""} and pv["status"] == {"phase": "Pending"}

    node = defaulted(VALID["Node"])
    assert node["status"]["allocatable"] == {"cpu": "2", "memory": "24Gi", "pods": "110"}

    lr = defaulted({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"}, "spec": {"limits": [
        {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "default": {"cpu": "1"}, "min": {"memory": "0.5Gi"}}]}})
    assert lr["spec"]["limits"][0]["default"] == {"cpu": "1", "memory": "1Gi"}
    assert lr["spec"]["limits"][0]["defaultRequest"] == {"cpu": "1", "memory": "1Gi"}

    rc = defaulted({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
                    "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}}})
    assert rc["spec"]["selector"] == {"app": "x"} and rc["metadata"]["labels"] == {"app": "x"}
    assert rc["spec"]["replicas"] == 1

    ep = defaulted(VALID["Endpoints"])
    assert ep["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]

    quota = defaulted(VALID["ResourceQuota"])
    assert quota["spec"]["hard"]["limits.memory"] == "8Gi"


def test_other_groups():
    np_ = defaulted({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"},
                     "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}})
    assert np_["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np_["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    assert defaulted(VALID["NetworkPolicy"])["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ic = defaulted(with_params := {**VALID["IngressClass"], "spec": {"controller": "k8s.io/ingress-nginx",
                                                                      "parameters": {"kind": "C", "name": "n"}}})
    assert ic["spec"]["parameters"]["scope"] == "Cluster" and with_params["spec"]["parameters"].get("scope") is None

    hpa = defaulted({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
                     "spec": {"maxReplicas": 3, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}})
    assert hpa["spec"]["minReplicas"] == 1
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 80}}}]
    assert hpa["spec"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]},
    }
    hpa1 = defaulted(VALID["HorizontalPodAutoscaler/v1"])
    assert hpa1["spec"]["minReplicas"] == 1 and "metrics" not in hpa1["spec"]

    es = defaulted({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "e"},
                    "addressType": "IPv4", "endpoints": [], "ports": [{"port": 80}]})
    assert es["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]

    rb = defaulted(VALID["RoleBinding"])
    assert rb["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert rb["subjects"] == [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"},
                              {"kind": "ServiceAccount", "name": "default"}]

    assert defaulted(VALID["PriorityClass"])["preemptionPolicy"] == "PreemptLowerPriority"
    sc = defaulted(VALID["StorageClass"])
    assert sc["reclaimPolicy"] == "Delete" and sc["volumeBindingMode"] == "Immediate"


@pytest.mark.parametrize("name", sorted(VALID))
def test_defaulting_is_idempotent(name):
    once = defaulted(VALID[name])
    assert defaulted(once) == once


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ({}, "BestEffort"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}}, "Burstable"),
        ({"requests": {"memory": "1Gi"}}, "Burstable"),
    ],
)
def test_qos_class(resources, qos):
    pod = defaulted({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "x:1", "resources": resources}]}})
    assert pod_qos_class(pod) == qos
