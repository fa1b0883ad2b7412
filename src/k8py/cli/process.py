"""The composition root of ``k8py server`` (as k3s's server command): the API server, then the
controller manager and the scheduler in the same process, each an API client over HTTPS with
its own certificate. ``k8py.apiserver`` starts only the API server; this module puts the parts
together."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import os
import signal
import socket
import time
from typing import Any

from k8py.api.configfile import ConfigFileError
from k8py.apiserver.server import start, stop
from k8py.cli import nodepressure
from k8py.config import ServerConfig
from k8py.runner import install_uvloop
from k8py.storage.interface import StoreError

log = logging.getLogger("k8py.server")


def run_server(config: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    install_uvloop()
    tune_gc()
    return asyncio.run(_main(config))


# CPython's default collects the young generation every 700 allocations and the whole heap every
# 100 of those; with a server's working set (watch ring, caches, tens of thousands of objects)
# a full collection stalls the loop for tens of milliseconds, which showed as the p99 of watch
# delivery (docs/benchmarks.md, "The request path after issues 9 and 10"). Few of a request's
# objects are cyclic garbage: collect less often.
GC_THRESHOLDS = (50_000, 50, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


async def _main(config: ServerConfig) -> int:
    from k8py import pki as pki_mod
    from k8py.apiserver.authn import Authenticator
    from k8py.apiserver.kubeletproxy import KubeletConnection
    from k8py.apiserver.rbac.node import node_and_rbac

    t0 = time.monotonic()
    p = pki_mod.ensure_pki(config)
    from k8py.satoken import make_signing_key

    make_signing_key(config.service_account_key_path)  # service-account tokens' key, made on first start
    kubelet_cert, kubelet_key = pki_mod.ensure_kubelet_client_certificate(  # for pods/log, nodes/proxy
        p, validity=dt.timedelta(seconds=config.cert_validity_seconds))
    front_proxy = pki_mod.ensure_front_proxy_certificates(  # the aggregation layer's proxy client certificate
        p, validity=dt.timedelta(seconds=config.cert_validity_seconds))
    ssl_ctx = pki_mod.server_ssl_context(p) if config.tls else None
    authn = Authenticator(config, p)
    authz = node_and_rbac()  # --authorization-mode=Node,RBAC
    try:
        cp = await start(config, ssl_context=ssl_ctx, authenticator=authn, authorizer=authz)
    except StoreError as e:
        log.error("cannot open the datastore: %s", e)
        return 1
    except ConfigFileError as e:  # a malformed encryption config or audit policy: the line at fault
        log.error("cannot start: %s", e)
        return 1
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", config.bind_address, config.https_listen_port, e)
        return 1
    cp.api.kubelet = KubeletConnection(p.ca_cert, kubelet_cert, kubelet_key)
    from k8py.apiserver.aggregator import (
        ProxyClientCertificate,
        authentication_info_from_files,
        keep_authentication_info,
        publish_authentication_info,
    )

    if cp.http.aggregator is not None:
        cp.http.aggregator.proxy_cert = ProxyClientCertificate(front_proxy.client_cert, front_proxy.client_key)
    # kube-system/extension-apiserver-authentication: how extension API servers trust callers and this proxy
    await publish_authentication_info(cp, authentication_info_from_files(p.ca_cert, front_proxy.ca_cert))
    # ... and kept so: rewritten when changed or deleted, and from the CA files every minute
    cp.tasks = [*(cp.tasks or []), asyncio.create_task(keep_authentication_info(cp, p.ca_cert, front_proxy.ca_cert),
                                                       name="authentication-info")]
    from k8py.serverjoin import BOOTSTRAP_PATH, ServerBootstrap

    # `k8py server --server URL --token TOKEN` elsewhere fetches the shared files here, sealed with the token
    cp.http.extra_public[BOOTSTRAP_PATH] = ServerBootstrap(config.data_dir).handle  # type: ignore[assignment]
    # bootstrap tokens (kube-system Secrets) authenticate joining nodes: kept current by a store watch
    cp.tasks = [*(cp.tasks or []), authn.watch_bootstrap_tokens(cp.objects, cp.registry)]
    stop_ev = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_ev.set)
    components = start_components(config, p, stop_ev, front_proxy)
    from k8py.cli.certificate import ServerCertificates

    def new_kubelet_client(cert: str, key: str) -> None:
        cp.api.kubelet = KubeletConnection(p.ca_cert, cert, key)

    renewal = ServerCertificates(config, clients=[c for _, c in components], on_kubelet_client=new_kubelet_client,
                                 kubelet_serving=_embedded_kubelet_names(config) if any(
                                     t.get_name() == "node-agent" for t, _ in components) else None)
    renewal_task = asyncio.create_task(renewal.run(stop_ev), name="certificate-renewal")
    scheme = "https" if config.tls else "http"
    log.info("k8py API server ready on %s://%s:%d (store %s, revision %d, kubeconfig %s) in %.2fs",
             scheme, config.bind_address, config.https_listen_port,
             config.datastore_endpoint or f"sqlite:{config.db_path}", await cp.store.current_revision(),
             config.kubeconfig_path, time.monotonic() - t0)
    await stop_ev.wait()
    log.info("shutting down")
    await renewal_task
    for task, client in components:
        try:
            async with asyncio.timeout(15):
                await task  # a timeout cancels it (awaiting a task passes the cancel on) and waits for its end
        except (TimeoutError, asyncio.CancelledError, Exception) as e:  # noqa: BLE001 - stop the rest regardless
            log.warning("component %s did not stop cleanly: %s", task.get_name(), e or type(e).__name__)
        await client.close()
    await stop(cp)
    log.info("stopped")
    return 0


def loopback_client(config: ServerConfig, pki: Any, user: str, groups: tuple[str, ...], component: str) -> Any:
    """An API client for an in-process component, with its own client certificate: components
    talk to this server over HTTPS like any other client (the one rule of the architecture)."""
    from k8py import pki as pki_mod
    from k8py.client.api import Client
    from k8py.client.config import ClientConfig

    host = config.bind_address if config.bind_address not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    cert, key = pki_mod.issue_client_certificate(pki, user, groups,
                                                 validity=dt.timedelta(seconds=config.cert_validity_seconds))
    scheme = "https" if config.tls else "http"
    cc = ClientConfig(server=f"{scheme}://{host}:{config.https_listen_port}", ca_file=pki.ca_cert, cert_data=cert,
                      key_data=key)
    return Client(cc, component=component)


def start_components(config: ServerConfig, pki: Any, stop_ev: asyncio.Event,
                     front_proxy: Any = None) -> list[tuple[asyncio.Task[Any], Any]]:
    """The controller manager and the scheduler in this process, as k3s runs them."""
    out: list[tuple[asyncio.Task[Any], Any]] = []
    if not config.disable_controller_manager:
        from k8py.controllers.manager import ControllerManager

        client = loopback_client(config, pki, "system:kube-controller-manager", (), "kube-controller-manager")
        mgr = ControllerManager(client, identity=f"{config.node_name or socket.gethostname()}_{os.getpid()}",
                                # kube's --root-ca-file, --cluster-cidr and --cluster-signing-{cert,key}-file
                                options={"root_ca_file": pki.ca_cert, "cluster_cidr": config.cluster_cidr,
                                         "cluster_signing_cert_file": pki.ca_cert,
                                         "cluster_signing_key_file": pki.ca_key,
                                         "cluster_signing_duration": config.cluster_signing_duration_seconds,
                                         "service_account_private_key_file": config.service_account_key_path,
                                         **dict(config.controller_manager_options),
                                         # the APIService availability check presents the front-proxy certificate
                                         **({"proxy_client_cert_file": front_proxy.client_cert,
                                             "proxy_client_key_file": front_proxy.client_key}
                                            if front_proxy is not None else {})})
        out.append((asyncio.create_task(mgr.run(stop_ev), name="controller-manager"), client))
    if not config.disable_scheduler:
        from k8py.scheduler import Scheduler

        client = loopback_client(config, pki, "system:kube-scheduler", (), "kube-scheduler")
        sched = Scheduler(client, None, identity=f"{config.node_name or socket.gethostname()}_{os.getpid()}")
        out.append((asyncio.create_task(sched.run(stop_ev), name="scheduler"), client))
    if not config.disable_cluster_dns:
        out.append(start_cluster_dns(config, pki, stop_ev))
    if not config.disable_cloud_controller:
        from k8py.cloud.controller import USER, ServiceLBController
        from k8py.cloud.provider import LocalProvider

        client = loopback_client(config, pki, USER, (), "cloud-controller-manager")
        ccm = ServiceLBController(client, LocalProvider(config.lb_pool))
        out.append((asyncio.create_task(ccm.run(stop_ev), name="cloud-controller-manager"), client))
    if not config.disable_agent and not config.disable_kube_proxy:
        proxy = start_proxy(config, pki, stop_ev)
        if proxy is not None:
            out.append(proxy)
    if not config.disable_agent and not config.disable_network_policy:
        netpol = start_netpol(config, pki, stop_ev)
        if netpol is not None:
            out.append(netpol)
    if not config.disable_agent and not config.disable_local_storage:
        out.append(start_local_path(config, pki, stop_ev))
    if not config.disable_agent and not config.disable_ingress:
        ingress = start_ingress(config, pki, stop_ev)
        if ingress is not None:
            out.append(ingress)
    if not config.disable_metrics_server:
        out.append(start_metrics_server(config, pki, stop_ev))
    if not config.disable_agent:
        node = start_agent(config, pki, stop_ev)
        if node is not None:
            out.append(node)
    return out


def _embedded_kubelet_names(config: ServerConfig) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """The embedded node agent's name, and the addresses and names of its serving certificate."""
    name = config.node_name or socket.gethostname().lower()
    return name, tuple(dict.fromkeys((*config.node_ips, "127.0.0.1"))), (name, "localhost")


