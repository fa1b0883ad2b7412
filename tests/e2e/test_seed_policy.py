"""The seed's anti-patterns on a real ``k8py server``, with real kubectl and the official Python
client: ``kubectl apply`` of a Deployment using ``nginx:latest`` without limits prints the
warnings, a namespace labelled ``k8py.io/policy=enforce`` refuses it with every finding, the
``kube-system/k8py-policy`` ConfigMap turns a check off, and ``k8py lint`` says the same offline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import KUBECTL, Server, start_server, wait

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: nginx
          image: nginx:latest
          ports:
            - containerPort: 80
"""

LATEST = ('Warning: spec.template.spec.containers[0] (nginx): image "nginx:latest" uses the :latest tag (pin a '
          "version or a digest)")
LIMITS = ("Warning: spec.template.spec.containers[0] (nginx): no memory or CPU limit (set resources.limits.memory "
          "and resources.limits.cpu so that it cannot take the whole node)")
PROBES = ("Warning: spec.template.spec.containers[0] (nginx): no readinessProbe and no livenessProbe (add probes so "
          "that traffic reaches it only when it is ready and it is restarted when it hangs)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    s = start_server(tmp_path_factory.mktemp("seedpolicy"))
    yield s
    s.stop()


def warning_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("Warning: ")]


def refused_until(cluster: Server, ns: str, manifest: str, what: str, timeout: float = 10.0) -> None:
    """The server reads namespace labels and its ConfigMap through a watch: wait (bounded) until a
    server-side dry run shows the change took effect."""
    wait(lambda: cluster.kubectl("apply", "--dry-run=server", "-n", ns, "-f", "-", input=manifest,
                                 check=False).returncode != 0, timeout, what)


def test_apply_prints_the_warnings(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "team-a")
    # a server-side dry run shows them first, and writes nothing
    p = cluster.kubectl("apply", "--dry-run=server", "-n", "team-a", "-f", "-", input=DEPLOYMENT.format(name="web"))
    assert warning_lines(p.stderr) == [LATEST, LIMITS, PROBES], p.stderr
    assert cluster.kubectl("get", "deploy", "web", "-n", "team-a", check=False).returncode != 0
    p = cluster.kubectl("apply", "-n", "team-a", "-f", "-", input=DEPLOYMENT.format(name="web"))
    assert p.stdout.strip() == "deployment.apps/web created"
    assert warning_lines(p.stderr) == [LATEST, LIMITS, PROBES], p.stderr
    # the apply changes only the replicas: the pod template was checked already
    p = cluster.kubectl("scale", "deploy/web", "-n", "team-a", "--replicas=2")
    assert warning_lines(p.stderr) == []
    # kubectl run makes a bare pod
    p = cluster.kubectl("run", "one-off", "-n", "team-a", "--image=busybox:1.36")
    assert warning_lines(p.stderr) == [
        ('Warning: metadata.ownerReferences: pod "one-off" is not managed by a controller (run it from a Deployment, '
        "StatefulSet, DaemonSet or Job, which re-create it when it or its node fails)"),
        ("Warning: spec.containers[0] (one-off): no memory or CPU limit (set resources.limits.memory and "
        "resources.limits.cpu so that it cannot take the whole node)"),
        ("Warning: spec.containers[0] (one-off): no readinessProbe and no livenessProbe (add probes so that traffic "
        "reaches it only when it is ready and it is restarted when it hangs)")], p.stderr
    # a secret in a plain env value: named, never echoed
    p = cluster.kubectl("create", "deployment", "db", "-n", "team-a", "--image=postgres:16", "--dry-run=server",
                        "-o", "yaml")
    assert "no memory or CPU limit" in p.stderr
    p = cluster.kubectl("set", "env", "deploy/web", "-n", "team-a", "DB_PASSWORD=hunter2")
    assert ("Warning: spec.template.spec.containers[0] (nginx): env DB_PASSWORD is set from a plain value (keep "
            "secrets in a Secret and use valueFrom.secretKeyRef)") in warning_lines(p.stderr), p.stderr
    assert "hunter2" not in p.stderr


