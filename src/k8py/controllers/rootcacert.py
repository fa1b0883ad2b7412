"""The root CA publisher: a ``kube-root-ca.crt`` ConfigMap in every active namespace
(kube-controller-manager's ``root-ca-cert-publisher``).

Pods verify the API server with it (``ca.crt``; projected service account volumes mount it). The
CA is the file given as ``--root-ca-file`` (option ``root_ca_file``); without one, as kube, the CA
this manager itself trusts to reach the API server (its kubeconfig's ``certificate-authority``).

The ConfigMap is made again when deleted and put back when edited: its ``data`` must be exactly
``{"ca.crt": <PEM>}`` and it must carry the ``kubernetes.io/description`` annotation. Nothing is
created in a namespace that is terminating (the API refuses it too, with a
``NamespaceTerminating`` cause, which ends the attempt quietly).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from k8py.api.corev1 import is_namespace_terminating
from k8py.client.api import Client
from k8py.client.controller import Controller, Result
from k8py.client.errors import AlreadyExistsError, ForbiddenError, NotFoundError
from k8py.controllers.base import ControllerContext, ControllerOptions

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NAMESPACE = ("v1", "Namespace")
CONFIG_MAP = ("v1", "ConfigMap")

CONFIG_MAP_NAME = "kube-root-ca.crt"
DATA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


class RootCAError(Exception):
    """The root CA named by ``--root-ca-file`` cannot be used."""


def read_root_ca(path: str) -> str:
    """The PEM text of a CA file, checked to hold at least one certificate."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise RootCAError(f"cannot read the root CA file {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise RootCAError(f"the root CA file {path} is not PEM text") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise RootCAError(f"the root CA file {path} holds no PEM certificate")
    return text


def root_ca_for(options: ControllerOptions, client: Client) -> str | None:
    """``--root-ca-file`` if given, else the CA the client trusts (kube: ``ClientConfig.CAData``)."""
    path = options.root_ca_file
    if path:
        return read_root_ca(str(path))
    cfg = client.config
    if cfg.ca_data:
        return cfg.ca_data.decode("ascii", "replace")
    if cfg.ca_file:
        return read_root_ca(cfg.ca_file)
    return None


def wanted_data(root_ca: str) -> dict[str, str]:
    return {DATA_KEY: root_ca}


def up_to_date(cm: Obj, root_ca: str) -> bool:
    """As kube: the data is exactly the CA and the description annotation is there (any text)."""
    annotations = (cm.get("metadata") or {}).get("annotations") or {}
    return (cm.get("data") or {}) == wanted_data(root_ca) and bool(annotations.get(DESCRIPTION_ANNOTATION))


def new_config_map(root_ca: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP_NAME, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
            "data": wanted_data(root_ca)}


def repaired(cm: Obj, root_ca: str) -> Obj:
    """A copy of ``cm`` with the CA and the annotation put back (other metadata kept)."""
    out = copy.deepcopy(cm)
    out["data"] = wanted_data(root_ca)
    out.pop("binaryData", None)  # a key in binaryData may not repeat one in data; kube replaces both
    meta = out.setdefault("metadata", {})
    annotations = meta.get("annotations") or {}
    annotations[DESCRIPTION_ANNOTATION] = DESCRIPTION
    meta["annotations"] = annotations
    return out


class RootCACertPublisher:
    NAME = "root-ca-cert-publisher"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        try:
            self.root_ca = root_ca_for(ctx.options, ctx.client)
        except RootCAError as e:
            # the CLI checks --root-ca-file before starting; a file gone since must not stop the others
            log.error("root-ca-cert-publisher: %s; kube-root-ca.crt is not published", e)
            self.root_ca = None
        if self.root_ca is None:
            log.warning("root-ca-cert-publisher: no root CA (no --root-ca-file and the kubeconfig names no "
                        "certificate authority); kube-root-ca.crt is not published")
        self.namespaces = ctx.factory.informer(NAMESPACE)
        # Only our ConfigMap matters: a field-selected informer, not a cache of every ConfigMap.
        self.config_maps = ctx.factory.informer(CONFIG_MAP, field_selector=f"metadata.name={CONFIG_MAP_NAME}")
        self.controller = Controller("root-ca-cert-publisher", self.reconcile,
                                     workers=ctx.options.workers or 2, clock=ctx.clock)
        # Keys are namespace names.
        self.controller.watch(self.namespaces, skip_unchanged=True)
        self.config_maps.add_handler(on_add=self._on_config_map, on_update=self._on_config_map_update,
                                     on_delete=self._on_config_map)

    def _on_config_map(self, cm: Obj) -> None:
        m = cm.get("metadata") or {}
        if m.get("name") == CONFIG_MAP_NAME and m.get("namespace"):
            self.controller.enqueue_key(str(m["namespace"]))

    def _on_config_map_update(self, old: Obj, new: Obj) -> None:
        self._on_config_map(new)

    async def reconcile(self, key: str) -> Result | None:
        root_ca = self.root_ca
        if root_ca is None:
            return None
        ns = self.namespaces.get(key)
        if ns is None or (ns.get("metadata") or {}).get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase", "Active") != "Active":
            return None  # gone or terminating: nothing may be created there
        cm = self.config_maps.get(CONFIG_MAP_NAME, key)
        if cm is None:
            try:
                await self.client.create(CONFIG_MAP, new_config_map(root_ca), key)
                log.debug("published %s in %s", CONFIG_MAP_NAME, key)
            except AlreadyExistsError:
                # our cache was behind: look again once the informer has the object
                return Result(requeue=True)
            except NotFoundError:
                return None  # the namespace went since the cache saw it
            except ForbiddenError as e:
                if is_namespace_terminating(e):
                    return None  # it started terminating: nothing more may be created there
                raise
            return None
        if up_to_date(cm, root_ca):
            return None
        try:
            # an update with the cached resourceVersion: a conflict means someone wrote since,
            # and the runner retries with what the informer holds then
            await self.client.update(CONFIG_MAP, repaired(cm, root_ca), key)
            log.info("restored %s in %s", CONFIG_MAP_NAME, key)
        except NotFoundError:
            # deleted since the cache saw it; the delete event brings the key back
            return None
        return None