def start_proxy(config: ServerConfig, pki: Any, stop_ev: asyncio.Event) -> tuple[asyncio.Task[Any], Any] | None:
    """The service proxy for this machine (kube-proxy's place in k3s), as ``system:kube-proxy``."""
    from k8py.cli.proxy import start_beside_agent

    return start_beside_agent(lambda: loopback_client(config, pki, "system:kube-proxy", (), "kube-proxy"),
                              config.node_name or socket.gethostname().lower(), config.cluster_cidr, stop_ev, log)


def start_netpol(config: ServerConfig, pki: Any, stop_ev: asyncio.Event) -> tuple[asyncio.Task[Any], Any] | None:
    """The NetworkPolicy agent for this machine's pods (k3s's embedded policy controller), as
    ``system:k8py-network-policy``."""
    from k8py.cli.netpol import start_beside_agent
    from k8py.netpol.controller import USER

    return start_beside_agent(lambda: loopback_client(config, pki, USER, (), "k8py-network-policy"),
                              config.node_name or socket.gethostname().lower(), stop_ev, log)


def start_local_path(config: ServerConfig, pki: Any, stop_ev: asyncio.Event) -> tuple[asyncio.Task[Any], Any]:
    """This node's local-path provisioner (k3s's local-storage: the default StorageClass
    ``local-path``), as ``system:k8py-local-path-provisioner``; its volumes in ``<data-dir>/storage``."""
    from k8py.kubelet.localpath import COMPONENT, USER, LocalPathProvisioner

    client = loopback_client(config, pki, USER, (), COMPONENT)
    prov = LocalPathProvisioner(client, config.node_name or socket.gethostname().lower(), config.data_dir)
    return asyncio.create_task(prov.run(stop_ev), name=COMPONENT), client


