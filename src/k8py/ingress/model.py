"""From Ingresses, IngressClasses, Services, EndpointSlices and Secrets to what nginx serves
(a :class:`Plan`), as plain values: nothing here does I/O.

Which Ingresses are ours (kube's rules, ``networking.k8s.io/v1``): ``spec.ingressClassName``
names an IngressClass whose ``spec.controller`` is ours (:data:`CONTROLLER`); the deprecated
``kubernetes.io/ingress.class`` annotation naming such a class counts too (ingress-nginx honours
it); an Ingress naming no class is ours when our IngressClass is the default one
(``ingressclass.kubernetes.io/is-default-class: "true"``).

Matching, as the Ingress API defines it:

- a *host* is exact (``foo.example.com``) or a wildcard of one label (``*.example.com`` matches
  ``bar.example.com`` but neither ``example.com`` nor ``a.bar.example.com``); rules without a
  host, and ``spec.defaultBackend``, serve the requests no host matched (nginx's default server);
- path types: ``Exact`` matches the path only; ``Prefix`` element by element (``/foo`` matches
  ``/foo`` and ``/foo/bar``, not ``/foobar``; a trailing ``/`` is ignored); ``ImplementationSpecific``
  is treated as ``Prefix``, unless the Ingress has ingress-nginx's ``use-regex`` or
  ``rewrite-target`` annotation: then its non-Exact paths are case-insensitive regexes anchored at
  the start (and ``rewrite-target`` rewrites the URI the backend gets);
- precedence: the longest matching path wins, ``Exact`` before ``Prefix`` for the same path
  (nginx's own ``location =`` / longest-prefix order gives exactly that); when two Ingresses give
  the same host and path, the older Ingress wins (ingress-nginx's rule), the other gets an event;
- a path whose host has no ``/`` of its own falls to the Ingress's ``defaultBackend`` when it has
  one, else to the cluster's (the oldest Ingress's ``defaultBackend``), else 404; so do requests
  for hosts no rule names.

Backends go straight to the Service's ready endpoints (pod IP:port, as ingress-nginx), found
through the EndpointSlices' port of the Service port's name; when none is ready the
serving-and-terminating ones are used (connections drain during a rollout), and with none at all
the path answers 503. A missing Service or port, a missing or malformed TLS Secret, is a
*problem* reported on the Ingress as a Warning event while everything else is served.

TLS: ``spec.tls[].hosts`` with a ``kubernetes.io/tls`` Secret (``tls.crt`` and a ``tls.key``
that matches it) give that host's server a certificate; an entry without hosts gives the default
server one. HTTP requests to a TLS host are redirected to HTTPS with 308, as ingress-nginx's
``nginx.ingress.kubernetes.io/ssl-redirect`` (default ``"true"`` when the host has TLS; set it to
``"false"`` to serve plain HTTP too).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

CLASS_NAME = "k8py-nginx"
CONTROLLER = "k8py.io/ingress-nginx"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
SSL_REDIRECT = "nginx.ingress.kubernetes.io/ssl-redirect"
FORCE_SSL_REDIRECT = "nginx.ingress.kubernetes.io/force-ssl-redirect"
ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
# ingress-nginx's per-location annotations k8py honours: name -> (nginx directive, value pattern,
# unit appended, what a valid value looks like)
LOCATION_ANNOTATIONS = {
    "proxy-body-size": ("client_max_body_size", r"\d+[kKmMgG]?", "", "a size such as 8m, 512k or 0 (no limit)"),
    "proxy-connect-timeout": ("proxy_connect_timeout", r"\d+", "s", "seconds, such as 10"),
    "proxy-send-timeout": ("proxy_send_timeout", r"\d+", "s", "seconds, such as 60"),
    "proxy-read-timeout": ("proxy_read_timeout", r"\d+", "s", "seconds, such as 60"),
}
USE_REGEX = ANNOTATION_PREFIX + "use-regex"
REWRITE_TARGET = ANNOTATION_PREFIX + "rewrite-target"
INVALID_ANNOTATION = "InvalidAnnotation"
UNSUPPORTED_ANNOTATION = "UnsupportedAnnotation"
HONOURED_ANNOTATIONS = {SSL_REDIRECT, FORCE_SSL_REDIRECT, USE_REGEX, REWRITE_TARGET,
                        *(ANNOTATION_PREFIX + n for n in LOCATION_ANNOTATIONS)}
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TLS_SECRET_TYPE = "kubernetes.io/tls"

# Event reasons (ingress-nginx's where it has one)
BACKEND_NOT_FOUND = "BackendNotFound"
SECRET_NOT_FOUND = "SecretNotFound"
INVALID_SECRET = "InvalidSecret"
CONFLICT = "Conflict"
INVALID_PATH = "InvalidPath"


def meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def key_of(obj: Obj) -> str:
    m = meta(obj)
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def is_default_class(ic: Obj) -> bool:
    return (meta(ic).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"


def our_classes(classes: Iterable[Obj]) -> tuple[set[str], bool]:
    """Names of the IngressClasses of our controller, and whether one of them is the default."""
    names, default = set(), False
    for ic in classes:
        if (ic.get("spec") or {}).get("controller") == CONTROLLER:
            names.add(str(meta(ic).get("name") or ""))
            default = default or is_default_class(ic)
    return names, default


def is_ours(ing: Obj, class_names: set[str], we_are_default: bool) -> bool:
    name = (ing.get("spec") or {}).get("ingressClassName")
    if name:
        return name in class_names
    legacy = (meta(ing).get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION)
    if legacy:
        return legacy in class_names
    return we_are_default


# ------------------------------------------------------------------------------------------ plan
@dataclass(frozen=True, slots=True)
class Backend:
    """Where a location sends requests: an upstream, or a bare status (404, 503)."""

    upstream: str = ""
    status: int = 0


NOT_FOUND = Backend(status=404)
UNAVAILABLE = Backend(status=503)


@dataclass(frozen=True, slots=True)
class Location:
    path: str  # normalized: "/" or without a trailing "/"
    exact: bool  # location = path; else element-wise prefix
    backend: Backend
    ssl_redirect: bool = True  # its Ingress asks HTTP to be redirected when the host has TLS
    ingress: str = ""  # ns/name it came from
    settings: tuple[str, ...] = ()  # nginx directives from its Ingress's annotations
    regex: bool = False  # use-regex / rewrite-target: a case-insensitive regex anchored at the start
    rewrite: str = ""  # rewrite-target: the URI the backend gets (captures of the path as $1, $2, ...)


@dataclass(slots=True)
class Server:
    host: str  # "" for the default server
    locations: dict[tuple[str, bool], Location] = field(default_factory=dict)
    fallback: Backend = NOT_FOUND  # requests no location matches
    cert: str = ""  # file name (in the certificate directory) of the PEM cert+key; "" = no TLS
    ssl_redirect: bool = True  # with a cert: the fallback redirects HTTP to HTTPS
    cert_from: str = ""  # ns/name of the Ingress whose tls entry gave the cert

    @property
    def wildcard(self) -> bool:
        return self.host.startswith("*.")


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str
    message: str


@dataclass(slots=True)
class Plan:
    servers: list[Server]  # the default server first, then by host
    upstreams: dict[str, tuple[str, ...]]  # name -> "ip:port" / "[ip6]:port"
    certs: dict[str, bytes]  # file name -> PEM (certificate chain then key)
    cert_sources: dict[str, tuple[str, str, str]]  # file name -> the Secret's namespace, name, resourceVersion
    problems: dict[str, list[Problem]]  # ns/name of an Ingress -> what is wrong with it
    ingresses: list[str]  # the Ingresses served (ns/name), oldest first


# ----------------------------------------------------------------------------------- endpoints
def ready_endpoints(slices: Iterable[Obj], port_name: str) -> tuple[str, ...]:
    """``ip:port`` of the slices' endpoints for the Service port named ``port_name`` (TCP): the
    ready ones, else the serving-and-terminating ones (as kube-proxy's categorization)."""
    ready: list[str] = []
    draining: list[str] = []
    for sl in slices:
        for p in sl.get("ports") or ():
            if not isinstance(p, dict) or (p.get("name") or "") != port_name or (p.get("protocol") or "TCP") != "TCP":
                continue
            if not isinstance(p.get("port"), int):
                continue
            for ep in sl.get("endpoints") or ():
                if not isinstance(ep, dict) or not ep.get("addresses"):
                    continue
                ip = str(ep["addresses"][0])
                addr = f"[{ip}]:{p['port']}" if ":" in ip else f"{ip}:{p['port']}"
                cond = ep.get("conditions") or {}
                if cond.get("ready") is not False:
                    ready.append(addr)
                elif cond.get("serving") and cond.get("terminating"):
                    draining.append(addr)
    return tuple(sorted(set(ready or draining)))


def service_port(svc: Obj, ref: Obj) -> Obj | None:
    """The Service's port that an Ingress backend's ``port`` (number or name) designates."""
    for p in (svc.get("spec") or {}).get("ports") or ():
        if not isinstance(p, dict):
            continue
        if ("number" in ref and p.get("port") == ref.get("number")) or (ref.get("name") and p.get("name") == ref["name"]):
            return p
    return None


# -------------------------------------------------------------------------------------- paths
_BAD_PATH = re.compile(r'[\s{};"\\]|\$')


def normalize_prefix(path: str) -> str:
    return path.rstrip("/") or "/"


_BAD_REGEX_PATH = re.compile(r'[\s"]')
_BAD_TARGET = re.compile(r'[\s"{};\\]')


def regex_path_problem(path: str) -> str:
    """Why nginx cannot be given this path as a regex ("" when it can): it must compile (Python's
    ``re`` stands in for PCRE: nginx would refuse the whole configuration for a bad one)."""
    if not path.startswith("/"):
        return f"path {path!r} must begin with '/'"
    if _BAD_REGEX_PATH.search(path):
        return f"path {path!r} holds a space or a quote"
    try:
        re.compile(path)
    except re.error as e:
        return f"path {path!r} is not a regular expression: {e}"
    return ""


def path_problem(path: str) -> str:
    """Why nginx cannot be given this path ("" when it can)."""
    if not path.startswith("/"):
        return f"path {path!r} must begin with '/'"
    if _BAD_PATH.search(path):
        return f"path {path!r} holds characters the nginx configuration cannot carry (space, quote, {{ }} ; $ \\)"
    return ""


# -------------------------------------------------------------------------------------- certs
def cert_problem(crt: bytes, key: bytes) -> str:
    """Why this certificate and key cannot serve ("" when they can): both parse as PEM and the
    key is the certificate's (nginx would refuse the whole configuration otherwise)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(crt)
    except ValueError as e:
        return f"tls.crt is not a PEM certificate: {e}"
    try:
        pkey = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as e:
        return f"tls.key is not an unencrypted PEM private key: {e}"
    fmt = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*fmt) != pkey.public_key().public_bytes(*fmt):
        return "tls.key is not the key of the certificate in tls.crt"
    return ""


def cert_file_name(namespace: str, name: str, pem: bytes) -> str:
    """The PEM's file name: the Secret's name and a hash of the content, so a new certificate
    is a new file and the running configuration's files stay as they are until a reload."""
    return f"{namespace}_{name}_{hashlib.sha256(pem).hexdigest()[:16]}.pem"


def _b64(v: Any) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(str(v or ""), validate=True)
    except (binascii.Error, ValueError):
        return b""


# --------------------------------------------------------------------------------- annotations
def location_settings(annotations: Mapping[str, Any]) -> tuple[tuple[str, ...], list[str]]:
    """nginx directives for the locations of an Ingress with these annotations (ingress-nginx's
    ``proxy-body-size`` and ``proxy-{connect,send,read}-timeout``), and what is wrong with the
    ones that cannot be used (the default applies to them)."""
    out: list[str] = []
    bad: list[str] = []
    for name, (directive, pattern, unit, want) in LOCATION_ANNOTATIONS.items():
        v = annotations.get(ANNOTATION_PREFIX + name)
        if v is None:
            continue
        if not isinstance(v, str) or not re.fullmatch(pattern, v.strip()):
            bad.append(f"annotation {ANNOTATION_PREFIX}{name}: {v!r} is not {want}; nginx's default applies")
            continue
        out.append(f"{directive} {v.strip()}{unit};")
    return tuple(out), bad


# --------------------------------------------------------------------------------------- build
def _created(ing: Obj) -> tuple[str, str, str]:
    m = meta(ing)
    return (str(m.get("creationTimestamp") or ""), str(m.get("namespace") or ""), str(m.get("name") or ""))


def _true(v: Any, default: bool) -> bool:
    if v is None:
        return default
    return str(v).strip().lower() == "true"


def upstream_name(namespace: str, service: str, port: Obj) -> str:
    p = port.get("name") or str(port.get("port"))
    return f"{namespace}-{service}-{p}"


class _Builder:
    def __init__(self, services: Mapping[tuple[str, str], Obj], slices: Mapping[tuple[str, str], list[Obj]],
                 secrets: Mapping[tuple[str, str], Obj], cert_cache: dict[tuple[str, str, str], str] | None) -> None:
        self.services = services
        self.slices = slices
        self.secrets = secrets
        self.cert_cache = cert_cache if cert_cache is not None else {}
        self.upstreams: dict[str, tuple[str, ...]] = {}
        self.certs: dict[str, bytes] = {}
        self.cert_sources: dict[str, tuple[str, str, str]] = {}
        self.problems: dict[str, list[Problem]] = {}

    def problem(self, ing: str, reason: str, message: str) -> None:
        p = Problem(reason, message)
        lst = self.problems.setdefault(ing, [])
        if p not in lst:
            lst.append(p)

    def backend(self, ing: str, ns: str, b: Obj, where: str) -> Backend:
        svc_ref = b.get("service") if isinstance(b, dict) else None
        if not isinstance(svc_ref, dict):
            if isinstance(b, dict) and b.get("resource"):
                self.problem(ing, BACKEND_NOT_FOUND, f"{where}: resource backends are not supported by k8py-nginx; "
                             "answering 503")
            return UNAVAILABLE
        name = str(svc_ref.get("name") or "")
        svc = self.services.get((ns, name))
        if svc is None:
            self.problem(ing, BACKEND_NOT_FOUND, f"{where}: service \"{ns}/{name}\" not found; answering 503")
            return UNAVAILABLE
        ref = svc_ref.get("port") or {}
        port = service_port(svc, ref)
        if port is None:
            want = ref.get("name") or ref.get("number")
            self.problem(ing, BACKEND_NOT_FOUND, f"{where}: service \"{ns}/{name}\" has no port {want}; answering 503")
            return UNAVAILABLE
        if (svc.get("spec") or {}).get("type") == "ExternalName":
            self.problem(ing, BACKEND_NOT_FOUND, f"{where}: service \"{ns}/{name}\" is of type ExternalName, which "
                         "k8py-nginx does not proxy to; answering 503")
            return UNAVAILABLE
        eps = ready_endpoints(self.slices.get((ns, name), ()), str(port.get("name") or ""))
        if not eps:
            return UNAVAILABLE  # no ready endpoint now: not a fault of the Ingress (pods are starting)
        up = upstream_name(ns, name, port)
        self.upstreams[up] = eps
        return Backend(upstream=up)

    def cert(self, ing: str, ns: str, secret_name: str) -> str:
        sec = self.secrets.get((ns, secret_name))
        if sec is None:
            self.problem(ing, SECRET_NOT_FOUND, f"TLS secret \"{ns}/{secret_name}\" not found (Secrets of type "
                         f"{TLS_SECRET_TYPE} only); its hosts are served without TLS")
            return ""
        data = sec.get("data") or {}
        crt, key = _b64(data.get("tls.crt")), _b64(data.get("tls.key"))
        rv = str(meta(sec).get("resourceVersion") or "")
        cached = self.cert_cache.get((ns, secret_name, rv))
        if cached is None:
            if sec.get("type") != TLS_SECRET_TYPE:
                cached = f"is of type {sec.get('type')!r}, not {TLS_SECRET_TYPE!r}"
            elif not crt or not key:
                cached = "lacks tls.crt or tls.key"
            else:
                cached = cert_problem(crt, key)
            self.cert_cache[(ns, secret_name, rv)] = cached
        if cached:
            self.problem(ing, INVALID_SECRET, f"TLS secret \"{ns}/{secret_name}\" {cached}; its hosts are served "
                         "without TLS")
            return ""
        pem = crt.rstrip(b"\n") + b"\n" + key.rstrip(b"\n") + b"\n"
        fname = cert_file_name(ns, secret_name, pem)
        self.certs[fname] = pem
        self.cert_sources[fname] = (ns, secret_name, rv)
        return fname


def build_plan(ingresses: Iterable[Obj], services: Mapping[tuple[str, str], Obj],
               slices: Mapping[tuple[str, str], list[Obj]], secrets: Mapping[tuple[str, str], Obj], *,
               cert_cache: dict[tuple[str, str, str], str] | None = None,
               refused_regexes: Mapping[str, str] | None = None) -> Plan:
    """What nginx serves for these (our) Ingresses. ``services`` and ``secrets`` by (namespace,
    name), ``slices`` by (namespace, service name); ``cert_cache`` remembers checked Secrets by
    (namespace, name, resourceVersion) between calls: "" for a good one, else why it is not (a
    certificate is parsed once per version; the controller also records there the ones nginx
    itself refused, e.g. a key too small for OpenSSL's security level)."""
    b = _Builder(services, slices, secrets, cert_cache)
    refused_regexes = refused_regexes or {}  # path -> nginx's (PCRE's) complaint, where Python's re was content
    ordered = sorted(ingresses, key=_created)
    default = Server("")
    servers: dict[str, Server] = {}
    default_fallback_from = ""
    served: list[str] = []
    for ing in ordered:
        ik = key_of(ing)
        ns = str(meta(ing).get("namespace") or "")
        spec = ing.get("spec") or {}
        served.append(ik)
        annotations = meta(ing).get("annotations") or {}
        # certificates of this Ingress, by host ("" = the default server)
        tls_hosts: dict[str, str] = {}
        for t in spec.get("tls") or ():
            if not isinstance(t, dict):
                continue
            fname = b.cert(ik, ns, str(t.get("secretName") or "")) if t.get("secretName") else ""
            for h in t.get("hosts") or [""]:
                tls_hosts.setdefault(str(h), fname)
        redirect = _true(annotations.get(SSL_REDIRECT), True) or _true(annotations.get(FORCE_SSL_REDIRECT), False)
        settings, bad = location_settings(annotations)
        for why in bad:
            b.problem(ik, INVALID_ANNOTATION, why)
        rewrite = str(annotations.get(REWRITE_TARGET) or "").strip()
        if rewrite and (not rewrite.startswith("/") or _BAD_TARGET.search(rewrite)):
            b.problem(ik, INVALID_ANNOTATION, f"annotation {REWRITE_TARGET}: {rewrite!r} is not a path (captures "
                      "as $1, $2; no spaces, quotes, braces, semicolons or backslashes); paths are not rewritten")
            rewrite = ""
        # ingress-nginx: rewrite-target implies regex paths
        use_regex = _true(annotations.get(USE_REGEX), False) or bool(rewrite)
        # an ingress-nginx annotation k8py does not implement would change nothing: say so rather
        # than seem to honour it (rewrite-target, use-regex, backend-protocol, auth-*, canary, ...)
        for name in sorted(k for k in annotations if k.startswith(ANNOTATION_PREFIX) and k not in HONOURED_ANNOTATIONS):
            b.problem(ik, UNSUPPORTED_ANNOTATION, f"annotation {name} is not supported by the k8py-nginx ingress "
                      "controller; it is ignored")
        own_default = (b.backend(ik, ns, spec["defaultBackend"], "spec.defaultBackend")
                       if isinstance(spec.get("defaultBackend"), dict) else None)
        hosts_here: set[str] = set()
        for i, rule in enumerate(spec.get("rules") or ()):
            if not isinstance(rule, dict):
                continue
            host = str(rule.get("host") or "")
            srv = default if not host else servers.setdefault(host, Server(host))
            hosts_here.add(host)
            for j, p in enumerate(((rule.get("http") or {}).get("paths")) or ()):
                where = f"spec.rules[{i}].http.paths[{j}]"
                path = str(p.get("path") or "/")
                exact = p.get("pathType") == "Exact"
                regex = use_regex and not exact
                why = regex_path_problem(path) if regex else path_problem(path)
                if regex and not why and path in refused_regexes:
                    why = f"nginx refuses the regular expression {path!r}: {refused_regexes[path]}"
                if why:
                    b.problem(ik, INVALID_PATH, f"{where}: {why}; this path is not served")
                    continue
                norm = path if exact or regex else normalize_prefix(path)
                loc_key = ("~" + norm if regex else norm, exact)
                owner = srv.locations.get(loc_key)
                if owner is not None:
                    if owner.ingress != ik:
                        b.problem(ik, CONFLICT, f"{where}: host {host or '*'!r} path {path!r} is already served by "
                                  f"the older Ingress {owner.ingress}; this one is ignored")
                    continue
                backend = b.backend(ik, ns, p.get("backend") or {}, where)
                srv.locations[loc_key] = Location(norm, exact, backend, redirect, ik, settings, regex,
                                                  rewrite if regex else "")
        for host in hosts_here | (set(tls_hosts) - {""}):
            srv = default if not host else servers.setdefault(host, Server(host))
            if tls_hosts.get(host) and not srv.cert:
                srv.cert, srv.cert_from = tls_hosts[host], ik
                srv.ssl_redirect = redirect
            elif tls_hosts.get(host) and srv.cert != tls_hosts[host]:
                b.problem(ik, CONFLICT, f"spec.tls: host {host!r} already has the certificate of the older Ingress "
                          f"{srv.cert_from}; this one's is ignored")
            if host and own_default is not None and srv.fallback is NOT_FOUND:
                srv.fallback = own_default
        if "" in tls_hosts and tls_hosts[""] and not default.cert:
            default.cert = tls_hosts[""]
        # the cluster's default backend: the oldest Ingress's (ingress-nginx's choice when several
        # claim it)
        if own_default is not None and not default_fallback_from:
            default.fallback, default_fallback_from = own_default, ik
        elif own_default is not None:
            b.problem(ik, CONFLICT, f"spec.defaultBackend: the default backend is already given by the older Ingress "
                      f"{default_fallback_from}; this one is ignored")
    for srv in servers.values():
        if srv.fallback is NOT_FOUND and default_fallback_from:
            srv.fallback = default.fallback
    return Plan(servers=[default, *(servers[h] for h in sorted(servers))], upstreams=b.upstreams, certs=b.certs,
                cert_sources=b.cert_sources, problems=b.problems, ingresses=served)
