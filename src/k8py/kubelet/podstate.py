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

Which container is "the" container of a name: within the newest sandbox, the newest attempt.
A regular container that has no container in the newest sandbox (the sandbox was re-created)
is the newest *exited* one from an older sandbox, as kubelet's ``FindContainerStatusByName``
sees every sandbox: its restart count carries on, and under ``OnFailure`` one that succeeded is
not run again. Init containers run again in a new sandbox (kubelet purges the old ones).

The phase is kubelet's ``getPhase`` over the container statuses this module reports, so phase,
conditions and statuses can never disagree.

Probes are an input too (:class:`ProbeResults`, what the probe workers of ``prober.py`` last
decided, by container id): readiness feeds ``ready``, a startup probe ``started``, and a failed
liveness or startup probe is a kill (and a restart unless ``restartPolicy: Never``), as in
kubelet's ``computePodActions``. Sidecars (init containers with ``restartPolicy: Always``) follow
``computeInitContainerActions``: the next init container starts once a sidecar has started,
sidecars are restarted whenever they exit, and a pod whose regular containers are all done is
stopped, sidecars included.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from k8py.api.corev1 import format_epoch
from k8py.api.gotext import go_duration
from k8py.kubelet.runtime.types import ContainerState, ContainerStatus, SandboxState, SandboxStatus

__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "BACKOFF_RESET",
    "Actions",
    "Memory",
    "Observed",
    "ProbeResults",
    "StartContainer",
    "compute_actions",
    "is_restartable_init",
    "is_terminal",
    "next_backoff",
    "pod_phase",
    "pod_status",
]

Obj = dict[str, Any]

# kubelet's container restart back-off (flowcontrol.Backoff with no jitter): 10 s doubling to
# 5 minutes; a container that ran for more than twice the maximum starts over at 10 s.
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET = 2 * BACKOFF_MAX

# The conditions the kubelet owns on a pod (kubetypes.PodConditionsByKubelet); the rest belong
# to others (DisruptionTarget to the controllers, readiness gates to their owners) and are kept.
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")

# the reasons of pkg/kubelet/status/generate.go
POD_COMPLETED = "PodCompleted"
POD_FAILED = "PodFailed"
CONTAINERS_NOT_READY = "ContainersNotReady"
CONTAINERS_NOT_INITIALIZED = "ContainersNotInitialized"
READINESS_GATES_NOT_READY = "ReadinessGatesNotReady"
STATUS_UNKNOWN = "ContainerStatusUnknown"


def _newer(a: ContainerStatus, b: ContainerStatus) -> bool:
    return (a.attempt, a.created_at) > (b.attempt, b.created_at)


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
            if have is None or _newer(c, have):
                out[c.name] = c
        return out

    def latest(self, name: str) -> ContainerStatus | None:
        """The newest container of ``name`` in any sandbox (kubelet's ``FindContainerStatusByName``)."""
        best: ContainerStatus | None = None
        for c in self.containers:
            if c.name == name and (best is None or _newer(c, best)):
                best = c
        return best

    def previous(self, name: str, current: ContainerStatus | None) -> ContainerStatus | None:
        """The newest exited container of ``name`` before ``current`` (for ``lastState``)."""
        best: ContainerStatus | None = None
        for c in self.containers:
            if c.name != name or c.state != ContainerState.EXITED or (current is not None and c.id == current.id):
                continue
            if current is not None and _newer(c, current):
                continue
            if best is None or _newer(c, best):
                best = c
        return best


@dataclass(slots=True)
class Memory:
    """What a pod worker remembers between syncs."""

    # container name -> (reason, message) of the last failure to start it (ErrImagePull,
    # CreateContainerError, ...); cleared when it starts
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    # container name -> (not before, current delay): restart back-off, set when the container
    # was last restarted (``not before - delay`` is that moment, kubelet's ``lastUpdate``)
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
class ProbeResults:
    """What the probe workers last decided, by container id: True success, False failure; a
    container without an entry has no result yet (kubelet's results managers: readiness starts
    at failure, liveness at success, startup unknown)."""

    liveness: Mapping[str, bool] = field(default_factory=dict)
    readiness: Mapping[str, bool] = field(default_factory=dict)
    startup: Mapping[str, bool] = field(default_factory=dict)


