"""The client library against a real `k8py server` process over TLS with its admin kubeconfig."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp
import pytest
from e2e.conftest import Server

from k8py.client import (
    ApiError,
    Client,
    Controller,
    Informer,
    LeaderElectionConfig,
    LeaderElector,
    load_kubeconfig,
    object_key,
)

from .conftest import cm, until

CM = ("v1", "ConfigMap")


async def test_kubeconfig_tls_client_cert_informer_controller_lease(server: Server) -> None:
    cfg = load_kubeconfig(server.kubeconfig)
    assert cfg.server == f"https://127.0.0.1:{server.port}" and cfg.cert_data and cfg.ca_data
    async with Client(cfg, component="e2e") as c:
        ns = f"client-e2e-{server.port}"
        await c.create(("v1", "Namespace"), {"metadata": {"name": ns}})
        reconciled: list[str] = []

        async def reconcile(key: str) -> None:
            reconciled.append(key)

        inf = Informer(c, CM, ns, backoff=(0.05, 0.5))
        ctl = Controller("e2e", reconcile, workers=2)
        ctl.watch(inf)
        stop = asyncio.Event()
        inf.start()
        runner = asyncio.create_task(ctl.run(stop))
        try:
            await inf.wait_for_sync(10)
            for i in range(3):
                await c.create(CM, cm(f"e{i}", ns=ns, k=str(i)))
            await until(lambda: {f"{ns}/e{i}" for i in range(3)} <= set(reconciled), 10, "reconciles")
            # every namespace also holds kube-root-ca.crt (the root CA publisher's)
            assert sorted(object_key(o) for o in inf.list(ns) if o["metadata"]["name"] != "kube-root-ca.crt") == \
                [f"{ns}/e{i}" for i in range(3)]
            lst = await c.list_all(CM, ns, page_size=2)
            assert len([i for i in lst["items"] if i["metadata"]["name"] != "kube-root-ca.crt"]) == 3
        finally:
            stop.set()
            await asyncio.wait_for(runner, 5)
            await inf.stop()

        le = LeaderElector(c, LeaderElectionConfig("e2e-lock", ns, "me", 15, 10, 2))
        assert await le.try_acquire_or_renew()
        le.is_leader = True
        assert await le.try_acquire_or_renew()  # renew from the cached lease
        assert await le.release()
        lease = await c.get(("coordination.k8s.io/v1", "Lease"), "e2e-lock", ns)
        assert lease["spec"]["holderIdentity"] == ""


async def test_credentials_and_ca_are_checked(server: Server, tmp_path: Path) -> None:
    cfg = load_kubeconfig(server.kubeconfig)
    anon = dataclasses.replace(cfg, cert_data=None, key_data=None)
    async with Client(anon) as c:
        with pytest.raises(ApiError) as ei:
            await c.list(CM, "default")
        assert ei.value.code in (401, 403)
    other_ca = dataclasses.replace(cfg, ca_data=None, ca_file=None)  # system roots: our CA is unknown
    async with Client(other_ca) as c:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await c.list(CM, "default")
