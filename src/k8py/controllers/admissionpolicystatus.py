"""The ValidatingAdmissionPolicy status controller (kube-controller-manager's
``validatingadmissionpolicy-status-controller``).

For each policy whose ``status.observedGeneration`` is behind its ``metadata.generation``, the
policy's expressions are type-checked against the kinds its resource rules name
(:func:`k8py.api.admissionpolicy.type_check`: fields those kinds' schemas lack), and the status
is written: ``observedGeneration`` and ``typeChecking`` (``expressionWarnings`` when there are
any). The warnings are informational, as in kube: the policy is enforced either way.
"""

from __future__ import annotations

import logging
from typing import Any

from k8py.api import admissionpolicy as ap
from k8py.api.registry import Registry
from k8py.client.controller import Controller, Result
from k8py.client.errors import NotFoundError
from k8py.controllers.base import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]
POLICY = ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy")


def desired_status(policy: Obj, registry: Registry) -> Obj:
    """The status the controller writes for ``policy`` (kept fields other than its own)."""
    def kind_of(group: str, version: str, resource: str) -> str | None:
        k = registry.by_resource(group, version, resource)
        return k.kind if k is not None else None

    status = dict(policy.get("status") or {})
    status["observedGeneration"] = int((policy.get("metadata") or {}).get("generation") or 0)
    warnings = ap.type_check(policy, kind_of)
    status["typeChecking"] = {"expressionWarnings": warnings} if warnings else {}
    return status


class ValidatingAdmissionPolicyStatusController:
    NAME = "validatingadmissionpolicy-status-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        # the built-in kinds (type checking reads their schemas); custom resources are not checked
        self.registry = Registry()
        self.policies = ctx.factory.informer(POLICY)
        self.controller = Controller(self.NAME, self.reconcile, workers=ctx.options.workers or 1, clock=ctx.clock)
        self.controller.wait_for(self.policies)
        self.policies.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new))

    def _enqueue(self, policy: Obj) -> None:
        self.controller.enqueue_key(str(policy["metadata"]["name"]))

    async def reconcile(self, key: str) -> Result | None:
        policy = self.policies.get(key)
        if policy is None:
            return None
        generation = int((policy.get("metadata") or {}).get("generation") or 0)
        if int((policy.get("status") or {}).get("observedGeneration") or 0) >= generation:
            return None
        status = desired_status(policy, self.registry)
        try:
            # the cached resourceVersion: a newer policy conflicts, and the runner retries with it
            await self.client.update_status(POLICY, {**policy, "status": status})
        except NotFoundError:
            return None
        warnings = (status.get("typeChecking") or {}).get("expressionWarnings") or []
        log.info("%s: %s type-checked (generation %d, %d warnings)", self.NAME, key, generation, len(warnings))
        return None
