"""Leader election on a Lease in the in-process API server, with a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from k8py.client import Client, FakeClock, LeaderElectionConfig, LeaderElector
from k8py.client.leaderelection import LEASE, format_micro_time, parse_micro_time

from .conftest import Proxy, until


def elector(client: Client, clock: FakeClock, ident: str, **kw: Any) -> LeaderElector:
    cfg = LeaderElectionConfig("ctrl", "default", ident, lease_duration=15, renew_deadline=10, retry_period=2)
    return LeaderElector(client, cfg, clock=clock, **kw)


async def lease(client: Client) -> dict[str, Any]:
    return (await client.get(LEASE, "ctrl", "default"))["spec"]


async def tick(clock: FakeClock, seconds: float) -> None:
    """Advance once the electors are asleep on the clock, then let them run."""
    await until(lambda: clock.waiters > 0, what="a sleeper on the clock")
    clock.advance(seconds)
    await asyncio.sleep(0.02)


def test_micro_time_and_config() -> None:
    t = 1_700_000_000.123456
    s = format_micro_time(t)
    assert s == "2023-11-14T22:13:20.123456Z"
    assert parse_micro_time(s) == pytest.approx(t)
    assert parse_micro_time("nonsense") is None
    with pytest.raises(ValueError):
        LeaderElectionConfig("x", lease_duration=5, renew_deadline=10, retry_period=2)
    assert LeaderElectionConfig("x").identity  # host name + uuid by default


async def test_acquire_hold_expire_take_over(client: Client) -> None:
    clock = FakeClock()
    new_leaders: list[str] = []
    a = elector(client, clock, "a")
    b = elector(client, clock, "b", on_new_leader=new_leaders.append)
    assert await a.try_acquire_or_renew()
    spec = await lease(client)
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0 and spec["acquireTime"] == spec["renewTime"]
    assert not await b.try_acquire_or_renew()
    assert b.leader == "a" and new_leaders == ["a"]
    a.is_leader = True
    clock.advance(5)
    assert await a.try_acquire_or_renew()  # renew: renewTime moves, acquireTime stays
    spec2 = await lease(client)
    assert spec2["acquireTime"] == spec["acquireTime"] and spec2["renewTime"] > spec["renewTime"]
    clock.advance(14.9)  # 14.9 s after the renewal: still held
    assert not await b.try_acquire_or_renew()
    clock.advance(0.2)  # expired: renewTime + leaseDurationSeconds is past
    assert await b.try_acquire_or_renew()
    spec3 = await lease(client)
    assert spec3["holderIdentity"] == "b" and spec3["leaseTransitions"] == 1
    assert new_leaders == ["a", "b"]
    # the old leader's renewal (from its cached lease) conflicts, then it sees b holding
    assert not await a.try_acquire_or_renew()
    assert a.leader == "b"


async def test_racing_candidates_one_wins(client: Client) -> None:
    clock = FakeClock()
    es = [elector(client, clock, f"c{i}") for i in range(5)]
    won = await asyncio.gather(*(e.try_acquire_or_renew() for e in es))
    assert sum(won) == 1
    holder = (await lease(client))["holderIdentity"]
    assert holder == es[won.index(True)].config.identity
    # racing over an expired lease: again exactly one
    clock.advance(20)
    won = await asyncio.gather(*(e.try_acquire_or_renew() for e in es if e.config.identity != holder))
    assert sum(won) == 1


async def test_run_renews_and_releases_on_stop(client: Client) -> None:
    clock = FakeClock()
    events: list[str] = []

    async def lead() -> None:
        events.append("started")
        await asyncio.Event().wait()  # runs until leadership ends

    a = elector(client, clock, "a", on_started_leading=lead, on_stopped_leading=lambda: events.append("stopped"))
    stop = asyncio.Event()
    run = asyncio.create_task(a.run(stop))
    await until(lambda: a.is_leader and events == ["started"], what="leading")
    first = (await lease(client))["renewTime"]
    await tick(clock, 2)
    await until(lambda: a._lease is not None and a._lease["spec"]["renewTime"] != first, what="renewal")
    stop.set()
    await asyncio.wait_for(run, 2)
    assert events == ["started", "stopped"] and not a.is_leader
    spec = await lease(client)
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    # released: a successor takes over at once, without waiting for expiry
    b = elector(client, clock, "b")
    assert await b.try_acquire_or_renew()
    assert (await lease(client))["leaseTransitions"] == 1


async def test_follower_takes_over_after_leader_dies(client: Client) -> None:
    clock = FakeClock()
    a = elector(client, clock, "a")
    assert await a.try_acquire_or_renew()  # a "crashes" now: never renews, never releases
    started = asyncio.Event()

    async def lead() -> None:
        started.set()

    b = elector(client, clock, "b", on_started_leading=lead)
    run = asyncio.create_task(b.run())
    try:
        for _ in range(7):  # 14 s of retries: a's lease (15 s) still holds
            await tick(clock, 2)
        assert not b.is_leader
        await tick(clock, 2)
        await until(lambda: b.is_leader, what="take-over")
        await asyncio.wait_for(started.wait(), 1)
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
    assert (await lease(client))["holderIdentity"] == ""  # cancelling run released the lease


async def test_leader_steps_down_when_it_cannot_renew(proxied: Client, proxy: Proxy) -> None:
    clock = FakeClock()
    stopped = asyncio.Event()
    work_cancelled = asyncio.Event()

    async def lead() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            work_cancelled.set()
            raise

    a = elector(proxied, clock, "a", on_started_leading=lead, on_stopped_leading=stopped.set)
    run = asyncio.create_task(a.run())
    await until(lambda: a.is_leader, what="leading")
    proxy.refusing = True
    proxy.drop()
    for _ in range(4):  # 8 s without a renewal: still inside renew_deadline (10 s)
        await tick(clock, 2)
    assert a.is_leader
    await tick(clock, 2)
    await asyncio.wait_for(run, 2)
    assert stopped.is_set() and work_cancelled.is_set() and not a.is_leader


async def test_leader_steps_down_when_lease_is_taken(client: Client) -> None:
    clock = FakeClock()
    a = elector(client, clock, "a")
    run = asyncio.create_task(a.run())
    await until(lambda: a.is_leader, what="leading")
    lease_obj = await client.get(LEASE, "ctrl", "default")
    lease_obj["spec"]["holderIdentity"] = "intruder"
    lease_obj["spec"]["renewTime"] = format_micro_time(clock.wall())
    await client.update(LEASE, lease_obj)
    await tick(clock, 2)
    await asyncio.wait_for(run, 2)
    assert not a.is_leader and a.leader == "intruder"
    assert (await lease(client))["holderIdentity"] == "intruder"  # losing is not releasing
