"""The volume manager's parts on temporary directories: kubelet's atomic writer, the ConfigMap /
Secret / downward API / projected payloads (items, modes, optional), hostPath types, fsGroup,
tmpfs sizes, and the manager's update, wait and tear-down paths against a small fake API (root
only where a tmpfs or a bind mount is made); last, the manager wired into the agent on the fake
runtime against an in-process API server."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.cluster import InProcessCluster

from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.client.errors import NotFoundError
from k8py.kubelet.agent import Agent, AgentConfig
from k8py.kubelet.runtime.fake import FakeRuntime
from k8py.kubelet.runtime.types import ContainerConfig, Mount
from k8py.kubelet.spec import ConfigError, NodeFacts
from k8py.kubelet.volumes import (
    AtomicWriter,
    FileProjection,
    VolumeError,
    VolumeManager,
    check_host_path,
    configmap_payload,
    downward_payload,
    empty_dir_memory_size,
    format_map,
    mounts_under,
    projected_payload,
    secret_payload,
    set_ownership,
    teardown_dir,
    volume_path,
)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mounts need root")
NODE = NodeFacts(name="n1", memory_allocatable=8 << 30, cpu_allocatable_milli=4000)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


# --------------------------------------------------------------------------- the atomic writer


def test_atomic_writer_layout(tmp_path: Path) -> None:
    w = AtomicWriter(str(tmp_path))
    assert w.write({"a": FileProjection(b"A", 0o600), "dir/b": FileProjection(b"B", 0o644)})
    data = os.readlink(tmp_path / "..data")
    assert data.startswith("..") and (tmp_path / data).is_dir() and mode(tmp_path / data) == 0o755
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "dir") == "..data/dir"
    assert (tmp_path / "a").read_bytes() == b"A" and mode(tmp_path / "a") == 0o600
    assert (tmp_path / "dir" / "b").read_bytes() == b"B" and mode(tmp_path / "dir" / "b") == 0o644
    assert sorted(os.listdir(tmp_path)) == sorted(["..data", data, "a", "dir"])


def test_atomic_writer_update_swaps_data_and_prunes(tmp_path: Path) -> None:
    w = AtomicWriter(str(tmp_path))
    w.write({"a": FileProjection(b"1"), "gone": FileProjection(b"x")})
    first = os.readlink(tmp_path / "..data")
    held = open(tmp_path / "a", "rb")  # noqa: SIM115 - a reader that opened the old version keeps reading it
    try:
        assert not w.write({"a": FileProjection(b"1"), "gone": FileProjection(b"x")}), "nothing changed"
        assert os.readlink(tmp_path / "..data") == first
        assert w.write({"a": FileProjection(b"2"), "new": FileProjection(b"n")})
        second = os.readlink(tmp_path / "..data")
        assert second != first and not (tmp_path / first).exists()
        assert (tmp_path / "a").read_bytes() == b"2" and (tmp_path / "new").read_bytes() == b"n"
        assert not os.path.lexists(tmp_path / "gone")
        assert held.read() == b"1"
    finally:
        held.close()
    assert w.write({"a": FileProjection(b"2", 0o400), "new": FileProjection(b"n")}), "a new mode is a change"
    assert mode(tmp_path / "a") == 0o400
    (tmp_path / "..2020_01_01_00_00_00.123").mkdir()  # left by a write that was interrupted
    (tmp_path / "..data_tmp").symlink_to("..2020_01_01_00_00_00.123")
    assert w.write({"a": FileProjection(b"3")})
    assert sorted(os.listdir(tmp_path)) == sorted(["..data", os.readlink(tmp_path / "..data"), "a"])


@pytest.mark.parametrize(("path", "message"), [
    ("/abs", "invalid path: must be relative path: /abs"),
    ("a/../b", "invalid path: must not contain '..': a/../b"),
    ("..hidden", "invalid path: must not start with '..': ..hidden"),
    ("", 'invalid path: must not be empty: ""'),
])
def test_atomic_writer_refuses_bad_paths(tmp_path: Path, path: str, message: str) -> None:
    with pytest.raises(VolumeError) as e:
        AtomicWriter(str(tmp_path)).write({path: FileProjection(b"")})
    assert str(e.value) == message
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- payloads


CM = {"data": {"k1": "v1", "k2": "v2"}, "binaryData": {"bin": b64("\x00\x01")}}


def test_configmap_payload_all_keys_items_and_modes() -> None:
    out = configmap_payload({"name": "cm", "defaultMode": 0o640}, CM)
    assert out == {"k1": FileProjection(b"v1", 0o640), "k2": FileProjection(b"v2", 0o640),
                   "bin": FileProjection(b"\x00\x01", 0o640)}
    out = configmap_payload({"name": "cm", "items": [{"key": "k1", "path": "sub/one", "mode": 0o400},
                                                     {"key": "k2", "path": "two"}]}, CM)
    assert out == {"sub/one": FileProjection(b"v1", 0o400), "two": FileProjection(b"v2", 0o644)}


def test_configmap_payload_missing_object_and_key() -> None:
    with pytest.raises(VolumeError, match=r'^configmap "cm" not found$'):
        configmap_payload({"name": "cm"}, None)
    assert configmap_payload({"name": "cm", "optional": True}, None) == {}
    with pytest.raises(VolumeError, match=r"^configmap references non-existent config key: nope$"):
        configmap_payload({"name": "cm", "items": [{"key": "nope", "path": "x"}]}, CM)
    assert configmap_payload({"name": "cm", "optional": True,
                              "items": [{"key": "nope", "path": "x"}, {"key": "k1", "path": "y"}]}, CM) == {
        "y": FileProjection(b"v1")}


def test_secret_payload_decodes_and_fails_as_kubelet() -> None:
    sec = {"data": {"user": b64("admin"), "pw": b64("s3cr3t")}}
    assert secret_payload({"secretName": "s", "defaultMode": 0o400}, sec) == {
        "user": FileProjection(b"admin", 0o400), "pw": FileProjection(b"s3cr3t", 0o400)}
    with pytest.raises(VolumeError, match=r'^secret "s" not found$'):
        secret_payload({"secretName": "s"}, None)
    with pytest.raises(VolumeError, match=r"^references non-existent secret key: x$"):
        secret_payload({"secretName": "s", "items": [{"key": "x", "path": "x"}]}, sec)


POD: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "ns", "uid": "u-1", "labels": {"app": "web", "tier": "a \"b\""},
                 "annotations": {"note": "line1\nline2"}},
    "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}]},
}


def test_format_map_is_kubelets() -> None:
    assert format_map({"b": "2", "a": 'x "q"\n'}) == 'a="x \\"q\\"\\n"\nb="2"'
    assert format_map({}) == ""


def test_downward_payload() -> None:
    items = [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
             {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}, "mode": 0o600},
             {"path": "meta/name", "fieldRef": {"fieldPath": "metadata.name"}},
             {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
             {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory",
                                                  "divisor": "1Mi"}},
             {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}}]
    out = downward_payload(items, POD, NODE, 0o644)
    assert out["labels"].data == b'app="web"\ntier="a \\"b\\""'
    assert out["annotations"] == FileProjection(b'note="line1\\nline2"', 0o600)
    assert out["meta/name"].data == b"web" and out["app"].data == b"web"
    assert out["mem"].data == b"64" and out["cpu"].data == b"500"
    with pytest.raises(VolumeError, match=r"^unsupported fieldPath: spec.nodeName$"):
        downward_payload([{"path": "n", "fieldRef": {"fieldPath": "spec.nodeName"}}], POD, NODE, None)


def test_projected_payload_sources_modes_and_errors() -> None:
    objects: dict[tuple[str, str], Any] = {("ConfigMap", "cm"): CM, ("Secret", "s"): {"data": {"pw": b64("x")}}}
    src = {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cm", "items": [{"key": "k1", "path": "conf/k1"}]}},
        {"secret": {"name": "s", "items": [{"key": "pw", "path": "pw", "mode": 0o400}]}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}
    assert projected_payload(src, POD, NODE, objects) == {
        "conf/k1": FileProjection(b"v1", 0o440), "pw": FileProjection(b"x", 0o400), "name": FileProjection(b"web", 0o440)}
    bad = {"sources": [{"configMap": {"name": "other"}}, {"secret": {"name": "gone"}},
                       {"secret": {"name": "maybe", "optional": True}}]}
    with pytest.raises(VolumeError) as e:
        projected_payload(bad, POD, NODE, {("ConfigMap", "other"): None, ("Secret", "gone"): None})
    assert str(e.value) == '[configmap "other" not found, secret "gone" not found]'
    token_src = {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}
    assert projected_payload(token_src, POD, NODE, {}, {0: "jwt"}) == {"token": FileProjection(b"jwt", 0o644)}
    with pytest.raises(VolumeError, match="failed to fetch token: no token was fetched"):
        projected_payload(token_src, POD, NODE, {})


# --------------------------------------------------------------------------- hostPath, fsGroup, sizes


def test_host_path_types(tmp_path: Path) -> None:
    d = tmp_path / "made" / "deep"
    check_host_path(str(d), "DirectoryOrCreate")
    assert d.is_dir() and mode(d) == 0o755
    f = tmp_path / "f"
    check_host_path(str(f), "FileOrCreate")
    assert f.is_file() and f.read_bytes() == b""
    with pytest.raises(VolumeError, match=r"^open .*/missing/f: no such file or directory$"):
        check_host_path(str(tmp_path / "missing" / "f"), "FileOrCreate")
    check_host_path(str(f), "File")
    check_host_path(str(d), "Directory")
    check_host_path(str(tmp_path / "anything"), None)  # no type: no check
    with pytest.raises(VolumeError) as e:
        check_host_path(str(f), "Directory")
    assert str(e.value) == f"hostPath type check failed: {f} is not a directory, it's a File"
    with pytest.raises(VolumeError) as e:
        check_host_path(str(d), "FileOrCreate")
    assert str(e.value) == f"hostPath type check failed: {d} is not a file, it's a Directory"
    with pytest.raises(VolumeError) as e:
        check_host_path(str(tmp_path / "nope"), "Directory")
    assert str(e.value) == f"hostPath {tmp_path / 'nope'} doesn't exist"
    sock = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock))
        check_host_path(str(sock), "Socket")
    check_host_path("/dev/null", "CharDevice")
    with pytest.raises(VolumeError, match=r"^hostPath type check failed: /dev/null is not a block device, it's a "
                                          r"CharDevice$"):
        check_host_path("/dev/null", "BlockDevice")
    with pytest.raises(VolumeError, match=r"^hostPath type check failed: .* is not a socket file, it's a File$"):
        check_host_path(str(f), "Socket")
    with pytest.raises(VolumeError, match=r"^Weird is an invalid volume type$"):
        check_host_path(str(f), "Weird")


@needs_root
def test_fs_group_ownership(tmp_path: Path) -> None:
    AtomicWriter(str(tmp_path)).write({"a": FileProjection(b"A", 0o400), "d/b": FileProjection(b"B", 0o600)},
                                      lambda d: set_ownership(d, 4321, True))
    for p in (tmp_path / "a", tmp_path / "d" / "b"):
        assert os.stat(p).st_gid == 4321
    assert mode(tmp_path / "a") == 0o440 and mode(tmp_path / "d" / "b") == 0o640
    assert os.stat(tmp_path / "d").st_mode & stat.S_ISGID
    rw = tmp_path / "rw"
    rw.mkdir(mode=0o777)
    (rw / "f").write_text("x")
    os.chmod(rw / "f", 0o600)
    set_ownership(str(rw), 4321, False)
    assert mode(rw / "f") == 0o660 and os.stat(rw).st_mode & stat.S_ISGID


def test_empty_dir_memory_size() -> None:
    def pod(*limits: str | None, inits: tuple[str | None, ...] = ()) -> dict[str, Any]:
        def c(x: str | None) -> dict[str, Any]:
            return {"name": "c", "resources": {"limits": {"memory": x}} if x else {}}
        return {"spec": {"containers": [c(x) for x in limits], "initContainers": [c(x) for x in inits]}}

    mem = {"emptyDir": {"medium": "Memory"}}
    assert empty_dir_memory_size(mem, pod(None), 8 << 30) == 8 << 30  # the node's allocatable
    assert empty_dir_memory_size(mem, pod("64Mi", "64Mi"), 8 << 30) == 128 << 20  # the pod's limit
    assert empty_dir_memory_size(mem, pod("64Mi", None), 8 << 30) == 8 << 30  # not every container has one
    assert empty_dir_memory_size(mem, pod("64Mi", inits=("256Mi",)), 8 << 30) == 256 << 20
    sized = {"emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
    assert empty_dir_memory_size(sized, pod("64Mi"), 8 << 30) == 16 << 20
    assert empty_dir_memory_size({"emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}, pod("64Mi"), 8 << 30) == 64 << 20


# --------------------------------------------------------------------------- the manager


class FakeAPI:
    """``get`` of ConfigMaps and Secrets from a dict, NotFound otherwise."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    async def get(self, kind: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        obj = self.objects.get((kind[1], namespace or "", name))
        if obj is None:
            raise NotFoundError({"reason": "NotFound", "message": f"{name} not found"}, 404)
        return obj


