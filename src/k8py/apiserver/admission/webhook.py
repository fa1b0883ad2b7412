"""kube-apiserver's ``MutatingAdmissionWebhook`` and ``ValidatingAdmissionWebhook`` plugins: the
webhooks of MutatingWebhookConfigurations and ValidatingWebhookConfigurations are sent an
``admission.k8s.io`` AdmissionReview for each request they match, and answer allowed, denied,
or (mutating ones) with a JSON patch.

- Which webhooks, the review and kube's errors are pure (:mod:`k8py.api.admissionwebhook`); this
  module calls. The configurations are kept in memory from a store watch (``Objects.mirror``),
  as kube's plugins read an informer; a request that matches no webhook costs a scan of the
  configurations' rules and nothing else.
- Where: ``clientConfig.url`` as given, or ``clientConfig.service`` resolved to one ready
  endpoint of the Service's EndpointSlices by the aggregation layer's resolver
  (``Aggregator.resolve``, kube's ``--enable-aggregator-routing``), over HTTPS verified against
  ``caBundle`` (the system's roots without one) with server name ``<service>.<namespace>.svc``:
  the API server's webhook client (:mod:`k8py.apiserver.webhookclient`), which the CRD conversion
  webhooks use too.
  Each call is bounded by the webhook's ``timeoutSeconds`` (sent as ``?timeout=Ns``, as kube).
- Validating webhooks are called in parallel after every built-in validation; the first denial
  (in the webhooks' order) is the answer. Mutating webhooks are called one after the other after
  the built-in mutating plugins; a patch is applied with k8py's JSON Patch
  (:func:`k8py.api.patch.json_patch`) and the object defaulted again, as kube decodes it; the
  strategy's validation follows, as for any write. A webhook that changed the object makes the
  chain run its mutating phase once more (kube's reinvocation: the built-in plugins see what it
  added), in which the ``reinvocationPolicy: IfNeeded`` webhooks called before the change are
  called again.
- A call that fails (unreachable, timeout, TLS, a malformed answer) obeys ``failurePolicy``:
  ``Fail`` refuses the request with kube's 500 ``failed calling webhook "<name>": ...``,
  ``Ignore`` lets it through (logged). A dry run meets a webhook whose ``sideEffects`` is neither
  None nor NoneOnDryRun with kube's 400 ``does not support dry run``.
- ``response.warnings`` go out as ``Warning:`` headers; ``response.auditAnnotations`` go into the
  request's audit event as ``<webhook name>/<key>``.
- ``matchConditions`` (CEL, :mod:`k8py.api.admissionpolicy`) are run after the rules and selectors
  match, with ``object``, ``oldObject`` and ``request`` in the version the rules matched, and
  ``authorizer`` (checks asked of the server's authorizer as the requesting user): a false
  condition skips the webhook; errors follow ``failurePolicy`` (``Fail``: kube's 403
  ``... is forbidden: expression '...' resulted in error: ...``; ``Ignore``: skipped).
- A subresource whose object is of another kind is sent as that kind, never converted nor
  defaulted as the parent: a ``/scale`` write's Scales (``autoscaling/v1``), an Eviction, a
  CONNECT's options (``PodExecOptions``...; :func:`k8py.api.admissionwebhook.subresource_kind`).
- Never called for the webhook and policy configurations themselves (kube's exemption), and not
  for the review kinds (TokenReview, SubjectAccessReview...), which do not pass admission.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from k8py.api import admissionpolicy as ap
from k8py.api import admissionwebhook as aw
from k8py.api import cel, conversion, defaults, errors, omitempty, patch
from k8py.apiserver import webhookclient
from k8py.apiserver.admission import Attributes, Plugin
from k8py.apiserver.sessions import RetiredSessions

if TYPE_CHECKING:
    from k8py.api.registry import KindInfo, Registry
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

log = logging.getLogger(__name__)

SYNC_TIMEOUT = 10.0
# the user of requests the API server makes itself (bootstrap objects), as expressions see it
SERVER_USER: Obj = {"username": "system:apiserver", "groups": ["system:masters", "system:authenticated"]}
GROUP = "admissionregistration.k8s.io"


class RequestMatching:
    """Which webhooks a request goes to, and through which version of its resource (kube's
    ``webhook/generic`` matching); the ValidatingAdmissionPolicy plugin matches its policies and
    bindings with it too (as webhook-shaped hooks)."""

    objects: Objects
    registry: Registry
    _ns_kind: KindInfo | None
    authorizer: Any  # set by Admission.set_authorizer: the server's, for expressions' ``authorizer``

    # -- matching --------------------------------------------------------------------------------
    @staticmethod
    def _request(a: Attributes) -> aw.Request:
        k = a.kind
        ns = a.name if (k.group == "" and k.resource == "namespaces") else a.namespace
        return aw.Request(a.operation, k.group, k.version, k.resource, a.subresource, ns)

    async def _namespace_labels(self, a: Attributes, req: aw.Request, obj: Obj | None) -> Any:
        """kube's ``GetNamespaceLabels``: a Namespace being written is judged by its own labels."""
        if req.is_namespace and not req.subresource and req.operation in ("CREATE", "UPDATE") and obj is not None:
            return (obj.get("metadata") or {}).get("labels") or {}
        if self._ns_kind is None:
            return {}
        ns = await self.objects.try_get(self._ns_kind, None, req.namespace)
        if ns is None:
            raise errors.not_found_error("namespaces", "", req.namespace)
        return (ns.get("metadata") or {}).get("labels") or {}

    def _via(self, h: aw.Hook, kind: KindInfo, req: aw.Request) -> KindInfo | None:
        """The version of the resource through which ``h``'s rules take the request: the
        request's own, else (``matchPolicy: Equivalent``, kube's default) another served version
        of the same stored objects (autoscaling/v1 and v2 HPAs, core and events.k8s.io Events,
        a CRD's versions); None when neither."""
        if aw.rules_match(h, req):
            return kind
        if not aw.may_match_equivalent(h, req):
            return None
        for k in self.registry.versions_of_storage(kind.storage_name):
            if (k.group, k.version) == (kind.group, kind.version):
                continue
            if not (k.custom or conversion.can_convert(kind.kind, kind.api_version, k.api_version)):
                continue
            if aw.rules_match(h, aw.Request(req.operation, k.group, k.version, k.resource, req.subresource,
                                            req.namespace)):
                return k
        return None

    async def _matching(self, hooks: list[aw.Hook], a: Attributes, req: aw.Request, obj: Obj | None,
                        old: Obj | None, labels: list[Any]) -> list[tuple[aw.Hook, KindInfo]]:
        """The hooks the request goes to, each with the version it is sent in; ``labels`` caches
        the namespace's labels (one read). A webhook's ``matchConditions`` are run last, as in
        kube's ``ShouldCallHook``: a false one skips it; errors (none false) follow its
        failurePolicy: ``Fail`` refuses the request with kube's 403, ``Ignore`` skips it."""
        out = []
        for h in hooks:
            via = self._via(h, a.kind, req)
            if via is None:
                continue
            if aw.needs_namespace_labels(h, req):
                if not labels:
                    labels.append(await self._namespace_labels(a, req, obj))
                if not aw.namespace_selector_matches(h, labels[0]):
                    continue
            if not aw.object_selector_matches(h, obj, old):
                continue
            if h.webhook.get("matchConditions") and not await self._conditions_match(h, via, a, req, obj, old):
                continue
            out.append((h, via))
        return out

    async def variables(self, via: KindInfo, a: Attributes, req: aw.Request, obj: Obj | None,
                        old: Obj | None) -> Obj:
        """``object``, ``oldObject`` and ``request`` of an admission expression, in the version
        ``via`` through which the rules took the request (kube's VersionedAttributes)."""
        own = _object_kind(a)
        asked = own or (a.kind.group, a.kind.version, a.kind.kind)
        if (via.group, via.version) == (a.kind.group, a.kind.version) or own is not None:
            vreq, kind = req, asked
        else:
            vreq = aw.Request(req.operation, via.group, via.version, via.resource, req.subresource, req.namespace)
            kind = (via.group, via.version, via.kind)
            obj, old = await self._in(via, a, obj, old)
        request = ap.admission_request(vreq, kind, a.name, a.user, a.dry_run, a.plugin_state.setdefault(
            "admission-uid", str(uuid.uuid4())), request_kind=asked, request=req)
        user = a.user.to_api() if a.user is not None else SERVER_USER
        authz = cel.authorizer_value(user, {"group": vreq.group, "resource": vreq.resource,
                                            "subresource": a.subresource, "namespace": a.namespace, "name": a.name})
        # namespaceObject: null for webhooks' conditions, as kube's; the policy plugin fills it in
        return {"object": obj, "oldObject": old, "request": request, "authorizer": authz, "namespaceObject": None}

    async def _in(self, via: KindInfo, a: Attributes, obj: Obj | None, old: Obj | None) -> tuple[Obj | None, Obj | None]:
        """``obj`` and ``old`` as the webhook or policy takes them: converted to ``via``'s version
        when the rules matched another version than the request's (not for subresources of another
        kind); a custom resource through its CRD's conversion webhook when it has one."""
        if (via.group, via.version) == (a.kind.group, a.kind.version) or _object_kind(a) is not None:
            return obj, old
        try:
            return (await self._to(via, obj) if obj is not None else None), \
                (await self._to(via, old) if old is not None else None)
        except errors.StatusError as e:  # a conversion webhook failed: kube's NewInternalError of it
            raise errors.internal_error(e.message) from None

    async def _to(self, kind: KindInfo, obj: Obj) -> Obj:
        """``obj`` in ``kind``'s version."""
        return (await self.objects.to_version(kind, [obj], kind.api_version))[0]

    def _authorize(self, user: Obj, attrs: Obj) -> tuple[bool, str]:
        """An ``authorizer`` check of an admission expression, by the server's authorizer."""
        from k8py.apiserver.authn import UserInfo
        from k8py.apiserver.authz import RequestAttributes

        extra = {k: tuple(v) for k, v in (user.get("extra") or {}).items()}
        who = UserInfo(str(user.get("username") or ""), str(user.get("uid") or ""), tuple(user.get("groups") or ()),
                       extra)
        if attrs.get("resourceRequest"):
            ra = RequestAttributes(verb=attrs["verb"], api_group=attrs["group"], resource=attrs["resource"],
                                   subresource=attrs["subresource"], namespace=attrs["namespace"],
                                   name=attrs["name"], is_resource_request=True, api_version="*",
                                   field_requirements=_field_requirements(attrs.get("fieldSelector")))
        else:
            ra = RequestAttributes(verb=attrs["verb"], path=attrs["path"])
        ok, reason = self.authorizer.authorize(who, ra)
        return bool(ok), str(reason or "")

    def authorizing(self) -> contextlib.AbstractContextManager[None]:
        """The block in which admission expressions' ``authorizer`` checks ask the server's
        authorizer (none set: their decisions are errors)."""
        return cel.authorizing(self._authorize if self.authorizer is not None else None)

    async def _conditions_match(self, h: aw.Hook, via: KindInfo, a: Attributes, req: aw.Request, obj: Obj | None,
                                old: Obj | None) -> bool:
        conds = _compiled_conditions(h.webhook.get("matchConditions"))
        data = await self.variables(via, a, req, obj, old)
        with self.authorizing():
            result = ap.match_conditions(conds, data)
        if not result.error:
            return result.matches
        if h.failure_policy == "Ignore":
            log.warning("Failed evaluating match conditions, failing open %s: %s", h.name, result.error)
            return False
        log.warning("Failed evaluating match conditions, failing closed %s: %s", h.name, result.error)
        raise forbidden(a, result.error)



