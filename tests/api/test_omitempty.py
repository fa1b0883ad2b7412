"""Built-in objects as Go's JSON encoder writes them (k8py.api.omitempty)."""

from __future__ import annotations

import copy
import timeit
from typing import Any

from k8py.api.omitempty import normalize


def cm(**over: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c2", **over.pop("metadata", {})}, **over}


def pod_spec(**over: Any) -> dict[str, Any]:
    return {"containers": [{"name": "a", "image": "busybox"}], **over}


def deployment(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}}, "spec": pod_spec()}, **spec}}


def test_empty_maps_and_slices_of_omitempty_fields_are_dropped() -> None:
    obj = cm(metadata={"annotations": {}, "labels": {}, "finalizers": [], "ownerReferences": []}, data={},
             binaryData={})
    assert normalize(obj) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c2"}}


def test_values_that_are_not_empty_stay() -> None:
    obj = cm(metadata={"labels": {"a": ""}, "annotations": {"k": "v"}, "finalizers": ["x/y"]}, data={"a": ""})
    before = copy.deepcopy(obj)
    assert normalize(obj) == before  # an empty string as a map value is a value


def test_zero_scalars_of_omitempty_fields_are_dropped_pointers_keep_theirs() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "generation": 0, "uid": ""},
           "spec": pod_spec(hostNetwork=False, hostPID=False, nodeName="", priority=0,
                            enableServiceLinks=False, terminationGracePeriodSeconds=0)}
    normalize(pod)
    assert pod["metadata"] == {"name": "p"}
    # hostNetwork, hostPID (bool, omitempty), nodeName (string, omitempty) go; priority,
    # enableServiceLinks and terminationGracePeriodSeconds are pointers: an explicit zero stays
    assert pod["spec"] == pod_spec(priority=0, enableServiceLinks=False, terminationGracePeriodSeconds=0)

    d = deployment({"replicas": 0, "paused": False, "minReadySeconds": 0, "revisionHistoryLimit": 0})
    normalize(d)
    assert d["spec"]["replicas"] == 0 and d["spec"]["revisionHistoryLimit"] == 0
    assert "paused" not in d["spec"] and "minReadySeconds" not in d["spec"]


def test_nested_fields_are_walked() -> None:
    d = deployment({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0}}})
    c = d["spec"]["template"]["spec"]["containers"][0]
    c.update(ports=[], env=[{"name": "A", "value": ""}], args=[], volumeMounts=[],
             resources={"limits": {}, "requests": {}}, securityContext={"privileged": False})
    d["spec"]["template"]["spec"]["initContainers"] = []
    d["spec"]["template"]["metadata"]["annotations"] = {}
    normalize(d)
    tmpl = d["spec"]["template"]
    assert tmpl["metadata"] == {"labels": {"app": "d"}}
    assert tmpl["spec"] == {"containers": [{"name": "a", "image": "busybox", "env": [{"name": "A"}],
                                            "resources": {}, "securityContext": {"privileged": False}}]}
    # a struct stays even when empty (Go's omitempty never drops one); IntOrString 0 is its own type
    assert d["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0}}


def test_fields_without_omitempty_keep_their_zero() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec(),
           "status": {"containerStatuses": [{"name": "a", "ready": False, "restartCount": 0, "image": "",
                                             "imageID": ""}]}}
    before = copy.deepcopy(pod)
    assert normalize(pod) == before
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80, "targetPort": 0, "protocol": "TCP", "name": ""}]}}
    normalize(svc)
    assert svc["spec"]["ports"] == [{"port": 80, "targetPort": 0, "protocol": "TCP"}]  # name is omitempty
    # Pod.spec.containers has no omitempty: [] stays (validation says it is required)
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}
    assert normalize(bare)["spec"] == {"containers": []}


def test_null_decodes_to_the_go_zero_value() -> None:
    obj = cm(metadata={"labels": None, "annotations": None, "creationTimestamp": None, "deletionTimestamp": None,
                       "deletionGracePeriodSeconds": None, "name": "c2"}, data=None)
    assert normalize(obj) == cm()
    ref = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "ownerReferences": [
        {"apiVersion": "v1", "kind": "X", "name": None, "uid": "u", "controller": None}]},
        "spec": {"containers": None, "securityContext": None}, "status": None}
    normalize(ref)
    # a non-pointer string without omitempty decodes null to ""; an omitempty pointer is left out
    assert ref["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "X", "name": "", "uid": "u"}]
    # a nil slice without omitempty prints null; an omitempty pointer goes; a struct is {}
    assert ref["spec"] == {"containers": None}
    assert ref["status"] == {}


def test_custom_resources_and_unknown_kinds_are_untouched() -> None:
    cr = {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x", "labels": {}},
          "spec": {"replicas": 0, "list": [], "map": {}}}
    before = copy.deepcopy(cr)
    assert normalize(cr) == before
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "crontabs.stable.example.com"},
           "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
               "type": "object", "default": {"a": [], "b": "", "c": {}}, "enum": [""]}}}]}}
    before = copy.deepcopy(crd)
    assert normalize(crd) == before


def test_raw_extension_and_fields_v1_insides_are_untouched() -> None:
    rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {
        "name": "r", "labels": {},
        "managedFields": [{"manager": "m", "operation": "Update", "subresource": "", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:data": {}}}]},
        "data": {"spec": {"template": {"metadata": {"labels": {}}, "spec": {"hostNetwork": False}}}},
        "revision": 0}
    normalize(rev)
    assert rev == {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {
        "name": "r",
        "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:data": {}}}]},
        "data": {"spec": {"template": {"metadata": {"labels": {}}, "spec": {"hostNetwork": False}}}},
        "revision": 0}  # revision is an int64 without omitempty


def test_inline_members_and_wrong_types_and_unknown_fields() -> None:
    vol = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": pod_spec(volumes=[{"name": "v", "emptyDir": {"medium": ""}},
                                     {"name": "s", "secret": {"secretName": "x", "items": [], "optional": False}}],
                            hostNetwork="", unknownField=[], nodeSelector={})}
    normalize(vol)
    # Volume's VolumeSource is inline: its members are walked as Volume's own
    assert vol["spec"]["volumes"] == [{"name": "v", "emptyDir": {}},
                                      {"name": "s", "secret": {"secretName": "x", "optional": False}}]
    # a value of the wrong type is validation's to refuse, an unknown field fieldcheck's
    assert vol["spec"]["hostNetwork"] == "" and vol["spec"]["unknownField"] == []
    assert "nodeSelector" not in vol["spec"]


def test_already_normal_objects_are_unchanged_and_the_walk_is_cheap() -> None:
    d = deployment({"replicas": 3})
    spec = d["spec"]["template"]["spec"]
    spec["containers"] = [{"name": f"c{i}", "image": "nginx", "ports": [{"containerPort": 80 + i}],
                           "env": [{"name": f"E{j}", "value": "v"} for j in range(20)],
                           "resources": {"requests": {"cpu": "100m"}}} for i in range(10)]
    d["metadata"]["annotations"] = {f"a{i}": "x" * 20 for i in range(20)}
    before = copy.deepcopy(d)
    assert normalize(d) == before
    # a generous bound (well under a millisecond on an idle core): one walk per write
    per_call = min(timeit.repeat(lambda: normalize(d), number=200, repeat=3)) / 200
    assert per_call < 0.002, per_call
