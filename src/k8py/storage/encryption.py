"""Encryption at rest, as kube-apiserver's ``--encryption-provider-config``.

An ``EncryptionConfiguration`` (``apiserver.config.k8s.io/v1``) lists, per group of resources,
providers in order: ``aescbc``, ``aesgcm``, ``secretbox`` (each with named keys) and
``identity`` (plain). kms providers need a KMS plugin and are refused with a clear error.

Values are stored in kube's format ``k8s:enc:<provider>:v1:<key name>:<ciphertext>``:

- aescbc: AES-CBC, PKCS#7 padding, a random 16-byte IV before the ciphertext;
- aesgcm: AES-GCM, a random 12-byte nonce before the ciphertext and tag, with the store key
  as the additional authenticated data (a value copied to another key does not open);
- secretbox: XSalsa20-Poly1305 (NaCl's secretbox), a random 24-byte nonce first.

The first key of the first provider writes; every key of every provider reads the values that
carry its prefix, and ``identity`` reads values without one. A value read with any key other
than the writing one is *stale*: the next write of the object re-encrypts it (kube's GuaranteedUpdate
does the same), which is how keys are rotated: put the new key first, re-write the objects
(``k8py secrets-encrypt reencrypt``), then drop the old key.

Resources are matched as kube's: ``secrets``, ``deployments.apps``, ``*.apps`` (a group),
``*.`` (the core group), ``*.*`` (all); an exact name wins over its group's wildcard, which wins
over ``*.*``; a resource named in two entries gets the providers of both, in order. Resources
not listed are stored as they are.

:class:`EncryptedStore` wraps a :class:`~k8py.storage.interface.Store`: it seals values on their
way in and opens them on their way out (get, list, delete, watch events, the ``current`` value
of a conflict), so every reader of the store, including the in-process mirrors of Secrets, sees
plain values. A value that cannot be opened (its key is gone, or it was tampered with) comes out
as an :class:`UnreadableValue` naming the reason, so that one such object is reported on its
own (a GET is kube's 500 "corrupt object"; a LIST leaves it out with a warning) and never fails
the whole list.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets as _secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from k8py.api.configfile import ConfigFileError, Located, load_located
from k8py.storage.interface import (
    ConflictError,
    DeleteResult,
    Event,
    KeyExistsError,
    KeyValue,
    ListResult,
    Store,
    Watch,
    WatchResponse,
)

__all__ = [
    "API_VERSION",
    "ENC_PREFIX",
    "ConfigFileError",
    "DecryptError",
    "EncryptedStore",
    "EncryptionConfig",
    "KeyTransformer",
    "StaleValue",
    "UnreadableValue",
    "default_config_document",
    "ensure_default_config",
    "group_resource",
    "load_config",
    "new_key",
    "parse_config",
    "summary",
    "write_config_file",
]

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
ENC_PREFIX = b"k8s:enc:"
AES_KEY_SIZES = (16, 24, 32)
SECRETBOX_KEY_SIZES = (32,)
PROVIDERS = ("kms", "aesgcm", "aescbc", "secretbox", "identity")
WHAT = "--encryption-provider-config"


@dataclass(frozen=True, slots=True)
class UnreadableValue(KeyValue):
    """A stored value that could not be decrypted; ``value`` is the stored (encrypted) bytes."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class StaleValue(KeyValue):
    """A decrypted value that was not written with the current writing key: rewrite it."""


class DecryptError(Exception):
    pass


# --------------------------------------------------------------------------- one key of a provider


