"""``k8py server``: the control plane. Flags follow k3s's names."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import re
import socket
from typing import TYPE_CHECKING, Any

from k8py.cli import nodepressure
from k8py.config import ServerConfig, default_data_dir

if TYPE_CHECKING:
    from k8py.pki import PKI

__all__ = ["add_parser", "build_config", "prepare_server", "run"]

log = logging.getLogger("k8py.server")

DEFAULT_PORT = 6443
# As in k3s: listen on every interface (TLS and authentication protect the port, and node
# agents on other machines must reach it). Pass --bind-address 127.0.0.1 to stay on loopback.
DEFAULT_BIND_ADDRESS = "0.0.0.0"
DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
DEFAULT_KUBECONFIG_MODE = "0600"
# The config object holds the compaction defaults (kube-apiserver's 5 minutes, kine's 1000 revisions).
_CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServerConfig)}
DEFAULT_COMPACTION_INTERVAL = float(_CONFIG_DEFAULTS["compact_interval_seconds"])  # type: ignore[arg-type]
DEFAULT_COMPACTION_RETENTION = int(_CONFIG_DEFAULTS["compact_keep_revisions"])  # type: ignore[arg-type]

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# --------------------------------------------------------------------------- flag types


def port(value: str) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}: not a number") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {n}: must be between 1 and 65535")
    return n


def port_or_zero(value: str) -> int:
    """A port, or 0 for any free one."""
    return 0 if value.strip() == "0" else port(value)


def metric_resolution(value: str) -> float:
    """metrics-server's ``--metric-resolution``: a duration of at least 10 s (its own check)."""
    seconds = duration(value)
    if seconds < 10:
        raise argparse.ArgumentTypeError(f"metric-resolution should be a time duration at least 10s, but value "
                                         f"{value} provided")
    return seconds


def ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid IP address {value!r} (examples: 0.0.0.0, 127.0.0.1, ::)"
        ) from None


def host_port(value: str) -> str:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6), port 0 for any free one; kept as written, checked."""
    host, sep, p = value.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"invalid address {value!r}: want HOST:PORT (examples: 127.0.0.1:53, "
                                          "[::1]:5353)")
    ip_address(host)
    if p != "0":
        port(p)
    return f"{ipaddress.ip_address(host.strip('[]'))}:{int(p)}"


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def lb_pool(value: str) -> str:
    from k8py.cloud.provider import parse_pool

    try:
        parse_pool(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid --lb-pool {value!r}: {e} (example: 10.45.0.0/29,"
                                         "192.0.2.10-192.0.2.20)") from None
    return value.replace(" ", "")


def dns_domain(value: str) -> str:
    name = value.strip().rstrip(".").lower()
    if not name or len(name) > 253 or not all(_DNS_LABEL.match(part) for part in name.split(".")):
        raise argparse.ArgumentTypeError(f"invalid DNS domain {value!r} (example: cluster.local)")
    return name


def file_mode(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid mode {value!r}: give octal digits like 0600 or 0644") from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"invalid mode {value!r}: permission bits only, 0000 to 0777")
    return mode


def cidr(value: str) -> str:
    if "," in value:
        raise argparse.ArgumentTypeError(f"{value!r}: dual-stack (two CIDRs) is not supported yet; give one")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid CIDR {value!r}: {e} (example: 10.42.0.0/16)") from None
    if net.num_addresses < 4:
        raise argparse.ArgumentTypeError(f"CIDR {value!r} is too small")
    return str(net)


def ip_list(value: str) -> tuple[str, ...]:
    """``--node-ip``: one address, or an IPv4 and an IPv6 one separated by a comma."""
    out = []
    for part in value.split(","):
        try:
            out.append(str(ipaddress.ip_address(part.strip())))
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid IP address {part.strip()!r}") from None
    if len(out) > 2 or len({":" in a for a in out}) != len(out):
        raise argparse.ArgumentTypeError(f"{value!r}: give at most one IPv4 and one IPv6 address")
    return tuple(out)


def reserved(value: str) -> dict[str, str]:
    """``--system-reserved cpu=500m,memory=512Mi,ephemeral-storage=1Gi``, as kubelet's flag."""
    from k8py.api.quantity import QuantityError, parse_quantity

    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        k, sep, v = part.partition("=")
        if not sep or k not in ("cpu", "memory", "ephemeral-storage", "pid"):
            raise argparse.ArgumentTypeError(
                f"{part!r}: use NAME=QUANTITY with NAME one of cpu, memory, ephemeral-storage, pid")
        try:
            if parse_quantity(v).sign() < 0:
                raise argparse.ArgumentTypeError(f"{part!r}: a reservation cannot be negative")
        except (QuantityError, ValueError):
            raise argparse.ArgumentTypeError(f"{part!r}: invalid quantity {v!r}") from None
        out[k] = v
    return out


