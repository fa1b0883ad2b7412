"""The ``k8py`` program: role subcommands, as k3s has (``server``, ``agent``, ``killall`` ...)."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from collections.abc import Sequence

from k8py import __version__
from k8py.cli.logs import setup_logging

__all__ = ["build_parser", "main"]

# Each command and what registers its parser, in the order `k8py --help` lists them. A command's
# module is imported only when that command runs (or for the full list): the modules behind
# them (the scheduler, the API client, cryptography) take about a second to import, which a
# quick `k8py killall` or `k8py token create` should not pay.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("server", "k8py.cli.server", "add_parser"),
    ("token", "k8py.cli.token", "add_parser"),
    ("kubeconfig", "k8py.cli.kubeconfigcmd", "add_parser"),
    ("certificate", "k8py.cli.certificate", "add_parser"),
    ("datastore", "k8py.cli.datastore", "add_parser"),
    ("controller-manager", "k8py.cli.controllermanager", "add_parser"),
    ("proxy", "k8py.cli.proxy", "add_parser"),
    ("network-policy", "k8py.cli.netpol", "add_parser"),
    ("cloud-controller-manager", "k8py.cli.cloud", "add_parser"),
    ("ingress-controller", "k8py.cli.ingress", "add_parser"),
    ("metrics-server", "k8py.cli.metricsserver", "add_parser"),
    ("agent", "k8py.cli.agent", "add_parser"),
    ("killall", "k8py.cli.agent", "add_killall_parser"),
    ("images", "k8py.kubelet.imagescli", "add_images_parser"),
    ("secrets-encrypt", "k8py.cli.secretsencrypt", "add_parser"),
    ("scheduler", "k8py.scheduler.cli", "add_scheduler_parser"),
    ("hollow-nodes", "k8py.kubelet.hollowcli", "add_hollow_nodes_parser"),
    ("lint", "k8py.cli.lint", "add_parser"),
)


def _version(args: argparse.Namespace) -> int:
    print(f"k8py version v{__version__}")
    print(f"python version {platform.python_version()} ({sys.executable})")
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``k8py`` parser; with ``command`` (a name of :data:`COMMANDS` or ``version``), only
    that command's parser is built, and only its module imported."""
    parser = argparse.ArgumentParser(
        prog="k8py",
        description="k8py: Kubernetes, written in Python.",
        epilog="Run 'k8py COMMAND --help' for the flags of a command.",
    )
    parser.add_argument("--version", action="version", version=f"k8py version v{__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    known = {name for name, _, _ in COMMANDS} | {"version"}
    for name, module, function in COMMANDS:
        if command in known and command != name:
            continue
        getattr(importlib.import_module(module), function)(sub)
    if command not in known or command == "version":
        v = sub.add_parser("version", help="print the version", description="Print k8py's version.")
        v.set_defaults(func=_version, parser=v)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words[0] if words and not words[0].startswith("-") else None)
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