_CONDITIONS: dict[bytes, list[ap.Condition]] = {}
_MAX_CONDITIONS = 1024


def _compiled_conditions(raw: Any) -> list[ap.Condition]:
    """A webhook's matchConditions compiled, shared by every webhook that has the same ones (a
    bounded cache: configurations are few, requests many)."""
    key = orjson.dumps(raw)
    got = _CONDITIONS.get(key)
    if got is None:
        if len(_CONDITIONS) >= _MAX_CONDITIONS:
            _CONDITIONS.clear()
        got = _CONDITIONS[key] = ap.compile_conditions(raw)
    return got


def _field_requirements(selector: Any) -> tuple[tuple[str, str, str], ...]:
    """A check's field selector as the authorizers take it; one that does not parse adds none
    (kube's). Label selectors: k8py's authorizers (RBAC, Node) do not look at them, as kube's."""
    from k8py.api.selectors import SelectorError, parse_field_selector

    if not selector:
        return ()
    try:
        sel = parse_field_selector(str(selector))
    except SelectorError:
        return ()
    return tuple((r.field, r.operator, r.value) for r in sel.requirements)


def _object_kind(a: Attributes) -> tuple[str, str, str] | None:
    """The kind of the request's object where it is not the resource's: a Scale, an Eviction, a
    CONNECT's options (``PodExecOptions``...); such an object is sent as it is, never converted
    to another version of the parent nor defaulted as the parent."""
    return aw.subresource_kind(a.kind.group, a.kind.resource, a.subresource)