NO_PROBES = ProbeResults()


def is_restartable_init(c: Mapping[str, Any]) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always`` (``IsRestartableInitContainer``)."""
    return c.get("restartPolicy") == "Always"


def _started(c: Mapping[str, Any], st: ContainerStatus | None, probes: ProbeResults) -> bool:
    """kubelet's prober manager ``UpdatePodStatus``: a running container has started when it has
    no startup probe or its startup probe succeeded."""
    if st is None or st.state != ContainerState.RUNNING:
        return False
    if c.get("startupProbe"):
        return probes.startup.get(st.id) is True
    return True


def _ready(c: Mapping[str, Any], st: ContainerStatus | None, probes: ProbeResults) -> bool:
    """Started, and its readiness probe (if it has one) succeeded last."""
    if not _started(c, st, probes):
        return False
    if c.get("readinessProbe"):
        assert st is not None
        return probes.readiness.get(st.id) is True
    return True


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
    # container id -> the grace period of its kill when it is not the pod's: a failed liveness
    # or startup probe's ``terminationGracePeriodSeconds``
    kill_grace: dict[str, float] = field(default_factory=dict)
    # container name -> (reason, message): shown as Waiting (back-off in progress)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    wake_at: float | None = None  # when something here becomes due (back-off ends)

    def idle(self) -> bool:
        return not (self.kill_pod or self.create_sandbox or self.start or self.kill)


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("spec") or {}


def _restart_policy(pod: Mapping[str, Any]) -> str:
    return str(_spec(pod).get("restartPolicy") or "Always")


def _should_restart(policy: str, c: ContainerStatus) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return c.exit_code != 0
    return False


def _should_be_restarted(pod: Mapping[str, Any], st: ContainerStatus | None) -> bool:
    """kubelet's ``ShouldContainerBeRestarted``."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if st is None:
        return True
    if st.state == ContainerState.RUNNING:
        return False
    if st.state in (ContainerState.UNKNOWN, ContainerState.CREATED):
        return True
    return _should_restart(_restart_policy(pod), st)


def _regular(pod: Mapping[str, Any], obs: Observed) -> dict[str, ContainerStatus]:
    """The container of each regular container's name: the newest in the newest sandbox, else
    the newest exited one of an older sandbox (see the module docstring)."""
    cur = obs.current()
    out: dict[str, ContainerStatus] = {}
    for c in _spec(pod).get("containers") or ():
        name = c["name"]
        st = cur.get(name)
        if st is None:
            old = obs.latest(name)
            if old is not None and old.state == ContainerState.EXITED:
                st = old
        if st is not None:
            out[name] = st
    return out


def _next_attempt(obs: Observed, name: str) -> int:
    """The restart count a new container of ``name`` gets: one more than the newest one's, in
    any sandbox (so a re-created sandbox neither resets ``restartCount`` nor reuses a log file)."""
    last = obs.latest(name)
    return last.attempt + 1 if last is not None else 0


def is_terminal(pod: Mapping[str, Any], obs: Observed) -> bool:
    """The pod is done and will never run again (Succeeded or Failed)."""
    return pod_phase(pod, obs, {}) in ("Succeeded", "Failed")


def next_backoff(prev: tuple[float, float] | None, ran_for: float, now: float) -> tuple[float, float]:
    """The (not before, delay) after a container is restarted at ``now``: 10 s doubling to 5 min;
    a container that ran for more than 10 minutes starts over at 10 s."""
    delay = BACKOFF_INITIAL
    if prev is not None and ran_for <= BACKOFF_RESET:
        delay = min(prev[1] * 2, BACKOFF_MAX)
    return now + delay, delay


def _backoff_until(entry: tuple[float, float] | None, st: ContainerStatus) -> float:
    """When the back-off of an exited container ends: kubelet's ``IsInBackOffSince(key,
    finishedAt)``: the delay counts from when the container finished; an entry older than twice
    the maximum before that is stale."""
    if entry is None:
        return 0.0
    not_before, delay = entry
    if delay <= 0 or not st.finished_at:
        return not_before
    restarted_at = not_before - delay  # kubelet's lastUpdate
    if st.finished_at - restarted_at > BACKOFF_RESET:
        return 0.0
    return st.finished_at + delay


