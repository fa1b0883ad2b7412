"""batch/v1: Job and CronJob (``pkg/apis/batch/validation``)."""

from __future__ import annotations

import copy
import re
from typing import Any

from k8py.api.errors import invalid, not_supported, required
from k8py.api.validation.cron import CronError, load_location_error, parse_schedule
from k8py.api.validation.meta import (
    Errs,
    bad_value,
    child,
    d_,
    go_label_selector,
    go_map,
    i_,
    immutable,
    index,
    is_dns1123_label,
    is_qualified_name,
    l_,
    name_is_dns_subdomain,
    nonnegative,
    s_,
    selector_is_valid,
    selector_matches,
    semantic,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)
from k8py.api.validation.pod import validate_pod_template_spec

MAX_PARALLELISM_INDEXED = 100000
MAX_COMPLETIONS_INDEXED = 100000
MAX_FAILED_INDEXES = 100000

JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def generate_job_selector(job: dict[str, Any]) -> None:
    """What the Job strategy does before validating a Job created without
    ``manualSelector: true``: label the template with the job's name and uid
    and select on ``batch.kubernetes.io/controller-uid``. Needs metadata.uid."""
    spec = job.setdefault("spec", {})
    if spec.get("manualSelector") is True:
        return
    meta = d_(job.get("metadata"))
    name, uid = s_(meta.get("name")), s_(meta.get("uid"))
    tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
    labels = tmeta.get("labels")
    if not isinstance(labels, dict):
        labels = tmeta["labels"] = {}
    for k in JOB_NAME_LABELS:
        labels.setdefault(k, name)
    for k in CONTROLLER_UID_LABELS:
        labels.setdefault(k, uid)
    sel = spec.get("selector")
    if not isinstance(sel, dict):
        sel = spec["selector"] = {}
    ml = sel.get("matchLabels")
    if not isinstance(ml, dict):
        ml = sel["matchLabels"] = {}
    ml.setdefault("batch.kubernetes.io/controller-uid", uid)


