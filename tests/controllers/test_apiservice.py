"""APIServices are stored as kube stores them and report, with kube's reasons, whether they can
be served: local ones are Available; Service-backed ones after kube's checks (the Service, its
port, its EndpointSlices, a ready endpoint, then a discovery request to the backend that presents
the front-proxy certificate)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster
from tests.helpers.wardle import GROUP, VERSION, WardleServer

from k8py.apiserver.server import free_port
from k8py.client.errors import AlreadyExistsError, InvalidError
from k8py.pki import PKI, ensure_front_proxy_certificates

API_SERVICE = ("apiregistration.k8s.io/v1", "APIService")
SVC = ("v1", "Service")
SLICE = ("discovery.k8s.io/v1", "EndpointSlice")


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
        await c.until(lambda: reason_is("EndpointsNotFound"), what="no EndpointSlices")
        got = available(await c.client.get(API_SERVICE, "v1alpha1.wardle.k8s.io"))
        assert got is not None and got["message"] == 'cannot find endpointslices for service/api in "default"'

        await c.client.create(SLICE, endpoint_slice("api", 1, ready=False), "default")
        await c.until(lambda: reason_is("MissingEndpoints"), what="no ready endpoint")
        got = available(await c.client.get(API_SERVICE, "v1alpha1.wardle.k8s.io"))
        assert got is not None
        assert got["message"] == 'endpointslices for service/api in "default" have no addresses with port name ""'

        # a ready endpoint where nothing listens: the discovery check fails, saying why
        port = free_port()
        await c.client.update(SLICE, endpoint_slice("api", port, rv=(await c.client.get(
            SLICE, "api-1", "default"))["metadata"]["resourceVersion"]), "default")
        await c.until(lambda: reason_is("FailedDiscoveryCheck"), what="the backend refuses")
        got = available(await c.client.get(API_SERVICE, "v1alpha1.wardle.k8s.io"))
        assert got is not None and got["status"] == "False"
        url = f"https://127.0.0.1:{port}/apis/wardle.k8s.io/v1alpha1"
        assert got["message"] == (f'failing or missing response from {url}: Get "{url}": dial tcp 127.0.0.1:{port}: '
                                  "connect: connection refused")


def endpoint_slice(service: str, port: int, *, ready: bool = True, rv: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"{service}-1", "labels": {"kubernetes.io/service-name": service}}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta, "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
            "ports": [{"name": "", "port": port, "protocol": "TCP"}]}


async def test_discovery_check_with_the_front_proxy_certificate(tmp_path: Path) -> None:
    """The check presents the front-proxy client certificate and asks as system:kube-aggregator
    in system:masters; the backend's 2xx is Passed, its going away FailedDiscoveryCheck."""
    files = ensure_front_proxy_certificates(PKI.in_dir(str(tmp_path)))
    backend = WardleServer(Path(files.ca_cert).read_text())
    await backend.start()
    opts = {"proxy_client_cert_file": files.client_cert, "proxy_client_key_file": files.client_key,
            "apiservice_resync_period": 1.0}
    try:
        async with InProcessCluster(controllers=["apiservice-availability"], manager_options=opts) as c:
            await c.client.create(SVC, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
                                        "spec": {"ports": [{"port": 443}]}}, "default")
            await c.client.create(SLICE, endpoint_slice("api", backend.port), "default")
            await c.client.create(API_SERVICE, apiservice(f"{VERSION}.{GROUP}", service={
                "namespace": "default", "name": "api"}, insecureSkipTLSVerify=True))

            async def cond() -> dict[str, Any] | None:
                return available(await c.client.get(API_SERVICE, f"{VERSION}.{GROUP}"))

            async def status_is(want: str) -> bool:
                got = await cond()
                return got is not None and got["status"] == want

            await c.until(lambda: status_is("True"), what="Passed")
            got = await cond()
            assert got is not None and (got["reason"], got["message"]) == ("Passed", "all checks passed")
            seen = [s for s in backend.seen if s.path == f"/apis/{GROUP}/{VERSION}"]
            assert seen and seen[0].user == "system:kube-aggregator" and seen[0].groups == ["system:masters"]
            assert seen[0].cert_cn == "front-proxy-client"

            await backend.stop()
            await c.until(lambda: status_is("False"), timeout=15, what="the backend gone")
            got = await cond()
            assert got is not None and got["reason"] == "FailedDiscoveryCheck"
            assert "connect: connection refused" in got["message"]

            # back on the same port: seen again soon, by kube's back-off after a failed check
            # (5 ms doubling: about as long as the backend was away), not at a fixed period
            await backend.start()
            t0 = time.monotonic()
            await c.until(lambda: status_is("True"), timeout=15, what="the backend back")
            assert time.monotonic() - t0 < 3.0
    finally:
        await backend.stop()


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
