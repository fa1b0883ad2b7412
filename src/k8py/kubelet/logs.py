"""Container logs in the CRI format, read as kubelet's ``ReadLogs`` reads them.

The format (written by conmon for the runc runtime, and by every CRI runtime): one record a line,

    <RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\\n

``F`` ends a line of the container's output; ``P`` is a part of a longer line (conmon writes what
one read from the pipe gave it, and a line without its newline yet is written as ``P`` with a
newline added that is not part of the output). The output of a read is the content bytes in
order: an ``F`` record's content keeps its newline, a ``P`` record's loses the added one, so the
parts of a line join up again.

Options as kube's ``PodLogOptions`` (and kubelet's ``NewLogOptions``):

- ``tail_lines``: start at the N-th record from the end (kubelet counts records, so a long line
  written as parts counts once per part, as there);
- ``since`` (epoch seconds, from ``sinceSeconds`` or ``sinceTime``): records older are skipped;
- ``timestamps``: each output line starts with the record's time, RFC3339Nano in UTC as Go
  prints it (``2026-12-06T13:39:42.12345Z``: trailing zeros dropped), then a space; the parts of a
  long line after the first carry no timestamp of their own (kubelet does the same);
- ``limit_bytes``: output stops after that many bytes (the last piece cut);
- ``follow``: keep reading as the file grows until the ``exited`` condition says the container
  is gone and the file is drained.

Files and rotation. conmon's ``--log-size-max`` does not keep old files: when the next write would
pass the limit it opens ``<path>.tmp`` truncated and renames it over ``<path>`` (the old content
is gone). Kubelet's own rotation (``containerLogMaxSize``) renames ``0.log`` to
``0.log.<YYYYMMDD-hhmmss>`` and asks the runtime to reopen; logrotate-style tools make
``0.log.1``, ``0.log.2``. Rotated siblings that are plain files (not ``.gz``, not ``.tmp``) are
read first, oldest (by modification time) first, then the live file; kubelet itself reads the live
file only, so a read here shows at least what kubelet's would. A follower notices when the path
names a new file (another inode: conmon's rename, kubelet's rotation), drains the old one and goes
on at the start of the new one; and when the file shrank in place (truncation), it starts over at
its beginning.

Nothing here blocks the event loop for long: :func:`read_logs` is synchronous (for a thread), and
:func:`stream_logs` does its file reads in a worker thread in bounded pieces.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import os
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = [
    "LogMessage",
    "LogOptions",
    "format_timestamp",
    "log_files",
    "parse_cri_line",
    "parse_timestamp",
    "read_logs",
    "stream_logs",
]

# How much one worker-thread read handles before the loop gets control back.
READ_CHUNK = 256 * 1024
# The longest record we accept; a longer "line" is not a CRI record (conmon writes at most its
# 8 KiB buffer a record).
MAX_RECORD = 1 << 20
DEFAULT_POLL = 0.1

Exited = Callable[[], bool | Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class LogOptions:
    tail_lines: int | None = None  # None: all
    since: float | None = None  # epoch seconds; None: from the start
    timestamps: bool = False
    limit_bytes: int | None = None  # None: no limit
    follow: bool = False

    def __post_init__(self) -> None:
        if self.tail_lines is not None and self.tail_lines < 0:
            raise ValueError("tail_lines must be greater than or equal to 0")
        if self.limit_bytes is not None and self.limit_bytes < 1:
            raise ValueError("limit_bytes must be greater than 0")


@dataclass(frozen=True, slots=True)
class LogMessage:
    timestamp_ns: int  # since the epoch
    stream: str  # "stdout" | "stderr"
    partial: bool
    content: bytes


# --------------------------------------------------------------------------- parsing

_TS = re.compile(rb"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(raw: bytes) -> int:
    """An RFC3339(Nano) timestamp as nanoseconds since the epoch (Python's datetime stops at
    microseconds; conmon writes nanoseconds)."""
    m = _TS.match(raw)
    if m is None:
        raise ValueError(f"not an RFC3339 timestamp: {raw[:64]!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or b"").ljust(9, b"0")
    tz = m.group(8)
    offset = 0
    if tz != b"Z":
        sign = -1 if tz[:1] == b"-" else 1
        offset = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    try:
        base = dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.UTC)
    except ValueError as e:
        raise ValueError(f"not an RFC3339 timestamp: {raw[:64]!r}: {e}") from None
    return (int(base.timestamp()) - offset) * 1_000_000_000 + int(frac)


def format_timestamp(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC time: fraction without trailing zeros, none if zero."""
    sec, frac = divmod(ns, 1_000_000_000)
    text = dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def parse_cri_line(line: bytes) -> LogMessage:
    """One CRI record (with or without its ending newline) as kubelet's ``parseCRILog`` reads it."""
    ts_end = line.find(b" ")
    if ts_end < 0:
        raise ValueError("timestamp is not found")
    ts = parse_timestamp(line[:ts_end])
    rest = line[ts_end + 1:]
    st_end = rest.find(b" ")
    if st_end < 0:
        raise ValueError("stream type is not found")
    stream = rest[:st_end].decode("ascii", "replace")
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"unexpected stream type {stream!r}")
    rest = rest[st_end + 1:]
    tag_end = rest.find(b" ")
    if tag_end < 0:
        # kubelet accepts an empty content only with its separator; a bare tag is malformed
        raise ValueError("log tag is not found")
    tags = rest[:tag_end].split(b":")
    partial = tags[0] == b"P"
    content = rest[tag_end + 1:]
    if partial and content.endswith(b"\n"):
        content = content[:-1]  # the newline conmon added after a part is not output
    return LogMessage(ts, stream, partial, content)


