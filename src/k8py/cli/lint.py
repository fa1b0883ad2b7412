"""``k8py lint FILE... [-]``: check manifests offline, as the API server would, before applying them.

Each document of each file (YAML or JSON, several documents separated by ``---`` lines, ``List``
kinds item by item, ``-`` for stdin, a directory for its ``.yaml``/``.yml``/``.json`` files) goes
through what a create does on the server, without one:

- decoding, with kube's messages for syntax errors, duplicate fields, values of the wrong type
  and unknown fields (kubectl sends ``fieldValidation=Strict``: the server refuses them);
- the kind: ``no matches for kind "ReplicaSet" in version "v1"``, as kubectl says it, with the
  version that serves it (the rest of the document is then checked as that version);
- the create path of the kind's strategy (``prepare_for_create``, defaults, ``finish_create``)
  and its validation (``k8py.api.validation``): ``spec.selector: Required value`` ...;
- the seed's anti-patterns (``k8py.api.seedpolicy``, the checks the ``K8pySeedPolicy``
  admission plugin warns about), tuned by ``--checks`` or by the policy ConfigMap
  (``--policy FILE``); and what that plugin says of its own objects (a ``k8py.io/policy``
  namespace label that names no mode, a malformed ``kube-system/k8py-policy`` ConfigMap).

What the server would refuse is an *error*; an anti-pattern is a *warning* (an enforcing
namespace refuses those too). Output: one line per problem, ``FILE:DOC: SEVERITY: Kind/name:
message`` (DOC counts the file's documents from 1; a ``List``'s items are ``DOC.items[i]``),
or ``-o json``. Exit status: 0 when nothing was found, 1 when anything was (``--warnings-ok``:
only errors count), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from typing import Any

from k8py.api import defaults, fieldcheck, schema
from k8py.api import seedpolicy as sp
from k8py.api.errors import StatusError
from k8py.api.registry import KindInfo, Registry

__all__ = ["Problem", "add_parser", "lint_bytes", "run"]

STDIN = "<stdin>"
_SEPARATOR = re.compile(r"^---(\s.*)?$")  # apimachinery's YAML reader: "---", then only space or a comment
_EXTENSIONS = (".yaml", ".yml", ".json")
_YAML_LINE = re.compile(r"((?:yaml: |\n\s*)line )(\d+)")


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    document: str  # "2", or "2.items[0]" inside a List
    line: int  # the document's first line in the file
    severity: str  # "error" (the API server refuses it) or "warning" (an anti-pattern)
    check: str  # a seed policy check id, or what failed: decode, kind, field, invalid
    kind: str
    name: str
    field: str
    message: str

    def text(self) -> str:
        who = f"{self.kind or '?'}/{self.name or '?'}"
        tail = f" [{self.check}]" if self.severity == "warning" else ""
        message = re.sub(r"\n\s*", " ", self.message)  # one line per problem (YAML errors have several)
        return f"{self.file}:{self.document}: {self.severity}: {who}: {message}{tail}"


class Linter:
    def __init__(self, policy: sp.Policy = sp.DEFAULT_POLICY, *, ignore_unknown_kinds: bool = False) -> None:
        from k8py.apiserver.registry import build as build_strategies  # the kinds' create path, offline

        self.policy = policy
        self.ignore_unknown_kinds = ignore_unknown_kinds
        self.skipped = 0  # objects of kinds k8py does not serve, with ignore_unknown_kinds
        self.registry = Registry()
        self.strategies = build_strategies()
        self.objects = 0

    # -- documents -------------------------------------------------------------------------------
    def lint_bytes(self, data: bytes, file: str) -> list[Problem]:
        out: list[Problem] = []
        for doc, (line, raw) in enumerate(split_documents(data), 1):
            if not raw.strip() or all(not ln.strip() or ln.lstrip().startswith(b"#") for ln in raw.splitlines()):
                continue  # an empty document (only comments): kubectl skips it
            try:
                obj, dups = fieldcheck.decode_body(raw, "application/yaml", True)
            except StatusError as e:
                out.append(Problem(file, str(doc), line, "error", "decode", "", "", "", _file_lines(e.message, line)))
                continue
            if not obj:
                continue
            self._lint(obj, [_file_lines(d, line) for d in dups], file, str(doc), line, out)
        return out

    def _lint(self, obj: Any, dups: list[str], file: str, doc: str, line: int, out: list[Problem]) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        name = str(meta.get("name") or meta.get("generateName") or "")

        def problem(severity: str, check: str, message: str, field: str = "") -> None:
            out.append(Problem(file, doc, line, severity, check, str(kind or ""), name, field, message))

        for d in dups:
            problem("error", "field", d)
        if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
            for i, item in enumerate(obj["items"]):
                if isinstance(item, dict):
                    self._lint(item, [], file, f"{doc}.items[{i}]", line, out)
                else:
                    out.append(Problem(file, f"{doc}.items[{i}]", line, "error", "decode", "", "", "",
                                       "a List item must be an object"))
            return
        missing = [f"{f} not set" for f, v in (("apiVersion", api_version), ("kind", kind)) if not v]
        if missing:
            problem("error", "kind", f"error validating data: [{', '.join(missing)}]")
            return
        if not isinstance(kind, str) or not isinstance(api_version, str):
            problem("error", "kind", "apiVersion and kind must be strings")
            return
        info = self.registry.by_api_version(api_version, kind)
        served = sorted({k.api_version for k in self.registry.all() if k.kind == kind}) if info is None else []
        if info is None and not served and self.ignore_unknown_kinds:
            self.skipped += 1  # a custom resource, say: nothing here knows its schema
            return
        self.objects += 1
        if info is None:
            hint = f" ({kind} is served as {' and '.join(served)})" if served else ""
            problem("error", "kind", f'no matches for kind "{kind}" in version "{api_version}"{hint}',
                    "apiVersion")
            if not served:
                return
            # check the rest as the version that serves it, to report the document's other mistakes
            info = self.registry.by_api_version(served[-1], kind)
            assert info is not None
            obj = {**obj, "apiVersion": info.api_version}
        node = schema.for_kind(info.group, info.version, info.kind)
        if node is not None:
            types = fieldcheck.type_errors(obj, node)
            if types:
                problem("error", "field", types[0])  # the decoder stops at the first, as kube's
                return
            for p in fieldcheck.unknown_field_paths(obj, node):
                problem("error", "field", f'unknown field "{p}"', p)
        created = self._create(info, obj)
        for e in self.strategies.for_kind(info).validate(info, created):
            problem("error", "invalid", str(e), e.field)
        # what the K8pySeedPolicy plugin says of its own objects: a namespace label naming no mode
        # is refused, a malformed policy ConfigMap warned about
        cmeta = created["metadata"]
        if info.group == "" and info.kind == "Namespace":
            for e in sp.namespace_label_errors(cmeta.get("labels")):
                problem("error", "invalid", str(e), e.field)
        if (info.group == "" and info.kind == "ConfigMap" and cmeta.get("name") == sp.CONFIGMAP_NAME
                and cmeta.get("namespace") == sp.CONFIGMAP_NAMESPACE):
            data = created.get("data")
            for e in sp.parse_policy(data if isinstance(data, dict) else {})[1]:
                problem("warning", "policy-config", f"{e} (this key keeps its default)", e.field)
        for f in sp.check(created, self.policy):
            problem("warning", f.check, f.message, f.field)

    def _create(self, info: KindInfo, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as a create would make it before validation (rest.py's create_object, offline)."""
        obj = copy.deepcopy(obj)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if info.namespaced:
            meta.setdefault("namespace", "default")  # kubectl's namespace when the file names none
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}xxxxx"
        strat = self.strategies.for_kind(info)
        strat.prepare_for_create(info, obj)
        defaults.set_defaults(info, obj)
        strat.finish_create(info, obj)
        return obj


