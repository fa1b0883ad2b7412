"""Pod workers: one task per pod, the thin I/O shell around :mod:`k8py.kubelet.podstate`.

A worker wakes when its pod changes (the informer), when the runtime shows a change for it (the
relist), or when a back-off ends; it then observes the runtime, asks ``compute_actions`` what to
do, does it (pull, create, start, stop), observes again and hands the status to the status
manager, which writes it only when it changed. A pod being deleted is terminated (the stop signal,
``terminationGracePeriodSeconds``, then SIGKILL), its final status written, and then deleted for
good with grace 0 (kubelet's last word on a pod); a pod gone from the API is cleaned up
(containers, sandbox, its directories) and the worker ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from k8py.api.corev1 import format_epoch
from k8py.client.errors import ApiError, NotFoundError
from k8py.kubelet import podstate, spec
from k8py.kubelet.admission import admit
from k8py.kubelet.hooks import run_hook
from k8py.kubelet.images import InvalidImageNameError, parse_reference
from k8py.kubelet.prober import ProbeManager
from k8py.kubelet.runtime.types import (
    ContainerState,
    CreateContainerError,
    Image,
    ImagePullError,
    RegistryAuth,
    RunContainerError,
    RuntimeServiceError,
    SandboxError,
    SandboxState,
)
from k8py.kubelet.volumes import MountResult

if TYPE_CHECKING:
    from k8py.kubelet.agent import Agent

__all__ = ["PodWorker"]

log = logging.getLogger("k8py.kubelet")
Obj = dict[str, Any]
POD = ("v1", "Pod")
NODE = ("v1", "Node")


def _auth_from_secret(secret: Mapping[str, Any], registry: str) -> RegistryAuth | None:
    """The credentials for ``registry`` in a ``kubernetes.io/dockerconfigjson`` (or legacy
    ``dockercfg``) Secret."""
    data = secret.get("data") or {}
    raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
    if not raw:
        return None
    try:
        cfg = json.loads(base64.b64decode(raw))
    except (ValueError, TypeError):
        return None
    auths = cfg.get("auths", cfg) if isinstance(cfg, dict) else {}
    for key, entry in auths.items():
        host = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
        if host in (registry, "index.docker.io" if registry == "docker.io" else registry):
            if not isinstance(entry, dict):
                continue
            user, pw = entry.get("username", ""), entry.get("password", "")
            if entry.get("auth") and not user:
                user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
            return RegistryAuth(user, pw, entry.get("identitytoken", ""))
    return None


def _fake_volumes(pod: Obj) -> Obj:
    """``pod`` with every volume an emptyDir (``AgentConfig.fake_volumes``: nothing is mounted,
    so a PVC, ConfigMap or hostPath volume is a directory of the pod's like any other)."""
    vols = (pod.get("spec") or {}).get("volumes") or ()
    if all("emptyDir" in v for v in vols):
        return pod
    return {**pod, "spec": {**pod["spec"], "volumes": [{"name": v.get("name", ""), "emptyDir": {}} for v in vols]}}


def _containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    return [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]


class PodWorker:
    """Drives one pod (by uid) until it is gone."""

    def __init__(self, agent: Agent, pod: Obj) -> None:
        self.agent = agent
        self.pod = pod
        self.uid = str(pod["metadata"].get("uid", ""))
        self.key = f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}"
        self.mem = podstate.Memory()
        self.gone = False  # the pod left the API: clean up and end
        self.admitted = False
        self.terminated = False  # every container stopped after deletion began
        self.finalized = False  # the final delete was sent
        self.evicted: str | None = None  # the eviction message, once the agent evicts the pod
        self._evict_grace = 0.0
        self._evict_disruption = False  # a node-pressure eviction: the DisruptionTarget condition
        self._evict_done = False
        self.probes: ProbeManager | None = None  # the pod's probe workers (prober.py), if it has probes
        self._found_running = False  # the pod ran here before the agent started
        self._post_start: asyncio.Task[str | None] | None = None  # a postStart hook in progress
        self._killing = False  # _terminate waits for the containers to stop
        # the deletion's kill in progress (_kill_within_grace), its grace period, and a shorter one
        # that came meanwhile (kubelet's podWorkers: a grace period only ever shrinks)
        self._kill_task: asyncio.Task[None] | None = None
        self._kill_grace = 0.0
        self._cut_to: float | None = None
        self._pre_stopped: set[str] = set()  # containers whose preStop hook has run
        self._readiness: asyncio.Task[None] | None = None  # readiness changes being written meanwhile
        self._readiness_changed = False
        self._wake = asyncio.Event()
        self._wake_at: float | None = None
        self.task: asyncio.Task[None] | None = None

    # -- driving -------------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod-worker {self.key}")

    def update(self, pod: Obj) -> None:
        self.pod = pod
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            if self._post_start is not None:
                self._post_start.cancel()  # kubelet cancels a postStart hook that holds a deleted pod
            self._shorten_kill(pod)
        self._wake.set()

    def remove(self, pod: Obj | None = None) -> None:
        """The pod left the API (``pod``: its last state, which a forced delete left with a
        grace period of 0)."""
        self.gone = True
        if pod is not None and (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._shorten_kill(pod)
        self._wake.set()

    def _shorten_kill(self, pod: Obj) -> None:
        """A deletion with a shorter grace period than the kill in progress (``kubectl delete``
        again with a smaller ``--grace-period``, or ``--force``): the kill starts over with it, as
        kubelet's pod workers cut a terminating pod's grace period short."""
        grace = self._grace(pod, deleting=True)
        task = self._kill_task
        now = self._kill_grace if self._cut_to is None else self._cut_to
        if task is not None and not task.done() and grace < now:
            self._cut_to = grace
            task.cancel()

    def poke(self) -> None:
        self._wake.set()

    def evict(self, message: str, grace: float = 0.0, disruption: bool = False) -> None:
        """The eviction manager evicts the pod (an emptyDir over its sizeLimit, a container over
        its ephemeral storage, node pressure): it is killed within ``grace`` and ends Failed with
        reason ``Evicted`` and ``message`` (``disruption``: and kubelet's ``DisruptionTarget``
        condition), as kubelet's ``evictPod``."""
        if self.evicted is None:
            self.evicted = message
            self._evict_grace = grace
            self._evict_disruption = disruption
            self._wake.set()

    @property
    def evict_done(self) -> bool:
        """The evicted pod's containers have been stopped."""
        return self._evict_done

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                done = await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("pod %s: sync failed: %s", self.key, e, exc_info=log.isEnabledFor(logging.DEBUG))
                done = False
                self._wake_at = time.time() + 2.0
            if done:
                return
            resync = self.agent.config.resync_interval
            timeout = resync if resync > 0 else None
            if self._wake_at is not None:
                due = max(0.0, self._wake_at - time.time())
                timeout = due if timeout is None else min(due, timeout)
            # asyncio.timeout, not wait_for: 3.11's wait_for drops a cancel that comes as the wake
            # does (agent.stop() then waits on this loop forever)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    # -- one sync ------------------------------------------------------------------------------

    async def observe(self) -> podstate.Observed:
        rt = self.agent.runtime
        sbs = []
        for sid in self.agent.sandbox_ids(self.uid):
            sb = await rt.pod_sandbox_status(sid)
            if sb is None:
                self.agent.note_sandbox(self.uid, sid, present=False)
            else:
                sbs.append(sb)
        sbs.sort(key=lambda s: (s.attempt, s.created_at), reverse=True)
        cs = [c for sb in sbs for c in await rt.list_containers(sb.id)]
        return podstate.Observed(tuple(sbs), tuple(cs))

    def _status_base(self, pod: Obj) -> Obj:
        """``pod`` with the status this agent knows to be newest (the status manager's), which
        the next status is built on: not an older informer copy's (see ``StatusManager.latest``)."""
        latest = self.agent.statuses.latest(pod)
        return pod if latest is pod.get("status") else {**pod, "status": latest}

    async def sync(self) -> bool:
        """One pass; True when the worker is done (the pod is gone and cleaned up)."""
        self._wake_at = None
        pod = self.pod
        meta = pod.get("metadata") or {}
        if self.gone:
            await self._stop_probes()
            await self._kill_all(grace=self._grace(pod, deleting=True))
            await self._cleanup()
            return True
        if meta.get("deletionTimestamp"):
            if self.probes is not None:
                # kubelet's SyncTerminatingPod: liveness and startup probes stop; readiness
                # probes run on until the containers are stopped (see _probe_changed)
                await self.probes.stop_liveness_and_startup()
            await self._terminate(pod)
            return False
        if self.evicted is not None:
            await self._stop_probes()
            await self._evict(pod)
            return False
        obs = await self.observe()
        if not self.admitted:
            if obs.sandboxes or (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed"):
                self.admitted = True  # it ran here before (an agent restart): carry on
                self._found_running = True
            else:
                others = [w.pod for w in self.agent.workers.values()
                          if w is not self and w.admitted and not w.gone and w.mem.rejected is None
                          and not (w.pod.get("metadata") or {}).get("deletionTimestamp")
                          and (w.pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
                refused = admit(pod, self.agent.node_object(), others)
                if refused is not None and refused[0] in ("NodeAffinity", "TaintToleration"):
                    # the agent's copy of its Node is from its last status post: a label or taint
                    # changed since (what the pod was placed for) is seen by reading it again
                    with contextlib.suppress(ApiError):
                        self.agent.node = await self.agent.client.get(NODE, self.agent.config.node_name)
                        refused = admit(pod, self.agent.node_object(), others)
                if refused is None and self.agent.eviction is not None:
                    refused = self.agent.eviction.admit(pod)  # kubelet's eviction admit handler
                if refused is not None:
                    self.mem.rejected = refused
                    self.agent.record(pod, "Warning", refused[0], refused[1])
                else:
                    self.admitted = True
        mounted = await self._mount_volumes(pod)
        now = time.time()
        acts = podstate.compute_actions(pod, obs, self.mem, now, self._probe_results())
        if not mounted.ready:
            # kubelet's WaitForAttachAndMount: no sandbox and no container before every volume
            # is set up; the pod shows ContainerCreating and FailedMount events meanwhile
            acts.create_sandbox = False
            acts.start = []
            if mounted.retry_at is not None:
                acts.wake_at = mounted.retry_at if acts.wake_at is None else min(acts.wake_at, mounted.retry_at)
        if not acts.idle():
            await self._carry_out(pod, obs, acts)
            obs = await self.observe()
            acts2 = podstate.compute_actions(pod, obs, self.mem, time.time(), self._probe_results())
            acts.waiting.update(acts2.waiting)
            if acts2.wake_at is not None:
                acts.wake_at = acts2.wake_at if acts.wake_at is None else min(acts.wake_at, acts2.wake_at)
            if not acts2.idle():
                self._wake.set()  # more to do (the next init container, a restart): go again
        waiting = dict(acts.waiting)
        for name, (reason, _) in waiting.items():
            if reason == "CrashLoopBackOff":
                # kubelet's doBackOff: each sync that finds a container waiting out its back-off
                # says so (the event sink counts the repeats)
                self.agent.record(pod, "Warning", "BackOff", f"Back-off restarting failed container {name} in pod "
                                  f"{meta.get('name')}_{meta.get('namespace')}({self.uid})")
        now = time.time()
        for name, (until, _) in self.mem.retry.items():
            if until > now and self.mem.waiting.get(name, ("",))[0] == "ErrImagePull":
                image = next((c.get("image", "") for c in _containers(pod) if c.get("name") == name), "")
                waiting.setdefault(name, ("ImagePullBackOff", f'Back-off pulling image "{image}"'))
        self._wake_at = acts.wake_at
        status = podstate.pod_status(self._status_base(pod), obs, self.mem, waiting, self.agent.host_ips, time.time(),
                                     self.agent.runtime.name, self._probe_results())
        self.agent.statuses.set_status(pod, status)
        self._update_probes(pod, status)
        return False

    # -- probes --------------------------------------------------------------------------------

    def _probe_results(self) -> podstate.ProbeResults:
        return self.probes.results() if self.probes is not None else podstate.NO_PROBES

    def _update_probes(self, pod: Obj, status: Obj) -> None:
        """Hand the probe workers the status just computed (started the first time)."""
        if self.probes is None:
            if not ProbeManager.wanted(pod) or status.get("phase") in ("Succeeded", "Failed"):
                return
            # kubelet: the probes of pods found running after a restart of the agent start at a
            # random point of their first period, not all at once
            self.probes = ProbeManager(self.agent.runtime, self.agent.probe_http, self._probe_changed,
                                       lambda type_, reason, msg: self.agent.record(self.pod, type_, reason, msg),
                                       jitter=self._found_running, simulated=self.agent.config.fake_probes)
        self.probes.update(pod, status)

    async def _stop_probes(self) -> None:
        if self.probes is not None:
            await self.probes.stop()

    def _probe_changed(self) -> None:
        """A probe result changed: sync again. While the pod terminates, the sync is held in the
        kill for the grace period, so a readiness change is written apart meanwhile (kubelet's
        ``SetContainerReadiness``): a terminating pod's ready (its endpoints' serving) follows
        its readiness probe."""
        self._wake.set()
        if self._killing:
            self._readiness_changed = True
            if self._readiness is None or self._readiness.done():
                self._readiness = asyncio.create_task(self._write_readiness(), name=f"readiness {self.key}")

    async def _write_readiness(self) -> None:
        while self._readiness_changed and self._killing:
            self._readiness_changed = False
            try:
                obs = await self.observe()
            except RuntimeServiceError as e:
                log.info("pod %s: readiness while terminating: %s", self.key, e)
                return
            if not self._killing:
                return  # the kill is over: _terminate writes the final status
            pod = self.pod
            status = podstate.pod_status(self._status_base(pod), obs, self.mem, {}, self.agent.host_ips, time.time(),
                                         self.agent.runtime.name, self._probe_results())
            self.agent.statuses.set_status(pod, status)

    # -- actions -------------------------------------------------------------------------------

    async def _carry_out(self, pod: Obj, obs: podstate.Observed, acts: podstate.Actions) -> None:
        rt = self.agent.runtime
        if acts.kill_pod:
            await self._kill_all(grace=self._grace(pod, deleting=False))
        for c, why in acts.kill:
            log.info("pod %s: killing container %s: %s", self.key, c.name, why)
            self.agent.record(pod, "Normal", "Killing", why)
            await self._stop_one(c, acts.kill_grace.get(c.id, self._grace(pod, deleting=False)))
        sandbox_id = obs.sandbox.id if obs.sandbox is not None and obs.sandbox.state == SandboxState.READY else None
        sb_config = spec.sandbox_config(pod, self.agent.facts, acts.sandbox_attempt if acts.create_sandbox else (
            obs.sandbox.attempt if obs.sandbox is not None else 0))
        if acts.create_sandbox:
            try:
                await asyncio.to_thread(os.makedirs, sb_config.log_directory, 0o755, True)
                sandbox_id = await rt.run_pod_sandbox(sb_config)
                self.agent.note_sandbox(self.uid, sandbox_id)
                self.mem.sandbox_error = None
                self.mem.sandbox_backoff = (0.0, 0.0)
            except SandboxError as e:
                first, cap = self.agent.config.backoff
                delay = min(max(self.mem.sandbox_backoff[1] * 2, first), cap)
                self.mem.sandbox_backoff = (time.time() + delay, delay)
                self.mem.sandbox_error = ("FailedCreatePodSandBox", str(e))
                self.agent.record(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e}")
                self._wake_at = self.mem.sandbox_backoff[0]
                return
        if sandbox_id is None or not acts.start:
            return
        for sc in acts.start:
            await self._start(pod, sandbox_id, sb_config, sc, obs)

    async def _start(self, pod: Obj, sandbox_id: str, sb_config: Any, sc: podstate.StartContainer,
                     obs: podstate.Observed) -> None:
        rt = self.agent.runtime
        c = sc.spec
        name = str(c.get("name"))
        img = await self._ensure_image(pod, c)
        if img is None:
            return
        try:
            vpod = _fake_volumes(pod) if self.agent.config.fake_volumes else pod
            volumes = self.agent.volumes.paths(vpod)
            objects = await self._referenced(pod)
            sb = await rt.pod_sandbox_status(sandbox_id)
            config = spec.container_config(pod, c, sc.attempt, self.agent.facts, objects, volumes,
                                           pod_ips=list(sb.ips) if sb is not None else None,
                                           image_user=img.user)
            config = await self.agent.volumes.prepare_mounts(vpod, c, config)
            await asyncio.to_thread(os.makedirs, os.path.join(sb_config.log_directory, name), 0o755, True)
        except spec.ConfigError as e:
            self._fail(pod, name, "CreateContainerConfigError", str(e))
            return
        prev = obs.current().get(name)
        try:
            cid = await rt.create_container(sandbox_id, config, sb_config)
        except CreateContainerError as e:
            self._fail(pod, name, "CreateContainerError", str(e))
            return
        self.agent.record(pod, "Normal", "Created", f"Created container: {name}")
        try:
            await rt.start_container(cid)
        except RunContainerError as e:
            self._fail(pod, name, "RunContainerError", str(e))
            self._note_restart(name, prev)
            return
        self.mem.waiting.pop(name, None)
        self.mem.retry.pop(name, None)
        self._note_restart(name, prev)
        self.agent.record(pod, "Normal", "Started", f"Started container {name}")
        log.debug("pod %s: started %s (%s, attempt %d)", self.key, name, img.id[:19], sc.attempt)
        post_start = (c.get("lifecycle") or {}).get("postStart")
        if post_start:
            await self._run_post_start(pod, c, cid, post_start, list(sb.ips) if sb is not None else [])

    async def _run_post_start(self, pod: Obj, c: Mapping[str, Any], cid: str, handler: Mapping[str, Any],
                              ips: list[str]) -> None:
        """kubelet's ``startContainer`` step 4: the postStart hook runs right after the start and
        holds the pod's next step; when it fails the container is killed (and restarted per the
        policy, after its back-off) and waits with ``PostStartHookError``."""
        name = str(c.get("name"))
        self._post_start = asyncio.create_task(run_hook(handler, pod, c, cid, ips[0] if ips else "",
                                                        self.agent.runtime, self.agent.probe_http))
        try:
            msg = await self._post_start
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if (me is not None and me.cancelling()) or not (self.pod.get("metadata") or {}).get("deletionTimestamp"):
                raise  # the worker itself is being stopped
            # the pod is being deleted (update() cancelled the hook): its termination kills it
            log.info("pod %s: the postStart hook of %s was cancelled: the pod is being deleted", self.key, name)
            return
        finally:
            self._post_start = None
        if msg is None:
            return
        log.info("pod %s: %s", self.key, msg)
        self.agent.record(pod, "Warning", "FailedPostStartHook", "PostStartHook failed")
        self.agent.record(pod, "Normal", "Killing", "FailedPostStartHook")
        st = await self.agent.runtime.container_status(cid)
        if st is not None:
            await self._stop_one(st, self._grace(pod, deleting=False))
        self.mem.waiting[name] = ("PostStartHookError", msg)

    def _note_restart(self, name: str, prev: Any) -> None:
        if prev is None:
            return
        ran = (prev.finished_at - prev.started_at) if prev.started_at and prev.finished_at else 0.0
        self.mem.backoff[name] = self._next_backoff(self.mem.backoff.get(name), ran)

    def _fail(self, pod: Obj, name: str, reason: str, message: str, event: str | None = None) -> None:
        """A start failed: show ``reason`` while waiting, and try again after a back-off (10 s
        doubling to 5 minutes, as kubelet's)."""
        self.mem.waiting[name] = (reason, message)
        self.agent.record(pod, "Warning", "Failed", event or f"Error: {message}")
        self.mem.retry[name] = self._next_backoff(self.mem.retry.get(name), 0.0)

    def _next_backoff(self, prev: tuple[float, float] | None, ran_for: float) -> tuple[float, float]:
        """:func:`podstate.next_backoff` with the agent's (first delay, cap)."""
        first, cap = self.agent.config.backoff
        if (first, cap) == (podstate.BACKOFF_INITIAL, podstate.BACKOFF_MAX):
            return podstate.next_backoff(prev, ran_for, time.time())
        delay = first
        if prev is not None and ran_for < podstate.BACKOFF_RESET:
            delay = min(max(prev[1] * 2, first), cap)
        return time.time() + delay, delay

    async def _mount_volumes(self, pod: Obj) -> MountResult:
        """Set up or refresh the pod's volumes (:mod:`k8py.kubelet.volumes`); a refused pod
        needs none, a finished one has them unmounted."""
        vpod = _fake_volumes(pod) if self.agent.config.fake_volumes else pod
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            await self.agent.volumes.release(vpod)  # kubelet unmounts a finished pod's volumes
            return MountResult(True)
        if not self.admitted or self.mem.rejected is not None:
            return MountResult(True)
        return await self.agent.volumes.mount(vpod)

    async def _referenced(self, pod: Obj) -> dict[tuple[str, str], Obj | None]:
        ns = pod["metadata"].get("namespace")
        out: dict[tuple[str, str], Obj | None] = {}
        for kind, name in spec.referenced_objects(pod):
            try:
                out[(kind, name)] = await self.agent.client.get(("v1", kind), name, ns)
            except NotFoundError:
                out[(kind, name)] = None
        return out

    async def _pull_auth(self, pod: Obj, image: str) -> RegistryAuth | None:
        try:
            registry = parse_reference(image).domain
        except InvalidImageNameError:
            return None  # the pull itself says what is wrong with the name
        ns = pod["metadata"].get("namespace")
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or ():
            try:
                secret = await self.agent.client.get(("v1", "Secret"), ref.get("name", ""), ns)
            except NotFoundError:
                log.info("pod %s: image pull secret %s not found", self.key, ref.get("name"))
                continue
            auth = _auth_from_secret(secret, registry)
            if auth is not None:
                return auth
        return None

    async def _ensure_image(self, pod: Obj, c: Mapping[str, Any]) -> Image | None:
        """kubelet's image manager: the pull policy, ``ErrImageNeverPull``, ``ErrImagePull``
        then ``ImagePullBackOff``. The image on the node, or None (the failure is recorded)."""
        rt = self.agent.runtime
        name = str(c.get("name"))
        image = str(c.get("image", ""))
        policy = c.get("imagePullPolicy") or "IfNotPresent"
        present = await rt.image_status(image)
        if policy == "Never" and present is None:
            msg = f'Container image "{image}" is not present with pull policy of Never'
            self._fail(pod, name, "ErrImageNeverPull", msg, event=msg)
            return None
        if present is not None and policy != "Always":
            self.agent.record(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
            return present
        self.agent.record(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        t0 = time.monotonic()
        try:
            await rt.pull_image(image, await self._pull_auth(pod, image))
        except ImagePullError as e:
            self.agent.record(pod, "Warning", "Failed", f'Failed to pull image "{image}": {e}')
            self._fail(pod, name, "ErrImagePull", str(e), event="Error: ErrImagePull")
            return None
        took = time.monotonic() - t0
        img = await rt.image_status(image)
        if img is None:  # removed again at once (an image GC, `k8py images rm`): try later
            self._fail(pod, name, "ErrImagePull", f'image "{image}" was removed right after its pull')
            return None
        self.agent.record(pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in {took:.3g}s '
                          f"({took:.3g}s including waiting). Image size: {img.size} bytes.")
        return img

    # -- stopping ------------------------------------------------------------------------------

    @staticmethod
    def _grace(pod: Obj, *, deleting: bool) -> float:
        meta = pod.get("metadata") or {}
        if deleting and meta.get("deletionGracePeriodSeconds") is not None:
            return float(meta["deletionGracePeriodSeconds"])
        g = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return float(g if g is not None else 30)

    async def _stop_one(self, c: Any, grace: float, turn: asyncio.Future[Any] | None = None) -> None:
        """kubelet's ``killContainer``: the preStop hook first (it counts against ``grace``; a hook
        still running when the grace period ends is left behind), then, once it is this
        container's turn (a sidecar waits for the containers that stop before it), the stop
        signal with what is left of the grace period (at least 2 s), SIGKILL after it."""
        rt = self.agent.runtime
        deadline = time.monotonic() + grace
        spec_c = next((x for x in _containers(self.pod) if x.get("name") == c.name), {})
        pre_stop = (spec_c.get("lifecycle") or {}).get("preStop")
        if pre_stop and grace > 0 and c.state == ContainerState.RUNNING and c.id not in self._pre_stopped:
            self._pre_stopped.add(c.id)
            sb = await rt.pod_sandbox_status(c.sandbox_id)
            ip = sb.ips[0] if sb is not None and sb.ips else ""
            try:
                async with asyncio.timeout(grace):
                    msg = await run_hook(pre_stop, self.pod, spec_c, c.id, ip, rt, self.agent.probe_http)
            except TimeoutError:
                msg = None
                log.info("pod %s: the preStop hook of %s did not complete in its grace period", self.key, c.name)
            if msg is not None:
                log.info("pod %s: %s", self.key, msg)
                self.agent.record(self.pod, "Warning", "FailedPreStopHook", "PreStopHook failed")
        if turn is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await asyncio.shield(turn)
        left = max(deadline - time.monotonic(), 2.0) if grace > 0 else 0.0
        try:
            await rt.stop_container(c.id, left)
        except RuntimeServiceError as e:
            log.warning("pod %s: stopping container %s: %s", self.key, c.id[:12], e)

    async def _kill_all(self, grace: float) -> None:
        """Stop every running container of the pod, then its sandboxes: the regular containers
        in parallel, the sidecars after them in reverse order (kubelet's termination ordering),
        every preStop hook at once at the start, all within ``grace``."""
        rt = self.agent.runtime
        obs = await self.observe()
        running = [c for c in obs.containers if c.state in (ContainerState.RUNNING, ContainerState.CREATED)]
        for c in running:
            self.agent.record(self.pod, "Normal", "Killing", f"Stopping container {c.name}")
        sidecars = [str(ic.get("name")) for ic in (self.pod.get("spec") or {}).get("initContainers") or ()
                    if podstate.is_restartable_init(ic)]
        loop = asyncio.get_running_loop()
        done: dict[str, asyncio.Future[None]] = {c.id: loop.create_future() for c in running}

        def after(names: set[str]) -> asyncio.Future[Any] | None:
            """Done when every running container named in ``names`` has stopped."""
            futs = [done[c.id] for c in running if c.name in names]
            return asyncio.gather(*futs) if futs else None

        async def stop(c: Any) -> None:
            turn = None
            if c.name in sidecars:
                # a sidecar stops after the regular containers and the sidecars declared after it
                later = set(sidecars[sidecars.index(c.name) + 1:])
                turn = after({x.name for x in running if x.name not in sidecars} | later)
            try:
                await self._stop_one(c, grace, turn)
            finally:
                done[c.id].set_result(None)

        await asyncio.gather(*(stop(c) for c in running))
        for sb in obs.sandboxes:
            if sb.state == SandboxState.READY:
                try:
                    await rt.stop_pod_sandbox(sb.id)
                except RuntimeServiceError as e:
                    log.warning("pod %s: stopping sandbox %s: %s", self.key, sb.id[:12], e)

    async def _kill_within_grace(self, pod: Obj) -> None:
        """:meth:`_kill_all` within the deletion's grace period; when :meth:`_shorten_kill` cuts
        it short, again with the shorter period, from now (preStop hooks that ran are not run
        again: the containers get the stop signal and what is left of the new period)."""
        grace = self._grace(pod, deleting=True)
        while True:
            self._kill_grace, self._cut_to = grace, None
            task = self._kill_task = asyncio.create_task(self._kill_all(grace), name=f"kill {self.key}")
            try:
                await task
                return
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if (me is not None and me.cancelling()) or self._cut_to is None:
                    raise  # the worker itself is being stopped
                log.info("pod %s: grace period shortened from %gs to %gs", self.key, grace, self._cut_to)
                grace = self._cut_to
            finally:
                self._kill_task = None

    async def _evict(self, pod: Obj) -> None:
        """kubelet's ``evictPod`` (local storage: no grace period): the containers killed, the
        ``Evicted`` event, and the status Failed with the eviction's reason and message."""
        if not self._evict_done:
            assert self.evicted is not None
            self.agent.record(pod, "Warning", "Evicted", self.evicted)
            await self._kill_all(grace=self._evict_grace)
            await self.agent.volumes.release(pod)  # an evicted pod's emptyDirs go with it
            self._evict_done = True
        obs = await self.observe()
        status = podstate.pod_status(self._status_base(pod), obs, self.mem, {}, self.agent.host_ips, time.time(),
                                     self.agent.runtime.name)
        for s in status.get("containerStatuses") or ():
            s["ready"] = False
        if self._evict_disruption:
            prev = next((c for c in status.get("conditions") or () if c.get("type") == "DisruptionTarget"), None)
            cond = {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                    "message": self.evicted, "lastTransitionTime": (prev or {}).get("lastTransitionTime")
                    or format_epoch(time.time())}
            status["conditions"] = [*(c for c in status.get("conditions") or () if c.get("type") != "DisruptionTarget"),
                                    cond]
        self.agent.statuses.set_status(pod, {**status, "phase": "Failed", "reason": "Evicted",
                                             "message": self.evicted})

    async def _terminate(self, pod: Obj) -> None:
        """The pod is being deleted: stop it within its grace period, report the final status,
        then delete it for good (grace 0, for this uid)."""
        if not self.terminated:
            self._killing = True
            try:
                await self._kill_within_grace(pod)
            finally:
                self._killing = False
            await self._stop_probes()  # kubelet's RemovePod: the containers are stopped
            self.terminated = True
        obs = await self.observe()
        status = podstate.pod_status(self._status_base(pod), obs, self.mem, {}, self.agent.host_ips, time.time(),
                                     self.agent.runtime.name)
        for s in status.get("containerStatuses") or ():
            s["ready"] = False
        self.agent.statuses.set_status(pod, status)
        meta = pod["metadata"]
        if self.finalized and meta.get("deletionGracePeriodSeconds") == 0:
            return  # the API has the grace-0 delete: the pod goes when its last finalizer does
        # (not yet, or the API kept a longer period: kubelet sends the final delete on each sync
        # until the pod is gone)
        await self.agent.statuses.flush(self.uid)
        try:
            await self.agent.client.delete(POD, meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                           uid=self.uid)
        except NotFoundError:
            pass
        except ApiError as e:  # a conflict (another uid by now) or a transient error: next wake retries
            log.info("pod %s: final delete: %s", self.key, e)
            self._wake_at = time.time() + 1.0
            return
        self.finalized = True

    async def _cleanup(self) -> None:
        """The pod is gone from the API: remove its containers, sandboxes and directories."""
        rt = self.agent.runtime
        obs = await self.observe()
        for c in obs.containers:
            with contextlib.suppress(RuntimeServiceError):
                await rt.remove_container(c.id)
        for sb in obs.sandboxes:
            with contextlib.suppress(RuntimeServiceError):
                await rt.remove_pod_sandbox(sb.id)
            self.agent.note_sandbox(self.uid, sb.id, present=False)
        cfg = spec.sandbox_config(self.pod, self.agent.facts)
        await asyncio.to_thread(shutil.rmtree, cfg.log_directory, True)
        await self.agent.volumes.teardown(self.uid)  # unmounted first, then the pod's directory
        self.agent.statuses.forget(self.uid)

