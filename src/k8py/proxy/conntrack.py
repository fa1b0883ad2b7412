"""Stale UDP conntrack entries (kube-proxy's ``conntrack`` cleanup): UDP has no connection to
end, so a client that keeps sending from one port keeps the NAT binding it got first, to an
endpoint that may be gone, until the entry times out. After each sync the proxy deletes, with the
``conntrack`` tool (Debian package ``conntrack``):

- the entries DNATed to an endpoint a UDP Service port no longer uses;
- the entries of a UDP Service port that had no endpoints and now has some (they were made while
  its packets were rejected).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Mapping, Sequence

from k8py.proxy.rules import Unit

log = logging.getLogger(__name__)


def _fam(ip: str) -> list[str]:
    return ["-f", "ipv6"] if ":" in ip else []


def cleanup_commands(old: Mapping[str, Unit], new: Mapping[str, Unit]) -> list[list[str]]:
    """The ``conntrack`` argument lists that remove what ``old`` -> ``new`` left stale."""
    out: list[list[str]] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        unit = after if after is not None else before
        sp = unit.service if unit is not None else None
        if sp is None or sp.protocol != "udp":
            continue
        gone = (before.endpoints if before else frozenset()) - (after.endpoints if after else frozenset())
        addresses = [*sp.cluster_ips, *sp.external_ips]
        for ep in sorted(gone):
            for ip in addresses:
                if (":" in ip) == (":" in ep):
                    out.append([*_fam(ip), "-D", "-p", "udp", "--orig-dst", ip, "--dst-nat", ep])
            if sp.node_port:
                out.append([*_fam(ep), "-D", "-p", "udp", "--orig-port-dst", str(sp.node_port), "--dst-nat", ep])
        if after is not None and after.endpoints and not (before.endpoints if before else frozenset()):
            for ip in addresses:
                out.append([*_fam(ip), "-D", "-p", "udp", "--orig-dst", ip, "--orig-port-dst", str(sp.port)])
            if sp.node_port:
                out.append(["-D", "-p", "udp", "--orig-port-dst", str(sp.node_port)])
    return out


class Conntrack:
    def __init__(self, command: Sequence[str] = ("conntrack",)) -> None:
        self.command = tuple(command)
        self.available = shutil.which(self.command[0]) is not None or self.command[0] != "conntrack"
        self._warned = False

    async def run(self, commands: list[list[str]]) -> None:
        if not commands:
            return
        if not self.available:
            if not self._warned:
                log.warning("the conntrack tool is missing (Debian package conntrack): stale UDP flows to "
                            "removed endpoints are not cleared")
                self._warned = True
            return
        for args in commands:
            proc = await asyncio.create_subprocess_exec(*self.command, *args, stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.PIPE)
            _, err = await proc.communicate()
            if proc.returncode not in (0, 1):  # 1: no entry matched
                log.warning("conntrack %s: %s", " ".join(args), err.decode(errors="replace").strip())
