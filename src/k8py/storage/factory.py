"""Pick the store backend from ``--datastore-endpoint``.

- ``""`` -> SQLite at the data directory's database path;
- ``sqlite://PATH`` -> SQLite at PATH (``sqlite:///abs/file.db`` is absolute,
  ``sqlite://`` alone means the data directory's path);
- ``http://HOST:2379[,http://HOST2:2379,...]`` / ``https://...`` -> etcd v3
  (:class:`~k8py.storage.etcd.EtcdStore`), with ``cafile``/``certfile``/
  ``keyfile`` for TLS and ``prefix`` prepended to every key.

An embedded SQLite store compacts itself (``compaction_retention``,
``compaction_interval``: see :class:`~k8py.storage.sqlite.SQLiteStore`), as
kine does under k3s: by revision count, file size and time, so its file stays
bounded under churn. etcd is compacted by the API server's own compactor.

The returned store is not started: ``await store.start()`` inside the event
loop that will use it, and ``await store.close()`` there when done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .etcd import EtcdStore
from .interface import Store, StoreError
from .sqlite import SQLiteStore

__all__ = ["DEFAULT_COMPACTION_INTERVAL", "DEFAULT_COMPACTION_RETENTION", "open_store"]

# kube-apiserver's --etcd-compaction-interval and kine's retention.
DEFAULT_COMPACTION_INTERVAL = 300.0
DEFAULT_COMPACTION_RETENTION = 1000


def open_store(
    endpoint: str,
    data_dir_db_path: str,
    *,
    prefix: str = "",
    cafile: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    etcd_options: Mapping[str, Any] | None = None,
    compaction_interval: float = DEFAULT_COMPACTION_INTERVAL,
    compaction_retention: int = DEFAULT_COMPACTION_RETENTION,
    **sqlite_options: Any,
) -> Store:
    """A store for ``endpoint``.

    ``prefix``, ``cafile``, ``certfile``, ``keyfile`` and ``etcd_options``
    (more :class:`EtcdStore` keyword arguments) apply to etcd endpoints;
    ``compaction_interval`` (seconds), ``compaction_retention`` (revisions
    kept) and ``sqlite_options`` go to :class:`SQLiteStore`.
    """
    sqlite_options.setdefault("compaction_interval", compaction_interval)
    sqlite_options.setdefault("compaction_retention", compaction_retention)
    endpoint = endpoint.strip()
    scheme, sep, rest = endpoint.partition("://")
    scheme = scheme.lower() if sep else ""
    if scheme in ("http", "https"):
        try:
            return EtcdStore(
                endpoint,
                prefix=prefix,
                cafile=cafile or None,
                certfile=certfile or None,
                keyfile=keyfile or None,
                **dict(etcd_options or {}),
            )
        except ValueError as e:
            raise StoreError(f"--datastore-endpoint {endpoint}: {e}") from None
    if cafile or certfile or keyfile:
        raise StoreError(
            "--datastore-cafile/--datastore-certfile/--datastore-keyfile apply to an https:// etcd "
            f"--datastore-endpoint, not to {endpoint or 'the embedded SQLite store'!r}"
        )
    if not endpoint:
        return SQLiteStore(data_dir_db_path, **sqlite_options)
    if scheme == "sqlite":
        path = rest.split("?", 1)[0]
        return SQLiteStore(path or data_dir_db_path, **sqlite_options)
    raise StoreError(
        f"--datastore-endpoint {endpoint!r}: unsupported endpoint; "
        "use '' or sqlite://PATH (embedded SQLite) or http(s)://HOST:2379[,http(s)://HOST2:2379] (etcd)"
    )
