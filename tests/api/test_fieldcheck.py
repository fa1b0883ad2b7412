"""Body decoding and field validation, worded as kube-apiserver words them."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from k8py.api.errors import StatusError
from k8py.api.fieldcheck import (
    MAX_DEPTH,
    FieldValidation,
    base64_error,
    check,
    decode_body,
    parse_field_validation,
    quantity_error,
    type_errors,
    unknown_field_paths,
    unknown_fields,
)
from k8py.api.schema import SchemaNode, for_kind


def node(group: str, version: str, kind: str) -> SchemaNode:
    n = for_kind(group, version, kind)
    assert n is not None
    return n


DEPLOY = node("apps", "v1", "Deployment")
POD = node("", "v1", "Pod")
SECRET = node("", "v1", "Secret")
SERVICE = node("", "v1", "Service")


def deployment(**spec_extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "c",
                        "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": 0.5}},
                        "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    }],
                },
            },
            **spec_extra,
        },
    }


def bad_request(exc: pytest.ExceptionInfo[StatusError]) -> str:
    assert exc.value.code == 400 and exc.value.reason == "BadRequest"
    return exc.value.message


# --------------------------------------------------------------------------- decode_body: JSON


def test_json_duplicates_are_reported_with_paths_when_strict() -> None:
    raw = (b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","name":"b",'
           b'"labels":{"x":"1","x":"2"}},"spec":{"template":{"spec":{"containers":[{"name":"c"},'
           b'{"name":"d","image":"i","image":"j"}]}}}}')
    obj, dups = decode_body(raw, "application/json", True)
    assert obj["metadata"]["name"] == "b"  # last one wins, as in Go
    assert dups == ['duplicate field "metadata.name"', 'duplicate field "metadata.labels.x"',
                    'duplicate field "spec.template.spec.containers[1].image"']
    obj2, dups2 = decode_body(raw, "application/json", False)
    assert obj2 == obj and dups2 == []
    _, top = decode_body(b'{"kind":"A","kind":"B"}', "application/json; charset=utf-8", True)
    assert top == ['duplicate field "kind"']


@pytest.mark.parametrize(("raw", "go"), [
    (b"", "unexpected end of JSON input"),
    (b"{", "unexpected end of JSON input"),
    (b'{"a":"abc', "unexpected end of JSON input"),
    (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
    (b"[1,]", "invalid character ']' looking for beginning of value"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
    (b'{"a":[1 2]}', "invalid character '2' after array element"),
    (b'{"a":tru}', "invalid character '}' in literal true (expecting 'e')"),
    (b'{"a":1}{}', "invalid character '{' after top-level value"),
    (b'{"a":NaN}', "invalid character 'N' looking for beginning of value"),
    (b"{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
    (b'{"a":"x\ny"}', "invalid character '\\n' in string literal"),
    (b'{"a":"\\x"}', "invalid character 'x' in string escape code"),
    (b"apiVersion: v1", "invalid character 'a' looking for beginning of value"),
])
def test_json_syntax_errors_use_go_wording(raw: bytes, go: str) -> None:
    for strict in (True, False):
        with pytest.raises(StatusError) as exc:
            decode_body(raw, "application/json", strict)
        assert bad_request(exc) == f"couldn't get version/kind; json parse error: {go}"


def test_json_syntax_error_with_kind_is_worded_like_create() -> None:
    raw = b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":{'
    with pytest.raises(StatusError) as exc:
        decode_body(raw, "application/json", True, kind="Deployment")
    assert bad_request(exc) == ("the object provided is unrecognized (must be of type Deployment): couldn't get "
                                "version/kind; json parse error: unexpected end of JSON input "
                                '({"apiVersion":"apps/v1","kind" ...)')
    with pytest.raises(StatusError) as exc:
        decode_body(b"[1]", "application/json", True, kind="Pod")
    assert bad_request(exc) == (
        "the object provided is unrecognized (must be of type Pod): couldn't get version/kind; json parse error: "
        'json: cannot unmarshal array into Go value of type struct { APIVersion string "json:\\"apiVersion,'
        'omitempty\\""; Kind string "json:\\"kind,omitempty\\"" } (5b315d)')


def test_json_patch_bodies_may_be_arrays_and_null_is_empty() -> None:
    ops, _ = decode_body(b'[{"op":"add","path":"/a","value":1}]', "application/json-patch+json", True)
    assert ops == [{"op": "add", "path": "/a", "value": 1}]
    with pytest.raises(StatusError) as exc:
        decode_body(b"[1,", "application/json-patch+json", True)
    assert bad_request(exc) == "unexpected end of JSON input"
    assert decode_body(b"null", "application/json", True) == ({}, [])
    assert decode_body(b'{"a":1}', "", True) == ({"a": 1}, [])  # no Content-Type means JSON
    merge, _ = decode_body(b'{"spec":{"replicas":null}}', "application/merge-patch+json", True)
    assert merge == {"spec": {"replicas": None}}


def test_unsupported_media_type() -> None:
    with pytest.raises(StatusError) as exc:
        decode_body(b"\x0a\x02", "application/vnd.kubernetes.protobuf", True)
    assert exc.value.code == 415 and exc.value.reason == "UnsupportedMediaType"


# --------------------------------------------------------------------------- decode_body: YAML


def test_yaml_is_converted_like_sigs_yaml() -> None:
    raw = b"a: 2020-01-01\nb: 1.0\nc: 1.5\n1: x\ntrue: y\nd: yes\ne: ~\nf: '3'\n"
    obj, dups = decode_body(raw, "application/yaml", True)
    assert obj == {"a": "2020-01-01", "b": 1, "c": 1.5, "1": "x", "true": "y", "d": True, "e": None, "f": "3"}
    assert dups == []
    assert decode_body(b"", "application/yaml", True) == ({}, [])
    assert decode_body(b"---\na: 1\n", "application/yaml", True) == ({"a": 1}, [])


def test_yaml_duplicates_are_the_converters_error() -> None:
    raw = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\nspec:\n  x: 1\n  x: 2\n"
    obj, dups = decode_body(raw, "application/yaml", True)
    assert obj["metadata"]["name"] == "b"
    assert dups == [('error converting YAML to JSON: yaml: unmarshal errors:\n  line 5: key "name" already set in '
                    'map\n  line 8: key "x" already set in map')]
    assert decode_body(raw, "application/yaml", False)[1] == []


def test_yaml_errors() -> None:
    with pytest.raises(StatusError) as exc:
        decode_body(b"a: b: c\n", "application/yaml", True, kind="Pod")
    assert bad_request(exc) == ("the object provided is unrecognized (must be of type Pod): error converting YAML "
                                "to JSON: yaml: line 1: mapping values are not allowed in this context "
                                "(613a20623a20630a)")
    with pytest.raises(StatusError) as exc:
        decode_body(b"a: 1\n---\nb: 2\n", "application/yaml", True)
    assert "more than one YAML document" in bad_request(exc)
    with pytest.raises(StatusError) as exc:
        decode_body(b"- a\n- b\n", "application/yaml", True)
    assert "cannot unmarshal array into Go value" in bad_request(exc)


def test_apply_patch_yaml_accepts_json() -> None:
    obj, dups = decode_body(b'{"apiVersion":"v1","kind":"ConfigMap","data":{"a":"1","a":"2"}}',
                            "application/apply-patch+yaml", True)
    assert obj["data"] == {"a": "2"}
    assert dups and "key \"a\" already set in map" in dups[0]
    for ct in ("text/yaml", "application/yml", "application/yaml; charset=utf-8"):
        assert decode_body(b"a: 1\n", ct, True) == ({"a": 1}, [])


# --------------------------------------------------------------------------- unknown fields


def test_unknown_fields_with_list_indexes() -> None:
    d = deployment(foo=1)
    d["spec"]["template"]["spec"]["containers"][0]["bar"] = {"x": 1}
    d["spec"]["template"]["spec"]["containers"].append({"name": "d", "image": "i", "ports": [{"zzz": 1}]})
    d["metadata"]["Name"] = "case matters"
    d["top"] = True
    assert unknown_fields(d, DEPLOY) == [
        'unknown field "metadata.Name"',
        'unknown field "spec.template.spec.containers[0].bar"',
        'unknown field "spec.template.spec.containers[1].ports[0].zzz"',
        'unknown field "spec.foo"',  # document order: foo comes after template here
        'unknown field "top"',
    ]


def test_maps_and_free_form_places_take_anything() -> None:
    d = deployment()
    d["metadata"]["labels"]["any.key/x"] = "v"
    d["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
                                       "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    assert unknown_field_paths(d, DEPLOY) == []
    rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"}, "revision": 1,
           "data": {"spec": {"anything": {"goes": [1, 2]}}}}
    assert unknown_fields(rev, node("apps", "v1", "ControllerRevision")) == []
    assert unknown_fields({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "status": {"phase": "Running"}},
                          POD) == []


# --------------------------------------------------------------------------- type errors


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["spec"].__setitem__("replicas", "three"),
     "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (lambda d: d["spec"].__setitem__("replicas", 1.5),
     "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (lambda d: d["spec"].__setitem__("replicas", 3_000_000_000),
     "json: cannot unmarshal number 3000000000 into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (lambda d: d["spec"].__setitem__("replicas", True),
     "json: cannot unmarshal bool into Go struct field DeploymentSpec.spec.replicas of type int32"),
    (lambda d: d["spec"]["template"]["spec"].__setitem__("containers", {}),
     ("json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers of type "
     "[]v1.Container")),
    (lambda d: d["spec"]["template"]["spec"].__setitem__("containers", ["x"]),
     ("json: cannot unmarshal string into Go struct field PodSpec.spec.template.spec.containers of type "
     "v1.Container")),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("name", 5),
     ("json: cannot unmarshal number into Go struct field Container.spec.template.spec.containers.name of type "
     "string")),
    (lambda d: d["metadata"]["labels"].__setitem__("n", 1),
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
    (lambda d: d["metadata"].__setitem__("labels", ["a"]),
     "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels of type map[string]string"),
    (lambda d: d.__setitem__("spec", "x"),
     "json: cannot unmarshal string into Go struct field Deployment.spec of type v1.DeploymentSpec"),
    (lambda d: d["spec"].__setitem__("paused", "yes"),
     "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.paused of type bool"),
    # custom decoders
    (lambda d: d["spec"]["strategy"]["rollingUpdate"].__setitem__("maxSurge", True),
     ("json: cannot unmarshal bool into Go struct field RollingUpdateDeployment.spec.strategy.rollingUpdate.maxSurge"
     " of type int32")),
    (lambda d: d["spec"]["strategy"]["rollingUpdate"].__setitem__("maxSurge", 1.5),
     ("json: cannot unmarshal number 1.5 into Go struct field RollingUpdateDeployment.spec.strategy.rollingUpdate."
     "maxSurge of type int32")),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].__setitem__("cpu", "abc"),
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].__setitem__("cpu", "1Qi"),
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].__setitem__("cpu", "1kk"),
     "unable to parse quantity's suffix"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].__setitem__("cpu", {}),
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    (lambda d: d["metadata"].__setitem__("creationTimestamp", "yesterday"),
     'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"'),
    (lambda d: d["metadata"].__setitem__("creationTimestamp", 5),
     "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.creationTimestamp of type string"),
])
def test_type_errors_are_worded_like_go(mutate: Any, message: str) -> None:
    d = deployment()
    mutate(d)
    assert type_errors(d, DEPLOY)[0] == message
    for mode in FieldValidation:
        with pytest.raises(StatusError) as exc:
            check(d, DEPLOY, mode, kind="Deployment", version="v1")
        assert bad_request(exc) == f'Deployment in version "v1" cannot be handled as a Deployment: {message}'


def test_valid_values_pass() -> None:
    d = deployment()
    d["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 2, "maxUnavailable": "10%"}
    limits = d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    limits.update({"cpu": 2, "memory": "1.5Gi", "ephemeral-storage": "1e3", "x": "-1.5m", "y": " 5 "})
    d["metadata"]["creationTimestamp"] = "2024-01-02T03:04:05Z"
    d["metadata"]["deletionTimestamp"] = None
    d["spec"]["replicas"] = None
    d["spec"]["minReadySeconds"] = 2**31 - 1
    d["metadata"]["generation"] = 2**40
    assert type_errors(d, DEPLOY) == []
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}]}}
    assert type_errors(svc, SERVICE) == []


def test_secret_data_must_be_base64() -> None:
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
           "data": {"ok": "aGVsbG8=", "ok2": "aGk=", "bad": "not base64!"}}
    assert type_errors(sec, SECRET) == ["illegal base64 data at input byte 3"]
    sec["data"] = {"n": 5}
    assert type_errors(sec, SECRET) == [
        "json: cannot unmarshal number into Go struct field Secret.data of type []uint8"]
    sec["data"] = {}
    sec["stringData"] = {"plain": "anything at all"}
    assert type_errors(sec, SECRET) == []


def test_a_custom_decoder_error_stops_the_decoder_and_wins() -> None:
    # Go saves the first plain type error and goes on; a custom UnmarshalJSON error aborts at once.
    d = deployment()
    d["spec"]["replicas"] = "three"
    d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "abc"
    errs = type_errors(d, DEPLOY)
    assert errs[0].startswith("quantities must match")
    assert errs[1] == "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"


def test_quantity_and_base64_helpers() -> None:
    for ok in ("0", "1", "100m", "1.5Gi", "1e3", "1E-3", "+5", "-0.5", ".5", "5.", "1Ki", "2Ei", "3n"):
        assert quantity_error(ok) is None, ok
    assert quantity_error("") is not None
    assert quantity_error("1.2.3") is not None
    assert quantity_error("1kk") == "unable to parse quantity's suffix"
    assert quantity_error("Mi") is not None
    assert base64_error("") is None
    assert base64_error("aGVsbG8=") is None
    assert base64_error("aGVs\nbG8=") is None
    assert base64_error("abc") == "illegal base64 data at input byte 0"
    assert base64_error("aGVsbG8") == "illegal base64 data at input byte 4"
    assert base64_error("aG$s") == "illegal base64 data at input byte 2"


# --------------------------------------------------------------------------- check


def test_check_modes() -> None:
    d = deployment(foo=1)
    dups = ['duplicate field "metadata.name"']
    with pytest.raises(StatusError) as exc:
        check(d, DEPLOY, FieldValidation.STRICT, duplicates=dups)
    assert bad_request(exc) == 'strict decoding error: duplicate field "metadata.name", unknown field "spec.foo"'
    with pytest.raises(StatusError) as exc:
        check(d, DEPLOY, "Strict", kind="Deployment", version="v1")
    assert bad_request(exc) == ('Deployment in version "v1" cannot be handled as a Deployment: strict decoding '
                                'error: unknown field "spec.foo"')
    assert check(d, DEPLOY, "Warn", dups) == ['duplicate field "metadata.name"',
                                                         'unknown field "spec.foo"']
    assert check(d, DEPLOY, FieldValidation.IGNORE, duplicates=dups) == []
    assert check(deployment(), DEPLOY, "Strict") == []


def test_parse_field_validation() -> None:
    assert parse_field_validation(None) is FieldValidation.WARN
    assert parse_field_validation("") is FieldValidation.WARN
    assert parse_field_validation("Strict") is FieldValidation.STRICT
    assert parse_field_validation("Ignore") is FieldValidation.IGNORE
    with pytest.raises(StatusError) as exc:
        parse_field_validation("strict", "PatchOptions")
    assert exc.value.code == 422
    assert exc.value.message == ('PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: '
                                 '"strict": supported values: "", "Ignore", "Strict", "Warn"')


def test_check_is_fast() -> None:
    d = deployment()
    raw = orjson.dumps(d)
    obj, dups = decode_body(raw, "application/json", True)
    check(obj, DEPLOY, "Strict", duplicates=dups)  # warm the compiled schema
    t0 = time.perf_counter()
    for _ in range(500):
        obj, dups = decode_body(raw, "application/json", True)
        check(obj, DEPLOY, "Strict", duplicates=dups)
    per_call = (time.perf_counter() - t0) / 500
    assert per_call < 0.002, per_call  # ~50 µs here; generous for slow CI machines


# ---- base64 ([]byte fields: Secret data, ConfigMap binaryData), as Go's base64.StdEncoding decodes


@pytest.mark.parametrize(("text", "error"), [
    ("eHl6", None),  # no padding
    ("eHk=", None),  # one '='
    ("eA==", None),  # two '=' (kubectl create secret --from-literal=a=x)
    ("eHl6eA==", None),
    ("eA=\n=", None),  # Go skips \r and \n anywhere, padding included
    ("e\r\nA==\n", None),
    ("eB==", None),  # non-zero trailing bits: StdEncoding is not strict
    ("", None),
    ("eA=", 3),  # not enough padding: the offset is the length
    ("eA", 0),  # unpadded final quantum: its first byte
    ("eA\n", 1),  # ...counted as Go counts it (newlines skipped but not subtracted)
    ("eA=x", 2),  # incorrect padding: the byte before
    ("eA===", 4),  # trailing garbage after the padding
    ("eA==eA==", 4),
    ("eHk=a", 4),
    ("=", 0),
    ("eHl6=", 4),  # padding at the start of a quantum
    ("eHl6e===", 5),  # ...or after one character
    ("eA$=", 2),
    ("\u00e9A==", 0),
    ("eH\u00e9A", 2),  # offsets are in bytes
    ("aGVsbG8", 4),
])
def test_base64_as_go(text: str, error: int | None) -> None:
    assert base64_error(text) == (None if error is None else f"illegal base64 data at input byte {error}")


def test_padded_secret_and_binary_data_are_accepted() -> None:
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eHk="}}
    assert type_errors(sec, SECRET) == []
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "binaryData": {"a": "eA=="}}
    assert type_errors(cm, node("", "v1", "ConfigMap")) == []
    sec["data"]["c"] = "eA=x"
    with pytest.raises(StatusError) as ei:
        check(sec, SECRET, "Strict", kind="Secret", version="v1")
    assert ei.value.message == ('Secret in version "v1" cannot be handled as a Secret: '
                                "illegal base64 data at input byte 2")


# ---- nesting depth: Go's decoders refuse more than 10000 levels; k8py refuses more than MAX_DEPTH


def test_json_deeper_than_go_allows_is_gos_error() -> None:
    raw = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for strict in (False, True):
        with pytest.raises(StatusError) as ei:
            decode_body(raw, "application/json", strict, kind="ConfigMap")
        assert (ei.value.code, ei.value.reason) == (400, "BadRequest")
        assert ei.value.message == ("the object provided is unrecognized (must be of type ConfigMap): couldn't get "
                                    "version/kind; json parse error: invalid character '[' exceeded max depth "
                                    '({"a":[[[[[[[[[[[[[[[[[[[[[[[[[ ...)')
    with pytest.raises(StatusError) as ei:
        decode_body(b"[" * 10_001, "application/json-patch+json", True)
    assert ei.value.message == "invalid character '[' exceeded max depth"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 10_000])
def test_json_deeper_than_k8py_allows(depth: int) -> None:
    raw = b"{" + b'"a":{' * (depth - 1) + b"}" * depth
    for strict in (False, True):
        with pytest.raises(StatusError) as ei:
            decode_body(raw, "application/json", strict, kind="ConfigMap")
        assert ei.value.code == 400
        assert ei.value.message == (f"the request body is nested {depth} levels deep; k8py accepts at most "
                                    f"{MAX_DEPTH} levels of objects and arrays")


def test_depth_at_the_limit_and_brackets_in_strings_are_fine() -> None:
    raw = b"{" + b'"a":{' * (MAX_DEPTH - 1) + b"}" * MAX_DEPTH
    assert decode_body(raw, "application/json", True)[0]["a"]
    assert decode_body(b'{"a":"' + b"[{" * 5000 + b'"}', "application/json", True)[0]["a"].startswith("[{")


def test_yaml_depth() -> None:
    with pytest.raises(StatusError) as ei:
        decode_body(b"a: " + b"[" * 100_000 + b"]" * 100_000, "application/yaml", True, kind="ConfigMap")
    assert ei.value.code == 400
    assert ei.value.message.startswith("the object provided is unrecognized (must be of type ConfigMap): error "
                                       "converting YAML to JSON: yaml: line 1: exceeded max depth of 10000 (")
    with pytest.raises(StatusError) as ei:
        decode_body(b"a: " + b"[" * 500 + b"]" * 500, "application/yaml", True)
    assert ei.value.message == (f"the request body is nested 501 levels deep; k8py accepts at most {MAX_DEPTH} "
                                "levels of objects and arrays")
    block = "".join(f"{'  ' * i}k:\n" for i in range(300)).encode() + b"  " * 300 + b"v\n"
    with pytest.raises(StatusError) as ei:
        decode_body(block, "application/yaml", True)
    assert ei.value.code == 400 and "nested 300 levels" in ei.value.message


def test_yaml_alias_cycles_and_expansion() -> None:
    for raw in (b"a: &x [*x]\n", b"a: &x {b: [1, *x]}\n"):
        with pytest.raises(StatusError) as ei:
            decode_body(raw, "application/yaml", True)
        assert ei.value.message == "error converting YAML to JSON: yaml: anchor 'x' value contains itself"
    laughs = b"a: &a [" + b",".join([b"x"] * 10) + b"]\n"
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        laughs += f"{name}: &{name} [{','.join(['*' + prev] * 10)}]\n".encode()
    with pytest.raises(StatusError) as ei:
        decode_body(laughs, "application/yaml", True)
    assert ei.value.message == "error converting YAML to JSON: yaml: document contains excessive aliasing"
    # aliases that expand to more nesting than allowed
    deep = b"a: &a " + b"[" * 150 + b"]" * 150 + b"\nb: " + b"[" * 100 + b"*a" + b"]" * 100 + b"\n"
    with pytest.raises(StatusError) as ei:
        decode_body(deep, "application/yaml", True)
    assert ei.value.code == 400 and "k8py accepts at most" in ei.value.message
    obj, _ = decode_body(b"a: &a {x: 1}\nb: *a\nc: [*a, *a]\n", "application/yaml", True)
    assert obj == {"a": {"x": 1}, "b": {"x": 1}, "c": [{"x": 1}, {"x": 1}]}


def test_typed_walk_is_bounded() -> None:
    # a recursive schema (JSONSchemaProps) nested past the limit, reaching check() without decode_body
    crd_schema: dict[str, Any] = {"type": "object"}
    for _ in range(MAX_DEPTH):
        crd_schema = {"type": "object", "properties": {"x": crd_schema}}
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "a"},
           "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": crd_schema}}]}}
    with pytest.raises(StatusError) as ei:
        type_errors(crd, node("apiextensions.k8s.io", "v1", "CustomResourceDefinition"))
    assert ei.value.code == 400 and "k8py accepts at most" in ei.value.message
