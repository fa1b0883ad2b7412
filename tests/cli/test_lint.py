"""``k8py lint``: manifests checked offline, the API's own validation and the seed's anti-patterns.

The three YAML examples of the seed notes (SEED.md) are copied here verbatim, comments and all:
the Pod and the Deployment are valid but carry anti-patterns, the ReplicaSet has the mistakes a
real API server refuses (``apiVersion: v1``, ``replica``, ``template`` under ``selector``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from k8py.cli.lint import Problem, lint_bytes, split_documents
from k8py.cli.main import main

SEED_POD = """\
apiVersion: v1
kind: Pod # kind of object to be created
metadata:
  name: nginx
spec: # provides the appropriate fields for the object
  containers: # container and will run in this Pod
    - name: nginx # name of container
      image: nginx:1.7.9 # image that will run in Pod
      ports: # port that container exposes
        - containerPort: 80
"""

SEED_REPLICASET = """\
apiVersion: v1
kind: ReplicaSet
metadata:
  name: nginx-replicaset
  labels:
    app: nginx
spec:
  replica: 3 # creates/deletes Pods to meet the desired number of replicas
  selector: # selector to identify which pods it can acquire
    matchLabels:
      app: nginx # same as template labels below
    template: # defines the Pods that should be created by the ReplicaSet
      metadata:
        labels:
          app: nginx # same as matchLabels above
      spec:
        containers:
          - name: nginx
            image: nginx:1.7.9
            ports:
              - containerPort: 80
"""

SEED_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
        - name: nginx
          image: nginx:1.7.9
          ports:
            - containerPort: 80
"""

CLEAN = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          resources:
            limits: {cpu: 500m, memory: 128Mi}
          readinessProbe: {httpGet: {path: /, port: 80}}
          livenessProbe: {tcpSocket: {port: 80}}
