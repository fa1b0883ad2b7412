"""Lifecycle hooks, as kubelet's ``pkg/kubelet/lifecycle/handlers.go``: ``postStart`` and
``preStop`` with ``exec``, ``httpGet`` or ``sleep``.

:func:`run_hook` runs one handler and returns None on success or kubelet's message on failure.
An ``exec`` hook fails when the command exits non-zero (or cannot run); an ``httpGet`` hook only
when the request cannot be made (its status code does not matter, as in kubelet); ``sleep``
never fails. There is no timeout of the hook's own: the caller bounds it (a ``preStop`` hook
by the grace period; a ``postStart`` hook holds the container's start, as kubelet's does, and
is cancelled when the pod is deleted).

The pod worker records kubelet's events: ``FailedPostStartHook`` ("PostStartHook failed", after
which the container is killed and restarted per its policy) and ``FailedPreStopHook``
("PreStopHook failed"); the hook's own message goes to the log and, for postStart, to the
container's waiting state (``PostStartHookError``), never into an event (it may carry secrets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from k8py.kubelet.prober import HTTPProber, ProbeError, resolve_port
from k8py.kubelet.runtime.types import Runtime, RuntimeServiceError

__all__ = ["USER_AGENT", "run_hook"]

USER_AGENT = "kube-lifecycle/1.37"


def _pod_ref(pod: Mapping[str, Any]) -> str:
    """kubelet's ``format.Pod``: name_namespace(uid)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


async def run_hook(handler: Mapping[str, Any], pod: Mapping[str, Any], container: Mapping[str, Any],
                   container_id: str, pod_ip: str, runtime: Runtime, http: HTTPProber) -> str | None:
    """Run one lifecycle handler to its end; None when it succeeded, else kubelet's message."""
    name = container.get("name")
    if "exec" in handler:
        cmd = [str(a) for a in (handler["exec"] or {}).get("command") or ()]
        try:
            res = await runtime.exec_sync(container_id, cmd, 0)
        except RuntimeServiceError as e:
            return (f'Exec lifecycle hook ({_go_list(cmd)}) for Container "{name}" in Pod "{_pod_ref(pod)}" failed '
                    f'- error: {e}, message: ""')
        if res.exit_code == 0:
            return None
        output = (res.stdout + res.stderr).decode(errors="replace")
        err = f"command '{' '.join(cmd)}' exited with {res.exit_code}: {res.stderr.decode(errors='replace')}"
        return (f'Exec lifecycle hook ({_go_list(cmd)}) for Container "{name}" in Pod "{_pod_ref(pod)}" failed '
                f"- error: {err}, message: {_go_quote(output)}")
    if "httpGet" in handler:
        g = handler["httpGet"] or {}
        path = str(g.get("path") or "")
        try:
            port = resolve_port(g.get("port"), container)
            host = str(g.get("host") or pod_ip)
            if not host:
                raise ProbeError("the pod has no IP address")
            out = await http.get(str(g.get("scheme") or "HTTP"), host, port, path or "/",
                                 list(g.get("httpHeaders") or ()), 0, user_agent=USER_AGENT)
        except ProbeError as e:
            return f'HTTP lifecycle hook ({path}) for Container "{name}" in Pod "{_pod_ref(pod)}" failed - error: {e}'
        if out.result == "failure" and not out.output.startswith("HTTP probe failed with statuscode"):
            # the request could not be made; kubelet's hooks ignore the status code
            return (f'HTTP lifecycle hook ({path}) for Container "{name}" in Pod "{_pod_ref(pod)}" failed '
                    f"- error: {out.output}")
        return None
    if "sleep" in handler:
        seconds = int((handler["sleep"] or {}).get("seconds") or 0)
        await asyncio.sleep(seconds)  # the hook itself is a sleep; the caller bounds it
        return None
    return f"Cannot run handler: invalid handler: {dict(handler)}"


def _go_quote(s: str) -> str:
    """Go's ``%q`` for the common case (quotes, backslashes, newlines escaped)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'
