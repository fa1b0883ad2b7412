"""``k8py secrets-encrypt status|rotate|reencrypt``: encryption at rest, as k3s's command.

The commands talk to the running server through its API with the data directory's admin
kubeconfig (or ``--kubeconfig``), at ``/k8py/v1/secrets-encrypt/...``
(``k8py.apiserver.secretsencrypt`` says what the server does and why a rotation survives a
crash):

- ``status``: whether encryption is on, the config file, the keys (the active one marked ``*``)
  and how many objects are written with the active key, with another key, or cannot be read;
- ``rotate``: a new key, every object re-written with it, the old key retired, in one command
  (the generated config only);
- ``reencrypt``: every object re-written with the active key (after a config file was edited
  by hand, as kube's docs do with ``kubectl replace``); on the generated config the keys nothing
  needs any more are retired too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from k8py.cli.server import _path
from k8py.config import ServerConfig, default_data_dir

__all__ = ["add_parser"]

log = logging.getLogger("k8py.secrets-encrypt")

PATH = "/k8py/v1/secrets-encrypt/"
TYPE_NAMES = {"aescbc": "AES-CBC", "aesgcm": "AES-GCM", "secretbox": "XSalsa20-Poly1305", "identity": "identity"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "secrets-encrypt",
        help="encryption at rest: status, key rotation, re-encryption",
        description="Show and manage the encryption of Secrets (and any resource the EncryptionConfiguration "
                    "lists) in the datastore, through the running server.",
    )
    sub = p.add_subparsers(dest="se_command", metavar="COMMAND", title="commands")
    for name, helptext in (
        ("status", "which key encrypts, and whether every object is written with it"),
        ("rotate", "add a new key, re-write every object with it, then retire the old key"),
        ("reencrypt", "re-write every object with the active key (and retire unused keys of the generated config)"),
    ):
        c = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        c.add_argument("--data-dir", "-d", type=_path, metavar="DIR",
                       help=f"the server's data directory, for its admin kubeconfig (default: {default_data_dir()})")
        c.add_argument("--kubeconfig", type=_path, metavar="FILE",
                       help="a kubeconfig of a cluster admin (default: <data-dir>/kubeconfig.yaml)")
        c.add_argument("--output", "-o", choices=("text", "json"), default="text", help="output format")
        if name == "rotate":
            c.add_argument("--single-server", action="store_true",
                           help="on an etcd datastore: this server is the only one (a rotation is refused there "
                                "otherwise: other servers would not have the new key)")
        c.set_defaults(func=run, parser=c, action=name)
    p.set_defaults(func=lambda args: _missing(p), parser=p)
    return p


def _missing(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    print("\nk8py secrets-encrypt: error: choose a command (status, rotate, reencrypt)", file=sys.stderr)
    return 2


async def _call(kubeconfig: str, action: str, single_server: bool = False) -> dict[str, Any]:
    from k8py.client.api import Client
    from k8py.client.config import load_kubeconfig

    async with Client(load_kubeconfig(kubeconfig), component="k8py-secrets-encrypt") as client:
        method = "GET" if action == "status" else "POST"
        # a rotation re-writes every encrypted object: give it time
        return await client.request(method, PATH + action, params={"singleServer": "true"} if single_server else None,
                                    timeout=None if action == "status" else 3600.0)


def run(args: argparse.Namespace) -> int:
    from k8py.client.config import ConfigError

    kubeconfig = args.kubeconfig or ServerConfig(data_dir=args.data_dir or default_data_dir()).kubeconfig_path
    try:
        result = asyncio.run(_call(kubeconfig, args.action, getattr(args, "single_server", False)))
    except ConfigError as e:
        log.error("cannot use the kubeconfig %s: %s", kubeconfig, e)
        return 1
    except OSError as e:
        log.error("cannot reach the server with %s: %s (is 'k8py server' running?)", kubeconfig, e)
        return 1
    except Exception as e:  # noqa: BLE001 - an API refusal is reported as the server worded it
        log.error("secrets-encrypt %s: %s", args.action, e)
        return 1
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        print(format_result(args.action, result))
    if result.get("unreadable") or (result.get("objects") or {}).get("unreadable"):
        return 1
    return 0


def format_result(action: str, r: dict[str, Any]) -> str:
    if action == "status":
        return format_status(r)
    lines = []
    if r.get("added"):
        lines.append(f"New active key: {', '.join(r['added'])}")
    lines.append(f"Objects re-written with the active key: {r.get('rewritten', 0)} (of {r.get('total', 0)})")
    if r.get("retired"):
        lines.append(f"Retired keys: {', '.join(r['retired'])}")
    elif action == "rotate" or r.get("stale") or r.get("unreadable"):
        lines.append("Retired keys: none (some objects still need the old keys)" if r.get("stale") or
                     r.get("unreadable") else "Retired keys: none")
    for u in r.get("unreadable") or []:
        lines.append(f"Unreadable: {u}")
    return "\n".join(lines)


def format_status(r: dict[str, Any]) -> str:
    if not r.get("enabled"):
        return "Encryption Status: Disabled (the server runs without an EncryptionConfiguration)"
    lines = ["Encryption Status: Enabled",
             f"Config: {r['file']}{' (generated; rotate with `k8py secrets-encrypt rotate`)' if r.get('generated') else ''}"]
    objs = r.get("objects") or {}
    stale = objs.get("stale", 0)
    unreadable = objs.get("unreadable") or []
    stage = "all objects use the active key" if not stale and not unreadable else (
        f"{stale} object(s) still written with another key or in the clear: run `k8py secrets-encrypt reencrypt`"
        if stale else "some objects cannot be decrypted")
    lines.append(f"Objects of the encrypted resources: {objs.get('total', 0)}: {objs.get('active', 0)} with the "
                 f"active key, {stale} with another key or not encrypted, {len(unreadable)} unreadable")
    lines.append(f"Current Rotation Stage: {stage}")
    for res in r.get("resources") or []:
        lines.append("")
        lines.append(f"Resources: {res['resources']}")
        lines.append("Active  Key Type           Name")
        lines.append("------  --------           ----")
        for k in res["keys"]:
            lines.append(f" {'*' if k['active'] else ' ':<6} {TYPE_NAMES.get(k['type'], k['type']):<18} {k['name']}"
                         .rstrip())
    for u in unreadable:
        lines.append(f"Unreadable: {u}")
    return "\n".join(lines)
