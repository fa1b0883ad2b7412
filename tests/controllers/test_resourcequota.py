"""The resource quota controller against an in-process API server: status.hard from the spec,
status.used measured from the objects (created before the quota too), usage given back when
pods are deleted or finish, spec changes, count/<resource>.<group> kinds watched on demand, and
the periodic resync correcting a charge whose object never came."""

from __future__ import annotations

from typing import Any

from tests.helpers.cluster import InProcessCluster

from k8py.client.errors import ForbiddenError
from k8py.controllers.resourcequota import ResourceQuotaController

Obj = dict[str, Any]
POD = ("v1", "Pod")
RQ = ("v1", "ResourceQuota")


def pod(name: str, cpu: str = "100m") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}}]}}


def rq(hard: Obj, name: str = "q") -> Obj:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": {"hard": hard}}


async def _status(c: InProcessCluster, name: str = "q") -> Obj:
    return (await c.client.get(RQ, name, "default")).get("status") or {}


async def test_usage_is_measured_kept_and_given_back() -> None:
    async with InProcessCluster(controllers=["resourcequota"]) as c:
        for n in ("a", "b"):
            await c.client.create(POD, pod(n, "250m"), "default")
        await c.client.create(RQ, rq({"pods": "3", "requests.cpu": "1", "count/pods": "10"}), "default")

        async def measured() -> bool:
            st = await _status(c)
            return st.get("used") == {"pods": "2", "requests.cpu": "500m", "count/pods": "2"}

        await c.until(measured, what="usage of the pods made before the quota")
        assert (await _status(c))["hard"] == {"pods": "3", "requests.cpu": "1", "count/pods": "10"}

        # admission charges the third pod; the fourth does not fit
        await c.client.create(POD, pod("c", "250m"), "default")
        assert (await _status(c))["used"]["pods"] == "3"
        try:
            await c.client.create(POD, pod("d"), "default")
            raise AssertionError("the fourth pod was admitted")
        except ForbiddenError as e:
            assert "exceeded quota: q, requested: pods=1, used: pods=3, limited: pods=3" in str(e)

        # a deleted pod frees its slot (no resync needed: the delete triggers the recount)
        await c.client.delete(POD, "a", "default")

        async def freed() -> bool:
            return (await _status(c))["used"] == {"pods": "2", "requests.cpu": "500m", "count/pods": "2"}

        await c.until(freed, what="the deleted pod's usage given back")
        await c.client.create(POD, pod("d"), "default")

        # a pod that finished stops holding compute quota, but still counts as an object
        done = await c.client.get(POD, "b", "default")
        done["status"] = {"phase": "Succeeded"}
        await c.client.update_status(POD, done, "default")

        async def finished() -> bool:
            return (await _status(c))["used"] == {"pods": "2", "requests.cpu": "350m", "count/pods": "3"}

        await c.until(finished, what="the finished pod's usage given back")


async def test_spec_changes_count_kinds_and_resync() -> None:
    async with InProcessCluster(controllers=["resourcequota"]) as c:
        assert c.manager is not None
        ctl = next(x for x in c.manager.running if isinstance(x, ResourceQuotaController))
        ctl.resync = 0.3
        await c.client.create(("apps/v1", "Deployment"), {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
            "default")
        await c.client.create(RQ, rq({"count/deployments.apps": "2"}), "default")

        async def counted() -> bool:
            return (await _status(c)).get("used") == {"count/deployments.apps": "1"}

        await c.until(counted, what="deployments counted through an informer started on demand")

        cur = await c.client.get(RQ, "q", "default")
        cur["spec"]["hard"]["secrets"] = "5"
        await c.client.update(RQ, cur, "default")

        async def grown() -> bool:
            st = await _status(c)
            return st.get("hard") == {"count/deployments.apps": "2", "secrets": "5"} and \
                st.get("used", {}).get("secrets") == "0"

        await c.until(grown, what="status.hard following the spec")

        # a charge whose object never came (its create failed after admission) is corrected
        cur = await c.client.get(RQ, "q", "default")
        cur["status"]["used"]["secrets"] = "4"
        await c.client.update_status(RQ, cur, "default")

        async def corrected() -> bool:
            return (await _status(c))["used"].get("secrets") == "0"

        await c.until(corrected, what="the periodic resync correcting status.used")
