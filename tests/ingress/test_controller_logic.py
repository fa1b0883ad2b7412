"""The ingress controller's decisions against the fake API (no nginx: a stand-in records what it
is asked to serve, and refuses when told): which Ingresses it serves, events once per problem,
status written only when it changes, a refused configuration reported on the changed Ingresses
and not retried until something changes, a certificate nginx refuses dropped instead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from tests.ingress.helpers import endpoint_slice, ingress, path, rule, self_signed, service, tls_secret

from k8py.client.fake import FakeClient
from k8py.ingress.controller import INGRESS, INGRESS_CLASS, IngressController
from k8py.ingress.nginx import NginxError

Obj = dict[str, Any]


class FakeNginx:
    state_dir = "/nonexistent/ingress"
    socket_path = "/nonexistent/ingress/nginx.sock"

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.refuse: str = ""  # the next apply raises NginxError(refuse)
        self.refuse_certs = False  # refuse any configuration naming a certificate file

    async def apply(self, text: str, certs: Mapping[str, bytes], generation: int) -> None:
        if self.refuse:
            msg, self.refuse = self.refuse, ""
            raise NginxError(msg)
        if self.refuse_certs and certs:
            raise NginxError(f'cannot load certificate "/s/certs/{next(iter(certs))}": ee key too small')
        self.applied.append(text)

    async def supervise(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def stop(self) -> None:
        pass


async def controller(*objs: Obj) -> tuple[IngressController, FakeClient, FakeNginx]:
    client = FakeClient()
    nginx = FakeNginx()
    ctl = IngressController(client, nginx, status_addresses=("192.0.2.1",),  # type: ignore[arg-type]
                            elect_status=False)
    client.attach(ctl.factory)
    ctl.events.start()
    await ctl.ensure_class()
    for o in objs:
        client.seed(o)
    return ctl, client, nginx


def objects() -> list[Obj]:
    return [{"apiVersion": "v1", "kind": "Service", **service("web")},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
             **endpoint_slice("web", ["10.42.0.5"], 8080)}]


async def events(ctl: IngressController, client: FakeClient) -> list[tuple[str, str, str]]:
    await ctl.events.flush()
    return [(e["involvedObject"]["name"], e["type"], e["reason"]) for e in client.all(("v1", "Event"))]


def status_writes(client: FakeClient) -> list[tuple[str, str, str]]:
    return [w for w in client.writes if w[0] == "patch" and w[1] == "Ingress"]


async def test_serves_its_class_only_and_writes_status_once() -> None:
    other = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "other"},
             "spec": {"controller": "example.com/other"}}
    ctl, client, nginx = await controller(*objects(), other,
                                          ingress("mine", rule("a.test", path("/", "web"))),
                                          ingress("theirs", rule("b.test", path("/", "web")), cls="other"))
    ic = client.get_obj(INGRESS_CLASS, "k8py-nginx")
    assert ic["spec"] == {"controller": "k8py.io/ingress-nginx"}
    assert ic["metadata"]["annotations"] == {"ingressclass.kubernetes.io/is-default-class": "true"}
    assert await ctl.sync()
    assert len(nginx.applied) == 1 and "server_name a.test;" in nginx.applied[0]
    assert "b.test" not in nginx.applied[0]
    assert client.get_obj(INGRESS, "mine", "default")["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.1"}]
    assert "loadBalancer" not in (client.get_obj(INGRESS, "theirs", "default").get("status") or {})
    # nothing changed: no reload, no status write
    assert await ctl.sync()
    assert len(nginx.applied) == 1 and len(status_writes(client)) == 1
    assert await events(ctl, client) == [("mine", "Normal", "Sync")]
    # an existing class of that name is left as the user made it
    client.stored(INGRESS_CLASS, "k8py-nginx")["metadata"]["annotations"] = {}
    await ctl.ensure_class()
    assert client.get_obj(INGRESS_CLASS, "k8py-nginx")["metadata"]["annotations"] == {}


async def test_problem_events_once_while_they_last() -> None:
    ctl, client, nginx = await controller(*objects(), ingress("a", rule("a.test", path("/", "web"),
                                                                         path("/x", "missing"))))
    for _ in range(3):
        await ctl.sync()
    assert await events(ctl, client) == [("a", "Normal", "Sync"), ("a", "Warning", "BackendNotFound")]
    # the Service appears: the path is served, no new event; it goes away again: told again
    client.seed({"apiVersion": "v1", "kind": "Service", **service("missing")})
    client.seed({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                 **endpoint_slice("missing", ["10.42.0.9"], 8080)})
    await ctl.sync()
    assert "proxy_pass http://default-missing-http;" in nginx.applied[-1].split('location "/x/"', 1)[1]
    assert not ctl.plan.problems  # type: ignore[union-attr]
    await client.delete(("v1", "Service"), "missing", "default")
    await ctl.sync()
    await ctl.events.flush()
    # the same event again: the event's count goes up (kubectl describe: "x2"), no second object
    counts = {e["reason"]: e["count"] for e in client.all(("v1", "Event"))}
    assert counts == {"Sync": 1, "BackendNotFound": 2}


async def test_refused_configuration_keeps_previous_and_reports_changed_ingresses() -> None:
    ctl, client, nginx = await controller(*objects(), ingress("stable", rule("s.test", path("/", "web"))))
    assert await ctl.sync()
    ing = ingress("new", rule("n.test", path("/", "web")))
    client.seed(ing)
    nginx.refuse = 'invalid value "x" in nginx.conf.new:12'
    assert not await ctl.sync()
    assert len(nginx.applied) == 1 and ctl.generation == 1
    evs = await events(ctl, client)
    assert ("new", "Warning", "ReloadFailed") in evs and ("stable", "Warning", "ReloadFailed") not in evs
    msg = next(e["message"] for e in client.all(("v1", "Event")) if e["reason"] == "ReloadFailed")
    assert msg == ('Error reloading NGINX: invalid value "x" in nginx.conf.new:12; the previous configuration '
                   "stays in force")
    # the same configuration is not tried again; a change is
    assert not await ctl.sync()
    assert len(nginx.applied) == 1
    stored = client.stored(INGRESS, "new", "default")
    stored["spec"]["rules"][0]["host"] = "n2.test"
    stored["metadata"]["generation"] += 1
    client.touch(INGRESS, "new", "default")
    assert await ctl.sync()
    assert "server_name n2.test;" in nginx.applied[-1] and ctl.generation == 2


async def test_certificate_nginx_refuses_is_dropped_and_reported() -> None:
    crt, key = self_signed("t.test")
    secret = {"apiVersion": "v1", "kind": "Secret", **tls_secret("cert", crt, key)}
    ctl, client, nginx = await controller(*objects(), secret,
                                          ingress("a", rule("t.test", path("/", "web")),
                                                  tls=[{"hosts": ["t.test"], "secretName": "cert"}]))
    nginx.refuse_certs = True
    assert await ctl.sync()
    assert "ssl_certificate" not in nginx.applied[-1] and "server_name t.test;" in nginx.applied[-1]
    await ctl.events.flush()
    evs = [e for e in client.all(("v1", "Event")) if e["reason"] == "InvalidSecret"]
    assert len(evs) == 1 and "is refused by nginx" in evs[0]["message"] and "ee key too small" in evs[0]["message"]
    # a new version of the Secret is checked again
    nginx.refuse_certs = False
    client.touch(("v1", "Secret"), "cert", "default")
    assert await ctl.sync()
    assert "ssl_certificate certs/default_cert_" in nginx.applied[-1]


async def test_one_controller_writes_status() -> None:
    """Two controllers (two servers with agents): both serve, only the Lease holder writes status,
    so their addresses never undo each other's; when it stops, the other takes over."""
    client = FakeClient()
    ctls = []
    for addr in ("192.0.2.1", "192.0.2.2"):
        c = IngressController(client, FakeNginx(), status_addresses=(addr,))  # type: ignore[arg-type]
        ctls.append(c)
    client.attach(ctls[0].factory)
    for o in objects():
        client.seed(o)
    await ctls[0].ensure_class()
    client.seed(ingress("a", rule("a.test", path("/", "web"))))
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(c._campaign(s)) for c, s in zip(ctls, stops, strict=True)]
    for _ in range(100):
        if any(c.status_leader for c in ctls):
            break
        await asyncio.sleep(0.05)  # poll interval of a bounded wait (5 s)
    leader = next(i for i, c in enumerate(ctls) if c.status_leader)
    other = 1 - leader
    assert not ctls[other].status_leader
    # both serve; the follower's sync writes no status
    ctls[other].factory = ctls[0].factory  # the one cache the fake fills
    for c in (ctls[other], ctls[leader]):
        c.ingresses, c.classes, c.services, c.slices, c.secrets = (ctls[0].ingresses, ctls[0].classes,
                                                                   ctls[0].services, ctls[0].slices, ctls[0].secrets)
        assert await c.sync()
    assert len(status_writes(client)) == 1
    want = ctls[leader].status_addresses[0]
    assert client.get_obj(INGRESS, "a", "default")["status"]["loadBalancer"]["ingress"] == [{"ip": want}]
    # the leader stops: it releases the Lease and the other takes status over
    stops[leader].set()
    await tasks[leader]
    for _ in range(100):
        if ctls[other].status_leader:
            break
        await asyncio.sleep(0.05)  # poll interval of a bounded wait (5 s)
    assert ctls[other].status_leader
    stops[other].set()
    await tasks[other]


