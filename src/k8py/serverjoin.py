"""A second server joins the first: ``k8py server --server https://first:6443 --token TOKEN``
on the same (etcd) datastore, with no files copied by hand, as k3s's servers join.

**The server token** (``<data-dir>/server-token``, 0600, made on a server's first start) is k3s's
form ``K10<sha256 of the cluster CA>::server:<secret>``: whoever holds it may join a server to
the cluster (it is as powerful as the CA key: keep it like one).

**The bootstrap data** are the files every server of a cluster must share, listed in
:data:`BOOTSTRAP_FILES` (paths relative to the data directory; add a line there to carry a new
one): the cluster CA and its key, the service-account signing key, the encryption-at-rest
configuration, the static token file and the server token itself. A running server serves them
at ``GET /v1-k8py/server-bootstrap`` (k3s: ``/v1-k3s/server-bootstrap``) **encrypted**:
AES-256-GCM with a key derived from the token's secret (PBKDF2-HMAC-SHA256, a random salt per
answer). So the secret itself never travels; only a holder of the token can read the answer,
and a tampered answer does not decrypt. The joining server then checks that the CA it received
has the SHA-256 the token pins (a server that is not the cluster's cannot pass), and that the
first server's serving certificate is signed by that CA; it writes the files (0600) into its
own data directory, and starts as usual: its own serving certificate, admin certificate and
kubeconfig are issued from the shared CA, so one kubeconfig works against both servers.

A data directory that already holds another cluster's CA is refused (no silent replacement).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import ssl
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from k8py.tlsfiles import read_if_present, write_private_file

__all__ = [
    "BOOTSTRAP_FILES",
    "BOOTSTRAP_PATH",
    "JoinError",
    "ServerBootstrap",
    "ServerToken",
    "decrypt",
    "encrypt",
    "ensure_server_token",
    "fetch_bootstrap",
    "parse_server_token",
    "write_bootstrap_files",
]

log = logging.getLogger(__name__)

BOOTSTRAP_PATH = "/v1-k8py/server-bootstrap"
SERVER_TOKEN_FILE = "server-token"


@dataclass(frozen=True, slots=True)
class BootstrapFile:
    path: str  # relative to the data directory
    required: bool  # the first server must have it (else: carried when it exists)


# What every server of a cluster shares. One line per file; a helper that adds a shared file to
# the data directory adds it here.
BOOTSTRAP_FILES = (
    BootstrapFile("tls/ca.crt", True),  # the cluster CA ...
    BootstrapFile("tls/ca.key", True),  # ... and its key: every server issues certificates
    BootstrapFile("tls/service-account.key", False),  # signs service-account tokens
    BootstrapFile("cred/encryption-config.json", False),  # encryption at rest (the default config)
    BootstrapFile("token", False),  # static bearer tokens (k8py token create)
    BootstrapFile(SERVER_TOKEN_FILE, True),  # so the second server can let a third join
    BootstrapFile("tls/front-proxy-ca.crt", False),  # the aggregation layer's front-proxy CA: extension
    BootstrapFile("tls/front-proxy-ca.key", False),  # API servers trust one CA, whichever server proxies
)

_TOKEN = re.compile(r"^K10([0-9a-f]{64})::server:([A-Za-z0-9._-]{16,})$")
KDF_ITERATIONS = 200_000


class JoinError(Exception):
    """Joining cannot go on; the message says why and what to check."""


@dataclass(frozen=True, slots=True)
class ServerToken:
    ca_hash: str
    secret: str

    def __str__(self) -> str:
        return f"K10{self.ca_hash}::server:{self.secret}"


def parse_server_token(token: str) -> ServerToken:
    m = _TOKEN.match(token.strip())
    if m is None:
        raise JoinError("the server token is not of the form K10<ca-sha256>::server:<secret> (the first server's "
                        "<data-dir>/server-token)")
    return ServerToken(m.group(1), m.group(2))


def ensure_server_token(data_dir: str) -> ServerToken:
    """The data directory's server token, made on first use for its CA (``tls/ca.crt``)."""
    path = os.path.join(data_dir, SERVER_TOKEN_FILE)
    have = read_if_present(path)
    ca = read_if_present(os.path.join(data_dir, "tls", "ca.crt"))
    if ca is None:
        raise FileNotFoundError(f"no cluster CA in {data_dir}/tls yet")
    ca_hash = hashlib.sha256(ca).hexdigest()
    if have is not None:
        try:
            tok = parse_server_token(have.decode())
        except (JoinError, UnicodeDecodeError):
            tok = None
        if tok is not None and tok.ca_hash == ca_hash:
            return tok
        if tok is not None:  # the CA was replaced (a new cluster in this directory): a token for it
            tok = ServerToken(ca_hash, tok.secret)
            write_private_file(path, f"{tok}\n".encode())
            return tok
    tok = ServerToken(ca_hash, secrets.token_hex(16))
    write_private_file(path, f"{tok}\n".encode())
    log.info("wrote the server token %s: give it to `k8py server --server URL --token ...` to join a server", path)
    return tok


