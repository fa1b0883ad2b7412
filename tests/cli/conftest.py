from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from k8py.config import ServerConfig


@pytest.fixture
def config(tmp_path) -> ServerConfig:
    return ServerConfig(data_dir=str(tmp_path / "data"), bind_address="127.0.0.1", node_name="node-a")


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """``main()`` sets up logging for the process; undo it so other tests see logging as they left it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    access_level = logging.getLogger("aiohttp.access").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(access_level)
