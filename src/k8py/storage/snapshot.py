"""Backup and restore of the store: ``k8py datastore snapshot save|restore``.

SQLite: an online, consistent copy through SQLite's backup API (it reads one
snapshot while the server keeps writing); restore puts that file in place of
the data directory's database while no server uses it. The etcd backend's
snapshots go through etcd's own snapshot API (see ``k8py.storage.etcd``).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import tempfile
from dataclasses import dataclass

from k8py.storage.interface import StoreError


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    path: str
    revision: int
    keys: int
    size_bytes: int


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
