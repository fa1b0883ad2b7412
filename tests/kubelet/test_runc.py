"""The runc runtime with real runc and conmon: containers run, log, exit, stop, die of OOM, share
their pod's network namespace, survive an agent restart, and leave nothing behind.

The image service and pod network here are small doubles (the runtime's protocols): an image
whose rootfs is a directory made of Debian's static busybox with its applet links, and a network
that makes a namespace with ``ip netns add`` (loopback up, an ``eth0`` veth with a TEST-NET
address, its peer in the namespace too) and deletes it. Every test's runtime has its own root and cgroup root, and its teardown
checks that ``cleanup_all`` left no mount, runc container, conmon, netns or cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from k8py.kubelet.runtime.runc import RuncRuntime, runc_message
from k8py.kubelet.runtime.types import (
    CgroupResources,
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    CreateContainerError,
    DNSConfig,
    Image,
    ImageNotFoundError,
    ImageService,
    Mount,
    PodNetwork,
    RegistryAuth,
    Resources,
    RunContainerError,
    Runtime,
    SandboxConfig,
    SandboxError,
    SandboxState,
    Security,
)

BUSYBOX = "/bin/busybox"
NETNS_DIR = "/run/netns"
IMAGE = "k8py.test/busybox:1.0"
IMAGE_ID = "sha256:" + "ab" * 32
POD_IP = "192.0.2.10"
CRI_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([FP]) (.*)$"
)


def _skip_reason() -> str:
    if os.geteuid() != 0:
        return "the runc runtime needs root"
    for tool in ("runc", "conmon", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (scripts/install installs it)"
    if not os.path.exists(BUSYBOX):
        return f"{BUSYBOX} not found (Debian's busybox-static)"
    return ""


pytestmark = pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or "ok")


# --------------------------------------------------------------------------- test doubles


def _make_busybox_rootfs(path: Path) -> None:
    """A tree like the busybox test image: /bin/busybox and its applet links, passwd, group, tmp,
    and a script without a ``#!`` line (executable, but not by the kernel)."""
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/tmp"):
        (path / d).mkdir(parents=True, exist_ok=True)
    (path / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and not (path / "bin" / applet).exists():
            (path / "bin" / applet).symlink_to("busybox")
    (path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        "app:x:1000:1001:app:/tmp:/bin/sh\n"
    )
    (path / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\napp:x:1001:\nextra:x:2000:app\n")
    bad = path / "bin" / "not-a-program"
    bad.write_text("echo this has no interpreter line\n")
    bad.chmod(0o755)


@dataclass
class DirImages:
    """An ImageService with images whose rootfs is a directory on disk."""

    rootfs_dir: Path
    images: dict[str, Image] = field(default_factory=dict)
    rootfs_calls: list[str] = field(default_factory=list)

    async def pull_image(self, ref: str, auth: RegistryAuth | None = None) -> str:
        image = self.images.get(ref)
        if image is None:
            raise ImageNotFoundError(ref)
        return image.id

    async def image_status(self, ref: str) -> Image | None:
        return self.images.get(ref) or next((i for i in self.images.values() if i.id == ref), None)

    async def list_images(self) -> list[Image]:
        return list({i.id: i for i in self.images.values()}.values())

    async def remove_image(self, ref: str) -> None:
        self.images.pop(ref, None)

    def rootfs(self, image_id: str) -> str:
        self.rootfs_calls.append(image_id)
        return str(self.rootfs_dir)


@dataclass
class NetnsNetwork:
    """A PodNetwork that makes a bare namespace per sandbox (``ip netns add``)."""

    prefix: str
    made: set[str] = field(default_factory=set)
    fail_with: str = ""

    def name(self, sandbox_id: str) -> str:
        return f"{self.prefix}-{sandbox_id[:8]}"

    async def create(self, sandbox_id: str, config: SandboxConfig) -> tuple[str, tuple[str, ...]]:
        if self.fail_with:
            raise SandboxError(self.fail_with)
        ns = self.name(sandbox_id)
        self.made.add(ns)
        for argv in (
            ("ip", "netns", "add", ns),
            ("ip", "-n", ns, "link", "set", "lo", "up"),
            ("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"),
            ("ip", "-n", ns, "link", "set", "peer0", "up"),
            ("ip", "-n", ns, "addr", "add", f"{POD_IP}/24", "dev", "eth0"),
            ("ip", "-n", ns, "link", "set", "eth0", "up"),
        ):
            await _sh(*argv)
        return f"{NETNS_DIR}/{ns}", (POD_IP,)

    async def destroy(self, sandbox_id: str, netns_path: str, config: SandboxConfig) -> None:
        ns = self.name(sandbox_id)
        if os.path.lexists(f"{NETNS_DIR}/{ns}"):
            await _sh("ip", "netns", "delete", ns)


async def _sh(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {err.decode().strip()}")
    return out.decode()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("busybox") / "rootfs"
    _make_busybox_rootfs(path)
    return path


@dataclass
class Env:
    rt: RuncRuntime
    root: Path
    logs: Path
    images: DirImages
    network: NetnsNetwork
    cgroup_root: str

    def new_runtime(self) -> RuncRuntime:
        """Another runtime on the same root: the agent restarted."""
        return RuncRuntime(str(self.root), self.images, self.network, cgroup_root=self.cgroup_root)

    def pod(self, name: str = "web", **kw: object) -> SandboxConfig:
        return SandboxConfig(
            name=name,
            namespace="default",
            uid=f"uid-{name}",
            log_directory=str(self.logs / name),
            labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "default"},
            **kw,  # type: ignore[arg-type]
        )

    async def run(
        self, sandbox_id: str, pod: SandboxConfig, name: str, command: Sequence[str], **kw: object
    ) -> str:
        """Create and start a container; its id."""
        config = ContainerConfig(
            name=name,
            image=IMAGE,
            command=tuple(command),
            log_path=f"{name}/0.log",
            labels={"io.kubernetes.container.name": name},
            **kw,  # type: ignore[arg-type]
        )
        cid = await self.rt.create_container(sandbox_id, config, pod)
        await self.rt.start_container(cid)
        return cid


def _conmons(root: Path) -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and os.path.basename(cmdline[0]) == b"conmon" and str(root).encode() in b" ".join(cmdline):
            out.append(pid)
    return out


def _leftovers(env: Env) -> list[str]:
    found: list[str] = []
    root = str(env.root)
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    found += [f"mount {m}" for m in mounts if m.startswith(root)]
    listing = subprocess.run(
        ["runc", "--root", str(env.root / "runc"), "list", "--format", "json"],
        check=False,
        capture_output=True,
        text=True,
    )
    found += [f"runc container {c['id']}" for c in json.loads(listing.stdout or "null") or []]
    found += [f"conmon {pid}" for pid in _conmons(env.root)]
    found += [f"netns {n}" for n in env.network.made if os.path.lexists(f"{NETNS_DIR}/{n}")]
    found += [f"cgroup {d}" for d in env.rt.cgroups.directories("/" + env.cgroup_root) if os.path.exists(d)]
    return found


@pytest.fixture
async def env(tmp_path: Path, busybox_rootfs: Path) -> AsyncIterator[Env]:
    images = DirImages(busybox_rootfs)
    images.images[IMAGE] = Image(
        id=IMAGE_ID,
        repo_tags=[IMAGE],
        cmd=["sh"],
        env=["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "IMGVAR=from-image"],
        working_dir="/",
    )
    tag = secrets.token_hex(3)
    network = NetnsNetwork(prefix=f"k8py-rt-{tag}")
    root = tmp_path / "containers"
    cgroup_root = f"k8py-test-{tag}"
    rt = RuncRuntime(str(root), images, network, cgroup_root=cgroup_root)
    e = Env(rt, root, tmp_path / "logs", images, network, cgroup_root)
    try:
        yield e
    finally:
        await rt.close()
        await rt.cleanup_all()
        left = _leftovers(e)
        # clean by hand whatever cleanup_all missed, then fail
        for ns in network.made:
            if os.path.lexists(f"{NETNS_DIR}/{ns}"):
                await asyncio.to_thread(subprocess.run, ["ip", "netns", "delete", ns], check=False)
        assert not left, f"cleanup_all left {left}"


async def wait_for(
    rt: RuncRuntime, cid: str, state: ContainerState, timeout: float = 20.0
) -> ContainerStatus:
    deadline = time.monotonic() + timeout
    while True:
        st = await rt.container_status(cid)
        assert st is not None, f"container {cid} vanished"
        if st.state == state:
            return st
        assert time.monotonic() < deadline, f"container {cid} still {st.state} after {timeout}s: {st}"
        await asyncio.sleep(0.05)


async def wait_for_output(rt: RuncRuntime, cid: str, line: str, timeout: float = 20.0) -> None:
    """Until the container has written ``line`` to stdout (e.g. "its trap is set")."""
    deadline = time.monotonic() + timeout
    while True:
        st = await rt.container_status(cid)
        assert st is not None
        if os.path.exists(st.log_path) and line in _messages(st):
            return
        assert time.monotonic() < deadline, f"{cid} did not say {line!r}"
        await asyncio.sleep(0.05)


def _log_lines(st: ContainerStatus) -> list[tuple[str, str, str, str]]:
    out = []
    for line in Path(st.log_path).read_text().splitlines():
        m = CRI_LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append((m.group(1), m.group(2), m.group(3), m.group(4)))
    return out


def _messages(st: ContainerStatus, stream: str = "stdout") -> list[str]:
    return [msg for _, s, _, msg in _log_lines(st) if s == stream]


# --------------------------------------------------------------------------- tests


def test_runc_message_unquotes_runc_errors() -> None:
    stderr = (
        'time="2026-12-06T13:42:49Z" level=warning msg="deprecated"\n'
        'time="2026-12-06T13:42:49Z" level=error msg="runc create failed: unable to start container process: '
        'exec: \\"nope\\": executable file not found in $PATH"\n'
    )
    assert runc_message(stderr) == (
        'runc create failed: unable to start container process: exec: "nope": executable file not found in $PATH'
    )
    assert runc_message("container not running\n") == "container not running"


async def test_is_a_runtime_and_knows_its_version(env: Env) -> None:
    assert isinstance(env.rt, Runtime)
    assert isinstance(env.images, ImageService) and isinstance(env.network, PodNetwork)
    v = await env.rt.version()
    assert v.runtime_name == "runc" and re.match(r"\d+\.\d+", v.runtime_version), v
    assert env.rt.missing() == []
    assert await env.rt.list_images() == [env.images.images[IMAGE]]
    assert (await env.rt.image_status(IMAGE)) is env.images.images[IMAGE]


async def test_missing_names_what_is_absent(tmp_path: Path, busybox_rootfs: Path) -> None:
    rt = RuncRuntime(
        str(tmp_path / "r"), DirImages(busybox_rootfs), NetnsNetwork("x"), runc="/nonexistent/runc",
        conmon="no-such-conmon-here",
    )  # fmt: skip
    missing = rt.missing()
    assert any(m.startswith("runc:") and "apt-get install runc" in m for m in missing), missing
    assert any(m.startswith("conmon:") for m in missing), missing


async def test_container_runs_logs_and_completes(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "hello", ["sh", "-c", "echo hello; echo err >&2"])
    st = await wait_for(env.rt, cid, ContainerState.EXITED)
    assert (st.exit_code, st.reason) == (0, "Completed")
    assert st.sandbox_id == sid and st.name == "hello" and st.image == IMAGE and st.image_ref == IMAGE_ID
    assert st.labels == {"io.kubernetes.container.name": "hello"}
    assert st.log_path == str(env.logs / "web" / "hello" / "0.log")
    assert 0 < st.created_at <= st.started_at <= st.finished_at <= time.time()
    lines = _log_lines(st)
    assert [(s, tag, msg) for _, s, tag, msg in lines] == [
        ("stdout", "F", "hello"),
        ("stderr", "F", "err"),
    ] or [(s, tag, msg) for _, s, tag, msg in lines] == [("stderr", "F", "err"), ("stdout", "F", "hello")]
    # listed, by sandbox and in all
    assert [c.id for c in await env.rt.list_containers(sid)] == [cid]
    assert [c.id for c in await env.rt.list_containers("other")] == []
    # removal: the bundle goes, the log stays (kubelet owns logs)
    await env.rt.remove_container(cid)
    assert await env.rt.container_status(cid) is None
    assert Path(st.log_path).exists()
    await env.rt.remove_container(cid)  # again: a no-op


async def test_exit_code_is_an_error(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "fail", ["sh", "-c", "exit 3"])
    st = await wait_for(env.rt, cid, ContainerState.EXITED)
    assert (st.exit_code, st.reason) == (3, "Error")


async def test_env_working_dir_and_user(env: Env) -> None:
    pod = env.pod(hostname="myhost")
    sid = await env.rt.run_pod_sandbox(pod)
    script = 'echo "$FOO $IMGVAR $HOSTNAME"; pwd; id -u; id -g; id -G; hostname'
    cid = await env.run(
        sid, pod, "who", ["sh", "-c", script],
        env=(("FOO", "bar"), ("IMGVAR", "overridden")),
        working_dir="/tmp",
        security=Security(run_as_user=65534, supplemental_groups=(3000,)),
    )  # fmt: skip
    st = await wait_for(env.rt, cid, ContainerState.EXITED)
    assert st.exit_code == 0, _messages(st, "stderr")
    assert _messages(st) == ["bar overridden myhost", "/tmp", "65534", "65534", "65534 3000", "myhost"]


async def test_image_user_by_name_with_its_groups(env: Env) -> None:
    env.images.images["named-user"] = Image(id=IMAGE_ID, cmd=["sh", "-c", "id -u; id -g; id -G"], user="app")
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.rt.create_container(
        sid, ContainerConfig(name="app", image="named-user", log_path="a.log"), pod
    )
    await env.rt.start_container(cid)
    st = await wait_for(env.rt, cid, ContainerState.EXITED)
    assert _messages(st) == ["1000", "1001", "1001 2000"], _messages(st, "stderr")


async def test_sigterm_is_honoured_quickly(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "polite", ["sh", "-c", 'trap "exit 0" TERM; echo ready; sleep 1000 & wait'])
    await wait_for_output(env.rt, cid, "ready")
    start = time.monotonic()
    await env.rt.stop_container(cid, 30)
    assert time.monotonic() - start < 5
    st = await wait_for(env.rt, cid, ContainerState.EXITED, timeout=1)
    assert (st.exit_code, st.reason) == (0, "Completed")
    await env.rt.stop_container(cid, 30)  # already stopped: a no-op


async def test_ignored_sigterm_is_followed_by_sigkill_after_the_timeout(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "stubborn", ["sh", "-c", 'trap "" TERM; sleep 1000'])
    await wait_for(env.rt, cid, ContainerState.RUNNING)
    start = time.monotonic()
    await env.rt.stop_container(cid, 1.0)
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 8, elapsed
    st = await wait_for(env.rt, cid, ContainerState.EXITED, timeout=1)
    assert (st.exit_code, st.reason) == (137, "Error")


async def test_stop_signal_from_the_image(env: Env) -> None:
    env.images.images["usr1"] = Image(id=IMAGE_ID, stop_signal="SIGUSR1")
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    config = ContainerConfig(
        name="usr1",
        image="usr1",
        command=("sh", "-c", 'trap "exit 42" USR1; echo ready; sleep 1000 & wait'),
        log_path="u.log",
    )
    cid = await env.rt.create_container(sid, config, pod)
    await env.rt.start_container(cid)
    await wait_for_output(env.rt, cid, "ready")
    await env.rt.stop_container(cid, 30)
    st = await wait_for(env.rt, cid, ContainerState.EXITED, timeout=1)
    assert st.exit_code == 42


async def test_memory_limit_ends_in_oomkilled(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    # tail keeps its whole input in memory while it looks for the last lines
    cid = await env.run(
        sid, pod, "hog", ["sh", "-c", "head -c 200m /dev/zero | tail"],
        resources=Resources(memory_limit=16 * 1024 * 1024),
    )  # fmt: skip
    st = await wait_for(env.rt, cid, ContainerState.EXITED, timeout=60)
    assert (st.exit_code, st.reason) == (137, "OOMKilled"), st


async def test_exec_sync_output_exit_code_and_timeout(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "idle", ["sleep", "1000"], env=(("GREETING", "hi"),))
    await wait_for(env.rt, cid, ContainerState.RUNNING)
    res = await env.rt.exec_sync(cid, ["sh", "-c", 'echo "out $GREETING"; echo err >&2; exit 4'], timeout=10)
    assert (res.stdout, res.stderr, res.exit_code) == (b"out hi\n", b"err\n", 4)
    start = time.monotonic()
    res = await env.rt.exec_sync(cid, ["sh", "-c", "echo started; sleep 100"], timeout=0.5)
    assert time.monotonic() - start < 5
    assert res.exit_code == 137 and res.stdout == b"started\n" and b"timed out" in res.stderr
    # the timed-out process is gone from the container
    ps = await env.rt.exec_sync(cid, ["ps", "-o", "args"], timeout=10)
    assert b"sleep 100" not in ps.stdout.splitlines(), ps.stdout
    await env.rt.stop_container(cid, 0)
    with pytest.raises(Exception, match="not running"):
        await env.rt.exec_sync(cid, ["true"])


async def test_missing_executable_is_named(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    config = ContainerConfig(name="broken", image=IMAGE, command=("no-such-binary", "x"), log_path="b.log")
    with pytest.raises((CreateContainerError, RunContainerError), match="no-such-binary"):
        cid = await env.rt.create_container(sid, config, pod)
        await env.rt.start_container(cid)
    # a failed create leaves no container, mount or runc state behind (the sandbox keeps its own)
    assert await env.rt.list_containers() == []
    assert _mount_points_under(env.root / "containers") == []
    assert _mount_points_under(env.root) == _mount_points_under(env.root / "sandboxes" / sid)


async def test_exec_format_error_is_the_containers_own_failure(env: Env) -> None:
    """runc checks at create that the executable exists; a file the kernel cannot execute fails
    only in the container (as with an image of another architecture): a non-zero exit, runc's
    message in the log, as Kubernetes on containerd shows it."""
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "noexec", ["/bin/not-a-program"])
    st = await wait_for(env.rt, cid, ContainerState.EXITED)
    # runc init exits 1, or 255 when the error reaches it another way: either is the container's
    assert st.exit_code in (1, 255) and st.reason == "Error", st
    assert _messages(st, "stderr") == ["exec /bin/not-a-program: exec format error"]


async def test_start_failure_is_container_cannot_run(env: Env, tmp_path: Path) -> None:
    """A ``runc start`` that fails (injected: a runc wrapper that refuses ``start``) gives
    RunContainerError with runc's message, and the container is EXITED, ContainerCannotRun."""
    wrapper = tmp_path / "runc-no-start"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do if [ "$a" = start ]; then\n'
        '  echo \'time="2026-01-01T00:00:00Z" level=error msg="cannot start container: injected"\' >&2; exit 1\n'
        "fi; done\n"
        f'exec {shutil.which("runc")} "$@"\n'
    )
    wrapper.chmod(0o755)
    env.rt = RuncRuntime(
        str(env.root), env.images, env.network, cgroup_root=env.cgroup_root, runc=str(wrapper)
    )
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    config = ContainerConfig(name="nostart", image=IMAGE, command=("sleep", "1000"), log_path="n.log")
    cid = await env.rt.create_container(sid, config, pod)
    with pytest.raises(RunContainerError, match="^cannot start container: injected$"):
        await env.rt.start_container(cid)
    st = await env.rt.container_status(cid)
    assert st is not None and st.state == ContainerState.EXITED
    assert (st.reason, st.exit_code, st.message) == (
        "ContainerCannotRun",
        128,
        "cannot start container: injected",
    )
    assert st.finished_at >= st.created_at and st.started_at == 0
    with pytest.raises(RunContainerError, match="not created"):
        await env.rt.start_container(cid)


async def test_unknown_image_and_sandbox(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    with pytest.raises(ImageNotFoundError):
        await env.rt.create_container(sid, ContainerConfig(name="x", image="nope:1"), pod)
    with pytest.raises(Exception, match="not found"):
        await env.rt.create_container("0" * 64, ContainerConfig(name="x", image=IMAGE), pod)
    assert await env.rt.container_status("f" * 64) is None
    await env.rt.stop_container("f" * 64, 1)
    await env.rt.remove_container("f" * 64)


async def test_containers_of_a_pod_share_its_network(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    server = await env.run(
        sid, pod, "server",
        ["sh", "-c", "mkdir -p /www && echo shared-netns > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"],
    )  # fmt: skip
    await wait_for(env.rt, server, ContainerState.RUNNING)
    client = await env.run(
        sid, pod, "client",
        ["sh", "-c", "for i in $(seq 100); do wget -q -O- http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1"],
    )  # fmt: skip
    st = await wait_for(env.rt, client, ContainerState.EXITED)
    assert st.exit_code == 0, _messages(st, "stderr")
    assert _messages(st) == ["shared-netns"]
    await env.rt.stop_container(server, 0)
    # and the sandbox's address is in the namespace they share
    addr = await env.run(sid, pod, "addr", ["ip", "-4", "-o", "addr", "show", "eth0"])
    st = await wait_for(env.rt, addr, ContainerState.EXITED)
    assert POD_IP in " ".join(_messages(st))


PROBE_NS = "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; hostname"


def _mount_points_under(path: Path) -> list[str]:
    """Mount points at or under ``path``, from ``/proc/self/mountinfo`` (bind mounts of nsfs too)."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return sorted(p for p in (line.split()[4] for line in lines) if p == str(path) or p.startswith(f"{path}/"))


async def test_containers_of_a_pod_share_its_ipc_and_uts_namespaces(env: Env) -> None:
    # kube's containers join the pause container's IPC and UTS namespaces and share its /dev/shm;
    # the pod's IPC sysctls are set in the namespace they share
    pod = env.pod(hostname="box", sysctls={"kernel.shm_rmid_forced": "1"})
    sid = await env.rt.run_pod_sandbox(pod)
    sb = env.root / "sandboxes" / sid
    assert _mount_points_under(sb) == [str(sb / "ipcns"), str(sb / "shm"), str(sb / "utsns")]
    own = [os.readlink(f"/proc/self/ns/{n}") for n in ("ipc", "uts")]
    probe = PROBE_NS
    a = await env.run(sid, pod, "a", [
        "sh", "-c", f"{probe}; touch /dev/mqueue/k8py-q && echo shared > /dev/shm/note && echo ready; sleep 1000",
    ])  # fmt: skip
    await wait_for_output(env.rt, a, "ready")
    st = await env.rt.container_status(a)
    assert st is not None
    ipc, uts, hostname, _ = _messages(st)
    assert ipc.startswith("ipc:[") and uts.startswith("uts:[") and [ipc, uts] != own and ipc != own[0]
    assert uts != own[1] and hostname == "box"
    # another container sees the same namespaces, the POSIX message queue and the /dev/shm file; with
    # CAP_SYS_ADMIN it may change the pod's hostname
    b = await env.run(sid, pod, "b", [
        "sh", "-c", f"{probe}; ls /dev/mqueue; cat /dev/shm/note; hostname changed",
    ], security=Security(capabilities_add=("SYS_ADMIN",)))  # fmt: skip
    st = await wait_for(env.rt, b, ContainerState.EXITED)
    assert st.exit_code == 0, _messages(st, "stderr")
    assert _messages(st) == [ipc, uts, "box", "k8py-q", "shared"]
    # a container started later does not set the hostname again (containerd sets it on the pause only)
    c = await env.run(sid, pod, "c", ["sh", "-c", f"{probe}; cat /proc/sys/kernel/shm_rmid_forced"])
    assert _messages(await wait_for(env.rt, c, ContainerState.EXITED)) == [ipc, uts, "changed", "1"]
    # an agent restart keeps them: a new container joins the same ones
    env.rt = env.new_runtime()
    d = await env.run(sid, pod, "d", ["sh", "-c", probe])
    assert _messages(await wait_for(env.rt, d, ContainerState.EXITED)) == [ipc, uts, "changed"]
    # one that is gone (unmounted under the runtime) is an error, not a namespace of the container's own
    await _sh("umount", str(sb / "ipcns"))
    with pytest.raises(CreateContainerError, match=r"the pod's IPC namespace is gone \(.*ipcns is no longer mounted"):
        await env.rt.create_container(sid, ContainerConfig(name="late", image=IMAGE, command=("true",)), pod)
    # stopping the sandbox releases them: nothing mounted, no files
    await env.rt.stop_pod_sandbox(sid)
    assert _mount_points_under(sb) == []
    assert not any((sb / f).exists() for f in ("ipcns", "utsns", "shm"))
    await env.rt.remove_pod_sandbox(sid)
    assert not sb.exists()


async def test_a_sandbox_cancelled_while_its_namespaces_are_made_leaves_nothing(env: Env) -> None:
    # the agent stopping mid-way: what unshare and mount were making is there before the clean-up
    # runs, so it is unmounted and the sandbox's directory removed
    for _ in range(3):
        task = asyncio.ensure_future(env.rt.run_pod_sandbox(env.pod(host_network=True)))
        deadline = time.monotonic() + 10
        while not list((env.root / "sandboxes").glob("*/ipcns")):  # made just before unshare runs
            assert not task.done() and time.monotonic() < deadline, "the namespaces' files never appeared"
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _mount_points_under(env.root) == [] and list((env.root / "sandboxes").iterdir()) == []


async def test_a_sandbox_of_an_earlier_boot_is_not_ready(env: Env) -> None:
    # its namespaces (and network) went with that boot, as a pause container would: NOTREADY, so
    # the pod worker makes the pod a new sandbox rather than start containers in this one
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    status_file = env.root / "sandboxes" / sid / "status.json"
    status = json.loads(status_file.read_text())
    assert status["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    status_file.write_text(json.dumps({**status, "boot_id": "an-earlier-boot"}))
    st = await env.rt.pod_sandbox_status(sid)
    assert st is not None and st.state == SandboxState.NOTREADY
    assert [s.state for s in await env.new_runtime().list_pod_sandboxes()] == [SandboxState.NOTREADY]
    with pytest.raises(CreateContainerError, match="not ready"):
        await env.rt.create_container(sid, ContainerConfig(name="late", image=IMAGE, command=("true",)), pod)
    # a status from before boot ids were kept is this boot's
    del status["boot_id"]
    status_file.write_text(json.dumps(status))
    assert (await env.rt.pod_sandbox_status(sid)).state == SandboxState.READY  # type: ignore[union-attr]
    await env.rt.remove_pod_sandbox(sid)
    assert _mount_points_under(env.root) == []


async def test_host_ipc_and_host_network_pods_keep_the_nodes_namespaces(env: Env) -> None:
    pod = env.pod(host_ipc=True, host_network=True)
    sid = await env.rt.run_pod_sandbox(pod)
    sb = env.root / "sandboxes" / sid
    assert _mount_points_under(sb) == [] and not (sb / "ipcns").exists() and not (sb / "utsns").exists()
    # hostIPC: the node's /dev/shm too, as containerd binds it
    marker = Path(f"/dev/shm/k8py-test-{secrets.token_hex(4)}")
    marker.write_text("node\n")
    try:
        cid = await env.run(sid, pod, "host", ["sh", "-c", f"{PROBE_NS}; cat {marker}"])
        assert _messages(await wait_for(env.rt, cid, ContainerState.EXITED)) == [
            os.readlink("/proc/self/ns/ipc"), os.readlink("/proc/self/ns/uts"), os.uname().nodename, "node",
        ]  # fmt: skip
    finally:
        marker.unlink()
    # host network alone: the pod's own IPC namespace, the node's UTS namespace
    pod = env.pod("hostnet", host_network=True)
    sid = await env.rt.run_pod_sandbox(pod)
    sb = env.root / "sandboxes" / sid
    assert _mount_points_under(sb) == [str(sb / "ipcns"), str(sb / "shm")]
    cid = await env.run(sid, pod, "host", ["sh", "-c", PROBE_NS])
    out = _messages(await wait_for(env.rt, cid, ContainerState.EXITED))
    assert out[0] != os.readlink("/proc/self/ns/ipc")
    assert out[1:] == [os.readlink("/proc/self/ns/uts"), os.uname().nodename]


async def test_sandbox_files_state_and_teardown(env: Env) -> None:
    pod = env.pod(
        hostname="box",
        dns=DNSConfig(servers=("10.96.0.10",), searches=("default.svc.cluster.local",), options=("ndots:5",)),
        host_aliases=(("10.1.2.3", ("foo.local", "bar.local")),),
    )
    sid = await env.rt.run_pod_sandbox(pod)
    st = await env.rt.pod_sandbox_status(sid)
    assert st is not None and st.state == SandboxState.READY and st.ips == (POD_IP,)
    assert st.netns_path == f"{NETNS_DIR}/{env.network.name(sid)}" and os.path.exists(st.netns_path)
    assert (st.name, st.namespace, st.uid) == ("web", "default", "uid-web") and st.created_at > 0
    assert st.labels["io.kubernetes.pod.name"] == "web"
    cid = await env.run(
        sid, pod, "cat", ["sh", "-c", "cat /etc/hosts /etc/resolv.conf /etc/hostname; hostname"]
    )
    out = _messages(await wait_for(env.rt, cid, ContainerState.EXITED))
    assert (
        "127.0.0.1\tlocalhost" in out and f"{POD_IP}\tbox" in out and "10.1.2.3\tfoo.local\tbar.local" in out
    )
    assert (
        "nameserver 10.96.0.10" in out
        and "search default.svc.cluster.local" in out
        and "options ndots:5" in out
    )
    assert out[-2:] == ["box", "box"]
    running = await env.run(sid, pod, "sleeper", ["sleep", "1000"])
    await wait_for(env.rt, running, ContainerState.RUNNING)

    await env.rt.stop_pod_sandbox(sid)
    st = await env.rt.pod_sandbox_status(sid)
    assert st is not None and st.state == SandboxState.NOTREADY
    assert not os.path.exists(f"{NETNS_DIR}/{env.network.name(sid)}")
    assert (await wait_for(env.rt, running, ContainerState.EXITED, timeout=1)).exit_code == 137
    with pytest.raises(CreateContainerError, match="not ready"):
        await env.rt.create_container(sid, ContainerConfig(name="late", image=IMAGE), pod)
    await env.rt.stop_pod_sandbox(sid)  # again: fine
    await env.rt.remove_pod_sandbox(sid)
    assert await env.rt.pod_sandbox_status(sid) is None
    assert await env.rt.list_containers() == [] and await env.rt.list_pod_sandboxes() == []
    await env.rt.remove_pod_sandbox(sid)


async def test_node_resolv_conf_without_loopback(
    env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node_resolv = tmp_path / "resolv.conf"
    node_resolv.write_text("nameserver 127.0.0.53\nnameserver ::1\nsearch example.test\n")
    env.rt.node_resolv_conf = str(node_resolv)
    with caplog.at_level(logging.WARNING, logger="k8py.kubelet.runtime.runc"):
        sid = await env.rt.run_pod_sandbox(env.pod())
    text = (env.root / "sandboxes" / sid / "resolv.conf").read_text()
    assert "nameserver" not in text and "search example.test" in text
    assert any("loopback nameservers (127.0.0.53, ::1)" in r.getMessage() for r in caplog.records)
    node_resolv.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.53\n")
    sid = await env.rt.run_pod_sandbox(env.pod("other"))
    assert (env.root / "sandboxes" / sid / "resolv.conf").read_text() == "nameserver 192.0.2.53\n"


async def test_host_network_sandbox(env: Env) -> None:
    pod = env.pod(host_network=True)
    sid = await env.rt.run_pod_sandbox(pod)
    st = await env.rt.pod_sandbox_status(sid)
    assert st is not None and st.netns_path == "" and st.state == SandboxState.READY
    assert env.network.made == set()
    cid = await env.run(sid, pod, "host", ["hostname"])
    assert _messages(await wait_for(env.rt, cid, ContainerState.EXITED)) == [os.uname().nodename]
    await env.rt.remove_pod_sandbox(sid)


async def test_network_failure_propagates_and_leaves_nothing(env: Env) -> None:
    env.network.fail_with = "no IP addresses available in range"
    with pytest.raises(SandboxError, match="no IP addresses"):
        await env.rt.run_pod_sandbox(env.pod())
    assert await env.rt.list_pod_sandboxes() == []
    # the pod's IPC and UTS namespaces and its /dev/shm, made before the network, are released
    assert _mount_points_under(env.root) == [] and list((env.root / "sandboxes").iterdir()) == []


async def test_agent_restart_keeps_running_containers(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "long", ["sh", "-c", 'trap "exit 0" TERM; echo up; sleep 1000 & wait'])
    done = await env.run(sid, pod, "done", ["sh", "-c", "exit 5"])
    await wait_for_output(env.rt, cid, "up")
    before = await wait_for(env.rt, cid, ContainerState.RUNNING)
    await wait_for(env.rt, done, ContainerState.EXITED)
    conmon_pid = int((env.root / "containers" / cid / "conmon.pid").read_text())
    # conmon left the agent's cgroups (a service manager stopping the agent spares it)
    own = Path("/proc/self/cgroup").read_text()
    conmon_cgroups = Path(f"/proc/{conmon_pid}/cgroup").read_text()
    assert f"/{env.cgroup_root}/conmon" in conmon_cgroups and conmon_cgroups != own
    del env.rt  # the agent goes away; conmon and the container do not
    rt2 = env.new_runtime()
    env.rt = rt2
    st = await rt2.container_status(cid)
    assert st is not None and st.state == ContainerState.RUNNING
    assert (st.started_at, st.created_at, st.log_path) == (
        before.started_at,
        before.created_at,
        before.log_path,
    )
    assert os.path.exists(f"/proc/{conmon_pid}")
    old = await rt2.container_status(done)
    assert old is not None and (old.state, old.exit_code, old.reason) == (ContainerState.EXITED, 5, "Error")
    assert [s.id for s in await rt2.list_pod_sandboxes()] == [sid]
    assert {c.id for c in await rt2.list_containers(sid)} == {cid, done}
    await rt2.stop_container(cid, 10)
    st = await wait_for(rt2, cid, ContainerState.EXITED, timeout=1)
    assert st.exit_code == 0 and "up" in _messages(st)


async def test_cgroup_limits_are_applied(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    res = Resources(
        cpu_shares=512, cpu_quota=50000, cpu_period=100000, memory_limit=64 * 1024 * 1024, pids_limit=100
    )
    cid = await env.run(sid, pod, "limited", ["sleep", "1000"], resources=res)
    await wait_for(env.rt, cid, ContainerState.RUNNING)
    cg = f"/{env.cgroup_root}/{cid}"
    cgroups = env.rt.cgroups
    if cgroups.version == 1:
        assert cgroups.read("memory", cg, "memory.limit_in_bytes") == str(64 * 1024 * 1024)
        assert cgroups.read("cpu", cg, "cpu.cfs_quota_us") == "50000"
        assert cgroups.read("cpu", cg, "cpu.cfs_period_us") == "100000"
        assert cgroups.read("cpu", cg, "cpu.shares") == "512"
    else:
        assert cgroups.read("memory", cg, "memory.max") == str(64 * 1024 * 1024)
        assert cgroups.read("cpu", cg, "cpu.max") == "50000 100000"
    assert cgroups.read("pids", cg, "pids.max") == "100"
    # the container's init is in it
    pid = (env.root / "containers" / cid / "pid").read_text().strip()
    assert pid in (cgroups.read("memory", cg, "cgroup.procs") or "").split()


async def test_stats_of_a_busy_container(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "busy", ["sh", "-c", "while :; do :; done"])
    await wait_for(env.rt, cid, ContainerState.RUNNING)
    deadline = time.monotonic() + 20
    while True:
        stats = await env.rt.container_stats(cid)
        assert stats is not None
        if stats.cpu_usage_core_nanoseconds > 50_000_000 and stats.memory_working_set_bytes > 0:
            break
        assert time.monotonic() < deadline, stats
        await asyncio.sleep(0.05)
    assert stats.memory_usage_bytes >= stats.memory_working_set_bytes > 0
    assert abs(stats.timestamp - time.time()) < 5
    assert await env.rt.container_stats("f" * 64) is None
    together = await env.rt.list_container_stats([cid, "f" * 64])  # CRI's ListContainerStats
    assert list(together) == [cid] and together[cid].cpu_usage_core_nanoseconds >= stats.cpu_usage_core_nanoseconds


async def test_readonly_rootfs_mounts_and_capabilities(env: Env, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("from the host\n")
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    script = (
        "cat /data/file; touch /newfile 2>/dev/null && echo rootfs-writable || echo rootfs-readonly; "
        "touch /data/x 2>/dev/null && echo data-writable || echo data-readonly; grep CapEff /proc/self/status"
    )
    cid = await env.run(
        sid, pod, "ro", ["sh", "-c", script],
        mounts=(Mount(container_path="/data", host_path=str(data), readonly=True),),
        security=Security(readonly_rootfs=True, capabilities_drop=("ALL",), capabilities_add=("NET_BIND_SERVICE",)),
    )  # fmt: skip
    out = _messages(await wait_for(env.rt, cid, ContainerState.EXITED))
    assert out[:3] == ["from the host", "rootfs-readonly", "data-readonly"], out
    assert out[3].split() == ["CapEff:", f"{1 << 10:016x}"]  # CAP_NET_BIND_SERVICE is bit 10


async def test_cleanup_all_removes_everything(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    for i in range(2):
        await env.run(sid, pod, f"c{i}", ["sleep", "1000"])
    created = await env.rt.create_container(
        sid, ContainerConfig(name="never", image=IMAGE, command=("true",)), pod
    )
    assert (await env.rt.container_status(created)).state == ContainerState.CREATED  # type: ignore[union-attr]
    assert len(_conmons(env.root)) == 3
    await env.rt.cleanup_all()
    assert _leftovers(env) == []
    assert await env.rt.list_containers() == [] and await env.rt.list_pod_sandboxes() == []


async def test_with_the_real_image_store(env: Env, busybox_archive: Path) -> None:
    """The image store of kubelet/images.py: an imported busybox image runs, and the store will not
    delete it while a container's overlayfs stands on it."""
    from tests.helpers.images import BUSYBOX_REF, SKOPEO, image_id, require_image_tools

    from k8py.kubelet.images import ImageStore

    require_image_tools(SKOPEO, "/usr/bin/umoci")
    store = ImageStore(str(env.root.parent / "images"))
    [image] = await store.import_archive(busybox_archive)
    assert image.id == image_id(busybox_archive)
    env.rt = RuncRuntime(str(env.root), store, env.network, cgroup_root=env.cgroup_root)
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "real", ["sh", "-c", "id -un; ls /bin/httpd; sleep 1000"])
    await wait_for(env.rt, cid, ContainerState.RUNNING)
    st = await env.rt.container_status(cid)
    assert st is not None and st.image == BUSYBOX_REF and st.image_ref == image.id
    with pytest.raises(Exception, match="in use|used"):
        await env.rt.remove_image(BUSYBOX_REF)
    await env.rt.stop_container(cid, 0)
    st = await wait_for(env.rt, cid, ContainerState.EXITED)
    assert _messages(st) == ["root", "/bin/httpd"]
    await env.rt.remove_container(cid)
    await env.rt.remove_image(BUSYBOX_REF)
    assert await env.rt.image_status(BUSYBOX_REF) is None


async def test_tty_container(env: Env) -> None:
    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "tty", ["sh", "-c", "tty; echo done"], tty=True)
    st = await wait_for(env.rt, cid, ContainerState.EXITED)
    assert st.exit_code == 0, (Path(st.log_path).read_text(), st)
    out = [m.strip() for m in _messages(st)]
    assert out == ["/dev/pts/0", "done"], _log_lines(st)


async def test_a_running_containers_end_is_seen_through_one_pidfd(env: Env) -> None:
    """Once a container runs, each status read polls a pidfd of its init (opened once) instead
    of reading /proc: a kill from outside the runtime is still seen at once, and the pidfd is
    closed when the container has ended."""

    def pidfds() -> int:
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                n += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]"
        return n

    pod = env.pod()
    sid = await env.rt.run_pod_sandbox(pod)
    before = pidfds()
    cid = await env.run(sid, pod, "victim", ["sh", "-c", "echo ready; exec sleep 1000"])
    await wait_for_output(env.rt, cid, "ready")
    for _ in range(3):
        st = await env.rt.container_status(cid)
        assert st is not None and st.state == ContainerState.RUNNING
    assert pidfds() == before + 1
    pid = int((env.rt.root / "containers" / cid / "pid").read_text())
    os.kill(pid, signal.SIGKILL)
    st = await wait_for(env.rt, cid, ContainerState.EXITED, timeout=10)
    assert st.exit_code == 137
    assert pidfds() == before


async def test_the_pod_cgroup_gets_its_own_limits(env: Env) -> None:
    # kubelet's ResourceConfigForPod on the pod's cgroup, made before its containers go under it
    parent = f"{env.cgroup_root}/podlimits"
    res = CgroupResources(cpu_shares=768, cpu_quota=75_000, cpu_period=100_000, memory=96 * 1024 * 1024)
    pod = env.pod("limits", cgroup_parent=parent, resources=res)
    sid = await env.rt.run_pod_sandbox(pod)
    cid = await env.run(sid, pod, "main", ["sleep", "1000"])
    await wait_for(env.rt, cid, ContainerState.RUNNING)
    cg, cgroups = "/" + parent, env.rt.cgroups
    if cgroups.version == 1:
        assert [cgroups.read("cpu", cg, f) for f in ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us")] == \
            ["768", "75000", "100000"]
        assert cgroups.read("memory", cg, "memory.limit_in_bytes") == str(96 * 1024 * 1024)
    else:
        assert cgroups.read("cpu", cg, "cpu.max") == "75000 100000"
        assert cgroups.read("memory", cg, "memory.max") == str(96 * 1024 * 1024)
    # the container sits under it, and the sandbox read back from disk keeps what it asked for
    pid = (env.root / "containers" / cid / "pid").read_text().strip()
    assert pid in (cgroups.read("memory", f"{cg}/{cid}", "cgroup.procs") or "").split()
    again = await env.new_runtime().pod_sandbox_status(sid)
    assert again is not None
