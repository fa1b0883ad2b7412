"""The DefaultIngressClass admission plugin, through kubectl against a server (no node agent, so
no ingress controller and no k8py-nginx class: the test makes its own classes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import KUBECTL, Server, manifest, start_server

pytestmark = pytest.mark.skipif(not KUBECTL, reason="kubectl is not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(Path(tmp_path_factory.mktemp("defaultingressclass")))
    yield s
    s.stop()


def ingress(name: str, cls: str | None = None, legacy: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default"}
    if legacy:
        meta["annotations"] = {"kubernetes.io/ingress.class": legacy}
    spec: dict = {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}
    if cls:
        spec["ingressClassName"] = cls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def ingress_class(name: str, default: bool) -> dict:
    meta: dict = {"name": name}
    if default:
        meta["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta,
            "spec": {"controller": f"example.com/{name}"}}


def class_of(s: Server, name: str) -> str | None:
    return s.kjson("get", "ingress", name, "-n", "default")["spec"].get("ingressClassName")


def test_default_class_is_set_on_create_only(server: Server) -> None:
    s = server
    # no default class: nothing is set
    s.kubectl("apply", "-f", "-", input=manifest(ingress_class("plain", False), ingress("before")))
    assert class_of(s, "before") is None
    # a default class: new Ingresses without a class get it; an explicit class or the legacy
    # annotation is left alone; an existing Ingress is not changed by an update
    s.kubectl("apply", "-f", "-", input=manifest(ingress_class("dflt", True)))
    s.kubectl("apply", "-f", "-", input=manifest(ingress("after"), ingress("explicit", cls="plain"),
                                                   ingress("legacy", legacy="other")))
    assert class_of(s, "after") == "dflt"
    assert class_of(s, "explicit") == "plain"
    assert class_of(s, "legacy") is None
    s.kubectl("label", "ingress", "before", "x=y")
    assert class_of(s, "before") is None
    # two default classes: creation is refused, as kube refuses it
    s.kubectl("apply", "-f", "-", input=manifest(ingress_class("dflt2", True)))
    p = s.kubectl("create", "-f", "-", input=manifest(ingress("refused")), check=False)
    assert p.returncode != 0
    assert p.stderr.strip() == ('Error from server (Forbidden): error when creating "STDIN": ingresses.networking.k8s.io '
                                '"refused" is forbidden: Internal error occurred: 2 default IngressClasses were '
                                'found, only 1 allowed')
    assert s.kubectl("get", "ingress", "refused", check=False).returncode != 0
    # an explicit class is still fine
    s.kubectl("create", "-f", "-", input=manifest(ingress("fine", cls="dflt2")))
