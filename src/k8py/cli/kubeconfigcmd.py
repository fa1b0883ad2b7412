"""``k8py kubeconfig create --user NAME [--groups g1,g2] [--expiry 24h] [-o FILE]``: a kubeconfig
for a user, with a client certificate signed by the cluster CA.

As kubeadm's ``kubeadm kubeconfig user --client-name NAME --org G --validity-period D``, it signs
locally, on a server machine, with the CA key in the data directory: no API call, no CSR to
approve (the CertificateSigningRequest API with ``kubectl certificate approve`` is the way for
someone without the CA key). The certificate's subject is ``CN=<user>, O=<group>...``, which the
API server reads as the user name and groups (``kubectl auth whoami``); RBAC then decides what
they may do (a new user may do nothing until bound to a role). Nothing about the user is stored
in the cluster: the certificate is valid until it expires (k8py has no certificate revocation,
as Kubernetes has none), so give short expiries to people who may leave.

The server URL is the one of the data directory's admin kubeconfig unless ``--server`` says
another (e.g. a load balancer's, one of the ``--tls-san`` names).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys

import yaml

from k8py.cli.server import _path, duration
from k8py.config import default_data_dir

__all__ = ["add_parser"]

log = logging.getLogger("k8py.kubeconfig")

DEFAULT_EXPIRY = "8760h"  # kubeadm's certificate validity period


def groups(value: str) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(g.strip() for g in value.split(",") if g.strip()))
    for g in out:
        if "/" in g or any(ord(c) < 32 for c in g):
            raise argparse.ArgumentTypeError(f"invalid group {g!r}")
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser("kubeconfig", help="make kubeconfig files for users",
                              description="Make kubeconfig files for users of the cluster.")
    sub = p.add_subparsers(dest="kubeconfig_command", metavar="COMMAND", title="commands")
    c = sub.add_parser(
        "create", help="a kubeconfig with a new client certificate for a user",
        description="Issue a client certificate for --user in --groups, signed by the cluster CA of this server's "
                    "data directory (as kubeadm kubeconfig user), and write a kubeconfig that uses it. What the user "
                    "may do is RBAC's to say: bind the user or a group to a role.")
    c.add_argument("--user", "-u", required=True, metavar="NAME", help="the user name (the certificate's CN)")
    c.add_argument("--groups", "-g", type=groups, default=(), metavar="G1,G2",
                   help="the user's groups (the certificate's O), comma-separated")
    c.add_argument("--expiry", type=duration, default=duration(DEFAULT_EXPIRY), metavar="DURATION",
                   help=f"how long the certificate is valid (default: {DEFAULT_EXPIRY}, at most until the CA expires)")
    c.add_argument("--output", "-o", type=_path, metavar="FILE",
                   help="write the kubeconfig to FILE (mode 0600) instead of standard output")
    c.add_argument("--server", metavar="URL",
                   help="the API server URL to put in it (default: the one of the data directory's kubeconfig)")
    c.add_argument("--data-dir", "-d", type=_path, metavar="DIR",
                   help=f"the server's data directory, with the cluster CA (default: {default_data_dir()})")
    c.set_defaults(func=run_create, parser=c)
    p.set_defaults(func=lambda args: _need_command(p), parser=p)
    return p


def _need_command(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    print("\nk8py kubeconfig: error: choose a command (create)", file=sys.stderr)
    return 2


def _admin_server(data_dir: str) -> str | None:
    try:
        with open(os.path.join(data_dir, "kubeconfig.yaml"), encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        return str(doc["clusters"][0]["cluster"]["server"])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return None


def run_create(args: argparse.Namespace) -> int:
    from k8py.kubeconfig import user_kubeconfig
    from k8py.pki import PKI, issue_client_certificate
    from k8py.tlsfiles import write_private_file

    user = args.user.strip()
    if not user or any(ord(c) < 32 for c in user):
        args.parser.error(f"invalid --user {args.user!r}")
    if user.startswith("system:") and not user.startswith("system:serviceaccount:"):
        log.warning("user %r is in the system: namespace Kubernetes keeps for its own components", user)
    data_dir = args.data_dir or default_data_dir()
    pki = PKI.in_dir(os.path.join(data_dir, "tls"))
    server = args.server or _admin_server(data_dir)
    if not server:
        log.error("no --server given and no kubeconfig.yaml in %s to take the server URL from", data_dir)
        return 1
    try:
        cert, key = issue_client_certificate(pki, user, tuple(args.groups),
                                             validity=dt.timedelta(seconds=args.expiry))
        with open(pki.ca_cert, "rb") as f:
            ca = f.read()
    except PermissionError as e:
        log.error("cannot read the cluster CA (%s): run this as the user that runs `k8py server`", e)
        return 1
    except OSError as e:
        log.error("%s", e)
        return 1
    doc = user_kubeconfig(server, ca, cert, key, user=user, context=f"{user}@default")
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    if args.output:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        write_private_file(args.output, text.encode())
        log.info("wrote kubeconfig %s for user %s%s", args.output, user,
                 f" in groups {', '.join(args.groups)}" if args.groups else "")
    else:
        sys.stdout.write(text)
    return 0
