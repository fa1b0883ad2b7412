"""The Node authorizer (kube's ``plugin/pkg/auth/authorizer/node``): a node agent reads only what
its own pods need.

A request from a node (user ``system:node:<name>`` in group ``system:nodes``, kube's default
node identifier) is decided here, as kube-apiserver's ``--authorization-mode=Node,RBAC`` does:

- Secrets and ConfigMaps (get, list and watch of one named object: a list or watch names it
  with a ``metadata.name`` field selector), PersistentVolumeClaims and PersistentVolumes (get),
  a claim's status (update, patch) and ServiceAccount tokens (create ``serviceaccounts/token``)
  only along an edge of the graph below, else ``no relationship found between node '<n>' and
  this object``;
- its own Node (get, list and watch by name; create, update and patch, which NodeRestriction
  narrows to its own), and pods bound to it (get; list and watch with the field selector
  ``spec.nodeName=<n>``), as kube's ``AuthorizeNodeWithSelectors`` (GA in 1.34);
- its own Lease in ``kube-node-lease`` and its own CSINode;
- everything else by kube's static node rules (the ``system:node`` ClusterRole's rules,
  :func:`~k8py.apiserver.rbac.bootstrap.node_rules`).

A denial here is "no opinion": RBAC, next in the union (:class:`~k8py.apiserver.authz.UnionAuthorizer`),
may still allow what a binding grants, and the reason given here is the one the user reads.

The graph (:class:`NodeGraph`, nothing in it does I/O) holds, for each pod bound to a node, the
Secrets, ConfigMaps, claims and the service account it refers to (kube's ``AddPod``: volumes,
env and envFrom of every container, image pull secrets, projected sources; nothing for a mirror
pod), and for each bound PersistentVolume its claim and the secrets the node may read for it
(``VisitPVSecretNames``). Every object a node may reach is indexed by the nodes that reach it, so
a decision is a dict lookup or two. :class:`NodeAuthorizer` keeps the graph current from the
store through :meth:`~k8py.apiserver.objects.Objects.mirror` (one list-then-watch of pods and
one of PersistentVolumes), never by reading per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from k8py.api.corev1 import pod_claim_names, pod_configmap_names, pod_secret_names
from k8py.apiserver.authz import RequestAttributes, UnionAuthorizer
from k8py.apiserver.rbac.authorizer import RBACAuthorizer
from k8py.apiserver.rbac.bootstrap import node_rules
from k8py.apiserver.rbac.rules import Rule, rule_allows, rule_from

if TYPE_CHECKING:
    from k8py.api.registry import Registry
    from k8py.apiserver.authn import UserInfo
    from k8py.apiserver.objects import Objects

__all__ = ["NODES_GROUP", "NODE_USER_PREFIX", "NodeAuthorizer", "NodeGraph", "node_and_rbac", "node_identity"]

log = logging.getLogger(__name__)

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
SYNC_TIMEOUT = 30.0

# vertex types (kube's vertexTypes names, used in the log)
SECRET, CONFIGMAP, PVC, PV, POD, SERVICEACCOUNT = "secret", "configmap", "pvc", "pv", "pod", "serviceAccount"

Ref = tuple[str, str, str]  # (vertex type, namespace, name)


def node_identity(user: UserInfo | None) -> tuple[str, bool]:
    """kube's default ``NodeIdentifier``: ``(node name, is a node)``; a node user whose name has
    nothing after the prefix is a node with an empty name (refused, never matched)."""
    if user is None or not user.name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return "", False
    return user.name[len(NODE_USER_PREFIX):], True


def pv_secret_refs(pv: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (namespace, name) of the secrets a node may read for a PersistentVolume (kube's
    ``VisitPVSecretNames`` where ``kubeletVisible``): a reference without a namespace means the
    namespace of the claim bound to it."""
    spec = pv.get("spec") or {}
    claim_ns = str((spec.get("claimRef") or {}).get("namespace") or "")
    out: set[tuple[str, str]] = set()

    def ref(v: Any, default_ns: str = claim_ns) -> None:
        if isinstance(v, Mapping) and v.get("name"):
            out.add((str(v.get("namespace") or default_ns), str(v["name"])))

    for source in ("cephfs", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos"):
        src = spec.get(source)
        if isinstance(src, Mapping):
            ref(src.get("secretRef"))
    az = spec.get("azureFile")
    if isinstance(az, Mapping) and az.get("secretName"):
        out.add((str(az.get("secretNamespace") or claim_ns), str(az["secretName"])))
    cinder = spec.get("cinder")
    if isinstance(cinder, Mapping):
        ref(cinder.get("secretRef"))
    csi = spec.get("csi")
    if isinstance(csi, Mapping):
        # the controller-side secrets are the CSI controller's, not the node's
        for f in ("nodePublishSecretRef", "nodeStageSecretRef", "nodeExpandSecretRef"):
            ref(csi.get(f))
    return out


@dataclass(frozen=True, slots=True)
class PodEdges:
    """What one bound pod contributes to the graph."""

    node: str
    uid: str
    refs: frozenset[Ref]  # the objects it lets its node reach
    ephemeral: int = 0  # ephemeral containers: the only references added to a bound pod


def pod_edges(pod: Mapping[str, Any]) -> PodEdges | None:
    """A bound pod's edges (kube's ``AddPod``); None for a pod not bound to a node."""
    spec = pod.get("spec") or {}
    node = str(spec.get("nodeName") or "")
    if not node:
        return None
    meta = pod.get("metadata") or {}
    uid = str(meta.get("uid") or "")
    ephemeral = len(spec.get("ephemeralContainers") or ())
    if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
        # a node must never be able to create a pod that grants it access to other objects
        return PodEdges(node, uid, frozenset(), ephemeral)
    ns = str(meta.get("namespace") or "")
    refs: set[Ref] = set()
    sa = spec.get("serviceAccountName")
    if sa:
        refs.add((SERVICEACCOUNT, ns, str(sa)))
    refs.update((SECRET, ns, n) for n in pod_secret_names(pod))
    refs.update((CONFIGMAP, ns, n) for n in pod_configmap_names(pod))
    refs.update((PVC, ns, n) for n in pod_claim_names(pod))
    return PodEdges(node, uid, frozenset(refs), ephemeral)


def _same_binding(edges: PodEdges, pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (edges.node == spec.get("nodeName") and edges.uid == (pod.get("metadata") or {}).get("uid")
            and edges.ephemeral == len(spec.get("ephemeralContainers") or ()))


class NodeGraph:
    """Which node reaches which object: pods bound to nodes, what they refer to, and bound
    PersistentVolumes. Every change keeps the index from object to nodes exact."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], PodEdges] = {}
        self._reach: dict[Ref, dict[str, int]] = {}  # object -> node -> number of pods giving the edge
        self.pv_claims: dict[str, tuple[str, str]] = {}  # PV -> its claim (namespace, name)
        self._pv_secrets: dict[str, frozenset[tuple[str, str]]] = {}
        self._secret_pvs: dict[tuple[str, str], set[str]] = {}  # secret -> PVs that refer to it

    # -- changes -------------------------------------------------------------------------------
    def _count(self, refs: Iterable[Ref], node: str, delta: int) -> None:
        for r in refs:
            nodes = self._reach.setdefault(r, {})
            n = nodes.get(node, 0) + delta
            if n > 0:
                nodes[node] = n
            else:
                nodes.pop(node, None)
                if not nodes:
                    del self._reach[r]

    def set_pod(self, namespace: str, name: str, pod: Mapping[str, Any] | None) -> None:
        """Add, replace or (``pod=None``, or a pod not bound) remove one pod's edges."""
        key = (namespace, name)
        old = self.pods.get(key)
        if old is not None and pod is not None and _same_binding(old, pod):
            # kube's graph populator: the node and uid unchanged, a pod's references are too (a
            # status write lands here: most pod writes), except for added ephemeral containers
            return
        new = pod_edges(pod) if pod is not None else None
        if old == new:
            return
        if old is not None:
            self._count(((POD, namespace, name), *old.refs), old.node, -1)
            del self.pods[key]
        if new is not None:
            self.pods[key] = new
            self._count(((POD, namespace, name), *new.refs), new.node, 1)

    def set_pv(self, name: str, pv: Mapping[str, Any] | None) -> None:
        """Add, replace or remove one PersistentVolume (only a bound one has edges)."""
        self.pv_claims.pop(name, None)
        for s in self._pv_secrets.pop(name, ()):
            pvs = self._secret_pvs.get(s)
            if pvs is not None:
                pvs.discard(name)
                if not pvs:
                    del self._secret_pvs[s]
        claim = (pv.get("spec") or {}).get("claimRef") if pv is not None else None
        if not isinstance(claim, Mapping) or pv is None:
            return
        self.pv_claims[name] = (str(claim.get("namespace") or ""), str(claim.get("name") or ""))
        secrets = frozenset(pv_secret_refs(pv))
        if secrets:
            self._pv_secrets[name] = secrets
            for s in secrets:
                self._secret_pvs.setdefault(s, set()).add(name)

    def clear(self) -> None:
        self.pods.clear()
        self._reach.clear()
        self.pv_claims.clear()
        self._pv_secrets.clear()
        self._secret_pvs.clear()

    # -- reads ---------------------------------------------------------------------------------
    def _reaches(self, ref: Ref, node: str) -> bool:
        return node in self._reach.get(ref, ())

    def has_path(self, vertex: str, namespace: str, name: str, node: str) -> bool:
        """Is there a path from the object to the node (kube's ``hasPathFrom``)?"""
        if vertex == PV:
            claim = self.pv_claims.get(name)
            return claim is not None and self._reaches((PVC, *claim), node)
        if self._reaches((vertex, namespace, name), node):
            return True
        if vertex == SECRET:
            # node <- pod <- pvc <- pv <- secret
            return any(self.has_path(PV, "", pv, node) for pv in self._secret_pvs.get((namespace, name), ()))
        return False


# --------------------------------------------------------------------------- the authorizer


def _no_relationship(node: str) -> str:
    return f"no relationship found between node '{node}' and this object"


class NodeAuthorizer:
    """``AuthorizerLike`` for node identities; see the module docstring. Users that are not nodes
    get no opinion, at the cost of one prefix test."""

    def __init__(self, graph: NodeGraph | None = None, rules: Iterable[Rule] | None = None) -> None:
        self.graph = graph if graph is not None else NodeGraph()
        self.rules = tuple(rules) if rules is not None else tuple(rule_from(r) for r in node_rules())
        self.synced = asyncio.Event()
        self._synced_parts: set[str] = set()

    # -- decisions -----------------------------------------------------------------------------
    def authorize(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        if not user.name.startswith(NODE_USER_PREFIX):
            return False, ""
        node, is_node = node_identity(user)
        if not is_node:
            return False, ""
        if not node:
            log.debug("NODE DENY: unknown node for user %r", user.name)
            return False, f'unknown node for user "{user.name}"'
        if attrs.is_resource_request:
            decided = self._subdivided(node, attrs)
            if decided is not None:
                if not decided[0]:
                    log.debug("NODE DENY: '%s' %s", node, attrs)
                return decided
        if self._rules_allow(attrs):
            return True, ""
        return False, ""

    def _rules_allow(self, attrs: RequestAttributes) -> bool:
        return any(rule_allows(r, verb=attrs.verb, is_resource_request=attrs.is_resource_request,
                               api_group=attrs.api_group, resource=attrs.resource, subresource=attrs.subresource,
                               name=attrs.name, path=attrs.path) for r in self.rules)

    def _subdivided(self, node: str, a: RequestAttributes) -> tuple[bool, str] | None:
        """The decision for the kinds kube's Node authorizer subdivides; None for the others
        (the static rules decide those)."""
        group, res = a.api_group, a.resource
        if group == "":
            if res == "secrets":
                return self._read_namespaced(node, SECRET, a)
            if res == "configmaps":
                return self._read_namespaced(node, CONFIGMAP, a)
            if res == "persistentvolumeclaims":
                return self._status_update(node, PVC, a) if a.subresource == "status" else self._get(node, PVC, a)
            if res == "persistentvolumes":
                return self._get(node, PV, a)
            if res == "serviceaccounts":
                return self._create_token(node, a)
            if res == "nodes":
                return self._node(node, a)
            if res == "pods":
                return self._pod(node, a)
        elif group == "coordination.k8s.io" and res == "leases":
            return self._lease(node, a)
        elif group == "storage.k8s.io" and res == "csinodes":
            return self._csinode(node, a)
        return None

    def _path(self, node: str, vertex: str, a: RequestAttributes) -> tuple[bool, str]:
        if not a.name:
            return False, "No Object name found"
        if self.graph.has_path(vertex, a.namespace, a.name, node):
            return True, ""
        return False, _no_relationship(node)

    def _read_namespaced(self, node: str, vertex: str, a: RequestAttributes) -> tuple[bool, str]:
        if a.verb not in ("get", "list", "watch"):
            return False, "can only read resources of this type"
        if a.subresource:
            return False, "cannot read subresource"
        if not a.namespace:
            return False, "can only read namespaced object of this type"
        return self._path(node, vertex, a)

    def _get(self, node: str, vertex: str, a: RequestAttributes) -> tuple[bool, str]:
        if a.verb != "get":
            return False, "can only get individual resources of this type"
        if a.subresource:
            return False, "cannot get subresource"
        return self._path(node, vertex, a)

    def _status_update(self, node: str, vertex: str, a: RequestAttributes) -> tuple[bool, str]:
        if a.verb not in ("update", "patch"):
            return False, "can only get/update/patch this type"
        return self._path(node, vertex, a)

    def _create_token(self, node: str, a: RequestAttributes) -> tuple[bool, str]:
        if a.verb != "create" or not a.name:
            return False, "can only create tokens for individual service accounts"
        if a.subresource != "token":
            return False, "can only create token subresource of serviceaccount"
        return self._path(node, SERVICEACCOUNT, a)

    @staticmethod
    def _lease(node: str, a: RequestAttributes) -> tuple[bool, str]:
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return False, "can only get, create, update, patch, or delete a node lease"
        if a.namespace != NODE_LEASE_NAMESPACE:
            return False, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
        # a create's name is not known here: NodeRestriction checks it against the body
        if a.verb != "create" and a.name != node:
            return False, "can only access node lease with the same name as the requesting node"
        return True, ""

    @staticmethod
    def _csinode(node: str, a: RequestAttributes) -> tuple[bool, str]:
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return False, "can only get, create, update, patch, or delete a CSINode"
        if a.subresource:
            return False, "cannot authorize CSINode subresources"
        if a.verb != "create" and a.name != node:
            return False, "can only access CSINode with the same name as the requesting node"
        return True, ""

    @staticmethod
    def _node(node: str, a: RequestAttributes) -> tuple[bool, str]:
        if not a.subresource:
            if a.verb in ("create", "update", "patch"):
                return True, ""  # NodeRestriction keeps a node to its own Node
            if a.verb in ("get", "list", "watch"):
                # by name, not through the graph: a kubelet reads its Node before creating it
                if a.name == node:
                    return True, ""
                if not a.name:
                    return False, f"node '{node}' cannot read all nodes, only its own Node object"
                return False, f"node '{node}' cannot read '{a.name}', only its own Node object"
        elif a.subresource == "status" and a.verb in ("update", "patch"):
            return True, ""  # NodeRestriction keeps a node to its own Node's status
        return False, ""

    def _pod(self, node: str, a: RequestAttributes) -> tuple[bool, str]:
        if not a.subresource:
            if a.verb == "get":
                return self._get(node, POD, a)
            if a.verb in ("list", "watch"):
                if ("spec.nodeName", "=", node) in a.field_requirements:
                    return True, ""
                if a.name:  # one pod known to be bound to this node
                    return self._path(node, POD, a)
                return False, "can only list/watch pods with spec.nodeName field selector"
            if a.verb in ("create", "delete"):
                return True, ""  # mirror pods; NodeRestriction keeps them to this node
        elif (a.subresource == "status" and a.verb in ("update", "patch")) or (
                a.subresource == "eviction" and a.verb == "create"):
            return True, ""  # NodeRestriction: only pods bound to this node
        return False, ""

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[str]]:
        """kube's ``RulesFor``: a node's permissions are not fully enumerable (they follow the
        graph), which the answer says; other users have none from here."""
        if node_identity(user)[1]:
            return [], ["node authorizer does not support user rule resolution"]
        return [], []

    @staticmethod
    def incomplete_for(user: UserInfo) -> bool:
        """A node's permissions are not fully enumerated (kube's ``RulesFor`` says incomplete)."""
        return node_identity(user)[1]

    # -- keeping the graph current -------------------------------------------------------------
    @staticmethod
    def _parser(prefix: str) -> Any:
        def parse(key: str) -> tuple[str, str] | None:
            if not key.startswith(prefix):
                return None
            parts = key[len(prefix):].split("/")
            if len(parts) == 2:
                return parts[0], parts[1]
            if len(parts) == 1:
                return "", parts[0]
            return None
        return parse

    async def run(self, objects: Objects, registry: Registry) -> None:
        """Mirror the pods and the PersistentVolumes into the graph until cancelled."""
        pods = registry.by_resource("", "v1", "pods")
        pvs = registry.by_resource("", "v1", "persistentvolumes")
        assert pods is not None and pvs is not None
        parts = {"pods", "persistentvolumes"}
        graph = self.graph

        def synced(part: str) -> Any:
            def done() -> None:
                self._synced_parts.add(part)
                if self._synced_parts >= parts and not self.synced.is_set():
                    self.synced.set()
                    log.info("node authorizer graph loaded: %d bound pods, %d bound persistent volumes",
                             len(graph.pods), len(graph.pv_claims))
            return done

        pod_key = self._parser(pods.key_prefix(None))
        pv_key = self._parser(pvs.key_prefix(None))

        def apply_pod(key: str, value: bytes | None) -> None:
            k = pod_key(key)
            if k is not None:
                graph.set_pod(k[0], k[1], orjson.loads(value) if value is not None else None)

        def apply_pv(key: str, value: bytes | None) -> None:
            k = pv_key(key)
            if k is not None:
                graph.set_pv(k[1], orjson.loads(value) if value is not None else None)

        def reset_pods() -> None:
            for ns, name in list(graph.pods):
                graph.set_pod(ns, name, None)

        def reset_pvs() -> None:
            for name in list(graph.pv_claims):
                graph.set_pv(name, None)

        await asyncio.gather(
            objects.mirror(pods.key_prefix(None), reset=reset_pods, apply=apply_pod, synced=synced("pods"),
                           what="node authorizer pods"),
            objects.mirror(pvs.key_prefix(None), reset=reset_pvs, apply=apply_pv, synced=synced("persistentvolumes"),
                           what="node authorizer persistent volumes"))

    async def start(self, cp: Any) -> asyncio.Task[None]:
        """Load the graph, then keep it current; returns the task (for the server to stop)."""
        task = asyncio.get_running_loop().create_task(self.run(cp.objects, cp.registry), name="node-authorizer")
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                await self.synced.wait()
        except TimeoutError:
            log.error("the node authorizer's graph did not load in %.0fs; nodes are refused what it "
                      "would allow until it does", SYNC_TIMEOUT)
        return task


def node_and_rbac() -> UnionAuthorizer:
    """kube-apiserver's ``--authorization-mode=Node,RBAC``, the authorizer ``k8py server`` runs
    (and tests that start a server as it does)."""
    return UnionAuthorizer(NodeAuthorizer(), RBACAuthorizer())
