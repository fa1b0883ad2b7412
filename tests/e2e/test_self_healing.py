"""Self-healing on real containers: restart back-off, liveness and readiness probes, init and
sidecar containers, lifecycle hooks; `k8py server` with its node agent (runc, conmon, CNI),
driven with kubectl.

Each pod reads a hostPath directory of the test (its "control" folder): the test makes a probe
pass or fail by creating or removing a file there, and containers write what they did into a log
there that the test reads after the pod is gone. Probe traffic goes only to pod IPs inside the
cluster's own network namespaces. Everything is removed at the end with `k8py killall`, and the
fixture checks nothing is left."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Server, wait
from tests.e2e.test_node_agent import apply, phase, pod_json
from tests.helpers.realnode import IMAGE, SHARED_NODE, SharedRealNode, namespace_for

NODE = SHARED_NODE

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        yield s


@pytest.fixture
def ns(cluster: Server, request: pytest.FixtureRequest) -> str:
    return namespace_for(cluster, request, "h")


@pytest.fixture
def ctl(tmp_path: Path) -> Path:
    """The pod's control folder on the node (a hostPath volume at /ctl)."""
    d = tmp_path / "ctl"
    d.mkdir()
    d.chmod(0o777)
    return d


def with_ctl(manifest: dict[str, Any], ctl: Path) -> dict[str, Any]:
    spec = manifest["spec"]
    spec["volumes"] = [{"name": "ctl", "hostPath": {"path": str(ctl), "type": "Directory"}}]
    for c in [*spec.get("initContainers", ()), *spec["containers"]]:
        c.setdefault("image", IMAGE)
        c.setdefault("imagePullPolicy", "IfNotPresent")
        c["volumeMounts"] = [{"name": "ctl", "mountPath": "/ctl"}]
    return manifest


def a_pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": containers, **spec}}


def status_of(s: Server, name: str, ns: str, container: str = "main") -> dict[str, Any]:
    p = pod_json(s, name, ns) or {}
    st = p.get("status") or {}
    for c in [*(st.get("initContainerStatuses") or ()), *(st.get("containerStatuses") or ())]:
        if c["name"] == container:
            return c  # type: ignore[no-any-return]
    return {}


