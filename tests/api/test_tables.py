"""Server-side printing: cells as kube's printers produce them (each kind's columns are its
strategy's ``table``), and the Table envelope (``k8py.api.tables``)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from k8py.api import tables
from k8py.api.errors import StatusError
from k8py.api.registry import BUILTIN_KINDS, KindInfo
from k8py.apiserver.registry import build

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
KINDS = {(k.group, k.version, k.kind): k for k in BUILTIN_KINDS}


STRATEGIES = build()


def kind(group: str, version: str, k: str) -> KindInfo:
    return KINDS[(group, version, k)]


def table_of(k: KindInfo) -> tables.Table:
    """The columns the API server prints for ``k``."""
    return STRATEGIES.for_kind(k).table


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cells(k: KindInfo, obj: dict[str, Any]) -> list[Any]:
    t = tables.table(table_of(k), [obj], now=NOW)
    (row,) = t["rows"]
    return row["cells"]


POD = kind("", "v1", "Pod")


def pod(status: dict[str, Any], *, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(minutes=5),
                     "resourceVersion": "42", **meta},
        "spec": spec or {"containers": [{"name": "app", "image": "nginx:1.27"}], "nodeName": "node-1"},
        "status": status,
    }


RUNNING = {"running": {"startedAt": ago(minutes=4)}}
READY_COND = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
              {"type": "PodScheduled", "status": "True"}]


def cs(name: str = "app", *, ready: bool = False, state: dict[str, Any] | None = None, restarts: int = 0,
       last: dict[str, Any] | None = None, started: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts, "state": state or {},
                           "image": "nginx", "imageID": ""}
    if last is not None:
        out["lastState"] = {"terminated": last}
    if started is not None:
        out["started"] = started
    return out


TWO_INIT = {"initContainers": [{"name": "init-a", "image": "busybox"}, {"name": "init-b", "image": "busybox"}],
            "containers": [{"name": "app", "image": "nginx"}]}

# (id, pod, expected READY, STATUS, RESTARTS)
POD_CASES = [
    ("running", pod({"phase": "Running", "conditions": READY_COND,
                     "containerStatuses": [cs(ready=True, state=RUNNING)]}), "1/1", "Running", "0"),
    ("pending-unscheduled", pod({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}), "0/1", "Pending", "0"),
    ("container-creating", pod({"phase": "Pending", "containerStatuses": [
        cs(state={"waiting": {"reason": "ContainerCreating"}})]}), "0/1", "ContainerCreating", "0"),
    ("image-pull-backoff", pod({"phase": "Pending", "containerStatuses": [
        cs(state={"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}})]}),
     "0/1", "ImagePullBackOff", "0"),
    ("crashloop", pod({"phase": "Running", "containerStatuses": [
        cs(state={"waiting": {"reason": "CrashLoopBackOff"}}, restarts=5,
           last={"exitCode": 1, "reason": "Error", "finishedAt": ago(minutes=2)})]}),
     "0/1", "CrashLoopBackOff", "5 (2m ago)"),
    ("restarted-running", pod({"phase": "Running", "conditions": READY_COND, "containerStatuses": [
        cs(ready=True, state=RUNNING, restarts=3, last={"exitCode": 137, "reason": "OOMKilled",
                                                         "finishedAt": ago(hours=3, minutes=5)})]}),
     "1/1", "Running", "3 (3h5m ago)"),
    ("restarts-without-date", pod({"phase": "Running", "containerStatuses": [
        cs(ready=True, state=RUNNING, restarts=2)]}), "1/1", "Running", "2"),
    ("completed", pod({"phase": "Succeeded", "containerStatuses": [
        cs(state={"terminated": {"exitCode": 0, "reason": "Completed"}})]}), "0/1", "Completed", "0"),
    ("error", pod({"phase": "Failed", "containerStatuses": [
        cs(state={"terminated": {"exitCode": 1, "reason": "Error"}})]}), "0/1", "Error", "0"),
    ("exit-code-no-reason", pod({"phase": "Failed", "containerStatuses": [
        cs(state={"terminated": {"exitCode": 3}})]}), "0/1", "ExitCode:3", "0"),
    ("signal-no-reason", pod({"phase": "Failed", "containerStatuses": [
        cs(state={"terminated": {"exitCode": 0, "signal": 9}})]}), "0/1", "Signal:9", "0"),
    ("oomkilled", pod({"phase": "Running", "containerStatuses": [
        cs(state={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})]}), "0/1", "OOMKilled", "0"),
    ("evicted", pod({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
     "0/1", "Evicted", "0"),
    ("init-0-of-2", pod({"phase": "Pending", "initContainerStatuses": [
        cs("init-a", state=RUNNING), cs("init-b", state={"waiting": {"reason": "PodInitializing"}})],
        "containerStatuses": [cs(state={"waiting": {"reason": "PodInitializing"}})]}, spec=TWO_INIT),
     "0/1", "Init:0/2", "0"),
    ("init-1-of-2", pod({"phase": "Pending", "initContainerStatuses": [
        cs("init-a", state={"terminated": {"exitCode": 0, "reason": "Completed"}}), cs("init-b", state=RUNNING)],
        "containerStatuses": [cs(state={"waiting": {"reason": "PodInitializing"}})]}, spec=TWO_INIT),
     "0/1", "Init:1/2", "0"),
    ("init-crashloop", pod({"phase": "Pending", "initContainerStatuses": [
        cs("init-a", state={"waiting": {"reason": "CrashLoopBackOff"}}, restarts=4,
           last={"exitCode": 1, "reason": "Error", "finishedAt": ago(seconds=30)}),
        cs("init-b", state={"waiting": {"reason": "PodInitializing"}})]}, spec=TWO_INIT),
     "0/1", "Init:CrashLoopBackOff", "4 (30s ago)"),
    ("init-error", pod({"phase": "Pending", "initContainerStatuses": [
        cs("init-a", state={"terminated": {"exitCode": 2, "reason": "Error"}})]}, spec=TWO_INIT),
     "0/1", "Init:Error", "0"),
    ("init-exit-code", pod({"phase": "Pending", "initContainerStatuses": [
        cs("init-a", state={"terminated": {"exitCode": 3}})]}, spec=TWO_INIT), "0/1", "Init:ExitCode:3", "0"),
    ("init-signal", pod({"phase": "Pending", "initContainerStatuses": [
        cs("init-a", state={"terminated": {"exitCode": 0, "signal": 9}}),
        cs("init-b", state={"terminated": {"exitCode": 137, "signal": 9}})]}, spec=TWO_INIT),
     "0/1", "Init:Signal:9", "0"),
    ("pod-initializing", pod({"phase": "Pending", "conditions": [{"type": "Initialized", "status": "True"}],
                              "initContainerStatuses": [
                                  cs("init-a", state={"terminated": {"exitCode": 0, "reason": "Completed"}}),
                                  cs("init-b", state={"terminated": {"exitCode": 0, "reason": "Completed"}})],
                              "containerStatuses": [cs(state={"waiting": {"reason": "PodInitializing"}})]},
                             spec=TWO_INIT), "0/1", "PodInitializing", "0"),
    ("terminating", pod({"phase": "Running", "conditions": READY_COND,
                         "containerStatuses": [cs(ready=True, state=RUNNING)]},
                        deletionTimestamp=ago(seconds=10), deletionGracePeriodSeconds=30),
     "1/1", "Terminating", "0"),
    ("deleted-but-completed", pod({"phase": "Succeeded", "containerStatuses": [
        cs(state={"terminated": {"exitCode": 0, "reason": "Completed"}})]}, deletionTimestamp=ago(seconds=10)),
     "0/1", "Completed", "0"),
    ("node-lost", pod({"phase": "Running", "reason": "NodeLost"}, deletionTimestamp=ago(seconds=10)),
     "0/1", "Unknown", "0"),
    ("scheduling-gated", pod({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}), "0/1", "SchedulingGated", "0"),
    ("partly-completed-ready", pod({"phase": "Running", "conditions": READY_COND, "containerStatuses": [
        cs("a", ready=True, state=RUNNING), cs("b", state={"terminated": {"exitCode": 0, "reason": "Completed"}})]},
        spec={"containers": [{"name": "a"}, {"name": "b"}]}), "1/2", "Running", "0"),
    ("partly-completed-not-ready", pod({"phase": "Running", "containerStatuses": [
        cs("a", ready=True, state=RUNNING), cs("b", state={"terminated": {"exitCode": 0, "reason": "Completed"}})]},
        spec={"containers": [{"name": "a"}, {"name": "b"}]}), "1/2", "NotReady", "0"),
    ("completed-and-failed", pod({"phase": "Failed", "containerStatuses": [
        cs("a", state={"terminated": {"exitCode": 0, "reason": "Completed"}}),
        cs("b", state={"terminated": {"exitCode": 1, "reason": "Error"}})]},
        spec={"containers": [{"name": "a"}, {"name": "b"}]}), "0/2", "Error", "0"),
    ("sidecar-ready", pod({"phase": "Running", "conditions": READY_COND, "initContainerStatuses": [
        cs("proxy", ready=True, started=True, state=RUNNING, restarts=1,
           last={"exitCode": 1, "finishedAt": ago(minutes=1)})],
        "containerStatuses": [cs(ready=True, state=RUNNING)]},
        spec={"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]}),
     "2/2", "Running", "1 (60s ago)"),
]


@pytest.mark.parametrize(("obj", "ready", "status", "restarts"), [c[1:] for c in POD_CASES],
                         ids=[c[0] for c in POD_CASES])
def test_pod_ready_status_restarts(obj: dict[str, Any], ready: str, status: str, restarts: str) -> None:
    name, r, s, rs, age, *_ = cells(POD, obj)
    assert (name, r, s, rs, age) == ("web-1", ready, status, restarts, "5m")


def test_pod_wide_columns() -> None:
    p = pod({"phase": "Running", "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}, {"ip": "fd00::7"}],
             "nominatedNodeName": "node-2",
             "conditions": [*READY_COND, {"type": "example.com/lb", "status": "True"}],
             "containerStatuses": [cs(ready=True, state=RUNNING)]},
            spec={"containers": [{"name": "app"}], "nodeName": "node-1",
                  "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/other"}]})
    assert cells(POD, p)[5:] == ["10.244.0.7", "node-1", "node-2", "1/2"]
    bare = pod({"phase": "Pending"}, spec={"containers": [{"name": "app"}]})
    assert cells(POD, bare)[5:] == ["<none>", "<none>", "<none>", "<none>"]
    # a v1 pod with only the singular podIP still shows its address
    assert cells(POD, pod({"phase": "Running", "podIP": "10.0.0.9"}))[5] == "10.0.0.9"


def test_pod_row_conditions_mark_completed_pods() -> None:
    done = tables.table(table_of(POD), [pod({"phase": "Succeeded"})], now=NOW)["rows"][0]
    assert done["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                   "message": "The pod has completed successfully."}]
    failed = tables.table(table_of(POD), [pod({"phase": "Failed"})], now=NOW)["rows"][0]
    assert failed["conditions"][0]["reason"] == "Failed"
    running = tables.table(table_of(POD), [pod({"phase": "Running"})], now=NOW)["rows"][0]
    assert "conditions" not in running


def test_pod_columns() -> None:
    defs = table_of(POD).definitions()
    assert [(d["name"], d["type"], d["format"], d["priority"]) for d in defs] == [
        ("Name", "string", "name", 0), ("Ready", "string", "", 0), ("Status", "string", "", 0),
        ("Restarts", "string", "", 0), ("Age", "string", "", 0), ("IP", "string", "", 1),
        ("Node", "string", "", 1), ("Nominated Node", "string", "", 1), ("Readiness Gates", "string", "", 1)]
    assert defs[0]["description"].startswith("Name must be unique within a namespace.")
    assert defs[5]["description"].startswith("podIP address allocated to the pod.")


# --- workloads -------------------------------------------------------------

def deployment(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(days=2, hours=3)},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                     {"name": "nginx", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox"}]}}},
        "status": status,
    }


@pytest.mark.parametrize(("status", "expected"), [
    ({}, ["web", "0/3", 0, 0, "2d3h"]),
    ({"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}, ["web", "2/3", 3, 2, "2d3h"]),
    ({"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}, ["web", "3/3", 3, 3, "2d3h"]),
])
def test_deployment(status: dict[str, Any], expected: list[Any]) -> None:
    c = cells(kind("apps", "v1", "Deployment"), deployment(**status))
    assert c == [*expected, "nginx,sidecar", "nginx:1.27,busybox", "app=web"]


def test_deployment_selector_with_expressions() -> None:
    d = deployment()
    d["spec"]["selector"] = {"matchLabels": {"tier": "fe"},
                             "matchExpressions": [{"key": "env", "operator": "In", "values": ["qa", "prod"]}]}
    assert cells(kind("apps", "v1", "Deployment"), d)[-1] == "env in (prod,qa),tier=fe"


def test_replicaset_statefulset_daemonset_rc() -> None:
    tmpl: dict[str, Any] = {"spec": {"containers": [{"name": "c", "image": "img"}], "nodeSelector": {"disk": "ssd"}}}
    rs: dict[str, Any] = {"metadata": {"name": "web-5d9", "creationTimestamp": ago(minutes=30)},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d9"}},
                   "template": tmpl},
          "status": {"replicas": 2, "readyReplicas": 1}}
    assert cells(kind("apps", "v1", "ReplicaSet"), rs) == [
        "web-5d9", 2, 2, 1, "30m", "c", "img", "app=web,pod-template-hash=5d9"]
    sts: dict[str, Any] = {"metadata": {"name": "db", "creationTimestamp": ago(hours=1)},
           "spec": {"replicas": 3, "template": tmpl}, "status": {"readyReplicas": 1}}
    assert cells(kind("apps", "v1", "StatefulSet"), sts) == ["db", "1/3", "60m", "c", "img"]
    ds: dict[str, Any] = {"metadata": {"name": "agent", "creationTimestamp": ago(hours=9)},
          "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": tmpl},
          "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                     "updatedNumberScheduled": 3, "numberAvailable": 2}}
    assert cells(kind("apps", "v1", "DaemonSet"), ds) == [
        "agent", 3, 3, 2, 3, 2, "disk=ssd", "9h", "c", "img", "app=agent"]
    ds["spec"]["template"] = {"spec": {"containers": []}}
    assert cells(kind("apps", "v1", "DaemonSet"), ds)[6] == "<none>"
    rc: dict[str, Any] = {"metadata": {"name": "old", "creationTimestamp": ago(days=10)},
          "spec": {"replicas": 1, "selector": {"app": "old"}, "template": tmpl}, "status": {"replicas": 1}}
    assert cells(kind("", "v1", "ReplicationController"), rc) == ["old", 1, 1, 0, "10d", "c", "img", "app=old"]


@pytest.mark.parametrize(("spec", "status", "meta", "expected"), [
    ({"completions": 1}, {"active": 1, "startTime": ago(seconds=45)}, {}, ["Running", "0/1", "45s"]),
    ({"completions": 3, "parallelism": 3}, {"succeeded": 3, "startTime": ago(minutes=10),
                                            "completionTime": ago(minutes=7),
                                            "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                                           {"type": "Complete", "status": "True"}]}, {},
     ["Complete", "3/3", "3m"]),
    ({"parallelism": 2}, {"succeeded": 0}, {}, ["Running", "0/1 of 2", ""]),
    ({}, {"succeeded": 1}, {}, ["Running", "1/1", ""]),
    ({"completions": 1}, {"failed": 7, "startTime": ago(minutes=3), "conditions": [
        {"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}, {},
     ["Failed", "0/1", "3m"]),
    ({"completions": 1, "suspend": True}, {"conditions": [{"type": "Suspended", "status": "True"}]}, {},
     ["Suspended", "0/1", ""]),
    ({"completions": 1}, {}, {"deletionTimestamp": ago(seconds=1)}, ["Terminating", "0/1", ""]),
])
def test_job(spec: dict[str, Any], status: dict[str, Any], meta: dict[str, Any], expected: list[Any]) -> None:
    job: dict[str, Any] = {"metadata": {"name": "pi", "creationTimestamp": ago(minutes=12), **meta},
           "spec": {**spec, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                    "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
           "status": status}
    assert cells(kind("batch", "v1", "Job"), job) == [
        "pi", *expected, "12m", "pi", "perl", "batch.kubernetes.io/controller-uid=u1"]


def test_cronjob() -> None:
    cj: dict[str, Any] = {"metadata": {"name": "hello", "creationTimestamp": ago(days=1)},
          "spec": {"schedule": "*/5 * * * *", "suspend": False,
                   "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "h", "image": "busybox"}]}}}}},
          "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(minutes=3)}}
    assert cells(kind("batch", "v1", "CronJob"), cj) == [
        "hello", "*/5 * * * *", "<none>", "False", 1, "3m", "24h", "h", "busybox", "<none>"]
    cj["spec"].pop("suspend")
    cj["spec"]["timeZone"] = "Etc/UTC"
    cj["status"] = {}
    assert cells(kind("batch", "v1", "CronJob"), cj)[1:6] == ["*/5 * * * *", "Etc/UTC", "<unset>", 0, "<none>"]


# --- services and networking -----------------------------------------------

SVC = kind("", "v1", "Service")


def svc(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "s", "creationTimestamp": ago(seconds=20)}, "spec": spec, "status": status or {}}


@pytest.mark.parametrize(("spec", "status", "expected"), [
    ({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
      "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}], "selector": {"app": "web"}}, None,
     ["ClusterIP", "10.96.0.10", "<none>", "80/TCP", "20s", "app=web"]),
    ({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432, "protocol": "TCP"}],
      "selector": {"app": "db"}}, None, ["ClusterIP", "None", "<none>", "5432/TCP", "20s", "app=db"]),
    ({"type": "ClusterIP", "clusterIPs": ["10.96.0.11"], "externalIPs": ["192.0.2.1"],
      "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}, None,
     ["ClusterIP", "10.96.0.11", "192.0.2.1", "53/UDP,53/TCP", "20s", "<none>"]),
    ({"type": "NodePort", "clusterIPs": ["10.96.0.12"],
      "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443, "nodePort": 30443,
                                                                      "protocol": "TCP"}]}, None,
     ["NodePort", "10.96.0.12", "<none>", "80:30080/TCP,443:30443/TCP", "20s", "<none>"]),
    ({"type": "LoadBalancer", "clusterIPs": ["10.96.0.13"], "ports": [{"port": 80, "nodePort": 31000,
                                                                       "protocol": "TCP"}]}, None,
     ["LoadBalancer", "10.96.0.13", "<pending>", "80:31000/TCP", "20s", "<none>"]),
    ({"type": "LoadBalancer", "clusterIPs": ["10.96.0.13"], "ports": [{"port": 80, "nodePort": 31000,
                                                                       "protocol": "TCP"}]},
     {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.9"}]}},
     ["LoadBalancer", "10.96.0.13", "203.0.113.9,lb.example.com", "80:31000/TCP", "20s", "<none>"]),
    ({"type": "LoadBalancer", "clusterIPs": ["10.96.0.13"], "externalIPs": ["192.0.2.7"], "ports": []},
     {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}},
     ["LoadBalancer", "10.96.0.13", "203.0.113.9,192.0.2.7", "<none>", "20s", "<none>"]),
    ({"type": "ExternalName", "externalName": "db.example.com"}, None,
     ["ExternalName", "<none>", "db.example.com", "<none>", "20s", "<none>"]),
    ({"clusterIP": "10.96.0.14"}, None, ["", "10.96.0.14", "<unknown>", "<none>", "20s", "<none>"]),
])
def test_service(spec: dict[str, Any], status: dict[str, Any] | None, expected: list[Any]) -> None:
    assert cells(SVC, svc(spec, status)) == ["s", *expected]


def test_endpoints_and_slices() -> None:
    ep: dict[str, Any] = {"metadata": {"name": "web", "creationTimestamp": ago(minutes=1)}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]}
    assert cells(kind("", "v1", "Endpoints"), ep) == [
        "web", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "60s"]
    ep6: dict[str, Any] = {"metadata": {"name": "v6"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]}
    assert cells(kind("", "v1", "Endpoints"), ep6)[1] == "[fd00::1]:80"
    headless: dict[str, Any] = {"metadata": {"name": "h"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}
    assert cells(kind("", "v1", "Endpoints"), headless)[1:] == ["10.0.0.1", "<unknown>"]
    assert cells(kind("", "v1", "Endpoints"), {"metadata": {"name": "none"}})[1] == "<none>"
    es: dict[str, Any] = {"metadata": {"name": "web-abc", "creationTimestamp": ago(minutes=1)}, "addressType": "IPv4",
          "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "any"}, {}],
          "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]},
                        {"addresses": ["10.0.0.4"]}]}
    assert cells(kind("discovery.k8s.io", "v1", "EndpointSlice"), es) == [
        "web-abc", "IPv4", "80,any,*", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "60s"]
    empty: dict[str, Any] = {"metadata": {"name": "e"}, "addressType": "IPv4"}
    assert cells(kind("discovery.k8s.io", "v1", "EndpointSlice"), empty)[2:4] == ["<unset>", "<unset>"]


def test_ingress_ingressclass_networkpolicy() -> None:
    ing: dict[str, Any] = {"metadata": {"name": "web", "creationTimestamp": ago(hours=2)},
           "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                    "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "c.example.com"},
                              {"host": "d.example.com"}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
    assert cells(kind("networking.k8s.io", "v1", "Ingress"), ing) == [
        "web", "nginx", "a.example.com,b.example.com,c.example.com + 2 more...", "192.0.2.10", "80, 443", "120m"]
    bare: dict[str, Any] = {"metadata": {"name": "bare"}, "spec": {"defaultBackend": {"service": {"name": "x"}}}}
    assert cells(kind("networking.k8s.io", "v1", "Ingress"), bare)[1:5] == ["<none>", "*", "", "80"]
    ic: dict[str, Any] = {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx", "parameters": {
        "apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}}
    assert cells(kind("networking.k8s.io", "v1", "IngressClass"), ic)[:3] == [
        "nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external-lb"]
    np: dict[str, Any] = {"metadata": {"name": "deny"}, "spec": {"podSelector": {}}}
    assert cells(kind("networking.k8s.io", "v1", "NetworkPolicy"), np)[1] == "<none>"
    np["spec"]["podSelector"] = {"matchLabels": {"role": "db"}}
    assert cells(kind("networking.k8s.io", "v1", "NetworkPolicy"), np)[1] == "role=db"


# --- core --------------------------------------------------------------------

def test_configmap_secret_serviceaccount_namespace() -> None:
    cm: dict[str, Any] = {"metadata": {"name": "cfg", "creationTimestamp": ago(seconds=5)}, "data": {"a": "1", "b": "2"},
          "binaryData": {"c": "AA=="}}
    assert cells(kind("", "v1", "ConfigMap"), cm) == ["cfg", 3, "5s"]
    assert cells(kind("", "v1", "ConfigMap"), {"metadata": {"name": "empty"}}) == ["empty", 0, "<unknown>"]
    sec: dict[str, Any] = {"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    assert cells(kind("", "v1", "Secret"), sec) == ["tls", "kubernetes.io/tls", 2, "<unknown>"]
    sa: dict[str, Any] = {"metadata": {"name": "default", "creationTimestamp": ago(days=400)}}
    assert cells(kind("", "v1", "ServiceAccount"), sa) == ["default", "400d"]
    ns: dict[str, Any] = {"metadata": {"name": "kube-system", "creationTimestamp": ago(days=800)}, "status": {"phase": "Active"}}
    assert cells(kind("", "v1", "Namespace"), ns) == ["kube-system", "Active", "2y70d"]
    ns["metadata"]["deletionTimestamp"] = ago(seconds=1)
    ns["status"]["phase"] = "Terminating"
    assert cells(kind("", "v1", "Namespace"), ns)[1] == "Terminating"


def test_node() -> None:
    node: dict[str, Any] = {"metadata": {"name": "node-1", "creationTimestamp": ago(days=3),
                         "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "",
                                    "kubernetes.io/role": "master", "kubernetes.io/hostname": "node-1"}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                                     {"type": "Hostname", "address": "node-1"}],
                       "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian GNU/Linux 13 (trixie)",
                                    "kernelVersion": "6.12.0", "containerRuntimeVersion": "k8py://0.1.0"}}}
    assert cells(kind("", "v1", "Node"), node) == [
        "node-1", "Ready,SchedulingDisabled", "control-plane,master", "3d", "v1.37.0", "192.168.1.10", "<none>",
        "Debian GNU/Linux 13 (trixie)", "6.12.0", "k8py://0.1.0"]
    new: dict[str, Any] = {"metadata": {"name": "node-2"}}
    assert cells(kind("", "v1", "Node"), new) == [
        "node-2", "Unknown", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]
    node["status"]["conditions"][1]["status"] = "Unknown"
    node["spec"] = {}
    assert cells(kind("", "v1", "Node"), node)[1] == "NotReady"


CORE_EVENT = {
    "apiVersion": "v1", "kind": "Event",
    "metadata": {"name": "web-1.17f2a", "namespace": "default", "creationTimestamp": ago(minutes=10)},
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "fieldPath": "spec.containers{app}",
                       "apiVersion": "v1", "uid": "u-1", "resourceVersion": "12"},
    "reason": "BackOff", "message": "Back-off restarting failed container app\n", "type": "Warning",
    "source": {"component": "kubelet", "host": "node-1"},
    "firstTimestamp": ago(minutes=10), "lastTimestamp": ago(seconds=30), "count": 7,
    "eventTime": None, "reportingComponent": "kubelet", "reportingInstance": "node-1",
}

NEW_EVENT = {
    "apiVersion": "events.k8s.io/v1", "kind": "Event",
    "metadata": {"name": "web-1.17f2b", "namespace": "default", "creationTimestamp": ago(minutes=1)},
    "eventTime": "2025-06-01T11:59:00.123456Z", "reportingController": "default-scheduler",
    "reportingInstance": "default-scheduler-node-1", "action": "Binding", "reason": "Scheduled",
    "regarding": {"kind": "Pod", "namespace": "default", "name": "web-1"},
    "note": "Successfully assigned default/web-1 to node-1", "type": "Normal",
}


def test_events() -> None:
    ev = kind("", "v1", "Event")
    assert cells(ev, CORE_EVENT) == [
        "30s", "Warning", "BackOff", "pod/web-1", "spec.containers{app}", "kubelet, node-1",
        "Back-off restarting failed container app", "10m", 7, "web-1.17f2a"]
    # the same object served by events.k8s.io prints identically
    from k8py.api import conversion
    assert cells(kind("events.k8s.io", "v1", "Event"), conversion.convert(CORE_EVENT, "events.k8s.io/v1")) == \
        cells(ev, CORE_EVENT)
    expected_new = ["59s", "Normal", "Scheduled", "pod/web-1", "", "default-scheduler, default-scheduler-node-1",
                    "Successfully assigned default/web-1 to node-1", "59s", 1, "web-1.17f2b"]
    assert cells(kind("events.k8s.io", "v1", "Event"), NEW_EVENT) == expected_new
    series = dict(NEW_EVENT, series={"count": 4, "lastObservedTime": "2025-06-01T11:59:50.000000Z"})
    assert cells(kind("events.k8s.io", "v1", "Event"), series)[0] == "10s"
    assert cells(kind("events.k8s.io", "v1", "Event"), series)[8] == 4
    cluster = dict(CORE_EVENT, involvedObject={"kind": "Node"}, source={"component": "node-controller"},
                   reportingInstance="")
    assert cells(ev, cluster)[3] == "node"
    assert cells(ev, cluster)[5] == "node-controller"
    cols = [(d["name"], d["priority"]) for d in table_of(ev).definitions()]
    assert cols == [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1), ("Source", 1),
                    ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]


def test_pv_pvc() -> None:
    pv: dict[str, Any] = {"metadata": {"name": "pv-1", "creationTimestamp": ago(hours=5)},
          "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "standard",
                   "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
          "status": {"phase": "Bound"}}
    assert cells(kind("", "v1", "PersistentVolume"), pv) == [
        "pv-1", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "standard", "<unset>", "", "5h", "Filesystem"]
    pvc: dict[str, Any] = {"metadata": {"name": "data", "creationTimestamp": ago(hours=5)},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}},
                    "storageClassName": "standard", "volumeName": "pv-1", "volumeMode": "Filesystem"},
           "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}}}
    assert cells(kind("", "v1", "PersistentVolumeClaim"), pvc) == [
        "data", "Bound", "pv-1", "10Gi", "RWO", "standard", "<unset>", "5h", "Filesystem"]
    pending: dict[str, Any] = {"metadata": {"name": "p", "annotations": {"volume.beta.kubernetes.io/storage-class": "beta"}},
               "spec": {"resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}}
    assert cells(kind("", "v1", "PersistentVolumeClaim"), pending)[1:7] == [
        "Pending", "", "", "", "beta", "<unset>"]
    pvc["metadata"]["deletionTimestamp"] = ago(seconds=1)
    assert cells(kind("", "v1", "PersistentVolumeClaim"), pvc)[1] == "Terminating"


def test_resourcequota_limitrange() -> None:
    rq: dict[str, Any] = {"metadata": {"name": "q", "creationTimestamp": ago(minutes=3)},
          "status": {"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi", "limits.cpu": "8"},
                     "used": {"pods": "2", "requests.cpu": "500m", "limits.cpu": "1"}}}
    assert cells(kind("", "v1", "ResourceQuota"), rq) == [
        "q", "pods: 2/10, requests.cpu: 500m/4", "limits.cpu: 1/8, limits.memory: 0/8Gi", "3m"]
    lr: dict[str, Any] = {"metadata": {"name": "limits", "creationTimestamp": "2025-05-30T08:15:00Z"}}
    t = tables.table(table_of(kind("", "v1", "LimitRange")), [lr], now=NOW)
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Created At"]
    assert t["columnDefinitions"][1]["type"] == "date"
    assert t["rows"][0]["cells"] == ["limits", "2025-05-30T08:15:00Z"]


def test_rbac() -> None:
    rb: dict[str, Any] = {"metadata": {"name": "read-pods", "creationTimestamp": ago(minutes=2)},
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
          "subjects": [{"kind": "User", "name": "jane"}, {"kind": "Group", "name": "devs"},
                       {"kind": "ServiceAccount", "namespace": "ci", "name": "bot"}, {"kind": "User", "name": "bob"}]}
    assert cells(kind("rbac.authorization.k8s.io", "v1", "RoleBinding"), rb) == [
        "read-pods", "Role/pod-reader", "2m", "jane, bob", "devs", "ci/bot"]
    crb = dict(rb, roleRef={"kind": "ClusterRole", "name": "admin"}, subjects=[])
    assert cells(kind("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"), crb) == [
        "read-pods", "ClusterRole/admin", "2m", "", "", ""]
    role: dict[str, Any] = {"metadata": {"name": "pod-reader", "creationTimestamp": "2025-06-01T11:00:00Z"}}
    assert cells(kind("rbac.authorization.k8s.io", "v1", "Role"), role) == ["pod-reader", "2025-06-01T11:00:00Z"]
    assert cells(kind("rbac.authorization.k8s.io", "v1", "ClusterRole"), role)[1] == "2025-06-01T11:00:00Z"


def test_misc_kinds() -> None:
    lease: dict[str, Any] = {"metadata": {"name": "kube-scheduler", "creationTimestamp": ago(days=1)},
             "spec": {"holderIdentity": "node-1_abc", "leaseDurationSeconds": 15}}
    assert cells(kind("coordination.k8s.io", "v1", "Lease"), lease) == ["kube-scheduler", "node-1_abc", "24h"]
    sc: dict[str, Any] = {"metadata": {"name": "local-path", "creationTimestamp": ago(days=1),
                       "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
          "provisioner": "k8py.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}
    assert cells(kind("storage.k8s.io", "v1", "StorageClass"), sc) == [
        "local-path (default)", "k8py.io/local-path", "Delete", "WaitForFirstConsumer", False, "24h"]
    pc: dict[str, Any] = {"metadata": {"name": "system-cluster-critical", "creationTimestamp": ago(days=1)}, "value": 2000000000,
          "globalDefault": False, "preemptionPolicy": "PreemptLowerPriority"}
    assert cells(kind("scheduling.k8s.io", "v1", "PriorityClass"), pc) == [
        "system-cluster-critical", 2000000000, False, "24h", "PreemptLowerPriority"]
    pdb: dict[str, Any] = {"metadata": {"name": "web", "creationTimestamp": ago(days=1)}, "spec": {"minAvailable": "50%"},
           "status": {"disruptionsAllowed": 1}}
    assert cells(kind("policy", "v1", "PodDisruptionBudget"), pdb) == ["web", "50%", "N/A", 1, "24h"]
    pdb["spec"] = {"maxUnavailable": 1}
    assert cells(kind("policy", "v1", "PodDisruptionBudget"), pdb)[1:3] == ["N/A", "1"]
    cr: dict[str, Any] = {"metadata": {"name": "web-7c9", "creationTimestamp": ago(days=1), "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": True}]},
          "revision": 3, "data": {}}
    assert cells(kind("apps", "v1", "ControllerRevision"), cr) == ["web-7c9", "statefulset.apps/web", 3, "24h"]
    cr["metadata"]["ownerReferences"] = []
    assert cells(kind("apps", "v1", "ControllerRevision"), cr)[1] == "<none>"
    tmpl: dict[str, Any] = {"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"a": "b"}},
                                                   "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    assert cells(kind("", "v1", "PodTemplate"), tmpl) == ["t", "c", "i", "a=b"]


def test_hpa_both_versions() -> None:
    from k8py.api import conversion
    v2: dict[str, Any] = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "web", "creationTimestamp": ago(minutes=20)},
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                   "minReplicas": 1, "maxReplicas": 10,
                   "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                       "type": "Utilization", "averageUtilization": 50}}}]},
          "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentMetrics": [
              {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 23,
                                                                           "averageValue": "115m"}}}]}}
    expected = ["web", "Deployment/web", "cpu: 23%/50%", "1", 10, 2, "20m"]
    assert cells(kind("autoscaling", "v2", "HorizontalPodAutoscaler"), v2) == expected
    assert cells(kind("autoscaling", "v1", "HorizontalPodAutoscaler"), conversion.convert(v2, "autoscaling/v1")) \
        == expected
    v2["spec"]["metrics"] += [
        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue",
                                                                        "averageValue": "1k"}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                       "averageValue": "100Mi"}}}]
    v2["status"] = {}
    v2["spec"].pop("minReplicas")
    assert cells(kind("autoscaling", "v2", "HorizontalPodAutoscaler"), v2)[2:5] == [
        "cpu: <unknown>/50%, <unknown>/1k + 1 more...", "<unset>", 10]
    v2["spec"]["metrics"] = []
    assert cells(kind("autoscaling", "v2", "HorizontalPodAutoscaler"), v2)[2] == "<none>"


# --- the Table envelope ------------------------------------------------------

def test_every_served_kind_prints_a_row_per_object_with_one_cell_per_column() -> None:
    minimal: dict[str, Any] = {"metadata": {"name": "x", "namespace": "default", "creationTimestamp": ago(hours=1)}}
    for k in BUILTIN_KINDS:
        obj = dict(copy.deepcopy(minimal), apiVersion=k.api_version, kind=k.kind)
        t = tables.table(table_of(k), [obj, obj], now=NOW)
        assert len(t["rows"]) == 2, k
        for row in t["rows"]:
            assert len(row["cells"]) == len(t["columnDefinitions"]), k
            assert all(isinstance(c, str | int | bool) for c in row["cells"]), k
        assert any(c["format"] == "name" for c in t["columnDefinitions"]), k


def test_include_object_modes() -> None:
    p = pod({"phase": "Running"})
    meta = tables.table(table_of(POD), [p], now=NOW)["rows"][0]["object"]
    assert meta == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"]}
    assert tables.table(table_of(POD), [p], now=NOW, include_object="")["rows"][0]["object"] == meta
    assert tables.table(table_of(POD), [p], now=NOW, include_object="Object")["rows"][0]["object"] is p
    assert tables.table(table_of(POD), [p], now=NOW, include_object="None")["rows"][0]["object"] is None
    with pytest.raises(StatusError) as e:
        tables.table(table_of(POD), [p], include_object="Everything")
    assert e.value.code == 400
    assert e.value.message == 'unrecognized includeObject value: "Everything"'


def test_table_metadata_and_headers() -> None:
    p = pod({"phase": "Running"})
    single = tables.table(table_of(POD), [p], now=NOW)
    assert single["kind"] == "Table"
    assert single["apiVersion"] == "meta.k8s.io/v1"
    assert single["metadata"] == {"resourceVersion": "42"}
    listed = tables.table(table_of(POD), [p, p], now=NOW,
                          list_meta={"resourceVersion": "99", "continue": "tok", "remainingItemCount": 3})
    assert listed["metadata"] == {"resourceVersion": "99", "continue": "tok", "remainingItemCount": 3}
    empty = tables.table(table_of(POD), [], now=NOW, list_meta={"resourceVersion": "7"})
    assert empty["rows"] == []
    assert len(empty["columnDefinitions"]) == 9
    assert empty["metadata"] == {"resourceVersion": "7"}
    assert tables.table(table_of(POD), [p], now=NOW, no_headers=True)["columnDefinitions"] == []
    beta = tables.table(table_of(POD), [p], now=NOW, group_version="meta.k8s.io/v1beta1")
    assert beta["apiVersion"] == beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"


def test_table_does_not_modify_objects() -> None:
    obj = copy.deepcopy(POD_CASES[4][1])
    before = copy.deepcopy(obj)
    tables.table(table_of(POD), [obj], now=NOW, include_object="Object")
    hpa1: dict[str, Any] = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3}}
    hpa_before = copy.deepcopy(hpa1)
    tables.table(table_of(kind("autoscaling", "v1", "HorizontalPodAutoscaler")), [hpa1], now=NOW)
    assert obj == before
    assert hpa1 == hpa_before


def test_partial_object_metadata() -> None:
    p = pod({"phase": "Running"})
    assert tables.partial_object_metadata(POD, p) == {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"]}
    lst = tables.partial_object_metadata_list(POD, [p, p], {"resourceVersion": "10", "continue": ""})
    assert lst["kind"] == "PartialObjectMetadataList"
    assert lst["apiVersion"] == "meta.k8s.io/v1"
    assert lst["metadata"] == {"resourceVersion": "10"}
    assert [i["kind"] for i in lst["items"]] == ["PartialObjectMetadata"] * 2


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (-1.5, "0s"), (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (150, "2m30s"),
    (599, "9m59s"), (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (3 * 3600 + 5 * 60, "3h5m"),
    (8 * 3600, "8h"), (47 * 3600 + 59 * 60, "47h"), (48 * 3600, "2d"), (51 * 3600, "2d3h"), (8 * 86400, "8d"),
    (729 * 86400, "729d"), (731 * 86400, "2y1d"), (3 * 365 * 86400, "3y"), (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert tables.human_duration(timedelta(seconds=seconds)) == text


def test_age_edge_cases() -> None:
    assert tables.since(None, NOW) == "<unknown>"
    assert tables.since("", NOW) == "<unknown>"
    assert tables.since("not-a-time", NOW) == "<unknown>"
    assert tables.since("2025-06-01T11:59:59.5Z", NOW) == "0s"
    assert tables.since("2025-06-01T12:00:30Z", NOW) == "<invalid>"


def test_hpa_external_and_object_metric_targets() -> None:
    """kubectl's TARGETS for External and Object metrics: value, or average value with (avg)."""
    hpa_kind = kind("autoscaling", "v2", "HorizontalPodAutoscaler")
    metrics = [
        {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "10"}}},
        {"type": "Object", "object": {"metric": {"name": "rps"}, "describedObject": {"kind": "Service", "name": "s"},
                                      "target": {"type": "AverageValue", "averageValue": "5"}}},
    ]
    hpa: dict[str, Any] = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                           "metadata": {"name": "h", "creationTimestamp": ago(minutes=1)},
                           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3,
                                    "metrics": metrics}}
    assert cells(hpa_kind, hpa)[2] == "<unknown>/10, <unknown>/5 (avg)"
    hpa["status"] = {"currentMetrics": [
        {"type": "External", "external": {"metric": {"name": "queue"}, "current": {"value": "7"}}},
        {"type": "Object", "object": {"metric": {"name": "rps"}, "current": {"averageValue": "4"}}},
    ]}
    assert cells(hpa_kind, hpa)[2] == "7/10, 4/5 (avg)"
