"""Expected races (an object deleted under a reconcile, a conflicting write, a name already taken)
are one debug line and a retry, as in kube's controllers; real failures stay errors with their
traceback."""

from __future__ import annotations

import logging

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client import Controller, FakeClock, ItemExponentialRateLimiter, WorkQueue
from k8py.client.errors import AlreadyExistsError, ConflictError, ForbiddenError, NotFoundError
from k8py.client.informer import SharedInformerFactory
from k8py.controllers.base import ControllerContext
from k8py.controllers.deployment import DeploymentController
from k8py.controllers.replicaset import ReplicaSetController


def _controller(exc: Exception, clock: FakeClock) -> Controller:
    async def reconcile(key: str) -> None:
        raise exc

    q: WorkQueue[str] = WorkQueue("t", clock=clock, rate_limiter=ItemExponentialRateLimiter(1.0, 100.0))
    return Controller("t", reconcile, q)


@pytest.mark.parametrize("exc", [
    NotFoundError({"reason": "NotFound", "code": 404, "message": 'deployments.apps "web" not found'}),
    ConflictError({"reason": "Conflict", "code": 409, "message": "the object has been modified"}),
    AlreadyExistsError({"reason": "AlreadyExists", "code": 409, "message": 'pods "web-1" already exists'}),
])
async def test_races_are_one_debug_line_and_a_retry(exc: Exception, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    c = _controller(exc, clock)
    c.enqueue_key("ns/web")
    with caplog.at_level(logging.DEBUG, logger="k8py.client.controller"):
        assert await c.process_next()
    mine = [r for r in caplog.records if r.name == "k8py.client.controller"]
    assert [r.levelno for r in mine] == [logging.DEBUG], caplog.text
    assert mine[0].exc_info is None and "will retry" in mine[0].getMessage()
    assert str(exc) in mine[0].getMessage()
    # retried with backoff, as any error
    assert c.queue.num_requeues("ns/web") == 1 and c.metrics.errors == 1
    clock.advance(1.0)
    assert c.queue.get_nowait() == "ns/web"


async def test_real_errors_stay_errors_with_traceback(caplog: pytest.LogCaptureFixture) -> None:
    c = _controller(KeyError("spec"), FakeClock())
    c.enqueue_key("ns/web")
    with caplog.at_level(logging.DEBUG, logger="k8py.client.controller"):
        assert await c.process_next()
    errs = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errs) == 1 and errs[0].exc_info is not None
    assert "reconcile ns/web failed" in errs[0].getMessage()
    assert c.queue.num_requeues("ns/web") == 1


async def test_status_update_of_a_just_deleted_deployment_is_not_an_error(
        caplog: pytest.LogCaptureFixture) -> None:
    """The race of the issue: the cache still holds a Deployment the server has deleted; the
    status write answers 404."""
    async with InProcessCluster(controllers=[]) as c:
        ctx = ControllerContext(client=c.client, factory=SharedInformerFactory(c.client))
        dc = DeploymentController(ctx)
        # What the informer held a moment before the delete event arrived. (No selector: the
        # controller's first write is the status one, observedGeneration.)
        dc.deployments.store.put({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "gone", "namespace": "default", "uid": "u-gone", "resourceVersion": "5",
                         "generation": 1},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}})
        dc.controller.enqueue_key("default/gone")
        with caplog.at_level(logging.DEBUG):
            assert await dc.controller.process_next()
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        races = [r for r in caplog.records if r.name == "k8py.client.controller"]
        assert len(races) == 1 and races[0].levelno == logging.DEBUG
        assert "404" in races[0].getMessage() and "will retry" in races[0].getMessage()
        assert dc.controller.queue.num_requeues("default/gone") == 1
        # The retry finds the delete in the cache and returns quietly.
        dc.deployments.store.remove("default/gone")
        dc.controller.queue.forget("default/gone")
        dc.controller.enqueue_key("default/gone")
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="k8py.client.controller"):
            assert await dc.controller.process_next()
        assert not caplog.records and dc.controller.metrics.errors == 1


async def test_replica_set_api_refusals_other_than_races_are_warnings(caplog: pytest.LogCaptureFixture) -> None:
    async with InProcessCluster(controllers=[]) as c:
        rsc = ReplicaSetController(ControllerContext(client=c.client, factory=SharedInformerFactory(c.client)))
        with caplog.at_level(logging.DEBUG, logger="k8py.controllers.replicaset"):
            rsc._retry("default/a", NotFoundError({"reason": "NotFound", "code": 404, "message": "gone"}))
            rsc._retry("default/b", ConflictError({"reason": "Conflict", "code": 409, "message": "modified"}))
            rsc._retry("default/c", ForbiddenError({"reason": "Forbidden", "code": 403, "message": "quota"}))
        levels = {r.getMessage().split(":")[0]: r.levelno for r in caplog.records}
        assert levels == {"ReplicaSet default/a": logging.DEBUG, "ReplicaSet default/b": logging.DEBUG,
                          "ReplicaSet default/c": logging.WARNING}, caplog.text


class _Client:
    """An API client whose pod delete fails with ``error`` (the status patch succeeds)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def patch(self, *a: object, **kw: object) -> dict[str, object]:
        return {}

    async def delete(self, *a: object, **kw: object) -> dict[str, object]:
        raise self.error


@pytest.mark.parametrize(("error", "level"), [
    (ConflictError({"reason": "Conflict", "code": 409, "message": "Precondition failed: UID in precondition"}),
     logging.DEBUG),
    (ForbiddenError({"reason": "Forbidden", "code": 403, "message": "nope"}), logging.WARNING),
])
async def test_preempting_a_replaced_victim_is_a_race(error: Exception, level: int,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from k8py.scheduler.plugins.defaultpreemption import DefaultPreemption
    from k8py.scheduler.types import parse_pod

    def pod(name: str) -> object:
        return parse_pod({"metadata": {"name": name, "namespace": "default", "uid": f"u-{name}"},
                          "spec": {"containers": [{"name": "c", "image": "x"}]}})

    plugin = DefaultPreemption({}, SimpleNamespace(client=_Client(error), framework=None))  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG, logger="k8py.scheduler.plugins.defaultpreemption"):
        await plugin._evict(pod("victim"), pod("preemptor"))  # type: ignore[arg-type]
    assert [r.levelno for r in caplog.records] == [level], caplog.text
