"""Kubernetes protobuf request bodies: the field table, the decoder, and what real kubectl sends."""

from __future__ import annotations

import asyncio
import base64
import datetime
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from k8py.api.errors import StatusError
from k8py.api.protobuf import MAGIC, SPECIAL_TYPES, Field, decode, is_protobuf, message_name, schema
from k8py.api.protobuf_tags import MESSAGES
from k8py.api.registry import BUILTIN_KINDS, Registry
from k8py.api.schema import definitions
from k8py.apiserver import discovery

# --------------------------------------------------------------------------- building wire bytes (our own)


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32/int64 are sign-extended to ten bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_int(num: int, v: int) -> bytes:
    return varint(num << 3) + varint(v)


def f_bytes(num: int, b: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(b)) + b


def f_str(num: int, s: str) -> bytes:
    return f_bytes(num, s.encode())


def f_msg(num: int, *parts: bytes) -> bytes:
    return f_bytes(num, b"".join(parts))


def f_map(num: int, key: str, value: bytes) -> bytes:
    """A map entry; ``value`` is the already-encoded field 2 (or b"" for a missing value)."""
    return f_msg(num, f_str(1, key), value)


def envelope(api_version: str, kind: str, *raw: bytes, extra: bytes = b"") -> bytes:
    return MAGIC + f_msg(1, f_str(1, api_version), f_str(2, kind)) + f_bytes(2, b"".join(raw)) + extra


def meta(name: str, *more: bytes) -> bytes:
    # gogo writes every non-pointer field, so a real ObjectMeta carries empty strings and an empty time
    return f_msg(1, f_str(1, name), f_str(2, ""), f_str(3, ""), f_int(7, 0), f_bytes(8, b""), *more)


# --------------------------------------------------------------------------- media type


def test_is_protobuf() -> None:
    assert is_protobuf("application/vnd.kubernetes.protobuf")
    assert is_protobuf("Application/VND.Kubernetes.Protobuf; charset=binary")
    assert not is_protobuf("application/json")
    assert not is_protobuf("application/vnd.kubernetes.protobuf+json")
    assert not is_protobuf("")
    assert not is_protobuf(None)


# --------------------------------------------------------------------------- the table


def _definition_name(message: str) -> str:
    package, _, kind = message.rpartition(".")
    group, version = package.split("/")
    if group == "meta":
        return f"io.k8s.apimachinery.pkg.apis.meta.v1.{kind}"
    if group == "apiregistration":  # kube-aggregator's types
        return f"io.k8s.kube-aggregator.pkg.apis.apiregistration.{version}.{kind}"
    return f"io.k8s.api.{group}.{version}.{kind}"


def test_table_parses_without_duplicates_and_every_reference_resolves() -> None:
    msgs = schema()
    assert set(msgs) == set(MESSAGES)
    for name, spec in MESSAGES.items():
        tokens = spec.split()
        assert len(tokens) == len(msgs[name]), f"{name}: duplicate field numbers"
        names = [f.json for f in msgs[name].values() if not f.inline]
        assert len(names) == len(set(names)), f"{name}: duplicate JSON names"
        for f in msgs[name].values():
            if f.type not in ("s", "i", "b", "y") and f.type not in SPECIAL_TYPES:
                assert f.type in msgs, f"{name}.{f.json}: no entry for {f.type}"
            assert f.inline == (f.json == ""), f"{name} field {f.number}"
            if f.map_of_lists:
                assert f.map and f.type == "s"


def test_table_json_names_are_openapi_properties() -> None:
    """Every property the table names exists in our OpenAPI definition of that type.

    Messages only ever embedded inline (VolumeSource, ProbeHandler ...) have no definition of
    their own; their properties are checked against each definition that embeds them.
    """
    defs = definitions()
    msgs = schema()

    def props_of(message: str) -> set[str]:
        out: set[str] = set()
        for f in msgs[message].values():
            out |= props_of(f.type) if f.inline else {f.json}
        return out

    inline_only = {f.type for m in msgs.values() for f in m.values() if f.inline}
    checked = 0
    for name in msgs:
        d = defs.get(_definition_name(name))
        if d is None:
            assert name in inline_only, f"{name}: no OpenAPI definition {_definition_name(name)}"
            continue
        missing = props_of(name) - set(d.get("properties", {}))
        assert not missing, f"{name}: not OpenAPI properties of {_definition_name(name)}: {sorted(missing)}"
        checked += 1
    assert checked > 300