class KeyTransformer:
    """One named key of one provider (kube's PrefixTransformer): seals with its prefix, opens
    values that carry it."""

    __slots__ = ("_aead", "_aes", "_box", "kind", "name", "prefix")

    def __init__(self, kind: str, name: str, key: bytes) -> None:
        self.kind = kind
        self.name = name
        self.prefix = b"" if kind == "identity" else f"k8s:enc:{kind}:v1:{name}:".encode()
        self._aead = AESGCM(key) if kind == "aesgcm" else None
        self._aes = algorithms.AES(key) if kind == "aescbc" else None  # made once: it costs more than a seal
        self._box: Any = None
        if kind == "secretbox":
            from nacl.secret import SecretBox

            self._box = SecretBox(key)

    @property
    def label(self) -> str:
        return "identity" if self.kind == "identity" else f"{self.kind} key {self.name!r}"

    def seal(self, data: bytes, aad: bytes) -> bytes:
        kind = self.kind
        if kind == "identity":
            return data
        if kind == "aescbc":
            iv = os.urandom(16)
            n = 16 - len(data) % 16  # PKCS#7: n bytes of value n, a whole block when already aligned
            enc = Cipher(self._aes, modes.CBC(iv)).encryptor()  # type: ignore[arg-type]
            return self.prefix + iv + enc.update(data + bytes((n,)) * n) + enc.finalize()
        if kind == "aesgcm":
            assert self._aead is not None
            nonce = os.urandom(12)
            return self.prefix + nonce + self._aead.encrypt(nonce, data, aad)
        return self.prefix + bytes(self._box.encrypt(data))  # secretbox: nonce + box

    def open(self, body: bytes, aad: bytes) -> bytes:
        """Decrypt ``body`` (the value after this key's prefix); raises DecryptError."""
        kind = self.kind
        try:
            if kind == "aescbc":
                if len(body) < 32 or len(body) % 16:
                    raise DecryptError("the data is not a whole number of AES blocks")
                dec = Cipher(self._aes, modes.CBC(body[:16])).decryptor()  # type: ignore[arg-type]
                padded = dec.update(body[16:]) + dec.finalize()
                n = padded[-1]
                if not 1 <= n <= 16 or padded[-n:] != bytes((n,)) * n:
                    raise DecryptError("invalid padding")
                return padded[:-n]
            if kind == "aesgcm":
                assert self._aead is not None
                if len(body) < 12 + 16:
                    raise DecryptError("the data is too short for AES-GCM")
                return self._aead.decrypt(body[:12], body[12:], aad)
            if kind == "secretbox":
                return bytes(self._box.decrypt(body))
        except DecryptError:
            raise
        except Exception as e:  # noqa: BLE001 - every library failure means "cannot decrypt with this key"
            raise DecryptError(f"{type(e).__name__} {e}".strip()) from None
        return body


class Chain:
    """The providers of one resource: the first key writes, all read (kube's prefix transformers)."""

    __slots__ = ("readers", "writer")

    def __init__(self, keys: Sequence[KeyTransformer]) -> None:
        self.writer = keys[0]
        self.readers = tuple(keys)

    def seal(self, data: bytes, aad: bytes) -> bytes:
        return self.writer.seal(data, aad)

    def open(self, data: bytes, aad: bytes) -> tuple[bytes, bool]:
        """(plain value, stale); raises DecryptError naming the key that is missing or failed."""
        encrypted = data.startswith(ENC_PREFIX)
        for i, t in enumerate(self.readers):
            if t.kind == "identity":
                if encrypted:
                    continue
                return data, i != 0
            if data.startswith(t.prefix):
                try:
                    return t.open(data[len(t.prefix):], aad), i != 0
                except DecryptError as e:
                    raise DecryptError(f"cannot decrypt with {t.label}: {e}") from None
        if not encrypted:
            raise DecryptError("the value is not encrypted and the providers do not include identity")
        raise _no_key_error(data)


def _no_key_error(data: bytes) -> DecryptError:
    head = data[len(ENC_PREFIX):len(ENC_PREFIX) + 300].split(b":", 3)
    if len(head) >= 3:
        kind = head[0].decode("ascii", "replace")
        name = head[2].decode("ascii", "replace")
        return DecryptError(f"no matching prefix found: the value was written with {kind} key {name!r}, "
                            "which the encryption configuration does not have")
    return DecryptError("no matching prefix found")


# --------------------------------------------------------------------------- the configuration


@dataclass(frozen=True, slots=True)
class EncryptionConfig:
    file: str
    document: dict[str, Any]  # as read (the CLI rewrites it when it rotates keys)
    overrides: dict[tuple[str, str], Chain]  # (group, resource or "*"), ("*", "*")

    def chain_for(self, group: str, resource: str) -> Chain | None:
        o = self.overrides
        return o.get((group, resource)) or o.get((group, "*")) or o.get(("*", "*"))

    def describe(self) -> list[dict[str, Any]]:
        """Each configured resource pattern with its providers' keys, writing key first."""
        out = []
        for (group, resource), chain in self.overrides.items():
            pattern = f"{resource}.{group}" if group else (resource if resource != "*" else "*.")
            out.append({"resources": pattern,
                        "keys": [{"type": t.kind, "name": t.name, "active": t is chain.writer}
                                 for t in chain.readers]})
        return out


def parse_group_resource(text: str) -> tuple[str, str]:
    """kube's schema.ParseGroupResource: ``deployments.apps`` -> ("apps", "deployments")."""
    resource, _, group = text.partition(".")
    return group, resource


