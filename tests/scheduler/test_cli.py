"""``k8py scheduler`` argument handling (the lead wires it into main), and the command run
against a server with ``k8py hollow-nodes`` (:mod:`k8py.kubelet.hollowcli`) playing the nodes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
import yaml

from k8py.scheduler.cli import add_scheduler_parser


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="k8py")
    sub = p.add_subparsers(dest="command")
    add_scheduler_parser(sub)
    return p


def test_invalid_config_is_refused_with_the_field(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
                 "percentageOfNodesToScore: 150\n")
    args = parser().parse_args(["scheduler", "--config", str(f)])
    with caplog.at_level(logging.ERROR):
        assert args.func(args) == 1
    assert "percentageOfNodesToScore: Invalid value: 150: not in valid range [0-100]" in caplog.text
    assert str(f) in caplog.text


def test_write_effective_config(tmp_path: Path) -> None:
    out = tmp_path / "effective.yaml"
    args = parser().parse_args(["scheduler", "--write-config-to", str(out)])
    assert args.func(args) == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["kind"] == "KubeSchedulerConfiguration"
    assert doc["profiles"][0]["schedulerName"] == "default-scheduler"
    names = [p["name"] for p in doc["profiles"][0]["plugins"]["multiPoint"]["enabled"]]
    assert names[:3] == ["SchedulingGates", "PrioritySort", "NodeUnschedulable"]
    # the written file is itself a valid configuration
    from k8py.scheduler.config import load_config
    assert load_config(str(out)).scheduler_names == ("default-scheduler",)


RUNNER = """
import argparse, sys
from k8py.cli.logs import setup_logging
from k8py.kubelet.hollowcli import add_hollow_nodes_parser
from k8py.scheduler.cli import add_scheduler_parser
setup_logging()  # as k8py's main does
p = argparse.ArgumentParser(prog="k8py")
sub = p.add_subparsers()
add_scheduler_parser(sub)
add_hollow_nodes_parser(sub)
args = p.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


async def test_the_commands_against_a_server(tmp_path: Path) -> None:
    import asyncio
    import signal
    import sys

    from tests.helpers.cluster import InProcessCluster

    from .conftest import NODE, POD

    async with InProcessCluster(controllers=()) as c:
        kc = tmp_path / "kubeconfig"
        kc.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "x",
            "clusters": [{"name": "c", "cluster": {"server": c.url}}], "users": [{"name": "u", "user": {}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}))
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-c", RUNNER, *argv, "--kubeconfig", str(kc),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            for argv in (["hollow-nodes", "--count", "2", "--cpu", "2", "--delete-on-exit"],
                         ["scheduler", "--leader-elect", "false"])]
        try:
            await c.client.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, "default")

            async def running() -> bool:
                p = await c.client.get(POD, "p", "default")
                return (p["spec"].get("nodeName") or "").startswith("hollow-node-") and \
                    p["status"].get("phase") == "Running"

            await c.until(running, timeout=30, what="the pod scheduled by `k8py scheduler` and run by a hollow node")
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(proc.wait(), 20) for proc in procs]
            errs = [(await proc.stderr.read()).decode() for proc in procs]  # type: ignore[union-attr]
        assert codes == [0, 0], errs
        assert "scheduler ready" in errs[1]
        assert (await c.client.list(NODE))["items"] == []  # --delete-on-exit
