"""The tokens controller (kube-controller-manager's ``serviceaccount-token`` controller): legacy
service-account token Secrets, only for the Secrets someone asked for.

A Secret of type ``kubernetes.io/service-account-token`` whose
``kubernetes.io/service-account.name`` annotation names an account of its namespace gets, as in
kube: ``data.token`` (a legacy JWT signed with ``--service-account-private-key-file``, issuer
``kubernetes/serviceaccount``, see :func:`k8py.satoken.legacy_claims`), ``data["ca.crt"]`` (the
root CA) and ``data.namespace``, and the ``kubernetes.io/service-account.uid`` annotation. A
token Secret whose account is gone (or was made again: another uid) is deleted, and so are an
account's token Secrets when the account is deleted. Nothing is ever created for an account on
its own (kube stopped doing that in 1.24).

Without a private key file (option ``service_account_private_key_file``) the controller does
nothing, as kube's is not started then.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from k8py import satoken
from k8py.client.api import object_key
from k8py.client.controller import Controller, Result
from k8py.client.errors import ConflictError, NotFoundError
from k8py.controllers.base import ControllerContext
from k8py.controllers.rootcacert import RootCAError, root_ca_for

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SECRET = ("v1", "Secret")
SERVICE_ACCOUNT = ("v1", "ServiceAccount")
TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def is_token_secret(secret: Obj) -> bool:
    return secret.get("type") == TOKEN_TYPE


def needs_data(secret: Obj, sa: Obj) -> bool:
    """The Secret lacks its token, CA, namespace or account uid (kube's ``generateTokenIfNeeded``)."""
    data = secret.get("data") or {}
    ann = (secret.get("metadata") or {}).get("annotations") or {}
    return not (data.get("token") and data.get("ca.crt") and data.get("namespace")) or \
        ann.get(UID_ANNOTATION) != (sa.get("metadata") or {}).get("uid")


def filled(secret: Obj, sa: Obj, token: str, root_ca: str) -> Obj:
    """``secret`` with kube's token fields set (what is already there is kept)."""
    out = {**secret, "metadata": {**(secret.get("metadata") or {})}, "data": {**(secret.get("data") or {})}}
    ann = out["metadata"]["annotations"] = {**(out["metadata"].get("annotations") or {})}
    ann[UID_ANNOTATION] = str((sa.get("metadata") or {}).get("uid") or "")
    data = out["data"]
    if not data.get("token"):
        data["token"] = _b64(token)
    if not data.get("ca.crt"):
        data["ca.crt"] = _b64(root_ca)
    if not data.get("namespace"):
        data["namespace"] = _b64(str((sa.get("metadata") or {}).get("namespace") or ""))
    return out


class ServiceAccountTokensController:
    NAME = "serviceaccount-token"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.key_file = ctx.options.service_account_private_key_file or ""
        self._keyring: satoken.Keyring | None = None
        self._root_ca: str | None = None
        self.secrets = ctx.factory.informer(SECRET)
        self.accounts = ctx.factory.informer(SERVICE_ACCOUNT)
        self.controller = Controller("serviceaccount-token-controller", self.reconcile,
                                     workers=ctx.options.workers or 2, clock=ctx.clock)
        # keys are the token Secrets' "namespace/name"; an account's change or deletion looks at
        # the token Secrets that name it
        self.controller.watch(self.secrets, lambda s: (object_key(s),) if is_token_secret(s) else ())
        self.controller.watch(self.accounts, self._secrets_of)

    def _secrets_of(self, sa: Obj) -> list[str]:
        m = sa.get("metadata") or {}
        ns, name = m.get("namespace"), m.get("name")
        return [object_key(s) for s in self.secrets.list(ns) if is_token_secret(s)
                and ((s.get("metadata") or {}).get("annotations") or {}).get(NAME_ANNOTATION) == name]

    def _keys(self) -> satoken.Keyring:
        if self._keyring is None:
            self._keyring = satoken.load_keyring(self.key_file, generate=False)
        return self._keyring

    async def _account(self, ns: str, name: str) -> Obj | None:
        """From the cache, else read (the cache may not have seen a new account yet), as kube."""
        sa = self.accounts.get(name, ns)
        if sa is not None:
            return sa
        try:
            return await self.client.get(SERVICE_ACCOUNT, name, ns)
        except NotFoundError:
            return None

    async def reconcile(self, key: str) -> Result | None:
        if not self.key_file:
            return None  # kube runs no tokens controller without --service-account-private-key-file
        ns, _, name = key.partition("/")
        secret = self.secrets.get(name, ns)
        if secret is None or not is_token_secret(secret) or (secret.get("metadata") or {}).get("deletionTimestamp"):
            return None
        ann = (secret.get("metadata") or {}).get("annotations") or {}
        sa = await self._account(ns, str(ann.get(NAME_ANNOTATION) or ""))
        want_uid = ann.get(UID_ANNOTATION)
        if sa is None or (want_uid and want_uid != (sa.get("metadata") or {}).get("uid")):
            # the account is gone, or this Secret was for an earlier one of the same name
            try:
                await self.client.delete(SECRET, name, ns, uid=(secret.get("metadata") or {}).get("uid"))
                log.info("deleted token secret %s: its service account is gone", key)
            except (NotFoundError, ConflictError):
                pass
            return None
        if not needs_data(secret, sa):
            return None
        try:
            keys = self._keys()
            if self._root_ca is None:
                self._root_ca = root_ca_for(self.ctx.options, self.client) or ""
        except (OSError, ValueError, RootCAError) as e:
            log.error("cannot fill token secret %s: %s", key, e)
            return Result(requeue_after=60.0)
        token = satoken.sign(satoken.legacy_claims(sa, secret), keys)
        try:
            await self.client.update(SECRET, filled(secret, sa, token, self._root_ca), ns)
        except ConflictError:
            return Result(requeue_after=0.5)  # the Secret changed meanwhile: look again
        except NotFoundError:
            return None
        log.debug("filled token secret %s", key)
        return None