def forbidden(a: Attributes, why: str) -> errors.StatusError:
    """kube's ``admission.NewForbidden``: ``<resource> "<name>" is forbidden: <why>``."""
    res = errors.qualified(a.kind.resource, a.kind.group)
    msg = f'{res} "{a.name}" is forbidden: {why}' if a.name else f"{res} is forbidden: {why}"
    return errors.forbidden_error(msg, a.kind.resource, a.kind.group, a.name)


class _Webhooks(RequestMatching, Plugin):
    """What both plugins share: the configurations' mirror, matching, and the call."""

    resource = ""
    mutating = False

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self.registry = registry
        # set by Admission.set_service_resolver: the aggregation layer's Service -> endpoint
        self.service_resolver: Any = None
        self.authorizer: Any = None  # set by Admission.set_authorizer
        self._kind = registry.by_resource(GROUP, "v1", self.resource)
        self._ns_kind = registry.by_resource("", "v1", "namespaces")
        self._configs: dict[str, Obj] = {}
        self._hooks: list[aw.Hook] = []
        self._synced = asyncio.Event()
        self._pool = webhookclient.Sessions(self.name, self._live_cas)

    # -- the configurations, kept from a store watch ---------------------------------------------
    def _reset(self) -> None:
        self._configs.clear()
        self._hooks = []

    def _apply(self, key: str, value: bytes | None) -> None:
        name = key.rsplit("/", 1)[-1]
        if value is None:
            self._configs.pop(name, None)
        else:
            try:
                obj = orjson.loads(value)
            except orjson.JSONDecodeError as e:  # e.g. an object whose encryption key is lost
                log.warning("%s: cannot read %s: %s; its webhooks are not called", self.name, key, e)
                return
            if isinstance(obj, dict):
                self._configs[name] = obj
        self._hooks = aw.hooks_of(self._configs, self.mutating)

    async def start(self) -> asyncio.Task[None] | None:
        if self._kind is None:
            return None
        task = asyncio.get_running_loop().create_task(self._run(self._kind), name=f"{self.name}-admission")
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                await self._synced.wait()
        except TimeoutError:
            log.error("%s: configurations not listed in %.0fs; reading them per request until they are",
                      self.name, SYNC_TIMEOUT)
        return task

    async def _run(self, kind: KindInfo) -> None:
        try:
            await self.objects.mirror(kind.key_prefix(None), reset=self._reset, apply=self._apply,
                                      synced=self._synced.set, what=self.name)
        finally:
            await self._close_all()

    async def _close_all(self) -> None:
        await self._pool.close_all()

    async def _current_hooks(self) -> list[aw.Hook]:
        if self._synced.is_set() or self._kind is None:
            return self._hooks
        # not started (or not synced yet): ask the store
        page = await self.objects.list(self._kind, None)
        return aw.hooks_of({o["metadata"]["name"]: o for o in page.items if isinstance(o, dict)}, self.mutating)

    # -- the call (the shared webhook client, :mod:`k8py.apiserver.webhookclient`) -----------------
    def _live_cas(self) -> list[str]:
        return [str((h.webhook.get("clientConfig") or {}).get("caBundle") or "") for h in self._hooks]

    def _session(self, ca_bundle: str) -> aiohttp.ClientSession:
        return self._pool.get(ca_bundle)

    @property
    def _sessions(self) -> dict[str, aiohttp.ClientSession]:
        return self._pool.by_ca

    @property
    def _retiring(self) -> RetiredSessions:
        return self._pool.retiring

    async def _call(self, hook: aw.Hook, a: Attributes, req: aw.Request, obj: Obj | None,
                    old: Obj | None, *, via: KindInfo | None = None) -> aw.Result:
        """One call; raises ``aw.CallError`` when it fails (the failurePolicy decides). ``via``:
        the equivalent version the rules matched (``obj``, ``old`` and ``req`` are in it)."""
        uid = str(uuid.uuid4())
        own = _object_kind(a)
        asked = own or (a.kind.group, a.kind.version, a.kind.kind)
        kind = asked if via is None else own or (via.group, via.version, via.kind)
        review = aw.review_request(hook, uid, req, kind, a.name, a.user, obj, old, a.dry_run,
                                   request_kind=asked, request=self._request(a))
        answer = await webhookclient.post(self._pool, hook.webhook.get("clientConfig") or {}, self.service_resolver,
                                          review, hook.timeout, f"?timeout={int(hook.timeout)}s")
        result = aw.verify_response(uid, hook, answer)
        a.warnings.extend(result.warnings)
        resp = answer.get("response") or {}
        for k, v in (resp.get("auditAnnotations") or {}).items():
            a.audit_annotations[f"{hook.name}/{k}"] = str(v)
        return result

    async def _decide(self, hook: aw.Hook, via: KindInfo, a: Attributes, req: aw.Request, obj: Obj | None,
                      old: Obj | None) -> aw.Result | None:
        """The webhook's answer, None when its call failed under failurePolicy Ignore; a denial
        or a failure under Fail raises kube's error. ``obj`` and ``old`` are in ``via``'s version."""
        if a.dry_run and not aw.supports_dry_run(hook):
            raise aw.dry_run_unsupported(hook.name)
        try:
            if (via.group, via.version) == (a.kind.group, a.kind.version):
                result = await self._call(hook, a, req, obj, old)
            else:
                vreq = aw.Request(req.operation, via.group, via.version, via.resource, req.subresource,
                                  req.namespace)
                result = await self._call(hook, a, vreq, obj, old, via=via)
        except aw.CallError as e:
            if hook.failure_policy == "Ignore":
                log.warning("Failed calling webhook, failing open %s: %s", hook.name, e)
                return None
            log.warning("Failed calling webhook, failing closed %s: %s", hook.name, e)
            raise aw.call_failed(hook.name, str(e)) from None
        if not result.allowed:
            raise aw.denied(hook.name, result.status)
        return result

    async def _old_for_delete(self, a: Attributes, old: Obj | None) -> Obj | None:
        """A DELETE's oldObject: the object as stored (the chain is called before it is read)."""
        if old is not None or a.operation != "DELETE" or a.subresource:
            return old
        return await self.objects.try_get(a.kind, a.namespace or None, a.name)


