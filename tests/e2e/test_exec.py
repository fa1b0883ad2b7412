"""kubectl exec, attach and cp, and the Python client's stream(), on real containers: `k8py
server` with its node agent (runc, conmon), the busybox test image from the airgap folder.

The API server relays the WebSocket (v5.channel.k8s.io for kubectl, v4.channel.k8s.io for the
Python client) to the agent's /exec and /attach. An interactive `kubectl exec -it ... sh` is
driven through a pseudo-terminal made here. Everything is removed at the end with `k8py
killall`, and the test checks that nothing is left, no exec'd process either."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import KUBECTL, Server, wait
from tests.helpers.realnode import IMAGE, SHARED_NODE, SharedRealNode

NODE = SHARED_NODE
NS = "default"

pytestmark = pytest.mark.timeout(600)


def _procs(marker: str) -> list[int]:
    """Processes on this machine whose command line holds ``marker`` (containers' too)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _pod(name: str, command: str, *, restart: str = "Never", containers: dict[str, str] | None = None,
         stdin: bool = False, tty: bool = False) -> dict[str, Any]:
    cs = containers or {"main": command}
    spec_cs = [{"name": n, "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", c],
                "stdin": stdin, "tty": tty} for n, c in cs.items()]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1, "containers": spec_cs}}


IDLE = "trap 'exit 0' TERM; while true; do sleep 1; done"


