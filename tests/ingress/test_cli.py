"""``k8py ingress-controller`` and the server's ingress flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8py.cli.ingress import build_controller
from k8py.cli.main import build_parser
from k8py.cli.server import build_config
from k8py.ingress.nginx import NginxError


def test_flags_parse_and_reach_the_config() -> None:
    p = build_parser()
    args = p.parse_args(["ingress-controller", "--kubeconfig", "k.yaml", "--ingress-http-port", "8080",
                         "--ingress-https-port", "8443", "--publish-status-address", "192.0.2.1"])
    assert (args.ingress_http_port, args.ingress_https_port, args.publish_status_address) == (8080, 8443, "192.0.2.1")
    cfg = build_config(p.parse_args(["server", "--ingress-http-port", "18080", "--ingress-https-port", "18443"]))
    assert (cfg.ingress_http_port, cfg.ingress_https_port, cfg.disable_ingress) == (18080, 18443, False)
    cfg = build_config(p.parse_args(["server", "--disable-ingress"]))
    assert (cfg.ingress_http_port, cfg.ingress_https_port, cfg.disable_ingress) == (80, 443, True)
    with pytest.raises(SystemExit):
        p.parse_args(["ingress-controller", "--ingress-https-port", "70000"])


def test_one_port_for_both_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NginxError, match="are both 8080: give two ports"):
        build_controller(None, str(tmp_path / "ingress"), 8080, 8080, ())
