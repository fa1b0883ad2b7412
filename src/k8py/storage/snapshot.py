"""Backup and restore of the store: ``k8py datastore snapshot save|restore``.

SQLite: an online, consistent copy through SQLite's backup API (it reads one
snapshot while the server keeps writing); restore puts that file in place of
the data directory's database while no server uses it.

etcd: ``save`` streams the backend of one member through etcd's own snapshot
API (``POST /v3/maintenance/snapshot`` on the JSON gateway, the call behind
``etcdctl snapshot save``; the file is byte for byte what etcdctl writes:
etcd's bbolt database followed by its SHA-256). Before it asks, it makes one
linearizable read through the same member and afterwards checks that the
snapshot holds that revision, so every write acknowledged before the save
started is in the file. ``restore`` turns the file into the data directory of
a new etcd member with ``etcdctl snapshot restore`` (Debian's etcd-client):
that rewrites the cluster membership and raft state, which only etcd's own
code should do. Revisions are kept, so every object keeps its
resourceVersion and new writes continue after the snapshot's revision.

Both kinds are recognised by their first bytes, and read here without etcd (a
small reader of bbolt's page format) to report the revision and the number of
objects a file holds.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import ssl
import struct
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from k8py.api.protowire import LEN, WireError, iter_fields
from k8py.storage.interface import StoreError, StoreUnavailableError

__all__ = [
    "SnapshotInfo",
    "etcd_restore",
    "etcd_save",
    "etcd_snapshot_info",
    "snapshot_kind",
    "sqlite_restore",
    "sqlite_save",
]

SQLITE_MAGIC = b"SQLite format 3\x00"
_BOLT_MAGIC = 0xED0CDAED
_SHA256_LEN = 32


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    path: str
    revision: int
    keys: int  # objects (keys under /registry/)
    size_bytes: int


def snapshot_kind(path: str) -> str:
    """``"sqlite"`` or ``"etcd"``, from the file's first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except FileNotFoundError:
        raise StoreError(f"no snapshot file at {path}") from None
    except OSError as e:
        raise StoreError(f"cannot read the snapshot {path}: {e.strerror}") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if len(head) >= 24 and struct.unpack_from("<I", head, 16)[0] == _BOLT_MAGIC:
        return "etcd"
    raise StoreError(f"{path} is neither a k8py SQLite snapshot nor an etcd snapshot")


# ---------------------------------------------------------------------------------------------- SQLite


def _check_k8py_db(conn: sqlite3.Connection, what: str) -> tuple[int, int]:
    try:
        rev = conn.execute("SELECT COALESCE(MAX(id), 0) FROM kv").fetchone()[0]
        keys = conn.execute("SELECT COUNT(*) FROM current").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{what} is not a k8py SQLite store: {e}") from None
    return int(rev), int(keys)


def sqlite_save(db_path: str, out: str) -> SnapshotInfo:
    """Copy the live database at ``db_path`` to ``out`` (consistent, online)."""
    if not os.path.exists(db_path):
        raise StoreError(f"no database at {db_path}: is --data-dir right?")
    src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        _check_k8py_db(src, db_path)
        out_dir = os.path.dirname(os.path.abspath(out)) or "."
        fd, tmp = tempfile.mkstemp(prefix=".k8py-snapshot-", dir=out_dir)
        os.close(fd)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)  # one read transaction: a consistent snapshot
                dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
                rev, keys = _check_k8py_db(dst, tmp)
            finally:
                dst.close()
            os.chmod(tmp, 0o600)
            os.replace(tmp, out)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    finally:
        src.close()
    return SnapshotInfo(out, rev, keys, os.path.getsize(out))