def test_an_enforcing_namespace_refuses(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "prod")
    cluster.kubectl("label", "namespace", "prod", "k8py.io/policy=enforce")
    manifest = DEPLOYMENT.format(name="web")
    refused_until(cluster, "prod", manifest, "the enforce label to take effect")
    p = cluster.kubectl("apply", "-n", "prod", "-f", "-", input=manifest, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": deployments.apps "web" is forbidden: violates '
        'k8py policy "enforce": spec.template.spec.containers[0] (nginx): image "nginx:latest" uses the :latest tag '
        "(pin a version or a digest); spec.template.spec.containers[0] (nginx): no memory or CPU limit (set "
        "resources.limits.memory and resources.limits.cpu so that it cannot take the whole node); "
        "spec.template.spec.containers[0] (nginx): no readinessProbe and no livenessProbe (add probes so that "
        "traffic reaches it only when it is ready and it is restarted when it hangs)"), p.stderr
    assert cluster.kubectl("get", "deploy", "-n", "prod", "-o", "name").stdout == ""
    # the same Deployment, fixed, is let in
    fixed = manifest.replace("image: nginx:latest", "image: nginx:1.27").replace(
        "          ports:", "          resources: {limits: {cpu: 500m, memory: 128Mi}}\n"
        "          readinessProbe: {tcpSocket: {port: 80}}\n          livenessProbe: {tcpSocket: {port: 80}}\n"
        "          ports:")
    p = cluster.kubectl("apply", "-n", "prod", "-f", "-", input=fixed)
    assert p.stdout.strip() == "deployment.apps/web created" and warning_lines(p.stderr) == []
    # a label value that names no mode is refused, as Pod Security refuses its own
    p = cluster.kubectl("label", "namespace", "prod", "--overwrite", "k8py.io/policy=enforcing", check=False)
    assert p.returncode == 1
    assert ('Namespace "prod" is invalid: metadata.labels[k8py.io/policy]: Unsupported value: "enforcing": '
            'supported values: "enforce", "off", "warn"') in p.stderr


def test_server_side_apply_and_replace(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "ssa")
    p = cluster.kubectl("apply", "--server-side", "-n", "ssa", "-f", "-", input=DEPLOYMENT.format(name="web"))
    assert p.stdout.strip() == "deployment.apps/web serverside-applied"
    assert warning_lines(p.stderr) == [LATEST, LIMITS, PROBES], p.stderr
    p = cluster.kubectl("apply", "--server-side", "-n", "prod", "-f", "-", input=DEPLOYMENT.format(name="ssa"),
                        check=False)
    assert p.returncode == 1 and 'deployments.apps "ssa" is forbidden: violates k8py policy "enforce": ' in p.stderr
    # a replace that changes the image only still warns about what is left
    dep = cluster.kjson("get", "deploy", "web", "-n", "ssa")
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    p = cluster.kubectl("replace", "-f", "-", input=json.dumps(dep))
    assert warning_lines(p.stderr) == [LIMITS, PROBES], p.stderr


def test_off_silences(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "quiet")
    cluster.kubectl("label", "namespace", "quiet", "k8py.io/policy=off")
    manifest = DEPLOYMENT.format(name="web")
    wait(lambda: not warning_lines(cluster.kubectl("apply", "--dry-run=server", "-n", "quiet", "-f", "-",
                                                   input=manifest).stderr), 10, "the off label to take effect")
    p = cluster.kubectl("apply", "-n", "quiet", "-f", "-", input=manifest)
    assert warning_lines(p.stderr) == []


def test_the_python_client_sees_warnings_and_refusals(cluster: Server) -> None:
    import yaml
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    body = yaml.safe_load(DEPLOYMENT.format(name="py"))
    with cluster.client() as api_client:
        apps = client.AppsV1Api(api_client)
        _, status, headers = apps.create_namespaced_deployment_with_http_info("team-a", body)
        assert status == 201
        # urllib3 joins repeated headers with ", "
        warning = headers["Warning"]
        assert warning.count('299 - "') == 3
        assert 'image \\"nginx:latest\\" uses the :latest tag' in warning
        with pytest.raises(ApiException) as e:
            apps.create_namespaced_deployment("prod", body)
        assert e.value.status == 403
        st = yaml.safe_load(e.value.body)
        assert st["reason"] == "Forbidden"
        assert [c["reason"] for c in st["details"]["causes"]] == ["latest-tag", "no-limits", "no-probes"]
        assert st["details"]["causes"][0]["field"] == "spec.template.spec.containers[0].image"


