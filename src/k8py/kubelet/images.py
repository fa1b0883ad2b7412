"""The node's image store: OCI image layouts on disk, pulled and imported with skopeo, unpacked once
with umoci. It implements :class:`~k8py.kubelet.runtime.types.ImageService`.

Layout
------
Under ``root`` (the agent uses :func:`store_dir`: ``<data-dir>/agent/images-store``)::

    index.json           the references and image records (written whole: temp file + rename)
    lock                 flock'ed by whoever changes the store (the agent, ``k8py images``)
    layouts/<hex>/       one OCI image layout per image (its one manifest is named "image")
    rootfs/<hex>/        the image unpacked (``umoci raw unpack``): the read-only lower layer
                         the runtime mounts an overlayfs on; starting a container copies nothing
    tmp/<pid>-<token>/   staging for pulls and imports in flight (left-overs of dead processes
                         are removed when the store is first used)

``<hex>`` is the image id without ``sha256:``; the id is the digest of the image's config, as in
containerd and docker, so the same image pulled from a registry and imported from an archive
(OCI or docker form) is stored once. One layout per image (no blob sharing between images)
means a pull or import never writes into a directory another process reads; blobs are copied
into a staging directory, the image is unpacked there, and both are moved into place with a
rename. So an image in ``index.json`` always has its layout and its rootfs.

References
----------
Names are normalized as Kubernetes and containerd do (docker's reference grammar):
``busybox`` -> ``docker.io/library/busybox:latest``, ``foo/bar:1`` -> ``docker.io/foo/bar:1``,
``localhost:5000/x`` keeps its registry, a name with a digest keeps the digest (and drops a tag
given with it). An image has ``repo_tags`` (``name:tag``) and ``repo_digests``
(``name@sha256:...``: the registry's digest of what was pulled, or the manifest digest of an OCI
archive). A tag given to a new image moves off the old one; an image left with no tags stays
until it is removed or collected (running containers may still use it). ``image_status`` and
``remove_image`` also take an id (``sha256:<hex>``) or a unique hex prefix of one.

Removing a tag or digest removes that reference; when an image has no tags left it is deleted
(its layout and rootfs), unless a container still uses it: an overlayfs mount whose lower layer
is its rootfs, or an id the owner's ``in_use`` callback reports. Removing by id deletes the image.

Concurrency
-----------
Every blocking step (skopeo, umoci, copying, reading archives, writing the index) runs off the
event loop, in an asyncio subprocess or ``asyncio.to_thread``. Concurrent pulls of one reference
with the same credentials share one pull. Changes to the index take an asyncio lock and then an
``flock`` on ``lock`` (so ``k8py images import`` may run while the agent does), reload the
index, change it and write it; slow work (downloads, unpacking) happens before, outside the locks.
Readers reload the index when the file changed.

Image garbage collection follows kubelet's image GC manager: when the filesystem holding the
store is more than ``high_percent`` full, unused images are removed, least recently used first,
until usage is at ``low_percent``. The runtime calls :meth:`ImageStore.rootfs` when it creates a
container, which counts as a use.
"""

from __future__ import annotations

import asyncio
import base64
import bz2
import contextlib
import fcntl
import gzip
import hashlib
import json
import logging
import lzma
import os
import re
import secrets
import shutil
import tarfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from k8py.kubelet import proc
from k8py.kubelet.runtime.types import (
    Image,
    ImageNotFoundError,
    ImagePullError,
    RegistryAuth,
    RuntimeServiceError,
)

__all__ = [
    "ARCHIVE_SUFFIXES",
    "ImageImportError",
    "ImageInUseError",
    "ImageStore",
    "InvalidImageNameError",
    "Reference",
    "airgap_dir",
    "normalize_reference",
    "parse_reference",
    "store_dir",
]

log = logging.getLogger("k8py.kubelet.images")

SKOPEO = "skopeo"
UMOCI = "umoci"
SYSTEM_POLICY = "/etc/containers/policy.json"
LAYOUT_TAG = "image"  # the name of the one manifest in each layout
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".oci")
INDEX_VERSION = 1


def store_dir(data_dir: str) -> str:
    """Where the agent and ``k8py images`` keep the store."""
    return os.path.join(data_dir, "agent", "images-store")


def airgap_dir(data_dir: str) -> str:
    """k3s's drop folder for image archives (``agent/images``), imported when the agent starts."""
    return os.path.join(data_dir, "agent", "images")


# --------------------------------------------------------------------------- errors


class InvalidImageNameError(ImagePullError, ValueError):
    """Not a valid image reference (kubelet's ``InvalidImageName``)."""


