"""Server configuration, resolved once from flags into one object (no module globals)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


def default_data_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/k8py"
    return os.path.join(os.path.expanduser("~"), ".local", "share", "k8py")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    data_dir: str = field(default_factory=default_data_dir)
    https_listen_port: int = 6443
    bind_address: str = "127.0.0.1"
    write_kubeconfig: str = ""  # "" -> <data_dir>/kubeconfig.yaml
    write_kubeconfig_mode: int = 0o600
    datastore_endpoint: str = ""  # "" -> sqlite in data_dir; http(s)://... -> etcd
    datastore_prefix: str = ""  # prepended to every etcd key (kube's keys already start with /registry/)
    datastore_cafile: str | None = None
    datastore_certfile: str | None = None
    datastore_keyfile: str | None = None
    # Encryption at rest and the audit log (kube-apiserver's flags). "" encryption config ->
    # <data_dir>/cred/encryption-config.json, generated on first start (Secrets, aescbc).
    encryption_provider_config: str = ""
    audit_policy_file: str = ""  # "" -> no audit log
    audit_log_path: str = ""  # "-" -> standard output
    audit_log_maxsize: int = 0  # MB before the file is rotated; 0: never
    audit_log_maxbackup: int = 0  # rotated files kept; 0: all
    audit_log_maxage: int = 0  # days rotated files are kept; 0: no limit
    disable_agent: bool = False
    node_ips: tuple[str, ...] = ()  # --node-ip; empty: the default-route addresses
    kubelet_port: int = 10250  # the node agent's API
    system_reserved: tuple[tuple[str, str], ...] = ()  # --system-reserved
    kube_reserved: tuple[tuple[str, str], ...] = ()  # --kube-reserved
    node_pressure: tuple[tuple[str, str], ...] = ()  # --eviction-* and --pod-max-pids (cli/nodepressure.py)
    disable_controller_manager: bool = False  # k3s's flag name
    disable_scheduler: bool = False  # k3s's flag name
    node_name: str = ""
    cluster_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"
    # Cluster DNS (k3s's flags): the domain, the kube-dns Service address ("" -> the tenth address
    # of the service range) and where the server listens ("" -> the node's addresses, port 53)
    cluster_domain: str = "cluster.local"
    cluster_dns: str = ""
    cluster_dns_listen: tuple[str, ...] = ()  # HOST:PORT each
    disable_cluster_dns: bool = False
    disable_kube_proxy: bool = False  # k3s's flag: no service proxy beside the node agent
    disable_network_policy: bool = False  # k3s's flag: no NetworkPolicy agent beside the node agent
    disable_local_storage: bool = False  # k3s's --disable local-storage: no local-path provisioner
    lb_pool: str = ""  # --lb-pool: LoadBalancer addresses; "" -> the nodes' addresses (ServiceLB's way)
    disable_cloud_controller: bool = False  # k3s's flag
    # --kube-controller-manager-arg (k3s's flag): options of the in-process controller manager
    controller_manager_options: tuple[tuple[str, Any], ...] = ()
    # The ingress controller (nginx) beside the node agent: its ports (moved aside when taken)
    disable_ingress: bool = False
    ingress_http_port: int = 80
    ingress_https_port: int = 443
    # metrics-server (k3s bundles it): metrics.k8s.io through the aggregation layer, for kubectl top
    disable_metrics_server: bool = False
    metrics_server_port: int = 4443  # its HTTPS port (metrics-server's historic --secure-port); 0: any free one
    metric_resolution: float = 15.0  # metrics-server's --metric-resolution, as k3s sets it
    # Compaction: keep this many revisions of history (kube-apiserver compacts every 5 minutes).
    compact_interval_seconds: float = 300.0
    compact_keep_revisions: int = 1000
    tls: bool = True  # plain HTTP only for tests/benchmarks that ask for it
    admission_control_config_file: str = ""  # kube-apiserver's flag: admission plugins' configuration
    tls_sans: tuple[str, ...] = ()  # --tls-san: extra DNS names / IPs of the serving certificate
    cert_validity_seconds: float = 365 * 86400.0  # life of the certificates the server issues itself
    cluster_signing_duration_seconds: float = 365 * 86400.0  # kube's --cluster-signing-duration (CSRs)
    # Service-account tokens (kube-apiserver's flags): the first issuer signs, all are accepted;
    # "" signing key file -> <data_dir>/tls/service-account.key, made on first use
    service_account_issuers: tuple[str, ...] = ()  # --service-account-issuer; () -> kube's default
    service_account_signing_key_file: str = ""  # --service-account-signing-key-file
    service_account_key_files: tuple[str, ...] = ()  # --service-account-key-file: more keys that verify
    service_account_max_token_expiration: int = 0  # seconds; 0: no maximum
    service_account_extend_token_expiration: bool = True
    api_audiences: tuple[str, ...] = ()  # --api-audiences; () -> the issuers

    @property
    def kubeconfig_path(self) -> str:
        return self.write_kubeconfig or os.path.join(self.data_dir, "kubeconfig.yaml")

    @property
    def encryption_config_path(self) -> str:
        """The EncryptionConfiguration in use: the flag's, or the one generated in the data dir."""
        return self.encryption_provider_config or os.path.join(self.data_dir, "cred", "encryption-config.json")

    @property
    def tls_dir(self) -> str:
        return os.path.join(self.data_dir, "tls")

    @property
    def token_file(self) -> str:
        return os.path.join(self.data_dir, "token")

    @property
    def service_account_key_path(self) -> str:
        return self.service_account_signing_key_file or os.path.join(self.tls_dir, "service-account.key")

    @property
    def db_path(self) -> str:
        return os.path.join(self.data_dir, "db", "state.db")
