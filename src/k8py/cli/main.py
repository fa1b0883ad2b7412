"""The ``k8py`` program: role subcommands, as k3s has (``server``, ``agent``, ``killall`` ...)."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence

from k8py import __version__
from k8py.cli import agent, certificate, controllermanager, datastore, kubeconfigcmd, lint, server, token
from k8py.cli.logs import setup_logging

__all__ = ["build_parser", "main"]


def _version(args: argparse.Namespace) -> int:
    print(f"k8py version v{__version__}")
    print(f"python version {platform.python_version()} ({sys.executable})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="k8py",
        description="k8py: Kubernetes, written in Python.",
        epilog="Run 'k8py COMMAND --help' for the flags of a command.",
    )
    parser.add_argument("--version", action="version", version=f"k8py version v{__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    server.add_parser(sub)
    token.add_parser(sub)
    kubeconfigcmd.add_parser(sub)
    certificate.add_parser(sub)
    datastore.add_parser(sub)
    controllermanager.add_parser(sub)
    from k8py.cli import proxy

    proxy.add_parser(sub)
    from k8py.cli import netpol

    netpol.add_parser(sub)
    from k8py.cli import cloud

    cloud.add_parser(sub)
    from k8py.cli import ingress

    ingress.add_parser(sub)
    from k8py.cli import metricsserver

    metricsserver.add_parser(sub)
    from k8py.kubelet.hollowcli import add_hollow_nodes_parser
    from k8py.kubelet.imagescli import add_images_parser
    from k8py.scheduler.cli import add_scheduler_parser

    agent.add_parser(sub)
    agent.add_killall_parser(sub)
    add_images_parser(sub)
    from k8py.cli import secretsencrypt

    secretsencrypt.add_parser(sub)

    add_scheduler_parser(sub)
    add_hollow_nodes_parser(sub)
    lint.add_parser(sub)
    v = sub.add_parser("version", help="print the version", description="Print k8py's version.")
    v.set_defaults(func=_version, parser=v)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Report through the subcommand's parser, so the usage shown is the one that matters.
        (getattr(args, "parser", None) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        print("\nk8py: error: choose a command (server, agent, images, killall, controller-manager, scheduler, hollow-nodes, token, datastore, version)", file=sys.stderr)
        return 2
    setup_logging(debug=getattr(args, "debug", False))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