def manager(tmp_path: Path, api: FakeAPI, events: list[tuple[str, str]] | None = None,
            evicted: list[tuple[str, str]] | None = None) -> VolumeManager:
    return VolumeManager(api, str(tmp_path / "pods"), facts=lambda: NODE,  # type: ignore[arg-type]
                         record=lambda o, t, r, m: (events if events is not None else []).append((r, m)),
                         wake=lambda uid: None, evict=lambda uid, m: (evicted if evicted is not None else []).append(
                             (uid, m)), watch=False)


def vpod(uid: str, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid, "labels": {"v": "1"}},
            "spec": {"volumes": volumes, "containers": [{"name": "app", "volumeMounts": mounts or []}]}}


async def mount_until_ready(m: VolumeManager, pod: dict[str, Any], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not (await m.mount(pod)).ready:
        assert time.monotonic() < deadline, "the volumes were not set up in time"
        await asyncio.sleep(0.1)


async def test_update_path_waits_for_a_missing_configmap_then_follows_changes(tmp_path: Path) -> None:
    api = FakeAPI()
    events: list[tuple[str, str]] = []
    m = manager(tmp_path, api, events)
    p = vpod("u-1", [{"name": "cfg", "configMap": {"name": "cm", "defaultMode": 0o644}},
                     {"name": "info", "downwardAPI": {"items": [{"path": "labels",
                                                                  "fieldRef": {"fieldPath": "metadata.labels"}}]}}])
    r = await m.mount(p)
    assert not r.ready and r.retry_at is not None
    assert events == [("FailedMount", 'MountVolume.SetUp failed for volume "cfg" : configmap "cm" not found')]
    r2 = await m.mount(p)  # within the back-off: no second attempt, no second event
    assert not r2.ready and len(events) == 1
    api.objects[("ConfigMap", "ns", "cm")] = {"data": {"k": "one"}}
    await mount_until_ready(m, p)
    root = Path(m.paths(p)["cfg"])
    assert root == tmp_path / "pods" / "u-1" / "volumes" / "kubernetes.io~configmap" / "cfg"
    assert (root / "k").read_text() == "one" and mode(root) == 0o777
    api.objects[("ConfigMap", "ns", "cm")] = {"data": {"k": "two"}}
    assert (await m.mount(p)).ready
    assert (root / "k").read_text() == "two"
    p2 = {**p, "metadata": {**p["metadata"], "labels": {"v": "2"}}}
    await m.mount(p2)
    assert (Path(m.paths(p)["info"]) / "labels").read_text() == 'v="2"'
    del api.objects[("ConfigMap", "ns", "cm")]  # gone after it was set up: the files stay, the pod runs on
    r3 = await m.mount(p2)
    assert r3.ready and (root / "k").read_text() == "two"
    assert events[-1] == ("FailedMount", 'MountVolume.SetUp failed for volume "cfg" : configmap "cm" not found')
    restarted = manager(tmp_path, api, events)  # the agent restarted while the ConfigMap was gone
    assert (await restarted.mount(p2)).ready, "set up by the earlier run: its containers may start"
    assert (root / "k").read_text() == "two"
    assert await m.teardown("u-1") == []
    assert not (tmp_path / "pods" / "u-1").exists()


async def test_a_missing_key_waits_until_it_is_added(tmp_path: Path) -> None:
    api = FakeAPI()
    api.objects[("ConfigMap", "ns", "cm")] = {"data": {"other": "x"}}
    events: list[tuple[str, str]] = []
    m = manager(tmp_path, api, events)
    p = vpod("u-6", [{"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "want", "path": "w"}]}}])
    assert not (await m.mount(p)).ready
    assert events == [("FailedMount", ('MountVolume.SetUp failed for volume "cfg" : configmap references '
                                      "non-existent config key: want"))]
    api.objects[("ConfigMap", "ns", "cm")] = {"data": {"other": "x", "want": "y"}}
    await mount_until_ready(m, p)
    assert (Path(m.paths(p)["cfg"]) / "w").read_text() == "y"
    await m.teardown("u-6")


async def test_unsupported_kinds_and_bad_host_paths_fail_the_mount(tmp_path: Path) -> None:
    events: list[tuple[str, str]] = []
    m = manager(tmp_path, FakeAPI(), events)
    f = tmp_path / "file"
    f.write_text("")
    p = vpod("u-2", [{"name": "claim", "nfs": {"server": "x", "path": "/"}},
                     {"name": "host", "hostPath": {"path": str(f), "type": "Directory"}},
                     {"name": "scratch", "emptyDir": {}}, {"name": "huge", "emptyDir": {"medium": "HugePages-2Mi"}}])
    assert not (await m.mount(p)).ready
    msgs = {m_.split('"')[1]: m_ for _, m_ in events}
    assert msgs["claim"] == ('MountVolume.SetUp failed for volume "claim" : nfs volumes are not supported by this node '
                             "(it mounts emptyDir, hostPath, configMap, secret, downwardAPI, projected, "
                             "persistentVolumeClaim and ephemeral volumes)")
    assert msgs["host"] == (f'MountVolume.SetUp failed for volume "host" : hostPath type check failed: {f} is not a '
                            "directory, it's a File")
    assert msgs["huge"].endswith('emptyDir medium HugePages-2Mi is not supported by this node ("" and Memory are)')
    scratch = Path(m.paths(p)["scratch"])
    assert scratch.is_dir() and mode(scratch) == 0o777  # the others are set up meanwhile
    assert volume_path(str(tmp_path), "u", {"name": "x", "nfs": {}}) is None
    await m.teardown("u-2")


@needs_root
async def test_memory_volumes_are_tmpfs_subpaths_keep_their_content_and_teardown_unmounts(tmp_path: Path) -> None:
    api = FakeAPI()
    api.objects[("Secret", "ns", "s")] = {"data": {"pw": b64("first")}}
    m = manager(tmp_path, api)
    p = vpod("u-3", [{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
                     {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}}],
             [{"name": "sec", "mountPath": "/etc/pw", "subPath": "pw"}, {"name": "sec", "mountPath": "/etc/all"}])
    try:
        assert (await m.mount(p)).ready
        paths = m.paths(p)
        mounted = mounts_under(str(tmp_path / "pods" / "u-3"))
        assert paths["mem"] in mounted and paths["sec"] in mounted
        line = next(x for x in Path("/proc/self/mounts").read_text().splitlines() if x.split()[1] == paths["mem"])
        assert line.split()[2] == "tmpfs" and "size=8192k" in line
        assert mode(Path(paths["sec"]) / "pw") == 0o400
        cfg = ContainerConfig(name="app", image="i", mounts=(Mount("/etc/pw", paths["sec"] + "/pw"),
                                                             Mount("/etc/all", paths["sec"])))
        out = await m.prepare_mounts(p, p["spec"]["containers"][0], cfg)
        sub = out.mounts[0].host_path
        assert sub == str(tmp_path / "pods" / "u-3" / "volume-subpaths" / "sec" / "app" / "0")
        assert out.mounts[0].readonly and out.mounts[1].readonly and out.mounts[1].host_path == paths["sec"]
        assert Path(sub).read_text() == "first"
        api.objects[("Secret", "ns", "s")] = {"data": {"pw": b64("second")}}
        assert (await m.mount(p)).ready
        assert (Path(paths["sec"]) / "pw").read_text() == "second"
        assert Path(sub).read_text() == "first", "a subPath does not follow updates"
    finally:
        assert await m.teardown("u-3") == []
    assert mounts_under(str(tmp_path)) == [] and not (tmp_path / "pods" / "u-3").exists()


@needs_root
async def test_orphans_are_removed_and_size_limits_evict(tmp_path: Path) -> None:
    evicted: list[tuple[str, str]] = []
    m = manager(tmp_path, FakeAPI(), evicted=evicted)
    orphan = tmp_path / "pods" / "gone-uid" / "volumes" / "kubernetes.io~empty-dir" / "mem"
    orphan.mkdir(parents=True)
    assert subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(orphan)], check=False).returncode == 0  # noqa: ASYNC221
    kept = tmp_path / "pods" / "kept-uid"
    kept.mkdir()
    assert await m.remove_orphans(lambda uid: uid == "kept-uid") == ["gone-uid"]
    assert not (tmp_path / "pods" / "gone-uid").exists() and kept.exists()
    assert mounts_under(str(tmp_path)) == []
    p = vpod("u-4", [{"name": "small", "emptyDir": {"sizeLimit": "64Ki"}}])
    assert (await m.mount(p)).ready
    await m.check_limits()
    assert evicted == []
    (Path(m.paths(p)["small"]) / "big").write_bytes(os.urandom(256 << 10))
    await m.check_limits()
    assert evicted == [("u-4", 'Usage of EmptyDir volume "small" exceeds the limit "64Ki". ')]
    await m.check_limits()
    assert len(evicted) == 1, "evicted once"
    await m.teardown("u-4")


@needs_root
async def test_a_finished_pods_volumes_are_released(tmp_path: Path) -> None:
    api = FakeAPI()
    api.objects[("ConfigMap", "ns", "cm")] = {"data": {"k": "v"}}
    m = manager(tmp_path, api)
    p = vpod("u-5", [{"name": "mem", "emptyDir": {"medium": "Memory"}}, {"name": "cfg", "configMap": {"name": "cm"}}])
    assert (await m.mount(p)).ready
    pod_dir = tmp_path / "pods" / "u-5"
    assert len(mounts_under(str(pod_dir))) == 1
    await m.release(p)
    assert mounts_under(str(pod_dir)) == [] and not (pod_dir / "volumes").exists() and pod_dir.exists()
    assert (await m.mount(p)).ready and not (pod_dir / "volumes").exists(), "not set up again"
    assert await m.teardown("u-5") == [] and not pod_dir.exists()


async def test_sub_paths_are_made_inside_the_volume_only(tmp_path: Path) -> None:
    m = manager(tmp_path, FakeAPI())
    outside = tmp_path / "outside"
    outside.mkdir()
    p = vpod("u-7", [{"name": "scratch", "emptyDir": {}}],
             [{"name": "scratch", "mountPath": "/a", "subPath": "logs/web"},
              {"name": "scratch", "mountPath": "/b", "subPath": "escape/made"}])
    assert (await m.mount(p)).ready
    root = Path(m.paths(p)["scratch"])
    (root / "escape").symlink_to(outside)  # what a container could have put there
    cfg = ContainerConfig(name="app", image="i", mounts=(Mount("/a", f"{root}/logs/web"),))
    await m.prepare_mounts(p, {"name": "app", "volumeMounts": p["spec"]["containers"][0]["volumeMounts"][:1]}, cfg)
    assert (root / "logs" / "web").is_dir(), "a missing subPath is made, as kubelet does"
    bad = ContainerConfig(name="app", image="i", mounts=(Mount("/b", f"{root}/escape/made"),))
    with pytest.raises(ConfigError, match="not within volume path"):
        await m.prepare_mounts(p, {"name": "app", "volumeMounts": p["spec"]["containers"][0]["volumeMounts"][1:]},
                               bad)
    assert not (outside / "made").exists(), "nothing made outside the volume"
    await m.teardown("u-7")


def claim_obj(name: str, *, phase: str = "Bound", volume: str = "pv-1", uid: str = "c-1",
              owner: str | None = None, deleting: bool = False) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": "ns", "uid": uid}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": owner, "controller": True}]
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": md, "spec": {"volumeName": volume} if volume else {}, "status": {"phase": phase}}