# --------------------------------------------------------------------------- files


def log_files(path: str) -> list[str]:
    """The files that hold ``path``'s log, oldest first: rotated siblings, then ``path`` itself
    (listed even when it does not exist yet)."""
    directory, base = os.path.split(path)
    rotated: list[tuple[float, str, str]] = []
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        names = []
    for name in names:
        if not name.startswith(base + ".") or name.endswith((".gz", ".tmp")):
            continue
        full = os.path.join(directory, name)
        try:
            st = os.stat(full)
        except FileNotFoundError:
            continue
        if os.path.isfile(full):
            rotated.append((st.st_mtime, _rotation_key(name[len(base) + 1:]), full))
    rotated.sort()
    return [r[2] for r in rotated] + [path]


def _rotation_key(suffix: str) -> str:
    # equal mtimes (a fast rotation): numbered files count down in age (.2 older than .1),
    # kubelet's dated ones up; a key that sorts older first in both
    if suffix.isdigit():
        return f"0{10**9 - int(suffix):010d}"
    return f"1{suffix}"


def _tail_start(files: list[str], n: int) -> tuple[int, int]:
    """(file index, byte offset) where the last ``n`` records start, reading backwards."""
    if n == 0:
        last = len(files) - 1
        return last, _size(files[last])
    remaining = n
    for idx in range(len(files) - 1, -1, -1):
        try:
            with open(files[idx], "rb") as f:
                off = _tail_in_file(f, remaining)
        except FileNotFoundError:
            continue
        if isinstance(off, int):
            return idx, off
        remaining -= off[0]  # found that many lines, need more from older files
    return 0, 0


def _tail_in_file(f: BinaryIO, n: int) -> int | tuple[int]:
    """Offset of the start of the last ``n`` lines of ``f``, or ``(lines found,)`` when it has fewer."""
    end = f.seek(0, os.SEEK_END)
    pos = end
    found = 0
    # a final line without its newline (a record being written) counts as a line too
    f.seek(max(end - 1, 0))
    skip_last_nl = end > 0 and f.read(1) == b"\n"
    block = 64 * 1024
    while pos > 0:
        start = max(pos - block, 0)
        f.seek(start)
        data = f.read(pos - start)
        hi = len(data)
        if pos == end and skip_last_nl:
            hi -= 1
        while True:
            i = data.rfind(b"\n", 0, hi)
            if i < 0:
                break
            found += 1
            if found == n:
                return start + i + 1
            hi = i
        pos = start
    total = found + 1 if end > 0 else 0  # the first record starts at offset 0
    return 0 if total >= n else (total,)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------- the writer


class _Writer:
    """Options applied to messages in order: since, timestamps, the byte limit."""

    __slots__ = ("new_line", "opts", "remain", "since_ns")

    def __init__(self, opts: LogOptions) -> None:
        self.opts = opts
        self.since_ns = int(opts.since * 1_000_000_000) if opts.since is not None else None
        self.remain = opts.limit_bytes if opts.limit_bytes is not None else -1
        # per stream: does the next message start a line (and so get a timestamp)?
        self.new_line = {"stdout": True, "stderr": True}

    @property
    def done(self) -> bool:
        return self.remain == 0

    def write(self, msg: LogMessage) -> bytes:
        if self.done or (self.since_ns is not None and msg.timestamp_ns < self.since_ns):
            return b""
        out = msg.content
        if self.opts.timestamps and self.new_line.get(msg.stream, True):
            out = format_timestamp(msg.timestamp_ns).encode() + b" " + out
        self.new_line[msg.stream] = not msg.partial
        if self.remain >= 0:
            out = out[: self.remain]
            self.remain -= len(out)
        return out


