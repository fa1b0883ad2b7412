"""Key and certificate files, and TLS server contexts built from them.

Apart from :mod:`k8py.pki` (which makes keys and certificates, with ``cryptography``) so that
a process that only uses certificates, such as a joined node agent, does not load that
library: the standard library's ``ssl`` does all it needs.

Every TLS server k8py runs (the API server, the node agent's kubelet API) takes its context
from :func:`tls_server_context`: TLS 1.2 or newer only (as kube-apiserver's and kubelet's
default ``--tls-min-version``), and its certificate is *reloaded* when its files change on
disk, so a rotated serving certificate is presented to new TLS handshakes without a restart
(connections already open keep the certificate they were made with, as in Go's
``GetCertificate`` callback that kube-apiserver's dynamic serving certificate uses).
"""

from __future__ import annotations

import logging
import os
import ssl
import time

__all__ = ["MIN_TLS_VERSION", "read_if_present", "tls_server_context", "write_private_file"]

log = logging.getLogger(__name__)

# TLS 1.0 and 1.1 are refused on every server socket (and Python's clients refuse them too:
# its client contexts' minimum is TLS 1.2 since 3.10).
MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2
# How often, at most, a handshake looks at the certificate files' modification times.
RELOAD_CHECK_INTERVAL = 1.0


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


def _stamp(*paths: str) -> tuple[tuple[int, int, int], ...]:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            return ()
        out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class _Reloader:
    """The SNI callback that swaps a handshake onto a fresh context when the files changed.

    OpenSSL calls it at every handshake (with ``None`` as the name when the client sent no SNI);
    setting ``ssl_obj.context`` there is the documented way to choose the certificate for this
    very handshake. The files are written by rename (:func:`write_private_file`), so a reader sees
    the old file or the new one; a key and certificate that do not match yet (a handshake between
    the two renames) fail to load and the current context stays.
    """

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str, verify: ssl.VerifyMode) -> None:
        self.args = (cert_file, key_file, client_ca_file, verify)
        self.stamp = _stamp(cert_file, key_file)
        self.checked = time.monotonic()
        self.current: ssl.SSLContext | None = None

    def __call__(self, ssl_obj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                 ctx: ssl.SSLContext) -> int | None:
        now = time.monotonic()
        if now - self.checked >= RELOAD_CHECK_INTERVAL:
            self.checked = now
            stamp = _stamp(*self.args[:2])
            if stamp and stamp != self.stamp:
                try:
                    fresh = _build(*self.args)
                except (OSError, ssl.SSLError) as e:
                    log.warning("not reloading the serving certificate %s yet: %s", self.args[0], e)
                else:
                    fresh.sni_callback = self
                    self.current, self.stamp = fresh, stamp
                    log.info("reloaded the serving certificate %s for new connections", self.args[0])
        if self.current is not None and ssl_obj.context is not self.current:
            ssl_obj.context = self.current
        return None


def _build(cert_file: str, key_file: str, client_ca_file: str, verify: ssl.VerifyMode) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MIN_TLS_VERSION
    ctx.load_cert_chain(cert_file, key_file)
    ctx.load_verify_locations(cafile=client_ca_file)
    ctx.verify_mode = verify
    # We speak HTTP/1.1 only; saying so lets Go clients (kubectl) skip offering h2 in vain.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def tls_server_context(cert_file: str, key_file: str, client_ca_file: str, verify: ssl.VerifyMode) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer, HTTP/1.1) whose client certificates are checked
    against ``client_ca_file``: ``CERT_OPTIONAL`` for the API server, ``CERT_REQUIRED`` for the
    node agent's API (only the API server, with its client certificate, talks to it). When the
    certificate or key file is replaced, new handshakes present the new one (see the module
    docstring)."""
    ctx = _build(cert_file, key_file, client_ca_file, verify)
    ctx.sni_callback = _Reloader(cert_file, key_file, client_ca_file, verify)
    return ctx