def volume_obj(name: str, source: dict[str, Any], claim_uid: str | None = "c-1") -> dict[str, Any]:
    spec: dict[str, Any] = {"capacity": {"storage": "1Gi"}, **source}
    if claim_uid is not None:
        spec["claimRef"] = {"namespace": "ns", "name": "data", "uid": claim_uid}
    return {"metadata": {"name": name}, "spec": spec}


async def test_claim_volumes_wait_for_a_bound_claim_then_use_its_volume_path(tmp_path: Path) -> None:
    api = FakeAPI()
    events: list[tuple[str, str]] = []
    m = manager(tmp_path, api, events)
    disk = tmp_path / "disk"
    disk.mkdir()
    p = vpod("u-9", [{"name": "data", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}},
                     {"name": "scratch", "emptyDir": {}}],
             [{"name": "data", "mountPath": "/data", "subPath": "sub"}])

    def failed_to_process(why: str) -> str:
        return ("Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], failed to "
                f"process volumes=[data]: error processing PVC ns/data: {why}")

    steps = [
        (None, None, 'failed to fetch PVC from API server: persistentvolumeclaims "data" not found'),
        (claim_obj("data", phase="Pending", volume=""), None, "PVC is not bound"),
        (claim_obj("data", deleting=True), None, "PVC is being deleted"),
        (claim_obj("data"), None, 'failed to fetch PV pv-1 from API server: persistentvolumes "pv-1" not found'),
        (claim_obj("data"), volume_obj("pv-1", {"hostPath": {"path": str(disk)}}, claim_uid=None),
         "found PV object pv-1 but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim"),
    ]
    for pvc, pv, why in steps:
        api.objects.pop(("PersistentVolumeClaim", "ns", "data"), None)
        api.objects.pop(("PersistentVolume", "", "pv-1"), None)
        if pvc is not None:
            api.objects[("PersistentVolumeClaim", "ns", "data")] = pvc
        if pv is not None:
            api.objects[("PersistentVolume", "", "pv-1")] = pv
        events.clear()
        if "u-9" in m._pods:
            m._pods["u-9"].retry_at = 0.0
        assert not (await m.mount(p)).ready
        assert events == [("FailedMount", failed_to_process(why))]
        assert Path(m.paths(p)["scratch"]).is_dir()  # the pod's other volumes are set up meanwhile
        assert "data" not in m.paths(p)
    api.objects[("PersistentVolume", "", "pv-1")] = volume_obj("pv-1", {"hostPath": {"path": str(disk),
                                                                                     "type": "Directory"}})
    m._pods["u-9"].retry_at = 0.0
    assert (await m.mount(p)).ready
    assert m.paths(p)["data"] == str(disk)
    cfg = ContainerConfig(name="app", image="i", mounts=(Mount("/data", f"{disk}/sub"),))
    out = await m.prepare_mounts(p, p["spec"]["containers"][0], cfg)
    assert out.mounts[0].readonly and out.mounts[0].host_path == f"{disk}/sub"
    assert (disk / "sub").is_dir()  # subPath made inside the volume, as for other volumes
    await m.teardown("u-9")
    assert disk.is_dir() and (disk / "sub").is_dir()  # a persistent volume's data stays


