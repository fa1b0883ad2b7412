"""Where the API server is and how to authenticate to it: kubeconfig and in-cluster config.

Loading follows client-go's rules (clientcmd): several kubeconfig files (``$KUBECONFIG``,
``:``-separated) merge with the first file to define a cluster, user or context winning;
relative file paths in a kubeconfig are relative to that file; ``*-data`` fields hold base64
PEM and win over their ``*`` file counterparts. :func:`load_config` tries what
controller-runtime's ``GetConfig`` tries, in the same order.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "ClientConfig",
    "ConfigError",
    "load_client_certificate",
    "load_config",
    "load_incluster_config",
    "load_kubeconfig",
]

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# client-go re-reads a token file at most once a minute, so rotated tokens are picked up.
TOKEN_FILE_REFRESH = 60.0


class ConfigError(Exception):
    """The kubeconfig or in-cluster environment does not describe a usable server."""


@dataclass(slots=True)
class ClientConfig:
    """Everything :class:`k8py.client.Client` needs to reach and authenticate to an API server.

    PEM material is held as bytes (``*_data``) or paths (``*_file``); data wins when both are set.
    """

    server: str
    ca_data: bytes | None = None
    ca_file: str | None = None
    cert_data: bytes | None = None
    cert_file: str | None = None
    key_data: bytes | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    username: str | None = None
    password: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    namespace: str = "default"
    context: str | None = None
    _token_cache: tuple[float, str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def is_https(self) -> bool:
        return self.server.startswith("https://")

    def bearer_token(self) -> str | None:
        """The token to send: the inline one, else the token file's (re-read once a minute)."""
        if self.token:
            return self.token
        if not self.token_file:
            return None
        now = time.monotonic()
        if self._token_cache is None or now - self._token_cache[0] >= TOKEN_FILE_REFRESH:
            with open(self.token_file, encoding="utf-8") as f:
                self._token_cache = (now, f.read().strip())
        return self._token_cache[1]

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context for an ``https://`` server (``None`` for plain HTTP)."""
        if not self.is_https:
            return None
        if self.insecure_skip_tls_verify:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data:
            # Only the cluster CA: a kubeconfig's CA replaces the system roots, as in client-go.
            # (The system roots are not loaded first only to be dropped: ~20 ms of CPU a context,
            # one per in-process component at server start; docs/benchmarks.md, "Server start".)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cadata=self.ca_data.decode("ascii"))
        elif self.ca_file:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=self.ca_file)
        else:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        cert = self.cert_data or self.cert_file
        key = self.key_data or self.key_file
        if cert and key:
            _load_cert_chain(ctx, self.cert_data, self.cert_file, self.key_data, self.key_file)
        elif cert or key:
            raise ConfigError("client certificate and key must be given together")
        return ctx


def load_client_certificate(ctx: ssl.SSLContext, config: ClientConfig) -> None:
    """Load ``config``'s client certificate and key into ``ctx`` (again, after a rotation: a live
    context presents the new one to new connections)."""
    _load_cert_chain(ctx, config.cert_data, config.cert_file, config.key_data, config.key_file)


def _load_cert_chain(ctx: ssl.SSLContext, cert_data: bytes | None, cert_file: str | None,
                     key_data: bytes | None, key_file: str | None) -> None:
    # The ssl module loads certificates only from files: write in-memory PEM to a private
    # directory just long enough to load it (what the official Python client does too).
    if not cert_data and not key_data:
        ctx.load_cert_chain(str(cert_file), str(key_file))
        return
    with tempfile.TemporaryDirectory(prefix="k8py-tls-") as d:
        cf, kf = cert_file, key_file
        if cert_data:
            cf = os.path.join(d, "tls.crt")
            _write_private(cf, cert_data)
        if key_data:
            kf = os.path.join(d, "tls.key")
            _write_private(kf, key_data)
        ctx.load_cert_chain(str(cf), str(kf))


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode("".join(str(value).split()), validate=True)
    except ValueError as e:
        raise ConfigError(f"{what}: invalid base64: {e}") from None


