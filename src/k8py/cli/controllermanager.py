"""``k8py controller-manager``: the controllers alone, against any API server (leader-elected)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import TYPE_CHECKING

from k8py.runner import add_kubeconfig_flags, component_config, run_with_client

if TYPE_CHECKING:
    from k8py.client.api import Client

__all__ = ["add_parser"]

log = logging.getLogger("k8py.controller-manager")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "controller-manager", help="run the controllers against an API server",
        description="Run the controllers (ReplicaSet, Deployment, garbage collector, namespaces, endpoints, "
                    "nodes, ...) against an API server. With several running, a Lease in kube-system elects "
                    "the one that works; the others wait to take over.")
    add_kubeconfig_flags(p)
    p.add_argument("--controllers", default="*", metavar="A,B",
                   help="controllers to run, comma-separated; '*' for all (default)")
    p.add_argument("--leader-elect", default="true", choices=("true", "false"),
                   help="take part in leader election (default: true)")
    p.add_argument("--root-ca-file", metavar="FILE",
                   help="the cluster CA (PEM) published as kube-root-ca.crt in every namespace (default: the "
                   "certificate authority of the kubeconfig)")
    p.add_argument("--concurrent-syncs", type=int, default=2, metavar="N", help="workers per controller")
    p.add_argument("--proxy-client-cert-file", metavar="FILE",
                   help="the front-proxy client certificate the APIService availability check presents to "
                   "extension API servers (a k8py server's <data-dir>/tls/front-proxy-client.crt)")
    p.add_argument("--proxy-client-key-file", metavar="FILE", help="its key")
    add_hpa_flags(p)
    p.add_argument("--debug", action="store_true", help="log at debug level")
    p.set_defaults(func=run, parser=p)
    return p


def add_hpa_flags(p: argparse.ArgumentParser) -> None:
    """kube-controller-manager's ``--horizontal-pod-autoscaler-*`` flags."""
    hpa = p.add_argument_group("horizontal pod autoscaler (kube-controller-manager's flags)")
    hpa.add_argument("--horizontal-pod-autoscaler-sync-period", type=_duration, default=15.0, metavar="DURATION",
                     help="how often each HPA is reconciled (default 15s)")
    hpa.add_argument("--horizontal-pod-autoscaler-tolerance", type=float, default=0.1, metavar="RATIO",
                     help="the usage ratio's distance from 1.0 under which nothing scales (default 0.1)")
    hpa.add_argument("--horizontal-pod-autoscaler-downscale-stabilization", type=_duration, default=300.0,
                     metavar="DURATION", help="how far back the highest recommendation holds a scale-down "
                     "(default 5m0s)")
    hpa.add_argument("--horizontal-pod-autoscaler-cpu-initialization-period", type=_duration, default=300.0,
                     metavar="DURATION", help="after a pod starts, cpu samples are skipped until it is ready "
                     "for a whole metric window (default 5m0s)")
    hpa.add_argument("--horizontal-pod-autoscaler-initial-readiness-delay", type=_duration, default=30.0,
                     metavar="DURATION", help="a pod not ready whose readiness changed this soon after its "
                     "start never was ready (default 30s)")


def _duration(value: str) -> float:
    """A Go duration (``15s``, ``5m0s``) in seconds, as kube's flags take them."""
    from k8py.api.gotext import DurationError, parse_duration

    try:
        seconds = parse_duration(value)
    except DurationError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{value}: a duration may not be negative")
    return seconds


def hpa_options(args: argparse.Namespace) -> dict[str, object]:
    """The ``--horizontal-pod-autoscaler-*`` flags as controller options."""
    return {"hpa_sync_period": args.horizontal_pod_autoscaler_sync_period,
            "hpa_tolerance": args.horizontal_pod_autoscaler_tolerance,
            "hpa_downscale_stabilization": args.horizontal_pod_autoscaler_downscale_stabilization,
            "hpa_cpu_initialization_period": args.horizontal_pod_autoscaler_cpu_initialization_period,
            "hpa_initial_readiness_delay": args.horizontal_pod_autoscaler_initial_readiness_delay}


def server_arg_options(values: list[str]) -> dict[str, object]:
    """``k8py server --kube-controller-manager-arg FLAG=VALUE`` (k3s's flag, repeatable) as controller
    options: the controller manager's own flags that a server's in-process controller manager takes
    (the ``--horizontal-pod-autoscaler-*`` ones). Raises ValueError naming a flag it does not take."""
    parser = argparse.ArgumentParser(prog="--kube-controller-manager-arg", add_help=False, exit_on_error=False,
                                     allow_abbrev=False)
    add_hpa_flags(parser)
    argv = []
    for v in values:
        flag, eq, value = v.lstrip("-").partition("=")
        if not eq:
            raise ValueError(f"{v!r}: give FLAG=VALUE, e.g. horizontal-pod-autoscaler-sync-period=5s")
        argv.append(f"--{flag}={value}")
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as e:
        raise ValueError(str(e)) from None
    if rest:
        known = sorted(a.option_strings[0].lstrip("-") for a in parser._actions if a.option_strings)
        raise ValueError(f"the in-process controller manager does not take {', '.join(rest)} (it takes: "
                         f"{', '.join(known)})")
    if args.horizontal_pod_autoscaler_sync_period <= 0:
        raise ValueError("horizontal-pod-autoscaler-sync-period must be greater than 0")
    return hpa_options(args)


def run(args: argparse.Namespace) -> int:
    from k8py.controllers.manager import CONTROLLERS, ControllerManager

    if bool(args.proxy_client_cert_file) != bool(args.proxy_client_key_file):
        log.error("--proxy-client-cert-file and --proxy-client-key-file go together")
        return 2
    cfg = component_config(args, log)
    if cfg is None:
        return 1
    if args.root_ca_file:
        from k8py.controllers.rootcacert import RootCAError, read_root_ca

        try:
            read_root_ca(args.root_ca_file)
        except RootCAError as e:
            log.error("%s", e)
            return 1
    if args.horizontal_pod_autoscaler_sync_period <= 0:
        log.error("--horizontal-pod-autoscaler-sync-period must be greater than 0")
        return 2
    names = None if args.controllers.strip() in ("*", "") else [n.strip() for n in args.controllers.split(",")]
    if names:
        unknown = [n for n in names if n not in CONTROLLERS]
        if unknown:
            log.error("unknown controllers: %s (known: %s)", ", ".join(unknown), ", ".join(sorted(CONTROLLERS)))
            return 2

    async def main(client: Client, stop: asyncio.Event) -> None:
        options = hpa_options(args)
        if args.root_ca_file:
            options["root_ca_file"] = args.root_ca_file
        if args.proxy_client_cert_file:
            options["proxy_client_cert_file"] = args.proxy_client_cert_file
            options["proxy_client_key_file"] = args.proxy_client_key_file
        mgr = ControllerManager(client, controllers=names, leader_elect=args.leader_elect == "true",
                                workers=args.concurrent_syncs, options=options)
        log.info("controller manager starting against %s (controllers: %s)", cfg.server,
                 ", ".join(mgr.names) or "none built")
        await mgr.run(stop)

    return run_with_client(cfg, "kube-controller-manager", main)
