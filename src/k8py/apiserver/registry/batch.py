"""batch/v1 kinds: Job (its pod selector is generated here, and only here) and CronJob."""

from __future__ import annotations

from typing import Any

from k8py.api.registry import KindInfo
from k8py.api.validation.batch import generate_job_selector
from k8py.apiserver.registry.base import Strategy

Obj = dict[str, Any]


class JobStrategy(Strategy):
    group, kind = "batch", "Job"
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
    generation = True
    reset_status_on_create = True

    def initial_status(self, kind: KindInfo, obj: Obj) -> Obj | None:
        return {}


STRATEGIES: list[type[Strategy]] = [JobStrategy, CronJobStrategy]