def _named(doc: dict[str, Any], section: str, key: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") is not None:
            out[str(entry["name"])] = entry.get(key) or {}
    return out


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read kubeconfig: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not a valid kubeconfig: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a valid kubeconfig: expected a mapping")
    # Resolve relative file references against the file's directory, as clientcmd does.
    base = path.parent
    for section, key, fields in (("clusters", "cluster", ("certificate-authority",)),
                                 ("users", "user", ("client-certificate", "client-key", "tokenFile"))):
        for entry in doc.get(section) or []:
            body = entry.get(key) if isinstance(entry, dict) else None
            if not isinstance(body, dict):
                continue
            for f in fields:
                if body.get(f) and not os.path.isabs(str(body[f])):
                    body[f] = str(base / os.path.expanduser(str(body[f])))
    return doc


def default_kubeconfig_paths() -> list[Path]:
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(os.path.expanduser(p)) for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def load_kubeconfig(path: str | os.PathLike[str] | None = None, context: str | None = None) -> ClientConfig:
    """Read a kubeconfig (``path``, else ``$KUBECONFIG``'s files merged, else ``~/.kube/config``).

    ``context`` defaults to the file's ``current-context``.
    """
    paths = [Path(path)] if path is not None else default_kubeconfig_paths()
    docs = [_read_kubeconfig(p) for p in paths if path is not None or p.exists()]
    if not docs:
        raise ConfigError(f"no kubeconfig found (looked at {', '.join(map(str, paths))})")
    clusters: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    contexts: dict[str, dict[str, Any]] = {}
    current = ""
    for doc in docs:  # first definition of a name wins
        for k, v in _named(doc, "clusters", "cluster").items():
            clusters.setdefault(k, v)
        for k, v in _named(doc, "users", "user").items():
            users.setdefault(k, v)
        for k, v in _named(doc, "contexts", "context").items():
            contexts.setdefault(k, v)
        current = current or str(doc.get("current-context") or "")
    where = str(paths[0]) if len(paths) == 1 else os.pathsep.join(map(str, paths))
    name = context or current
    if not name:
        raise ConfigError(f"{where}: no context given and no current-context set")
    if name not in contexts:
        raise ConfigError(f'{where}: context "{name}" does not exist')
    ctx = contexts[name]
    cluster_name = str(ctx.get("cluster") or "")
    if cluster_name not in clusters:
        raise ConfigError(f'{where}: context "{name}" refers to cluster "{cluster_name}" which does not exist')
    cluster = clusters[cluster_name]
    user_name = str(ctx.get("user") or "")
    if user_name and user_name not in users:
        raise ConfigError(f'{where}: context "{name}" refers to user "{user_name}" which does not exist')
    user = users.get(user_name, {})
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ConfigError(f'{where}: cluster "{cluster_name}" has no server')
    if "://" not in server:
        server = "https://" + server
    if user.get("exec") or user.get("auth-provider"):
        raise ConfigError(f'{where}: user "{user_name}": exec and auth-provider credentials are not supported')
    return ClientConfig(
        server=server,
        ca_data=_b64(cluster["certificate-authority-data"], "certificate-authority-data")
        if cluster.get("certificate-authority-data") else None,
        ca_file=cluster.get("certificate-authority") or None,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name") or None,
        cert_data=_b64(user["client-certificate-data"], "client-certificate-data")
        if user.get("client-certificate-data") else None,
        cert_file=user.get("client-certificate") or None,
        key_data=_b64(user["client-key-data"], "client-key-data") if user.get("client-key-data") else None,
        key_file=user.get("client-key") or None,
        token=user.get("token") or None,
        token_file=user.get("tokenFile") or None,
        username=user.get("username") or None,
        password=user.get("password") or None,
        namespace=str(ctx.get("namespace") or "default"),
        context=name,
    )


def load_incluster_config(sa_dir: str | os.PathLike[str] | None = None,
                          environ: dict[str, str] | None = None) -> ClientConfig:
    """The config of a pod: ``KUBERNETES_SERVICE_HOST``/``_PORT`` and its service-account files."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                          "must be set")
    d = Path(sa_dir if sa_dir is not None else SERVICE_ACCOUNT_DIR)
    token = d / "token"
    if not token.exists():
        raise ConfigError(f"not running in a cluster: {token} does not exist")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    ns_file = d / "namespace"
    namespace = ns_file.read_text(encoding="utf-8").strip() if ns_file.exists() else "default"
    ca = d / "ca.crt"
    return ClientConfig(server=f"https://{host}:{port}", ca_file=str(ca) if ca.exists() else None,
                        token_file=str(token), namespace=namespace or "default")


def load_config(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> ClientConfig:
    """controller-runtime's order: explicit kubeconfig, ``$KUBECONFIG``, in-cluster, ``~/.kube/config``."""
    if kubeconfig is not None:
        return load_kubeconfig(kubeconfig, context)
    if os.environ.get("KUBECONFIG"):
        return load_kubeconfig(None, context)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
        try:
            return load_incluster_config()
        except ConfigError:
            pass
    home = Path.home() / ".kube" / "config"
    if not home.exists():
        raise ConfigError(f"no configuration found: no --kubeconfig, $KUBECONFIG unset, not in a cluster, "
                          f"and {home} does not exist")
    return load_kubeconfig(home, context)