def cidr_pair(value: str) -> str:
    """``--cluster-cidr``: one CIDR, or an IPv4 and an IPv6 one separated by a comma (dual-stack
    pods: each gets an address of both families, IPv4 first)."""
    parts = [cidr(p.strip()) for p in value.split(",")]
    if len(parts) > 2 or len({":" in p for p in parts}) != len(parts):
        raise argparse.ArgumentTypeError(f"{value!r}: give one CIDR, or one IPv4 and one IPv6 CIDR")
    return ",".join(sorted(parts, key=lambda p: ":" in p))  # IPv4 first


def node_name(value: str) -> str:
    name = value.strip().lower()
    if not name or len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise argparse.ArgumentTypeError(
            f"invalid node name {value!r}: use lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit (at most 253 characters)"
        )
    return name


def duration(value: str) -> float:
    """A positive duration, as kube's flags take them (``5m``, ``1h30m``, ``90s``), or plain seconds."""
    from k8py.api.gotext import DurationError, parse_duration

    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text)
        except DurationError:
            raise argparse.ArgumentTypeError(
                f"invalid duration {value!r}: give seconds or a duration like 5m, 90s, 1h30m"
            ) from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid duration {value!r}: must be more than 0")
    return seconds


def tls_san(value: str) -> tuple[str, ...]:
    """``--tls-san``: DNS names and IP addresses, comma-separated, the flag repeatable (k3s's)."""
    from k8py.pki import parse_san

    out = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        try:
            out.append(str(parse_san(part)))
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return tuple(out)


def add_service_account_flags(p: argparse.ArgumentParser) -> None:
    """kube-apiserver's service-account token flags (docs/service-accounts.md)."""
    p.add_argument("--service-account-issuer", action="append", default=[], metavar="URL",
                   help="the iss of the tokens the server issues (default https://kubernetes.default.svc.cluster."
                        "local); repeatable: the first signs, all are accepted (to move to a new issuer)")
    p.add_argument("--service-account-signing-key-file", default="", metavar="FILE",
                   help="PEM private key (RSA or ECDSA) that signs service-account tokens (default: "
                        "<data-dir>/tls/service-account.key, made on first start)")
    p.add_argument("--service-account-key-file", action="append", default=[], metavar="FILE",
                   help="PEM file of more public keys (or private keys, certificates) that verify tokens, e.g. "
                        "the previous signing key after a rotation; repeatable; all are published in the JWKS")
    p.add_argument("--service-account-max-token-expiration", type=duration, default=0.0, metavar="DURATION",
                   help="the longest life a TokenRequest may ask for (default: no maximum)")
    p.add_argument("--service-account-extend-token-expiration", type=lambda v: v.lower() in ("true", "1", "yes"),
                   default=True, metavar="BOOL",
                   help="give kubelet's projected tokens (3607 s, bound to a pod) a year, with a warning time "
                        "at 3607 s, as kube does (default true)")
    p.add_argument("--api-audiences", default="", metavar="AUD[,AUD]",
                   help="the audiences of the API (tokens for other audiences are refused; default: the issuers)")