def events(s: Server, name: str, ns: str) -> list[dict[str, Any]]:
    out = s.kjson("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
    return out["items"]  # type: ignore[no-any-return]


def condition(s: Server, name: str, ns: str, t: str) -> str:
    p = pod_json(s, name, ns) or {}
    return next((c["status"] for c in (p.get("status") or {}).get("conditions") or () if c["type"] == t), "")


def test_a_crashing_container_backs_off_longer_each_time(cluster: Server, ns: str) -> None:
    s = cluster
    apply(s, ns, a_pod("crash", [{"name": "main", "image": IMAGE, "command": ["sh", "-c", "exit 3"]}]))

    def backoff(delay: str) -> Any:
        c = status_of(s, "crash", ns)
        w = (c.get("state") or {}).get("waiting") or {}
        return c if w.get("reason") == "CrashLoopBackOff" and f"back-off {delay} " in w.get("message", "") else None

    first = wait(lambda: backoff("10s"), 60, "CrashLoopBackOff with a 10 s back-off")
    assert first["lastState"]["terminated"]["exitCode"] == 3
    second = wait(lambda: backoff("20s"), 60, "the back-off doubled to 20 s")
    assert second["restartCount"] > first["restartCount"]
    assert "CrashLoopBackOff" in s.kubectl("get", "pod", "crash", "-n", ns).stdout
    msgs = [e["message"] for e in events(s, "crash", ns) if e["reason"] == "BackOff"]
    assert msgs and msgs[0].startswith("Back-off restarting failed container main in pod crash_")


def test_a_failing_liveness_probe_restarts_the_container(cluster: Server, ns: str, ctl: Path) -> None:
    s = cluster
    (ctl / "alive").write_text("yes\n")
    main = {"name": "main", "command": ["sh", "-c", "echo started >> /ctl/log; exec sleep 3600"],
            "livenessProbe": {"exec": {"command": ["cat", "/ctl/alive"]}, "periodSeconds": 1,
                              "failureThreshold": 2, "terminationGracePeriodSeconds": 1}}
    apply(s, ns, with_ctl(a_pod("live", [main], terminationGracePeriodSeconds=30), ctl))
    wait(lambda: status_of(s, "live", ns).get("ready"), 60, "the container running and ready")
    assert status_of(s, "live", ns)["restartCount"] == 0
    (ctl / "alive").unlink()  # the probe starts failing
    wait(lambda: status_of(s, "live", ns).get("restartCount", 0) >= 1, 60, "a restart")
    (ctl / "alive").write_text("yes\n")
    evs = events(s, "live", ns)
    unhealthy = [e for e in evs if e["reason"] == "Unhealthy"]
    assert unhealthy and unhealthy[0]["type"] == "Warning"
    assert unhealthy[0]["message"].startswith("Liveness probe failed: cat: can't open '/ctl/alive'"), unhealthy
    killing = [e["message"] for e in evs if e["reason"] == "Killing"]
    assert "Container main failed liveness probe, will be restarted" in killing, killing
    c = status_of(s, "live", ns)
    # the probe's own grace period (1 s): `sleep` ignores nothing, SIGTERM ends it
    assert c["lastState"]["terminated"]["exitCode"] in (137, 143), c
    wait(lambda: (ctl / "log").read_text().count("started") >= 2, 30, "the container ran again")
    wait(lambda: status_of(s, "live", ns).get("ready"), 60, "running again, and healthy")


def test_readiness_takes_the_pod_out_of_its_services_endpoints_and_back(cluster: Server, ns: str,
                                                                        ctl: Path) -> None:
    s = cluster
    (ctl / "ready").write_text("ok\n")
    main = {"name": "main", "command": ["httpd", "-f", "-p", "8080", "-h", "/ctl"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1,
                               "failureThreshold": 1}}
    apply(s, ns, with_ctl(a_pod("web", [main]), ctl))
    apply(s, ns, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                  "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}})

    def endpoint_ready() -> bool | None:
        slices = s.kjson("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web")["items"]
        eps = [e for sl in slices for e in sl.get("endpoints") or ()]
        return eps[0]["conditions"].get("ready") if len(eps) == 1 else None

    wait(lambda: condition(s, "web", ns, "Ready") == "True", 60, "the pod Ready")
    wait(lambda: endpoint_ready() is True, 30, "a ready endpoint")
    (ctl / "ready").unlink()  # the probe now gets a 404
    wait(lambda: condition(s, "web", ns, "Ready") == "False", 30, "the pod not Ready")
    wait(lambda: endpoint_ready() is False, 30, "the endpoint not ready")
    c = status_of(s, "web", ns)
    assert c["ready"] is False and c["started"] is True and "running" in c["state"] and c["restartCount"] == 0
    assert "0/1" in s.kubectl("get", "pod", "web", "-n", ns).stdout
    msgs = [e["message"] for e in events(s, "web", ns) if e["reason"] == "Unhealthy"]
    assert "Readiness probe failed: HTTP probe failed with statuscode: 404" in msgs, msgs
    (ctl / "ready").write_text("ok\n")
    wait(lambda: condition(s, "web", ns, "Ready") == "True", 30, "Ready again")
    wait(lambda: endpoint_ready() is True, 30, "the endpoint ready again")


def test_init_and_sidecar_containers_start_in_order_and_the_sidecar_stops_last(cluster: Server, ns: str,
                                                                               ctl: Path) -> None:
    s = cluster
    loop = "while true; do sleep 0.1; done"
    side = {"name": "side", "restartPolicy": "Always",
            "command": ["sh", "-c", (f"echo side-start >> /ctl/log; trap 'echo side-stop >> /ctl/log; exit 0' TERM; "
                                     f"{loop}")]}
    setup = {"name": "setup", "command": ["sh", "-c", "grep -q side-start /ctl/log && echo setup-done >> /ctl/log"]}
    main = {"name": "main",
            "command": ["sh", "-c", (f"echo app-start >> /ctl/log; trap 'echo app-stop >> /ctl/log; exit 0' TERM; "
                                     f"{loop}")],
            "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo post-start >> /ctl/log"]}},
                          "preStop": {"exec": {"command": ["sh", "-c", "echo pre-stop >> /ctl/log"]}}}}
    apply(s, ns, with_ctl(a_pod("sc", [main], initContainers=[side, setup], terminationGracePeriodSeconds=20), ctl))
    wait(lambda: condition(s, "sc", ns, "Ready") == "True", 90, "the pod Ready")
    st = pod_json(s, "sc", ns)["status"]
    assert st["phase"] == "Running"
    inits = {c["name"]: c for c in st["initContainerStatuses"]}
    assert "running" in inits["side"]["state"] and inits["side"]["started"] and inits["side"]["ready"]
    assert inits["setup"]["state"]["terminated"]["reason"] == "Completed"
    assert "2/2" in s.kubectl("get", "pod", "sc", "-n", ns).stdout  # kubectl counts the sidecar
    log = (ctl / "log").read_text().split()
    assert log[:3] == ["side-start", "setup-done", "app-start"], log
    assert "post-start" in log
    s.kubectl("delete", "pod", "sc", "-n", ns, timeout=90)
    log = (ctl / "log").read_text().split()
    assert log.index("pre-stop") < log.index("app-stop") < log.index("side-stop"), log


