"""The bootstrap RBAC policy kube-apiserver creates, reconciled on every server start.

The roles and bindings are kube's (``plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go``
and ``controller_policy.go``) for the parts k8py has, with their ``kubernetes.io/bootstrapping:
rbac-defaults`` label and ``rbac.authorization.kubernetes.io/autoupdate: "true"`` annotation.
:func:`reconcile` (kube's ``rbac/bootstrap-roles`` post-start hook) creates what is missing and,
unless an object says ``autoupdate: "false"``, adds missing rules, subjects, labels, annotations
and aggregation selectors to existing ones; nothing is ever removed. A binding whose roleRef
changed is deleted and made again (a roleRef cannot be updated).

Where k8py differs from kube-apiserver, and why:

- Nodes are served by the Node authorizer (:mod:`k8py.apiserver.rbac.node`), so the
  ``system:node`` binding has no subjects, as kube's; a data directory from before the Node
  authorizer had ``system:nodes`` bound there, and :func:`reconcile` removes that one subject
  (kube's reconciler removes nothing; this is k8py's own migration).
- Nodes may list and watch every Node (``k8py:node-network``, bound to ``system:nodes``): k8py's
  node agent routes to the other nodes' pod CIDRs itself (flannel's host-gw) with the node's own
  credentials, where kube's Node authorizer lets a kubelet read only its own Node and a CNI
  daemon reads the others with its own identity (k3s's ``system:k3s-controller``).
- kube-controller-manager runs each controller with its own service account
  (``--use-service-account-credentials``); k8py runs every controller under the one
  ``system:kube-controller-manager`` identity, so that user is also a subject of each
  ``system:controller:*`` binding of the controllers k8py runs.
- The bindings that kubeadm creates for joining nodes are created here (k8py joins nodes with
  bootstrap tokens itself): ``system:bootstrappers`` may create CSRs
  (``system:node-bootstrapper``) and read the cluster CA (``kube-public/kube-root-ca.crt``),
  and may have node client certificates approved; nodes may renew their own.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from k8py.api import errors

if TYPE_CHECKING:
    from k8py.api.registry import KindInfo, Registry
    from k8py.apiserver.objects import Objects
    from k8py.apiserver.rest import ResourceAPI

__all__ = ["cluster_role_bindings", "cluster_roles", "reconcile", "role_bindings", "roles"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

RBAC = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC}/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
CONTROLLER_PREFIX = "system:controller:"
KCM_USER = "system:kube-controller-manager"
NODE_NETWORK = "k8py:node-network"  # nodes read every Node, for the routes to their pod CIDRs
# subjects k8py once bound and no longer does: removed from the binding on reconcile
RETIRED_SUBJECTS = {("ClusterRoleBinding", "system:node"): ({"kind": "Group", "name": "system:nodes"},)}
DNS_USER = "system:k8py-dns"  # the cluster DNS (k8py.dns.cluster.USER)
CCM_USER = "system:cloud-controller-manager"  # k8py.cloud.controller.USER
INGRESS_USER = "system:k8py-ingress"  # the ingress controller (k8py.ingress.controller.USER)
NETPOL_USER = "system:k8py-network-policy"  # the NetworkPolicy agent (k8py.netpol.controller.USER)
LOCAL_PATH_USER = "system:k8py-local-path-provisioner"  # a node's provisioner (k8py.kubelet.localpath.USER)
METRICS_USER = "system:metrics-server"  # k8py.metricsserver.component.USER
METRICS_REGISTRATION = "k8py:metrics-server-registration"  # what it needs to register v1beta1.metrics.k8s.io

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE
READ_UPDATE = ("get", "list", "watch", "update", "patch")

CORE, APPS, AUTHN, AUTHZ, AUTOSCALING, BATCH = ("", "apps", "authentication.k8s.io", "authorization.k8s.io",
                                                 "autoscaling", "batch")
CERTS, COORD, DISCOVERY, EXT, POLICY, STORAGE = ("certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
                                                  "extensions", "policy", "storage.k8s.io")
NETWORKING, EVENTS, NODE, APIREG = "networking.k8s.io", "events.k8s.io", "node.k8s.io", "apiregistration.k8s.io"

KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
LEGACY_SIGNER = "kubernetes.io/legacy-unknown"


def r(verbs: tuple[str, ...] | str, groups: tuple[str, ...] | str, resources: tuple[str, ...] | str,
      names: tuple[str, ...] = ()) -> Obj:
    """A resource PolicyRule (kube's ``NewRule(verbs...).Groups(...).Resources(...).Names(...)``)."""
    def t(v: tuple[str, ...] | str) -> list[str]:
        return [v] if isinstance(v, str) else list(v)
    out: Obj = {"verbs": t(verbs), "apiGroups": t(groups), "resources": t(resources)}
    if names:
        out["resourceNames"] = list(names)
    return out


def urls(verbs: tuple[str, ...] | str, *paths: str) -> Obj:
    return {"verbs": [verbs] if isinstance(verbs, str) else list(verbs), "nonResourceURLs": list(paths)}


def events_rule() -> Obj:
    return r(("create", "update", "patch"), (CORE, EVENTS), "events")


def _meta(name: str, labels: dict[str, str] | None = None, namespace: str = "") -> Obj:
    m: Obj = {"name": name, "labels": {**LABELS, **(labels or {})}, "annotations": {AUTOUPDATE: "true"}}
    if namespace:
        m["namespace"] = namespace
    return m


def cluster_role(name: str, rules: list[Obj], labels: dict[str, str] | None = None,
                 aggregate_from: str | None = None) -> Obj:
    out: Obj = {"apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": _meta(name, labels), "rules": rules}
    if aggregate_from is not None:
        out["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {f"{RBAC}/aggregate-to-{aggregate_from}": "true"}}]}
    return out


def subject(kind: str, name: str, namespace: str = "") -> Obj:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace}
    return {"kind": kind, "apiGroup": RBAC, "name": name}


def cluster_binding(name: str, role: str, subjects: list[Obj]) -> Obj:
    out: Obj = {"apiVersion": RBAC_V1, "kind": "ClusterRoleBinding", "metadata": _meta(name),
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}}
    if subjects:  # omitempty, as kube writes a binding without subjects
        out["subjects"] = subjects
    return out