def _sandbox_actions(pod: Mapping[str, Any], obs: Observed, mem: Memory, now: float, acts: Actions) -> Actions:
    """The sandbox is missing or not ready: kubelet's ``computePodActions`` when
    ``PodSandboxChanged``. Everything in the old one is killed, a new one made, and the first
    init container (or the containers) started in it."""
    spec = _spec(pod)
    policy = _restart_policy(pod)
    sb = obs.sandbox
    alive = [c for c in obs.containers if c.state in (ContainerState.RUNNING, ContainerState.CREATED)]
    if sb is not None and policy == "Never" and obs.containers:
        # kubelet: a pod that should not restart gets no new sandbox once it has run; what
        # still runs in the dead one is stopped
        acts.kill_pod = bool(alive)
        return acts
    regular = _regular(pod, obs)
    to_start = [c for c in spec.get("containers") or ()
                if not (policy == "OnFailure" and (st := regular.get(c["name"])) is not None
                        and st.state == ContainerState.EXITED and st.exit_code == 0)]
    if not to_start and regular:
        # initialized before and nothing left to run: no new sandbox
        acts.kill_pod = bool(alive)
        return acts
    not_before, _ = mem.sandbox_backoff
    if not_before > now:
        acts.wake_at = not_before
        return acts
    acts.kill_pod = sb is not None
    acts.create_sandbox = True
    acts.sandbox_attempt = sb.attempt + 1 if sb is not None else 0
    inits = list(spec.get("initContainers") or ())
    if inits:
        acts.start = [StartContainer(inits[0], True, _next_attempt(obs, inits[0]["name"]))]
    else:
        acts.start = [StartContainer(c, False, _next_attempt(obs, c["name"])) for c in to_start]
    return acts


def _probe_grace(c: Mapping[str, Any], kind: str) -> float | None:
    g = (c.get(kind) or {}).get("terminationGracePeriodSeconds")
    return float(g) if g is not None else None


