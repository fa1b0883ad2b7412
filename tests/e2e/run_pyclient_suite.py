"""Run the official Python client's own e2e suite (``kubernetes/e2e_test`` of
github.com/kubernetes-client/python) against a k8py cluster with a real node agent.

The suite is not part of this repository: give the directory that holds ``e2e_test`` (a
checkout or ``git archive`` of the client's repository, ``.../kubernetes``)::

    python -m tests.e2e.run_pyclient_suite /tmp/pyclient-e2e/kubernetes [pytest args...]

What it sets up, so that the suite's pods run on a machine without Docker Hub:

- a real-node cluster (``tests/helpers/realnode.real_cluster``: the machine-wide node lock,
  ``k8py server`` with its agent, everything cleaned up and checked at the end);
- the images the suite names, built locally: ``busybox`` (the project's busybox-static image),
  ``nginx`` and ``nginx:1.15.4`` (busybox ``httpd`` on port 80 serving nginx's welcome page),
  ``k8s.gcr.io/pause:2.0`` (``sleep``) and ``python`` (the host's CPython 3.11 with its standard
  library and shared libraries);
- a plain ``docker-registry`` on loopback holding them, configured as the node's mirror of
  ``docker.io`` and ``k8s.gcr.io`` through a registries.conf that a ``skopeo`` first on the
  agent's PATH passes on (``--registries-conf``). The suite's ``:latest`` images get
  ``imagePullPolicy: Always``, so importing them would not do: the kubelet pulls them, as it
  would from Docker Hub.

The suite reads its kubeconfig from ``$KUBECONFIG``: it is pointed at the cluster's admin
kubeconfig. ``kubernetes.e2e_test`` is made importable by adding the given directory to the
installed ``kubernetes`` package's ``__path__``; pytest then runs in this process.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers.images import SKOPEO, ImageSpec, build_image, free_port
from tests.helpers.realnode import real_cluster

NGINX_HTML = (
    b"<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title></head>\n"
    b"<body>\n<h1>Welcome to nginx!</h1>\n<p>busybox httpd standing in for nginx on a k8py test node.</p>\n"
    b"</body>\n</html>\n"
)
NGINX = ImageSpec(
    ref="docker.io/library/nginx:latest",
    cmd=("httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"),
    exposed_ports=("80/tcp",),
    extra_layers=((("/usr/share/nginx/html/index.html", NGINX_HTML, 0o644),),),
)
PYTHON_EXCLUDE = {"test", "idlelib", "tkinter", "ensurepip", "lib2to3", "turtledemo", "__pycache__", "pydoc_data"}


def python_files() -> tuple[tuple[str, bytes, int], ...]:
    """The host's /usr/bin/python3.11, the shared libraries it loads and its standard library."""
    exe = Path("/usr/bin/python3.11")
    files: dict[str, tuple[bytes, int]] = {}
    data = exe.read_bytes()
    for name in ("/usr/bin/python3.11", "/usr/bin/python3", "/usr/bin/python"):
        files[name] = (data, 0o755)
    lib = Path("/usr/lib/python3.11")
    libs = {str(exe)}
    for f in lib.rglob("*"):
        rel = f.relative_to(lib)
        if any(p in PYTHON_EXCLUDE or p.startswith("config-") for p in rel.parts) or not f.is_file():
            continue
        files[str(f)] = (f.read_bytes(), 0o755 if f.suffix == ".so" else 0o644)
        if f.suffix == ".so":
            libs.add(str(f))
    for binary in sorted(libs):
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            parts = line.split()
            path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
            if path.startswith("/") and Path(path).exists() and path not in files:
                files[path] = (Path(path).read_bytes(), 0o755)
    return tuple((name, content, mode) for name, (content, mode) in sorted(files.items()))


def images() -> dict[str, ImageSpec]:
    """Repository path in the mirror -> the image."""
    return {
        "library/busybox:latest": ImageSpec(ref="docker.io/library/busybox:latest"),
        "library/nginx:latest": NGINX,
        "library/nginx:1.15.4": dataclasses.replace(NGINX, ref="docker.io/library/nginx:1.15.4"),
        "pause:2.0": ImageSpec(ref="k8s.gcr.io/pause:2.0", cmd=("sleep", "2147483647")),
        "library/python:latest": ImageSpec(ref="docker.io/library/python:latest", cmd=("python3",),
                                           extra_layers=(python_files(),)),
    }


def start_mirror(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A docker-registry without authentication on a loopback port."""
    port = free_port()
    (work / "config.yml").write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {work / 'data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    with open(work / "registry.log", "wb") as log:
        proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(work / "config.yml")], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
            return proc, f"127.0.0.1:{port}"
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("docker-registry did not start") from None
            time.sleep(0.1)


def main(argv: list[str]) -> int:
    if not argv or not (Path(argv[0]) / "e2e_test" / "base.py").exists():
        print(__doc__)
        return 2
    suite = Path(argv[0]).resolve()
    pytest_args = argv[1:]
    work = Path(tempfile.mkdtemp(prefix="k8py-pyclient-e2e-"))
    registry, host = start_mirror(work)
    try:
        for path, spec in images().items():
            archive = build_image(work / "images", spec)
            subprocess.run([SKOPEO, "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                            f"oci-archive:{archive}", f"docker://{host}/{path}"], check=True, timeout=300)
        conf = work / "registries.conf"
        conf.write_text("".join(
            f'[[registry]]\nprefix = "{r}"\nlocation = "{r}"\n'
            f'[[registry.mirror]]\nlocation = "{host}"\ninsecure = true\n\n'
            for r in ("docker.io", "k8s.gcr.io")))
        # k8s.gcr.io/pause is looked up as <mirror>/pause; docker.io's as <mirror>/library/...
        # skopeo 1.9 reads no CONTAINERS_REGISTRIES_CONF: the agent runs `skopeo` from PATH, and
        # the first one there passes the file with --registries-conf.
        shim = work / "bin"
        shim.mkdir()
        (shim / "skopeo").write_text(f'#!/bin/sh\nexec {SKOPEO} --registries-conf {conf} "$@"\n')
        (shim / "skopeo").chmod(0o755)
        os.environ["PATH"] = f"{shim}:{os.environ['PATH']}"
        with real_cluster(work / "cluster", "pyclient-e2e") as server:
            os.environ["KUBECONFIG"] = server.kubeconfig
            import kubernetes
            import pytest

            kubernetes.__path__.append(str(suite))
            print(f"cluster: {server.kubeconfig} (log {server.log_path})", flush=True)
            os.chdir(suite.parent)  # test_utils reads its manifests from kubernetes/e2e_test/test_yaml
            return int(pytest.main(["-p", "no:cacheprovider", "-rA", "--timeout=300", str(suite / "e2e_test"),
                                     *pytest_args]))
    finally:
        log = work / "cluster" / "server.log"
        if log.exists():
            shutil.copy(log, work.parent / (work.name + "-server.log"))
        registry.terminate()
        registry.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
