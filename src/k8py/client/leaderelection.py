"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` does it.

- A candidate takes the lease when it does not exist, when its ``holderIdentity`` is empty
  (released), or when it has expired: ``renewTime + leaseDurationSeconds`` is in the past.
  Every write carries the resourceVersion it read, so of two candidates racing only one wins
  (the other gets 409 Conflict and stays a follower).
- The leader renews every ``retry_period``. If it cannot renew for ``renew_deadline`` (shorter
  than ``lease_duration``, so it steps down before anyone may take over), or it sees another
  holder, it stops leading.
- On a clean stop the leader releases the lease (empty ``holderIdentity``, duration 1 s) so a
  successor takes over at once instead of after the lease expires.

``renewTime`` is compared with this machine's clock: clocks of candidates must roughly agree
(client-go instead times expiry from when it first saw the record; we follow the written time so
a restarted candidate can take over a long-dead leader's lease at once).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from k8py.client.api import Client
from k8py.client.clock import Clock, RealClock
from k8py.client.errors import AlreadyExistsError, ConflictError, NotFoundError

__all__ = ["LEASE", "LeaderElectionConfig", "LeaderElector", "format_micro_time", "parse_micro_time"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LEASE = ("coordination.k8s.io/v1", "Lease")


def format_micro_time(t: float) -> str:
    """A ``metav1.MicroTime`` (RFC 3339 with microseconds, UTC)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(s: str) -> float | None:
    try:
        return datetime.fromisoformat(s).timestamp()
    except (ValueError, AttributeError):
        return None


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class LeaderElectionConfig:
    name: str
    namespace: str = "kube-system"
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election needs a non-empty identity")
        if not (self.lease_duration > self.renew_deadline > self.retry_period > 0):
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0 "
                             f"(got {self.lease_duration}, {self.renew_deadline}, {self.retry_period})")


class LeaderElector:
    """Campaign for, hold and release one Lease; see the module docstring."""

    def __init__(self, client: Client, config: LeaderElectionConfig, *,
                 on_started_leading: Callable[[], Awaitable[Any]] | None = None,
                 on_stopped_leading: Callable[[], Any] | None = None,
                 on_new_leader: Callable[[str], Any] | None = None, clock: Clock | None = None) -> None:
        self.client = client
        self.config = config
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.clock: Clock = clock or RealClock()
        self.is_leader = False
        self.leader = ""  # the holder last observed
        self._lease: Obj | None = None  # the last lease read or written

    def __repr__(self) -> str:
        c = self.config
        return f"<LeaderElector {c.namespace}/{c.name} as {c.identity}>"

    # -- one step --------------------------------------------------------------------------------

    def _observe(self, holder: str) -> None:
        if holder != self.leader:
            self.leader = holder
            if holder:
                log.info("%r: new leader %s", self, holder)
            if self.on_new_leader is not None and holder:
                try:
                    self.on_new_leader(holder)
                except Exception:
                    log.exception("%r: on_new_leader failed", self)

    def _spec(self, old: Obj | None) -> Obj:
        c = self.config
        now = format_micro_time(self.clock.wall())
        old = old or {}
        mine = old.get("holderIdentity") == c.identity
        return {
            **old,
            "holderIdentity": c.identity,
            "leaseDurationSeconds": max(1, int(c.lease_duration)),
            "acquireTime": old.get("acquireTime") if mine and old.get("acquireTime") else now,
            "renewTime": now,
            "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if mine or not old else 1),
        }

    def _held_by_other(self, spec: Obj) -> bool:
        holder = str(spec.get("holderIdentity") or "")
        if not holder or holder == self.config.identity:
            return False
        renew = parse_micro_time(str(spec.get("renewTime") or spec.get("acquireTime") or ""))
        if renew is None:
            return False  # a lease nobody ever renewed is nobody's
        return renew + float(spec.get("leaseDurationSeconds") or 0) > self.clock.wall()

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True if we hold the lease afterwards."""
        c = self.config
        if self.is_leader and self._lease is not None:
            # Fast path: renew from our own last write (no read); a conflict means someone
            # else wrote the lease meanwhile, so fall back to reading it.
            lease = self._lease
            try:
                self._lease = await self.client.update(LEASE, {**lease, "spec": self._spec(lease.get("spec"))},
                                                       c.namespace)
                return True
            except (ConflictError, NotFoundError):
                pass
        try:
            lease = await self.client.get(LEASE, c.name, c.namespace)
        except NotFoundError:
            body = {"apiVersion": LEASE[0], "kind": LEASE[1],
                    "metadata": {"name": c.name, "namespace": c.namespace}, "spec": self._spec(None)}
            try:
                self._lease = await self.client.create(LEASE, body, c.namespace)
            except (AlreadyExistsError, ConflictError):
                return False
            self._observe(c.identity)
            return True
        spec = lease.get("spec") or {}
        self._observe(str(spec.get("holderIdentity") or ""))
        if self._held_by_other(spec):
            self._lease = lease
            return False
        try:
            self._lease = await self.client.update(LEASE, {**lease, "spec": self._spec(spec)}, c.namespace)
        except ConflictError:
            return False
        self._observe(c.identity)
        return True

    async def release(self) -> bool:
        """Give the lease up if we hold it (clears holderIdentity); True if released."""
        lease = self._lease
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.config.identity:
            return False
        now = format_micro_time(self.clock.wall())
        spec = {**(lease.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1,
                "renewTime": now, "acquireTime": now}
        try:
            self._lease = await self.client.update(LEASE, {**lease, "spec": spec}, self.config.namespace)
        except Exception as e:  # noqa: BLE001 -- best effort: the lease expires anyway
            log.warning("%r: failed to release the lease: %s", self, e)
            return False
        self.leader = ""
        return True

    # -- the loop --------------------------------------------------------------------------------

    async def _attempt(self) -> bool:
        try:
            # why: a request stuck past the renew deadline must not keep us "leader" while
            # others already see the lease expire
            async with asyncio.timeout(self.config.renew_deadline):
                return await self.try_acquire_or_renew()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 -- a failed attempt is retried next period
            log.warning("%r: lease %s failed: %s: %s", self, "renewal" if self.is_leader else "acquisition",
                        type(e).__name__, e)
            return False

    async def _sleep(self, delay: float, stop: asyncio.Event) -> bool:
        """Sleep on the clock; True if ``stop`` was set meanwhile."""
        if stop.is_set():
            return True
        s = asyncio.ensure_future(self.clock.sleep(delay))
        w = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({s, w}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (s, w):
                t.cancel()
            await asyncio.gather(s, w, return_exceptions=True)
        return stop.is_set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Campaign until leader, lead until ``stop`` is set or the lease is lost, then return.

        ``on_started_leading()`` runs as a task while leading and is cancelled when leading ends;
        ``on_stopped_leading()`` is called after. Cancelling ``run`` counts as a stop.
        """
        c = self.config
        stop = stop or asyncio.Event()
        while not await self._attempt():
            if await self._sleep(c.retry_period, stop):
                return
        if stop.is_set():
            await self.release()
            return
        self.is_leader = True
        log.info("%r: became leader", self)
        work = asyncio.create_task(self._lead()) if self.on_started_leading is not None else None
        clean = False
        try:
            last = self.clock.now()
            while True:
                if await self._sleep(c.retry_period, stop):
                    clean = True
                    break
                if await self._attempt():
                    last = self.clock.now()
                    continue
                if self.leader and self.leader != c.identity:
                    log.warning("%r: lease taken by %s; stopping leading", self, self.leader)
                    break
                if self.clock.now() - last >= c.renew_deadline:
                    log.warning("%r: could not renew the lease for %.1fs; stopping leading", self, c.renew_deadline)
                    break
        except asyncio.CancelledError:
            clean = True
            raise
        finally:
            self.is_leader = False
            if work is not None:
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
            if clean and c.release_on_cancel:
                await asyncio.shield(self.release())
            if self.on_stopped_leading is not None:
                try:
                    self.on_stopped_leading()
                except Exception:
                    log.exception("%r: on_stopped_leading failed", self)

    async def _lead(self) -> None:
        assert self.on_started_leading is not None
        try:
            await self.on_started_leading()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%r: on_started_leading failed", self)

