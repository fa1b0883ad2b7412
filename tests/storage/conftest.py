"""Fixtures shared by the storage tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from k8py.storage.sqlite import SQLiteStore

SQLiteFactory = Callable[..., Awaitable[SQLiteStore]]


@pytest.fixture
async def sqlite_factory(tmp_path: Path) -> AsyncIterator[SQLiteFactory]:
    """``await sqlite_factory(path=None, **options)``: a started SQLiteStore
    (default file under ``tmp_path``), closed at teardown. Progress
    notifications default to every 0.2 s so tests stay fast."""
    opened: list[SQLiteStore] = []

    async def make(path: str | None = None, **options: Any) -> SQLiteStore:
        options.setdefault("progress_interval", 0.2)
        store = SQLiteStore(path or str(tmp_path / "db" / "state.db"), **options)
        await store.start()
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        await store.close()
