"""JSON patch, merge patch and strategic merge patch, checked against what kube-apiserver does."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from k8py.api.errors import StatusError
from k8py.api.patch import json_patch, merge_patch, strategic_merge_patch
from k8py.api.schema import for_kind

DEPLOYMENT = for_kind("apps", "v1", "Deployment")
POD = for_kind("", "v1", "Pod")
SERVICE = for_kind("", "v1", "Service")


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                     "finalizers": ["a.example/x", "b.example/y"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.25", "args": ["-g", "daemon off;"],
                         "ports": [{"containerPort": 80, "protocol": "TCP"},
                                   {"containerPort": 443, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "sidecar", "image": "busybox:1.36"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "c"}}],
                },
            },
        },
    }


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "app:1",
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                 "tolerations": [{"key": "k", "operator": "Exists"}]},
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s", "namespace": "default"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def tspec(patch: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": patch}}}


# ---- strategic merge patch: (name, patch, check(result))

SMP_CASES: list[tuple[str, Any, Any]] = [
    ("change image by name",
     tspec({"containers": [{"name": "nginx", "image": "nginx:1.26"}]}),
     lambda r: [c["image"] for c in containers(r)] == ["nginx:1.26", "busybox:1.36"]
     and containers(r)[0]["ports"][1]["containerPort"] == 443),
    ("add a container goes first without $setElementOrder",
     tspec({"containers": [{"name": "new", "image": "x:1"}]}),
     lambda r: [c["name"] for c in containers(r)] == ["new", "nginx", "sidecar"]),
    ("$setElementOrder places a new container",
     tspec({"$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}, {"name": "new"}],
            "containers": [{"name": "new", "image": "x:1"}]}),
     lambda r: [c["name"] for c in containers(r)] == ["nginx", "sidecar", "new"]),
    ("$setElementOrder reorders without content change",
     tspec({"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}]}),
     lambda r: [c["name"] for c in containers(r)] == ["sidecar", "nginx"]),
    ("delete a port by $patch: delete",
     tspec({"containers": [{"name": "nginx", "ports": [{"containerPort": 443, "$patch": "delete"}]}]}),
     lambda r: containers(r)[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]),
    ("delete a container by $patch: delete",
     tspec({"containers": [{"name": "sidecar", "$patch": "delete"}]}),
     lambda r: [c["name"] for c in containers(r)] == ["nginx"]),
    ("replace a whole list with $patch: replace",
     tspec({"containers": [{"name": "only", "image": "o:1"}, {"$patch": "replace"}]}),
     lambda r: containers(r) == [{"name": "only", "image": "o:1"}]),
    ("kubectl apply's deletion of a container",
     tspec({"$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{"$patch": "delete", "name": "sidecar"}]}),
     lambda r: [c["name"] for c in containers(r)] == ["nginx"]),
    ("kubectl apply's nested deletion with order",
     tspec({"$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"name": "nginx", "$setElementOrder/env": [{"name": "B"}],
                            "env": [{"$patch": "delete", "name": "A"}]}]}),
     lambda r: containers(r)[0]["env"] == [{"name": "B", "value": "2"}]),
    ("$setElementOrder with $deleteFromPrimitiveList",
     {"metadata": {"$setElementOrder/finalizers": ["b.example/y"],
                   "$deleteFromPrimitiveList/finalizers": ["a.example/x"]}},
     lambda r: r["metadata"]["finalizers"] == ["b.example/y"]),
    ("env merged by name, new entry first",
     tspec({"containers": [{"name": "nginx", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]}]}),
     lambda r: containers(r)[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"},
                                           {"name": "C", "value": "3"}]
     or containers(r)[0]["env"] == [{"name": "C", "value": "3"}, {"name": "A", "value": "1"},
                                    {"name": "B", "value": "20"}]),
    ("list without a patch strategy is replaced",
     tspec({"containers": [{"name": "nginx", "args": ["-v"]}]}),
     lambda r: containers(r)[0]["args"] == ["-v"]),
    ("retainKeys clears the other strategy fields",
     {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}},
     lambda r: r["spec"]["strategy"] == {"type": "Recreate"}),
    ("retainKeys on a volume switches its source",
     tspec({"volumes": [{"name": "data", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv"}}]}),
     lambda r: r["spec"]["template"]["spec"]["volumes"][0] == {"name": "data", "hostPath": {"path": "/srv"}}
     and r["spec"]["template"]["spec"]["volumes"][1]["name"] == "conf"),
    ("null deletes a field",
     {"metadata": {"labels": {"tier": None}}, "spec": {"strategy": {"rollingUpdate": None}}},
     lambda r: r["metadata"]["labels"] == {"app": "web"} and r["spec"]["strategy"] == {"type": "RollingUpdate"}),
    ("null for an absent field is ignored",
     {"metadata": {"annotations": None}},
     lambda r: "annotations" not in r["metadata"]),
    ("nulls inside a new value are dropped",
     {"metadata": {"annotations": {"a": "1", "b": None}}},
     lambda r: r["metadata"]["annotations"] == {"a": "1"}),
    ("maps merge",
     {"metadata": {"labels": {"new": "x"}}},
     lambda r: r["metadata"]["labels"] == {"app": "web", "tier": "front", "new": "x"}),
    ("$patch: replace on a map",
     {"metadata": {"labels": {"$patch": "replace", "only": "1"}}},
     lambda r: r["metadata"]["labels"] == {"only": "1"}),
    ("$patch: delete on a map empties it",
     {"spec": {"selector": {"$patch": "delete"}}},
     lambda r: r["spec"]["selector"] == {}),
    ("$patch: delete on an absent map leaves it absent",
     {"metadata": {"annotations": {"$patch": "delete"}}},
     lambda r: "annotations" not in r["metadata"]),
    ("primitive list with merge strategy is unioned",
     {"metadata": {"finalizers": ["c.example/z", "a.example/x"]}},
     lambda r: r["metadata"]["finalizers"] == ["c.example/z", "a.example/x", "b.example/y"]),
    ("$deleteFromPrimitiveList removes values",
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/x"]}},
     lambda r: r["metadata"]["finalizers"] == ["b.example/y"]),
    ("$setElementOrder on a primitive list",
     {"metadata": {"$setElementOrder/finalizers": ["b.example/y", "a.example/x"]}},
     lambda r: r["metadata"]["finalizers"] == ["b.example/y", "a.example/x"]),
    ("scalar replaced",
     {"spec": {"replicas": 5}},
     lambda r: r["spec"]["replicas"] == 5),
    ("top-level $patch: replace",
     {"$patch": "replace", "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
     lambda r: r == {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
]


@pytest.mark.parametrize(("name", "patch", "check"), SMP_CASES, ids=[c[0] for c in SMP_CASES])
def test_strategic_merge_patch(name: str, patch: Any, check: Any) -> None:
    obj = deployment()
    before = copy.deepcopy(obj)
    patch_before = copy.deepcopy(patch)
    result = strategic_merge_patch(obj, patch, DEPLOYMENT)
    assert check(result), result
    assert obj == before and patch == patch_before  # inputs untouched


def test_smp_pod_volume_mounts_and_tolerations() -> None:
    p = {"spec": {"containers": [{"name": "app", "volumeMounts": [{"name": "logs", "mountPath": "/logs"}]}],
                  "tolerations": [{"key": "other", "operator": "Exists"}]}}
    r = strategic_merge_patch(pod(), p, POD)
    mounts = r["spec"]["containers"][0]["volumeMounts"]
    assert {m["mountPath"] for m in mounts} == {"/data", "/logs"}
    assert r["spec"]["tolerations"] == [{"key": "other", "operator": "Exists"}]  # atomic: replaced


def test_smp_service_ports_by_port() -> None:
    p = {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443, "name": "https"}]}}
    r = strategic_merge_patch(service(), p, SERVICE)
    # every item is in the patch, so the patch's order wins
    assert r["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 9090, "protocol": "TCP"},
                                  {"port": 443, "name": "https"}]


def test_smp_free_form_falls_back_to_merge_semantics() -> None:
    obj = {"spec": {"items": [1, 2], "nested": {"a": 1, "b": 2}}}
    r = strategic_merge_patch(obj, {"spec": {"items": [3], "nested": {"b": None, "c": 3}}}, None)
    assert r == {"spec": {"items": [3], "nested": {"a": 1, "c": 3}}}


def test_smp_list_of_lists_is_unprocessable() -> None:
    obj = deployment()
    obj["metadata"]["finalizers"] = []
    with pytest.raises(StatusError) as ei:
        strategic_merge_patch(obj, {"metadata": {"finalizers": [["x"]]}}, DEPLOYMENT)
    assert (ei.value.code, ei.value.reason) == (422, "Invalid")
    assert ei.value.message == "the server rejected our request due to an error in our request"


def test_smp_null_body_is_noop() -> None:
    assert strategic_merge_patch(deployment(), None, DEPLOYMENT) == deployment()


# kube answers the plain strategicpatch errors as 500 (reason ""); k8py as 400 BadRequest, same text.
SMP_ERRORS: list[tuple[str, Any, int, str, str]] = [
    ("missing merge key", tspec({"containers": [{"image": "x"}]}), 400, "BadRequest",
     "map: map[image:x] does not contain declared merge key: name"),
    ("delete directive without merge key", tspec({"containers": [{"$patch": "delete"}]}), 400, "BadRequest",
     "map: map[$patch:delete] does not contain declared merge key: name"),
    ("merge directive in a list", tspec({"containers": [{"$patch": "merge"}]}), 400, "BadRequest",
     "merging lists cannot yet be specified in the patch"),
    ("unknown directive in a list", tspec({"containers": [{"name": "x", "$patch": "bogus"}]}), 400, "BadRequest",
     "unknown patch type: bogus in map: map[$patch:bogus name:x]"),
    ("merge directive in a map", {"spec": {"template": {"$patch": "merge"}}}, 400, "BadRequest",
     "unknown patch type: merge in map: map[$patch:merge]"),
    ("unknown directive at the top", {"$patch": "bogus"}, 400, "BadRequest",
     "unknown patch type: bogus in map: map[$patch:bogus]"),
    ("non-string directive", {"$patch": 1}, 400, "BadRequest",
     "unknown patch type: %!s(int64=1) in map: map[$patch:1]"),
    ("null-ish directive", {"metadata": {"$patch": [True, None, "x"]}}, 400, "BadRequest",
     "unknown patch type: [%!s(bool=true) %!s(<nil>) x] in map: map[$patch:[true <nil> x]]"),
    ("retainKeys not a list", {"spec": {"strategy": {"$retainKeys": "type"}}}, 400, "BadRequest",
     "invalid patch format of retainKeys"),
    ("patch key missing from retainKeys", {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
     400, "BadRequest", "invalid patch format of retainKeys"),
    ("bad deleteFromPrimitiveList key", {"metadata": {"$deleteFromPrimitiveListfinalizers": ["x"]}}, 400,
     "BadRequest", "invalid patch format of primitive list"),
    ("bad setElementOrder value", {"metadata": {"$setElementOrder/finalizers": "x"}}, 400, "BadRequest",
     "expected a []interface {}, but received a string"),
    ("mixed element types", {"metadata": {"finalizers": [["x"]]}}, 400, "BadRequest",
     "list element types are not identical: [[a.example/x b.example/y] [[x]]]"),
    ("non-object body", [1, 2], 400, "BadRequest",
     "json: cannot unmarshal array into Go value of type map[string]interface {}"),
]


@pytest.mark.parametrize(("name", "patch", "code", "reason", "message"), SMP_ERRORS,
                         ids=[c[0] for c in SMP_ERRORS])
def test_strategic_merge_patch_errors(name: str, patch: Any, code: int, reason: str, message: str) -> None:
    with pytest.raises(StatusError) as ei:
        strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    assert (ei.value.code, ei.value.reason, ei.value.message) == (code, reason, message)


# ---- JSON patch


def test_json_patch_operations() -> None:
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/new", "value": "x"},
        {"op": "remove", "path": "/metadata/labels/tier"},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "c", "image": "c:1"}},
        {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "nginx"},
        {"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"},
        {"op": "move", "from": "/metadata/finalizers", "path": "/metadata/oldFinalizers"},
    ]
    obj = deployment()
    r = json_patch(obj, ops)
    assert r["spec"]["replicas"] == 3
    assert r["metadata"]["labels"] == {"app": "web", "new": "x"}
    assert r["metadata"]["annotations"] == {"app": "web", "new": "x"}
    assert "finalizers" not in r["metadata"] and r["metadata"]["oldFinalizers"]
    assert [c["name"] for c in containers(r)] == ["nginx", "sidecar", "c"]
    assert obj == deployment()


# (ops, the cause: gopkg.in/evanphx/json-patch.v4's error as kube-apiserver gets it)
JSON_PATCH_FAILURES: list[tuple[str, list[Any], str]] = [
    ("test-fails", [{"op": "test", "path": "/spec/replicas", "value": 2}],
     "testing value /spec/replicas failed: test failed"),
    ("test-int-vs-float", [{"op": "test", "path": "/spec/replicas", "value": 3.0}],
     "testing value /spec/replicas failed: test failed"),
    ("test-without-value", [{"op": "test", "path": "/spec/replicas"}],
     "testing value /spec/replicas failed: test failed"),
    ("remove-missing", [{"op": "remove", "path": "/spec/nope"}],
     "error in remove for path: '/spec/nope': Unable to remove nonexistent key: nope: missing value"),
    ("remove-missing-parent", [{"op": "remove", "path": "/spec/nope/x"}],
     'remove operation does not apply: doc is missing path: "/spec/nope/x": missing value'),
    ("replace-missing", [{"op": "replace", "path": "/spec/nope/deeper", "value": 1}],
     "replace operation does not apply: doc is missing path: /spec/nope/deeper: missing value"),
    ("replace-bad-index", [{"op": "replace", "path": "/spec/template/spec/containers/7", "value": {}}],
     "replace operation does not apply: doc is missing key: /spec/template/spec/containers/7: missing value"),
    ("replace-no-path", [{"op": "replace", "value": 1}],
     "replace operation failed to decode path: operation missing path field: missing value"),
    ("replace-path-not-string", [{"op": "replace", "path": 5, "value": 1}],
     "replace operation failed to decode path: json: cannot unmarshal number into Go value of type string"),
    ("add-no-path", [{"op": "add", "value": 1}], "add operation failed to decode path: missing value"),
    ("add-missing-parent", [{"op": "add", "path": "/metadata/nope/x", "value": 1}],
     'add operation does not apply: doc is missing path: "/metadata/nope/x": missing value'),
    ("index-out-of-range", [{"op": "add", "path": "/spec/template/spec/containers/9", "value": {}}],
     ("error in add for path: '/spec/template/spec/containers/9': Unable to access invalid index: 9: "
     "invalid index referenced")),
    ("index-not-a-number", [{"op": "add", "path": "/spec/template/spec/containers/x", "value": {}}],
     ("error in add for path: '/spec/template/spec/containers/x': value was not a proper array index: 'x': "
     'strconv.Atoi: parsing "x": invalid syntax')),
    ("move-missing-from", [{"op": "move", "from": "/nope/x", "path": "/spec/x"}],
     "move operation does not apply: doc is missing from path: /nope/x: missing value"),
    ("move-no-from", [{"op": "move", "path": "/spec/x"}],
     "move operation failed to decode from: operation, missing from field: missing value"),
    ("move-absent-key", [{"op": "move", "from": "/spec/nope", "path": "/spec/x"}],
     "error in move for path: 'nope': Unable to remove nonexistent key: nope: missing value"),
    ("copy-missing-destination", [{"op": "copy", "from": "/spec/replicas", "path": "/nope/x"}],
     "copy operation does not apply: doc is missing destination path: /nope/x: missing value"),
    ("unknown-op", [{"op": "bogus", "path": "/spec"}], "Unexpected kind: bogus"),
    ("no-op", [{"path": "/spec"}], "Unexpected kind: unknown"),
    ("second-op-fails", [{"op": "add", "path": "/spec/x", "value": 1}, {"op": "remove", "path": "/spec/y"}],
     "error in remove for path: '/spec/y': Unable to remove nonexistent key: y: missing value"),
]


@pytest.mark.parametrize(("name", "ops", "why"), JSON_PATCH_FAILURES, ids=[c[0] for c in JSON_PATCH_FAILURES])
def test_json_patch_unprocessable(name: str, ops: list[Any], why: str) -> None:
    with pytest.raises(StatusError) as ei:
        json_patch(deployment(), ops)
    st = ei.value.status()
    # kube's own answer (code, reason, fixed message); the library's text rides along as the cause
    assert st["code"] == 422 and st["reason"] == "Invalid"
    assert st["message"] == "the server rejected our request due to an error in our request"
    assert st["details"] == {"causes": [{"message": why, "field": "patch"}]}


def test_json_patch_follows_evanphx_v4_semantics() -> None:
    obj = deployment()
    r = json_patch(obj, [
        {"op": "replace", "path": "/metadata/labels/absent", "value": "added"},  # absent key: replace adds
        {"op": "add", "path": "/spec/template/spec/containers/-2", "value": {"name": "neg"}},
        {"op": "remove", "path": "/metadata/finalizers/-1"},
        {"op": "add", "path": "/metadata/annotations", "value": {"a~b/c": "1"}},
        {"op": "test", "path": "/metadata/annotations/a~0b~1c", "value": "1"},
        {"op": "test", "path": "/metadata/absent", "value": None},  # absent reads as null
        {"op": "add", "path": "/spec/paused"},  # no value adds null
    ])
    assert r["metadata"]["labels"]["absent"] == "added"
    assert [c["name"] for c in containers(r)] == ["nginx", "neg", "sidecar"]
    assert r["metadata"]["finalizers"] == obj["metadata"]["finalizers"][:-1]
    assert r["spec"]["paused"] is None
    assert obj == deployment()


@pytest.mark.parametrize(("body", "message"), [
    ({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    (["x"], "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
    ("x", "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
])
def test_json_patch_malformed(body: Any, message: str) -> None:
    with pytest.raises(StatusError) as ei:
        json_patch(deployment(), body)
    assert (ei.value.code, ei.value.reason, ei.value.message) == (400, "BadRequest", message)


def test_json_patch_limits_and_null() -> None:
    assert json_patch(deployment(), None) == deployment()
    with pytest.raises(StatusError) as ei:
        json_patch(deployment(), [{"op": "test", "path": "/kind", "value": "Deployment"}] * 10001)
    assert ei.value.code == 413
    assert ei.value.message == ("Request entity too large: The allowed maximum operations in a JSON patch "
                                "is 10000, got 10001")


# ---- JSON merge patch


def test_merge_patch() -> None:
    obj = deployment()
    r = merge_patch(obj, {"metadata": {"labels": {"tier": None, "x": "y"}},
                          "spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "only"}]}}}})
    assert r["metadata"]["labels"] == {"app": "web", "x": "y"}
    assert r["spec"]["replicas"] == 4
    assert containers(r) == [{"name": "only"}]  # lists replace
    assert r["spec"]["strategy"] == obj["spec"]["strategy"]
    assert obj == deployment()


def test_merge_patch_nulls_and_errors() -> None:
    r = merge_patch({"a": 1, "b": {"c": 1}}, {"b": None, "d": {"e": None, "f": 1}})
    assert r == {"a": 1, "d": {"f": 1}}
    with pytest.raises(StatusError) as ei:
        merge_patch({"a": 1}, None)
    assert (ei.value.code, ei.value.message) == (400, "Invalid JSON Patch")
    with pytest.raises(StatusError) as ei:
        merge_patch({"a": 1}, [1])
    assert ei.value.code == 422


# ---- nesting depth: refused before any recursive walk (a RecursionError was a 500)


def nested(depth: int, leaf: Any = 1) -> Any:
    v = leaf
    for _ in range(depth):
        v = [v]
    return v


@pytest.mark.parametrize("apply", [
    lambda p: merge_patch(deployment(), {"metadata": {"annotations": p}}),
    lambda p: strategic_merge_patch(deployment(), {"metadata": {"annotations": p}}, DEPLOYMENT),
    lambda p: strategic_merge_patch(deployment(), {"x": p}, None),
    lambda p: json_patch(deployment(), [{"op": "add", "path": "/x", "value": p}]),
], ids=["merge", "strategic", "strategic-free-form", "json"])
@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_patch_documents_are_bad_requests(apply: Any, depth: int) -> None:
    with pytest.raises(StatusError) as ei:
        apply(nested(depth))
    assert (ei.value.code, ei.value.reason) == (400, "BadRequest")
    assert "k8py accepts at most 200 levels" in ei.value.message


def test_patch_results_are_bounded_too() -> None:
    # each operation is shallow, but copying a deep value into itself doubles the depth
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "x": nested(150)}
    with pytest.raises(StatusError) as ei:
        json_patch(obj, [{"op": "copy", "from": "/x", "path": "/x" + "/0" * 60 + "/-"}])
    assert ei.value.code == 400
    assert json_patch(obj, [{"op": "test", "path": "/x", "value": nested(150)}]) == obj
    assert merge_patch(obj, {"y": nested(150)})["y"] == nested(150)
