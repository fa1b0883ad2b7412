"""Validation of Service, configuration, storage, networking, policy, RBAC and scheduling kinds."""

import base64

import pytest
from validation_cases import VALID, errors, status_errors, update_errors, with_

SVC = VALID["Service"]
IMMUTABLE_SET = "field is immutable when `immutable` is set"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (with_(SVC, "spec.ports", []), ["spec.ports: Required value"]),
        (with_(SVC, "spec.ports", [{"port": 80}, {"port": 80}]),
         ["spec.ports[0].name: Required value", "spec.ports[1].name: Required value",
          ('spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), '
          'Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}')]),
        (with_(SVC, "spec.ports", [{"name": "a", "port": 0, "targetPort": 70000, "protocol": "IP"}]),
         ["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
          'spec.ports[0].protocol: Unsupported value: "IP": supported values: "SCTP", "TCP", "UDP"',
          "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
        (with_(SVC, "spec.ports", [{"name": "a", "port": 80, "targetPort": "Http"}]),
         [('spec.ports[0].targetPort: Invalid value: "Http": must contain only alpha-numeric characters (a-z, 0-9), '
          "and hyphens (-)")]),
        (with_(SVC, "spec.type", "Magic"),
         [('spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", '
          '"NodePort"')]),
        (with_(SVC, "spec.ports", [{"port": 80, "nodePort": 30001}]),
         ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
        (with_(VALID["Service/nodeport"], "spec.ports[0].nodePort", 80),
         [("spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid "
          "ports is 30000-32767")]),
        (with_(VALID["Service/external"], "spec.externalName", ""), ["spec.externalName: Required value"]),
        (with_(with_(VALID["Service/headless"], "spec.type", "NodePort"), "spec.ports", [{"port": 80}]),
         ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"]),
        (with_(SVC, "spec.clusterIP", "10.0.0.999"),
         [('spec.clusterIPs[0]: Invalid value: "10.0.0.999": must be a valid IP address, (e.g. 10.9.8.7 or '
          '2001:db8::ffff)')]),
        (with_(SVC, "spec.sessionAffinity", "Sticky"),
         ['spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"']),
        (with_(SVC, "spec.externalTrafficPolicy", "Local"),
         ['spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services']),
        (with_(VALID["ConfigMap"], "data", {"bad/key": "x", "logo.png": "y"}),
         [('data[bad/key]: Invalid value: "bad/key": a valid config key must consist of alphanumeric characters, '
          "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
          "'[-._a-zA-Z0-9]+')"),
          'data[logo.png]: Invalid value: "logo.png": duplicate of key present in binaryData']),
        (with_(VALID["ConfigMap"], "data", {"big": "x" * (1024 * 1024 + 1)}),
         ["[]: Too long: must have at most 1048576 bytes"]),
        (with_(VALID["Secret"], "data", {"k": "not base64!"}),
         ['data[k]: Invalid value: "<secret contents redacted>": illegal base64 data at input byte 3']),
        (with_(VALID["Secret/tls"], "data", {"tls.crt": "eA=="}), ["data[tls.key]: Required value"]),
        (with_(with_(VALID["Secret"], "type", "kubernetes.io/service-account-token"), "stringData", None),
         ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]),
        (with_(VALID["Namespace"], "spec.finalizers", ["foo"]),
         ['spec.finalizers: Invalid value: "foo": name is neither a standard finalizer name nor is it fully qualified']),
        (with_(VALID["Node"], "spec.taints", [{"key": "a", "effect": "Sometimes"}, {"key": "a", "effect": ""}]),
         [('spec.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", '
          '"PreferNoSchedule", "NoExecute"'),
          "spec.taints[1].effect: Required value"]),
        (with_(VALID["Event"], "involvedObject.namespace", "other"),
         ['involvedObject.namespace: Invalid value: "other": does not match event.namespace']),
        (with_(VALID["events.k8s.io/Event"], "type", "Bad"), ['type: Invalid value: "": has invalid value: Bad']),
        (with_(VALID["events.k8s.io/Event"], "action", None), ["action: Required value"]),
        (with_(VALID["PersistentVolumeClaim"], "spec", {"resources": {"requests": {"storage": "0"}},
                                                        "accessModes": ["ReadWriteOncePod", "ReadWriteOnce", "RWX"]}),
         [('spec.accessModes: Unsupported value: "RWX": supported values: "ReadOnlyMany", "ReadWriteMany", '
          '"ReadWriteOnce", "ReadWriteOncePod"'),
          "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
          'spec.resources[storage]: Invalid value: "0": must be greater than zero']),
        (with_(VALID["PersistentVolumeClaim"], "spec", {}),
         ["spec.accessModes: Required value: at least 1 access mode is required",
          "spec.resources[storage]: Required value"]),
        (with_(VALID["PersistentVolume"], "spec.capacity", {}), ["spec.capacity: Required value"]),
        (with_(VALID["PersistentVolume"], "spec.nfs", {"server": "x", "path": "/y"}),
         ["spec.nfs: Forbidden: may not specify more than 1 volume type"]),
        (with_(VALID["StorageClass"], "provisioner", ""), ["provisioner: Required value"]),
        (with_(VALID["StorageClass"], "reclaimPolicy", "Recycle"),
         ['reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"']),
        (with_(VALID["ResourceQuota"], "spec.hard", {"foo": "1", "pods": "1.5"}),
         ['spec.hard[foo]: Invalid value: "foo": must be a standard resource type or fully qualified',
          "spec.hard[pods]: Invalid value: 1500m: must be an integer"]),
        (with_(VALID["LimitRange"], "spec.limits[0].min", {"cpu": "3"}),
         ["spec.limits[0].min[cpu]: Invalid value: 3: min value 3 is greater than max value 2",
          ("spec.limits[0].defaultRequest[cpu]: Invalid value: 100m: min value 3 is greater than default request "
          "value 100m"),
          "spec.limits[0].default[cpu]: Invalid value: 3: min value 3 is greater than default value 500m"]),
        (with_(VALID["Endpoints"], "subsets[0].addresses[0].ip", "169.254.0.1"),
         [('subsets[0].addresses[0].ip: Invalid value: "169.254.0.1": may not be in the link-local range '
           "(169.254.0.0/16, fe80::/10)")]),
        # k8py allows loopback endpoints (its API server listens there); kube does not
        (with_(VALID["Endpoints"], "subsets[0].addresses[0].ip", "127.0.0.1"), []),
        (with_(VALID["Binding"], "target", {"kind": "Pod"}),
         ['target.kind: Unsupported value: "Pod": supported values: "Node", "<empty>"', "target.name: Required value"]),
    ],
)
def test_core(obj, expected):
    assert errors(obj) == expected


ING = VALID["Ingress"]
P0 = "spec.rules[0].http.paths[0]"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (with_(ING, "spec", {}),
         ["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"]),
        (with_(ING, f"{P0}.pathType", None), [f"{P0}.pathType: Required value: pathType must be specified"]),
        (with_(ING, f"{P0}.pathType", "Regex"),
         [f'{P0}.pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"']),
        (with_(ING, f"{P0}.path", "api"), [f'{P0}.path: Invalid value: "api": must be an absolute path']),
        (with_(ING, f"{P0}.path", "/a//b"), [f"{P0}.path: Invalid value: \"/a//b\": must not contain '//'"]),
        (with_(ING, "spec.rules[0].host", "10.0.0.1"),
         ['spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address']),
        (with_(ING, f"{P0}.backend", {"service": {"name": "web", "port": {}}}),
         [f"{P0}.backend: Required value: port name or number is required"]),
        (with_(ING, f"{P0}.backend", {}), [f'{P0}.backend: Invalid value: "": resource or service backend is required']),
        (with_(ING, "spec.rules[0].http.paths", []), ["spec.rules[0].http.paths: Required value"]),
        (with_(VALID["IngressClass"], "spec.controller", "nginx"),
         ['spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")']),
        (with_(VALID["NetworkPolicy"], "spec.policyTypes", ["Ingress", "Sideways"]),
         ['spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"']),
        (with_(VALID["NetworkPolicy"], "spec.ingress[0].from", [
            {}, {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["192.168.0.0/24"]}, "podSelector": {}}]),
         ["spec.ingress[0].from[0]: Required value: must specify a peer",
          ('spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: "192.168.0.0/24": must be a strict subset of '
          "`cidr`"),
          "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer"]),
        (with_(VALID["NetworkPolicy"], "spec.ingress[0].ports", [{"port": 6000, "endPort": 5000}]),
         ["spec.ingress[0].ports[0].endPort: Invalid value: 6000: must be greater than or equal to `port`"]),
        (with_(VALID["EndpointSlice"], "addressType", "IPv5"),
         ['addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"']),
        (with_(VALID["EndpointSlice"], "endpoints[0].addresses", ["fe80::1"]),
         ['endpoints[0].addresses[0]: Invalid value: "fe80::1": must be an IPv4 address']),
        (with_(VALID["EndpointSlice"], "endpoints[0].addresses", []),
         ["endpoints[0].addresses: Required value: must contain at least 1 address"]),
    ],
)
def test_networking(obj, expected):
    assert errors(obj) == expected


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (with_(VALID["HorizontalPodAutoscaler"], "spec.maxReplicas", 0),
         ["spec.maxReplicas: Invalid value: 0: must be greater than 0",
          "spec.maxReplicas: Invalid value: 0: must be greater than or equal to `minReplicas`"]),
        (with_(VALID["HorizontalPodAutoscaler"], "spec.minReplicas", 0),
         ["spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"]),
        (with_(VALID["HorizontalPodAutoscaler/v1"], "spec.scaleTargetRef", {}),
         ["spec.scaleTargetRef.kind: Required value", "spec.scaleTargetRef.name: Required value"]),
        (with_(VALID["HorizontalPodAutoscaler"], "spec.metrics[0].resource.target", {"type": "Utilization"}),
         [("spec.metrics[0].resource.target.averageUtilization: Required value: must set either a target raw value "
          "or a target utilization")]),
        (with_(VALID["PodDisruptionBudget"], "spec.maxUnavailable", 1),
         [('spec: Invalid value: {"maxUnavailable":1,"minAvailable":"50%","selector":{"matchLabels":{"app":"web"}}}: '
          "minAvailable and maxUnavailable cannot be both set")]),
        (with_(VALID["PodDisruptionBudget"], "spec.minAvailable", "120%"),
         ["spec.minAvailable: Invalid value: 120%: must not be greater than 100%"]),
        (with_(VALID["Lease"], "spec.leaseDurationSeconds", 0),
         ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]),
        (with_(VALID["Role"], "rules", [{"apiGroups": [""], "resources": ["pods"]}]),
         ["rules[0].verbs: Required value: verbs must contain at least one value"]),
        (with_(VALID["Role"], "rules", [{"verbs": ["get"]}]),
         ["rules[0].apiGroups: Required value: resource rules must supply at least one api group",
          "rules[0].resources: Required value: resource rules must supply at least one resource"]),
        (with_(VALID["Role"], "rules", [{"nonResourceURLs": ["/x"], "verbs": ["get"]}]),
         ['rules[0].nonResourceURLs: Invalid value: ["/x"]: namespaced rules cannot apply to non-resource URLs']),
        (with_(VALID["RoleBinding"], "roleRef", {"kind": "Thing", "name": ""}),
         ['roleRef.kind: Unsupported value: "Thing": supported values: "Role", "ClusterRole"',
          "roleRef.name: Required value"]),
        (with_(VALID["RoleBinding"], "subjects", [{"kind": "Robot", "name": "r"}]),
         ['subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"']),
        (with_(VALID["ClusterRoleBinding"], "subjects", [{"kind": "ServiceAccount", "name": "x"}]),
         ["subjects[0].namespace: Required value"]),
        (with_(VALID["ClusterRoleBinding"], "roleRef.kind", "Role"),
         ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"']),
        (with_(VALID["PriorityClass"], "value", 2000000000),
         ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]),
        (with_(VALID["PriorityClass"], "metadata.name", "system-foo"),
         [("metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. "
          "error: system-foo is not a known system priority class")]),
        (with_(VALID["PriorityClass"], "preemptionPolicy", "Always"),
         ['preemptionPolicy: Unsupported value: "Always": supported values: "Never", "PreemptLowerPriority"']),
    ],
)
def test_policy_rbac_scheduling(obj, expected):
    assert errors(obj) == expected


