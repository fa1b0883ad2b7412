"""The OCI spec the runc runtime writes (:mod:`k8py.kubelet.runtime.oci`) and the cgroup file
parsers (:mod:`k8py.kubelet.runtime.cgroups`): pure functions, no I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from k8py.kubelet.runtime import oci
from k8py.kubelet.runtime.cgroups import Cgroups, parse_flat_keyed, parse_v1_mounts
from k8py.kubelet.runtime.types import (
    ContainerConfig,
    CreateContainerError,
    DNSConfig,
    Image,
    Mount,
    Resources,
    SandboxConfig,
    Security,
)

IMAGE = Image(
    id="sha256:" + "0" * 64,
    entrypoint=["/entry"],
    cmd=["serve", "--port=80"],
    env=["PATH=/usr/bin:/bin", "LANG=C", "EMPTY="],
    working_dir="/srv",
    user="",
)
POD = SandboxConfig(name="web", namespace="default", uid="u1", hostname="web-0")
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\napp:x:1000:1001::/home/app:/bin/sh\n"
)
GROUP = "root:x:0:\nnobody:x:65534:\napp:x:1001:\nwheel:x:10:app,other\naudio:x:29:app\n"


def _config(**kw: Any) -> ContainerConfig:
    return ContainerConfig(name="app", image="img:1", **kw)


def _spec(config: ContainerConfig | None = None, pod: SandboxConfig = POD, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "config": config or _config(),
        "image": IMAGE,
        "sandbox": pod,
        "sandbox_dir": "/state/sandboxes/s1",
        "netns_path": "" if pod.host_network else "/run/netns/pod1",
        "cgroups_path": "/k8py/c1",
    }
    args.update(kw)
    return oci.build_spec(**args)


# --------------------------------------------------------------------------- process


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ((), (), ["/entry", "serve", "--port=80"]),  # neither: entrypoint + cmd
        (("/bin/sh",), (), ["/bin/sh"]),  # command drops the image's cmd too
        (("/bin/sh",), ("-c", "true"), ["/bin/sh", "-c", "true"]),  # command + args
        ((), ("--port=8080",), ["/entry", "--port=8080"]),  # args replace cmd only
    ],
)
def test_process_args_follow_kubernetes(
    command: tuple[str, ...], args: tuple[str, ...], expected: list[str]
) -> None:
    assert oci.process_args(_config(command=command, args=args), IMAGE) == expected


def test_process_args_without_entrypoint_and_nothing_to_run() -> None:
    no_entry = Image(id="x", cmd=["sh"])
    assert oci.process_args(_config(), no_entry) == ["sh"]
    assert oci.process_args(_config(args=("echo", "hi")), no_entry) == ["echo", "hi"]
    with pytest.raises(CreateContainerError, match="no command specified"):
        oci.process_args(_config(), Image(id="x"))


def test_env_is_the_image_overlaid_by_the_container() -> None:
    spec = _spec(_config(env=(("LANG", "en_US.UTF-8"), ("NEW", "1"), ("PATH", "/opt/bin"))))
    assert spec["process"]["env"] == [
        "PATH=/opt/bin",
        "HOSTNAME=web-0",
        "LANG=en_US.UTF-8",
        "EMPTY=",
        "NEW=1",
    ]
    # without PATH anywhere, runc's default
    plain = oci.build_spec(
        config=_config(command=("x",)),
        image=Image(id="x"),
        sandbox=POD,
        sandbox_dir="/s",
        netns_path="/run/netns/p",
        cgroups_path="/k/c",
    )
    assert plain["process"]["env"] == [f"PATH={oci.DEFAULT_PATH}", "HOSTNAME=web-0"]


def test_working_dir() -> None:
    assert _spec()["process"]["cwd"] == "/srv"
    assert _spec(_config(working_dir="/data"))["process"]["cwd"] == "/data"
    assert oci.build_spec(
        config=_config(command=("x",)), image=Image(id="x"), sandbox=POD, sandbox_dir="/s",
        netns_path="/n", cgroups_path="/c",
    )["process"]["cwd"] == "/"  # fmt: skip
    with pytest.raises(CreateContainerError, match="must be absolute"):
        _spec(_config(working_dir="relative"))


# --------------------------------------------------------------------------- users


@pytest.mark.parametrize(
    ("security", "image_user", "expected"),
    [
        (Security(), "", (0, 0, [])),
        (Security(), "1000", (1000, 1001, [10, 29])),  # gid and groups from the image's files
        (Security(), "4242", (4242, 0, [])),  # unknown uid: gid 0
        (Security(), "1000:50", (1000, 50, [10, 29])),
        (Security(), "app", (1000, 1001, [10, 29])),
        (Security(), "app:wheel", (1000, 10, [29])),
        (Security(), "nobody:app", (65534, 1001, [])),
        (Security(run_as_user=65534), "app", (65534, 65534, [])),  # the pod wins over the image
        (Security(run_as_user=1000, run_as_group=7), "", (1000, 7, [10, 29])),
        (Security(run_as_group=7), "app", (1000, 7, [10, 29])),
        (Security(run_as_user=5, supplemental_groups=(3000, 3001)), "", (5, 0, [3000, 3001])),
    ],
)
def test_user_resolution(security: Security, image_user: str, expected: tuple[int, int, list[int]]) -> None:
    assert oci.resolve_user(security, image_user, PASSWD, GROUP) == expected


def test_user_names_the_image_does_not_know() -> None:
    with pytest.raises(CreateContainerError, match="unable to find user ghost"):
        oci.resolve_user(Security(), "ghost", PASSWD, GROUP)
    with pytest.raises(CreateContainerError, match="unable to find group ghosts"):
        oci.resolve_user(Security(), "app:ghosts", PASSWD, GROUP)
    with pytest.raises(CreateContainerError, match="unable to find user app"):
        oci.resolve_user(Security(), "app", None, None)  # an image without /etc/passwd


def test_user_in_the_spec() -> None:
    spec = _spec(
        _config(security=Security(run_as_user=1000, supplemental_groups=(5,))), passwd=PASSWD, group=GROUP
    )
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [10, 29, 5]}
    assert _spec()["process"]["user"] == {"uid": 0, "gid": 0}


# --------------------------------------------------------------------------- capabilities


def test_default_capabilities_are_containerds() -> None:
    assert oci.capabilities(Security()) == list(oci.DEFAULT_CAPABILITIES)
    assert len(oci.DEFAULT_CAPABILITIES) == 14 and "CAP_SYS_ADMIN" not in oci.DEFAULT_CAPABILITIES
    caps = _spec()["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == list(oci.DEFAULT_CAPABILITIES)
    assert "inheritable" not in caps and "ambient" not in caps


def test_capabilities_add_and_drop() -> None:
    caps = oci.capabilities(
        Security(capabilities_add=("NET_ADMIN", "CAP_SYS_TIME"), capabilities_drop=("KILL",))
    )
    assert caps == [c for c in oci.DEFAULT_CAPABILITIES if c != "CAP_KILL"] + [
        "CAP_NET_ADMIN",
        "CAP_SYS_TIME",
    ]
    assert oci.capabilities(Security(capabilities_drop=("ALL",))) == []
    assert oci.capabilities(Security(capabilities_drop=("ALL",), capabilities_add=("NET_BIND_SERVICE",))) == [
        "CAP_NET_BIND_SERVICE"
    ]
    assert oci.capabilities(Security(capabilities_add=("ALL",), capabilities_drop=("chown",))) == [
        c for c in oci.ALL_CAPABILITIES if c != "CAP_CHOWN"
    ]
    # dropping ALL wins over adding ALL (containerd's order), single adds still apply
    assert oci.capabilities(Security(capabilities_add=("ALL", "KILL"), capabilities_drop=("ALL",))) == [
        "CAP_KILL"
    ]
    with pytest.raises(CreateContainerError, match="unknown capability 'NET_FOO'"):
        oci.capabilities(Security(capabilities_add=("NET_FOO",)))


def test_privileged() -> None:
    spec = _spec(_config(security=Security(privileged=True, no_new_privs=True)))
    assert spec["process"]["capabilities"]["bounding"] == list(oci.ALL_CAPABILITIES)
    assert "maskedPaths" not in spec["linux"] and "readonlyPaths" not in spec["linux"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sys_mount["options"]
    assert spec["process"]["noNewPrivileges"] is False


def test_unprivileged_defaults() -> None:
    spec = _spec(_config(security=Security(no_new_privs=True, readonly_rootfs=True)))
    assert spec["linux"]["maskedPaths"] == list(oci.MASKED_PATHS) and "/proc/kcore" in oci.MASKED_PATHS
    assert spec["linux"]["readonlyPaths"] == list(oci.READONLY_PATHS) and "/proc/sys" in oci.READONLY_PATHS
    assert spec["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert "ro" in next(m for m in spec["mounts"] if m["destination"] == "/sys")["options"]
    assert "ro" in next(m for m in spec["mounts"] if m["destination"] == "/etc/hosts")["options"]


def test_stop_signal() -> None:
    assert oci.stop_signal(_config(), IMAGE) == "SIGTERM"
    assert oci.stop_signal(_config(), Image(id="x", stop_signal="SIGQUIT")) == "SIGQUIT"
    assert oci.stop_signal(_config(stop_signal="usr1"), Image(id="x", stop_signal="SIGQUIT")) == "SIGUSR1"
    assert oci.stop_signal(_config(stop_signal="9"), IMAGE) == "SIGKILL"
    with pytest.raises(CreateContainerError, match="unknown stop signal 'SIGNOPE'"):
        oci.stop_signal(_config(stop_signal="SIGNOPE"), IMAGE)


# --------------------------------------------------------------------------- namespaces, mounts


def test_namespaces_join_the_sandbox_network() -> None:
    # no ipc/uts paths (a sandbox made before the runtime kept them): the container's own ipc and
    # uts namespaces, given the pod's hostname
    spec = _spec()
    assert spec["linux"]["namespaces"] == [
        {"type": "mount"},
        {"type": "pid"},
        {"type": "ipc"},
        {"type": "uts"},
        {"type": "network", "path": "/run/netns/pod1"},
    ]
    assert spec["hostname"] == "web-0"
    assert spec["ociVersion"] == oci.OCI_VERSION


IPC_NS, UTS_NS, SHM = "/state/sandboxes/s1/ipcns", "/state/sandboxes/s1/utsns", "/state/sandboxes/s1/shm"


def test_containers_join_the_pods_ipc_and_uts_namespaces_and_shm() -> None:
    # as kube's containers join the pause container's: by path; the hostname is the namespace's
    # own (set when the runtime made it), so a container's start does not set it again
    spec = _spec(ipc_namespace_path=IPC_NS, uts_namespace_path=UTS_NS, shm_path=SHM)
    assert spec["linux"]["namespaces"] == [
        {"type": "mount"},
        {"type": "pid"},
        {"type": "ipc", "path": IPC_NS},
        {"type": "uts", "path": UTS_NS},
        {"type": "network", "path": "/run/netns/pod1"},
    ]
    assert "hostname" not in spec
    assert "HOSTNAME=web-0" in spec["process"]["env"]
    mounts = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert mounts == [{"destination": "/dev/shm", "type": "bind", "source": SHM, "options": ["rbind", "rprivate", "rw"]}]
    # where the standard one stood, and a container's own mount there still wins
    assert [m["destination"] for m in spec["mounts"]][:5] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"]
    own = _spec(_config(mounts=(Mount("/dev/shm", "/var/lib/pods/u1/volumes/dshm"),)), shm_path=SHM)
    assert [m["source"] for m in own["mounts"] if m["destination"] == "/dev/shm"] == ["/var/lib/pods/u1/volumes/dshm"]


def test_host_ipc_and_host_network_keep_the_nodes_namespaces_whatever_the_paths() -> None:
    kw = {"ipc_namespace_path": IPC_NS, "uts_namespace_path": UTS_NS, "shm_path": "/dev/shm"}
    pod = SandboxConfig(name="web", namespace="default", uid="u1", host_ipc=True)
    spec = _spec(pod=pod, **kw)
    assert spec["linux"]["namespaces"] == [
        {"type": "mount"}, {"type": "pid"}, {"type": "uts", "path": UTS_NS}, {"type": "network", "path": "/run/netns/pod1"},
    ]  # fmt: skip
    assert [m["source"] for m in spec["mounts"] if m["destination"] == "/dev/shm"] == ["/dev/shm"]
    pod = SandboxConfig(name="web", namespace="default", uid="u1", host_network=True)
    spec = _spec(pod=pod, **kw)
    assert spec["linux"]["namespaces"] == [{"type": "mount"}, {"type": "pid"}, {"type": "ipc", "path": IPC_NS}]
    assert "hostname" not in spec


def test_host_network_shares_the_nodes_network_and_hostname() -> None:
    pod = SandboxConfig(name="web", namespace="default", uid="u1", host_network=True, sysctls={"net.x": "1"})
    spec = _spec(pod=pod)
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["mount", "pid", "ipc"]
    assert "hostname" not in spec and "sysctl" not in spec["linux"]
    with pytest.raises(CreateContainerError, match="no network namespace"):
        _spec(netns_path="")


def test_host_pid_and_ipc_share_the_nodes_namespaces() -> None:
    pod = SandboxConfig(name="web", namespace="default", uid="u1", host_pid=True, host_ipc=True)
    assert [n["type"] for n in _spec(pod=pod)["linux"]["namespaces"]] == ["mount", "uts", "network"]
    pod = SandboxConfig(name="web", namespace="default", uid="u1", host_pid=True)
    assert [n["type"] for n in _spec(pod=pod)["linux"]["namespaces"]] == ["mount", "ipc", "uts", "network"]


def test_standard_and_sandbox_mounts() -> None:
    mounts = {m["destination"]: m for m in _spec()["mounts"]}
    assert list(mounts) == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
        "/etc/hosts", "/etc/resolv.conf", "/etc/hostname",
    ]  # fmt: skip
    assert mounts["/proc"]["type"] == "proc" and mounts["/dev/pts"]["type"] == "devpts"
    assert mounts["/sys/fs/cgroup"]["type"] == "cgroup" and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert mounts["/etc/hosts"] == {
        "destination": "/etc/hosts",
        "type": "bind",
        "source": "/state/sandboxes/s1/hosts",
        "options": ["rbind", "rprivate", "rw"],
    }
    assert mounts["/etc/resolv.conf"]["source"] == "/state/sandboxes/s1/resolv.conf"


def test_container_mounts_win_and_nest_in_order() -> None:
    config = _config(
        mounts=(
            Mount("/data/cache", "/host/cache"),
            Mount("/etc/hosts", "/host/my-hosts", readonly=True),
            Mount("/data", "/host/data", propagation="HostToContainer"),
            Mount("/shared/", "/host/shared", propagation="Bidirectional"),
        )
    )
    mounts = _spec(config)["mounts"]
    assert [m["destination"] for m in mounts if m["destination"] == "/etc/hosts"] == ["/etc/hosts"]
    user = mounts[-4:]
    assert [(m["destination"], m["source"], m["options"]) for m in user] == [
        ("/data", "/host/data", ["rbind", "rslave", "rw"]),
        ("/shared", "/host/shared", ["rbind", "rshared", "rw"]),
        ("/data/cache", "/host/cache", ["rbind", "rprivate", "rw"]),
        ("/etc/hosts", "/host/my-hosts", ["rbind", "rprivate", "ro"]),
    ]
    with pytest.raises(CreateContainerError, match="must be absolute"):
        _spec(_config(mounts=(Mount("data", "/host"),)))
    with pytest.raises(CreateContainerError, match="unknown propagation"):
        _spec(_config(mounts=(Mount("/data", "/host", propagation="Sideways"),)))


def test_sysctls_from_the_sandbox() -> None:
    pod = SandboxConfig(
        name="w", namespace="d", uid="u", sysctls={"net.ipv4.ip_unprivileged_port_start": "0"}
    )
    assert _spec(pod=pod)["linux"]["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "0"}


# --------------------------------------------------------------------------- resources


def test_resources() -> None:
    res = Resources(
        cpu_shares=512,
        cpu_quota=50000,
        cpu_period=100000,
        memory_limit=64 << 20,
        pids_limit=100,
        oom_score_adj=999,
    )
    spec = _spec(_config(resources=res))
    r = spec["linux"]["resources"]
    assert r["cpu"] == {"shares": 512, "quota": 50000, "period": 100000}
    assert r["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert r["pids"] == {"limit": 100}
    assert spec["process"]["oomScoreAdj"] == 999
    assert spec["linux"]["cgroupsPath"] == "/k8py/c1"
    # no swap accounting on the node: no swap limit (runc would refuse it)
    assert _spec(_config(resources=res), swap_accounting=False)["linux"]["resources"]["memory"] == {
        "limit": 64 << 20
    }
    # nothing asked: only the device rule, no oomScoreAdj
    bare = _spec()
    assert bare["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert "oomScoreAdj" not in bare["process"]
    # a quota without a period gets the default period; shares are at least 2
    r2 = _spec(_config(resources=Resources(cpu_quota=20000, cpu_shares=1)))["linux"]["resources"]
    assert r2["cpu"] == {"shares": 2, "quota": 20000, "period": 100000}


def test_cgroups_path() -> None:
    assert oci.cgroups_path("", "k8py", "c1") == "/k8py/c1"
    assert oci.cgroups_path("kubepods/burstable/podu1", "k8py", "c1") == "/kubepods/burstable/podu1/c1"
    assert oci.cgroups_path("/kubepods/", "k8py", "c1") == "/kubepods/c1"
    with pytest.raises(CreateContainerError, match=r"may not contain '\.\.'"):
        oci.cgroups_path("kubepods/../..", "k8py", "c1")


# --------------------------------------------------------------------------- sandbox files


def test_hosts_file() -> None:
    pod = SandboxConfig(
        name="web",
        namespace="d",
        uid="u",
        hostname="box",
        host_aliases=(("10.1.2.3", ("a.local", "b.local")),),
    )
    text = oci.hosts_file(pod, ("10.244.0.5", "fd00::5"))
    lines = text.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert "127.0.0.1\tlocalhost" in lines and "::1\tlocalhost ip6-localhost ip6-loopback" in lines
    assert "10.244.0.5\tbox" in lines and "fd00::5\tbox" in lines
    assert lines[-2:] == ["# Entries added by HostAliases.", "10.1.2.3\ta.local\tb.local"]
    # without a hostname: the pod's name
    assert "10.244.0.5\tweb" in oci.hosts_file(
        SandboxConfig(name="web", namespace="d", uid="u"), ("10.244.0.5",)
    )


def test_hosts_file_of_a_host_network_pod_is_the_nodes() -> None:
    pod = SandboxConfig(name="web", namespace="d", uid="u", host_network=True)
    text = oci.hosts_file(pod, (), "127.0.0.1 localhost\n192.0.2.1 node1")
    assert text == "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n192.0.2.1 node1\n"


def test_resolv_conf_from_the_pods_dns_config() -> None:
    dns = DNSConfig(
        servers=("10.96.0.10",), searches=("ns.svc.cluster.local", "svc.cluster.local"), options=("ndots:5",)
    )
    text, warning = oci.resolv_conf(dns, "nameserver 192.0.2.53\n", False)
    assert text == "nameserver 10.96.0.10\nsearch ns.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
    assert warning == ""


def test_resolv_conf_from_the_node_drops_loopback_nameservers() -> None:
    node = "# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver ::1\nsearch example.test\n"
    text, warning = oci.resolv_conf(None, node, False)
    assert text == "# generated\nnameserver 192.0.2.53\nsearch example.test\n" and warning == ""
    # an empty DNSConfig is the node's too
    assert oci.resolv_conf(DNSConfig(), node, False) == (text, "")
    # a host-network pod reaches the node's loopback resolver: kept
    assert oci.resolv_conf(None, node, True) == (node, "")
    text, warning = oci.resolv_conf(None, "nameserver 127.0.0.53\noptions edns0\n", False)
    assert text == "options edns0\n"
    assert "only loopback nameservers (127.0.0.53)" in warning and "no nameserver" in warning


# --------------------------------------------------------------------------- cgroup files

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/net_cls,net_prio rw,relatime - cgroup cgroup rw,xattr,net_cls,net_prio
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_v1_mounts_and_paths() -> None:
    mounts = parse_v1_mounts(MOUNTINFO)
    assert mounts == {
        "cpu": "/sys/fs/cgroup/cpu",
        "cpuacct": "/sys/fs/cgroup/cpuacct",
        "memory": "/sys/fs/cgroup/memory",
        "net_cls": "/sys/fs/cgroup/net_cls,net_prio",
        "net_prio": "/sys/fs/cgroup/net_cls,net_prio",
        "name=systemd": "/sys/fs/cgroup/systemd",
        "unified": "/sys/fs/cgroup/unified",
    }
    cg = Cgroups(version=1, mounts=mounts)
    assert cg.path("memory", "/k8py/c1") == "/sys/fs/cgroup/memory/k8py/c1"
    assert cg.path("pids", "/k8py/c1") is None
    assert "/sys/fs/cgroup/cpu/k8py/c1" in cg.directories("/k8py/c1")
    v2 = Cgroups(version=2)
    assert v2.path("memory", "/k8py/c1") == v2.directories("/k8py/c1")[0] == "/sys/fs/cgroup/k8py/c1"


def test_flat_keyed_files() -> None:
    assert parse_flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")["oom_kill"] == 2
    assert parse_flat_keyed("usage_usec 1500\nnr_periods x\nbad\n") == {"usage_usec": 1500}


def _write(d: Path, files: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)


def test_stats_and_oom_kills_v1(tmp_path: Path) -> None:
    mounts = {"cpuacct": str(tmp_path / "cpuacct"), "memory": str(tmp_path / "memory")}
    _write(tmp_path / "cpuacct/k8py/c1", {"cpuacct.usage": "123456789\n"})
    _write(
        tmp_path / "memory/k8py/c1",
        {
            "memory.usage_in_bytes": "10000\n",
            "memory.stat": "cache 1\ntotal_inactive_file 3000\ntotal_rss 6000\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        },
    )
    cg = Cgroups(version=1, mounts=mounts)
    st = cg.stats("/k8py/c1")
    assert st is not None
    assert (st.cpu_usage_core_nanoseconds, st.memory_usage_bytes, st.memory_working_set_bytes, st.rss_bytes) == (
        123456789, 10000, 7000, 6000,
    )  # fmt: skip
    assert cg.oom_kills("/k8py/c1") == 1
    assert cg.stats("/k8py/gone") is None and cg.oom_kills("/k8py/gone") == 0


def test_stats_and_oom_kills_v2(tmp_path: Path) -> None:
    _write(
        tmp_path / "k8py/c1",
        {
            "cpu.stat": "usage_usec 2000\nuser_usec 1500\n",
            "memory.current": "50000\n",
            "memory.stat": "anon 20000\ninactive_file 10000\n",
            "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        },
    )
    cg = Cgroups(version=2, root=str(tmp_path))
    st = cg.stats("/k8py/c1")
    assert st is not None
    assert (st.cpu_usage_core_nanoseconds, st.memory_usage_bytes, st.memory_working_set_bytes, st.rss_bytes) == (
        2_000_000, 50000, 40000, 20000,
    )  # fmt: skip
    assert cg.oom_kills("/k8py/c1") == 1
    assert cg.remove(["/k8py/c1"]) == [str(tmp_path / "k8py/c1")]  # not empty: busy, left
    assert cg.remove(["/k8py/none"]) == []


def test_enter_moves_a_process_into_every_hierarchy_but_cpuset(tmp_path: Path) -> None:
    mounts = {c: str(tmp_path / c) for c in ("memory", "cpuset", "name=systemd", "unified")}
    cg = Cgroups(version=1, mounts=mounts)
    assert cg.enter("/k8py/conmon", 4242) == []
    for c in ("memory", "name=systemd", "unified"):
        assert (tmp_path / c / "k8py/conmon/cgroup.procs").read_text() == "4242"
    assert not (tmp_path / "cpuset/k8py").exists()
    (tmp_path / "memory/k8py/conmon/cgroup.procs").unlink()
    (tmp_path / "memory/k8py/conmon/cgroup.procs").mkdir()  # a file that cannot be written
    [error] = cg.enter("/k8py/conmon", 4242)
    assert error.startswith(str(tmp_path / "memory/k8py/conmon") + ": ")
