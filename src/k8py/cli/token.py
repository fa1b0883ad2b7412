"""``k8py token create``: add a bearer token to the server's token file and print it.

``k8py token create --join [--ttl 24h]`` makes a join token for a new node instead: a kube
bootstrap token (a ``bootstrap.kubernetes.io/token`` Secret ``kube-system/bootstrap-token-<id>``,
created through the API with the data directory's admin kubeconfig) printed in k3s's form
``K10<sha256 of the cluster CA>::<id>.<secret>``, so the joining agent can pin the CA before it
trusts the server (``k8py.kubelet.bootstrap``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import logging
import os
import secrets
import sys
import uuid

from k8py.cli.server import _path
from k8py.config import ServerConfig, default_data_dir

__all__ = ["add_parser"]

log = logging.getLogger("k8py.token")

DEFAULT_USER = "admin"
DEFAULT_GROUPS = "system:masters"
DEFAULT_TTL = "24h"
# kubeadm's default-node-token group, under k8py's name
JOIN_EXTRA_GROUP = "system:bootstrappers:k8py:default-node-token"
_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
def parse_duration(value: str) -> dt.timedelta:
    """A Go duration as kubeadm's ``--ttl`` takes it (``24h``, ``1h30m``, ``90s``; ``0``: never)."""
    from k8py.api.gotext import DurationError
    from k8py.api.gotext import parse_duration as go_parse

    try:
        seconds = go_parse(value.strip())
    except DurationError:
        raise argparse.ArgumentTypeError(f"invalid duration {value!r}: use Go's form, e.g. 24h, 1h30m, 90s "
                                         "(0: never expires)") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"invalid duration {value!r}: may not be negative")
    return dt.timedelta(seconds=seconds)


def new_bootstrap_token() -> tuple[str, str]:
    """A bootstrap token's id (6 characters) and secret (16), from ``[a-z0-9]`` as kube's."""
    return ("".join(secrets.choice(_TOKEN_CHARS) for _ in range(6)),
            "".join(secrets.choice(_TOKEN_CHARS) for _ in range(16)))


def bootstrap_token_secret(token_id: str, token_secret: str, ttl: dt.timedelta,
                           now: dt.datetime | None = None) -> dict[str, object]:
    """The Secret kubeadm's ``token create`` makes (``ttl`` 0: no expiration)."""
    data = {"description": "Join token made by 'k8py token create --join'.", "token-id": token_id,
            "token-secret": token_secret, "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true", "auth-extra-groups": JOIN_EXTRA_GROUP}
    if ttl:
        data["expiration"] = ((now or dt.datetime.now(dt.UTC)) + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"}, "stringData": data}


def join_token(ca_pem: bytes, token_id: str, token_secret: str) -> str:
    """k3s's secure token: ``K10`` + the SHA-256 (hex) of the CA bundle + ``::`` + credentials."""
    return f"K10{hashlib.sha256(ca_pem).hexdigest()}::{token_id}.{token_secret}"


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
                   "cluster administrators; pass '' for none, then RoleBindings say what the user may do)")
    c.add_argument("--join", action="store_true",
                   help="make a join token for a new node instead (a bootstrap token, created through the "
                   "running server's API), printed as K10<ca-hash>::<id>.<secret>")
    c.add_argument("--ttl", type=parse_duration, default=parse_duration(DEFAULT_TTL), metavar="DURATION",
                   help=f"with --join: how long the token is valid (default: {DEFAULT_TTL}; 0: never expires)")
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

    if args.join:
        return create_join(args)
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


def create_join(args: argparse.Namespace) -> int:
    """``--join``: a bootstrap token Secret created through the API, printed as a K10 join token."""
    from k8py.client.config import ConfigError

    data_dir = args.data_dir or default_data_dir()
    if args.data_dir is None and not _looks_like_server_data_dir(data_dir):
        log.error("%s", _no_server_here(data_dir))
        return 1
    config = ServerConfig(data_dir=data_dir)
    ca_path = os.path.join(config.tls_dir, "ca.crt")
    try:
        with open(ca_path, "rb") as f:
            ca_pem = f.read()
    except OSError as e:
        log.error("cannot read the cluster CA %s: %s (start 'k8py server' with this data directory first)",
                  ca_path, e.strerror or e)
        return 1
    token_id, token_secret = new_bootstrap_token()
    try:
        asyncio.run(_create_secret(config.kubeconfig_path, bootstrap_token_secret(token_id, token_secret, args.ttl)))
    except ConfigError as e:
        log.error("cannot reach the server: %s", e)
        return 1
    except OSError as e:
        log.error("cannot reach the server with %s: %s (is 'k8py server' running?)", config.kubeconfig_path, e)
        return 1
    except Exception as e:  # noqa: BLE001 - an API refusal is reported as the server worded it
        log.error("cannot create the join token: %s", e)
        return 1
    expires = "never expires" if not args.ttl else f"expires in {args.ttl}"
    log.info("created bootstrap token %s (%s)", token_id, expires)
    print(join_token(ca_pem, token_id, token_secret), flush=True)
    return 0


async def _create_secret(kubeconfig: str, secret: dict[str, object]) -> None:
    from k8py.client.api import Client
    from k8py.client.config import load_kubeconfig

    async with Client(load_kubeconfig(kubeconfig), component="k8py-token") as client:
        await client.create(("v1", "Secret"), secret, "kube-system")
