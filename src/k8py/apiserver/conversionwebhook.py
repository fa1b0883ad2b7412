"""CRD conversion webhooks (``spec.conversion.strategy: Webhook``), as apiextensions-apiserver's
``pkg/apiserver/conversion/webhook_converter.go``.

Whenever a custom resource must be in another version than the one it is in (read in a
version other than the storage version, written in one, listed, watched), :class:`Objects`
(``k8py.apiserver.objects``) asks :meth:`ConversionWebhooks.convert`, which POSTs one
``ConversionReview`` (``apiextensions.k8s.io/v1`` or ``v1beta1``, the first the CRD's
``conversionReviewVersions`` names) with every object not yet in the desired version (a list's
items in one review: kube converts each object as it decodes it, the webhook answers the same)
and takes ``response.convertedObjects`` back:

- the answer must be a ConversionReview of the version sent, for the request's ``uid``, with
  ``result.status: Success`` (else its ``result.message`` is the error), and as many objects as
  were sent, each of the desired apiVersion and of the same kind, name, namespace and uid;
- of the metadata the webhook sends back only labels and annotations are kept (validated as
  kube does); the rest is the original's;
- every failure is kube's ``conversion webhook for <group>/<version>, Kind=<kind> failed: ...``
  (a 500 Status without reason: kube's ``ErrorToAPIStatus`` of a plain error).

The call itself is the API server's webhook client (:mod:`k8py.apiserver.webhookclient`):
``clientConfig.url`` or a Service resolved by the aggregation layer, trusted by ``caBundle``.
The pure part (the review, the checks of the answer) does no I/O.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from k8py.api import errors
from k8py.api.admissionwebhook import CallError
from k8py.api.registry import KindInfo
from k8py.api.validation.meta import validate_annotations, validate_labels
from k8py.apiserver import webhookclient

Obj = dict[str, Any]

log = logging.getLogger(__name__)

GROUP = "apiextensions.k8s.io"
# kube's webhook client's request timeout (its calls carry it: ``...?timeout=30s``)
CALL_TIMEOUT = 30

__all__ = ["ConversionFailed", "ConversionWebhooks", "check_converted", "converted_objects", "review_request"]


class ConversionFailed(Exception):
    """A conversion that failed; the text is kube's (it becomes a 500 Status)."""


def gvk(api_version: str, kind: str) -> str:
    """Go's ``schema.GroupVersionKind.String()``."""
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind}"


def _group_version(api_version: Any) -> str:
    return api_version if isinstance(api_version, str) else ""


def review_request(review_versions: Iterable[str], uid: str, desired: str, objs: list[Obj]) -> Obj:
    """kube's ``createConversionReviewObjects``: the first of ``v1``/``v1beta1`` in the CRD's
    ``conversionReviewVersions``."""
    for v in review_versions:
        if v in ("v1", "v1beta1"):
            return {"kind": "ConversionReview", "apiVersion": f"{GROUP}/{v}",
                    "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objs},
                    "response": {"uid": "", "convertedObjects": None, "result": {"metadata": {}}}}
    raise ConversionFailed("no supported conversion review versions")


def converted_objects(sent: Obj, uid: str, answer: Any) -> list[Any]:
    """kube's ``getConvertedObjectsFromResponse``: raises ConversionFailed with its words."""
    if not isinstance(answer, dict):
        raise ConversionFailed("the server responded with a body that is not a ConversionReview")
    if sent["apiVersion"] == f"{GROUP}/v1":
        want = gvk(f"{GROUP}/v1", "ConversionReview")
        got = gvk(_group_version(answer.get("apiVersion")), str(answer.get("kind") or ""))
        if got != want:
            raise ConversionFailed(f"expected webhook response of {want}, got {got}")
    resp = answer.get("response")
    if not isinstance(resp, dict):
        raise ConversionFailed("no response provided")
    if sent["apiVersion"] == f"{GROUP}/v1" and resp.get("uid") != uid:  # v1beta1 never checked it
        raise ConversionFailed(f'expected response.uid="{uid}", got "{resp.get("uid") or ""}"')
    result: Obj = resp["result"] if isinstance(resp.get("result"), dict) else {}
    if result.get("status") != "Success":
        if result.get("message"):
            raise ConversionFailed(str(result["message"]))
        raise ConversionFailed(f"response.result.status was '{result.get('status') or ''}', not 'Success'")
    objs = resp.get("convertedObjects")
    return objs if isinstance(objs, list) else []


def _same_identity(original: Obj, converted: Obj) -> str:
    """kube's ``validateConvertedObject``: '' when kind, name, namespace and uid are kept."""
    om, cm = original.get("metadata") or {}, converted.get("metadata")
    cm = cm if isinstance(cm, dict) else {}
    for what, a, b in (("kind", original.get("kind"), converted.get("kind")),
                       ("name", om.get("name"), cm.get("name")),
                       ("namespace", om.get("namespace"), cm.get("namespace")),
                       ("UID", om.get("uid"), cm.get("uid"))):
        if (a or "") != (b or ""):
            return f"must have the same {what}: {a or ''} != {b or ''}"
    return ""


