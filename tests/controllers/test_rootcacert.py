"""The root CA publisher keeps ``kube-root-ca.crt`` (the cluster CA, kube's description
annotation) in every active namespace: made again when deleted, put back when edited, never
made in a terminating namespace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import Server
from tests.helpers.cluster import InProcessCluster

from k8py.client.errors import NotFoundError
from k8py.config import ServerConfig
from k8py.controllers import rootcacert
from k8py.controllers.base import ControllerOptions
from k8py.pki import ensure_pki

NS = ("v1", "Namespace")
CM = ("v1", "ConfigMap")
NAME = "kube-root-ca.crt"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


@pytest.fixture
def ca_file(tmp_path: Path) -> str:
    return ensure_pki(ServerConfig(data_dir=str(tmp_path / "data"))).ca_cert


def test_kube_wording_and_comparison() -> None:
    assert rootcacert.DESCRIPTION == DESCRIPTION
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    cm = rootcacert.new_config_map(pem)
    assert rootcacert.up_to_date(cm, pem)
    assert not rootcacert.up_to_date({**cm, "data": {"ca.crt": pem, "extra": "x"}}, pem)
    assert not rootcacert.up_to_date({**cm, "metadata": {"name": NAME}}, pem)
    # any description text will do, as kube only checks it is there
    assert rootcacert.up_to_date({**cm, "metadata": {"name": NAME, "annotations": {
        "kubernetes.io/description": "mine"}}}, pem)
    fixed = rootcacert.repaired({"metadata": {"name": NAME, "labels": {"a": "b"}, "annotations": {"x": "y"}},
                                 "data": {"ca.crt": "old"}, "binaryData": {"z": "AA=="}}, pem)
    assert fixed["data"] == {"ca.crt": pem} and "binaryData" not in fixed
    assert fixed["metadata"]["labels"] == {"a": "b"}
    assert fixed["metadata"]["annotations"] == {"x": "y", "kubernetes.io/description": DESCRIPTION}


async def test_published_recreated_restored_and_not_in_terminating_namespaces(ca_file: str) -> None:
    pem = Path(ca_file).read_text()
    async with InProcessCluster(controllers=["root-ca-cert-publisher"],
                                manager_options={"root_ca_file": ca_file}) as c:

        async def cm(ns: str) -> dict[str, Any] | None:
            try:
                return await c.client.get(CM, NAME, ns)
            except NotFoundError:
                return None

        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            got = await c.until(lambda n=ns: cm(n), what=f"{NAME} in {ns}")  # type: ignore[misc]
            assert got["data"] == {"ca.crt": pem}
            assert got["metadata"]["annotations"] == {"kubernetes.io/description": DESCRIPTION}

        await c.client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        first = await c.until(lambda: cm("team-a"), what=f"{NAME} in a new namespace")

        # deleted: made again
        await c.client.delete(CM, NAME, "team-a")

        async def recreated() -> bool:
            got = await cm("team-a")
            return got is not None and got["metadata"]["uid"] != first["metadata"]["uid"]

        await c.until(recreated, what=f"deleted {NAME} made again")

        # edited: put back, keeping what else the user added to the metadata
        got = await cm("team-a")
        assert got is not None
        got["data"] = {"ca.crt": "not a CA", "extra": "x"}
        got["metadata"]["labels"] = {"keep": "me"}
        got["metadata"]["annotations"] = {"other": "note"}
        edited = await c.client.update(CM, got, "team-a")

        async def restored() -> dict[str, Any] | None:
            now = await cm("team-a")
            if now is None or now["metadata"]["resourceVersion"] == edited["metadata"]["resourceVersion"]:
                return None
            return now if now["data"] == {"ca.crt": pem} else None

        back = await c.until(restored, what=f"edited {NAME} restored")
        assert back["metadata"]["annotations"] == {"other": "note", "kubernetes.io/description": DESCRIPTION}
        assert back["metadata"]["labels"] == {"keep": "me"}
        assert back["metadata"]["uid"] == got["metadata"]["uid"]  # repaired in place, not replaced

        # a terminating namespace gets nothing back (no namespace controller here: it stays Terminating)
        await c.client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "going"}})
        await c.until(lambda: cm("going"), what=f"{NAME} in namespace going")
        await c.client.delete(NS, "going")
        await c.until(lambda: _terminating(c, "going"), what="namespace going terminating")
        await c.client.delete(CM, NAME, "going")
        # why this order: the queue is FIFO, so once team-a's copy is back, going's delete has been
        # reconciled too (that reconcile returns before any await when the namespace terminates)
        again = await cm("team-a")
        assert again is not None
        await c.client.delete(CM, NAME, "team-a")
        await c.until(lambda: cm("team-a"), what=f"{NAME} in team-a after another delete")
        assert await cm("going") is None
        publisher = next(r for r in c.manager.running if r.NAME == "root-ca-cert-publisher")  # type: ignore[union-attr]
        assert publisher.controller.metrics.errors == 0


async def _terminating(c: InProcessCluster, name: str) -> bool:
    ns = await c.client.get(NS, name)
    return bool(ns["metadata"].get("deletionTimestamp")) and ns["status"].get("phase") == "Terminating"


async def test_without_root_ca_file_the_kubeconfig_ca_is_used(ca_file: str) -> None:
    """kube: no --root-ca-file means the CA the manager's own client config trusts."""
    from k8py.client.api import Client
    from k8py.client.config import ClientConfig

    client = Client(ClientConfig(server="https://127.0.0.1:1", ca_file=ca_file))
    try:
        assert rootcacert.root_ca_for(ControllerOptions(), client) == Path(ca_file).read_text()
        assert rootcacert.root_ca_for(ControllerOptions(root_ca_file=ca_file), client) == Path(ca_file).read_text()
    finally:
        await client.close()
    plain = Client(ClientConfig(server="http://127.0.0.1:1"))
    try:
        assert rootcacert.root_ca_for(ControllerOptions(), plain) is None
    finally:
        await plain.close()


def test_controller_manager_rejects_a_bad_root_ca_file(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {}}]}))
    not_pem = tmp_path / "ca.crt"
    not_pem.write_text("hello\n")
    for path, words in ((str(tmp_path / "missing.crt"), "cannot read the root CA file"),
                        (str(not_pem), "holds no PEM certificate")):
        r = subprocess.run([sys.executable, "-m", "k8py.cli", "controller-manager", "--kubeconfig", str(kubeconfig),
                            "--root-ca-file", path], capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 1, r
        assert words in r.stderr and path in r.stderr


def test_kubectl_sees_the_cluster_ca_in_every_namespace(server: Server) -> None:
    from tests.e2e.conftest import wait

    pem = (server.data_dir / "tls" / "ca.crt").read_text()
    server.kubectl("create", "namespace", "ca-check")

    def published() -> Any:
        p = server.kubectl("get", "configmap", NAME, "-n", "ca-check", "-o", "json", check=False)
        return p.returncode == 0 and yaml.safe_load(p.stdout)

    got = wait(published, 60, f"{NAME} in ca-check")
    assert got["data"] == {"ca.crt": pem}
    assert got["metadata"]["annotations"]["kubernetes.io/description"] == DESCRIPTION
    listed = server.kubectl("get", "configmaps", "-A", "--field-selector", f"metadata.name={NAME}",
                            "-o", "name").stdout.split()
    assert listed.count(f"configmap/{NAME}") >= 5  # the four system namespaces and ca-check
