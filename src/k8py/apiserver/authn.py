"""Authentication: who sent this request.

Like kube-apiserver's union authenticator, tried in order:

1. an X.509 client certificate verified against the cluster CA during the TLS handshake
   (the user name is the subject's CN, the groups are its O values);
2. ``Authorization: Bearer <token>`` looked up in the static token file, in kube-apiserver's
   ``--token-auth-file`` CSV format: ``token,user,uid,"group1,group2"``;
3. a bootstrap token (``<6 chars>.<16 chars>``, kube's ``--enable-bootstrap-token-auth``): a
   Secret ``kube-system/bootstrap-token-<id>`` of type ``bootstrap.kubernetes.io/token``, read
   from the store through :class:`~k8py.apiserver.objects.Objects` and kept current by a watch
   (:meth:`Authenticator.watch_bootstrap_tokens`), as kube's authenticator reads a Secret lister.
   The user is ``system:bootstrap:<id>`` in ``system:bootstrappers`` and the Secret's
   ``auth-extra-groups``; an expired token, one without ``usage-bootstrap-authentication: true``
   or one being deleted proves nothing.

4. a service-account JWT (``apiserver/serviceaccounts.py``), in
   :meth:`Authenticator.authenticate_service_account` because it reads the objects the token is bound to.

Every authenticated user also gets the group ``system:authenticated``. A request that proves
nothing is anonymous: ``authenticate`` returns ``None`` and the pipeline answers 401 (except for
the public health and version paths).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import datetime as dt
import hashlib
import hmac
import io
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from k8py.config import ServerConfig
from k8py.pki import PKI

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects
    from k8py.apiserver.serviceaccounts import ServiceAccountTokens

__all__ = [
    "Authenticator",
    "BootstrapTokens",
    "TokenFile",
    "UserInfo",
    "append_token",
    "ensure_token_file",
    "new_token",
    "parse_token_file",
    "user_from_peercert",
]

log = logging.getLogger(__name__)

AUTHENTICATED_GROUP = "system:authenticated"
# what authentication wants in the request's audit event (kube's stale-token, legacy-token)
AUTHN_AUDIT_ANNOTATIONS = web.RequestKey("k8py.authn_audit_annotations", dict)


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    # Not part of hash/eq: a dict is unhashable and two infos for the same user are the same user.
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    def to_api(self) -> dict[str, Any]:
        """As the API writes a user (``authentication.k8s.io/v1`` UserInfo: in TokenReviews,
        SelfSubjectReviews, audit events, AdmissionReviews; a CSR's spec has the same fields),
        empty fields left out."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in self.extra.items()}
        return out


def _with_authenticated(groups: tuple[str, ...]) -> tuple[str, ...]:
    return groups if AUTHENTICATED_GROUP in groups else (*groups, AUTHENTICATED_GROUP)


# --------------------------------------------------------------------------- client certificates


def user_from_peercert(peercert: Mapping[str, Any] | None) -> UserInfo | None:
    """The user a verified peer certificate (as ``SSLObject.getpeercert()`` returns it) names.

    The TLS layer already verified the chain to the cluster CA (``CERT_OPTIONAL`` fails the
    handshake on an untrusted certificate), so an empty dict means no certificate was sent.
    """
    if not peercert:
        return None
    cn = ""
    orgs: list[str] = []
    # subject is a tuple of RDNs, each a tuple of (attribute, value) pairs.
    for rdn in peercert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                cn = value
            elif attr == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return UserInfo(name=cn, groups=_with_authenticated(tuple(orgs)))


# --------------------------------------------------------------------------- static tokens


@dataclass(frozen=True, slots=True)
class _TokenEntry:
    digest: bytes
    user: UserInfo


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def parse_token_file(text: str, source: str = "token file") -> dict[bytes, _TokenEntry]:
    """Parse kube's static token CSV into entries keyed by the SHA-256 of the token.

    Lines: ``token,user,uid[,"group1,group2"]``. Blank lines and lines starting with ``#`` are
    skipped; a line with fewer than three fields or an empty token or user is skipped with a
    warning (one bad line must not lock everyone out). A token listed twice: the later line wins,
    as in kube-apiserver.
    """
    entries: dict[bytes, _TokenEntry] = {}
    lines = text.splitlines()
    for lineno, record in enumerate(csv.reader(lines), start=1):
        if not record or not "".join(record).strip() or record[0].lstrip().startswith("#"):
            continue
        if len(record) < 3:
            log.warning("%s line %d: expected token,user,uid[,groups]; skipping it", source, lineno)
            continue
        token, name, uid = record[0].strip(), record[1].strip(), record[2].strip()
        if not token or not name:
            log.warning("%s line %d: empty token or user name; skipping it", source, lineno)
            continue
        groups: tuple[str, ...] = ()
        if len(record) >= 4:
            groups = tuple(g.strip() for g in record[3].split(",") if g.strip())
        d = _digest(token)
        if d in entries:
            log.warning("%s line %d: duplicate token; the later line wins", source, lineno)
        entries[d] = _TokenEntry(d, UserInfo(name=name, uid=uid, groups=_with_authenticated(groups)))
    return entries


class TokenFile:
    """The static token file, re-read whenever it changes on disk.

    Freshness is checked with one ``stat`` per bearer-token request: cheap, and a token that
    ``k8py token create`` appended works on the very next request without a restart.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None  # (inode, size, mtime_ns)
        self._entries: dict[bytes, _TokenEntry] = {}

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._stamp != (0, 0, 0):
                log.warning("token file %s is missing; bearer tokens are refused", self.path)
            self._stamp, self._entries = (0, 0, 0), {}
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        try:
            with open(self.path, encoding="utf-8", errors="surrogateescape", newline="") as f:
                text = f.read()
        except OSError as e:
            # Keep the tokens we had: a transient read error must not lock users out.
            log.warning("cannot read token file %s: %s", self.path, e)
            return
        self._entries = parse_token_file(text, self.path)
        self._stamp = stamp
        log.info("loaded %d token(s) from %s", len(self._entries), self.path)

    def lookup(self, token: str) -> UserInfo | None:
        self._refresh()
        d = _digest(token)
        # The dict lookup is keyed by a hash of the token, so its timing tells an attacker
        # nothing about the token itself; compare_digest keeps the final check constant-time.
        entry = self._entries.get(d)
        if entry is None or not hmac.compare_digest(entry.digest, d):
            return None
        return entry.user


def ensure_token_file(path: str) -> None:
    """Create the token file (empty, 0600) if it does not exist; make an existing one 0600."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def new_token() -> str:
    """A fresh random token: 32 bytes, hex (no characters that need quoting in CSV or a shell)."""
    return secrets.token_hex(32)


def append_token(path: str, user: str, uid: str, groups: tuple[str, ...] = (), token: str | None = None) -> str:
    """Append a token line to the token file (created 0600 if needed) and return the token.

    One ``write`` on an ``O_APPEND`` descriptor, so concurrent appends do not interleave and a
    running server (which re-reads the file when it changes) sees the whole line or none of it.
    """
    token = token or new_token()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([token, user, uid, ",".join(groups)])
    line = buf.getvalue()
    ensure_token_file(path)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
    try:
        # Start on a new line if someone left the file without a final newline.
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return token


# --------------------------------------------------------------------------- bootstrap tokens

BOOTSTRAP_TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
BOOTSTRAP_SECRET_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_SECRET_PREFIX = "bootstrap-token-"
BOOTSTRAP_NAMESPACE = "kube-system"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
# kube's bootstrap group pattern: extra groups must stay under system:bootstrappers:
BOOTSTRAP_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class _BootstrapEntry:
    secret: str
    user: UserInfo
    expiration: dt.datetime | None


def _secret_data(secret: Mapping[str, Any], key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return ""
    plain = (secret.get("stringData") or {}).get(key)
    return plain if isinstance(plain, str) else ""


def bootstrap_entry(secret: Mapping[str, Any]) -> tuple[str, _BootstrapEntry] | None:
    """The token id and what it authenticates as, for a Secret that is a usable bootstrap token
    (kube's ``bootstrap.go`` checks); None for any other Secret."""
    meta = secret.get("metadata") or {}
    name = str(meta.get("name") or "")
    if secret.get("type") != BOOTSTRAP_SECRET_TYPE or not name.startswith(BOOTSTRAP_SECRET_PREFIX):
        return None
    if meta.get("deletionTimestamp"):
        return None
    token_id = _secret_data(secret, "token-id")
    token_secret = _secret_data(secret, "token-secret")
    if name != BOOTSTRAP_SECRET_PREFIX + token_id or not BOOTSTRAP_TOKEN_RE.match(f"{token_id}.{token_secret}"):
        log.warning("bootstrap token secret %s is malformed (token-id/token-secret); ignoring it", name)
        return None
    if _secret_data(secret, "usage-bootstrap-authentication") != "true":
        return None
    expiration: dt.datetime | None = None
    exp = _secret_data(secret, "expiration")
    if exp:
        try:
            expiration = dt.datetime.fromisoformat(exp)
        except ValueError:
            log.warning("bootstrap token %s has an unparsable expiration %r; ignoring it", token_id, exp)
            return None
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=dt.UTC)
    groups = [BOOTSTRAPPERS_GROUP]
    for g in _secret_data(secret, "auth-extra-groups").split(","):
        g = g.strip()
        if not g:
            continue
        if not BOOTSTRAP_GROUP_RE.match(g):
            log.warning("bootstrap token %s: extra group %r is not under system:bootstrappers:; ignoring the "
                        "token", token_id, g)
            return None
        groups.append(g)
    user = UserInfo(name=BOOTSTRAP_USER_PREFIX + token_id, groups=_with_authenticated(tuple(dict.fromkeys(groups))))
    return token_id, _BootstrapEntry(token_secret, user, expiration)


class BootstrapTokens:
    """Bootstrap token Secrets of ``kube-system``, indexed by token id, kept current by a store watch."""

    def __init__(self) -> None:
        self._by_id: dict[str, _BootstrapEntry] = {}
        self._by_key: dict[str, str] = {}  # store key -> token id
        self.synced = asyncio.Event()

    def put(self, key: str, secret: Mapping[str, Any]) -> None:
        self.remove(key)
        got = bootstrap_entry(secret)
        if got is not None:
            token_id, entry = got
            self._by_id[token_id] = entry
            self._by_key[key] = token_id

    def remove(self, key: str) -> None:
        token_id = self._by_key.pop(key, None)
        if token_id is not None:
            self._by_id.pop(token_id, None)

    def lookup(self, token: str, now: dt.datetime | None = None) -> UserInfo | None:
        m = BOOTSTRAP_TOKEN_RE.match(token)
        if m is None:
            return None
        entry = self._by_id.get(m.group(1))
        if entry is None or not hmac.compare_digest(entry.secret.encode(), m.group(2).encode()):
            return None
        if entry.expiration is not None and (now or dt.datetime.now(dt.UTC)) >= entry.expiration:
            log.info("bootstrap token %s has expired", m.group(1))
            return None
        return entry.user

    def _apply(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.remove(key)
        else:
            self.put(key, orjson.loads(value))

    def _reset(self) -> None:
        self._by_id.clear()
        self._by_key.clear()

    async def run(self, objects: Objects, registry: Registry) -> None:
        """Mirror the Secrets of kube-system (:meth:`Objects.mirror`)."""
        kind = registry.by_resource("", "v1", "secrets")
        assert kind is not None
        await objects.mirror(kind.key_prefix(BOOTSTRAP_NAMESPACE), reset=self._reset, apply=self._apply,
                             synced=self.synced.set, what="bootstrap token")


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


# --------------------------------------------------------------------------- the authenticator


class Authenticator:
    """Client certificate first, then bearer token (bootstrap token, static token file);
    ``None`` for anonymous requests."""

    def __init__(self, config: ServerConfig, pki: PKI | None = None) -> None:
        # pki is accepted for symmetry with the server's set-up and for later authenticators
        # (service account tokens are verified with keys that live next to the CA).
        self.pki = pki
        self.tokens = TokenFile(config.token_file)
        self.bootstrap = BootstrapTokens()
        # service-account JWTs (apiserver/serviceaccounts.py), set by the server that issues them
        self.service_accounts: ServiceAccountTokens | None = None

    def use_service_account_tokens(self, sa: ServiceAccountTokens) -> None:
        self.service_accounts = sa

    def watch_bootstrap_tokens(self, objects: Objects, registry: Registry) -> asyncio.Task[None]:
        """Start keeping the bootstrap tokens current from the store (a task for the server to stop)."""
        return asyncio.get_running_loop().create_task(self.bootstrap.run(objects, registry),
                                                      name="bootstrap-tokens")

    def authenticate(self, request: web.Request) -> UserInfo | None:
        transport = request.transport
        if transport is not None:
            user = user_from_peercert(transport.get_extra_info("peercert"))
            if user is not None:
                return user
        header = request.headers.get("Authorization")
        if header:
            token = bearer_token(header)
            if token is not None:
                return self.bootstrap.lookup(token) or self.tokens.lookup(token)
        return None

    async def authenticate_service_account(self, request: web.Request) -> UserInfo | None:
        """A service-account JWT bearer token (asked after :meth:`authenticate` found nothing: it
        reads the objects the token is bound to, so it is a coroutine)."""
        if self.service_accounts is None:
            return None
        token = bearer_token(request.headers.get("Authorization") or "")
        if token is None:
            return None
        from k8py.satoken import TokenError

        try:
            got = await self.service_accounts.authenticate(token)
        except TokenError as e:
            log.info("Unable to authenticate the request: %s", e)
            return None
        if got is None:
            return None
        if got.audit_annotations:  # the request's audit event takes them (app.py)
            request[AUTHN_AUDIT_ANNOTATIONS] = got.audit_annotations
        return got.user

    async def authenticate_token(self, token: str, audiences: tuple[str, ...] = ()) -> tuple[
            UserInfo | None, tuple[str, ...], str]:
        """A bearer token as TokenReview asks about it: (user, audiences, error). The static and
        bootstrap tokens know no audience: they count for the API's own (kube's
        ``WrapAudienceAgnosticToken``)."""
        from k8py.satoken import TokenError

        api_auds = self.service_accounts.api_audiences if self.service_accounts is not None else ()
        user = self.bootstrap.lookup(token) or self.tokens.lookup(token)
        if user is not None:
            auds = tuple(a for a in audiences if a in api_auds) if audiences else api_auds
            if audiences and not auds:
                return None, (), ""
            return user, auds, ""
        if self.service_accounts is None:
            return None, (), ""
        try:
            got = await self.service_accounts.authenticate(token, audiences)
        except TokenError as e:
            return None, (), str(e)
        return (got.user, got.audiences, "") if got is not None else (None, (), "")
