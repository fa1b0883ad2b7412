"""The node agent's volume manager: set-up, refresh and tear-down of every volume kind a pod can
have, as kubelet's volume manager and its in-tree plugins do it.

Where things are on the node (kubelet's layout, under the agent's ``pods`` directory)::

    pods/<uid>/volumes/kubernetes.io~empty-dir/<name>      a directory, or a tmpfs (medium: Memory)
    pods/<uid>/volumes/kubernetes.io~configmap/<name>      atomic-writer directory on disk
    pods/<uid>/volumes/kubernetes.io~secret/<name>         atomic-writer directory on a tmpfs
    pods/<uid>/volumes/kubernetes.io~downward-api/<name>   atomic-writer directory on disk
    pods/<uid>/volumes/kubernetes.io~projected/<name>      atomic-writer directory on a tmpfs
    pods/<uid>/volume-subpaths/<volume>/<container>/<i>    bind mount of a subPath of an
                                                           atomic-writer volume (never updated)

A ``hostPath`` volume is its path on the node, checked (or made) per its ``type``.

**Claims** (kubelet's desired-state populator): a ``persistentVolumeClaim`` volume, or an
``ephemeral`` one (its claim ``<pod>-<volume>``, which the pod must own), is the path of the
PersistentVolume its claim is bound to, read once per pod: the claim must exist, not be being
deleted (unless it still has the ``kubernetes.io/pvc-protection`` finalizer: a pod uses it, as
the pod an agent finds running after a restart does), be Bound with a ``volumeName``, and the volume must point back at it. Until then the pod
waits with kubelet's ``FailedMount`` "Unable to attach or mount volumes: ... failed to process
volumes=[x]: error processing PVC ns/x: PVC is not bound". The node mounts ``hostPath`` volumes
(their ``type`` checked like a pod's hostPath) and ``local`` ones (the path must exist); the
containers bind-mount the path, read-only when the claim volume says ``readOnly``. Other volume
types are refused, naming the type. The data stays on the node when the pod goes.

**Atomic writer** (kubelet's ``AtomicWriter``): the files of a ConfigMap, Secret, downward API or
projected volume are written into a new hidden timestamped directory (``..2026_01_02_15_04_05.xyz``);
the ``..data`` symlink is pointed at it by renaming a fresh ``..data_tmp`` symlink over it (one
atomic rename), and the user-visible names are symlinks into ``..data``. A reader sees the old set
of files or the new one, never a mix. Nothing is written when nothing changed.

**Live updates**: every ConfigMap and Secret a pod's volumes refer to is watched (one watch per
object, shared by the pods that use it: kubelet's watch-based manager); a change wakes those pods'
workers, and each pod sync rewrites what changed. Downward API files follow the pod's labels and
annotations the same way (a pod update wakes its worker). A ``subPath`` of such a volume is a bind
mount of the file as it was when the container started, so it does not change, as in Kubernetes.

**Service-account tokens**: a projected volume's ``serviceAccountToken`` source is a token the
agent asks the TokenRequest API for, bound to the pod (:mod:`k8py.kubelet.tokenmanager`), renewed
at 80 % of its life or after 24 h; each pod sync (at least every minute) writes a renewed token
through the atomic writer.

**Waiting**: a volume that cannot be set up (a missing ConfigMap, a missing key, a wrong hostPath
type, a kind this node does not have) is reported as kubelet's ``FailedMount`` event
(``MountVolume.SetUp failed for volume "x" : ...``) and retried with kubelet's back-off (0.5 s
doubling to 2 min 2 s), or at once when a watched object changes; no container of the pod starts
until every volume has been set up once.

**emptyDir sizeLimit**: every 10 s (kubelet's eviction interval) the disk use of each emptyDir with
a ``sizeLimit`` is measured; a pod over it is evicted with kubelet's message.

**Tear-down**: when a pod finishes (Succeeded, Failed, evicted) its volumes are unmounted and
their directories removed; when it is gone, every mount under its directory is unmounted
(deepest first) and the directory removed. A directory that still has a mount is left in place
and reported (never removed through a mount). The start-up pass and a periodic pass (every
minute) do the same for the directories of pods this node no longer has; ``k8py killall`` for
all of them.

The file work (blocking) runs in threads; ``mount``/``umount`` through :mod:`k8py.kubelet.proc`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from k8py.api.corev1 import format_epoch, int_value
from k8py.api.quantity import canonicalize
from k8py.api.volume import PVC_PROTECTION_FINALIZER
from k8py.client.api import Client
from k8py.client.errors import ApiError, NotFoundError
from k8py.client.informer import Informer
from k8py.kubelet import proc
from k8py.kubelet.runtime.types import ContainerConfig
from k8py.kubelet.spec import ConfigError, NodeFacts, metadata_field, resource_field_value
from k8py.kubelet.tokenmanager import TokenManager

__all__ = [
    "ATOMIC_KINDS",
    "AtomicWriter",
    "FileProjection",
    "MountResult",
    "VolumeError",
    "VolumeManager",
    "check_host_path",
    "configmap_payload",
    "downward_payload",
    "empty_dir_memory_size",
    "format_map",
    "mounts_under",
    "projected_payload",
    "secret_payload",
    "set_ownership",
    "teardown_dir",
    "volume_kind",
    "volume_path",
]

log = logging.getLogger("k8py.kubelet")
Obj = dict[str, Any]

PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
# the kinds written with the atomic writer; kubelet mounts them read-only into containers
ATOMIC_KINDS = ("configMap", "secret", "downwardAPI", "projected")
# the kinds kubelet backs with a tmpfs (their wrapped emptyDir has medium Memory)
TMPFS_KINDS = ("secret", "projected")
DEFAULT_MODE = 0o644
DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"
MAX_FILE_NAME = 255
MAX_PATH = 4096
# kubelet's volume operation back-off (exponentialbackoff: 500 ms doubling to 2 min 2 s)
RETRY_INITIAL = 0.5
RETRY_MAX = 122.0
# kubelet's pod worker tries a pod whose claim it could not use again after 10 s
CLAIM_RETRY_MAX = 10.0
# kubelet's eviction manager looks every 10 s
LIMIT_CHECK_INTERVAL = 10.0
ORPHAN_CHECK_INTERVAL = 60.0
# how long a volume set-up waits for a new watch's first list before it reads the object itself
WATCH_SYNC_WAIT = 5.0


class VolumeError(Exception):
    """A volume cannot be set up: kubelet's ``MountVolume.SetUp failed`` with this message."""


@dataclass(frozen=True, slots=True)
class FileProjection:
    data: bytes
    mode: int = DEFAULT_MODE


@dataclass(frozen=True, slots=True)
class MountResult:
    ready: bool  # every volume of the pod has been set up (at least once)
    retry_at: float | None = None  # a failed volume is tried again then


# --------------------------------------------------------------------------- where volumes live


def volume_kind(v: Mapping[str, Any]) -> str:
    """The volume's source kind (``emptyDir``, ``configMap`` ...)."""
    return next((k for k in v if k != "name"), "")


