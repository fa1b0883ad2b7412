"""``k8py datastore snapshot save FILE`` / ``k8py datastore snapshot restore FILE``.

The embedded SQLite store and etcd alike: ``save`` picks the store from
``--datastore-endpoint`` (as ``k8py server`` does), ``restore`` from the
snapshot file itself. See :mod:`k8py.storage.snapshot` and docs/operations.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex

from k8py.cli.server import _path
from k8py.config import ServerConfig, default_data_dir
from k8py.storage import snapshot as snap
from k8py.storage.interface import StoreError

__all__ = ["add_parser"]

log = logging.getLogger("k8py.datastore")

_ETCD_ONLY = ("name", "initial_cluster", "initial_cluster_token", "initial_advertise_peer_urls")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser("datastore", help="back up and restore the cluster's store",
                              description="Back up and restore the cluster's store.")
    sub = p.add_subparsers(dest="datastore_command", metavar="COMMAND", title="commands")
    snapp = sub.add_parser("snapshot", help="save or restore a snapshot of every object",
                           description="Save or restore a snapshot of every object in the store.")
    ssub = snapp.add_subparsers(dest="snapshot_command", metavar="COMMAND", title="commands")

    save_p = ssub.add_parser(
        "save", help="write a consistent snapshot of the store to FILE",
        description="Write a consistent snapshot of the store to FILE while the cluster runs: the embedded SQLite "
                    "store of --data-dir, or the etcd cluster of --datastore-endpoint (through etcd's snapshot "
                    "API; the file is what `etcdctl snapshot save` writes).")
    save_p.add_argument("file", metavar="FILE", help="the snapshot file to write")
    save_p.add_argument("--data-dir", "-d", type=_path, metavar="DIR",
                        help=f"the server's data directory, for SQLite (default: {default_data_dir()})")
    save_p.add_argument("--datastore-endpoint", default="", metavar="URL",
                        help="the server's datastore: http(s)://HOST:2379[,...] for etcd "
                             "(default: SQLite in <data-dir>/db)")
    save_p.add_argument("--datastore-cafile", metavar="FILE", help="CA certificate to verify etcd's TLS certificate")
    save_p.add_argument("--datastore-certfile", metavar="FILE", help="client certificate for etcd (TLS)")
    save_p.add_argument("--datastore-keyfile", metavar="FILE", help="client key for etcd (TLS)")
    save_p.add_argument("--datastore-prefix", default="", metavar="PREFIX",
                        help="the servers' etcd key prefix (only used to count the objects saved)")
    save_p.set_defaults(func=save, parser=save_p)

    restore_p = ssub.add_parser(
        "restore", help="restore the snapshot in FILE",
        description="Restore the snapshot in FILE. A SQLite snapshot replaces the store of --data-dir: stop the "
                    "server first and start it again afterwards. An etcd snapshot becomes a new etcd member's "
                    "data directory --data-dir (with etcdctl, from Debian's etcd-client); start etcd on it, then "
                    "the servers. Every object keeps its resourceVersion.")
    restore_p.add_argument("file", metavar="FILE", help="the snapshot file")
    restore_p.add_argument("--data-dir", "-d", type=_path, metavar="DIR",
                           help="SQLite: the server's data directory (default: "
                                f"{default_data_dir()}); etcd: the new member's data directory (required; must "
                                "not exist yet)")
    restore_p.add_argument("--datastore-endpoint", default="", metavar="URL",
                           help="SQLite only: sqlite://PATH restores into that database file")
    restore_p.add_argument("--datastore-prefix", default="", metavar="PREFIX",
                           help="etcd: the servers' key prefix (only used to count the objects restored)")
    etcd = restore_p.add_argument_group("etcd member (as etcdctl snapshot restore)")
    etcd.add_argument("--name", default=None, metavar="NAME",
                      help=f"the member's name (default: {snap.DEFAULT_MEMBER_NAME})")
    etcd.add_argument("--initial-advertise-peer-urls", default=None, metavar="URL",
                      help=f"the member's peer URL (default: {snap.DEFAULT_PEER_URL})")
    etcd.add_argument("--initial-cluster", default=None, metavar="NAME=URL,...",
                      help="every member of the restored cluster (default: just this one)")
    etcd.add_argument("--initial-cluster-token", default=None, metavar="TOKEN",
                      help=f"the restored cluster's token (default: {snap.DEFAULT_CLUSTER_TOKEN})")
    restore_p.set_defaults(func=restore, parser=restore_p)

    for q in (p, snapp):
        q.set_defaults(func=lambda _a, q=q: (q.print_help(), 2)[1], parser=q)
    return p


def _config(args: argparse.Namespace) -> ServerConfig:
    kw = {"data_dir": args.data_dir} if args.data_dir else {}
    return ServerConfig(datastore_endpoint=args.datastore_endpoint, **kw)


def _is_etcd(endpoint: str) -> bool:
    return endpoint.strip().lower().startswith(("http://", "https://"))


def _sqlite_path(cfg: ServerConfig) -> str:
    ep = cfg.datastore_endpoint.strip()
    if not ep:
        return cfg.db_path
    if ep.startswith("sqlite://"):
        return ep[len("sqlite://"):].split("?", 1)[0] or cfg.db_path
    raise StoreError(f"--datastore-endpoint {ep!r}: expected http(s)://HOST:2379 (etcd) or sqlite://PATH")


def save(args: argparse.Namespace) -> int:
    cfg = _config(args)
    try:
        if _is_etcd(cfg.datastore_endpoint):
            info = asyncio.run(snap.etcd_save(
                cfg.datastore_endpoint, args.file, prefix=args.datastore_prefix, cafile=args.datastore_cafile,
                certfile=args.datastore_certfile, keyfile=args.datastore_keyfile))
        else:
            if args.datastore_cafile or args.datastore_certfile or args.datastore_keyfile:
                raise StoreError("--datastore-cafile/--datastore-certfile/--datastore-keyfile apply to an "
                                 "https:// etcd --datastore-endpoint")
            info = snap.sqlite_save(_sqlite_path(cfg), args.file)
    except StoreError as e:
        log.error("%s", e)
        return 1
    log.info("saved snapshot %s: %d objects at revision %d (%d bytes)", info.path, info.keys, info.revision,
             info.size_bytes)
    return 0


def restore(args: argparse.Namespace) -> int:
    try:
        kind = snap.snapshot_kind(args.file)
        if kind == "etcd":
            return _restore_etcd(args)
        given = [f"--{o.replace('_', '-')}" for o in _ETCD_ONLY if getattr(args, o) is not None]
        if given:
            raise StoreError(f"{args.file} is a SQLite snapshot: {', '.join(given)} apply to etcd snapshots only")
        if _is_etcd(args.datastore_endpoint):
            raise StoreError(f"{args.file} is a k8py SQLite snapshot, not an etcd one: it restores into a "
                             "--data-dir, not into etcd")
        cfg = _config(args)
        info = snap.sqlite_restore(args.file, _sqlite_path(cfg))
    except StoreError as e:
        log.error("%s", e)
        return 1
    log.info("restored %s into %s: %d objects at revision %d; start the server to serve them", args.file,
             info.path, info.keys, info.revision)
    return 0


def _restore_etcd(args: argparse.Namespace) -> int:
    if not args.data_dir:
        raise StoreError(f"{args.file} is an etcd snapshot: give --data-dir, the new etcd member's data "
                         "directory (it must not exist yet)")
    if args.datastore_endpoint:
        raise StoreError("--datastore-endpoint is not used to restore an etcd snapshot: the snapshot becomes a "
                         "new member's --data-dir; start etcd on it, then point the servers at it")
    name = args.name or snap.DEFAULT_MEMBER_NAME
    peer = args.initial_advertise_peer_urls or snap.DEFAULT_PEER_URL
    initial = args.initial_cluster or f"{name}={peer}"
    token = args.initial_cluster_token or snap.DEFAULT_CLUSTER_TOKEN
    info = snap.etcd_restore(args.file, args.data_dir, name=name, initial_cluster=initial,
                             initial_cluster_token=token, initial_advertise_peer_urls=peer,
                             prefix=args.datastore_prefix)
    listen_peer = peer.split(",")[0]
    start = ["etcd", "--name", name, "--data-dir", info.path,
             "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
             "--listen-peer-urls", listen_peer, "--experimental-watch-progress-notify-interval=5s"]
    several = "," in initial
    log.info("restored etcd snapshot %s into %s: %d objects at revision %d (member %s of %s).\n"
             "Start etcd on it (client URLs as you need them), e.g.:\n  %s\n"
             "%sthen start (or restart) every k8py server with --datastore-endpoint pointing at it.",
             args.file, info.path, info.keys, info.revision, name, initial, shlex.join(start),
             "restore the snapshot for every other member listed in --initial-cluster the same way, "
             if several else "")
    return 0