def service_account_config(args: argparse.Namespace, parser: argparse.ArgumentParser | None) -> dict[str, Any]:
    """The service-account flags as ServerConfig fields; a key file that cannot be read, or a
    maximum under an hour, refuses to start (naming the flag and file)."""
    from k8py import satoken

    def fail(msg: str) -> None:
        if parser is not None:
            parser.error(msg)
        raise ValueError(msg)

    max_exp = int(args.service_account_max_token_expiration or 0)
    if max_exp and not 3600 <= max_exp <= satoken.MAX_EXPIRATION_SECONDS:
        fail("--service-account-max-token-expiration must be between 1 hour and 2^32 seconds")
    for f in args.service_account_key_file:
        try:
            satoken.load_public_keys(f)
        except (OSError, ValueError) as e:
            fail(f"--service-account-key-file {f}: {e}")
    if args.service_account_signing_key_file and not os.path.exists(args.service_account_signing_key_file):
        fail(f"--service-account-signing-key-file {args.service_account_signing_key_file}: no such file")
    for iss in args.service_account_issuer:
        if not iss or (":" in iss and not iss.startswith(("https://", "http://"))):
            fail(f"--service-account-issuer {iss!r}: must be a URL (https://...) or a name without ':'")
    return {
        "service_account_issuers": tuple(dict.fromkeys(args.service_account_issuer)),
        "service_account_signing_key_file": args.service_account_signing_key_file,
        "service_account_key_files": tuple(args.service_account_key_file),
        "service_account_max_token_expiration": max_exp,
        "service_account_extend_token_expiration": bool(args.service_account_extend_token_expiration),
        "api_audiences": tuple(a.strip() for a in args.api_audiences.split(",") if a.strip()),
    }


def revisions(value: str) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid revision count {value!r}: not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"invalid revision count {n}: must be 0 or more")
    return n


def _path(value: str) -> str:
    return os.path.abspath(os.path.expanduser(value))


def admission_config_file(value: str) -> str:
    """``--admission-control-config-file``: read and checked now, so that a wrong file refuses to
    start with the line at fault."""
    from k8py.apiserver.admission import config as admission_config

    path = _path(value)
    try:
        admission_config.from_file(path)
    except admission_config.AdmissionConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return path


