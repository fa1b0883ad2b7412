"""CRD conversion webhooks (``spec.conversion.strategy: Webhook``) through the API server
in-process and a real HTTPS webhook backend (tests/helpers/webhookserver.py, by URL as
``localhost``): a CRD whose v1 (storage) keeps ``spec.hostPort`` and whose v2 splits it into
``spec.host`` and ``spec.port``. Custom resources are stored in v1 and served in either version,
converted by the webhook as kube-apiserver's ``webhookConverter`` does: one ConversionReview per
object read or written in the other version, one per list page, one per watch event; its
answers checked with kube's words; the webhook down or answering wrong is kube's 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from tests.helpers.webhookserver import Review, WebhookThread, allow, convert_widget

from k8py.apiserver import conversionwebhook as cw
from k8py.apiserver.admission.webhook import ValidatingAdmissionWebhook

Obj = dict[str, Any]
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
V1 = "/apis/example.com/v1/namespaces/default/widgets"
V2 = "/apis/example.com/v2/namespaces/default/widgets"
GVK = "example.com/v1, Kind=Widget"

# what the webhook does wrong, when it does: set by a test, cleared after each
fault: dict[str, Any] = {}


def _convert(review: Review) -> Review:
    req = review["request"]
    objs = [convert_widget(o, req["desiredAPIVersion"]) for o in req["objects"]]
    result: Obj = {"status": "Success"}
    kind = fault.get("kind")
    if kind == "count":
        objs = objs[1:]
    elif kind == "version":
        objs[0]["apiVersion"] = "example.com/v3"
    elif kind == "name":
        objs[0]["metadata"]["name"] = "someone-else"
    elif kind == "metadata":  # labels are the webhook's to change; the rest is restored
        objs[0]["metadata"]["labels"] = {"converted": "yes"}
        objs[0]["metadata"]["generation"] = 99
    elif kind == "bad-label":
        objs[0]["metadata"]["labels"] = {"-bad": "x"}
    elif kind == "failure":
        result = {"status": "Failure", "message": "cannot convert widgets today"}
    elif kind == "uid":
        req = {**req, "uid": "not-the-request"}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": req["uid"], "convertedObjects": objs, "result": result}}


def _schema(props: Obj) -> Obj:
    return {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {**props, "replicas": {"type": "integer"}}},
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"},
                                                 "replicas": {"type": "integer"}}}}}}


SUBRESOURCES = {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}


def crd(hooks: WebhookThread, **conversion: Any) -> Obj:
    webhook = {"clientConfig": {"url": f"https://localhost:{hooks.port}/convert", "caBundle": hooks.ca_bundle},
               "conversionReviewVersions": ["v1"]}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                     "conversion": conversion or {"strategy": "Webhook", "webhook": webhook},
                     "versions": [
                         {"name": "v1", "served": True, "storage": True, "subresources": SUBRESOURCES,
                          "schema": _schema({"hostPort": {"type": "string"}})},
                         {"name": "v2", "served": True, "storage": False, "subresources": SUBRESOURCES,
                          "schema": _schema({"host": {"type": "string"}, "port": {"type": "integer"}})}]}}


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookThread]:
    h = WebhookThread(("localhost",), {"/convert": _convert, "/validate": allow}).start()
    yield h
    h.close()


@pytest.fixture
async def widgets(api: TestClient, hooks: WebhookThread) -> AsyncIterator[TestClient]:
    """The API server with the Widget CRD Established (its CRD controllers running)."""
    fault.clear()
    hooks.seen.clear()
    tasks = await api.cp.http.crds.start()  # type: ignore[attr-defined]
    try:
        r = await api.post(CRDS, json=crd(hooks))
        assert r.status == 201, await r.text()
        await _until(api, lambda: _served(api))
        yield api
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.cp.objects.converter.close()  # type: ignore[attr-defined]


async def _served(api: TestClient) -> bool:
    return (await api.get(V2)).status == 200


async def _until(api: TestClient, cond: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _widget(name: str, version: str = "v2", **spec: Any) -> Obj:
    return {"apiVersion": f"example.com/{version}", "kind": "Widget", "metadata": {"name": name},
            "spec": spec or ({"host": "db", "port": 5432} if version == "v2" else {"hostPort": "db:5432"})}


async def _stored(api: TestClient, name: str) -> Obj:
    kv = await api.cp.objects.store.get(f"/registry/example.com/widgets/default/{name}")  # type: ignore[attr-defined]
    assert kv is not None
    return orjson.loads(kv.value)  # type: ignore[no-any-return]


def _reviews(hooks: WebhookThread) -> list[Obj]:
    return [r["request"] for _, r in hooks.seen]


async def test_written_in_v2_stored_in_v1_and_read_in_both(widgets: TestClient, hooks: WebhookThread) -> None:
    api = widgets
    r = await api.post(V2, json=_widget("a"))
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["apiVersion"] == "example.com/v2" and created["spec"] == {"host": "db", "port": 5432}
    stored = await _stored(api, "a")
    assert stored["apiVersion"] == "example.com/v1" and stored["spec"] == {"hostPort": "db:5432"}
    review = _reviews(hooks)[0]
    assert review["desiredAPIVersion"] == "example.com/v1" and review["uid"]
    assert [o["spec"] for o in review["objects"]] == [{"host": "db", "port": 5432}]
    assert hooks.seen[0][0] == "/convert?timeout=30s"  # kube's client's timeout, as it sends it
    assert hooks.seen[0][1]["apiVersion"] == "apiextensions.k8s.io/v1"
    assert hooks.seen[0][1]["kind"] == "ConversionReview"

    hooks.seen.clear()
    got1 = await (await api.get(f"{V1}/a")).json()
    assert got1["apiVersion"] == "example.com/v1" and got1["spec"] == {"hostPort": "db:5432"}
    assert hooks.seen == []  # the storage version needs no webhook
    got2 = await (await api.get(f"{V2}/a")).json()
    assert got2["apiVersion"] == "example.com/v2" and got2["spec"] == {"host": "db", "port": 5432}
    assert got2["metadata"]["uid"] == got1["metadata"]["uid"]
    assert [r["desiredAPIVersion"] for r in _reviews(hooks)] == ["example.com/v2"]

    # an update and a merge patch in v2, the status subresource in v2: stored in v1
    got2["spec"]["port"] = 6543
    r = await api.put(f"{V2}/a", json=got2)
    assert r.status == 200, await r.text()
    assert (await r.json())["spec"] == {"host": "db", "port": 6543}
    assert (await _stored(api, "a"))["spec"] == {"hostPort": "db:6543"}
    r = await api.patch(f"{V2}/a", data=b'{"spec":{"host":"cache"}}',
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200 and (await r.json())["spec"] == {"host": "cache", "port": 6543}
    r = await api.patch(f"{V2}/a/status", data=b'{"status":{"ready":true}}',
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, await r.text()
    stored = await _stored(api, "a")
    assert stored["apiVersion"] == "example.com/v1" and stored["spec"] == {"hostPort": "cache:6543"}
    assert stored["status"] == {"ready": True}
    assert (await api.delete(f"{V2}/a")).status == 200
    assert (await api.get(f"{V1}/a")).status == 404


async def test_a_list_is_one_review_and_a_watch_converts_each_event(widgets: TestClient, hooks: WebhookThread) -> None:
    api = widgets
    for name in ("l1", "l2"):
        assert (await api.post(V1, json=_widget(name, "v1"))).status == 201
    assert (await api.post(V2, json=_widget("l3", host="web", port=80))).status == 201
    hooks.seen.clear()
    r = await api.get(V2)
    body = await r.json()
    assert r.status == 200 and body["apiVersion"] == "example.com/v2"
    assert [(i["apiVersion"], i["spec"]) for i in body["items"]] == [
        ("example.com/v2", {"host": "db", "port": 5432}), ("example.com/v2", {"host": "db", "port": 5432}),
        ("example.com/v2", {"host": "web", "port": 80})]
    assert [len(r["objects"]) for r in _reviews(hooks)] == [3]  # the items in one review

    rv = body["metadata"]["resourceVersion"]
    async with api.get(f"{V2}?watch=1&resourceVersion={rv}&timeoutSeconds=10") as w:
        assert w.status == 200
        assert (await api.post(V1, json=_widget("l4", "v1", hostPort="mail:25"))).status == 201
        event = orjson.loads(await w.content.readline())
    assert event["type"] == "ADDED" and event["object"]["apiVersion"] == "example.com/v2"
    assert event["object"]["spec"] == {"host": "mail", "port": 25}


async def test_the_webhook_down_is_kubes_error_and_nothing_is_written(widgets: TestClient, hooks: WebhookThread) -> None:
    api = widgets
    assert (await api.post(V1, json=_widget("d", "v1"))).status == 201
    hooks.stop()
    try:
        r = await api.get(f"{V2}/d")
        body = await r.json()
        assert r.status == 500 and body.get("reason", "") == ""  # kube's ErrorToAPIStatus of a plain error
        assert body["message"].startswith(f'conversion webhook for {GVK} failed: Post "https://localhost:{hooks.port}'
                                          '/convert?timeout=30s": ')
        assert "connection refused" in body["message"]
        r = await api.post(V2, json=_widget("e"))
        assert r.status == 500
        assert (await r.json())["message"].startswith("conversion webhook for example.com/v2, Kind=Widget failed: ")
        assert (await api.get(f"{V1}/e")).status == 404
        assert (await api.get(f"{V1}/d")).status == 200  # the storage version is served without it
    finally:
        hooks.start()


@pytest.mark.parametrize(("kind", "message"), [
    ("count", f"conversion webhook for {GVK} returned 0 objects, expected 1"),
    ("version", (f"conversion webhook for {GVK} returned invalid object at index 0: invalid groupVersion "
                "(expected example.com/v2, received example.com/v3)")),
    ("name", f"conversion webhook for {GVK} returned invalid object: must have the same name: b != someone-else"),
    ("failure", f"conversion webhook for {GVK} failed: cannot convert widgets today"),
    ("uid", f'conversion webhook for {GVK} failed: expected response.uid="'),
    ("bad-label", (f"conversion webhook for {GVK} returned invalid metadata: metadata.labels: Invalid value: "
                  '"-bad": name part must consist of alphanumeric characters')),
])
async def test_a_wrong_answer_is_refused_in_kubes_words(widgets: TestClient, kind: str, message: str) -> None:
    api = widgets
    assert (await api.post(V1, json=_widget("b", "v1"))).status == 201
    fault["kind"] = kind
    r = await api.get(f"{V2}/b")
    body = await r.json()
    assert r.status == 500 and body["kind"] == "Status", body
    assert body["message"].startswith(message), body["message"]


async def test_a_list_in_one_review_words_an_items_error_as_kube_does_for_it(widgets: TestClient,
                                                                              hooks: WebhookThread) -> None:
    """kube converts each item as it decodes it: a list page's review failing on an item says
    what kube says for that item alone (the transport error too)."""
    api = widgets
    for name in ("b1", "b2"):
        assert (await api.post(V1, json=_widget(name, "v1"))).status == 201
    fault["kind"] = "version"
    body = await (await api.get(V2)).json()
    assert body["message"] == (f"conversion webhook for {GVK} returned invalid object at index 0: invalid groupVersion "
                               "(expected example.com/v2, received example.com/v3)")
    fault.clear()
    hooks.stop()
    try:
        r = await api.get(V2)
        assert r.status == 500
        assert (await r.json())["message"].startswith(f"conversion webhook for {GVK} failed: Post ")
    finally:
        hooks.start()


async def test_labels_are_the_webhooks_and_the_rest_of_metadata_is_kept(widgets: TestClient) -> None:
    api = widgets
    assert (await api.post(V1, json=_widget("m", "v1"))).status == 201
    fault["kind"] = "metadata"
    got = await (await api.get(f"{V2}/m")).json()
    assert got["metadata"]["labels"] == {"converted": "yes"} and got["metadata"]["generation"] == 1


async def test_crd_conversion_validation(api: TestClient, hooks: WebhookThread) -> None:
    cases: list[tuple[Obj, list[tuple[str, str]]]] = [
        ({"strategy": "Webhook"}, [
            ("spec.conversion.webhookClientConfig", "Required value: required when strategy is set to Webhook"),
            ("spec.conversion.conversionReviewVersions", "Required value")]),
        ({"strategy": "Webhook", "webhook": {"clientConfig": {}, "conversionReviewVersions": ["v3"]}}, [
            ("spec.conversion.webhookClientConfig", "Required value: exactly one of url or service is required"),
            ("spec.conversion.conversionReviewVersions",
             'Invalid value: []string{"v3"}: must include at least one of v1, v1beta1')]),
        ({"strategy": "Webhook", "webhook": {"clientConfig": {"url": "http://x.example.com/c"},
                                             "conversionReviewVersions": ["v1", "v1"]}}, [
            ("spec.conversion.webhookClientConfig.url",
             'Invalid value: "http": \'https\' is the only allowed URL scheme; desired format: https://host[/path]'),
            ("spec.conversion.conversionReviewVersions[1]", 'Invalid value: "v1": duplicate version')]),
        ({"strategy": "Webhook", "webhook": {"clientConfig": {"service": {"name": "conv"}},
                                             "conversionReviewVersions": ["v1beta1"]}}, [
            ("spec.conversion.webhookClientConfig.service.namespace", "Required value: service namespace is required")]),
        ({"strategy": "None", "webhook": {"clientConfig": {"url": "https://x.example.com/c"},
                                          "conversionReviewVersions": ["v1"]}}, [
            ("spec.conversion.webhookClientConfig", "Forbidden: should not be set when strategy is not set to Webhook"),
            ("spec.conversion.conversionReviewVersions",
             "Forbidden: should not be set when strategy is not set to Webhook")]),
    ]
    for conversion, want in cases:
        r = await api.post(CRDS, json=crd(hooks, **conversion))
        body = await r.json()
        assert r.status == 422 and body["reason"] == "Invalid", body
        got = [(c["field"], c["message"]) for c in body["details"]["causes"]]
        assert got == want, (conversion, got)
    # a Service's port defaults to 443
    ok = crd(hooks, strategy="Webhook", webhook={"clientConfig": {"service": {"namespace": "conv", "name": "conv"}},
                                                 "conversionReviewVersions": ["v1"]})
    r = await api.post(CRDS, json=ok)
    assert r.status == 201, await r.text()
    assert (await r.json())["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"] == 443


async def test_an_admission_webhook_for_v1_is_sent_a_v2_write_converted(widgets: TestClient,
                                                                        hooks: WebhookThread) -> None:
    """matchPolicy Equivalent: a validating webhook whose rules name v1 sees a write in v2 as v1,
    converted by the CRD's conversion webhook (kube's VersionedAttributes)."""
    api = widgets
    vwc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": "widgets"}, "webhooks": [{
               "name": "widgets.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
               "clientConfig": {"url": f"https://localhost:{hooks.port}/validate", "caBundle": hooks.ca_bundle},
               "rules": [{"operations": ["CREATE"], "apiGroups": ["example.com"], "apiVersions": ["v1"],
                          "resources": ["widgets"]}]}]}
    assert (await api.post("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
                           json=vwc)).status == 201
    try:
        hooks.seen.clear()
        r = await api.post(V2, json=_widget("adm", host="q", port=1))
        assert r.status == 201, await r.text()
        admitted = [rev["request"] for path, rev in hooks.seen if path.startswith("/validate")]
        assert len(admitted) == 1
        assert admitted[0]["kind"] == {"group": "example.com", "version": "v1", "kind": "Widget"}
        assert admitted[0]["requestKind"]["version"] == "v2"
        assert admitted[0]["object"]["apiVersion"] == "example.com/v1"
        assert admitted[0]["object"]["spec"] == {"hostPort": "q:1"}
    finally:
        plugin = api.cp.api.admission.plugin("ValidatingAdmissionWebhook")  # type: ignore[attr-defined]
        assert isinstance(plugin, ValidatingAdmissionWebhook)
        await plugin._close_all()


async def test_an_established_crd_keeps_a_valid_ca_bundle(widgets: TestClient, hooks: WebhookThread) -> None:
    """kube's allowInvalidCABundle: any caBundle at create (not Established yet); an update of an
    Established CRD whose bundle is valid must keep a valid one."""
    api = widgets
    current = await (await api.get(f"{CRDS}/widgets.example.com")).json()
    current["metadata"].setdefault("labels", {})["touched"] = "yes"
    r = await api.put(f"{CRDS}/widgets.example.com", json=current)  # the valid bundle kept
    assert r.status == 200, await r.text()
    current = await r.json()
    current["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = "bm90IGEgY2VydA=="  # "not a cert"
    r = await api.put(f"{CRDS}/widgets.example.com", json=current)
    body = await r.json()
    assert r.status == 422, body
    assert body["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.conversion.webhookClientConfig.caBundle",
        "message": "Invalid value: []byte{0x6e, 0x6f, 0x74, 0x20, 0x61, 0x20, 0x63, 0x65, 0x72, 0x74}: "
                   "data does not contain any valid RSA or ECDSA certificates"}]
    other = crd(hooks)
    other["metadata"]["name"] = "gadgets.example.com"
    other["spec"]["names"] = {"plural": "gadgets", "kind": "Gadget"}
    other["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = "bm90IGEgY2VydA=="
    assert (await api.post(CRDS, json=other)).status == 201


async def test_a_new_storage_version_reads_the_old_objects_and_rewrites_them(widgets: TestClient,
                                                                              hooks: WebhookThread) -> None:
    """The storage version moved from v1 to v2: objects stored in v1 stay there until written
    (what a storage version migration does, a no-op update), read in v2 through the webhook and in
    v1 as they are."""
    api = widgets
    assert (await api.post(V1, json=_widget("mig", "v1", hostPort="old:1"))).status == 201
    current = await (await api.get(f"{CRDS}/widgets.example.com")).json()
    for v in current["spec"]["versions"]:
        v["storage"] = v["name"] == "v2"
    r = await api.put(f"{CRDS}/widgets.example.com", json=current)
    assert r.status == 200, await r.text()
    assert (await r.json())["status"]["storedVersions"] == ["v1", "v2"]

    async def v2_stores() -> bool:
        kinds = [k for k in api.cp.registry.all() if k.resource == "widgets"]  # type: ignore[attr-defined]
        return bool(kinds) and all(k.storage_version == "v2" for k in kinds)

    await _until(api, v2_stores)
    hooks.seen.clear()
    got = await (await api.get(f"{V2}/mig")).json()
    assert got["spec"] == {"host": "old", "port": 1}
    assert [r["desiredAPIVersion"] for r in _reviews(hooks)] == ["example.com/v2"]
    assert (await _stored(api, "mig"))["apiVersion"] == "example.com/v1"  # reading moves nothing
    hooks.seen.clear()
    assert (await (await api.get(f"{V1}/mig")).json())["spec"] == {"hostPort": "old:1"}
    assert hooks.seen == []  # stored in v1: read in v1 as it is
    r = await api.put(f"{V2}/mig", json=got)  # the migration's no-op update
    assert r.status == 200, await r.text()
    stored = await _stored(api, "mig")
    assert stored["apiVersion"] == "example.com/v2" and stored["spec"] == {"host": "old", "port": 1}


async def test_the_first_review_version_the_crd_names_is_sent(widgets: TestClient, hooks: WebhookThread) -> None:
    """conversionReviewVersions [v1beta1, v1]: the review goes as v1beta1, whose answers kube
    never checked for their kind or uid."""
    api = widgets
    assert (await api.post(V1, json=_widget("rv", "v1"))).status == 201
    current = await (await api.get(f"{CRDS}/widgets.example.com")).json()
    current["spec"]["conversion"]["webhook"]["conversionReviewVersions"] = ["v1beta1", "v1"]
    assert (await api.put(f"{CRDS}/widgets.example.com", json=current)).status == 200

    async def updated() -> bool:
        return any('"v1beta1"' in k.conversion_webhook for k in api.cp.registry.all())  # type: ignore[attr-defined]

    await _until(api, updated)
    hooks.seen.clear()
    fault["kind"] = "uid"
    got = await (await api.get(f"{V2}/rv")).json()
    assert got["spec"] == {"host": "db", "port": 5432}, got
    assert [r["apiVersion"] for _, r in hooks.seen] == ["apiextensions.k8s.io/v1beta1"]


async def test_the_scale_subresource_in_the_other_version(widgets: TestClient) -> None:
    api = widgets
    assert (await api.post(V1, json=_widget("sc", "v1", hostPort="h:1", replicas=2))).status == 201
    scale = await (await api.get(f"{V2}/sc/scale")).json()
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 2}
    scale["spec"]["replicas"] = 5
    r = await api.put(f"{V2}/sc/scale", json=scale)
    assert r.status == 200, await r.text()
    stored = await _stored(api, "sc")
    assert stored["apiVersion"] == "example.com/v1" and stored["spec"] == {"hostPort": "h:1", "replicas": 5}


def test_the_checks_of_an_answer_word_errors_as_kube() -> None:
    """The pure part (no webhook): kube's getConvertedObjectsFromResponse and restoreObjectMeta."""
    sent = cw.review_request(["v9", "v1"], "u1", "example.com/v2", [])
    assert sent["apiVersion"] == "apiextensions.k8s.io/v1" and sent["request"]["uid"] == "u1"
    with pytest.raises(cw.ConversionFailed, match="^no supported conversion review versions$"):
        cw.review_request(["v9"], "u1", "example.com/v2", [])
    cases: list[tuple[Any, str]] = [
        ({"apiVersion": "v1", "kind": "Status"},
         "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got /v1, Kind=Status"),
        ({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview"}, "no response provided"),
        ({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
          "response": {"uid": "u1", "result": {"status": "Failure"}}},
         "response.result.status was 'Failure', not 'Success'"),
    ]
    for answer, message in cases:
        with pytest.raises(cw.ConversionFailed) as e:
            cw.converted_objects(sent, "u1", answer)
        assert str(e.value) == message
    orig = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "a", "annotations": {"k": "v"}}}

    def check(meta: Any) -> str:
        conv = {"apiVersion": "example.com/v2", "kind": "Widget", **({"metadata": meta} if meta is not None else {})}
        with pytest.raises(cw.ConversionFailed) as e:
            cw.check_converted("example.com/v2", [orig], [conv])
        return str(e.value)

    head = "conversion webhook for example.com/v1, Kind=Widget returned invalid"
    assert check(None) == f"{head} object: must have the same name: a != "
    assert check({"name": "a", "labels": {"n": 1}}) == (
        f"{head} metadata: metadata.labels[n] must be a string, but is int64 in converted object")
    assert check({"name": "a", "annotations": {"": "x"}}).startswith(
        f"{head} metadata: [metadata.annotation: Invalid value: \"\": name part must be non-empty, ")  # an aggregate
    kept = cw.check_converted("example.com/v2", [orig], [{"apiVersion": "example.com/v2", "kind": "Widget",
                                                          "metadata": {"name": "a", "generation": 7}}])
    assert kept[0]["metadata"] == {"name": "a"}  # annotations the webhook dropped are dropped, the rest restored


