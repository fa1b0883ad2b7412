"""Admission: the chain of plugins run after authorization and before storage.

As kube-apiserver: every write goes through the *mutating* phase (each plugin's ``admit``, in
the chain's order), then the strategy's validation, then the *validating* phase (each plugin's
``validate``, in the same order). A plugin refuses by raising a ``StatusError`` (kube's
admission errors are 403 Forbidden, or 422 Invalid for field errors); it warns by appending to
``Attributes.warnings`` (the response's ``Warning:`` headers, which kubectl prints).

The chain's order is kube-apiserver's (``pkg/kubeapiserver/options/plugins.go``
``AllOrderedPlugins``); a plugin lives in a module of this package named after it, and
:func:`default_plugins` builds the chain. Status and other subresource writes go through the
chain too (with ``Attributes.subresource`` set): plugins that only look at the main resource
return early for them, as kube's do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from k8py.api.registry import KindInfo

if TYPE_CHECKING:
    from collections.abc import Mapping

    from k8py.api.registry import Registry
    from k8py.apiserver.authn import UserInfo
    from k8py.apiserver.objects import Objects

Obj = dict[str, Any]

# kube-apiserver's AllOrderedPlugins, the ones k8py has or will have; a plugin's place in the
# chain is its place here.
ORDER = (
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "PodSecurity",
    "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "PersistentVolumeClaimResize",
    "CertificateApproval",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "DefaultIngressClass",
    "K8pySeedPolicy",  # k8py's own: the seed's anti-patterns (warnings, or refusals where enforced)
    "MutatingAdmissionPolicy",  # CEL mutations, before the mutating webhooks as in kube
    "MutatingAdmissionWebhook",  # after the built-in mutating plugins, as in kube
    "ValidatingAdmissionPolicy",  # CEL policies, between the two webhook plugins as in kube
    "ValidatingAdmissionWebhook",  # after the built-in validating plugins, as in kube
    "ResourceQuota",  # last, as in kube: it charges only what every other plugin let through
)


@dataclass(slots=True)
class Attributes:
    """What a plugin knows of the request (kube's ``admission.Attributes``)."""

    operation: str  # CREATE, UPDATE, DELETE, CONNECT
    kind: KindInfo
    namespace: str
    name: str
    subresource: str = ""
    dry_run: bool = False
    user: UserInfo | None = None  # None: the API server itself (bootstrap objects)
    # The request's warnings (``Ctx.warnings``): what a plugin appends is sent as Warning: headers.
    warnings: list[str] = field(default_factory=list)
    # Annotations for the request's audit event (``Ctx.audit_annotations``), as kube's
    # ``AddAnnotation`` (``pod-security.kubernetes.io/audit-violations``, ...).
    audit_annotations: dict[str, str] = field(default_factory=dict)
    # kube's reinvocation: a plugin that changed the object in a way earlier plugins should see
    # (a mutating webhook's patch) sets ``reinvoke``; the chain then runs the mutating phase once
    # more with ``reinvoking`` set. ``plugin_state`` keeps a plugin's notes between the two runs.
    reinvoke: bool = False
    reinvoking: bool = False
    plugin_state: dict[str, Any] = field(default_factory=dict)


class Plugin:
    """One admission plugin. Override ``admit`` (mutating), ``validate`` (validating), or both."""

    name = ""

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        """Mutate ``obj`` in place (CREATE, UPDATE)."""

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        """Refuse by raising a StatusError (CREATE, UPDATE, DELETE, CONNECT)."""

    async def start(self) -> asyncio.Task[None] | None:
        """Start what the plugin keeps current in the background (a store watch through
        ``Objects.mirror``, as kube's plugins use informers) and return its task, for the server
        to stop, once loaded; None when it needs nothing. The server calls it before serving."""
        return None


def default_plugins(objects: Objects, registry: Registry, config: Mapping[str, Any] | None = None) -> list[Plugin]:
    """The chain kube-apiserver enables by default, as far as k8py has it; ``config`` is each
    plugin's parsed configuration (``--admission-control-config-file``, see ``config.py``)."""
    from k8py.apiserver.admission import (
        builtin,
        certapproval,
        certsigning,
        certsubjectrestriction,
        defaultingressclass,
        defaultstorageclass,
        limitranger,
        mutatingpolicy,
        noderestriction,
        persistentvolumeclaimresize,
        podsecurity,
        policy,
        resourcequota,
        seedpolicy,
        storageobjectinuseprotection,
        webhook,
    )

    return [
        builtin.NamespaceLifecycle(objects, registry),
        limitranger.LimitRanger(objects, registry),
        builtin.ServiceAccount(objects, registry),
        noderestriction.NodeRestriction(objects, registry),
        podsecurity.PodSecurity(objects, registry, (config or {}).get("PodSecurity")),
        builtin.Priority(objects, registry),
        builtin.DefaultTolerationSeconds(),
        defaultstorageclass.DefaultStorageClass(objects, registry),
        storageobjectinuseprotection.StorageObjectInUseProtection(),
        persistentvolumeclaimresize.PersistentVolumeClaimResize(objects, registry),
        certapproval.CertificateApproval(),
        certsigning.CertificateSigning(),
        certsubjectrestriction.CertificateSubjectRestriction(),
        defaultingressclass.DefaultIngressClass(objects, registry),
        resourcequota.ResourceQuota(objects, registry, (config or {}).get("ResourceQuota")),
        seedpolicy.SeedPolicy(objects, registry),
        mutatingpolicy.MutatingAdmissionPolicy(objects, registry),
        webhook.MutatingAdmissionWebhook(objects, registry),
        webhook.ValidatingAdmissionWebhook(objects, registry),
        policy.ValidatingAdmissionPolicy(objects, registry),
    ]


class Admission:
    def __init__(self, objects: Objects, registry: Registry, plugins: list[Plugin] | None = None,
                 config: Mapping[str, Any] | None = None) -> None:
        self.objects = objects
        self.registry = registry
        chain = default_plugins(objects, registry, config) if plugins is None else plugins
        unknown = [p.name for p in chain if p.name not in ORDER]
        if unknown:
            raise ValueError(f"admission plugins without a place in the chain's order: {unknown}")
        self.plugins = sorted(chain, key=lambda p: ORDER.index(p.name))

    def set_authorizer(self, authorizer: Any) -> None:
        """kube's ``WantsAuthorizer`` initializer: plugins that decide with the authorizer (an
        ``authorizer`` attribute: the certificate plugins; the webhooks' and policies' CEL
        ``authorizer``) get the server's."""
        for p in self.plugins:
            if hasattr(p, "authorizer"):
                p.authorizer = authorizer

    def set_service_resolver(self, resolver: Any) -> None:
        """kube's ``WantsServiceResolver``: plugins that call Services (a ``service_resolver``
        attribute: the admission webhooks) resolve them with the aggregation layer's resolver."""
        for p in self.plugins:
            if hasattr(p, "service_resolver"):
                p.service_resolver = resolver

    def plugin(self, name: str) -> Plugin | None:
        return next((p for p in self.plugins if p.name == name), None)

    async def mutate(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        for p in self.plugins:
            await p.admit(a, obj, old)
        if a.reinvoke and not a.reinvoking:
            # kube's reinvoker: once more, so that the built-in plugins see what a webhook added
            # (a sidecar container gets LimitRanger's defaults and the token mount)
            a.reinvoking = True
            for p in self.plugins:
                await p.admit(a, obj, old)

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None = None) -> None:
        for p in self.plugins:
            await p.validate(a, obj, old)

    async def start(self) -> list[asyncio.Task[None]]:
        """Start every plugin's background work (:meth:`Plugin.start`); the tasks to stop."""
        tasks = []
        for p in self.plugins:
            t = await p.start()
            if t is not None:
                tasks.append(t)
        return tasks


__all__ = ["ORDER", "Admission", "Attributes", "Plugin", "default_plugins"]
