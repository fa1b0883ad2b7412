"""``k8py token create``: add a bearer token to the server's token file and print it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid

from k8py.cli.server import _path
from k8py.config import ServerConfig, default_data_dir

__all__ = ["add_parser"]

log = logging.getLogger("k8py.token")

DEFAULT_USER = "admin"
DEFAULT_GROUPS = "system:masters"


def _groups(value: str) -> tuple[str, ...]:
    groups = tuple(g.strip() for g in value.split(","))
    if any(not g for g in groups) and value.strip():
        raise argparse.ArgumentTypeError(f"invalid groups {value!r}: an empty group name (stray comma?)")
    return tuple(g for g in groups if g)


def _user(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("the user name must not be empty")
    return value.strip()


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "token",
        help="manage bearer tokens for the API server",
        description="Manage the bearer tokens that the API server accepts (the token file in the data directory).",
    )
    sub = p.add_subparsers(dest="token_command", metavar="COMMAND", title="commands")
    c = sub.add_parser(
        "create",
        help="create a token and print it",
        description=(
            "Append a new random token to <data-dir>/token and print it on stdout. A running server "
            "accepts it at once: send it as 'Authorization: Bearer <token>' or use "
            "'kubectl --token <token>'."
        ),
    )
    c.add_argument(
        "--data-dir", "-d", type=_path, metavar="DIR",
        help=f"the server's data directory (default: {default_data_dir()}, which must then be one that "
        "a server has started in)",
    )
    c.add_argument("--user", type=_user, default=DEFAULT_USER, metavar="NAME",
                   help=f"user name the token authenticates as (default: {DEFAULT_USER})")
    c.add_argument("--groups", type=_groups, default=_groups(DEFAULT_GROUPS), metavar="G1,G2",
                   help=f"comma-separated groups of that user (default: {DEFAULT_GROUPS}, "
                   "cluster administrators once RBAC exists; pass '' for none)")
    c.set_defaults(func=create, parser=c)
    p.set_defaults(func=lambda args: _missing(p), parser=p)
    return p


def _missing(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    print("\nk8py token: error: choose a command (create)", file=sys.stderr)
    return 2


def _looks_like_server_data_dir(path: str) -> bool:
    """A data directory some ``k8py server`` has started in: its first start makes ``tls/`` for the
    cluster CA, and nothing else does (a token file alone may be left from an earlier mistake).
    ``tls/`` is 0700, so only its existence is looked at: another user may not look inside."""
    return os.path.isdir(os.path.join(path, "tls"))


def _no_server_here(default: str) -> str:
    msg = (f"no k8py server data directory at {default} (the default for this user): a token written there "
           "would be accepted by no server. Start 'k8py server' first, or pass --data-dir DIR with the data "
           "directory of the server that should accept the token")
    root_default = "/var/lib/k8py"
    if os.geteuid() != 0 and default != root_default and _looks_like_server_data_dir(root_default):
        msg += f" (a server run as root keeps its data in {root_default}: --data-dir {root_default}, as root)"
    return msg


def create(args: argparse.Namespace) -> int:
    from k8py.apiserver.authn import append_token

    if args.data_dir is None:
        # An explicit --data-dir may prepare a directory for a server not started yet (the server
        # keeps the token file it finds); the default one is only a guess, so it must be a server's.
        default = default_data_dir()
        if not _looks_like_server_data_dir(default):
            log.error("%s", _no_server_here(default))
            return 1
    config = ServerConfig(data_dir=args.data_dir or default_data_dir())
    try:
        token = append_token(config.token_file, args.user, str(uuid.uuid4()), args.groups)
    except OSError as e:
        log.error("cannot write the token file %s: %s", config.token_file, e)
        return 1
    log.info("added a token for user %r (groups: %s) to %s", args.user,
             ",".join(args.groups) or "none", os.path.abspath(config.token_file))
    print(token, flush=True)
    return 0
