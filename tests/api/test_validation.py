"""Validation: every kind accepts a realistic manifest; Pod/core rules and ObjectMeta."""

import pytest
from validation_cases import REGISTRY, VALID, errors, kind_of, prepared, status_errors, update_errors, with_

from k8py.api.errors import invalid_error
from k8py.api.registry import BUILTIN_KINDS, VIRTUAL_KINDS
from k8py.api.validation import kinds as validation

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    "is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QUANTITY_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_manifests_have_no_errors(name):
    assert errors(VALID[name]) == []


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_manifests_update_to_themselves(name):
    obj = VALID[name]
    assert update_errors(obj, obj) == []
    assert status_errors(obj, obj) == []


def test_every_served_kind_has_a_valid_example():
    covered = {(kind_of(o).group, kind_of(o).kind) for o in VALID.values()}
    missing = {(k.group, k.kind) for k in BUILTIN_KINDS
               if k.kind != "ComponentStatus" and k.kind not in VIRTUAL_KINDS} - covered
    assert missing == set()


# ---------------------------------------------------------------------------
# SEED.md's examples, as kubectl would send them

SEED_POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx", "namespace": "default"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.7.9", "ports": [{"containerPort": 80}]}]}}

# SEED's ReplicaSet: `apiVersion: v1` (served only as apps/v1), `replica:` instead of `replicas:`, and the
# template nested under `selector`. After unknown-field pruning the server sees a ReplicaSet without template.
SEED_REPLICASET = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "metadata": {"name": "nginx-replicaset", "namespace": "default", "labels": {"app": "nginx"}},
                   "spec": {"selector": {"matchLabels": {"app": "nginx"}}}}

SEED_DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "nginx-deployment", "namespace": "default", "labels": {"app": "nginx"}},
                   "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}},
                            "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [
                                {"name": "nginx", "image": "nginx:1.7.9", "ports": [{"containerPort": 80}]}]}}}}


def test_seed_examples():
    assert errors(SEED_POD) == []
    assert errors(SEED_DEPLOYMENT) == []
    assert REGISTRY.by_api_version("v1", "ReplicaSet") is None
    assert errors(SEED_REPLICASET) == [
        ("spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template "
        "`labels`"),
        "spec.template.spec.containers: Required value",
    ]


def test_status_message_for_seed_replicaset():
    obj = prepared(SEED_REPLICASET)
    errs = validation.validate(kind_of(obj), obj)
    st = invalid_error("ReplicaSet", "apps", "nginx-replicaset", errs).status()
    assert st["code"] == 422
    assert st["message"] == (
        'ReplicaSet.apps "nginx-replicaset" is invalid: [spec.template.metadata.labels: Invalid value: '
        "map[string]string(nil): `selector` does not match template `labels`, spec.template.spec.containers: "
        "Required value]"
    )
    assert [c["field"] for c in st["details"]["causes"]] == ["spec.template.metadata.labels",
                                                            "spec.template.spec.containers"]


# ---------------------------------------------------------------------------
# ObjectMeta

POD = VALID["Pod"]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (with_(POD, "metadata.name", "Foo_bar"), [f'metadata.name: Invalid value: "Foo_bar": {SUBDOMAIN_MSG}']),
        (with_(POD, "metadata.name", None), ["metadata.name: Required value: name or generateName is required"]),
        (with_(with_(POD, "metadata.name", None), "metadata.generateName", "Web-"),
         [f'metadata.generateName: Invalid value: "Web-": {SUBDOMAIN_MSG}',
          "metadata.name: Required value: name or generateName is required"]),
        (with_(POD, "metadata.namespace", None), ["metadata.namespace: Required value"]),
        (with_(POD, "metadata.labels", {"app": "a" * 64}),
         [f'metadata.labels: Invalid value: "{"a" * 64}": must be no more than 63 bytes']),
        (with_(POD, "metadata.labels", {"bad key": "x"}),
         [('metadata.labels: Invalid value: "bad key": name part must consist of alphanumeric characters, \'-\', '
          "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
          "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")]),
        (with_(POD, "metadata.labels", {"/x": "y"}), ['metadata.labels: Invalid value: "/x": prefix part must be non-empty']),
        (with_(POD, "metadata.annotations", {"a": "x" * (256 * 1024)}),
         ["metadata.annotations: Too long: must have at most 262144 bytes"]),
        (with_(POD, "metadata.finalizers", ["example.com/a", "bad finalizer"]),
         [('metadata.finalizers: Invalid value: "bad finalizer": name part must consist of alphanumeric characters, '
          "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
          "or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")]),
        (with_(POD, "metadata.ownerReferences", [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True},
            {"apiVersion": "", "kind": "ReplicaSet", "name": "", "uid": "2", "controller": True}]),
         ['metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty',
          'metadata.ownerReferences.name: Invalid value: "": name must not be empty',
          ('metadata.ownerReferences: Invalid value: [{"apiVersion":"apps/v1","controller":true,"kind":"ReplicaSet",'
          '"name":"a","uid":"1"},{"apiVersion":"","controller":true,"kind":"ReplicaSet","name":"","uid":"2"}]: '
          'Only one reference can have Controller set to true. Found "true" in references for ReplicaSet/a and '
          "ReplicaSet/")]),
        (with_(VALID["Namespace"], "metadata.namespace", "default"),
         ["metadata.namespace: Forbidden: not allowed on this type"]),
    ],
)
def test_object_meta(obj, expected):
    assert errors(obj) == expected


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("Namespace", "team.a", ['metadata.name: Invalid value: "team.a": must not contain dots']),
        ("Namespace", "Team", [f'metadata.name: Invalid value: "Team": {LABEL_MSG}']),
        ("Service", "1web", [f'metadata.name: Invalid value: "1web": {DNS1035_MSG}']),
        ("StatefulSet", "web.v1", ['metadata.name: Invalid value: "web.v1": must not contain dots']),
        ("Role", "a/b", ['metadata.name: Invalid value: "a/b": may not contain \'/\'']),
        ("ClusterRole", "..", ["metadata.name: Invalid value: \"..\": may not be '..'"]),
        ("ClusterRole", "system:controller:x", []),
        ("ConfigMap", "a" * 254, [f'metadata.name: Invalid value: "{"a" * 254}": must be no more than 253 characters']),
        ("CronJob", "c" * 53, [f'metadata.name: Invalid value: "{"c" * 53}": must be no more than 52 characters']),
    ],
)
def test_name_rules_per_kind(kind, name, expected):
    assert errors(with_(VALID[kind], "metadata.name", name)) == expected