def volume_path(pods_dir: str, uid: str, v: Mapping[str, Any]) -> str | None:
    """Where volume ``v`` of pod ``uid`` is on the node; None for a kind this node cannot mount."""
    kind = volume_kind(v)
    if kind == "hostPath":
        return str((v.get("hostPath") or {}).get("path", ""))
    plugin = PLUGIN_DIRS.get(kind)
    if plugin is None:
        return None
    return os.path.join(pods_dir, uid, "volumes", plugin, str(v.get("name", "")))


def _unsupported(kind: str) -> str:
    return (f"{kind or 'this'} volumes are not supported by this node (it mounts emptyDir, hostPath, "
            "configMap, secret, downwardAPI, projected, persistentVolumeClaim and ephemeral volumes)")


CLAIM_KINDS = ("persistentVolumeClaim", "ephemeral")
# the PersistentVolume types this node mounts (both are a path on the node)
PV_TYPES = ("hostPath", "local")


@dataclass(frozen=True, slots=True)
class ClaimedVolume:
    """What a pod's claim volume resolved to: the bound PersistentVolume and its path here."""

    claim: str
    pv: str
    type: str  # hostPath or local
    path: str
    host_path_type: str | None = None


class MountMessageError(VolumeError):
    """A volume error whose event message is kubelet's own whole text (not the SetUp form)."""


def claim_name(pod: Mapping[str, Any], v: Mapping[str, Any]) -> str:
    """The claim a claim volume uses: its ``claimName``, or ``<pod>-<volume>`` for an ephemeral one."""
    if volume_kind(v) == "ephemeral":
        return f"{(pod.get('metadata') or {}).get('name', '')}-{v.get('name', '')}"
    return str((v.get("persistentVolumeClaim") or {}).get("claimName") or "")


def check_claim(pod: Mapping[str, Any], v: Mapping[str, Any], pvc: Mapping[str, Any] | None) -> str | None:
    """kubelet's ``getPVCExtractPV`` (and, for an ephemeral volume, ``VolumeIsForPod``): why the
    claim cannot be used yet (None: it can)."""
    name = claim_name(pod, v)
    if pvc is None:
        return f'failed to fetch PVC from API server: persistentvolumeclaims "{name}" not found'
    meta = pvc.get("metadata") or {}
    if volume_kind(v) == "ephemeral":
        pod_meta = pod.get("metadata") or {}
        if not any(r.get("controller") and r.get("uid") == pod_meta.get("uid") for r in meta.get("ownerReferences") or ()):
            return (f"PVC {meta.get('namespace')}/{name} was not created for pod {pod_meta.get('namespace')}/"
                    f"{pod_meta.get('name')} (pod is not owner)")
    if meta.get("deletionTimestamp") and PVC_PROTECTION_FINALIZER not in (meta.get("finalizers") or ()):
        # why the finalizer: a claim still protected is in use by a pod (the pvc-protection
        # controller keeps it until none is), e.g. the pod an agent restarted under finds again
        # with its claim being deleted; kubelet mounts it for it as before
        return "PVC is being deleted"
    if (pvc.get("status") or {}).get("phase") != "Bound":
        return "PVC is not bound"
    if not (pvc.get("spec") or {}).get("volumeName"):
        return "PVC has empty pvc.Spec.VolumeName"
    return None


def check_claimed_volume(pvc: Mapping[str, Any], pv_name: str, pv: Mapping[str, Any] | None) -> str | None:
    """kubelet's ``getPVSpec``: the volume must exist and point back at the claim."""
    if pv is None:
        return f'failed to fetch PV {pv_name} from API server: persistentvolumes "{pv_name}" not found'
    ref = (pv.get("spec") or {}).get("claimRef")
    if not ref:
        return (f"found PV object {pv_name} but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to "
                "the claim")
    uid = (pvc.get("metadata") or {}).get("uid")
    if ref.get("uid") != uid:
        return f"found PV object {pv_name} but its pv.Spec.ClaimRef.UID ({ref.get('uid', '')}) does not point to " \
               f"claim.UID ({uid})"
    return None


def claimed_volume(claim: str, pv: Mapping[str, Any]) -> ClaimedVolume:
    """The bound volume as this node mounts it; a type it cannot mount is a clear refusal."""
    name = str((pv.get("metadata") or {}).get("name") or "")
    spec = pv.get("spec") or {}
    kind = next((t for t in PV_TYPES if isinstance(spec.get(t), Mapping)), None)
    if kind is None:
        other = next((k for k, val in spec.items() if isinstance(val, Mapping) and k not in
                      ("capacity", "claimRef", "nodeAffinity")), "unknown")
        raise VolumeError(f'PersistentVolume "{name}" is of type {other}, which this node cannot mount (it mounts '
                          "hostPath and local volumes)")
    src = spec[kind]
    return ClaimedVolume(claim, name, kind, str(src.get("path") or ""),
                         str(src.get("type")) if kind == "hostPath" and src.get("type") is not None else None)


def _go_list(names: Iterable[str]) -> str:
    return "[" + " ".join(names) + "]"


def references(pod: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (kind, name) of every ConfigMap and Secret the pod's volumes refer to."""
    out: set[tuple[str, str]] = set()
    for v in (pod.get("spec") or {}).get("volumes") or ():
        if v.get("configMap"):
            out.add(("ConfigMap", str(v["configMap"].get("name", ""))))
        if v.get("secret"):
            out.add(("Secret", str(v["secret"].get("secretName", ""))))
        for src in (v.get("projected") or {}).get("sources") or ():
            if src.get("configMap"):
                out.add(("ConfigMap", str(src["configMap"].get("name", ""))))
            if src.get("secret"):
                out.add(("Secret", str(src["secret"].get("name", ""))))
    return out


# --------------------------------------------------------------------------- payloads (pure)


def _aggregate(errors: list[str]) -> str:
    """apimachinery's ``NewAggregate(...).Error()``: one error as it is, several in brackets."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def _key_payload(data: Mapping[str, bytes], items: Iterable[Mapping[str, Any]] | None, default_mode: int,
                 optional: bool, missing: str) -> dict[str, FileProjection]:
    """Every key as a file named after it, or just ``items`` (key -> path, each with its own
    ``mode``); a key missing from ``items`` is an error unless the source is optional."""
    if not items:
        return {k: FileProjection(v, default_mode) for k, v in data.items()}
    out: dict[str, FileProjection] = {}
    for it in items:
        key = str(it.get("key", ""))
        if key not in data:
            if optional:
                continue
            raise VolumeError(missing.format(key))
        mode = it.get("mode")
        out[str(it.get("path") or key)] = FileProjection(data[key], int(mode) if mode is not None else default_mode)
    return out


def configmap_payload(source: Mapping[str, Any], cm: Mapping[str, Any] | None,
                      default_mode: int | None = None) -> dict[str, FileProjection]:
    """kubelet's configMap ``MakePayload``: ``data`` and ``binaryData``; a missing ConfigMap is
    an empty one when ``optional``."""
    name = str(source.get("name", ""))
    optional = bool(source.get("optional"))
    if cm is None:
        if not optional:
            raise VolumeError(f'configmap "{name}" not found')
        cm = {}
    data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    mode = default_mode if default_mode is not None else source.get("defaultMode")
    return _key_payload(data, source.get("items"), int(mode) if mode is not None else DEFAULT_MODE, optional,
                        "configmap references non-existent config key: {}")


def secret_payload(source: Mapping[str, Any], secret: Mapping[str, Any] | None, *, name_field: str = "secretName",
                   default_mode: int | None = None) -> dict[str, FileProjection]:
    """kubelet's secret ``MakePayload``: the decoded ``data``; a missing Secret is an empty one
    when ``optional``."""
    name = str(source.get(name_field, ""))
    optional = bool(source.get("optional"))
    if secret is None:
        if not optional:
            raise VolumeError(f'secret "{name}" not found')
        secret = {}
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    mode = default_mode if default_mode is not None else source.get("defaultMode")
    return _key_payload(data, source.get("items"), int(mode) if mode is not None else DEFAULT_MODE, optional,
                        "references non-existent secret key: {}")


def _go_quote(s: str) -> str:
    """Go's ``%q`` of a string."""
    out = ['"']
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\a": "\\a", "\b": "\\b",
               "\f": "\\f", "\v": "\\v"}
    for ch in s:
        if ch in escapes:
            out.append(escapes[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            n = ord(ch)
            out.append(f"\\x{n:02x}" if n < 0x80 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}")
    out.append('"')
    return "".join(out)


def format_map(m: Mapping[str, str]) -> str:
    """kubelet's ``fieldpath.FormatMap``: ``key="value"`` lines, sorted by key."""
    return "\n".join(f"{k}={_go_quote(str(m[k]))}" for k in sorted(m))


def _metadata_file(pod: Mapping[str, Any], path: str) -> str:
    meta = pod.get("metadata") or {}
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path.split(".", 1)[1]) or {})
    try:
        return metadata_field(pod, path)
    except ConfigError as e:
        raise VolumeError(str(e)) from None


