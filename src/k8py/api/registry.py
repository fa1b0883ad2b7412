"""The registry of kinds the API server serves.

One :class:`KindInfo` per (group, version, kind). Kinds that Kubernetes stores
once and serves in several versions (``events`` in core/v1 and
events.k8s.io/v1, HorizontalPodAutoscaler in autoscaling/v1 and v2) share a
``storage_key`` prefix; conversion between their versions lives in
``k8py.api.conversion``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list", "watch")


@dataclass(frozen=True, slots=True)
class KindInfo:
    group: str  # "" for core
    version: str
    kind: str
    resource: str  # plural, lower case
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()  # e.g. ("status", "scale")
    # The resource name under which objects are stored; kinds served in two
    # versions share it. Defaults to "<group>/<resource>".
    storage: str = ""
    # Version objects are stored in (the "storage version"); others are converted.
    storage_version: str = ""
    list_kind: str = field(default="")
    # a custom resource served for a CustomResourceDefinition (api/crd.py): its versions differ
    # only in apiVersion (conversion strategy None)
    custom: bool = False
    # a custom resource whose CRD converts with a webhook (``spec.conversion.strategy: Webhook``):
    # its ``spec.conversion.webhook`` as canonical JSON (k8py.apiserver.conversionwebhook calls it)
    conversion_webhook: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def storage_name(self) -> str:
        return self.storage or f"{self.group or 'core'}/{self.resource}"

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"

    def key_prefix(self, namespace: str | None = None) -> str:
        """Store key prefix for all objects of this kind (in ``namespace`` if given).

        Keys look like etcd's under kube-apiserver: ``/registry/<storage>/<ns>/<name>``
        for namespaced kinds and ``/registry/<storage>/<name>`` for cluster kinds.
        The trailing slash keeps ``pods`` from matching ``podtemplates``.
        """
        base = f"/registry/{self.storage_name}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.storage_name}/{namespace}/{name}"
        return f"/registry/{self.storage_name}/{name}"


def _k(
    group: str,
    version: str,
    kind: str,
    resource: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
    sub: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    storage: str = "",
    storage_version: str = "",
) -> KindInfo:
    return KindInfo(
        group=group,
        version=version,
        kind=kind,
        resource=resource,
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=short,
        categories=cats,
        verbs=verbs,
        subresources=sub,
        storage=storage,
        storage_version=storage_version or version,
    )


ALL = ("all",)
ST = ("status",)
SC = ("status", "scale")

BUILTIN_KINDS: tuple[KindInfo, ...] = (
    # core/v1
    _k("", "v1", "Namespace", "namespaces", False, ("ns",), sub=("status", "finalize"),
       verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _k("", "v1", "Pod", "pods", short=("po",), cats=ALL,
       sub=("status", "binding", "eviction", "log", "exec", "attach", "portforward", "ephemeralcontainers",
            "resize", "proxy")),
    _k("", "v1", "Service", "services", short=("svc",), cats=ALL, sub=("status", "proxy"),
       verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
    _k("", "v1", "Endpoints", "endpoints", short=("ep",)),
    _k("", "v1", "ConfigMap", "configmaps", short=("cm",)),
    _k("", "v1", "Secret", "secrets"),
    _k("", "v1", "ServiceAccount", "serviceaccounts", short=("sa",), sub=("token",)),
    _k("", "v1", "Node", "nodes", False, ("no",), sub=("status", "proxy")),
    _k("", "v1", "Event", "events", short=("ev",), storage="core/events"),
    _k("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), sub=ST),
    _k("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), sub=ST),
    _k("", "v1", "LimitRange", "limitranges", short=("limits",)),
    _k("", "v1", "ResourceQuota", "resourcequotas", short=("quota",), sub=ST),
    _k("", "v1", "ReplicationController", "replicationcontrollers", short=("rc",), cats=ALL, sub=SC),
    _k("", "v1", "PodTemplate", "podtemplates"),
    _k("", "v1", "Binding", "bindings", verbs=("create",)),
    _k("", "v1", "ComponentStatus", "componentstatuses", False, ("cs",), verbs=("get", "list")),
    # apps/v1
    _k("apps", "v1", "Deployment", "deployments", short=("deploy",), cats=ALL, sub=SC),
    _k("apps", "v1", "ReplicaSet", "replicasets", short=("rs",), cats=ALL, sub=SC),
    _k("apps", "v1", "DaemonSet", "daemonsets", short=("ds",), cats=ALL, sub=ST),
    _k("apps", "v1", "StatefulSet", "statefulsets", short=("sts",), cats=ALL, sub=SC),
    _k("apps", "v1", "ControllerRevision", "controllerrevisions"),
    # batch/v1
    _k("batch", "v1", "Job", "jobs", cats=ALL, sub=ST),
    _k("batch", "v1", "CronJob", "cronjobs", short=("cj",), cats=ALL, sub=ST),
    # networking.k8s.io/v1
    _k("networking.k8s.io", "v1", "Ingress", "ingresses", short=("ing",), sub=ST),
    _k("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    _k("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", short=("netpol",)),
    # autoscaling: one stored resource, two served versions (v2 is the storage version)
    _k("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short=("hpa",), cats=ALL,
       sub=ST, storage="autoscaling/horizontalpodautoscalers", storage_version="v2"),
    _k("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short=("hpa",), cats=ALL,
       sub=ST, storage="autoscaling/horizontalpodautoscalers", storage_version="v2"),
    # coordination.k8s.io/v1
    _k("coordination.k8s.io", "v1", "Lease", "leases"),
    # discovery.k8s.io/v1
    _k("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    # events.k8s.io/v1: same objects as core/v1 events
    _k("events.k8s.io", "v1", "Event", "events", short=("ev",), storage="core/events", storage_version="v1"),
    # storage.k8s.io/v1
    _k("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
    # rbac.authorization.k8s.io/v1
    _k("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    _k("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _k("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    _k("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    # scheduling.k8s.io/v1
    _k("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",)),
    # apiextensions.k8s.io/v1 (custom resources are served from them: apiserver/crd.py)
    _k("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False, ("crd", "crds"),
       cats=("api-extensions",), sub=ST),
    # apiregistration.k8s.io/v1 (stored and reported; k8py does not proxy aggregated APIs yet)
    _k("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, sub=ST, cats=("api-extensions",)),
    # admissionregistration.k8s.io/v1: the webhooks admission calls (apiserver/admission/webhook.py)
    _k("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
       False, cats=("api-extensions",)),
    _k("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
       False, cats=("api-extensions",)),
    # the CEL policies the ValidatingAdmissionPolicy plugin evaluates (apiserver/admission/policy.py)
    _k("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False,
       cats=("api-extensions",), sub=ST),
    _k("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings",
       False, cats=("api-extensions",)),
    # the CEL mutations the MutatingAdmissionPolicy plugin applies (apiserver/admission/mutatingpolicy.py)
    _k("admissionregistration.k8s.io", "v1", "MutatingAdmissionPolicy", "mutatingadmissionpolicies", False,
       cats=("api-extensions",)),
    _k("admissionregistration.k8s.io", "v1", "MutatingAdmissionPolicyBinding", "mutatingadmissionpolicybindings",
       False, cats=("api-extensions",)),
    # policy/v1
    _k("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short=("pdb",), sub=ST),
    # certificates.k8s.io/v1
    _k("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", False, ("csr",),
       sub=("status", "approval")),
    # Review kinds: create-only, answered by the server and never stored (VIRTUAL_KINDS)
    _k("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
       verbs=("create",)),
    _k("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False, verbs=("create",)),
    _k("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", verbs=("create",)),
    _k("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False, verbs=("create",)),
    _k("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=("create",)),
    _k("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False, verbs=("create",)),
)

# Kinds whose "create" is a question to the server, answered in the response and not stored.
VIRTUAL_KINDS = frozenset({"SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview",
                           "SelfSubjectRulesReview", "SelfSubjectReview", "TokenReview"})

# Preferred version per group, in the order /apis lists them.
GROUP_ORDER: tuple[str, ...] = (
    "",
    "apps",
    "events.k8s.io",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "scheduling.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
)
PREFERRED_VERSION: dict[str, str] = {"autoscaling": "v2"}


class Registry:
    """Lookup of kinds by (group, version, resource) and (group, version, kind)."""

    def __init__(self, kinds: tuple[KindInfo, ...] = BUILTIN_KINDS) -> None:
        self._kinds: list[KindInfo] = []
        self._by_gvr: dict[tuple[str, str, str], KindInfo] = {}
        self._by_gvk: dict[tuple[str, str, str], KindInfo] = {}
        # (group, version, kind) -> the OpenAPI v3 schema of a custom resource (its CRD's
        # openAPIV3Schema, set while the CRD is served); published in /openapi/v3
        self.custom_schemas: dict[tuple[str, str, str], dict[str, object]] = {}
        self.custom_schemas_version = 0  # counts changes of custom_schemas (documents built again)
        for k in kinds:
            self.add(k)

    def add(self, k: KindInfo) -> None:
        self._kinds.append(k)
        self._by_gvr[(k.group, k.version, k.resource)] = k
        self._by_gvk[(k.group, k.version, k.kind)] = k

    def remove(self, k: KindInfo) -> None:
        self._kinds.remove(k)
        self._by_gvr.pop((k.group, k.version, k.resource), None)
        self._by_gvk.pop((k.group, k.version, k.kind), None)

    def all(self) -> list[KindInfo]:
        return list(self._kinds)

    def by_resource(self, group: str, version: str, resource: str) -> KindInfo | None:
        return self._by_gvr.get((group, version, resource))

    def by_kind(self, group: str, version: str, kind: str) -> KindInfo | None:
        return self._by_gvk.get((group, version, kind))

    def by_api_version(self, api_version: str, kind: str) -> KindInfo | None:
        group, _, version = api_version.rpartition("/")
        return self._by_gvk.get((group, version, kind))

    def groups(self) -> dict[str, list[str]]:
        """group -> versions, preferred first."""
        out: dict[str, list[str]] = {}
        for k in self._kinds:
            vs = out.setdefault(k.group, [])
            if k.version not in vs:
                vs.append(k.version)
        for g, vs in out.items():
            pref = PREFERRED_VERSION.get(g)
            if pref in vs:
                vs.remove(pref)
                vs.insert(0, pref)
        order = {g: i for i, g in enumerate(GROUP_ORDER)}
        return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    def kinds_in(self, group: str, version: str) -> list[KindInfo]:
        return [k for k in self._kinds if k.group == group and k.version == version]

    def versions_of_storage(self, storage: str) -> list[KindInfo]:
        return [k for k in self._kinds if k.storage_name == storage]
