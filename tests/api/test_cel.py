"""CRD validation rules (``x-kubernetes-validations``, CEL): compiled when the CRD is written
(kube's texts), evaluated on custom resources at every node, transition rules on updates only."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from k8py.api import cel, crd
from k8py.api.errors import FieldError
from k8py.api.validation import apiextensions

Obj = dict[str, Any]
ROOT = "spec.validation.openAPIV3Schema"


def strs(errs: list[FieldError]) -> list[str]:
    return [str(e) for e in errs]


def node(*rules: Obj, **props: Obj) -> Obj:
    return {"type": "object", "properties": props, "x-kubernetes-validations": list(rules)}


def compile_errors(*rules: Obj, **props: Obj) -> list[str]:
    return strs(cel.rule_errors(node(*rules, **props), ROOT, None, False))


INT: Obj = {"type": "integer"}
STR: Obj = {"type": "string"}


# -- when the CRD is written -----------------------------------------------------------------------


def test_a_rule_that_does_not_compile_makes_the_crd_invalid_with_kubes_text() -> None:
    got = compile_errors({"rule": "self.a +"}, a=INT)
    assert got == [
        (f"{ROOT}.x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{{Rule:\"self.a +\", "
        'Message:"", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", '
        "OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:9: Syntax error: mismatched input "
        "'<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, "
        "STRING, BYTES, IDENTIFIER}\n | self.a +\n | ........^")]
    got = compile_errors({"rule": "self.a.frobnicate()"}, a=INT)
    assert len(got) == 1 and "compilation failed: ERROR: <input>:1:18: undeclared reference to 'frobnicate'" in got[0]
    assert compile_errors({"rule": "self.a"}, a=INT) == []  # a dyn field may be a bool: checked when it runs
    got = compile_errors({"rule": "self.size()"}, a=INT)
    assert got[0].endswith("}: cel expression must evaluate to a bool")
    got = compile_errors({"rule": "true", "messageExpression": "1 + 1"})
    assert got[0].startswith(f"{ROOT}.x-kubernetes-validations[0].messageExpression: Invalid value: ")
    assert got[0].endswith(": messageExpression must evaluate to a string")
    got = compile_errors({"rule": "true", "messageExpression": "'a' +"})
    assert "messageExpression compilation failed: ERROR: <input>:1:6:" in got[0]


def test_fields_the_schema_does_not_have_fail_compilation() -> None:
    props = {"a": INT, "items": {"type": "array", "items": {"type": "object", "properties": {"x": STR}}},
             "m": {"type": "object", "additionalProperties": {"type": "object", "properties": {"y": STR}}},
             "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    got = compile_errors({"rule": "self.a == 1 && has(self.b)"}, **props)
    assert got[0].endswith("}: compilation failed: ERROR: <input>:1:19: undefined field 'b'\n"
                           " | self.a == 1 && has(self.b)\n | ..................^")
    got = compile_errors({"rule": "self.items.all(i, i.x == 'a') &&\n self.m.all(k, self.m[k].z == '')",
                          "message": "m"}, **props)
    assert got[0].endswith("compilation failed: ERROR: <input>:2:25: undefined field 'z'\n"
                           " |  self.m.all(k, self.m[k].z == '')\n | ........................^")
    got = compile_errors({"rule": "true", "messageExpression": "self.nope"}, **props)
    assert "messageExpression compilation failed: ERROR: <input>:1:5: undefined field 'nope'" in got[0]
    # what the schema leaves open is not checked; the root has apiVersion, kind and metadata
    # (name and generateName only, as kube's)
    assert compile_errors({"rule": "self.free.anything == 1 && self.m['k'].y == ''"}, **props) == []
    root = {"type": "object", "properties": props}
    assert cel.rule_errors({**root, "x-kubernetes-validations": [{"rule": "self.metadata.name != self.kind"}]},
                           ROOT, None, False, root=True) == []
    got = strs(cel.rule_errors({**root, "x-kubernetes-validations": [{"rule": "has(self.metadata.labels)"}]},
                               ROOT, None, False, root=True))
    assert "undefined field 'labels'" in got[0]


def test_rule_fields_are_checked() -> None:
    p = f"{ROOT}.x-kubernetes-validations[0]"
    assert compile_errors({"rule": " "}) == [f"{p}.rule: Required value: rule is not specified"]
    assert compile_errors({"rule": "true", "reason": "Nope"}) == [
        (f'{p}.reason: Unsupported value: "Nope": supported values: "FieldValueDuplicate", "FieldValueForbidden", '
        '"FieldValueInvalid", "FieldValueRequired"')]
    assert compile_errors({"rule": "true", "fieldPath": ".b"}, a=INT) == [
        f'{p}.fieldPath: Invalid value: ".b": must be a valid path']
    assert compile_errors({"rule": "true", "fieldPath": ".a"}, a=INT) == []
    assert compile_errors({"rule": "true\n&& true"}) == [
        f"{p}.message: Required value: message must be specified if rule contains line breaks"]
    assert compile_errors({"rule": "true", "message": "a\nb"}) == [
        f'{p}.message: Invalid value: "a\\nb": must not contain line breaks']
    assert compile_errors({"rule": "true", "optionalOldSelf": True}) == [
        f"{p}.optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule"]


def test_old_self_is_refused_under_lists_whose_items_cannot_be_matched() -> None:
    schema = {"type": "object", "properties": {
        "atomic": {"type": "array", "items": {"type": "object", "properties": {"k": STR},
                                              "x-kubernetes-validations": [{"rule": "self.k == oldSelf.k"}]}},
        "keyed": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
                  "items": {"type": "object", "required": ["k"], "properties": {"k": STR, "v": STR},
                            "x-kubernetes-validations": [{"rule": "self.v == oldSelf.v"}]}}}}
    got = strs(crd.structural_errors(schema, ROOT))
    assert got == [(f'{ROOT}.properties[atomic].items.x-kubernetes-validations[0].rule: Invalid value: '
                   f'"self.k == oldSelf.k": oldSelf cannot be used on the uncorrelatable portion of the schema '
                   f"within {ROOT}.properties[atomic]")]


def test_rules_compile_only_when_the_schema_under_them_is_valid() -> None:
    # kube skips compiling where the schema itself has errors (their messages would not help)
    schema = {"type": "object", "properties": {"a": {"type": "array"}},
              "x-kubernetes-validations": [{"rule": "self.a +"}]}
    assert strs(crd.structural_errors(schema, ROOT)) == [f"{ROOT}.properties[a].items: Required value: must be specified"]


def test_field_paths() -> None:
    s = {"type": "object", "properties": {"m": {"type": "object", "additionalProperties": {
        "type": "object", "properties": {"x": STR}}}, "a": {"type": "object", "properties": {"b": STR}}}}
    assert cel.valid_field_path(".a.b", s) == "a.b"
    assert cel.valid_field_path(".m['k.1'].x", s) == "m[k.1].x"
    assert cel.valid_field_path("['a'].b", s) == "a.b"
    for bad in (".a.c", "a.b", ".a[", ".a.b.c"):
        with pytest.raises(ValueError):
            cel.valid_field_path(bad, s)


# -- on custom resources ---------------------------------------------------------------------------

SCHEMA: Obj = {"type": "object", "properties": {"spec": {
    "type": "object",
    "x-kubernetes-validations": [
        {"rule": "self.replicas <= self.maxReplicas", "message": "replicas must not exceed maxReplicas"},
        {"rule": "self.name == oldSelf.name", "message": "name is immutable", "reason": "FieldValueForbidden",
         "fieldPath": ".name"},
        {"rule": "!has(self.mode) || self.mode in ['a', 'b']",
         "messageExpression": "'mode ' + self.mode + ' is not one of a, b'"},
        {"rule": "self.maxReplicas >= 1"},
    ],
    "properties": {
        "replicas": INT, "maxReplicas": INT, "name": STR, "mode": STR, "ratio": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [
            {"rule": "self.lowerAscii() == self", "message": "must be lower case"}]}},
        "limits": {"type": "object", "additionalProperties": {"type": "string", "x-kubernetes-validations": [
            {"rule": "isQuantity(self) && quantity(self).isLessThan(quantity('1Gi'))"}]}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "required": ["name"],
                            "properties": {"name": STR, "port": {"x-kubernetes-int-or-string": True}},
                            "x-kubernetes-validations": [
                                {"rule": "self.port == oldSelf.port", "message": "port is immutable"},
                                {"rule": "self.port > 0"}]}},
    }}}}


def run(obj: Obj, old: Obj | None = None, schema: Obj = SCHEMA) -> list[str]:
    v = crd.rules_validator(schema)
    assert v is not None
    return strs(crd.rule_errors(v, obj, old, crd.validate(obj, schema)))


def spec(**kw: Any) -> Obj:
    return {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"replicas": 1, "maxReplicas": 2, "name": "n", **kw}}


def test_rules_pass_and_fail_with_their_messages() -> None:
    assert run(spec()) == []
    assert run(spec(replicas=3)) == ['spec: Invalid value: "object": replicas must not exceed maxReplicas']
    assert run(spec(mode="c")) == ['spec: Invalid value: "object": mode c is not one of a, b']
    assert run(spec(maxReplicas=0, replicas=0)) == ['spec: Invalid value: "object": failed rule: self.maxReplicas >= 1']


def test_rules_under_items_and_additional_properties_run_per_element() -> None:
    assert run(spec(tags=["a", "B", "c", "D"])) == ['spec.tags[1]: Invalid value: "string": must be lower case',
                                                    'spec.tags[3]: Invalid value: "string": must be lower case']
    got = run(spec(limits={"small": "10Mi", "big": "2Gi", "junk": "x"}))
    assert got == [('spec.limits[big]: Invalid value: "string": failed rule: '
                   "isQuantity(self) && quantity(self).isLessThan(quantity('1Gi'))"),
                   ('spec.limits[junk]: Invalid value: "string": failed rule: '
                   "isQuantity(self) && quantity(self).isLessThan(quantity('1Gi'))")]


def test_transition_rules_run_on_updates_where_an_old_value_corresponds() -> None:
    assert run(spec(name="other")) == []  # a create: no oldSelf
    assert run(spec(name="other"), spec()) == ["spec.name: Forbidden: name is immutable"]
    old = spec(ports=[{"name": "http", "port": 80}])
    # the item with the same key is compared; a new item has no old value
    assert run(spec(ports=[{"name": "http", "port": 81}, {"name": "dns", "port": 53}]), old) == [
        'spec.ports[0]: Invalid value: "object": port is immutable']
    assert run(spec(ports=[{"name": "dns", "port": 53}, {"name": "http", "port": 80}]), old) == []


def test_set_and_map_lists_compare_regardless_of_order() -> None:
    keyed = {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
             "items": {"type": "object", "required": ["k"], "properties": {"k": STR, "v": INT}}}
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": STR,
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "set is immutable"}]},
        "atomic": {"type": "array", "items": STR,
                   "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "atomic is immutable"}]},
        "keyed": {**keyed, "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "keyed is immutable"}]},
    }}}}
    old = {"spec": {"set": ["a", "b"], "atomic": ["a", "b"], "keyed": [{"k": "x", "v": 1}, {"k": "y", "v": 2}]}}
    new = {"spec": {"set": ["b", "a"], "atomic": ["b", "a"], "keyed": [{"k": "y", "v": 2}, {"k": "x", "v": 1}]}}
    assert run(new, old, schema=schema) == ['spec.atomic: Invalid value: "array": atomic is immutable']
    new = {"spec": {"set": ["b", "c"], "atomic": ["a", "b"], "keyed": [{"k": "y", "v": 2}, {"k": "x", "v": 3}]}}
    assert run(new, old, schema=schema) == ['spec.set: Invalid value: "array": set is immutable',
                                            'spec.keyed: Invalid value: "array": keyed is immutable']


def test_rules_ratchet_on_values_an_update_leaves_unchanged() -> None:
    """kube's validation ratcheting: a rule (added after the object was written) that fails on a
    value the update does not change is a warning, not an error; transition rules always run."""
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "a": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 3", "message": "a too long"}]},
        "b": INT,
        "items": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [
            {"rule": "self != 'bad'", "message": "bad item"}]}},
        "c": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "c is immutable"},
                                                             {"rule": "self != 'x'", "message": "not x"}]},
    }}}}
    old = {"spec": {"a": "long", "b": 1, "items": ["bad", "ok"], "c": "x"}}

    def update(new: Obj) -> tuple[list[str], list[str]]:
        ratcheted: list[FieldError] = []
        v = crd.rules_validator(schema)
        errs = crd.rule_errors(v, new, old, crd.validate(new, schema), ratcheted)
        return strs(errs), strs(ratcheted)

    # only b changes: what fails elsewhere is unchanged
    assert update({"spec": {"a": "long", "b": 2, "items": ["bad", "ok"], "c": "x"}}) == (
        [], ['spec.a: Invalid value: "string": a too long', 'spec.items[0]: Invalid value: "string": bad item',
             'spec.c: Invalid value: "string": not x'])
    # a changed (still too long): an error; items of an atomic list changed: the list is the
    # nearest value with an old one, so a failing item is an error too
    errs, warned = update({"spec": {"a": "longer", "b": 1, "items": ["bad", "ok", "new"], "c": "x"}})
    assert errs == ['spec.a: Invalid value: "string": a too long', 'spec.items[0]: Invalid value: "string": bad item']
    assert warned == ['spec.c: Invalid value: "string": not x']
    # nothing ratchets on a create
    v = crd.rules_validator(schema)
    assert len(crd.rule_errors(v, old, None, [], [])) == 3


def test_runtime_errors_are_field_errors() -> None:
    # an int-or-string compared with an int: no such overload when it is a string
    got = run(spec(ports=[{"name": "http", "port": "web"}]))
    assert got == [('spec.ports[0]: Invalid value: "object": \'no such overload\': call arguments did not match a '
                   "supported operator, function or macro signature for rule: self.port > 0")]
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": INT, "b": INT},
                                                        "x-kubernetes-validations": [{"rule": "self.a == self.b"}]}}}
    assert run({"spec": {"a": 1}}, schema=schema) == [
        'spec: Invalid value: "object": no such key: b evaluating rule: self.a == self.b']


def test_rules_do_not_run_on_an_object_of_the_wrong_types() -> None:
    got = run(spec(replicas="three"))
    assert got[-1] == ('<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
                       "correct the existing errors to complete validation")


def test_a_rule_at_the_root_fails_at_kubes_nil_path() -> None:
    schema = {"type": "object", "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('w-')"},
                                                             {"rule": "has(self.spec)", "fieldPath": ".spec",
                                                              "reason": "FieldValueRequired"}],
              "properties": {"spec": {"type": "object", "properties": {"a": INT}}}}
    assert run({"metadata": {"name": "x"}}, schema=schema) == [
        "<nil>: Invalid value: \"object\": failed rule: self.metadata.name.startsWith('w-')",
        "spec: Required value: failed rule: has(self.spec)"]


def test_optional_old_self() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"v": INT},
                                                        "x-kubernetes-validations": [{
                                                            "rule": "!oldSelf.hasValue() || self.v >= oldSelf.value().v",
                                                            "optionalOldSelf": True, "message": "v may only grow"}]}}}
    assert run({"spec": {"v": 1}}, schema=schema) == []
    assert run({"spec": {"v": 1}}, {"spec": {"v": 2}}, schema=schema) == ['spec: Invalid value: "object": v may only grow']
    assert run({"spec": {"v": 3}}, {"spec": {"v": 2}}, schema=schema) == []


@pytest.mark.parametrize("rule", [
    "self.s.startsWith('ab') && self.s.endsWith('yz') && self.s.contains('m') && self.s.matches('^a.*z$')",
    "self.l.all(x, x > 0) && self.l.exists(x, x == 2) && self.l.exists_one(x, x == 3)",
    "self.l.map(x, x * 2) == [2, 4, 6] && self.l.filter(x, x > 1).size() == 2 && size(self.l) == 3",
    "self.l.isSorted() && self.l.indexOf(2) == 1 && self.l.lastIndexOf(9) == -1 && self.l.sum() == 6",
    "self.l.min() == 1 && self.l.max() == 3",
    "sets.contains(self.l, [1, 3]) && !sets.contains(self.l, [4]) && sets.equivalent(self.l, [3, 2, 1, 1])",
    "sets.intersects(self.l, [0, 2]) && !sets.intersects(self.l, [5])",
    "self.s.split('m') == ['abcdefghijkl', 'nopqrstuvwxyz'] && ['a', 'b'].join('-') == 'a-b'",
    "self.s.indexOf('c') == 2 && self.s.substring(0, 3).upperAscii() == 'ABC' && self.s.charAt(1) == 'b'",
    "' x '.trim() == 'x' && 'aXa'.replace('a', 'b') == 'bXb' && 'ABC'.lowerAscii() == 'abc'",
    "int('12') == 12 && string(12) == '12' && double(self.r) == 1.0 && self.r == 1.0",
    "self.s.find('[d-f]+') == 'def' && 'a1b22'.findAll('[0-9]+') == ['1', '22']",
    "isURL('https://example.com:8443/p?q=1') && url('https://example.com:8443/p').getHost() == 'example.com:8443'",
    "url('https://example.com:8443/p').getScheme() == 'https' && url('https://example.com/p').getEscapedPath() == '/p'",
    "!isURL('not a url') && quantity('1500m').isGreaterThan(quantity('1')) && quantity('2').asInteger() == 2",
    "quantity('1Ki').compareTo(quantity('1024')) == 0 && quantity('1').add(quantity('2')).asInteger() == 3",
    "has(self.__namespace__) && self.__namespace__ == 'ns' && self.dashed__dash__name == 'd'",
    "isIP('10.0.0.1') && isIP('fe80::1') && !isIP('10.0.0.01') && !isIP('fe80::1%eth0') && !isIP('::ffff:1.2.3.4')",
    "ip('10.1.2.3').family() == 4 && ip('::1').isLoopback() && ip('fe80::1').isLinkLocalUnicast()",
    "ip('10.1.2.3').isGlobalUnicast() && !ip('0.0.0.0').isGlobalUnicast() && ip('224.0.0.1').isLinkLocalMulticast()",
    "ip.isCanonical('2001:db8::1') && !ip.isCanonical('2001:DB8::1') && ip('::').isUnspecified()",
    "isCIDR('10.0.0.0/8') && !isCIDR('10.0.0.0/33') && cidr('10.0.0.0/8').containsIP('10.1.2.3')",
    "cidr('10.0.0.0/8').containsIP(ip('10.1.2.3')) && !cidr('10.0.0.0/8').containsIP('11.0.0.1')",
    "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16') && !cidr('10.1.0.0/16').containsCIDR(cidr('10.0.0.0/8'))",
    "cidr('10.1.2.3/8').masked() == cidr('10.0.0.0/8') && cidr('10.1.2.3/8').prefixLength() == 8",
    "cidr('10.1.2.3/8').ip() == ip('10.1.2.3') && cidr('2001:db8::/32').ip().family() == 6",
    "cel.bind(x, self.l, x.size() == 3) && math.greatest(1, 5) == 5 && self.?missing.orValue(7) == 7",
    "duration('1h') > duration('30m') && timestamp('2024-01-01T00:00:00Z') < timestamp('2025-01-01T00:00:00Z')",
    "duration(self.d) > duration('1m') && timestamp(self.t) > timestamp('2020-01-01T00:00:00Z')",
    "self.metadata.name == 'n' && has(self.metadata.generateName) == false && self.kind == 'K'",
])
def test_the_library_kube_offers(rule: str) -> None:
    schema = {"type": "object", "x-kubernetes-validations": [{"rule": rule}], "properties": {
        "s": STR, "l": {"type": "array", "items": INT}, "r": {"type": "number"}, "namespace": STR,
        "dashed-name": STR, "d": {"type": "string", "format": "duration"},
        "t": {"type": "string", "format": "date-time"}}}
    assert cel.rule_errors(schema, ROOT, None, False, root=True) == []
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
           "s": "abcdefghijklmnopqrstuvwxyz", "l": [1, 2, 3], "r": 1, "namespace": "ns", "dashed-name": "d",
           "d": "1h30m", "t": "2024-05-01T10:00:00Z"}
    assert run(obj, schema=schema) == []


def test_temporal_formats_are_durations_and_timestamps_as_self() -> None:
    schema = {"type": "object", "properties": {
        "timeout": {"type": "string", "format": "duration", "x-kubernetes-validations": [
            {"rule": "self <= duration('1h')", "message": "at most an hour"}]},
        "at": {"type": "string", "format": "date-time", "x-kubernetes-validations": [
            {"rule": "self > timestamp('2020-01-01T00:00:00Z')", "message": "after 2020"}]},
        "day": {"type": "string", "format": "date", "x-kubernetes-validations": [
            {"rule": "self.getFullYear() >= 2020", "message": "2020 or later"}]}},
        # inside the object they are strings (the binding's limit): duration() reads them
        "x-kubernetes-validations": [{"rule": "!has(self.timeout) || duration(self.timeout) > duration('0s')"}]}
    assert cel.rule_errors(schema, ROOT, None, False, root=True) == []
    assert run({"timeout": "1h", "at": "2024-05-01T10:00:00Z", "day": "2021-02-03"}, schema=schema) == []
    assert run({"timeout": "1h30m", "at": "2019-05-01T10:00:00+02:00", "day": "2019-12-31"}, schema=schema) == [
        'timeout: Invalid value: "string": at most an hour', 'at: Invalid value: "string": after 2020',
        'day: Invalid value: "string": 2020 or later']
    got = run({"timeout": "soon"}, schema=schema)
    assert got[0].startswith('<nil>: Invalid value: "object": ') and len(got) == 2  # not a duration
    assert got[1].startswith('timeout: Invalid value: "string": ')


def test_an_unknown_function_fails_compilation() -> None:
    got = compile_errors({"rule": "self.s.semver().major() == 1"}, s=STR)
    assert "undeclared reference to 'semver'" in got[0]


@pytest.mark.parametrize(("template", "args", "want"), [
    ("%s has %d items", "['list', 3]", "list has 3 items"),
    ("%.2f / %f / %e", "[3.14159, 2, 1052.032911275]", "3.14 / 2.000000 / 1.052033e+03"),
    ("%x %X %o %b %%", "[255, 'hi', 8, 5]", "ff 6869 10 101 %"),
    ("%s %s %s", "[[1, 'a'], true, null]", '[1, "a"] true null'),
])
def test_string_format(template: str, args: str, want: str) -> None:
    schema = {"type": "object", "properties": {"s": STR}, "x-kubernetes-validations": [
        {"rule": "false", "messageExpression": f"'{template}'.format({args})"}]}
    assert run({"s": "x"}, schema=schema) == [f'<nil>: Invalid value: "object": {want}']


def test_the_binding_is_loaded_only_for_schemas_with_rules() -> None:
    code = ("import sys\n"
            "from k8py.api import crd\n"
            "s = {'type': 'object', 'properties': {'a': {'type': 'integer'}}}\n"
            "assert crd.structural_errors(s, 'x') == [] and crd.rules_validator(s) is None\n"
            "assert 'cel_expr_python' not in sys.modules, 'loaded'\n"
            "s['x-kubernetes-validations'] = [{'rule': 'self.a > 0'}]\n"
            "assert crd.rules_validator(s) is not None and 'cel_expr_python' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_where_a_crd_reports_rule_errors() -> None:
    """kube validates a schema every version shares once, as spec.validation (its internal form);
    versions with their own schemas are reported per version."""

    def crd_with(*schemas: Obj) -> Obj:
        obj: Obj = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {"name": "widgets.example.com"},
                    "spec": {"group": "example.com", "scope": "Namespaced",
                             "names": {"plural": "widgets", "kind": "Widget"},
                             "versions": [{"name": f"v{i + 1}", "served": True, "storage": i == 0,
                                           "schema": {"openAPIV3Schema": s}} for i, s in enumerate(schemas)]}}
        apiextensions.set_defaults(obj)
        return obj

    bad = {"type": "object", "properties": {"a": INT}, "x-kubernetes-validations": [{"rule": "self.b == 1"}]}
    good = {"type": "object", "properties": {"a": INT}}
    got = strs(apiextensions.validate_crd(crd_with(bad, bad)))
    assert len(got) == 1 and got[0].startswith(
        "spec.validation.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: ")
    got = strs(apiextensions.validate_crd(crd_with(good, bad)))
    assert len(got) == 1 and got[0].startswith(
        "spec.versions[1].schema.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: ")
    assert "undefined field 'b'" in got[0]