def _keys(loc: Located, path: tuple[Any, ...], spec: Any, kind: str, sizes: tuple[int, ...]) -> list[KeyTransformer]:
    if not isinstance(spec, dict):
        raise loc.error(path, f"{kind} must be an object with keys")
    keys = spec.get("keys")
    if not keys:
        raise loc.error((*path, "keys"), "Required value: at least one keys is required")
    if not isinstance(keys, list):
        raise loc.error((*path, "keys"), "must be a list of {name, secret}")
    out: list[KeyTransformer] = []
    seen: set[str] = set()
    for i, k in enumerate(keys):
        kp = (*path, "keys", i)
        if not isinstance(k, dict):
            raise loc.error(kp, "must be an object with name and secret")
        name = k.get("name")
        if not name or not isinstance(name, str):
            raise loc.error((*kp, "name"), "Required value: name is a mandatory field for a key")
        if ":" in name:
            raise loc.error((*kp, "name"), f"Invalid value: {name!r}: a key name must not contain ':'")
        if name in seen:
            raise loc.error((*kp, "name"), f"Duplicate value: {name!r}: key names must be unique in a provider")
        seen.add(name)
        secret = k.get("secret")
        if not secret or not isinstance(secret, str):
            raise loc.error((*kp, "secret"), "Required value: secret is a mandatory field for a key")
        try:
            raw = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise loc.error((*kp, "secret"), 'Invalid value: "REDACTED": secrets must be base64 encoded') from None
        if len(raw) not in sizes:
            raise loc.error((*kp, "secret"), f'Invalid value: "REDACTED": secret is not of the expected length, '
                                             f"got {len(raw)}, expected one of {list(sizes)}")
        out.append(KeyTransformer(kind, name, raw))
    return out


def parse_config(loc: Located) -> EncryptionConfig:
    """Validate a loaded file as kube's ValidateEncryptionConfiguration does; errors name the line."""
    doc = loc.data
    if not isinstance(doc, dict):
        raise loc.error((), f"must be an {KIND} object")
    if doc.get("kind") != KIND or doc.get("apiVersion") != API_VERSION:
        raise loc.error(("kind",) if doc.get("kind") != KIND else ("apiVersion",),
                        f"must be kind: {KIND} with apiVersion: {API_VERSION} "
                        f"(got kind {doc.get('kind')!r}, apiVersion {doc.get('apiVersion')!r})")
    entries = doc.get("resources")
    if not entries or not isinstance(entries, list):
        raise loc.error(("resources",), "Required value: at least one resources is required")
    overrides: dict[tuple[str, str], list[KeyTransformer]] = {}
    for i, entry in enumerate(entries):
        ep = ("resources", i)
        if not isinstance(entry, dict):
            raise loc.error(ep, "must be an object with resources and providers")
        names = entry.get("resources")
        if not names or not isinstance(names, list):
            raise loc.error((*ep, "resources"), f"Required value: at least one resources[{i}].resources is required")
        parsed: list[tuple[str, str]] = []
        for j, name in enumerate(names):
            rp = (*ep, "resources", j)
            if not isinstance(name, str) or not name:
                raise loc.error(rp, "must be a resource name such as secrets, deployments.apps or *.apps")
            if name != name.lower():
                raise loc.error(rp, f"Invalid value: {name!r}: resource name should not contain capital letters")
            if name == "*":
                raise loc.error(rp, f"Invalid value: {name!r}: use '*.' to encrypt all the resources from core "
                                    "API group or *.* to encrypt all resources")
            gr = parse_group_resource(name)
            if gr[0] == "events.k8s.io":
                raise loc.error(rp, f"Invalid value: {name!r}: '*.events.k8s.io' objects are stored using the "
                                    "'events' API group in etcd. Use 'events' instead in the config file")
            if gr[0] == "extensions":
                raise loc.error(rp, f"Invalid value: {name!r}: 'extensions' group has been removed and cannot be "
                                    "used for encryption")
            if gr[0] == "*" and gr[1] != "*":
                raise loc.error(rp, f"Invalid value: {name!r}: encrypting the same resource across groups is not "
                                    "supported")
            if gr in parsed:
                raise loc.error((*ep, "resources"), f"Invalid value: {names}: the same resource cannot be specified "
                                                    "multiple times")
            parsed.append(gr)
        if len(parsed) > 1 and any(g == "*" or (r == "*" and any(g2 == g and r2 != "*" for g2, r2 in parsed))
                                   for g, r in parsed):
            raise loc.error((*ep, "resources"), f"Invalid value: {names}: using overlapping resources such as "
                                                "'secrets' and '*.' in the same resource list is not allowed as "
                                                "they will be masked")
        providers = entry.get("providers")
        if not providers or not isinstance(providers, list):
            raise loc.error((*ep, "providers"), f"Required value: at least one resources[{i}].providers is required")
        keys: list[KeyTransformer] = []
        for j, prov in enumerate(providers):
            pp = (*ep, "providers", j)
            found = [k for k in PROVIDERS if isinstance(prov, dict) and k in prov]
            if not found:
                raise loc.error(pp, "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, "
                                    "Secretbox, Identity")
            if len(found) > 1:
                raise loc.error(pp, "more than one provider specified in a single element, should split into "
                                    "different list elements")
            kind = found[0]
            if kind == "kms":
                raise loc.error((*pp, "kms"), "kms providers are not supported by k8py (they need a KMS plugin): "
                                              "use aescbc, aesgcm or secretbox")
            if kind == "identity":
                keys.append(KeyTransformer("identity", "", b""))
                continue
            keys.extend(_keys(loc, (*pp, kind), prov[kind], kind,
                              SECRETBOX_KEY_SIZES if kind == "secretbox" else AES_KEY_SIZES))
        for j, gr in enumerate(parsed):
            for mask in ((gr[0], "*"), ("*", "*")):
                if mask != gr and mask in overrides:
                    raise loc.error((*ep, "resources", j), f"resource {names[j]!r} is masked by an earlier rule "
                                                           f"{_pattern(mask)!r}")
            overrides.setdefault(gr, []).extend(keys)
    return EncryptionConfig(loc.file, doc, {gr: Chain(ks) for gr, ks in overrides.items()})


