"""Fuzz the API server with schemathesis from its own OpenAPI v3 documents: whatever a client sends to
create, update, patch, list or delete a handful of kinds, the answer is a Status or an object, never a
5xx or a dropped connection.

Deterministic (hypothesis ``derandomize``) and bounded (a few examples per operation, one time budget
for the whole test) so CI neither flakes nor drags.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
requests = pytest.importorskip("requests")
hypothesis = pytest.importorskip("hypothesis")

from tests.e2e.conftest import Server

NS = "fuzz"
EXAMPLES = 12  # per operation
BUDGET_S = 45.0  # for the whole test; operations left when it runs out are reported, not skipped silently

# (group-version document, path template, methods); namespaced paths in the test namespace
TARGETS: list[tuple[str, str, tuple[str, ...]]] = [
    ("api/v1", "/api/v1/namespaces/{namespace}/configmaps", ("post", "get")),
    ("api/v1", "/api/v1/namespaces/{namespace}/configmaps/{name}", ("put", "patch", "delete")),
    ("api/v1", "/api/v1/namespaces/{namespace}/secrets", ("post",)),
    ("api/v1", "/api/v1/namespaces/{namespace}/secrets/{name}", ("put", "patch")),
    ("api/v1", "/api/v1/namespaces/{namespace}/services", ("post",)),
    ("apis/apps/v1", "/apis/apps/v1/namespaces/{namespace}/deployments", ("post", "get")),
    ("apis/apps/v1", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}", ("patch", "put")),
    ("apis/batch/v1", "/apis/batch/v1/namespaces/{namespace}/jobs", ("post",)),
]

# 5xx that are known bugs in files owned elsewhere; each names the bug so its owner can remove it.
KNOWN_5XX: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module", autouse=True)
def fuzz_objects(server: Server) -> Iterator[None]:
    """On the session's server (tests/conftest.py): the namespace the fuzzing writes in, and the
    objects its by-name operations address; the namespace, with whatever the fuzzing made in it,
    is deleted at the end."""
    server.kubectl("create", "namespace", NS)
    for name in ("c", "s"):
        server.kubectl("create", "configmap", name, "-n", NS, "--from-literal=a=b")
    server.kubectl("create", "secret", "generic", "s", "-n", NS, "--from-literal=a=x")
    server.kubectl("create", "deployment", "d", "-n", NS, "--image=nginx")
    yield
    server.kubectl("delete", "namespace", NS, "--wait=false")


def _session(server: Server) -> Any:
    tls = Path(server.data_dir) / "tls"
    sess = requests.Session()
    sess.trust_env = False  # REQUESTS_CA_BUNDLE would override the session's CA
    sess.verify = str(tls / "ca.crt")
    sess.cert = (str(tls / "admin.crt"), str(tls / "admin.key"))
    return sess


def _schema(server: Server, sess: Any, gv: str) -> Any:
    r = sess.get(f"https://127.0.0.1:{server.port}/openapi/v3/{gv}", timeout=30)
    r.raise_for_status()
    return schemathesis.openapi.from_dict(r.json())


def _fuzz_operation(op: Any, base_url: str, sess: Any, deadline: float, failures: list[str]) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    names = {"name": "c"} if "configmaps" in op.path else {"name": "s"} if "secrets" in op.path else {"name": "d"}
    path_params = {"namespace": NS, **({"name": names["name"]} if "{name}" in op.path else {})}

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(path_parameters=path_params))
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        try:
            resp = case.call(base_url=base_url, session=sess, timeout=20, verify=sess.verify, cert=sess.cert)
        except requests.ConnectionError as e:
            failures.append(f"{case.method} {case.formatted_path}: dropped connection ({e}); body={case.body!r:.300}")
            return
        if resp.status_code >= 500 and (case.method, op.path) not in KNOWN_5XX:
            failures.append(f"{case.method} {case.formatted_path} query={case.query!r} "
                            f"content-type={case.media_type} body={case.body!r:.300} -> {resp.status_code} "
                            f"{resp.text[:300]}")

    run()


def test_fuzz_api_server_never_answers_5xx(server: Server) -> None:
    sess = _session(server)
    base_url = f"https://127.0.0.1:{server.port}"
    deadline = time.monotonic() + BUDGET_S
    failures: list[str] = []
    schemas: dict[str, Any] = {}
    ran: list[str] = []
    for gv, path, methods in TARGETS:
        schema = schemas.get(gv) or schemas.setdefault(gv, _schema(server, sess, gv))
        for method in methods:
            if time.monotonic() > deadline:
                break
            op = schema[path][method.upper()]
            _fuzz_operation(op, base_url, sess, deadline, failures)
            ran.append(f"{method.upper()} {path}")
    assert not failures, "server errors:\n" + "\n".join(failures)
    assert len(ran) == sum(len(m) for _, _, m in TARGETS), f"time budget ran out after {ran}"
