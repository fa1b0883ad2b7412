"""Retired HTTPS sessions (the aggregation layer's, the admission webhooks'): closed after their
grace period, or all at once when the server stops, even one whose closing task never ran."""

from __future__ import annotations

import asyncio

import aiohttp

from k8py.apiserver.sessions import RetiredSessions


async def test_a_retired_session_closes_after_its_grace_or_at_the_end() -> None:
    quick = RetiredSessions("t", 0.0)
    s = aiohttp.ClientSession()
    quick.retire(s)
    assert quick.sessions() == [s] and not s.closed
    while len(quick):  # its task ends once it has closed the session
        await asyncio.sleep(0)
    assert s.closed
    slow = RetiredSessions("t", 3600.0)
    a, b = aiohttp.ClientSession(), aiohttp.ClientSession()
    slow.retire(a)
    slow.retire(b)  # b's task has not started when the server stops
    await slow.close_all()
    assert a.closed and b.closed and not len(slow)