class ValidatingAdmissionWebhook(_Webhooks):
    name = "ValidatingAdmissionWebhook"
    resource = "validatingwebhookconfigurations"
    mutating = False

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        hooks = await self._current_hooks()
        if not hooks or aw.exempt(a.kind.group, a.kind.resource):
            return
        req = self._request(a)
        hooks = [h for h in hooks if aw.rules_match(h, req) or aw.may_match_equivalent(h, req)]
        if not hooks:
            return
        old = await self._old_for_delete(a, old)  # read only when a webhook's rules match
        if a.operation == "DELETE" and old is None and not a.subresource:
            return  # nothing to delete: the request answers 404 (kube validates after reading it)
        relevant = await self._matching(hooks, a, req, obj, old, [])
        if not relevant:
            return
        # in parallel, as kube; the first refusal in the webhooks' order is the answer
        sent = [await self._in(via, a, obj, old) for _, via in relevant]
        results = await asyncio.gather(*(self._decide(h, via, a, req, *objs)
                                         for (h, via), objs in zip(relevant, sent, strict=True)),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r


class MutatingAdmissionWebhook(_Webhooks):
    name = "MutatingAdmissionWebhook"
    resource = "mutatingwebhookconfigurations"
    mutating = True

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        hooks = await self._current_hooks()
        if not hooks or aw.exempt(a.kind.group, a.kind.resource):
            return
        req = self._request(a)
        labels: list[Any] = []
        # kube's webhookReinvokeContext: the IfNeeded webhooks called since the last change, and
        # those a later change asks to look again (called in the chain's second run)
        state = a.plugin_state.setdefault(self.name, {"invoked": [], "reinvoke": set()})
        for h in hooks:
            key = (h.configuration, h.name)
            if a.reinvoking and key not in state["reinvoke"]:
                continue
            matched = await self._matching([h], a, req, obj, old, labels)
            if not matched:
                continue
            changed = await self._mutate(h, matched[0][1], a, req, obj, old)
            if changed and not a.reinvoking:
                state["reinvoke"].update(state["invoked"])
                state["invoked"] = []
                a.reinvoke = True  # the whole mutating phase runs once more
            if h.reinvoke_if_needed and not a.reinvoking:
                state["invoked"].append(key)

    async def _mutate(self, h: aw.Hook, via: KindInfo, a: Attributes, req: aw.Request, obj: Obj,
                      old: Obj | None) -> bool:
        """Call ``h`` and apply its patch to ``obj`` in place; whether the object changed."""
        sent, sent_old = await self._in(via, a, obj, old)
        assert sent is not None
        result = await self._decide(h, via, a, req, sent, sent_old)
        if result is None or result.patch is None:
            return False
        try:
            patched = patch.json_patch(sent, result.patch)
            if sent is not obj:  # patched in the webhook's version: back to the request's
                patched = await self._to(a.kind, patched)
        except errors.StatusError as e:
            raise errors.internal_error(e.message) from None
        except conversion.ConversionError as e:
            raise errors.internal_error(str(e)) from None
        if _object_kind(a) is None:
            # kube decodes the patched object into its type (a built-in kind's empty omitempty
            # fields are gone) and defaults it
            if not a.kind.custom:
                omitempty.normalize(patched)
            defaults.set_defaults(a.kind, patched)
        if patched == obj:
            return False
        obj.clear()
        obj.update(patched)
        return True


__all__ = ["MutatingAdmissionWebhook", "RequestMatching", "ValidatingAdmissionWebhook", "forbidden"]
