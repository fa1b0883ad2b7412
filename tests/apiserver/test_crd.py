"""CustomResourceDefinitions: the structural schema applied to custom objects (pruning,
defaulting, validation with kube's messages), CRD validation, the naming controller's
decisions and the custom-resource strategy's generation and status rules."""

from __future__ import annotations

import copy
from typing import Any

from k8py.api import crd
from k8py.api.validation import apiextensions
from k8py.apiserver.crd import CRDStrategy, CustomResourceStrategy
from k8py.apiserver.crd_controller import accepted_names

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "pattern": r"^\S+( \S+){4}$", "maxLength": 20},
                "image": {"type": "string", "default": "busybox"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "note": {"type": "string", "nullable": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "nested": {"type": "object", "properties": {"level": {"type": "integer", "default": 3}},
                           "default": {}},
            },
        },
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
    },
}


def strs(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


def test_prune_drops_undeclared_fields_only() -> None:
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a", "bogus": 1},
           "spec": {"cronSpec": "* * * * *", "extra": 1, "free": {"any": {"thing": 1}},
                    "labels": {"a": "b"}, "tags": ["x"]}, "top": True}
    dropped = crd.prune(obj, SCHEMA)
    assert sorted(dropped) == ["spec.extra", "top"]
    assert obj["spec"]["free"] == {"any": {"thing": 1}}
    assert obj["metadata"] == {"name": "a"}
    assert obj["apiVersion"] == "x/v1"


def test_defaults_fill_absent_fields_recursively() -> None:
    obj: dict[str, Any] = {"spec": {"cronSpec": "* * * * *"}}
    crd.default(obj, SCHEMA)
    assert obj["spec"]["image"] == "busybox"
    assert obj["spec"]["nested"] == {"level": 3}
    obj = {"spec": {"image": "nginx"}}
    crd.default(obj, SCHEMA)
    assert obj["spec"]["image"] == "nginx"


def test_validation_messages_as_kube() -> None:
    ok = {"spec": {"cronSpec": "* * * * *", "replicas": 3, "port": "http", "note": None}}
    assert crd.validate(ok, SCHEMA) == []
    assert crd.validate({"spec": {"cronSpec": "* * * * *", "port": 80}}, SCHEMA) == []
    bad = {"spec": {"replicas": "string", "mode": "medium", "tags": ["a", "b", "c"], "port": 1.5,
                    "labels": {"a": 1}}}
    got = strs(crd.validate(bad, SCHEMA))
    assert 'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"' in got
    assert 'spec.mode: Unsupported value: "medium": supported values: "fast", "slow"' in got
    assert "spec.cronSpec: Required value" in got
    assert any(s.startswith("spec.tags: Too many: 3: must have at most 2 items") for s in got)
    assert 'spec.port: Invalid value: "number": spec.port in body must be of type integer,string: "number"' in got
    assert 'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"' in got
    got = strs(crd.validate({"spec": {"cronSpec": "bad", "replicas": 20}}, SCHEMA))
    assert "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10" in got
    assert "spec.cronSpec: Invalid value: \"bad\": spec.cronSpec in body should match '^\\S+( \\S+){4}$'" in got
    got = strs(crd.validate({"spec": {"cronSpec": "* * * * *", "replicas": 0, "mode": None}}, SCHEMA))
    assert "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1" in got
    assert 'spec.mode: Invalid value: "null": spec.mode in body must be of type string: "null"' in got


def test_structural_schema_rules() -> None:
    assert crd.structural_errors(SCHEMA, "s") == []
    got = strs(crd.structural_errors({"type": "object", "properties": {"a": {"properties": {}},
                                                                       "b": {"type": "array"},
                                                                       "c": {"type": "string", "default": 1}}}, "s"))
    assert "s.properties[a].type: Required value: must not be empty for specified object fields" in got
    assert "s.properties[b].items: Required value: must be specified" in got
    assert any(s.startswith("s.properties[c].default: Invalid value: 1:") for s in got)
    assert strs(crd.structural_errors({"type": "string"}, "s")) == [('s.type: Invalid value: "string": '
                                                                     "must be object at the root")]
    # CEL rules are compiled, not refused (their own tests: tests/api/test_cel.py)
    assert crd.structural_errors({"type": "object", "properties": {"a": {"type": "integer"}},
                                  "x-kubernetes-validations": [{"rule": "self.a > 0"}]}, "s") == []