def _pattern(gr: tuple[str, str]) -> str:
    return f"{gr[1]}.{gr[0]}"


def load_config(file: str) -> EncryptionConfig:
    """Read and validate an EncryptionConfiguration file; raises ConfigFileError naming the line."""
    return parse_config(load_located(file, WHAT))


def summary(config: EncryptionConfig) -> str:
    """One line for the server's log: which key writes each configured resource."""
    parts = []
    for d in config.describe():
        active = next(k for k in d["keys"] if k["active"])
        parts.append(f"{d['resources']}: {active['type']}" + (f" key {active['name']!r}" if active["name"] else ""))
    return f"{'; '.join(parts)} ({config.file})"


def new_key() -> str:
    return base64.b64encode(_secrets.token_bytes(32)).decode()


def default_config_document(key_name: str, secret: str) -> dict[str, Any]:
    """k3s's generated config: Secrets with one aescbc key, and identity to read what was written
    before encryption was on."""
    return {"kind": KIND, "apiVersion": API_VERSION,
            "resources": [{"resources": ["secrets"],
                           "providers": [{"aescbc": {"keys": [{"name": key_name, "secret": secret}]}},
                                         {"identity": {}}]}]}


def write_config_file(path: str, document: dict[str, Any]) -> None:
    """Write ``document`` as JSON to ``path`` atomically (temporary file, fsync, rename, fsync of
    the directory), mode 0600: after a crash the file is either the old one or the new one."""
    d = os.path.dirname(path) or "."
    os.makedirs(d, mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def ensure_default_config(path: str) -> bool:
    """Generate ``path`` with a new aescbc key if it does not exist; True when it was written."""
    if os.path.exists(path):
        return False
    write_config_file(path, default_config_document(f"aescbckey-{_secrets.token_hex(4)}", new_key()))
    return True


# --------------------------------------------------------------------------- the store wrapper


def group_resource(key: str) -> tuple[str, str] | None:
    """(group, resource) of a store key ``/registry/<group|core>/<resource>/...``."""
    if not key.startswith("/registry/"):
        return None
    parts = key.split("/", 5)
    if len(parts) < 5:
        return None
    group = parts[2]
    return ("" if group == "core" else group), parts[3]


class EncryptedStore:
    """A :class:`Store` that seals and opens values per the encryption configuration."""

    def __init__(self, store: Store, config: EncryptionConfig) -> None:
        self.inner = store
        self.config = config
        self._chains: dict[tuple[str, str], Chain | None] = {}

    def reconfigure(self, config: EncryptionConfig) -> None:
        """Use new keys from now on (a rotation): values are read and written with them."""
        self.config = config
        self._chains = {}

    def chain(self, key: str) -> Chain | None:
        gr = group_resource(key)
        if gr is None:
            return None
        try:
            return self._chains[gr]
        except KeyError:
            c = self._chains[gr] = self.config.chain_for(*gr)
            return c

    def _prefix_chain(self, prefix: str) -> Chain | None | bool:
        """The chain for every key under ``prefix`` when the prefix names one resource; True when
        keys under it may belong to several resources (look each one up)."""
        gr = group_resource(prefix)
        if gr is None or not prefix.startswith(f"/registry/{gr[0] or 'core'}/{gr[1]}/"):
            return True
        return self.chain(prefix)

    def open_kv(self, kv: KeyValue, chain: Chain | None | bool = True) -> KeyValue:
        """``kv`` with its value opened. ``chain``: the resource's providers, None for a resource
        the config does not list, True to look it up by the key."""
        if chain is True:
            chain = self.chain(kv.key)
        if not isinstance(chain, Chain):
            if kv.value.startswith(ENC_PREFIX):  # kube's identity "encrypt check" transformer
                return UnreadableValue(kv.key, kv.value, kv.create_revision, kv.mod_revision,
                                       "identity transformer tried to read encrypted data (the encryption "
                                       "configuration does not list this resource any more)")
            return kv
        try:
            plain, stale = chain.open(kv.value, kv.key.encode())
        except DecryptError as e:
            return UnreadableValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, str(e))
        cls = StaleValue if stale else KeyValue
        return cls(kv.key, plain, kv.create_revision, kv.mod_revision)

    def _open_opt(self, kv: KeyValue | None) -> KeyValue | None:
        return None if kv is None else self.open_kv(kv)

    def seal(self, key: str, value: bytes) -> bytes:
        chain = self.chain(key)
        return value if chain is None else chain.seal(value, key.encode())

    # -- the Store interface ---------------------------------------------------------------------
    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def health(self) -> None:
        await self.inner.health()

    async def compacted_revision(self) -> int:
        return await self.inner.compacted_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def create(self, key: str, value: bytes) -> int:
        try:
            return await self.inner.create(key, self.seal(key, value))
        except KeyExistsError as e:
            raise KeyExistsError(key, self._open_opt(e.current)) from None

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        try:
            return await self.inner.update(key, self.seal(key, value), expected_revision)
        except ConflictError as e:
            raise ConflictError(key, expected_revision, self._open_opt(e.current)) from None

    async def delete(self, key: str, expected_revision: int | None = None) -> DeleteResult:
        try:
            res = await self.inner.delete(key, expected_revision)
        except ConflictError as e:
            raise ConflictError(key, e.expected, self._open_opt(e.current)) from None
        return DeleteResult(res.revision, self.open_kv(res.prev_kv))

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        return self._open_opt(await self.inner.get(key, revision))

    async def list(self, prefix: str, *, start_key: str | None = None, limit: int = 0, revision: int = 0,
                   count: bool = False) -> ListResult:
        res = await self.inner.list(prefix, start_key=start_key, limit=limit, revision=revision, count=count)
        chain = self._prefix_chain(prefix)
        if chain is None and not any(kv.value.startswith(ENC_PREFIX) for kv in res.kvs):
            return res  # a resource not encrypted (the common case): nothing to open
        return ListResult([self.open_kv(kv, chain) for kv in res.kvs], res.revision, res.more, res.count)

    def watch(self, prefix: str, start_revision: int, *, progress_notify: bool = False) -> Watch:
        w = self.inner.watch(prefix, start_revision, progress_notify=progress_notify)
        chain = self._prefix_chain(prefix)
        return _OpeningWatch(w, lambda kv: self.open_kv(kv, chain))

    def __getattr__(self, name: str) -> Any:  # stats() and other optional extras of a backend
        return getattr(self.inner, name)


class _OpeningWatch:
    """A watch whose events carry opened values."""

    def __init__(self, inner: Watch, open_kv: Callable[[KeyValue], KeyValue]) -> None:
        self.inner = inner
        self.open_kv = open_kv

    def __aiter__(self) -> AsyncIterator[WatchResponse]:
        return self

    async def __anext__(self) -> WatchResponse:
        resp = await self.inner.__anext__()
        if not resp.events:
            return resp
        o = self.open_kv
        events = resp.events
        out: list[Event] | None = None  # new events only when a value changed (most watches: none)
        for i, ev in enumerate(events):
            kv = o(ev.kv)
            prev = None if ev.prev_kv is None else o(ev.prev_kv)
            if kv is not ev.kv or prev is not ev.prev_kv:
                if out is None:
                    out = list(events[:i])
                out.append(Event(ev.type, kv, prev))
            elif out is not None:
                out.append(ev)
        return resp if out is None else WatchResponse(out, resp.revision)

    async def close(self) -> None:
        await self.inner.close()


