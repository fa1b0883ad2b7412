"""The pod worker's brain, pure: what to do next for a pod, and the status kubelet writes for it.

kubelet's ``computePodActions`` and ``generateAPIPodStatus``, on plain data. Given the Pod (as
the API has it), what the runtime shows for it (:class:`Observed`) and what the worker remembers
between syncs (:class:`Memory`: last errors, back-off deadlines), :func:`compute_actions` says
which sandbox to create, which containers to start or kill, and :func:`pod_status` builds the
``status`` to report. No I/O, no clock of its own: the worker (``podworker.py``) passes ``now``
and carries the actions out, so every rule here is tested without a runtime.

A pod's life: admitted -> sandbox -> init containers, one at a time, each to completion ->
containers -> running -> (restart per ``restartPolicy`` with back-off) -> terminating ->
terminated -> cleaned up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from k8py.kubelet.runtime.types import ContainerState, ContainerStatus, SandboxState, SandboxStatus

__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "BACKOFF_RESET",
    "Actions",
    "Memory",
    "Observed",
    "StartContainer",
    "compute_actions",
    "format_ts",
    "is_terminal",
    "next_backoff",
    "pod_phase",
    "pod_status",
]

Obj = dict[str, Any]

# kubelet's container restart back-off: 10 s doubling to 5 minutes, forgotten after 10 minutes
# of running.
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET = 600.0

# The conditions the kubelet owns on a pod (the rest belong to others: PodScheduled to the
# scheduler, DisruptionTarget to the controllers, readiness gates to their owners).
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")


def format_ts(t: float) -> str:
    """A ``metav1.Time`` (to the second, UTC) from epoch seconds."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Observed:
    """What the runtime has for one pod: its sandboxes (newest first) and every container of
    them that still exists (the current ones and the last exited attempt of each)."""

    sandboxes: tuple[SandboxStatus, ...] = ()
    containers: tuple[ContainerStatus, ...] = ()

    @property
    def sandbox(self) -> SandboxStatus | None:
        return self.sandboxes[0] if self.sandboxes else None

    def current(self) -> dict[str, ContainerStatus]:
        """The newest container of each name in the newest sandbox."""
        sb = self.sandbox
        out: dict[str, ContainerStatus] = {}
        if sb is None:
            return out
        for c in self.containers:
            if c.sandbox_id != sb.id:
                continue
            have = out.get(c.name)
            if have is None or (c.attempt, c.created_at) > (have.attempt, have.created_at):
                out[c.name] = c
        return out

    def previous(self, name: str, current: ContainerStatus | None) -> ContainerStatus | None:
        """The newest exited container of ``name`` before ``current`` (for ``lastState``)."""
        best: ContainerStatus | None = None
        for c in self.containers:
            if c.name != name or c.state != ContainerState.EXITED or (current is not None and c.id == current.id):
                continue
            if current is not None and (c.attempt, c.created_at) > (current.attempt, current.created_at):
                continue
            if best is None or (c.attempt, c.created_at) > (best.attempt, best.created_at):
                best = c
        return best


@dataclass(slots=True)
class Memory:
    """What a pod worker remembers between syncs."""

    # container name -> (reason, message) of the last failure to start it (ErrImagePull,
    # CreateContainerError, ...); cleared when it starts
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    # container name -> (not before, current delay): restart back-off
    backoff: dict[str, tuple[float, float]] = field(default_factory=dict)
    # container name -> (not before, current delay): a failed start (image pull, config,
    # create) is tried again after this
    retry: dict[str, tuple[float, float]] = field(default_factory=dict)
    # the sandbox could not be made: (reason, message) until it is
    sandbox_error: tuple[str, str] | None = None
    sandbox_backoff: tuple[float, float] = (0.0, 0.0)
    # set when the node refused the pod (kubelet's admission): (reason, message)
    rejected: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class StartContainer:
    spec: Mapping[str, Any]  # the container from the pod spec
    init: bool
    attempt: int  # the restart count it will have