def compute_actions(pod: Mapping[str, Any], obs: Observed, mem: Memory, now: float,
                    probes: ProbeResults = NO_PROBES) -> Actions:
    """What to do now for a pod that is not being deleted (deletion is the worker's terminate
    path). Restarts wait out their back-off: such containers come back in ``waiting`` with
    kubelet's ``CrashLoopBackOff`` and ``wake_at`` says when to look again."""
    acts = Actions()
    meta = pod.get("metadata") or {}
    spec = _spec(pod)
    policy = _restart_policy(pod)
    sb = obs.sandbox
    if mem.rejected is not None:
        return acts
    if is_terminal(pod, obs) or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        # done: nothing may run again; a ready sandbox goes
        if sb is not None and sb.state == SandboxState.READY:
            acts.kill_pod = True
        return acts
    if sb is None or sb.state != SandboxState.READY:
        return _sandbox_actions(pod, obs, mem, now, acts)

    cur = obs.current()
    regular = _regular(pod, obs)

    def due(at: float) -> None:
        acts.wake_at = at if acts.wake_at is None else min(acts.wake_at, at)

    def restart(c: Mapping[str, Any], st: ContainerStatus | None, init: bool) -> None:
        name = c["name"]
        retry_at = mem.retry.get(name, (0.0, 0.0))[0]
        if retry_at > now:
            due(retry_at)
            return
        if st is not None and st.state == ContainerState.EXITED:
            entry = mem.backoff.get(name)
            until = _backoff_until(entry, st)
            if until > now and entry is not None:
                pod_ref = f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"
                message = f"back-off {go_duration(entry[1])} restarting failed container={name} pod={pod_ref}"
                acts.waiting[name] = ("CrashLoopBackOff", message)
                due(until)
                return
        acts.start.append(StartContainer(c, init, _next_attempt(obs, name)))

    def kill(c: Mapping[str, Any], st: ContainerStatus, why: str, probe: str = "") -> None:
        acts.kill.append((st, why))
        grace = _probe_grace(c, probe) if probe else None
        if grace is not None:
            acts.kill_grace[st.id] = grace

    # ephemeral containers (kubectl debug) start first, once: never restarted (kubelet starts
    # them before init containers, so that a pod whose init fails can still be debugged)
    ephemeral = [StartContainer(ec, False, 0) for ec in spec.get("ephemeralContainers") or ()
                 if obs.latest(ec["name"]) is None and mem.retry.get(ec["name"], (0.0, 0.0))[0] <= now]
    acts.start.extend(ephemeral)
    initialized, init_start = _init_actions(pod, cur, probes, kill)
    if init_start is None:  # an init container failed under restartPolicy Never: the pod has failed
        acts.kill_pod = True
        acts.start = []
        return acts
    inits = list(spec.get("initContainers") or ())
    for i in init_start:
        restart(inits[i], cur.get(inits[i]["name"]), True)
    if not initialized:
        return acts

    keep = 0
    to_start = 0
    for c in spec.get("containers") or ():
        name = c["name"]
        st = regular.get(name)
        if st is None or st.state != ContainerState.RUNNING:
            if st is None or st.state != ContainerState.EXITED or _should_restart(policy, st):
                to_start += 1
                if st is not None and st.state in (ContainerState.UNKNOWN, ContainerState.CREATED):
                    kill(c, st, f'Container is in "{st.state.value}" state, try killing it before restart')
                restart(c, st, False)
            continue
        # running: kept unless a probe says otherwise (kubelet's computePodActions)
        if probes.liveness.get(st.id) is False:
            why, probe = f"Container {name} failed liveness probe", "livenessProbe"
        elif probes.startup.get(st.id) is False:
            why, probe = f"Container {name} failed startup probe", "startupProbe"
        else:
            keep += 1
            continue
        if policy != "Never":
            why += ", will be restarted"
            to_start += 1
            restart(c, st, False)
        kill(c, st, why, probe)
    if keep == 0 and to_start == 0:
        # every regular container is done for good: the pod is stopped, its sidecars with it
        # (kubelet does not restart them then)
        acts.kill_pod = True
        acts.start = [s for s in acts.start if not s.init and s not in ephemeral]
        acts.waiting = {k: v for k, v in acts.waiting.items() if k in {c["name"] for c in spec.get("containers") or ()}}
    return acts


def _init_actions(pod: Mapping[str, Any], cur: Mapping[str, ContainerStatus], probes: ProbeResults,
                  kill: Any) -> tuple[bool, list[int] | None]:
    """kubelet's ``computeInitContainerActions``: (the pod has been initialized, the indexes of
    the init containers to start, in spec order; None when the pod has failed). The init
    containers are looked at newest first: the newest one that ran decides what comes next,
    and every sidecar before it is kept running."""
    spec = _spec(pod)
    inits = list(spec.get("initContainers") or ())
    if not inits:
        return True, []
    policy = _restart_policy(pod)
    # a regular container in this sandbox: initialized before (the init containers' own
    # statuses may be gone). kubelet counts only created or running ones because it cannot
    # tell an older sandbox's exited containers apart; ``cur`` is the newest sandbox's only.
    has_initialized = any(c["name"] in cur for c in spec.get("containers") or ())
    previously = has_initialized
    out: list[int] = []
    for i in range(len(inits) - 1, -1, -1):
        c = inits[i]
        sidecar = is_restartable_init(c)
        st = cur.get(c["name"])
        if st is None:
            if previously and sidecar:
                out.append(i)  # a sidecar whose container is gone: start it again
            continue
        if previously and not sidecar:
            continue  # after initialization only sidecars are kept running
        last = i == len(inits) - 1
        if st.state == ContainerState.CREATED:
            # created but never started (the agent stopped between the two): kubelet kills
            # and starts it again
            kill(c, st, f'Init container is in "{st.state.value}" state, try killing it before restart')
            out.append(i)
        elif st.state == ContainerState.RUNNING:
            if sidecar:
                startup = probes.startup.get(st.id)
                if c.get("startupProbe") and startup is not True:
                    if startup is False:
                        kill(c, st, f"Init container {c['name']} failed startup probe", "startupProbe")
                        out.append(i)
                else:
                    if last:
                        has_initialized = True
                    elif not previously:
                        out.append(i + 1)  # started: the next init container may start
                    if c.get("livenessProbe") and probes.liveness.get(st.id) is False:
                        kill(c, st, f"Init container {c['name']} failed liveness probe", "livenessProbe")
                        out.append(i)
        elif st.state == ContainerState.EXITED:
            if sidecar:
                out.append(i)
            elif st.exit_code != 0:
                if policy == "Never":
                    return False, None
                out.append(i)
            elif last:
                has_initialized = True
            else:
                out.append(i + 1)
        else:  # unknown
            if not sidecar and policy == "Never":
                return False, None
            kill(c, st, f'Init container is in "{st.state.value}" state, try killing it before restart')
            out.append(i)
        previously = True
    if not previously:
        out.append(0)  # no init container has run: the first one
    return has_initialized, sorted(set(out))


