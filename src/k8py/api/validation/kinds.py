"""Validation by kind: the table from (group, kind) to its create, update and status rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k8py.api.errors import FieldError
from k8py.api.registry import KindInfo
from k8py.api.validation import (
    admissionregistration,
    apiextensions,
    apiregistration,
    apps,
    batch,
    certificates,
    config,
    core,
    networking,
    policy,
    storage,
)
from k8py.api.validation.meta import (
    name_is_dns_subdomain,
    validate_object_meta,
    validate_object_meta_update,
)

Create = Callable[[dict[str, Any]], list[FieldError]]
Update = Callable[[dict[str, Any], dict[str, Any]], list[FieldError]]

__all__ = ["validate", "validate_status_update", "validate_update"]


def _meta_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata"))


def _generic(namespaced: bool) -> Create:
    def fn(obj: dict[str, Any]) -> list[FieldError]:
        return validate_object_meta(obj.get("metadata"), namespaced, name_is_dns_subdomain)

    return fn


# (group, kind) -> (create, update, status update)
_TABLE: dict[tuple[str, str], tuple[Create, Update, Update]] = {
    ("", "Pod"): (core.validate_pod, core.validate_pod_update, core.validate_pod_status_update),
    ("", "PodTemplate"): (core.validate_pod_template, core.validate_pod_template_update, _meta_update),
    ("", "ReplicationController"): (core.validate_replication_controller, core.validate_replication_controller_update,
                                    core.validate_replication_controller_status),
    ("", "Service"): (core.validate_service, core.validate_service_update, core.validate_service_status_update),
    ("", "Endpoints"): (core.validate_endpoints, core.validate_endpoints_update, _meta_update),
    ("", "Namespace"): (core.validate_namespace, core.validate_namespace_update, core.validate_namespace_status_update),
    ("", "Node"): (core.validate_node, core.validate_node_update, core.validate_node_update),
    ("", "Binding"): (core.validate_binding, lambda n, o: core.validate_binding(n), _meta_update),
    ("", "ConfigMap"): (config.validate_config_map, config.validate_config_map_update, _meta_update),
    ("", "Secret"): (config.validate_secret, config.validate_secret_update, _meta_update),
    ("", "ServiceAccount"): (config.validate_service_account, config.validate_service_account_update, _meta_update),
    ("", "ResourceQuota"): (config.validate_resource_quota, config.validate_resource_quota_update,
                           config.validate_resource_quota_status),
    ("", "LimitRange"): (config.validate_limit_range, config.validate_limit_range_update, _meta_update),
    ("", "Event"): (config.validate_core_event, config.validate_core_event_update, _meta_update),
    ("events.k8s.io", "Event"): (config.validate_events_v1, config.validate_events_v1_update, _meta_update),
    ("", "PersistentVolume"): (storage.validate_pv, storage.validate_pv_update, storage.validate_pv_status_update),
    ("", "PersistentVolumeClaim"): (storage.validate_pvc, storage.validate_pvc_update,
                                   storage.validate_pvc_status_update),
    ("", "ComponentStatus"): (lambda o: [], lambda n, o: [], lambda n, o: []),
    ("apps", "Deployment"): (apps.validate_deployment, apps.validate_deployment_update, apps.validate_deployment_status),
    ("apps", "ReplicaSet"): (apps.validate_replica_set, apps.validate_replica_set_update,
                             apps.validate_replica_set_status),
    ("apps", "StatefulSet"): (apps.validate_stateful_set, apps.validate_stateful_set_update,
                              apps.validate_stateful_set_status),
    ("apps", "DaemonSet"): (apps.validate_daemon_set, apps.validate_daemon_set_update, apps.validate_daemon_set_status),
    ("apps", "ControllerRevision"): (apps.validate_controller_revision, apps.validate_controller_revision_update,
                                     _meta_update),
    ("batch", "Job"): (batch.validate_job, batch.validate_job_update, batch.validate_job_status),
    ("batch", "CronJob"): (batch.validate_cron_job, batch.validate_cron_job_update, batch.validate_cron_job_status),
    ("networking.k8s.io", "Ingress"): (networking.validate_ingress, networking.validate_ingress_update,
                                       networking.validate_ingress_status_update),
    ("networking.k8s.io", "IngressClass"): (networking.validate_ingress_class, networking.validate_ingress_class_update,
                                            _meta_update),
    ("networking.k8s.io", "NetworkPolicy"): (networking.validate_network_policy,
                                             networking.validate_network_policy_update, _meta_update),
    ("discovery.k8s.io", "EndpointSlice"): (networking.validate_endpoint_slice,
                                            networking.validate_endpoint_slice_update, _meta_update),
    ("autoscaling", "HorizontalPodAutoscaler"): (policy.validate_hpa, policy.validate_hpa_update,
                                                 policy.validate_hpa_status),
    ("policy", "PodDisruptionBudget"): (policy.validate_pdb, policy.validate_pdb_update, policy.validate_pdb_status),
    ("coordination.k8s.io", "Lease"): (policy.validate_lease, policy.validate_lease_update, _meta_update),
    ("rbac.authorization.k8s.io", "Role"): (policy.validate_role, policy.validate_role_update, _meta_update),
    ("rbac.authorization.k8s.io", "ClusterRole"): (lambda o: policy.validate_role(o, False),
                                                   lambda n, o: policy.validate_role_update(n, o, False),
                                                   _meta_update),
    ("rbac.authorization.k8s.io", "RoleBinding"): (policy.validate_binding, policy.validate_binding_update,
                                                   _meta_update),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (lambda o: policy.validate_binding(o, False),
                                                          lambda n, o: policy.validate_binding_update(n, o, False),
                                                          _meta_update),
    ("scheduling.k8s.io", "PriorityClass"): (policy.validate_priority_class, policy.validate_priority_class_update,
                                             _meta_update),
    ("storage.k8s.io", "StorageClass"): (storage.validate_storage_class, storage.validate_storage_class_update,
                                         _meta_update),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (apiextensions.validate_crd,
                                                           apiextensions.validate_crd_update,
                                                           apiextensions.validate_crd_status_update),
    ("apiregistration.k8s.io", "APIService"): (apiregistration.validate_api_service,
                                               apiregistration.validate_api_service_update,
                                               apiregistration.validate_api_service_status),
    ("certificates.k8s.io", "CertificateSigningRequest"): (certificates.validate_csr, certificates.validate_csr_update,
                                                           certificates.validate_csr_status_update),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): (
        admissionregistration.validate_validating_webhook_configuration,
        admissionregistration.validate_validating_webhook_configuration_update, _meta_update),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): (
        admissionregistration.validate_mutating_webhook_configuration,
        admissionregistration.validate_mutating_webhook_configuration_update, _meta_update),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): (
        admissionregistration.validate_validating_admission_policy,
        admissionregistration.validate_validating_admission_policy_update,
        admissionregistration.validate_validating_admission_policy_status),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (
        admissionregistration.validate_validating_admission_policy_binding,
        admissionregistration.validate_validating_admission_policy_binding_update, _meta_update),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"): (
        admissionregistration.validate_mutating_admission_policy,
        admissionregistration.validate_mutating_admission_policy_update, _meta_update),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"): (
        admissionregistration.validate_mutating_admission_policy_binding,
        admissionregistration.validate_mutating_admission_policy_binding_update, _meta_update),
}


def _entry(kind: KindInfo) -> tuple[Create, Update, Update]:
    if kind.group == "autoscaling" and kind.kind == "HorizontalPodAutoscaler" and kind.version == "v1":
        return (lambda o: policy.validate_hpa(o, v1=True),
                lambda n, o: policy.validate_hpa_update(n, o, v1=True),
                policy.validate_hpa_status)
    e = _TABLE.get((kind.group, kind.kind))
    if e is not None:
        return e
    # Kinds without their own rules (custom resources): ObjectMeta only.
    return _generic(kind.namespaced), _meta_update, _meta_update


def _dedup(errs: list[FieldError]) -> list[FieldError]:
    seen: set[str] = set()
    out = []
    for e in errs:
        s = str(e)
        if s not in seen:
            seen.add(s)
            out.append(e)
    return out


def validate(kind: KindInfo, obj: dict[str, Any]) -> list[FieldError]:
    """Errors for creating ``obj`` (empty when valid)."""
    return _dedup(_entry(kind)[0](obj))


def validate_update(kind: KindInfo, obj: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """Errors for replacing ``old`` with ``obj``."""
    return _dedup(_entry(kind)[1](obj, old))


def validate_status_update(kind: KindInfo, obj: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """Errors for a ``/status`` write of ``obj`` over ``old``."""
    return _dedup(_entry(kind)[2](obj, old))