@pytest.fixture(scope="module")
def cluster(shared_real_node: SharedRealNode, request: pytest.FixtureRequest) -> Iterator[Server]:
    with shared_real_node.module(request) as s:
        _apply(s, _pod("shell", IDLE))
        _apply(s, _pod("done", "echo finished", restart="Never"))
        _apply(s, _pod("duo", "", containers={"app": IDLE, "quick": "exit 0"}))
        _apply(s, _pod("ticker", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done"))
        _apply(s, _pod("console", "exec sh", stdin=True, tty=True))
        _apply(s, _pod("talker", "while read line; do echo got $line; done; echo stdin closed; sleep 3600",
                       stdin=True))
        for name in ("shell", "ticker", "talker", "console"):
            wait(lambda n=name: _phase(s, n) == "Running", 90, f"{name} Running")  # type: ignore[misc]
        wait(lambda: _phase(s, "done") == "Succeeded", 90, "done Succeeded")
        wait(lambda: _terminated(s, "duo", "quick"), 90, "duo's quick container exited")
        yield s
    assert not _procs("k8py-exec-marker"), "exec'd processes left"


def _apply(s: Server, manifest: dict[str, Any]) -> None:
    s.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(manifest))


def _pod_json(s: Server, name: str) -> Any:
    p = s.kubectl("get", "pod", name, "-n", NS, "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else {}


def _phase(s: Server, name: str) -> str:
    return str(_pod_json(s, name).get("status", {}).get("phase", ""))


def _terminated(s: Server, pod: str, container: str) -> bool:
    for cs in _pod_json(s, pod).get("status", {}).get("containerStatuses") or ():
        if cs["name"] == container and "terminated" in (cs.get("state") or {}):
            return True
    return False


def _kenv(s: Server) -> dict[str, str]:
    e = dict(os.environ)
    e.update({"HOME": str(s.home), "KUBECONFIG": s.kubeconfig})
    e.pop("KUBERNETES_SERVICE_HOST", None)
    return e


# --------------------------------------------------------------------------- kubectl exec


def test_exec_output_and_exit_codes(cluster: Server) -> None:
    s = cluster
    assert s.kubectl("exec", "shell", "--", "echo", "hi").stdout == "hi\n"
    p = s.kubectl("exec", "shell", "--", "sh", "-c", "echo out; echo err >&2")
    assert p.stdout == "out\n" and "err\n" in p.stderr
    p = s.kubectl("exec", "shell", "--", "false", check=False)
    assert p.returncode == 1 and "command terminated with exit code 1" in p.stderr
    p = s.kubectl("exec", "shell", "--", "sh", "-c", "exit 3", check=False)
    assert p.returncode == 3 and "command terminated with exit code 3" in p.stderr
    # a command the image does not have: runc's words, as an internal error
    p = s.kubectl("exec", "shell", "--", "no-such-tool", check=False)
    assert p.returncode != 0 and "executable file not found" in p.stderr, p.stderr
    # the exec runs in the container: its hostname, its filesystem
    assert s.kubectl("exec", "shell", "--", "hostname").stdout == "shell\n"


def test_exec_with_stdin_piped(cluster: Server) -> None:
    s = cluster
    text = "".join(f"line {i}\n" for i in range(2000))  # more than one message
    p = s.kubectl("exec", "-i", "shell", "--", "sh", "-c", "cat > /tmp/in && wc -l < /tmp/in && md5sum /tmp/in",
                  input=text)
    import hashlib

    assert p.stdout.split()[:2] == ["2000", hashlib.md5(text.encode()).hexdigest()], p.stdout


class Terminal:
    """kubectl on a pseudo-terminal of ours, as a user's shell would run it."""

    def __init__(self, s: Server, *args: str, rows: int = 33, cols: int = 111) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen([KUBECTL, *args], stdin=slave, stdout=slave, stderr=slave, env=_kenv(s),
                                     start_new_session=True)
        os.close(slave)
        self.got = b""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def resize(self, rows: int, cols: int) -> None:
        """What a terminal window does: a new size, and SIGWINCH to the program in it."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc.send_signal(signal.SIGWINCH)

    def read_until(self, marker: bytes, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.got:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{marker!r} not seen within {timeout}s; got {self.got!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"kubectl ended before {marker!r}; got {self.got!r}")
                self.got += chunk
        return self.got

    def size_seen(self, rows: int, cols: int, attempts: int = 10, resend: bool = False) -> None:
        """The container's terminal reports rows x cols (asked again while a resize is on its way;
        with ``resend`` the window says its size again each time: kubectl drops a resize that
        comes while it is still sending the one before)."""
        want = f"size={rows} {cols}".encode()
        for _ in range(attempts):
            if resend:
                self.resize(rows, cols)
            self.type("echo size=$(stty size)\r")
            try:
                self.read_until(want, timeout=2)
                return
            except AssertionError:
                continue
        raise AssertionError(f"{want!r} never seen; got {self.got[-500:]!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_exec_interactive_tty_and_a_resize_storm(cluster: Server) -> None:
    t = Terminal(cluster, "exec", "-it", "shell", "--", "sh")
    try:
        t.type("echo $((6*7))\r")
        t.read_until(b"42")
        t.size_seen(33, 111)  # the terminal's size came through the resize channel
        t.type("tty\r")
        t.read_until(b"/dev/pts/")
        for i in range(60):
            t.resize(20 + i, 70 + i)
        t.size_seen(79, 129, resend=True)
        t.type("exit 5\r")
        assert t.proc.wait(30) == 5
    finally:
        t.close()
    # the agent serves on
    assert cluster.kubectl("exec", "shell", "--", "echo", "after").stdout == "after\n"


def test_kubectl_attach_to_a_terminal(cluster: Server) -> None:
    t = Terminal(cluster, "attach", "-it", "console", rows=40, cols=120)
    try:
        t.type("\r")  # kubectl: "If you don't see a command prompt, try pressing enter."
        t.type("echo $((7*6))\r")
        t.read_until(b"42")
        t.size_seen(40, 120)  # through conmon's ctl fifo
        t.resize(25, 90)
        t.size_seen(25, 90)
    finally:
        t.close()


def test_client_disconnecting_mid_stream_kills_the_command(cluster: Server) -> None:
    s = cluster
    proc = subprocess.Popen([KUBECTL, "exec", "shell", "--", "sh", "-c", "echo started; sleep 1000; echo k8py-exec-marker"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_kenv(s))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"started\n"
        wait(lambda: bool(_procs("sleep 1000; echo k8py-exec-marker")), 10, "the exec running")
    finally:
        _end(proc)
    wait(lambda: not _procs("sleep 1000; echo k8py-exec-marker") and not _sleepers(), 20,
         "the exec's processes killed")
    # the agent goes on serving
    assert s.kubectl("exec", "shell", "--", "echo", "still").stdout == "still\n"


def _end(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            f.close()


def _sleepers() -> list[int]:
    out = []
    for pid in _procs("sleep"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:2] == [b"sleep", b"1000"]:
                    out.append(pid)
        except OSError:
            continue
    return out


def _runc_execs(parent: int) -> list[int]:
    """``runc exec`` processes whose parent is ``parent``."""
    out = []
    for pid in _procs("exec"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and os.path.basename(argv[0]) == b"runc" and b"exec" in argv:
            out.append(pid)
    return out


def test_execs_leave_no_descriptors_or_processes(cluster: Server) -> None:
    s = cluster
    assert s.proc is not None
    server = s.proc.pid  # the API server and the node agent in one process

    def fds() -> int:
        return len(os.listdir(f"/proc/{server}/fd"))

    s.kubectl("exec", "shell", "--", "true")
    base = fds()
    for i in range(10):
        assert s.kubectl("exec", "shell", "--", "echo", str(i)).stdout == f"{i}\n"
    assert s.kubectl("exec", "-i", "shell", "--", "cat", input="piped\n").stdout == "piped\n"
    # a background child that let go of the output: the exec ends with the command, the child
    # runs on in the container (one that keeps the output open holds the exec, as with CRI-O)
    t0 = time.monotonic()
    assert s.kubectl("exec", "shell", "--", "sh", "-c", "sleep 600 >/dev/null 2>&1 & echo bg").stdout == "bg\n"
    assert time.monotonic() - t0 < 15
    t = Terminal(s, "exec", "-it", "shell", "--", "sh")
    try:
        t.type("echo $((5*5))\r")
        t.read_until(b"25")
        t.type("exit\r")
        assert t.proc.wait(30) == 0
    finally:
        t.close()
    wait(lambda: fds() <= base + 2 and not _runc_execs(server), 20,
         f"the agent's descriptors back to {base} (now {fds()}) and no runc exec left")
    s.kubectl("exec", "shell", "--", "sh", "-c", "kill $(pidof sleep) 2>/dev/null; true")


def test_exec_into_finished_containers(cluster: Server) -> None:
    s = cluster
    p = s.kubectl("exec", "done", "--", "echo", "x", check=False)
    assert p.returncode != 0
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in p.stderr
    # a pod that runs, one of whose containers has exited: the kubelet's words
    p = s.kubectl("exec", "duo", "-c", "quick", "--", "echo", "x", check=False)
    assert p.returncode != 0 and 'container not found ("quick")' in p.stderr, p.stderr
    assert s.kubectl("exec", "duo", "-c", "app", "--", "echo", "x").stdout == "x\n"


def test_api_errors_in_kubes_form(cluster: Server) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    # a pod no node can take stays unscheduled
    _apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
                     "spec": {"nodeSelector": {"k8py.test/none": "x"},
                              "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent"}]}})
    with cluster.client() as c:
        _api_errors(client.CoreV1Api(c), ApiException)


def _api_errors(api: Any, ApiException: Any) -> None:
    for kw, status, words in (
        ({"name": "shell", "container": "nope"}, 400, "container nope is not valid for pod shell"),
        ({"name": "duo"}, 400, "a container name must be specified for pod duo, choose one of: [app quick]"),
        ({"name": "absent"}, 404, 'pods "absent" not found'),
        ({"name": "nowhere"}, 400, "pod nowhere does not have a host assigned"),
    ):
        with pytest.raises(ApiException) as e:
            api.connect_post_namespaced_pod_exec(namespace=NS, command=["true"], stdout=True, **kw)
        assert e.value.status == status and words in json.loads(e.value.body)["message"], (kw, e.value.body)
    with pytest.raises(ApiException) as e:
        api.connect_post_namespaced_pod_exec("shell", NS, command=["true"], stdout=False, stderr=False)
    assert e.value.status == 400 and "you must specify at least 1 of stdin, stdout, stderr" in str(e.value.body)


# --------------------------------------------------------------------------- the Python client


def test_python_client_stream(cluster: Server) -> None:
    from kubernetes import client
    from kubernetes.stream import stream

    with cluster.client() as c:
        _stream(client.CoreV1Api(c), stream)


def test_python_client_status_channel_and_closing_stdin(cluster: Server) -> None:
    """What the client's own suite checks: an interactive shell driven line by line, the exit
    status read off the error channel (kube's Status: Success, or Failure with NonZeroExitCode
    and the code as an ExitCode cause), and, on v5.channel.k8s.io, closing stdin alone."""
    from kubernetes import client
    from kubernetes.stream import stream
    from kubernetes.stream.ws_client import ERROR_CHANNEL

    api = client.CoreV1Api(cluster.client())

    def shell() -> Any:
        return stream(api.connect_post_namespaced_pod_exec, "shell", NS, command=["/bin/sh"], stderr=True,
                      stdin=True, stdout=True, tty=False, _preload_content=False)

    def status(resp: Any) -> Any:
        deadline = time.monotonic() + 20
        while not (line := resp.read_channel(ERROR_CHANNEL)):
            assert time.monotonic() < deadline, "no status on the error channel"
            resp.update(timeout=1)
        return json.loads(line)

    for code in (0, 3):
        resp = shell()
        resp.write_stdin("echo to stdout\n")
        assert resp.readline_stdout(timeout=10) == "to stdout"
        assert not resp.peek_stderr()
        resp.write_stdin("echo to stderr >&2\n")
        assert resp.readline_stderr(timeout=10) == "to stderr"
        assert not resp.peek_stdout()
        resp.write_stdin(f"exit {code}\n")
        st = status(resp)
        if code == 0:
            assert st == {"metadata": {}, "status": "Success"}
        else:
            assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode", st
            assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
            assert st["message"] == "command terminated with non-zero exit code: error executing command " \
                "[/bin/sh], exit code 3"
        resp.update(timeout=5)
        assert not resp.is_open()
        _close(resp)

    resp = stream(api.connect_post_namespaced_pod_exec, "shell", NS, command=["/bin/sh", "-c", "cat; echo after"],
                  stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    try:
        assert resp.subprotocol == "v5.channel.k8s.io"
        resp.write_stdin("echoed\n")
        assert resp.readline_stdout(timeout=10) == "echoed"
        resp.close_channel(0)  # cat sees the end of its input; the command goes on
        resp.run_forever(timeout=20)
        assert not resp.is_open()
        assert resp.returncode == 0
        assert resp.read_stdout() == "after\n"
    finally:
        _close(resp)


def _close(resp: Any) -> None:
    """WSClient.close() skips the socket when the server closed first (as the kubelet does after
    the exit status, in Kubernetes too): close it as well, or it is left to the collector."""
    resp.close()
    resp.sock.shutdown()


def _stream(api: Any, stream: Any) -> None:
    # (with _preload_content=True the client would leave its socket to the garbage collector)
    resp = stream(api.connect_get_namespaced_pod_exec, "shell", NS, command=["sh", "-c", "echo py; echo e >&2"],
                  stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
    resp.run_forever(timeout=20)
    assert (resp.read_stdout(), resp.read_stderr(), resp.returncode) == ("py\n", "e\n", 0)
    _close(resp)
    resp = stream(api.connect_get_namespaced_pod_exec, "shell", NS, command=["sh", "-c", "read x; echo got $x; exit 7"],
                  stdout=True, stderr=True, stdin=True, tty=False, _preload_content=False)
    resp.write_stdin("hello\n")
    resp.run_forever(timeout=20)
    assert resp.read_stdout() == "got hello\n"
    assert resp.returncode == 7
    _close(resp)


# --------------------------------------------------------------------------- kubectl cp


def test_kubectl_cp_both_ways(cluster: Server, tmp_path: Path) -> None:
    s = cluster
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 400)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # kubectl cp wants relative local paths to keep its "no absolute paths" warning away
    try:
        s.kubectl("cp", "src", f"{NS}/shell:/tmp/copied")
        assert s.kubectl("exec", "shell", "--", "cat", "/tmp/copied/a.txt").stdout == "alpha\n"
        size = s.kubectl("exec", "shell", "--", "sh", "-c", "wc -c < /tmp/copied/sub/b.bin").stdout.strip()
        assert size == str(256 * 400)
        s.kubectl("cp", f"{NS}/shell:/tmp/copied", "back")
    finally:
        os.chdir(cwd)
    assert (tmp_path / "back" / "a.txt").read_text() == "alpha\n"
    assert (tmp_path / "back" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 400


# --------------------------------------------------------------------------- kubectl attach


def test_kubectl_attach_streams_output(cluster: Server) -> None:
    s = cluster
    proc = subprocess.Popen([KUBECTL, "attach", "ticker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_kenv(s))
    try:
        assert proc.stdout is not None
        lines: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(lines) < 3 and time.monotonic() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], 1)
            if r:
                lines.append(proc.stdout.readline())
        assert len(lines) == 3 and all(line.startswith(b"tick ") for line in lines), lines
        numbers = [int(line.split()[1]) for line in lines]
        assert numbers == sorted(numbers) and len(set(numbers)) == 3
    finally:
        _end(proc)


def test_kubectl_attach_with_stdin(cluster: Server) -> None:
    s = cluster
    proc = subprocess.Popen([KUBECTL, "attach", "-i", "talker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_kenv(s))
    try:
        assert proc.stdin is not None and proc.stdout is not None
        got = b""
        deadline = time.monotonic() + 20
        # kubectl attaches a moment after it starts: say it again until the container answers
        while b"got hello" not in got and time.monotonic() < deadline:
            proc.stdin.write(b"hello\n")
            proc.stdin.flush()
            r, _, _ = select.select([proc.stdout], [], [], 1)
            if r:
                got += os.read(proc.stdout.fileno(), 4096)
        assert b"got hello" in got, (got, proc.stderr.read1() if proc.stderr else b"")  # type: ignore[union-attr]
    finally:
        _end(proc)


# --------------------------------------------------------------------------- kubectl debug


def test_kubectl_debug_adds_an_ephemeral_container(cluster: Server) -> None:
    s = cluster
    t = Terminal(s, "debug", "-it", "shell", f"--image={IMAGE}", "--target=main", "--container=dbg", "--", "sh")
    try:
        t.type("\r")
        t.type("echo $((3*14))\r")
        t.read_until(b"42")
        # --target: the debug container is in main's process namespace; its PID 1 is main's shell
        t.type("cat /proc/1/cmdline; echo\r")
        t.read_until(b"trap 'exit 0' TERM")
        t.type("exit 0\r")
        assert t.proc.wait(30) == 0
    finally:
        t.close()
    pod = _pod_json(s, "shell")
    ec = pod["spec"]["ephemeralContainers"][0]
    assert (ec["name"], ec["targetContainerName"], ec["stdin"], ec["tty"]) == ("dbg", "main", True, True)
    st = pod["status"]["ephemeralContainerStatuses"][0]
    assert st["name"] == "dbg" and st["containerID"].startswith("runc://")
    wait(lambda: "terminated" in _pod_json(s, "shell")["status"]["ephemeralContainerStatuses"][0]["state"], 30,
         "the debug container ended with its shell")
    # it is not started again, and the pod runs on
    assert _phase(s, "shell") == "Running"
    assert s.kubectl("exec", "shell", "--", "echo", "ok").stdout == "ok\n"


def test_ephemeral_containers_api_errors(cluster: Server) -> None:
    s = cluster
    # kubectl debug without a terminal: the container runs its command; its log is there
    s.kubectl("debug", "ticker", f"--image={IMAGE}", "--container=once", "--", "sh", "-c", "echo from debug")
    wait(lambda: s.kubectl("logs", "ticker", "-c", "once", check=False).stdout == "from debug\n", 60,
         "the ephemeral container's log")
    # the same name twice, a missing image, a port: kube's field errors; an existing one may not change
    base = _pod_json(s, "ticker")
    ecs = base["spec"]["ephemeralContainers"]

    def put(new_ecs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
        body = {**base, "spec": {**base["spec"], "ephemeralContainers": new_ecs}}
        return s.kubectl("replace", "--raw", f"/api/v1/namespaces/{NS}/pods/ticker/ephemeralcontainers", "-f", "-",
                         input=json.dumps(body), check=False)

    p = put([*ecs, {"name": "once", "image": IMAGE}])
    assert p.returncode != 0 and 'spec.ephemeralContainers[1].name: Duplicate value: "once"' in p.stderr, p.stderr
    p = put([*ecs, {"name": "bad", "ports": [{"containerPort": 80}]}])
    assert "spec.ephemeralContainers[1].image: Required value" in p.stderr, p.stderr
    assert "spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container" in p.stderr
    p = put([{**ecs[0], "image": "other:1"}])
    assert 'existing ephemeral containers \\"once\\" may not be changed' in p.stderr or \
        'existing ephemeral containers "once" may not be changed' in p.stderr, p.stderr
    p = put([*ecs, {"name": "t", "image": IMAGE, "targetContainerName": "nope"}])
    assert 'spec.ephemeralContainers[1].targetContainerName: Not found: "nope"' in p.stderr, p.stderr


def test_kubectl_debug_node_runs_in_the_nodes_namespaces(cluster: Server) -> None:
    # `kubectl debug node/...`: a pod with hostPID, hostIPC and hostNetwork, the node's / at /host;
    # its shell sees the node's PID, IPC, network and UTS namespaces (those this test runs in)
    s = cluster
    out = s.kubectl("debug", f"node/{NODE}", "-n", NS, f"--image={IMAGE}", "--", "sh", "-c",
                    "for n in pid ipc net uts; do readlink /proc/self/ns/$n; done; test -d /host/proc && echo host")
    name = next(w for w in out.stdout.split() if w.startswith(f"node-debugger-{NODE}-"))
    try:
        pod = _pod_json(s, name)
        assert all(pod["spec"].get(f) is True for f in ("hostPID", "hostIPC", "hostNetwork")), pod["spec"]
        wait(lambda: _phase(s, name) == "Succeeded", 60, "the node debugger done")
        got = s.kubectl("logs", name, "-n", NS).stdout.split()
        assert got == [os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "ipc", "net", "uts")] + ["host"], got
    finally:
        s.kubectl("delete", "pod", name, "-n", NS, "--wait=true", check=False)


def test_containers_sharing_the_pods_process_namespace_see_each_other(cluster: Server) -> None:
    # shareProcessNamespace: one PID namespace for the pod, a pause (catatonit) as its PID 1, as
    # kube's pause container; one container sees (and could signal) the other's processes
    s = cluster
    p = _pod("shared", "", restart="Always", containers={"a": IDLE, "b": "exec sleep 3601"})
    p["spec"]["shareProcessNamespace"] = True
    _apply(s, p)
    try:
        wait(lambda: _phase(s, "shared") == "Running", 60, "shared Running")
        out = s.kubectl("exec", "shared", "-n", NS, "-c", "a", "--", "sh", "-c",
                        "tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o args").stdout.splitlines()
        assert "catatonit" in out[0], out
        assert "sleep 3601" in out[1:], out
        assert _procs("catatonit")
    finally:
        s.kubectl("delete", "pod", "shared", "-n", NS, "--wait=true", check=False)
    # the pause goes with the pod, and its namespace with it
    wait(lambda: not _procs("catatonit"), 30, "the pod's pause gone")


def _pod_namespaces(s: Server, pod: str, container: str) -> list[str]:
    """The IPC and UTS namespaces (``ipc:[N]``, ``uts:[N]``) and the hostname a container sees."""
    return s.kubectl("exec", pod, "-n", NS, "-c", container, "--", "sh", "-c",
                     "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; hostname").stdout.split()


def _mounts_of(ns: str) -> list[str]:
    """Where the namespace ``ns`` (``ipc:[N]``) is bind-mounted, from this process's mountinfo
    (the agent's mount namespace): the root of a bind mount of nsfs names the namespace."""
    with open("/proc/self/mountinfo") as f:
        return [fields[4] for fields in (line.split() for line in f) if fields[3] == ns]


def _restarts(s: Server, pod: str, container: str) -> int:
    for cs in _pod_json(s, pod).get("status", {}).get("containerStatuses") or ():
        if cs["name"] == container and "running" in (cs.get("state") or {}):
            return int(cs.get("restartCount", 0))
    return -1


def test_containers_of_a_pod_share_its_ipc_and_uts_namespaces(cluster: Server) -> None:
    # as kube's containers join the pause container's: one IPC namespace (System V and POSIX IPC
    # objects, and one /dev/shm) and one UTS namespace with the pod's hostname for the pod
    s = cluster
    p = _pod("twins", "", restart="Always", containers={"app": IDLE, "sidecar": IDLE})
    p["spec"]["hostname"] = "twin-host"
    _apply(s, p)
    app: list[str] = []
    try:
        wait(lambda: _phase(s, "twins") == "Running", 60, "twins Running")
        app = _pod_namespaces(s, "twins", "app")
        assert _pod_namespaces(s, "twins", "sidecar") == app and app[2] == "twin-host", app
        assert app[0] != os.readlink("/proc/self/ns/ipc") and app[1] != os.readlink("/proc/self/ns/uts"), app
        # without spec.hostname: the pod's name
        assert s.kubectl("exec", "shell", "-n", NS, "--", "hostname").stdout.split() == ["shell"]
        # a POSIX message queue and a /dev/shm file the app makes, the sidecar sees
        s.kubectl("exec", "twins", "-n", NS, "-c", "app", "--", "sh", "-c",
                  "touch /dev/mqueue/k8py-q && echo from-app > /dev/shm/note")
        out = s.kubectl("exec", "twins", "-n", NS, "-c", "sidecar", "--", "sh", "-c",
                        "ls /dev/mqueue; cat /dev/shm/note").stdout.split()
        assert out == ["k8py-q", "from-app"], out
        # the agent keeps each as a bind mount in the sandbox's directory
        data = str(s.data_dir)
        assert [m.startswith(data) and m.endswith("/ipcns") for m in _mounts_of(app[0])] == [True]
        assert [m.startswith(data) and m.endswith("/utsns") for m in _mounts_of(app[1])] == [True]
        # the app's shell ends (SIGTERM to its PID 1) and is restarted: in the same namespaces,
        # where the queue still is
        s.kubectl("exec", "twins", "-n", NS, "-c", "app", "--", "kill", "1")
        wait(lambda: _restarts(s, "twins", "app") >= 1, 60, "the app restarted")
        assert _pod_namespaces(s, "twins", "app") == app
        assert s.kubectl("exec", "twins", "-n", NS, "-c", "app", "--", "ls", "/dev/mqueue").stdout.split() == [
            "k8py-q"]
        # an ephemeral container (kubectl debug) joins them too
        s.kubectl("debug", "twins", "-n", NS, f"--image={IMAGE}", "--container=dbg", "--", "sh", "-c",
                  "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; hostname; ls /dev/mqueue")
        wait(lambda: s.kubectl("logs", "twins", "-n", NS, "-c", "dbg", check=False).stdout.split() == [*app, "k8py-q"],
             60, "the debug container's namespaces in its log")
    finally:
        s.kubectl("delete", "pod", "twins", "-n", NS, "--wait=true", check=False)
    # the pod is gone: nothing of its namespaces stays mounted
    if app:
        wait(lambda: not _mounts_of(app[0]) and not _mounts_of(app[1]), 30, "the pod's namespaces unmounted")
