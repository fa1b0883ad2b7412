"""Fixtures about images: the busybox test archives and a local registry (session-scoped; other
kubelet tests reuse them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.images import (
    BUSYBOX_REF,
    Registry,
    build_busybox_image,
    build_second_image,
    start_registry,
    to_docker_archive,
)


@pytest.fixture(scope="session")
def busybox_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox test image (``k8py.test/busybox:1.0``) as an oci-archive."""
    return build_busybox_image(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def busybox_docker_archive(tmp_path_factory: pytest.TempPathFactory, busybox_archive: Path) -> Path:
    """The same image as a docker-archive (``docker save`` format) tagged ``k8py.test/busybox:1.0``."""
    return to_docker_archive(
        busybox_archive, tmp_path_factory.mktemp("images") / "busybox.docker.tar", BUSYBOX_REF
    )


@pytest.fixture(scope="session")
def second_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different image (``k8py.test/busybox-extra:2.0``) as an oci-archive."""
    return build_second_image(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def registry(busybox_archive: Path) -> Iterator[Registry]:
    """A docker-registry on a loopback port with htpasswd auth (``registry.host``,
    ``.username``, ``.password``), holding the busybox image as ``busybox:1.0``
    (``registry.ref("busybox:1.0")``). Plain HTTP: pulls from it need tls-verify off."""
    reg = start_registry()
    try:
        reg.push(busybox_archive, "busybox:1.0")
        yield reg
    finally:
        reg.stop()
