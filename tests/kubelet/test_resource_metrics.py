"""kubelet's ``/metrics/resource``: the text format as kubelet writes it (names, help, labels,
timestamps, Go's float form), and the endpoint over TLS with the same readings as the summary."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.kubelet.test_server import Env, make_pod, running_env

from k8py.kubelet.resourcemetrics import NodeSample, ResourceSample, go_float, render
from k8py.kubelet.runtime.types import ContainerState, ContainerStats


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_env(tmp_path) as e:
        yield e


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "0"), (1.0, "1"), (0.195744, "0.195744"), (357.35491, "357.35491"), (13729792.0, "1.3729792e+07"),
    (1633252400.0, "1.6332524e+09"), (1e6, "1e+06"), (999999.0, "999999"), (0.0001, "0.0001"),
    (0.00001234, "1.234e-05"), (-2.5, "-2.5"), (1616273408.0, "1.616273408e+09"), (100.0, "100"),
    (float("nan"), "NaN"), (float("inf"), "+Inf"),
])
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_render_as_kubelet_writes_it() -> None:
    node = NodeSample(time=1633253809.72, cpu_core_ns=357_354_910_000, working_set_bytes=1_616_273_408)
    cs = [
        ResourceSample("kube-system", "coredns-x", "coredns", 1633252400.0, 1633253812.125, 8_618_000_000, 13_729_792),
        ResourceSample("default", "web", "b", 1633252500.5, 1633253812.0, 1_000_000_000, 2 << 20),
        ResourceSample("default", "web", "a", 1633252500.0, 1633253812.5, 500_000_000, 1 << 20),
    ]
    text = render(node, cs)
    lines = text.splitlines()
    # families sorted by name, each with kubelet's HELP (stability level) and TYPE
    names = [ln.split()[2] for ln in lines if ln.startswith("# HELP")]
    assert names == sorted(names) == [
        "container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_start_time_seconds",
        "node_cpu_usage_seconds_total", "node_memory_working_set_bytes", "pod_cpu_usage_seconds_total",
        "pod_memory_working_set_bytes", "resource_scrape_error"]
    assert ("# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in "
            "core-seconds") in lines
    assert "# TYPE container_cpu_usage_seconds_total counter" in lines
    assert "# TYPE node_memory_working_set_bytes gauge" in lines
    # samples sorted by their label values (container, namespace, pod); usage with the reading's time in ms
    cpu = [ln for ln in lines if ln.startswith("container_cpu_usage_seconds_total{")]
    assert cpu == [
        'container_cpu_usage_seconds_total{container="a",namespace="default",pod="web"} 0.5 1633253812500',
        'container_cpu_usage_seconds_total{container="b",namespace="default",pod="web"} 1 1633253812000',
        ('container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-x"} 8.618 '
        '1633253812125')]
    assert ('container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-x"} '
            '1.3729792e+07 1633253812125') in lines
    # the start time has no timestamp
    assert 'container_start_time_seconds{container="coredns",namespace="kube-system",pod="coredns-x"} 1.6332524e+09' \
        in lines
    assert "node_cpu_usage_seconds_total 357.35491 1633253809720" in lines
    assert "node_memory_working_set_bytes 1.616273408e+09 1633253809720" in lines
    # the pod: its containers summed
    assert 'pod_cpu_usage_seconds_total{namespace="default",pod="web"} 1.5 1633253812500' in lines
    assert 'pod_memory_working_set_bytes{namespace="default",pod="web"} 3.145728e+06 1633253812500' in lines
    assert lines[-1] == "resource_scrape_error 0"
    assert not any(ln.startswith(("scrape_error", "# HELP scrape_error")) for ln in lines)  # hidden since 1.30
    assert text.endswith("\n")


def test_render_without_containers_and_on_error() -> None:
    text = render(NodeSample(10.0, 2_000_000_000, 4096), [])
    assert "container_" not in text and "pod_" not in text  # empty families are left out
    assert "node_cpu_usage_seconds_total 2 10000" in text
    assert render(None, [], error=True) == ("# HELP resource_scrape_error [STABLE] 1 if there was an error while "
                                            "getting container metrics, 0 otherwise\n"
                                            "# TYPE resource_scrape_error gauge\nresource_scrape_error 1\n")


def test_label_values_escaped() -> None:
    text = render(None, [ResourceSample("ns", 'p"q', "c\\d", 0.0, 1.0, 1, 1)])
    assert 'container_cpu_usage_seconds_total{container="c\\\\d",namespace="ns",pod="p\\"q"} 1e-09 1000' in text
    assert "container_start_time_seconds" not in text  # no start time: none written, as kubelet


async def test_metrics_resource_endpoint(env: Env) -> None:
    env.pods.append(make_pod("p", "c", "d"))
    c = env.rt.add("default", "p", "uid-p", "c")
    d = env.rt.add("default", "p", "uid-p", "d")
    env.rt.add("default", "p", "uid-p", "old", 0, ContainerState.EXITED)
    t = time.time()
    env.rt.stats[c.id] = ContainerStats(t, 1_500_000_000, 10 << 20)
    env.rt.stats[d.id] = ContainerStats(t, 250_000_000, 5 << 20)
    status, ctype, text = await env.get("/metrics/resource")
    assert status == 200 and ctype.startswith("text/plain") and "version=0.0.4" in ctype
    lines = text.splitlines()
    ms = round(t * 1000)
    assert f'container_cpu_usage_seconds_total{{container="c",namespace="default",pod="p"}} 1.5 {ms}' in lines
    assert f'container_memory_working_set_bytes{{container="d",namespace="default",pod="p"}} {go_float(5 << 20)} {ms}' \
        in lines
    assert f'pod_cpu_usage_seconds_total{{namespace="default",pod="p"}} 1.75 {ms}' in lines
    assert f'container_start_time_seconds{{container="c",namespace="default",pod="p"}} {go_float(c.started_at)}' in lines
    assert not any('container="old"' in ln for ln in lines)  # running containers only, as the summary
    assert any(ln.startswith("node_cpu_usage_seconds_total ") for ln in lines)
    assert lines[-1] == "resource_scrape_error 0"
    # the node's numbers are the summary's
    summary = json.loads((await env.get("/stats/summary"))[2])
    assert summary["node"]["memory"]["workingSetBytes"] > 0
