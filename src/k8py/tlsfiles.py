"""Key and certificate files, and TLS server contexts built from them.

Apart from :mod:`k8py.pki` (which makes keys and certificates, with ``cryptography``) so that
a process that only uses certificates, such as a joined node agent, does not load that
library: the standard library's ``ssl`` does all it needs.
"""

from __future__ import annotations

import os
import ssl

__all__ = ["read_if_present", "tls_server_context", "write_private_file"]


def read_if_present(path: str) -> bytes | None:
    """A key or certificate file's bytes, or None when there is none (yet)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_private_file(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename) with exactly ``mode``.

    The temp file is created with the final mode, so the content is never readable by others,
    not even for a moment; ``fchmod`` makes the mode independent of the umask.
    """
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def tls_server_context(cert_file: str, key_file: str, client_ca_file: str, verify: ssl.VerifyMode) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer, HTTP/1.1) whose client certificates are checked
    against ``client_ca_file``: ``CERT_OPTIONAL`` for the API server, ``CERT_REQUIRED`` for the
    node agent's API (only the API server, with its client certificate, talks to it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.load_verify_locations(cafile=client_ca_file)
    ctx.verify_mode = verify
    # We speak HTTP/1.1 only; saying so lets Go clients (kubectl) skip offering h2 in vain.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