def _restore_metadata(original: Obj, converted: Obj) -> Obj:
    """kube's ``restoreObjectMeta``: the original's metadata with the webhook's labels and
    annotations; raises ConversionFailed."""
    meta = converted.get("metadata")
    if "metadata" not in converted:
        raise ConversionFailed("missing metadata in converted object")
    if not isinstance(meta, dict):
        raise ConversionFailed(f"invalid metadata of type {_go_type(meta)} in converted object")
    out = copy.deepcopy(original.get("metadata") or {})
    for fld in ("labels", "annotations"):
        value = meta.get(fld)
        if value is None:
            out.pop(fld, None)
            continue
        if not isinstance(value, dict):
            raise ConversionFailed(f"invalid metadata.{fld} of type {_go_type(value)} in converted object")
        for k, v in value.items():
            if not isinstance(v, str):
                raise ConversionFailed(f"metadata.{fld}[{k}] must be a string, but is {_go_type(v)} in converted "
                                       "object")
        if value != (out.get(fld) or {}):
            errs = validate_labels(value, "metadata.labels") if fld == "labels" else \
                validate_annotations(value, "metadata.annotation")
            if errs:
                raise ConversionFailed(str(errs[0]) if len(errs) == 1 else "[" + ", ".join(map(str, errs)) + "]")
        out[fld] = value
    return {**converted, "metadata": out}


def _go_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "float64" if isinstance(v, float) else "int64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "[]interface {}"
    if v is None:
        return "<nil>"
    return "map[string]interface {}"


def check_converted(desired: str, originals: list[Obj], converted: list[Any]) -> list[Obj]:
    """The webhook's objects checked and their metadata restored as kube's ``Convert`` does.

    kube converts each object as it is decoded (each served version has its own storage and
    watch cache), so its errors name one object's kind and ``index 0``; k8py sends a list page in
    one review, and words what is wrong with an item as kube would have for that item alone."""
    if len(converted) != len(originals):
        what = gvk(str(originals[0].get("apiVersion") or ""), str(originals[0].get("kind") or ""))
        raise ConversionFailed(f"conversion webhook for {what} returned {len(converted)} objects, "
                               f"expected {len(originals)}")
    out = []
    for orig, conv in zip(originals, converted, strict=True):
        what = gvk(str(orig.get("apiVersion") or ""), str(orig.get("kind") or ""))
        if not isinstance(conv, dict):
            raise ConversionFailed(f"conversion webhook for {what} returned invalid object at index 0: "
                                   f"cannot unmarshal {_go_type(conv)} into an object")
        got = _group_version(conv.get("apiVersion"))
        if got != desired:
            raise ConversionFailed(f"conversion webhook for {what} returned invalid object at index 0: invalid "
                                   f"groupVersion (expected {desired}, received {got})")
        if conv.get("kind") != orig.get("kind"):
            raise ConversionFailed(f"conversion webhook for {what} returned invalid object at index 0: invalid kind "
                                   f"(expected {orig.get('kind')}, received {conv.get('kind') or ''})")
        bad = _same_identity(orig, conv)
        if bad:
            raise ConversionFailed(f"conversion webhook for {what} returned invalid object: {bad}")
        try:
            out.append(_restore_metadata(orig, conv))
        except ConversionFailed as e:
            raise ConversionFailed(f"conversion webhook for {what} returned invalid metadata: {e}") from None
    return out


class ConversionWebhooks:
    """The calls of every CRD's conversion webhook (kube's ``webhookConverterFactory``)."""

    def __init__(self, live_kinds: Callable[[], Iterable[KindInfo]] = tuple) -> None:
        # set by the server: the aggregation layer's Service -> endpoint resolver
        self.service_resolver: Any = None
        self._live_kinds = live_kinds
        self._pool = webhookclient.Sessions("conversion-webhook", self._live_cas)

    def _live_cas(self) -> list[str]:
        return [str((orjson.loads(k.conversion_webhook).get("clientConfig") or {}).get("caBundle") or "")
                for k in self._live_kinds() if k.conversion_webhook]

    async def close(self) -> None:
        await self._pool.close_all()

    async def convert(self, kind: KindInfo, objs: list[Obj], desired: str) -> list[Obj]:
        """``objs`` in the ``desired`` apiVersion, in one review (those already in it are not
        sent); raises kube's 500 Status when the webhook fails or answers wrong."""
        todo = [i for i, o in enumerate(objs) if o.get("apiVersion") != desired]
        if not todo:
            return objs
        sent = [objs[i] for i in todo]
        try:
            converted = await self._call(kind, desired, sent)
        except ConversionFailed as e:
            raise errors.StatusError(500, "", str(e)) from None
        out = list(objs)
        for i, c in zip(todo, converted, strict=True):
            out[i] = c
        return out

    async def _call(self, kind: KindInfo, desired: str, sent: list[Obj]) -> list[Obj]:
        webhook = orjson.loads(kind.conversion_webhook or "{}")
        uid = str(uuid.uuid4())
        review = review_request(webhook.get("conversionReviewVersions") or (), uid, desired, sent)
        try:
            answer = await webhookclient.post(self._pool, webhook.get("clientConfig") or {}, self.service_resolver,
                                              review, CALL_TIMEOUT, f"?timeout={CALL_TIMEOUT}s")
            converted = converted_objects(review, uid, answer)
        except (CallError, ConversionFailed) as e:
            log.warning("conversion webhook for %s/%s failed: %s", kind.group, kind.resource, e)
            what = gvk(str(sent[0].get("apiVersion") or ""), str(sent[0].get("kind") or kind.kind))
            raise ConversionFailed(f"conversion webhook for {what} failed: {e}") from None
        return check_converted(desired, sent, converted)