def crd_obj(**over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
                 "names": {"plural": "crontabs", "kind": "CronTab"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": copy.deepcopy(SCHEMA)}}]}}
    obj["spec"].update(over)
    apiextensions.set_defaults(obj)
    return obj


def test_crd_validation() -> None:
    obj = crd_obj()
    assert obj["spec"]["names"]["singular"] == "crontab" and obj["spec"]["names"]["listKind"] == "CronTabList"
    assert apiextensions.validate_crd(obj) == []
    bad = crd_obj(scope="Global", group="nodots")
    bad["metadata"]["name"] = "crontabs.other.example.com"
    bad["spec"]["names"]["plural"] = "CronTabs"
    bad["spec"]["versions"].append({"name": "v2", "served": False, "storage": True})
    got = strs(apiextensions.validate_crd(bad))
    assert 'metadata.name: Invalid value: "crontabs.other.example.com": must be spec.names.plural+"."+spec.group' in got
    assert 'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"' in got
    assert 'spec.group: Invalid value: "nodots": should be a domain with at least one dot' in got
    assert any(s.startswith('spec.names.plural: Invalid value: "CronTabs": a DNS-1035 label') for s in got)
    assert "spec.versions[1].schema.openAPIV3Schema: Required value: schemas are required" in got
    assert any(s.endswith("must have exactly one version marked as storage version") for s in got)
    # strategy Webhook is accepted with its webhook (tests/apiserver/test_conversion_webhook.py)
    webhook = crd_obj(conversion={"strategy": "Webhook"})
    assert strs(apiextensions.validate_crd(webhook)) == [
        "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
        "spec.conversion.conversionReviewVersions: Required value"]
    upd = crd_obj(scope="Cluster")
    assert 'spec.scope: Invalid value: "Cluster": field is immutable' in strs(
        apiextensions.validate_crd_update(upd, crd_obj()))


def test_crd_strategy_stored_versions_and_terminating() -> None:
    s = CRDStrategy()
    obj = crd_obj()
    s.prepare_for_create(None, obj)  # type: ignore[arg-type]
    assert obj["status"]["storedVersions"] == ["v1"]
    gone = s.terminating(None, obj)  # type: ignore[arg-type]
    assert crd.CLEANUP_FINALIZER in gone["metadata"]["finalizers"]
    assert crd.condition(gone, "Terminating")["reason"] == "InstanceDeletionPending"  # type: ignore[index]


def test_names_conflict_in_group() -> None:
    other = crd_obj()
    other["metadata"]["name"] = "crontabs2.stable.example.com"
    other["status"] = {"acceptedNames": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                                         "listKind": "CronTabList"}}
    mine = crd_obj()
    mine["status"] = {}
    names, status, reason, message = accepted_names(mine, [other])
    # kube checks plural, singular, shortNames, kind, listKind in turn: the last conflict is reported
    assert (status, reason, message) == ("False", "ListKindConflict", '"CronTabList" is already in use')
    assert "plural" not in names and "kind" not in names
    other["status"]["acceptedNames"] = {"plural": "crontabs", "kind": "Other", "listKind": "OtherList"}
    names, status, reason, message = accepted_names(mine, [other])
    assert (status, reason, message) == ("False", "PluralConflict", '"crontabs" is already in use')
    assert names["kind"] == "CronTab"
    other["spec"]["group"] = "another.example.com"  # only the CRDs of the same group count
    assert accepted_names(mine, [other])[1] == "True"
    names, status, reason, _ = accepted_names(mine, [])
    assert (status, reason) == ("True", "NoConflicts") and names["plural"] == "crontabs"


def test_custom_resource_generation_and_status() -> None:
    c = crd_obj()
    c["spec"]["versions"][0]["subresources"] = {"status": {}}
    c["status"] = {"acceptedNames": c["spec"]["names"]}
    kind = crd.kinds_for(c)[0]
    assert kind.has_status and kind.custom and kind.storage_name == "stable.example.com/crontabs"
    s = CustomResourceStrategy(c)
    obj: dict[str, Any] = {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "a"},
                           "spec": {"cronSpec": "* * * * *"}, "status": {"replicas": 9}}
    s.prepare_for_create(kind, obj)
    assert "status" not in obj and obj["metadata"]["generation"] == 1 and obj["spec"]["image"] == "busybox"
    old = copy.deepcopy(obj)
    new = copy.deepcopy(obj)
    new["status"] = {"replicas": 2}
    s.prepare_for_update(kind, new, old)
    assert "status" not in new and new["metadata"]["generation"] == 1
    new = copy.deepcopy(obj)
    new["spec"]["replicas"] = 2
    s.prepare_for_update(kind, new, old)
    assert new["metadata"]["generation"] == 2
    st = s.prepare_for_status_update(kind, {**copy.deepcopy(obj), "spec": {"cronSpec": "x"},
                                            "status": {"replicas": 4}}, old)
    assert st["spec"] == old["spec"] and st["status"] == {"replicas": 4}


def test_list_type_rules() -> None:
    good = {"type": "object", "properties": {"ports": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}}
    assert crd.structural_errors(good, "s") == []
    bad = copy.deepcopy(good)
    bad["properties"]["ports"]["items"]["required"] = []
    assert strs(crd.structural_errors(bad, "s")) == [
        ("s.properties[ports].items.properties[name].default: Required value: this property is in "
         "x-kubernetes-list-map-keys, so it must have a default or be a required property")]
    bad["properties"]["ports"]["x-kubernetes-list-type"] = "list"
    got = strs(crd.structural_errors(bad, "s"))
    assert 's.properties[ports].x-kubernetes-list-type: Unsupported value: "list": supported values: "atomic", ' \
        '"set", "map"' in got
    assert ("s.properties[ports].x-kubernetes-list-map-keys: Forbidden: must only be set if "
            "x-kubernetes-list-type is map") in got
    del bad["properties"]["ports"]["x-kubernetes-list-map-keys"]
    bad["properties"]["ports"]["x-kubernetes-list-type"] = "map"
    assert ("s.properties[ports].x-kubernetes-list-map-keys: Required value: must not be empty if "
            "x-kubernetes-list-type is map") in strs(crd.structural_errors(bad, "s"))


def test_root_metadata_may_only_restrict_names() -> None:
    ok = {"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 10}}}}}
    assert crd.structural_errors(ok, "s") == []
    bad = {"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "labels": {"type": "object"}}}}}
    assert strs(crd.structural_errors(bad, "s")) == [
        ("s.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but "
         "metadata is implicitly specified")]