def test_table_types_agree_with_openapi() -> None:
    """Scalars, lists and maps line up with the OpenAPI property types."""
    defs = definitions()
    msgs = schema()
    scalar = {"s": "string", "i": "integer", "b": "boolean", "y": "string"}
    for name, m in msgs.items():
        d = defs.get(_definition_name(name))
        if d is None:
            continue
        for f in m.values():
            if f.inline:
                continue
            p = d["properties"][f.json]
            t = p.get("type")
            t = next(x for x in t if x != "null") if isinstance(t, list) else t
            where = f"{name}.{f.json}"
            if f.map:
                assert t == "object" and "additionalProperties" in p, where
            elif f.repeated:
                assert t == "array", where
            elif f.type in scalar:
                assert t == scalar[f.type], where
            elif f.type in ("Time", "MicroTime", "Quantity", "IntOrString"):
                assert t in (None, "string"), where


def test_every_registry_kind_and_body_kind_has_a_message() -> None:
    for k in BUILTIN_KINDS:
        if k.group == "apiextensions.k8s.io":  # k8py has no apiextensions messages: JSON only (a clear 400)
            continue
        assert message_name(k.api_version, k.kind) == f"{k.group.split('.')[0] or 'core'}/{k.version}.{k.kind}"
    assert message_name("autoscaling/v1", "Scale") == "autoscaling/v1.Scale"
    assert message_name("policy/v1", "Eviction") == "policy/v1.Eviction"
    assert message_name("v1", "Binding") == "core/v1.Binding"
    # meta/v1 types are registered in every group version
    assert message_name("v1", "DeleteOptions") == "meta/v1.DeleteOptions"
    assert message_name("apps/v1", "DeleteOptions") == "meta/v1.DeleteOptions"
    assert message_name("authentication.k8s.io/v1", "TokenRequest") == "authentication/v1.TokenRequest"
    assert message_name("apps/v1", "Frobnicator") is None


def test_pointer_fields_are_marked() -> None:
    msgs = schema()

    def f(msg: str, name: str) -> Field:
        return next(x for x in msgs[msg].values() if x.json == name)

    for msg, name in [("apps/v1.DeploymentSpec", "replicas"), ("batch/v1.JobSpec", "parallelism"),
                      ("batch/v1.JobSpec", "completions"), ("batch/v1.JobSpec", "backoffLimit"),
                      ("batch/v1.JobSpec", "suspend"), ("core/v1.PodSpec", "terminationGracePeriodSeconds"),
                      ("core/v1.PodSpec", "activeDeadlineSeconds"), ("core/v1.PodSpec", "automountServiceAccountToken"),
                      ("core/v1.ConfigMap", "immutable"), ("policy/v1.PodDisruptionBudgetSpec", "minAvailable"),
                      ("policy/v1.PodDisruptionBudgetSpec", "maxUnavailable")]:
        assert f(msg, name).pointer, f"{msg}.{name}"
        assert not f(msg, name).drops_zero
    assert f("apps/v1.DeploymentSpec", "paused").drops_zero
    assert not f("scheduling/v1.PriorityClass", "value").drops_zero  # json:"value" (no omitempty)


# --------------------------------------------------------------------------- decoding


def test_deployment_zero_values_follow_go_json() -> None:
    body = envelope("apps/v1", "Deployment", meta("web", f_map(11, "app", f_str(2, "web"))), f_msg(
        2,
        f_int(1, 0),  # replicas: *int32 = 0, kept
        f_msg(2, f_map(1, "app", f_str(2, "web"))),
        f_msg(3, f_msg(1), f_msg(2, f_msg(2, f_str(1, "c"), f_str(2, "nginx"), f_msg(8)))),
        f_msg(4, f_str(1, "")),  # strategy {} with type "" (omitempty): {}
        f_int(5, 0),  # minReadySeconds: int32 omitempty = 0, dropped
        f_int(7, 0),  # paused: bool omitempty = false, dropped
    ), f_msg(3))
    assert decode(body) == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {}, "spec": {"containers": [
                     {"name": "c", "image": "nginx", "resources": {}}]}},
                 "strategy": {}},
        "status": {},
    }


def test_job_pointer_zeros_and_false_are_kept() -> None:
    spec = f_msg(2, f_int(1, 0), f_int(2, 0), f_int(3, 0), f_int(7, 0), f_int(10, 0),
                 f_msg(6, f_msg(2)))
    obj = decode(envelope("batch/v1", "Job", meta("j"), spec))
    assert obj["spec"] == {"parallelism": 0, "completions": 0, "activeDeadlineSeconds": 0, "backoffLimit": 0,
                           "suspend": False, "template": {"spec": {}}}