@dataclass(slots=True)
class Actions:
    kill_pod: bool = False  # stop every container and the sandbox (then maybe make a new one)
    create_sandbox: bool = False
    sandbox_attempt: int = 0
    start: list[StartContainer] = field(default_factory=list)
    kill: list[tuple[ContainerStatus, str]] = field(default_factory=list)  # (container, why)
    # container name -> (reason, message): shown as Waiting (back-off in progress)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    wake_at: float | None = None  # when something here becomes due (back-off ends)

    def idle(self) -> bool:
        return not (self.kill_pod or self.create_sandbox or self.start or self.kill)


def _restart_policy(pod: Mapping[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def _should_restart(policy: str, c: ContainerStatus) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return c.exit_code != 0
    return False


def _init_done(pod: Mapping[str, Any], cur: Mapping[str, ContainerStatus]) -> tuple[bool, bool]:
    """(every init container succeeded, one failed for good under ``restartPolicy: Never``)."""
    for ic in (pod.get("spec") or {}).get("initContainers") or ():
        st = cur.get(ic["name"])
        if st is None or st.state != ContainerState.EXITED:
            return False, False
        if st.exit_code != 0:
            return False, _restart_policy(pod) == "Never"
    return True, False


def is_terminal(pod: Mapping[str, Any], obs: Observed) -> bool:
    """The pod is done and will never run again (Succeeded or Failed)."""
    return pod_phase(pod, obs, {}) in ("Succeeded", "Failed")


def next_backoff(prev: tuple[float, float] | None, ran_for: float, now: float) -> tuple[float, float]:
    """The (not before, delay) after a container exits: 10 s doubling to 5 min; a container that
    ran for 10 minutes or more starts over at 10 s."""
    delay = BACKOFF_INITIAL
    if prev is not None and ran_for < BACKOFF_RESET:
        delay = min(prev[1] * 2, BACKOFF_MAX)
    return now + delay, delay


def compute_actions(pod: Mapping[str, Any], obs: Observed, mem: Memory, now: float) -> Actions:
    """What to do now for a pod that is not being deleted (deletion is the worker's terminate
    path). Restarts wait out their back-off: such containers come back in ``waiting`` with
    kubelet's ``CrashLoopBackOff`` and ``wake_at`` says when to look again."""
    acts = Actions()
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    policy = _restart_policy(pod)
    sb = obs.sandbox
    cur = obs.current()
    if mem.rejected is not None:
        return acts
    if is_terminal(pod, obs) or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        # done: nothing may run again; a ready sandbox goes
        if sb is not None and sb.state == SandboxState.READY:
            acts.kill_pod = True
        return acts

    if sb is None or sb.state != SandboxState.READY:
        # kubelet: a sandbox that went away takes its containers with it; a pod that has
        # already run to completion under restartPolicy != Always does not get a new one
        if sb is not None and policy != "Always" and cur and all(
                c.state == ContainerState.EXITED and not _should_restart(policy, c) for c in cur.values()):
            return acts
        not_before, _ = mem.sandbox_backoff
        if not_before > now:
            acts.wake_at = not_before
            return acts
        if sb is not None:
            acts.kill_pod = True
        acts.create_sandbox = True
        acts.sandbox_attempt = sb.attempt + 1 if sb is not None else 0
        first = (spec.get("initContainers") or ())[:1] or list(spec.get("containers") or ())
        is_init = bool(spec.get("initContainers"))
        acts.start = [StartContainer(c, is_init, 0) for c in first]
        return acts

    def restart(c: Mapping[str, Any], st: ContainerStatus | None, init: bool) -> None:
        name = c["name"]
        attempt = st.attempt + 1 if st is not None else 0
        retry_at = mem.retry.get(name, (0.0, 0.0))[0]
        if retry_at > now:
            acts.wake_at = retry_at if acts.wake_at is None else min(acts.wake_at, retry_at)
            return
        if st is not None:
            not_before, delay = mem.backoff.get(name, (0.0, 0.0))
            if not_before > now:
                acts.waiting[name] = ("CrashLoopBackOff",
                                      (f"back-off {int(delay)}s restarting failed container={name} "
                                      f"pod={meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"))
                acts.wake_at = not_before if acts.wake_at is None else min(acts.wake_at, not_before)
                return
        acts.start.append(StartContainer(c, init, attempt))

    # init containers: one at a time, each to completion
    for ic in spec.get("initContainers") or ():
        st = cur.get(ic["name"])
        if st is None:
            restart(ic, None, True)
            return acts
        if st.state in (ContainerState.RUNNING, ContainerState.CREATED):
            return acts
        if st.state == ContainerState.UNKNOWN:
            acts.kill.append((st, "unknown state"))
            restart(ic, st, True)
            return acts
        if st.exit_code == 0:
            continue
        if policy == "Never":
            acts.kill_pod = True  # the pod has failed
            return acts
        restart(ic, st, True)
        return acts

    for c in spec.get("containers") or ():
        st = cur.get(c["name"])
        if st is None:
            restart(c, None, False)
        elif st.state == ContainerState.UNKNOWN:
            acts.kill.append((st, "unknown state"))
            restart(c, st, False)
        elif st.state == ContainerState.EXITED and _should_restart(policy, st):
            restart(c, st, False)
    return acts


# --------------------------------------------------------------------------- status


def _ts(t: float) -> str | None:
    return format_ts(t) if t > 0 else None


def _terminated(c: ContainerStatus, scheme: str) -> Obj:
    out: Obj = {"exitCode": c.exit_code, "reason": c.reason or ("Completed" if c.exit_code == 0 else "Error"),
                "startedAt": _ts(c.started_at), "finishedAt": _ts(c.finished_at),
                "containerID": f"{scheme}://{c.id}"}
    if c.message:
        out["message"] = c.message
    return out


def _container_status(spec_c: Mapping[str, Any], st: ContainerStatus | None, prev: ContainerStatus | None,
                      waiting: tuple[str, str] | None, default_wait: str, scheme: str) -> Obj:
    out: Obj = {"name": spec_c["name"], "image": spec_c.get("image", ""), "imageID": "",
                "ready": False, "restartCount": st.attempt if st is not None else 0, "started": False}
    if st is not None:
        out["imageID"] = st.image_ref
        out["containerID"] = f"{scheme}://{st.id}"
    last = prev
    if waiting is not None:
        reason, message = waiting
        out["state"] = {"waiting": {"reason": reason, "message": message} if message else {"reason": reason}}
        if st is not None and st.state == ContainerState.EXITED:
            last = st  # the run that failed is the last state while waiting to restart
    elif st is None or st.state == ContainerState.CREATED:
        out["state"] = {"waiting": {"reason": default_wait}}
    elif st.state == ContainerState.RUNNING:
        out["state"] = {"running": {"startedAt": _ts(st.started_at)}}
        out["started"] = True
        out["ready"] = True  # no readiness probe yet: running means ready
    elif st.state == ContainerState.EXITED:
        out["state"] = {"terminated": _terminated(st, scheme)}
    else:
        out["state"] = {"waiting": {"reason": "ContainerStatusUnknown",
                                    "message": "The container could not be located when the pod was terminated"}}
    out["lastState"] = {"terminated": _terminated(last, scheme)} if last is not None else {}
    return out


def pod_phase(pod: Mapping[str, Any], obs: Observed, waiting: Mapping[str, tuple[str, str]]) -> str:
    """kubelet's ``getPhase``."""
    spec = pod.get("spec") or {}
    policy = _restart_policy(pod)
    old = (pod.get("status") or {}).get("phase")
    if old in ("Succeeded", "Failed"):
        return str(old)  # a terminal phase never changes
    cur = obs.current()
    init_ok, init_failed = _init_done(pod, cur)
    if init_failed:
        return "Failed"
    if not init_ok:
        return "Pending"
    running = waiting_n = stopped = succeeded = 0
    for c in spec.get("containers") or ():
        st = cur.get(c["name"])
        if st is None or st.state == ContainerState.CREATED:
            waiting_n += 1
        elif st.state == ContainerState.RUNNING:
            running += 1
        elif st.state == ContainerState.EXITED:
            stopped += 1
            if st.exit_code == 0:
                succeeded += 1
        else:
            waiting_n += 1
    if waiting_n > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def pod_status(pod: Mapping[str, Any], obs: Observed, mem: Memory, waiting: Mapping[str, tuple[str, str]],
               host_ips: Sequence[str], now: float, runtime: str = "runc") -> Obj:
    """The status kubelet writes for ``pod``: phase, conditions, container statuses, IPs, start
    time; fields others own (nominatedNodeName, their conditions, qosClass set at create) are
    kept as the API has them."""
    old: Obj = dict(pod.get("status") or {})
    spec = pod.get("spec") or {}
    if mem.rejected is not None:
        reason, message = mem.rejected
        return {**old, "phase": "Failed", "reason": reason, "message": message,
                "startTime": old.get("startTime") or format_ts(now)}
    sb = obs.sandbox
    cur = obs.current()
    all_waiting = {**mem.waiting, **waiting}
    phase = pod_phase(pod, obs, all_waiting)
    init_ok, _ = _init_done(pod, cur)

    init_statuses = []
    for ic in spec.get("initContainers") or ():
        st = cur.get(ic["name"])
        w = all_waiting.get(ic["name"])
        s = _container_status(ic, st, obs.previous(ic["name"], st), w, "PodInitializing", runtime)
        if st is not None and st.state == ContainerState.EXITED and st.exit_code == 0:
            s["ready"] = True  # a completed init container reports ready, as kubelet does
        s["started"] = bool(st is not None and st.state == ContainerState.RUNNING)
        init_statuses.append(s)
    statuses = []
    for c in spec.get("containers") or ():
        st = cur.get(c["name"])
        w = all_waiting.get(c["name"])
        default = "ContainerCreating" if init_ok else "PodInitializing"
        statuses.append(_container_status(c, st, obs.previous(c["name"], st), w, default, runtime))

    terminal = phase in ("Succeeded", "Failed")
    if terminal:
        for s in statuses:
            s["ready"] = False
    unready = [s["name"] for s in statuses if not s["ready"]]
    incomplete = [s["name"] for s in init_statuses if not s["ready"]]
    prev = {c.get("type"): c for c in old.get("conditions") or () if isinstance(c, dict)}

    def cond(t: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        s = "True" if ok else "False"
        p = prev.get(t)
        out: Obj = {"type": t, "status": s,
                    "lastTransitionTime": p.get("lastTransitionTime") if p and p.get("status") == s else format_ts(now)}
        if not ok and reason:
            out["reason"] = reason
            if message:
                out["message"] = message
        return out

    sandbox_ready = sb is not None and sb.state == SandboxState.READY and not terminal
    if terminal:
        init_c = cond("Initialized", True) if init_ok else cond(
            "Initialized", False, "PodCompleted" if phase == "Succeeded" else "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(incomplete)}]" if incomplete else "")
        ready_c = cond("ContainersReady", False, "PodCompleted")
        pod_ready = cond("Ready", False, "PodCompleted")
    else:
        init_c = cond("Initialized", init_ok, "ContainersNotInitialized",
                      f"containers with incomplete status: [{' '.join(incomplete)}]")
        ok = not unready and bool(statuses)
        msg = f"containers with unready status: [{' '.join(unready)}]"
        ready_c = cond("ContainersReady", ok, "ContainersNotReady", msg)
        gates = [g.get("conditionType") for g in spec.get("readinessGates") or () if isinstance(g, dict)]
        missing = [g for g in gates if (prev.get(g) or {}).get("status") != "True"]
        if ok and missing:
            pod_ready = cond("Ready", False, "ReadinessGatesNotReady",
                             f"corresponding condition of pod readiness gate \"{missing[0]}\" does not exist."
                             if missing[0] not in prev else
                             f"the status of pod readiness gate \"{missing[0]}\" is not \"True\", but False")
        else:
            pod_ready = cond("Ready", ok, "ContainersNotReady", msg)
    mine = [cond("PodReadyToStartContainers", sandbox_ready), init_c, pod_ready, ready_c]
    sched = prev.get("PodScheduled") or {"type": "PodScheduled", "status": "True",
                                         "lastTransitionTime": format_ts(now)}
    others = [c for t, c in prev.items() if t not in KUBELET_CONDITIONS and t != "PodScheduled"]
    status: Obj = {**old, "phase": phase, "conditions": [*mine, sched, *others]}
    if host_ips:
        status["hostIP"] = host_ips[0]
        status["hostIPs"] = [{"ip": ip} for ip in host_ips]
    ips = list(sb.ips) if sb is not None else []
    if spec.get("hostNetwork") and host_ips:
        ips = list(host_ips)
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    status["startTime"] = old.get("startTime") or format_ts(now)
    status["containerStatuses"] = statuses
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    return status
