"""The node agent's service-account token manager (kubelet's ``pkg/kubelet/token``).

A projected volume's ``serviceAccountToken`` source is filled with a token the agent asks the
API for (``POST .../serviceaccounts/NAME/token``): for the pod's account, bound to the pod (name
and uid, which is also what the Node authorizer lets a node ask for), with the source's audience
and ``expirationSeconds``. Tokens are cached per (namespace, account, audiences, expiry, bound
pod) and asked for again when 80 % of their life has passed or they are 24 h old (a few seconds
of jitter earlier, as kubelet, so that many pods do not renew at the same instant). When a renewal
fails, the cached token is kept for as long as it is valid. A pod's tokens are forgotten when
the pod is gone.

The decisions (:func:`requires_refresh`, :func:`refresh_at`) are pure; the I/O is the client call.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from k8py.api.corev1 import parse_time
from k8py.client.api import Client

__all__ = ["MAX_JITTER", "MAX_TTL", "CachedToken", "TokenManager", "refresh_at", "requires_refresh"]

log = logging.getLogger("k8py.kubelet")

MAX_TTL = 24 * 3600.0  # kubelet's maxTTL: a token older than this is renewed whatever its expiry
MAX_JITTER = 10.0  # kubelet's maxJitter
REFRESH_FRACTION = 0.2  # renewed within the last 20 % of its life
SERVICE_ACCOUNT = ("v1", "ServiceAccount")


@dataclass(frozen=True, slots=True)
class CachedToken:
    token: str
    expires: float  # status.expirationTimestamp, seconds since the epoch
    seconds: int  # spec.expirationSeconds as the API answered it


def refresh_at(t: CachedToken, jitter: float = 0.0) -> float:
    """When ``t`` should be renewed: 24 h after it was issued, or 80 % into its life, whichever
    comes first, ``jitter`` seconds early."""
    issued = t.expires - t.seconds
    return min(issued + MAX_TTL, t.expires - t.seconds * REFRESH_FRACTION) - jitter


def requires_refresh(t: CachedToken, now: float, jitter: float = 0.0) -> bool:
    return now >= refresh_at(t, jitter)


Key = tuple[str, str, tuple[str, ...], int, str, str]


class TokenManager:
    """Tokens for the pods of one node (see the module docstring)."""

    def __init__(self, client: Client, *, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock
        self._cache: dict[Key, CachedToken] = {}

    async def get(self, namespace: str, account: str, audiences: Sequence[str], expiration_seconds: int,
                  pod_name: str, pod_uid: str) -> str:
        """The token for this source of this pod, from the cache or asked for now. Raises the
        client's error when the API refuses and no cached token is still valid."""
        key: Key = (namespace, account, tuple(audiences), expiration_seconds, pod_name, pod_uid)
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and not requires_refresh(cached, now, random.random() * MAX_JITTER):
            return cached.token
        spec: dict[str, object] = {"expirationSeconds": expiration_seconds,
                                   "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name,
                                                      "uid": pod_uid}}
        if audiences:
            spec["audiences"] = list(audiences)
        try:
            tr = await self.client.create(SERVICE_ACCOUNT, {"apiVersion": "authentication.k8s.io/v1",
                                                            "kind": "TokenRequest", "spec": spec},
                                          namespace, subresource="token", name=account)
        except Exception:
            if cached is not None and now < cached.expires:
                log.warning("could not renew the token of service account %s/%s for pod %s; keeping the "
                            "current one until it expires", namespace, account, pod_name)
                return cached.token
            raise
        status = tr.get("status") or {}
        exp = parse_time(status.get("expirationTimestamp"))
        token = str(status.get("token") or "")
        seconds = int((tr.get("spec") or {}).get("expirationSeconds") or expiration_seconds)
        if not token or exp is None:
            raise ValueError(f"the token request for service account {namespace}/{account} was answered without "
                             "a token or expiry")
        self._cache[key] = CachedToken(token, exp.timestamp(), seconds)
        return token

    def next_refresh(self, pod_uid: str) -> float | None:
        """When the earliest of this pod's tokens is due for renewal (None: it has none)."""
        times = [refresh_at(t) for k, t in self._cache.items() if k[5] == pod_uid]
        return min(times) if times else None

    def forget(self, pod_uid: str) -> None:
        """The pod is gone (kubelet's ``DeleteServiceAccountToken``)."""
        for k in [k for k in self._cache if k[5] == pod_uid]:
            del self._cache[k]
