"""Real kubectl 1.37 against a real `k8py server` process."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
import yaml

from .conftest import KUBECTL, Server, manifest

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
  replica: 3
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

SEED_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app: nginx
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
"""

pytestmark = pytest.mark.skipif(not KUBECTL, reason="kubectl not installed")


def test_version_and_discovery(server: Server) -> None:
    out = server.kubectl("version", "-o", "json").stdout
    v = json.loads(out)
    assert v["serverVersion"]["minor"] == "37"
    av = server.kubectl("api-versions").stdout.split()
    for gv in ("v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "networking.k8s.io/v1",
               "rbac.authorization.k8s.io/v1", "policy/v1", "events.k8s.io/v1", "coordination.k8s.io/v1"):
        assert gv in av
    ar = server.kubectl("api-resources").stdout
    lines = {ln.split()[0]: ln for ln in ar.splitlines()[1:]}
    assert "deployments" in lines and "deploy" in lines["deployments"] and "apps/v1" in lines["deployments"]
    assert "pods" in lines and "po" in lines["pods"]
    ns_only = server.kubectl("api-resources", "--namespaced=false", "-o", "name").stdout.split()
    assert "nodes" in ns_only and "namespaces" in ns_only and "pods" not in ns_only


def test_bootstrap_objects(server: Server) -> None:
    names = server.kubectl("get", "ns", "-o", "name").stdout.split()
    for n in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert f"namespace/{n}" in names
    svc = server.kjson("get", "svc", "kubernetes", "-n", "default")
    assert svc["spec"]["clusterIP"] == "10.43.0.1"
    assert svc["spec"]["ports"][0]["port"] == 443


def test_seed_manifests(server: Server, ns: str) -> None:
    server.kubectl("apply", "-n", ns, "-f", "-", input=SEED_POD)
    server.kubectl("apply", "-n", ns, "-f", "-", input=SEED_DEPLOYMENT)
    server.kubectl("apply", "-n", ns, "-f", "-", input=SEED_SERVICE)
    pod = server.kjson("get", "pod", "nginx", "-n", ns)
    assert pod["status"]["phase"] == "Pending"
    c = pod["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent" and c["ports"][0]["protocol"] == "TCP"
    assert pod["spec"]["restartPolicy"] == "Always"
    dep = server.kjson("get", "deploy", "nginx-deployment", "-n", ns)
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    assert dep["metadata"]["generation"] == 1
    svc = server.kjson("get", "svc", "my-service", "-n", ns)
    assert svc["spec"]["clusterIP"].startswith("10.43.")
    assert svc["spec"]["type"] == "ClusterIP"
    # The seed's ReplicaSet is wrong twice: apps/v1, not v1; and `replica`/`selector.template` are not fields.
    p = server.kubectl("apply", "-n", ns, "-f", "-", input=SEED_REPLICASET, check=False)
    assert p.returncode != 0
    assert 'no matches for kind "ReplicaSet" in version "v1"' in p.stderr
    fixed = SEED_REPLICASET.replace("apiVersion: v1", "apiVersion: apps/v1")
    p = server.kubectl("apply", "-n", ns, "-f", "-", input=fixed, check=False)
    assert p.returncode != 0
    assert 'unknown field "spec.replica"' in p.stderr
    assert 'unknown field "spec.selector.template"' in p.stderr
    assert server.kubectl("get", "rs", "nginx-replicaset", "-n", ns, check=False).returncode != 0


def test_apply_create_then_change(server: Server, ns: str) -> None:
    server.kubectl("apply", "-n", ns, "-f", "-", input=SEED_DEPLOYMENT)
    changed = SEED_DEPLOYMENT.replace("nginx:1.7.9", "nginx:1.25").replace("replicas: 3", "replicas: 2")
    out = server.kubectl("apply", "-n", ns, "-f", "-", input=changed).stdout
    assert "configured" in out
    dep = server.kjson("get", "deploy", "nginx-deployment", "-n", ns)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert dep["spec"]["replicas"] == 2
    assert dep["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]
    out = server.kubectl("apply", "-n", ns, "-f", "-", input=changed).stdout
    assert "unchanged" in out


def test_apply_server_side(server: Server, ns: str) -> None:
    cm = manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}})
    out = server.kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=cm).stdout
    assert "serverside-applied" in out
    obj = server.kjson("get", "cm", "ssa", "-n", ns, "--show-managed-fields")
    mf = obj["metadata"]["managedFields"]
    assert any(e["manager"] == "kubectl" and e["operation"] == "Apply" for e in mf)
    # another manager changing the same field conflicts
    other = manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "2"}})
    p = server.kubectl("apply", "--server-side", "--field-manager", "other", "-n", ns, "-f", "-", input=other,
                       check=False)
    assert p.returncode != 0 and "conflict" in p.stderr.lower()
    server.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", "other", "-n", ns, "-f", "-",
                   input=other)
    assert server.kjson("get", "cm", "ssa", "-n", ns)["data"]["a"] == "2"


