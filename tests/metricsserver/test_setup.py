"""How `k8py server` runs metrics-server: its flags, and the RBAC kube's metrics-server manifest
deploys (with what k8py's registers itself with)."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8py.apiserver.rbac import bootstrap
from k8py.cli.main import build_parser
from k8py.cli.server import build_config
from k8py.config import ServerConfig


def config(*argv: str) -> ServerConfig:
    parser = build_parser()
    args = parser.parse_args(["server", *argv])
    return build_config(args, args.parser)


def test_flags(tmp_path: Path) -> None:
    cfg = config("-d", str(tmp_path))
    assert (cfg.disable_metrics_server, cfg.metrics_server_port, cfg.metric_resolution) == (False, 4443, 15.0)
    cfg = config("-d", str(tmp_path), "--disable-metrics-server", "--metrics-server-port", "0",
                 "--metric-resolution", "1m")
    assert (cfg.disable_metrics_server, cfg.metrics_server_port, cfg.metric_resolution) == (True, 0, 60.0)


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--metric-resolution", "5s", "metric-resolution should be a time duration at least 10s"),
    ("--metrics-server-port", "70000", "must be between 1 and 65535"),
])
def test_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, says: str) -> None:
    with pytest.raises(SystemExit):
        config("-d", str(tmp_path), flag, value)
    assert says in capsys.readouterr().err


def test_rbac() -> None:
    roles = {r["metadata"]["name"]: r for r in bootstrap.cluster_roles()}
    reader = roles["system:aggregated-metrics-reader"]
    assert reader["rules"] == [{"verbs": ["get", "list", "watch"], "apiGroups": ["metrics.k8s.io"],
                                "resources": ["pods", "nodes"]}]
    for x in ("view", "edit", "admin"):
        assert reader["metadata"]["labels"][f"rbac.authorization.k8s.io/aggregate-to-{x}"] == "true"
    assert {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes/metrics"]} in roles["system:metrics-server"]["rules"]
    bindings = {b["metadata"]["name"]: b for b in bootstrap.cluster_role_bindings()}
    for name, role in (("system:metrics-server", "system:metrics-server"),
                       ("metrics-server:system:auth-delegator", "system:auth-delegator")):
        assert bindings[name]["roleRef"]["name"] == role
        assert bindings[name]["subjects"] == [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io",
                                               "name": "system:metrics-server"}]
    rbs = {b["metadata"]["name"]: b for b in bootstrap.role_bindings()}
    assert rbs["metrics-server-auth-reader"]["roleRef"]["name"] == "extension-apiserver-authentication-reader"
