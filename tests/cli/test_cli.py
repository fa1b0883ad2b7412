from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import yaml

from k8py import __version__
from k8py.apiserver.authn import TokenFile
from k8py.cli.main import build_parser, main
from k8py.cli.server import build_config, prepare_server
from k8py.config import default_data_dir
from k8py.kubeconfig import server_url


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def k8py(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "k8py.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _server_args(*argv: str):
    return build_parser().parse_args(["server", *argv])


# ---------------------------------------------------------------------------- help and errors


def test_help_lists_commands():
    r = k8py("--help")
    assert r.returncode == 0
    for cmd in ("server", "token", "version"):
        assert re.search(rf"^\s+{cmd}\s", r.stdout, re.MULTILINE), r.stdout


def test_server_help_lists_k3s_flags():
    r = k8py("server", "--help")
    assert r.returncode == 0
    for flag in (
        "--data-dir", "--https-listen-port", "--bind-address", "--write-kubeconfig", "-o",
        "--write-kubeconfig-mode", "--datastore-endpoint", "--disable-agent", "--node-name",
        "--cluster-cidr", "--service-cidr",
    ):
        assert flag in r.stdout


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "choose a command" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["server", "--https-listen-port", "0"], "--https-listen-port: invalid port 0"),
        (["server", "--https-listen-port", "http"], "invalid port 'http'"),
        (["server", "--bind-address", "localhost"], "invalid IP address 'localhost'"),
        (["server", "--write-kubeconfig-mode", "rw"], "give octal digits"),
        (["server", "--service-cidr", "10.43.0.1/16"], "has host bits set"),
        (["server", "--cluster-cidr", "10.42.0.0/16,10.44.0.0/16"], "one IPv4 and one IPv6 CIDR"),
        (["server", "--node-name", "Bad_Name"], "invalid node name"),
        (["server", "--no-such-flag"], "k8py server: error: unrecognized arguments: --no-such-flag"),
        (["token", "create", "--groups", "a,,b"], "empty group name"),
        (["server", "--system-reserved", "cpu"], "use NAME=QUANTITY"),
        (["server", "--system-reserved", "gpu=1"], "use NAME=QUANTITY"),
        (["server", "--system-reserved", "memory=lots"], "invalid quantity 'lots'"),
        (["server", "--system-reserved", "cpu=-1"], "cannot be negative"),
        (["server", "--node-ip", "10.0.0.1,10.0.0.2"], "at most one IPv4 and one IPv6"),
        (["server", "--kubelet-port", "0"], "invalid port 0"),
        (["agent", "--server", "https://x:6443"], "the following arguments are required: --token"),
    ],
)
def test_bad_flags_are_explained(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_overlapping_cidrs_are_refused(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["server", "-d", str(tmp_path), "--cluster-cidr", "10.43.0.0/24"])
    assert "overlap" in capsys.readouterr().err


def test_version():
    r = k8py("version")
    assert r.returncode == 0
    assert r.stdout.splitlines()[0] == f"k8py version v{__version__}"


# ---------------------------------------------------------------------------- server config


def test_server_defaults():
    cfg = build_config(_server_args())
    assert cfg.data_dir == default_data_dir()
    assert cfg.https_listen_port == 6443
    assert cfg.bind_address == "0.0.0.0"
    assert cfg.write_kubeconfig_mode == 0o600
    assert cfg.kubeconfig_path == os.path.join(default_data_dir(), "kubeconfig.yaml")
    assert cfg.datastore_endpoint == ""
    assert cfg.disable_agent is False
    assert cfg.node_name == socket.gethostname().lower()
    assert (cfg.cluster_cidr, cfg.service_cidr) == ("10.42.0.0/16", "10.43.0.0/16")
    assert cfg.kubelet_port == 10250 and cfg.node_ips == () and cfg.system_reserved == ()


def test_node_flags():
    cfg = build_config(_server_args("--node-ip", "10.0.0.5,fd00::5", "--system-reserved",
                                    "cpu=500m,memory=512Mi", "--kubelet-port", "10251"))
    assert cfg.node_ips == ("10.0.0.5", "fd00::5")
    assert dict(cfg.system_reserved) == {"cpu": "500m", "memory": "512Mi"}
    assert cfg.kubelet_port == 10251
    assert dict(build_config(_server_args("--kube-reserved", "memory=1Gi")).kube_reserved) == {"memory": "1Gi"}
    # dual-stack pods: IPv4 first, whichever order the flag gives
    assert build_config(_server_args("--cluster-cidr", "fd42::/56,10.42.0.0/16")).cluster_cidr == \
        "10.42.0.0/16,fd42::/56"


def test_server_flags(tmp_path):
    cfg = build_config(_server_args(
        "--data-dir", str(tmp_path / "d"), "--https-listen-port", "7443", "--bind-address", "127.0.0.1",
        "-o", str(tmp_path / "kc.yaml"), "--write-kubeconfig-mode", "644", "--disable-agent",
        "--node-name", "Node-1", "--cluster-cidr", "10.200.0.0/16", "--service-cidr", "10.201.0.0/16",
        "--datastore-endpoint", "sqlite://x",
    ))
    assert cfg.data_dir == str(tmp_path / "d")
    assert cfg.https_listen_port == 7443
    assert cfg.kubeconfig_path == str(tmp_path / "kc.yaml")
    assert cfg.write_kubeconfig_mode == 0o644
    assert cfg.disable_agent and cfg.node_name == "node-1"
    assert (cfg.cluster_cidr, cfg.service_cidr, cfg.datastore_endpoint) == (
        "10.200.0.0/16", "10.201.0.0/16", "sqlite://x")


@pytest.mark.parametrize(
    ("bind", "url"),
    [("0.0.0.0", "https://127.0.0.1:6443"), ("::", "https://127.0.0.1:6443"),
     ("127.0.0.1", "https://127.0.0.1:6443"), ("::1", "https://[::1]:6443"),
     ("192.0.2.4", "https://192.0.2.4:6443")],
)
def test_kubeconfig_server_url(bind, url):
    assert server_url(build_config(_server_args("--bind-address", bind))) == url


def test_prepare_server_writes_kubeconfig_and_token_file(tmp_path):
    cfg = build_config(_server_args(
        "-d", str(tmp_path / "data"), "--bind-address", "127.0.0.1", "--https-listen-port", "16443",
        "--write-kubeconfig-mode", "0644",
    ))
    pki = prepare_server(cfg)
    assert stat.S_IMODE(os.stat(cfg.kubeconfig_path).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(cfg.token_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pki.tls_dir).st_mode) == 0o700

    with open(cfg.kubeconfig_path) as f:
        doc = yaml.safe_load(f)
    assert doc["current-context"] == "default"
    assert doc["clusters"][0]["name"] == "default"
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:16443"
    assert doc["contexts"][0] == {"name": "default", "context": {"cluster": "default", "user": "default"}}
    assert {"client-certificate-data", "client-key-data"} <= set(doc["users"][0]["user"])

    kubernetes = pytest.importorskip("kubernetes")
    kc = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=cfg.kubeconfig_path, client_configuration=kc)
    assert kc.host == "https://127.0.0.1:16443"
    with open(kc.ssl_ca_cert, "rb") as a, open(pki.ca_cert, "rb") as b:
        assert a.read() == b.read()

    # A restart keeps the token file and the CA, and rewrites the kubeconfig.
    with open(cfg.token_file, "a") as f:
        f.write("t,u,1\n")
    prepare_server(cfg)
    assert TokenFile(cfg.token_file).lookup("t") is not None
    with open(cfg.kubeconfig_path) as f:
        assert yaml.safe_load(f) == doc