# --------------------------------------------------------------------------- parser


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "server",
        help="run the control plane: the Kubernetes API server on an embedded SQLite store",
        description=(
            "Run the k8py control plane. On first start it creates the data directory, a cluster CA "
            "and certificates, a token file and an admin kubeconfig; on later starts it reuses them "
            "and every stored object. Stop it with Ctrl-C or SIGTERM."
        ),
    )
    p.add_argument(
        "--data-dir", "-d", type=_path, metavar="DIR",
        help=f"where state, certificates and tokens live (default: {default_data_dir()})",
    )
    p.add_argument(
        "--https-listen-port", type=port, default=DEFAULT_PORT, metavar="PORT",
        help=f"HTTPS port of the API server (default: {DEFAULT_PORT})",
    )
    p.add_argument(
        "--bind-address", type=ip_address, default=DEFAULT_BIND_ADDRESS, metavar="IP",
        help=f"address to listen on (default: {DEFAULT_BIND_ADDRESS}, every interface, as k3s; "
        "127.0.0.1 keeps the API on this machine)",
    )
    p.add_argument(
        "--write-kubeconfig", "-o", type=_path, metavar="FILE",
        help="write the admin kubeconfig here (default: <data-dir>/kubeconfig.yaml)",
    )
    p.add_argument(
        "--write-kubeconfig-mode", type=file_mode, default=file_mode(DEFAULT_KUBECONFIG_MODE), metavar="MODE",
        help=f"file mode of the kubeconfig, octal (default: {DEFAULT_KUBECONFIG_MODE}; 0644 lets other users read it)",
    )
    p.add_argument(
        "--datastore-endpoint", default="", metavar="URL",
        help="where objects are stored: SQLite in <data-dir>/db (default), or etcd v3 as "
             "http(s)://HOST:2379[,http(s)://HOST2:2379,...]",
    )
    p.add_argument("--datastore-cafile", metavar="FILE", help="CA certificate to verify etcd's TLS certificate")
    p.add_argument("--datastore-certfile", metavar="FILE", help="client certificate for etcd (TLS)")
    p.add_argument("--datastore-keyfile", metavar="FILE", help="client key for etcd (TLS)")
    p.add_argument("--datastore-prefix", default="", metavar="PREFIX",
                   help="prefix for every key in etcd, to share one etcd between clusters (default: none; keys "
                        "are /registry/... as kube-apiserver's)")
    p.add_argument("--encryption-provider-config", type=_path, metavar="FILE",
                   help="an EncryptionConfiguration (kube-apiserver's format: aescbc, aesgcm, secretbox, "
                        "identity) for encryption at rest (default: <data-dir>/cred/encryption-config.json, made "
                        "on first start: Secrets with AES-CBC; see `k8py secrets-encrypt`)")
    p.add_argument("--audit-policy-file", type=_path, metavar="FILE",
                   help="an audit Policy (audit.k8s.io/v1): which requests the audit log records, at which level")
    p.add_argument("--audit-log-path", metavar="PATH",
                   help="where the audit log goes, one JSON event a line ('-': standard output)")
    p.add_argument("--audit-log-maxsize", type=whole_number, default=0, metavar="MB",
                   help="rotate the audit log when it reaches this many megabytes (default: 0, never)")
    p.add_argument("--audit-log-maxbackup", type=whole_number, default=0, metavar="N",
                   help="rotated audit log files kept (default: 0, all)")
    p.add_argument("--audit-log-maxage", type=whole_number, default=0, metavar="DAYS",
                   help="days rotated audit log files are kept (default: 0, no limit)")
    p.add_argument(
        "--compaction-interval", type=duration, default=DEFAULT_COMPACTION_INTERVAL, metavar="DURATION",
        help=f"compact the store's history at least this often (default: {DEFAULT_COMPACTION_INTERVAL:g}s, as "
             "kube-apiserver's "
             "--etcd-compaction-interval); the embedded SQLite store also compacts whenever its history "
             "outgrows --compaction-retention or its files grow large",
    )
    p.add_argument(
        "--compaction-retention", type=revisions, default=DEFAULT_COMPACTION_RETENTION, metavar="REVISIONS",
        help=f"revisions of history kept by compaction (default: {DEFAULT_COMPACTION_RETENTION}); watches "
             "and reads older than that get 410 Gone and relist",
    )
    p.add_argument(
        "--disable-agent", action="store_true",
        help="run the control plane only, no node agent for this machine (pods then run only on nodes "
             "joined with `k8py agent`)",
    )
    p.add_argument(
        "--disable-controller-manager", action="store_true",
        help="do not run the controllers in this process (run `k8py controller-manager` elsewhere)",
    )
    p.add_argument(
        "--disable-scheduler", action="store_true",
        help="do not run the scheduler in this process (run `k8py scheduler` elsewhere)",
    )
    p.add_argument(
        "--node-name", type=node_name, metavar="NAME",
        help="name of this node (default: the host name, lower-cased)",
    )
    p.add_argument(
        "--cluster-cidr", type=cidr_pair, default=DEFAULT_CLUSTER_CIDR, metavar="CIDR[,CIDR]",
        help=f"pod network (default: {DEFAULT_CLUSTER_CIDR}), split into one pod CIDR per node",
    )
    p.add_argument(
        "--system-reserved", type=reserved, default={}, metavar="cpu=Q,memory=Q",
        help="resources kept for the system: the node's allocatable is its capacity less these "
             "(and the eviction thresholds), as kubelet's --system-reserved",
    )
    p.add_argument(
        "--kube-reserved", type=reserved, default={}, metavar="cpu=Q,memory=Q",
        help="resources kept for Kubernetes' own daemons, as kubelet's --kube-reserved: taken from "
             "allocatable like --system-reserved",
    )
    p.add_argument(
        "--kubelet-port", type=port, default=10250, metavar="PORT",
        help="port of the node agent's HTTPS API (logs, stats; default: 10250, as kubelet's)",
    )
    p.add_argument(
        "--node-ip", type=ip_list, default=(), metavar="IP[,IP]",
        help="this node's address(es) (IPv4 and/or IPv6; default: the addresses of the default routes)",
    )
    p.add_argument(
        "--service-cidr", type=cidr_pair, default=DEFAULT_SERVICE_CIDR, metavar="CIDR[,CIDR]",
        help=f"service ClusterIP network (default: {DEFAULT_SERVICE_CIDR}), or an IPv4 and an IPv6 one for "
        "dual-stack Services (ipFamilyPolicy PreferDualStack / RequireDualStack; the first is the default "
        "family); the first address of the first is the `kubernetes` Service",
    )
    p.add_argument("--cluster-domain", type=dns_domain, default="cluster.local", metavar="DOMAIN",
                   help="the cluster's DNS domain (default: cluster.local)")
    p.add_argument("--cluster-dns", type=ip_address, default=None, metavar="IP",
                   help="address of the kube-dns Service (default: the tenth address of --service-cidr, "
                        "10.43.0.10)")
    p.add_argument("--cluster-dns-listen", type=host_port, action="append", default=[], metavar="HOST:PORT",
                   help="where the cluster DNS server listens, UDP and TCP (repeatable; default: this node's "
                        "addresses, port 53)")
    p.add_argument("--disable-cluster-dns", action="store_true",
                   help="do not run the cluster DNS server (k3s: --disable coredns)")
    p.add_argument("--disable-kube-proxy", action="store_true",
                   help="do not run the service proxy (nftables) beside the node agent (k3s's flag)")
    p.add_argument("--disable-network-policy", action="store_true",
                   help="do not enforce NetworkPolicies (nftables) on this node (k3s's flag)")
    p.add_argument("--disable-local-storage", action="store_true",
                   help="do not create the local-path StorageClass nor provision its volumes on this node "
                        "(k3s: --disable local-storage)")
    p.add_argument("--lb-pool", type=lb_pool, default=None, metavar="CIDR|FIRST-LAST[,...]",
                   help="addresses for LoadBalancer Services (IPv4 and/or IPv6 CIDRs or ranges), as MetalLB's "
                        "layer-2 pools; default: the nodes' own addresses, one Service per port (as k3s's ServiceLB)")
    p.add_argument("--kube-controller-manager-arg", action="append", default=[], metavar="FLAG=VALUE",
                   help="a flag for the controller manager this server runs, repeatable (k3s's flag), e.g. "
                        "horizontal-pod-autoscaler-sync-period=5s")
    p.add_argument("--disable-cloud-controller", action="store_true",
                   help="do not run the cloud controller (LoadBalancer addresses) in this process (k3s's flag)")
    p.add_argument("--disable-ingress", action="store_true",
                   help="do not run the ingress controller (nginx) beside the node agent (k3s: --disable traefik)")
    from k8py.cli.ingress import add_flags as add_ingress_flags

    add_ingress_flags(p)
    p.add_argument("--disable-metrics-server", action="store_true",
                   help="do not run metrics-server (metrics.k8s.io for kubectl top and autoscaling; k3s: "
                        "--disable metrics-server)")
    p.add_argument("--metrics-server-port", type=port_or_zero, default=4443, metavar="PORT",
                   help="HTTPS port of metrics-server, which the API server proxies metrics.k8s.io to "
                        "(default: 4443; 0: any free port)")
    p.add_argument("--metric-resolution", type=metric_resolution, default=15.0, metavar="DURATION",
                   help="how often metrics-server scrapes the nodes (default: 15s, as k3s; at least 10s)")
    p.add_argument(
        "--tls-san", type=tls_san, action="append", default=[], metavar="NAME[,NAME]",
        help="more host names or IP addresses for the API server's certificate (repeatable, comma-separated), "
             "e.g. the name of a load balancer in front of several servers; a changed list reissues it on start",
    )
    p.add_argument(
        "--certificate-validity", type=duration, default=365 * 86400.0, metavar="DURATION",
        help="how long the certificates the server issues itself live (serving, admin, components; default "
             "8760h); they are renewed, without a restart, 90 days before they expire or in the last quarter "
             "of a shorter life",
    )
    p.add_argument(
        "--cluster-signing-duration", type=duration, default=365 * 86400.0, metavar="DURATION",
        help="the longest life of a certificate signed for a CertificateSigningRequest (kube-controller-"
             "manager's flag; default 8760h); a request's spec.expirationSeconds can only shorten it",
    )
    p.add_argument(
        "--admission-control-config-file", type=admission_config_file, metavar="FILE",
        help="an AdmissionConfiguration (apiserver.config.k8s.io/v1) configuring admission plugins, as "
             "kube-apiserver's flag: PodSecurity's defaults and exemptions (PodSecurityConfiguration), "
             "ResourceQuota's limited resources (ResourceQuotaConfiguration)",
    )
    add_service_account_flags(p)
    p.add_argument("--server", metavar="URL",
                   help="join the cluster of the server at URL as one more server (with --token, on the same "
                        "--datastore-endpoint): the cluster CA and the other shared files are fetched from it")
    p.add_argument("--token", metavar="TOKEN",
                   help="the first server's server token (its <data-dir>/server-token, K10<ca-hash>::server:<secret>)")
    p.add_argument("--debug", action="store_true", help="log at debug level, including every HTTP request")
    nodepressure.add_flags(p)
    p.set_defaults(func=run, parser=p)
    return p


