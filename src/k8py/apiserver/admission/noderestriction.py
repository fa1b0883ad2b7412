"""NodeRestriction (kube's ``plugin/pkg/admission/noderestriction``): a node writes only its own
Node, its own Lease, its pods' status and the mirror pods of its static pods.

The Node authorizer (:mod:`k8py.apiserver.rbac.node`) lets every node create and update Nodes,
pods' status, evictions and leases because it cannot see the object a write carries; this plugin
sees it. For a request from a node (``system:node:<name>`` in ``system:nodes``):

- pods: create only a mirror pod (``kubernetes.io/config.mirror``) bound to itself, owned by its
  own Node (controller, no ``blockOwnerDeletion``, the Node's uid) and referring to no service
  account, Secret, ConfigMap, ClusterTrustBundle or claim; delete, evict and update the status
  only of pods bound to itself, and never their labels through the status; no other subresource;
- its own Node only (create, update, status), without ``configSource``, without changing its
  taints, and without setting ``node-restriction.kubernetes.io/`` labels or any other
  ``kubernetes.io`` / ``k8s.io`` label that is not a kubelet's (hostname, os, arch, zone, region,
  instance type, ``kubelet.kubernetes.io/`` and ``node.kubernetes.io/``);
- PersistentVolumeClaims: the status only, and in it only the capacity, conditions and the
  allocated resources;
- a ``serviceaccounts/token`` only when bound to a pod (with its uid) that is bound to itself;
- leases only in ``kube-node-lease`` and named after itself; CSINodes named after itself;
- a CertificateSigningRequest for the kubelet serving or kubelet client signer only for
  ``CN=system:node:<itself>``.

Refusals are kube's ``admission.NewForbidden``: 403 ``<resource> "<name>" is forbidden: <why>``,
with kube's texts. Checks of writes with a body run in the mutating phase, as kube's plugin is a
mutating one; a delete's and an eviction's or token request's checks run in the validating phase
(the only one those requests go through here). The pods and Nodes looked up are read from the
store, as kube's plugin reads them from its informers.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.api.corev1 import pod_configmap_names, pod_secret_names
from k8py.apiserver.admission import Attributes, Plugin
from k8py.apiserver.rbac.node import MIRROR_POD_ANNOTATION, NODE_LEASE_NAMESPACE, node_identity

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.objects import Objects

__all__ = ["NodeRestriction", "forbidden_labels"]

Obj = dict[str, Any]

log = logging.getLogger(__name__)

NODE_RESTRICTION_LABEL_DOMAIN = "node-restriction.kubernetes.io"
# k8s.io/kubelet's IsKubeletLabel: the labels a kubelet may set on its own Node
KUBELET_LABELS = frozenset((
    "kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type", "kubernetes.io/os",
    "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
))
KUBELET_LABEL_DOMAINS = ("kubelet.kubernetes.io", "node.kubernetes.io")
KUBELET_SIGNERS = ("kubernetes.io/kubelet-serving", "kubernetes.io/kube-apiserver-client-kubelet")
# subresources whose requests reach only the validating phase here
VALIDATE_ONLY = ("eviction", "token")


def _in_domain(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith("." + parent)


def _label_domain(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def is_kubelet_label(key: str) -> bool:
    return key in KUBELET_LABELS or any(_in_domain(_label_domain(key), d) for d in KUBELET_LABEL_DOMAINS)


def forbidden_labels(labels: Any, old_labels: Any) -> list[str]:
    """The label keys a node may not add, remove or change (sorted): ``node-restriction`` ones
    and ``kubernetes.io`` / ``k8s.io`` ones that are not a kubelet's."""
    a = labels if isinstance(labels, dict) else {}
    b = old_labels if isinstance(old_labels, dict) else {}
    modified = {k for k in a.keys() | b.keys() if k not in a or k not in b or a[k] != b[k]}
    out = set()
    for key in modified:
        domain = _label_domain(key)
        if _in_domain(domain, NODE_RESTRICTION_LABEL_DOMAIN):
            out.add(key)
        k8s = _in_domain(domain, "kubernetes.io") or _in_domain(domain, "k8s.io")
        if k8s and not is_kubelet_label(key):
            out.add(key)
    return sorted(out)