def sqlite_restore(snapshot: str, db_path: str) -> SnapshotInfo:
    """Replace the database at ``db_path`` with ``snapshot``. Refuses while a server holds it."""
    if not os.path.exists(snapshot):
        raise StoreError(f"no snapshot file at {snapshot}")
    conn = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
    try:
        rev, keys = _check_k8py_db(conn, snapshot)
    finally:
        conn.close()
    os.makedirs(os.path.dirname(db_path), mode=0o700, exist_ok=True)
    lock_fd = os.open(db_path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError(f"database {db_path} is in use by a running server; stop it before restoring") \
                from None
        fd, tmp = tempfile.mkstemp(prefix=".k8py-restore-", dir=os.path.dirname(db_path))
        os.close(fd)
        src = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        os.chmod(tmp, 0o600)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(db_path + suffix):
                os.unlink(db_path + suffix)
        os.replace(tmp, db_path)
    finally:
        os.close(lock_fd)
    return SnapshotInfo(db_path, rev, keys, os.path.getsize(db_path))


# ---------------------------------------------------------------------------------------------- etcd files


class _Bolt:
    """Read-only walk over a bbolt database (etcd's backend) held in memory.

    The format (bbolt 1.3): fixed-size pages; pages 0 and 1 are meta pages, the
    valid one with the higher transaction id is current and names the root
    bucket's page. A bucket is a B+tree: branch pages hold (key, child page),
    leaf pages hold (flags, key, value); a leaf value flagged as a bucket is
    the nested bucket's header (root page, sequence), followed by the bucket's
    one page inline when its root is 0.
    """

    _BRANCH, _LEAF = 0x01, 0x02
    _BUCKET_LEAF = 0x01

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.what = what
        best: tuple[int, int, int] | None = None  # (txid, page size, root page)
        page_size = struct.unpack_from("<I", data, 24)[0] if len(data) >= 28 else 0
        for pgid in (0, 1):
            meta = self._meta(pgid * page_size if pgid else 0)
            if meta is not None and (best is None or meta[0] > best[0]):
                best = meta
        if best is None:
            raise StoreError(f"{what} is not an etcd snapshot (no valid bbolt meta page)")
        _, self.page_size, self.root = best

    def _meta(self, off: int) -> tuple[int, int, int] | None:
        m = off + 16  # after the page header
        if off < 0 or m + 64 > len(self.data):
            return None
        magic, version, page_size = struct.unpack_from("<III", self.data, m)
        if magic != _BOLT_MAGIC or version != 2 or page_size < 512:
            return None
        checksum = struct.unpack_from("<Q", self.data, m + 56)[0]
        if _fnv1a64(self.data[m:m + 56]) != checksum:
            return None
        root = struct.unpack_from("<Q", self.data, m + 16)[0]
        txid = struct.unpack_from("<Q", self.data, m + 48)[0]
        return txid, page_size, root

    def _items(self, buf: bytes, off: int) -> Iterator[tuple[int, bytes, bytes]]:
        """(flags, key, value) of the tree whose root page starts at ``buf[off]``, in key order."""
        if off + 16 > len(buf):
            raise StoreError(f"{self.what}: truncated etcd snapshot (page past the end of the file)")
        flags, count = struct.unpack_from("<HH", buf, off + 8)
        elems = off + 16
        if flags & self._BRANCH:
            for i in range(count):
                e = elems + 16 * i
                child = struct.unpack_from("<Q", buf, e + 8)[0]
                # Branch pages only ever point into the file, never inline.
                yield from self._items(self.data, child * self.page_size)
        elif flags & self._LEAF:
            for i in range(count):
                e = elems + 16 * i
                eflags, pos, ksize, vsize = struct.unpack_from("<IIII", buf, e)
                k = e + pos
                yield eflags, buf[k:k + ksize], buf[k + ksize:k + ksize + vsize]
        else:
            raise StoreError(f"{self.what}: unexpected bbolt page type {flags:#x}: a damaged etcd snapshot")

    def bucket(self, name: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of the top-level bucket ``name``, in key order."""
        for flags, key, value in self._items(self.data, self.root * self.page_size):
            if key == name and flags & self._BUCKET_LEAF:
                root = struct.unpack_from("<Q", value, 0)[0]
                if root == 0:  # inline bucket: its page follows the 16-byte header
                    items = self._items(value, 16)
                else:
                    items = self._items(self.data, root * self.page_size)
                for f, k, v in items:
                    if not f & self._BUCKET_LEAF:
                        yield k, v
                return
        raise StoreError(f"{self.what} is a bbolt database without etcd's {name.decode()!r} bucket: "
                         "not an etcd snapshot")


def _fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _pb_bytes_field(msg: bytes, field: int) -> bytes | None:
    """The first length-delimited ``field`` of a protobuf message (mvccpb.KeyValue's key is field
    1, its first), or None when it has none or does not parse up to it."""
    try:
        return next((v for num, wt, v in iter_fields(msg) if num == field and wt == LEN), None)
    except WireError:
        return None


def _split_hash(data: bytes, what: str) -> bytes:
    """The database of an etcd snapshot file, its SHA-256 trailer checked."""
    if len(data) % 512 == _SHA256_LEN:
        db, digest = data[:-_SHA256_LEN], data[-_SHA256_LEN:]
        if hashlib.sha256(db).digest() != digest:
            raise StoreError(f"{what}: the etcd snapshot's SHA-256 does not match its contents: the file is "
                             "damaged or incomplete; take a new snapshot")
        return db
    if len(data) % 512 == 0:
        return data  # a member's db file copied as is (no hash): usable, but unchecked
    raise StoreError(f"{what}: the etcd snapshot is truncated ({len(data)} bytes); take a new snapshot")


def etcd_snapshot_info(path: str, prefix: str = "") -> SnapshotInfo:
    """Revision and number of objects (live keys under ``prefix + "/registry/"``) of an etcd snapshot file."""
    with open(path, "rb") as f:
        data = f.read()
    return _etcd_info(data, path, prefix)


def _etcd_info(data: bytes, what: str, prefix: str) -> SnapshotInfo:
    bolt = _Bolt(_split_hash(data, what), what)
    live: set[bytes] = set()
    revision = 0
    # The "key" bucket is etcd's history: key = revision (8-byte main, "_", 8-byte sub, "t" if the
    # write was a delete), value = the mvccpb.KeyValue written then. Replayed in revision order, the
    # keys alive at the end are the snapshot's objects.
    for rev_key, value in bolt.bucket(b"key"):
        if len(rev_key) < 17:
            continue
        revision = max(revision, struct.unpack_from(">Q", rev_key, 0)[0])
        key = _pb_bytes_field(value, 1)
        if key is None:
            continue
        if rev_key.endswith(b"t") and len(rev_key) == 18:
            live.discard(key)
        else:
            live.add(key)
    # etcd starts at revision 1; a compaction may have removed the newest revision's entries (a
    # delete's tombstone), and etcd then resumes from the compaction's revision, as here.
    revision = max(revision, 1)
    for name, value in bolt.bucket(b"meta"):
        if name in (b"finishedCompactRev", b"scheduledCompactRev") and len(value) >= 8:
            revision = max(revision, struct.unpack_from(">Q", value, 0)[0])
    want = (prefix + "/registry/").encode()
    objects = sum(1 for k in live if k.startswith(want))
    return SnapshotInfo(what, revision, objects, len(data))


async def etcd_save(
    endpoints: str | Sequence[str],
    out: str,
    *,
    prefix: str = "",
    cafile: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    dial_timeout: float = 5.0,
    read_timeout: float = 60.0,
) -> SnapshotInfo:
    """Stream a snapshot of the etcd cluster at ``endpoints`` into ``out``: tries each endpoint in turn."""
    import aiohttp

    from k8py.storage.etcd import parse_endpoints

    try:
        urls = parse_endpoints(endpoints)
    except ValueError as e:
        raise StoreError(f"--datastore-endpoint: {e}") from None
    if not urls[0].startswith("https://") and (cafile or certfile or keyfile):
        raise StoreError("--datastore-cafile/--datastore-certfile/--datastore-keyfile need https:// endpoints")
    ssl_ctx: ssl.SSLContext | bool = True
    if urls[0].startswith("https://"):
        try:
            ctx = ssl.create_default_context(cafile=cafile)
            if certfile:
                ctx.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as e:
            raise StoreError(f"cannot load the etcd TLS files: {e}") from None
        ssl_ctx = ctx
    out_dir = os.path.dirname(os.path.abspath(out)) or "."
    problems: list[str] = []
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=dial_timeout, sock_read=read_timeout)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx), timeout=timeout) as session:
        for url in urls:
            fd, tmp = tempfile.mkstemp(prefix=".k8py-snapshot-", dir=out_dir)
            try:
                with os.fdopen(fd, "wb") as f:
                    floor = await _linearizable_revision(session, url)
                    data = await _stream_snapshot(session, url, f)
                    f.flush()
                    os.fsync(f.fileno())
                info = _etcd_info(data, out, prefix)
                if info.revision < floor:
                    raise _Retry(f"its snapshot is at revision {info.revision}, behind the cluster's {floor}")
                os.chmod(tmp, 0o600)
                os.replace(tmp, out)
                return info
            except _Retry as e:
                problems.append(f"{url}: {e}")
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                problems.append(f"{url}: {_describe(e)}")
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    raise StoreUnavailableError("could not take an etcd snapshot: " + "; ".join(problems))


class _Retry(Exception):
    """This member cannot give a good snapshot now; try the next one."""


async def _linearizable_revision(session: Any, url: str) -> int:
    # A linearizable read through this member waits until the member has applied every write the
    # cluster acknowledged before it; its revision is the floor the snapshot must reach.
    body = {"key": base64.b64encode(b"\x00k8py-snapshot-probe").decode()}
    async with session.post(url + "/v3/kv/range", json=body,
                            headers={"Grpc-Metadata-Hasleader": "true"}) as resp:
        raw = await resp.read()
        if resp.status != 200:
            raise _Retry(_gateway_message(resp.status, raw) + " (has the cluster lost quorum?)")
    return int(json.loads(raw)["header"]["revision"])


async def _stream_snapshot(session: Any, url: str, f: Any) -> bytes:
    """Write the snapshot to ``f``; returns it too (the caller checks it)."""
    async with session.post(url + "/v3/maintenance/snapshot", data=b"{}") as resp:
        if resp.status != 200:
            raise _Retry(_gateway_message(resp.status, await resp.read()))
        buf = b""
        done = False
        blob = bytearray()
        async for chunk in resp.content.iter_any():
            buf += chunk
            # One JSON message per line: {"result": {"blob": base64, "remaining_bytes": n}}.
            while (nl := buf.find(b"\n")) >= 0:
                line, buf = buf[:nl], buf[nl + 1:]
                if not line.strip():
                    continue
                msg = json.loads(line)
                if "error" in msg:
                    raise _Retry(str(msg["error"].get("message", msg["error"])))
                result = msg.get("result", {})
                piece = base64.b64decode(result.get("blob", ""))
                f.write(piece)
                blob += piece
                done = int(result.get("remaining_bytes", 0) or 0) == 0
        if not done:
            raise _Retry("the snapshot stream ended early")
        return bytes(blob)


def _gateway_message(status: int, raw: bytes) -> str:
    try:
        return f"HTTP {status}: {json.loads(raw).get('message') or raw[:200].decode('utf-8', 'replace')}"
    except ValueError:
        return f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}"


def _describe(e: BaseException) -> str:
    import aiohttp

    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect ({e.os_error.strerror or e.os_error})"
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


DEFAULT_MEMBER_NAME = "default"
DEFAULT_PEER_URL = "http://127.0.0.1:2380"
DEFAULT_CLUSTER_TOKEN = "etcd-cluster"


def etcd_restore(
    snapshot: str,
    data_dir: str,
    *,
    name: str = DEFAULT_MEMBER_NAME,
    initial_cluster: str = "",
    initial_cluster_token: str = DEFAULT_CLUSTER_TOKEN,
    initial_advertise_peer_urls: str = DEFAULT_PEER_URL,
    prefix: str = "",
    etcdctl: str | None = None,
) -> SnapshotInfo:
    """Make ``data_dir`` the data directory of etcd member ``name`` of a new cluster holding the
    snapshot's keys and revisions (``etcdctl snapshot restore``). ``data_dir`` must not exist or be
    empty. For a cluster of several members, run it once per member with that member's name and
    peer URL and the same ``initial_cluster`` and token."""
    info = etcd_snapshot_info(snapshot, prefix)  # a damaged file is refused before etcdctl runs
    tool = etcdctl or shutil.which("etcdctl")
    if not tool:
        raise StoreError("restoring an etcd snapshot needs etcdctl: install Debian's etcd-client package "
                         "(scripts/install does)")
    data_dir = os.path.abspath(data_dir)
    if os.path.isdir(data_dir) and not os.listdir(data_dir):
        os.rmdir(data_dir)  # etcdctl insists on creating it itself
    elif os.path.exists(data_dir):
        raise StoreError(f"{data_dir} already exists and is not empty: restore into a new directory "
                         "(etcd never restores over a member's data)")
    parent = os.path.dirname(data_dir)
    os.makedirs(parent, exist_ok=True)
    cmd = [tool, "snapshot", "restore", snapshot, "--data-dir", data_dir, "--name", name,
           "--initial-cluster", initial_cluster or f"{name}={initial_advertise_peer_urls}",
           "--initial-cluster-token", initial_cluster_token,
           "--initial-advertise-peer-urls", initial_advertise_peer_urls]
    if os.path.getsize(snapshot) % 512 == 0:
        cmd.append("--skip-hash-check")  # a db file copied from a member has no hash to check
    env = dict(os.environ, ETCDCTL_API="3")
    try:
        p = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)
    except OSError as e:
        raise StoreError(f"cannot run {tool}: {e.strerror}") from None
    if p.returncode != 0:
        shutil.rmtree(data_dir, ignore_errors=True)
        lines = [ln for ln in (p.stderr or p.stdout).splitlines() if ln.strip()]
        raise StoreError(f"etcdctl snapshot restore failed: {' '.join(lines[-3:])}")
    os.chmod(data_dir, 0o700)
    return SnapshotInfo(data_dir, info.revision, info.keys, info.size_bytes)