def build_config(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> ServerConfig:
    """Resolve every default once, into the one config object the server runs with."""
    for spart in args.service_cidr.split(","):
        service = ipaddress.ip_network(spart)
        for part in args.cluster_cidr.split(","):
            cluster = ipaddress.ip_network(part)
            if cluster.version == service.version and cluster.overlaps(service):  # type: ignore[arg-type]
                msg = f"--cluster-cidr {cluster} and --service-cidr {service} overlap; pick two separate networks"
                if parser is not None:
                    parser.error(msg)
                raise ValueError(msg)
    default_node = socket.gethostname().lower()
    try:
        default_node = node_name(default_node)
    except argparse.ArgumentTypeError:
        default_node = "k8py-server"
    return ServerConfig(
        data_dir=args.data_dir or default_data_dir(),
        https_listen_port=args.https_listen_port,
        bind_address=args.bind_address,
        write_kubeconfig=args.write_kubeconfig or "",
        write_kubeconfig_mode=args.write_kubeconfig_mode,
        datastore_endpoint=args.datastore_endpoint,
        disable_agent=args.disable_agent,
        datastore_prefix=args.datastore_prefix,
        datastore_cafile=args.datastore_cafile,
        datastore_certfile=args.datastore_certfile,
        datastore_keyfile=args.datastore_keyfile,
        encryption_provider_config=args.encryption_provider_config or "",
        audit_policy_file=args.audit_policy_file or "",
        audit_log_path=audit_log_path(args, parser),
        audit_log_maxsize=args.audit_log_maxsize,
        audit_log_maxbackup=args.audit_log_maxbackup,
        audit_log_maxage=args.audit_log_maxage,
        disable_controller_manager=args.disable_controller_manager,
        disable_scheduler=args.disable_scheduler,
        node_name=args.node_name or default_node,
        node_ips=tuple(args.node_ip),
        kubelet_port=args.kubelet_port,
        system_reserved=tuple(sorted(args.system_reserved.items())),
        kube_reserved=tuple(sorted(args.kube_reserved.items())),
        node_pressure=nodepressure.flags_of(args, parser),
        cluster_cidr=args.cluster_cidr,
        service_cidr=args.service_cidr,
        cluster_domain=args.cluster_domain,
        cluster_dns=args.cluster_dns or "",
        cluster_dns_listen=tuple(args.cluster_dns_listen),
        disable_cluster_dns=args.disable_cluster_dns,
        disable_kube_proxy=args.disable_kube_proxy,
        disable_network_policy=args.disable_network_policy,
        disable_local_storage=args.disable_local_storage,
        lb_pool=args.lb_pool or "",
        disable_cloud_controller=args.disable_cloud_controller,
        controller_manager_options=controller_manager_options(args, parser),
        disable_ingress=args.disable_ingress,
        ingress_http_port=args.ingress_http_port,
        ingress_https_port=args.ingress_https_port,
        disable_metrics_server=args.disable_metrics_server,
        metrics_server_port=args.metrics_server_port,
        metric_resolution=args.metric_resolution,
        compact_interval_seconds=args.compaction_interval,
        compact_keep_revisions=args.compaction_retention,
        tls_sans=tuple(dict.fromkeys(s for group in args.tls_san for s in group)),
        cert_validity_seconds=args.certificate_validity,
        cluster_signing_duration_seconds=args.cluster_signing_duration,
        admission_control_config_file=args.admission_control_config_file or "",
        **service_account_config(args, parser),
    )


def whole_number(value: str) -> int:
    """A count or size flag: a whole number, 0 or more."""
    try:
        n = int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}: give a whole number (0 or more)") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"invalid number {n}: must be 0 or more")
    return n