def _meta(obj: Any) -> Obj:
    m = obj.get("metadata") if isinstance(obj, dict) else None
    return m if isinstance(m, dict) else {}


def _spec(obj: Any) -> Obj:
    s = obj.get("spec") if isinstance(obj, dict) else None
    return s if isinstance(s, dict) else {}


class NodeRestriction(Plugin):
    """See the module docstring."""

    name = "NodeRestriction"

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self._pods = registry.by_resource("", "v1", "pods")
        self._nodes = registry.by_resource("", "v1", "nodes")

    async def admit(self, a: Attributes, obj: Obj, old: Obj | None) -> None:
        if a.operation in ("CREATE", "UPDATE") and a.subresource not in VALIDATE_ONLY:
            await self._check(a, obj, old)

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if a.operation == "DELETE" or a.subresource in VALIDATE_ONLY:
            await self._check(a, obj, old)

    # -- the checks ----------------------------------------------------------------------------
    def forbid(self, a: Attributes, obj: Any, why: str) -> errors.StatusError:
        """kube's ``admission.NewForbidden``: named after the request, or the object it carries."""
        name = a.name or str(_meta(obj).get("name") or "")
        res = errors.qualified(a.kind.resource, a.kind.group)
        msg = f'{res} "{name}" is forbidden: {why}' if name else f"{res} is forbidden: {why}"
        return errors.forbidden_error(msg, a.kind.resource, a.kind.group, name)

    async def _check(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        node, is_node = node_identity(a.user)
        if not is_node:
            return
        if not node:
            assert a.user is not None
            raise self.forbid(a, obj, f'could not determine node from user "{a.user.name}"')
        group, res = a.kind.group, a.kind.resource
        if group == "":
            if res == "pods":
                await self._pod(node, a, obj, old)
            elif res == "nodes":
                await self._node(node, a, obj, old)
            elif res == "persistentvolumeclaims":
                if a.subresource != "status":
                    raise self.forbid(a, obj, "may only update PVC status")
                self._pvc_status(node, a, obj, old)
            elif res == "serviceaccounts":
                await self._token(node, a, obj)
        elif group == "coordination.k8s.io" and res == "leases":
            if a.namespace != NODE_LEASE_NAMESPACE:
                raise self.forbid(a, obj, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
            self._named_after_node(node, a, obj, "can only access node lease with the same name as the requesting node")
        elif group == "storage.k8s.io" and res == "csinodes":
            self._named_after_node(node, a, obj, "can only access CSINode with the same name as the requesting node")
        elif group == "certificates.k8s.io" and res == "certificatesigningrequests":
            self._csr(node, a, obj)

    def _named_after_node(self, node: str, a: Attributes, obj: Obj | None, wrong_name: str) -> None:
        name = str(_meta(obj).get("name") or "") if a.operation == "CREATE" else a.name
        if name != node:
            raise self.forbid(a, obj, wrong_name)

    async def _existing_pod(self, a: Attributes, name: str) -> Obj:
        assert self._pods is not None
        pod = await self.objects.try_get(self._pods, a.namespace, name)
        if pod is None:
            raise errors.not_found_error("pods", "", name)
        return pod

    async def _pod(self, node: str, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if a.subresource == "":
            if a.operation == "CREATE":
                await self._mirror_pod(node, a, obj or {})
            elif a.operation == "DELETE":
                pod = await self._existing_pod(a, a.name)
                if _spec(pod).get("nodeName") != node:
                    raise self.forbid(a, obj, f'node "{node}" can only delete pods with spec.nodeName set to itself')
            else:
                raise self.forbid(a, obj, f'unexpected operation "{a.operation}", node "{node}" can only create '
                                          "and delete mirror pods")
        elif a.subresource == "status":
            if a.operation != "UPDATE":
                raise self.forbid(a, obj, f'unexpected operation "{a.operation}"')
            if _spec(old).get("nodeName") != node:
                raise self.forbid(a, obj, f'node "{node}" can only update pod status for pods with spec.nodeName '
                                          "set to itself")
            if (_meta(old).get("labels") or {}) != (_meta(obj).get("labels") or {}):
                raise self.forbid(a, obj, f'node "{node}" cannot update labels through pod status')
            old_claims = ((old or {}).get("status") or {}).get("resourceClaimStatuses") or []
            new_claims = ((obj or {}).get("status") or {}).get("resourceClaimStatuses") or []
            if old_claims != new_claims:
                raise self.forbid(a, obj, f'node "{node}" cannot update resource claim statues')
        elif a.subresource == "eviction":
            if a.operation != "CREATE":
                raise self.forbid(a, obj, f"unexpected operation {a.operation}")
            pod_name = a.name or str(_meta(obj).get("name") or "")
            if not pod_name:
                raise self.forbid(a, obj, "could not determine pod from request data")
            pod = await self._existing_pod(a, pod_name)
            if _spec(pod).get("nodeName") != node:
                raise self.forbid(a, obj, f"node {node} can only evict pods with spec.nodeName set to itself")
        else:
            raise self.forbid(a, obj, f'unexpected pod subresource "{a.subresource}", only \'status\' and '
                                      "'eviction' are allowed")

    async def _mirror_pod(self, node: str, a: Attributes, pod: Obj) -> None:
        meta, spec = _meta(pod), _spec(pod)
        if MIRROR_POD_ANNOTATION not in (meta.get("annotations") or {}):
            raise self.forbid(a, pod, f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node "{node}" can '
                                      "only create mirror pods")
        if spec.get("nodeName") != node:
            raise self.forbid(a, pod, f'node "{node}" can only create pods with spec.nodeName set to itself')
        owners = meta.get("ownerReferences") or []
        if len(owners) > 1:
            raise self.forbid(a, pod, f'node "{node}" can only create pods with a single owner reference set to '
                                      "itself")
        if not owners:
            raise self.forbid(a, pod, f'node "{node}" can only create pods with an owner reference set to itself')
        owner = owners[0] if isinstance(owners[0], dict) else {}
        if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
            raise self.forbid(a, pod, f'node "{node}" can only create pods with an owner reference set to itself')
        if owner.get("controller") is not True:
            raise self.forbid(a, pod, f'node "{node}" can only create pods with a controller owner reference set '
                                      "to itself")
        if owner.get("blockOwnerDeletion") is True:
            raise self.forbid(a, pod, f'node "{node}" must not set blockOwnerDeletion on an owner reference')
        assert self._nodes is not None
        node_obj = await self.objects.try_get(self._nodes, None, node)
        if node_obj is None:
            raise errors.not_found_error("nodes", "", node)
        node_uid = _meta(node_obj).get("uid")
        if owner.get("uid") != node_uid:
            raise self.forbid(a, pod, f"node {node} UID mismatch: expected {owner.get('uid') or ''} got {node_uid}")
        # a node must not create a pod that would let it read other objects
        if spec.get("serviceAccountName"):
            raise self.forbid(a, pod, f'node "{node}" can not create pods that reference a service account')
        if pod_secret_names(pod):
            raise self.forbid(a, pod, f'node "{node}" can not create pods that reference secrets')
        if pod_configmap_names(pod):
            raise self.forbid(a, pod, f'node "{node}" can not create pods that reference configmaps')
        for v in spec.get("volumes") or ():
            for src in ((v.get("projected") or {}).get("sources") or ()) if isinstance(v, dict) else ():
                if isinstance(src, dict) and src.get("clusterTrustBundle") is not None:
                    raise self.forbid(a, pod, f'node "{node}" can not create pods that reference '
                                              "clustertrustbundles")
        if any(isinstance(v, dict) and v.get("persistentVolumeClaim") is not None for v in spec.get("volumes") or ()):
            raise self.forbid(a, pod, f'node "{node}" can not create pods that reference persistentvolumeclaims')

    async def _node(self, node: str, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if a.name != node:
            raise self.forbid(a, obj, f'node "{node}" is not allowed to modify node "{a.name}"')
        if a.operation == "CREATE":
            if _spec(obj).get("configSource") is not None:
                raise self.forbid(a, obj, f'node "{node}" is not allowed to create pods with a non-nil configSource')
            bad = forbidden_labels(_meta(obj).get("labels"), None)
            if bad:
                raise self.forbid(a, obj, f'node "{node}" is not allowed to set the following labels: '
                                          + ", ".join(bad))
        elif a.operation == "UPDATE":
            source = _spec(obj).get("configSource")
            if source is not None and source != _spec(old).get("configSource"):
                raise self.forbid(a, obj, f'node "{node}" is not allowed to update configSource to a new non-nil '
                                          "configSource")
            if (_spec(obj).get("taints") or []) != (_spec(old).get("taints") or []):
                raise self.forbid(a, obj, f'node "{node}" is not allowed to modify taints')
            bad = forbidden_labels(_meta(obj).get("labels"), _meta(old).get("labels"))
            if bad:
                raise self.forbid(a, obj, "is not allowed to modify labels: " + ", ".join(bad))

    def _pvc_status(self, node: str, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if a.operation != "UPDATE":
            raise self.forbid(a, obj, f'unexpected operation "{a.operation}"')

        def comparable(pvc: Obj | None) -> Obj:
            out = {k: v for k, v in (pvc or {}).items() if k not in ("metadata", "status")}
            out["metadata"] = {k: v for k, v in _meta(pvc).items() if k not in ("resourceVersion", "managedFields")}
            out["status"] = {k: v for k, v in ((pvc or {}).get("status") or {}).items()
                             if k not in ("capacity", "conditions", "allocatedResourceStatuses",
                                          "allocatedResources")}
            return out

        before, after = comparable(old), comparable(obj)
        if before != after:
            changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            raise self.forbid(a, obj, f'node "{node}" is not allowed to update fields other than status.quantity '
                                      f"and status.conditions: {', '.join(changed)} changed")

    async def _token(self, node: str, a: Attributes, obj: Obj | None) -> None:
        if a.operation != "CREATE" or a.subresource != "token":
            return
        ref = _spec(obj).get("boundObjectRef")
        if (not isinstance(ref, dict) or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod"
                or not ref.get("name")):
            raise self.forbid(a, obj, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise self.forbid(a, obj, "node requested token with a pod binding without a uid")
        pod = await self._existing_pod(a, str(ref["name"]))
        if ref["uid"] != _meta(pod).get("uid"):
            raise self.forbid(a, obj, f"the UID in the bound object reference ({ref['uid']}) does not match the UID "
                                      "in record. The object might have been deleted and then recreated")
        if _spec(pod).get("nodeName") != node:
            raise self.forbid(a, obj, "node requested token bound to a pod scheduled on a different node")

    def _csr(self, node: str, a: Attributes, obj: Obj | None) -> None:
        if a.operation != "CREATE" or a.subresource:
            return
        if _spec(obj).get("signerName") not in KUBELET_SIGNERS:
            return
        from cryptography.x509.oid import NameOID

        from k8py.api.validation.certificates import parse_csr_pem

        try:
            csr = parse_csr_pem(base64.b64decode(str(_spec(obj).get("request") or ""), validate=True))
            cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        except (ValueError, binascii.Error) as e:
            raise self.forbid(a, obj, f"unable to parse csr: {e}") from None
        cn = str(cns[0].value) if cns else ""
        if cn != f"system:node:{node}":
            raise self.forbid(a, obj, f"can only create a node CSR with CN=system:node:{node}")