# --------------------------------------------------------------------------- the sealed answer


def _key(secret: str, salt: bytes) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=KDF_ITERATIONS)
    return kdf.derive(secret.encode())


def encrypt(secret: str, files: dict[str, bytes], *, salt: bytes | None = None, key: bytes | None = None) -> bytes:
    """The files as an encrypted JSON document (what the bootstrap endpoint answers). ``salt``
    and ``key`` (derived from it) may be given to spare the key derivation; the nonce is new."""
    if salt is None or key is None:
        salt = os.urandom(16)
        key = _key(secret, salt)
    nonce = os.urandom(12)
    plain = json.dumps({k: base64.b64encode(v).decode() for k, v in files.items()}).encode()
    sealed = AESGCM(key).encrypt(nonce, plain, BOOTSTRAP_PATH.encode())
    return json.dumps({"kdf": "pbkdf2-sha256", "iterations": KDF_ITERATIONS, "cipher": "aes-256-gcm",
                       "salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode(),
                       "data": base64.b64encode(sealed).decode()}).encode()


def decrypt(secret: str, blob: bytes) -> dict[str, bytes]:
    try:
        doc = json.loads(blob)
        salt, nonce, data = (base64.b64decode(doc[k]) for k in ("salt", "nonce", "data"))
        if doc.get("cipher") != "aes-256-gcm" or doc.get("iterations") != KDF_ITERATIONS:
            raise JoinError(f"the server's bootstrap answer is sealed in a way this k8py does not know: "
                            f"{doc.get('cipher')}, {doc.get('iterations')} iterations")
        plain = AESGCM(_key(secret, salt)).decrypt(nonce, data, BOOTSTRAP_PATH.encode())
        return {k: base64.b64decode(v) for k, v in json.loads(plain).items()}
    except InvalidTag:
        raise JoinError("the server's bootstrap data do not open with this token: the token is wrong (or not this "
                        "cluster's)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise JoinError(f"the server's bootstrap answer is not readable: {e}") from None


class ServerBootstrap:
    """The first server's side: ``payload()`` is the answer to ``GET /v1-k8py/server-bootstrap``
    (:meth:`handle`, an unauthenticated endpoint of the API server: the answer is sealed)."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        # The key is derived once per token (a salt of this process): anyone may ask, and a key
        # derivation per answer would let them make the server spend 0.1 s of CPU a request.
        self._sealing: tuple[str, bytes, bytes] | None = None

    async def handle(self, request: object) -> object:
        import asyncio

        from aiohttp import web

        try:
            body = await asyncio.to_thread(self.payload)  # files, and the key derivation the first time
        except (OSError, JoinError) as e:
            log.error("cannot serve the server bootstrap data: %s", e)
            return web.json_response({"message": "the server bootstrap data are not available"}, status=503)
        return web.Response(body=body, content_type="application/json")

    def payload(self) -> bytes:
        tok = ensure_server_token(self.data_dir)
        files: dict[str, bytes] = {}
        for f in BOOTSTRAP_FILES:
            data = read_if_present(os.path.join(self.data_dir, f.path))
            if data is None:
                if f.required:
                    raise FileNotFoundError(f"{f.path} is missing from {self.data_dir}")
                continue
            files[f.path] = data
        if self._sealing is None or self._sealing[0] != tok.secret:
            salt = os.urandom(16)
            self._sealing = (tok.secret, salt, _key(tok.secret, salt))
        _, salt, key = self._sealing
        return encrypt(tok.secret, files, salt=salt, key=key)


# --------------------------------------------------------------------------- the joining side


def _insecure_context() -> ssl.SSLContext:
    # Nothing is trusted from this connection until the answer decrypts with the token and its CA
    # has the hash the token pins; the token's secret is not sent.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def fetch_bootstrap(server_url: str, token: str, *, timeout: float = 30.0) -> dict[str, bytes]:
    """The bootstrap files from the server at ``server_url``, decrypted and checked (see the
    module docstring); raises :class:`JoinError` with the reason."""
    import aiohttp

    tok = parse_server_token(token)
    url = server_url.rstrip("/") + BOOTSTRAP_PATH
    t = aiohttp.ClientTimeout(total=timeout)
    try:
        async with aiohttp.ClientSession(timeout=t) as session, \
                session.get(url, ssl=_insecure_context()) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise JoinError(f"{url} answered {resp.status}: {body[:200].decode(errors='replace')}")
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        raise JoinError(f"cannot reach the server {server_url}: {e or type(e).__name__}") from None
    files = decrypt(tok.secret, body)
    ca = files.get("tls/ca.crt", b"")
    got = hashlib.sha256(ca).hexdigest()
    if not hmac.compare_digest(got, tok.ca_hash):
        raise JoinError(f"CA hash mismatch: the server {server_url} sent a CA with SHA-256 {got}, but the token "
                        f"pins {tok.ca_hash}")
    # the server we talked to is one of the cluster's: its serving certificate is of that CA
    verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    verify.check_hostname = False
    verify.load_verify_locations(cadata=ca.decode())
    try:
        async with aiohttp.ClientSession(timeout=t) as session, \
                session.get(server_url.rstrip("/") + "/version", ssl=verify) as resp:
            await resp.read()
    except aiohttp.ClientConnectorCertificateError:
        raise JoinError(f"the server {server_url} has a serving certificate that is not of the cluster CA") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        raise JoinError(f"cannot reach the server {server_url}: {e or type(e).__name__}") from None
    return files


def write_bootstrap_files(data_dir: str, files: dict[str, bytes]) -> list[str]:
    """Write the fetched files into ``data_dir`` (0600; directories 0700). A data directory with
    another cluster's CA is refused. Returns the paths written."""
    known = {f.path for f in BOOTSTRAP_FILES}
    unknown = sorted(set(files) - known)
    if unknown:
        raise JoinError(f"the server sent files this k8py does not know: {', '.join(unknown)}")
    have = read_if_present(os.path.join(data_dir, "tls", "ca.crt"))
    if have is not None and have != files.get("tls/ca.crt"):
        raise JoinError(f"{data_dir} already belongs to another cluster (its tls/ca.crt differs); use an empty data "
                        "directory to join")
    os.makedirs(data_dir, mode=0o755, exist_ok=True)
    written = []
    for rel, data in files.items():
        path = os.path.join(data_dir, rel)
        parent = os.path.dirname(path)
        if parent != data_dir:
            os.makedirs(parent, mode=0o700, exist_ok=True)
            os.chmod(parent, 0o700)
        write_private_file(path, data)
        written.append(path)
    return written