def test_non_omitempty_scalars_keep_their_zero() -> None:
    obj = decode(envelope("scheduling.k8s.io/v1", "PriorityClass", meta("pc"), f_int(2, 0), f_int(3, 0),
                          f_str(4, "")))
    assert obj == {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "pc"},
                   "value": 0}


def test_negative_integers() -> None:
    pod = envelope("v1", "Pod", meta("p"), f_msg(2, f_int(25, -5), f_int(4, -1)))
    assert decode(pod)["spec"] == {"priority": -5, "terminationGracePeriodSeconds": -1}


def test_secret_bytes_are_base64_and_strings_stay() -> None:
    blob = bytes(range(256))
    obj = decode(envelope("v1", "Secret", meta("s"),
                          f_map(2, "bin", f_bytes(2, blob)), f_map(2, "empty", f_bytes(2, b"")),
                          f_map(2, "missing", b""), f_map(4, "plain", f_str(2, "text")), f_str(3, "Opaque"),
                          f_int(5, 0)))
    assert obj["data"] == {"bin": base64.b64encode(blob).decode(), "empty": "", "missing": ""}
    assert obj["stringData"] == {"plain": "text"}
    assert obj["type"] == "Opaque"
    assert obj["immutable"] is False  # *bool


def test_times() -> None:
    ts = int(datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC).timestamp())
    body = envelope("v1", "Pod", f_msg(1, f_str(1, "p"), f_msg(8, f_int(1, ts), f_int(2, 999_999_999)),
                                       f_msg(9, f_int(1, 0))))
    md = decode(body)["metadata"]
    # metav1.Time drops sub-second precision, as its JSON does; an explicit 0 is the epoch
    assert md == {"name": "p", "creationTimestamp": "2024-05-06T07:08:09Z",
                  "deletionTimestamp": "1970-01-01T00:00:00Z"}
    lease = decode(envelope("coordination.k8s.io/v1", "Lease", meta("l"),
                            f_msg(2, f_str(1, "me"), f_msg(4, f_int(1, ts), f_int(2, 123_456_789)),
                                  f_msg(3, f_int(1, ts)))))
    assert lease["spec"] == {"holderIdentity": "me", "renewTime": "2024-05-06T07:08:09.123456Z",
                             "acquireTime": "2024-05-06T07:08:09.000000Z"}


def test_int_or_string_and_quantity() -> None:
    svc = decode(envelope("v1", "Service", meta("s"), f_msg(2, f_msg(
        1, f_str(1, "http"), f_str(2, "TCP"), f_int(3, 80), f_msg(4, f_int(1, 1), f_int(2, 0), f_str(3, "web"))),
        f_msg(1, f_int(3, 81), f_msg(4, f_int(1, 0), f_int(2, 8081), f_str(3, ""))))))
    assert svc["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web"},
                                    {"port": 81, "targetPort": 8081}]
    pdb = decode(envelope("policy/v1", "PodDisruptionBudget", meta("p"),
                          f_msg(2, f_msg(1, f_int(1, 0), f_int(2, 0), f_str(3, "")))))
    assert pdb["spec"] == {"minAvailable": 0}
    container = f_msg(2, f_str(1, "c"), f_msg(8, f_map(1, "cpu", f_msg(2, f_str(1, "500m"))),
                                             f_map(2, "memory", f_msg(2, f_str(1, "1Gi")))))
    pod = decode(envelope("v1", "Pod", meta("p"), f_msg(2, container)))
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m"}, "requests": {"memory": "1Gi"}}


