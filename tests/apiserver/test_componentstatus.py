"""``v1 ComponentStatus``: etcd-0 probes the store, scheduler and controller-manager their leader
Leases; list and get only, kube's deprecation warning, kube's table and errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp
from tests.e2e.conftest import Server
from tests.helpers.cluster import InProcessCluster

from k8py.apiserver.componentstatus import lease_health

WARNING = '299 - "v1 ComponentStatus is deprecated in v1.19+"'
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def _micro(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease(name: str, renewed: dt.datetime, duration: int = 15, holder: str = "node-a_1") -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                     "acquireTime": _micro(renewed), "renewTime": _micro(renewed)}}


def test_lease_health() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    t = now.timestamp()
    ok = lease_health(_lease("kube-scheduler", now - dt.timedelta(seconds=5)), "Lease kube-system/kube-scheduler",
                      "scheduler", t)
    assert (ok.healthy, ok.message, ok.error) == (True, "ok", "")
    late = lease_health(_lease("kube-scheduler", now - dt.timedelta(seconds=60)),
                        "Lease kube-system/kube-scheduler", "scheduler", t)
    assert not late.healthy and late.message == ""
    assert late.error == ("Lease kube-system/kube-scheduler held by node-a_1 expired 45s ago (last renewed 60s ago, "
                          "for 15s): no scheduler is working")
    missing = lease_health(None, "Lease kube-system/kube-scheduler", "scheduler", t)
    assert not missing.healthy and "no scheduler has run with leader election" in missing.error
    released = _lease("kube-scheduler", now)
    released["spec"]["holderIdentity"] = ""
    assert "released" in lease_health(released, "Lease kube-system/kube-scheduler", "scheduler", t).error


async def test_list_get_table_and_errors() -> None:
    async with InProcessCluster(controllers=()) as c, aiohttp.ClientSession() as http:
        url = f"{c.url}/api/v1/componentstatuses"
        # no scheduler or controller manager ran: their Leases do not exist
        async with http.get(url) as r:
            assert r.status == 200
            assert r.headers.getall("Warning") == [WARNING]
            body = await r.json()
        assert body["kind"] == "ComponentStatusList" and body["apiVersion"] == "v1"
        by_name = {i["metadata"]["name"]: i for i in body["items"]}
        assert set(by_name) == {"controller-manager", "scheduler", "etcd-0"}
        assert by_name["etcd-0"]["conditions"] == [{"type": "Healthy", "status": "True", "message": "ok"}]
        assert by_name["etcd-0"]["kind"] == "ComponentStatus"
        sched = by_name["scheduler"]["conditions"][0]
        assert sched["status"] == "False" and "Lease kube-system/kube-scheduler" in sched["error"]

        # a fresh Lease makes a component healthy; an expired one unhealthy
        now = dt.datetime.now(dt.UTC)
        await c.client.create(("coordination.k8s.io/v1", "Lease"), _lease("kube-scheduler", now), "kube-system")
        await c.client.create(("coordination.k8s.io/v1", "Lease"),
                              _lease("kube-controller-manager", now - dt.timedelta(minutes=5)), "kube-system")
        async with http.get(f"{url}/scheduler") as r:
            assert r.status == 200 and r.headers.getall("Warning") == [WARNING]
            got = await r.json()
        assert got["conditions"] == [{"type": "Healthy", "status": "True", "message": "ok"}]
        async with http.get(f"{url}/controller-manager") as r:
            cm = (await r.json())["conditions"][0]
        assert cm["status"] == "False" and "expired" in cm["error"]

        # kube's printer: NAME STATUS MESSAGE ERROR
        async with http.get(url, headers={"Accept": TABLE}) as r:
            table = await r.json()
        assert [col["name"] for col in table["columnDefinitions"]] == ["Name", "Status", "Message", "Error"]
        rows = {row["cells"][0]: row["cells"] for row in table["rows"]}
        assert rows["scheduler"] == ["scheduler", "Healthy", "ok", ""]
        assert rows["etcd-0"] == ["etcd-0", "Healthy", "ok", ""]
        assert rows["controller-manager"][1] == "Unhealthy"

        # selectors filter as kube's predicate does
        async with http.get(url, params={"fieldSelector": "metadata.name=etcd-0"}) as r:
            assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["etcd-0"]
        async with http.get(url, params={"labelSelector": "a=b"}) as r:
            assert (await r.json())["items"] == []

        # kube: a plain error, served as 500 without a reason
        async with http.get(f"{url}/nope") as r:
            assert r.status == 500
            st = await r.json()
        assert st["message"] == "Component not found: nope" and "reason" not in st and st["code"] == 500
        # get and list only
        async with http.delete(f"{url}/etcd-0") as r:
            assert r.status == 405
        async with http.get(url, params={"watch": "true"}) as r:
            assert r.status == 405
        async with http.post(url, json={"apiVersion": "v1", "kind": "ComponentStatus",
                                        "metadata": {"name": "x"}}) as r:
            assert r.status == 405
        async with http.get(f"{c.url}/api/v1/namespaces/default/componentstatuses") as r:
            assert r.status == 404


def test_kubectl_and_python_client(server: Server) -> None:
    from tests.e2e.conftest import wait

    def all_healthy() -> Any:
        p = server.kubectl("get", "componentstatuses")
        lines = p.stdout.splitlines()
        return all(" Healthy " in ln for ln in lines[1:]) and len(lines) == 4 and p

    # the in-process scheduler and controller manager take their Leases just after start
    p = wait(all_healthy, 60, "every component Healthy")
    header = p.stdout.splitlines()[0].split()
    assert header == ["NAME", "STATUS", "MESSAGE", "ERROR"]
    names = sorted(ln.split()[0] for ln in p.stdout.splitlines()[1:])
    assert names == ["controller-manager", "etcd-0", "scheduler"]
    assert all(ln.split()[2] == "ok" for ln in p.stdout.splitlines()[1:])
    assert "Warning: v1 ComponentStatus is deprecated in v1.19+" in p.stderr
    one = server.kubectl("get", "cs", "etcd-0", "-o", "jsonpath={.conditions[0].status}")
    assert one.stdout == "True"
    bad = server.kubectl("get", "cs", "nope", check=False)
    assert bad.returncode != 0 and "Component not found: nope" in bad.stderr

    from kubernetes import client

    with server.client() as api:
        items = client.CoreV1Api(api).list_component_status().items
        assert {i.metadata.name: i.conditions[0].status for i in items} == {
            "controller-manager": "True", "scheduler": "True", "etcd-0": "True"}


async def test_store_failure_makes_etcd_unhealthy() -> None:
    from k8py.apiserver.componentstatus import probe_store
    from k8py.apiserver.objects import Objects
    from k8py.storage.interface import StoreUnavailableError

    class DownStore:
        async def health(self) -> None:
            raise StoreUnavailableError("etcd cluster is unavailable or misconfigured")

    p = await probe_store(Objects(DownStore()), None, 0.0)  # type: ignore[arg-type]
    assert not p.healthy and p.message == ""
    assert p.error == "store health check failed: etcd cluster is unavailable or misconfigured"
