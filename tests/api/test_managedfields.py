"""Field ownership and server-side apply, checked against what kube-apiserver records and answers."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from k8py.api.errors import StatusError
from k8py.api.managedfields import (
    LAST_APPLIED_ANNOTATION,
    compare,
    field_set,
    fields_to_set,
    path_string,
    server_side_apply,
    set_to_fields,
    update_managed_fields,
)
from k8py.api.schema import for_kind

DEPLOYMENT = for_kind("apps", "v1", "Deployment")
POD = for_kind("", "v1", "Pod")
SERVICE = for_kind("", "v1", "Service")
T1, T2, T3 = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"


def nginx_config(replicas: int = 2, **extra_labels: str) -> dict[str, Any]:
    """What `kubectl apply --server-side` sends for the docs' nginx deployment."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "labels": {"app": "nginx", **extra_labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2",
                                         "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as the store would hold it after defaulting (what kube compares against)."""
    obj = copy.deepcopy(obj)
    obj["metadata"].update({"namespace": "default", "uid": "0b7c-uid", "resourceVersion": "1",
                            "generation": 1, "creationTimestamp": T1})
    spec = obj["spec"]
    spec.setdefault("strategy", {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    pod_spec = spec["template"]["spec"]
    for c in pod_spec["containers"]:
        c.setdefault("imagePullPolicy", "IfNotPresent")
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        for p in c.get("ports", []):
            p.setdefault("protocol", "TCP")
    pod_spec.setdefault("restartPolicy", "Always")
    pod_spec.setdefault("dnsPolicy", "ClusterFirst")
    pod_spec.setdefault("securityContext", {})
    pod_spec.setdefault("schedulerName", "default-scheduler")
    pod_spec.setdefault("terminationGracePeriodSeconds", 30)
    return obj


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def owned(obj: dict[str, Any], manager: str, operation: str = "Update") -> set[tuple[str, ...]]:
    return fields_to_set(entries(obj)[(manager, operation)]["fieldsV1"])


def p(*parts: str) -> tuple[str, ...]:
    return tuple(parts)


def apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str = "kubectl", force: bool = False,
          now: str = T2) -> dict[str, Any]:
    return server_side_apply(live, config, manager=manager, force=force, api_version="apps/v1", now=now,
                             node=DEPLOYMENT)


def update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, now: str = T1,
           subresource: str = "") -> dict[str, Any]:
    new = copy.deepcopy(new)
    update_managed_fields(old, new, manager=manager, api_version="apps/v1", subresource=subresource, now=now,
                          node=DEPLOYMENT)
    return new


# ==== wire format


def test_fieldsv1_round_trip_and_dot_marker() -> None:
    fv1 = {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
           "f:spec": {"f:containers": {'k:{"name":"nginx"}': {".": {}, "f:image": {}}},
                      "f:finalizers": {'v:"a"': {}}}}
    s = fields_to_set(fv1)
    assert s == {p("f:metadata", "f:labels"), p("f:metadata", "f:labels", "f:app"),
                 p("f:spec", "f:containers", 'k:{"name":"nginx"}'),
                 p("f:spec", "f:containers", 'k:{"name":"nginx"}', "f:image"),
                 p("f:spec", "f:finalizers", 'v:"a"')}
    assert set_to_fields(s) == fv1
    # keys are canonicalised (sorted, compact) when read from a client
    assert fields_to_set({'k:{ "protocol": "TCP", "containerPort": 80 }': {}}) == {
        p('k:{"containerPort":80,"protocol":"TCP"}')}
    with pytest.raises(ValueError):
        fields_to_set({"x:y": {}})


def test_fieldsv1_ordering_follows_structured_merge_diff() -> None:
    s = {p("f:b"), p("f:a"), p('k:{"port":8080}'), p('k:{"port":80}'), p('v:"x"'), p("v:1")}
    assert list(set_to_fields(s)) == ["f:a", "f:b", 'k:{"port":80}', 'k:{"port":8080}', "v:1", 'v:"x"']