class _Reader:
    """Reads records from the log files from a start position on; remembers where it is so that a
    follower can call :meth:`read` again as the file grows."""

    def __init__(self, path: str, opts: LogOptions) -> None:
        self.path = path
        self.writer = _Writer(opts)
        files = log_files(path)
        idx, off = (0, 0) if opts.tail_lines is None else _tail_start(files, opts.tail_lines)
        self.pending = files[idx:]  # files still to read; the last one is the live path
        self.offset = off
        self.f: BinaryIO | None = None
        self.ino: int | None = None
        self.buf = b""  # an incomplete record at the end of what was read

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None

    def _open_next(self) -> bool:
        while self.pending:
            name = self.pending[0]
            try:
                f = open(name, "rb")  # noqa: SIM115 - kept open across reads while following
            except FileNotFoundError:
                if len(self.pending) == 1:
                    return False  # the live file does not exist (yet)
                self.pending.pop(0)
                self.offset = 0
                continue
            f.seek(self.offset)
            self.f, self.ino = f, os.fstat(f.fileno()).st_ino
            return True
        return False

    def read(self, limit: int = READ_CHUNK) -> bytes:
        """Output for up to ``limit`` bytes of the files; b"" when nothing is there now."""
        out: list[bytes] = []
        budget = limit
        while budget > 0 and not self.writer.done:
            if self.f is None and not self._open_next():
                break
            assert self.f is not None
            data = self.f.read(min(budget, READ_CHUNK))
            if data:
                budget -= len(data)
                out.append(self._records(self.buf + data))
                continue
            # the end of this file
            if len(self.pending) > 1:  # a rotated file: on to the next one
                out.append(self._finish_file(next_file=True))
            elif self._replaced() or self._truncated():
                # the path names a new file (rotated, or conmon's size limit), or the file was
                # truncated in place: what was left was read above; go on at the new start
                out.append(self._finish_file(next_file=False))
            else:
                break
        return b"".join(out)

    def _finish_file(self, *, next_file: bool) -> bytes:
        out = self.flush_partial()  # a last record without its newline (its writer died mid-line)
        self.close()
        if next_file:
            self.pending.pop(0)
        self.offset = 0
        return out

    def _replaced(self) -> bool:
        try:
            return os.stat(self.path).st_ino != self.ino
        except FileNotFoundError:
            return False

    def _truncated(self) -> bool:
        assert self.f is not None
        return os.fstat(self.f.fileno()).st_size < self.f.tell()

    def _records(self, data: bytes) -> bytes:
        out: list[bytes] = []
        start = 0
        while not self.writer.done:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            line = data[start:nl + 1]
            start = nl + 1
            try:
                msg = parse_cri_line(line)
            except ValueError:
                continue  # kubelet logs and skips a malformed record
            piece = self.writer.write(msg)
            if piece:
                out.append(piece)
        rest = data[start:]
        if len(rest) > MAX_RECORD:
            rest = b""  # not a record: drop it rather than grow without bound
        self.buf = rest
        return b"".join(out)

    def flush_partial(self) -> bytes:
        """A last record without its newline, as a whole record (the end of a file, or the end
        of the log when the container exited)."""
        if not self.buf:
            return b""
        data, self.buf = self.buf + b"\n", b""
        return self._records(data)


def read_logs(path: str, opts: LogOptions = LogOptions()) -> Iterator[bytes]:
    """What is in the log now (``opts.follow`` is not looked at), in pieces."""
    r = _Reader(path, opts)
    try:
        while True:
            piece = r.read()
            if not piece:
                break
            yield piece
        tail = r.flush_partial()
        if tail:
            yield tail
    finally:
        r.close()


async def _is_true(cond: Exited) -> bool:
    v = cond()
    if inspect.isawaitable(v):
        v = await v
    return bool(v)


async def stream_logs(path: str, opts: LogOptions = LogOptions(), *,
                      exited: Exited | None = None, poll_interval: float = DEFAULT_POLL) -> AsyncGenerator[bytes, None]:
    """The log's content as :func:`read_logs` gives it; with ``opts.follow``, then what is
    appended, until ``exited()`` is true (checked when the file has nothing new, then the file is
    drained once more), the byte limit is reached, or the consumer stops iterating.

    ``exited`` may be a plain or an async callable; without one a follower never ends by itself.
    The file is polled every ``poll_interval`` seconds while it has nothing new.
    """
    r = _Reader(path, opts)
    try:
        while True:
            piece = await asyncio.to_thread(r.read)
            if piece:
                yield piece
                if r.writer.done:
                    return
                continue
            if not opts.follow or r.writer.done:
                break
            if exited is not None and await _is_true(exited):
                # the writer is gone: whatever reached the file before it went is read, then stop
                last = await asyncio.to_thread(r.read)
                if last:
                    yield last
                    if r.writer.done:
                        return
                    continue
                break
            await asyncio.sleep(poll_interval)
        tail = r.flush_partial()
        if tail:
            yield tail
    finally:
        r.close()