async def test_a_claim_being_deleted_mounts_while_protected_as_for_the_pod_a_restarted_agent_finds(
        tmp_path: Path) -> None:
    """kubelet's getPVCExtractPV: a claim with a deletionTimestamp is refused only once it has lost
    the pvc-protection finalizer; while a pod uses it (an agent restarted under its running pod
    resolves the claim again) it keeps the finalizer and mounts as before."""
    api = FakeAPI()
    events: list[tuple[str, str]] = []
    disk = tmp_path / "disk"
    disk.mkdir()
    claim = claim_obj("data", deleting=True)
    claim["metadata"]["finalizers"] = ["kubernetes.io/pvc-protection"]
    api.objects[("PersistentVolumeClaim", "ns", "data")] = claim
    api.objects[("PersistentVolume", "", "pv-1")] = volume_obj("pv-1", {"hostPath": {"path": str(disk)}})
    p = vpod("u-11", [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
    # a fresh manager: what a restarted agent has (nothing resolved yet)
    m = manager(tmp_path, api, events)
    assert (await m.mount(p)).ready and m.paths(p)["data"] == str(disk)
    assert events == []
    # the finalizer gone (no pod uses it any more): the claim is refused as being deleted
    claim["metadata"]["finalizers"] = []
    again = manager(tmp_path, api, events)
    assert not (await again.mount(p)).ready
    assert events == [("FailedMount", ("Unable to attach or mount volumes: unmounted volumes=[data], unattached "
                                       "volumes=[], failed to process volumes=[data]: error processing PVC ns/data: "
                                       "PVC is being deleted"))]
    await m.teardown("u-11")
    assert disk.is_dir()


async def test_claimed_volume_types_and_ephemeral_ownership(tmp_path: Path) -> None:
    api = FakeAPI()
    events: list[tuple[str, str]] = []
    m = manager(tmp_path, api, events)
    api.objects[("PersistentVolumeClaim", "ns", "data")] = claim_obj("data", volume="local-1")
    api.objects[("PersistentVolume", "", "local-1")] = volume_obj(
        "local-1", {"local": {"path": str(tmp_path / "missing")}})
    p = vpod("u-10", [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    assert not (await m.mount(p)).ready
    assert events == [("FailedMount", (f'MountVolume.NewMounter initialization failed for volume "local-1" : path '
                                      f'"{tmp_path}/missing" does not exist'))]
    (tmp_path / "missing").mkdir()
    m._pods["u-10"].retry_at = 0.0
    assert (await m.mount(p)).ready and m.paths(p)["d"] == str(tmp_path / "missing")
    await m.teardown("u-10")

    events.clear()
    api.objects[("PersistentVolume", "", "local-1")] = volume_obj("local-1", {"nfs": {"server": "s", "path": "/"}})
    p = vpod("u-11", [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    assert not (await m.mount(p)).ready
    assert events == [("FailedMount", ("Unable to attach or mount volumes: unmounted volumes=[d], unattached "
                                      "volumes=[], failed to process volumes=[d]: PersistentVolume \"local-1\" is "
                                      "of type nfs, which this node cannot mount (it mounts hostPath and local "
                                      "volumes)"))]
    await m.teardown("u-11")

    # an ephemeral volume's claim is <pod>-<volume> and must be the pod's own
    events.clear()
    api.objects[("PersistentVolumeClaim", "ns", "p-scratch")] = claim_obj("p-scratch", volume="pv-e", owner="other")
    api.objects[("PersistentVolume", "", "pv-e")] = {"metadata": {"name": "pv-e"}, "spec": {
        "hostPath": {"path": str(tmp_path)}, "claimRef": {"namespace": "ns", "name": "p-scratch", "uid": "c-1"}}}
    p = vpod("u-12", [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}])
    assert not (await m.mount(p)).ready
    assert events[0][1].endswith("error processing PVC ns/p-scratch: PVC ns/p-scratch was not created for pod ns/p "
                                 "(pod is not owner)")
    api.objects[("PersistentVolumeClaim", "ns", "p-scratch")] = claim_obj("p-scratch", volume="pv-e", owner="u-12")
    m._pods["u-12"].retry_at = 0.0
    assert (await m.mount(p)).ready and m.paths(p)["scratch"] == str(tmp_path)
    await m.teardown("u-12")


def test_teardown_dir_of_plain_directories(tmp_path: Path) -> None:
    assert teardown_dir(str(tmp_path / "absent")) == []
    d = tmp_path / "plain"
    (d / "x").mkdir(parents=True)
    assert teardown_dir(str(d)) == [] and not d.exists()


# --------------------------------------------------------------------------- wired into the agent


async def test_the_agent_waits_for_volumes_follows_changes_and_removes_orphans(tmp_path: Path) -> None:
    """The agent on the fake runtime against a real API server: leftovers of a pod the node no
    longer has are removed at start; a pod whose ConfigMap is missing waits in ContainerCreating
    with FailedMount and starts once it is created; a change reaches the file through the watch;
    the pod's directory goes with the pod."""
    pods_dir = tmp_path / "n1" / "pods"
    leftover = pods_dir / "dead-uid" / "volumes" / "kubernetes.io~empty-dir" / "x"
    leftover.mkdir(parents=True)
    async with InProcessCluster() as c:
        client = Client(ClientConfig(server=c.url), component="kubelet")
        a = Agent(client, FakeRuntime(), AgentConfig(node_name="n1", data_dir=str(tmp_path / "n1"), relist_interval=0.1,
                                                     capacity={"cpu": "2", "memory": "4Gi", "pods": "10"}))
        await a.start()
        try:
            assert not (pods_dir / "dead-uid").exists()
            await c.client.create(("v1", "Pod"), {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1, "automountServiceAccountToken": False,
                         "volumes": [{"name": "cfg", "configMap": {"name": "cm"}}],
                         "containers": [{"name": "app", "image": "busybox:1.36",
                                         "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}]}}, "default")

            async def failed_mount() -> Any:
                evs = await c.client.list(("v1", "Event"), "default")
                return [e for e in evs["items"] if e["reason"] == "FailedMount"]

            (ev,) = await c.until(failed_mount, what="the FailedMount event")
            assert ev["message"] == 'MountVolume.SetUp failed for volume "cfg" : configmap "cm" not found'
            p = await c.client.get(("v1", "Pod"), "p", "default")
            assert p["status"]["phase"] == "Pending"
            assert p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
            await c.client.create(("v1", "ConfigMap"), {"apiVersion": "v1", "kind": "ConfigMap",
                                                        "metadata": {"name": "cm"}, "data": {"k": "one"}}, "default")

            async def running() -> bool:
                pod = await c.client.get(("v1", "Pod"), "p", "default")
                return (pod.get("status") or {}).get("phase") == "Running"

            await c.until(running, what="the pod Running once its ConfigMap exists")
            f = pods_dir / p["metadata"]["uid"] / "volumes" / "kubernetes.io~configmap" / "cfg" / "k"
            assert f.read_text() == "one"
            await c.client.patch(("v1", "ConfigMap"), "cm", {"data": {"k": "two"}}, "default")
            await c.until(lambda: f.read_text() == "two", what="the change in the file")
            await c.client.delete(("v1", "Pod"), "p", "default")
            await c.until(lambda: not (pods_dir / p["metadata"]["uid"]).exists(), what="the pod's directory removed")
        finally:
            await a.stop()
            await client.close()


async def test_volume_stats_are_kubelets_summary_entries_measured_once_a_minute(tmp_path: Path) -> None:
    """The Summary API's ``volume`` entries: emptyDir and configMap volumes with the bytes and
    inodes used in them and their filesystem's capacity and free space; hostPath volumes and
    claims report nothing (kubelet's plugins for them have no metrics); measured at most once
    every minute; a claim bound to a local volume reports that volume's filesystem."""
    api = FakeAPI()
    api.objects[("ConfigMap", "ns", "cm")] = {"data": {"a": "x" * 100}}
    m = manager(tmp_path, api)
    host = tmp_path / "host"
    host.mkdir()
    api.objects[("PersistentVolumeClaim", "ns", "data")] = claim_obj("data", volume="local-1")
    api.objects[("PersistentVolume", "", "local-1")] = volume_obj("local-1", {"local": {"path": str(host)}})
    api.objects[("PersistentVolumeClaim", "ns", "hp")] = claim_obj("hp", volume="pv-1", uid="c-2")
    api.objects[("PersistentVolume", "", "pv-1")] = volume_obj("pv-1", {"hostPath": {"path": str(host)}},
                                                               claim_uid="c-2")
    p = vpod("u-12", [{"name": "scratch", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "cm"}},
                      {"name": "host", "hostPath": {"path": str(host)}},
                      {"name": "local", "persistentVolumeClaim": {"claimName": "data"}},
                      {"name": "hostclaim", "persistentVolumeClaim": {"claimName": "hp"}}])
    assert (await m.mount(p)).ready
    scratch = Path(m.paths(p)["scratch"])
    (scratch / "sub").mkdir()
    (scratch / "sub" / "big").write_bytes(b"\1" * (1 << 20))
    (scratch / "small").write_text("hi")
    out = await m.stats(p, now=1000.0)
    assert [e["name"] for e in out] == ["scratch", "conf", "local"]
    e = out[0]
    st = os.statvfs(scratch)
    assert e["time"] == "1970-01-01T00:16:40Z"
    assert (1 << 20) <= e["usedBytes"] < (1 << 20) + 64 * 1024  # du: blocks allocated
    assert e["inodesUsed"] == 4  # the volume's directory, sub, big, small
    assert e["capacityBytes"] == st.f_blocks * st.f_frsize and e["inodes"] == st.f_files
    assert 0 < e["availableBytes"] <= e["capacityBytes"] and 0 < e["inodesFree"] <= e["inodes"]
    assert out[1]["usedBytes"] > 0 and out[1]["inodesUsed"] >= 3  # the atomic writer's files and links
    local = out[2]
    assert local["pvcRef"] == {"name": "data", "namespace": "ns"}
    assert 0 < local["usedBytes"] <= local["capacityBytes"] == st.f_blocks * st.f_frsize  # statfs: the whole disk
    assert local["inodesUsed"] == local["inodes"] - local["inodesFree"]
    # within the minute the last measurement answers; after it, a new one
    (scratch / "more").write_bytes(b"\1" * (1 << 20))
    assert await m.stats(p, now=1059.0) is out
    later = await m.stats(p, now=1061.0)
    assert later[0]["usedBytes"] >= 2 << 20 and later[0]["inodesUsed"] == 5
    await m.teardown("u-12")
    assert await m.stats(p, now=1062.0) == []  # gone with the pod's directory
