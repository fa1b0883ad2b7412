"""Conversion of Events (core/v1 <-> events.k8s.io/v1) and HPAs (autoscaling/v1 <-> v2)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from k8py.api import conversion
from k8py.api.conversion import (
    BEHAVIOR_SPECS_ANNOTATION,
    CONDITIONS_ANNOTATION,
    METRIC_SPECS_ANNOTATION,
    METRIC_STATUSES_ANNOTATION,
    ConversionError,
    convert,
)

KUBELET_EVENT: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Event",
    "metadata": {"name": "web-1.17f2a", "namespace": "default", "uid": "u-1", "resourceVersion": "77",
                 "creationTimestamp": "2025-06-01T11:50:00Z"},
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "p-1", "apiVersion": "v1",
                       "resourceVersion": "12", "fieldPath": "spec.containers{app}"},
    "reason": "Pulled", "message": "Container image \"nginx\" already present on machine",
    "source": {"component": "kubelet", "host": "node-1"},
    "firstTimestamp": "2025-06-01T11:50:00Z", "lastTimestamp": "2025-06-01T11:55:00Z", "count": 3,
    "type": "Normal", "eventTime": None, "reportingComponent": "kubelet", "reportingInstance": "node-1",
}

SCHEDULER_EVENT: dict[str, Any] = {
    "apiVersion": "events.k8s.io/v1", "kind": "Event",
    "metadata": {"name": "web-1.17f2b", "namespace": "default"},
    "eventTime": "2025-06-01T11:59:00.123456Z",
    "series": {"count": 2, "lastObservedTime": "2025-06-01T11:59:30.000000Z"},
    "reportingController": "default-scheduler", "reportingInstance": "default-scheduler-node-1",
    "action": "Binding", "reason": "Scheduled",
    "regarding": {"kind": "Pod", "namespace": "default", "name": "web-1"},
    "related": {"kind": "Node", "name": "node-1"},
    "note": "Successfully assigned default/web-1 to node-1", "type": "Normal",
    # what kube serves for a new-style event: these are never omitted
    "deprecatedSource": {}, "deprecatedFirstTimestamp": None, "deprecatedLastTimestamp": None,
}


def test_core_event_to_events_v1() -> None:
    out = convert(KUBELET_EVENT, "events.k8s.io/v1")
    assert out == {
        "kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": KUBELET_EVENT["metadata"],
        "eventTime": None,
        "reportingController": "kubelet", "reportingInstance": "node-1",
        "reason": "Pulled",
        "regarding": KUBELET_EVENT["involvedObject"],
        "note": KUBELET_EVENT["message"], "type": "Normal",
        "deprecatedSource": {"component": "kubelet", "host": "node-1"},
        "deprecatedFirstTimestamp": "2025-06-01T11:50:00Z", "deprecatedLastTimestamp": "2025-06-01T11:55:00Z",
        "deprecatedCount": 3,
    }
    # kube's field order
    assert list(out) == ["kind", "apiVersion", "metadata", "eventTime", "reportingController",
                         "reportingInstance", "reason", "regarding", "note", "type", "deprecatedSource",
                         "deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount"]


def test_events_v1_to_core() -> None:
    out = convert(SCHEDULER_EVENT, "v1")
    assert out == {
        "kind": "Event", "apiVersion": "v1", "metadata": SCHEDULER_EVENT["metadata"],
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1"},
        "reason": "Scheduled", "message": "Successfully assigned default/web-1 to node-1",
        "source": {}, "firstTimestamp": None, "lastTimestamp": None, "type": "Normal",
        "eventTime": "2025-06-01T11:59:00.123456Z",
        "series": {"count": 2, "lastObservedTime": "2025-06-01T11:59:30.000000Z"},
        "action": "Binding", "related": {"kind": "Node", "name": "node-1"},
        "reportingComponent": "default-scheduler", "reportingInstance": "default-scheduler-node-1",
    }


@pytest.mark.parametrize("event", [KUBELET_EVENT, SCHEDULER_EVENT], ids=["core", "events.k8s.io"])
def test_event_round_trip(event: dict[str, Any]) -> None:
    other = "events.k8s.io/v1" if event["apiVersion"] == "v1" else "v1"
    back = convert(convert(event, other), event["apiVersion"])
    assert back == event


def test_minimal_core_event_gets_kube_shape() -> None:
    out = convert({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}}, "events.k8s.io/v1")
    assert out == {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": {"name": "e"},
                   "eventTime": None, "regarding": {}, "deprecatedSource": {}, "deprecatedFirstTimestamp": None,
                   "deprecatedLastTimestamp": None}
    back = convert(out, "v1")
    assert back == {"kind": "Event", "apiVersion": "v1", "metadata": {"name": "e"}, "involvedObject": {},
                    "source": {}, "firstTimestamp": None, "lastTimestamp": None, "eventTime": None,
                    "reportingComponent": "", "reportingInstance": ""}


# --- HPA ---------------------------------------------------------------------------

HPA_V2: dict[str, Any] = {
    "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "web", "namespace": "default", "resourceVersion": "9", "annotations": {"team": "a"}},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 2, "maxReplicas": 10,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                        "averageUtilization": 60}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"},
                                      "target": {"type": "AverageValue", "averageValue": "1k"}}},
            {"type": "Object", "object": {
                "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                "metric": {"name": "requests-per-second"},
                "target": {"type": "Value", "value": "2k"}}},
            {"type": "External", "external": {
                "metric": {"name": "queue_depth", "selector": {"matchLabels": {"queue": "jobs"}}},
                "target": {"type": "AverageValue", "averageValue": "30"}}},
            {"type": "ContainerResource", "containerResource": {
                "name": "memory", "container": "app", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
        ],
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                     {"type": "Percent", "value": 100, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                          "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
        },
    },
    "status": {
        "observedGeneration": 3, "lastScaleTime": "2025-06-01T11:00:00Z",
        "currentReplicas": 3, "desiredReplicas": 4,
        "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageValue": "300m",
                                                                         "averageUtilization": 75}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "800"}}},
        ],
        "conditions": [
            {"type": "AbleToScale", "status": "True", "lastTransitionTime": "2025-06-01T10:00:00Z",
             "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
        ],
    },
}


def test_hpa_v2_to_v1() -> None:
    v1 = convert(HPA_V2, "autoscaling/v1")
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                          "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 60}
    assert v1["status"] == {"observedGeneration": 3, "lastScaleTime": "2025-06-01T11:00:00Z",
                            "currentReplicas": 3, "desiredReplicas": 4, "currentCPUUtilizationPercentage": 75}
    ann = v1["metadata"]["annotations"]
    assert ann["team"] == "a"
    assert json.loads(ann[METRIC_SPECS_ANNOTATION]) == [
        {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "1k"}},
        {"type": "Object", "object": {"target": {"kind": "Ingress", "name": "main",
                                                 "apiVersion": "networking.k8s.io/v1"},
                                      "metricName": "requests-per-second", "targetValue": "2k"}},
        {"type": "External", "external": {"metricName": "queue_depth",
                                          "metricSelector": {"matchLabels": {"queue": "jobs"}},
                                          "targetAverageValue": "30"}},
        {"type": "ContainerResource", "containerResource": {"name": "memory", "targetAverageValue": "500Mi",
                                                            "container": "app"}},
    ]
    assert json.loads(ann[METRIC_STATUSES_ANNOTATION]) == [
        {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 75,
                                          "currentAverageValue": "300m"}},
        {"type": "Pods", "pods": {"metricName": "qps", "currentAverageValue": "800"}},
    ]
    assert json.loads(ann[CONDITIONS_ANNOTATION]) == HPA_V2["status"]["conditions"]
    # the behavior annotation is kube's internal type: Go field names, nulls included
    assert json.loads(ann[BEHAVIOR_SPECS_ANNOTATION]) == {
        "ScaleUp": {"StabilizationWindowSeconds": 0, "SelectPolicy": "Max",
                    "Policies": [{"Type": "Pods", "Value": 4, "PeriodSeconds": 15},
                                 {"Type": "Percent", "Value": 100, "PeriodSeconds": 15}], "Tolerance": None},
        "ScaleDown": {"StabilizationWindowSeconds": 300, "SelectPolicy": "Max",
                      "Policies": [{"Type": "Percent", "Value": 100, "PeriodSeconds": 15}], "Tolerance": None},
    }
    # compact JSON, as encoding/json writes it
    assert " " not in ann[METRIC_SPECS_ANNOTATION]


def test_hpa_round_trip_through_v1() -> None:
    back = convert(convert(HPA_V2, "autoscaling/v1"), "autoscaling/v2")
    assert back["metadata"] == HPA_V2["metadata"]
    assert back["status"] == HPA_V2["status"]
    assert back["spec"]["behavior"] == HPA_V2["spec"]["behavior"]
    metrics = HPA_V2["spec"]["metrics"]
    # the CPU target comes back after the annotation's metrics, as in kube
    assert back["spec"]["metrics"] == [*metrics[1:], metrics[0]]
    assert {k: v for k, v in back["spec"].items() if k not in ("metrics", "behavior")} == {
        "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
        "minReplicas": 2, "maxReplicas": 10}


def test_hpa_v1_created_by_client() -> None:
    v1: dict[str, Any] = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                   "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70},
          "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 20}}
    v2 = convert(v1, "autoscaling/v2")
    assert v2 == {
        "kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                 "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]},
        "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 20}}}]},
    }
    back = convert(v2, "autoscaling/v1")
    assert back["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                            "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70}
    assert back["status"] == v1["status"]
    # a current metric is always saved in full, even when it maps to the CPU percentage
    assert back["metadata"] == {"name": "web", "annotations": {METRIC_STATUSES_ANNOTATION: (
        '[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":20,"currentAverageValue":"0"}}]')}}


def test_hpa_v1_without_target_defaults_to_80_percent_cpu() -> None:
    v1: dict[str, Any] = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}}
    v2 = convert(v1, "autoscaling/v2")
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert v2["status"] == {"desiredReplicas": 0, "currentMetrics": None}


def test_hpa_v2_without_cpu_metric() -> None:
    v2 = copy.deepcopy(HPA_V2)
    v2["spec"]["metrics"] = v2["spec"]["metrics"][1:2]
    v2["spec"].pop("behavior")
    v2["status"] = {"desiredReplicas": 0}
    v1 = convert(v2, "autoscaling/v1")
    assert "targetCPUUtilizationPercentage" not in v1["spec"]
    assert v1["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    assert set(v1["metadata"]["annotations"]) == {"team", METRIC_SPECS_ANNOTATION}
    back = convert(v1, "autoscaling/v2")
    assert back["spec"]["metrics"] == v2["spec"]["metrics"]


def test_hpa_stale_and_malformed_round_trip_annotations() -> None:
    v2 = copy.deepcopy(HPA_V2)
    v2["spec"]["metrics"] = v2["spec"]["metrics"][:1]
    v2["spec"].pop("behavior")
    v2["status"] = {"desiredReplicas": 1}
    # stale annotations on the stored object are replaced by the ones conversion produces
    v2["metadata"]["annotations"][METRIC_SPECS_ANNOTATION] = "[]"
    v2["metadata"]["annotations"][BEHAVIOR_SPECS_ANNOTATION] = "{}"
    v1 = convert(v2, "autoscaling/v1")
    assert v1["metadata"]["annotations"] == {"team": "a"}
    # malformed annotations coming in through v1 are dropped, not fatal
    v1["metadata"]["annotations"].update({METRIC_SPECS_ANNOTATION: "abc", METRIC_STATUSES_ANNOTATION: "",
                                          CONDITIONS_ANNOTATION: "{", BEHAVIOR_SPECS_ANNOTATION: "abc"})
    back = convert(v1, "autoscaling/v2")
    assert back["metadata"]["annotations"] == {"team": "a"}
    assert back["spec"]["metrics"] == v2["spec"]["metrics"]
    assert "behavior" not in back["spec"]


def test_hpa_behavior_annotation_is_read_case_insensitively() -> None:
    v1: dict[str, Any] = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "web", "annotations": {BEHAVIOR_SPECS_ANNOTATION: json.dumps(
              {"scaleDown": {"stabilizationWindowSeconds": 60, "policies": [
                  {"type": "Pods", "value": 1, "periodSeconds": 60}]}, "ScaleUp": None})}},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                   "targetCPUUtilizationPercentage": 50}}
    v2 = convert(v1, "autoscaling/v2")
    assert v2["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 60, "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    assert "annotations" not in v2["metadata"]


def test_same_version_is_a_no_op_and_inputs_are_untouched() -> None:
    assert convert(HPA_V2, "autoscaling/v2") is HPA_V2
    assert convert(KUBELET_EVENT, "v1") is KUBELET_EVENT
    before = copy.deepcopy(HPA_V2)
    convert(convert(HPA_V2, "autoscaling/v1"), "autoscaling/v2")
    assert before == HPA_V2
    ev_before = copy.deepcopy(SCHEDULER_EVENT)
    convert(SCHEDULER_EVENT, "v1")
    assert ev_before == SCHEDULER_EVENT


def test_unknown_conversions() -> None:
    with pytest.raises(ConversionError):
        convert({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}, "apps/v1beta2")
    assert not conversion.can_convert("Deployment", "apps/v1", "apps/v1beta2")
    assert conversion.can_convert("Event", "v1", "events.k8s.io/v1")
    assert conversion.can_convert("Pod", "v1", "v1")
    # objects without TypeMeta are taken to be in the wanted version already
    assert convert({"kind": "Pod", "metadata": {}}, "v1") == {"kind": "Pod", "metadata": {}, "apiVersion": "v1"}
