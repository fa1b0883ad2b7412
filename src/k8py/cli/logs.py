"""Logging for the k8py programs: timestamped lines on stderr, set up once per process."""

from __future__ import annotations

import datetime as dt
import logging
import sys

__all__ = ["setup_logging"]

_MARK = "_k8py_handler"


class _Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # ISO 8601 in local time with milliseconds and the UTC offset: sortable and unambiguous.
        return dt.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(debug: bool = False) -> None:
    """Send log records to stderr as ``<time> <LEVEL> <logger>: <message>``.

    Idempotent: a second call only adjusts the level, so calling ``main()`` twice in one
    process (tests do) does not print every line twice.
    """
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if any(getattr(h, _MARK, False) for h in root.handlers):
        return
    handler = _StderrHandler()
    setattr(handler, _MARK, True)
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    # The API server's line per HTTP request (k8py.apiserver.httplog, kube's httplog) is a debug
    # record, so it comes with --debug only: it would drown the log and cost time otherwise.
    # aiohttp's own access log is off (the API server uses httplog); keep it quiet if enabled.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if debug else logging.WARNING)
