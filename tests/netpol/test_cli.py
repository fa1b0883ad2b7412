"""The NetworkPolicy agent's command and k8py server's flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8py.cli.main import build_parser
from k8py.cli.server import build_config


def test_network_policy_command_needs_a_node_name(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(["network-policy", "--node-name", "n1", "--kubeconfig", "/x"])
    assert args.node_name == "n1" and args.min_sync_period == 0.25
    with pytest.raises(SystemExit):
        parser.parse_args(["network-policy"])
    assert "--node-name" in capsys.readouterr().err


def test_server_disable_network_policy_flag(tmp_path: Path) -> None:
    args = build_parser().parse_args(["server", "--disable-network-policy", "--data-dir", str(tmp_path)])
    assert build_config(args).disable_network_policy is True
    args = build_parser().parse_args(["server", "--data-dir", str(tmp_path)])
    assert build_config(args).disable_network_policy is False


def test_killall_removes_the_network_policy_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import argparse

    from k8py.cli import agent
    from k8py.netpol.rules import cleanup as netpol_cleanup
    from k8py.nftables import Nft, NftError, remove_table
    from k8py.proxy.rules import cleanup as proxy_cleanup

    applied: list[str] = []
    monkeypatch.setattr(Nft, "apply", lambda self, script, timeout=30.0: applied.append(script))
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/sbin/{name}")

    async def no_pods(data_dir: str) -> list[str]:
        return []

    monkeypatch.setattr("k8py.kubelet.run.teardown", no_pods)
    monkeypatch.setattr("k8py.ingress.nginx.killall", lambda state_dir: [])
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert agent.run_killall(argparse.Namespace(data_dir=str(tmp_path))) == 0
    assert netpol_cleanup() in applied and proxy_cleanup() in applied

    def refuse(self: Nft, script: str, timeout: float = 30.0) -> None:
        raise NftError("Error: Operation not permitted")

    monkeypatch.setattr(Nft, "apply", refuse)
    assert remove_table("inet", "k8py-netpol", "the NetworkPolicy agent") == [
        "cannot remove the NetworkPolicy agent's nft table inet k8py-netpol: Error: Operation not permitted"]