def _job_spec_common(spec: dict[str, Any], path: str) -> Errs:
    """validateJobSpec: everything but the selector."""
    errs: Errs = []
    for f in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished",
              "backoffLimitPerIndex", "maxFailedIndexes"):
        if spec.get(f) is not None:
            errs += nonnegative(child(path, f), spec.get(f))
    mode = spec.get("completionMode")
    indexed = mode == "Indexed"
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        errs.append(required(child(path, "backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
    mb = spec.get("managedBy")
    if isinstance(mb, str):
        if len(mb) > 63:
            errs.append(invalid(child(path, "managedBy"), mb, "must be no more than 63 characters"))
        errs += [invalid(child(path, "managedBy"), mb, m) for m in _domain_prefixed_path_errors(mb)]
    if spec.get("backoffLimitPerIndex") is not None and not indexed:
        errs.append(invalid(child(path, "backoffLimitPerIndex"), i_(spec.get("backoffLimitPerIndex")),
                            "requires indexed completion mode"))
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            errs.append(not_supported(child(path, "completionMode"), mode, ("NonIndexed", "Indexed")))
        if indexed:
            comps = i_(spec.get("completions"))
            par = i_(spec.get("parallelism"))
            if spec.get("completions") is None:
                errs.append(required(child(path, "completions"), "when completion mode is Indexed"))
            if par is not None and par > MAX_PARALLELISM_INDEXED:
                errs.append(invalid(child(path, "parallelism"), par,
                                    f"must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"))
            mfi = i_(spec.get("maxFailedIndexes"))
            if comps is not None and mfi is not None and mfi > comps:
                errs.append(invalid(child(path, "maxFailedIndexes"), mfi, "must be less than or equal to completions"))
            if mfi is not None and mfi > MAX_FAILED_INDEXES:
                errs.append(invalid(child(path, "maxFailedIndexes"), mfi,
                                    f"must be less than or equal to {MAX_FAILED_INDEXES}"))
    if spec.get("podFailurePolicy") is not None:
        errs += _pod_failure_policy(d_(spec.get("podFailurePolicy")), child(path, "podFailurePolicy"))
    prp = spec.get("podReplacementPolicy")
    if prp is not None:
        if spec.get("podFailurePolicy") is not None:
            if prp != "Failed":
                errs.append(not_supported(child(path, "podReplacementPolicy"), prp, ("Failed",)))
        elif prp not in ("TerminatingOrFailed", "Failed"):
            errs.append(not_supported(child(path, "podReplacementPolicy"), prp, ("TerminatingOrFailed", "Failed")))
    tp = child(path, "template")
    errs += validate_pod_template_spec(spec.get("template"), tp)
    rp = d_(d_(spec.get("template")).get("spec")).get("restartPolicy")
    if rp in ("Always", "", None):
        errs.append(required(child(tp, "spec.restartPolicy"), 'valid values: "OnFailure", "Never"'))
    elif rp not in ("OnFailure", "Never"):
        errs.append(not_supported(child(tp, "spec.restartPolicy"), rp, ("OnFailure", "Never")))
    elif spec.get("podFailurePolicy") is not None and rp != "Never":
        errs.append(invalid(child(tp, "spec.restartPolicy"), rp, 'only "Never" is supported when podFailurePolicy is specified'))
    return errs


_HTTP_PATH = re.compile(r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+")


def _domain_prefixed_path_errors(v: str) -> list[str]:
    from k8py.api.validation.meta import is_dns1123_subdomain

    parts = v.split("/", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return ['must be a domain-prefixed path (such as "acme.io/foo")']
    errs = is_dns1123_subdomain(parts[0])
    if not _HTTP_PATH.fullmatch(parts[1]):
        errs.append("Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')")
    return errs


def _pod_failure_policy(pfp: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    rules = l_(pfp.get("rules"))
    if len(rules) > 20:
        errs.append(invalid(child(path, "rules"), len(rules), "must have at most 20 items"))
    for i, r in enumerate(rules):
        r = d_(r)
        rp = index(child(path, "rules"), i)
        action = r.get("action")
        if action not in ("FailJob", "FailIndex", "Ignore", "Count"):
            errs.append(not_supported(child(rp, "action"), s_(action), ("Count", "FailIndex", "FailJob", "Ignore")))
        ec, pc = r.get("onExitCodes"), r.get("onPodConditions")
        if ec is not None and pc is not None:
            errs.append(invalid(rp, "", "specifying both OnExitCodes and OnPodConditions is not supported"))
        elif ec is None and pc is None:
            errs.append(invalid(rp, "", "specifying one of OnExitCodes and OnPodConditions is required"))
        if isinstance(ec, dict):
            ep = child(rp, "onExitCodes")
            op = ec.get("operator")
            if op not in ("In", "NotIn"):
                errs.append(not_supported(child(ep, "operator"), s_(op), ("In", "NotIn")))
            vals = l_(ec.get("values"))
            if not vals:
                errs.append(invalid(child(ep, "values"), bad_value(vals), "at least one value is required"))
            if len(set(map(str, vals))) != len(vals):
                errs.append(invalid(child(ep, "values"), bad_value(vals), "must be unique"))
            if sorted(vals, key=lambda x: i_(x) or 0) != vals:
                errs.append(invalid(child(ep, "values"), bad_value(vals), "must be ordered"))
            if op == "In" and 0 in vals:
                errs.append(invalid(child(ep, "values"), 0, "must not be 0 for the In operator"))
        for j, c in enumerate(l_(pc)):
            c = d_(c)
            cp = index(child(rp, "onPodConditions"), j)
            st = c.get("status")
            if st not in ("True", "False", "Unknown"):
                errs.append(not_supported(child(cp, "status"), s_(st), ("True", "False", "Unknown")))
            ct = s_(c.get("type"))
            errs += [invalid(child(cp, "type"), ct, m) for m in is_qualified_name(ct)]
    return errs


def _job_spec(spec: dict[str, Any], path: str = "spec") -> Errs:
    errs = _job_spec_common(spec, path)
    sel = spec.get("selector")
    if sel is None:
        errs.append(required(child(path, "selector"), ""))
    else:
        errs += validate_label_selector(sel, child(path, "selector"))
    if selector_is_valid(sel):
        labels = d_(d_(d_(spec.get("template")).get("metadata"))).get("labels")
        if not selector_matches(sel, labels) and not (isinstance(sel, dict) and not sel.get("matchLabels")
                                                      and not sel.get("matchExpressions")):
            errs.append(invalid(child(path, "template.metadata.labels"), go_map(labels),
                                "`selector` does not match template `labels`"))
    return errs


def _with_generated_selector(obj: dict[str, Any]) -> dict[str, Any]:
    spec = d_(obj.get("spec"))
    meta = d_(obj.get("metadata"))
    if spec.get("manualSelector") is True or not s_(meta.get("uid")) or spec.get("selector") is not None:
        return obj
    # The strategy generates the selector before validating (see generate_job_selector).
    obj = copy.deepcopy(obj)
    generate_job_selector(obj)
    return obj


def validate_job(obj: dict[str, Any]) -> Errs:
    obj = _with_generated_selector(obj)
    meta = d_(obj.get("metadata"))
    errs = validate_object_meta(meta, True, name_is_dns_subdomain)
    spec = d_(obj.get("spec"))
    errs += _job_spec(spec)
    comps = i_(spec.get("completions"))
    if spec.get("completionMode") == "Indexed" and comps is not None and comps > 0:
        host = f"{s_(meta.get('name'))}-{comps - 1}"
        if is_dns1123_label(host):
            errs.append(invalid("metadata.name", s_(meta.get("name")),
                                f"will not able to create pod with invalid DNS label: {host}"))
    return errs


def _scheduling_directives_mutable(new: dict[str, Any], old: dict[str, Any]) -> bool:
    return d_(new.get("spec")).get("suspend") is True and not d_(old.get("status")).get("startTime")


def validate_job_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    ns, os_ = d_(new.get("spec")), d_(old.get("spec"))
    errs += _job_spec(ns)
    indexed = ns.get("completionMode") == "Indexed"
    if not indexed:
        errs += immutable("spec.completions", ns.get("completions"), os_.get("completions"))
    elif (semantic(ns.get("completions")) != semantic(os_.get("completions")) and ns.get("completions") is not None
          and ns.get("completions") != ns.get("parallelism")):
        errs.append(invalid("spec.completions", i_(ns.get("completions")),
                            "can only be modified in tandem with spec.parallelism"))
    if semantic(ns.get("selector")) != semantic(os_.get("selector")):
        errs.append(invalid("spec.selector", go_label_selector(ns.get("selector")), "field is immutable"))
    nt = copy.deepcopy(d_(ns.get("template")))
    ot = copy.deepcopy(d_(os_.get("template")))
    if _scheduling_directives_mutable(new, old):
        for t in (nt, ot):
            tm = t.setdefault("metadata", {})
            tm.pop("labels", None)
            tm.pop("annotations", None)
            ts = t.setdefault("spec", {})
            for f in ("nodeSelector", "tolerations", "schedulingGates"):
                ts.pop(f, None)
            aff = ts.get("affinity")
            if isinstance(aff, dict):
                aff.pop("nodeAffinity", None)
                if not aff:
                    ts.pop("affinity")
    if semantic(nt) != semantic(ot):
        errs.append(invalid("spec.template", bad_value(ns.get("template")), "field is immutable"))
    for f in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"):
        errs += immutable(child("spec", f), ns.get(f), os_.get(f))
    return errs


def validate_job_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    st = d_(new.get("status"))
    for f in ("active", "succeeded", "failed", "ready", "terminating"):
        errs += nonnegative(child("status", f), st.get(f))
    return errs


# ---------------------------------------------------------------------------
# CronJob

_TZ_CHARS = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")


def validate_time_zone(tz: Any, path: str) -> Errs:
    if tz is None:
        return []
    tz = s_(tz)
    if not tz:
        return [invalid(path, tz, "timeZone must be nil or non-empty string")]
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_CHARS.fullmatch(part):
            return [invalid(path, tz, f"unknown time zone {tz}")]
    errs: Errs = []
    if tz.lower() == "local":
        errs.append(invalid(path, tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
    err = load_location_error(tz)
    if err:
        errs.append(invalid(path, tz, err))
    return errs


def validate_schedule(schedule: str, allow_tz: bool, time_zone: Any, path: str) -> Errs:
    errs: Errs = []
    try:
        parse_schedule(schedule)
    except CronError as e:
        errs.append(invalid(path, schedule, str(e)))
    if allow_tz and "TZ" in schedule and time_zone is not None:
        errs.append(invalid(path, schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    elif not allow_tz and "TZ" in schedule:
        errs.append(invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return errs


def _job_template(jt: dict[str, Any], path: str) -> Errs:
    spec = d_(jt.get("spec"))
    errs = _job_spec_common(spec, child(path, "spec"))
    if spec.get("selector") is not None:
        errs.append(invalid(child(path, "spec.selector"), go_label_selector(spec.get("selector")),
                            "`selector` will be auto-generated"))
    if spec.get("manualSelector") is True:
        errs.append(not_supported(child(path, "spec.manualSelector"), True, ("nil", "false")))
    return errs


def _cron_spec(spec: dict[str, Any], old_spec: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    sched = s_(spec.get("schedule"))
    if not sched:
        errs.append(required("spec.schedule", ""))
    else:
        allow_tz = old_spec is not None and "TZ" in s_(old_spec.get("schedule"))
        errs += validate_schedule(sched, allow_tz, spec.get("timeZone"), "spec.schedule")
    if spec.get("startingDeadlineSeconds") is not None:
        errs += nonnegative("spec.startingDeadlineSeconds", spec.get("startingDeadlineSeconds"))
    if old_spec is None or old_spec.get("timeZone") != spec.get("timeZone"):
        errs += validate_time_zone(spec.get("timeZone"), "spec.timeZone")
    cp = spec.get("concurrencyPolicy")
    if not cp:
        errs.append(required("spec.concurrencyPolicy", ""))
    elif cp not in ("Allow", "Forbid", "Replace"):
        errs.append(not_supported("spec.concurrencyPolicy", cp, ("Allow", "Forbid", "Replace")))
    errs += _job_template(d_(spec.get("jobTemplate")), "spec.jobTemplate")
    for f in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        if spec.get(f) is not None:
            errs += nonnegative(child("spec", f), spec.get(f))
    return errs


def validate_cron_job(obj: dict[str, Any]) -> Errs:
    meta = d_(obj.get("metadata"))
    errs = validate_object_meta(meta, True, name_is_dns_subdomain)
    errs += _cron_spec(d_(obj.get("spec")), None)
    name = s_(meta.get("name"))
    if len(name) > 52:
        errs.append(invalid("metadata.name", name, "must be no more than 52 characters"))
    return errs


def validate_cron_job_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _cron_spec(d_(new.get("spec")), d_(old.get("spec")))
    return errs


def validate_cron_job_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata"))