"""


def found(problems: list[Problem]) -> list[tuple[str, str, str]]:
    return [(p.document, p.severity, p.check) for p in problems]


def test_seed_pod_is_valid_but_bare_without_limits_or_probes() -> None:
    probs = lint_bytes(SEED_POD.encode(), "pod.yaml")
    assert found(probs) == [("1", "warning", "bare-pod"), ("1", "warning", "no-limits"), ("1", "warning", "no-probes")]
    assert probs[1].text() == (
        "pod.yaml:1: warning: Pod/nginx: spec.containers[0] (nginx): no memory or CPU limit (set "
        "resources.limits.memory and resources.limits.cpu so that it cannot take the whole node) [no-limits]")


def test_seed_replicaset_mistakes_are_the_api_servers_errors() -> None:
    probs = lint_bytes(SEED_REPLICASET.encode(), "rs.yaml")
    assert [p.text() for p in probs if p.severity == "error"] == [
        ('rs.yaml:1: error: ReplicaSet/nginx-replicaset: no matches for kind "ReplicaSet" in version "v1" '
        "(ReplicaSet is served as apps/v1)"),
        'rs.yaml:1: error: ReplicaSet/nginx-replicaset: unknown field "spec.replica"',
        'rs.yaml:1: error: ReplicaSet/nginx-replicaset: unknown field "spec.selector.template"',
        ("rs.yaml:1: error: ReplicaSet/nginx-replicaset: spec.template.metadata.labels: Invalid value: "
        "map[string]string(nil): `selector` does not match template `labels`"),
        "rs.yaml:1: error: ReplicaSet/nginx-replicaset: spec.template.spec.containers: Required value",
    ]
    # with the mistakes fixed, what is left is the seed's advice
    rs = yaml.safe_load(SEED_REPLICASET)
    rs["apiVersion"] = "apps/v1"
    rs["spec"]["replicas"] = rs["spec"].pop("replica")
    rs["spec"]["template"] = rs["spec"]["selector"].pop("template")
    assert found(lint_bytes(yaml.safe_dump(rs).encode(), "rs.yaml")) == [("1", "warning", "no-limits"),
                                                                         ("1", "warning", "no-probes")]


def test_seed_deployment() -> None:
    assert found(lint_bytes(SEED_DEPLOYMENT.encode(), "d.yaml")) == [("1", "warning", "no-limits"),
                                                                     ("1", "warning", "no-probes")]


def test_a_clean_manifest_has_nothing() -> None:
    assert lint_bytes(CLEAN.encode(), "ok.yaml") == []


def test_multi_document_streams_and_lists() -> None:
    stream = "---\n# comment only\n---\n" + CLEAN + "---\n" + SEED_POD + "--- # a comment\n\n"
    probs = lint_bytes(stream.encode(), "s.yaml")
    # document 1 is empty (only a comment) and skipped; the Pod is document 3, starting on its line
    assert {p.document for p in probs} == {"3"}
    assert probs[0].line == stream.splitlines().index("kind: Pod # kind of object to be created")
    lst = {"apiVersion": "v1", "kind": "List", "items": [yaml.safe_load(CLEAN), yaml.safe_load(SEED_POD)]}
    probs = lint_bytes(json.dumps(lst).encode(), "l.json")
    assert {p.document for p in probs} == {"1.items[1]"}
    dl = {"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [yaml.safe_load(SEED_DEPLOYMENT)]}
    assert found(lint_bytes(yaml.safe_dump(dl).encode(), "dl.yaml")) == [("1.items[0]", "warning", "no-limits"),
                                                                         ("1.items[0]", "warning", "no-probes")]


def test_split_documents_follows_kubes_separator() -> None:
    assert split_documents(b"a: 1\n---\nb: 2\n") == [(1, b"a: 1\n"), (3, b"b: 2\n")]
    assert split_documents(b"---\na: 1\n") == [(2, b"a: 1\n")]
    # "---" must start the line and be followed by nothing but a comment
    assert split_documents(b"a: '---x'\n ---\n") == [(1, b"a: '---x'\n ---\n")]


@pytest.mark.parametrize(("text", "message"), [
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: 1}\n",
     "json: cannot unmarshal number into Go struct field ConfigMap.data of type string"),
    ("kind: ConfigMap\nmetadata: {name: c}\n", "error validating data: [apiVersion not set]"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  name: d\n",
     'error converting YAML to JSON: yaml: unmarshal errors:\n  line 5: key "name" already set in map'),
    ("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
     'no matches for kind "Widget" in version "example.com/v1"'),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: Bad_Name}\nspec: {ports: [{port: 80}]}\n",
     ('metadata.name: Invalid value: "Bad_Name": a DNS-1035 label must consist of lower case alphanumeric characters or '
     "'-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
     "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]\n",
     "error converting YAML to JSON: yaml: line "),
])
def test_what_the_api_server_refuses_is_an_error(text: str, message: str) -> None:
    probs = [p for p in lint_bytes(text.encode(), "f.yaml") if p.severity == "error"]
    assert probs, text
    assert message in probs[0].message, probs[0].message


def test_the_command_output_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pod.yaml").write_text(SEED_POD)
    (tmp_path / "ok.yaml").write_text(CLEAN)
    (tmp_path / "rs.yaml").write_text(SEED_REPLICASET)
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert main(["lint", str(tmp_path / "ok.yaml")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == "k8py lint: 0 errors, 0 warnings in 1 object (1 file)"
    assert main(["lint", str(tmp_path / "pod.yaml")]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith(f"{tmp_path / 'pod.yaml'}:1: warning: Pod/nginx: metadata.ownerReferences:")
    assert "3 warnings in 1 object" in err
    # warnings only: --warnings-ok exits 0; an error still fails
    assert main(["lint", "--warnings-ok", str(tmp_path / "pod.yaml")]) == 0
    assert main(["lint", "--warnings-ok", str(tmp_path / "rs.yaml")]) == 1
    capsys.readouterr()
    # a directory: its manifests, in name order; --checks turns checks off
    assert main(["lint", "--checks", "*,-no-probes,-no-limits", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [ln.split(":", 1)[0] for ln in lines] == [str(tmp_path / "pod.yaml")] + [str(tmp_path / "rs.yaml")] * 5
    assert "[bare-pod]" in lines[0] and "in 3 objects (3 files)" in err
    # a file that is not there is an error of its own; the others are still checked
    assert main(["lint", str(tmp_path / "nope.yaml"), str(tmp_path / "ok.yaml")]) == 1
    out, _ = capsys.readouterr()
    assert out.strip() == f"{tmp_path / 'nope.yaml'}:0: error: ?/?: cannot read: No such file or directory"


def test_json_output_and_a_policy_configmap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.yaml").write_text(SEED_DEPLOYMENT.replace("nginx:1.7.9", "nginx:latest"))
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k8py-policy", "namespace": "kube-system"},
        "data": {"checks": "latest-tag"}}))
    assert main(["lint", "-o", "json", "--policy", str(tmp_path / "policy.yaml"), str(tmp_path / "d.yaml")]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["errors"] == 0 and out["warnings"] == 1 and out["objects"] == 1 and out["files"] == 1
    assert out["problems"] == [{
        "file": str(tmp_path / "d.yaml"), "document": "1", "line": 1, "severity": "warning", "check": "latest-tag",
        "kind": "Deployment", "name": "nginx-deployment", "field": "spec.template.spec.containers[0].image",
        "message": 'spec.template.spec.containers[0] (nginx): image "nginx:latest" uses the :latest tag (pin a '
                   "version or a digest)"}]
    # a wrong policy is bad usage
    assert main(["lint", "--checks", "nope", str(tmp_path / "d.yaml")]) == 2
    assert "bad policy: data[checks]: Invalid value" in capsys.readouterr().err


def test_stdin_through_the_real_command() -> None:
    p = subprocess.run([sys.executable, "-m", "k8py.cli", "lint", "-"], input=SEED_DEPLOYMENT + "---\n" + SEED_POD,
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 1, p.stderr
    assert p.stdout.splitlines()[0].startswith("<stdin>:1: warning: Deployment/nginx-deployment: ")
    assert p.stdout.splitlines()[-1].startswith("<stdin>:2: warning: Pod/nginx: ")
    assert p.stderr.strip() == "k8py lint: 0 errors, 5 warnings in 2 objects (1 file)"


def test_yaml_errors_name_the_files_line_on_one_output_line() -> None:
    stream = (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
              b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  name: d\n---\n"
              b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]\n")
    probs = lint_bytes(stream, "f.yaml")
    assert [p.text() for p in probs] == [
        ('f.yaml:2: error: ConfigMap/d: error converting YAML to JSON: yaml: unmarshal errors: line 9: key "name" '
        "already set in map"),
        ("f.yaml:3: error: ?/?: error converting YAML to JSON: yaml: line 15: expected ',' or '}', but got "
        "'<stream end>'")]
    assert probs[0].message == ('error converting YAML to JSON: yaml: unmarshal errors:\n  line 9: key "name" '
                                "already set in map")  # -o json keeps kube's text


def test_the_policys_own_objects() -> None:
    ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n  labels: {k8py.io/policy: enforcing}\n"
    assert [p.text() for p in lint_bytes(ns.encode(), "ns.yaml")] == [
        ('ns.yaml:1: error: Namespace/prod: metadata.labels[k8py.io/policy]: Unsupported value: "enforcing": '
        'supported values: "enforce", "off", "warn"')]
    cm = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k8py-policy, namespace: kube-system}\n"
          "data: {mode: strict, checks: '*,-no-probes'}\n")
    assert [p.text() for p in lint_bytes(cm.encode(), "cm.yaml")] == [
        ('cm.yaml:1: warning: ConfigMap/k8py-policy: data[mode]: Unsupported value: "strict": supported values: '
        '"enforce", "off", "warn" (this key keeps its default) [policy-config]')]
    # the same ConfigMap elsewhere is just a ConfigMap
    assert lint_bytes(cm.replace("kube-system", "default").encode(), "cm.yaml") == []


def test_unknown_kinds_are_errors_unless_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cr = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}\n"
    (tmp_path / "all.yaml").write_text(cr + "---\n" + CLEAN)
    assert main(["lint", str(tmp_path / "all.yaml")]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == (f'{tmp_path / "all.yaml"}:1: error: Widget/w: no matches for kind "Widget" in version '
                           '"example.com/v1"')
    assert main(["lint", "--ignore-unknown-kinds", str(tmp_path / "all.yaml")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == ("k8py lint: 0 errors, 0 warnings in 1 object (1 file), 1 of kinds k8py does "
                                         "not serve skipped")
    # a kind k8py serves, in a wrong version, is still an error
    (tmp_path / "rs.yaml").write_text(SEED_REPLICASET)
    assert main(["lint", "--ignore-unknown-kinds", "--warnings-ok", str(tmp_path / "rs.yaml")]) == 1
    capsys.readouterr()