def start_ingress(config: ServerConfig, pki: Any, stop_ev: asyncio.Event) -> tuple[asyncio.Task[Any], Any] | None:
    """The ingress controller for this machine (k3s's bundled ingress), as ``system:k8py-ingress``,
    its nginx's files in ``<data-dir>/ingress``."""
    from k8py.cli.ingress import start_beside_agent
    from k8py.ingress.controller import USER
    from k8py.kubelet.node import node_addresses

    addresses = tuple(a["address"] for a in node_addresses(config.node_name or "node", config.node_ips)
                      if a["type"] == "InternalIP")
    return start_beside_agent(lambda: loopback_client(config, pki, USER, (), "k8py-ingress"),
                              os.path.join(config.data_dir, "ingress"), config.ingress_http_port,
                              config.ingress_https_port, addresses, stop_ev, log)


def start_metrics_server(config: ServerConfig, pki: Any, stop_ev: asyncio.Event) -> tuple[asyncio.Task[Any], Any]:
    """metrics-server (k3s bundles it) as ``system:metrics-server``: it scrapes the kubelets with its
    client certificate of the cluster CA (which k8py's kubelets require) and registers
    ``v1beta1.metrics.k8s.io``; its serving certificate in ``<data-dir>/metrics-server/tls``."""
    from k8py.kubelet.node import node_addresses
    from k8py.metricsserver.component import USER, MetricsServer, Options, kubelet_client

    client = loopback_client(config, pki, USER, (), "metrics-server")
    home = os.path.join(config.data_dir, "metrics-server")
    advertise = config.bind_address
    if advertise in ("0.0.0.0", "::", ""):  # listening everywhere: the API server reaches it at the node's address
        advertise = next((a["address"] for a in node_addresses(config.node_name or "node", config.node_ips)
                          if a["type"] == "InternalIP"), "127.0.0.1")
    opts = Options(listen_host=config.bind_address or "127.0.0.1", port=config.metrics_server_port,
                   advertise=advertise, cert_dir=os.path.join(home, "tls"), resolution=config.metric_resolution,
                   # metrics-server's 10 s, within the 90 % of a resolution it demands of the flag
                   scrape_timeout=min(10.0, 0.9 * config.metric_resolution))
    # its API client's certificate (renewed in place by the server) is presented to kubelets too
    ms = MetricsServer(client, opts, kubelet_client(pki.ca_cert, client.config))
    return asyncio.create_task(ms.run(stop_ev), name="metrics-server"), client