# ---------------------------------------------------------------------------- token create


def test_token_create(tmp_path):
    data = str(tmp_path / "data")
    r1 = k8py("token", "create", "--data-dir", data)
    assert r1.returncode == 0, r1.stderr
    t1 = r1.stdout.strip()
    assert r1.stdout == t1 + "\n"
    assert re.fullmatch(r"[0-9a-f]{64}", t1)
    assert "added a token for user 'admin'" in r1.stderr

    r2 = k8py("token", "create", "-d", data, "--user", "ci-bot", "--groups", "ci,deployers")
    assert r2.returncode == 0, r2.stderr
    t2 = r2.stdout.strip()
    assert t2 != t1

    token_file = os.path.join(data, "token")
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    tokens = TokenFile(token_file)
    assert tokens.lookup(t1).name == "admin"
    assert tokens.lookup(t1).groups == ("system:masters", "system:authenticated")
    assert tokens.lookup(t2).name == "ci-bot"
    assert tokens.lookup(t2).groups == ("ci", "deployers", "system:authenticated")


def test_token_create_without_groups(tmp_path, capsys):
    assert main(["token", "create", "-d", str(tmp_path), "--user", "plain", "--groups", ""]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenFile(str(tmp_path / "token")).lookup(token).groups == ("system:authenticated",)


# ---------------------------------------------------------------------------- the server process


def test_server_says_what_the_agent_is_missing(tmp_path):
    """On a machine without runc and conmon (here: a PATH without them) the server says exactly
    what is missing and how to get it, and runs the control plane only: never half a node."""
    data = tmp_path / "data"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8py.cli", "server", "-d", str(data), "--bind-address", "127.0.0.1",
         "--https-listen-port", str(free_port()), "--kubelet-port", str(free_port())],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "API server ready" in line:
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    text = "".join(lines)
    assert "this machine cannot run pods; running the control plane only" in text, text
    if os.geteuid() == 0:
        assert "runc: 'runc' not found; install Debian's runc (apt-get install runc" in text, text
        assert "conmon: 'conmon' not found" in text, text
    else:
        assert "root: the node agent makes namespaces" in text, text
    assert "registered node" not in text
    assert f"wrote kubeconfig {data / 'kubeconfig.yaml'}" in text
    # Timestamped lines: ISO date, time with milliseconds, level, logger.
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (INFO|WARNING) k8py\.", lines[0])