def node_rules() -> list[Obj]:
    """kube's ``NodeRules`` (without the feature-gated DRA and CSI parts k8py does not serve)."""
    return [
        r("create", AUTHN, "tokenreviews"),
        r("create", AUTHZ, ("subjectaccessreviews", "localsubjectaccessreviews")),
        r(READ, CORE, "services"),
        r(("create", "get", "list", "watch"), CORE, "nodes"),
        r(("update", "patch"), CORE, "nodes/status"),
        r(("update", "patch"), CORE, "nodes"),
        r(("create", "update", "patch"), CORE, "events"),
        r(READ, CORE, "pods"),
        r(("create", "delete"), CORE, "pods"),
        r(("update", "patch"), CORE, "pods/status"),
        r("create", CORE, "pods/eviction"),
        r(READ, CORE, ("secrets", "configmaps")),
        r("get", CORE, ("persistentvolumeclaims", "persistentvolumes")),
        r("get", CORE, "endpoints"),
        r(("create", "get", "list", "watch"), CERTS, "certificatesigningrequests"),
        r(("get", "create", "update", "patch", "delete"), COORD, "leases"),
        r("get", STORAGE, "volumeattachments"),
        r(("get", "update", "patch"), CORE, "persistentvolumeclaims/status"),
        r("create", CORE, "serviceaccounts/token"),
        r(("get", "watch", "list"), STORAGE, "csidrivers"),
        r(("get", "create", "update", "patch", "delete"), STORAGE, "csinodes"),
        r(READ, NODE, "runtimeclasses"),
    ]