# --------------------------------------------------------------------------- status


def _ts(t: float) -> str | None:
    return format_epoch(t) if t > 0 else None


def _terminated(c: ContainerStatus, scheme: str) -> Obj:
    out: Obj = {"exitCode": c.exit_code, "reason": c.reason or ("Completed" if c.exit_code == 0 else "Error"),
                "startedAt": _ts(c.started_at), "finishedAt": _ts(c.finished_at),
                "containerID": f"{scheme}://{c.id}"}
    if c.message:
        out["message"] = c.message
    return out


def _container_status(pod: Mapping[str, Any], spec_c: Mapping[str, Any], st: ContainerStatus | None,
                      prev: ContainerStatus | None, waiting: tuple[str, str] | None, default_wait: str,
                      scheme: str, old: Mapping[str, Any] | None, probes: ProbeResults = NO_PROBES) -> Obj:
    """One ``ContainerStatus`` as kubelet's ``convertToAPIContainerStatuses`` makes it."""
    name = spec_c["name"]
    out: Obj
    if st is None:
        # no container in the runtime: the last reported one stands (a terminated state as
        # it was; otherwise its restart count and last state under the default waiting)
        if old is not None and (old.get("state") or {}).get("terminated"):
            out = {k: v for k, v in old.items() if k in (
                "name", "image", "imageID", "containerID", "ready", "restartCount", "started", "state", "lastState")}
            out.update(name=name, image=spec_c.get("image", ""), ready=False, started=False)
            out.setdefault("lastState", {})
            out.setdefault("imageID", "")
            out.setdefault("restartCount", 0)
        else:
            out = {"name": name, "image": spec_c.get("image", ""), "imageID": "", "ready": False,
                   "restartCount": int((old or {}).get("restartCount") or 0), "started": False,
                   "state": {"waiting": {"reason": default_wait}},
                   "lastState": dict((old or {}).get("lastState") or {})}
    else:
        out = {"name": name, "image": spec_c.get("image", ""), "imageID": st.image_ref,
               "containerID": f"{scheme}://{st.id}", "ready": False, "restartCount": st.attempt, "started": False,
               "lastState": {"terminated": _terminated(prev, scheme)} if prev is not None else {}}
        if st.state == ContainerState.RUNNING:
            out["state"] = {"running": {"startedAt": _ts(st.started_at)}}
            out["started"] = _started(spec_c, st, probes)
            out["ready"] = _ready(spec_c, st, probes)
        elif st.state == ContainerState.EXITED:
            out["state"] = {"terminated": _terminated(st, scheme)}
        elif st.state == ContainerState.UNKNOWN and old is not None and (old.get("state") or {}).get("running"):
            # it was running and cannot be found now: it ran and failed, it did not never run
            out["state"] = {"terminated": {"exitCode": 137, "reason": STATUS_UNKNOWN, "startedAt": None,
                                           "finishedAt": None,
                                           "message": "The container could not be located when the pod was terminated"}}
            out["restartCount"] = int(old.get("restartCount") or 0) + 1
        else:
            out["state"] = {"waiting": {}}  # created, not yet running (or unknown)
    restarts = _should_be_restarted(pod, st) or (
        is_restartable_init(spec_c) and st is not None and st.state == ContainerState.EXITED
        and not (pod.get("metadata") or {}).get("deletionTimestamp"))
    if waiting is not None and restarts:
        reason, message = waiting
        if "terminated" in out["state"]:
            out["lastState"] = out["state"]  # the run that failed is the last state while waiting
        out["state"] = {"waiting": {"reason": reason, "message": message} if message else {"reason": reason}}
    return out


