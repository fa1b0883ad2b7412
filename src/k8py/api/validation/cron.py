"""Cron schedules as Kubernetes' CronJob reads them (``robfig/cron/v3``'s
standard parser): five fields, month and weekday names, ``*``/``?``, ranges,
steps, lists, ``@hourly``-style descriptors, ``@every <duration>``, and an
optional ``TZ=``/``CRON_TZ=`` prefix. Errors carry the parser's own wording,
which Kubernetes puts in its field error. :meth:`CronSchedule.next` gives the
next activation, for the CronJob controller.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

from k8py.api.gotext import DurationError, parse_duration

_MINUTES = (0, 59, None)
_HOURS = (0, 23, None)
_DOM = (1, 31, None)
_MONTHS = (1, 12, {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))})
_DOW = (0, 6, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))})
_STAR = 1 << 63

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    pass


def _atoi(expr: str) -> int:
    # strconv.Atoi: optional sign, decimal digits only
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax')
    n = int(expr)
    if not -(2**63) <= n < 2**63:
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": value out of range')
    if n < 0:
        raise CronError(f"negative number ({n}) not allowed: {expr}")
    return n


def _int_or_name(expr: str, names: dict[str, int] | None) -> int:
    if names and expr.lower() in names:
        return names[expr.lower()]
    return _atoi(expr)


def _range(expr: str, bounds: tuple[int, int, dict[str, int] | None]) -> int:
    lo, hi, names = bounds
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    single = len(low_high) == 1
    extra = 0
    if low_high[0] in ("*", "?"):
        start, end = lo, hi
        extra = _STAR
    else:
        start = _int_or_name(low_high[0], names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if single:
            end = hi
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < lo:
        raise CronError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise CronError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    bits = 0
    for v in range(start, end + 1, step):
        bits |= 1 << v
    return bits | extra


def _field(text: str, bounds: tuple[int, int, dict[str, int] | None]) -> int:
    bits = 0
    for expr in (p for p in text.split(",") if p):
        bits |= _range(expr, bounds)
    return bits


@dataclass(frozen=True, slots=True)
class CronSchedule:
    minute: int = 0
    hour: int = 0
    dom: int = 0
    month: int = 0
    dow: int = 0
    tz: str | None = None  # from a TZ=/CRON_TZ= prefix
    every: float | None = None  # seconds, for "@every"

    def _day_matches(self, t: dt.datetime) -> bool:
        dom_match = bool((1 << t.day) & self.dom)
        dow_match = bool((1 << ((t.weekday() + 1) % 7)) & self.dow)
        if self.dom & _STAR or self.dow & _STAR:
            return dom_match and dow_match
        return dom_match or dow_match

    def next(self, after: dt.datetime, default_tz: dt.tzinfo | None = None) -> dt.datetime | None:
        """The first activation strictly after ``after`` (an aware datetime), or None within 5 years."""
        if after.tzinfo is None:
            after = after.replace(tzinfo=dt.UTC)
        if self.every is not None:
            step = max(1.0, float(int(self.every)))
            return after.replace(microsecond=0) + dt.timedelta(seconds=step)
        tz: dt.tzinfo = zoneinfo.ZoneInfo(self.tz) if self.tz else (default_tz or after.tzinfo or dt.UTC)
        orig = after.tzinfo
        # Work in wall-clock time of the schedule's zone.
        t = after.astimezone(tz).replace(tzinfo=None, microsecond=0) + dt.timedelta(seconds=1)
        year_limit = t.year + 5
        added = False
        while True:
            if t.year > year_limit:
                return None
            wrapped = False
            while not (1 << t.month) & self.month:
                if not added:
                    added = True
                    t = t.replace(day=1, hour=0, minute=0, second=0)
                t = (t.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
                if t.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(t):
                if not added:
                    added = True
                    t = t.replace(hour=0, minute=0, second=0)
                t += dt.timedelta(days=1)
                if t.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.hour) & self.hour:
                if not added:
                    added = True
                    t = t.replace(minute=0, second=0)
                t += dt.timedelta(hours=1)
                if t.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << t.minute) & self.minute:
                if not added:
                    added = True
                    t = t.replace(second=0)
                t += dt.timedelta(minutes=1)
                if t.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            if t.second != 0:
                # Standard schedules fire at second 0 only.
                if not added:
                    added = True
                t = t.replace(second=0) + dt.timedelta(minutes=1)
                continue
            return t.replace(tzinfo=tz).astimezone(orig)


def parse_schedule(spec: str) -> CronSchedule:
    """Parse like cron.ParseStandard; raises CronError with robfig/cron's message."""
    if not spec:
        raise CronError("empty spec string")
    tz = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        i = spec.find(" ")
        eq = spec.find("=")
        name = spec[eq + 1:i] if i >= 0 else spec[eq + 1:]
        err = load_location_error(name)
        if err:
            raise CronError(f"provided bad location {name}: {err}")
        tz = name if name not in ("", "UTC") else "UTC"
        spec = spec[i:].strip() if i >= 0 else ""
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            return _parse_fields(_DESCRIPTORS[spec].split(), tz)
        if spec.startswith("@every "):
            try:
                secs = parse_duration(spec[len("@every "):])
            except DurationError as e:
                raise CronError(f"failed to parse duration {spec}: {e}") from None
            return CronSchedule(tz=tz, every=secs)
        raise CronError(f"unrecognized descriptor: {spec}")
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    return _parse_fields(fields, tz)


def _parse_fields(fields: list[str], tz: str | None) -> CronSchedule:
    return CronSchedule(
        minute=_field(fields[0], _MINUTES),
        hour=_field(fields[1], _HOURS),
        dom=_field(fields[2], _DOM),
        month=_field(fields[3], _MONTHS),
        dow=_field(fields[4], _DOW),
        tz=tz,
    )


def load_location_error(name: str) -> str | None:
    """Go's time.LoadLocation error text for ``name``, or None when it loads."""
    if name in ("", "UTC", "Local"):
        return None
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        return f"unknown time zone {name}"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {name}"
    return None
