"""The test cluster harness itself: a fake node binds and runs pods through the API."""

from __future__ import annotations

import pytest
from tests.helpers.cluster import InProcessCluster

POD = ("v1", "Pod")


async def test_fake_node_binds_and_runs_pods() -> None:
    async with InProcessCluster() as c:
        await c.add_node("node-1")
        await c.client.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, "default")

        async def running() -> bool:
            p = await c.client.get(POD, "p", "default")
            st = p.get("status") or {}
            return p["spec"].get("nodeName") == "node-1" and st.get("phase") == "Running" and \
                any(x["type"] == "Ready" and x["status"] == "True" for x in st.get("conditions") or [])

        await c.until(running, what="pod running and ready on node-1")
        await c.client.delete(POD, "p", "default")

        async def gone() -> bool:
            return not (await c.client.list(POD, "default"))["items"]

        await c.until(gone, what="graceful deletion finished by the node")
        node = await c.client.get(("v1", "Node"), "node-1")
        assert {x["type"]: x["status"] for x in node["status"]["conditions"]}["Ready"] == "True"


def test_a_controller_that_does_not_import_is_an_error_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from k8py.controllers import manager

    monkeypatch.setitem(manager.CONTROLLERS, "broken", "k8py.controllers.no_such_module:Nothing")
    with pytest.raises(RuntimeError, match="controller broken cannot be loaded"):
        manager.available(["deployment", "broken"])
    assert manager.available(["deployment"]) == ["deployment"]


def test_controller_options_are_frozen_and_checked() -> None:
    from k8py.controllers.base import ControllerOptions

    o = ControllerOptions.of({"workers": 3, "service_accounts": ["a"]})
    assert o.workers == 3 and o.service_accounts == ("a",) and o.node_monitor_period == 5.0
    with pytest.raises(ValueError, match="unknown controller option"):
        ControllerOptions.of({"node_monitor_periood": 1})
    with pytest.raises(AttributeError):
        o.workers = 4  # type: ignore[misc]
