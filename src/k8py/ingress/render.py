"""nginx.conf from a :class:`~k8py.ingress.model.Plan` (a pure function: text in, text out).

Layout of the generated file:

- the main context: ``daemon off`` (the controller supervises the master), the pid file, the
  error log (standard error, which the controller writes to ``nginx.log``), every temporary
  path inside the state directory: nothing of the system's nginx (``/etc/nginx``,
  ``/var/lib/nginx``, its service) is read or written;
- one ``upstream`` per Service port in use, listing the ready endpoints (pod IP:port);
- a status server on a unix socket whose ``/generation`` answers the configuration's generation,
  so the controller knows when a reload is in force (nginx says nothing on ``SIGHUP``);
- the default server (``default_server`` on both ports): rules without a host and the default
  backend; on HTTPS it presents the certificate of a ``tls`` entry without hosts, or refuses the
  handshake (``ssl_reject_handshake``) when there is none;
- one server per host: exact hosts by name, wildcard hosts as a regex of one label (nginx's own
  ``*.example.com`` would match ``a.b.example.com`` too, which the Ingress API excludes); with a
  certificate the server also listens on the HTTPS port (TLS 1.2 and 1.3 only);
- in each server one ``location = /p`` per Exact path, ``location = /p`` and ``location /p/``
  per Prefix path (element-wise: ``/p`` and ``/p/...``, never ``/px``), and ``location /`` for
  what nothing else matches (the default backend, or 404). nginx picks an exact location first,
  else the longest prefix: the Ingress API's precedence. Regex paths (ingress-nginx's
  ``use-regex``/``rewrite-target``) are ``location ~* "^path"``, longest first: nginx tries them
  after the exact ones and lets the first match win over any prefix, as in ingress-nginx.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from k8py.ingress.model import Backend, Location, Plan, Server

STATUS_PATH = "/generation"


@dataclass(frozen=True, slots=True)
class RenderOptions:
    state_dir: str  # nginx's prefix (-p): relative paths below are inside it
    http_port: int = 80
    https_port: int = 443
    ipv6: bool = True  # listen on [::] too
    generation: int = 0
    worker_processes: str = "auto"
    status_socket: str = "nginx.sock"  # relative to state_dir
    cert_dir: str = "certs"  # relative to state_dir
    worker_user: str = "nobody nogroup"  # only used when the master runs as root


def server_name(host: str) -> str:
    """nginx's server_name for an Ingress host: exact, or a one-label regex for ``*.suffix``."""
    if host.startswith("*."):
        return '"~^[^.]+' + re.escape(host[1:]).replace("\\-", "-") + '$"'
    return host


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _listen(opts: RenderOptions, port: int, extra: str, default: bool) -> list[str]:
    out = [f"listen {port}{extra};"]
    if opts.ipv6:  # a socket option such as ipv6only may be given once per address: on the default server
        out.append(f"listen [::]:{port}{extra}{' ipv6only=on' if default else ''};")
    return out


PROXY_HEADERS = (
    "proxy_http_version 1.1;",
    "proxy_set_header Host $host;",
    "proxy_set_header Upgrade $http_upgrade;",
    "proxy_set_header Connection $connection_upgrade;",
    "proxy_set_header X-Real-IP $remote_addr;",
    # the client as nginx sees it: incoming X-Forwarded-* are not trusted (ingress-nginx's default,
    # use-forwarded-headers: false, for an nginx exposed directly to clients)
    "proxy_set_header X-Forwarded-For $remote_addr;",
    "proxy_set_header X-Forwarded-Host $host;",
    "proxy_set_header X-Forwarded-Port $server_port;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
    "proxy_set_header X-Scheme $scheme;",
)


def _action(b: Backend) -> list[str]:
    if b.upstream:
        return [f"proxy_pass http://{b.upstream};"]
    return [f"return {b.status or 503};"]


def _redirect(opts: RenderOptions) -> str:
    port = "" if opts.https_port == 443 else f":{opts.https_port}"
    return f'if ($scheme = "http") {{ return 308 https://$host{port}$request_uri; }}'


def _location(srv: Server, opts: RenderOptions, match: str, loc: Location, who: str) -> list[str]:
    body = [f"# {who}"] if who else []
    if srv.cert and loc.ssl_redirect:
        body.append(_redirect(opts))
    body += loc.settings
    if loc.rewrite:
        body.append(f"rewrite {_q('(?i)' + loc.path)} {loc.rewrite} break;")
    body += _action(loc.backend)
    return [f"location {match} {{", *("    " + line for line in body), "}"]