def test_raw_extension_and_fields_v1() -> None:
    obj = decode(envelope("apps/v1", "ControllerRevision",
                          meta("r", f_msg(17, f_str(1, "kubectl"), f_str(2, "Update"), f_str(3, "apps/v1"),
                                          f_str(6, "FieldsV1"), f_msg(7, f_bytes(1, b'{"f:spec":{}}')))),
                          f_msg(2, f_bytes(1, b'{"spec":{"template":{"x":1}}}')), f_int(3, 2)))
    assert obj["data"] == {"spec": {"template": {"x": 1}}}
    assert obj["revision"] == 2
    assert obj["metadata"]["managedFields"] == [{"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
                                                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]
    empty = decode(envelope("apps/v1", "ControllerRevision", meta("r"), f_msg(2), f_int(3, 1)))
    assert "data" not in empty  # a nil RawExtension is JSON null


def test_inline_embedded_structs() -> None:
    vol = f_msg(1, f_str(1, "root"), f_msg(2, f_msg(1, f_str(1, "/"))))
    eph = f_msg(34, f_msg(1, f_str(1, "dbg"), f_str(2, "busybox")), f_str(2, "app"))
    env_from = f_msg(2, f_str(1, "c"), f_msg(19, f_msg(2, f_msg(1, f_str(1, "cm")), f_int(2, 1))))
    spec = decode(envelope("v1", "Pod", meta("p"), f_msg(2, vol, env_from, eph)))["spec"]
    assert spec["volumes"] == [{"name": "root", "hostPath": {"path": "/"}}]
    assert spec["ephemeralContainers"] == [{"name": "dbg", "image": "busybox", "targetContainerName": "app"}]
    assert spec["containers"][0]["envFrom"] == [{"configMapRef": {"name": "cm", "optional": True}}]


def test_repeated_ints_packed_and_not() -> None:
    packed = f_bytes(4, varint(1000) + varint(2000))
    unpacked = f_int(4, 3000)
    obj = decode(envelope("v1", "Pod", meta("p"), f_msg(2, f_msg(14, packed, unpacked))))
    assert obj["spec"]["securityContext"] == {"supplementalGroups": [1000, 2000, 3000]}


def test_map_of_string_lists() -> None:
    spec = f_msg(2, f_str(3, "alice"), f_map(5, "scopes", f_msg(2, f_str(1, "a"), f_str(1, "b"))),
                 f_map(5, "none", b""))
    obj = decode(envelope("authorization.k8s.io/v1", "SubjectAccessReview", meta(""), spec))
    assert obj["spec"] == {"user": "alice", "extra": {"scopes": ["a", "b"], "none": []}}


def test_unknown_fields_are_skipped() -> None:
    cm = envelope("v1", "ConfigMap", meta("c", f_str(99, "future")), f_map(2, "k", f_str(2, "v")),
                  f_int(77, 5), f_bytes(78, b"\x01\x02"), varint(79 << 3 | 1) + b"\x00" * 8,
                  varint(80 << 3 | 5) + b"\x00" * 4)
    assert decode(cm) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}


def test_delete_options_alone_and_inside_an_eviction() -> None:
    opts = (f_int(1, 0), f_msg(2, f_str(1, "uid-1")), f_int(3, 0), f_str(4, "Foreground"), f_str(5, "All"))
    assert decode(envelope("v1", "DeleteOptions", *opts)) == {
        "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"},
        "orphanDependents": False, "propagationPolicy": "Foreground", "dryRun": ["All"]}
    ev = decode(envelope("policy/v1", "Eviction", meta("p", f_str(3, "ns")), f_msg(2, f_int(1, 30))))
    assert ev == {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "ns"},
                  "deleteOptions": {"gracePeriodSeconds": 30}}


@pytest.mark.parametrize("body, fragment", [
    (b"", "magic"),
    (b"{\"kind\": \"Pod\"}", "magic"),
    (MAGIC + b"\x0a", "truncated varint"),
    (MAGIC + b"\x0a\x05ab", "runs past the end"),
    (MAGIC + f_bytes(2, b""), "no apiVersion or kind"),
    (envelope("apps/v1", "Frobnicator"), "cannot decode kind 'Frobnicator'"),
    (envelope("v1", "ConfigMap", f_int(1, 5)), "wire type 0, expected 2"),
    (envelope("v1", "ConfigMap", varint(2 << 3 | 3)), "unsupported wire type 3"),
    (envelope("v1", "ConfigMap", extra=f_str(3, "gzip")), "contentEncoding 'gzip'"),
    (envelope("apps/v1", "ControllerRevision", f_msg(2, f_bytes(1, b"{nope"))), "does not hold JSON"),
])
def test_malformed_bodies_are_400(body: bytes, fragment: str) -> None:
    with pytest.raises(StatusError) as ei:
        decode(body)
    assert ei.value.code == 400 and ei.value.reason == "BadRequest"
    assert fragment in ei.value.message