async def test_no_right_to_create_the_class_is_not_fatal() -> None:
    from k8py.client.fake import status_error

    client = FakeClient()
    client.fail[("create", "IngressClass")] = status_error(403, "Forbidden", "ingressclasses is forbidden")
    ctl = IngressController(client, FakeNginx(), elect_status=False)  # type: ignore[arg-type]
    await ctl.ensure_class()
    assert client.get_obj(INGRESS_CLASS, "k8py-nginx") is None


async def test_regex_nginx_refuses_is_dropped_and_reported() -> None:
    """A regex path Python's re compiles but nginx's PCRE does not (nginx names it in its error,
    here \\U, which PCRE2 lacks): that path is dropped with an event, the rest is served."""
    rx = r"/a\U00000031"
    ing = ingress("a", rule("r.test", path(rx, "web", "ImplementationSpecific"), path("/ok", "web")),
                  annotations={"nginx.ingress.kubernetes.io/use-regex": "true"})
    ctl, client, nginx = await controller(*objects(), ing)
    nginx.refuse = (f'pcre2_compile() failed: PCRE2 does not support \\F, \\L, \\l, \\N{{name}}, \\U, or \\u in '
                    f'"^{rx}" at "}}" in /s/nginx.conf.new:60')
    assert await ctl.sync()
    assert len(nginx.applied) == 1 and rx not in nginx.applied[0] and '"^/ok"' in nginx.applied[0]
    await ctl.events.flush()
    evs = [e["message"] for e in client.all(("v1", "Event")) if e["reason"] == "InvalidPath"]
    assert len(evs) == 1 and evs[0].startswith(f"spec.rules[0].http.paths[0]: nginx refuses the regular expression "
                                               f"'{rx}'".replace("\\", "\\\\"))