def test_metadata_update_immutability():
    old = with_(POD, "metadata.uid", "u1")
    new = with_(with_(old, "metadata.uid", "u2"), "metadata.namespace", "other")
    assert update_errors(new, old) == [
        'metadata.namespace: Invalid value: "other": field is immutable',
        'metadata.uid: Invalid value: "u2": field is immutable',
    ]
    # an update that leaves uid out keeps the stored one
    assert update_errors(with_(old, "metadata.uid", None), old) == []


def test_no_new_finalizers_while_deleting():
    old = with_(POD, "metadata.deletionTimestamp", "2024-01-01T00:00:00Z")
    new = with_(old, "metadata.finalizers", ["example.com/x"])
    assert update_errors(new, old) == [
        ('metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new '
        'finalizers []string{"example.com/x"}')
    ]


# ---------------------------------------------------------------------------
# Pod spec

C = "spec.containers[0]"


def pod_with(path, value):
    return with_(POD, path, value)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pod_with("spec.containers", []), ["spec.containers: Required value"]),
        (pod_with(f"{C}.name", "Web_1"), [f'{C}.name: Invalid value: "Web_1": {LABEL_MSG}']),
        (pod_with(f"{C}.image", ""), [f"{C}.image: Required value"]),
        (pod_with(f"{C}.image", " nginx"), [f'{C}.image: Invalid value: " nginx": must not have leading or trailing whitespace']),
        (pod_with("spec.initContainers[0].name", "nginx"), ['spec.initContainers[0].name: Duplicate value: "nginx"']),
        (pod_with(f"{C}.ports", [{"containerPort": 0}, {"containerPort": 70000, "protocol": "ICMP"},
                                 {"name": "Http", "containerPort": 81}]),
         [f"{C}.ports[0].containerPort: Required value",
          f"{C}.ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
          f'{C}.ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
          (f'{C}.ports[2].name: Invalid value: "Http": must contain only alpha-numeric characters (a-z, 0-9), and '
          "hyphens (-)")]),
        (pod_with(f"{C}.resources", {"requests": {"cpu": "1x"}}),
         [f'{C}.resources.requests[cpu]: Invalid value: "1x": {QUANTITY_MSG}']),
        (pod_with(f"{C}.resources", {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
         [f'{C}.resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1']),
        (pod_with(f"{C}.resources", {"requests": {"memory": "-1Gi"}}),
         [f'{C}.resources.requests[memory]: Invalid value: "-1Gi": must be greater than or equal to 0']),
        (pod_with(f"{C}.resources", {"limits": {"gpu": "1"}}),
         [f'{C}.resources.limits[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified',
          f'{C}.resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers',
          f'{C}.resources.requests[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified',
          f'{C}.resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers']),
        (pod_with(f"{C}.resources", {"requests": {"example.com/dongle": "1"}}),
         [f"{C}.resources.limits: Required value: Limit must be set for non overcommitable resources"]),
        (pod_with(f"{C}.env", [{"name": "A=B"}, {"name": "X", "valueFrom": {}}]),
         [(f'{C}.env[0].name: Invalid value: "A=B": a valid environment variable name must consist only of '
          "printable ASCII characters other than '='"),
          (f'{C}.env[1].valueFrom: Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, '
          "`configMapKeyRef` or `secretKeyRef`")]),
        (pod_with(f"{C}.volumeMounts", [{"name": "missing", "mountPath": "/m"}, {"name": "data", "mountPath": "/m"}]),
         [f'{C}.volumeMounts[0].name: Not found: "missing"',
          f'{C}.volumeMounts[1].mountPath: Invalid value: "/m": must be unique']),
        (pod_with("spec.volumes", [{"name": "data", "emptyDir": {}}, {"name": "data", "hostPath": {"path": "/x"},
                                                                     "secret": {"secretName": "s"}}]),
         ['spec.volumes[1].secret: Forbidden: may not specify more than 1 volume type',
          'spec.volumes[1].name: Duplicate value: "data"',
          f'{C}.volumeMounts[1].name: Not found: "cfg"']),
        (pod_with("spec.volumes[1]", {"name": "cfg", "configMap": {"name": "", "defaultMode": 1000}}),
         ["spec.volumes[1].configMap.name: Required value",
          ("spec.volumes[1].configMap.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), "
          "both inclusive"),
          f'{C}.volumeMounts[1].name: Not found: "cfg"']),
        (pod_with(f"{C}.livenessProbe", {"httpGet": {"path": "/", "port": 0}, "exec": {"command": ["true"]},
                                        "successThreshold": 2, "periodSeconds": -1}),
         [f"{C}.livenessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
          f"{C}.livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
          f"{C}.livenessProbe.successThreshold: Invalid value: 2: must be 1"]),
        (pod_with(f"{C}.readinessProbe", {"initialDelaySeconds": 1}),
         [f"{C}.readinessProbe: Required value: must specify a handler type"]),
        (pod_with("spec.initContainers[0].livenessProbe", {"exec": {"command": ["true"]}}),
         [("spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without "
          "restartPolicy=Always")]),
        (pod_with("spec.restartPolicy", "Sometimes"),
         ['spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"']),
        (pod_with("spec.dnsPolicy", "None"),
         ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]),
        (pod_with("spec.activeDeadlineSeconds", 0),
         ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"]),
        (pod_with("spec.tolerations", [{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Exists",
                                                                         "value": "v", "tolerationSeconds": 5}]),
         [('spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which '
          'means "match all values and all keys"'),
          "spec.tolerations[1].effect: Invalid value: \"\": effect must be 'NoExecute' when `tolerationSeconds` is set",
          "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'"]),
        (pod_with("spec.nodeSelector", {"disk": "ssd!"}),
         [('spec.nodeSelector: Invalid value: "ssd!": a valid label must be an empty string or consist of '
          "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
          "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
          "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")]),
        (pod_with("spec.hostname", "my.host"), ['spec.hostname: Invalid value: "my.host": must not contain dots']),
        (pod_with("spec.ephemeralContainers", [{"name": "debug", "image": "busybox"}]),
         ["spec.ephemeralContainers: Forbidden: cannot be set on create"]),
    ],
)
def test_pod_spec(obj, expected):
    assert errors(obj) == expected


