"""The joined node agent's certificate manager, as kubelet's (``k8s.io/client-go/util/certificate``):
its client certificate and its serving certificate are renewed, through the
CertificateSigningRequest API, when 70 to 90 % of their life has passed (a random point in that
window, chosen once per certificate, so that many nodes do not all ask at once).

The renewal itself (keys, CSRs, ``cryptography``) runs in the short-lived child process that
made the credentials in the first place (``python -m k8py.cli.agent credentials``), so the
agent never loads ``cryptography``; it reports each certificate's ``[notBefore, notAfter]``.
After a renewal the agent's API client loads the new client certificate into its live TLS
context (new connections present it) and the kubelet API's TLS context presents the new serving
certificate to new handshakes (it reloads replaced files, ``k8py.tlsfiles``): no pod and no
process restarts. A failed renewal is tried again with a doubling delay (at most 5 minutes).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

__all__ = ["CertificateManager", "rotation_deadline"]

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MAX = 2.0, 300.0

Lifetimes = Mapping[str, Sequence[float]]  # role -> [notBefore, notAfter], epoch seconds


def rotation_deadline(not_before: float, not_after: float, r: float) -> float:
    """kubelet's ``nextRotationDeadline``: notBefore + (70 % + r * 20 %) of the life, r in [0, 1)."""
    return not_before + (not_after - not_before) * (0.7 + 0.2 * r)


class CertificateManager:
    """Renews the certificates of ``lifetimes`` at their deadlines, each on its own (kubelet has a
    manager per certificate): ``rotate(roles)`` makes new ones for the roles due and returns the
    lifetimes (or None when it failed); ``on_rotated()`` is called after each success."""

    def __init__(self, lifetimes: Lifetimes, rotate: Callable[[list[str]], Awaitable[Lifetimes | None]],
                 on_rotated: Callable[[], None], *, rand: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.time) -> None:
        self.rotate = rotate
        self.on_rotated = on_rotated
        self.rand = rand
        self.clock = clock
        self.deadlines: dict[str, float] = {}
        self.rotations = 0
        self._set(lifetimes)

    def _set(self, lifetimes: Lifetimes, roles: Sequence[str] | None = None) -> None:
        # the jitter is drawn once per certificate, as kubelet does when it gets one
        for role in lifetimes if roles is None else roles:
            nb, na = lifetimes[role]
            at = self.deadlines[role] = rotation_deadline(float(nb), float(na), self.rand())
            log.info("certificate manager: the %s certificate is renewed at %s", role,
                     time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)))

    def due(self) -> list[str]:
        now = self.clock()
        return sorted(role for role, at in self.deadlines.items() if at <= now)

    def next_wait(self) -> float:
        return max(0.0, min(self.deadlines.values()) - self.clock()) if self.deadlines else float("inf")

    async def run(self, stop: asyncio.Event) -> None:
        retry = RETRY_FIRST
        while not stop.is_set():
            if await _stopped(stop, self.next_wait()):
                return
            roles = self.due()
            if not roles:  # woken a little early (timer granularity)
                continue
            try:
                got = await self.rotate(roles)
            except Exception as e:  # noqa: BLE001 - keep the node running on its current certificates; retry
                log.warning("certificate manager: renewal failed: %s", e)
                got = None
            if got is None:
                if await _stopped(stop, retry):
                    return
                retry = min(RETRY_MAX, retry * 2)
                continue
            retry = RETRY_FIRST
            self.rotations += 1
            self._set(got, roles)
            self.on_rotated()


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop``; True when stopped."""
    if seconds == float("inf"):
        await stop.wait()
        return True
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        return False
    return True
