"""batch/v1 kinds: Job (its pod selector is generated here, and only here) and CronJob."""

from __future__ import annotations

from typing import Any, Final

from k8py.api.registry import KindInfo
from k8py.api.selectors import FieldLabels, go_quote, int_field_path
from k8py.api.tables import (
    AGE,
    BATCH,
    NAME,
    Column,
    Row,
    Table,
    bool_ptr,
    condition_true,
    containers_columns,
    human_duration,
    int_or_zero,
    meta_of,
    selector_column,
    since,
    spec_of,
    status_of,
    template_pod_spec,
    time_of,
)
from k8py.api.validation.batch import generate_job_selector
from k8py.apiserver.registry.base import Strategy

Obj = dict[str, Any]


def _job_status(job: Obj) -> str:
    conds = status_of(job).get("conditions") or []
    if condition_true(conds, "Complete"):
        return "Complete"
    if condition_true(conds, "Failed"):
        return "Failed"
    if meta_of(job).get("deletionTimestamp"):
        return "Terminating"
    if condition_true(conds, "Suspended"):
        return "Suspended"
    if condition_true(conds, "FailureTarget"):
        return "FailureTarget"
    if condition_true(conds, "SuccessCriteriaMet"):
        return "SuccessCriteriaMet"
    return "Running"


def _completions(job: Obj) -> str:
    spec = spec_of(job)
    succeeded = int_or_zero(status_of(job).get("succeeded"))
    if spec.get("completions") is not None:
        return f"{succeeded}/{int_or_zero(spec['completions'])}"
    parallelism = int_or_zero(spec.get("parallelism"))
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _duration(r: Row) -> str:
    status = status_of(r.obj)
    start = time_of(status.get("startTime"))
    if start is None:
        return ""
    end = time_of(status.get("completionTime"))
    return human_duration((r.now if end is None else end) - start)


def _job_spec_of_cronjob(cj: Obj) -> Obj:
    return (spec_of(cj).get("jobTemplate") or {}).get("spec") or {}


def _last_schedule(r: Row) -> str:
    last = status_of(r.obj).get("lastScheduleTime")
    return since(last, r.now) if last else "<none>"


JOB_TABLE: Final = Table(
    NAME,
    Column("Status", doc="Status of the job.", cell=lambda r: _job_status(r.obj)),
    Column("Completions", doc=(BATCH + "JobStatus", "succeeded"), cell=lambda r: _completions(r.obj)),
    Column("Duration", doc="Time required to complete the job.", cell=_duration),
    AGE,
    *containers_columns(template_pod_spec),
    selector_column(BATCH + "JobSpec"),
)

# kube's batch/v1 conversion: status.successful (read from status.succeeded), with its own words
JOB_FIELD_LABELS: Final = FieldLabels.of(
    {"status.successful": int_field_path("status", "succeeded")}, namespaced=True,
    reject=lambda label: f"field label {go_quote(label)} not supported for batchv1.Job")

CRONJOB_TABLE: Final = Table(
    NAME,
    Column("Schedule", doc=(BATCH + "CronJobSpec", "schedule"), cell=lambda r: spec_of(r.obj).get("schedule", "")),
    Column("Timezone", doc=(BATCH + "CronJobSpec", "timeZone"),
           cell=lambda r: spec_of(r.obj).get("timeZone") or "<none>"),
    Column("Suspend", "boolean", doc=(BATCH + "CronJobSpec", "suspend"),
           cell=lambda r: bool_ptr(spec_of(r.obj).get("suspend"))),
    Column("Active", "integer", doc=(BATCH + "CronJobStatus", "active"),
           cell=lambda r: len(status_of(r.obj).get("active") or [])),
    Column("Last Schedule", doc=(BATCH + "CronJobStatus", "lastScheduleTime"), cell=_last_schedule),
    AGE,
    *containers_columns(lambda cj: (_job_spec_of_cronjob(cj).get("template") or {}).get("spec")),
    selector_column(BATCH + "JobSpec", selector=lambda cj: _job_spec_of_cronjob(cj).get("selector")),
)


class JobStrategy(Strategy):
    group, kind = "batch", "Job"
    table = JOB_TABLE
    field_labels = JOB_FIELD_LABELS
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {}

    def prepare_for_create(self, kind: KindInfo, obj: Obj) -> None:
        super().prepare_for_create(kind, obj)
        # kube's Job strategy: unless manualSelector, select pods by the job's uid and label the
        # template with it (needs the uid just assigned)
        generate_job_selector(obj)


class CronJobStrategy(Strategy):
    group, kind = "batch", "CronJob"
    table = CRONJOB_TABLE
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {}


STRATEGIES: list[type[Strategy]] = [JobStrategy, CronJobStrategy]