def cluster_dns_listen(config: ServerConfig) -> list[tuple[str, int]]:
    """``--cluster-dns-listen``, else port 53 on this node's addresses (the pods' route to it)."""
    if config.cluster_dns_listen:
        return [(h, int(p)) for h, _, p in (a.rpartition(":") for a in config.cluster_dns_listen)]
    from k8py.kubelet.node import node_addresses

    ips = [a["address"] for a in node_addresses(config.node_name or "node", config.node_ips)
           if a["type"] == "InternalIP"]
    return [(ip, 53) for ip in ips]


def agent_cluster_dns(config: ServerConfig) -> tuple[str, ...]:
    """The nameserver pods get (kubelet's --cluster-dns): the kube-dns Service, which the service
    proxy forwards to the DNS server; none without them (pods then use the node's resolvers)."""
    if config.disable_cluster_dns or config.disable_kube_proxy:
        return ()
    from k8py.dns.cluster import cluster_dns_ip

    return (config.cluster_dns or cluster_dns_ip(config.service_cidr),)


def start_cluster_dns(config: ServerConfig, pki: Any, stop_ev: asyncio.Event) -> tuple[asyncio.Task[Any], Any]:
    """The cluster DNS (CoreDNS's place in k3s) as its own API client, in this process."""
    from k8py.dns.cluster import USER, ClusterDNS, cluster_dns_ip
    from k8py.dns.server import upstreams_from_resolv_conf

    client = loopback_client(config, pki, USER, (), "k8py-dns")
    dns = ClusterDNS(client, domain=config.cluster_domain, listen=cluster_dns_listen(config),
                     upstreams=upstreams_from_resolv_conf(),
                     service_ip=config.cluster_dns or cluster_dns_ip(config.service_cidr))

    async def run() -> None:
        try:
            await dns.run(stop_ev)
        except OSError as e:  # port 53 taken: the cluster runs on, without its DNS, and says so
            log.error("cluster DNS not started: cannot listen on %s: %s (set --cluster-dns-listen HOST:PORT, "
                      "or --disable-cluster-dns)", ", ".join(f"{h}:{p}" for h, p in dns.listen), e)

    return asyncio.create_task(run(), name="cluster-dns"), client


def start_agent(config: ServerConfig, pki: Any, stop_ev: asyncio.Event) -> tuple[asyncio.Task[Any], Any] | None:
    """The node agent for this machine (as k3s's server runs its agent), with its own node
    credentials; when the machine cannot run pods, say exactly what is missing and run the
    control plane only (never half a node)."""
    from k8py import pki as pki_mod
    from k8py.kubelet.run import NodeOptions, missing_prerequisites, node_paths, run_node
    from k8py.tlsfiles import write_private_file

    missing = missing_prerequisites(config.data_dir)
    if missing:
        log.error("this machine cannot run pods; running the control plane only (as with --disable-agent). "
                  "Missing:\n  - %s", "\n  - ".join(missing))
        return None
    from k8py.cli.certificate import kubelet_serving_files

    name, ips, hostnames = _embedded_kubelet_names(config)
    tls = os.path.join(node_paths(config.data_dir)["agent"], "tls")
    os.makedirs(tls, 0o700, exist_ok=True)
    cert, key = pki_mod.issue_kubelet_serving_certificate(
        pki, name, ips=ips, hostnames=hostnames, validity=dt.timedelta(seconds=config.cert_validity_seconds))
    cert_file, key_file = kubelet_serving_files(config.data_dir)
    write_private_file(cert_file, cert, 0o644)
    write_private_file(key_file, key)
    client = loopback_client(config, pki, f"system:node:{name}", ("system:nodes",), "kubelet")
    opts = NodeOptions(node_name=name, data_dir=config.data_dir, node_ips=config.node_ips,
                       cluster_cidrs=tuple(config.cluster_cidr.split(",")), kubelet_port=config.kubelet_port,
                       system_reserved=dict(config.system_reserved), kube_reserved=dict(config.kube_reserved),
                       eviction=nodepressure.eviction_config(config.node_pressure),
                       pod_max_pids=nodepressure.pod_max_pids(config.node_pressure),
                       container_gc_period=nodepressure.container_gc_period(config.node_pressure),
                       cluster_dns=agent_cluster_dns(config),
                       serving_cert=cert_file, serving_key=key_file, client_ca=pki.ca_cert)
    return asyncio.create_task(run_node(client, opts, stop_ev), name="node-agent"), client