def _statuses(pod: Mapping[str, Any], obs: Observed, waiting: Mapping[str, tuple[str, str]],
              scheme: str, probes: ProbeResults = NO_PROBES) -> tuple[list[Obj], list[Obj]]:
    """(initContainerStatuses in spec order, containerStatuses sorted by name), as kubelet
    reports them."""
    spec = _spec(pod)
    old_status = pod.get("status") or {}
    old_init = {s.get("name"): s for s in old_status.get("initContainerStatuses") or () if isinstance(s, dict)}
    old_main = {s.get("name"): s for s in old_status.get("containerStatuses") or () if isinstance(s, dict)}
    inits = list(spec.get("initContainers") or ())
    default = "PodInitializing" if inits else "ContainerCreating"
    cur = obs.current()
    regular = _regular(pod, obs)
    initialized_before = any(c["name"] in cur for c in spec.get("containers") or ())
    init_statuses = []
    for ic in inits:
        name = ic["name"]
        st = cur.get(name)
        w = waiting.get(name)
        sidecar = is_restartable_init(ic)
        if st is not None and st.state == ContainerState.EXITED and st.exit_code == 0 and not sidecar:
            w = None  # a completed init container is not run again
        s = _container_status(pod, ic, st, obs.previous(name, st) if st is not None else None, w, default,
                              scheme, old_init.get(name), probes)
        if sidecar:
            init_statuses.append(s)  # ready and started as a regular container's
            continue
        if st is None and initialized_before and "waiting" in s["state"]:
            # kubelet: its containers exist, so it ran to completion; its status is gone
            s["state"] = {"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": None, "finishedAt": None,
                "message": "Unable to get init container status from container runtime and pod has been "
                           "initialized, treat it as exited normally"}}
        term = s["state"].get("terminated")
        s["ready"] = bool(term is not None and term.get("exitCode") == 0)  # a completed init container is ready
        init_statuses.append(s)
    statuses = []
    for c in spec.get("containers") or ():
        name = c["name"]
        st = regular.get(name)
        statuses.append(_container_status(pod, c, st, obs.previous(name, st) if st is not None else None,
                                          waiting.get(name), default, scheme, old_main.get(name), probes))
    statuses.sort(key=lambda s: str(s["name"]))
    return init_statuses, statuses


def _get_phase(pod: Mapping[str, Any], init_statuses: Sequence[Obj], statuses: Sequence[Obj],
               initialized: bool = False) -> str:
    """kubelet's ``getPhase`` over the API container statuses. ``initialized``: a regular
    container of the newest sandbox has started (``HasAnyActiveRegularContainerStarted``)."""
    spec = _spec(pod)
    policy = _restart_policy(pod)
    by_init = {s["name"]: s for s in init_statuses}
    by_main = {s["name"]: s for s in statuses}
    pending_init = failed_init = pending_sidecars = 0
    unknown = running = waiting = stopped = succeeded = 0
    for ic in spec.get("initContainers") or ():
        s = by_init.get(ic["name"])
        state = (s or {}).get("state") or {}
        last = ((s or {}).get("lastState") or {}).get("terminated")
        if is_restartable_init(ic):
            # a sidecar counts as running while it runs; exited, it does not count at all
            if s is None:
                unknown += 1
            elif "running" in state:
                if not s.get("started"):
                    pending_sidecars += 1
                running += 1
            elif "terminated" in state:
                pass
            elif "waiting" in state:
                if last is None:
                    pending_sidecars += 1
                    waiting += 1
            else:
                pending_sidecars += 1
                unknown += 1
            continue
        if s is None or "running" in state:
            pending_init += 1
        elif "terminated" in state:
            if state["terminated"].get("exitCode") != 0:
                failed_init += 1
        elif "waiting" in state:
            if last is None:
                pending_init += 1
            elif last.get("exitCode") != 0:
                failed_init += 1
        else:
            pending_init += 1
    for c in spec.get("containers") or ():
        s = by_main.get(c["name"])
        state = (s or {}).get("state") or {}
        if s is None:
            unknown += 1
        elif "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "waiting" in state:
            if ((s.get("lastState") or {}).get("terminated")) is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    if failed_init > 0 and policy == "Never":
        return "Failed"
    if pending_init > 0 or (pending_sidecars > 0 and not initialized) or waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if policy == "Always":
            return "Running"  # all restarting
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"  # OnFailure: the failed ones restart
    return "Pending"


