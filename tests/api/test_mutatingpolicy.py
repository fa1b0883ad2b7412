"""MutatingAdmissionPolicy without I/O (:mod:`k8py.api.mutatingpolicy`): compiling mutations
with kube's initializers and errors at the user's positions, evaluating them, applying apply
configurations with server-side apply's merge (list maps merged by key, atomics refused) and JSON
patches; and the kinds' validation and defaults (``ValidateMutatingAdmissionPolicy``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from k8py.api import admissionpolicy as ap
from k8py.api import defaults, schema
from k8py.api import mutatingpolicy as mp
from k8py.api.registry import Registry
from k8py.api.validation import kinds

Obj = dict[str, Any]
REG = Registry()
MAP = REG.by_resource("admissionregistration.k8s.io", "v1", "mutatingadmissionpolicies")
MAPB = REG.by_resource("admissionregistration.k8s.io", "v1", "mutatingadmissionpolicybindings")
NAMES = ap.policy_names(False)
DEPLOYMENT = schema.for_kind("apps", "v1", "Deployment")


def deployment() -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"app": "d"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [{"name": "app", "image": "nginx", "args": ["a"]}]}}}}


def run(expr: str, patch_type: str, obj: Obj, **data: Any) -> Obj:
    """Compile, evaluate and apply one mutation to ``obj`` as a Deployment."""
    prog, err = mp.compile_mutation(expr, patch_type, NAMES)
    assert not err, err
    m = mp.Mutation(patch_type, expr, prog, tuple(n for n, _ in ap.variable_refs(expr)))
    cp = mp.CompiledMutatingPolicy("p", {"spec": {}})
    act = ap.Activation(cp, {"object": obj, "oldObject": None, "request": {}, "namespaceObject": None, **data})
    return mp.apply_mutation(m, mp.evaluate(act, m), obj, DEPLOYMENT)


@pytest.mark.parametrize(("expr", "patch_type", "err"), [
    ('"x"', "ApplyConfiguration", "must evaluate to Object but got string"),
    ("Object.spec{}", "ApplyConfiguration", "must evaluate to Object but got Object.spec"),
    ("object", "ApplyConfiguration", "must evaluate to Object but got dyn"),
    ("Object{}", "JSONPatch", "must evaluate to list(JSONPatch) but got Object"),
    ('[{"op": "add"}]', "JSONPatch", "must evaluate to list(JSONPatch) but got list(map(string, string))"),
    ("Object{spec: 1 +}", "ApplyConfiguration",
     "compilation failed: ERROR: <input>:1:17: Syntax error: mismatched input '}' expecting"),
    ('Object{spec: Object.spec{replicas: objekt.x}}', "ApplyConfiguration",
     ("compilation failed: ERROR: <input>:1:42: undeclared reference to 'objekt.x' (in container '')\n"
     " | Object{spec: Object.spec{replicas: objekt.x}}\n | .........................................^")),
    ("Deployment{}", "ApplyConfiguration",
     "compilation failed: ERROR: <input>:1:1: undeclared reference to 'Deployment' (in container '')"),
    ('[JSONPatch{op: "add", value: 1, to: "/x"}]', "JSONPatch",
     "compilation failed: ERROR: <input>:1:33: undefined field 'to'"),
    ('Object{metadata: Object.metadata{\n  labels: {"a": 1 + "b"}}}', "ApplyConfiguration",
     ("compilation failed: ERROR: <input>:2:19: found no matching overload for '_+_' applied to '(int, string)'\n"
     ' |   labels: {"a": 1 + "b"}}}\n | ..................^')),
])
def test_compile_errors_in_kubes_words_at_the_users_positions(expr: str, patch_type: str, err: str) -> None:
    prog, got = mp.compile_mutation(expr, patch_type, NAMES)
    assert prog is None
    assert got.startswith(err), got


@pytest.mark.parametrize(("expr", "patch_type"), [
    ('Object{metadata: Object.metadata{labels: {"a": "{b}", "c": \'}\'}}}', "ApplyConfiguration"),
    ("Object{spec: Object.spec{?replicas: optional.of(2)}}", "ApplyConfiguration"),
    ('true ? Object{} : Object{metadata: Object.metadata{name: "x"}}', "ApplyConfiguration"),
    ('"a" in {"a": 1} ? Object{} : Object{}', "ApplyConfiguration"),
    ('.Object{spec: Object.spec{replicas: [1, 2].map(x, x * 2)[1]}}', "ApplyConfiguration"),
    ('// a comment {\n[JSONPatch{op: "add", path: "/x", value: {"k": [1, 2]}}] + []', "JSONPatch"),
    ("object.spec.template.spec.containers.map(c, JSONPatch{op: 'test', path: '/x', value: c.name})",
     "JSONPatch"),
])
def test_initializers_anywhere_an_expression_goes(expr: str, patch_type: str) -> None:
    prog, err = mp.compile_mutation(expr, patch_type, NAMES)
    assert prog is not None and not err, err


def test_apply_configuration_merges_by_the_schemas_rules() -> None:
    obj = deployment()
    out = run("""Object{
      metadata: Object.metadata{labels: {"team": "blue"}},
      spec: Object.spec{replicas: object.spec.replicas + 2,
        template: Object.spec.template{spec: Object.spec.template.spec{
          containers: [Object.spec.template.spec.containers{name: "app", image: "nginx:2"},
                       Object.spec.template.spec.containers{name: "sidecar", image: "proxy"}]}}}}""",
              "ApplyConfiguration", obj)
    assert obj == deployment()  # the input is left alone
    assert out["metadata"]["labels"] == {"app": "d", "team": "blue"}
    assert out["spec"]["replicas"] == 3
    # containers are a list map keyed by name: "app" is merged (its args kept), "sidecar" added
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "app", "image": "nginx:2", "args": ["a"]}, {"name": "sidecar", "image": "proxy"}]


@pytest.mark.parametrize(("expr", "err"), [
    (('Object{spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{containers: '
     '[Object.spec.template.spec.containers{name: "app", args: ["b"]}]}}}}'),
     ("error applying patch: invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: "
     ".spec.template.spec.containers[0].args")),
    ('Object{spec: Object.spec{selector: Object.spec.selector{matchLabels: {"l": "v"}}}}',
     "error applying patch: invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: .spec.selector"),
    ("Object{spec: Object.spec{replicasx: 1}}",
     ("error applying patch: failed to convert patch object to typed object: .spec.replicasx: field not declared "
     "in schema")),
    ('Object{spec: Object.spec{template: Object.spec.template{spec: Object.spec.templates.spec{}}}}',
     ('type mismatch: unexpected type name "Object.spec.templates.spec", expected "Object.spec.template.spec", '
     "which matches field name path from root Object type")),
])
def test_apply_configuration_errors(expr: str, err: str) -> None:
    with pytest.raises(mp.MutationError) as e:
        run(expr, "ApplyConfiguration", deployment())
    assert str(e.value) == err


def test_json_patch_operations_and_their_errors() -> None:
    out = run("""[
      JSONPatch{op: "replace", path: "/spec/replicas", value: 5},
      JSONPatch{op: "add", path: "/metadata/annotations", value: {}},
      JSONPatch{op: "add", path: "/metadata/annotations/" + jsonpatch.escapeKey("a/b~c"), value: "v"},
      JSONPatch{op: "copy", from: "/metadata/labels/app", path: "/metadata/labels/copied"},
      JSONPatch{op: "add", path: "/spec/template/spec/containers/-",
                value: Object.spec.template.spec.containers{name: "x", image: "y"}}
    ]""", "JSONPatch", deployment())
    assert out["spec"]["replicas"] == 5
    assert out["metadata"]["annotations"] == {"a/b~c": "v"}
    assert out["metadata"]["labels"] == {"app": "d", "copied": "d"}
    assert out["spec"]["template"]["spec"]["containers"][1] == {"name": "x", "image": "y"}
    # a test that fails: the patch is not applied, and that is no error
    assert run('[JSONPatch{op: "test", path: "/spec/replicas", value: 9}, '
               'JSONPatch{op: "remove", path: "/spec/replicas"}]', "JSONPatch", deployment()) == deployment()
    with pytest.raises(mp.MutationError) as e:
        run('[JSONPatch{op: "remove", path: "/spec/nothing"}]', "JSONPatch", deployment())
    assert str(e.value).startswith("JSON Patch: ")
    with pytest.raises(mp.MutationError) as e:
        run('[JSONPatch{op: "add", path: "/spec", value: Object.spec{selector: Object.spec.selectr{}}}]',
            "JSONPatch", deployment())
    assert str(e.value) == ('type mismatch: unexpected type name "Object.spec.selectr", expected '
                            '"Object.spec.selector", which matches field name path from root Object type')


def test_initializers_fields_are_read_tested_and_compared() -> None:
    # kube's "JSONPatch patch type has field access / testing / equality"
    out = run("""[JSONPatch{op: "add", path: "/metadata/labels", value: {
        "op": JSONPatch{op: "opValue"}.op, "path": JSONPatch{path: "pathValue"}.path,
        "value": string(JSONPatch{value: "valueValue"}.value),
        "op-set": string(has(JSONPatch{op: "x"}.op)), "op-unset": string(has(JSONPatch{}.op)),
        "same": string(JSONPatch{op: "add", value: 1} == JSONPatch{op: "add", value: 1}),
        "different": string(JSONPatch{op: "add"} == JSONPatch{op: "remove"})}}]""", "JSONPatch", deployment())
    assert out["metadata"]["labels"] == {"op": "opValue", "path": "pathValue", "value": "valueValue",
                                         "op-set": "true", "op-unset": "false", "same": "true", "different": "false"}


def test_a_json_patch_result_is_decoded_strictly() -> None:
    from k8py.api import errors

    with pytest.raises(errors.StatusError) as e:
        run('[JSONPatch{op: "add", path: "/spec/template/spec/containers/-", value: '
            'Object.spec.template.spec.containers{name: "x", ports: '
            '[Object.spec.template.spec.containers.ports{containerPortZ: 8080}]}}]', "JSONPatch", deployment())
    assert (e.value.code, e.value.message) == (500, ('Internal error occurred: strict decoding error: unknown field '
                                                    '"spec.template.spec.containers[1].ports[0].containerPortZ"'))
    with pytest.raises(errors.StatusError) as e:
        run('[JSONPatch{op: "replace", path: "/spec/replicas", value: "three"}]', "JSONPatch", deployment())
    assert e.value.message == ("Internal error occurred: json: cannot unmarshal string into Go struct field "
                               "DeploymentSpec.spec.replicas of type int32")


def test_a_failing_expression_is_kubes_runtime_error() -> None:
    from k8py.api import cel

    with pytest.raises(cel.EvalError) as e:
        run('Object{metadata: Object.metadata{labels: {"x": object.metadata.annotations["a"]}}}',
            "ApplyConfiguration", deployment())
    assert str(e.value).startswith("expression 'Object{metadata: Object.metadata{labels: {\"x\": "
                                   "object.metadata.annotations[\"a\"]}}}' resulted in error: no such key")


def test_compile_policy_keeps_errors_for_the_failure_policy() -> None:
    cp = mp.compile_policy({"metadata": {"name": "p"}, "spec": {
        "reinvocationPolicy": "IfNeeded",
        "variables": [{"name": "v", "expression": "'x'"}],
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": "Object{}"}},
                      {"patchType": "JSONPatch", "jsonPatch": {"expression": "[JSONPatch{op: variables.w}]"}}]}})
    assert cp.reinvoke_if_needed and [m.program is not None for m in cp.mutations] == [True, False]
    assert cp.mutations[1].error.startswith("compilation failed: ERROR: <input>:1:25: undefined field 'w'")
    assert cp.error == cp.mutations[1].error


# --------------------------------------------------------------------------- validation and defaults


def policy(**spec: Any) -> Obj:
    base: Obj = {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                         "operations": ["CREATE"], "resources": ["pods"]}]},
                 "reinvocationPolicy": "Never",
                 "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": "Object{}"}}]}
    for k, v in spec.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    obj = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
           "metadata": {"name": "p.example.com"}, "spec": base}
    assert MAP is not None
    defaults.set_defaults(MAP, obj)
    return obj


def errs(obj: Obj) -> list[str]:
    assert MAP is not None and MAPB is not None
    kind = MAP if obj["kind"] == "MutatingAdmissionPolicy" else MAPB
    return [f"{e.field}: {e.message_body()}" for e in kinds.validate(kind, obj)]


def test_defaults_and_a_valid_policy() -> None:
    p = policy()
    assert p["spec"]["failurePolicy"] == "Fail"
    assert p["spec"]["matchConstraints"] == {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                                "operations": ["CREATE"], "resources": ["pods"],
                                                                "scope": "*"}],
                                             "matchPolicy": "Equivalent", "namespaceSelector": {},
                                             "objectSelector": {}}
    assert "reinvocationPolicy" in p["spec"] and errs(p) == []


@pytest.mark.parametrize(("spec", "want"), [
    ({"mutations": []}, "spec.mutations: Required value: mutations must contain at least one item"),
    ({"reinvocationPolicy": "Sometimes"},
     'spec.reinvocationPolicy: Unsupported value: "Sometimes": supported values: "IfNeeded", "Never"'),
    ({"mutations": [{"patchType": "Merge"}]},
     'spec.mutations[0].patchType: Unsupported value: "Merge": supported values: "ApplyConfiguration", "JSONPatch"'),
    ({"mutations": [{"applyConfiguration": {"expression": "Object{}"}}]}, "spec.mutations[0].patchType: Required value"),
    ({"mutations": [{"patchType": "ApplyConfiguration"}]},
     "spec.mutations[0].applyConfiguration: Required value: must be specified when patchType is ApplyConfiguration"),
    ({"mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": "  "}}]},
     "spec.mutations[0].jsonPatch.expression: Required value"),
    ({"mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": "Object{}"},
                     "jsonPatch": {"expression": "[]"}}]},
     ("spec.mutations[0].jsonPatch: Invalid value: {jsonPatch}: must not be specified when patchType is "
     "ApplyConfiguration")),
    ({"mutations": [{"patchType": "ApplyConfiguration",
                     "applyConfiguration": {"expression": "Object{metadata: variables.meta}"}}]},
     ('spec.mutations[0].applyConfiguration.expression: Invalid value: "Object{metadata: variables.meta}": '
     "compilation failed: ERROR: <input>:1:27: undefined field 'meta'")),
    ({"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                              "operations": ["CREATE", "DELETE"], "resources": ["pods"]}]}},
     ('spec.matchConstraints.resourceRules.operations: Unsupported value: "DELETE": supported values: "*", '
     '"CONNECT", "CREATE", "UPDATE"')),
    ({"matchConstraints": {"resourceRules": []}}, "spec.matchConstraints.resourceRules: Required value"),
    ({"matchConditions": [{"name": "x", "expression": "variables.v"}]},
     'spec.matchConditions[0].expression: Invalid value: "variables.v": compilation failed:'),
])
def test_policy_validation(spec: Obj, want: str) -> None:
    got = errs(policy(**spec))
    assert any(g.startswith(want) for g in got), got


def test_binding_validation() -> None:
    b: Obj = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
              "metadata": {"name": "b"},
              "spec": {"policyName": "p.example.com",
                       "matchResources": {"resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"],
                                                             "operations": ["DELETE"], "resources": ["*"]}]}}}
    assert MAPB is not None
    defaults.set_defaults(MAPB, b)
    assert b["spec"]["matchResources"]["matchPolicy"] == "Equivalent"
    assert errs(b) == [('spec.matchResources.resourceRules.operations: Unsupported value: "DELETE": supported '
                       'values: "*", "CONNECT", "CREATE", "UPDATE"')]
    ok = copy.deepcopy(b)
    ok["spec"]["matchResources"]["resourceRules"][0]["operations"] = ["*"]
    ok["spec"]["paramRef"] = {"name": "x", "parameterNotFoundAction": "Allow"}
    assert errs(ok) == []
    bad = copy.deepcopy(ok)
    bad["spec"]["policyName"] = ""
    bad["spec"]["paramRef"] = {"parameterNotFoundAction": "Allow"}
    assert errs(bad) == ["spec.policyName: Required value",
                         "spec.paramRef: Required value: one of name or selector must be specified"]
