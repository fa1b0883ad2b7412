"""The read path of the per-kind registry: each kind's strategy declares what ``kubectl get``
prints (columns, each with its cell) and which field labels its field selectors may use; the
list, get and watch handlers use them through ``Strategies.for_kind``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from k8py.api import selectors, tables
from k8py.api.registry import BUILTIN_KINDS, Registry
from k8py.apiserver.registry import Strategies, Strategy, build
from k8py.apiserver.registry.core import PodStrategy

STRATEGIES = build()
REGISTRY = Registry()
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
DEFAULT_REJECT = '"{}" is not a known field selector: only "metadata.name", "metadata.namespace"'


def declared() -> list[Strategy]:
    """Every strategy a kind is served with, and the generic one."""
    return [STRATEGIES.for_kind(k) for k in BUILTIN_KINDS] + [Strategy()]


def test_every_column_has_its_cell_and_every_row_one_cell_per_column() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "x", "namespace": "default",
                                        "creationTimestamp": "2025-06-01T11:00:00Z"}}
    for s in declared():
        t = s.table
        assert t.columns, s
        assert all(callable(c.cell) for c in t.columns), s
        assert sum(c.format == "name" for c in t.columns) >= 1, s
        rendered = tables.table(t, [obj])
        assert len(rendered["columnDefinitions"]) == len(t.columns), s
        assert len(rendered["rows"][0]["cells"]) == len(t.columns), s


def test_a_column_cannot_be_declared_without_its_cell() -> None:
    with pytest.raises(TypeError):
        tables.Column("Ready")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="at least one column"):
        tables.Table()


def test_kinds_without_columns_of_their_own_print_kubes_default_table() -> None:
    cr = REGISTRY.by_api_version("rbac.authorization.k8s.io/v1", "ClusterRole")
    assert cr is not None
    assert STRATEGIES.for_kind(cr).table is tables.DEFAULT_TABLE
    assert [d["name"] for d in tables.DEFAULT_TABLE.definitions()] == ["Name", "Created At"]


def test_one_strategy_per_kind() -> None:
    with pytest.raises(ValueError, match="two strategies for Pod.core"):
        Strategies([PodStrategy(), PodStrategy()])


def test_every_kind_accepts_metadata_name_and_its_own_labels_only() -> None:
    for k in BUILTIN_KINDS:
        labels = STRATEGIES.for_kind(k).field_labels
        assert labels.accepted["metadata.name"] == "metadata.name", k
        assert selectors.compile_selector(labels, None, "metadata.name=x").matches({"metadata": {"name": "x"}}), k
        with pytest.raises(selectors.SelectorError):
            selectors.compile_selector(labels, None, "no.such.label=1")


def test_kinds_without_labels_of_their_own_give_kubes_default_error() -> None:
    for api_version, kind in (("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "LimitRange")):
        k = REGISTRY.by_api_version(api_version, kind)
        assert k is not None
        labels = STRATEGIES.for_kind(k).field_labels
        assert labels is selectors.DEFAULT_FIELD_LABELS
        with pytest.raises(selectors.SelectorError) as e:
            selectors.compile_selector(labels, None, "x=1")
        assert (e.value.code, e.value.message) == (400, DEFAULT_REJECT.format("x"))


# --- through the API ------------------------------------------------------------------------

def pod(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}


async def test_field_selectors_and_tables_over_http(api: TestClient) -> None:
    base = "/api/v1/namespaces/default"
    for name, node in (("a", "n1"), ("b", "n2")):
        assert (await api.post(f"{base}/pods", json=pod(name, node))).status == 201
    listed = await (await api.get(f"{base}/pods?fieldSelector=spec.nodeName%3Dn2")).json()
    assert [p["metadata"]["name"] for p in listed["items"]] == ["b"]
    r = await api.get(f"{base}/pods?fieldSelector=spec.bogus%3Dx")
    assert (r.status, (await r.json())["message"]) == (400, "field label not supported: spec.bogus")
    r = await api.get(f"{base}/configmaps?fieldSelector=data.k%3Dv")
    assert (r.status, (await r.json())["message"]) == (400, DEFAULT_REJECT.format("data.k"))

    t = await (await api.get(f"{base}/pods?fieldSelector=spec.nodeName%3Dn1", headers={"Accept": TABLE})).json()
    assert [c["name"] for c in t["columnDefinitions"]] == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
    assert [(row["cells"][0], row["cells"][6]) for row in t["rows"]] == [("a", "n1")]
    one = await (await api.get(f"{base}/pods/b", headers={"Accept": TABLE})).json()
    assert one["rows"][0]["cells"][:3] == ["b", "0/1", "Pending"]
    cm = await (await api.get(f"{base}/configmaps", headers={"Accept": TABLE})).json()
    assert [c["name"] for c in cm["columnDefinitions"]] == ["Name", "Data", "Age"]


async def test_table_watch_sends_the_kinds_columns_once(api: TestClient) -> None:
    base = "/api/v1/namespaces/default"
    r = await api.get(f"{base}/pods?watch=1&timeoutSeconds=5", headers={"Accept": TABLE})
    assert r.status == 200
    for name in ("a", "b"):
        assert (await api.post(f"{base}/pods", json=pod(name, "n1"))).status == 201
    events: list[Any] = []
    async with asyncio.timeout(10):
        while len(events) < 2:
            line = await r.content.readline()
            assert line, "the watch ended early"
            events.append(json.loads(line))
    r.close()
    first, second = (e["object"] for e in events)
    assert [c["name"] for c in first["columnDefinitions"]][:4] == ["Name", "Ready", "Status", "Restarts"]
    assert second["columnDefinitions"] == []
    assert [first["rows"][0]["cells"][0], second["rows"][0]["cells"][0]] == ["a", "b"]
