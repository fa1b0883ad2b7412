"""The CRI log reader: parsing, options as kubelet applies them, following a growing and rotated file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from k8py.kubelet.logs import (
    LogOptions,
    format_timestamp,
    log_files,
    parse_cri_line,
    parse_timestamp,
    read_logs,
    stream_logs,
)

T0 = 1_796_000_000  # 2026-11-30T...Z, whole seconds


def ts(sec: float, nanos: int = 0) -> str:
    """A timestamp as conmon writes it: local time with a numeric offset (here +00:00)."""
    whole = int(sec)
    import datetime as dt

    base = dt.datetime.fromtimestamp(whole, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}+00:00"


def rec(sec: float, content: str, stream: str = "stdout", tag: str = "F", nanos: int = 0) -> str:
    return f"{ts(sec, nanos)} {stream} {tag} {content}\n"


def write(path: Path, *records: str, mode: str = "a") -> None:
    with open(path, mode) as f:
        f.write("".join(records))


def read_all(path: Path, **kw: object) -> bytes:
    return b"".join(read_logs(str(path), LogOptions(**kw)))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- parsing


def test_parse_full_and_partial_records() -> None:
    m = parse_cri_line(b"2026-12-06T13:39:42.123456789+00:00 stdout F hello world\n")
    assert (m.stream, m.partial, m.content) == ("stdout", False, b"hello world\n")
    assert m.timestamp_ns % 1_000_000_000 == 123456789
    p = parse_cri_line(b"2026-12-06T13:39:42.000000001Z stderr P part\n")
    assert (p.stream, p.partial, p.content) == ("stderr", True, b"part")
    empty = parse_cri_line(b"2026-12-06T13:39:42Z stdout F \n")
    assert empty.content == b"\n"
    for bad in (b"garbage\n", b"2026-12-06T13:39:42Z\n", b"2026-12-06T13:39:42Z stdin F x\n",
                b"2026-13-06T13:39:42Z stdout F x\n", b"2026-12-06T13:39:42Z stdout\n"):
        with pytest.raises(ValueError):
            parse_cri_line(bad)


def test_timestamps_keep_nanoseconds_and_offsets() -> None:
    a = parse_timestamp(b"2026-12-06T13:39:42.5+01:00")
    b = parse_timestamp(b"2026-12-06T12:39:42.500000000Z")
    assert a == b
    assert format_timestamp(b) == "2026-12-06T12:39:42.5Z"  # Go trims trailing zeros
    assert format_timestamp(parse_timestamp(b"2026-12-06T12:39:42.000000000Z")) == "2026-12-06T12:39:42Z"
    assert format_timestamp(parse_timestamp(b"2026-12-06T12:39:42.123456789-02:30")) == \
        "2026-12-06T15:09:42.123456789Z"


# --------------------------------------------------------------------------- options


def test_partial_lines_join_and_streams_interleave(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, rec(T0, "one"), rec(T0 + 1, "lo", tag="P"), rec(T0 + 1, "ng line"),
          rec(T0 + 2, "oops", stream="stderr"), rec(T0 + 3, "last"))
    assert read_all(log) == b"one\nlong line\noops\nlast\n"


def test_timestamps_once_per_line(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, rec(T0, "a", nanos=120000000), rec(T0 + 1, "b1", tag="P"), rec(T0 + 2, "b2"))
    out = read_all(log, timestamps=True).decode()
    assert out == f"{format_timestamp(T0 * 10**9 + 120000000)} a\n{format_timestamp((T0 + 1) * 10**9)} b1b2\n"
    assert out.startswith(ts(T0)[:19]) and ".12Z a\n" in out


def test_tail_counts_records_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, *(rec(T0 + i, f"line {i}") for i in range(10)))
    assert read_all(log, tail_lines=3) == b"line 7\nline 8\nline 9\n"
    assert read_all(log, tail_lines=0) == b""
    assert read_all(log, tail_lines=1) == b"line 9\n"
    assert read_all(log, tail_lines=10) == read_all(log) == read_all(log, tail_lines=50)
    # a last record still being written (no newline yet) is a record too
    write(log, rec(T0 + 20, "half").rstrip("\n"))
    assert read_all(log, tail_lines=2) == b"line 9\nhalf\n"


def test_tail_over_a_large_file(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, *(rec(T0, f"{i:06d}" + "x" * 100) for i in range(3000)))  # > 64 KiB blocks
    out = read_all(log, tail_lines=1500).splitlines()
    assert len(out) == 1500 and out[0].startswith(b"001500") and out[-1].startswith(b"002999")


def test_since_skips_older_records(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, *(rec(T0 + i, f"l{i}") for i in range(5)))
    assert read_all(log, since=T0 + 3) == b"l3\nl4\n"
    assert read_all(log, since=T0 + 2.5) == b"l3\nl4\n"
    assert read_all(log, since=T0 + 100) == b""
    assert read_all(log, since=T0 + 1, tail_lines=2) == b"l3\nl4\n"  # tail first, then since


def test_limit_bytes_cuts_output(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, *(rec(T0 + i, f"line{i}") for i in range(5)))
    assert read_all(log, limit_bytes=8) == b"line0\nli"
    assert read_all(log, limit_bytes=1) == b"l"
    with_ts = read_all(log, limit_bytes=40, timestamps=True)
    assert len(with_ts) == 40 and with_ts.startswith(format_timestamp(T0 * 10**9).encode() + b" line0\n")


def test_bad_options_refused() -> None:
    with pytest.raises(ValueError, match="tail_lines"):
        LogOptions(tail_lines=-1)
    with pytest.raises(ValueError, match="limit_bytes"):
        LogOptions(limit_bytes=0)


def test_malformed_records_skipped_missing_file_empty(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    assert read_all(log) == b""
    write(log, rec(T0, "good"), "not a record\n", rec(T0 + 1, "also good"))
    assert read_all(log) == b"good\nalso good\n"


def test_rotated_files_read_oldest_first(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(tmp_path / "0.log.2", rec(T0, "oldest"))
    write(tmp_path / "0.log.1", rec(T0 + 1, "older"))
    write(tmp_path / "0.log.20261206-120000.gz", "compressed, not read\n")
    write(log, rec(T0 + 2, "current"))
    same = T0 + 5
    for name in ("0.log.2", "0.log.1"):
        os.utime(tmp_path / name, (same, same))  # equal mtimes: the numbers decide
    assert log_files(str(log)) == [str(tmp_path / "0.log.2"), str(tmp_path / "0.log.1"), str(log)]
    assert read_all(log) == b"oldest\nolder\ncurrent\n"
    assert read_all(log, tail_lines=2) == b"older\ncurrent\n"


# --------------------------------------------------------------------------- follow


async def collect_until(agen: object, want: bytes, timeout: float = 10.0) -> bytes:
    got = b""

    async def run() -> None:
        nonlocal got
        async for piece in agen:  # type: ignore[attr-defined]
            got += piece
            if want in got:
                return

    await asyncio.wait_for(run(), timeout)
    return got


async def test_follow_reads_growth_and_stops_when_exited(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, rec(T0, "first"))
    exited = asyncio.Event()
    out: list[bytes] = []

    async def follow() -> None:
        async for piece in stream_logs(str(log), LogOptions(follow=True), exited=exited.is_set,
                                       poll_interval=0.02):
            out.append(piece)

    task = asyncio.create_task(follow())
    loop = asyncio.get_running_loop()

    async def until(cond: object, what: str) -> None:
        deadline = loop.time() + 10
        while not cond():  # type: ignore[operator]
            assert loop.time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)

    await until(lambda: b"".join(out) == b"first\n", "the first line")
    write(log, rec(T0 + 1, "sec", tag="P"))
    write(log, rec(T0 + 1, "ond"))
    await until(lambda: b"".join(out) == b"first\nsecond\n", "the appended line")
    assert not task.done()
    # the container writes its last words and exits: they are read before the follower ends
    write(log, rec(T0 + 2, "bye"))
    exited.set()
    await asyncio.wait_for(task, 10)
    assert b"".join(out) == b"first\nsecond\nbye\n"


async def test_follow_survives_rotation_and_truncation(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, rec(T0, "a"))
    done = False

    async def exited() -> bool:  # an async condition works too
        return done

    out: list[bytes] = []

    async def follow() -> None:
        async for piece in stream_logs(str(log), LogOptions(follow=True), exited=exited, poll_interval=0.02):
            out.append(piece)

    task = asyncio.create_task(follow())
    loop = asyncio.get_running_loop()

    async def until(want: bytes) -> None:
        deadline = loop.time() + 10
        while b"".join(out) != want:
            assert loop.time() < deadline, f"timed out waiting for {want!r}, have {b''.join(out)!r}"
            await asyncio.sleep(0.01)

    await until(b"a\n")
    # kubelet-style rotation: the file is renamed and a new one started; a line written to the
    # old file just before the rename is not lost
    write(log, rec(T0 + 1, "b"))
    os.rename(log, tmp_path / "0.log.20261206-000000")
    write(log, rec(T0 + 2, "c"))
    await until(b"a\nb\nc\n")
    # conmon's --log-size-max: a fresh file renamed over the path
    tmp = tmp_path / "0.log.tmp"
    write(tmp, rec(T0 + 3, "d"), rec(T0 + 3, "d2"))
    os.rename(tmp, log)
    await until(b"a\nb\nc\nd\nd2\n")
    # truncation in place (copytruncate): noticed, as by tail -F, because the file is now
    # shorter than what was read of it
    os.truncate(log, 0)
    write(log, rec(T0 + 4, "e"))
    await until(b"a\nb\nc\nd\nd2\ne\n")
    done = True
    await asyncio.wait_for(task, 10)


async def test_follow_from_tail_with_limit(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log, *(rec(T0 + i, f"x{i}") for i in range(5)))
    gen = stream_logs(str(log), LogOptions(follow=True, tail_lines=1, limit_bytes=7), poll_interval=0.02)
    got = await collect_until(gen, b"x4\n")
    assert got == b"x4\n"
    write(log, rec(T0 + 9, "more"))
    # the limit (7 bytes) ends the stream by itself, with no exit condition
    rest = b""
    async for piece in gen:
        rest += piece
    assert got + rest == b"x4\nmore"


async def test_follow_waits_for_a_file_not_there_yet(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    gen = stream_logs(str(log), LogOptions(follow=True), poll_interval=0.02)
    first = asyncio.ensure_future(gen.__anext__())
    await asyncio.sleep(0.1)  # let the follower poll a missing file a few times
    assert not first.done()
    write(log, rec(T0, "hello"))
    assert await asyncio.wait_for(first, 10) == b"hello\n"
    await gen.aclose()