def downward_payload(items: Iterable[Mapping[str, Any]] | None, pod: Mapping[str, Any], node: NodeFacts,
                     default_mode: int | None) -> dict[str, FileProjection]:
    """kubelet's downward API ``CollectData``: each item's ``fieldRef`` (the pod's metadata) or
    ``resourceFieldRef`` (a container's requests and limits) as a file."""
    out: dict[str, FileProjection] = {}
    errors: list[str] = []
    dmode = default_mode if default_mode is not None else DEFAULT_MODE
    for it in items or ():
        mode = int(it["mode"]) if it.get("mode") is not None else dmode
        value = ""
        try:
            if it.get("fieldRef"):
                value = _metadata_file(pod, str(it["fieldRef"].get("fieldPath", "")))
            elif it.get("resourceFieldRef"):
                try:
                    value = resource_field_value(pod, {}, it["resourceFieldRef"], node)
                except ConfigError as e:
                    raise VolumeError(str(e)) from None
        except VolumeError as e:
            errors.append(str(e))
        out[os.path.normpath(str(it.get("path", "")))] = FileProjection(value.encode(), mode)
    if errors:
        raise VolumeError(_aggregate(errors))
    return out


def projected_payload(source: Mapping[str, Any], pod: Mapping[str, Any], node: NodeFacts,
                      objects: Mapping[tuple[str, str], Obj | None],
                      tokens: Mapping[int, str | VolumeError] | None = None) -> dict[str, FileProjection]:
    """kubelet's projected ``collectData``: every source's files in one directory, with the
    projected volume's ``defaultMode``; the errors of all sources together. ``tokens`` holds the
    service-account token (or why there is none) of each ``serviceAccountToken`` source, by its
    index in ``sources`` (:class:`~k8py.kubelet.tokenmanager.TokenManager` fetches them); the
    file's mode is 0600 when the pod has an ``fsGroup``, as kubelet's."""
    dmode = source.get("defaultMode")
    dmode = int(dmode) if dmode is not None else DEFAULT_MODE
    out: dict[str, FileProjection] = {}
    errors: list[str] = []
    for i, src in enumerate(source.get("sources") or ()):
        try:
            if src.get("configMap"):
                cm = src["configMap"]
                out.update(configmap_payload(cm, objects.get(("ConfigMap", str(cm.get("name", "")))), dmode))
            elif src.get("secret"):
                sec = src["secret"]
                out.update(secret_payload(sec, objects.get(("Secret", str(sec.get("name", "")))), name_field="name",
                                          default_mode=dmode))
            elif src.get("downwardAPI"):
                out.update(downward_payload(src["downwardAPI"].get("items"), pod, node, dmode))
            elif src.get("serviceAccountToken"):
                got = (tokens or {}).get(i)
                if got is None:
                    raise VolumeError("failed to fetch token: no token was fetched for this source")
                if isinstance(got, VolumeError):
                    raise got
                mode = 0o600 if _fs_group(pod) is not None else dmode
                out[os.path.normpath(str(src["serviceAccountToken"].get("path", "")))] = FileProjection(
                    got.encode(), mode)
            else:
                kind = next(iter(src), "")
                raise VolumeError(f"{kind} projections are not supported by this node")
        except VolumeError as e:
            errors.append(str(e))
    if errors:
        raise VolumeError(_aggregate(errors))
    return out


# --------------------------------------------------------------------------- the atomic writer


def _validate_path(p: str) -> None:
    """kubelet's ``validatePath``: relative, no ``..`` element, not starting with ``..``."""
    if not p:
        raise VolumeError(f'invalid path: must not be empty: "{p}"')
    if os.path.isabs(p):
        raise VolumeError(f"invalid path: must be relative path: {p}")
    if len(p) > MAX_PATH:
        raise VolumeError(f"invalid path: must be less than or equal to {MAX_PATH} characters")
    items = p.split("/")
    for item in items:
        if item == "..":
            raise VolumeError(f"invalid path: must not contain '..': {p}")
        if len(item) > MAX_FILE_NAME:
            raise VolumeError(f"invalid path: filenames must be less than or equal to {MAX_FILE_NAME} characters")
    if items[0].startswith("..") and len(items[0]) > 2:
        raise VolumeError(f"invalid path: must not start with '..': {p}")