def test_the_configmap_turns_a_check_off(cluster: Server) -> None:
    cluster.kubectl("create", "namespace", "tuned")
    # a malformed one is reported on the write, and the defaults stay
    bad = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k8py-policy, namespace: kube-system}\n"
           "data: {checks: '*,-latest', mode: strict}\n")
    p = cluster.kubectl("apply", "-f", "-", input=bad)
    assert warning_lines(p.stderr) == [
        ('Warning: kube-system/k8py-policy: data[mode]: Unsupported value: "strict": supported values: "enforce", '
        '"off", "warn" (this key keeps its default)'),
        ('Warning: kube-system/k8py-policy: data[checks]: Invalid value: "*,-latest": unknown check "-latest" '
        "(known: latest-tag, no-limits, no-probes, bare-pod, plain-env-secret; * for all, -id to turn one off) "
        "(this key keeps its default)")], p.stderr
    log = (cluster.data_dir.parent / "server.log")
    wait(lambda: 'k8py-policy: data[mode]: Unsupported value: "strict"' in log.read_text(), 10,
         "the server to log the malformed key")
    p = cluster.kubectl("apply", "--dry-run=server", "-n", "tuned", "-f", "-", input=DEPLOYMENT.format(name="a"))
    assert warning_lines(p.stderr) == [LATEST, LIMITS, PROBES]
    # the right one: no more probe or limit warnings
    good = bad.replace("checks: '*,-latest', mode: strict", "checks: '*,-no-probes,-no-limits'")
    p = cluster.kubectl("apply", "-f", "-", input=good)
    assert warning_lines(p.stderr) == []
    deadline = time.monotonic() + 10
    for i in range(100):  # each try a new Deployment: a create is checked whatever came before
        p = cluster.kubectl("apply", "-n", "tuned", "-f", "-", input=DEPLOYMENT.format(name=f"d{i}"))
        if warning_lines(p.stderr) == [LATEST]:
            break
        assert time.monotonic() < deadline, f"the ConfigMap did not take effect: {p.stderr}"
        time.sleep(0.2)
    # deleting it restores the defaults
    cluster.kubectl("delete", "configmap", "k8py-policy", "-n", "kube-system")
    wait(lambda: warning_lines(cluster.kubectl("apply", "--dry-run=server", "-n", "tuned", "-f", "-",
                                               input=DEPLOYMENT.format(name="b")).stderr) == [LATEST, LIMITS, PROBES],
         10, "the defaults to come back")


def test_k8py_lint_says_the_same_offline(cluster: Server, tmp_path: Path) -> None:
    f = tmp_path / "fresh.yaml"
    f.write_text(DEPLOYMENT.format(name="fresh"))
    p = subprocess.run([sys.executable, "-m", "k8py.cli", "lint", str(f)], capture_output=True, text=True,
                       timeout=60, check=False)
    assert p.returncode == 1
    offline = [ln.split(": warning: Deployment/fresh: ", 1)[1].rsplit(" [", 1)[0] for ln in p.stdout.splitlines()]
    online = [w.removeprefix("Warning: ") for w in warning_lines(cluster.kubectl(
        "apply", "--dry-run=server", "-n", "team-a", "-f", str(f)).stderr)]
    assert offline == online == [w.removeprefix("Warning: ") for w in (LATEST, LIMITS, PROBES)]


def test_labelling_a_namespace_enforce_names_what_already_violates(cluster: Server) -> None:
    # team-a holds what the first tests made: web (with a plain DB_PASSWORD), py, and a bare pod
    p = cluster.kubectl("label", "namespace", "team-a", "k8py.io/policy=enforce")
    assert p.stdout.strip() == "namespace/team-a labeled"
    assert warning_lines(p.stderr) == [
        ('Warning: existing objects in namespace "team-a" violate the k8py policy it now enforces (their next '
        "changes and new pods will be refused; kubectl apply --dry-run=server shows why)"),
        'Warning: pods "one-off": bare-pod, no-limits, no-probes',
        'Warning: deployments.apps "py": latest-tag, no-limits, no-probes',
        'Warning: deployments.apps "web": latest-tag, no-limits, no-probes, plain-env-secret'], p.stderr
