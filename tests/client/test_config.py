"""Kubeconfig and in-cluster config loading, and the TLS context built from them."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8py.client import ClientConfig, ConfigError, load_config, load_incluster_config, load_kubeconfig
from k8py.client import config as cfgmod
from k8py.config import ServerConfig
from k8py.kubeconfig import admin_kubeconfig
from k8py.pki import PKI, ensure_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[ServerConfig, PKI]:
    sc = ServerConfig(data_dir=str(tmp_path_factory.mktemp("pki")), https_listen_port=7443)
    return sc, ensure_pki(sc)


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def kc(clusters: dict[str, dict[str, Any]], users: dict[str, dict[str, Any]],
       contexts: dict[str, dict[str, Any]], current: str = "") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "current-context": current,
            "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
            "users": [{"name": n, "user": u} for n, u in users.items()],
            "contexts": [{"name": n, "context": c} for n, c in contexts.items()]}


def test_admin_kubeconfig_with_embedded_certs(tmp_path: Path, pki: tuple[ServerConfig, PKI]) -> None:
    sc, p = pki
    path = write(tmp_path / "kubeconfig.yaml", admin_kubeconfig(sc, p))
    cfg = load_kubeconfig(path)
    assert cfg.server == "https://127.0.0.1:7443" and cfg.context == "default" and cfg.namespace == "default"
    assert cfg.ca_data == Path(p.ca_cert).read_bytes()
    assert cfg.cert_data == Path(p.admin_cert).read_bytes() and cfg.key_data == Path(p.admin_key).read_bytes()
    ctx = cfg.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1  # the cluster CA only, not the system roots
    assert list(tmp_path.iterdir()) == [path]  # no key material left behind


def test_file_references_relative_to_the_kubeconfig(tmp_path: Path, pki: tuple[ServerConfig, PKI]) -> None:
    _, p = pki
    d = tmp_path / "conf"
    d.mkdir()
    for src, name in ((p.ca_cert, "ca.crt"), (p.admin_cert, "me.crt"), (p.admin_key, "me.key")):
        (d / name).write_bytes(Path(src).read_bytes())
    (d / "token").write_text("tok-1\n")
    doc = kc({"c": {"server": "https://10.0.0.1:6443", "certificate-authority": "ca.crt",
                    "tls-server-name": "kubernetes"}},
             {"u": {"client-certificate": "me.crt", "client-key": "me.key"}, "t": {"tokenFile": "token"}},
             {"certs": {"cluster": "c", "user": "u", "namespace": "team"}, "tok": {"cluster": "c", "user": "t"}},
             current="certs")
    path = write(d / "config", doc)
    cfg = load_kubeconfig(path)
    assert cfg.ca_file == str(d / "ca.crt") and cfg.cert_file == str(d / "me.crt")
    assert cfg.namespace == "team" and cfg.tls_server_name == "kubernetes"
    assert cfg.ssl_context() is not None
    t = load_kubeconfig(path, context="tok")
    assert t.token_file == str(d / "token") and t.bearer_token() == "tok-1" and t.namespace == "default"


def test_token_file_is_reread_after_a_minute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = tmp_path / "token"
    tok.write_text("one")
    now = [100.0]
    monkeypatch.setattr(cfgmod.time, "monotonic", lambda: now[0])
    cfg = ClientConfig(server="https://x", token_file=str(tok))
    assert cfg.bearer_token() == "one"
    tok.write_text("two")
    now[0] += 30
    assert cfg.bearer_token() == "one"
    now[0] += 31
    assert cfg.bearer_token() == "two"
    assert ClientConfig(server="https://x", token="inline", token_file=str(tok)).bearer_token() == "inline"


def test_kubeconfig_merge_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = write(tmp_path / "a", kc({"c1": {"server": "https://one:6443", "insecure-skip-tls-verify": True}},
                                 {"u1": {"token": "t-a"}}, {"x": {"cluster": "c1", "user": "u1"}}, current="x"))
    b = write(tmp_path / "b", kc({"c1": {"server": "https://ignored"}, "c2": {"server": "plain:8080"}},
                                 {"u1": {"token": "ignored"}}, {"y": {"cluster": "c2", "user": "u1"}},
                                 current="y"))
    monkeypatch.setenv("KUBECONFIG", f"{a}:{tmp_path / 'missing'}:{b}")
    cfg = load_kubeconfig()
    assert cfg.context == "x" and cfg.server == "https://one:6443" and cfg.token == "t-a"
    ctx = cfg.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_NONE
    y = load_kubeconfig(context="y")
    assert y.server == "https://plain:8080" and y.token == "t-a"  # first definition of u1 wins
    assert load_config(context="y").context == "y"  # $KUBECONFIG is used by load_config
    with pytest.raises(ConfigError, match='context "nope" does not exist'):
        load_kubeconfig(a, context="nope")
    bad = write(tmp_path / "bad", kc({}, {}, {"z": {"cluster": "gone", "user": ""}}, current="z"))
    with pytest.raises(ConfigError, match='refers to cluster "gone"'):
        load_kubeconfig(bad)
    ex = write(tmp_path / "exec", kc({"c": {"server": "https://h"}}, {"e": {"exec": {"command": "aws"}}},
                                     {"z": {"cluster": "c", "user": "e"}}, current="z"))
    with pytest.raises(ConfigError, match="not supported"):
        load_kubeconfig(ex)
    (tmp_path / "junk").write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_kubeconfig(tmp_path / "junk")
    b64 = write(tmp_path / "b64", kc({"c": {"server": "https://h", "certificate-authority-data": "!!!"}}, {},
                                     {"z": {"cluster": "c"}}, current="z"))
    with pytest.raises(ConfigError, match="certificate-authority-data: invalid base64"):
        load_kubeconfig(b64)


def test_plain_http_has_no_tls_and_cert_needs_key() -> None:
    assert ClientConfig(server="http://127.0.0.1:8080").ssl_context() is None
    with pytest.raises(ConfigError, match="together"):
        ClientConfig(server="https://h", cert_data=b"x").ssl_context()


def test_incluster(tmp_path: Path, pki: tuple[ServerConfig, PKI], monkeypatch: pytest.MonkeyPatch) -> None:
    _, p = pki
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    (sa / "ca.crt").write_bytes(Path(p.ca_cert).read_bytes())
    (sa / "namespace").write_text("apps")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = load_incluster_config(sa, env)
    assert cfg.server == "https://10.96.0.1:443" and cfg.namespace == "apps"
    assert cfg.bearer_token() == "sa-token" and cfg.ca_file == str(sa / "ca.crt")
    assert cfg.ssl_context() is not None
    v6 = load_incluster_config(sa, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert v6.server == "https://[fd00::1]:443"
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        load_incluster_config(sa, {})
    with pytest.raises(ConfigError, match="does not exist"):
        load_incluster_config(tmp_path / "nothing", env)
    # load_config prefers $KUBECONFIG, then in-cluster, then ~/.kube/config
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(cfgmod, "SERVICE_ACCOUNT_DIR", str(sa))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert load_config().server == "https://10.96.0.1:443"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConfigError, match="no configuration found"):
        load_config()
    home_kc = tmp_path / ".kube"
    home_kc.mkdir()
    write(home_kc / "config", kc({"c": {"server": "https://home:6443"}}, {}, {"h": {"cluster": "c"}}, "h"))
    assert load_config().server == "https://home:6443"
