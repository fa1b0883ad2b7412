"""Validation of apps/v1, batch/v1 and ReplicationController objects."""

import datetime as dt

import pytest
from validation_cases import VALID, errors, status_errors, update_errors, with_

from k8py.api.validation.cron import CronError, parse_schedule

DEP = VALID["Deployment"]
RS = VALID["ReplicaSet"]
STS = VALID["StatefulSet"]
DS = VALID["DaemonSet"]
JOB = VALID["Job"]
CJ = VALID["CronJob"]
MISMATCH = "`selector` does not match template `labels`"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (with_(DEP, "spec.template.metadata.labels", {"app": "api", "tier": "be"}),
         [f'spec.template.metadata.labels: Invalid value: map[string]string{{"app":"api", "tier":"be"}}: {MISMATCH}']),
        (with_(DEP, "spec.selector", None),
         ["spec.selector: Required value",
          f'spec.template.metadata.labels: Invalid value: map[string]string{{"app":"web"}}: {MISMATCH}']),
        (with_(DEP, "spec.selector", {}),
         [("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
          "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment")]),
        (with_(DEP, "spec.replicas", -1), ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
        (with_(DEP, "spec.strategy", {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
         ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"]),
        (with_(DEP, "spec.strategy", {"rollingUpdate": {"maxSurge": "50", "maxUnavailable": "150%"}}),
         [("spec.strategy.rollingUpdate.maxSurge: Invalid value: 50: a valid percent string must be a numeric string "
          "followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
          "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 150%: must not be greater than 100%"]),
        (with_(DEP, "spec.strategy", {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
         ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]),
        (with_(DEP, "spec.strategy", {"type": "BlueGreen"}),
         [('spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", '
          'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", "RollingUpdate"')]),
        (with_(DEP, "spec.template.spec.restartPolicy", "OnFailure"),
         ['spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"']),
        (with_(DEP, "spec.progressDeadlineSeconds", 5), []),
        (with_(with_(DEP, "spec.minReadySeconds", 10), "spec.progressDeadlineSeconds", 5),
         ["spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"]),
        (with_(DEP, "spec.selector.matchExpressions", [{"key": "tier", "operator": "Near"}]),
         ['spec.selector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator',
          ('spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web"}, '
          'MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"tier", Operator:"Near", '
          "Values:[]string(nil)}}}: invalid label selector")]),
        (with_(DEP, "spec.selector.matchExpressions", [{"key": "tier", "operator": "In"}]),
         [("spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or "
          "'NotIn'"),
          ('spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web"}, '
          'MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"tier", Operator:"In", '
          "Values:[]string(nil)}}}: invalid label selector")]),
        (with_(DEP, "spec.template.metadata.labels", {"app": "web", "x": "y" * 64}),
         [f'spec.template.labels: Invalid value: "{"y" * 64}": must be no more than 63 bytes']),
        (with_(RS, "spec.template.spec.activeDeadlineSeconds", 10),
         [("spec.template.spec.activeDeadlineSeconds: Invalid value: 10: activeDeadlineSeconds in ReplicaSet is not "
          "Supported")]),
        (with_(RS, "spec.template", None),
         [f"spec.template.metadata.labels: Invalid value: map[string]string(nil): {MISMATCH}",
          "spec.template.spec.containers: Required value"]),
        (with_(STS, "spec.podManagementPolicy", "Random"),
         ["spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"]),
        (with_(STS, "spec.selector", {}),
         [("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
          "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for statefulset")]),
        (with_(STS, "spec.volumeClaimTemplates[0].spec.resources", {}),
         ["spec.volumeClaimTemplates[0].spec.resources[storage]: Required value"]),
        (with_(STS, "spec.updateStrategy", {"type": "OnDelete", "rollingUpdate": {"partition": 1}}),
         [('spec.updateStrategy.rollingUpdate: Invalid value: {"partition":1}: only allowed for updateStrategy '
          "'RollingUpdate'")]),
        (with_(STS, "spec.persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Keep"}),
         [('spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: "Keep": supported values: '
          '"Retain", "Delete"')]),
        (with_(DS, "spec.updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}),
         ["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]),
        (with_(DS, "spec.updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1,
                                                                                      "maxSurge": "10%"}}),
         [("spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 10%: may not be set when maxUnavailable is "
          "non-zero")]),
        (with_(DS, "spec.selector", {"matchLabels": {"app": "other"}}),
         [f'spec.template.metadata.labels: Invalid value: map[string]string{{"app":"web"}}: {MISMATCH}']),
        (with_(VALID["ControllerRevision"], "data", None), ["data: Required value: data is mandatory"]),
        (with_(VALID["ReplicationController"], "spec.template.metadata.labels", None),
         ["spec.selector: Required value"]),
        (with_(VALID["ReplicationController"], "spec.selector", {"app": "other"}),
         [f'spec.template.metadata.labels: Invalid value: map[string]string{{"app":"web"}}: {MISMATCH}']),
    ],
)
def test_apps(obj, expected):
    assert errors(obj) == expected


def test_selector_is_immutable():
    new = with_(with_(DEP, "spec.selector.matchLabels", {"app": "web", "v": "2"}), "spec.template.metadata.labels",
                {"app": "web", "v": "2"})
    assert update_errors(new, DEP) == [
        ('spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "v":"2"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable")]
    assert update_errors(with_(DEP, "spec.replicas", 5), DEP) == []
    assert update_errors(with_(RS, "spec.selector.matchLabels.v", "1"), RS)[-1].endswith("field is immutable")
    assert update_errors(with_(DS, "spec.selector.matchLabels.v", "1"), DS)[-1].endswith("field is immutable")


def test_statefulset_update_rules():
    assert update_errors(with_(STS, "spec.replicas", 5), STS) == []
    assert update_errors(with_(STS, "spec.template.spec.containers[0].image", "nginx:2"), STS) == []
    assert update_errors(with_(STS, "spec.serviceName", "other"), STS) == [
        ("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
        "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
        "forbidden")]


def test_workload_status_updates():
    assert status_errors(with_(DEP, "status", {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3}), DEP) == []
    assert status_errors(with_(DEP, "status", {"replicas": 1, "updatedReplicas": -1}), DEP) == [
        "status.updatedReplicas: Invalid value: -1: must be greater than or equal to 0"]
    assert status_errors(with_(RS, "status", {"replicas": 1, "readyReplicas": 2}), RS) == [
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas"]
    assert status_errors(with_(DS, "status", {"numberReady": -2}), DS) == [
        "status.numberReady: Invalid value: -2: must be greater than or equal to 0"]


# ---------------------------------------------------------------------------
# Job


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (with_(JOB, "spec.template.spec.restartPolicy", None),
         ['spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"']),
        (with_(JOB, "spec.template.spec.restartPolicy", "Always"),
         ['spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"']),
        (with_(JOB, "spec.parallelism", -1), ["spec.parallelism: Invalid value: -1: must be greater than or equal to 0"]),
        (with_(JOB, "spec.backoffLimit", -2), ["spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0"]),
        (with_(with_(JOB, "spec.completionMode", "Indexed"), "spec.parallelism", 2),
         ["spec.completions: Required value: when completion mode is Indexed"]),
        (with_(JOB, "spec.completionMode", "Sometimes"),
         ['spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"']),
        (with_(with_(JOB, "spec.manualSelector", True), "spec.selector", {"matchLabels": {"a": "b"}}),
         [('spec.template.metadata.labels: Invalid value: map[string]string(nil): '
          "`selector` does not match template `labels`")]),
        (with_(with_(JOB, "spec.manualSelector", True), "metadata.uid", None),
         ["spec.selector: Required value",
          f"spec.template.metadata.labels: Invalid value: map[string]string(nil): {MISMATCH}"]),
        (with_(with_(JOB, "spec.podFailurePolicy", {"rules": [{"action": "FailJob", "onExitCodes": {
            "operator": "In", "values": [1]}}]}), "spec.template.spec.restartPolicy", "OnFailure"),
         [('spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when '
          "podFailurePolicy is specified")]),
    ],
)
def test_job(obj, expected):
    assert errors(obj) == expected


def test_job_updates():
    assert update_errors(with_(with_(JOB, "spec.completions", 1), "spec.parallelism", 3), JOB) == []
    errs = update_errors(with_(JOB, "spec.template.spec.containers[0].image", "perl:5.36"), JOB)
    assert len(errs) == 1 and errs[0].startswith("spec.template: Invalid value: ") and errs[0].endswith(
        ": field is immutable")
    assert update_errors(with_(JOB, "spec.completions", 3), JOB) == [
        "spec.completions: Invalid value: 3: field is immutable"]
    # a suspended job that never started may change its scheduling directives
    suspended = with_(JOB, "spec.suspend", True)
    assert update_errors(with_(suspended, "spec.template.spec.nodeSelector", {"zone": "a"}), suspended) == []


# ---------------------------------------------------------------------------
# CronJob


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("@hourly", None),
        ("@every 1h30m", None),
        ("0 0 * * MON-FRI", None),
        ("*/15 9-17 * JAN,jul ?", None),
        ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
        ("61 * * * *", "end of range (61) above maximum (59): 61"),
        ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("@every 5x", 'failed to parse duration @every 5x: time: unknown unit "x" in duration "5x"'),
        ("", "empty spec string"),
    ],
)
def test_cron_parser(schedule, expected):
    if expected is None:
        parse_schedule(schedule)
    else:
        with pytest.raises(CronError) as ei:
            parse_schedule(schedule)
        assert str(ei.value) == expected


def test_cron_next():
    utc = dt.UTC
    s = parse_schedule("*/15 * * * *")
    assert s.next(dt.datetime(2024, 1, 1, 10, 7, 30, tzinfo=utc)) == dt.datetime(2024, 1, 1, 10, 15, tzinfo=utc)
    assert parse_schedule("0 0 29 2 *").next(dt.datetime(2024, 3, 1, tzinfo=utc)) == dt.datetime(
        2028, 2, 29, tzinfo=utc)
    assert parse_schedule("0 9 * * MON").next(dt.datetime(2024, 1, 3, tzinfo=utc)) == dt.datetime(
        2024, 1, 8, 9, 0, tzinfo=utc)
    berlin = parse_schedule("0 9 * * *")
    nxt = berlin.next(dt.datetime(2024, 1, 1, 12, 0, tzinfo=utc), default_tz=__import__("zoneinfo").ZoneInfo(
        "Europe/Berlin"))
    assert nxt == dt.datetime(2024, 1, 2, 8, 0, tzinfo=utc)
    assert parse_schedule("@every 1h30m").every == 5400


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.schedule", "", ["spec.schedule: Required value"]),
        ("spec.schedule", "61 * * * *",
         ['spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61']),
        ("spec.schedule", "TZ=Europe/Berlin 0 * * * *",
         [('spec.schedule: Invalid value: "TZ=Europe/Berlin 0 * * * *": cannot use TZ or CRON_TZ in schedule, use '
          "timeZone field instead")]),
        ("spec.timeZone", "Mars/Olympus", ['spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus']),
        ("spec.timeZone", "Local",
         [('spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in '
          "https://www.iana.org/time-zones")]),
        ("spec.concurrencyPolicy", "Never",
         ['spec.concurrencyPolicy: Unsupported value: "Never": supported values: "Allow", "Forbid", "Replace"']),
        ("spec.jobTemplate.spec.template.spec.restartPolicy", "Always",
         ['spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"']),
        ("spec.jobTemplate.spec.selector", {"matchLabels": {"a": "b"}},
         [('spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"a":"b"}, '
          "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated")]),
        ("spec.successfulJobsHistoryLimit", -1,
         ["spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0"]),
    ],
)
def test_cronjob(path, value, expected):
    assert errors(with_(CJ, path, value)) == expected


def test_cronjob_update_keeps_legacy_tz_schedule():
    old = with_(with_(CJ, "spec.schedule", "TZ=UTC 0 * * * *"), "spec.timeZone", None)
    assert update_errors(with_(old, "spec.suspend", True), old) == []
