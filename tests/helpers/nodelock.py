"""One real node at a time on this machine.

Clusters whose agent runs real pods share the machine's node set-up (the ``k8py0`` bridge,
``/run/netns``, the nft tables), and their tests check that nothing of theirs is left when they
stop. Two such clusters at once (two pytest runs side by side) would see each other's pods, so
every test that starts a real node holds this lock from before its cluster starts until after
its clean-up check."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

LOCK_PATH = "/tmp/k8py-real-node.lock"


@contextmanager
def node_lock() -> Iterator[None]:
    with open(LOCK_PATH, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
