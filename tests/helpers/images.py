"""Small OCI images for tests, built from Debian's static busybox (package ``busybox-static``).

:func:`build_busybox_image` writes an ``oci-archive`` (a tar of an OCI image layout:
``oci-layout``, ``index.json``, ``blobs/sha256/...``) that ``skopeo copy oci-archive:FILE ...``
and ``k8py images import FILE`` accept. The rootfs is one gzip layer holding ``/bin/busybox``
with a symlink in ``/bin`` for every applet it has (``sh``, ``httpd``, ``sleep``, ``wget``,
``nc``, ``ip`` ...), ``/etc/passwd`` and ``/etc/group`` (root and nobody 65534), ``/tmp`` (1777)
and the usual empty mount points. The config says ``Cmd ["sh"]``,
``Env PATH=/usr/sbin:/usr/bin:/sbin:/bin`` and ``WorkingDir "/"``.

Everything is written by Python (tarfile, gzip, json, hashlib) with fixed times, owners and
order, so building twice gives the same bytes and so the same image id
(``sha256:<config digest>``). Built archives are cached per process by their parameters; each
call writes a fresh copy into ``dest_dir``.

:func:`build_second_image` builds a different image (an extra layer with ``/etc/k8py-release``,
another Cmd and a label) for tests that need two. :func:`to_docker_archive` turns an OCI archive
into a ``docker-archive`` with skopeo (the config blob, hence the image id, is kept), and
:func:`image_id` reads the image id out of an OCI archive.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "BUSYBOX",
    "BUSYBOX_REF",
    "REGISTRY",
    "REQUIRED_APPLETS",
    "SECOND_REF",
    "ImageSpec",
    "Registry",
    "build_busybox_image",
    "build_image",
    "build_second_image",
    "free_port",
    "image_id",
    "require_image_tools",
    "running_registry",
    "start_registry",
    "to_docker_archive",
]

BUSYBOX = "/bin/busybox"
SKOPEO = "/usr/bin/skopeo"
REGISTRY = "/usr/bin/docker-registry"
HTPASSWD = "/usr/bin/htpasswd"
BUSYBOX_REF = "k8py.test/busybox:1.0"
SECOND_REF = "k8py.test/busybox-extra:2.0"

# Applets the suite relies on; the image links every applet the host busybox has.
REQUIRED_APPLETS = (
    "sh", "httpd", "sleep", "echo", "cat", "ls", "wget", "nc", "true", "false", "env", "id",
    "hostname", "ip", "ifconfig", "dd", "head", "tail", "seq", "yes", "kill", "ps", "mkdir", "touch",
)  # fmt: skip

# 2024-01-01T00:00:00Z: a fixed time for every file and for the config's "created".
EPOCH = 1704067200
CREATED = "2024-01-01T00:00:00Z"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


def require_image_tools(*tools: str) -> None:
    """Skip the calling test when busybox-static (or one of ``tools``) is not installed."""
    for path in (BUSYBOX, *tools):
        if not Path(path).exists():
            pytest.skip(f"{path} not found: scripts/install installs it")


@dataclass(frozen=True)
class ImageSpec:
    """What an image built by :func:`build_image` holds beyond busybox itself."""

    ref: str = BUSYBOX_REF
    cmd: tuple[str, ...] = ("sh",)
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/sbin:/usr/bin:/sbin:/bin",)
    working_dir: str = "/"
    user: str = ""
    stop_signal: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    # each extra layer: ((path inside the image, content, mode), ...)
    extra_layers: tuple[tuple[tuple[str, bytes, int], ...], ...] = ()
    exposed_ports: tuple[str, ...] = ()


# ---------------------------------------------------------------------- tar pieces


def _info(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _tar(entries: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _applets() -> list[str]:
    out = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout
    names = sorted({n for n in out.split() if n and "/" not in n and n != "busybox"})
    missing = [a for a in REQUIRED_APPLETS if a not in names]
    if missing:
        raise RuntimeError(f"{BUSYBOX} lacks applets {missing}")
    return names


def _base_layer() -> bytes:
    """The uncompressed tar of the busybox rootfs."""
    busybox = Path(BUSYBOX).read_bytes()
    dirs = {
        "bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
        "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
        "usr/sbin": 0o755, "var": 0o755, "var/tmp": 0o1777,
    }  # fmt: skip
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name, mode in sorted(dirs.items()):
        entries.append((_info(name + "/", tarfile.DIRTYPE, mode), None))
    entries.append((_info("bin/busybox", tarfile.REGTYPE, 0o755, len(busybox)), busybox))
    for applet in _applets():
        entries.append((_info(f"bin/{applet}", tarfile.SYMTYPE, 0o777, linkname="busybox"), None))
    for name, text in (("etc/group", GROUP), ("etc/passwd", PASSWD)):
        data = text.encode()
        entries.append((_info(name, tarfile.REGTYPE, 0o644, len(data)), data))
    return _tar(entries)


def _extra_layer(files: Sequence[tuple[str, bytes, int]]) -> bytes:
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    seen: set[str] = set()
    for path, data, mode in sorted(files):
        name = path.lstrip("/")
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in seen:
                seen.add(d)
                entries.append((_info(d + "/", tarfile.DIRTYPE, 0o755), None))
        entries.append((_info(name, tarfile.REGTYPE, mode, len(data)), data))
    return _tar(entries)


# ---------------------------------------------------------------------- the OCI layout


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _layout(spec: ImageSpec) -> bytes:
    """The oci-archive bytes for ``spec``."""
    blobs: dict[str, bytes] = {}
    layers: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    history: list[dict[str, Any]] = []
    raw_layers = [_base_layer(), *(_extra_layer(files) for files in spec.extra_layers)]
    for i, raw in enumerate(raw_layers):
        compressed = gzip.compress(raw, compresslevel=6, mtime=0)
        digest = _digest(compressed)
        blobs[digest] = compressed
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": len(compressed)})
        diff_ids.append(_digest(raw))
        history.append({"created": CREATED, "created_by": f"tests/helpers/images.py layer {i}"})
    config_body: dict[str, Any] = {"Env": list(spec.env), "WorkingDir": spec.working_dir}
    if spec.cmd:
        config_body["Cmd"] = list(spec.cmd)
    if spec.entrypoint:
        config_body["Entrypoint"] = list(spec.entrypoint)
    if spec.user:
        config_body["User"] = spec.user
    if spec.stop_signal:
        config_body["StopSignal"] = spec.stop_signal
    if spec.labels:
        config_body["Labels"] = dict(spec.labels)
    if spec.exposed_ports:
        config_body["ExposedPorts"] = {p: {} for p in spec.exposed_ports}
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": CREATED,
            "config": config_body,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }
    )
    config_digest = _digest(config)
    blobs[config_digest] = config
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layers,
        }
    )
    manifest_digest = _digest(manifest)
    blobs[manifest_digest] = manifest
    index = _json({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest),
            # the full name, as `ctr images export` and buildkit write it
            "annotations": {REF_NAME: spec.ref, "io.containerd.image.name": spec.ref},
        }],
    })  # fmt: skip
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info("blobs/", tarfile.DIRTYPE, 0o755), None),
        (_info("blobs/sha256/", tarfile.DIRTYPE, 0o755), None),
    ]
    for digest, data in sorted(blobs.items()):
        entries.append(
            (_info("blobs/sha256/" + digest.split(":", 1)[1], tarfile.REGTYPE, 0o644, len(data)), data)
        )
    entries.append((_info("index.json", tarfile.REGTYPE, 0o644, len(index)), index))
    layout = _json({"imageLayoutVersion": "1.0.0"})
    entries.append((_info("oci-layout", tarfile.REGTYPE, 0o644, len(layout)), layout))
    return _tar(entries)


_cache: dict[ImageSpec, bytes] = {}


def _file_name(ref: str, suffix: str) -> str:
    return ref.replace("/", "_").replace(":", "_").replace("@", "_") + suffix


def build_image(dest_dir: Path, spec: ImageSpec, name: str | None = None) -> Path:
    """Write the oci-archive of ``spec`` into ``dest_dir`` (as ``name``, default from the ref)."""
    require_image_tools()
    data = _cache.get(spec)
    if data is None:
        data = _cache[spec] = _layout(spec)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / (name or _file_name(spec.ref, ".oci.tar"))
    path.write_bytes(data)
    return path


def build_busybox_image(dest_dir: Path, ref: str = BUSYBOX_REF) -> Path:
    """The busybox test image as an oci-archive in ``dest_dir``; its index names it ``ref``."""
    return build_image(dest_dir, ImageSpec(ref=ref))


SECOND_RELEASE = b"k8py test image 2\n"


def build_second_image(dest_dir: Path, ref: str = SECOND_REF) -> Path:
    """A second image, different from busybox's: an extra layer with ``/etc/k8py-release``,
    ``Cmd ["cat", "/etc/k8py-release"]``, an extra env var and a label."""
    spec = ImageSpec(
        ref=ref,
        cmd=("cat", "/etc/k8py-release"),
        env=("PATH=/usr/sbin:/usr/bin:/sbin:/bin", "K8PY_IMAGE=second"),
        labels=(("k8py.test/image", "second"),),
        extra_layers=((("/etc/k8py-release", SECOND_RELEASE, 0o644),),),
    )
    return build_image(dest_dir, spec)


def image_id(oci_archive: Path) -> str:
    """The image id (``sha256:`` + the config's digest) of a single-image oci-archive."""
    with tarfile.open(oci_archive) as tar:

        def read(name: str) -> Mapping[str, Any]:
            f = tar.extractfile(name)
            assert f is not None, name
            return json.loads(f.read())

        index = read("index.json")
        manifest = read("blobs/sha256/" + index["manifests"][0]["digest"].split(":", 1)[1])
        return str(manifest["config"]["digest"])


def to_docker_archive(oci_archive: Path, dest: Path, ref: str = BUSYBOX_REF) -> Path:
    """``skopeo copy`` an oci-archive into a docker-archive (``docker save`` format) tagged ``ref``.
    The config blob is copied as it is, so the image id stays the same."""
    require_image_tools(SKOPEO)
    if dest.exists():
        dest.unlink()
    subprocess.run(
        [
            SKOPEO,
            "--insecure-policy",
            "copy",
            "--quiet",
            f"oci-archive:{oci_archive}",
            f"docker-archive:{dest}:{ref}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return dest


# ---------------------------------------------------------------------- a local registry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    """A running ``docker-registry`` on ``host`` (``127.0.0.1:PORT``) that takes ``username`` and
    ``password`` (HTTP basic, over plain HTTP: clients need ``--tls-verify=false``)."""

    def __init__(self, host: str, username: str, password: str, proc: subprocess.Popen[bytes], workdir: Path):
        self.host = host
        self.username = username
        self.password = password
        self.proc = proc
        self.workdir = workdir

    def ref(self, name: str) -> str:
        """``name`` (e.g. ``busybox:1.0``) in this registry."""
        return f"{self.host}/{name}"

    def push(self, archive: Path, name: str) -> str:
        """Copy an oci-archive (or docker-archive, by its ``.docker.tar`` suffix) to ``name``
        here; returns the full reference."""
        kind = "docker-archive" if archive.name.endswith(".docker.tar") else "oci-archive"
        ref = self.ref(name)
        proc = subprocess.run(
            [SKOPEO, "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
             "--dest-creds", f"{self.username}:{self.password}", f"{kind}:{archive}", f"docker://{ref}"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"pushing {archive} to {ref}: {proc.stderr.strip()}")
        return ref

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_registry(username: str = "k8py", password: str = "s3cret-pass", timeout: float = 30.0) -> Registry:
    """Start a registry (skips the test when docker-registry or htpasswd is missing)."""
    require_image_tools(REGISTRY, HTPASSWD, SKOPEO)
    workdir = Path(tempfile.mkdtemp(prefix="k8py-registry-"))
    try:
        htpasswd = subprocess.run(
            [HTPASSWD, "-Bbn", username, password], check=True, capture_output=True, text=True
        ).stdout.strip()
        (workdir / "htpasswd").write_text(htpasswd + "\n")
        port = free_port()
        (workdir / "config.yml").write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {workdir / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '127.0.0.1:{port}'}}\n"
            f"auth: {{htpasswd: {{realm: k8py-test, path: {workdir / 'htpasswd'}}}}}\n"
        )
        log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - the registry writes it until stopped
        proc = subprocess.Popen(
            [REGISTRY, "serve", str(workdir / "config.yml")], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    registry = Registry(f"127.0.0.1:{port}", username, password, proc, workdir)
    deadline = time.monotonic() + timeout
    while True:
        # ready when /v2/ answers (401: it wants the credentials)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
            break
        except urllib.error.HTTPError as e:
            if e.code == 401:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            text = (workdir / "registry.log").read_text(errors="replace")[-2000:]
            registry.stop()
            raise RuntimeError(f"docker-registry did not start on 127.0.0.1:{port}: {text}")
        time.sleep(0.05)
    return registry


@contextlib.contextmanager
def running_registry(username: str = "k8py", password: str = "s3cret-pass") -> Iterator[Registry]:
    """:func:`start_registry` for a ``with`` block."""
    registry = start_registry(username, password)
    try:
        yield registry
    finally:
        registry.stop()