def controller_manager_options(args: argparse.Namespace,
                               parser: argparse.ArgumentParser | None) -> tuple[tuple[str, Any], ...]:
    """``--kube-controller-manager-arg`` as the in-process controller manager's options; a flag it
    does not take is refused rather than ignored."""
    from k8py.cli.controllermanager import server_arg_options

    try:
        return tuple(sorted(server_arg_options(args.kube_controller_manager_arg).items()))
    except ValueError as e:
        msg = f"--kube-controller-manager-arg: {e}"
        if parser is not None:
            parser.error(msg)
        raise ValueError(msg) from None


def audit_log_path(args: argparse.Namespace, parser: argparse.ArgumentParser | None) -> str:
    """``--audit-log-path`` made absolute; an audit flag without its partner is refused (kube
    would silently log nothing)."""
    path = args.audit_log_path or ""
    if bool(path) != bool(args.audit_policy_file):
        msg = ("--audit-policy-file needs --audit-log-path (a file, or - for standard output)" if not path else
               "--audit-log-path needs --audit-policy-file (which requests to record, at which level)")
        if parser is not None:
            parser.error(msg)
        raise ValueError(msg)
    return path if path in ("", "-") else _path(path)


def prepare_server(config: ServerConfig) -> PKI:
    """Everything the API server needs on disk: data dir, certificates, kubeconfig, token file.

    Idempotent; the data directory itself is 0755 so that a kubeconfig written there with
    ``--write-kubeconfig-mode 0644`` is readable by other users; the secrets inside are private
    (tls/ 0700, keys and the token file 0600).
    """
    from k8py.apiserver.authn import ensure_token_file
    from k8py.kubeconfig import write_admin_kubeconfig
    from k8py.pki import ensure_pki

    os.makedirs(config.data_dir, mode=0o755, exist_ok=True)
    pki = ensure_pki(config)
    ensure_token_file(config.token_file)
    from k8py.serverjoin import ensure_server_token

    ensure_server_token(config.data_dir)  # what a second server joins with (`--server URL --token ...`)
    if not config.encryption_provider_config:  # k3s: a generated key encrypts Secrets from the first start
        from k8py.storage.encryption import ensure_default_config

        ensure_default_config(config.encryption_config_path)
    write_admin_kubeconfig(config, pki)
    return pki