def _phase(pod: Mapping[str, Any], obs: Observed, init_statuses: Sequence[Obj], statuses: Sequence[Obj]) -> str:
    old = (pod.get("status") or {}).get("phase")
    if old in ("Succeeded", "Failed"):
        return str(old)  # a terminal phase never changes
    cur = obs.current()
    initialized = any((st := cur.get(c["name"])) is not None and st.started_at > 0
                      for c in _spec(pod).get("containers") or ())
    return _get_phase(pod, init_statuses, statuses, initialized)


def pod_phase(pod: Mapping[str, Any], obs: Observed, waiting: Mapping[str, tuple[str, str]],
              probes: ProbeResults = NO_PROBES) -> str:
    """kubelet's ``getPhase`` on the statuses :func:`pod_status` would report."""
    init_statuses, statuses = _statuses(pod, obs, waiting, "", probes)
    return _phase(pod, obs, init_statuses, statuses)


def _sorted_ips(ips: Sequence[str], host_ips: Sequence[str]) -> list[str]:
    """kubelet's ``sortPodIPs``: the first address of the node's family, then the first of the
    other family (at most two)."""

    def version(ip: str) -> int:
        try:
            return ipaddress.ip_address(ip).version
        except ValueError:
            return 0

    primary = version(host_ips[0]) if host_ips and version(host_ips[0]) else 4
    out = [ip for ip in ips if version(ip) == primary][:1]
    out += [ip for ip in ips if version(ip) not in (primary, 0)][:1]
    return out