class AtomicWriter:
    """kubelet's ``AtomicWriter`` for one target directory (see the module docstring). Not safe
    for two writers at once on one directory (the volume manager writes one pod at a time)."""

    def __init__(self, target_dir: str) -> None:
        self.target = target_dir

    def write(self, payload: Mapping[str, FileProjection],
              set_perms: Callable[[str], None] | None = None) -> bool:
        """Project ``payload`` (relative path -> content and mode); True when it changed
        anything. ``set_perms(dir)`` runs on the new timestamped directory before it is
        published (ownership for fsGroup)."""
        clean: dict[str, FileProjection] = {}
        for p, f in payload.items():
            _validate_path(p)
            clean[os.path.normpath(p)] = f
        data_link = os.path.join(self.target, DATA_DIR)
        try:
            old_ts = os.readlink(data_link)
        except FileNotFoundError:
            old_ts = ""
        old_path = os.path.join(self.target, old_ts) if old_ts else ""
        remove: set[str] = set()
        if old_ts:
            remove = self._paths_to_remove(clean, old_path)
            if not remove and not self._changed(clean, old_path):
                return False
        ts_dir = tempfile.mkdtemp(prefix=time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()), dir=self.target)
        try:
            os.chmod(ts_dir, 0o755)
            for p, f in clean.items():
                full = os.path.join(ts_dir, p)
                os.makedirs(os.path.dirname(full), 0o755, exist_ok=True)
                with open(full, "wb") as fh:
                    fh.write(f.data)
                os.chmod(full, f.mode & 0o7777)  # the mode asked for, whatever the umask
            if set_perms is not None:
                set_perms(ts_dir)
            for top in {p.split("/", 1)[0] for p in clean}:
                visible = os.path.join(self.target, top)
                if not os.path.lexists(visible):
                    os.symlink(os.path.join(DATA_DIR, top), visible)
            tmp_link = os.path.join(self.target, NEW_DATA_DIR)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_link)
            os.symlink(os.path.basename(ts_dir), tmp_link)
            # why: rename(2) over the old symlink is atomic: readers see the old or the new set
            os.rename(tmp_link, data_link)
        except BaseException:
            shutil.rmtree(ts_dir, ignore_errors=True)
            raise
        for p in remove:
            if "/" not in p:  # only the user-visible links at the top
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.target, p))
        if old_path:
            shutil.rmtree(old_path, ignore_errors=True)
        current = os.path.basename(ts_dir)
        for n in os.listdir(self.target):
            # a timestamped directory an interrupted write left behind (never published)
            if n.startswith("..") and n[2:3].isdigit() and n != current:
                shutil.rmtree(os.path.join(self.target, n), ignore_errors=True)
        return True

    @staticmethod
    def _changed(payload: Mapping[str, FileProjection], old_dir: str) -> bool:
        for p, f in payload.items():
            full = os.path.join(old_dir, p)
            try:
                st = os.lstat(full)
                with open(full, "rb") as fh:
                    if fh.read() != f.data:
                        return True
            except OSError:
                return True
            if stat.S_IMODE(st.st_mode) & ~0o070 != f.mode & 0o7777 & ~0o070:
                return True  # a new mode (group bits may be fsGroup's own)
        return False

    @staticmethod
    def _paths_to_remove(payload: Mapping[str, FileProjection], old_dir: str) -> set[str]:
        have: set[str] = set()
        for root, dirs, files in os.walk(old_dir):
            for n in (*dirs, *files):
                have.add(os.path.relpath(os.path.join(root, n), old_dir))
        want: set[str] = set()
        for p in payload:
            while p:
                want.add(p)
                p = os.path.dirname(p)
        return have - want


# --------------------------------------------------------------------------- host paths and ownership


def _file_type(path: str) -> str:
    """kubelet's ``GetFileType``."""
    m = os.stat(path).st_mode
    for test, name in ((stat.S_ISDIR, "Directory"), (stat.S_ISREG, "File"), (stat.S_ISSOCK, "Socket"),
                       (stat.S_ISCHR, "CharDevice"), (stat.S_ISBLK, "BlockDevice")):
        if test(m):
            return name
    raise OSError("only recognise file, directory, socket, block device and character device")


def check_host_path(path: str, type_: str | None) -> None:
    """kubelet's hostPath ``checkType``: ``DirectoryOrCreate`` makes the directory (0755),
    ``FileOrCreate`` an empty file (0644, its directory must exist); the other types must be
    there and be what they say. Raises :class:`VolumeError` with kubelet's messages."""
    if ".." in path.split("/"):
        raise VolumeError(f"invalid HostPath `{path}`: must not contain '..'")
    if not type_:
        return
    want = {"Directory": "directory", "File": "file", "Socket": "socket file", "CharDevice": "character device",
            "BlockDevice": "block device"}
    if type_ == "DirectoryOrCreate":
        if not os.path.exists(path):
            try:
                os.makedirs(path, 0o755, exist_ok=True)
            except OSError as e:
                raise VolumeError(f"mkdir {path}: {e.strerror.lower() if e.strerror else e}") from None
            return
        type_ = "Directory"
    elif type_ == "FileOrCreate":
        if not os.path.exists(path):
            try:
                os.close(os.open(path, os.O_CREAT | os.O_RDONLY, 0o644))
            except OSError as e:
                raise VolumeError(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
            return
        type_ = "File"
    if type_ not in want:
        raise VolumeError(f"{type_} is an invalid volume type")
    if not os.path.exists(path):
        raise VolumeError(f"hostPath {path} doesn't exist")
    try:
        actual = _file_type(path)
    except OSError as e:
        raise VolumeError(f"hostPath type check failed, {path} is not a {want[type_]}, unable to determine its "
                          f"type: {e}") from None
    if actual != type_:
        raise VolumeError(f"hostPath type check failed: {path} is not a {want[type_]}, it's a {actual}")


def set_ownership(root: str, fs_group: int | None, readonly: bool) -> None:
    """kubelet's ``SetVolumeOwnership``: everything under ``root`` to group ``fs_group``, files
    readable (and for a writable volume writable) by the group, directories setgid and
    searchable; symlinks are not followed."""
    if fs_group is None:
        return
    mask = 0o440 if readonly else 0o660

    def fix(path: str) -> None:
        st = os.lstat(path)
        os.lchown(path, -1, fs_group)
        if stat.S_ISLNK(st.st_mode):
            return
        m = mask | (stat.S_ISGID | 0o110 if stat.S_ISDIR(st.st_mode) else 0)
        os.chmod(path, stat.S_IMODE(st.st_mode) | m)

    fix(root)
    for dirpath, dirs, files in os.walk(root):
        for n in (*dirs, *files):
            fix(os.path.join(dirpath, n))


def _fs_group(pod: Mapping[str, Any]) -> int | None:
    g = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return int(g) if g is not None else None


def _pod_memory_limit(pod: Mapping[str, Any]) -> int:
    """The pod's memory limit as its cgroup gets it (kubelet's ``ResourceConfigForPod``): 0 unless
    every container declares one; the regular containers (and sidecars) add up, an init
    container alone may need more."""
    spec = pod.get("spec") or {}

    def lim(c: Mapping[str, Any]) -> int:
        v = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        return int_value(v) if v is not None else 0

    inits = list(spec.get("initContainers") or ())
    regular = list(spec.get("containers") or ())
    if any(lim(c) <= 0 for c in (*inits, *regular)):
        return 0
    sidecars = sum(lim(c) for c in inits if c.get("restartPolicy") == "Always")
    total = sum(lim(c) for c in regular) + sidecars
    for c in inits:
        if c.get("restartPolicy") != "Always":
            total = max(total, lim(c) + sidecars)
    return total


def empty_dir_memory_size(v: Mapping[str, Any], pod: Mapping[str, Any], node_allocatable: int) -> int:
    """kubelet's ``calculateEmptyDirMemorySize``: the node's allocatable memory, or the pod's
    memory limit when below it, or the volume's ``sizeLimit`` when below that; 0: no size
    option (the kernel's default)."""
    size = node_allocatable
    pod_limit = _pod_memory_limit(pod)
    if pod_limit > 0 and (size <= 0 or pod_limit <= size):
        size = pod_limit
    raw = (v.get("emptyDir") or {}).get("sizeLimit")
    if raw is not None:
        limit = int_value(raw)
        if limit > 0 and (size <= 0 or limit <= size):
            size = limit
    return max(size, 0)


# --------------------------------------------------------------------------- mounts


def _unescape(s: str) -> str:
    """The octal escapes of /proc/self/mounts (``\\040`` for a space ...)."""
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mounts_under(path: str) -> list[str]:
    """The mount points at or under ``path`` (deepest first)."""
    root = os.path.realpath(path)
    out = []
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                point = _unescape(parts[1])
                if point == root or point.startswith(root + "/"):
                    out.append(point)
    return sorted(set(out), key=lambda p: (p.count("/"), len(p)), reverse=True)


def _umount(point: str) -> str | None:
    """Unmount ``point`` (lazily when busy); the problem, or None."""
    p = subprocess.run(["umount", point], capture_output=True, text=True, check=False)
    if p.returncode == 0:
        return None
    q = subprocess.run(["umount", "-l", point], capture_output=True, text=True, check=False)
    if q.returncode == 0:
        return None
    return f"umount {point}: {(q.stderr or p.stderr).strip()}"


def teardown_dir(path: str) -> list[str]:
    """Unmount everything at or under ``path`` and remove it; the problems met (then ``path``
    is left in place: nothing is ever removed through a mount)."""
    if not os.path.lexists(path):
        return []
    problems = [p for p in (_umount(m) for m in mounts_under(path)) if p]
    left = mounts_under(path)
    if left:
        return [*problems, f"{path}: still mounted: {', '.join(left)}"]
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        problems.append(f"{path}: could not be removed")
    return problems


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _safe_make_dir(root: str, path: str) -> str:
    """kubelet's ``doSafeMakeDir`` for a ``subPath``: ``path`` (under the volume ``root``) made as
    a directory if missing, refusing one that resolves outside the volume (a symlink a container
    put there) before anything is created; returns where ``path`` really is."""
    real_root = os.path.realpath(root)
    existing = path
    while not os.path.lexists(existing) and existing != os.path.dirname(existing):
        existing = os.path.dirname(existing)
    if not _within(os.path.realpath(existing), real_root):
        raise OSError(f"subpath {path!r} not within volume path {root!r}")
    if not os.path.lexists(path):
        os.makedirs(path, 0o755, exist_ok=True)
    real = os.path.realpath(path)
    if not _within(real, real_root):
        raise OSError(f"subpath {path!r} not within volume path {root!r}")
    return real


def dir_usage(path: str) -> int:
    """Bytes of disk used under ``path`` (``du``: allocated blocks; symlinks not followed, other
    file systems not entered)."""
    try:
        dev = os.lstat(path).st_dev
    except OSError:
        return 0
    total = 0
    for dirpath, dirs, files in os.walk(path):
        for n in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
        keep = []
        for d in dirs:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, d))
                total += st.st_blocks * 512
                if st.st_dev == dev:
                    keep.append(d)
        dirs[:] = keep
    return total


