"""Authentication: who sent this request.

Like kube-apiserver's union authenticator, tried in order:

1. an X.509 client certificate verified against the cluster CA during the TLS handshake
   (the user name is the subject's CN, the groups are its O values);
2. ``Authorization: Bearer <token>`` looked up in the static token file, in kube-apiserver's
   ``--token-auth-file`` CSV format: ``token,user,uid,"group1,group2"``.

Every authenticated user also gets the group ``system:authenticated``. A request that proves
nothing is anonymous: ``authenticate`` returns ``None`` and the pipeline answers 401 (except for
the public health and version paths).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from k8py.config import ServerConfig
from k8py.pki import PKI

__all__ = [
    "Authenticator",
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


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    # Not part of hash/eq: a dict is unhashable and two infos for the same user are the same user.
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)


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


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


# --------------------------------------------------------------------------- the authenticator


class Authenticator:
    """Client certificate first, then bearer token; ``None`` for anonymous requests."""

    def __init__(self, config: ServerConfig, pki: PKI | None = None) -> None:
        # pki is accepted for symmetry with the server's set-up and for later authenticators
        # (service account tokens are verified with keys that live next to the CA).
        self.pki = pki
        self.tokens = TokenFile(config.token_file)

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
                return self.tokens.lookup(token)
        return None
