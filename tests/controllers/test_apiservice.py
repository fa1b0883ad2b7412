"""APIServices are stored as kube stores them and report, truthfully, whether k8py serves them:
local ones are Available; Service-backed ones are not (no aggregation layer yet), saying why."""

from __future__ import annotations

from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client.errors import AlreadyExistsError, InvalidError

API_SERVICE = ("apiregistration.k8s.io/v1", "APIService")
SVC = ("v1", "Service")


def apiservice(name: str = "v1alpha1.wardle.k8s.io", **spec: Any) -> dict[str, Any]:
    group, version = name.split(".", 1)[1], name.split(".", 1)[0]
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": name},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": 1000, "versionPriority": 15,
                     **spec}}


def available(obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Available"), None)


async def test_availability_is_reported_as_it_is() -> None:
    async with InProcessCluster(controllers=["apiservice-availability"]) as c:
        local = await c.client.create(API_SERVICE, apiservice("v1beta1.local.example.com"))
        assert available(local) is not None and available(local)["reason"] == "Local"  # type: ignore[index]

        ref = {"namespace": "default", "name": "api"}
        created = await c.client.create(API_SERVICE, apiservice(service=ref, insecureSkipTLSVerify=True))
        assert created["spec"]["service"]["port"] == 443  # defaulted
        with pytest.raises(AlreadyExistsError) as e:
            await c.client.create(API_SERVICE, apiservice(service=ref, insecureSkipTLSVerify=True))
        assert e.value.message == 'apiservices.apiregistration.k8s.io "v1alpha1.wardle.k8s.io" already exists'

        async def reason_is(want: str) -> bool:
            cond = available(await c.client.get(API_SERVICE, "v1alpha1.wardle.k8s.io"))
            return cond is not None and cond["reason"] == want

        await c.until(lambda: reason_is("ServiceNotFound"), what="ServiceNotFound")
        got = available(await c.client.get(API_SERVICE, "v1alpha1.wardle.k8s.io"))
        assert got is not None and got["status"] == "False"
        assert got["message"] == 'service/api in "default" is not present'

        await c.client.create(SVC, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
                                    "spec": {"ports": [{"port": 443}], "selector": {"app": "api"}}}, "default")
        await c.until(lambda: reason_is("FailedDiscoveryCheck"), what="the service found, nothing proxied")
        got = available(await c.client.get(API_SERVICE, "v1alpha1.wardle.k8s.io"))
        assert got is not None and got["status"] == "False"
        assert "k8py does not proxy aggregated APIs yet" in got["message"]


async def test_validation_as_kube_aggregator() -> None:
    async with InProcessCluster(controllers=[]) as c:
        bad = apiservice()
        bad["metadata"]["name"] = "wardle"
        bad["spec"]["groupPriorityMinimum"] = 0
        with pytest.raises(InvalidError) as e:
            await c.client.create(API_SERVICE, bad)
        msg = e.value.message
        assert 'metadata.name: Invalid value: "wardle": must be `spec.version+"."+spec.group`: ' \
               '"v1alpha1.wardle.k8s.io"' in msg
        assert "spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000" in msg
        with pytest.raises(InvalidError, match="local APIServices may not have insecureSkipTLSVerify"):
            await c.client.create(API_SERVICE, apiservice(insecureSkipTLSVerify=True))
