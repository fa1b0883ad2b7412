"""The audit log (k8py.apiserver.audit): policy parsing and matching as kube's, the rotated
writer as lumberjack, and the events an API server writes for real requests."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from k8py.api.configfile import ConfigFileError
from k8py.apiserver import server as srv
from k8py.apiserver.audit import (
    Attributes,
    AuditLog,
    BufferedWriter,
    RotatingWriter,
    backup_name,
    load_policy,
)
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore


def policy_file(tmp: Path, text: str) -> str:
    p = tmp / "policy.yaml"
    p.write_text(text)
    return str(p)


POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: [system:kube-proxy]
  - level: None
    nonResourceURLs: [/healthz*, /version]
  - level: RequestResponse
    resources:
      - group: ""
        resources: [configmaps]
        resourceNames: [watched]
  - level: Request
    verbs: [create, update]
    userGroups: [dev]
    resources:
      - group: apps
        resources: ["deployments/*"]
  - level: Metadata
    resources:
      - group: ""
        resources: ["*/log", secrets]
    omitStages: [ResponseStarted]
  - level: Metadata
    namespaces: [kube-system]
    omitManagedFields: true
  - level: Request
"""


def attrs(**kw: Any) -> Attributes:
    base = {"user": "alice", "groups": ("dev", "system:authenticated"), "verb": "get", "is_resource": True}
    return Attributes(**(base | kw))


def test_policy_matching_as_kube(tmp_path: Path) -> None:
    p = load_policy(policy_file(tmp_path, POLICY))

    def level(**kw: Any) -> str:
        return p.decide(attrs(**kw)).level

    assert level(user="system:kube-proxy", resource="pods") == "None"  # the first match wins
    assert level(is_resource=False, path="/healthz/etcd") == "None"  # a URL prefix with '*'
    assert level(is_resource=False, path="/version") == "None"
    assert level(is_resource=False, path="/versionx") == "Request"  # exact without '*'
    assert level(resource="configmaps", name="watched") == "RequestResponse"
    assert level(resource="configmaps", name="other", namespace="default") == "Request"
    assert level(verb="create", group="apps", resource="deployments", subresource="scale") == "Request"
    assert level(verb="create", group="apps", resource="deployments", user="bob", groups=()) == "Request"
    assert level(verb="get", group="apps", resource="deployments", subresource="scale") == "Request"
    assert level(resource="pods", subresource="log") == "Metadata"  # '*/log'
    assert level(resource="secrets", namespace="default") == "Metadata"
    assert level(resource="pods", namespace="kube-system") == "Metadata"
    d = p.decide(attrs(resource="secrets"))
    assert d.omit_stages == {"RequestReceived", "ResponseStarted"}  # the policy's and the rule's
    assert p.decide(attrs(resource="pods", namespace="kube-system")).omit_managed_fields is True
    assert p.decide(attrs(resource="pods", namespace="default")).omit_managed_fields is False


def test_no_matching_rule_is_level_none(tmp_path: Path) -> None:
    p = load_policy(policy_file(tmp_path, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n"
                                          "  - level: Metadata\n    verbs: [delete]\n"))
    assert p.decide(attrs(verb="get", resource="pods")).level == "None"
    assert p.decide(attrs(verb="delete", resource="pods")).level == "Metadata"


@pytest.mark.parametrize(("body", "where"), [
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Everything\n",
     (':4: rules[0].level: Unsupported value: "Everything": supported values: "None", "Metadata", "Request", '
     '"RequestResponse"')),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - verbs: [get]\n", ":4: rules[0].level: Required value"),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n", ":3: rules: Required value"),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n    omitStages: [Done]\n",
     ':5: rules[0].omitStages[0]: Unsupported value: "Done"'),
    (("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n    nonResourceURLs: [/a]\n"
     "    namespaces: [x]\n"), ":5: rules[0].nonResourceURLs: Invalid value: rules cannot apply to both"),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n    nonResourceURLs: [healthz]\n",
     ':5: rules[0].nonResourceURLs[0]: Invalid value: "healthz": non-resource URL rules must begin with'),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n    user: [alice]\n",
     ':5: rules[0].user: unknown field "user"'),
    ("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n  - level: Metadata\n",
     ":1: apiVersion: must be kind: Policy with apiVersion: audit.k8s.io/v1"),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n   verbs: [get]\n",
     ":5: --audit-policy-file is not valid YAML or JSON"),
])
def test_malformed_policy_names_the_line(tmp_path: Path, body: str, where: str) -> None:
    path = policy_file(tmp_path, body)
    with pytest.raises(ConfigFileError) as info:
        load_policy(path)
    assert str(info.value).startswith(path + where), str(info.value)