def test_path_string() -> None:
    assert path_string(p("f:spec", "f:replicas")) == ".spec.replicas"
    assert path_string(p("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"nginx"}', "f:image")) == \
        '.spec.template.spec.containers[name="nginx"].image'
    assert path_string(p("f:ports", 'k:{"containerPort":80,"protocol":"TCP"}')) == \
        '.ports[containerPort=80,protocol="TCP"]'
    assert path_string(p("f:metadata", "f:finalizers", 'v:"a/b"')) == '.metadata.finalizers[="a/b"]'


def test_field_set_of_apply_configuration() -> None:
    s = field_set(nginx_config(), DEPLOYMENT)
    cport = p("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"nginx"}', "f:ports",
              'k:{"containerPort":80,"protocol":"TCP"}')  # protocol's default fills the key
    assert cport in s and cport + ("f:containerPort",) in s
    assert p("f:spec", "f:selector") in s and p("f:spec", "f:selector", "f:matchLabels") not in s  # atomic
    assert p("f:metadata", "f:labels", "f:app") in s and p("f:metadata", "f:labels") not in s


def test_compare() -> None:
    old = stored(nginx_config())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    new["metadata"]["labels"]["x"] = "y"
    del new["spec"]["template"]["spec"]["containers"][0]["ports"]
    c = compare(old, new, DEPLOYMENT)
    ctr = p("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"nginx"}')
    assert c.modified == {p("f:spec", "f:replicas")}
    assert c.added == {p("f:metadata", "f:labels", "f:x")}
    assert ctr + ("f:ports",) in c.removed
    assert ctr + ("f:ports", 'k:{"containerPort":80,"protocol":"TCP"}', "f:containerPort") in c.removed


# ==== Update (create, update, patch)

KUBECTL_CREATE_FIELDS = {
    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
    "f:spec": {
        "f:progressDeadlineSeconds": {},
        "f:replicas": {},
        "f:revisionHistoryLimit": {},
        "f:selector": {},
        "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
        "f:template": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:containers": {'k:{"name":"nginx"}': {
                    ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                    "f:ports": {".": {}, 'k:{"containerPort":80,"protocol":"TCP"}': {
                        ".": {}, "f:containerPort": {}, "f:protocol": {}}},
                    "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
                "f:terminationGracePeriodSeconds": {},
            },
        },
    },
}


def test_create_records_all_fields_like_kube() -> None:
    obj = update(None, stored(nginx_config()), "kubectl-create")
    assert obj["metadata"]["managedFields"] == [{
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
        "fieldsType": "FieldsV1", "fieldsV1": KUBECTL_CREATE_FIELDS}]
    # status is the status subresource's business
    with_status = stored(nginx_config())
    with_status["status"] = {"replicas": 0}
    assert update(None, with_status, "kubectl-create")["metadata"]["managedFields"][0]["fieldsV1"] == \
        KUBECTL_CREATE_FIELDS


def test_update_moves_ownership_to_the_new_manager() -> None:
    v1 = update(None, stored(nginx_config()), "kubectl-create")
    v2 = copy.deepcopy(v1)
    v2["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.16"
    v2 = update(v1, v2, "kubectl-set", now=T2)
    image = p("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"nginx"}', "f:image")
    assert owned(v2, "kubectl-set") == {image}
    assert image not in owned(v2, "kubectl-create")
    assert entries(v2)[("kubectl-set", "Update")]["time"] == T2
    assert entries(v2)[("kubectl-create", "Update")]["time"] == T1
    assert [e["manager"] for e in v2["metadata"]["managedFields"]] == ["kubectl-create", "kubectl-set"]


def test_update_without_changes_adds_no_entry_and_same_manager_merges() -> None:
    v1 = update(None, stored(nginx_config()), "kubectl-create")
    same = update(v1, copy.deepcopy(v1), "other", now=T2)
    assert same["metadata"]["managedFields"] == v1["metadata"]["managedFields"]

    v2 = copy.deepcopy(v1)
    v2["spec"]["replicas"] = 3
    v2 = update(v1, v2, "scaler", now=T2)
    v3 = copy.deepcopy(v2)
    v3["metadata"]["labels"]["x"] = "y"
    v3 = update(v2, v3, "scaler", now=T3)
    assert owned(v3, "scaler") == {p("f:spec", "f:replicas"), p("f:metadata", "f:labels", "f:x")}
    assert entries(v3)[("scaler", "Update")]["time"] == T3
    assert len(v3["metadata"]["managedFields"]) == 2


def test_removed_fields_leave_every_manager() -> None:
    v1 = update(None, stored(nginx_config()), "kubectl-create")
    v2 = copy.deepcopy(v1)
    del v2["metadata"]["labels"]
    v2 = update(v1, v2, "editor", now=T2)
    assert not any(path[:2] == ("f:metadata", "f:labels") for path in owned(v2, "kubectl-create"))
    assert ("editor", "Update") not in entries(v2)  # removing only: the editor owns nothing


def test_status_subresource_entry() -> None:
    v1 = update(None, stored(nginx_config()), "kubectl-create")
    v2 = copy.deepcopy(v1)
    v2["status"] = {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
    v2 = update(v1, v2, "kube-controller-manager", now=T2, subresource="status")
    e = next(x for x in v2["metadata"]["managedFields"] if x["manager"] == "kube-controller-manager")
    assert e["subresource"] == "status" and e["operation"] == "Update"
    assert e["fieldsV1"] == {"f:status": {"f:conditions": {".": {}, 'k:{"type":"Available"}': {
        ".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}}
    # a status change through the main resource is not tracked
    v3 = copy.deepcopy(v2)
    v3["status"]["replicas"] = 3
    assert update(v2, v3, "x", now=T3)["metadata"]["managedFields"] == v2["metadata"]["managedFields"]


def test_managed_fields_sent_by_the_client() -> None:
    v1 = update(None, stored(nginx_config()), "kubectl-create")
    # omitted: the stored ones are kept
    omitted = copy.deepcopy(v1)
    del omitted["metadata"]["managedFields"]
    assert update(v1, omitted, "x")["metadata"]["managedFields"] == v1["metadata"]["managedFields"]
    # [] and [{}] reset them
    for reset in ([], [{}]):
        cleared = copy.deepcopy(v1)
        cleared["metadata"]["managedFields"] = reset
        assert "managedFields" not in update(v1, cleared, "x")["metadata"]
    # a valid edit is taken as the new starting point
    edited = copy.deepcopy(v1)
    edited["metadata"]["managedFields"][0]["manager"] = "renamed"
    assert [e["manager"] for e in update(v1, edited, "x")["metadata"]["managedFields"]] == ["renamed"]
    # garbage falls back to the stored ones
    garbage = copy.deepcopy(v1)
    garbage["metadata"]["managedFields"] = [{"manager": "m", "operation": "Bogus"}]
    assert update(v1, garbage, "x")["metadata"]["managedFields"] == v1["metadata"]["managedFields"]


def test_untracked_object_stays_untracked_on_update() -> None:
    old = stored(nginx_config())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 7
    assert "managedFields" not in update(old, new, "x")["metadata"]


def test_update_managers_are_capped() -> None:
    obj = update(None, stored(nginx_config()), "creator")
    for i in range(11):
        nxt = copy.deepcopy(obj)
        nxt["metadata"]["labels"][f"l{i}"] = "v"
        obj = update(obj, nxt, f"m{i:02d}", now=f"2024-02-{i + 1:02d}T00:00:00Z")
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(managers) == 10 and "ancient-changes" in managers and "creator" not in managers
    assert p("f:metadata", "f:labels", "f:l0") in owned(obj, "ancient-changes")


# ==== server-side apply

KUBECTL_APPLY_FIELDS = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:selector": {},
        "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                ".": {}, "f:image": {}, "f:name": {},
                "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}},
        },
    },
}


def test_apply_create_matches_kube() -> None:
    cfg = nginx_config()
    out = apply(None, cfg)
    assert out["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T2,
        "fieldsType": "FieldsV1", "fieldsV1": KUBECTL_APPLY_FIELDS}]
    del out["metadata"]["managedFields"]
    assert out == cfg
    assert cfg == nginx_config()  # input untouched


def created_by_apply() -> dict[str, Any]:
    return stored(apply(None, nginx_config(), now=T1))


def test_conflict_with_an_update_manager() -> None:
    live = created_by_apply()
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    live = update(live, scaled, "kubectl-scale", now=T2)
    with pytest.raises(StatusError) as ei:
        apply(live, nginx_config(replicas=3), now=T3)
    assert ei.value.status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas',
        "reason": "Conflict", "code": 409,
        "details": {"causes": [{"reason": "FieldManagerConflict",
                                "message": 'conflict with "kubectl-scale" using apps/v1',
                                "field": ".spec.replicas"}]}}


def test_conflict_between_appliers_lists_every_field() -> None:
    live = created_by_apply()
    other = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "nginx-deployment", "labels": {"app": "web"}},
             "spec": {"replicas": 9, "template": {"spec": {"containers": [{"name": "nginx", "image": "x:1"}]}}}}
    with pytest.raises(StatusError) as ei:
        apply(live, other, manager="team-b")
    err = ei.value
    assert err.code == 409 and err.reason == "Conflict"
    assert err.message == (
        'Apply failed with 3 conflicts: conflicts with "kubectl":\n'
        "- .metadata.labels.app\n"
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="nginx"].image')
    assert [c["message"] for c in err.details["causes"]] == ['conflict with "kubectl"'] * 3


def test_force_takes_ownership() -> None:
    live = created_by_apply()
    out = apply(live, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx-deployment"},
                       "spec": {"replicas": 9}}, manager="hpa", force=True, now=T3)
    assert out["spec"]["replicas"] == 9
    assert owned(out, "hpa", "Apply") == {p("f:spec", "f:replicas")}
    assert p("f:spec", "f:replicas") not in owned(out, "kubectl", "Apply")
    # the loser's next apply of its old value now conflicts with the new owner
    with pytest.raises(StatusError) as ei:
        apply(out, nginx_config(replicas=2), now=T3)
    assert ei.value.message == 'Apply failed with 1 conflict: conflict with "hpa": .spec.replicas'


