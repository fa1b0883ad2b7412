"""The server join's pure parts: the server token, the sealed bootstrap data, writing them."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from k8py import serverjoin as sj
from k8py.config import ServerConfig
from k8py.pki import ensure_pki


def test_server_token_is_made_once_for_the_ca_and_follows_a_new_ca(config: ServerConfig) -> None:
    ensure_pki(config)
    tok = sj.ensure_server_token(config.data_dir)
    ca = Path(config.tls_dir, "ca.crt").read_bytes()
    assert tok.ca_hash == hashlib.sha256(ca).hexdigest() and len(tok.secret) == 32
    path = Path(config.data_dir, "server-token")
    assert path.read_text().strip() == str(tok) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sj.ensure_server_token(config.data_dir) == tok
    assert sj.parse_server_token(str(tok)) == tok
    Path(config.tls_dir, "ca.key").unlink()  # a new CA: the token pins it, with the same secret
    ensure_pki(config)
    again = sj.ensure_server_token(config.data_dir)
    assert again.secret == tok.secret and again.ca_hash != tok.ca_hash


@pytest.mark.parametrize("bad", ["", "K10abc::server:secretsecretsecret", "K10" + "a" * 64 + "::node:x" * 3,
                                 "K10" + "a" * 64 + "::server:short"])
def test_malformed_server_tokens_are_refused(bad: str) -> None:
    with pytest.raises(sj.JoinError, match="K10<ca-sha256>::server:<secret>"):
        sj.parse_server_token(bad)


def test_sealed_data_open_only_with_the_secret_and_untampered() -> None:
    files = {"tls/ca.crt": b"CA", "tls/ca.key": b"KEY"}
    blob = sj.encrypt("s3cret-s3cret-s3cret", files)
    assert b"KEY" not in blob and b"s3cret" not in blob
    assert sj.decrypt("s3cret-s3cret-s3cret", blob) == files
    with pytest.raises(sj.JoinError, match="do not open with this token"):
        sj.decrypt("another-secret-000", blob)
    doc = json.loads(blob)
    doc["data"] = doc["data"][:-8] + "AAAAAAA="
    with pytest.raises(sj.JoinError, match="do not open with this token"):
        sj.decrypt("s3cret-s3cret-s3cret", json.dumps(doc).encode())
    with pytest.raises(sj.JoinError, match="not readable"):
        sj.decrypt("s3cret-s3cret-s3cret", b"<html>")


def test_bootstrap_payload_carries_the_listed_files(config: ServerConfig, tmp_path: Path) -> None:
    ensure_pki(config)
    Path(config.data_dir, "token").write_text("t,u,1\n")
    tok = sj.ensure_server_token(config.data_dir)
    files = sj.decrypt(tok.secret, sj.ServerBootstrap(config.data_dir).payload())
    assert set(files) == {"tls/ca.crt", "tls/ca.key", "token", "server-token"}  # the optional ones when there
    dest = tmp_path / "joined"
    written = sj.write_bootstrap_files(str(dest), files)
    assert len(written) == 4
    assert stat.S_IMODE((dest / "tls").stat().st_mode) == 0o700
    assert (dest / "tls" / "ca.key").read_bytes() == Path(config.tls_dir, "ca.key").read_bytes()
    with pytest.raises(sj.JoinError, match="does not know: etc/passwd"):
        sj.write_bootstrap_files(str(dest), {**files, "etc/passwd": b"x"})
    with pytest.raises(sj.JoinError, match="already belongs to another cluster"):
        sj.write_bootstrap_files(str(dest), {**files, "tls/ca.crt": b"another CA"})


def test_the_key_is_derived_once_per_server_and_every_answer_has_its_own_nonce(config: ServerConfig) -> None:
    ensure_pki(config)
    tok = sj.ensure_server_token(config.data_dir)
    boot = sj.ServerBootstrap(config.data_dir)
    one, two = json.loads(boot.payload()), json.loads(boot.payload())
    assert one["salt"] == two["salt"] and one["nonce"] != two["nonce"]
    assert sj.decrypt(tok.secret, json.dumps(two).encode())["tls/ca.crt"] == Path(config.tls_dir, "ca.crt").read_bytes()