def _locations(srv: Server, opts: RenderOptions) -> list[str]:
    out: list[str] = []
    exact_paths = {loc.path for loc in srv.locations.values() if loc.exact}
    root: Location | None = None
    # longest first only for the reader: nginx's own order (exact, then longest prefix) decides
    for loc in sorted(srv.locations.values(), key=lambda x: (-len(x.path), not x.exact, x.path)):
        if loc.exact:
            out += _location(srv, opts, "= " + _q(loc.path), loc, f"{loc.ingress} Exact")
            continue
        if loc.regex:  # checked in this order (longest first) after the prefixes; the first match wins
            out += _location(srv, opts, "~* " + _q("^" + loc.path), loc, f"{loc.ingress} regex")
            continue
        if loc.path == "/":
            root = loc
            continue
        if loc.path not in exact_paths:  # an Exact path of the same value wins that request
            out += _location(srv, opts, "= " + _q(loc.path), loc, f"{loc.ingress} Prefix")
        out += _location(srv, opts, _q(loc.path + "/"), loc, "")
    if root is not None:
        out += _location(srv, opts, "/", root, f"{root.ingress} Prefix")
    else:
        out += _location(srv, opts, "/", Location("/", False, srv.fallback, srv.ssl_redirect), "default backend")
    return out


def _server(srv: Server, opts: RenderOptions) -> list[str]:
    default = not srv.host
    lines = [f"# host {srv.host}" if srv.host else "# the default server: rules without a host, the default backend"]
    body = list(_listen(opts, opts.http_port, " default_server" if default else "", default))
    if srv.cert or default:
        body += _listen(opts, opts.https_port, " ssl http2 default_server" if default else " ssl http2", default)
        if srv.cert:
            path = f"{opts.cert_dir}/{srv.cert}"
            body += [f"ssl_certificate {path};", f"ssl_certificate_key {path};"]
        else:
            body.append("ssl_reject_handshake on;")
    body.append(f"server_name {server_name(srv.host)};" if srv.host else "server_name _;")
    body += _locations(srv, opts)
    return [*lines, "server {", *("    " + b for b in body if b), "}"]


def _hash_size(names: int) -> int:
    size = 512
    while size < 2 * names:
        size *= 2
    return size


def render(plan: Plan, opts: RenderOptions) -> str:
    lines = [
        f"# generated by the k8py ingress controller (generation {opts.generation}); edits are overwritten",
        "daemon off;",
        "master_process on;",
        f"worker_processes {opts.worker_processes};",
        "pid nginx.pid;",
        "error_log stderr warn;",  # nginx.log: problems only (notices are lines per reload and worker)
        *([f"user {opts.worker_user};"] if opts.worker_user else []),
        "events {",
        "    worker_connections 4096;",
        "}",
        "http {",
    ]
    http = [
        "access_log off;",
        "server_tokens off;",
        "default_type application/octet-stream;",
        "client_body_temp_path tmp/client_body;",
        "proxy_temp_path tmp/proxy;",
        "fastcgi_temp_path tmp/fastcgi;",
        "uwsgi_temp_path tmp/uwsgi;",
        "scgi_temp_path tmp/scgi;",
        "client_max_body_size 1m;",
        "server_names_hash_bucket_size 128;",
        # room for every exact host name (nginx's default 512 warns, and hashes worse, past ~1,000)
        f"server_names_hash_max_size {_hash_size(len(plan.servers))};",
        "map $http_upgrade $connection_upgrade {",
        "    default upgrade;",
        "    '' '';",
        "}",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_prefer_server_ciphers on;",
        "ssl_session_cache shared:SSL:10m;",
        "ssl_session_timeout 10m;",
        "proxy_connect_timeout 5s;",
        "proxy_send_timeout 60s;",
        "proxy_read_timeout 60s;",
        "proxy_next_upstream error timeout;",
        "proxy_buffering on;",
        *PROXY_HEADERS,
    ]
    for name in sorted(plan.upstreams):
        http += [f"upstream {name} {{", *(f"    server {a} max_fails=0;" for a in plan.upstreams[name]),
                 "    keepalive 32;", "}"]
    http += [
        "server {",
        f"    listen unix:{opts.status_socket};",
        f"    location = {STATUS_PATH} {{ return 200 \"{opts.generation}\\n\"; }}",
        "    location / { return 404; }",
        "}",
    ]
    for srv in plan.servers:
        http += _server(srv, opts)
    lines += ["    " + h for h in http]
    lines.append("}")
    return "\n".join(lines) + "\n"
