"""REST handlers for resources: get, list, create, update, patch, delete, deletecollection
and the status, scale and binding subresources. Watch lives in ``watch.py``."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from k8py.api import (
    defaults,
    errors,
    fieldcheck,
    managedfields,
    omitempty,
    patch,
    protobuf,
    schema,
    selectors,
    tables,
)
from k8py.api.corev1 import format_time, now_rfc3339
from k8py.api.registry import VIRTUAL_KINDS, KindInfo, Registry
from k8py.apiserver import componentstatus, eviction, kubeletproxy, options, proxy_subresource, reviews
from k8py.apiserver.admission import Admission, Attributes
from k8py.apiserver.context import Ctx
from k8py.apiserver.negotiate import (
    JSON,
    PATCH_APPLY,
    PATCH_JSON,
    PATCH_MERGE,
    PATCH_STRATEGIC,
    YAML,
    Output,
    content_type_of,
    encode,
)
from k8py.apiserver.objects import Objects, parse_rv
from k8py.apiserver.registry import Strategies, random_suffix
from k8py.apiserver.registry.core import NamespaceStrategy, bind_pod
from k8py.apiserver.watch import serve_watch
from k8py.storage.encryption import UnreadableValue
from k8py.storage.interface import ConflictError

Obj = dict[str, Any]

# What one warning header may carry (kube truncates each warning to 4 KiB, and all of them
# to 256 KiB, in its warning recorder).
MAX_WARNING_LEN = 4 * 1024
# kube's warning recorder: past 4096 characters of warnings in one response every warning is cut
# to 256, and those after the 4096th character are left out
WARNINGS_TRUNCATE_AT = 4 * 1024
WARNING_TRUNCATED_LEN = 256
# k8py's own bound: Python's http.client (under urllib3 and the official client) refuses a
# response of more than 100 header lines, which 4096 characters of short warnings can reach
MAX_WARNING_HEADERS = 64

class ResourceAPI:
    def __init__(self, objects: Objects, registry: Registry, admission: Admission, strategies: Strategies,
                 authorizer: Any = None) -> None:
        self.objects = objects
        self.registry = registry
        self.admission = admission
        self.strategies = strategies  # the per-kind behaviour (apiserver/registry)
        self.authorizer = authorizer  # answers SubjectAccessReviews
        self.kubelet: kubeletproxy.KubeletConnection | None = None  # set by the composition root (cli/process.py)
        # pods/proxy, services/proxy: where to connect for a pod or endpoint address (None: the address
        # itself, as kube-apiserver in the cluster network); tests map pod addresses to loopback
        self.proxy_dial: proxy_subresource.ProxyDial | None = None
        # serviceaccounts/token, and the authenticator TokenReview asks (both set by server.build)
        self.sa_tokens: Any = None
        self.authenticator: Any = None
        # the requests serving a watch now (apiserver/watch.py): ended when the server shuts down
        self.open_watches: set[asyncio.Task[Any]] = set()

    # -- helpers -----------------------------------------------------------------
    async def decode_object(self, ctx: Ctx, kind: KindInfo, raw: bytes, *, expect_kind: str | None = None) -> Obj:
        ct = options.body_media_type(ctx)
        mode = options.field_validation(ctx)
        if protobuf.is_protobuf(ct):
            # typed client-go clients (kubectl create ...) send protobuf; it has no unknown/duplicate fields
            obj = protobuf.decode(raw)
            self.check_type_meta(kind, obj, expect_kind)
            return obj
        if ct not in (JSON, *options.YAML_TYPES):
            raise errors.unsupported_media_type(ct)
        obj, dups = fieldcheck.decode_body(raw, ct, mode != "Ignore", kind=expect_kind or kind.kind)
        if not isinstance(obj, dict):
            raise errors.bad_request("Object 'Kind' is missing in '" + raw[:200].decode("utf-8", "replace") + "'")
        self.check_type_meta(kind, obj, expect_kind)
        self.check_fields(ctx, kind, obj, mode, dups)
        return obj

    def check_type_meta(self, kind: KindInfo, obj: Obj, expect_kind: str | None = None) -> None:
        """apiVersion/kind must name this endpoint's kind; missing ones default to it, as
        kube's decoder defaults the GVK from the request path."""
        want_kind = expect_kind or kind.kind
        av = obj.get("apiVersion")
        k = obj.get("kind")
        if not k:
            obj["kind"] = k = want_kind
        if not av:
            obj["apiVersion"] = av = kind.api_version if expect_kind is None else av
        if k != want_kind:
            raise errors.bad_request(f"the kind in the data ({k}) does not match the expected kind ({want_kind})")
        if expect_kind is None and av != kind.api_version:
            # a kind served in another version of the same storage is converted
            other = self.registry.by_api_version(str(av), str(k))
            if other is not None and other.storage_name == kind.storage_name:
                return
            raise errors.bad_request(
                f"the API version in the data ({av}) does not match the expected API version ({kind.api_version})")

    def check_fields(self, ctx: Ctx, kind: KindInfo, obj: Obj, mode: str, dups: list[str]) -> None:
        node = schema.for_kind(kind.group, kind.version, kind.kind)
        if node is None:
            if kind.custom:
                self.check_custom_fields(ctx, kind, obj, mode, dups)
            return
        av = str(obj.get("apiVersion") or kind.api_version)
        warnings = fieldcheck.check(obj, node, mode, dups, kind=kind.kind, version=av.rpartition("/")[2])
        ctx.warnings.extend(warnings)
        if mode != "Strict" and (warnings or mode == "Ignore"):
            # kube's decoder drops fields its types do not have
            for path in fieldcheck.unknown_field_paths(obj, node):
                _prune(obj, path)

    def check_custom_fields(self, ctx: Ctx, kind: KindInfo, obj: Obj, mode: str, dups: list[str]) -> None:
        """A custom resource's body: fields its schema does not declare are pruned (kube's
        structural pruning at decode), reported as the field validation ``mode`` asks."""
        normalize = getattr(self.strategies.for_kind(kind), "normalize", None)
        dropped = normalize(kind, obj) if normalize is not None else []
        if mode == "Ignore":
            return
        errs = [*dups, *(f'unknown field "{p}"' for p in dropped)]
        if not errs:
            return
        if mode == "Strict":
            raise errors.bad_request(f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: '
                                     "strict decoding error: " + ", ".join(errs))
        ctx.warnings.extend(errs)

    def respond(self, ctx: Ctx, obj: Any, status: int = 200, kind: KindInfo | None = None) -> web.Response:
        out = ctx.output()
        if kind is not None and out.transform == "Table" and isinstance(obj, dict) and obj.get("kind") != "Status":
            obj = tables.table(self.strategies.for_kind(kind).table_for(kind), [obj],
                               include_object=ctx.q("includeObject", "Metadata") or "Metadata")
        elif kind is not None and out.transform == "PartialObjectMetadata" and isinstance(obj, dict):
            obj = tables.partial_object_metadata(kind, obj)
        body, ct = encode(obj, out)
        resp = web.Response(body=body, status=status, content_type=ct)
        self.add_warnings(ctx, resp)
        return resp

    @staticmethod
    def add_warnings(ctx: Ctx, resp: web.StreamResponse) -> None:
        for text in warning_headers(ctx.warnings):
            resp.headers.add("Warning", f'299 - "{text}"')

    def kind_for(self, ctx: Ctx) -> KindInfo:
        i = ctx.info
        kind = self.registry.by_resource(i.group, i.version, i.resource)
        if kind is None:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource",
                                     details={})
        if kind.namespaced and not i.namespace and i.verb not in ("list", "watch", "deletecollection"):
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource",
                                     details={})
        if not kind.namespaced and i.namespace:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource",
                                     details={})
        if i.subresource and i.subresource not in kind.subresources:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource",
                                     details={})
        return kind

    # -- dispatch ----------------------------------------------------------------
    async def handle(self, ctx: Ctx) -> web.StreamResponse:
        kind = self.kind_for(ctx)
        i = ctx.info
        verb = i.verb
        if kind.custom:  # a deprecated CRD version says so on every request (kube's crdHandler)
            ctx.warnings.extend(self.strategies.for_kind(kind).request_warnings(kind))
        if verb not in kind.verbs and not i.subresource and verb != "watch":
            raise errors.method_not_allowed()
        # kube serves POST only on collections and PUT/PATCH only on items: anything else is
        # a route that does not exist (405), never a create under another name.
        if (verb == "create" and i.name and not i.subresource) or (verb in ("update", "patch") and not i.name):
            raise errors.method_not_allowed()
        if verb in ("list", "watch", "deletecollection"):
            options.check_list_query(ctx)
        if i.subresource:
            return await self.subresource(ctx, kind)
        if kind.kind in VIRTUAL_KINDS:
            if verb != "create":
                raise errors.method_not_allowed()
            body = await self.decode_object(ctx, kind, await options.read_body(ctx.request))
            if kind.kind == "TokenReview":
                return self.respond(ctx, await reviews.token_review(body, self.authenticator, self.sa_tokens,
                                                                    i.namespace), 201)
            return self.respond(ctx, reviews.answer(kind.kind, body, ctx.user, self.authorizer,
                                                     i.namespace), 201)
        if kind.kind == "ComponentStatus":  # probed on each request, never stored
            return await componentstatus.handle(self, ctx, kind)
        ns = i.namespace if kind.namespaced else None
        if verb == "get":
            obj = await self.objects.get(kind, ns, i.name, parse_rv(ctx.q("resourceVersion")) if ctx.q(
                "resourceVersion") not in ("", "0") else 0)
            return self.respond(ctx, obj, kind=kind)
        if verb == "list":
            return await self.list(ctx, kind, ns)
        if verb == "watch":
            return await serve_watch(self, ctx, kind, ns)
        if verb == "create":
            obj = await self.create(ctx, kind, ns)
            return self.respond(ctx, obj, 201, kind)
        if verb == "update":
            obj, created = await self.update(ctx, kind, ns, i.name)
            return self.respond(ctx, obj, 201 if created else 200, kind)
        if verb == "patch":
            obj, created = await self.patch(ctx, kind, ns, i.name)
            return self.respond(ctx, obj, 201 if created else 200, kind)
        if verb == "delete":
            obj, status = await self.delete(ctx, kind, ns, i.name)
            return self.respond(ctx, obj, status, kind if obj.get("kind") != "Status" else None)
        if verb == "deletecollection":
            return await self.delete_collection(ctx, kind, ns)
        raise errors.method_not_allowed()

    # -- list ----------------------------------------------------------------------
    def matcher(self, ctx: Ctx, kind: KindInfo) -> Any:
        ls = ctx.q("labelSelector")
        fs = ctx.q("fieldSelector")
        if not ls and not fs:
            return None
        return selectors.compile_selector(self.strategies.for_kind(kind).field_labels, ls, fs)

    async def list(self, ctx: Ctx, kind: KindInfo, ns: str | None) -> web.Response:
        limit = options.list_limit(ctx)
        match = self.matcher(ctx, kind)
        out = ctx.output()
        fast = not out.transform and out.serializer == JSON
        page = await self.objects.list(kind, ns, match=match.matches if match else None, limit=max(limit, 0),
                                       continue_token=ctx.q("continue"), rv=ctx.q("resourceVersion"),
                                       rv_match=ctx.q("resourceVersionMatch"), raw=fast)
        if page.unreadable:  # objects whose encryption key is lost: reported one by one
            ctx.warnings.extend(page.unreadable)
        list_meta: Obj = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            list_meta["continue"] = page.continue_token
        if page.remaining is not None:
            list_meta["remainingItemCount"] = page.remaining
        if page.items and isinstance(page.items[0], bytes):
            head = orjson.dumps({"kind": kind.list_kind_name, "apiVersion": kind.api_version,
                                 "metadata": list_meta})
            body = head[:-1] + b',"items":[' + b",".join(page.items) + b"]}\n"
            resp = web.Response(body=body, content_type=JSON)
            self.add_warnings(ctx, resp)
            return resp
        if out.transform == "Table":
            body_obj: Obj = tables.table(self.strategies.for_kind(kind).table_for(kind), page.items,
                                         include_object=ctx.q("includeObject", "Metadata") or "Metadata",
                                         list_meta=list_meta)
        elif out.transform in ("PartialObjectMetadataList", "PartialObjectMetadata"):
            body_obj = tables.partial_object_metadata_list(kind, page.items, list_meta)
        else:
            for it in page.items:
                it.setdefault("apiVersion", kind.api_version)
                it.setdefault("kind", kind.kind)
            body_obj = {"kind": kind.list_kind_name, "apiVersion": kind.api_version, "metadata": list_meta,
                        "items": page.items}
        body, ct = encode(body_obj, Output(out.serializer))
        resp = web.Response(body=body, content_type=ct)
        self.add_warnings(ctx, resp)
        return resp

    # -- create -------------------------------------------------------------------
    async def create(self, ctx: Ctx, kind: KindInfo, ns: str | None, obj: Obj | None = None) -> Obj:
        if obj is None:
            raw = await options.read_body(ctx.request)
            obj = await self.decode_object(ctx, kind, raw)
        dry = options.dry_run(ctx)
        manager = options.field_manager(ctx)
        return await self.create_object(ctx, kind, ns, obj, dry, manager)

    async def create_object(self, ctx: Ctx, kind: KindInfo, ns: str | None, obj: Obj, dry: bool,
                            manager: str, apply_managed: bool = False) -> Obj:
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if kind.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and ns and body_ns != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
            meta["namespace"] = ns or body_ns or "default"
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if not kind.custom:
            # as kube's decode into the Go type, before defaulting and validation: zero values
            # of omitempty fields are gone (an empty labels map is no labels)
            omitempty.normalize(obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + random_suffix()
        strat = self.strategies.for_kind(kind)
        strat.prepare_for_create(kind, obj)
        if ctx is not None:
            strat.prepare_for_create_by(kind, obj, ctx.user)
        defaults.set_defaults(kind, obj)
        attrs = self.admission_attributes(ctx, "CREATE", kind, meta.get("namespace", ""), meta.get("name", ""), dry)
        await self.admission.mutate(attrs, obj, None)
        # after mutating admission, as kube's PrepareForCreate: a pod's QoS class counts the
        # limits LimitRanger filled in
        strat.finish_create(kind, obj)
        if ctx is not None:
            self.confirm_no_escalation(ctx, kind, obj, None)
        await strat.begin_write(kind, obj, None, dry)
        errs = strat.validate(kind, obj)
        if errs:
            raise errors.invalid_error(kind.kind, kind.group, meta.get("name", ""), errs)
        await self.admission.validate(attrs, obj, None)
        if not apply_managed:
            node = strat.fields_schema(kind)
            managedfields.update_managed_fields(None, obj, manager=manager, operation="Update",
                                                api_version=kind.api_version, now=now_rfc3339(), node=node)
        if dry:
            meta.pop("resourceVersion", None)
            return obj
        return await self.objects.create(kind, obj)

    @staticmethod
    def admission_attributes(ctx: Ctx | None, operation: str, kind: KindInfo, ns: str, name: str, dry: bool,
                             subresource: str = "") -> Attributes:
        """The request as admission sees it: who asks, and the request's warnings list, so that
        what a plugin warns reaches the response's Warning: headers."""
        if ctx is None:  # the API server's own writes (bootstrap objects)
            return Attributes(operation, kind, ns, name, subresource=subresource, dry_run=dry)
        return Attributes(operation, kind, ns, name, subresource=subresource, dry_run=dry, user=ctx.user,
                          warnings=ctx.warnings, audit_annotations=ctx.audit_annotations)

    def authorize_create(self, ctx: Ctx) -> None:
        """The request authorized again as a ``create``: an update that turns into a create (kube's
        update handler wraps the create's admission in ``withAuthorization``), and a streaming
        upgrade that the pipeline authorized as a ``get``."""
        if self.authorizer is None or ctx.user is None:
            return
        from k8py.apiserver.authz import RequestAttributes, forbidden

        attrs = RequestAttributes.from_request_info(dataclasses.replace(ctx.info, verb="create"))
        ok, reason = self.authorizer.authorize(ctx.user, attrs)
        if not ok:
            raise forbidden(ctx.user.name, attrs, reason)

    def confirm_no_escalation(self, ctx: Ctx | None, kind: KindInfo, obj: Obj, old: Obj | None) -> None:
        """RBAC's escalation check on Role/ClusterRole/binding writes (kube's policy-based RBAC
        storage), when the authorizer has one (``RBACAuthorizer.confirm_no_escalation``)."""
        check = getattr(self.authorizer, "confirm_no_escalation", None)
        if check is not None and ctx is not None and kind.group == "rbac.authorization.k8s.io":
            check(ctx.user, kind, (obj.get("metadata") or {}).get("namespace") or "", obj, old)

    # -- update -------------------------------------------------------------------
    async def update(self, ctx: Ctx, kind: KindInfo, ns: str | None, name: str) -> tuple[Obj, bool]:
        raw = await options.read_body(ctx.request)
        obj = await self.decode_object(ctx, kind, raw)
        meta = obj.get("metadata") or {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        check_name(meta, name, ns if kind.namespaced else None)
        dry = options.dry_run(ctx)
        manager = options.field_manager(ctx)
        # kube: an update with no resourceVersion, or "0", is unconditional
        want_rv = meta.get("resourceVersion") or ""
        if want_rv == "0":
            want_rv = ""
            meta.pop("resourceVersion", None)

        async def try_update(current: Obj) -> Obj | None:
            new = copy.deepcopy(obj)
            if want_rv and want_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(kind.resource, kind.group, name, errors.OPTIMISTIC_LOCK_MSG)
            return await self.prepare_update(ctx, kind, new, current, manager, dry)

        if want_rv or not self.strategies.for_kind(kind).allow_create_on_update:
            return await self.run_update(ctx, kind, ns, name, try_update, dry)
        # kube's Store.Update with AllowCreateOnUpdate: a PUT without a resourceVersion of an
        # object that is not there creates it (201); one that raced in meanwhile is updated.
        for _ in range(3):
            try:
                return await self.run_update(ctx, kind, ns, name, try_update, dry)
            except errors.StatusError as e:
                if e.code != 404 or e.reason != "NotFound":
                    raise
            self.authorize_create(ctx)
            try:
                created = await self.create_object(ctx, kind, ns, copy.deepcopy(obj), dry, manager)
            except errors.StatusError as e:
                if e.code != 409 or e.reason != "AlreadyExists":
                    raise
                continue
            return created, True
        raise errors.conflict(kind.resource, kind.group, name, errors.OPTIMISTIC_LOCK_MSG)

    async def run_update(self, ctx: Ctx, kind: KindInfo, ns: str | None, name: str, try_update: Any,
                         dry: bool) -> tuple[Obj, bool]:
        if dry:
            current = await self.objects.get(kind, ns, name)
            new = await try_update(copy.deepcopy(current))
            return (new if new is not None else current), False
        _, new = await self.objects.guaranteed_update(kind, ns, name, try_update)
        await self.after_update(kind, new)
        return new, False

    async def after_update(self, kind: KindInfo, obj: Obj) -> None:
        """An object whose last finalizer went while it was being deleted is removed now."""
        strat = self.strategies.for_kind(kind)
        if strat.delete_on_update(kind, obj):
            meta = obj["metadata"]
            try:
                await self.objects.delete(kind, meta.get("namespace") if kind.namespaced else None, meta["name"],
                                          int(meta["resourceVersion"]))
            except errors.StatusError as e:
                if e.code not in (404, 409):
                    raise
                return
            # the same hook as a direct delete: allocations held by the object go with it
            await strat.after_delete(kind, obj)

    async def prepare_update(self, ctx: Ctx, kind: KindInfo, new: Obj, current: Obj, manager: str,
                             dry: bool, *, operation: str = "Update", subresource: str = "",
                             scale: Obj | None = None) -> Obj:
        new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        if not kind.custom:
            omitempty.normalize(new)  # the patched or sent object as its Go type holds it (see create_object)
        meta = new.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = current["metadata"].get("namespace")
        meta["name"] = current["metadata"]["name"]
        old_meta = current["metadata"]
        if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
            # a uid in the body is a precondition: the object was not recreated meanwhile
            raise errors.conflict(kind.resource, kind.group, meta["name"],
                                  f"Precondition failed: UID in precondition: {meta['uid']}, "
                                  f"UID in object meta: {old_meta.get('uid')}")
        if old_meta.get("deletionTimestamp") and _adds_finalizers(meta, old_meta):
            raise errors.forbidden_error(
                f'{errors.qualified(kind.resource, kind.group)} "{meta["name"]}" is forbidden: no new finalizers '
                "can be added if the object is being deleted", kind.resource, kind.group, meta["name"])
        strat = self.strategies.for_kind(kind)
        attrs = self.admission_attributes(ctx, "UPDATE", kind, meta.get("namespace", ""), meta["name"], dry,
                                          subresource)
        if subresource in ("status", "approval", "ephemeralcontainers"):
            new = strat.prepare_for_subresource_update(kind, subresource, new, current)
            meta = new["metadata"]
            await self.admission.mutate(attrs, new, current)
            errs = strat.validate_subresource_update(kind, subresource, new, current)
        else:
            if subresource == "scale":
                await self.admit_scale(attrs, kind, new, current, scale)
            strat.prepare_for_update(kind, new, current)
            defaults.set_defaults(kind, new)
            if subresource != "scale":
                await self.admission.mutate(attrs, new, current)
            if not subresource:
                self.confirm_no_escalation(ctx, kind, new, current)
                await strat.begin_write(kind, new, current, dry)
            errs = strat.validate_update(kind, new, current)
        ctx.warnings.extend(strat.validation_warnings(kind, new))
        if errs:
            raise errors.invalid_error(kind.kind, kind.group, meta["name"], errs)
        if subresource == "scale":
            # kube's toScaleUpdateValidation: the validating phase sees the Scales of the parent
            # as it will be written and as it is
            await self.admission.validate(attrs, self.to_scale(kind, new), self.to_scale(kind, current))
        else:
            await self.admission.validate(attrs, new, current)
        node = strat.fields_schema(kind)
        if operation == "Update":
            if "managedFields" not in meta and old_meta.get("managedFields") is not None:
                # kube: an update that omits managedFields keeps the existing ones
                meta["managedFields"] = copy.deepcopy(old_meta["managedFields"])
            managedfields.update_managed_fields(current, new, manager=manager, operation="Update",
                                                api_version=kind.api_version, subresource=subresource,
                                                now=now_rfc3339(), node=node)
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return new

    # -- patch ----------------------------------------------------------------------
    async def patch(self, ctx: Ctx, kind: KindInfo, ns: str | None, name: str,
                    subresource: str = "") -> tuple[Obj, bool]:
        ct = content_type_of(ctx.request.headers.get("Content-Type", ""))
        if ct not in (PATCH_JSON, PATCH_MERGE, PATCH_STRATEGIC, PATCH_APPLY):
            raise errors.unsupported_media_type(ct)
        if ct == PATCH_STRATEGIC and kind.custom:
            # kube: custom resources have no Go types to merge strategically
            raise errors.StatusError(415, "UnsupportedMediaType",
                                     "the body of the request was in an unknown format - accepted media types "
                                     "include: application/json-patch+json, application/merge-patch+json, "
                                     "application/apply-patch+yaml")
        raw = await options.read_body(ctx.request)
        mode = options.field_validation(ctx)
        dry = options.dry_run(ctx)
        force = ctx.q("force") in ("true", "1")
        if force and ct != PATCH_APPLY:
            raise errors.bad_request("force is only allowed for apply patches")
        manager = options.field_manager(ctx)
        node = schema.for_kind(kind.group, kind.version, kind.kind)
        fields_node = self.strategies.for_kind(kind).fields_schema(kind)  # what managedFields track
        if ct == PATCH_APPLY:
            if not ctx.q("fieldManager"):
                raise errors.bad_request("PATCH requests with apply patch type require a field manager")
            applied, dups = fieldcheck.decode_body(raw, YAML, mode != "Ignore")
            if not isinstance(applied, dict):
                raise errors.bad_request("apply patch must be an object")
            if subresource == "scale":
                # kube applies a Scale to the parent's replicas (its scale subresource maps
                # Scale.spec.replicas onto the parent's path), owned by the applier
                applied = self.scale_to_parent(kind, applied, name)
            else:
                self.check_type_meta(kind, applied)
                self.check_fields(ctx, kind, applied, mode, dups)
            am = applied.get("metadata") or {}
            if am.get("name") and am["name"] != name:
                raise errors.bad_request(f"the name of the object ({am['name']}) does not match the name on "
                                         f"the URL ({name})")
            if am.get("managedFields"):
                raise errors.bad_request("metadata.managedFields must be nil")
            current = await self.objects.try_get(kind, ns, name) if not subresource else None
            if current is None and not subresource:
                created = managedfields.server_side_apply(None, applied, manager=manager, force=force,
                                                          api_version=kind.api_version, now=now_rfc3339(),
                                                          node=fields_node)
                created.setdefault("metadata", {})["name"] = name
                obj = await self.create_object(ctx, kind, ns, created, dry, manager, apply_managed=True)
                return obj, True
        else:
            if not raw.strip():
                raise errors.bad_request("the body of the request was empty")
            try:
                # Go's JSON rules and depth limits, whatever the top-level value is
                patch_doc, _ = fieldcheck.decode_body(raw, PATCH_JSON, False)
            except errors.StatusError as e:
                raise errors.bad_request(f"error decoding patch: {e.message}") from None
            if patch_doc is None:
                raise errors.bad_request("the body of the request was empty")

        async def try_update(current: Obj) -> Obj | None:
            base = current
            if subresource == "scale":
                base = self.to_scale(kind, current)
            if ct == PATCH_APPLY:
                patched = managedfields.server_side_apply(current, applied, manager=manager, force=force,
                                                          api_version=kind.api_version, now=now_rfc3339(),
                                                          node=fields_node,
                                                          subresource=subresource)
            elif ct == PATCH_JSON:
                patched = patch.json_patch(base, patch_doc)
            elif ct == PATCH_MERGE:
                patched = patch.merge_patch(base, patch_doc)
            else:
                if not isinstance(patch_doc, dict):
                    raise errors.bad_request("strategic merge patch must be a JSON object")
                pnode = node if subresource != "scale" else None
                patched = patch.strategic_merge_patch(base, patch_doc, pnode) if pnode is not None \
                    else patch.merge_patch(base, patch_doc)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            pm = patched.get("metadata") or {}
            if ct != PATCH_APPLY and subresource != "scale":
                if node is not None:
                    # kube decodes the patched object into its Go type: a value of the wrong type is
                    # an Invalid "patch" whatever the field validation mode
                    bad = fieldcheck.type_errors(patched, node)
                    if bad:
                        shown = orjson.dumps(patched).decode() if ct != PATCH_STRATEGIC else go_map_string(patch_doc)
                        raise errors.invalid_error("", "", "", [errors.invalid("patch", shown, bad[0])])
                if mode != "Ignore":
                    self.check_fields(ctx, kind, patched, mode, [])
            if pm.get("resourceVersion") and pm["resourceVersion"] != current["metadata"]["resourceVersion"]:
                raise errors.conflict(kind.resource, kind.group, name, errors.OPTIMISTIC_LOCK_MSG)
            if pm.get("name", name) != name:
                raise errors.bad_request(f"the name of the object ({pm.get('name')}) does not match the name on "
                                         f"the URL ({name})")
            if subresource == "scale" and ct != PATCH_APPLY:
                return await self.apply_scale(ctx, kind, current, patched, manager, dry)
            return await self.prepare_update(ctx, kind, patched, current, manager, dry,
                                             operation="Apply" if ct == PATCH_APPLY else "Update",
                                             subresource=subresource)

        updated, was_created = await self.run_update(ctx, kind, ns, name, try_update, dry)
        if subresource == "scale":
            return self.to_scale(kind, updated), was_created
        return updated, was_created

    # -- delete ---------------------------------------------------------------------
    async def delete_options(self, ctx: Ctx) -> Obj:
        return await options.delete_options(ctx)

    async def delete(self, ctx: Ctx, kind: KindInfo, ns: str | None, name: str,
                     opts: Obj | None = None) -> tuple[Obj, int]:
        if opts is None:
            opts = await self.delete_options(ctx)
        dry = bool(opts.get("dryRun"))
        attrs = self.admission_attributes(ctx, "DELETE", kind, ns or "", name, dry)
        await self.admission.validate(attrs, None, None)
        pre = opts.get("preconditions") or {}
        for _ in range(20):
            kv = await self.objects.get_kv(kind, ns, name)
            if kv.__class__ is UnreadableValue and opts.get("ignoreStoreReadErrorWithClusterBreakingPotential"):
                if dry:
                    raise errors.bad_request("ignoreStoreReadErrorWithClusterBreakingPotential: Invalid value: true: "
                                             "can not be set together with dryRun")
                return await self.unsafe_delete(ctx, kind, ns, name, kv.mod_revision), 200
            current = await self.objects.read(kv, kind)
            cm = current["metadata"]
            if pre.get("uid") and pre["uid"] != cm.get("uid"):
                raise errors.conflict(kind.resource, kind.group, name,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {cm.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != cm.get("resourceVersion"):
                raise errors.conflict(kind.resource, kind.group, name,
                                      f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                      f"{cm.get('resourceVersion')}")
            graceful = self.graceful_update(kind, current, opts)
            if graceful is not None:
                if dry:
                    return graceful, 200
                try:
                    new = await self.objects.replace(kind, graceful, kv.mod_revision)
                except ConflictError:  # somebody wrote meanwhile: read again
                    continue
                return new, 202 if kind.kind != "Pod" else 200
            if cm.get("deletionTimestamp") and cm.get("finalizers"):
                return current, 202  # already being deleted: nothing more to do now
            if dry:
                return self.delete_result(kind, current), 200
            try:
                deleted_rev = await self.objects.delete_at(kind, ns, name, kv.mod_revision)
            except ConflictError:
                continue  # written meanwhile, or deleted by someone else: read again (404 then)
            current["metadata"]["resourceVersion"] = str(deleted_rev)
            await self.strategies.for_kind(kind).after_delete(kind, current)
            return self.delete_result(kind, current), 200
        raise errors.conflict(kind.resource, kind.group, name, errors.OPTIMISTIC_LOCK_MSG)

    async def unsafe_delete(self, ctx: Ctx, kind: KindInfo, ns: str | None, name: str, rev: int) -> Obj:
        """kube's unsafe deletion of a corrupt object (DeleteOptions'
        ``ignoreStoreReadErrorWithClusterBreakingPotential``; a value whose encryption key is lost):
        it needs the ``unsafe-delete-ignore-read-errors`` verb too, and removes the key without
        finalizers, preconditions or admission (the object cannot be read)."""
        if self.authorizer is not None and ctx.user is not None:
            from k8py.apiserver.authz import RequestAttributes

            attrs = dataclasses.replace(RequestAttributes.from_request_info(ctx.info),
                                        verb="unsafe-delete-ignore-read-errors")
            ok, reason = self.authorizer.authorize(ctx.user, attrs)
            if not ok:
                raise errors.forbidden_error(
                    f'{errors.qualified(kind.resource, kind.group)} "{name}" is forbidden: not permitted to do '
                    f'"unsafe-delete-ignore-read-errors", reason: {reason}', kind.resource, kind.group, name)
        await self.objects.delete_at(kind, ns, name, rev)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": kind.group, "kind": kind.resource}}

    def delete_result(self, kind: KindInfo, obj: Obj) -> Obj:
        if self.strategies.for_kind(kind).return_deleted_object:
            return obj
        meta = obj["metadata"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": meta["name"], "group": kind.group, "kind": kind.resource,
                            "uid": meta.get("uid")}}

    def graceful_update(self, kind: KindInfo, current: Obj, opts: Obj) -> Obj | None:
        """The object with deletionTimestamp set when deletion must wait (finalizers,
        foreground/orphan propagation, what the kind's strategy waits for, a graceful period);
        None to delete now. kube's BeforeDelete and updateForGracefulDeletionAndFinalizers."""
        strat = self.strategies.for_kind(kind)
        meta = current["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        pp = opts.get("propagationPolicy")
        if opts.get("orphanDependents") is True:
            pp = "Orphan"
        changed = False
        if pp == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
            changed = True
        elif pp == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
            changed = True
        wait = strat.waits_for_finalizers(kind, current)
        grace = strat.graceful_delete(kind, current, opts)
        if grace and meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds", grace) <= grace \
                and not changed:
            return current  # already going, no sooner than asked: only a shorter period changes it
        if not (finalizers or grace or wait):
            return None
        period = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and not changed and isinstance(period, int) and grace is not None \
                and grace < period:
            # kube's BeforeDelete: a shorter grace period on an object already being deleted
            # brings its deletion forward (0: as soon as its finalizers are gone)
            new = copy.deepcopy(current)
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            new["metadata"]["deletionTimestamp"] = format_time(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace))
            return strat.terminating(kind, new)
        if meta.get("deletionTimestamp") and not changed:
            return current if finalizers or wait else None
        new = copy.deepcopy(current)
        nm = new["metadata"]
        if grace:
            ts = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)
            nm["deletionTimestamp"] = format_time(ts)
            nm["deletionGracePeriodSeconds"] = grace
        else:
            nm.setdefault("deletionTimestamp", now_rfc3339())
            if not wait:
                nm["deletionGracePeriodSeconds"] = 0
        if finalizers:
            nm["finalizers"] = finalizers
        return strat.terminating(kind, new)

    async def delete_collection(self, ctx: Ctx, kind: KindInfo, ns: str | None) -> web.Response:
        opts = await self.delete_options(ctx)
        match = self.matcher(ctx, kind)
        page = await self.objects.list(kind, ns, match=match.matches if match else None)
        deleted: list[Obj] = []
        for obj in page.items:
            m = obj["metadata"]
            try:
                await self.delete(ctx, kind, m.get("namespace") if kind.namespaced else None, m["name"],
                                  dict(opts))
            except errors.StatusError as e:
                if e.code == 404:
                    continue
                raise
            deleted.append(obj)
        body = {"kind": kind.list_kind_name, "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(await self.objects.current_revision())}, "items": deleted}
        return self.respond(ctx, body)

    # -- subresources -----------------------------------------------------------------
    async def subresource(self, ctx: Ctx, kind: KindInfo) -> web.StreamResponse:
        i = ctx.info
        ns = i.namespace if kind.namespaced else None
        sub = i.subresource
        verb = i.verb
        if sub in ("status", "scale", "approval") or (sub == "ephemeralcontainers" and kind.kind == "Pod"):
            if sub == "scale" and not self.strategies.for_kind(kind).scalable:
                raise errors.StatusError(404, "NotFound", "the server could not find the requested resource")
            if verb == "get":
                obj = await self.objects.get(kind, ns, i.name)
                if sub == "scale":
                    return self.respond(ctx, self.to_scale(kind, obj))
                return self.respond(ctx, obj, kind=kind)
            if verb == "update":
                obj = await self.update_subresource(ctx, kind, ns, i.name, sub)
                return self.respond(ctx, obj, kind=kind if sub != "scale" else None)
            if verb == "patch":
                obj, _ = await self.patch(ctx, kind, ns, i.name, subresource=sub)
                return self.respond(ctx, obj, kind=kind if sub != "scale" else None)
            raise errors.method_not_allowed()
        if sub == "binding" and verb == "create":
            return await self.bind(ctx, kind, ns, i.name)
        if sub == "token" and kind.kind == "ServiceAccount" and verb == "create" and self.sa_tokens is not None:
            return await self.sa_tokens.token_request(self, ctx, kind, i.namespace, i.name)
        if sub == "eviction" and verb == "create":
            return await eviction.evict(self, ctx, kind, ns, i.name)
        if sub == "finalize" and verb == "update" and kind.kind == "Namespace":
            return await self.finalize_namespace(ctx, kind, i.name)
        if (sub == "log" and kind.kind == "Pod" and verb == "get") or (sub == "proxy" and kind.kind == "Node"):
            return await kubeletproxy.serve(self, ctx, kind, ns, i.name)
        if sub == "proxy" and kind.kind in ("Pod", "Service"):
            return await proxy_subresource.serve(self, ctx, kind, ns, i.name)
        if sub in kubeletproxy.STREAM_SUBRESOURCES and kind.kind == "Pod" and verb in ("get", "create"):
            return await kubeletproxy.serve_stream(self, ctx, kind, ns, i.name, sub)
        raise errors.StatusError(
            405, "MethodNotAllowed",
            f"{kind.resource}/{sub} is not supported by k8py yet for verb {verb}")

    async def update_subresource(self, ctx: Ctx, kind: KindInfo, ns: str | None, name: str, sub: str) -> Obj:
        raw = await options.read_body(ctx.request)
        dry = options.dry_run(ctx)
        manager = options.field_manager(ctx)
        if sub == "scale":
            mode = options.field_validation(ctx)
            body = options.decode_plain(ctx, raw, mode != "Ignore")
            if not isinstance(body, dict) or body.get("kind") != "Scale":
                raise errors.bad_request("expected a Scale object (autoscaling/v1)")

            async def try_scale(current: Obj) -> Obj | None:
                want = (body.get("metadata") or {}).get("resourceVersion")
                if want and want != current["metadata"]["resourceVersion"]:
                    raise errors.conflict(kind.resource, kind.group, name, errors.OPTIMISTIC_LOCK_MSG)
                return await self.apply_scale(ctx, kind, current, body, manager, dry)

            obj, _ = await self.run_update(ctx, kind, ns, name, try_scale, dry)
            return self.to_scale(kind, obj)
        obj = await self.decode_object(ctx, kind, raw)
        want_rv = (obj.get("metadata") or {}).get("resourceVersion")

        async def try_status(current: Obj) -> Obj | None:
            if want_rv and want_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(kind.resource, kind.group, name, errors.OPTIMISTIC_LOCK_MSG)
            return await self.prepare_update(ctx, kind, copy.deepcopy(obj), current, manager, dry,
                                             subresource=sub)

        new, _ = await self.run_update(ctx, kind, ns, name, try_status, dry)
        return new

    def to_scale(self, kind: KindInfo, obj: Obj) -> Obj:
        meta = obj["metadata"]
        strat = self.strategies.for_kind(kind)
        spec_replicas, status_replicas = strat.scale_replicas(kind, obj)
        sel_s = strat.scale_selector_of(kind, obj)
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": spec_replicas},
            "status": {"replicas": status_replicas, "selector": sel_s},
        }

    def scale_to_parent(self, kind: KindInfo, scale: Obj, name: str) -> Obj:
        """An applied ``autoscaling/v1 Scale`` as the partial parent object it stands for."""
        k, av = scale.get("kind"), scale.get("apiVersion")
        if k and k != "Scale":
            raise errors.bad_request(f"the kind in the data ({k}) does not match the expected kind (Scale)")
        if av and av != "autoscaling/v1":
            raise errors.bad_request(f"the API version in the data ({av}) does not match the expected API version "
                                     "(autoscaling/v1)")
        meta = scale.get("metadata") or {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        parent: Obj = {"apiVersion": kind.api_version, "kind": kind.kind,
                       "metadata": {k: v for k, v in meta.items() if k in ("name", "namespace", "managedFields")}}
        spec = scale.get("spec")
        if spec is not None:
            if not isinstance(spec, dict):
                raise errors.bad_request("json: cannot unmarshal into Go struct field Scale.spec of type "
                                         "v1.ScaleSpec")
            if "replicas" in spec:
                replicas = spec["replicas"]
                if not isinstance(replicas, int) or isinstance(replicas, bool):
                    raise errors.bad_request("json: cannot unmarshal into Go struct field ScaleSpec.spec.replicas "
                                             "of type int32")
                if replicas < 0:
                    raise errors.invalid_error("Scale", "autoscaling", name, [
                        errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")])
                parent["spec"] = {"replicas": replicas}
        return parent

    async def apply_scale(self, ctx: Ctx, kind: KindInfo, current: Obj, scale: Obj, manager: str,
                          dry: bool) -> Obj:
        """An update or patch of ``/scale``: ``scale`` is the new Scale (the body, or the current
        Scale patched); admission and its checks follow in :meth:`prepare_update`."""
        replicas = (scale.get("spec") or {}).get("replicas")
        if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool)):
            raise errors.bad_request("json: cannot unmarshal into Go struct field ScaleSpec.spec.replicas of "
                                     "type int32")
        # the Scale as kube decodes it into its type (other fields are dropped)
        decoded: Obj = {k: copy.deepcopy(scale[k]) for k in ("metadata", "spec", "status")
                        if isinstance(scale.get(k), dict)}
        decoded["kind"], decoded["apiVersion"] = "Scale", "autoscaling/v1"
        return await self.prepare_update(ctx, kind, copy.deepcopy(current), current, manager, dry,
                                         subresource="scale", scale=decoded)

    async def admit_scale(self, attrs: Attributes, kind: KindInfo, new: Obj, current: Obj, scale: Obj | None) -> None:
        """The mutating phase of a ``/scale`` write, as kube's ``scaleUpdatedObjectInfo``: admission
        sees the new Scale (``scale``, else the one of ``new``) and the current one (kind
        ``autoscaling/v1 Scale``); the Scale it leaves is validated (``ValidateScale``) and its
        replicas are set on ``new``, the parent to be written."""
        new_scale = scale if scale is not None else self.to_scale(kind, new)
        await self.admission.mutate(attrs, new_scale, self.to_scale(kind, current))
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if replicas is None:
            replicas = 0
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            # a webhook's patch that does not decode into a Scale: kube's internal error
            raise errors.internal_error("json: cannot unmarshal into Go struct field ScaleSpec.spec.replicas of "
                                        "type int32")
        name = current["metadata"]["name"]
        if replicas < 0:
            raise errors.invalid_error("Scale", "autoscaling", name, [
                errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")])
        uid, have = (new_scale.get("metadata") or {}).get("uid"), current["metadata"].get("uid")
        if uid and uid != have:  # a precondition: the Scale of an object since deleted and made again
            raise errors.conflict(f"{kind.resource}/scale", kind.group, name,
                                  f"Precondition failed: UID in precondition: {uid}, UID in object meta: {have}")
        self.strategies.for_kind(kind).set_spec_replicas(kind, new, replicas)

    async def bind(self, ctx: Ctx, kind: KindInfo, ns: str | None, name: str) -> web.Response:
        raw = await options.read_body(ctx.request)
        body = options.decode_plain(ctx, raw, False)
        if not isinstance(body, dict) or body.get("kind") not in ("Binding", None):
            raise errors.bad_request("expected a Binding object")
        target = body.get("target") or {}
        node = target.get("name")
        if not node:
            raise errors.invalid_error("Binding", "", name, [errors.required("target.name")])
        want_uid = (body.get("metadata") or {}).get("uid")

        async def try_bind(current: Obj) -> Obj | None:
            return bind_pod(current, node, want_uid, name)

        await self.objects.guaranteed_update(kind, ns, name, try_bind)
        return self.respond(ctx, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "code": 201}, 201)

    async def finalize_namespace(self, ctx: Ctx, kind: KindInfo, name: str) -> web.Response:
        raw = await options.read_body(ctx.request)
        body = options.decode_plain(ctx, raw, False)
        if not isinstance(body, dict):
            raise errors.bad_request("expected a Namespace object")
        fin = (body.get("spec") or {}).get("finalizers") or []

        async def try_fin(current: Obj) -> Obj | None:
            return NamespaceStrategy.finalize(current, fin)

        _, new = await self.objects.guaranteed_update(kind, None, name, try_fin)
        nm = new["metadata"]
        if nm.get("deletionTimestamp") and not fin and not nm.get("finalizers"):
            await self.objects.delete(kind, None, name, None)
        return self.respond(ctx, new, kind=kind)


def go_map_string(value: Any) -> str:
    """A decoded JSON value as Go's ``%+v`` prints it (``map[a:1 b:[x y]]``, keys sorted)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_map_string(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_map_string(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def warning_headers(warnings: Iterable[str]) -> list[str]:
    """The ``Warning`` header values for a response's warnings, as kube's recorder writes them:
    each text once, empty ones skipped, truncated past :data:`WARNINGS_TRUNCATE_AT` characters,
    then at most :data:`MAX_WARNING_HEADERS` (escaped with :func:`warning_text`)."""
    texts = list(dict.fromkeys(w for w in warnings if w))
    if sum(len(t) for t in texts) > WARNINGS_TRUNCATE_AT:
        cut, written = [], 0
        for t in texts:
            if written >= WARNINGS_TRUNCATE_AT:
                break
            t = t[:WARNING_TRUNCATED_LEN]
            cut.append(t)
            written += len(t)
        texts = cut
    return [warning_text(t) for t in texts[:MAX_WARNING_HEADERS]]


def warning_text(text: str) -> str:
    """A warning as it may go into a ``Warning: 299 - "..."`` header: printable characters only
    (a control character would make the header invalid, and the reply would be lost after the
    write committed), quotes and backslashes escaped, at most 4 KiB (kube's warning recorder)."""
    # the usual warning is printable already: one C-level check instead of a pass per character
    clean = text if text.isprintable() else "".join(ch if ch == " " or ch.isprintable() else " " for ch in text)
    if len(clean) * 4 > MAX_WARNING_LEN and len(clean.encode()) > MAX_WARNING_LEN:
        clean = clean.encode()[:MAX_WARNING_LEN].decode("utf-8", "ignore")
    return clean.replace("\\", "\\\\").replace('"', '\\"')


def check_name(meta: Obj, name: str, namespace: str | None) -> None:
    """kube's checkName for update: the body names the object on the URL, in its namespace."""
    obj_name = meta.get("name")
    if not obj_name:
        raise errors.bad_request(f"the name of the object ({name} based on URL) was undeterminable: "
                                 "name must be provided")
    if obj_name != name:
        raise errors.bad_request(f"the name of the object ({obj_name}) does not match the name on the URL "
                                 f"({name})")
    obj_ns = meta.get("namespace")
    if namespace and obj_ns and obj_ns != namespace:
        raise errors.bad_request(f"the namespace of the object ({obj_ns}) does not match the namespace on the "
                                 f"request ({namespace})")


_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _prune(obj: Any, path: str) -> None:
    """Remove the field at ``path`` (``spec.containers[0].foo``) from ``obj``."""
    parts: list[str | int] = [m.group(1) if m.group(1) is not None else int(m.group(2))
                              for m in _SEGMENT.finditer(path)]
    cur = obj
    for p in parts[:-1]:
        try:
            cur = cur[p]
        except (KeyError, IndexError, TypeError):
            return
    last = parts[-1] if parts else None
    if isinstance(cur, dict) and isinstance(last, str):
        cur.pop(last, None)


def _adds_finalizers(meta: Obj, old_meta: Obj) -> bool:
    return bool(set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or []))
