"""The node agent's service-account token manager (kubelet's token manager): when a token is
renewed, what it asks the API for, keeping a valid token when a renewal fails; and the
projected volume's token file."""

from __future__ import annotations

from typing import Any

import pytest

from k8py.api.corev1 import format_time
from k8py.client.errors import ForbiddenError
from k8py.kubelet.spec import NodeFacts
from k8py.kubelet.tokenmanager import MAX_TTL, CachedToken, TokenManager, refresh_at, requires_refresh
from k8py.kubelet.volumes import FileProjection, VolumeError, projected_payload


def test_refresh_at_80_percent_or_24_hours() -> None:
    t = CachedToken("x", expires=10_000.0, seconds=1000)  # issued at 9000
    assert refresh_at(t) == 9800.0
    assert not requires_refresh(t, 9799.0) and requires_refresh(t, 9800.0)
    assert requires_refresh(t, 9795.0, jitter=5.0)
    year = CachedToken("y", expires=365 * 86400.0, seconds=365 * 86400)  # issued at 0
    assert refresh_at(year) == MAX_TTL


class FakeClient:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.calls: list[tuple[Any, ...]] = []
        self.fail = False

    async def create(self, kind: Any, obj: dict[str, Any], namespace: str, *, subresource: str, name: str) -> Any:
        self.calls.append((kind, namespace, subresource, name, obj["spec"]))
        if self.fail:
            raise ForbiddenError({"code": 403, "reason": "Forbidden", "message": "no"})
        import datetime as dt

        exp = obj["spec"]["expirationSeconds"]
        return {"spec": obj["spec"], "status": {"token": f"tok{len(self.calls)}", "expirationTimestamp": format_time(
            dt.datetime.fromtimestamp(self.now + exp, dt.UTC))}}


async def test_manager_caches_renews_and_keeps_valid_tokens() -> None:
    fc = FakeClient()
    tm = TokenManager(fc, clock=lambda: fc.now)  # type: ignore[arg-type]
    args = ("ns", "robot", ["vault"], 3600, "web", "uid-1")
    assert await tm.get(*args) == "tok1"
    kind, ns, sub, name, spec = fc.calls[0]
    assert (kind, ns, sub, name) == (("v1", "ServiceAccount"), "ns", "token", "robot")
    assert spec == {"expirationSeconds": 3600, "audiences": ["vault"],
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-1"}}
    fc.now += 60
    assert await tm.get(*args) == "tok1" and len(fc.calls) == 1
    assert tm.next_refresh("uid-1") == pytest.approx(1_000_000.0 + 2880, abs=1)
    fc.now = 1_000_000.0 + 2900  # past 80 %
    assert await tm.get(*args) == "tok2"
    # a failed renewal keeps the token while it is valid, and is an error after
    fc.fail = True
    fc.now += 2900
    assert await tm.get(*args) == "tok2"
    fc.now += 3600
    with pytest.raises(ForbiddenError):
        await tm.get(*args)
    tm.forget("uid-1")
    assert tm.next_refresh("uid-1") is None


def test_projected_payload_writes_tokens() -> None:
    src = {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {}}
    facts = NodeFacts("n1", cpu_allocatable_milli=1000, memory_allocatable=1 << 30)
    out = projected_payload(src, pod, facts, {}, {0: "abc"})
    assert out["token"] == FileProjection(b"abc", 0o644) and out["namespace"].data == b"ns"
    pod["spec"] = {"securityContext": {"fsGroup": 2000}}
    assert projected_payload(src, pod, facts, {}, {0: "abc"})["token"].mode == 0o600
    with pytest.raises(VolumeError, match="failed to fetch token: nope"):
        projected_payload(src, pod, facts, {}, {0: VolumeError("failed to fetch token: nope")})


class TokenAPI(FakeClient):
    """Tokens for the accounts it knows; ConfigMaps from a dict (the volume manager's reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.accounts = {"robot"}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    async def create(self, kind: Any, obj: dict[str, Any], namespace: str, *, subresource: str, name: str) -> Any:
        if name not in self.accounts:
            from k8py.client.errors import NotFoundError

            raise NotFoundError({"reason": "NotFound", "message": f'serviceaccounts "{name}" not found'}, 404)
        return await super().create(kind, obj, namespace, subresource=subresource, name=name)

    async def get(self, kind: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        from k8py.client.errors import NotFoundError

        obj = self.objects.get((kind[1], name))
        if obj is None:
            raise NotFoundError({"reason": "NotFound", "message": f"{name} not found"}, 404)
        return obj


async def test_volume_manager_writes_and_renews_the_pod_token(tmp_path: Any) -> None:
    from pathlib import Path

    from k8py.apiserver.admission.builtin import token_volume
    from k8py.kubelet.volumes import VolumeManager

    api = TokenAPI()
    api.objects[("ConfigMap", "kube-root-ca.crt")] = {"data": {"ca.crt": "PEM"}}
    events: list[tuple[str, str]] = []
    facts = NodeFacts("n1", cpu_allocatable_milli=1000, memory_allocatable=1 << 30)
    m = VolumeManager(api, str(tmp_path / "pods"), facts=lambda: facts,  # type: ignore[arg-type]
                      record=lambda o, t, r, msg: events.append((r, msg)), wake=lambda uid: None, watch=False)
    m.tokens.clock = lambda: api.now
    pod = {"metadata": {"name": "web", "namespace": "ns", "uid": "u-9"},
           "spec": {"serviceAccountName": "robot", "volumes": [token_volume("kube-api-access-abcde")],
                    "containers": [{"name": "app"}]}}
    try:
        assert (await m.mount(pod)).ready
        d = Path(m.paths(pod)["kube-api-access-abcde"])
        assert (d / "token").read_text() == "tok1"
        assert (d / "ca.crt").read_text() == "PEM" and (d / "namespace").read_text() == "ns"
        assert api.calls[0][4] == {"expirationSeconds": 3607, "boundObjectRef": {
            "apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u-9"}}
        assert (await m.mount(pod)).ready and (d / "token").read_text() == "tok1"
        api.now += 3607 * 0.8 + 1  # past 80 % of its life: the next sync writes a new one
        assert (await m.mount(pod)).ready and (d / "token").read_text() == "tok2"
        # an account that is not there: kubelet's FailedMount, and nothing starts
        other = {"metadata": {"name": "x", "namespace": "ns", "uid": "u-10"},
                 "spec": {"serviceAccountName": "ghost", "volumes": [token_volume("kube-api-access-fghij")],
                          "containers": [{"name": "app"}]}}
        assert not (await m.mount(other)).ready
        assert events == [("FailedMount", ('MountVolume.SetUp failed for volume "kube-api-access-fghij" : '
                                           'failed to fetch token: serviceaccounts "ghost" not found'))]
    finally:
        await m.teardown("u-9")
        await m.teardown("u-10")