# --------------------------------------------------------------------------- real kubectl

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@dataclass
class CaptureServer:
    """Discovery from the registry; every POST is recorded, decoded and echoed back as JSON (201)."""

    registry: Registry
    url: str = ""
    posts: list[tuple[str, str, str, Any]] = field(default_factory=list)  # path, Content-Type, Accept, decoded

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api", self.api)
        app.router.add_get("/apis", self.apis)
        app.router.add_get("/api/{version}", self.resources)
        app.router.add_get("/apis/{group}/{version}", self.resources)
        app.router.add_post("/{tail:.*}", self.post)
        return app

    async def api(self, request: web.Request) -> web.Response:
        return web.json_response(discovery.api_versions(request.host))

    async def apis(self, request: web.Request) -> web.Response:
        return web.json_response(discovery.api_group_list(self.registry))

    async def resources(self, request: web.Request) -> web.Response:
        doc = discovery.api_resource_list(self.registry, request.match_info.get("group", ""),
                                          request.match_info["version"])
        if doc is None:
            raise web.HTTPNotFound()
        return web.json_response(doc)

    async def post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        ct = request.headers.get("Content-Type", "")
        try:
            obj = decode(raw) if is_protobuf(ct) else orjson.loads(raw)
        except StatusError as e:
            return web.json_response(e.status(), status=e.code)
        self.posts.append((request.path, ct, request.headers.get("Accept", ""), obj))
        reply = dict(obj)
        if obj.get("kind") == "TokenRequest":
            reply["status"] = {"token": "t0ken", "expirationTimestamp": "2030-01-01T00:00:00Z"}
        return web.json_response(reply, status=201)