async def test_a_crd_is_deleted_with_its_objects_while_its_webhook_is_down(widgets: TestClient,
                                                                           hooks: WebhookThread) -> None:
    """kube's finalizer deletes the custom resources through the storage version: no conversion."""
    api = widgets
    assert (await api.post(V1, json=_widget("gone", "v1"))).status == 201
    hooks.stop()
    try:
        assert (await api.delete(f"{CRDS}/widgets.example.com")).status == 202  # its finalizer runs

        async def crd_gone() -> bool:
            return (await api.get(f"{CRDS}/widgets.example.com")).status == 404

        await _until(api, crd_gone)
        assert await api.cp.objects.store.get("/registry/example.com/widgets/default/gone") is None  # type: ignore[attr-defined]
    finally:
        hooks.start()


async def test_a_selective_watch_converts_the_old_object_too(widgets: TestClient) -> None:
    """A watch with a selector judges an update by the new and the old object, both converted."""
    api = widgets
    assert (await api.post(V1, json={**_widget("sel", "v1"), "metadata": {"name": "sel", "labels": {"a": "1"}}}))\
        .status == 201
    rv = (await (await api.get(V2)).json())["metadata"]["resourceVersion"]
    async with api.get(f"{V2}?watch=1&resourceVersion={rv}&labelSelector=a%3D1&timeoutSeconds=10") as w:
        assert (await api.patch(f"{V1}/sel", data=b'{"metadata":{"labels":{"a":"2"}}}',
                                headers={"Content-Type": "application/merge-patch+json"})).status == 200
        event = orjson.loads(await w.content.readline())
    # left the selection: DELETED, with the new state, in v2
    assert event["type"] == "DELETED" and event["object"]["apiVersion"] == "example.com/v2"
    assert event["object"]["metadata"]["labels"] == {"a": "2"} and event["object"]["spec"]["host"] == "db"
