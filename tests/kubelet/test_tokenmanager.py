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
