"""Service-account JWTs as kube-apiserver and kube-controller-manager make them (kube's
``pkg/serviceaccount``): the keys, their key ids, the claims, signing and signature checks.

Nothing here reads the cluster: the API server (``apiserver/serviceaccounts.py``: TokenRequest,
authentication, OIDC discovery) and the tokens controller (``controllers/serviceaccounttokens.py``:
legacy token Secrets) both stand on it, so the two can never disagree on a claim's name.

**Keys.** One private key signs (kube's ``--service-account-signing-key-file``; generated on first
use as a 2048-bit RSA key, RS256 being what most verifiers expect); every key that verifies
(kube's repeatable ``--service-account-key-file``: PEM public keys, private keys or certificates,
several per file) is published in the JWKS, so a key that signed before a rotation keeps
verifying while its tokens live. A key's id (``kid``) is kube's ``keyIDFromPublicKey``: the
unpadded base64url SHA-256 of the public key's PKIX DER.

**Bound tokens** (TokenRequest): ``iss``, ``sub`` ``system:serviceaccount:NS:NAME``, ``aud``,
``exp``/``iat``/``nbf``, ``jti`` and the private ``kubernetes.io`` claim (namespace, the service
account's name and uid, the pod, Secret or node it is bound to, and ``warnafter`` for the
extended tokens kubelet asks for). **Legacy tokens** (token Secrets): issuer
``kubernetes/serviceaccount``, no audience and no expiry, the
``kubernetes.io/serviceaccount/*`` claims.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = [
    "DEFAULT_ISSUER",
    "EXPIRATION_EXTENSION_SECONDS",
    "LEEWAY_SECONDS",
    "LEGACY_ISSUER",
    "MAX_EXPIRATION_SECONDS",
    "MIN_EXPIRATION_SECONDS",
    "WARN_ONLY_EXPIRATION_SECONDS",
    "Keyring",
    "Parsed",
    "TokenError",
    "VerifyKey",
    "bound_claims",
    "ensure_signing_key",
    "groups_of",
    "jwk",
    "key_id",
    "legacy_claims",
    "load_keyring",
    "load_public_keys",
    "looks_like_jwt",
    "make_signing_key",
    "parse",
    "sign",
    "split_username",
    "username",
    "verify",
]

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
USER_PREFIX = "system:serviceaccount:"
ALL_GROUP = "system:serviceaccounts"
# kube's TokenRequest validation bounds (pkg/apis/authentication/validation)
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
DEFAULT_EXPIRATION_SECONDS = 3600
# kubelet's projected token asks for 3607 s; kube-apiserver (--service-account-extend-token-expiration,
# on by default) gives such a pod-bound token a year and a ``warnafter`` at the 3607 s mark
WARN_ONLY_EXPIRATION_SECONDS = 60 * 60 + 7
EXPIRATION_EXTENSION_SECONDS = 24 * 365 * 60 * 60
# go-jose's DefaultLeeway, which kube's validator uses for exp/nbf and deletion times
LEEWAY_SECONDS = 60
RSA_BITS = 2048

Obj = dict[str, Any]
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class TokenError(Exception):
    """A token that is ours (a service-account JWT) but does not prove anything: the message says why."""


# --------------------------------------------------------------------------- keys


def key_id(public: PublicKey) -> str:
    """kube's ``keyIDFromPublicKey``: base64url (no padding) of SHA-256 over the PKIX DER."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _alg(public: PublicKey) -> str:
    if isinstance(public, rsa.RSAPublicKey):
        return "RS256"
    alg = _EC_ALGS.get(public.curve.name)
    if alg is None:
        raise ValueError(f"unsupported elliptic curve {public.curve.name} (P-256, P-384 and P-521 are)")
    return alg


@dataclass(frozen=True, slots=True)
class VerifyKey:
    public: PublicKey
    kid: str
    alg: str

    @classmethod
    def of(cls, public: PublicKey) -> VerifyKey:
        return cls(public, key_id(public), _alg(public))


@dataclass(frozen=True, slots=True)
class Keyring:
    """The signing key (None: this side only verifies) and every key that verifies (the signing
    key's public half first)."""

    private: PrivateKey | None
    signing: VerifyKey | None
    verifying: tuple[VerifyKey, ...]

    def by_kid(self, kid: str) -> list[VerifyKey]:
        hit = [k for k in self.verifying if k.kid == kid]
        # kube tries every key when the kid is absent or unknown (keys from before kids existed)
        return hit or list(self.verifying)


