"""The pod state machine against kubelet's rules (computePodActions, getPhase,
generateAPIPodStatus, status/generate.go): plain data in, actions and statuses out."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.api.corev1 import format_epoch
from k8py.kubelet.podstate import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    Memory,
    Observed,
    ProbeResults,
    compute_actions,
    is_terminal,
    next_backoff,
    pod_phase,
    pod_status,
)
from k8py.kubelet.runtime.types import ContainerState, ContainerStatus, SandboxState, SandboxStatus

NOW = 1_700_000_000.0
RUNNING, EXITED, CREATED, UNKNOWN = (ContainerState.RUNNING, ContainerState.EXITED, ContainerState.CREATED,
                                     ContainerState.UNKNOWN)


def pod(*names: str, init: tuple[str, ...] = (), restart: str = "Always", status: dict[str, Any] | None = None,
        **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1"},
            "spec": {"restartPolicy": restart,
                     "containers": [{"name": n, "image": f"img/{n}:1"} for n in names or ("app",)],
                     **({"initContainers": [{"name": n, "image": f"img/{n}:1"} for n in init]} if init else {}),
                     **spec},
            "status": status or {}}


def sandbox(sid: str = "sb1", attempt: int = 0, ready: bool = True,
            ips: tuple[str, ...] = ("10.0.0.5",)) -> SandboxStatus:
    return SandboxStatus(sid, "web", "ns", "u-1", attempt, SandboxState.READY if ready else SandboxState.NOTREADY,
                         created_at=NOW - 100 + attempt, ips=ips)


def ctr(name: str, state: ContainerState, attempt: int = 0, sb: str = "sb1", code: int = 0,
        started: float = NOW - 50, finished: float = 0.0, cid: str | None = None, reason: str = "") -> ContainerStatus:
    if state == EXITED and not finished:
        finished = NOW - 5
    return ContainerStatus(cid or f"{name}-{sb}-{attempt}", sb, name, attempt, f"img/{name}:1", "sha256:abc", state,
                           created_at=NOW - 60 + attempt, started_at=started if state != CREATED else 0.0,
                           finished_at=finished if state == EXITED else 0.0, exit_code=code, reason=reason)


def obs(*cs: ContainerStatus, sandboxes: tuple[SandboxStatus, ...] | None = None) -> Observed:
    return Observed(sandboxes if sandboxes is not None else (sandbox(),), cs)


def started(acts: Any) -> list[tuple[str, bool, int]]:
    return [(s.spec["name"], s.init, s.attempt) for s in acts.start]


def conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


# --------------------------------------------------------------------------- back-off


def test_next_backoff_doubles_to_five_minutes_and_resets_after_a_long_run() -> None:
    entry = next_backoff(None, 1.0, NOW)
    assert entry == (NOW + BACKOFF_INITIAL, BACKOFF_INITIAL)
    delays = []
    for _ in range(7):
        entry = next_backoff(entry, 1.0, NOW)
        delays.append(entry[1])
    assert delays == [20, 40, 80, 160, 300, 300, 300]
    assert entry[1] == BACKOFF_MAX
    assert next_backoff(entry, 600.0, NOW)[1] == BACKOFF_MAX  # exactly twice the maximum: still backing off
    assert next_backoff(entry, 601.0, NOW) == (NOW + 10, 10)  # ran longer: forgotten


# --------------------------------------------------------------------------- compute_actions


def test_a_new_pod_gets_a_sandbox_and_all_its_containers() -> None:
    acts = compute_actions(pod("a", "b"), Observed(), Memory(), NOW)
    assert acts.create_sandbox and not acts.kill_pod and acts.sandbox_attempt == 0
    assert started(acts) == [("a", False, 0), ("b", False, 0)]


def test_a_new_pod_with_init_containers_starts_only_the_first() -> None:
    acts = compute_actions(pod("app", init=("i1", "i2")), Observed(), Memory(), NOW)
    assert acts.create_sandbox and started(acts) == [("i1", True, 0)]


def test_init_containers_run_one_at_a_time_each_to_completion() -> None:
    p = pod("app", init=("i1", "i2"))
    assert started(compute_actions(p, obs(), Memory(), NOW)) == [("i1", True, 0)]
    assert compute_actions(p, obs(ctr("i1", RUNNING)), Memory(), NOW).idle()
    # created but never started (the agent stopped in between): killed and started again
    acts = compute_actions(p, obs(ctr("i1", CREATED)), Memory(), NOW)
    assert [k.name for k, _ in acts.kill] == ["i1"] and started(acts) == [("i1", True, 1)]
    assert started(compute_actions(p, obs(ctr("i1", EXITED)), Memory(), NOW)) == [("i2", True, 0)]
    assert started(compute_actions(p, obs(ctr("i1", EXITED), ctr("i2", EXITED)), Memory(), NOW)) == [
        ("app", False, 0)]


def test_a_failed_init_container_fails_the_pod_under_never_and_restarts_otherwise() -> None:
    failed = obs(ctr("i1", EXITED, code=2))
    acts = compute_actions(pod("app", init=("i1",), restart="Never"), failed, Memory(), NOW)
    assert is_terminal(pod("app", init=("i1",), restart="Never"), failed)
    assert acts.kill_pod and not acts.start  # the sandbox goes
    acts = compute_actions(pod("app", init=("i1",), restart="OnFailure"), failed, Memory(), NOW)
    assert started(acts) == [("i1", True, 1)]


def test_initialized_pod_does_not_rerun_init_containers_whose_records_are_gone() -> None:
    acts = compute_actions(pod("app", init=("i1",)), obs(ctr("app", RUNNING)), Memory(), NOW)
    assert acts.idle()


def test_restart_policy_decides_which_exited_containers_restart() -> None:
    ok, bad = ctr("a", EXITED, code=0), ctr("b", EXITED, code=1)
    assert started(compute_actions(pod("a", "b", restart="Always"), obs(ok, bad), Memory(), NOW)) == [
        ("a", False, 1), ("b", False, 1)]
    assert started(compute_actions(pod("a", "b", restart="OnFailure"), obs(ok, bad), Memory(), NOW)) == [
        ("b", False, 1)]
    never = compute_actions(pod("a", "b", restart="Never"), obs(ok, bad), Memory(), NOW)
    assert never.kill_pod and not never.start  # Failed: the sandbox is stopped


def test_a_running_container_is_left_alone() -> None:
    assert compute_actions(pod("a"), obs(ctr("a", RUNNING)), Memory(), NOW).idle()


def test_first_restart_is_immediate_then_crashloopbackoff_counts_from_the_exit() -> None:
    p = pod("app")
    crashed = ctr("app", EXITED, attempt=1, code=1, started=NOW - 8, finished=NOW - 3)
    # restarted 10 s ago with a 20 s delay pending; it ran 5 s: back-off ends 20 s after it exited
    mem = Memory(backoff={"app": (NOW - 10 + 20, 20.0)})
    acts = compute_actions(p, obs(crashed), mem, NOW)
    assert not acts.start
    assert acts.waiting == {"app": ("CrashLoopBackOff", "back-off 20s restarting failed container=app pod=web_ns(u-1)")}
    assert acts.wake_at == NOW - 3 + 20
    later = compute_actions(p, obs(crashed), mem, NOW - 3 + 20)
    assert started(later) == [("app", False, 2)] and not later.waiting
    # no back-off yet (its first exit): straight away
    assert started(compute_actions(p, obs(crashed), Memory(), NOW)) == [("app", False, 2)]


def test_crashloop_message_prints_minutes_like_go() -> None:
    mem = Memory(backoff={"app": (NOW + 200, 300.0)})
    acts = compute_actions(pod("app"), obs(ctr("app", EXITED, attempt=6, code=1, finished=NOW - 1)), mem, NOW)
    assert acts.waiting["app"][1].startswith("back-off 5m0s restarting failed container=app ")


def test_a_back_off_older_than_twice_the_maximum_before_the_exit_is_forgotten() -> None:
    # restarted 30 minutes ago, ran 29 minutes: kubelet's hasExpired
    mem = Memory(backoff={"app": (NOW - 1800 + 40, 40.0)})
    acts = compute_actions(pod("app"), obs(ctr("app", EXITED, attempt=3, code=1, started=NOW - 1800,
                                                 finished=NOW - 60)), mem, NOW)
    assert started(acts) == [("app", False, 4)]


def test_failed_starts_wait_for_their_retry() -> None:
    mem = Memory(waiting={"app": ("ErrImagePull", "no such image")}, retry={"app": (NOW + 7, 10.0)})
    acts = compute_actions(pod("app"), obs(), mem, NOW)
    assert acts.idle() and acts.wake_at == NOW + 7
    assert started(compute_actions(pod("app"), obs(), mem, NOW + 7)) == [("app", False, 0)]


def test_a_container_in_unknown_state_is_killed_then_started_again() -> None:
    lost = ctr("app", UNKNOWN)
    acts = compute_actions(pod("app"), obs(lost), Memory(), NOW)
    assert [(c.id, why) for c, why in acts.kill] == [
        (lost.id, 'Container is in "CONTAINER_UNKNOWN" state, try killing it before restart')]
    assert started(acts) == [("app", False, 1)]


def test_a_dead_sandbox_is_replaced_and_restart_counts_carry_on() -> None:
    old = sandbox("sb1", attempt=0, ready=False)
    o = obs(ctr("app", EXITED, attempt=3, code=137), sandboxes=(old,))
    acts = compute_actions(pod("app"), o, Memory(), NOW)
    assert acts.kill_pod and acts.create_sandbox and acts.sandbox_attempt == 1
    assert started(acts) == [("app", False, 4)]  # not 0: kubelet counts on (and keeps the old log)


def test_a_new_sandbox_runs_init_containers_again_from_the_first() -> None:
    o = obs(ctr("i1", EXITED, attempt=0), ctr("app", EXITED, attempt=2, code=1),
            sandboxes=(sandbox("sb1", ready=False),))
    acts = compute_actions(pod("app", init=("i1",)), o, Memory(), NOW)
    assert acts.create_sandbox and started(acts) == [("i1", True, 1)]


def test_on_failure_does_not_rerun_succeeded_containers_in_a_new_sandbox() -> None:
    o = obs(ctr("a", EXITED, code=0), ctr("b", EXITED, code=1), sandboxes=(sandbox("sb1", ready=False),))
    acts = compute_actions(pod("a", "b", restart="OnFailure"), o, Memory(), NOW)
    assert acts.create_sandbox and started(acts) == [("b", False, 1)]
    # in the new sandbox, "a" is still the one that succeeded: nothing more to start
    o2 = Observed((sandbox("sb2", attempt=1), sandbox("sb1", ready=False)),
                  (ctr("a", EXITED, code=0), ctr("b", EXITED, code=1), ctr("b", RUNNING, attempt=1, sb="sb2")))
    assert compute_actions(pod("a", "b", restart="OnFailure"), o2, Memory(), NOW).idle()
    assert pod_phase(pod("a", "b", restart="OnFailure"), o2, {}) == "Running"
    o3 = Observed(o2.sandboxes, (*o2.containers[:2], ctr("b", EXITED, attempt=1, sb="sb2", code=0)))
    assert pod_phase(pod("a", "b", restart="OnFailure"), o3, {}) == "Succeeded"


def test_never_gets_no_new_sandbox_once_it_ran() -> None:
    o = obs(ctr("app", EXITED, code=0), sandboxes=(sandbox(ready=False),))
    assert compute_actions(pod("app", restart="Never"), o, Memory(), NOW).idle()
    # still running in a sandbox that went away: stopped, not replaced
    o = obs(ctr("app", RUNNING), sandboxes=(sandbox(ready=False),))
    acts = compute_actions(pod("app", restart="Never"), o, Memory(), NOW)
    assert acts.kill_pod and not acts.create_sandbox


def test_sandbox_failures_back_off() -> None:
    mem = Memory(sandbox_error=("FailedCreatePodSandBox", "cni failed"), sandbox_backoff=(NOW + 5, 10.0))
    acts = compute_actions(pod("app"), Observed(), mem, NOW)
    assert acts.idle() and acts.wake_at == NOW + 5


def test_rejected_and_finished_pods_do_nothing_but_stop() -> None:
    assert compute_actions(pod("app"), Observed(), Memory(rejected=("OutOfcpu", "x")), NOW).idle()
    done = pod("app", status={"phase": "Succeeded"})
    assert compute_actions(done, obs(ctr("app", EXITED)), Memory(), NOW).kill_pod
    assert compute_actions(done, obs(ctr("app", EXITED), sandboxes=(sandbox(ready=False),)), Memory(), NOW).idle()


# --------------------------------------------------------------------------- phase


@pytest.mark.parametrize(("restart", "states", "phase"), [
    ("Always", [], "Pending"),
    ("Always", [("a", RUNNING, 0)], "Running"),
    ("Always", [("a", RUNNING, 0), ("b", None, 0)], "Pending"),
    ("Always", [("a", CREATED, 0)], "Pending"),
    ("Always", [("a", EXITED, 0)], "Running"),
    ("Always", [("a", EXITED, 1)], "Running"),
    ("OnFailure", [("a", EXITED, 0)], "Succeeded"),
    ("OnFailure", [("a", EXITED, 1)], "Running"),
    ("Never", [("a", EXITED, 0)], "Succeeded"),
    ("Never", [("a", EXITED, 3)], "Failed"),
    ("Never", [("a", EXITED, 0), ("b", RUNNING, 0)], "Running"),
    ("Never", [("a", EXITED, 0), ("b", EXITED, 1)], "Failed"),
])
def test_phase_is_kubelets_get_phase(restart: str, states: list[tuple[str, Any, int]], phase: str) -> None:
    names = [n for n, _, _ in states] or ["a"]
    cs = [ctr(n, st, code=code) for n, st, code in states if st is not None]
    assert pod_phase(pod(*names, restart=restart), obs(*cs), {}) == phase


def test_phase_with_init_containers() -> None:
    p = pod("app", init=("i1",), restart="Never")
    assert pod_phase(p, obs(ctr("i1", RUNNING)), {}) == "Pending"
    assert pod_phase(p, obs(ctr("i1", EXITED, code=1)), {}) == "Failed"
    assert pod_phase(pod("app", init=("i1",), restart="OnFailure"), obs(ctr("i1", EXITED, code=1)), {}) == "Pending"
    assert pod_phase(p, obs(ctr("i1", EXITED), ctr("app", RUNNING)), {}) == "Running"


def test_a_terminal_phase_never_changes() -> None:
    assert pod_phase(pod("a", status={"phase": "Failed"}), obs(ctr("a", RUNNING)), {}) == "Failed"


# --------------------------------------------------------------------------- status


def test_status_of_a_pod_not_started_yet() -> None:
    st = pod_status(pod("app"), Observed(), Memory(), {}, ["192.168.1.10"], NOW)
    assert st["phase"] == "Pending"
    assert st["containerStatuses"] == [{"name": "app", "image": "img/app:1", "imageID": "", "ready": False,
                                        "restartCount": 0, "started": False,
                                        "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}}]
    assert [c["type"] for c in st["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    c = conds(st)
    assert c["PodReadyToStartContainers"]["status"] == "False"
    assert c["Initialized"]["status"] == "True" and "reason" not in c["Initialized"]
    assert c["Ready"] == {"type": "Ready", "status": "False", "lastTransitionTime": format_epoch(NOW),
                          "reason": "ContainersNotReady", "message": "containers with unready status: [app]"}
    assert c["ContainersReady"]["message"] == "containers with unready status: [app]"
    assert c["PodScheduled"]["status"] == "True"
    assert st["hostIP"] == "192.168.1.10" and st["hostIPs"] == [{"ip": "192.168.1.10"}]
    assert st["startTime"] == format_epoch(NOW) and "podIP" not in st


def test_status_of_a_pod_with_init_containers_waiting() -> None:
    st = pod_status(pod("b", "a", init=("i1", "i2")), obs(ctr("i1", RUNNING)), Memory(), {}, [], NOW)
    init = st["initContainerStatuses"]
    assert [s["name"] for s in init] == ["i1", "i2"]
    assert init[0]["state"]["running"] and init[0]["started"] and not init[0]["ready"]
    assert init[1]["state"] == {"waiting": {"reason": "PodInitializing"}}
    # every container of a pod with init containers waits with PodInitializing; sorted by name
    assert [(s["name"], s["state"]) for s in st["containerStatuses"]] == [
        ("a", {"waiting": {"reason": "PodInitializing"}}), ("b", {"waiting": {"reason": "PodInitializing"}})]
    c = conds(st)
    assert c["Initialized"]["status"] == "False" and c["Initialized"]["reason"] == "ContainersNotInitialized"
    assert c["Initialized"]["message"] == "containers with incomplete status: [i1 i2]"
    assert c["Ready"]["message"] == "containers with unready status: [b a]"  # spec order, as kubelet's


def test_status_of_a_running_pod() -> None:
    p = pod("app", init=("i1",), status={"startTime": "2023-01-01T00:00:00Z"})
    st = pod_status(p, obs(ctr("i1", EXITED), ctr("app", RUNNING, cid="c1"),
                           sandboxes=(sandbox(ips=("fd00::5", "10.0.0.5", "10.0.0.6")),)),
                    Memory(), {}, ["192.168.1.10", "fd00::1", "192.168.1.11"], NOW, runtime="runc")
    assert st["phase"] == "Running" and st["startTime"] == "2023-01-01T00:00:00Z"
    (app,) = st["containerStatuses"]
    assert app["ready"] and app["started"] and app["containerID"] == "runc://c1" and app["imageID"] == "sha256:abc"
    assert app["state"] == {"running": {"startedAt": format_epoch(NOW - 50)}}
    (i1,) = st["initContainerStatuses"]
    assert i1["ready"] and not i1["started"] and i1["state"]["terminated"]["reason"] == "Completed"
    assert all(c["status"] == "True" for c in st["conditions"])
    # the node's family first, at most one of each; at most two host addresses
    assert st["podIP"] == "10.0.0.5" and st["podIPs"] == [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]
    assert st["hostIPs"] == [{"ip": "192.168.1.10"}, {"ip": "fd00::1"}]


def test_host_network_pods_have_the_nodes_addresses() -> None:
    st = pod_status(pod("app", hostNetwork=True), obs(ctr("app", RUNNING), sandboxes=(sandbox(ips=()),)),
                    Memory(), {}, ["192.168.1.10"], NOW)
    assert st["podIP"] == "192.168.1.10" and st["podIPs"] == [{"ip": "192.168.1.10"}]


def test_restart_count_and_last_state() -> None:
    old = ctr("app", EXITED, attempt=1, code=2, started=NOW - 40, finished=NOW - 30, reason="Error")
    new = ctr("app", RUNNING, attempt=2)
    (s,) = pod_status(pod("app"), obs(old, new), Memory(), {}, [], NOW)["containerStatuses"]
    assert s["restartCount"] == 2
    assert s["lastState"] == {"terminated": {"exitCode": 2, "reason": "Error", "startedAt": format_epoch(NOW - 40),
                                             "finishedAt": format_epoch(NOW - 30), "containerID": f"runc://{old.id}"}}


def test_crashloopbackoff_status() -> None:
    crashed = ctr("app", EXITED, attempt=3, code=1)
    waiting = {"app": ("CrashLoopBackOff", "back-off 40s restarting failed container=app pod=web_ns(u-1)")}
    st = pod_status(pod("app"), obs(crashed), Memory(), waiting, [], NOW)
    (s,) = st["containerStatuses"]
    assert s["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": waiting["app"][1]}}
    assert s["lastState"]["terminated"]["exitCode"] == 1 and s["restartCount"] == 3 and not s["ready"]
    assert st["phase"] == "Running"  # restarting, as kubelet reports it


def test_start_errors_show_only_while_the_container_would_be_started() -> None:
    mem = Memory(waiting={"app": ("RunContainerError", "exec: no such file")})
    st = pod_status(pod("app"), obs(), mem, {}, [], NOW)
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "RunContainerError",
                                                               "message": "exec: no such file"}}
    # under Never a container that exited is not started again: its end is what shows
    st = pod_status(pod("app", restart="Never"), obs(ctr("app", EXITED, code=128)), mem, {}, [], NOW)
    assert st["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 128 and st["phase"] == "Failed"


def test_created_container_waits_without_reason() -> None:
    (s,) = pod_status(pod("app"), obs(ctr("app", CREATED)), Memory(), {}, [], NOW)["containerStatuses"]
    assert s["state"] == {"waiting": {}} and not s["started"]


def test_a_running_container_that_vanished_is_terminated_with_137() -> None:
    p = pod("app", status={"containerStatuses": [{"name": "app", "restartCount": 4,
                                                  "state": {"running": {"startedAt": "x"}}}]})
    (s,) = pod_status(p, obs(ctr("app", UNKNOWN, attempt=4)), Memory(), {}, [], NOW)["containerStatuses"]
    assert s["state"]["terminated"]["exitCode"] == 137
    assert s["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert s["restartCount"] == 5


def test_a_lost_container_keeps_its_last_reported_end() -> None:
    old_term = {"exitCode": 0, "reason": "Completed", "containerID": "runc://gone"}
    p = pod("app", restart="Never", status={
        "phase": "Running", "containerStatuses": [{"name": "app", "restartCount": 0, "imageID": "sha256:x",
                                                   "state": {"terminated": old_term}, "lastState": {}}]})
    st = pod_status(p, obs(), Memory(), {}, [], NOW)
    assert st["containerStatuses"][0]["state"] == {"terminated": old_term}
    assert st["phase"] == "Succeeded"


def test_succeeded_and_failed_conditions() -> None:
    ok = pod_status(pod("app", init=("i1",), restart="Never"), obs(ctr("i1", EXITED), ctr("app", EXITED)),
                    Memory(), {}, [], NOW)
    c = conds(ok)
    assert ok["phase"] == "Succeeded"
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", "PodCompleted")
    assert (c["ContainersReady"]["status"], c["ContainersReady"]["reason"]) == ("False", "PodCompleted")
    assert (c["Initialized"]["status"], c["Initialized"]["reason"]) == ("True", "PodCompleted")
    bad = pod_status(pod("app", restart="Never"), obs(ctr("app", EXITED, code=1)), Memory(), {}, [], NOW)
    c = conds(bad)
    assert bad["phase"] == "Failed"
    assert (c["Ready"]["reason"], c["ContainersReady"]["reason"]) == ("PodFailed", "PodFailed")
    assert c["Initialized"]["status"] == "True" and "reason" not in c["Initialized"]
    assert not bad["containerStatuses"][0]["ready"]


def test_readiness_gates() -> None:
    gates = [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]
    p = pod("app", readinessGates=gates, status={"conditions": [
        {"type": "example.com/dns", "status": "False", "lastTransitionTime": "t0"}]})
    st = pod_status(p, obs(ctr("app", RUNNING)), Memory(), {}, [], NOW)
    c = conds(st)
    assert c["ContainersReady"]["status"] == "True"
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert c["Ready"]["message"] == ('corresponding condition of pod readiness gate "example.com/lb" does not '
                                     'exist., the status of pod readiness gate "example.com/dns" is not "True", '
                                     "but False")
    assert st["conditions"][0] == {"type": "example.com/dns", "status": "False", "lastTransitionTime": "t0"}
    p["status"]["conditions"] = [{"type": "example.com/dns", "status": "True"}, {"type": "example.com/lb",
                                                                                 "status": "True"}]
    assert conds(pod_status(p, obs(ctr("app", RUNNING)), Memory(), {}, [], NOW))["Ready"]["status"] == "True"


def test_transition_times_move_only_with_the_status() -> None:
    p = pod("app")
    first = pod_status(p, obs(ctr("app", RUNNING)), Memory(), {}, [], NOW)
    p["status"] = first
    again = pod_status(p, obs(ctr("app", RUNNING)), Memory(), {}, [], NOW + 60)
    assert conds(again)["Ready"]["lastTransitionTime"] == format_epoch(NOW)
    p["status"] = again
    down = pod_status(p, obs(ctr("app", EXITED, code=1)), Memory(), {}, [], NOW + 120)
    assert conds(down)["Ready"]["lastTransitionTime"] == format_epoch(NOW + 120)
    assert conds(down)["PodScheduled"]["lastTransitionTime"] == format_epoch(NOW)


def test_a_reason_belongs_to_its_phase() -> None:
    p = pod("app", status={"phase": "Pending", "reason": "SomethingOld", "message": "old"})
    st = pod_status(p, obs(ctr("app", RUNNING)), Memory(), {}, [], NOW)
    assert st["phase"] == "Running" and "reason" not in st and "message" not in st
    same = pod_status(pod("app", status={"phase": "Running", "reason": "R"}), obs(ctr("app", RUNNING)),
                      Memory(), {}, [], NOW)
    assert same["reason"] == "R"


def test_rejected_pod_status() -> None:
    st = pod_status(pod("app", status={"qosClass": "BestEffort"}), Observed(),
                    Memory(rejected=("OutOfcpu", "Node didn't have enough resource: cpu")), {}, [], NOW)
    assert st == {"qosClass": "BestEffort", "phase": "Failed", "reason": "OutOfcpu",
                  "message": "Pod was rejected: Node didn't have enough resource: cpu", "startTime": format_epoch(NOW)}


def test_status_after_the_sandbox_was_recreated_keeps_counting() -> None:
    o = Observed((sandbox("sb2", attempt=1), sandbox("sb1", ready=False)),
                 (ctr("app", EXITED, attempt=2, sb="sb1", code=137),))
    (s,) = pod_status(pod("app"), o, Memory(), {}, [], NOW)["containerStatuses"]
    assert s["restartCount"] == 2 and s["state"]["terminated"]["exitCode"] == 137
    o = Observed(o.sandboxes, (*o.containers, ctr("app", RUNNING, attempt=3, sb="sb2")))
    (s,) = pod_status(pod("app"), o, Memory(), {}, [], NOW)["containerStatuses"]
    assert s["restartCount"] == 3 and s["lastState"]["terminated"]["exitCode"] == 137


def test_a_container_created_but_never_started_is_started_again() -> None:
    acts = compute_actions(pod("app"), obs(ctr("app", CREATED)), Memory(), NOW)
    assert [k.name for k, _ in acts.kill] == ["app"] and started(acts) == [("app", False, 1)]


# --------------------------------------------------------------------------- probes


def probed(*names: str, restart: str = "Always", **probes: Any) -> dict[str, Any]:
    """A pod whose containers all carry ``probes`` (livenessProbe=..., readinessProbe=...)."""
    p = pod(*names, restart=restart)
    for c in p["spec"]["containers"]:
        c.update(probes)
    return p


EXEC = {"exec": {"command": ["true"]}, "periodSeconds": 1}


def test_readiness_result_drives_ready_and_the_pods_conditions() -> None:
    p = probed("app", readinessProbe=EXEC)
    o = obs(ctr("app", RUNNING, cid="c1"))
    # no result yet (kubelet's readiness starts at failure): running but not ready
    st = pod_status(p, o, Memory(), {}, [], NOW)
    (s,) = st["containerStatuses"]
    assert s["started"] is True and s["ready"] is False
    assert conds(st)["ContainersReady"]["status"] == "False"
    assert conds(st)["Ready"]["message"] == "containers with unready status: [app]"
    st = pod_status(p, o, Memory(), {}, [], NOW, probes=ProbeResults(readiness={"c1": True}))
    assert st["containerStatuses"][0]["ready"] is True and conds(st)["Ready"]["status"] == "True"
    # a result of an older container does not count for the new one
    st = pod_status(p, obs(ctr("app", RUNNING, attempt=1, cid="c2")), Memory(), {}, [], NOW,
                    probes=ProbeResults(readiness={"c1": True}))
    assert st["containerStatuses"][0]["ready"] is False


def test_a_startup_probe_holds_started_and_ready_back() -> None:
    p = probed("app", startupProbe=EXEC)
    o = obs(ctr("app", RUNNING, cid="c1"))
    (s,) = pod_status(p, o, Memory(), {}, [], NOW)["containerStatuses"]
    assert s["started"] is False and s["ready"] is False
    (s,) = pod_status(p, o, Memory(), {}, [], NOW, probes=ProbeResults(startup={"c1": True}))["containerStatuses"]
    assert s["started"] is True and s["ready"] is True


def test_a_failed_liveness_probe_kills_and_restarts_the_container_at_once() -> None:
    p = probed("app", livenessProbe={**EXEC, "terminationGracePeriodSeconds": 3})
    running = ctr("app", RUNNING, attempt=2, cid="c1")
    mem = Memory(backoff={"app": (NOW + 100, 40)})  # a back-off is for exited containers only
    acts = compute_actions(p, obs(running), mem, NOW, ProbeResults(liveness={"c1": False}))
    assert [(c.id, why) for c, why in acts.kill] == [("c1", "Container app failed liveness probe, will be restarted")]
    assert acts.kill_grace == {"c1": 3.0}
    assert started(acts) == [("app", False, 3)] and not acts.kill_pod
    # passing (or no result): kept
    assert compute_actions(p, obs(running), Memory(), NOW, ProbeResults(liveness={"c1": True})).idle()


def test_a_failed_liveness_probe_under_never_kills_without_restart() -> None:
    p = probed("app", restart="Never", livenessProbe=EXEC)
    acts = compute_actions(p, obs(ctr("app", RUNNING, cid="c1")), Memory(), NOW, ProbeResults(liveness={"c1": False}))
    assert [why for _, why in acts.kill] == ["Container app failed liveness probe"]
    assert not acts.start and not acts.kill_grace


def test_a_failed_startup_probe_kills_the_container() -> None:
    p = probed("app", startupProbe=EXEC)
    acts = compute_actions(p, obs(ctr("app", RUNNING, cid="c1")), Memory(), NOW, ProbeResults(startup={"c1": False}))
    assert [why for _, why in acts.kill] == ["Container app failed startup probe, will be restarted"]
    assert started(acts) == [("app", False, 1)]


# --------------------------------------------------------------------------- sidecars


def sidecar_pod(restart: str = "Always", init: tuple[str, ...] = ("side", "setup"),
                sidecars: tuple[str, ...] = ("side",), **side: Any) -> dict[str, Any]:
    p = pod("app", init=init, restart=restart)
    for ic in p["spec"]["initContainers"]:
        if ic["name"] in sidecars:
            ic.update(restartPolicy="Always", **side)
    return p


def test_a_sidecar_starts_first_and_the_next_init_container_once_it_runs() -> None:
    p = sidecar_pod()
    acts = compute_actions(p, Observed(), Memory(), NOW)
    assert acts.create_sandbox and started(acts) == [("side", True, 0)]
    assert started(compute_actions(p, obs(ctr("side", RUNNING)), Memory(), NOW)) == [("setup", True, 0)]
    # the regular init container runs to completion while the sidecar keeps running
    assert compute_actions(p, obs(ctr("side", RUNNING), ctr("setup", RUNNING)), Memory(), NOW).idle()
    assert started(compute_actions(p, obs(ctr("side", RUNNING), ctr("setup", EXITED)), Memory(), NOW)) == [
        ("app", False, 0)]


def test_a_sidecar_with_a_startup_probe_holds_the_next_until_it_passes() -> None:
    p = sidecar_pod(startupProbe=EXEC)
    o = obs(ctr("side", RUNNING, cid="s1"))
    assert compute_actions(p, o, Memory(), NOW).idle()
    assert started(compute_actions(p, o, Memory(), NOW, ProbeResults(startup={"s1": True}))) == [("setup", True, 0)]
    acts = compute_actions(p, o, Memory(), NOW, ProbeResults(startup={"s1": False}))
    assert [why for _, why in acts.kill] == ["Init container side failed startup probe"]
    assert started(acts) == [("side", True, 1)]


def test_a_sidecar_that_exits_is_restarted_with_back_off_even_under_never() -> None:
    p = sidecar_pod(restart="Never", init=("side",))
    o = obs(ctr("side", EXITED, code=1), ctr("app", RUNNING))
    assert started(compute_actions(p, o, Memory(), NOW)) == [("side", True, 1)]
    mem = Memory(backoff={"side": (NOW - 5 + 10, 10)})
    acts = compute_actions(p, o, mem, NOW)
    assert not acts.start and acts.waiting["side"][0] == "CrashLoopBackOff"
    st = pod_status(p, o, mem, acts.waiting, [], NOW)
    (side,) = st["initContainerStatuses"]
    assert side["state"]["waiting"]["reason"] == "CrashLoopBackOff" and st["phase"] == "Running"


def test_sidecars_do_not_keep_a_finished_pod_alive() -> None:
    p = sidecar_pod(restart="Never", init=("side",))
    o = obs(ctr("side", RUNNING), ctr("app", EXITED, code=0))
    assert pod_phase(p, o, {}) == "Running"  # the sidecar still runs
    acts = compute_actions(p, o, Memory(), NOW)
    assert acts.kill_pod and not acts.start  # stopped, sidecar included, and not restarted
    done = obs(ctr("side", EXITED, code=143), ctr("app", EXITED, code=0))
    assert pod_phase(p, done, {}) == "Succeeded"  # an exited sidecar does not count
    assert pod_phase(p, obs(ctr("side", EXITED, code=143), ctr("app", EXITED, code=1)), {}) == "Failed"


def test_sidecar_statuses_conditions_and_phase() -> None:
    p = sidecar_pod(init=("side",), readinessProbe=EXEC, startupProbe=EXEC)
    o = obs(ctr("side", RUNNING, cid="s1"))
    st = pod_status(p, o, Memory(), {}, [], NOW)
    (side,) = st["initContainerStatuses"]
    assert side["started"] is False and side["ready"] is False and st["phase"] == "Pending"
    assert conds(st)["Initialized"]["message"] == "containers with incomplete status: [side]"
    pr = ProbeResults(startup={"s1": True}, readiness={"s1": True})
    o = obs(ctr("side", RUNNING, cid="s1"), ctr("app", RUNNING))
    st = pod_status(p, o, Memory(), {}, [], NOW, probes=pr)
    (side,) = st["initContainerStatuses"]
    assert side["started"] is True and side["ready"] is True and st["phase"] == "Running"
    assert conds(st)["Initialized"]["status"] == "True" and conds(st)["Ready"]["status"] == "True"
    # an unready sidecar makes the pod unready
    st = pod_status(p, o, Memory(), {}, [], NOW, probes=ProbeResults(startup={"s1": True}))
    assert conds(st)["ContainersReady"]["message"] == "containers with unready status: [side]"