def test_same_value_is_shared_and_survives_when_one_owner_lets_go() -> None:
    live = created_by_apply()
    shared = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx-deployment"},
              "spec": {"replicas": 2}}
    live = stored(apply(live, shared, manager="other"))
    assert p("f:spec", "f:replicas") in owned(live, "other", "Apply")
    assert p("f:spec", "f:replicas") in owned(live, "kubectl", "Apply")
    cfg = nginx_config()
    del cfg["spec"]["replicas"]
    out = apply(live, cfg, now=T3)
    assert out["spec"]["replicas"] == 2  # still owned by "other"
    assert p("f:spec", "f:replicas") not in owned(out, "kubectl", "Apply")


def test_omitted_fields_are_removed() -> None:
    live = stored(apply(None, nginx_config(tier="front"), now=T1))
    cfg = nginx_config()
    cfg["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    live = stored(apply(live, cfg, now=T2))
    assert [c["name"] for c in live["spec"]["template"]["spec"]["containers"]] == ["nginx", "sidecar"]
    assert "tier" not in live["metadata"]["labels"]

    out = apply(live, nginx_config(), now=T3)
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["nginx"]
    # fields nobody applied (defaults) stay
    assert out["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert out["spec"]["revisionHistoryLimit"] == 10


def test_omitted_map_disappears_when_emptied() -> None:
    cfg = nginx_config()
    cfg["metadata"]["annotations"] = {"note": "x"}
    live = stored(apply(None, cfg, now=T1))
    out = apply(live, nginx_config(), now=T2)
    assert "annotations" not in out["metadata"]


def test_noop_apply_keeps_object_and_time() -> None:
    live = created_by_apply()
    out = apply(live, nginx_config(), now=T3)
    assert out == live
    assert entries(out)[("kubectl", "Apply")]["time"] == T1


def test_apply_merges_associative_lists_by_key() -> None:
    live = created_by_apply()
    cfg = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx-deployment"},
           "spec": {"template": {"spec": {"containers": [
               {"name": "nginx", "env": [{"name": "A", "value": "1"}]},
               {"name": "log", "image": "fluentd"}]}}}}
    out = apply(live, cfg, manager="injector")
    ctrs = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in ctrs] == ["nginx", "log"]
    assert ctrs[0]["image"] == "nginx:1.14.2" and ctrs[0]["env"] == [{"name": "A", "value": "1"}]
    assert p("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"log"}') in owned(out, "injector",
                                                                                            "Apply")


