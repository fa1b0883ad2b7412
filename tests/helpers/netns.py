"""Network namespaces a test makes (for nftables rules and real packets that never leave them),
with the processes it starts inside them; everything is removed at the end."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@contextmanager
def namespaces(*names: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The network namespaces ``names``, each with its loopback up, and a list for the processes
    the test starts in them. At the end the processes are killed and the namespaces deleted (their
    veths, bridges and nft tables with them); none may be left."""
    made: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for ns in names:
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for ns in made:
            subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True, timeout=30)
    assert not [ns for ns in made if os.path.exists(f"/run/netns/{ns}")]
