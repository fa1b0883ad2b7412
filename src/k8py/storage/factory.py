"""Pick the store backend from ``--datastore-endpoint``.

- ``""`` -> SQLite at the data directory's database path;
- ``sqlite://PATH`` -> SQLite at PATH (``sqlite:///abs/file.db`` is absolute,
  ``sqlite://`` alone means the data directory's path);
- ``http://`` / ``https://`` -> etcd v3 (not built yet).

The returned store is not started: ``await store.start()`` inside the event
loop that will use it, and ``await store.close()`` there when done.
"""

from __future__ import annotations

from typing import Any

from .interface import Store, StoreError
from .sqlite import SQLiteStore

__all__ = ["open_store"]


def open_store(endpoint: str, data_dir_db_path: str, **sqlite_options: Any) -> Store:
    """A store for ``endpoint``; ``sqlite_options`` go to :class:`SQLiteStore`."""
    endpoint = endpoint.strip()
    if not endpoint:
        return SQLiteStore(data_dir_db_path, **sqlite_options)
    scheme, sep, rest = endpoint.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        path = rest.split("?", 1)[0]
        return SQLiteStore(path or data_dir_db_path, **sqlite_options)
    if sep and scheme in ("http", "https"):
        raise StoreError(
            f"--datastore-endpoint {endpoint}: the etcd backend is not built yet; "
            "leave the endpoint empty (or use sqlite://PATH) for the embedded SQLite store"
        )
    raise StoreError(
        f"--datastore-endpoint {endpoint!r}: unsupported endpoint; "
        "use '' or sqlite://PATH (embedded SQLite) or http(s)://HOST:2379 (etcd)"
    )
