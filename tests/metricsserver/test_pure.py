"""metrics-server's pure parts: the text format, a scrape as points, the storage's rate rules
(metrics-server's own cases), and the API objects, Table and discovery."""

from __future__ import annotations

import math

import pytest

from k8py.kubelet.resourcemetrics import NodeSample, ResourceSample, render
from k8py.metricsserver import api
from k8py.metricsserver.decode import decode_batch
from k8py.metricsserver.prometheus import ParseError, parse
from k8py.metricsserver.storage import MetricsBatch, MetricsPoint, Storage, resource_usage

# --------------------------------------------------------------------------- the text format


def test_parse_samples_labels_escapes_timestamps() -> None:
    text = ('# HELP x_total [STABLE] help \\n text\n# TYPE x_total counter\n'
            'x_total{a="1",b="q\\"u\\\\o\\nte"} 1.5e+03 1633253812125\n'
            "\n"
            "plain 7\n"
            'spaced { a = "v" , } NaN\n'
            "inf_metric +Inf 12\n")
    out = list(parse(text))
    assert [(s.name, s.labels, s.timestamp_ms) for s in out] == [
        ("x_total", {"a": "1", "b": 'q"u\\o\nte'}, 1633253812125), ("plain", {}, None),
        ("spaced", {"a": "v"}, None), ("inf_metric", {}, 12)]
    assert out[0].value == 1500.0 and out[1].value == 7.0 and math.isnan(out[2].value) and out[3].value == math.inf


@pytest.mark.parametrize("bad", [
    'x{a="1"', 'x{a=1} 2', "x", "x 1 2 3", 'x{a="1",a="2"} 1', "x one", "x 1 1.5", 'x{a="\\t"} 1', "{a=\"1\"} 1",
    'x{a="1"}1', 'x{a "1"} 1',
])
def test_parse_errors_name_the_line(bad: str) -> None:
    with pytest.raises(ParseError, match="line 2"):
        list(parse("ok 1\n" + bad + "\n"))


def test_reads_what_the_kubelet_writes() -> None:
    text = render(NodeSample(100.0, 2_000_000_000, 1 << 30),
                  [ResourceSample("ns", "p", "c", 50.0, 100.5, 1_234_567_890, 5 << 20)])
    by_name = {s.name: s for s in parse(text)}
    assert by_name["node_cpu_usage_seconds_total"].value == 2.0
    assert by_name["container_cpu_usage_seconds_total"].labels == {"container": "c", "namespace": "ns", "pod": "p"}
    assert by_name["container_cpu_usage_seconds_total"].timestamp_ms == 100500
    assert by_name["resource_scrape_error"].value == 0


# --------------------------------------------------------------------------- decode


def test_decode_batch() -> None:
    text = render(NodeSample(100.0, 2_000_000_000, 1 << 30), [
        ResourceSample("ns", "p", "c", 50.0, 100.5, 1_234_567_890, 5 << 20),
        ResourceSample("ns", "p", "d", 51.0, 100.5, 1_000, 1 << 20),
        ResourceSample("ns", "q", "c", 52.0, 100.5, 7, 0),  # no memory: the whole pod is dropped
    ])
    b = decode_batch(text, 99.0, "node-1")
    assert b.nodes == {"node-1": MetricsPoint(0.0, 100.0, 2_000_000_000, 1 << 30)}
    assert set(b.pods) == {("ns", "p")}
    assert b.pods[("ns", "p")]["c"] == MetricsPoint(50.0, 100.5, 1_234_567_890, 5 << 20)
    assert b.pods[("ns", "p")]["d"].cumulative_cpu_ns == 1_000


