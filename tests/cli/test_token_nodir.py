"""``k8py token create`` with no ``--data-dir`` refuses when the default data directory is no
server's: a token written there would be accepted by nobody."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from k8py.apiserver.authn import TokenFile
from k8py.cli.main import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run as a plain user whose home is a fresh directory, so the default data directory is
    ``$HOME/.local/share/k8py`` (as root it would be /var/lib/k8py, which a test must not touch;
    the root's python may not be runnable by another uid, hence the in-process euid)."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    return h


def _default_dir(home: Path) -> Path:
    return home / ".local" / "share" / "k8py"


def test_no_default_data_dir_is_an_error(home: Path, capsys: pytest.CaptureFixture[str],
                                         caplog: pytest.LogCaptureFixture) -> None:
    assert main(["token", "create"]) == 1
    assert capsys.readouterr().out == ""  # no token printed: nobody would accept it
    assert f"no k8py server data directory at {_default_dir(home)}" in caplog.text
    assert "--data-dir" in caplog.text
    assert not _default_dir(home).exists()  # and nothing written


def test_default_dir_without_server_state_is_an_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _default_dir(home)
    d.mkdir(parents=True)
    (d / "token").write_text("")  # e.g. left by an older k8py that wrote tokens anywhere
    assert main(["token", "create", "--user", "alice"]) == 1
    assert capsys.readouterr().out == ""
    assert (d / "token").read_text() == ""


def test_default_dir_of_a_server_gets_the_token(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _default_dir(home)
    (d / "tls").mkdir(parents=True, mode=0o700)  # what a server's first start leaves
    assert main(["token", "create", "--user", "alice"]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenFile(str(d / "token")).lookup(token).name == "alice"


def test_the_command_exits_non_zero(tmp_path: Path) -> None:
    """The same through the real command line (root's default is /var/lib/k8py; a user's, $HOME's)."""
    if os.geteuid() == 0 and os.path.isdir("/var/lib/k8py/tls"):
        pytest.skip("a server's data directory exists at /var/lib/k8py on this machine")
    env = {**os.environ, "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create"], capture_output=True, text=True,
                       timeout=60, check=False, env=env)
    assert r.returncode == 1, r
    assert r.stdout == ""
    assert "no k8py server data directory at" in r.stderr


def test_explicit_data_dir_may_be_prepared_before_the_server(tmp_path: Path) -> None:
    data = tmp_path / "new"
    r = subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "--data-dir", str(data)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert TokenFile(str(data / "token")).lookup(r.stdout.strip()) is not None