def test_kube_controller_manager_arg():
    cfg = build_config(_server_args("--kube-controller-manager-arg", "horizontal-pod-autoscaler-sync-period=2s",
                                    "--kube-controller-manager-arg=--horizontal-pod-autoscaler-tolerance=0.2"))
    opts = dict(cfg.controller_manager_options)
    assert (opts["hpa_sync_period"], opts["hpa_tolerance"], opts["hpa_downscale_stabilization"]) == (2.0, 0.2, 300.0)
    assert build_config(_server_args()).controller_manager_options == tuple(sorted({
        "hpa_sync_period": 15.0, "hpa_tolerance": 0.1, "hpa_downscale_stabilization": 300.0,
        "hpa_cpu_initialization_period": 300.0, "hpa_initial_readiness_delay": 30.0}.items()))
    for bad, msg in [("node-monitor-period=5s", "does not take --node-monitor-period=5s"),
                     ("horizontal-pod-autoscaler-sync-period", "give FLAG=VALUE"),
                     ("horizontal-pod-autoscaler-sync-period=soon", "horizontal-pod-autoscaler-sync-period"),
                     ("horizontal-pod-autoscaler-sync-period=0s", "must be greater than 0"),
                     ("horizontal-pod-autoscaler-sync=2s", "does not take")]:
        with pytest.raises(ValueError, match=msg):
            build_config(_server_args("--kube-controller-manager-arg", bad))
    r = k8py("server", "--kube-controller-manager-arg", "node-monitor-period=5s", "--data-dir", "/nonexistent/x")
    assert r.returncode == 2 and "--kube-controller-manager-arg: the in-process controller manager does not take" \
        in r.stderr


def test_a_command_imports_only_its_own_module():
    # `k8py version` or `k8py killall --help` do not pay for the scheduler, the API client or
    # cryptography (about a second of imports); `k8py --help` still lists every command
    code = ("import sys; from k8py.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('aiohttp', 'k8py.scheduler', 'cryptography', 'k8py.cli.lint') if m in sys.modules))")
    for argv in (["version"], ["killall", "--help"], ["token", "--help"]):
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
        assert r.stdout.splitlines()[-1] == "[]", (argv, r.stdout)
    listed = k8py("--help").stdout
    assert all(f"    {name} " in listed or f"    {name}\n" in listed for name in ("server", "scheduler", "lint", "version"))


def test_a_server_without_its_agent_does_not_import_the_node_agent():
    # its config (the node-pressure flags checked as kubelet does) is resolved before the server's
    # clock starts; the node agent's module is imported only by a server that runs it
    code = ("import sys; from k8py.cli.main import build_parser; from k8py.cli.server import build_config\n"
            "p = build_parser(); args = p.parse_args(['server', *sys.argv[1:]])\n"
            "c = build_config(args, args.parser)\n"
            "print('k8py.kubelet.agent' in sys.modules, c.node_pressure)")
    for argv, flags in ((["--disable-agent"], "()"),
                        (["--disable-agent", "--container-gc-period", "2s"], "(('container_gc_period', '2s'),)")):
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
        assert r.stdout.splitlines()[-1] == f"False {flags}", (argv, r.stdout)
    r = k8py("server", "--disable-agent", "--container-gc-period", "0s", "--data-dir", "/nonexistent/x")
    assert r.returncode == 2 and "invalid --container-gc-period 0s: must be greater than 0" in r.stderr