def test_get_formats(server: Server, ns: str) -> None:
    server.kubectl("apply", "-n", ns, "-f", "-", input=SEED_DEPLOYMENT)
    server.kubectl("apply", "-n", ns, "-f", "-", input=SEED_POD)
    out = server.kubectl("get", "deploy", "-n", ns).stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert "nginx-deployment" in out and "0/3" in out
    wide = server.kubectl("get", "deploy", "-n", ns, "-o", "wide").stdout.splitlines()[0].split()
    assert wide[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    pods = server.kubectl("get", "pods", "-n", ns).stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [ln.split()[:4] for ln in pods[1:] if ln.split()[0] == "nginx"] == [["nginx", "0/1", "Pending", "0"]]
    y = yaml.safe_load(server.kubectl("get", "pod", "nginx", "-n", ns, "-o", "yaml").stdout)
    assert y["kind"] == "Pod" and y["metadata"]["name"] == "nginx"
    server.kubectl("label", "pod", "nginx", "-n", ns, "tier=web")
    assert server.kubectl("get", "pods", "-n", ns, "-l", "tier=web", "-o", "name").stdout.split() == ["pod/nginx"]
    assert server.kubectl("get", "pods", "-n", ns, "-l", "tier in (db)", "-o", "name").stdout.strip() == ""
    fs = server.kubectl("get", "pods", "-n", ns, "--field-selector", "status.phase=Pending,metadata.name=nginx",
                        "-o", "name")
    assert fs.stdout.split() == ["pod/nginx"]
    fs = server.kubectl("get", "pods", "-n", ns, "--field-selector", "status.phase=Running", "-o", "name")
    assert fs.stdout.strip() == ""
    p = server.kubectl("get", "pods", "-n", ns, "--field-selector", "spec.bogus=x", check=False)
    assert p.returncode != 0 and "field label not supported" in p.stderr
    all_out = server.kubectl("get", "all", "-n", ns).stdout
    assert "pod/nginx" in all_out and "deployment.apps/nginx-deployment" in all_out


def test_get_watch_sees_change(server: Server, ns: str) -> None:
    server.kubectl("create", "configmap", "w", "-n", ns, "--from-literal=k=v1")
    env = dict(os.environ, HOME=str(server.home), KUBECONFIG=server.kubeconfig)
    assert KUBECTL
    proc = subprocess.Popen([KUBECTL, "get", "cm", "w", "-n", ns, "-w", "-o", "jsonpath={.data.k}{\"\\n\"}",
                             "--request-timeout=30s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first == "v1"
        server.kubectl("patch", "cm", "w", "-n", ns, "-p", '{"data":{"k":"v2"}}')
        second = proc.stdout.readline().strip()
        assert second == "v2"
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_create_label_annotate_scale(server: Server, ns: str) -> None:
    server.kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2", "-n", ns)
    server.kubectl("create", "configmap", "conf", "--from-literal=a=1", "--from-literal=b=2", "-n", ns)
    cm = server.kjson("get", "cm", "conf", "-n", ns)
    assert cm["data"] == {"a": "1", "b": "2"}
    server.kubectl("label", "deploy", "web", "-n", ns, "team=a")
    server.kubectl("annotate", "deploy", "web", "-n", ns, "note=hello")
    server.kubectl("scale", "deploy", "web", "-n", ns, "--replicas=5")
    d = server.kjson("get", "deploy", "web", "-n", ns)
    assert d["metadata"]["labels"]["team"] == "a"
    assert d["metadata"]["annotations"]["note"] == "hello"
    assert d["spec"]["replicas"] == 5
    p = server.kubectl("label", "deploy", "web", "-n", ns, "team=b", check=False)
    assert p.returncode != 0 and "already has a value" in p.stderr
    server.kubectl("label", "deploy", "web", "-n", ns, "team-")
    assert "team" not in (server.kjson("get", "deploy", "web", "-n", ns)["metadata"].get("labels") or {})


def test_patch_three_types(server: Server, ns: str) -> None:
    server.kubectl("apply", "-n", ns, "-f", "-", input=SEED_DEPLOYMENT)
    # strategic: merge containers by name
    server.kubectl("patch", "deploy", "nginx-deployment", "-n", ns, "-p",
                   '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}')
    d = server.kjson("get", "deploy", "nginx-deployment", "-n", ns)
    assert [c["name"] for c in d["spec"]["template"]["spec"]["containers"]] == ["sidecar", "nginx"] or \
        {c["name"] for c in d["spec"]["template"]["spec"]["containers"]} == {"sidecar", "nginx"}
    # merge: replaces the list
    server.kubectl("patch", "deploy", "nginx-deployment", "-n", ns, "--type=merge", "-p",
                   '{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"busybox"}]}}}}')
    d = server.kjson("get", "deploy", "nginx-deployment", "-n", ns)
    assert [c["name"] for c in d["spec"]["template"]["spec"]["containers"]] == ["only"]
    # json
    server.kubectl("patch", "deploy", "nginx-deployment", "-n", ns, "--type=json", "-p",
                   '[{"op":"replace","path":"/spec/replicas","value":7}]')
    assert server.kjson("get", "deploy", "nginx-deployment", "-n", ns)["spec"]["replicas"] == 7
    p = server.kubectl("patch", "deploy", "nginx-deployment", "-n", ns, "--type=json", "-p",
                       '[{"op":"test","path":"/spec/replicas","value":1}]', check=False)
    assert p.returncode != 0


def test_edit_with_editor_script(server: Server, ns: str, tmp_path: object) -> None:
    from pathlib import Path

    server.kubectl("create", "configmap", "ed", "--from-literal=color=blue", "-n", ns)
    script = Path(str(tmp_path)) / "editor.sh"
    script.write_text("#!/bin/sh\nsed -i 's/color: blue/color: green/' \"$1\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    server.kubectl("edit", "cm", "ed", "-n", ns, env={"EDITOR": str(script), "KUBE_EDITOR": str(script)})
    assert server.kjson("get", "cm", "ed", "-n", ns)["data"]["color"] == "green"


def test_diff(server: Server, ns: str) -> None:
    server.kubectl("apply", "-n", ns, "-f", "-", input=SEED_DEPLOYMENT)
    same = server.kubectl("diff", "-n", ns, "-f", "-", input=SEED_DEPLOYMENT, check=False)
    assert same.returncode == 0, same.stderr
    changed = SEED_DEPLOYMENT.replace("replicas: 3", "replicas: 4")
    p = server.kubectl("diff", "-n", ns, "-f", "-", input=changed, check=False)
    assert p.returncode == 1, p.stderr
    assert "-  replicas: 3" in p.stdout and "+  replicas: 4" in p.stdout
    # diff is a dry run: nothing changed
    assert server.kjson("get", "deploy", "nginx-deployment", "-n", ns)["spec"]["replicas"] == 3


def test_delete_wait(server: Server, ns: str) -> None:
    server.kubectl("create", "configmap", "gone", "--from-literal=a=1", "-n", ns)
    out = server.kubectl("delete", "cm", "gone", "-n", ns, "--wait=true", "--timeout=20s").stdout
    assert 'configmap "gone" deleted' in out
    p = server.kubectl("get", "cm", "gone", "-n", ns, check=False)
    assert p.returncode != 0 and 'configmaps "gone" not found' in p.stderr


def test_describe_shows_events(server: Server, ns: str) -> None:
    server.kubectl("apply", "-n", ns, "-f", "-", input=SEED_POD)
    pod = server.kjson("get", "pod", "nginx", "-n", ns)
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "nginx.1", "namespace": ns},
          "involvedObject": {"kind": "Pod", "name": "nginx", "namespace": ns, "uid": pod["metadata"]["uid"],
                             "apiVersion": "v1"},
          "reason": "Scheduled", "message": "Successfully assigned to node-1", "type": "Normal",
          "source": {"component": "test"}, "firstTimestamp": "2026-01-01T00:00:00Z",
          "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1}
    server.kubectl("create", "-f", "-", input=manifest(ev))
    out = server.kubectl("describe", "pod", "nginx", "-n", ns).stdout
    assert "Name:" in out and "nginx" in out
    assert "Events:" in out and "Scheduled" in out and "Successfully assigned to node-1" in out


def test_explain(server: Server) -> None:
    out = server.kubectl("explain", "deployment.spec.strategy").stdout
    assert "DeploymentStrategy" in out or "strategy" in out
    assert "rollingUpdate" in out and "type" in out


def test_bad_input(server: Server, ns: str) -> None:
    bad_sel = SEED_DEPLOYMENT.replace("app: nginx # same", "app: other").replace(
        "      labels:\n        app: nginx\n    spec", "      labels:\n        app: other\n    spec")
    p = server.kubectl("apply", "-n", ns, "-f", "-", input=bad_sel, check=False)
    assert p.returncode != 0 and "selector` does not match template `labels`" in p.stderr
    no_containers = manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"},
                              "spec": {"containers": []}})
    p = server.kubectl("create", "-n", ns, "-f", "-", input=no_containers, check=False)
    assert p.returncode != 0 and "spec.containers: Required value" in p.stderr
    bad_name = SEED_POD.replace("- name: nginx", "- name: Nginx_1")
    p = server.kubectl("create", "-n", ns, "-f", "-", input=bad_name, check=False)
    assert p.returncode != 0 and "spec.containers[0].name: Invalid value" in p.stderr
    neg = SEED_DEPLOYMENT.replace("replicas: 3", "replicas: -1")
    p = server.kubectl("apply", "-n", ns, "-f", "-", input=neg, check=False)
    assert p.returncode != 0 and "spec.replicas: Invalid value: -1" in p.stderr
    q = SEED_POD.replace("        - containerPort: 80",
                         "        - containerPort: 80\n      resources:\n        requests:\n          cpu: 1x")
    p = server.kubectl("create", "-n", ns, "-f", "-", input=q, check=False)
    assert p.returncode != 0 and "quantities must match the regular expression" in p.stderr
    p = server.kubectl("create", "-n", "does-not-exist", "-f", "-", input=SEED_POD, check=False)
    assert p.returncode != 0 and 'namespaces "does-not-exist" not found' in p.stderr
    p = server.kubectl("create", "-n", ns, "-f", "-", input="kind: [unclosed", check=False)
    assert p.returncode != 0
    # nothing partial was stored
    assert server.kubectl("get", "pods,deploy", "-n", ns, "-o", "name").stdout.strip() == ""


def test_rollout_free_objects_survive_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    from .conftest import start_server

    s = start_server(tmp_path_factory.mktemp("restart"))
    try:
        s.kubectl("create", "configmap", "keep", "--from-literal=x=y", "-n", "default")
        rv_before = s.kjson("get", "cm", "keep", "-n", "default")["metadata"]["resourceVersion"]
        assert s.stop() == 0
        s.start()
        cm = s.kjson("get", "cm", "keep", "-n", "default")
        assert cm["data"] == {"x": "y"} and cm["metadata"]["resourceVersion"] == rv_before
        s.kubectl("create", "configmap", "after", "--from-literal=x=z", "-n", "default")
        after = s.kjson("get", "cm", "after", "-n", "default")["metadata"]["resourceVersion"]
        assert int(after) > int(rv_before)
    finally:
        s.stop()


def test_anonymous_is_refused(server: Server) -> None:
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(f"https://127.0.0.1:{server.port}/api/v1/namespaces", context=ctx, timeout=5)
    assert ei.value.code == 401
    assert json.loads(ei.value.read())["reason"] == "Unauthorized"
    ei.value.close()
    with urllib.request.urlopen(f"https://127.0.0.1:{server.port}/version", context=ctx, timeout=5) as r:
        assert json.loads(r.read())["major"] == "1"


def test_auth_can_i_and_whoami(server: Server) -> None:
    assert server.kubectl("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    out = server.kubectl("auth", "whoami").stdout
    assert "system:admin" in out and "system:masters" in out
