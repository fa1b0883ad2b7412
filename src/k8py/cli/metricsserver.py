"""``k8py metrics-server``: metrics-server alone, against any API server (``k8py server`` runs it
by default; this is for running it elsewhere, e.g. beside a server started with
``--disable-metrics-server``, or a second one for availability).

Its flags are metrics-server's where they mean the same: ``--secure-port``, ``--bind-address``,
``--cert-dir``, ``--metric-resolution``, ``--kubelet-certificate-authority``,
``--kubelet-client-certificate``/``--kubelet-client-key`` and ``--kubelet-request-timeout``; and
``--advertise-address``, the address the API server reaches it at (published in its
EndpointSlice). k8py's kubelets require a client certificate of the cluster CA: the kubeconfig's
is used unless ``--kubelet-client-certificate`` names another. The kubeconfig's user needs
metrics-server's RBAC (``k8py kubeconfig create --user system:metrics-server`` makes one whose
user has it).
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl

from k8py.runner import add_kubeconfig_flags, component_config, run_with_client

__all__ = ["add_parser"]

log = logging.getLogger("k8py.metricsserver")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    from k8py.cli.server import duration, ip_address, metric_resolution, port_or_zero
    from k8py.config import default_data_dir

    p = subparsers.add_parser(
        "metrics-server", help="serve metrics.k8s.io (kubectl top) from the kubelets' resource metrics",
        description="Run metrics-server: scrape every node's kubelet (/metrics/resource) each --metric-resolution "
                    "and serve metrics.k8s.io/v1beta1 over HTTPS for the API server's aggregation layer; it "
                    "registers the APIService v1beta1.metrics.k8s.io, the Service kube-system/metrics-server and "
                    "an EndpointSlice to --advertise-address:--secure-port.")
    add_kubeconfig_flags(p)
    p.add_argument("--secure-port", type=port_or_zero, default=4443, metavar="PORT",
                   help="HTTPS port to serve on (default: 4443; 0: any free port)")
    p.add_argument("--bind-address", type=ip_address, default="0.0.0.0", metavar="IP",
                   help="address to listen on (default: 0.0.0.0, every interface)")
    p.add_argument("--advertise-address", type=ip_address, default=None, metavar="IP",
                   help="the address the API server reaches this server at (default: --bind-address, or this "
                        "machine's default-route address when that is 0.0.0.0 or ::)")
    p.add_argument("--cert-dir", default=os.path.join(default_data_dir(), "metrics-server", "tls"), metavar="DIR",
                   help="where its serving certificate and CA are made and kept (default: "
                        "<data-dir>/metrics-server/tls)")
    p.add_argument("--metric-resolution", type=metric_resolution, default=15.0, metavar="DURATION",
                   help="how often to scrape the nodes (default: 15s; at least 10s)")
    p.add_argument("--kubelet-certificate-authority", metavar="FILE",
                   help="CA that signs the kubelets' serving certificates (default: the kubeconfig's CA)")
    p.add_argument("--kubelet-client-certificate", metavar="FILE",
                   help="client certificate to present to kubelets (default: the kubeconfig's)")
    p.add_argument("--kubelet-client-key", metavar="FILE", help="its key")
    p.add_argument("--kubelet-request-timeout", type=duration, default=10.0, metavar="DURATION",
                   help="how long a kubelet may take to answer (default: 10s)")
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    from k8py.client.config import ClientConfig, load_client_certificate
    from k8py.metricsserver.component import MetricsServer, Options
    from k8py.metricsserver.scraper import KubeletClient

    if bool(args.kubelet_client_certificate) != bool(args.kubelet_client_key):
        args.parser.error("--kubelet-client-certificate and --kubelet-client-key go together")
    if args.kubelet_request_timeout > args.metric_resolution * 0.9:
        args.parser.error(f"metric-resolution should be larger than kubelet-request-timeout, but metric-resolution "
                          f"value {args.metric_resolution:g}s kubelet-request-timeout value "
                          f"{args.kubelet_request_timeout:g}s provided")
    cfg = component_config(args, log, what="metrics-server")
    if cfg is None:
        return 1
    if not args.kubelet_client_certificate and not (cfg.cert_data or cfg.cert_file):
        log.error("k8py's kubelets accept only client certificates of the cluster CA, and the kubeconfig's user has "
                  "none: give --kubelet-client-certificate and --kubelet-client-key, or a kubeconfig with a client "
                  "certificate (k8py kubeconfig create --user system:metrics-server)")
        return 1
    try:
        if args.kubelet_certificate_authority:
            ctx = ssl.create_default_context(cafile=args.kubelet_certificate_authority)
        elif cfg.ca_data:
            ctx = ssl.create_default_context(cadata=cfg.ca_data.decode("ascii"))
        else:
            ctx = ssl.create_default_context(cafile=cfg.ca_file)
        creds = cfg
        if args.kubelet_client_certificate:
            creds = ClientConfig(server=cfg.server, cert_file=args.kubelet_client_certificate,
                                 key_file=args.kubelet_client_key)
        load_client_certificate(ctx, creds)  # a wrong file fails here, before anything starts
    except (OSError, ssl.SSLError, ValueError) as e:
        log.error("cannot load the kubelet client's TLS files: %s", e)
        return 1
    advertise = args.advertise_address or args.bind_address
    if advertise in ("0.0.0.0", "::"):
        from k8py.kubelet.node import node_addresses

        advertise = next((a["address"] for a in node_addresses("metrics-server")
                          if a["type"] == "InternalIP"), "127.0.0.1")
    opts = Options(listen_host=args.bind_address, port=args.secure_port, advertise=advertise, cert_dir=args.cert_dir,
                   resolution=args.metric_resolution, scrape_timeout=args.kubelet_request_timeout)
    kubelets = KubeletClient(ctx, credentials=creds)
    return run_with_client(cfg, "metrics-server", lambda client, stop: MetricsServer(client, opts, kubelets).run(stop))
