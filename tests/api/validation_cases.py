"""Shared helpers and realistic manifests for the validation tests."""

from __future__ import annotations

import copy
import json
from typing import Any

from k8py.api.defaults import set_defaults
from k8py.api.registry import Registry
from k8py.api.validation import kinds as validation
from k8py.apiserver.registry import build as build_strategies

REGISTRY = Registry()


def kind_of(obj: dict[str, Any]):
    k = REGISTRY.by_api_version(obj["apiVersion"], obj["kind"])
    assert k is not None, (obj["apiVersion"], obj["kind"])
    return k


def prepared(obj: dict[str, Any], stored: bool = False) -> dict[str, Any]:
    """``obj`` defaulted; ``stored``: also with what create adds (as read back from the store)."""
    obj = copy.deepcopy(obj)
    set_defaults(kind_of(obj), obj)
    if stored:
        # what a create adds to spec and status, as the kind's strategy adds it; the case's own
        # metadata stays (the strategy's new uid, used by a Job's selector, becomes the case's or
        # a fixed one, so that the result is the same every time)
        kind = kind_of(obj)
        strat = build_strategies().for_kind(kind)
        meta = copy.deepcopy(obj.get("metadata") or {})
        strat.prepare_for_create(kind, obj)
        uid = meta.get("uid") or "00000000-0000-4000-8000-000000000000"
        obj = json.loads(json.dumps(obj).replace(obj["metadata"]["uid"], uid))
        obj["metadata"] = meta
        strat.finish_create(kind, obj)
    return obj


def errors(obj: dict[str, Any]) -> list[str]:
    """Messages for creating ``obj`` after defaulting, as kube would word them."""
    obj = prepared(obj)
    return [str(e) for e in validation.validate(kind_of(obj), obj)]