def cluster_roles() -> list[Obj]:
    """kube's ``ClusterRoles()`` for what k8py serves, then the controller roles."""
    agg = f"{RBAC}/aggregate-to-"
    return [
        cluster_role("cluster-admin", [r("*", "*", "*"), urls("*", "*")]),
        cluster_role("system:discovery", [urls("get", "/livez", "/readyz", "/healthz", "/version", "/version/",
                                               "/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*")]),
        cluster_role("system:monitoring", [urls("get", "/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz",
                                                "/livez/*", "/readyz/*", "/healthz/*")]),
        cluster_role("system:basic-user", [
            r("create", AUTHZ, ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            r("create", AUTHN, "selfsubjectreviews")]),
        cluster_role("system:public-info-viewer", [urls("get", "/livez", "/readyz", "/healthz", "/version",
                                                        "/version/")]),
        # what extension API servers (metrics-server ...) are bound to, to delegate authn and authz
        cluster_role("system:auth-delegator", [r("create", AUTHN, "tokenreviews"),
                                               r("create", AUTHZ, "subjectaccessreviews")]),
        cluster_role("admin", [], aggregate_from="admin"),
        cluster_role("edit", [], labels={agg + "admin": "true"}, aggregate_from="edit"),
        cluster_role("view", [], labels={agg + "edit": "true"}, aggregate_from="view"),
        cluster_role("system:aggregate-to-admin", [
            r("create", AUTHZ, "localsubjectaccessreviews"),
            r(READ_WRITE, RBAC, ("roles", "rolebindings")),
        ], labels={agg + "admin": "true"}),
        cluster_role("system:aggregate-to-edit", [
            r(READ, CORE, ("pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy")),
            r("impersonate", CORE, "serviceaccounts"),
            r(WRITE, CORE, ("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward")),
            r("create", CORE, ("pods/eviction",)),
            r(WRITE, CORE, ("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                            "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events")),
            r("create", CORE, "serviceaccounts/token"),
            r(WRITE, APPS, ("statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
                            "deployments/rollback", "replicasets", "replicasets/scale")),
            r(WRITE, AUTOSCALING, "horizontalpodautoscalers"),
            r(WRITE, BATCH, ("jobs", "cronjobs")),
            r(WRITE, EXT, ("daemonsets", "deployments", "deployments/scale", "deployments/rollback", "ingresses",
                           "replicasets", "replicasets/scale", "replicationcontrollers/scale", "networkpolicies")),
            r(WRITE, POLICY, "poddisruptionbudgets"),
            r(WRITE, NETWORKING, ("networkpolicies", "ingresses")),
        ], labels={agg + "edit": "true"}),
        cluster_role("system:aggregate-to-view", [
            r(READ, CORE, ("pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                           "services", "services/status", "endpoints", "persistentvolumeclaims",
                           "persistentvolumeclaims/status", "configmaps")),
            r(READ, CORE, ("limitranges", "resourcequotas", "bindings", "events", "pods/status",
                           "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log")),
            r(READ, CORE, "namespaces"),
            r(READ, DISCOVERY, "endpointslices"),
            r(READ, APPS, ("controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
                           "daemonsets", "daemonsets/status", "deployments", "deployments/status", "deployments/scale",
                           "replicasets", "replicasets/status", "replicasets/scale")),
            r(READ, AUTOSCALING, ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
            r(READ, BATCH, ("jobs", "cronjobs", "cronjobs/status", "jobs/status")),
            r(READ, EXT, ("daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
                          "ingresses", "ingresses/status", "replicasets", "replicasets/scale", "replicasets/status",
                          "replicationcontrollers/scale", "networkpolicies")),
            r(READ, POLICY, ("poddisruptionbudgets", "poddisruptionbudgets/status")),
            r(READ, NETWORKING, ("networkpolicies", "ingresses", "ingresses/status")),
        ], labels={agg + "view": "true"}),
        cluster_role("system:node", node_rules()),
        cluster_role("system:node-proxier", [
            r(("list", "watch"), CORE, ("services", "endpoints")),
            r(READ, CORE, "nodes"),
            events_rule(),
            r(("list", "watch"), DISCOVERY, "endpointslices"),
        ]),
        cluster_role("system:kubelet-api-admin", [
            r(READ, CORE, "nodes"),
            r("proxy", CORE, "nodes"),
            r("*", CORE, ("nodes/proxy", "nodes/metrics", "nodes/spec", "nodes/stats", "nodes/log")),
        ]),
        cluster_role(NODE_NETWORK, [r(("list", "watch"), CORE, "nodes")]),  # a get of another is kube's 403
        cluster_role("system:node-bootstrapper", [
            r(("create", "get", "list", "watch"), CERTS, "certificatesigningrequests")]),
        cluster_role("system:kube-controller-manager", [
            events_rule(),
            r("create", COORD, "leases"),
            r(("get", "update"), COORD, "leases", ("kube-controller-manager",)),
            r("create", CORE, ("secrets", "serviceaccounts")),
            r("delete", CORE, "secrets"),
            r("get", CORE, ("namespaces", "secrets", "serviceaccounts", "configmaps")),
            r("update", CORE, ("secrets", "serviceaccounts")),
            r("create", AUTHN, "tokenreviews"),
            r("create", AUTHZ, "subjectaccessreviews"),
            r(("list", "watch"), "*", "*"),
            r("create", CORE, "serviceaccounts/token"),
        ]),
        # the cluster DNS (k8py.dns), as CoreDNS's system:coredns: what it answers from
        # the cloud controller's service controller (k8py.cloud): LoadBalancer addresses
        cluster_role(CCM_USER, [
            events_rule(),
            r(("get", "list", "watch", "update", "patch"), CORE, "services"),
            r(("update", "patch"), CORE, "services/status"),
            r(("list", "watch"), CORE, "nodes"),
        ]),
        # the NetworkPolicy agent (k8py.netpol), as Calico's calico-node: what policies select
        cluster_role(NETPOL_USER, [
            r(("list", "watch"), CORE, ("pods", "namespaces")),
            r(("list", "watch"), NETWORKING, "networkpolicies"),
        ]),
        # a node's local-path provisioner (k8py.kubelet.localpath), as rancher's: claims it provisions
        # for, the volumes it makes and removes, its StorageClass made on first start, its events
        cluster_role(LOCAL_PATH_USER, [
            r(READ, CORE, "persistentvolumeclaims"),
            r(READ + ("create", "delete"), CORE, "persistentvolumes"),
            r(READ + ("create",), STORAGE, "storageclasses"),
            events_rule(),
        ]),
        cluster_role(DNS_USER, [
            r(("list", "watch"), CORE, ("namespaces", "services")),
            r(("list", "watch"), DISCOVERY, "endpointslices"),
        ]),
        # metrics-server, as its manifest (k3s's metrics-server add-on): who may read metrics.k8s.io
        # (aggregated into view, edit and admin), and what it reads itself
        cluster_role("system:aggregated-metrics-reader", [r(READ, "metrics.k8s.io", ("pods", "nodes"))],
                     labels={f"{RBAC}/aggregate-to-{x}": "true" for x in ("view", "edit", "admin")}),
        cluster_role(METRICS_USER, [r("get", CORE, "nodes/metrics"), r(READ, CORE, ("pods", "nodes"))]),
        # k8py's metrics-server registers its APIService itself (k3s deploys it with the manifest)
        cluster_role(METRICS_REGISTRATION, [r("create", APIREG, "apiservices"),
                                            r(("get", "update"), APIREG, "apiservices", ("v1beta1.metrics.k8s.io",))]),
        # the ingress controller (k8py.ingress), as ingress-nginx's ClusterRole: what it serves from,
        # its Ingresses' status, its events, and its IngressClass made on first start
        cluster_role(INGRESS_USER, [
            r(("list", "watch"), CORE, ("services", "secrets")),
            r(("list", "watch"), DISCOVERY, "endpointslices"),
            r(READ, NETWORKING, ("ingresses", "ingressclasses")),
            r(("patch", "update"), NETWORKING, "ingresses/status"),
            r("create", NETWORKING, "ingressclasses"),
            events_rule(),
            # the Lease whose holder alone writes status (k8py.ingress.controller.STATUS_LEASE)
            r("create", COORD, "leases"),
            r(("get", "update"), COORD, "leases", ("k8py-ingress-status",)),
        ]),
        cluster_role("system:kube-scheduler", [
            events_rule(),
            r("create", COORD, "leases"),
            r(("get", "update"), COORD, "leases", ("kube-scheduler",)),
            r(READ, CORE, "nodes"),
            r(("get", "list", "watch", "delete"), CORE, "pods"),
            r("create", CORE, ("pods/binding", "bindings")),
            r(("patch", "update"), CORE, "pods/status"),
            r(READ, CORE, ("services", "replicationcontrollers")),
            r(READ, (APPS, EXT), "replicasets"),
            r(READ, APPS, "statefulsets"),
            r(READ, POLICY, "poddisruptionbudgets"),
            r(READ, CORE, ("persistentvolumeclaims", "persistentvolumes")),
            r("create", AUTHN, "tokenreviews"),
            r("create", AUTHZ, "subjectaccessreviews"),
            r(READ, STORAGE, "csinodes"),
            r(READ, CORE, "namespaces"),
            r(READ, STORAGE, "csidrivers"),
            r(READ, STORAGE, "csistoragecapacities"),
        ]),
        cluster_role("system:volume-scheduler", [
            r(READ_UPDATE, CORE, "persistentvolumes"),
            r(READ, STORAGE, "storageclasses"),
            r(READ_UPDATE, CORE, "persistentvolumeclaims"),
        ]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient", [
            r("create", CERTS, "certificatesigningrequests/nodeclient")]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [
            r("create", CERTS, "certificatesigningrequests/selfnodeclient")]),
        cluster_role("system:certificates.k8s.io:legacy-unknown-approver", [
            r("approve", CERTS, "signers", (LEGACY_SIGNER,))]),
        cluster_role("system:certificates.k8s.io:kubelet-serving-approver", [
            r("approve", CERTS, "signers", (SERVING_SIGNER,))]),
        cluster_role("system:certificates.k8s.io:kube-apiserver-client-approver", [
            r("approve", CERTS, "signers", (CLIENT_SIGNER,))]),
        cluster_role("system:certificates.k8s.io:kube-apiserver-client-kubelet-approver", [
            r("approve", CERTS, "signers", (KUBELET_CLIENT_SIGNER,))]),
        cluster_role("system:service-account-issuer-discovery", [
            urls("get", "/.well-known/openid-configuration", "/.well-known/openid-configuration/",
                 "/openid/v1/jwks", "/openid/v1/jwks/")]),
        *(cluster_role(CONTROLLER_PREFIX + name, rules) for name, rules in controller_roles().items()),
    ]


def controller_roles() -> dict[str, list[Obj]]:
    """kube's controller roles (``controller_policy.go``) for the controllers k8py runs, by
    service account name; ``apiservice-availability-controller`` is k8py's own (kube runs that
    controller inside kube-aggregator, as the API server)."""
    return {
        "clusterrole-aggregation-controller": [
            r(("escalate", "get", "list", "watch", "update", "patch"), RBAC, "clusterroles")],
        "cronjob-controller": [
            r(("get", "list", "watch", "update"), BATCH, "cronjobs"),
            r(("get", "list", "watch", "create", "update", "delete", "patch"), BATCH, "jobs"),
            r("update", BATCH, "cronjobs/status"),
            r("update", BATCH, "cronjobs/finalizers"),
            r(("list", "watch", "delete"), CORE, "pods"),
            events_rule()],
        "daemon-set-controller": [
            r(READ, (EXT, APPS), "daemonsets"),
            r("update", (EXT, APPS), "daemonsets/status"),
            r("update", (EXT, APPS), "daemonsets/finalizers"),
            r(("list", "watch"), CORE, "nodes"),
            r(("list", "watch", "create", "delete", "patch"), CORE, "pods"),
            r("create", CORE, "pods/binding"),
            r(("get", "list", "watch", "create", "delete", "update", "patch"), APPS, "controllerrevisions"),
            events_rule()],
        "deployment-controller": [
            r(("get", "list", "watch", "update"), (EXT, APPS), "deployments"),
            r("update", (EXT, APPS), "deployments/status"),
            r("update", (EXT, APPS), "deployments/finalizers"),
            r(("get", "list", "watch", "create", "update", "patch", "delete"), (APPS, EXT), "replicasets"),
            r(("get", "list", "watch", "update"), CORE, "pods"),
            events_rule()],
        "disruption-controller": [
            r(READ, (EXT, APPS), "deployments"),
            r(READ, (APPS, EXT), "replicasets"),
            r(READ, CORE, "replicationcontrollers"),
            r(READ, POLICY, "poddisruptionbudgets"),
            r(READ, APPS, "statefulsets"),
            r("update", POLICY, "poddisruptionbudgets/status"),
            r(("patch", "update"), CORE, "pods/status"),
            r("get", "*", "*/scale"),
            events_rule()],
        "endpoint-controller": [
            r(READ, CORE, ("services", "pods")),
            r(("get", "list", "watch", "create", "update", "delete"), CORE, "endpoints"),
            r("create", CORE, "endpoints/restricted"),
            events_rule()],
        "endpointslice-controller": [
            r(READ, CORE, ("services", "pods", "nodes")),
            r("update", CORE, "services/finalizers"),
            r(("get", "list", "watch", "create", "update", "delete"), DISCOVERY, "endpointslices"),
            events_rule()],
        "generic-garbage-collector": [
            r(("get", "list", "watch", "patch", "update", "delete"), "*", "*"),
            events_rule()],
        "job-controller": [
            r(("get", "list", "watch", "update", "patch"), BATCH, "jobs"),
            r("update", BATCH, "jobs/status"),
            r("update", BATCH, "jobs/finalizers"),
            r(("list", "watch", "create", "delete", "patch"), CORE, "pods"),
            events_rule()],
        "namespace-controller": [
            r(("get", "list", "watch", "delete"), CORE, "namespaces"),
            r("update", CORE, ("namespaces/finalize", "namespaces/status")),
            r(("get", "list", "watch", "delete", "deletecollection"), "*", "*")],
        "node-controller": [
            r(("get", "list", "watch", "update", "delete", "patch"), CORE, "nodes"),
            r(("patch", "update"), CORE, "nodes/status"),
            r(("patch", "update"), CORE, "pods/status"),
            r(("list", "watch", "get", "delete"), CORE, "pods"),
            events_rule()],
        "persistent-volume-binder": [
            r(("get", "list", "watch", "update", "create", "delete"), CORE, "persistentvolumes"),
            r("update", CORE, "persistentvolumes/status"),
            r(("get", "list", "watch", "update"), CORE, "persistentvolumeclaims"),
            r("update", CORE, "persistentvolumeclaims/status"),
            r(("list", "watch", "get", "create", "delete"), CORE, "pods"),
            r(READ, STORAGE, "storageclasses"),
            r(("get", "list"), CORE, "nodes"),
            events_rule()],
        "pvc-protection-controller": [
            r(("get", "list", "watch", "update"), CORE, "persistentvolumeclaims"),
            r(("list", "watch", "get"), CORE, "pods"),
            events_rule()],
        "pv-protection-controller": [
            r(("get", "list", "watch", "update"), CORE, "persistentvolumes"),
            events_rule()],
        "ephemeral-volume-controller": [
            r(READ, CORE, "pods"),
            r("update", CORE, "pods/finalizers"),
            r(("get", "list", "watch", "create"), CORE, "persistentvolumeclaims"),
            events_rule()],
        "pod-garbage-collector": [
            r(("list", "watch", "delete"), CORE, "pods"),
            r(READ, CORE, "nodes"),
            r("patch", CORE, "pods/status")],
        "replicaset-controller": [
            r(("get", "list", "watch", "update"), (APPS, EXT), "replicasets"),
            r("update", (APPS, EXT), "replicasets/status"),
            r("update", (APPS, EXT), "replicasets/finalizers"),
            r(("list", "watch", "patch", "create", "delete"), CORE, "pods"),
            events_rule()],
        "replication-controller": [
            r(("get", "list", "watch", "update"), CORE, "replicationcontrollers"),
            r("update", CORE, "replicationcontrollers/status"),
            r("update", CORE, "replicationcontrollers/finalizers"),
            r(("list", "watch", "patch", "create", "delete"), CORE, "pods"),
            events_rule()],
        "resourcequota-controller": [
            # quota can count anything (count/<resource>.<group>): it reads everything
            r(("list", "watch"), "*", "*"),
            r("update", CORE, "resourcequotas/status"),
            events_rule()],
        "root-ca-cert-publisher": [
            r(("create", "update"), CORE, "configmaps"),
            events_rule()],
        "service-account-controller": [
            r("create", CORE, "serviceaccounts"),
            events_rule()],
        "statefulset-controller": [
            r(("list", "watch"), CORE, "pods"),
            r(READ, APPS, "statefulsets"),
            r("update", APPS, "statefulsets/status"),
            r("update", APPS, "statefulsets/finalizers"),
            r(("get", "create", "delete", "update", "patch"), CORE, "pods"),
            r(("get", "create", "delete", "update", "patch", "list", "watch"), APPS, "controllerrevisions"),
            r(("get", "create", "list", "watch"), CORE, "persistentvolumeclaims"),
            r(("update", "delete"), CORE, "persistentvolumeclaims"),
            r("update", CORE, "pods/finalizers"),
            events_rule()],
        "horizontal-pod-autoscaler": [
            r(("get", "list", "watch"), AUTOSCALING, "horizontalpodautoscalers"),
            r("update", AUTOSCALING, "horizontalpodautoscalers/status"),
            r(("get", "update"), "*", "*/scale"),
            r(("list", "watch"), CORE, "pods"),
            r("list", "metrics.k8s.io", "pods"),
            r(("get", "list"), "custom.metrics.k8s.io", "*"),
            r(("get", "list"), "external.metrics.k8s.io", "*"),
            events_rule()],
        "ttl-after-finished-controller": [
            r(("get", "list", "watch", "delete"), BATCH, "jobs"),
            events_rule()],
        "certificate-controller": [
            r(("get", "list", "watch", "delete"), CERTS, "certificatesigningrequests"),
            r("update", CERTS, ("certificatesigningrequests/status", "certificatesigningrequests/approval")),
            # k8py's approver approves kubelet serving certificates too (as k3s): CertificateApproval asks
            # ... and a node's service-proxy certificate (kubelet/bootstrap.proxy_certificate)
            r("approve", CERTS, "signers", (KUBELET_CLIENT_SIGNER, SERVING_SIGNER, CLIENT_SIGNER)),
            r("sign", CERTS, "signers", (LEGACY_SIGNER, CLIENT_SIGNER, KUBELET_CLIENT_SIGNER, SERVING_SIGNER)),
            r("create", AUTHZ, "subjectaccessreviews"),
            events_rule()],
        "validatingadmissionpolicy-status-controller": [
            r(READ, "admissionregistration.k8s.io", "validatingadmissionpolicies"),
            r(("get", "patch", "update"), "admissionregistration.k8s.io", "validatingadmissionpolicies/status"),
            events_rule()],
        "apiservice-availability-controller": [
            r(READ, APIREG, "apiservices"),
            r(("update", "patch"), APIREG, "apiservices/status"),
            r(READ, CORE, ("services", "endpoints")),
            r(READ, DISCOVERY, "endpointslices")],
    }


def cluster_role_bindings() -> list[Obj]:
    authenticated = subject("Group", "system:authenticated")
    out = [
        cluster_binding("cluster-admin", "cluster-admin", [subject("Group", "system:masters")]),
        cluster_binding("system:monitoring", "system:monitoring", [subject("Group", "system:monitoring")]),
        cluster_binding("system:discovery", "system:discovery", [authenticated]),
        cluster_binding("system:basic-user", "system:basic-user", [authenticated]),
        cluster_binding("system:public-info-viewer", "system:public-info-viewer",
                        [authenticated, subject("Group", "system:unauthenticated")]),
        cluster_binding("system:node-proxier", "system:node-proxier", [subject("User", "system:kube-proxy")]),
        cluster_binding("system:kube-controller-manager", "system:kube-controller-manager",
                        [subject("User", KCM_USER)]),
        cluster_binding("system:kube-scheduler", "system:kube-scheduler", [subject("User", "system:kube-scheduler")]),
        cluster_binding(DNS_USER, DNS_USER, [subject("User", DNS_USER)]),
        cluster_binding(CCM_USER, CCM_USER, [subject("User", CCM_USER)]),
        cluster_binding(INGRESS_USER, INGRESS_USER, [subject("User", INGRESS_USER)]),
        cluster_binding(NETPOL_USER, NETPOL_USER, [subject("User", NETPOL_USER)]),
        cluster_binding(LOCAL_PATH_USER, LOCAL_PATH_USER, [subject("User", LOCAL_PATH_USER)]),
        cluster_binding(METRICS_USER, METRICS_USER, [subject("User", METRICS_USER)]),
        cluster_binding("metrics-server:system:auth-delegator", "system:auth-delegator",
                        [subject("User", METRICS_USER)]),
        cluster_binding(METRICS_REGISTRATION, METRICS_REGISTRATION, [subject("User", METRICS_USER)]),
        cluster_binding("system:volume-scheduler", "system:volume-scheduler",
                        [subject("User", "system:kube-scheduler")]),
        # kept with no subjects, as kube's: the Node authorizer serves nodes
        cluster_binding("system:node", "system:node", []),
        cluster_binding(NODE_NETWORK, NODE_NETWORK, [subject("Group", "system:nodes")]),
        cluster_binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                        [subject("Group", "system:serviceaccounts")]),
        # what kubeadm binds for joining nodes (k8py joins nodes itself)
        cluster_binding("k8py:kubelet-bootstrap", "system:node-bootstrapper",
                        [subject("Group", "system:bootstrappers")]),
        cluster_binding("k8py:node-autoapprove-bootstrap",
                        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                        [subject("Group", "system:bootstrappers")]),
        cluster_binding("k8py:node-autoapprove-certificate-rotation",
                        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                        [subject("Group", "system:nodes")]),
    ]
    for name in controller_roles():
        # kube binds each controller role to its service account; k8py's controllers all run
        # as the controller manager's own user, which is bound too
        out.append(cluster_binding(CONTROLLER_PREFIX + name, CONTROLLER_PREFIX + name, [
            subject("ServiceAccount", name, "kube-system"), subject("User", KCM_USER)]))
    return out


def roles() -> list[Obj]:
    """Namespaced roles: kube's leader-election role for the controller manager and scheduler,
    and read access to the cluster CA for joining nodes (kubeadm's cluster-info reader)."""
    return [
        {"apiVersion": RBAC_V1, "kind": "Role",
         "metadata": _meta("system::leader-locking-kube-controller-manager", namespace="kube-system"),
         "rules": [r("watch", CORE, "configmaps"),
                   r(("get", "update"), CORE, "configmaps", ("kube-controller-manager",))]},
        {"apiVersion": RBAC_V1, "kind": "Role",
         "metadata": _meta("system::leader-locking-kube-scheduler", namespace="kube-system"),
         "rules": [r("watch", CORE, "configmaps"), r(("get", "update"), CORE, "configmaps", ("kube-scheduler",))]},
        # the cluster DNS publishes its Service (kube-dns) and the EndpointSlice naming where it listens
        {"apiVersion": RBAC_V1, "kind": "Role", "metadata": _meta(DNS_USER, namespace="kube-system"),
         "rules": [r("create", CORE, "services"), r(("get", "update"), CORE, "services", ("kube-dns",)),
                   r("create", DISCOVERY, "endpointslices"),
                   r(("get", "update"), DISCOVERY, "endpointslices", ("kube-dns-k8py",))]},
        # the NetworkPolicy agent reads where the cluster DNS answers (its stand-in for CoreDNS's pods)
        {"apiVersion": RBAC_V1, "kind": "Role", "metadata": _meta(NETPOL_USER, namespace="kube-system"),
         "rules": [r(("list", "watch"), DISCOVERY, "endpointslices")]},
        # metrics-server publishes its Service and the EndpointSlice naming where it listens
        {"apiVersion": RBAC_V1, "kind": "Role", "metadata": _meta(METRICS_REGISTRATION, namespace="kube-system"),
         "rules": [r("create", CORE, "services"), r(("get", "update"), CORE, "services", ("metrics-server",)),
                   r("create", DISCOVERY, "endpointslices"),
                   r(("get", "update"), DISCOVERY, "endpointslices", ("metrics-server-k8py",)),
                   # the Lease whose holder alone registers (k8py.metricsserver.component.LEASE_NAME)
                   r("create", COORD, "leases"),
                   r(("get", "update"), COORD, "leases", ("metrics-server-k8py",))]},
        # extension API servers read how to trust callers and the aggregation layer's front proxy
        {"apiVersion": RBAC_V1, "kind": "Role",
         "metadata": _meta("extension-apiserver-authentication-reader", namespace="kube-system"),
         "rules": [r(READ, CORE, "configmaps", ("extension-apiserver-authentication",))]},
        {"apiVersion": RBAC_V1, "kind": "Role", "metadata": _meta("k8py:bootstrap-signer-clusterinfo",
                                                                  namespace="kube-public"),
         "rules": [r("get", CORE, "configmaps", ("kube-root-ca.crt",))]},
    ]


def role_bindings() -> list[Obj]:
    def rb(name: str, ns: str, role: str, subjects: list[Obj]) -> Obj:
        return {"apiVersion": RBAC_V1, "kind": "RoleBinding", "metadata": _meta(name, namespace=ns),
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role}, "subjects": subjects}
    return [
        rb("system::leader-locking-kube-controller-manager", "kube-system",
           "system::leader-locking-kube-controller-manager",
           [subject("User", KCM_USER), subject("ServiceAccount", "kube-controller-manager", "kube-system")]),
        rb("system::leader-locking-kube-scheduler", "kube-system", "system::leader-locking-kube-scheduler",
           [subject("User", "system:kube-scheduler"), subject("ServiceAccount", "kube-scheduler", "kube-system")]),
        rb(DNS_USER, "kube-system", DNS_USER, [subject("User", DNS_USER)]),
        rb(NETPOL_USER, "kube-system", NETPOL_USER, [subject("User", NETPOL_USER)]),
        rb(METRICS_REGISTRATION, "kube-system", METRICS_REGISTRATION, [subject("User", METRICS_USER)]),
        rb("metrics-server-auth-reader", "kube-system", "extension-apiserver-authentication-reader",
           [subject("User", METRICS_USER)]),
        rb("k8py:bootstrap-signer-clusterinfo", "kube-public", "k8py:bootstrap-signer-clusterinfo",
           [subject("Group", "system:bootstrappers")]),
    ]


# --------------------------------------------------------------------------- reconcile


def _merge_map(have: Any, want: dict[str, str]) -> dict[str, str]:
    out = dict(have) if isinstance(have, dict) else {}
    for k, v in want.items():
        out.setdefault(k, v)
    return out


def reconciled(existing: Obj, expected: Obj) -> Obj | None:
    """kube's ``computeReconciledRole`` / ``computeReconciledRoleBinding`` without removal: the
    existing object with what ``expected`` adds, or None when nothing is missing."""
    from k8py.apiserver.rbac.rules import covers, rule_from, rule_to_dict

    new = copy.deepcopy(existing)
    meta = new.setdefault("metadata", {})
    meta["labels"] = _merge_map(meta.get("labels"), expected["metadata"].get("labels") or {})
    meta["annotations"] = _merge_map(meta.get("annotations"), expected["metadata"].get("annotations") or {})
    if expected["kind"] in ("Role", "ClusterRole"):
        _, missing = covers([rule_from(x) for x in new.get("rules") or []],
                            [rule_from(x) for x in expected.get("rules") or []])
        if missing:
            new["rules"] = [*(new.get("rules") or []), *(rule_to_dict(m) for m in missing)]
        want_agg = expected.get("aggregationRule")
        if want_agg:
            have = new.get("aggregationRule") or {}
            sels = list(have.get("clusterRoleSelectors") or [])
            for s in want_agg["clusterRoleSelectors"]:
                if s not in sels:
                    sels.append(s)
            new["aggregationRule"] = {**have, "clusterRoleSelectors": sels}
    else:
        subjects = list(new.get("subjects") or [])
        for s in expected.get("subjects") or []:
            if not any(x.get("kind") == s["kind"] and x.get("name") == s["name"]
                       and (x.get("namespace") or "") == (s.get("namespace") or "") for x in subjects):
                subjects.append(s)
        if subjects != list(new.get("subjects") or []):
            new["subjects"] = subjects
    return None if new == existing else new


def without_subjects(binding: Obj, retired: tuple[Obj, ...]) -> Obj:
    """The binding without the retired subjects (:data:`RETIRED_SUBJECTS`)."""
    if not retired:
        return binding
    keep = [s for s in binding.get("subjects") or []
            if not any(s.get("kind") == x["kind"] and s.get("name") == x["name"] for x in retired)]
    if len(keep) == len(binding.get("subjects") or []):
        return binding
    out = {k: v for k, v in binding.items() if k != "subjects"}
    if keep:
        out["subjects"] = keep
    return out


async def reconcile(api: ResourceAPI, objects: Objects, registry: Registry) -> None:
    """Create the bootstrap policy's missing objects and complete existing ones (see the module)."""
    kinds: dict[str, KindInfo] = {}
    for kind_name, resource in (("ClusterRole", "clusterroles"), ("ClusterRoleBinding", "clusterrolebindings"),
                                ("Role", "roles"), ("RoleBinding", "rolebindings")):
        k = registry.by_resource(RBAC, "v1", resource)
        assert k is not None
        kinds[kind_name] = k
    created = updated = 0
    for obj in [*cluster_roles(), *cluster_role_bindings(), *roles(), *role_bindings()]:
        kind = kinds[obj["kind"]]
        ns = obj["metadata"].get("namespace") if kind.namespaced else None
        name = obj["metadata"]["name"]
        current = await objects.try_get(kind, ns, name)
        if current is not None and (current.get("metadata", {}).get("annotations") or {}).get(AUTOUPDATE) == "false":
            continue
        if current is not None and "roleRef" in obj and current.get("roleRef") != obj["roleRef"]:
            # a roleRef cannot change: kube's reconciler deletes the binding and makes it again
            log.warning("RBAC bootstrap: %s %s refers to %s; recreating it to refer to %s", obj["kind"], name,
                        current.get("roleRef"), obj["roleRef"])
            await objects.delete(kind, ns, name, None)
            current = None
        if current is None:
            try:
                await api.create_object(None, kind, ns, copy.deepcopy(obj), False, "kube-apiserver")  # type: ignore[arg-type]
                created += 1
            except errors.StatusError as e:
                if e.code != 409:
                    raise
            continue

        retired = RETIRED_SUBJECTS.get((obj["kind"], name), ())

        async def try_update(cur: Obj, expected: Obj = obj, retired: tuple[Obj, ...] = retired) -> Obj | None:
            base = without_subjects(cur, retired)
            new = reconciled(base, expected)
            if new is not None:
                return new
            return base if base is not cur else None


        before = current["metadata"].get("resourceVersion")
        _, after = await objects.guaranteed_update(kind, ns, name, try_update)
        if after["metadata"].get("resourceVersion") != before:
            updated += 1
    log.info("RBAC bootstrap policy reconciled: %d created, %d updated", created, updated)
