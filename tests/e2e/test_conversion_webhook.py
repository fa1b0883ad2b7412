"""A CRD with a conversion webhook (``spec.conversion.strategy: Webhook``) on a real ``k8py
server``, with real kubectl and the official Python client: the webhook backend
(``tests/helpers/webhookserver.py``) on a loopback port behind a Service without a selector and
a hand-made EndpointSlice, verified against the CRD's ``caBundle`` as ``conv.webhooks.svc``.

Widgets are stored in v1 (``spec.hostPort``) and served in v2 too (``spec.host`` and
``spec.port``): objects applied in either version, read with ``kubectl get
widgets.<version>.example.com`` and with ``CustomObjectsApi`` in both; the webhook down is
kube's error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.conftest import KUBECTL, Server, manifest, start_server, wait
from tests.helpers.webhookserver import Review, WebhookThread, convert_widget

Obj = dict[str, Any]


def _convert(review: Review) -> Review:
    req = review["request"]
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": req["uid"], "result": {"status": "Success"},
                         "convertedObjects": [convert_widget(o, req["desiredAPIVersion"]) for o in req["objects"]]}}


def _schema(props: Obj) -> Obj:
    return {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": props}}}}


def _crd(ca: str) -> Obj:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "conversion": {"strategy": "Webhook", "webhook": {
                         "conversionReviewVersions": ["v1"],
                         "clientConfig": {"caBundle": ca, "service": {"namespace": "webhooks", "name": "conv",
                                                                      "path": "/convert"}}}},
                     "versions": [
                         {"name": "v1", "served": True, "storage": True,
                          "schema": _schema({"hostPort": {"type": "string"}})},
                         {"name": "v2", "served": True, "storage": False,
                          "schema": _schema({"host": {"type": "string"}, "port": {"type": "integer"}}),
                          "additionalPrinterColumns": [{"name": "Host", "type": "string", "jsonPath": ".spec.host"},
                                                       {"name": "Port", "type": "integer", "jsonPath": ".spec.port"}]}]}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, WebhookThread]]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    s = start_server(tmp_path_factory.mktemp("convwebhook"))
    hooks = WebhookThread(("conv.webhooks.svc",), {"/convert": _convert}).start()
    try:
        s.kubectl("apply", "-f", "-", input=manifest(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "webhooks"}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "conv", "namespace": "webhooks"},
             "spec": {"ports": [{"name": "https", "port": 443, "targetPort": hooks.port}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "conv-1", "namespace": "webhooks", "labels": {"kubernetes.io/service-name": "conv"}},
             "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
             "ports": [{"name": "https", "port": hooks.port, "protocol": "TCP"}]},
            _crd(hooks.ca_bundle)))
        s.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")
        yield s, hooks
    finally:
        hooks.close()
        s.stop()


def test_kubectl_applies_and_reads_both_versions(cluster: tuple[Server, WebhookThread]) -> None:
    s, hooks = cluster
    crd = s.kjson("get", "crd", "widgets.example.com")
    assert crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"] == 443
    s.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "old", "namespace": "default"},
         "spec": {"hostPort": "db:5432"}},
        {"apiVersion": "example.com/v2", "kind": "Widget", "metadata": {"name": "new", "namespace": "default"},
         "spec": {"host": "web", "port": 80}}))
    v2 = s.kjson("get", "widgets.v2.example.com")
    assert {i["metadata"]["name"]: (i["apiVersion"], i["spec"]) for i in v2["items"]} == {
        "old": ("example.com/v2", {"host": "db", "port": 5432}), "new": ("example.com/v2", {"host": "web", "port": 80})}
    v1 = s.kjson("get", "widgets.v1.example.com", "new")
    assert v1["apiVersion"] == "example.com/v1" and v1["spec"] == {"hostPort": "web:80"}
    table = s.kubectl("get", "widgets.v2.example.com", "old").stdout.split()
    assert table[:3] == ["NAME", "HOST", "PORT"] and table[3:6] == ["old", "db", "5432"]
    # a second apply in v2 of an object stored in v1 (the last-applied diff is made in v2)
    s.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "example.com/v2", "kind": "Widget", "metadata": {"name": "new", "namespace": "default"},
         "spec": {"host": "web", "port": 8080}}))
    assert s.kjson("get", "widgets.v1.example.com", "new")["spec"] == {"hostPort": "web:8080"}
    assert any(r["request"]["desiredAPIVersion"] == "example.com/v2" for _, r in hooks.seen)


def test_the_python_client_in_both_versions(cluster: tuple[Server, WebhookThread]) -> None:
    from kubernetes import client, watch

    s, _ = cluster
    api = client.CustomObjectsApi(s.client())
    api.create_namespaced_custom_object("example.com", "v2", "default", "widgets", {
        "apiVersion": "example.com/v2", "kind": "Widget", "metadata": {"name": "py"},
        "spec": {"host": "cache", "port": 6379}})
    got = api.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "py")
    assert got["apiVersion"] == "example.com/v1" and got["spec"] == {"hostPort": "cache:6379"}
    api.patch_namespaced_custom_object("example.com", "v1", "default", "widgets", "py",
                                       {"spec": {"hostPort": "cache:6380"}})
    got = api.get_namespaced_custom_object("example.com", "v2", "default", "widgets", "py")
    assert got["spec"] == {"host": "cache", "port": 6380}
    listed = api.list_namespaced_custom_object("example.com", "v2", "default", "widgets")
    assert all(i["apiVersion"] == "example.com/v2" and "hostPort" not in i["spec"] for i in listed["items"])
    # a watch in v2 sees an object written in v1 in v2
    rv = listed["metadata"]["resourceVersion"]
    api.create_namespaced_custom_object("example.com", "v1", "default", "widgets", {
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "watched"},
        "spec": {"hostPort": "mq:5672"}})
    w = watch.Watch()
    seen = None
    for ev in w.stream(api.list_namespaced_custom_object, "example.com", "v2", "default", "widgets",
                       resource_version=rv, timeout_seconds=10):
        if ev["object"]["metadata"]["name"] == "watched":
            seen = ev
            w.stop()
    assert seen is not None and seen["type"] == "ADDED"
    assert seen["object"]["apiVersion"] == "example.com/v2" and seen["object"]["spec"] == {"host": "mq", "port": 5672}


def test_the_webhook_down_is_kubes_error(cluster: tuple[Server, WebhookThread]) -> None:
    s, hooks = cluster
    s.kubectl("apply", "-f", "-", input=manifest(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "down", "namespace": "default"},
         "spec": {"hostPort": "x:1"}}))
    hooks.stop()
    try:
        p = s.kubectl("get", "widgets.v2.example.com", "down", check=False)
        assert p.returncode != 0
        assert p.stderr.startswith('Error from server: conversion webhook for example.com/v1, Kind=Widget failed: '
                                   'Post "https://conv.webhooks.svc:443/convert?timeout=30s": '), p.stderr
        assert "connection refused" in p.stderr
        # the storage version is served without the webhook
        assert json.loads(s.kubectl("get", "widgets.v1.example.com", "down", "-o", "json").stdout)["spec"] == {
            "hostPort": "x:1"}
    finally:
        hooks.start()
    wait(lambda: s.kubectl("get", "widgets.v2.example.com", "down", check=False).returncode == 0, 30,
         "the webhook back")