def test_decode_without_timestamps_and_incomplete_node() -> None:
    text = ('container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} 2\n'
            'container_memory_working_set_bytes{container="c",namespace="n",pod="p"} 1024\n'
            "node_cpu_usage_seconds_total 5\n"  # no memory: no node point
            "other_metric 1\n")
    b = decode_batch(text, 42.0, "n1")
    assert b.nodes == {}
    assert b.pods[("n", "p")]["c"] == MetricsPoint(0.0, 42.0, 2_000_000_000, 1024)
    with pytest.raises(ParseError):
        decode_batch('container_cpu_usage_seconds_total{container="c" 1', 1.0, "n1")
    # families metrics-server does not read are not read past their name
    assert decode_batch("other_family{ garbage\n", 1.0, "n1").pods == {}


# --------------------------------------------------------------------------- storage


def point(ts: float, cpu_s: float, mem: int = 100, start: float = 1.0) -> MetricsPoint:
    return MetricsPoint(start, ts, int(cpu_s * 1e9), mem)


def batch(node_points: dict[str, MetricsPoint] | None = None,
          pods: dict[tuple[str, str], dict[str, MetricsPoint]] | None = None) -> MetricsBatch:
    return MetricsBatch(nodes=dict(node_points or {}), pods=dict(pods or {}))


def test_resource_usage_rate_and_errors() -> None:
    u = resource_usage(point(110.0, 15.0, 300), point(100.0, 10.0, 200))
    assert (u.cpu_nanocores, u.memory_bytes, u.timestamp, u.window) == (500_000_000, 300, 110.0, 10.0)
    with pytest.raises(ValueError, match="cumulative CPU"):
        resource_usage(point(110.0, 5.0), point(100.0, 10.0))
    with pytest.raises(ValueError, match="startTime"):
        resource_usage(point(110.0, 15.0, start=0.5), point(100.0, 10.0, start=1.0))


def test_node_needs_two_points_and_newer_ones() -> None:
    s = Storage(15.0)
    s.store(batch({"n": point(100.0, 10.0)}))
    assert s.node_usage("n") is None and not s.node_ready()
    s.store(batch({"n": point(115.0, 25.0, 500)}))
    u = s.node_usage("n")
    assert u is not None and u.usage.cpu_nanocores == 1_000_000_000 and u.usage.memory_bytes == 500
    assert u.usage.window == 15.0 and s.node_ready()
    # a point that is not newer than the last: the previous is kept if older than it
    s.store(batch({"n": point(110.0, 20.0)}))
    u = s.node_usage("n")
    assert u is not None and u.usage.window == 10.0  # 110 against the kept 100
    # a node missing from a scrape loses its points
    s.store(batch({}))
    assert s.node_usage("n") is None


def test_pod_rules() -> None:
    s = Storage(60.0)
    key = ("ns", "p")
    s.store(batch(pods={key: {"a": point(100.0, 1.0), "b": point(100.0, 2.0)}}))
    assert s.pod_usage(*key) is None
    s.store(batch(pods={key: {"a": point(110.0, 2.0), "b": point(110.0, 2.5)}}))
    u = s.pod_usage(*key)
    assert u is not None and [(c.name, c.cpu_nanocores) for c in u.containers] == [("a", 100_000_000),
                                                                                   ("b", 50_000_000)]
    assert u.window == 10.0 and u.timestamp == 110.0
    # a restarted container (started after the last point) has no previous point: the pod waits
    s.store(batch(pods={key: {"a": point(120.0, 0.1, start=115.0), "b": point(120.0, 3.0)}}))
    assert s.pod_usage(*key) is None
    # a new container in the pod: the pod waits for it too
    s.store(batch(pods={key: {"a": point(130.0, 0.2, start=115.0), "b": point(130.0, 3.5),
                              "c": point(130.0, 1.0, start=125.0)}}))
    assert s.pod_usage(*key) is None