def test_apply_list_order_shared_items_follow_the_configuration() -> None:
    live = created_by_apply()
    cfg = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx-deployment"},
           "spec": {"template": {"spec": {"containers": [{"name": "init-like", "image": "i"},
                                                         {"name": "nginx", "image": "nginx:1.14.2"}]}}}}
    out = apply(live, cfg, manager="other")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["init-like", "nginx"]


def test_ignored_fields_are_not_owned() -> None:
    cfg = nginx_config()
    cfg["status"] = {"replicas": 5}
    out = apply(None, cfg)
    assert "f:status" not in out["metadata"]["managedFields"][0]["fieldsV1"]
    new = stored(nginx_config())
    update_managed_fields(None, new, manager="m", api_version="apps/v1", now=T1, node=DEPLOYMENT,
                          ignore=[("f:spec",)])
    assert list(new["metadata"]["managedFields"][0]["fieldsV1"]) == ["f:metadata"]


def test_first_apply_to_an_untracked_object_conflicts_with_before_first_apply() -> None:
    live = stored(nginx_config(replicas=4))
    with pytest.raises(StatusError) as ei:
        apply(live, nginx_config(replicas=2))
    assert ei.value.message == ('Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: '
                                ".spec.replicas")
    out = apply(live, nginx_config(replicas=4))
    assert {e["manager"] for e in out["metadata"]["managedFields"]} == {"kubectl", "before-first-apply"}


