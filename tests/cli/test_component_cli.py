"""The component commands run alone against an API server (proxy, network-policy,
ingress-controller, cloud-controller-manager, controller-manager, hollow-nodes) share one
entry-point shape (k8py.runner): the same --kubeconfig/--context flags, the same refusal when
the machine lacks what a component needs or the kubeconfig cannot be loaded, and one client
for the component's run until a signal."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import pytest

from k8py.cli.main import build_parser, main
from k8py.client.api import Client
from k8py.runner import component_config, run_with_client

COMMANDS = {"proxy": ["--node-name", "n1"], "network-policy": ["--node-name", "n1"], "ingress-controller": [],
            "cloud-controller-manager": [], "controller-manager": [], "hollow-nodes": []}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_component_takes_the_kubeconfig_flags(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args([command, *COMMANDS[command], "--kubeconfig", "k.yaml", "--context", "c1"])
    assert (args.kubeconfig, args.context) == ("k.yaml", "c1")
    args = build_parser().parse_args([command, *COMMANDS[command]])
    assert (args.kubeconfig, args.context) == (None, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    out = capsys.readouterr().out
    assert "--kubeconfig FILE" in out and "kubeconfig to reach the API server" in out and "--context NAME" in out


@pytest.mark.parametrize("command", ["cloud-controller-manager", "controller-manager", "hollow-nodes"])
def test_an_unloadable_kubeconfig_is_exit_1_with_the_reason(command: str, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "nope.yaml"
    assert main([command, *COMMANDS[command], "--kubeconfig", str(missing)]) == 1
    assert str(missing) in caplog.text


def test_what_the_machine_lacks_comes_first(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("k8py.test")
    args = argparse.Namespace(kubeconfig="/nonexistent/k.yaml", context=None)
    assert component_config(args, log, what="the service proxy", missing=["root (x)", "the nft command"]) is None
    assert "cannot run the service proxy; missing: root (x); the nft command" in caplog.text
    assert "/nonexistent/k.yaml" not in caplog.text  # the kubeconfig was not even read
    caplog.clear()
    assert component_config(args, log, what="the service proxy") is None
    assert "/nonexistent/k.yaml" in caplog.text


def test_run_with_client_gives_the_component_its_client_and_exit_code(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "k.yaml"
    kubeconfig.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
""")
    cfg = component_config(argparse.Namespace(kubeconfig=str(kubeconfig), context=None), logging.getLogger("t"))
    assert cfg is not None and cfg.server == "https://127.0.0.1:1"
    seen: list[tuple[str, str, bool]] = []

    async def component(client: Client, stop: asyncio.Event) -> int | None:
        seen.append((client.component, client.field_manager, stop.is_set()))
        return 7 if len(seen) == 1 else None

    assert run_with_client(cfg, "kube-proxy", component) == 7
    assert run_with_client(cfg, "hollow-nodes", component, field_manager="kubelet") == 0  # None: 0
    assert seen == [("kube-proxy", "kube-proxy", False), ("hollow-nodes", "kubelet", False)]


@pytest.mark.parametrize("command", ["proxy", "network-policy"])
def test_min_sync_period_is_one_flag_refusing_negatives(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """kube-proxy's validation: minSyncPeriod "must be greater than or equal to 0"."""
    assert build_parser().parse_args([command, "--node-name", "n1", "--min-sync-period", "0"]).min_sync_period == 0
    assert build_parser().parse_args([command, "--node-name", "n1"]).min_sync_period == 0.25
    for bad, message in (("-1", "argument --min-sync-period: -1 is negative"),
                         ("soon", "argument --min-sync-period: invalid float value: 'soon'")):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--node-name", "n1", "--min-sync-period", bad])
        err = capsys.readouterr().err
        assert message in err and f"k8py {command}: error:" in err


def test_a_component_beside_the_agent_says_what_the_cluster_goes_without(caplog: pytest.LogCaptureFixture,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from k8py.cli import netpol, proxy
    from k8py.runner import cannot_run_here

    log = logging.getLogger("k8py.test")
    assert not cannot_run_here(log, "the ingress controller", "Ingresses will not be served", [])
    assert caplog.text == ""
    assert cannot_run_here(log, "the ingress controller", "Ingresses will not be served", ["nginx (Debian package nginx)"])
    assert ("the ingress controller cannot run here (Ingresses will not be served); missing: nginx (Debian package "
            "nginx)") in caplog.text
    made: list[str] = []

    def client_for() -> Client:
        made.append("client")
        raise AssertionError("no client is made for a component that cannot run")

    caplog.clear()
    monkeypatch.setattr("os.geteuid", lambda: 1000)  # not root
    stop = asyncio.Event()
    assert proxy.start_beside_agent(client_for, "n1", "10.42.0.0/16", stop, log) is None
    assert netpol.start_beside_agent(client_for, "n1", stop, log) is None
    assert made == []
    assert ("the service proxy cannot run here (Services' addresses will not answer); missing: root (the proxy "
            "programs nftables)") in caplog.text
    assert ("the NetworkPolicy agent cannot run here (NetworkPolicies will not be enforced); missing: root (the "
            "NetworkPolicy agent programs nftables)") in caplog.text
