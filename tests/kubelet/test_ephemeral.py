"""Ephemeral containers (kubectl debug): the pod state machine starts each once while the pod
runs and never again, and reports them; the API's update rules for pods/ephemeralcontainers."""

from __future__ import annotations

from typing import Any

from tests.kubelet.test_podstate import EXITED, NOW, RUNNING, ctr, obs, pod, started

from k8py.api.validation.pod import validate_ephemeral_containers_update
from k8py.kubelet.podstate import Memory, compute_actions, pod_status

DBG = {"name": "dbg", "image": "busybox:1", "targetContainerName": "app", "stdin": True, "tty": True,
       "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File"}


def test_an_ephemeral_container_starts_once() -> None:
    p = pod("app", ephemeralContainers=[DBG])
    assert started(compute_actions(p, obs(ctr("app", RUNNING)), Memory(), NOW)) == [("dbg", False, 0)]
    # running, or done: nothing more to do (an ephemeral container is never restarted)
    for state in (RUNNING, EXITED):
        acts = compute_actions(p, obs(ctr("app", RUNNING), ctr("dbg", state, code=1)), Memory(), NOW)
        assert started(acts) == [] and acts.kill == []
    # as kubelet, before the pod's own containers (a pod whose init container fails can be debugged)
    assert started(compute_actions(p, obs(), Memory(), NOW)) == [("dbg", False, 0), ("app", False, 0)]
    # a pod that is done starts nothing
    done = pod("app", restart="Never", ephemeralContainers=[DBG])
    assert started(compute_actions(done, obs(ctr("app", EXITED)), Memory(), NOW)) == []


def test_ephemeral_container_statuses() -> None:
    p = pod("app", ephemeralContainers=[DBG])
    st = pod_status(p, obs(ctr("app", RUNNING), ctr("dbg", RUNNING)), Memory(), {}, ["10.0.0.1"], NOW)
    (e,) = st["ephemeralContainerStatuses"]
    assert e["name"] == "dbg" and "running" in e["state"] and e["ready"] is False
    assert e["containerID"] == "runc://dbg-sb1-0"
    assert [c["name"] for c in st["containerStatuses"]] == ["app"]  # not a regular container
    assert st["phase"] == "Running" and {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
    waiting = pod_status(p, obs(ctr("app", RUNNING)), Memory(), {}, [], NOW)["ephemeralContainerStatuses"][0]
    assert waiting["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert "ephemeralContainerStatuses" not in pod_status(pod("app"), obs(ctr("app", RUNNING)), Memory(), {}, [], NOW)


def _pods(old_ecs: list[dict[str, Any]], new_ecs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    base = {"containers": [{"name": "app", "image": "x"}], "initContainers": [{"name": "init", "image": "x"}]}
    return {"spec": {**base, "ephemeralContainers": new_ecs}}, {"spec": {**base, "ephemeralContainers": old_ecs}}


def _errs(old_ecs: list[dict[str, Any]], new_ecs: list[dict[str, Any]]) -> list[str]:
    new, old = _pods(old_ecs, new_ecs)
    return [str(e) for e in validate_ephemeral_containers_update(new, old)]


def test_ephemeral_containers_update_rules() -> None:
    assert _errs([], [DBG]) == []
    assert _errs([DBG], [DBG, {**DBG, "name": "two", "targetContainerName": "init"}]) == []
    assert _errs([DBG], []) == [
        'spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be removed\n']
    assert _errs([DBG], [{**DBG, "image": "other:2"}]) == [
        'spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be changed\n']
    errs = _errs([], [{**DBG, "name": "app", "ports": [{"containerPort": 80}], "livenessProbe": {"exec": {}}}])
    assert 'spec.ephemeralContainers[0].name: Duplicate value: "app"' in errs
    assert "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container" in errs
    assert "spec.ephemeralContainers[0].livenessProbe: Forbidden: cannot be set for an Ephemeral Container" in errs
    assert _errs([], [{**DBG, "targetContainerName": "nope"}]) == [
        'spec.ephemeralContainers[0].targetContainerName: Not found: "nope"']
    assert "spec.ephemeralContainers[0].image: Required value" in _errs([], [{**DBG, "image": ""}])