class ImageImportError(RuntimeServiceError):
    """An archive could not be imported (not an image archive, unreadable, refused by skopeo)."""


class ImageInUseError(RuntimeServiceError):
    """The image would be deleted but a container still uses it."""


# --------------------------------------------------------------------------- references
# docker/distribution's reference grammar (reference/regexp.go), and splitDockerDomain.

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")
NAME_TOTAL_LENGTH_MAX = 255
DEFAULT_DOMAIN = "docker.io"
LOOPBACK_REGISTRIES = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalized image reference: ``domain/path`` with a tag or a digest (never both)."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def host(self) -> str:
        """The registry host without its port."""
        if self.domain.startswith("["):
            return self.domain[: self.domain.index("]") + 1]
        return self.domain.rsplit(":", 1)[0]

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_REGISTRIES

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}" if self.digest else f"{self.name}:{self.tag}"


def parse_reference(ref: str) -> Reference:
    """Parse and normalize an image reference as Kubernetes does (``docker.io/library/`` for
    bare names, ``:latest`` when there is neither tag nor digest). Raises
    :class:`InvalidImageNameError` with the reason."""
    if not isinstance(ref, str) or not ref or ref != ref.strip():
        raise InvalidImageNameError(f"invalid image name {ref!r}: empty or surrounded by whitespace")
    if _SHA256.fullmatch(ref) or (len(ref) == 64 and _HEX.fullmatch(ref)):
        raise InvalidImageNameError(f"invalid image name {ref!r}: an image id, not a reference")
    rest, _, digest = ref.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise InvalidImageNameError(f"invalid image name {ref!r}: bad digest {digest!r}")
    tag = ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidImageNameError(f"invalid image name {ref!r}: bad tag {tag!r}")
    if len(rest) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidImageNameError(
            f"invalid image name {ref!r}: longer than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first, remainder
        if not _DOMAIN.fullmatch(domain):
            raise InvalidImageNameError(f"invalid image name {ref!r}: bad registry {domain!r}")
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    if not _PATH.fullmatch(path):
        why = "repository name must be lowercase" if path.lower() != path else "bad repository name"
        raise InvalidImageNameError(f"invalid image name {ref!r}: {why} ({path!r})")
    if digest:
        tag = ""  # as docker's ParseDockerRef: a digest names the image, the tag is dropped
    elif not tag:
        tag = "latest"
    return Reference(domain, path, tag, digest)


def normalize_reference(ref: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``; see :func:`parse_reference`."""
    return str(parse_reference(ref))


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class _Record:
    id: str
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    size: int = 0
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    stored_at: float = 0.0  # when it first came to this node (kubelet's firstDetected)
    last_used: float = 0.0

    def image(self) -> Image:
        return Image(
            id=self.id,
            repo_tags=list(self.repo_tags),
            repo_digests=list(self.repo_digests),
            size=self.size,
            entrypoint=list(self.entrypoint),
            cmd=list(self.cmd),
            env=list(self.env),
            working_dir=self.working_dir,
            user=self.user,
            stop_signal=self.stop_signal,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Record:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(slots=True)
class _Staged:
    """An image copied into a staging layout and unpacked, ready to be moved into place."""

    id: str
    layout: Path
    rootfs: Path | None  # None when the store already had the image
    record: _Record


def _hex(image_id: str) -> str:
    return image_id.removeprefix("sha256:")


def _str_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _read_layout(layout: Path) -> tuple[str, _Record]:
    """The image id and the config's process defaults of a one-image layout."""

    def blob(digest: str) -> bytes:
        algo, _, hexd = digest.partition(":")
        return (layout / "blobs" / algo / hexd).read_bytes()

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    config_digest = manifest["config"]["digest"]
    config = json.loads(blob(config_digest)).get("config") or {}
    rec = _Record(
        id=config_digest,
        entrypoint=_str_list(config.get("Entrypoint")),
        cmd=_str_list(config.get("Cmd")),
        env=_str_list(config.get("Env")),
        working_dir=str(config.get("WorkingDir") or ""),
        user=str(config.get("User") or ""),
        stop_signal=str(config.get("StopSignal") or ""),
    )
    return config_digest, rec


def _disk_usage(*paths: Path) -> int:
    """Bytes the trees take on disk (allocated blocks; hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top in paths:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in (*dirnames, *filenames):
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _unescape_mount(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def _overlay_lowerdirs() -> set[str]:
    """Every lower layer of the overlay mounts this process can see (/proc/self/mountinfo)."""
    out: set[str] = set()
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return out
    for line in lines:
        _, sep, post = line.partition(" - ")
        if not sep or not post.startswith("overlay "):
            continue
        parts = post.split()
        options = parts[2] if len(parts) > 2 else ""
        # "lowerdir=a:b" (":" inside a path is escaped as "\:"); options are comma separated
        for opt in re.split(r"(?<!\\),", options):
            if opt.startswith("lowerdir="):
                for d in re.split(r"(?<!\\):", opt[len("lowerdir=") :]):
                    out.add(os.path.normpath(_unescape_mount(d.replace("\\:", ":").replace("\\,", ","))))
    return out


# --------------------------------------------------------------------------- archives

_MAGIC = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))


def _decompressed(path: Path, staging: Path) -> Path:
    """``path`` itself when it is a plain tar, else a decompressed copy in ``staging``
    (skopeo's docker-archive reader takes only plain tars). A path with ``:`` (skopeo's
    separator) is linked into ``staging``."""
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            out = staging / "archive.tar"
            with opener(path, "rb") as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            return out
    if ":" in str(path):
        link = staging / "archive.tar"
        link.symlink_to(path.resolve())
        return link
    return path


@dataclass(frozen=True, slots=True)
class _Entry:
    """One image of an archive: the skopeo source that selects it and the names it carries."""

    source: str
    names: tuple[str, ...]
    digest: str = ""  # the manifest digest (OCI archives)


def _archive_entries(tar_path: Path, shown: str) -> list[_Entry]:
    """The images in an OCI archive (``index.json``) or docker archive (``manifest.json``)."""
    try:
        tar = tarfile.open(tar_path)  # noqa: SIM115 - closed by the with below; open errors are ours
    except (tarfile.TarError, OSError) as e:
        raise ImageImportError(f"{shown}: not a tar archive (plain or gzip, bzip2, xz compressed)") from e
    with tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

        def read_json(name: str) -> Any:
            f = tar.extractfile(members[name])
            assert f is not None
            try:
                return json.loads(f.read())
            except ValueError as e:
                raise ImageImportError(f"{shown}: {name} is not JSON ({e})") from e

        if "index.json" in members:
            return _oci_entries(read_json("index.json"), tar_path, shown)
        if "manifest.json" in members:
            return _docker_entries(read_json("manifest.json"), tar_path, shown)
    raise ImageImportError(
        f"{shown}: not an image archive (neither an OCI archive with index.json nor a docker archive "
        "with manifest.json; make one with `skopeo copy ... oci-archive:FILE` or `docker save`)"
    )


def _oci_entries(index: Any, tar_path: Path, shown: str) -> list[_Entry]:
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not manifests:
        raise ImageImportError(f"{shown}: index.json lists no manifests")
    out = []
    for i, m in enumerate(manifests):
        ann = m.get("annotations") or {}
        ref_name = str(ann.get(REF_NAME, ""))
        # containerd and buildkit put the full name in their own annotation and may leave only the
        # tag in ref.name; a ref.name without ":" "/" or "@" is such a bare tag, not a name.
        full = str(ann.get(CONTAINERD_NAME, "")) or (ref_name if re.search(r"[:/@]", ref_name) else "")
        if ref_name:
            source = f"oci-archive:{tar_path}:{ref_name}"
        elif len(manifests) == 1:
            source = f"oci-archive:{tar_path}"
        else:
            raise ImageImportError(
                f"{shown}: manifest {i} of {len(manifests)} has no {REF_NAME} annotation to select it by"
            )
        out.append(_Entry(source, (full,) if full else (), str(m.get("digest", ""))))
    return out


def _docker_entries(manifest: Any, tar_path: Path, shown: str) -> list[_Entry]:
    if not isinstance(manifest, list) or not manifest:
        raise ImageImportError(f"{shown}: manifest.json lists no images")
    return [
        _Entry(f"docker-archive:{tar_path}:@{i}", tuple(str(t) for t in (m.get("RepoTags") or [])))
        for i, m in enumerate(manifest)
    ]


# --------------------------------------------------------------------------- skopeo's errors


def _skopeo_message(stderr: str) -> str:
    """The message of skopeo's last fatal log line, or its last line."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    if not lines:
        return "no message"
    m = re.search(r'msg="((?:[^"\\]|\\.)*)"', lines[-1])
    msg = m.group(1).replace('\\"', '"') if m else lines[-1]
    # skopeo says every failure to read the source is an "Error parsing image name": it is not
    return re.sub(r'^Error parsing image name "[^"]*": ', "", msg)


_UNAUTHORIZED = (
    "unauthorized",
    "authentication required",
    "denied: ",
    "requested access",
    "status 401",
    "status 403",
)
_NOT_FOUND = ("manifest unknown", "name unknown", "not found", "status 404")
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "dial tcp",
    "i/o timeout",
    "network is unreachable",
    "no route to host",
    "tls handshake timeout",
    "server misbehaving",
    "connection reset",
    "temporary failure in name resolution",
    "context deadline exceeded",
    "timeout awaiting",
    "timed out",
)


def _pull_error(ref: Reference, detail: str, with_auth: bool) -> ImagePullError:
    low = detail.lower()
    registry = ref.domain
    if any(s in low for s in _UNAUTHORIZED):
        how = "the credentials given were refused" if with_auth else "it needs credentials (imagePullSecrets)"
        return ImagePullError(
            f"failed to pull {ref}: unauthorized: {registry} refused access, {how}: {detail}"
        )
    if any(s in low for s in _UNREACHABLE):
        return ImagePullError(
            f"failed to pull {ref}: registry {registry} cannot be reached ({detail}); this node cannot get "
            "the image offline: copy an archive of it to the node and run `k8py images import FILE` "
            "(or put it in the agent's images directory)"
        )
    if any(s in low for s in _NOT_FOUND):
        return ImagePullError(f"failed to pull {ref}: not found in {registry}: {detail}")
    return ImagePullError(f"failed to pull {ref}: {detail}")


# --------------------------------------------------------------------------- the store


class ImageStore:
    """The node's images under ``root``; see the module's docstring.

    ``in_use`` (optional) returns the ids of images containers use; with it (and the overlay
    mounts seen in /proc) removal refuses to delete an image still in use. ``pull_timeout``
    bounds one skopeo run."""

    def __init__(
        self,
        root: str,
        *,
        in_use: Callable[[], Awaitable[Collection[str]]] | None = None,
        pull_timeout: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root).absolute()
        self._in_use = in_use
        self._pull_timeout = pull_timeout
        self._clock = clock
        self._images: dict[str, _Record] = {}
        self._refs: dict[str, str] = {}  # tag or digest reference -> id
        self._files: dict[str, dict[str, int]] = {}  # imported archive path -> size, mtime_ns
        self._stamp: tuple[int, int, int] | None = None  # the index file we last read
        self._last_used: dict[str, float] = {}  # uses not yet written to the index
        self._lock = asyncio.Lock()
        self._started = False
        self._pulls: dict[tuple[str, RegistryAuth | None], asyncio.Task[str]] = {}

    # ------------------------------------------------------------------ files and locks

    @property
    def _index_path(self) -> Path:
        return self.root / "index.json"

    def layout_dir(self, image_id: str) -> Path:
        return self.root / "layouts" / _hex(image_id)

    def _rootfs_dir(self, image_id: str) -> Path:
        return self.root / "rootfs" / _hex(image_id)

    def _read_index(self) -> None:
        """(thread) Load index.json if it changed since we read it."""
        try:
            st = self._index_path.stat()
        except FileNotFoundError:
            self._images, self._refs, self._files, self._stamp = {}, {}, {}, None
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        data = json.loads(self._index_path.read_text())
        if data.get("version") != INDEX_VERSION:
            raise RuntimeServiceError(f"{self._index_path}: unknown index version {data.get('version')!r}")
        images = {i: _Record.from_json(r) for i, r in data.get("images", {}).items()}
        self._images = images
        self._refs = {ref: i for i, r in images.items() for ref in (*r.repo_tags, *r.repo_digests)}
        self._files = dict(data.get("imported_files", {}))
        self._stamp = stamp

    def _write_index(self) -> None:
        """(thread, under the locks) Write index.json whole: a temp file renamed over it."""
        for image_id, when in self._last_used.items():
            rec = self._images.get(image_id)
            if rec is not None and when > rec.last_used:
                rec.last_used = when
        data = {
            "version": INDEX_VERSION,
            "images": {i: r.to_json() for i, r in sorted(self._images.items())},
            "imported_files": self._files,
        }
        tmp = self.root / f"index.json.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._index_path)
        st = self._index_path.stat()
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        self._refs = {ref: i for i, r in self._images.items() for ref in (*r.repo_tags, *r.repo_digests)}

    def _start(self) -> None:
        """(thread, under the locks) Make the directories; remove staging left by dead processes.
        An image on disk that is not in the index (a crash between the rename and the index
        write, or a lost index) is taken back, untagged, when its layout and rootfs are whole;
        half of one is removed."""
        for d in ("layouts", "rootfs", "tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "tmp", 0o700)
        for entry in (self.root / "tmp").iterdir():
            pid = entry.name.split("-", 1)[0]
            if not pid.isdigit() or not _alive(int(pid)):
                _rmtree(entry)
        known = {_hex(i) for i in self._images}
        adopted = False
        for entry in sorted((self.root / "layouts").iterdir()):
            rootfs = self.root / "rootfs" / entry.name
            if entry.name in known or not rootfs.is_dir():
                continue
            try:
                image_id, rec = _read_layout(entry)
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                continue
            if _hex(image_id) == entry.name:
                log.warning("image %s was on disk but not in the index: kept, untagged", image_id)
                rec.size = _disk_usage(entry, rootfs)
                rec.stored_at = rec.last_used = self._clock()
                self._images[image_id] = rec
                known.add(entry.name)
                adopted = True
        for d in ("layouts", "rootfs"):
            for entry in (self.root / d).iterdir():
                if entry.name not in known:
                    log.info("removing %s: not in the image index", entry)
                    _rmtree(entry)
        if adopted:
            self._write_index()

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """The store's lock: asyncio's for this process, flock for the others; the index is
        current inside."""
        async with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = await asyncio.to_thread(_flock, self.root / "lock")
            try:
                await asyncio.to_thread(self._read_index)
                if not self._started:
                    await asyncio.to_thread(self._start)
                    self._started = True
                yield
            finally:
                os.close(fd)  # releases the flock

    async def _refresh(self) -> None:
        if not self._started:
            async with self._locked():
                return
        await asyncio.to_thread(self._read_index)

    def _staging(self) -> Path:
        path = self.root / "tmp" / f"{os.getpid()}-{secrets.token_hex(6)}"
        path.mkdir(parents=True)
        return path

    # ------------------------------------------------------------------ lookups

    def _lookup(self, ref: str) -> str | None:
        """The id ``ref`` names: an id, a reference, or a unique hex prefix of an id."""
        if _SHA256.fullmatch(ref):
            return ref if ref in self._images else None
        try:
            image_id = self._refs.get(normalize_reference(ref))
        except InvalidImageNameError:
            image_id = None
            if not _HEX.fullmatch(ref):
                raise
        if image_id is None and _HEX.fullmatch(ref):
            matches = [i for i in self._images if _hex(i).startswith(ref)]
            if len(matches) > 1:
                raise ImageNotFoundError(f"image id prefix {ref!r} is ambiguous: {len(matches)} images match")
            image_id = matches[0] if matches else None
        return image_id

    async def image_status(self, ref: str) -> Image | None:
        """The image ``ref`` names (reference, ``sha256:`` id or unique id prefix), or None."""
        await self._refresh()
        image_id = self._lookup(ref)
        return self._images[image_id].image() if image_id else None

    async def list_images(self) -> list[Image]:
        await self._refresh()
        return [r.image() for r in sorted(self._images.values(), key=lambda r: (r.repo_tags or ["~"], r.id))]

    def rootfs(self, image_id: str) -> str:
        """The image's unpacked root filesystem (read-only: the lower layer of an overlay). A call
        counts as a use of the image (for image GC)."""
        rec = self._images.get(image_id) or self._images.get("sha256:" + image_id)
        if rec is None:
            self._read_index()  # a small file; only when the image is not known yet
            rec = self._images.get(image_id) or self._images.get("sha256:" + image_id)
        if rec is None:
            raise ImageNotFoundError(f"image {image_id} is not on this node")
        self._last_used[rec.id] = self._clock()
        return str(self._rootfs_dir(rec.id))

    def mark_used(self, image_id: str, when: float | None = None) -> None:
        """Record that a container uses the image now (or at ``when``)."""
        self._last_used[image_id] = self._clock() if when is None else when

    # ------------------------------------------------------------------ adding images

    async def _skopeo(self, *args: str) -> tuple[int, bytes, str]:
        policy = [] if os.path.exists(SYSTEM_POLICY) else ["--insecure-policy"]
        return await _run([SKOPEO, *policy, *args], self._pull_timeout)

    async def _stage(
        self, source: str, staging: Path, src_args: Iterable[str] = ()
    ) -> tuple[_Staged | None, str]:
        """Copy ``source`` into a layout in ``staging`` and unpack it there unless the store has
        it. Returns (staged, "") or (None, skopeo's message)."""
        staging.mkdir(exist_ok=True)
        layout = staging / "oci"
        rc, _, err = await self._skopeo("copy", "--quiet", *src_args, source, f"oci:{layout}:{LAYOUT_TAG}")
        if rc != 0:
            return None, _skopeo_message(err)
        image_id, rec = await asyncio.to_thread(_read_layout, layout)
        await self._refresh()
        if image_id in self._images:
            return _Staged(image_id, layout, None, rec), ""
        rootfs = staging / "rootfs"
        argv = [UMOCI, "raw", "unpack"]
        if os.geteuid() != 0:
            argv.append("--rootless")
        rc, _, err = await _run([*argv, "--image", f"{layout}:{LAYOUT_TAG}", str(rootfs)], self._pull_timeout)
        if rc != 0:
            raise RuntimeServiceError(f"unpacking {image_id} ({source}): umoci: {err.strip()[-500:]}")
        rec.size = await asyncio.to_thread(_disk_usage, layout, rootfs)
        return _Staged(image_id, layout, rootfs, rec), ""

    async def _commit(self, staged: _Staged, tags: Iterable[str], digests: Iterable[str]) -> Image:
        """Move a staged image into place (if the store does not have it yet) and point the
        references at it."""
        async with self._locked():
            rec = self._images.get(staged.id)
            if rec is None:
                if staged.rootfs is None:  # removed while we copied: unpack after all
                    raise _Retry
                await asyncio.to_thread(self._install, staged)
                rec = staged.record
                rec.stored_at = rec.last_used = self._clock()
                self._images[rec.id] = rec
            for tag in tags:
                self._tag(tag, rec)
            for digest in digests:
                if digest not in rec.repo_digests:
                    rec.repo_digests.append(digest)
            await asyncio.to_thread(self._write_index)
            return rec.image()

    def _tag(self, tag: str, rec: _Record) -> None:
        """(under the locks) Point ``tag`` at ``rec``. A tag moves; the image it leaves stays,
        untagged, for its containers or the image GC."""
        old = self._refs.get(tag)
        if old is not None and old != rec.id and old in self._images:
            self._images[old].repo_tags.remove(tag)
        if tag not in rec.repo_tags:
            rec.repo_tags.append(tag)
        self._refs[tag] = rec.id

    def _install(self, staged: _Staged) -> None:
        assert staged.rootfs is not None
        for src, dst in (
            (staged.layout, self.layout_dir(staged.id)),
            (staged.rootfs, self._rootfs_dir(staged.id)),
        ):
            if dst.exists():  # an orphan of a crash: not in the index
                _rmtree(dst)
            os.rename(src, dst)

    async def _add(
        self,
        source: str,
        tags: Iterable[str],
        digests: Iterable[str],
        src_args: Iterable[str] = (),
        staging: Path | None = None,
    ) -> tuple[Image | None, str]:
        own = staging is None
        base = staging if staging is not None else await asyncio.to_thread(self._staging)
        work = base / "img"
        try:
            for _ in range(2):
                staged, err = await self._stage(source, work, src_args)
                if staged is None:
                    return None, err
                try:
                    return await self._commit(staged, tags, digests), ""
                except _Retry:
                    await asyncio.to_thread(_rmtree, work)
            raise RuntimeServiceError(f"{source}: the image was removed while it was being stored, twice")
        finally:
            await asyncio.to_thread(_rmtree, base if own else work)

    async def import_archive(self, path: str | os.PathLike[str]) -> list[Image]:
        """Import every image of an OCI archive or docker archive (gzip, bzip2 or xz compressed or
        not), under the names the archive records. Returns them."""
        archive = Path(path)
        if not archive.is_file():
            raise ImageImportError(f"{archive}: no such file")
        await self._refresh()
        staging = await asyncio.to_thread(self._staging)
        try:
            tar_path = await asyncio.to_thread(_decompressed, archive.absolute(), staging)
            entries = await asyncio.to_thread(_archive_entries, tar_path, str(archive))
            out = []
            for entry in entries:
                try:
                    refs = [parse_reference(n) for n in entry.names]
                except InvalidImageNameError as e:
                    raise ImageImportError(f"{archive}: {e}") from e
                tags = [str(r) for r in refs if r.tag]
                digests = [str(r) for r in refs if r.digest]
                if entry.digest:
                    digests += [f"{r.name}@{entry.digest}" for r in refs if r.tag]
                image, err = await self._add(entry.source, tags, digests, staging=staging)
                if image is None:
                    raise ImageImportError(f"{archive}: skopeo could not read it: {err}")
                log.info(
                    "imported %s (%s) from %s",
                    ", ".join(image.repo_tags) or "an untagged image",
                    image.id,
                    archive,
                )
                out.append(image)
            return out
        finally:
            await asyncio.to_thread(_rmtree, staging)

    async def import_dir(self, path: str | os.PathLike[str]) -> list[Image]:
        """Import the archives (``*.tar``, ``*.tar.gz``, ``*.tgz``, ``*.tar.bz2``, ``*.tar.xz``,
        ``*.oci``) of a directory that were not imported before (same path, size and mtime): k3s's
        ``agent/images``. An archive that fails is logged and tried again next time."""
        directory = Path(path).absolute()
        files = await asyncio.to_thread(_archives_in, directory)
        await self._refresh()
        out: list[Image] = []
        for file, size, mtime_ns in files:
            if self._files.get(str(file)) == {"size": size, "mtime_ns": mtime_ns}:
                continue
            try:
                images = await self.import_archive(file)
            except RuntimeServiceError as e:
                log.error("could not import %s: %s", file, e)
                continue
            out.extend(images)
            async with self._locked():
                self._files[str(file)] = {"size": size, "mtime_ns": mtime_ns}
                await asyncio.to_thread(self._write_index)
        return out

    # ------------------------------------------------------------------ pulls

    async def pull_image(self, ref: str, auth: RegistryAuth | None = None) -> str:
        """Pull ``ref`` from its registry (skopeo) and return the image id. Concurrent pulls of
        one reference with the same credentials are one pull."""
        parsed = parse_reference(ref)
        key = (str(parsed), auth)
        task = self._pulls.get(key)
        if task is None:
            task = asyncio.ensure_future(self._pull(parsed, auth))
            self._pulls[key] = task

            def done(t: asyncio.Task[str]) -> None:
                if self._pulls.get(key) is t:
                    del self._pulls[key]
                if not t.cancelled():
                    t.exception()  # retrieved: no "never retrieved" warning when every caller left

            task.add_done_callback(done)
        # shielded: one caller giving up does not cancel the pull the others wait for
        return await asyncio.shield(task)

    async def _pull(self, ref: Reference, auth: RegistryAuth | None) -> str:
        staging = await asyncio.to_thread(self._staging)
        try:
            if auth is not None and (auth.username or auth.password or auth.identity_token):
                authfile = staging / "auth.json"
                await asyncio.to_thread(_write_authfile, authfile, ref.domain, auth)
                creds = ["--authfile", str(authfile)]
            else:
                authfile, creds = None, ["--no-creds"]
            tls = ["--tls-verify=false"] if ref.loopback else []
            digest = ref.digest
            if not digest:
                # The registry's digest of what the tag names now; copying name@digest then
                # cannot get a different image if the tag moves meanwhile.
                rc, out, err = await self._skopeo("inspect", "--raw", *creds, *tls, f"docker://{ref}")
                if rc != 0:
                    raise _pull_error(ref, _skopeo_message(err), authfile is not None)
                digest = "sha256:" + hashlib.sha256(out).hexdigest()
            by_digest = f"{ref.name}@{digest}"
            tags = [str(ref)] if ref.tag else []
            await self._refresh()
            have = self._refs.get(by_digest)
            if have is not None:  # already here: at most the tag is new
                if not tags or self._refs.get(tags[0]) == have:
                    return have
                async with self._locked():
                    if self._refs.get(by_digest) == have:  # still here
                        self._tag(tags[0], self._images[have])
                        await asyncio.to_thread(self._write_index)
                        return have
            src_creds = ["--src-authfile", str(authfile)] if authfile else ["--src-no-creds"]
            src_tls = ["--src-tls-verify=false"] if ref.loopback else []
            image, err = await self._add(
                f"docker://{by_digest}", tags, [by_digest], [*src_creds, *src_tls], staging=staging
            )
            if image is None:
                raise _pull_error(ref, err, authfile is not None)
            log.info("pulled %s (%s)", ref, image.id)
            return image.id
        finally:
            await asyncio.to_thread(_rmtree, staging)

    # ------------------------------------------------------------------ removal and GC

    async def _used_ids(self, extra: Collection[str] = ()) -> set[str]:
        ids = set(extra)
        if self._in_use is not None:
            ids |= set(await self._in_use())
        lowers = await asyncio.to_thread(_overlay_lowerdirs)
        for image_id in self._images:
            if str(self._rootfs_dir(image_id)) in lowers:
                ids.add(image_id)
        return ids

    async def remove_image(self, ref: str) -> None:
        """Remove a reference (the image goes with its last tag) or, given an id, the image.
        Nothing happens when nothing matches. Raises :class:`ImageInUseError` instead of deleting
        an image a container uses."""
        async with self._locked():
            image_id = self._lookup(ref)
            if image_id is None:
                return
            rec = self._images[image_id]
            name = _reference_or_none(ref)
            if name is not None and self._refs.get(name) == image_id:  # by reference, not by id
                tags = [t for t in rec.repo_tags if t != name]
                digests = [d for d in rec.repo_digests if d != name]
                if tags or (name in rec.repo_digests and digests):
                    rec.repo_tags, rec.repo_digests = tags, digests
                    await asyncio.to_thread(self._write_index)
                    return
            if image_id in await self._used_ids():
                raise ImageInUseError(
                    f"cannot remove {ref}: image {image_id} is used by a container; remove the container first"
                )
            await self._delete(image_id)

    async def _delete(self, image_id: str) -> None:
        """(under the locks) Drop the image from the index, then its files."""
        del self._images[image_id]
        self._last_used.pop(image_id, None)
        await asyncio.to_thread(self._write_index)
        trash = self.root / "tmp" / f"{os.getpid()}-rm-{_hex(image_id)[:12]}-{secrets.token_hex(3)}"

        def move_and_remove() -> None:
            trash.mkdir()
            for src in (self.layout_dir(image_id), self._rootfs_dir(image_id)):
                if src.exists():
                    os.rename(src, trash / src.parent.name)
            _rmtree(trash)

        await asyncio.to_thread(move_and_remove)
        log.info("removed image %s", image_id)

    async def free_space(self, bytes_to_free: int, in_use: Collection[str] = (), min_age: float = 0.0) -> int:
        """Remove images no container uses, least recently used first (then oldest stored), until
        ``bytes_to_free`` are freed; images stored less than ``min_age`` seconds ago stay.
        Returns the bytes freed (kubelet's ``freeSpace``)."""
        freed = 0
        async with self._locked():
            used = await self._used_ids(in_use)
            now = self._clock()
            for image_id in used:
                if image_id in self._images:
                    self._last_used[image_id] = now  # as kubelet: images in use are used now
            candidates = sorted(
                (r for i, r in self._images.items() if i not in used and now - r.stored_at >= min_age),
                key=lambda r: (max(r.last_used, self._last_used.get(r.id, 0.0)), r.stored_at),
            )
            for rec in candidates:
                if freed >= bytes_to_free:
                    break
                await self._delete(rec.id)
                freed += rec.size
        return freed

    async def gc(
        self,
        in_use: Collection[str] = (),
        high_percent: int = 85,
        low_percent: int = 80,
        min_age: float = 0.0,
    ) -> int:
        """kubelet's image GC: when the filesystem of the store is at least ``high_percent`` full,
        free unused images until it is at ``low_percent``. Returns the bytes freed."""
        if not 0 <= low_percent <= high_percent <= 100:
            raise ValueError(
                f"image GC thresholds: need 0 <= low ({low_percent}) <= high ({high_percent}) <= 100"
            )
        await self._refresh()
        st = await asyncio.to_thread(os.statvfs, self.root)
        capacity, available = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        usage = 100 - available * 100 // capacity if capacity else 0
        if usage < high_percent:
            return 0
        to_free = capacity * (100 - low_percent) // 100 - available
        log.info(
            "image GC: disk usage %d%% is at or over %d%%, freeing %d bytes", usage, high_percent, to_free
        )
        freed = await self.free_space(to_free, in_use, min_age)
        if freed < to_free:
            log.warning(
                "image GC: freed %d bytes of the %d wanted (the rest is in use or too young)", freed, to_free
            )
        return freed


def _reference_or_none(ref: str) -> str | None:
    try:
        return normalize_reference(ref)
    except InvalidImageNameError:
        return None


class _Retry(Exception):
    pass


# --------------------------------------------------------------------------- helpers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _flock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_authfile(path: Path, registry: str, auth: RegistryAuth) -> None:
    """A containers-auth.json(5) file only we can read: credentials never go on a command line."""
    entry: dict[str, str] = {}
    if auth.username or auth.password:
        entry["auth"] = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
    if auth.identity_token:
        entry["identitytoken"] = auth.identity_token
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"auths": {registry: entry}}, f)


def _archives_in(directory: Path) -> list[tuple[Path, int, int]]:
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if not name.endswith(ARCHIVE_SUFFIXES):
            continue
        p = directory / name
        try:
            st = p.stat()
        except OSError:
            continue
        if p.is_file():
            out.append((p, st.st_size, st.st_mtime_ns))
    return out


async def _run(argv: list[str], timeout: float) -> tuple[int, bytes, str]:
    """Run a program off the loop; kill it on timeout."""
    try:
        r = await proc.run(argv, timeout=timeout)
    except FileNotFoundError as e:
        raise RuntimeServiceError(f"{argv[0]} is not installed (scripts/install installs it)") from e
    except TimeoutError:
        return 1, b"", f"{argv[0]} {argv[1] if len(argv) > 1 else ''}: timed out after {timeout:g}s"
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")