# --------------------------------------------------------------------------- rotation


class Clock:
    def __init__(self) -> None:
        self.t = dt.datetime(2026, 12, 6, 18, 30, 0, 123000, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.t


def test_rotation_by_size_with_lumberjack_names(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.log")
    clock = Clock()
    w = RotatingWriter(path, max_bytes=100, max_backups=2, now=clock)
    line = b"x" * 39 + b"\n"  # 40 bytes: two lines fit in 100, not three
    w.write(line * 2)
    assert not os.path.exists(backup_name(path, clock.t))
    w.write(line)  # would pass 100 bytes: the file is moved aside first
    first = backup_name(path, clock.t)
    assert first == str(tmp_path / "audit-2026-12-06T18-30-00.123.log")
    w.flush()
    assert Path(first).read_bytes() == line * 2 and Path(path).read_bytes() == line
    for _ in range(3):
        clock.t += dt.timedelta(minutes=1)
        w.write(line * 2)  # each fills the file past 100: a rotation each time
    w.close()
    backups = sorted(p.name for p in tmp_path.iterdir() if p.name != "audit.log")
    assert backups == ["audit-2026-12-06T18-32-00.123.log", "audit-2026-12-06T18-33-00.123.log"]  # max 2 kept
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_rotation_drops_backups_older_than_max_age(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.log")
    clock = Clock()
    old = backup_name(path, clock.t - dt.timedelta(days=10))
    Path(old).write_text("old\n")
    Path(str(tmp_path / "audit-notatime.log")).write_text("kept: not a backup name\n")
    w = RotatingWriter(path, max_bytes=10, max_age_days=7, now=clock)
    w.write(b"123456789\n")
    w.write(b"123456789\n")
    w.close()
    assert not os.path.exists(old)
    assert os.path.exists(backup_name(path, clock.t))
    assert os.path.exists(tmp_path / "audit-notatime.log")


def test_buffered_writer_writes_everything_by_close(tmp_path: Path) -> None:
    path = str(tmp_path / "a.log")
    b = BufferedWriter(RotatingWriter(path))
    b.start()
    for i in range(2000):
        b.put(b'{"n":%d}\n' % i)
    b.close()
    lines = Path(path).read_text().splitlines()
    assert [json.loads(x)["n"] for x in lines] == list(range(2000))


# --------------------------------------------------------------------------- events from a server


async def serve_with_audit(tmp: Path, policy: str) -> tuple[Any, web.AppRunner, str, str]:
    store = MemoryStore(progress_interval=0.2)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp)), store)
    await cp.bootstrap()
    log_path = str(tmp / "audit.log")
    cp.http.audit = AuditLog(load_policy(policy_file(tmp, policy)), BufferedWriter(RotatingWriter(log_path)))
    cp.http.audit.start()
    cp.http.ready = True
    runner = web.AppRunner(cp.http.build(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return cp, runner, f"http://127.0.0.1:{port}", log_path


async def stop(cp: Any, runner: web.AppRunner) -> None:
    await runner.cleanup()
    assert cp.http.audit is not None
    await cp.http.audit.close()
    await cp.store.close()


def events(path: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


async def test_events_of_requests(tmp_path: Path) -> None:
    cp, runner, url, log_path = await serve_with_audit(tmp_path, """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitManagedFields: true
rules:
  - level: None
    nonResourceURLs: ["/readyz"]
  - level: RequestResponse
    resources: [{group: "", resources: [configmaps]}]
  - level: Metadata
""")
    try:
        async with aiohttp.ClientSession(url, headers={"User-Agent": "audit-test/1.0"}) as s:
            cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"k": "v"}}
            async with s.post("/api/v1/namespaces/default/configmaps?fieldManager=t", json=cm) as r:
                assert r.status == 201
                audit_id = r.headers["Audit-Id"]
            async with s.get("/api/v1/namespaces/default/secrets/missing") as r:
                assert r.status == 404
            async with s.get("/readyz") as r:
                assert r.status == 200
            async with s.get("/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1") as r:
                assert r.status == 200
                await r.read()
    finally:
        await stop(cp, runner)
    evs = events(log_path)
    create = [e for e in evs if e.get("verb") == "create"]
    assert [e["stage"] for e in create] == ["RequestReceived", "ResponseComplete"]
    done = create[1]
    assert list(done)[:6] == ["kind", "apiVersion", "level", "auditID", "stage", "requestURI"]
    assert done["kind"] == "Event" and done["apiVersion"] == "audit.k8s.io/v1"
    assert done["auditID"] == audit_id == create[0]["auditID"]
    assert done["level"] == "RequestResponse"
    assert done["requestURI"] == "/api/v1/namespaces/default/configmaps?fieldManager=t"
    assert done["objectRef"] == {"resource": "configmaps", "namespace": "default", "name": "c1", "apiVersion": "v1"}
    assert done["responseStatus"] == {"metadata": {}, "code": 201}
    assert done["requestObject"] == cm
    assert done["responseObject"]["data"] == {"k": "v"}
    assert "managedFields" not in done["responseObject"]["metadata"]
    assert done["userAgent"] == "audit-test/1.0" and done["sourceIPs"] == ["127.0.0.1"]
    assert done["requestReceivedTimestamp"].endswith("Z") and len(done["stageTimestamp"]) == 27
    missing = [e for e in evs if e.get("objectRef", {}).get("name") == "missing"]
    assert missing[-1]["level"] == "Metadata" and "requestObject" not in missing[-1]
    assert missing[-1]["responseStatus"] == {"metadata": {}, "status": "Failure",
                                             "message": 'secrets "missing" not found', "reason": "NotFound",
                                             "details": {"name": "missing", "kind": "secrets"}, "code": 404}
    assert not [e for e in evs if e["requestURI"] == "/readyz"]
    watch = [e["stage"] for e in evs if e.get("verb") == "watch"]
    assert watch == ["RequestReceived", "ResponseStarted", "ResponseComplete"]


async def test_audit_does_not_block_requests_when_the_disk_is_slow(tmp_path: Path) -> None:
    """The request path only queues the line: a writer that takes 0.5 s per batch does not
    make a request wait for it."""
    cp, runner, url, log_path = await serve_with_audit(tmp_path, "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
                                                                 "rules:\n  - level: Metadata\n")
    assert cp.http.audit is not None
    out = cp.http.audit.writer.out
    real_write = out.write

    def slow_write(data: bytes) -> None:
        import time

        time.sleep(0.5)
        real_write(data)

    out.write = slow_write  # type: ignore[method-assign]
    try:
        async with aiohttp.ClientSession(url) as s:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for _ in range(20):
                async with s.get("/api/v1/namespaces/default/configmaps") as r:
                    assert r.status == 200
            assert loop.time() - t0 < 0.5 * 2  # far less than 20 writes of 0.5 s
    finally:
        await stop(cp, runner)
    assert len([e for e in events(log_path) if e["stage"] == "ResponseComplete"]) == 20


def test_dash_writes_to_standard_output(capfd: pytest.CaptureFixture[str]) -> None:
    w = RotatingWriter("-", max_bytes=10)  # no rotation on standard output
    w.write(b'{"stage":"ResponseComplete"}\n' * 3)
    w.close()
    assert capfd.readouterr().out == '{"stage":"ResponseComplete"}\n' * 3


async def test_an_internal_error_is_the_panic_stage(tmp_path: Path) -> None:
    cp, runner, url, log_path = await serve_with_audit(tmp_path, "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
                                                                 "omitStages: [RequestReceived]\n"
                                                                 "rules:\n  - level: Metadata\n")

    async def broken(ctx: Any) -> web.StreamResponse:
        raise RuntimeError("boom")

    cp.http.api.handle = broken
    try:
        async with aiohttp.ClientSession(url) as s, s.get("/api/v1/namespaces/default/pods") as r:
            assert r.status == 500  # kube's answer to a panic, in its Status form
    finally:
        await stop(cp, runner)
    [ev] = events(log_path)
    assert ev["stage"] == "Panic"
    assert ev["responseStatus"] == {"metadata": {}, "status": "Failure",
                                    "message": "APIServer panic'd: RuntimeError('boom')",
                                    "reason": "InternalError", "code": 500}
