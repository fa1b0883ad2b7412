"""Probes: liveness, readiness and startup, as kubelet's ``pkg/kubelet/prober``.

One asyncio task per (container, probe type) that the pod declares (kubelet's ``worker``),
owned by the pod's :class:`ProbeManager`. A worker reads the newest status the pod worker
computed (:meth:`ProbeManager.update`), and every ``periodSeconds`` (or at once when asked)
probes the container it shows running: ``exec`` through the runtime's ``exec_sync`` with
``timeoutSeconds``, ``httpGet`` through the node's HTTP client (``httpget.py``: a new connection
per request, Go's request and redirect rules), ``tcpSocket`` by connecting, ``grpc`` with the
gRPC health protocol. A result counts after ``successThreshold`` (``failureThreshold``) equal
ones in a row; when the result of a container changes, the pod worker is woken, and the
results reach the status and the actions only as an input of the pure state machine
(:class:`k8py.kubelet.podstate.ProbeResults`).

kubelet's rules kept here: readiness starts at failure, liveness at success, startup unknown,
for each new container (by id); nothing is probed before ``initialDelaySeconds`` after the
container started, liveness and readiness wait until the startup probe has succeeded, a startup
probe stops once it has; after a failed liveness or startup probe the worker holds until it
sees a new container (the old one is being killed); probing stops when the pod is terminal, and
liveness and startup when it is being deleted (:meth:`ProbeManager.stop_liveness_and_startup`):
readiness probes run on while the pod terminates, until its containers are stopped, and a
change they find reaches the status then too (the pod worker's ``on_change``). Each failure is an ``Unhealthy`` event
("Liveness probe failed: ..."); an error of the probe itself (a named port that does not exist,
a runtime that cannot exec, an HTTP body cut short) is retried three times, reported ("...
probe errored and resulted in unknown state: ...", "failure state" for a body) and thrown
away. ``grpc`` probes call ``grpc.health.v1.Health/Check``
on the pod IP (``grpcprobe.py``).

The HTTP side (:class:`HTTPProber`) is also what ``httpGet`` lifecycle hooks use (``hooks.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from k8py.api.corev1 import parse_time
from k8py.kubelet import httpget, ticks
from k8py.kubelet.podstate import ProbeResults, is_restartable_init
from k8py.kubelet.runtime.types import Runtime, RuntimeServiceError

__all__ = [
    "LIVENESS",
    "READINESS",
    "STARTUP",
    "HTTPProber",
    "ProbeError",
    "ProbeManager",
    "ProbeOutcome",
    "resolve_port",
    "run_probe",
]

log = logging.getLogger("k8py.kubelet.prober")

LIVENESS, READINESS, STARTUP = "Liveness", "Readiness", "Startup"
_SPEC_KEY = {LIVENESS: "livenessProbe", READINESS: "readinessProbe", STARTUP: "startupProbe"}
# kubelet's initial value of each results manager for a new container: readiness failure,
# liveness success, startup unknown (None)
_INITIAL: dict[str, bool | None] = {LIVENESS: True, READINESS: False, STARTUP: None}

USER_AGENT = "kube-probe/1.37"
MAX_BODY = httpget.MAX_BODY  # kubelet reads at most 10 KiB of a probe's response or an exec's output
MAX_RETRIES = 3  # kubelet's maxProbeRetries: a probe that errors is tried again at once


class ProbeError(Exception):
    """The probe could not be run (not the container's answer): kubelet's probe error.
    ``state`` is the probe result it came with, as kubelet's event names it ("unknown" when
    nothing was asked; "failure" when an HTTP response's body could not be read)."""

    def __init__(self, message: str, state: str = "unknown") -> None:
        super().__init__(message)
        self.state = state


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """One probe's answer: ``result`` is "success", "warning" or "failure" (kubelet's
    ``probe.Result``; a warning counts as a success), ``output`` what the events show."""

    result: str
    output: str = ""


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    """kubelet's ``ResolveContainerPort``: a number, or the name of one of the container's
    ports (a name that is not there is tried as a number, with Go's error if it is not)."""
    if isinstance(port, int):
        n = port
    elif isinstance(port, str):
        found = [p.get("containerPort") for p in container.get("ports") or () if p.get("name") == port]
        if found and isinstance(found[0], int):
            n = found[0]
        else:
            try:
                n = int(port, 10)
            except ValueError:
                raise ProbeError(f'strconv.Atoi: parsing "{port}": invalid syntax') from None
    else:
        raise ProbeError(f"intOrString had no kind: {port!r}")
    if 0 < n < 65536:
        return n
    raise ProbeError(f"invalid port number: {n}")


class HTTPProber:
    """The HTTP client of every probe and hook of the node (:mod:`k8py.kubelet.httpget`: a new
    connection per request, as kubelet's keep-alive-free transport; no proxy; TLS not
    verified), and kubelet's reading of its answer."""

    def __init__(self) -> None:
        self._tls = httpget.insecure_tls()

    async def close(self) -> None:
        """Nothing is kept between requests; here for the agent's shutdown."""

    async def get(self, scheme: str, host: str, port: int, path: str, headers: list[Mapping[str, Any]],
                  timeout: float, user_agent: str = USER_AGENT) -> ProbeOutcome:
        """kubelet's ``DoHTTPProbe``: 200..399 a success (a 3xx, a redirect not followed, with a
        warning), anything else a failure; redirects to the same host are followed (ten
        requests at most). A response whose body cannot be read is a :class:`ProbeError`
        (kubelet: the probe errored, with a failure state)."""
        pairs = [(str(h.get("name", "")), str(h.get("value", ""))) for h in headers]
        try:
            r = await httpget.get(scheme, host, port, path if path.startswith("/") else "/" + path, pairs, timeout,
                                  user_agent=user_agent, tls=self._tls)
        except httpget.HTTPGetError as e:
            if e.reading_body:
                raise ProbeError(str(e), state="failure") from None
            return ProbeOutcome("failure", str(e))
        text = r.body.decode(errors="replace")
        if 200 <= r.status < 300:
            return ProbeOutcome("success", text)
        if 300 <= r.status < 400:
            return ProbeOutcome("warning", f"Probe terminated redirects, Response body: {text}")
        return ProbeOutcome("failure", f"HTTP probe failed with statuscode: {r.status}")


async def _tcp(host: str, port: int, timeout: float) -> ProbeOutcome:
    """kubelet's TCP probe: success when a connection opens (it is closed at once)."""
    where = httpget.host_port(host, port)
    try:
        async with asyncio.timeout(timeout if timeout > 0 else None):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return ProbeOutcome("failure", f"dial tcp {where}: i/o timeout")
    except OSError as e:
        if e.errno == errno.ECONNREFUSED:
            return ProbeOutcome("failure", f"dial tcp {where}: connect: connection refused")
        return ProbeOutcome("failure", f"dial tcp {where}: {e.strerror or e}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeOutcome("success")


async def _exec(runtime: Runtime, container_id: str, command: list[str], timeout: float) -> ProbeOutcome:
    """kubelet's exec probe: exit 0 is success; the output (stdout and stderr, at most 10 KiB)
    is what a failure shows; a command still running after ``timeoutSeconds`` is killed and
    fails with kubelet's "command ... timed out"."""
    if not command:
        raise ProbeError("exec: no command given")
    t0 = time.monotonic()
    try:
        res = await runtime.exec_sync(container_id, command, timeout)
    except RuntimeServiceError as e:
        raise ProbeError(str(e)) from e
    if res.exit_code != 0 and timeout > 0 and time.monotonic() - t0 >= timeout:
        return ProbeOutcome("failure", f'command "{" ".join(command)}" timed out')
    output = (res.stdout + res.stderr)[:MAX_BODY].decode(errors="replace")
    return ProbeOutcome("success" if res.exit_code == 0 else "failure", output)


async def run_probe(probe: Mapping[str, Any], container: Mapping[str, Any], container_id: str, pod_ip: str,
                    runtime: Runtime, http: HTTPProber, *, simulated: bool = False) -> ProbeOutcome:
    """Run one probe once (kubelet's ``runProbe``); :class:`ProbeError` when it cannot be run.
    ``simulated``: a simulated node's pod, which has no network: only exec probes are run (by
    the fake runtime), the others succeed without a connection."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    if "exec" in probe:
        return await _exec(runtime, container_id, [str(a) for a in (probe["exec"] or {}).get("command") or ()],
                           timeout)
    if simulated:
        return ProbeOutcome("success")
    if "httpGet" in probe:
        g = probe["httpGet"] or {}
        port = resolve_port(g.get("port"), container)
        host = str(g.get("host") or pod_ip)
        if not host:
            raise ProbeError("the pod has no IP address yet")
        return await http.get(str(g.get("scheme") or "HTTP"), host, port, str(g.get("path") or "/"),
                              list(g.get("httpHeaders") or ()), timeout)
    if "tcpSocket" in probe:
        t = probe["tcpSocket"] or {}
        port = resolve_port(t.get("port"), container)
        host = str(t.get("host") or pod_ip)
        if not host:
            raise ProbeError("the pod has no IP address yet")
        return await _tcp(host, port, timeout)
    if "grpc" in probe:
        g = probe["grpc"] or {}
        grpc_port = g.get("port")
        if not isinstance(grpc_port, int) or not 0 < grpc_port < 65536:
            raise ProbeError(f"invalid port number: {grpc_port}")
        if not pod_ip:
            raise ProbeError("the pod has no IP address yet")
        from k8py.kubelet import grpcprobe  # loads h2: only nodes with gRPC probes pay for it

        ok, output = await grpcprobe.check(pod_ip, grpc_port, str(g.get("service") or ""), timeout, USER_AGENT)
        return ProbeOutcome("success" if ok else "failure", output)
    raise ProbeError("missing probe handler")


# --------------------------------------------------------------------------- workers


def _parse_time(s: Any) -> float:
    t = parse_time(s) if isinstance(s, str) else None
    return t.timestamp() if t is not None else 0.0


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Worker:
    """kubelet's probe ``worker``: one probe of one container, for the life of the pod."""

    def __init__(self, mgr: ProbeManager, container: Mapping[str, Any], kind: str) -> None:
        self.mgr = mgr
        self.container = container
        self.name = str(container["name"])
        self.kind = kind
        self.spec: Mapping[str, Any] = container[_SPEC_KEY[kind]]
        self.container_id = ""
        self.on_hold = False
        self.last: bool | None = None
        self.run_length = 0
        self._triggered = False  # kubelet's manualTriggerCh (a buffer of one)
        self._waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

    async def run(self, jitter: bool) -> None:
        period = max(1.0, float(self.spec.get("periodSeconds") or 10))
        if jitter:
            # kubelet: after a restart of the agent, the first probes of its pods are spread
            # over one period instead of all at once
            await self._wait(random.random() * period)
        next_at = time.monotonic()
        while await self.do_probe():
            now = time.monotonic()
            next_at += period
            if next_at <= now:  # a probe that took longer than its period: the next tick
                next_at = now + period - ((now - next_at) % period)
            await self._wait(next_at - now)

    def trigger(self) -> None:
        """Probe now (or right after the probe in progress)."""
        self._triggered = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self, seconds: float) -> None:
        """Until ``seconds`` have passed (at the tick then) or :meth:`trigger`: a timer and a
        future, no task."""
        if not self._triggered:
            loop = asyncio.get_running_loop()
            fut = self._waiter = loop.create_future()
            # due on a tick (kubelet/ticks.py): the probes of a tick wake the loop once
            timer = loop.call_at(ticks.at_or_after(loop.time() + seconds), _resolve, fut)
            try:
                await fut
            finally:
                timer.cancel()
                self._waiter = None
        self._triggered = False

    def _status(self) -> Mapping[str, Any] | None:
        status = self.mgr.status
        for key in ("containerStatuses", "initContainerStatuses"):
            for s in status.get(key) or ():
                if s.get("name") == self.name and s.get("containerID"):
                    return s  # type: ignore[no-any-return]
        return None

    async def do_probe(self) -> bool:
        """One round (kubelet's ``doProbe``); False ends the worker."""
        mgr = self.mgr
        if mgr.status.get("phase") in ("Succeeded", "Failed"):
            return False
        c = self._status()
        if c is None:
            return True
        cid = str(c["containerID"]).partition("://")[2] or str(c["containerID"])
        if cid != self.container_id:
            if self.container_id:
                mgr.forget(self.kind, self.container_id)
            self.container_id = cid
            mgr.set(self.kind, cid, _INITIAL[self.kind])
            self.on_hold = False  # a new container: probe it
            self.last, self.run_length = None, 0
        if self.on_hold:
            return True
        running = (c.get("state") or {}).get("running")
        if running is None:
            mgr.set(self.kind, cid, False)
            # a container that will not be restarted ends its probes
            return "terminated" not in (c.get("state") or {}) or mgr.restart_policy != "Never"
        if mgr.deleting and self.kind in (LIVENESS, STARTUP):
            mgr.set(self.kind, cid, True)
            return False
        delay = self.spec.get("initialDelaySeconds") or 0
        if delay and time.time() - _parse_time(running.get("startedAt")) < float(delay):
            return True
        if c.get("started"):
            if self.kind == STARTUP:
                return True  # started: the startup probe is done (kept for a restarted container)
        elif self.kind != STARTUP:
            return True  # liveness and readiness wait for the startup probe
        ok = await self._probe(cid)
        if ok is None or cid != self.container_id:
            return True  # an error of the probe (reported): the result is thrown away
        if ok == self.last:
            self.run_length += 1
        else:
            self.last, self.run_length = ok, 1
        threshold = int(self.spec.get("successThreshold") or 1) if ok else int(self.spec.get("failureThreshold") or 3)
        if self.run_length < threshold:
            return True
        mgr.set(self.kind, cid, ok)
        if not ok and self.kind in (LIVENESS, STARTUP):
            # the container will be killed: nothing more to probe until a new one runs
            self.on_hold = True
            self.run_length = 0
        return True

    async def _probe(self, cid: str) -> bool | None:
        """kubelet's ``prober.probe``: True success, False failure, None an error (events
        recorded as kubelet writes them)."""
        mgr = self.mgr
        err: ProbeError | None = None
        for _ in range(MAX_RETRIES):
            try:
                out = await run_probe(self.spec, self.container, cid, mgr.pod_ip, mgr.runtime, mgr.http,
                                      simulated=mgr.simulated)
            except ProbeError as e:
                err = e
                continue
            except Exception as e:  # kubelet's doProbe recovers from a panic and keeps probing
                log.exception("%s probe of container %s: unexpected error", self.kind, self.name)
                err = ProbeError(f"{type(e).__name__}: {e}")
                continue
            if out.result == "warning":
                mgr.event("Warning", "ProbeWarning", f"{self.kind} probe warning: {out.output}")
                return True
            if out.result == "success":
                return True
            mgr.event("Warning", "Unhealthy", f"{self.kind} probe failed: {out.output}")
            return False
        state = err.state if err is not None else "unknown"
        mgr.event("Warning", "Unhealthy", f"{self.kind} probe errored and resulted in {state} state: {err}")
        return None


class ProbeManager:
    """The probes of one pod. ``update`` hands it the status the pod worker computed (and starts
    the workers the first time); ``results`` is what the state machine reads; ``on_change`` is
    called when a container's result changes (the pod worker syncs again)."""

    def __init__(self, runtime: Runtime, http: HTTPProber, on_change: Callable[[], None],
                 record: Callable[[str, str, str], None], *, jitter: bool = False, simulated: bool = False) -> None:
        self.runtime = runtime
        self.http = http
        self.on_change = on_change
        self.record = record
        self.jitter = jitter
        self.simulated = simulated  # a simulated node: see run_probe
        self.status: Mapping[str, Any] = {}
        self.pod_ip = ""
        self.restart_policy = "Always"
        self.deleting = False
        self.workers: list[_Worker] = []
        self._results: dict[str, dict[str, bool]] = {LIVENESS: {}, READINESS: {}, STARTUP: {}}
        self._snapshot: ProbeResults | None = None
        self._started = False

    @staticmethod
    def wanted(pod: Mapping[str, Any]) -> bool:
        """Whether ``pod`` declares any probe this manager would run."""
        spec = pod.get("spec") or {}
        cs = [*(c for c in spec.get("initContainers") or () if is_restartable_init(c)), *(spec.get("containers") or ())]
        return any(c.get(k) for c in cs for k in _SPEC_KEY.values())

    def update(self, pod: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        self.status = status
        self.pod_ip = str(status.get("podIP") or "")
        spec = pod.get("spec") or {}
        self.restart_policy = str(spec.get("restartPolicy") or "Always")
        self.deleting = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
        if not self._started:
            self._started = True
            # probes belong to regular containers and sidecars (validation refuses them elsewhere)
            cs = [*(c for c in spec.get("initContainers") or () if is_restartable_init(c)),
                  *(spec.get("containers") or ())]
            for c in cs:
                for kind, key in _SPEC_KEY.items():
                    if c.get(key):
                        w = _Worker(self, c, kind)
                        w.task = asyncio.create_task(w.run(self.jitter), name=f"probe {kind} {c['name']}")
                        self.workers.append(w)
        for w in self.workers:
            if w.kind == READINESS and w.container_id and self._results[READINESS].get(w.container_id) is not True:
                w.trigger()  # kubelet: an unready container's readiness probe runs at once

    def set(self, kind: str, container_id: str, value: bool | None) -> None:
        have = self._results[kind]
        if value is None:
            changed = have.pop(container_id, None) is not None
        else:
            changed = have.get(container_id) is not value
            have[container_id] = value
        if changed:
            self._snapshot = None
            self.on_change()

    def forget(self, kind: str, container_id: str) -> None:
        if self._results[kind].pop(container_id, None) is not None:
            self._snapshot = None

    def results(self) -> ProbeResults:
        if self._snapshot is None:
            self._snapshot = ProbeResults(dict(self._results[LIVENESS]), dict(self._results[READINESS]),
                                          dict(self._results[STARTUP]))
        return self._snapshot

    def event(self, type_: str, reason: str, message: str) -> None:
        self.record(type_, reason, message)

    async def stop_liveness_and_startup(self) -> None:
        """kubelet's ``StopLivenessAndStartup``: the pod is being deleted, so its liveness and
        startup probes end (their results left at success: nothing is restarted any more), while
        its readiness probes run on until its containers are stopped, so that a terminating
        pod's ``ready`` (its endpoints' ``serving``) follows what they find."""
        ending = [w for w in self.workers if w.kind in (LIVENESS, STARTUP)]
        if not ending:
            return
        self.workers = [w for w in self.workers if w.kind not in (LIVENESS, STARTUP)]
        tasks = [w.task for w in ending if w.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in ending:
            if w.container_id:
                # kubelet's worker leaves success behind when it sees the deletion ("a quiet
                # shutdown"), and a container without a startup worker counts as started
                self._results[w.kind][w.container_id] = True
                self._snapshot = None

    async def stop(self) -> None:
        tasks = [w.task for w in self.workers if w.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.workers.clear()
