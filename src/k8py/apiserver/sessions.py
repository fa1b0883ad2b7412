"""HTTPS sessions the API server keeps per TLS setting (the aggregation layer's per APIService
trust, the admission webhooks' per caBundle) and retires when no object names that setting any
more: a retired session takes no new request and is closed once the longest call that may still
be using it could have ended, or when the server stops."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

__all__ = ["RetiredSessions"]


class RetiredSessions:
    """Sessions on their way out, each closed by a task of its own after ``grace`` seconds."""

    def __init__(self, name: str, grace: float) -> None:
        self.name = name
        self.grace = grace
        self._closing: dict[asyncio.Task[None], aiohttp.ClientSession] = {}

    def __len__(self) -> int:
        return len(self._closing)

    def sessions(self) -> list[aiohttp.ClientSession]:
        """The sessions not closed yet."""
        return list(self._closing.values())

    def retire(self, session: aiohttp.ClientSession) -> None:
        async def close_later() -> None:
            try:
                await asyncio.sleep(self.grace)
            finally:
                with contextlib.suppress(Exception):
                    await session.close()

        task = asyncio.get_running_loop().create_task(close_later(), name=f"{self.name}-session-retire")
        self._closing[task] = session
        task.add_done_callback(lambda t: self._closing.pop(t, None))

    async def close_all(self) -> None:
        """Close every retired session now (the server stops)."""
        closing = dict(self._closing)
        for t in closing:
            t.cancel()
        await asyncio.gather(*closing, return_exceptions=True)
        # a task cancelled before it ran never closed its session
        for s in closing.values():
            with contextlib.suppress(Exception):
                await s.close()
        self._closing.clear()
