"""Service-account tokens in the API server: the TokenRequest API, their authentication, and
the OIDC discovery documents (kube's ``pkg/registry/core/serviceaccount/storage/token.go``,
``pkg/serviceaccount/jwt.go`` and ``claims.go``, ``openidmetadata.go``). The JWTs themselves
are :mod:`k8py.satoken`'s.

- ``POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`` (``kubectl create token``): a
  TokenRequest in, the same object out with ``status.token`` and ``status.expirationTimestamp``
  (201). ``spec.expirationSeconds`` defaults to 3600 and must lie in [600 s, 2^32 s]; above
  ``--service-account-max-token-expiration`` it is cut to it. ``spec.audiences`` defaults to
  the API audiences (``--api-audiences``, else the issuers). ``spec.boundObjectRef`` binds the
  token to a Pod (which must run as that account), a Secret or a Node; a ``uid`` that is not
  the object's is 409. A pod-bound token asked for with 3607 s and API audiences (kubelet's
  projected token) lives a year, with ``warnafter`` at 3607 s, as kube's
  ``--service-account-extend-token-expiration``; its status still says 3607 s, so kubelet
  renews it on time. The request passes the admission chain as a ``serviceaccounts/token``
  CREATE (NodeRestriction checks what a node asks for).
- **Authentication** (:meth:`ServiceAccountTokens.authenticate`): a JWT whose ``iss`` is one of
  ours (or the legacy ``kubernetes/serviceaccount``), signed by one of the verification keys,
  within ``nbf``/``exp`` (60 s leeway), for one of the audiences asked for; then the objects
  it names must still be there with the same uid (service account; bound pod, Secret or node;
  a legacy token's Secret, whose ``token`` must be this one). The user is
  ``system:serviceaccount:NS:NAME`` (uid: the account's) in ``system:serviceaccounts`` and
  ``system:serviceaccounts:NS``, with kube's ``authentication.kubernetes.io/*`` extras.
  Objects are read from the store on each request (a bound pod's deletion takes effect at once).
- **OIDC discovery**: ``/.well-known/openid-configuration`` and ``/openid/v1/jwks``, with kube's
  fields and content types, for an ``https://`` issuer (kube serves none for another); who may
  read them is RBAC's (``system:service-account-issuer-discovery``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hmac
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from k8py import satoken
from k8py.api import errors
from k8py.api.corev1 import format_time
from k8py.apiserver import options
from k8py.apiserver.authn import UserInfo
from k8py.config import ServerConfig

if TYPE_CHECKING:
    from k8py.api.registry import KindInfo, Registry
    from k8py.apiserver.context import Ctx
    from k8py.apiserver.objects import Objects
    from k8py.apiserver.rest import ResourceAPI

__all__ = ["DISCOVERY_PATHS", "JWKS_PATH", "OPENID_CONFIG_PATH", "Authenticated", "ServiceAccountTokens",
           "go_quote_list"]

log = logging.getLogger(__name__)
Obj = dict[str, Any]

AUTHN_GROUP = "authentication.k8s.io"
TOKEN_REQUEST_VERSION = "authentication.k8s.io/v1"
OPENID_CONFIG_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
DISCOVERY_PATHS = (OPENID_CONFIG_PATH, JWKS_PATH)
EXTRA_PREFIX = "authentication.kubernetes.io/"
LAST_USED_LABEL = "kubernetes.io/legacy-token-last-used"
INVALID_SINCE_LABEL = "kubernetes.io/legacy-token-invalid-since"


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: UserInfo
    audiences: tuple[str, ...]
    # for the request's audit event, as kube's validators add them (stale-token, legacy-token)
    audit_annotations: dict[str, str] = field(default_factory=dict)


def go_quote_list(items: Sequence[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(orjson.dumps(s).decode() for s in items) + "]"


def _meta(obj: Obj | None) -> Obj:
    return (obj or {}).get("metadata") or {}


class ServiceAccountTokens:
    """The issuer, the keys and the objects' store of one API server (see the module docstring)."""

    def __init__(self, config: ServerConfig, objects: Objects, registry: Registry,
                 server_address: str = "") -> None:
        self.issuers = tuple(config.service_account_issuers) or (satoken.DEFAULT_ISSUER,)
        self.issuer = self.issuers[0]
        self.api_audiences = tuple(config.api_audiences) or self.issuers
        self.max_expiration = int(config.service_account_max_token_expiration or 0)
        self.extend = config.service_account_extend_token_expiration
        self.signing_key_file = config.service_account_key_path
        self.key_files = tuple(config.service_account_key_files)
        self.server_address = server_address
        self.objects = objects
        self._kinds = {k: registry.by_resource("", "v1", r) for k, r in (
            ("ServiceAccount", "serviceaccounts"), ("Pod", "pods"), ("Secret", "secrets"), ("Node", "nodes"))}
        self._keyring: satoken.Keyring | None = None
        self._lock = asyncio.Lock()

    # -- keys ------------------------------------------------------------------------------------

    async def keyring(self) -> satoken.Keyring:
        """Loaded (the signing key made if missing) once, in a thread: an RSA key takes a while."""
        if self._keyring is None:
            async with self._lock:
                if self._keyring is None:
                    self._keyring = await asyncio.to_thread(satoken.load_keyring, self.signing_key_file,
                                                            self.key_files)
        return self._keyring

    async def _get(self, kind: str, ns: str | None, name: str) -> Obj | None:
        k = self._kinds[kind]
        assert k is not None
        return await self.objects.try_get(k, ns, name) if name else None

    # -- TokenRequest ----------------------------------------------------------------------------

    async def token_request(self, api: ResourceAPI, ctx: Ctx, kind: KindInfo, ns: str, name: str) -> web.Response:
        """kube's ``TokenREST.Create``, in its order: mutating admission, the account, the
        request's defaults and validation, validating admission, the bound object, then the
        maximum and the extension, and the token."""
        raw = await options.read_body(ctx.request)
        body = options.decode_plain(ctx, raw, options.field_validation(ctx) != "Ignore")
        dry = options.dry_run(ctx)
        if not isinstance(body, dict):
            raise errors.bad_request("expected a TokenRequest object (authentication.k8s.io/v1)")
        if (body.get("kind") or "TokenRequest") != "TokenRequest" or \
                (body.get("apiVersion") or TOKEN_REQUEST_VERSION) != TOKEN_REQUEST_VERSION:
            raise errors.bad_request(f"the kind in the data ({body.get('apiVersion')}, {body.get('kind')}) does not "
                                     f"match the expected kind ({TOKEN_REQUEST_VERSION}, TokenRequest)")
        meta = body["metadata"] = dict(body["metadata"]) if isinstance(body.get("metadata"), dict) else {}
        spec = body["spec"] = dict(body["spec"]) if isinstance(body.get("spec"), dict) else {}
        if meta.get("name") and meta["name"] != name:
            raise errors.invalid_error("TokenRequest", AUTHN_GROUP, name, [errors.invalid(
                "metadata.name", meta["name"], "must match the service account name if specified")])
        if meta.get("namespace") and meta["namespace"] != ns:
            raise errors.invalid_error("TokenRequest", AUTHN_GROUP, name, [errors.invalid(
                "metadata.namespace", meta["namespace"], "must match the service account namespace if specified")])
        attrs = api.admission_attributes(ctx, "CREATE", kind, ns, name, dry, subresource="token")
        await api.admission.mutate(attrs, body, None)
        sa = await self._get("ServiceAccount", ns, name)
        if sa is None:
            raise errors.not_found_error("serviceaccounts", "", name)
        if spec.get("expirationSeconds") is None:
            spec["expirationSeconds"] = satoken.DEFAULT_EXPIRATION_SECONDS
        exp = spec["expirationSeconds"]
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise errors.bad_request(f"spec.expirationSeconds: expected an integer, got {exp!r}")
        spec["audiences"] = [str(a) for a in spec.get("audiences") or ()] or list(self.api_audiences)
        now = int(time.time())
        meta.update(name=name, namespace=ns, uid=meta.get("uid") or _meta(sa).get("uid"),
                    creationTimestamp=format_time(dt.datetime.fromtimestamp(now, dt.UTC)))
        field_errs = []
        if exp < satoken.MIN_EXPIRATION_SECONDS:
            field_errs.append(errors.invalid("spec.expirationSeconds", exp,
                                             "may not specify a duration less than 10 minutes"))
        if exp > satoken.MAX_EXPIRATION_SECONDS:
            field_errs.append(errors.invalid("spec.expirationSeconds", exp,
                                             "may not specify a duration larger than 2^32 seconds"))
        if field_errs:
            raise errors.invalid_error("TokenRequest", AUTHN_GROUP, "", field_errs)
        await api.admission.validate(attrs, body, None)
        pod: Obj | None = None
        secret: Obj | None = None
        node: Obj | None = None
        bound: Obj | None = None
        node_name = ""
        ref = spec.get("boundObjectRef")
        if ref:
            if not isinstance(ref, dict):
                raise errors.bad_request("spec.boundObjectRef: expected an object")
            av, rkind, rname = str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""), str(ref.get("name") or "")
            group = av.rpartition("/")[0] if "/" in av else ""
            if group == "" and rkind == "Pod":
                pod = await self._get("Pod", ns, rname)
                if pod is None:
                    raise errors.not_found_error("pods", "", rname)
                if name != (pod.get("spec") or {}).get("serviceAccountName"):
                    raise errors.bad_request(f'cannot bind token for serviceaccount "{name}" to pod running with '
                                             "different serviceaccount name.")
                bound = pod
                node_name = str((pod.get("spec") or {}).get("nodeName") or "")
                if node_name:
                    node = await self._get("Node", None, node_name)
            elif group == "" and rkind == "Secret":
                secret = bound = await self._get("Secret", ns, rname)
                if secret is None:
                    raise errors.not_found_error("secrets", "", rname)
            elif group == "" and rkind == "Node":
                node = bound = await self._get("Node", None, rname)
                if node is None:
                    raise errors.not_found_error("nodes", "", rname)
            else:
                gvk = f"{group}/{av.rpartition('/')[2]}, Kind={rkind}" if group else f"/{av}, Kind={rkind}"
                raise errors.bad_request(f"cannot bind token to object of type {gvk}")
            want_uid = str(ref.get("uid") or "")
            if want_uid and want_uid != str(_meta(bound).get("uid") or ""):
                raise errors.conflict(rkind, group, rname,
                                      f"the UID in the bound object reference ({want_uid}) does not match the UID in "
                                      "record. The object might have been deleted and then recreated")
        if self.max_expiration > 0 and exp > self.max_expiration:
            ctx.warnings.append(f"requested expiration of {exp} seconds shortened to {self.max_expiration} seconds")
            exp = spec["expirationSeconds"] = self.max_expiration
        token_exp, warnafter = exp, 0
        if self.extend and pod is not None and exp == satoken.WARN_ONLY_EXPIRATION_SECONDS and \
                set(spec["audiences"]) <= set(self.api_audiences):
            token_exp = max(satoken.EXPIRATION_EXTENSION_SECONDS, self.max_expiration)
            warnafter = exp
        claims = satoken.bound_claims(issuer=self.issuer, audiences=spec["audiences"], now=now,
                                      expiration_seconds=token_exp, sa=sa, jti=str(uuid.uuid4()), pod=pod,
                                      secret=secret, node=node, node_name=node_name, warnafter=warnafter)
        token = satoken.sign(claims, await self.keyring())
        out: Obj = {"kind": "TokenRequest", "apiVersion": TOKEN_REQUEST_VERSION, "metadata": meta, "spec": spec,
                    "status": {"token": token,
                               "expirationTimestamp": format_time(dt.datetime.fromtimestamp(now + exp, dt.UTC))}}
        return api.respond(ctx, out, 201)

    # -- authentication --------------------------------------------------------------------------

    async def authenticate(self, token: str, audiences: Sequence[str] = ()) -> Authenticated | None:
        """Who ``token`` proves to be, for ``audiences`` (default: the API audiences); None when
        it is not one of our tokens at all (another authenticator may know it); TokenError when
        it is ours but proves nothing."""
        if not satoken.looks_like_jwt(token):
            return None
        parsed = satoken.parse(token)
        if parsed is None:
            return None
        iss = parsed.claims.get("iss")
        if iss != satoken.LEGACY_ISSUER and iss not in self.issuers:
            return None  # not issued here
        claims = satoken.verify(parsed, await self.keyring())
        wanted = tuple(audiences) or self.api_audiences
        if iss == satoken.LEGACY_ISSUER:
            return await self._legacy(token, claims, wanted)
        return await self._bound(claims, wanted)

    def _audiences(self, claims: Obj, wanted: Sequence[str]) -> tuple[str, ...]:
        aud = claims.get("aud")
        token_auds = [aud] if isinstance(aud, str) else [str(a) for a in aud or ()]
        got = tuple(a for a in wanted if a in token_auds)
        if not got:
            raise satoken.TokenError(f"token audiences {go_quote_list(token_auds)} is invalid for the target "
                                     f"audiences {go_quote_list(list(wanted))}")
        return got

    async def _bound(self, claims: Obj, wanted: Sequence[str]) -> Authenticated:
        now = time.time()
        leeway = satoken.LEEWAY_SECONDS
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float):
            raise satoken.TokenError("service account token has no expiry")
        if now > exp + leeway:
            raise satoken.TokenError("service account token has expired")
        if isinstance(nbf, int | float) and nbf > now + leeway:
            raise satoken.TokenError("service account token is not valid yet")
        auds = self._audiences(claims, wanted)
        k8s = claims.get("kubernetes.io")
        if not isinstance(k8s, dict):
            raise satoken.TokenError("service account token has no kubernetes.io claim")
        ns = str(k8s.get("namespace") or "")
        saref = k8s.get("serviceaccount") or {}
        sa_name, sa_uid = str(saref.get("name") or ""), str(saref.get("uid") or "")
        deleted_before = now - leeway
        sa = await self._get("ServiceAccount", ns, sa_name)
        if sa is None:
            raise satoken.TokenError(f'serviceaccount "{sa_name}" not found')
        if _deleted_before(sa, deleted_before):
            raise satoken.TokenError(f"service account {ns}/{sa_name} has been deleted")
        if str(_meta(sa).get("uid") or "") != sa_uid:
            raise satoken.TokenError(f"service account UID ({_meta(sa).get('uid')}) does not match claim ({sa_uid})")
        extra: dict[str, tuple[str, ...]] = {}
        for what, kind in (("secret", "Secret"), ("pod", "Pod")):
            ref = k8s.get(what)
            if not isinstance(ref, dict):
                continue
            obj = await self._get(kind, ns, str(ref.get("name") or ""))
            if obj is None or _deleted_before(obj, deleted_before):
                raise satoken.TokenError("service account token has been invalidated")
            if str(_meta(obj).get("uid") or "") != str(ref.get("uid") or ""):
                raise satoken.TokenError(f"{what} UID ({_meta(obj).get('uid')}) does not match service account "
                                         f"{what} ref claim ({ref.get('uid')})")
            if what == "pod":
                extra[EXTRA_PREFIX + "pod-name"] = (str(ref.get("name") or ""),)
                extra[EXTRA_PREFIX + "pod-uid"] = (str(ref.get("uid") or ""),)
        noderef = k8s.get("node")
        if isinstance(noderef, dict):
            if "pod" not in k8s and "secret" not in k8s:
                # a token bound to the node itself lives only as long as that node object
                node = await self._get("Node", None, str(noderef.get("name") or ""))
                if node is None or _deleted_before(node, deleted_before):
                    raise satoken.TokenError("service account token has been invalidated")
                if str(_meta(node).get("uid") or "") != str(noderef.get("uid") or ""):
                    raise satoken.TokenError(f"node UID ({_meta(node).get('uid')}) does not match service account "
                                             f"node ref claim ({noderef.get('uid')})")
            if noderef.get("name"):
                extra[EXTRA_PREFIX + "node-name"] = (str(noderef["name"]),)
            if noderef.get("uid"):
                extra[EXTRA_PREFIX + "node-uid"] = (str(noderef["uid"]),)
        if claims.get("jti"):
            extra[EXTRA_PREFIX + "credential-id"] = (f"JTI={claims['jti']}",)
        notes: dict[str, str] = {}
        warnafter = k8s.get("warnafter")
        if isinstance(warnafter, int | float) and warnafter and now > warnafter:
            # kubelet's extended token used past its requested life: kube's stale-token annotation
            notes["authentication.k8s.io/stale-token"] = (f"subject: {claims.get('sub', '')}, seconds after warning "
                                                          f"threshold: {int(now) - int(warnafter)}")
        return Authenticated(self._user(ns, sa_name, sa_uid, extra), auds, notes)

    async def _legacy(self, token: str, claims: Obj, wanted: Sequence[str]) -> Authenticated:
        prefix = "kubernetes.io/serviceaccount/"
        ns = str(claims.get(prefix + "namespace") or "")
        secret_name = str(claims.get(prefix + "secret.name") or "")
        sa_name = str(claims.get(prefix + "service-account.name") or "")
        sa_uid = str(claims.get(prefix + "service-account.uid") or "")
        if not (ns and secret_name and sa_name and sa_uid):
            raise satoken.TokenError("service account token is missing its kubernetes.io/serviceaccount claims")
        # legacy tokens have no audience: they are good for the API's own audiences only
        auds = tuple(a for a in wanted if a in self.api_audiences)
        if not auds:
            raise satoken.TokenError(f"token audiences {go_quote_list(list(self.api_audiences))} is invalid for the "
                                     f"target audiences {go_quote_list(list(wanted))}")
        secret = await self._get("Secret", ns, secret_name)
        if secret is None or _meta(secret).get("deletionTimestamp"):
            raise satoken.TokenError("token has been invalidated")
        labels = _meta(secret).get("labels") or {}
        try:
            stored = base64.b64decode((secret.get("data") or {}).get("token") or "")
        except (ValueError, TypeError):
            stored = b""
        if not hmac.compare_digest(stored, token.encode()):
            raise satoken.TokenError("token does not match server's copy")
        sa = await self._get("ServiceAccount", ns, sa_name)
        if sa is None:
            raise satoken.TokenError(f'serviceaccount "{sa_name}" not found')
        if _meta(sa).get("deletionTimestamp"):
            raise satoken.TokenError(f"service account {ns}/{sa_name} has been deleted")
        if str(_meta(sa).get("uid") or "") != sa_uid:
            raise satoken.TokenError(f"service account UID ({_meta(sa).get('uid')}) does not match claim ({sa_uid})")
        # kube's legacy token tracking: the day of the last use on the Secret (written at most
        # once a day), and a Secret marked invalid (by kube's cleaner, or by hand) refuses
        await self._stamp_last_used(ns, secret_name, labels)
        if labels.get(INVALID_SINCE_LABEL):
            raise satoken.TokenError(
                f"the token in secret {ns}/{secret_name} for service account {ns}/{sa_name} has been marked invalid. "
                "Use tokens from the TokenRequest API or manually created secret-based tokens, or remove the "
                f"'{INVALID_SINCE_LABEL}' label from the secret to temporarily allow use of this token")
        return Authenticated(self._user(ns, sa_name, sa_uid, {}), auds,
                             {"authentication.k8s.io/legacy-token": str(claims.get("sub") or "")})

    async def _stamp_last_used(self, ns: str, name: str, labels: dict[str, Any]) -> None:
        today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        if labels.get(LAST_USED_LABEL) == today:
            return
        kind = self._kinds["Secret"]
        assert kind is not None

        async def stamp(current: Obj) -> Obj | None:
            meta = current.setdefault("metadata", {})
            if (meta.get("labels") or {}).get(LAST_USED_LABEL) == today:
                return None
            meta["labels"] = {**(meta.get("labels") or {}), LAST_USED_LABEL: today}
            return current

        try:
            await self.objects.guaranteed_update(kind, ns, name, stamp)
        except errors.StatusError as e:  # gone meanwhile, or too contended: the next use tries again
            log.info("could not record the use of legacy token secret %s/%s: %s", ns, name, e)

    @staticmethod
    def _user(ns: str, name: str, uid: str, extra: dict[str, tuple[str, ...]]) -> UserInfo:
        return UserInfo(name=satoken.username(ns, name), uid=uid,
                        groups=(*satoken.groups_of(ns), "system:authenticated"), extra=extra)

    # -- OIDC discovery --------------------------------------------------------------------------

    def serves_discovery(self) -> bool:
        return self.issuer.startswith("https://")

    async def discovery(self, path: str) -> web.Response:
        """``/.well-known/openid-configuration`` or ``/openid/v1/jwks``, as kube's handlers."""
        if not self.serves_discovery():
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource", details={})
        keyring = await self.keyring()
        headers = {"Cache-Control": "public, max-age=3600"}
        if path == JWKS_PATH:
            body = orjson.dumps({"keys": [satoken.jwk(k) for k in keyring.verifying]})
            return web.Response(body=body, headers={**headers, "Content-Type": "application/jwk-set+json"})
        doc = {"issuer": self.issuer,
               "jwks_uri": f"https://{self.server_address}{JWKS_PATH}",
               "response_types_supported": ["id_token"],
               "subject_types_supported": ["public"],
               "id_token_signing_alg_values_supported": sorted({k.alg for k in keyring.verifying})}
        return web.Response(body=orjson.dumps(doc), headers={**headers, "Content-Type": "application/json"})


def _deleted_before(obj: Obj, t: float) -> bool:
    """The object is being deleted since before ``t`` (kube's ``invalidIfDeletedBefore``)."""
    ts = _meta(obj).get("deletionTimestamp")
    if not ts:
        return False
    from k8py.api.corev1 import parse_time

    when = parse_time(str(ts))
    return when is None or when.timestamp() < t
