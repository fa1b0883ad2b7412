"""What the aggregation layer (``apiserver/aggregator.py``) and the APIService availability
controller (``controllers/apiservice.py``) share, as kube-aggregator's helpers: nothing here does
I/O.

- which APIServices are served by a Service (``spec.service``) and where their group-version is;
- kube's ``--enable-aggregator-routing=true`` resolution of a Service to one ready endpoint of its
  EndpointSlices (``k8s.io/apiserver/pkg/util/proxy.ResolveEndpoint``), with kube's errors;
- the TLS client context for a backend (``remote.BuildTransportConfig``: the APIService's
  ``caBundle`` or ``insecureSkipTLSVerify``, server name ``<service>.<namespace>.svc``, the
  front-proxy client certificate);
- the front-proxy headers that carry the authenticated user (``transport.SetAuthProxyHeaders``);
- kube's ordering of APIServices (``SortedByGroupAndVersion``: group priority, then name; version
  priority, then kube-aware version order).
"""

from __future__ import annotations

import base64
import random
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

# kube-apiserver's --requestheader-* defaults as kubeadm and k3s set them
USERNAME_HEADER = "X-Remote-User"
UID_HEADER = "X-Remote-Uid"
GROUP_HEADER = "X-Remote-Group"
EXTRA_HEADER_PREFIX = "X-Remote-Extra-"
# the subject of the proxy client certificate (kubeadm's front-proxy-client), the only name an
# extension server accepts it from (requestheader-allowed-names)
FRONT_PROXY_CLIENT_CN = "front-proxy-client"
# who the availability check and the discovery fetch say they are
AGGREGATOR_USER = "system:kube-aggregator"

SERVICE_TYPES_WITH_ENDPOINTS = ("ClusterIP", "LoadBalancer", "NodePort")


class ResolveError(Exception):
    """A Service that cannot be resolved to an endpoint; the text is kube's."""


@dataclass(frozen=True, slots=True)
class ServiceRef:
    namespace: str
    name: str
    port: int


def service_ref(apiservice: Obj) -> ServiceRef | None:
    """The Service behind ``apiservice``, or None for a local one (served by this server)."""
    svc = (apiservice.get("spec") or {}).get("service")
    if not isinstance(svc, dict):
        return None
    port = svc.get("port")
    return ServiceRef(str(svc.get("namespace") or ""), str(svc.get("name") or ""),
                      int(port) if isinstance(port, int) else 443)


def group_version(apiservice: Obj) -> tuple[str, str]:
    spec = apiservice.get("spec") or {}
    return str(spec.get("group") or ""), str(spec.get("version") or "")


def is_available(apiservice: Obj) -> bool:
    for c in (apiservice.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Available":
            return c.get("status") == "True"
    return False


def server_name(ref: ServiceRef) -> str:
    """The name the backend's certificate must carry (kube: ``<service>.<namespace>.svc``)."""
    return f"{ref.name}.{ref.namespace}.svc"


# --------------------------------------------------------------------------- endpoints


def find_service_port(service: Obj, port: int) -> Obj:
    for p in (service.get("spec") or {}).get("ports") or []:
        if p.get("port") == port:
            return p
    name = (service.get("metadata") or {}).get("name", "")
    raise ResolveError(f'no service port {port} found for service "{name}"')


def _ready(endpoint: Obj) -> bool:
    ready = (endpoint.get("conditions") or {}).get("ready")
    return ready is None or ready is True  # unset means ready (EndpointConditions)


def resolve_endpoint(service: Obj | None, slices: Sequence[Obj], ref: ServiceRef,
                     rng: random.Random | None = None) -> tuple[str, int]:
    """(address, port) of one ready endpoint of ``service`` for the APIService's ``ref.port``:
    the Service port with that number gives the port name, the first EndpointSlice with a port
    of that name gives the target port, and a ready endpoint is picked starting at a random
    offset (kube spreads requests so). ``slices`` are the Service's EndpointSlices."""
    if service is None:
        raise ResolveError(f'service "{ref.name}" not found')
    stype = (service.get("spec") or {}).get("type") or "ClusterIP"
    if stype not in SERVICE_TYPES_WITH_ENDPOINTS:
        raise ResolveError(f'unsupported service type "{stype}"')
    port_name = find_service_port(service, ref.port).get("name") or ""
    if not slices:
        raise ResolveError(f'no endpoints available for service "{ref.name}"')
    for s in slices:
        for p in s.get("ports") or []:
            if (p.get("name") or "") == port_name and isinstance(p.get("port"), int):
                endpoints = [e for e in s.get("endpoints") or [] if _ready(e) and e.get("addresses")]
                if endpoints:
                    e = (rng or random).choice(endpoints)
                    return str(e["addresses"][0]), int(p["port"])
    raise ResolveError(f'no endpoints available for service "{ref.name}"')


def has_available_endpoint(port_name: str, slices: Iterable[Obj]) -> bool:
    """kube's ``hasAvailableEndpoint``: a slice with a ready endpoint and a port of that name."""
    for s in slices:
        if not any(_ready(e) for e in s.get("endpoints") or []):
            continue
        if any((p.get("name") or "") == port_name and p.get("port") is not None for p in s.get("ports") or []):
            return True
    return False


def slices_of(all_slices: Iterable[Obj], namespace: str, name: str) -> list[Obj]:
    """The EndpointSlices of Service ``namespace/name`` (label ``kubernetes.io/service-name``)."""
    out = []
    for s in all_slices:
        m = s.get("metadata") or {}
        if m.get("namespace") == namespace and (m.get("labels") or {}).get("kubernetes.io/service-name") == name:
            out.append(s)
    return out


# --------------------------------------------------------------------------- TLS and headers


def client_ssl_context(apiservice: Obj, cert_file: str | None, key_file: str | None, *,
                       insecure: bool | None = None) -> ssl.SSLContext:
    """The TLS client context for ``apiservice``'s backend: its ``caBundle`` (else the system's
    roots) or no verification with ``insecureSkipTLSVerify`` (or ``insecure``: the availability
    check never verifies, as kube's), and the proxy client certificate when given. A caBundle
    that is no PEM is a ``ValueError`` (kube's transport building error)."""
    spec = apiservice.get("spec") or {}
    skip = spec.get("insecureSkipTLSVerify") is True if insecure is None else insecure
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["http/1.1"])
    if skip:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ca = spec.get("caBundle")
        if ca:
            try:
                pem = base64.b64decode(ca).decode("ascii")
                ctx = ssl.create_default_context(cadata=pem)
            except (ValueError, ssl.SSLError) as e:
                raise ValueError(f"unable to load root certificates: unable to parse bytes as PEM block "
                                 f"({e})") from None
            ctx.set_alpn_protocols(["http/1.1"])
    if cert_file and key_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