def test_pod_update_only_images_and_friends():
    old = POD
    assert update_errors(with_(old, f"{C}.image", "nginx:1.26"), old) == []
    assert update_errors(with_(old, "spec.activeDeadlineSeconds", 30), old) == []
    assert update_errors(with_(old, "spec.tolerations", [*old["spec"]["tolerations"],
                                                          {"key": "k", "operator": "Exists"}]), old) == []
    errs = update_errors(with_(old, "spec.restartPolicy", "Never"), old)
    assert len(errs) == 1
    assert errs[0].startswith(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
        "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)\n"
    )
    assert '-\trestartPolicy: "Always",' in errs[0] and '+\trestartPolicy: "Never",' in errs[0]
    assert update_errors(with_(old, "spec.containers", [*old["spec"]["containers"], {"name": "b", "image": "b"}]),
                         old) == ["spec.containers: Forbidden: pod updates may not add or remove containers"]
    assert update_errors(with_(old, "spec.tolerations", []), old) == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
    with_ads = with_(old, "spec.activeDeadlineSeconds", 30)
    assert update_errors(with_(old, "spec.activeDeadlineSeconds", 60), with_ads) == [
        "spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"]


def test_pod_status_update():
    old = POD
    assert status_errors(with_(old, "status.phase", "Running"), old) == []
    assert status_errors(with_(old, "status.phase", "Done"), old) == [
        ('status.phase: Unsupported value: "Done": supported values: "Pending", "Running", "Succeeded", "Failed", '
        '"Unknown"')]
    assert status_errors(with_(old, "status.podIPs", [{"ip": "10.0.0.300"}]), old) == [
        'status.podIPs[0]: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)']
    done = with_(old, "status.phase", "Succeeded")
    assert status_errors(with_(old, "status.phase", "Running"), done) == [
        "status.phase: Forbidden: cannot transition from terminal phase Succeeded to Running"]


def test_errors_are_deduplicated():
    obj = pod_with(f"{C}.volumeMounts", [{"name": "x", "mountPath": "/a"}, {"name": "x", "mountPath": "/b"}])
    # two different mounts: two different paths, both reported
    assert errors(obj) == [f'{C}.volumeMounts[0].name: Not found: "x"', f'{C}.volumeMounts[1].name: Not found: "x"']
    obj = with_(POD, "metadata.labels", {"a": "bad!", "b": "bad!"})
    assert len(errors(obj)) == 1
