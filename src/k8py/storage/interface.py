"""The backend-neutral store: etcd v3's data model, as the API server needs it.

Every backend (SQLite embedded, etcd clustered) implements :class:`Store` and
passes the shared contract suite in ``tests/storage/contract.py``.

The model, as in etcd:

- one global revision counter, bumped by every write (create, update, delete);
  a write returns the revision it was committed at, which becomes the object's
  ``resourceVersion``;
- each key carries ``create_revision`` (revision of the create that made this
  incarnation of the key) and ``mod_revision`` (revision of its last write);
- conditional writes: create only if absent, update/delete only if the key's
  ``mod_revision`` equals an expected revision;
- reads at the current revision or at a past one (until compacted);
- watches from a revision (inclusive, as in etcd), delivering every change to
  keys under a prefix in revision order, each with the previous value;
- compaction forgets history older than a revision; reading or watching before
  it raises :class:`CompactedError` (the API turns that into ``410 Gone``).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# ``list`` treats larger limits as this one (in effect: no limit). Why: SQLite's
# LIMIT and etcd's range limit are signed 64-bit integers, and an API client may
# ask for ``?limit=9223372036854775808``.
MAX_LIST_LIMIT = (1 << 62) - 1


class StoreError(Exception):
    """Base class of every store error."""


class KeyExistsError(StoreError):
    """``create`` found the key already present."""

    def __init__(self, key: str, current: KeyValue | None = None) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key
        self.current = current


class KeyNotFoundError(StoreError):
    """``update``/``delete`` found no such key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class ConflictError(StoreError):
    """The key's ``mod_revision`` did not match the expected revision.

    ``current`` is the key's present value so callers (``guaranteed_update``)
    can retry without another read.
    """

    def __init__(self, key: str, expected: int, current: KeyValue | None) -> None:
        super().__init__(
            f"revision mismatch on {key}: expected {expected}, "
            f"have {current.mod_revision if current else 'none'}"
        )
        self.key = key
        self.expected = expected
        self.current = current


class CompactedError(StoreError):
    """The requested revision is older than the compacted revision."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"required revision {requested} has been compacted (oldest available is {compacted + 1})"
        )
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StoreError):
    """The requested revision is newer than the store's current revision."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"required revision {requested} is a future revision (current is {current})")
        self.requested = requested
        self.current = current


class StoreUnavailableError(StoreError):
    """The backend cannot serve the request now (closed, lost quorum, I/O error)."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(str, enum.Enum):
    PUT = "PUT"  # create or update: ``prev_kv`` is None for a create
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Event:
    """One change.

    For PUT, ``kv`` is the new value and ``prev_kv`` the old one (None on create).
    For DELETE, ``kv.value`` is the value the key had before deletion,
    ``kv.mod_revision`` is the revision of the delete, and ``prev_kv`` is the
    key-value as it was (same value, its old ``mod_revision``).
    """

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    @property
    def is_create(self) -> bool:
        return self.type is EventType.PUT and self.prev_kv is None


@dataclass(frozen=True, slots=True)
class ListResult:
    kvs: list[KeyValue]
    revision: int  # the store revision the range was read at
    more: bool  # True when ``limit`` cut the result short
    count: int = 0  # total keys under the prefix at ``revision`` (may be 0 if not computed)


@dataclass(frozen=True, slots=True)
class WatchResponse:
    """A batch of events, or (``events == []``) a progress notification.

    ``revision``: every change up to and including this revision under the
    watched prefix has been delivered. Used for bookmarks.
    """

    events: list[Event]
    revision: int


@dataclass(frozen=True, slots=True)
class DeleteResult:
    revision: int  # revision of the delete
    prev_kv: KeyValue  # what was deleted


@runtime_checkable
class Watch(Protocol):
    """An open watch. Iterate for responses; ``close()`` to stop.

    Iteration raises :class:`CompactedError` if the start revision is already
    compacted (raised on the first ``__anext__``), and ends (StopAsyncIteration)
    after ``close()``. A watcher that falls too far behind may be ended with
    :class:`CompactedError` too; the client then relists.
    """

    def __aiter__(self) -> AsyncIterator[WatchResponse]: ...

    async def __anext__(self) -> WatchResponse: ...

    async def close(self) -> None: ...


@runtime_checkable
class Store(Protocol):
    """An etcd-like versioned key-value store. All keys are ``str``, values ``bytes``."""

    async def start(self) -> None:
        """Open the backend (create schema, connect). Idempotent."""

    async def close(self) -> None:
        """Flush and release everything. Acknowledged writes are durable already."""

    async def current_revision(self) -> int: ...

    async def health(self) -> None:
        """Raise :class:`StoreUnavailableError` unless the backend serves
        requests now (for etcd: a read that needs a quorum; for SQLite: the
        writer thread answers and the file reads). Callers bound it with a
        timeout (the API server's ``etcd`` health check: 2 s)."""

    async def compacted_revision(self) -> int:
        """Highest revision that has been compacted (0 if none)."""

    async def create(self, key: str, value: bytes) -> int:
        """Create ``key`` if absent; return the new revision. Raises KeyExistsError."""

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        """Replace ``key`` if its mod_revision == ``expected_revision``.

        Raises KeyNotFoundError if absent, ConflictError on mismatch.
        Returns the new revision.
        """

    async def delete(self, key: str, expected_revision: int | None = None) -> DeleteResult:
        """Delete ``key`` (only if mod_revision matches when given).

        Raises KeyNotFoundError / ConflictError.
        """

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        """Value of ``key`` at ``revision`` (0 = latest), or None."""

    async def list(
        self,
        prefix: str,
        *,
        start_key: str | None = None,
        limit: int = 0,
        revision: int = 0,
        count: bool = False,
    ) -> ListResult:
        """Keys with ``prefix``, in key order, starting at ``start_key`` (inclusive)
        if given, at most ``limit`` (0 = all), read at ``revision`` (0 = latest).
        Raises CompactedError / FutureRevisionError for unusable revisions.
        """

    def watch(self, prefix: str, start_revision: int, *, progress_notify: bool = False) -> Watch:
        """Watch keys under ``prefix`` from ``start_revision`` (inclusive; 0 = from now).

        With ``progress_notify``, empty WatchResponses carrying the current
        revision are sent when the watch is idle (about every few seconds).
        """

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision``: afterwards reads/watches at
        revisions < ``revision`` raise CompactedError. Latest values are kept."""


@dataclass(slots=True)
class StoreStats:
    """Optional, for diagnostics and benchmarks."""

    revision: int = 0
    compacted: int = 0
    keys: int = 0
    db_size_bytes: int = 0
    extra: dict[str, int] = field(default_factory=dict)