def join(args: argparse.Namespace, config: ServerConfig) -> int:
    """``--server URL --token TOKEN``: the shared files from the first server, into our data dir."""
    import asyncio

    from k8py.serverjoin import JoinError, fetch_bootstrap, write_bootstrap_files

    if not args.token:
        args.parser.error("--server needs --token (the first server's <data-dir>/server-token)")
    if not config.datastore_endpoint:
        args.parser.error("joining a server needs the cluster's shared datastore: give the first server's "
                          "--datastore-endpoint (an embedded SQLite store cannot be shared)")
    try:
        files = asyncio.run(fetch_bootstrap(args.server, args.token))
        written = write_bootstrap_files(config.data_dir, files)
    except JoinError as e:
        log.error("cannot join %s: %s", args.server, e)
        return 1
    except OSError as e:
        log.error("cannot write the data directory %s: %s", config.data_dir, e)
        return 1
    log.info("joined the cluster of %s: %s", args.server, ", ".join(os.path.relpath(w, config.data_dir)
                                                                   for w in written))
    return 0


def run(args: argparse.Namespace) -> int:
    config = build_config(args, args.parser)
    if args.server:
        rc = join(args, config)
        if rc:
            return rc
    elif args.token:
        args.parser.error("--token is for joining: give the first server's URL with --server too")
    try:
        prepare_server(config)
    except OSError as e:
        log.error("cannot prepare the data directory %s: %s", config.data_dir, e)
        return 1
    from k8py.cli.process import run_server

    return run_server(config)