def _file_lines(message: str, first: int) -> str:
    """The YAML parser counts lines from the document's start; say them from the file's."""
    return _YAML_LINE.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + first - 1}", message)


def split_documents(data: bytes) -> list[tuple[int, bytes]]:
    """The YAML documents of a stream, each with its first line (1-based)."""
    docs: list[tuple[int, bytes]] = []
    start = 1
    cur: list[bytes] = []
    for n, ln in enumerate(data.splitlines(keepends=True), 1):
        if _SEPARATOR.match(ln.decode("utf-8", "replace").rstrip("\r\n")):
            docs.append((start, b"".join(cur)))
            start, cur = n + 1, []
        else:
            cur.append(ln)
    docs.append((start, b"".join(cur)))
    # a leading "---" opens the first document rather than closing an empty one
    if len(docs) > 1 and not docs[0][1].strip():
        docs = docs[1:]
    return docs


def lint_bytes(data: bytes, file: str, policy: sp.Policy = sp.DEFAULT_POLICY) -> list[Problem]:
    """The problems in one file's content."""
    return Linter(policy).lint_bytes(data, file)


# ------------------------------------------------------------------------------------ the command


def _files(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if p != "-" and os.path.isdir(p):
            out += sorted(os.path.join(p, f) for f in os.listdir(p)
                          if f.endswith(_EXTENSIONS) and os.path.isfile(os.path.join(p, f)))
        else:
            out.append(p)
    return out


def _policy(args: argparse.Namespace) -> sp.Policy:
    data: dict[str, Any] = {}
    if args.policy:
        import yaml

        with open(args.policy, "rb") as f:
            doc = yaml.safe_load(f)
        if not isinstance(doc, dict):
            raise ValueError(f"{args.policy}: not a ConfigMap")
        data = dict(doc.get("data") or {}) if doc.get("kind") == "ConfigMap" else doc
    if args.checks is not None:
        data["checks"] = args.checks
    policy, errs = sp.parse_policy({k: str(v) for k, v in data.items()})
    if errs:
        raise ValueError("; ".join(str(e) for e in errs))
    return policy


def run(args: argparse.Namespace) -> int:
    try:
        policy = _policy(args)
    except (OSError, ValueError) as e:
        print(f"k8py lint: bad policy: {e}", file=sys.stderr)
        return 2
    linter = Linter(policy, ignore_unknown_kinds=args.ignore_unknown_kinds)
    problems: list[Problem] = []
    files = _files(args.files)
    for path in files:
        try:
            if path == "-":
                data, name = sys.stdin.buffer.read(), STDIN
            else:
                with open(path, "rb") as f:
                    data, name = f.read(), path
        except OSError as e:
            problems.append(Problem(path, "0", 0, "error", "read", "", "", "",
                                    f"cannot read: {e.strerror or e}"))
            continue
        problems += linter.lint_bytes(data, name)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if args.output == "json":
        json.dump({"problems": [asdict(p) for p in problems], "errors": errors, "warnings": warnings,
                   "objects": linter.objects, "skipped": linter.skipped, "files": len(files)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for p in problems:
            print(p.text())
        print(f"k8py lint: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)} in "
              f"{linter.objects} object{'s' * (linter.objects != 1)} ({len(files)} file{'s' * (len(files) != 1)})"
              + (f", {linter.skipped} of kinds k8py does not serve skipped" if linter.skipped else ""),
              file=sys.stderr)
    return 1 if errors or (warnings and not args.warnings_ok) else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "lint", help="check manifests offline: API validation and the seed's anti-patterns",
        description=(__doc__ or "").split("\n\n", 1)[0],
        epilog=("Checks: " + ", ".join(sp.CHECKS) + ". Example: k8py lint --checks '*,-no-probes' "
                "deploy/*.yaml"))
    p.add_argument("files", nargs="+", metavar="FILE", help="manifests (YAML or JSON), directories, or - for stdin")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")
    p.add_argument("--warnings-ok", action="store_true",
                   help="exit 0 when only warnings (anti-patterns) were found, 1 only for errors")
    p.add_argument("--checks", metavar="LIST",
                   help="which anti-pattern checks run, as the policy ConfigMap's 'checks' ('*', 'id', '-id')")
    p.add_argument("--ignore-unknown-kinds", action="store_true",
                   help="skip objects of kinds k8py does not serve (custom resources) instead of reporting them")
    p.add_argument("--policy", metavar="FILE",
                   help="the kube-system/k8py-policy ConfigMap (or its data) to take the checks from")
    p.set_defaults(func=run, parser=p)