def test_client_side_apply_upgrade_for_kubectl() -> None:
    cfg = nginx_config(replicas=2)
    last = orjson.dumps(cfg).decode()
    csa = stored(cfg)
    csa["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: last}
    live = update(None, csa, "kubectl-client-side-apply")
    changed = nginx_config(replicas=3)
    # another manager name gets the conflict
    with pytest.raises(StatusError):
        apply(live, changed, manager="not-kubectl")
    # kubectl takes over fields whose last-applied value is still live
    out = apply(live, changed, now=T2)
    assert out["spec"]["replicas"] == 3
    assert p("f:spec", "f:replicas") in owned(out, "kubectl", "Apply")
    # ... and keeps the annotation in sync with what it applied
    synced = orjson.loads(out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION])
    assert synced["spec"]["replicas"] == 3
    assert out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION].endswith("\n")


def test_apply_body_errors() -> None:
    live = created_by_apply()
    bad = nginx_config()
    bad["metadata"]["managedFields"] = []
    with pytest.raises(StatusError) as ei:
        apply(live, bad)
    assert (ei.value.code, ei.value.reason, ei.value.message) == (400, "BadRequest",
                                                                 "metadata.managedFields must be nil")
    wrong = nginx_config()
    wrong["kind"] = "StatefulSet"
    with pytest.raises(StatusError) as ei:
        apply(live, wrong)
    assert ei.value.message == "invalid object type: apps/v1, Kind=StatefulSet"

    unknown = nginx_config()
    unknown["spec"]["bogus"] = 1
    with pytest.raises(StatusError) as ei:
        apply(live, unknown)
    assert ei.value.code == 500
    assert ei.value.message == ("failed to create typed patch object (/nginx-deployment; apps/v1, Kind=Deployment): "
                                ".spec.bogus: field not declared in schema")

    no_key = nginx_config()
    no_key["spec"]["template"]["spec"]["containers"].append({"image": "x"})
    with pytest.raises(StatusError) as ei:
        apply(live, no_key)
    assert ei.value.message.endswith(
        '.spec.template.spec.containers: element 1: associative list with keys has an element that omits '
        'key field "name" (and doesn\'t have default value)')

    dup = nginx_config()
    dup["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A"}, {"name": "A"}]
    with pytest.raises(StatusError) as ei:
        apply(live, dup)
    assert ei.value.message.endswith(
        '.spec.template.spec.containers[name="nginx"].env: duplicate entries for key [name="A"]')


def test_apply_service_and_pod() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    out = server_side_apply(None, svc, manager="kubectl", force=False, api_version="v1", now=T1, node=SERVICE)
    assert out["metadata"]["managedFields"][0]["fieldsV1"] == {"f:spec": {
        "f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}, "f:targetPort": {}}},
        "f:selector": {}}}

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a/b"]},
           "spec": {"containers": [{"name": "app", "image": "app:1", "args": ["x"]}]}}
    out = server_side_apply(None, pod, manager="kubectl", force=False, api_version="v1", now=T1, node=POD)
    assert out["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:metadata": {"f:finalizers": {'v:"a/b"': {}}},
        "f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}}}}
