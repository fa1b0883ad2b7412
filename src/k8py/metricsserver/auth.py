"""Who a request to metrics-server is, and whether it may (k8s.io/apiserver's delegated
authentication and authorization, as metrics-server runs them).

**Authentication** follows the ``kube-system/extension-apiserver-authentication`` ConfigMap that
the API server publishes (:class:`AuthConfig`), in kube's order:

1. *request header* (the aggregator's front proxy): a client certificate signed by
   ``requestheader-client-ca-file`` whose common name is in ``requestheader-allowed-names`` (any
   name when the list is empty) makes the user the first ``requestheader-username-headers``
   value (``X-Remote-User``), its groups every ``requestheader-group-headers`` value and its extra
   the ``requestheader-extra-headers-prefix`` headers (the key unescaped and lower-cased). A
   front-proxy certificate without a user header authenticates nobody;
2. *client certificate* signed by ``client-ca-file``: user the common name, groups the
   organizations;
3. a *bearer token*, asked of the API server with a TokenReview (answers cached 10 s);
4. otherwise *anonymous* (``system:anonymous``, group ``system:unauthenticated``). A certificate
   that none of these accepts is refused (401), as kube's union fails on an error.

Authenticated users get the group ``system:authenticated``.

**Authorization**: ``/healthz``, ``/readyz`` and ``/livez`` are always allowed, and so is the
group ``system:masters`` (kube's ``DelegatingAuthorizationOptions`` defaults); anything else is
a SubjectAccessReview to the API server, whose answers are cached 10 s (allowed and denied, as
metrics-server's ``--authorization-webhook-cache-*-ttl``).
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

__all__ = ["AuthConfig", "Authorizer", "RequestAttributes", "UserInfo", "authenticate"]

log = logging.getLogger(__name__)

CONFIGMAP = "extension-apiserver-authentication"
ALWAYS_ALLOW_PATHS = ("/healthz", "/readyz", "/livez")
ALWAYS_ALLOW_GROUPS = ("system:masters",)
CACHE_TTL = 10.0


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))


def _certs(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode()) if pem.strip() else []


def _json_list(v: str | None) -> tuple[str, ...]:
    if not v:
        return ()
    try:
        out = json.loads(v)
    except ValueError:
        return ()
    return tuple(str(x) for x in out) if isinstance(out, list) else ()


@dataclass(frozen=True)
class AuthConfig:
    """The ConfigMap's settings; an empty one (no ConfigMap yet) accepts no certificate."""

    client_ca: str = ""
    requestheader_ca: str = ""
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ()
    uid_headers: tuple[str, ...] = ()
    group_headers: tuple[str, ...] = ()
    extra_prefixes: tuple[str, ...] = ()

    @classmethod
    def from_configmap(cls, cm: Mapping[str, Any] | None) -> AuthConfig:
        data = (cm or {}).get("data") or {}
        return cls(client_ca=data.get("client-ca-file", ""), requestheader_ca=data.get("requestheader-client-ca-file", ""),
                   allowed_names=_json_list(data.get("requestheader-allowed-names")),
                   username_headers=_json_list(data.get("requestheader-username-headers")),
                   uid_headers=_json_list(data.get("requestheader-uid-headers")),
                   group_headers=_json_list(data.get("requestheader-group-headers")),
                   extra_prefixes=_json_list(data.get("requestheader-extra-headers-prefix")))

    def client_cas(self) -> list[x509.Certificate]:
        return _certs(self.client_ca)

    def requestheader_cas(self) -> list[x509.Certificate]:
        return _certs(self.requestheader_ca)

    def ssl_context(self, cert_file: str, key_file: str) -> ssl.SSLContext:
        """The serving context: client certificates asked for, optional, verified against both CAs."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert_file, key_file)
        ctx.set_alpn_protocols(["http/1.1"])
        pems = "\n".join(p for p in (self.client_ca, self.requestheader_ca) if p.strip())
        if pems:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(cadata=pems)
        return ctx


def _issued_by(cert: x509.Certificate, cas: Sequence[x509.Certificate]) -> bool:
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def _names(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


class Unauthorized(Exception):
    """The request carries credentials that prove nothing (401)."""


def _header_values(headers: Any, names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        out.extend(v for v in headers.getall(n, []) if v)
    return out


def authenticate_certificate(cfg: AuthConfig, peer_der: bytes | None, headers: Any) -> UserInfo | None:
    """Steps 1 and 2: the user a client certificate proves (None: no certificate, or a front
    proxy without a user header); :class:`Unauthorized` for a certificate neither CA accepts."""
    if not peer_der:
        return None
    cert = x509.load_der_x509_certificate(peer_der)
    cn = next(iter(_names(cert.subject, NameOID.COMMON_NAME)), "")
    if _issued_by(cert, cfg.requestheader_cas()):
        if cfg.allowed_names and cn not in cfg.allowed_names:
            raise Unauthorized(f"client certificate CN {cn!r} is not in requestheader-allowed-names")
        users = _header_values(headers, cfg.username_headers)
        if users:
            extra: dict[str, list[str]] = {}
            for h in headers:
                for prefix in cfg.extra_prefixes:
                    if h.lower().startswith(prefix.lower()):
                        key = unquote(h[len(prefix):]).lower()
                        extra.setdefault(key, []).extend(headers.getall(h, []))
            uids = _header_values(headers, cfg.uid_headers)
            return UserInfo(users[0], tuple(_header_values(headers, cfg.group_headers)), uids[0] if uids else "",
                            {k: tuple(v) for k, v in extra.items()})
        # no user: kube's request-header authenticator passes, and the x509 one must accept it
    if _issued_by(cert, cfg.client_cas()):
        return UserInfo(cn, tuple(_names(cert.subject, NameOID.ORGANIZATION_NAME)))
    raise Unauthorized("the client certificate is not signed by a CA this server trusts for that")


TokenReviewer = Callable[[str], Awaitable[UserInfo | None]]


class TokenCache:
    """TokenReview answers for 10 s (metrics-server's --authentication-token-webhook-cache-ttl)."""

    def __init__(self, review: TokenReviewer, ttl: float = CACHE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.review = review
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, UserInfo | None]] = {}

    async def __call__(self, token: str) -> UserInfo | None:
        now = self.clock()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = await self.review(token)
        if len(self._cache) > 1000:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[token] = (now + self.ttl, user)
        return user