def _conditions(pod: Mapping[str, Any], obs: Observed, phase: str, init_statuses: Sequence[Obj],
                statuses: Sequence[Obj], now: float) -> list[Obj]:
    """Kubelet's conditions (``status/generate.go``) after everyone else's; a transition time
    moves only when the status does."""
    spec = _spec(pod)
    old = pod.get("status") or {}
    prev = {c.get("type"): c for c in old.get("conditions") or () if isinstance(c, dict)}

    def cond(t: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        s = "True" if ok else "False"
        p = prev.get(t)
        out: Obj = {"type": t, "status": s,
                    "lastTransitionTime": p.get("lastTransitionTime") if p and p.get("status") == s else format_epoch(now)}
        if reason:
            out["reason"] = reason
        if message:
            out["message"] = message
        return out

    sb = obs.sandbox
    ready_to_start = cond("PodReadyToStartContainers", sb is not None and sb.state == SandboxState.READY)

    # Initialized: a sidecar counts once it has started, an init container once it completed
    sidecars = {c["name"] for c in spec.get("initContainers") or () if is_restartable_init(c)}
    incomplete = [s["name"] for s in init_statuses
                  if not (s.get("started") if s["name"] in sidecars else s["ready"])]
    started = any("running" in s["state"] or "terminated" in s["state"] for s in statuses)
    if phase == "Succeeded":
        initialized = cond("Initialized", True, POD_COMPLETED)
    elif started or not incomplete:
        initialized = cond("Initialized", True)
    else:
        initialized = cond("Initialized", False, CONTAINERS_NOT_INITIALIZED,
                           f"containers with incomplete status: [{' '.join(incomplete)}]")

    # ContainersReady, then Ready (which also needs the readiness gates)
    if phase in ("Succeeded", "Failed"):
        why = POD_COMPLETED if phase == "Succeeded" else POD_FAILED
        containers_ready = cond("ContainersReady", False, why)
        ready = cond("Ready", False, why)
    else:
        unready = [s["name"] for s in init_statuses if s["name"] in sidecars and not s["ready"]]
        unready += [s["name"] for c in spec.get("containers") or () for s in statuses
                    if s["name"] == c["name"] and not s["ready"]]
        if unready:
            msg = f"containers with unready status: [{' '.join(unready)}]"
            containers_ready = cond("ContainersReady", False, CONTAINERS_NOT_READY, msg)
            ready = cond("Ready", False, CONTAINERS_NOT_READY, msg)
        else:
            containers_ready = cond("ContainersReady", True)
            gates = []
            for g in spec.get("readinessGates") or ():
                t = (g or {}).get("conditionType")
                c = prev.get(t)
                if c is None:
                    gates.append(f'corresponding condition of pod readiness gate "{t}" does not exist.')
                elif c.get("status") != "True":
                    gates.append(f'the status of pod readiness gate "{t}" is not "True", but {c.get("status")}')
            ready = cond("Ready", False, READINESS_GATES_NOT_READY, ", ".join(gates)) if gates else cond("Ready", True)
    scheduled = cond("PodScheduled", True)
    others = [c for t, c in prev.items() if t not in KUBELET_CONDITIONS]
    return [*others, ready_to_start, initialized, ready, containers_ready, scheduled]


def pod_status(pod: Mapping[str, Any], obs: Observed, mem: Memory, waiting: Mapping[str, tuple[str, str]],
               host_ips: Sequence[str], now: float, runtime: str = "runc", probes: ProbeResults = NO_PROBES) -> Obj:
    """The status kubelet writes for ``pod``: phase, conditions, container statuses, IPs, start
    time; fields others own (nominatedNodeName, their conditions, qosClass set at create) are
    kept as the API has them."""
    old: Obj = dict(pod.get("status") or {})
    spec = _spec(pod)
    if mem.rejected is not None:
        reason, message = mem.rejected
        return {**old, "phase": "Failed", "reason": reason, "message": f"Pod was rejected: {message}",
                "startTime": old.get("startTime") or format_epoch(now)}
    sb = obs.sandbox
    init_statuses, statuses = _statuses(pod, obs, {**mem.waiting, **waiting}, runtime, probes)
    phase = _phase(pod, obs, init_statuses, statuses)
    if phase in ("Succeeded", "Failed"):
        for s in statuses:
            s["ready"] = False
    status: Obj = {**old, "phase": phase,
                   "conditions": _conditions(pod, obs, phase, init_statuses, statuses, now)}
    if phase != old.get("phase"):
        # a reason and message belong to the phase they came with
        status.pop("reason", None)
        status.pop("message", None)
    hosts = list(host_ips)[:2]
    if hosts:
        status["hostIP"] = hosts[0]
        status["hostIPs"] = [{"ip": ip} for ip in hosts]
    ips = _sorted_ips(sb.ips, hosts) if sb is not None else []
    if spec.get("hostNetwork") and hosts:
        ips = hosts
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    status["startTime"] = old.get("startTime") or format_epoch(now)
    status["containerStatuses"] = statuses
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if spec.get("ephemeralContainers"):
        status["ephemeralContainerStatuses"] = _ephemeral_statuses(pod, obs, {**mem.waiting, **waiting}, runtime)
    return status


def _ephemeral_statuses(pod: Mapping[str, Any], obs: Observed, waiting: Mapping[str, tuple[str, str]],
                        scheme: str) -> list[Obj]:
    """``ephemeralContainerStatuses`` in spec order: never ready (no probes, not counted in the
    pod's readiness), never restarted."""
    old = {s.get("name"): s for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or ()
           if isinstance(s, dict)}
    out = []
    for ec in _spec(pod).get("ephemeralContainers") or ():
        name = ec["name"]
        st = obs.latest(name)
        s = _container_status(pod, ec, st, None, None, "ContainerCreating", scheme, old.get(name))
        if st is None and name in waiting:
            reason, message = waiting[name]
            s["state"] = {"waiting": {"reason": reason, "message": message} if message else {"reason": reason}}
        s["ready"] = False
        out.append(s)
    return out
