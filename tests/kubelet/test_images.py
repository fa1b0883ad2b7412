"""The node's image store (k8py.kubelet.images) with the real skopeo and umoci, a real
docker-registry on loopback for pulls, and ``k8py images``."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from tests.helpers.images import (
    BUSYBOX_REF,
    REQUIRED_APPLETS,
    SECOND_REF,
    ImageSpec,
    Registry,
    build_busybox_image,
    build_image,
    free_port,
    image_id,
    require_image_tools,
    to_docker_archive,
)

from k8py.kubelet import imagescli
from k8py.kubelet.images import (
    ImageImportError,
    ImageInUseError,
    ImageStore,
    InvalidImageNameError,
    normalize_reference,
    parse_reference,
    store_dir,
)
from k8py.kubelet.runtime.types import ImageNotFoundError, ImagePullError, ImageService, RegistryAuth

SKOPEO = "/usr/bin/skopeo"
UMOCI = "/usr/bin/umoci"
BUSYBOX_FULL = "k8py.test/busybox:1.0"  # a name with a registry: it stays as it is


def _gzip(src: Path, dst: Path) -> None:
    with open(src, "rb") as f, gzip.open(dst, "wb") as out:
        shutil.copyfileobj(f, out)


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    require_image_tools(SKOPEO, UMOCI)
    return ImageStore(str(tmp_path / "store"))


# ---------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("ref", "normalized"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
        ("foo/bar:1", "docker.io/foo/bar:1"),
        ("foo/bar/baz", "docker.io/foo/bar/baz:latest"),
        ("localhost/x", "localhost/x:latest"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("127.0.0.1:5000/team/app:v2", "127.0.0.1:5000/team/app:v2"),
        ("[::1]:5000/x:1", "[::1]:5000/x:1"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        ("quay.io/a_b/c-d.e__f:T_1.x-y", "quay.io/a_b/c-d.e__f:T_1.x-y"),
        ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
        # with both, the digest names the image (docker's ParseDockerRef)
        ("busybox:1.36@sha256:" + "b" * 64, "docker.io/library/busybox@sha256:" + "b" * 64),
        ("Registry.Example.com/x", "Registry.Example.com/x:latest"),
    ],
)
def test_reference_normalization(ref: str, normalized: str) -> None:
    assert normalize_reference(ref) == normalized


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("", "empty"),
        (" busybox", "whitespace"),
        ("Busybox", "lowercase"),
        ("foo/Bar", "lowercase"),
        ("busybox:", "bad tag"),
        ("busybox:-x", "bad tag"),
        ("busybox@sha256:abc", "bad digest"),
        ("foo//bar", "bad repository name"),
        ("a" * 256, "longer than 255"),
        ("sha256:" + "c" * 64, "an image id"),
        ("exa_mple.com:5000/x", "bad registry"),
    ],
)
def test_invalid_references(ref: str, why: str) -> None:
    with pytest.raises(InvalidImageNameError, match=why):
        parse_reference(ref)


def test_reference_parts() -> None:
    r = parse_reference("localhost:5000/team/app:v1")
    assert (r.domain, r.path, r.tag, r.digest, r.host, r.loopback) == (
        "localhost:5000",
        "team/app",
        "v1",
        "",
        "localhost",
        True,
    )
    assert parse_reference("[::1]:5000/x").loopback
    assert parse_reference("127.0.0.1/x").loopback
    assert not parse_reference("registry.example.com:5000/x").loopback
    assert not parse_reference("busybox").loopback


# ---------------------------------------------------------------------- the test image


def test_test_image_is_deterministic(tmp_path: Path) -> None:
    require_image_tools()
    a = build_busybox_image(tmp_path / "a")
    b = build_busybox_image(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    assert image_id(a) == image_id(b)
    # the same content under another name is the same image; a different config is another
    assert image_id(build_busybox_image(tmp_path / "c", "k8py.test/other:3")) == image_id(a)
    assert image_id(build_image(tmp_path / "d", ImageSpec(cmd=("sleep", "1")))) != image_id(a)


# ---------------------------------------------------------------------- import, list, status


async def test_import_oci_archive(store: ImageStore, busybox_archive: Path) -> None:
    assert isinstance(store, ImageService)
    images = await store.import_archive(busybox_archive)
    assert len(images) == 1
    img = images[0]
    assert img.id == image_id(busybox_archive)
    assert img.repo_tags == [BUSYBOX_FULL]
    assert len(img.repo_digests) == 1
    assert img.repo_digests[0].startswith("k8py.test/busybox@sha256:")
    assert img.cmd == ["sh"]
    assert img.entrypoint == []
    assert img.env == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    assert img.working_dir == "/"
    assert img.size > 1_000_000  # busybox is about 2 MB, unpacked and packed

    assert await store.list_images() == [img]
    assert await store.image_status(BUSYBOX_REF) == img
    assert await store.image_status(img.id) == img
    assert await store.image_status(img.id.removeprefix("sha256:")[:12]) == img
    assert await store.image_status(img.repo_digests[0]) == img
    assert await store.image_status("k8py.test/busybox:2.0") is None
    assert await store.image_status("busybox") is None
    assert await store.image_status("sha256:" + "0" * 64) is None
    with pytest.raises(InvalidImageNameError):
        await store.image_status("Not/A/Valid:ref")

    rootfs = Path(store.rootfs(img.id))
    assert rootfs == store.root / "rootfs" / img.id.removeprefix("sha256:")
    assert Path(store.rootfs(img.id.removeprefix("sha256:"))) == rootfs
    assert (rootfs / "bin" / "busybox").is_file()
    assert os.access(rootfs / "bin" / "busybox", os.X_OK)
    for applet in REQUIRED_APPLETS:
        assert os.readlink(rootfs / "bin" / applet) == "busybox", applet
    assert "nobody:x:65534:65534:" in (rootfs / "etc" / "passwd").read_text()
    assert "nobody:x:65534:" in (rootfs / "etc" / "group").read_text()
    assert (rootfs / "tmp").stat().st_mode & 0o1777 == 0o1777
    # the unpacked busybox runs
    assert await asyncio.to_thread(_run, str(rootfs / "bin" / "busybox"), "echo", "hi") == "hi\n"
    # a layout per image, nothing left in staging
    assert [p.name for p in (store.root / "layouts").iterdir()] == [img.id.removeprefix("sha256:")]
    assert list((store.root / "tmp").iterdir()) == []
    with pytest.raises(ImageNotFoundError):
        store.rootfs("sha256:" + "1" * 64)


async def test_import_docker_archive(store: ImageStore, busybox_docker_archive: Path, tmp_path: Path) -> None:
    images = await store.import_archive(busybox_docker_archive)
    assert [i.repo_tags for i in images] == [[BUSYBOX_FULL]]
    img = images[0]
    assert img.repo_digests == []  # a docker archive holds no registry digest
    assert img.cmd == ["sh"]
    assert (Path(store.rootfs(img.id)) / "bin" / "busybox").is_file()

    # short names in RepoTags are normalized; a gzip-compressed docker archive imports too
    short = to_docker_archive(build_busybox_image(tmp_path), tmp_path / "short.docker.tar", "bb:7")
    gz = tmp_path / "short.docker.tar.gz"
    await asyncio.to_thread(_gzip, short, gz)
    images = await store.import_archive(gz)
    assert images[0].id == img.id  # the same image in the same form: one more tag
    assert images[0].repo_tags == [BUSYBOX_FULL, "docker.io/library/bb:7"]
    assert await store.image_status("bb:7") == await store.image_status("docker.io/library/bb:7")


async def test_import_both_forms_and_two_images(
    store: ImageStore, busybox_archive: Path, busybox_docker_archive: Path, second_archive: Path
) -> None:
    oci = (await store.import_archive(busybox_archive))[0]
    second = (await store.import_archive(second_archive))[0]
    assert second.id != oci.id
    assert second.repo_tags == [SECOND_REF]
    assert second.cmd == ["cat", "/etc/k8py-release"]
    assert "K8PY_IMAGE=second" in second.env
    assert (Path(store.rootfs(second.id)) / "etc" / "k8py-release").read_text() == "k8py test image 2\n"
    assert not (Path(store.rootfs(oci.id)) / "etc" / "k8py-release").exists()
    # the docker form of busybox carries the same tag: the tag moves to it (skopeo rewrites the
    # config when it turns a docker manifest into an OCI one, so it is another id)
    docker = (await store.import_archive(busybox_docker_archive))[0]
    assert (await store.image_status(BUSYBOX_REF)) == docker
    listed = {i.id: i for i in await store.list_images()}
    assert set(listed) == {oci.id, second.id, docker.id}
    if docker.id != oci.id:
        assert listed[oci.id].repo_tags == []  # untagged, kept for its containers or the GC


async def test_reimport_is_idempotent_and_persistent(store: ImageStore, busybox_archive: Path) -> None:
    first = await store.import_archive(busybox_archive)
    again = await store.import_archive(busybox_archive)
    assert again == first
    assert len(await store.list_images()) == 1
    assert len(list((store.root / "rootfs").iterdir())) == 1
    # another store on the same directory (an agent restart, or `k8py images` beside it)
    other = ImageStore(str(store.root))
    assert await other.list_images() == first
    assert other.rootfs(first[0].id) == store.rootfs(first[0].id)


async def test_lost_index_keeps_whole_images(tmp_path: Path, busybox_archive: Path) -> None:
    require_image_tools(SKOPEO, UMOCI)
    root = tmp_path / "store"
    img = (await ImageStore(str(root)).import_archive(busybox_archive))[0]
    (root / "index.json").unlink()
    (root / "rootfs" / ("f" * 64)).mkdir()  # half an image: no layout
    store = ImageStore(str(root))
    kept = await store.list_images()
    assert [(i.id, i.repo_tags, i.cmd) for i in kept] == [(img.id, [], ["sh"])]
    assert not (root / "rootfs" / ("f" * 64)).exists()
    assert (Path(store.rootfs(img.id)) / "bin" / "busybox").is_file()


async def test_one_archive_with_two_images(store: ImageStore, tmp_path: Path) -> None:
    """An OCI archive whose index lists two images, selected by their ref.name annotations."""
    a, b = (
        build_busybox_image(tmp_path / "a", "k8py.test/one:1"),
        build_image(tmp_path / "b", ImageSpec(ref="k8py.test/two:2", cmd=("sleep", "60"))),
    )
    layout = tmp_path / "layout"
    for archive, name in ((a, "k8py.test/one:1"), (b, "k8py.test/two:2")):
        await asyncio.to_thread(
            _run, SKOPEO, "copy", "--quiet", f"oci-archive:{archive}:{name}", f"oci:{layout}:{name}"
        )
    combined = tmp_path / "both.tar"
    with tarfile.open(combined, "w") as tar:
        for p in sorted(layout.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(layout)), recursive=False)
    images = await store.import_archive(combined)
    assert sorted(t for i in images for t in i.repo_tags) == ["k8py.test/one:1", "k8py.test/two:2"]
    assert (await store.image_status("k8py.test/two:2")).cmd == ["sleep", "60"]  # type: ignore[union-attr]


async def test_import_errors(store: ImageStore, tmp_path: Path) -> None:
    with pytest.raises(ImageImportError, match="no such file"):
        await store.import_archive(tmp_path / "missing.tar")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive at all" * 100)
    with pytest.raises(ImageImportError, match="not a tar archive"):
        await store.import_archive(junk)
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, fileobj=io.BytesIO(b"hi"))
    with pytest.raises(ImageImportError, match="not an image archive"):
        await store.import_archive(plain)
    assert await store.list_images() == []
    assert list((store.root / "tmp").iterdir()) == []


# ---------------------------------------------------------------------- removal


async def test_remove_references_then_image(store: ImageStore, tmp_path: Path, busybox_archive: Path) -> None:
    img = (await store.import_archive(busybox_archive))[0]
    # the same image under a second name: one image with two tags
    other = (await store.import_archive(build_busybox_image(tmp_path, "k8py.test/other:3")))[0]
    assert other.id == img.id
    assert sorted(other.repo_tags) == ["k8py.test/busybox:1.0", "k8py.test/other:3"]
    rootfs = Path(store.rootfs(img.id))

    await store.remove_image("k8py.test/other:3")
    left = await store.image_status(img.id)
    assert left is not None
    assert left.repo_tags == [BUSYBOX_FULL]
    assert rootfs.is_dir()
    assert await store.image_status("k8py.test/other:3") is None

    await store.remove_image("k8py.test/nothing:here")  # nothing: no error
    await store.remove_image(BUSYBOX_REF)  # the last tag: the image goes
    assert await store.list_images() == []
    assert not rootfs.exists()
    assert list((store.root / "layouts").iterdir()) == []
    with pytest.raises(ImageNotFoundError):
        store.rootfs(img.id)
    assert await store.image_status(img.repo_digests[0]) is None


async def test_remove_by_id(store: ImageStore, busybox_archive: Path, second_archive: Path) -> None:
    img = (await store.import_archive(busybox_archive))[0]
    second = (await store.import_archive(second_archive))[0]
    await store.remove_image(img.id.removeprefix("sha256:")[:10])
    assert [i.id for i in await store.list_images()] == [second.id]
    await store.remove_image(second.id)
    assert await store.list_images() == []


async def test_remove_refuses_images_in_use(tmp_path: Path, busybox_archive: Path) -> None:
    require_image_tools(SKOPEO, UMOCI)
    used: set[str] = set()

    async def in_use() -> set[str]:
        return used

    store = ImageStore(str(tmp_path / "store"), in_use=in_use)
    img = (await store.import_archive(busybox_archive))[0]
    used.add(img.id)
    with pytest.raises(ImageInUseError, match="used by a container"):
        await store.remove_image(BUSYBOX_REF)
    assert await store.image_status(BUSYBOX_REF) is not None
    used.clear()

    # an overlay mount on the image's rootfs (what the runtime makes) counts as a use too
    upper, work, merged = (tmp_path / n for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    lower = store.rootfs(img.id)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    await asyncio.to_thread(_run, "mount", "-t", "overlay", "overlay", "-o", options, str(merged))
    try:
        assert (merged / "bin" / "busybox").is_file()
        with pytest.raises(ImageInUseError):
            await store.remove_image(img.id)
        assert (await store.gc(high_percent=0, low_percent=0)) == 0
        assert await store.image_status(img.id) is not None
    finally:
        await asyncio.to_thread(_run, "umount", str(merged))
    await store.remove_image(img.id)
    assert await store.list_images() == []


# ---------------------------------------------------------------------- garbage collection


async def test_free_space_least_recently_used_first(tmp_path: Path) -> None:
    require_image_tools(SKOPEO, UMOCI)
    now = [100.0]
    store = ImageStore(str(tmp_path / "store"), clock=lambda: now[0])
    ids = []
    for n in range(3):
        archive = build_image(tmp_path / str(n), ImageSpec(ref=f"k8py.test/gc{n}:1", cmd=("echo", str(n))))
        ids.append((await store.import_archive(archive))[0].id)
    store.mark_used(ids[0], when=3000.0)
    store.mark_used(ids[1], when=1000.0)
    store.mark_used(ids[2], when=2000.0)
    now[0] = 4000.0
    freed = await store.free_space(1)  # one image is enough: the least recently used goes
    assert freed > 0
    assert {i.id for i in await store.list_images()} == {ids[0], ids[2]}
    freed = await store.free_space(10**12, in_use={ids[0]})
    assert {i.id for i in await store.list_images()} == {ids[0]}
    assert not Path(store.root / "rootfs" / ids[2].removeprefix("sha256:")).exists()


async def test_gc_thresholds(store: ImageStore, busybox_archive: Path, second_archive: Path) -> None:
    img = (await store.import_archive(busybox_archive))[0]
    second = (await store.import_archive(second_archive))[0]
    assert await store.gc(high_percent=100, low_percent=100) == 0  # the disk is not full
    assert len(await store.list_images()) == 2
    # min_age keeps images that came recently
    assert await store.gc(in_use={img.id}, high_percent=0, low_percent=0, min_age=3600) == 0
    assert len(await store.list_images()) == 2
    freed = await store.gc(in_use={img.id}, high_percent=0, low_percent=0)
    assert freed == second.size
    assert [i.id for i in await store.list_images()] == [img.id]
    with pytest.raises(ValueError, match="thresholds"):
        await store.gc(high_percent=50, low_percent=80)


# ---------------------------------------------------------------------- the airgap folder


async def test_import_dir(
    store: ImageStore, tmp_path: Path, busybox_archive: Path, second_archive: Path
) -> None:
    airgap = tmp_path / "agent-images"
    airgap.mkdir()
    shutil.copy(busybox_archive, airgap / "busybox.tar")
    await asyncio.to_thread(_gzip, second_archive, airgap / "second.tar.gz")
    (airgap / "README").write_text("not an image")
    (airgap / "broken.tar").write_bytes(b"garbage" * 10)

    images = await store.import_dir(airgap)
    assert sorted(t for i in images for t in i.repo_tags) == sorted([BUSYBOX_FULL, SECOND_REF])
    # imported files are remembered (a broken one is tried again)
    assert await store.import_dir(airgap) == []
    assert await ImageStore(str(store.root)).import_dir(airgap) == []
    # a changed file is imported again
    os.utime(airgap / "busybox.tar", ns=(1, 1))
    again = await store.import_dir(airgap)
    assert [i.repo_tags for i in again] == [[BUSYBOX_FULL]]
    assert await store.import_dir(tmp_path / "no-such-dir") == []


# ---------------------------------------------------------------------- pulls from a registry


async def test_pull_with_credentials(store: ImageStore, registry: Registry, busybox_archive: Path) -> None:
    ref = registry.ref("busybox:1.0")
    auth = RegistryAuth(registry.username, registry.password)
    image = await store.pull_image(ref, auth)
    assert image == image_id(busybox_archive)  # an OCI image is stored as it was pushed
    status = await store.image_status(ref)
    assert status is not None
    assert status.repo_tags == [ref]
    assert len(status.repo_digests) == 1
    digest_ref = status.repo_digests[0]
    assert digest_ref.startswith(f"{registry.host}/busybox@sha256:")
    assert (Path(store.rootfs(image)) / "bin" / "sh").is_symlink()
    # pulled again: the registry's digest is known, nothing is copied
    assert await store.pull_image(ref, auth) == image
    # by digest, and the digest reference finds it
    assert await store.pull_image(digest_ref, auth) == image
    assert await store.image_status(digest_ref) == status
    # no credential file is left behind
    assert list((store.root / "tmp").iterdir()) == []


async def test_concurrent_pulls_are_one(tmp_path: Path, registry: Registry) -> None:
    require_image_tools(SKOPEO, UMOCI)
    calls = []

    class Counting(ImageStore):
        async def _pull(self, ref, auth):  # type: ignore[no-untyped-def]
            calls.append(str(ref))
            return await super()._pull(ref, auth)

    store = Counting(str(tmp_path / "store"))
    auth = RegistryAuth(registry.username, registry.password)
    ids = await asyncio.gather(*(store.pull_image(registry.ref("busybox:1.0"), auth) for _ in range(4)))
    assert len(set(ids)) == 1
    assert calls == [registry.ref("busybox:1.0")]
    assert len(await store.list_images()) == 1


async def test_pull_refused_credentials(store: ImageStore, registry: Registry) -> None:
    with pytest.raises(ImagePullError, match="unauthorized") as e:
        await store.pull_image(registry.ref("busybox:1.0"), RegistryAuth(registry.username, "wrong"))
    assert "credentials given were refused" in str(e.value)
    assert "wrong" not in str(e.value)
    with pytest.raises(ImagePullError, match="unauthorized.*needs credentials"):
        await store.pull_image(registry.ref("busybox:1.0"))
    assert await store.list_images() == []


async def test_pull_unknown_image(store: ImageStore, registry: Registry) -> None:
    auth = RegistryAuth(registry.username, registry.password)
    with pytest.raises(ImagePullError, match="not found"):
        await store.pull_image(registry.ref("busybox:no-such-tag"), auth)


async def test_pull_without_registry_names_import(store: ImageStore) -> None:
    port = free_port()  # nobody listens there
    with pytest.raises(ImagePullError, match="cannot be reached") as e:
        await store.pull_image(f"127.0.0.1:{port}/busybox:1.0")
    assert "k8py images import FILE" in str(e.value)
    with pytest.raises(InvalidImageNameError):
        await store.pull_image("library/UPPER")


# ---------------------------------------------------------------------- k8py images


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="k8py")
    imagescli.add_images_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_cli_import_ls_rm(tmp_path: Path, busybox_archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_image_tools(SKOPEO, UMOCI)
    data = str(tmp_path / "data")
    assert _cli("images", "import", "--data-dir", data, str(busybox_archive)) == 0
    iid = image_id(busybox_archive).removeprefix("sha256:")
    assert f"imported {BUSYBOX_FULL} (sha256:{iid})" in capsys.readouterr().out
    assert Path(store_dir(data), "rootfs", iid, "bin", "busybox").is_file()

    assert _cli("images", "ls", "--data-dir", data) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert lines[1].split()[:3] == ["k8py.test/busybox", "1.0", iid[:13]]
    assert lines[1].split()[3].endswith("MB")
    assert _cli("images", "ls", "-q", "--data-dir", data) == 0
    assert capsys.readouterr().out == f"sha256:{iid}\n"

    assert _cli("images", "rm", "--data-dir", data, "k8py.test/nope:1") == 1
    assert "no such image k8py.test/nope:1" in capsys.readouterr().err
    assert _cli("images", "rm", "--data-dir", data, BUSYBOX_REF) == 0
    assert capsys.readouterr().out == f"Deleted: {BUSYBOX_REF}\n"
    assert _cli("images", "ls", "--data-dir", data) == 0
    assert capsys.readouterr().out.splitlines() == ["IMAGE   TAG   IMAGE ID   SIZE"]

    assert _cli("images", "import", "--data-dir", data, str(tmp_path / "missing.tar")) == 1
    assert "no such file" in capsys.readouterr().err
    assert _cli("images") == 2


def test_human_size() -> None:
    assert [imagescli.human_size(n) for n in (0, 999, 1000, 745_000, 3_108_864, 2_150_000_000)] == [
        "0B", "999B", "1kB", "745kB", "3.11MB", "2.15GB",
    ]  # fmt: skip