def with_authenticated_group(u: UserInfo) -> UserInfo:
    if u.name == "system:anonymous" or "system:authenticated" in u.groups:
        return u
    return UserInfo(u.name, (*u.groups, "system:authenticated"), u.uid, u.extra)


async def authenticate(cfg: AuthConfig, peer_der: bytes | None, headers: Any,
                       tokens: Callable[[str], Awaitable[UserInfo | None]] | None) -> UserInfo:
    """The request's user (anonymous when it brings no credentials); :class:`Unauthorized` when
    it brings ones that prove nobody."""
    user = authenticate_certificate(cfg, peer_der, headers)
    if user is not None:
        return with_authenticated_group(user)
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        if tokens is None:
            raise Unauthorized("bearer tokens are not accepted")
        user = await tokens(auth[7:].strip())
        if user is None:
            raise Unauthorized("the token was not accepted by the API server")
        return with_authenticated_group(user)
    if peer_der:
        raise Unauthorized("the client certificate authenticates nobody")
    return ANONYMOUS


# --------------------------------------------------------------------------- authorization


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    verb: str
    path: str
    is_resource_request: bool
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""  # metrics.k8s.io has none

    def review_spec(self, user: UserInfo) -> dict[str, Any]:
        spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups)}
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}
        if self.is_resource_request:
            ra = {"verb": self.verb, "group": self.api_group, "version": self.api_version, "resource": self.resource}
            if self.namespace:
                ra["namespace"] = self.namespace
            if self.name:
                ra["name"] = self.name
            spec["resourceAttributes"] = ra
        else:
            spec["nonResourceAttributes"] = {"path": self.path, "verb": self.verb}
        return spec



Reviewer = Callable[[dict[str, Any]], Awaitable[tuple[bool, str]]]


class Authorizer:
    """Delegated authorization with kube's always-allowed paths and groups, and a decision cache."""

    def __init__(self, review: Reviewer, ttl: float = CACHE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.review = review
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, bool, str]] = {}

    async def authorize(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        """(allowed, reason)."""
        if not attrs.is_resource_request and attrs.path in ALWAYS_ALLOW_PATHS:
            return True, ""
        if any(g in ALWAYS_ALLOW_GROUPS for g in user.groups):
            return True, ""
        spec = attrs.review_spec(user)
        key = json.dumps(spec, sort_keys=True)
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        allowed, reason = await self.review(spec)
        if len(self._cache) > 10000:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[key] = (now + self.ttl, allowed, reason)
        return allowed, reason
