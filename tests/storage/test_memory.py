"""The in-memory fake store passes the same contract as the real backends."""

from __future__ import annotations

import pytest

from k8py.storage.memory import MemoryStore

try:
    from .contract import StoreContract
except ImportError:
    from contract import StoreContract  # type: ignore[no-redef]


class TestMemoryContract(StoreContract):
    @pytest.fixture
    async def store(self):
        s = MemoryStore(progress_interval=0.2)
        await s.start()
        yield s
        await s.close()