def update_errors(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    new, old = prepared(new, True), prepared(old, True)
    return [str(e) for e in validation.validate_update(kind_of(new), new, old)]


def status_errors(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    new, old = prepared(new), prepared(old)
    return [str(e) for e in validation.validate_status_update(kind_of(new), new, old)]


def with_(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with dotted ``path`` set (``None`` deletes); ``[n]`` indexes lists."""
    obj = copy.deepcopy(obj)
    parts = path.replace("[", ".[").split(".")
    cur: Any = obj
    for p in parts[:-1]:
        if p.startswith("["):
            cur = cur[int(p[1:-1])]
        else:
            cur = cur.setdefault(p, {})
    last = parts[-1]
    if last.startswith("["):
        cur[int(last[1:-1])] = value
    elif value is None:
        cur.pop(last, None)
    else:
        cur[last] = value
    return obj


META = {"name": "web", "namespace": "default"}
CONTAINER = {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [CONTAINER]}}
SELECTOR = {"matchLabels": {"app": "web"}}

VALID: dict[str, dict[str, Any]] = {
    "Pod": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {**META, "labels": {"app": "web"}},
        "spec": {
            "containers": [{
                "name": "nginx", "image": "nginx:1.25",
                "ports": [{"name": "http", "containerPort": 80}],
                "env": [{"name": "MODE", "value": "prod"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg"}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 3},
                "readinessProbe": {"tcpSocket": {"port": 80}},
                "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": False},
            }],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]}],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "web-config"}}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300}],
        },
    },
    "Deployment": {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**META, "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": SELECTOR, "template": TEMPLATE},
    },
    "ReplicaSet": {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": META,
        "spec": {"replicas": 2, "selector": SELECTOR, "template": TEMPLATE},
    },
    "StatefulSet": {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": META,
        "spec": {
            "serviceName": "web", "replicas": 2, "selector": SELECTOR,
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {**CONTAINER, "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    },
    "DaemonSet": {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": META,
        "spec": {"selector": SELECTOR, "template": TEMPLATE},
    },
    "ControllerRevision": {
        "apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {**META, "name": "web-5d8f7c9b"},
        "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 1,
    },
    "ReplicationController": {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": META,
        "spec": {"replicas": 1, "template": TEMPLATE},
    },
    "PodTemplate": {"apiVersion": "v1", "kind": "PodTemplate", "metadata": META, "template": TEMPLATE},
    "Job": {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {**META, "name": "pi", "uid": "4a1f1c1e-0000-4000-8000-000000000001"},
        "spec": {"backoffLimit": 4, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "pi", "image": "perl:5.34", "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]}]}}},
    },
    "CronJob": {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {**META, "name": "hello"},
        "spec": {"schedule": "* * * * *", "timeZone": "Europe/Berlin", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "hello", "image": "busybox:1.28", "command": ["date"]}]}}}}},
    },
    "Service": {
        "apiVersion": "v1", "kind": "Service", "metadata": META,
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                                       {"name": "https", "port": 443, "targetPort": 8443}]},
    },
    "Service/headless": {
        "apiVersion": "v1", "kind": "Service", "metadata": META,
        "spec": {"clusterIP": "None", "selector": {"app": "web"}},
    },
    "Service/nodeport": {
        "apiVersion": "v1", "kind": "Service", "metadata": META,
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "selector": {"app": "web"},
                 "ports": [{"port": 80, "nodePort": 30080}]},
    },
    "Service/external": {
        "apiVersion": "v1", "kind": "Service", "metadata": META,
        "spec": {"type": "ExternalName", "externalName": "db.example.com."},
    },
    "Endpoints": {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": META,
        "subsets": [{"addresses": [{"ip": "10.244.0.5", "nodeName": "node-1"}], "ports": [{"port": 80}]}],
    },
    "ConfigMap": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": META,
        "data": {"app.properties": "a=b\n", "LOG_LEVEL": "info"}, "binaryData": {"logo.png": "iVBORw0KGgo="},
    },
    "Secret": {
        "apiVersion": "v1", "kind": "Secret", "metadata": META,
        "data": {"password": "czNjcjN0"}, "stringData": {"user": "admin"},
    },
    "Secret/tls": {
        "apiVersion": "v1", "kind": "Secret", "metadata": META, "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
    },
    "ServiceAccount": {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": META},
    "Namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
    "Node": {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
                 "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},
    },
    "Event": {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.17a8b1c2d3e4f5a6", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Scheduled", "message": "Successfully assigned default/web to node-1", "type": "Normal",
        "source": {"component": "default-scheduler"}, "count": 1,
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z",
    },
    "events.k8s.io/Event": {
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.17a8", "namespace": "default"},
        "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "k8py.io/scheduler",
        "reportingInstance": "scheduler-1", "action": "Binding", "reason": "Scheduled", "type": "Normal",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"}, "note": "assigned",
    },
    "PersistentVolumeClaim": {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": META,
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}},
                 "storageClassName": "standard"},
    },
    "PersistentVolume": {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": "/mnt/data"}, "storageClassName": "manual"},
    },
    "StorageClass": {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "standard"},
        "provisioner": "k8py.io/local-path", "parameters": {"path": "/var/lib/k8py/volumes"},
    },
    "ResourceQuota": {
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": META,
        "spec": {"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi", "count/deployments.apps": "5"}},
    },
    "LimitRange": {
        "apiVersion": "v1", "kind": "LimitRange", "metadata": META,
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"},
                             "max": {"cpu": "2"}, "min": {"cpu": "50m"}}]},
    },
    "Ingress": {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": META,
        "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
                 "rules": [{"host": "web.example.com", "http": {"paths": [
                     {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                     {"path": "/api", "pathType": "Exact",
                      "backend": {"service": {"name": "api", "port": {"name": "http"}}}}]}},
                           {"host": "*.example.com", "http": {"paths": [
                               {"path": "/", "pathType": "ImplementationSpecific",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    },
    "IngressClass": {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
        "spec": {"controller": "k8s.io/ingress-nginx"},
    },
    "NetworkPolicy": {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": META,
        "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}},
                                       {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}],
                              "ports": [{"port": 5432}, {"port": 6000, "endPort": 6010}]}],
                 "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "UDP", "port": 53}]}]},
    },
    "HorizontalPodAutoscaler": {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": META,
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 10,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 50}}}],
                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
    },
    "HorizontalPodAutoscaler/v1": {
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": META,
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "maxReplicas": 5, "targetCPUUtilizationPercentage": 80},
    },
    "PodDisruptionBudget": {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": META,
        "spec": {"minAvailable": "50%", "selector": SELECTOR},
    },
    "Lease": {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {**META, "name": "kube-scheduler"},
        "spec": {"holderIdentity": "node-1_abc", "leaseDurationSeconds": 15, "leaseTransitions": 0,
                 "renewTime": "2024-01-01T00:00:00.000000Z"},
    },
    "EndpointSlice": {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {**META, "name": "web-abc12", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}, "nodeName": "node-1"}],
        "ports": [{"name": "http", "port": 80}],
    },
    "Role": {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {**META, "name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    },
    "ClusterRole": {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:metrics"},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]},
                  {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
    },
    "RoleBinding": {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {**META, "name": "read-pods"},
        "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default"}],
        "roleRef": {"kind": "Role", "name": "pod-reader"},
    },
    "ClusterRoleBinding": {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "read-all"},
        "subjects": [{"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"},
                     {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
    },
    "APIService": {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1alpha1.wardle.k8s.io"},
        "spec": {"group": "wardle.k8s.io", "version": "v1alpha1", "groupPriorityMinimum": 1000,
                 "versionPriority": 15, "insecureSkipTLSVerify": True,
                 "service": {"namespace": "wardle", "name": "api", "port": 443}},
    },
    "ValidatingWebhookConfiguration": {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "policy"},
        "webhooks": [{"name": "validate.policy.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                      "clientConfig": {"service": {"namespace": "policy", "name": "webhook", "path": "/validate"}},
                      "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                                 "resources": ["deployments", "deployments/scale"]}]}],
    },
    "MutatingWebhookConfiguration": {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "inject"},
        "webhooks": [{"name": "inject.sidecar.example.com", "sideEffects": "NoneOnDryRun",
                      "admissionReviewVersions": ["v1", "v1beta1"], "reinvocationPolicy": "IfNeeded",
                      "clientConfig": {"url": "https://inject.example.com:8443/mutate"},
                      "objectSelector": {"matchExpressions": [{"key": "inject", "operator": "NotIn",
                                                               "values": ["false"]}]},
                      "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                 "resources": ["pods"], "scope": "Namespaced"}]}],
    },
    "ValidatingAdmissionPolicy": {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "replica-limit.example.com"},
        "spec": {"failurePolicy": "Fail", "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                 "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                         "operations": ["CREATE", "UPDATE"],
                                                         "resources": ["deployments"]}]},
                 "variables": [{"name": "limit", "expression": "int(params.data.maxReplicas)"}],
                 "validations": [{"expression": "object.spec.replicas <= variables.limit",
                                  "messageExpression": "'replicas must be at most ' + string(variables.limit)",
                                  "reason": "Invalid"}],
                 "auditAnnotations": [{"key": "replicas", "valueExpression": "string(object.spec.replicas)"}]},
    },
    "ValidatingAdmissionPolicyBinding": {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "replica-limit-test"},
        "spec": {"policyName": "replica-limit.example.com", "validationActions": ["Deny", "Audit"],
                 "paramRef": {"name": "limits", "namespace": "default", "parameterNotFoundAction": "Deny"},
                 "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "test"}}}},
    },
    "MutatingAdmissionPolicy": {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": "sidecar-policy.example.com"},
        "spec": {"failurePolicy": "Fail", "reinvocationPolicy": "IfNeeded",
                 "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                         "operations": ["CREATE"], "resources": ["pods"]}]},
                 "matchConditions": [{"name": "no-sidecar", "expression": "!has(object.spec.initContainers)"}],
                 "variables": [{"name": "image", "expression": "'mesh/proxy:v1.0.0'"}],
                 "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": (
                     'Object{spec: Object.spec{initContainers: [Object.spec.initContainers{name: "mesh-proxy", '
                     'image: variables.image, restartPolicy: "Always"}]}}')}},
                               {"patchType": "JSONPatch", "jsonPatch": {"expression": (
                                   '[JSONPatch{op: "add", path: "/metadata/labels", value: {"mesh": "on"}}]')}}]},
    },
    "MutatingAdmissionPolicyBinding": {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": "sidecar-binding-test.example.com"},
        "spec": {"policyName": "sidecar-policy.example.com",
                 "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "test"}}}},
    },
    "CustomResourceDefinition": {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
                 "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "listKind": "CronTabList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "replicas": {"type": "integer"}}}}}}}]},
    },
    "CertificateSigningRequest": {
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": "node-csr-1"},
        # a P-256 request for CN=system:node:node-1, O=system:nodes
        "spec": {"request": ("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIdk1JR1dBZ0VBTURReEZUQVRCZ05WQkFvTURITjVjM1Js"
                             "YlRwdWIyUmxjekViTUJrR0ExVUVBd3dTYzNsegpkR1Z0T201dlpHVTZibTlrWlMweE1Ga3dFd1lIS29aSXpqMENBUVlJS29a"
                             "SXpqMERBUWNEUWdBRXNCa3ZvRDhQCjkyY0Jna2hmNGExVnZKSkRqMStJZHJvcnR3TzFNUndVdXJNeXVuaExaSm5QU3lXWmNQ"
                             "V0pyUjMwbFkyTUdVNXAKT1dHdVRlNTRjdG4xZUtBQU1Bb0dDQ3FHU000OUJBTUNBMGdBTUVVQ0lIQit5WW9JUUhoVzNzQWJx"
                             "YnQwRmZPZwpZSmEzV1pFRUxoQjlhdEt6Vnk3eUFpRUE5WmtvSnJIa3dqTUJid3dOdTVBd3NRM2QveDJxSXMzOFcySzRoaklF"
                             "CldrRT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUgUkVRVUVTVC0tLS0tCg=="),
                 "signerName": "kubernetes.io/kube-apiserver-client-kubelet", "expirationSeconds": 86400,
                 "usages": ["digital signature", "client auth"]},
    },
    "PriorityClass": {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high-priority"},
        "value": 1000000, "globalDefault": False, "description": "for web",
    },
    "PriorityClass/system": {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "system-node-critical"},
        "value": 2000001000,
    },
    "Binding": {
        "apiVersion": "v1", "kind": "Binding", "metadata": META,
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
    },
}