@pytest.fixture
async def capture_server() -> AsyncIterator[CaptureServer]:
    srv = CaptureServer(Registry())
    runner = web.AppRunner(srv.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield srv
    await runner.cleanup()


async def kubectl(srv: CaptureServer, tmp: Path, *args: str) -> tuple[int, str, str]:
    assert KUBECTL is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["HOME"] = str(tmp)
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--server", srv.url, "--kubeconfig", os.devnull, "--cache-dir", str(tmp / "cache"),
        *args, cwd=tmp,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _drop_nulls(v: Any) -> Any:
    """JSON ``null`` (a nil pointer, slice or map in Go) and an absent key mean the same."""
    if isinstance(v, dict):
        return {k: _drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_nulls(x) for x in v]
    return v


def _write_tls_pair(tmp: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k8py-test")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    (tmp / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                                    serialization.NoEncryption()))


CREATE_COMMANDS: list[tuple[str, ...]] = [
    ("deployment", "web", "--image=nginx", "--replicas=0", "--port=8080"),
    ("deployment", "two", "--image=nginx", "--image=busybox", "--replicas=3"),
    ("configmap", "cm", "--from-literal=a=b", "--from-literal=empty="),
    ("secret", "generic", "s", "--from-literal=k=v", "--from-literal=e=", "--type=Opaque"),
    ("secret", "tls", "t", "--cert=tls.crt", "--key=tls.key"),
    ("secret", "docker-registry", "r", "--docker-server=reg.example", "--docker-username=u",
     "--docker-password=p", "--docker-email=u@example.com"),
    ("service", "clusterip", "svc", "--tcp=80:8080,443"),
    ("service", "clusterip", "headless", "--clusterip=None"),
    ("service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"),
    ("service", "loadbalancer", "lb", "--tcp=443:8443"),
    ("service", "externalname", "ext", "--external-name=example.com", "--tcp=80"),
    ("job", "j", "--image=busybox", "--", "echo", "hi"),
    ("cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--restart=OnFailure", "--", "date"),
    ("namespace", "ns1"),
    ("quota", "q", "--hard=cpu=1,memory=1G,pods=2,requests.storage=0", "--scopes=BestEffort"),
    ("role", "r", "--verb=get,list", "--resource=pods,deployments.apps", "--resource-name=a"),
    ("clusterrole", "cr", "--verb=get", "--resource=nodes", "--non-resource-url=/healthz"),
    ("clusterrole", "agg", "--aggregation-rule=rbac.example.com/aggregate=true"),
    ("rolebinding", "rb", "--role=r", "--user=alice", "--serviceaccount=default:sa", "--group=g"),
    ("clusterrolebinding", "crb", "--clusterrole=cr", "--user=bob"),
    ("serviceaccount", "sa"),
    ("poddisruptionbudget", "pdb0", "--selector=app=x", "--min-available=0"),
    ("poddisruptionbudget", "pdb", "--selector=app=y", "--max-unavailable=50%"),
    ("priorityclass", "pc0", "--value=0", "--description=zero", "--preemption-policy=Never"),
    ("priorityclass", "pc", "--value=1000", "--global-default=true"),
    ("ingress", "ing", "--class=nginx", "--rule=foo.com/bar=svc:8080,tls=secret1", "--rule=bar.com/*=svc2:http",
     "--default-backend=defsvc:80", "--annotation=a=b"),
]


@needs_kubectl
@pytest.mark.parametrize("args", CREATE_COMMANDS, ids=lambda a: "-".join(a[:2]).replace("/", "_"))
async def test_kubectl_create_protobuf_decodes_like_its_json(capture_server: CaptureServer, tmp_path: Path,
                                                             args: tuple[str, ...]) -> None:
    if args[:2] == ("secret", "tls"):
        _write_tls_pair(tmp_path)
    # flags go before a "--" that starts the container's command
    create = ("create", "--validate=false", *args)
    rc, out, err = await kubectl(capture_server, tmp_path, *create[:2], "--dry-run=client", "-o", "json",
                                 *create[2:])
    assert rc == 0, err
    as_json = orjson.loads(out)
    rc, out, err = await kubectl(capture_server, tmp_path, *create)
    assert rc == 0, err
    assert " created" in out
    [(path, content_type, accept, decoded)] = capture_server.posts
    assert content_type == "application/vnd.kubernetes.protobuf", path
    # kubectl prefers protobuf back but takes JSON, which is what the server answers
    assert accept == "application/vnd.kubernetes.protobuf,application/json"
    assert _drop_nulls(decoded) == _drop_nulls(as_json)


@needs_kubectl
async def test_kubectl_create_token_and_auth_reviews_send_protobuf(capture_server: CaptureServer,
                                                                   tmp_path: Path) -> None:
    rc, out, err = await kubectl(capture_server, tmp_path, "create", "token", "sa", "--duration=10m",
                                 "--audience=a", "--audience=b")
    assert rc == 0, err
    assert out.strip() == "t0ken"
    await kubectl(capture_server, tmp_path, "auth", "can-i", "list", "deployments.apps", "-n", "kube-system")
    got = {p[3]["kind"]: p for p in capture_server.posts}
    path, ct, _, token = got["TokenRequest"]
    assert path == "/api/v1/namespaces/default/serviceaccounts/sa/token"
    assert ct == "application/vnd.kubernetes.protobuf"
    assert token["spec"] == {"audiences": ["a", "b"], "expirationSeconds": 600}
    _, ct, _, review = got["SelfSubjectAccessReview"]
    assert ct == "application/vnd.kubernetes.protobuf"
    assert review["spec"] == {"resourceAttributes": {"namespace": "kube-system", "verb": "list",
                                                     "group": "apps", "resource": "deployments"}}


def test_damaged_bodies_decode_or_fail_with_400() -> None:
    """Flipped bytes and truncations never escape as anything but a 400 Status."""
    import random

    rng = random.Random(1234)
    ts = f_msg(8, f_int(1, 1_700_000_000))
    samples = [
        envelope("apps/v1", "Deployment", meta("web", ts, f_map(11, "app", f_str(2, "web"))), f_msg(
            2, f_int(1, 2), f_msg(3, f_msg(2, f_msg(2, f_str(1, "c"), f_msg(8, f_map(1, "cpu", f_msg(2, f_str(1, "1"))))),
                                          f_msg(1, f_str(1, "v"), f_msg(2, f_msg(1, f_str(1, "/")))))))),
        envelope("v1", "Service", meta("s"), f_msg(2, f_msg(1, f_int(3, 80), f_msg(4, f_int(1, 1), f_str(3, "x"))))),
        envelope("apps/v1", "ControllerRevision", meta("r"), f_msg(2, f_bytes(1, b'{"a":[1,2]}')), f_int(3, 1)),
        envelope("coordination.k8s.io/v1", "Lease", meta("l"), f_msg(2, f_msg(4, f_int(1, 5), f_int(2, 7)))),
    ]
    outcomes = {"ok": 0, "400": 0}
    for _ in range(3000):
        body = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            i = rng.randrange(len(body))
            if op < 0.6:
                body[i] = rng.randrange(256)
            elif op < 0.8:
                del body[i:]
            else:
                body.insert(i, rng.randrange(256))
            if not body:
                body.append(0)
        try:
            assert isinstance(decode(bytes(body)), dict)
            outcomes["ok"] += 1
        except StatusError as e:
            assert e.code == 400
            outcomes["400"] += 1
    assert outcomes["ok"] and outcomes["400"]