def test_a_sidecar_does_not_keep_a_finished_pod_running(cluster: Server, ns: str, ctl: Path) -> None:
    s = cluster
    side = {"name": "side", "restartPolicy": "Always", "command": ["sh", "-c", "exec sleep 3600"]}
    main = {"name": "main", "command": ["sh", "-c", "echo done"]}
    apply(s, ns, with_ctl(a_pod("job", [main], initContainers=[side], restartPolicy="Never",
                                terminationGracePeriodSeconds=2), ctl))
    wait(lambda: phase(s, "job", ns) == "Succeeded", 90, "the pod Succeeded")
    st = pod_json(s, "job", ns)["status"]
    assert "terminated" in st["initContainerStatuses"][0]["state"], json.dumps(st)
    assert st["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_a_startup_probe_holds_the_others_back_and_restarts_a_container_that_never_starts(
        cluster: Server, ns: str, ctl: Path) -> None:
    s = cluster
    check = {"exec": {"command": ["cat", "/ctl/started"]}, "periodSeconds": 1}
    main = {"name": "main", "command": ["sh", "-c", "exec sleep 3600"],
            # the probe's own grace period: `sleep`, PID 1 of its container, does not die of SIGTERM,
            # so with the pod's (30 s) the restart would wait that long for SIGKILL
            "startupProbe": {**check, "failureThreshold": 3, "terminationGracePeriodSeconds": 1},
            # would fail at once if it ran before the startup probe passed
            "livenessProbe": {"exec": {"command": ["cat", "/ctl/alive"]}, "periodSeconds": 1, "failureThreshold": 1}}
    apply(s, ns, with_ctl(a_pod("slow", [main]), ctl))
    wait(lambda: "running" in (status_of(s, "slow", ns).get("state") or {}), 60, "the container running")
    c = status_of(s, "slow", ns)
    assert c["started"] is False and c["ready"] is False
    wait(lambda: status_of(s, "slow", ns).get("restartCount", 0) >= 1, 60, "a restart after the startup probe failed")
    killing = [e["message"] for e in events(s, "slow", ns) if e["reason"] == "Killing"]
    assert "Container main failed startup probe, will be restarted" in killing, killing
    assert not any("liveness" in m for m in killing), killing
    (ctl / "alive").write_text("yes\n")
    (ctl / "started").write_text("yes\n")
    wait(lambda: status_of(s, "slow", ns).get("started") and status_of(s, "slow", ns).get("ready"), 60,
         "started and ready once the startup probe passes")


def test_a_second_delete_with_a_shorter_grace_period_cuts_the_termination_short(cluster: Server, ns: str,
                                                                                  ctl: Path) -> None:
    # the container ignores SIGTERM and may take 5 minutes to stop; its preStop hook runs once
    s = cluster
    apply(s, ns, with_ctl(a_pod("slow", [{
        "name": "main", "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /ctl/log"]}}}}],
        terminationGracePeriodSeconds=300), ctl))
    wait(lambda: phase(s, "slow", ns) == "Running", 60, "slow running")
    s.kubectl("delete", "pod", "slow", "-n", ns, "--wait=false")
    wait(lambda: any(e["reason"] == "Killing" for e in events(s, "slow", ns)), 30, "the agent stopping slow")
    wait(lambda: (ctl / "log").exists(), 30, "the preStop hook run")
    assert (pod_json(s, "slow", ns) or {})["metadata"]["deletionGracePeriodSeconds"] == 300
    # kubelet's pod workers take the shorter period at once: the stop signal again, SIGKILL
    # 2 s later, rather than after the 300 s of the first delete
    out = s.kubectl("delete", "pod", "slow", "-n", ns, "--grace-period=1", "--wait=false")
    assert 'pod "slow" deleted' in out.stdout
    wait(lambda: pod_json(s, "slow", ns) is None, 60, "slow gone within the shorter grace period")
    assert (ctl / "log").read_text() == "prestop\n"  # the hook was not run again
