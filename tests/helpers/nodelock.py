"""One real node at a time on this machine.

Clusters whose agent runs real pods share the machine's node set-up (the ``k8py0`` bridge,
``/run/netns``, the nft tables), and their tests check that nothing of theirs is left when they
stop. Two such clusters at once (two pytest runs side by side) would see each other's pods, so
every test that starts a real node holds this lock from before its cluster starts until after
its clean-up check.

A holder that only keeps the lock while idle (the shared real node of ``tests/helpers/realnode``)
registers with :func:`release_before_locking`: a later :func:`node_lock` in the same process
calls it first (the lock is per open file, so this process would otherwise wait for itself)."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LOCK_PATH = "/tmp/k8py-real-node.lock"

_idle_holder: list[Callable[[], None]] = []


def release_before_locking(release: Callable[[], None] | None) -> None:
    """``release`` (or nothing) is what gives up this process's idle hold of the lock."""
    _idle_holder[:] = [release] if release is not None else []


@contextmanager
def node_lock() -> Iterator[None]:
    if _idle_holder:
        _idle_holder.pop()()
    with open(LOCK_PATH, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