MIB = 1024 * 1024


def _b64(n: int) -> str:
    return base64.b64encode(b"\0" * n).decode()


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        # kube's ValidateSecret sums the decoded sizes of data (stringData merged in) against 1 MiB.
        (with_(with_(VALID["Secret"], "stringData", None), "data", {"a": _b64(MIB)}), []),
        (with_(with_(VALID["Secret"], "stringData", None), "data", {"a": _b64(MIB + 1)}),
         ["data: Too long: must have at most 1048576 bytes"]),
        (with_(with_(VALID["Secret"], "stringData", None), "data", {"a": _b64(MIB // 2), "b": _b64(MIB // 2 + 1)}),
         ["data: Too long: must have at most 1048576 bytes"]),
        (with_(with_(VALID["Secret"], "stringData", {"s": "x" * 10}), "data", {"a": _b64(MIB - 5)}),
         ["data: Too long: must have at most 1048576 bytes"]),
        # ValidateConfigMap: data and binaryData together; the error is on the whole object ("[]").
        (with_(with_(VALID["ConfigMap"], "data", {"a": "x" * (MIB // 2)}), "binaryData", {"b": _b64(MIB // 2)}), []),
        (with_(with_(VALID["ConfigMap"], "data", {"a": "x" * (MIB // 2)}), "binaryData", {"b": _b64(MIB // 2 + 1)}),
         ["[]: Too long: must have at most 1048576 bytes"]),
    ],
)
def test_secret_and_config_map_size_limit(obj, expected):
    assert errors(obj) == expected


def test_secret_size_limit_on_update():
    old = with_(VALID["Secret"], "stringData", None)
    assert update_errors(with_(old, "data", {"a": _b64(MIB + 1)}), old) == [
        "data: Too long: must have at most 1048576 bytes"]


def test_immutability_on_update():
    svc = VALID["Service/nodeport"]
    assert update_errors(with_(svc, "spec.clusterIP", "10.96.0.21"), svc) == [
        'spec.clusterIPs[0]: Invalid value: ["10.96.0.21"]: may not change once set']
    assert update_errors(with_(svc, "spec.selector", {"app": "other"}), svc) == []
    lb = with_(with_(with_(svc, "spec.type", "LoadBalancer"), "spec.externalTrafficPolicy", "Local"),
               "spec.healthCheckNodePort", 31000)
    assert update_errors(with_(lb, "spec.healthCheckNodePort", 31001), lb) == [
        "spec.healthCheckNodePort: Forbidden: field is immutable"]
    assert update_errors(with_(lb, "spec.selector", {"app": "other"}), lb) == []

    cm = with_(VALID["ConfigMap"], "immutable", True)
    assert update_errors(with_(cm, "data.LOG_LEVEL", "debug"), cm) == [f"data: Forbidden: {IMMUTABLE_SET}"]
    assert update_errors(with_(cm, "immutable", False), cm) == [f"immutable: Forbidden: {IMMUTABLE_SET}"]
    assert update_errors(with_(VALID["ConfigMap"], "data.LOG_LEVEL", "debug"), VALID["ConfigMap"]) == []

    sec = VALID["Secret"]
    assert update_errors(with_(sec, "type", "kubernetes.io/basic-auth"), sec) == [
        'type: Invalid value: "kubernetes.io/basic-auth": field is immutable']

    pvc = VALID["PersistentVolumeClaim"]
    immutable = ("spec: Forbidden: spec is immutable after creation except resources.requests and "
                 "volumeAttributesClassName for bound claims\n")
    errs = update_errors(with_(pvc, "spec.accessModes", ["ReadWriteMany"]), pvc)
    assert len(errs) == 1 and errs[0].startswith(immutable)
    assert update_errors(with_(pvc, "spec.volumeName", "pv-1"), pvc) == []
    # only a bound claim's request may change (grow; or shrink, not to its capacity)
    errs = update_errors(with_(pvc, "spec.resources.requests.storage", "16Gi"), pvc)
    assert len(errs) == 1 and errs[0].startswith(immutable)
    from k8py.api.validation.storage import validate_pvc_update

    def bound_update(new_size: str, old_size: str) -> list[str]:
        def claim(size: str) -> dict[str, object]:
            c = with_(with_(pvc, "spec.volumeName", "pv-1"), "spec.resources.requests.storage", size)
            c["metadata"] = {**c["metadata"], "resourceVersion": "7", "uid": "u"}
            c["status"] = {"phase": "Bound", "capacity": {"storage": "8Gi"}}  # kept from the stored claim
            return c

        return [str(e) for e in validate_pvc_update(claim(new_size), claim(old_size))]

    assert bound_update("16Gi", "8Gi") == []
    assert bound_update("12Gi", "16Gi") == []  # back down after a failed expansion
    assert bound_update("8Gi", "16Gi") == [
        "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]

    sc = VALID["StorageClass"]
    assert update_errors(with_(sc, "parameters", {"path": "/other"}), sc) == [
        "parameters: Forbidden: updates to parameters are forbidden."]
    assert update_errors(with_(sc, "provisioner", "example.com/x"), sc) == [
        "provisioner: Forbidden: updates to provisioner are forbidden."]

    pc = VALID["PriorityClass"]
    assert update_errors(with_(pc, "value", 5), pc) == ["value: Forbidden: may not be changed in an update."]

    rb = VALID["RoleBinding"]
    assert update_errors(with_(rb, "roleRef.name", "other"), rb) == [
        ('roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"other"}: '
        "cannot change roleRef")]

    es = VALID["EndpointSlice"]
    assert update_errors(with_(with_(es, "addressType", "IPv6"), "endpoints[0].addresses", ["fd00::1"]), es) == [
        'addressType: Invalid value: "IPv6": field is immutable']

    ic = VALID["IngressClass"]
    assert update_errors(with_(ic, "spec.controller", "example.com/other"), ic) == [
        'spec.controller: Invalid value: "example.com/other": field is immutable']

    pv = VALID["PersistentVolume"]
    assert update_errors(with_(pv, "spec.hostPath.path", "/mnt/other"), pv) == [
        "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"]


def test_status_updates():
    ns = VALID["Namespace"]
    assert status_errors(with_(ns, "status.phase", "Terminating"), ns) == [
        "status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty"]
    deleting = with_(ns, "metadata.deletionTimestamp", "2024-01-01T00:00:00Z")
    assert status_errors(with_(deleting, "status.phase", "Terminating"), deleting) == []
    svc = VALID["Service"]
    assert status_errors(with_(svc, "status.loadBalancer.ingress", [{"ip": "192.0.2.10"}]), svc) == []
    assert status_errors(with_(svc, "status.loadBalancer.ingress", [{"ip": "x"}]), svc) == [
        ('status.loadBalancer.ingress[0].ip: Invalid value: "x": must be a valid IP address, (e.g. 10.9.8.7 or '
        '2001:db8::ffff)')]
    pvc = VALID["PersistentVolumeClaim"]
    assert status_errors(with_(pvc, "status.phase", "Bound"), pvc) == []
    assert status_errors(with_(pvc, "status.phase", "Done"), pvc) == [
        'status.phase: Unsupported value: "Done": supported values: "Bound", "Lost", "Pending"']
