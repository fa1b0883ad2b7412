"""How long ``k8py server`` takes from exec to ready, and what its imports cost.

N starts (default 5) of ``k8py server --disable-agent`` on loopback, each on a fresh data
directory (certificates, keys and the store made on the way) and then again on that same
directory (a restart: everything already there). For each start, the time from exec to the first
``200`` from ``/readyz`` (every readiness check passes) and then from ``/livez``, and the
process's CPU seconds (user + system) at that moment. Then the import time of
``k8py.cli.process`` (``python -X importtime``): its total and the modules that cost most
(cumulative, microseconds).

Python's compiled bytecode is what a user's starts find (``pip install`` writes it, an editable
install on its first import): the servers run with a private ``PYTHONPYCACHEPREFIX`` warmed by one
start that is not counted, whatever the caller's ``PYTHONDONTWRITEBYTECODE``. ``--no-bytecode``
measures starts that compile every module from source instead (``PYTHONDONTWRITEBYTECODE=1`` and
no ``__pycache__``, as in this machine's CI sessions).

Run: ``.venv/bin/python bench/server_start.py [--starts 5] [--top 25] [--no-bytecode]``; prints
JSON. The machine is shared and noisy: compare two builds in the same run of this script,
alternating (``PYTHONPATH=<other tree>/src`` runs another tree's k8py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POLL = 0.01  # between two probes of /readyz: short against the times measured, light on 2 cores
DEADLINE = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def status_of(url: str, ctx: ssl.SSLContext) -> int | None:
    """The HTTP status of a GET, or None while nothing answers."""
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ssl.SSLError):
        return None


def wait_ok(url: str, ctx: ssl.SSLContext, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while status_of(url, ctx) != 200:
        if proc.poll() is not None:
            raise RuntimeError(f"k8py server exited with {proc.returncode} before {url} answered 200")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {DEADLINE}s")
        time.sleep(POLL)


def one_start(data_dir: Path, env: dict[str, str]) -> dict[str, float]:
    port = free_port()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the server's own CA is made by this start; only timing matters here
    base = f"https://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "k8py.cli", "server", "--data-dir", str(data_dir), "--https-listen-port", str(port),
           "--bind-address", "127.0.0.1", "--disable-agent"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ok(f"{base}/readyz", ctx, proc, t0 + DEADLINE)
        ready = time.monotonic() - t0
        cpu = cpu_seconds(proc.pid)
        wait_ok(f"{base}/livez", ctx, proc, t0 + DEADLINE)
        live = time.monotonic() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"readyz_s": round(ready, 3), "livez_s": round(live, 3), "cpu_s_at_ready": round(cpu, 2)}


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    for key in ("readyz_s", "livez_s", "cpu_s_at_ready"):
        values = [r[key] for r in runs]
        out[key] = {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}
    return out


def import_times(top: int, env: dict[str, str]) -> dict[str, Any]:
    """``python -X importtime`` of the server's module: total and the costliest (cumulative us)."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", "import k8py.cli.process"], cwd=ROOT, env=env,
                       capture_output=True, text=True, check=True)
    rows: list[tuple[int, int, str]] = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "| cumulative" in line:
            continue
        self_us, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((int(cumulative), int(self_us), name.rstrip()))
    total = next(c for c, _, n in rows if n.strip() == "k8py.cli.process")
    rows.sort(reverse=True)
    return {"total_us": total, "modules": [{"module": n.strip(), "depth": (len(n) - len(n.lstrip())) // 2,
                                            "cumulative_us": c, "self_us": s} for c, s, n in rows[:top]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--top", type=int, default=25, help="how many of the costliest imports to list")
    ap.add_argument("--no-bytecode", action="store_true", help="compile every module from source at each start")
    args = ap.parse_args()
    env = dict(os.environ)
    cache = Path(tempfile.mkdtemp(prefix="k8py-start-pycache-"))
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(cache)  # empty and never written: nothing compiled is found
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    fresh: list[dict[str, float]] = []
    restart: list[dict[str, float]] = []
    try:
        for i in range(args.starts + (0 if args.no_bytecode else 1)):
            data = Path(tempfile.mkdtemp(prefix="k8py-start-"))
            try:
                runs = (one_start(data, env), one_start(data, env))
                if i or args.no_bytecode:  # the first start with bytecode only wrote it
                    fresh.append(runs[0])
                    restart.append(runs[1])
            finally:
                shutil.rmtree(data, ignore_errors=True)
        imports = import_times(args.top, env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps({"bytecode": not args.no_bytecode, "fresh": summary(fresh), "restart": summary(restart),
                      "imports": imports}, indent=1))


if __name__ == "__main__":
    main()