def dir_inodes(path: str) -> int:
    """The files and directories under ``path`` (itself included), not entering other
    filesystems: what it holds of the filesystem's inodes."""
    try:
        dev = os.lstat(path).st_dev
    except OSError:
        return 0
    n = 1
    for dirpath, dirs, files in os.walk(path):
        n += len(files) + len(dirs)
        keep = []
        for d in dirs:
            with contextlib.suppress(OSError):
                if os.lstat(os.path.join(dirpath, d)).st_dev == dev:
                    keep.append(d)
        dirs[:] = keep
    return n


# the kinds whose usage kubelet reports in the Summary API (their plugins measure with du:
# emptyDir, on disk or in memory, and the atomic-writer kinds; claims bound to a local volume
# report its filesystem, statfs); hostPath, and claims bound to hostPath volumes, report
# nothing, as kubelet's
STATS_KINDS = ("emptyDir", *ATOMIC_KINDS)
VOLUME_STATS_PERIOD = 60.0  # kubelet's volumeStatsAggPeriod: a pod's volumes measured once a minute


def volume_stats(name: str, path: str, when: str) -> Obj | None:
    """kubelet's ``MetricsDu`` of one volume as the Summary API's ``VolumeStats``: the bytes and
    inodes used under ``path``, the capacity and what is free of its filesystem (None when the
    path is not there). Blocking: a walk of the volume."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return {"time": when, "availableBytes": st.f_bavail * st.f_frsize, "capacityBytes": st.f_blocks * st.f_frsize,
            "usedBytes": dir_usage(path), "inodesFree": st.f_ffree, "inodes": st.f_files,
            "inodesUsed": dir_inodes(path), "name": name}


def volume_statfs(name: str, path: str, when: str) -> Obj | None:
    """kubelet's ``MetricsStatFS`` (a ``local`` PersistentVolume's): the whole filesystem of
    ``path``, its used bytes and inodes those not free (None when the path is not there)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return {"time": when, "availableBytes": st.f_bavail * st.f_frsize, "capacityBytes": st.f_blocks * st.f_frsize,
            "usedBytes": (st.f_blocks - st.f_bfree) * st.f_frsize, "inodesFree": st.f_ffree, "inodes": st.f_files,
            "inodesUsed": st.f_files - st.f_ffree, "name": name}


# --------------------------------------------------------------------------- the manager


@dataclass(slots=True)
class _PodVolumes:
    pod: Obj
    ready: set[str] = field(default_factory=set)  # volumes set up at least once
    released: bool = False  # unmounted because the pod finished
    refs: set[tuple[str, str, str]] = field(default_factory=set)  # (kind, namespace, name) watched
    retry_at: float = 0.0
    delay: float = 0.0
    claims: dict[str, ClaimedVolume] = field(default_factory=dict)  # volume -> its bound PersistentVolume


class _Watches:
    """kubelet's watch-based object manager: one watch per referenced ConfigMap or Secret,
    shared by the pods that use it; a change calls ``changed(kind, namespace, name)``."""

    def __init__(self, client: Client, changed: Callable[[str, str, str], None]) -> None:
        self.client = client
        self.changed = changed
        self._informers: dict[tuple[str, str, str], Informer] = {}
        self._users: dict[tuple[str, str, str], set[str]] = {}

    def users(self, ref: tuple[str, str, str]) -> set[str]:
        return set(self._users.get(ref, ()))

    def add(self, ref: tuple[str, str, str], uid: str) -> None:
        self._users.setdefault(ref, set()).add(uid)
        if ref in self._informers:
            return
        kind, ns, name = ref
        inf = Informer(self.client, ("v1", kind), ns, field_selector=f"metadata.name={name}")

        def hit(*_: Any) -> None:
            # why: the first list's events are what the pod's set-up is waiting for right now;
            # waking the pod for them would only sync it again
            if inf.has_synced:
                self.changed(kind, ns, name)

        inf.add_handler(hit, hit, hit)
        inf.start()
        self._informers[ref] = inf

    async def remove(self, ref: tuple[str, str, str], uid: str) -> None:
        users = self._users.get(ref)
        if users is not None:
            users.discard(uid)
            if users:
                return
            del self._users[ref]
        inf = self._informers.pop(ref, None)
        if inf is not None:
            await inf.stop()

    async def get(self, ref: tuple[str, str, str]) -> Obj | None:
        inf = self._informers.get(ref)
        kind, ns, name = ref
        if inf is not None and await inf.wait_for_sync(WATCH_SYNC_WAIT):
            return inf.get(name, ns)
        try:  # not watched, or the watch is not up yet: read it
            return await self.client.get(("v1", kind), name, ns)
        except NotFoundError:
            return None

    async def stop(self) -> None:
        infs = list(self._informers.values())
        self._informers.clear()
        self._users.clear()
        for inf in infs:
            await inf.stop()


