"""`k8py server`'s service-account token flags (kube-apiserver's): parsed into the config, and a
key file that cannot be used refuses to start, naming the flag and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from k8py.cli.main import build_parser
from k8py.cli.server import build_config


def config(*argv: str):  # type: ignore[no-untyped-def]
    parser = build_parser()
    args = parser.parse_args(["server", *argv])
    return build_config(args, args.parser)


def test_defaults(tmp_path: Path) -> None:
    cfg = config("-d", str(tmp_path))
    assert cfg.service_account_issuers == () and cfg.api_audiences == ()
    assert cfg.service_account_key_path == str(tmp_path / "tls" / "service-account.key")
    assert cfg.service_account_extend_token_expiration is True and cfg.service_account_max_token_expiration == 0


def test_flags(tmp_path: Path) -> None:
    key = tmp_path / "new.key"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    old = tmp_path / "old.pub"
    old.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    cfg = config("-d", str(tmp_path), "--service-account-issuer", "https://new.example",
                 "--service-account-issuer", "https://old.example", "--service-account-signing-key-file", str(key),
                 "--service-account-key-file", str(old), "--service-account-max-token-expiration", "48h",
                 "--service-account-extend-token-expiration", "false", "--api-audiences", "a, b")
    assert cfg.service_account_issuers == ("https://new.example", "https://old.example")
    assert cfg.service_account_key_path == str(key) and cfg.service_account_key_files == (str(old),)
    assert cfg.service_account_max_token_expiration == 48 * 3600
    assert cfg.service_account_extend_token_expiration is False and cfg.api_audiences == ("a", "b")


@pytest.mark.parametrize(("flags", "message"), [
    (("--service-account-max-token-expiration", "30m"), "must be between 1 hour and 2^32 seconds"),
    (("--service-account-key-file", "{tmp}/missing.pem"), "--service-account-key-file {tmp}/missing.pem: "),
    (("--service-account-key-file", "{tmp}/junk.pem"), "no public keys found in the file"),
    (("--service-account-signing-key-file", "{tmp}/missing.key"), "no such file"),
    (("--service-account-issuer", "ftp://x"), "must be a URL"),
])
def test_bad_flags_refuse_to_start(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...],
                                   message: str) -> None:
    (tmp_path / "junk.pem").write_text("not a key\n")
    with pytest.raises(SystemExit) as e:
        config("-d", str(tmp_path), *(f.format(tmp=tmp_path) for f in flags))
    assert e.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
