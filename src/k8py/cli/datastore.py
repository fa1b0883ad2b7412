"""``k8py datastore snapshot save FILE`` / ``k8py datastore snapshot restore FILE``."""

from __future__ import annotations

import argparse
import logging

from k8py.cli.server import _path
from k8py.config import ServerConfig, default_data_dir
from k8py.storage.interface import StoreError

__all__ = ["add_parser"]

log = logging.getLogger("k8py.datastore")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser("datastore", help="back up and restore the cluster's store",
                              description="Back up and restore the cluster's store.")
    sub = p.add_subparsers(dest="datastore_command", metavar="COMMAND", title="commands")
    snap = sub.add_parser("snapshot", help="save or restore a snapshot of every object",
                          description="Save or restore a snapshot of every object in the store.")
    ssub = snap.add_subparsers(dest="snapshot_command", metavar="COMMAND", title="commands")
    for name, func, desc in (
        ("save", save, "Write a consistent snapshot of the store to FILE. Works while the server runs."),
        ("restore", restore, "Replace the store of --data-dir with the snapshot in FILE. Stop the server "
                             "first; start it again afterwards and every object of the snapshot is back."),
    ):
        c = ssub.add_parser(name, help=desc.split(".")[0].lower(), description=desc)
        c.add_argument("file", metavar="FILE", help="the snapshot file")
        c.add_argument("--data-dir", "-d", type=_path, metavar="DIR",
                       help=f"the server's data directory (default: {default_data_dir()})")
        c.add_argument("--datastore-endpoint", default="", metavar="URL",
                       help="the server's datastore (default: SQLite in <data-dir>/db)")
        c.set_defaults(func=func, parser=c)
    for q in (p, snap):
        q.set_defaults(func=lambda _a, q=q: (q.print_help(), 2)[1], parser=q)
    return p


def _config(args: argparse.Namespace) -> ServerConfig:
    kw = {"data_dir": args.data_dir} if args.data_dir else {}
    return ServerConfig(datastore_endpoint=args.datastore_endpoint, **kw)


def _check_sqlite(cfg: ServerConfig) -> None:
    ep = cfg.datastore_endpoint
    if ep and not ep.startswith("sqlite://"):
        raise StoreError(f"snapshots of {ep} are not supported by this command yet; only the embedded SQLite "
                         "store is (for etcd use etcdctl snapshot save/restore)")


def save(args: argparse.Namespace) -> int:
    from k8py.storage.snapshot import sqlite_save

    cfg = _config(args)
    try:
        _check_sqlite(cfg)
        info = sqlite_save(cfg.db_path, args.file)
    except StoreError as e:
        log.error("%s", e)
        return 1
    log.info("saved snapshot %s: %d objects at revision %d (%d bytes)", info.path, info.keys, info.revision,
             info.size_bytes)
    return 0


def restore(args: argparse.Namespace) -> int:
    from k8py.storage.snapshot import sqlite_restore

    cfg = _config(args)
    try:
        _check_sqlite(cfg)
        info = sqlite_restore(args.file, cfg.db_path)
    except StoreError as e:
        log.error("%s", e)
        return 1
    log.info("restored %s into %s: %d objects at revision %d; start the server to serve them", args.file,
             info.path, info.keys, info.revision)
    return 0
