"""The `k8py agent` process: what it loads, and how its TLS bootstrap step fails.

The agent gets its credentials from a short-lived child process, so that the long-running
agent never loads ``cryptography`` (about 8 MB of RSS for good; the agent's target is 60 MB
with 100 pods)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# What a running `k8py agent` imports: its command, the node composition, the client, the node's
# addresses (see k8py.cli.agent._main).
AGENT_MODULES = ("k8py.cli.agent", "k8py.kubelet.run", "k8py.kubelet.node", "k8py.client.api",
                 "k8py.kubelet.server", "k8py.kubelet.podworker")


def test_the_running_agent_does_not_load_cryptography_or_every_kinds_validation() -> None:
    code = (f"import sys\nfor m in {AGENT_MODULES!r}: __import__(m)\n"
            "print(__import__('json').dumps(sorted(m for m in sys.modules if m.startswith(('cryptography', "
            "'k8py.api.validation', 'k8py.pki', 'k8py.apiserver')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = json.loads(out.stdout)
    # label syntax (validation.meta) is all the agent needs of validation
    assert loaded == ["k8py.api.validation", "k8py.api.validation.meta"], loaded


def test_a_bad_join_token_fails_the_bootstrap_step_with_its_reason(tmp_path: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("the agent runs on Linux")
    req = {"server": "https://127.0.0.1:1", "token": "not-a-token", "node_name": "n1", "cert_dir": str(tmp_path),
           "ips": ["127.0.0.1"], "hostnames": ["n1"]}
    p = subprocess.run([sys.executable, "-m", "k8py.cli.agent", "credentials"], input=json.dumps(req),
                       capture_output=True, text=True, check=False, timeout=60)
    assert p.returncode == 1
    assert "the join token is not of the form K10<ca-sha256>::<id>.<secret>" in p.stderr
    assert p.stdout == ""  # no paths printed: nothing to use
    assert not list(tmp_path.iterdir())