def _b64u_int(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwk(key: VerifyKey) -> Obj:
    """The key as go-jose's ``JSONWebKey`` serializes it in kube's JWKS."""
    pub = key.public
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        return {"use": "sig", "kty": "RSA", "kid": key.kid, "alg": key.alg, "n": _b64u_int(nums.n),
                "e": _b64u_int(nums.e)}
    enums = pub.public_numbers()
    size = (pub.curve.key_size + 7) // 8
    return {"use": "sig", "kty": "EC", "kid": key.kid, "crv": _EC_CURVES[pub.curve.name], "alg": key.alg,
            "x": base64.urlsafe_b64encode(enums.x.to_bytes(size, "big")).rstrip(b"=").decode(),
            "y": base64.urlsafe_b64encode(enums.y.to_bytes(size, "big")).rstrip(b"=").decode()}


def _pem_blocks(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    while True:
        b = data.find(b"-----BEGIN ", start)
        if b < 0:
            return out
        label_end = data.find(b"-----", b + 11)
        if label_end < 0:
            return out
        label = data[b + 11:label_end]
        end_marker = b"-----END " + label + b"-----"
        e = data.find(end_marker, label_end)
        if e < 0:
            return out
        out.append(data[b:e + len(end_marker)] + b"\n")
        start = e + len(end_marker)


def _public_of(block: bytes) -> PublicKey | None:
    if b"CERTIFICATE-----" in block.split(b"\n", 1)[0]:
        pub: Any = x509.load_pem_x509_certificate(block).public_key()
    elif b"PRIVATE KEY-----" in block.split(b"\n", 1)[0]:
        pub = serialization.load_pem_private_key(block, password=None).public_key()
    elif b"PUBLIC KEY-----" in block.split(b"\n", 1)[0]:
        pub = serialization.load_pem_public_key(block)
    else:
        return None  # kube skips blocks it does not read (parameters, ...)
    if not isinstance(pub, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise TypeError(f"unsupported key type {type(pub).__name__} (RSA and ECDSA keys are)")
    return pub


def load_public_keys(path: str) -> list[PublicKey]:
    """Every public key of a PEM file (public keys, private keys, certificates), as kube's
    ``--service-account-key-file`` reads it; a file without one is an error naming it."""
    with open(path, "rb") as f:
        data = f.read()
    keys: list[PublicKey] = []
    for block in _pem_blocks(data):
        try:
            pub = _public_of(block)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from None
        if pub is not None:
            keys.append(pub)
    if not keys:
        raise ValueError(f"{path}: no public keys found in the file (expected PEM public keys, private keys or "
                         "certificates)")
    return keys


def _load_private(path: str, *, check_rsa: bool = True) -> PrivateKey:
    with open(path, "rb") as f:
        data = f.read()
    for block in _pem_blocks(data):
        if b"PRIVATE KEY-----" in block.split(b"\n", 1)[0]:
            key = serialization.load_pem_private_key(block, password=None, unsafe_skip_rsa_key_validation=not check_rsa)
            if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                raise ValueError(f"{path}: unsupported key type {type(key).__name__} (RSA and ECDSA keys are)")
            return key
    raise ValueError(f"{path}: no private key found in the file")


def ensure_signing_key(path: str) -> PrivateKey:
    """The signing key in ``path``, made (RSA 2048, mode 0600) if the file does not exist. Two
    processes making it at once end up with the same key: the file is published by ``link``,
    which fails if another got there first (then that one is read)."""
    make_signing_key(path)
    return _load_private(path)


def make_signing_key(path: str) -> None:
    """:func:`ensure_signing_key` for a server's start: the file made if missing, and read as a
    private key of a supported type, but RSA's consistency check (~50 ms of CPU) is left to the
    key's use, which loads it in full (:func:`load_keyring`)."""
    if not os.path.exists(path):
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, 0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".sa-key-")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, pem)
            os.fsync(fd)
            os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    _load_private(path, check_rsa=False)


def load_keyring(signing_key_file: str, key_files: Sequence[str] = (), *, generate: bool = True) -> Keyring:
    """The signing key (made when missing and ``generate``) and the verification keys: the
    signing key's public half, then every key of ``key_files``."""
    private: PrivateKey | None = None
    if signing_key_file and (generate or os.path.exists(signing_key_file)):
        private = ensure_signing_key(signing_key_file) if generate else _load_private(signing_key_file)
    signing = VerifyKey.of(private.public_key()) if private is not None else None
    verifying: list[VerifyKey] = [signing] if signing is not None else []
    for path in key_files:
        for pub in load_public_keys(path):
            k = VerifyKey.of(pub)
            if all(k.kid != v.kid for v in verifying):
                verifying.append(k)
    return Keyring(private, signing, tuple(verifying))


# --------------------------------------------------------------------------- claims


def username(namespace: str, name: str) -> str:
    return f"{USER_PREFIX}{namespace}:{name}"


def split_username(user: str) -> tuple[str, str] | None:
    """(namespace, name) of a ``system:serviceaccount:NS:NAME`` user; None for anyone else."""
    if not user.startswith(USER_PREFIX):
        return None
    ns, sep, name = user[len(USER_PREFIX):].partition(":")
    if not sep or not ns or not name or ":" in name:
        return None
    return ns, name


def groups_of(namespace: str) -> tuple[str, ...]:
    """kube's ``MakeGroupNames`` (system:authenticated is added by the authenticator)."""
    return (ALL_GROUP, f"{ALL_GROUP}:{namespace}")


def _ref(obj: Mapping[str, Any]) -> Obj:
    m = obj.get("metadata") or {}
    out: Obj = {}
    if m.get("name"):
        out["name"] = m["name"]
    if m.get("uid"):
        out["uid"] = m["uid"]
    return out


def bound_claims(*, issuer: str, audiences: Sequence[str], now: int, expiration_seconds: int, sa: Mapping[str, Any],
                 jti: str, pod: Mapping[str, Any] | None = None, secret: Mapping[str, Any] | None = None,
                 node: Mapping[str, Any] | None = None, node_name: str = "", warnafter: int = 0) -> Obj:
    """kube's ``serviceaccount.Claims``: the public claims and the ``kubernetes.io`` claim.

    A pod-bound token also names the pod's node (kube's ServiceAccountTokenPodNodeInfo): its
    name always, its uid when the node was found."""
    meta = sa.get("metadata") or {}
    ns = str(meta.get("namespace") or "")
    k8s: Obj = {"namespace": ns, "serviceaccount": _ref(sa)}
    if pod is not None:
        k8s["pod"] = _ref(pod)
    elif secret is not None:
        k8s["secret"] = _ref(secret)
    if node is not None:
        k8s["node"] = _ref(node)
    elif node_name:
        k8s["node"] = {"name": node_name}
    if warnafter:
        k8s["warnafter"] = now + warnafter
    return {"aud": list(audiences), "exp": now + expiration_seconds, "iat": now, "iss": issuer, "jti": jti,
            "kubernetes.io": k8s, "nbf": now, "sub": username(ns, str(meta.get("name") or ""))}


def legacy_claims(sa: Mapping[str, Any], secret: Mapping[str, Any]) -> Obj:
    """kube's ``LegacyClaims``: what the tokens controller signs into a token Secret."""
    sm = sa.get("metadata") or {}
    ns = str(sm.get("namespace") or "")
    return {
        "iss": LEGACY_ISSUER,
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/secret.name": str((secret.get("metadata") or {}).get("name") or ""),
        "kubernetes.io/serviceaccount/service-account.name": str(sm.get("name") or ""),
        "kubernetes.io/serviceaccount/service-account.uid": str(sm.get("uid") or ""),
        "sub": username(ns, str(sm.get("name") or "")),
    }


# --------------------------------------------------------------------------- signing and checking


def sign(claims: Mapping[str, Any], keyring: Keyring) -> str:
    """A compact JWS of ``claims`` with the signing key; the header is kube's (``alg``, ``kid``)."""
    if keyring.private is None or keyring.signing is None:
        raise TokenError("no service account signing key is configured")
    import jwt  # here: only signing needs PyJWT (checking is this module's own), ~60 ms of a server's start

    return jwt.encode(dict(claims), keyring.private, algorithm=keyring.signing.alg,
                      headers={"kid": keyring.signing.kid, "typ": None})


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts, the first a JSON object (``eyJ``): worth asking the JWT authenticator."""
    return token.startswith("eyJ") and token.count(".") == 2


# Parsing and checking are done here rather than with PyJWT's decode, which validates base64
# character by character in Python (about 2 ms for a kubelet token on this machine, on every
# request); PyJWT signs (rare) and is the tests' independent verifier.
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_EC_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"ES256": hashes.SHA256, "ES384": hashes.SHA384,
                                                              "ES512": hashes.SHA512}


def _b64url(segment: str) -> bytes:
    if not _B64URL.match(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass(frozen=True, slots=True)
class Parsed:
    """A JWS taken apart, not yet checked."""

    header: Obj
    claims: Obj
    signing_input: bytes
    signature: bytes


def parse(token: str) -> Parsed | None:
    """``token`` taken apart without checking it; None when it is not a JWS of JSON objects."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = orjson.loads(_b64url(parts[0]))
        claims = orjson.loads(_b64url(parts[1]))
        signature = _b64url(parts[2])
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return Parsed(header, claims, f"{parts[0]}.{parts[1]}".encode(), signature)


def _signed_by(key: VerifyKey, signing_input: bytes, signature: bytes) -> bool:
    pub = key.public
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            return True
        size = (pub.curve.key_size + 7) // 8
        if len(signature) != 2 * size:  # JWS's ECDSA signature is r || s, fixed width
            return False
        der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
        pub.verify(der, signing_input, ec.ECDSA(_EC_HASHES[key.alg]()))
        return True
    except InvalidSignature:
        return False


def verify(parsed: Parsed, keyring: Keyring) -> Obj:
    """The claims of a parsed token if one of the keyring's keys signed it (the kid's key, or
    every key when the kid is unknown, as kube); TokenError otherwise. Times and audiences are
    the caller's to check."""
    alg = str(parsed.header.get("alg") or "")
    candidates = [k for k in keyring.by_kid(str(parsed.header.get("kid") or "")) if k.alg == alg]
    if not candidates:
        raise TokenError("token signature is invalid: no key for its algorithm" if alg else
                         "token signature is invalid: no algorithm in its header")
    if any(_signed_by(k, parsed.signing_input, parsed.signature) for k in candidates):
        return parsed.claims
    raise TokenError("token signature is invalid")