class VolumeManager:
    """The volumes of every pod of one node. The pod worker calls :meth:`mount` on each sync
    (nothing starts until it says ``ready``), :meth:`prepare_mounts` for each container it
    creates, and :meth:`teardown` when the pod is gone; :meth:`run` does the periodic work."""

    def __init__(self, client: Client, pods_dir: str, *, facts: Callable[[], NodeFacts],
                 record: Callable[[Obj, str, str, str], None], wake: Callable[[str], None],
                 evict: Callable[[str, str], None] | None = None, watch: bool = True) -> None:
        self.client = client
        self.pods_dir = pods_dir
        self._facts = facts
        self._record = record
        self._wake = wake
        self._evict = evict
        self._pods: dict[str, _PodVolumes] = {}
        self._watches = _Watches(client, self._object_changed) if watch else None
        self.tokens = TokenManager(client)  # projected service-account tokens
        self._evicted: set[str] = set()
        self._stats: dict[str, tuple[float, list[Obj]]] = {}  # uid -> (when measured, its volumes' stats)

    # -- paths -----------------------------------------------------------------------------------

    def paths(self, pod: Mapping[str, Any]) -> dict[str, str]:
        """Where each volume of ``pod`` is on the node (kinds this node cannot mount left out:
        their set-up failed already)."""
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        st = self._pods.get(uid)
        out = {}
        for v in (pod.get("spec") or {}).get("volumes") or ():
            name = str(v.get("name", ""))
            p = volume_path(self.pods_dir, uid, v)
            if p is None and st is not None and name in st.claims:
                p = st.claims[name].path
            if p is not None:
                out[name] = p
        return out

    async def stats(self, pod: Mapping[str, Any], now: float | None = None) -> list[Obj]:
        """The Summary API's ``volume`` entries of ``pod`` (kubelet's volume stat calculator):
        each emptyDir, configMap, secret, downwardAPI and projected volume set up here, and each
        claim bound to a ``local`` volume (with its ``pvcRef``), in the pod's order, measured at
        most once every :data:`VOLUME_STATS_PERIOD` (the last measurement in between, as
        kubelet's cache answers)."""
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        now = time.time() if now is None else now
        cached = self._stats.get(uid)
        if cached is not None and now - cached[0] < VOLUME_STATS_PERIOD:
            return cached[1]
        st = self._pods.get(uid)
        ns = str((pod.get("metadata") or {}).get("namespace", ""))
        wanted: list[tuple[str, str | None, ClaimedVolume | None]] = []
        for v in (pod.get("spec") or {}).get("volumes") or ():
            name = str(v.get("name", ""))
            if volume_kind(v) in STATS_KINDS:
                wanted.append((name, volume_path(self.pods_dir, uid, v), None))
            elif st is not None and (cv := st.claims.get(name)) is not None and cv.type == "local":
                wanted.append((name, cv.path, cv))
        when = format_epoch(now)

        def measure() -> list[Obj]:
            out = []
            for name, where, cv in wanted:
                e = (volume_stats if cv is None else volume_statfs)(name, where, when) if where else None
                if e is not None and cv is not None:
                    e["pvcRef"] = {"name": cv.claim, "namespace": ns}
                if e is not None:
                    out.append(e)
            return out

        out = await asyncio.to_thread(measure)
        self._stats[uid] = (now, out)
        return out

    # -- set-up ----------------------------------------------------------------------------------

    def _state(self, pod: Obj) -> _PodVolumes:
        uid = str(pod["metadata"].get("uid", ""))
        st = self._pods.get(uid)
        if st is None:
            st = self._pods[uid] = _PodVolumes(pod)
        st.pod = pod
        return st

    def _object_changed(self, kind: str, ns: str, name: str) -> None:
        assert self._watches is not None
        for uid in self._watches.users((kind, ns, name)):
            st = self._pods.get(uid)
            if st is not None:
                st.retry_at = 0.0  # what it waited for may be there now: try at once
            self._wake(uid)

    async def mount(self, pod: Obj) -> MountResult:
        """Set up (or refresh) every volume of ``pod``; a failure is a ``FailedMount`` event and
        is retried after kubelet's back-off (or when a watched object changes)."""
        st = self._state(pod)
        if st.released:
            return MountResult(True)  # a finished pod's volumes are not set up again
        vols = list((pod.get("spec") or {}).get("volumes") or ())
        now = time.time()
        names = {str(v.get("name", "")) for v in vols}
        if st.retry_at > now:
            return MountResult(names <= st.ready, st.retry_at)
        uid = str(pod["metadata"].get("uid", ""))
        ns = str(pod["metadata"].get("namespace", ""))
        objects: dict[tuple[str, str], Obj | None] = {}
        fetch_errors: dict[tuple[str, str], str] = {}
        for kind, name in sorted(references(pod)):
            ref = (kind, ns, name)
            if self._watches is not None and ref not in st.refs:
                self._watches.add(ref, uid)
                st.refs.add(ref)
            try:
                objects[(kind, name)] = await (self._watches.get(ref) if self._watches is not None
                                               else self._get(kind, ns, name))
            except ApiError as e:
                fetch_errors[(kind, name)] = f"failed to get {kind.lower()} {ns}/{name}: {e}"
        claim_errors: dict[str, str] = {}
        for v in vols:
            name = str(v.get("name", ""))
            if volume_kind(v) in CLAIM_KINDS and name not in st.claims:
                try:
                    st.claims[name] = await self._resolve_claim(pod, v)
                except VolumeError as e:
                    claim_errors[name] = str(e)
        failed: list[tuple[str, str]] = []
        facts = self._facts()
        for v in vols:
            name = str(v.get("name", ""))
            if name in claim_errors:
                continue
            try:
                errs = [fetch_errors[r] for r in sorted(references({"spec": {"volumes": [v]}})) if r in fetch_errors]
                if errs:
                    raise VolumeError(_aggregate(errs))
                await self._setup(pod, v, st, objects, facts)
                st.ready.add(name)
            except (VolumeError, OSError) as e:
                failed.append((name, str(e) if isinstance(e, MountMessageError) else
                               f'MountVolume.SetUp failed for volume "{name}" : {e}'))
                path = volume_path(self.pods_dir, uid, v)
                if path is not None and volume_kind(v) in ATOMIC_KINDS and os.path.islink(os.path.join(path, DATA_DIR)):
                    # set up by an earlier run of the agent (kubelet reconstructs it from disk): the
                    # pod's containers may (re)start with the files it has
                    st.ready.add(name)
        if failed or claim_errors:
            # why the cap for claims: kubelet re-reads an unusable claim on each pod sync (its pod
            # worker's 10 s back-off), so a claim bound meanwhile is mounted within seconds
            st.delay = min(max(st.delay * 2, RETRY_INITIAL), CLAIM_RETRY_MAX if claim_errors else RETRY_MAX)
            st.retry_at = time.time() + st.delay
            for _, msg in failed:
                self._record(pod, "Warning", "FailedMount", msg)
            if claim_errors:
                order = [str(v.get("name", "")) for v in vols]
                unmounted = [n for n in order if n not in st.ready]
                self._record(pod, "Warning", "FailedMount", (
                    f"Unable to attach or mount volumes: unmounted volumes={_go_list(unmounted)}, unattached "
                    f"volumes=[], failed to process volumes={_go_list(n for n in order if n in claim_errors)}: "
                    + "; ".join(claim_errors[n] for n in order if n in claim_errors)))
            return MountResult(names <= st.ready, st.retry_at)
        st.delay = 0.0
        st.retry_at = 0.0
        return MountResult(True)

    async def _get(self, kind: str, ns: str, name: str) -> Obj | None:
        try:
            return await self.client.get(("v1", kind), name, ns)
        except NotFoundError:
            return None

    async def _resolve_claim(self, pod: Obj, v: Mapping[str, Any]) -> ClaimedVolume:
        """The claim volume's bound PersistentVolume, checked as kubelet checks it before it adds
        the volume to its desired state (errors in kubelet's "error processing PVC" form)."""
        ns = str(pod["metadata"].get("namespace", ""))
        claim = claim_name(pod, v)
        try:
            pvc = await self._get("PersistentVolumeClaim", ns, claim)
            why = check_claim(pod, v, pvc)
            if why is None and pvc is not None:
                pv_name = str(pvc["spec"]["volumeName"])
                pv = await self._get("PersistentVolume", "", pv_name)
                why = check_claimed_volume(pvc, pv_name, pv)
                if why is None and pv is not None:
                    return claimed_volume(claim, pv)
        except ApiError as e:
            why = f"failed to fetch PVC from API server: {e.message}"
        raise VolumeError(f"error processing PVC {ns}/{claim}: {why}")

    async def _setup(self, pod: Obj, v: Mapping[str, Any], st: _PodVolumes,
                     objects: Mapping[tuple[str, str], Obj | None], facts: NodeFacts) -> None:
        kind = volume_kind(v)
        name = str(v.get("name", ""))
        uid = str(pod["metadata"].get("uid", ""))
        if kind in CLAIM_KINDS:
            if name not in st.ready:
                await self._check_claimed(st.claims[name])
            return
        path = volume_path(self.pods_dir, uid, v)
        if path is None:
            raise VolumeError(_unsupported(kind))
        if kind == "hostPath":
            if name not in st.ready:  # kubelet checks the type when it mounts, not after
                await asyncio.to_thread(check_host_path, path, (v.get("hostPath") or {}).get("type"))
            return
        if kind == "emptyDir":
            if name in st.ready:
                return
            medium = str((v.get("emptyDir") or {}).get("medium") or "")
            if medium not in ("", "Memory"):
                raise VolumeError(f"emptyDir medium {medium} is not supported by this node (\"\" and Memory are)")
            memory = medium == "Memory"
            size = empty_dir_memory_size(v, pod, facts.memory_allocatable) if memory else 0
            await self._make_dir(path, tmpfs=memory, size=size)
            await asyncio.to_thread(set_ownership, path, _fs_group(pod), False)
            return
        # the atomic-writer kinds
        if kind == "configMap":
            payload = configmap_payload(v["configMap"], objects.get(("ConfigMap", str(v["configMap"].get("name", "")))))
        elif kind == "secret":
            payload = secret_payload(v["secret"], objects.get(("Secret", str(v["secret"].get("secretName", "")))))
        elif kind == "downwardAPI":
            da = v.get("downwardAPI") or {}
            payload = downward_payload(da.get("items"), pod, facts, da.get("defaultMode"))
        else:
            tokens = await self._service_account_tokens(pod, v.get("projected") or {})
            payload = projected_payload(v.get("projected") or {}, pod, facts, objects, tokens)
        if name not in st.ready or not os.path.isdir(path):
            tmpfs = kind in TMPFS_KINDS
            await self._make_dir(path, tmpfs=tmpfs,
                                 size=empty_dir_memory_size({}, pod, facts.memory_allocatable) if tmpfs else 0)
        group = _fs_group(pod)

        def perms(d: str) -> None:
            set_ownership(d, group, True)

        try:
            changed = await asyncio.to_thread(AtomicWriter(path).write, payload, perms if group is not None else None)
        except OSError as e:
            raise VolumeError(f"error writing the volume's files: {e}") from None
        if changed and name in st.ready:
            log.info("pod %s/%s: volume %s updated", pod["metadata"].get("namespace"), pod["metadata"].get("name"),
                     name)

    async def _check_claimed(self, cv: ClaimedVolume) -> None:
        """The bound volume's path is usable here: a hostPath volume's per its ``type`` (as a
        pod's hostPath), a local volume's must exist (kube's local plugin)."""
        if cv.type == "local":
            if not await asyncio.to_thread(os.path.exists, cv.path):
                raise MountMessageError(f'MountVolume.NewMounter initialization failed for volume "{cv.pv}" : path '
                                        f'"{cv.path}" does not exist')
            return
        try:
            await asyncio.to_thread(check_host_path, cv.path, cv.host_path_type)
        except VolumeError as e:
            raise MountMessageError(f'MountVolume.SetUp failed for volume "{cv.pv}" : {e}') from None

    async def _service_account_tokens(self, pod: Obj, projected: Mapping[str, Any]) -> dict[int, str | VolumeError]:
        """The token of each ``serviceAccountToken`` source (kubelet's projected plugin): for the
        pod's account, bound to the pod, with the source's audience and expiry."""
        out: dict[int, str | VolumeError] = {}
        meta = pod.get("metadata") or {}
        for i, src in enumerate(projected.get("sources") or ()):
            sat = src.get("serviceAccountToken") if isinstance(src, dict) else None
            if not sat:
                continue
            aud = str(sat.get("audience") or "")
            try:
                out[i] = await self.tokens.get(
                    str(meta.get("namespace", "")), str((pod.get("spec") or {}).get("serviceAccountName") or "default"),
                    [aud] if aud else [], int(sat.get("expirationSeconds") or 3600), str(meta.get("name", "")),
                    str(meta.get("uid", "")))
            except (ApiError, ValueError, OSError) as e:
                out[i] = VolumeError(f"failed to fetch token: {e.message if isinstance(e, ApiError) else e}")
        return out

    async def _make_dir(self, path: str, *, tmpfs: bool, size: int) -> None:
        """The volume's directory, mode 0777 as kubelet's emptyDir; on a tmpfs when asked (once)."""
        def mk() -> bool:
            os.makedirs(path, 0o777, exist_ok=True)
            if not tmpfs:
                os.chmod(path, 0o777)
                return False
            return not os.path.ismount(path)

        if not await asyncio.to_thread(mk):
            return
        opts = f"size={size}" if size > 0 else ""
        argv = ["mount", "-t", "tmpfs", *(["-o", opts] if opts else []), "tmpfs", path]
        r = await proc.run(argv, timeout=30)
        if r.returncode != 0:
            raise VolumeError(f"mount failed: {r.stderr.decode(errors='replace').strip()}")

    # -- containers ------------------------------------------------------------------------------

    async def prepare_mounts(self, pod: Mapping[str, Any], container: Mapping[str, Any],
                             config: ContainerConfig) -> ContainerConfig:
        """The container's mounts as kubelet makes them: volumes of the atomic-writer kinds
        read-only, a ``subPath`` of one bind-mounted under ``volume-subpaths`` (so it keeps what
        it had when the container started), a missing ``subPath`` of any other volume made as a
        directory."""
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        kinds = {str(v.get("name", "")): volume_kind(v) for v in (pod.get("spec") or {}).get("volumes") or ()}
        # a claim volume marked readOnly is read-only in every container (kubelet's mounter)
        readonly_claims = {str(v.get("name", "")) for v in (pod.get("spec") or {}).get("volumes") or ()
                           if (v.get("persistentVolumeClaim") or {}).get("readOnly")}
        paths = self.paths(pod)
        specs = list(container.get("volumeMounts") or ())
        if len(specs) != len(config.mounts):
            return config
        mounts = []
        for i, (m, want) in enumerate(zip(config.mounts, specs, strict=True)):
            vol = str(want.get("name", ""))
            root = paths.get(vol, "")
            kind = kinds.get(vol, "")
            if kind in ATOMIC_KINDS:
                host = m.host_path
                if host != root:
                    host = await asyncio.to_thread(self._bind_subpath, uid, vol, str(container.get("name", "")), i,
                                                   root, host)
                mounts.append(replace(m, host_path=host, readonly=True))
                continue
            if m.host_path != root and root:
                try:
                    await asyncio.to_thread(_safe_make_dir, root, m.host_path)
                except OSError as e:
                    raise ConfigError(f"failed to create subPath directory for volumeMount \"{vol}\" of container "
                                      f"\"{container.get('name')}\": {e}") from None
            mounts.append(replace(m, readonly=True) if vol in readonly_claims else m)
        return replace(config, mounts=tuple(mounts))

    def _bind_subpath(self, uid: str, volume: str, container: str, index: int, root: str, path: str) -> str:
        target = os.path.join(self.pods_dir, uid, "volume-subpaths", volume, container, str(index))
        if os.path.ismount(target):
            return target  # a restarted container gets what the first one had, as in kubelet
        try:
            real = _safe_make_dir(root, path)
        except OSError as e:
            raise ConfigError(f"failed to prepare subPath for volumeMount \"{volume}\" of container \"{container}\": "
                              f"{e}") from None
        os.makedirs(os.path.dirname(target), 0o750, exist_ok=True)
        if os.path.isdir(real):
            os.makedirs(target, 0o750, exist_ok=True)
        elif not os.path.exists(target):
            os.close(os.open(target, os.O_CREAT | os.O_RDONLY, 0o640))
        p = subprocess.run(["mount", "--bind", real, target], capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise ConfigError(f"failed to prepare subPath for volumeMount \"{volume}\" of container \"{container}\": "
                              f"{p.stderr.strip()}")
        return target

    # -- tear-down -------------------------------------------------------------------------------

    async def release(self, pod: Obj) -> None:
        """The pod finished (Succeeded or Failed, nothing runs): kubelet unmounts its volumes
        then, and removes their directories; the pod's own directory goes when the pod does."""
        st = self._state(pod)
        if st.released:
            return
        st.released = True
        st.ready.clear()
        self.tokens.forget(str(pod["metadata"].get("uid", "")))
        uid = str(pod["metadata"].get("uid", ""))
        if self._watches is not None:
            for ref in st.refs:
                await self._watches.remove(ref, uid)
        st.refs.clear()
        for sub in ("volume-subpaths", "volumes"):  # the subPath binds first: they hold the volumes' files
            for p in await asyncio.to_thread(teardown_dir, os.path.join(self.pods_dir, uid, sub)):
                log.warning("pod uid %s: volume tear-down: %s", uid, p)

    async def teardown(self, uid: str) -> list[str]:
        """The pod is gone: unmount and remove its directory, stop watching what only it used."""
        st = self._pods.pop(uid, None)
        self._evicted.discard(uid)
        self._stats.pop(uid, None)
        self.tokens.forget(uid)
        if st is not None and self._watches is not None:
            for ref in st.refs:
                await self._watches.remove(ref, uid)
        problems = await asyncio.to_thread(teardown_dir, os.path.join(self.pods_dir, uid))
        for p in problems:
            log.warning("pod uid %s: volume tear-down: %s", uid, p)
        return problems

    async def remove_orphans(self, keep: Callable[[str], bool]) -> list[str]:
        """kubelet's ``cleanupOrphanedPodDirs``: the directories of pods this node no longer has
        (``keep(uid)`` false), unmounted and removed."""
        try:
            uids = await asyncio.to_thread(os.listdir, self.pods_dir)
        except FileNotFoundError:
            return []
        removed = []
        for uid in uids:
            # why: checked right before each removal, so a pod that arrived meanwhile is kept
            if keep(uid) or uid in self._pods:
                continue
            problems = await asyncio.to_thread(teardown_dir, os.path.join(self.pods_dir, uid))
            if problems:
                log.warning("orphaned pod %s: %s", uid, "; ".join(problems))
            else:
                removed.append(uid)
        if removed:
            log.info("removed the volumes of %d pod(s) this node no longer has", len(removed))
        return removed

    # -- periodic --------------------------------------------------------------------------------

    def size_limit_violations(self) -> list[tuple[str, str]]:
        """(uid, kubelet's eviction message) for each pod with a disk emptyDir over its
        ``sizeLimit`` (blocking: run it in a thread)."""
        out = []
        for uid, st in list(self._pods.items()):
            if uid in self._evicted:
                continue
            for v in (st.pod.get("spec") or {}).get("volumes") or ():
                ed = v.get("emptyDir")
                if ed is None or ed.get("sizeLimit") is None or ed.get("medium") == "Memory":
                    continue  # a memory one is a tmpfs of that size: it cannot go over
                limit = int_value(ed["sizeLimit"])
                path = volume_path(self.pods_dir, uid, v)
                if limit <= 0 or path is None or str(v.get("name", "")) not in st.ready:
                    continue
                if dir_usage(path) > limit:
                    out.append((uid, (f'Usage of EmptyDir volume "{v.get("name")}" exceeds the limit '
                                      f'"{canonicalize(ed["sizeLimit"])}". ')))
                    break
        return out

    async def check_limits(self) -> None:
        for uid, message in await asyncio.to_thread(self.size_limit_violations):
            self._evicted.add(uid)
            if self._evict is not None:
                self._evict(uid, message)

    async def run(self, keep: Callable[[str], bool]) -> None:
        """Every 10 s the emptyDir size limits, every minute the orphaned pod directories."""
        last_orphans = time.monotonic()
        while True:
            await asyncio.sleep(LIMIT_CHECK_INTERVAL)
            try:
                await self.check_limits()
                if time.monotonic() - last_orphans >= ORPHAN_CHECK_INTERVAL:
                    last_orphans = time.monotonic()
                    await self.remove_orphans(keep)
            except Exception as e:  # noqa: BLE001 - the next round tries again
                log.warning("volume checks: %s", e)

    async def stop(self) -> None:
        if self._watches is not None:
            await self._watches.stop()