async def until(cond: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_the_loop_syncs_changes_retries_a_failed_sync_and_not_a_refused_one(
        caplog: pytest.LogCaptureFixture) -> None:
    """The controller's own loop (the shared bounded-frequency one): a change is synced; a sync
    that raises is logged and tried again after retry_interval with nothing changing, while nginx
    keeps what it serves; a configuration nginx refuses waits for the next change."""
    client = FakeClient()
    nginx = FakeNginx()
    ctl = IngressController(client, nginx, status_addresses=("192.0.2.1",), min_interval=0.01,  # type: ignore[arg-type]
                            retry_interval=0.1, elect_status=False)
    for o in objects():
        client.seed(o)
    served = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}  # no status write to wake it
    stop = asyncio.Event()
    task = asyncio.create_task(ctl.run(stop))
    try:
        await until(lambda: ctl.syncs >= 1, "the first sync")
        client.seed({**ingress("a", rule("a.test", path("/", "web"))), **served})
        await until(lambda: nginx.applied and "a.test" in nginx.applied[-1], "Ingress a served")
        build, failures = ctl.build, [RuntimeError("simulated")]

        def flaky(ours: list[Obj]) -> Any:
            if failures:
                raise failures.pop()
            return build(ours)

        ctl.build = flaky  # type: ignore[method-assign]
        client.seed({**ingress("b", rule("b.test", path("/", "web"))), **served})
        await until(lambda: "b.test" in nginx.applied[-1], "Ingress b served after the retry")
        assert "ingress: sync failed; nginx keeps the configuration in force" in caplog.text
        assert "simulated" in caplog.text
        nginx.refuse = "simulated refusal"
        client.seed({**ingress("c", rule("c.test", path("/", "web"))), **served})
        await until(lambda: ctl.last_error == "simulated refusal", "the refusal")
        syncs = ctl.syncs
        await asyncio.sleep(0.4)  # a window of several retry intervals: a refusal is not retried
        assert ctl.syncs == syncs and "c.test" not in nginx.applied[-1]
        client.seed({**ingress("d", rule("d.test", path("/", "web"))), **served})  # a change: a new configuration
        await until(lambda: "d.test" in nginx.applied[-1], "Ingress d served")
        assert "c.test" in nginx.applied[-1]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