_HEADER_KEY_SAFE = re.compile(r"[A-Za-z0-9!#$&'*+\-.^_`|~]")


def _header_key_escape(key: str) -> str:
    """kube's ``headerKeyEscape``: bytes not legal in a header key are %-encoded."""
    out = []
    for b in key.encode():
        c = chr(b)
        out.append(c if b < 128 and _HEADER_KEY_SAFE.fullmatch(c) else f"%{b:02X}")
    return "".join(out)


def is_auth_proxy_header(name: str) -> bool:
    low = name.lower()
    return low in ("x-remote-user", "x-remote-uid", "x-remote-group") or low.startswith("x-remote-extra-")


def auth_proxy_headers(user: str, uid: str, groups: Iterable[str],
                       extra: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """The front-proxy headers for a user (``transport.SetAuthProxyHeaders``); the caller drops
    any such header the client sent (:func:`is_auth_proxy_header`)."""
    out = [(USERNAME_HEADER, user)]
    if uid:
        out.append((UID_HEADER, uid))
    out.extend((GROUP_HEADER, g) for g in groups)
    for key, values in extra.items():
        out.extend((EXTRA_HEADER_PREFIX + _header_key_escape(key), v) for v in values)
    return out


# --------------------------------------------------------------------------- ordering

_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def _version_key(v: str) -> tuple[int, int, int, str]:
    """Sort key for kube's ``CompareKubeAwareVersionStrings`` (smallest first = highest):
    GA before beta before alpha, higher majors first, higher minors first; others last, by name."""
    m = _KUBE_VERSION.match(v)
    if m is None:
        return (3, 0, 0, v)
    major, kind, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[kind], -major, -minor, "")


def sorted_by_group_and_version(apiservices: Iterable[Obj]) -> list[list[Obj]]:
    """kube's ``SortedByGroupAndVersion``: groups by their highest ``groupPriorityMinimum`` (then
    APIService name), and in each group the versions by ``versionPriority`` (then kube-aware
    version order), highest first."""
    def by_group(a: Obj) -> tuple[int, str]:
        return -int((a.get("spec") or {}).get("groupPriorityMinimum") or 0), (a.get("metadata") or {}).get("name", "")

    def by_version(a: Obj) -> tuple[int, tuple[int, int, int, str]]:
        spec = a.get("spec") or {}
        return -int(spec.get("versionPriority") or 0), _version_key(str(spec.get("version") or ""))

    groups: dict[str, list[Obj]] = {}
    for a in sorted(apiservices, key=by_group):
        groups.setdefault(group_version(a)[0], []).append(a)
    return [sorted(vs, key=by_version) for vs in groups.values()]