def test_fresh_container_gets_its_start_as_previous_point() -> None:
    s = Storage(15.0)
    key = ("ns", "fresh")
    # started 12 s before its first reading (at least 10 s, less than a resolution): usage at once
    s.store(batch(pods={key: {"c": point(112.0, 6.0, 300, start=100.0)}}))
    u = s.pod_usage(*key)
    assert u is not None and u.containers[0].cpu_nanocores == 500_000_000 and u.window == 12.0
    assert s.pod_ready()
    # one started 5 s before: too fresh, nothing yet
    s2 = Storage(15.0)
    s2.store(batch(pods={key: {"c": point(105.0, 1.0, start=100.0)}}))
    assert s2.pod_usage(*key) is None


# --------------------------------------------------------------------------- API objects


@pytest.mark.parametrize(("nanocores", "text"), [
    (132398302, "132398302n"), (500_000_000, "500m"), (2_000_000_000, "2"), (0, "0"), (1_500_000, "1500u")])
def test_cpu_quantity(nanocores: int, text: str) -> None:
    assert api.cpu_quantity(nanocores) == text


@pytest.mark.parametrize(("n", "text"), [(622040 * 1024, "622040Ki"), (12345678, "12345678"), (1 << 30, "1Gi"),
                                         (512, "512")])
def test_memory_quantity(n: int, text: str) -> None:
    assert api.memory_quantity(n) == text


def test_objects_lists_and_table() -> None:
    s = Storage(15.0)
    s.store(batch({"b": point(100.0, 1.0), "a": point(100.0, 1.0)},
                  {("ns", "p"): {"z": point(100.0, 1.0), "y": point(100.0, 1.0)}}))
    s.store(batch({"b": point(115.012, 2.5, 2048), "a": point(115.0, 1.0, 1 << 20)},
                  {("ns", "p"): {"z": point(115.0, 1.15, 4096), "y": point(115.0, 1.0, 1024)}}))
    now = 1_700_000_000.0
    nb = s.node_usage("b")
    assert nb is not None
    obj = api.node_metrics(nb, {"k": "v"}, now)
    assert obj == {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": "b", "creationTimestamp": "2023-11-14T22:13:20Z", "labels": {"k": "v"}},
                   "timestamp": "1970-01-01T00:01:55Z", "window": "15.012s",
                   "usage": {"cpu": "99920063n", "memory": "2Ki"}}
    na = s.node_usage("a")
    assert na is not None
    lst = api.node_metrics_list([(nb, None), (na, None)], now)
    assert lst["kind"] == "NodeMetricsList" and lst["metadata"] == {}
    assert [i["metadata"]["name"] for i in lst["items"]] == ["a", "b"] and "kind" not in lst["items"][0]
    pu = s.pod_usage("ns", "p")
    assert pu is not None
    pod = api.pod_metrics(pu, None, now)
    assert pod["metadata"] == {"name": "p", "namespace": "ns", "creationTimestamp": "2023-11-14T22:13:20Z"}
    assert pod["containers"] == [{"name": "y", "usage": {"cpu": "0", "memory": "1Ki"}},
                                 {"name": "z", "usage": {"cpu": "10m", "memory": "4Ki"}}]
    assert pod["window"] == "15s"
    t = api.table([pod])
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "cpu", "memory", "Window"]
    assert t["rows"][0]["cells"] == ["p", "10m", "5Ki", "15s"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert api.table([obj], include_object="None")["rows"] == [{"cells": ["b", "99920063n", "2Ki", "15.012s"]}]
    assert api.table([])["rows"] == []


def test_discovery_documents() -> None:
    rl = api.api_resource_list()
    assert rl["groupVersion"] == "metrics.k8s.io/v1beta1"
    assert [(r["name"], r["kind"], r["namespaced"], r["verbs"]) for r in rl["resources"]] == [
        ("nodes", "NodeMetrics", False, ["get", "list"]), ("pods", "PodMetrics", True, ["get", "list"])]
    g = api.api_group()
    assert g["preferredVersion"] == {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}
    assert api.api_group_list()["groups"][0]["name"] == "metrics.k8s.io"
    d = api.api_group_discovery()
    assert d["items"][0]["versions"][0]["resources"][1]["scope"] == "Namespaced"
