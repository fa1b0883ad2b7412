"""The ServiceAccount controller: a ``default`` ServiceAccount in every active namespace, made
again when deleted (kube-controller-manager's ``serviceaccount-controller``)."""

from __future__ import annotations

import logging
from typing import Any

from k8py.api.corev1 import is_namespace_terminating
from k8py.client.controller import Controller, Result
from k8py.client.errors import AlreadyExistsError, ForbiddenError, NotFoundError
from k8py.controllers.base import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NAMESPACE = ("v1", "Namespace")
SERVICE_ACCOUNT = ("v1", "ServiceAccount")
DEFAULT_SERVICE_ACCOUNTS = ("default",)


class ServiceAccountController:
    NAME = "serviceaccount"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        # option "service_accounts": the names every namespace gets (kube: just "default")
        self.names: tuple[str, ...] = ctx.options.service_accounts or tuple(DEFAULT_SERVICE_ACCOUNTS)
        self.namespaces = ctx.factory.informer(NAMESPACE)
        self.accounts = ctx.factory.informer(SERVICE_ACCOUNT)
        self.controller = Controller("serviceaccount-controller", self.reconcile,
                                     workers=ctx.options.workers or 2, clock=ctx.clock)
        # Keys are namespace names. A namespace added or updated (e.g. back to Active) is looked
        # at; so is the namespace of a deleted ServiceAccount we maintain.
        self.controller.watch(self.namespaces, skip_unchanged=True)
        self.accounts.add_handler(on_delete=self._on_account_delete)

    def _on_account_delete(self, sa: Obj) -> None:
        m = sa.get("metadata") or {}
        if m.get("name") in self.names and m.get("namespace"):
            self.controller.enqueue_key(str(m["namespace"]))

    async def reconcile(self, key: str) -> Result | None:
        ns = self.namespaces.get(key)
        if ns is None or (ns.get("metadata") or {}).get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase", "Active") != "Active":
            return None  # gone or terminating: nothing may be created there
        for name in self.names:
            if self.accounts.get(name, key) is not None:
                continue
            sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": key}}
            try:
                await self.client.create(SERVICE_ACCOUNT, sa, key)
                log.debug("created serviceaccount %s/%s", key, name)
            except AlreadyExistsError:
                pass  # our cache was behind; it exists, which is all we want
            except NotFoundError:
                return None  # the namespace went since the cache saw it
            except ForbiddenError as e:
                if is_namespace_terminating(e):
                    return None  # it started terminating: nothing more may be created there
                raise
        return None
