"""The seed's anti-patterns, as checks of a pod or a workload's pod template (pure: no I/O).

k8py was made from notes (``SEED.md``) that name practices to avoid; this module finds them in
an object so the API server can warn about them (or refuse them, where a namespace enforces
them: the ``K8pySeedPolicy`` admission plugin) and ``k8py lint`` can report them offline. One
:func:`check` serves both, so they never disagree.

Checks (stable ids, as the policy ConfigMap and ``k8py lint -o json`` name them):

``latest-tag``
    an image without a tag and without a digest, or with the ``:latest`` tag: what kube itself
    treats as latest (``imagePullPolicy`` defaults to ``Always`` for it). A registry host with
    a port (``registry:5000/app``) is not a tag; an image pinned by digest is pinned whatever
    its tag says.
``no-limits``
    a container (regular or init) without a memory or a CPU limit, unless the pod sets that
    limit for all its containers (``spec.resources.limits``, pod-level resources).
``no-probes``
    a regular container of a long-running pod (``restartPolicy: Always``) without a
    ``readinessProbe`` or a ``livenessProbe``; run-to-completion pods (Jobs, CronJobs) are
    not asked for probes.
``bare-pod``
    a Pod no controller owns (no ``ownerReferences`` entry with ``controller: true``): nothing
    re-creates it when it or its node fails.
``plain-env-secret``
    an ``env`` entry whose name says it holds a secret (``password``, ``token``, ...) set with a
    plain ``value`` instead of ``valueFrom.secretKeyRef``. The value itself is never echoed.

Each :class:`Finding` carries the check id, the field path (``spec.template.spec.containers[0]
.image``) and a message in kube's warning style, naming the container:
``spec.template.spec.containers[0] (nginx): image "nginx:latest" uses the :latest tag (pin a
version or a digest)``.

:class:`Policy` is what the ``kube-system/k8py-policy`` ConfigMap sets (:func:`parse_policy`):
the default mode, which checks are on, extra secret-ish env names and the exempt namespaces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from k8py.api import errors
from k8py.api.defaults import _image_tag  # kube's image reference grammar, in its one home

__all__ = [
    "CHECKS",
    "CONFIGMAP_NAME",
    "CONFIGMAP_NAMESPACE",
    "DEFAULT_POLICY",
    "LABEL",
    "MODES",
    "POD_SPEC_PATHS",
    "Finding",
    "Policy",
    "check",
    "controlled",
    "namespace_label_errors",
    "parse_policy",
    "pod_spec_of",
]

Obj = dict[str, Any]

CHECKS = ("latest-tag", "no-limits", "no-probes", "bare-pod", "plain-env-secret")

# The namespace label that chooses the mode there, and its values.
LABEL = "k8py.io/policy"
MODES = ("enforce", "off", "warn")

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "k8py-policy"

# Words that make an env var's name secret-ish, compared with the name lower-cased and stripped
# of everything but letters and digits (DB_PASSWORD, db-password and dbPassword all match).
SECRET_WORDS = ("password", "passwd", "secret", "token", "apikey", "privatekey", "credential", "accesskey")
# A last name part saying the variable holds where the secret is, or which one, not the secret:
# DB_PASSWORD_FILE (the image reads a mounted file: good practice), TOKEN_URL, SECRET_NAME,
# AWS_ACCESS_KEY_ID.
_NOT_SECRET_SUFFIXES = frozenset(("file", "path", "dir", "url", "uri", "name", "id", "ref", "endpoint", "host"))
_NAME_PARTS = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_ONLY_REFS = re.compile(r"(?:\$\([A-Za-z_][A-Za-z0-9_.-]*\))+")
_FLAG_VALUES = frozenset(("true", "false", "yes", "no", "on", "off", "0", "1", "enabled", "disabled"))

# Where each kind keeps its pod: the path of its pod template's spec. kube's Pod Security reads
# the same kinds (its PodSpecExtractor).
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # one of CHECKS
    field: str  # the field path at fault, e.g. spec.template.spec.containers[0].image
    message: str  # the whole warning, e.g. 'spec.containers[0] (nginx): image "nginx" has no tag ...'

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Policy:
    """What the ``kube-system/k8py-policy`` ConfigMap tunes; the defaults without one."""

    mode: str = "warn"  # for namespaces without the k8py.io/policy label
    checks: frozenset[str] = frozenset(CHECKS)
    secret_words: tuple[str, ...] = SECRET_WORDS
    exempt_namespaces: frozenset[str] = field(default_factory=lambda: frozenset((CONFIGMAP_NAMESPACE,)))


DEFAULT_POLICY = Policy()


# --------------------------------------------------------------------------------- the checks


def pod_spec_of(group: str, kind: str, obj: Mapping[str, Any]) -> tuple[str, Obj] | None:
    """``(path, pod spec)`` of a Pod or a workload's pod template; None for other kinds, or
    when the object has no pod template (a ReplicationController's is optional)."""
    path = POD_SPEC_PATHS.get((group, kind))
    if path is None:
        return None
    cur: Any = obj
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
        if cur is None:
            return None
    return (".".join(path), cur) if isinstance(cur, dict) else None


def controlled(meta: Mapping[str, Any]) -> bool:
    """The object has a controller (an ``ownerReferences`` entry with ``controller: true``)."""
    refs = meta.get("ownerReferences")
    return isinstance(refs, list) and any(isinstance(r, dict) and r.get("controller") is True for r in refs)


def _group_of(api_version: Any) -> str:
    return api_version.rpartition("/")[0] if isinstance(api_version, str) else ""


def check(obj: Mapping[str, Any], policy: Policy = DEFAULT_POLICY) -> list[Finding]:
    """The seed's anti-patterns in ``obj`` (a Pod or a kind of :data:`POD_SPEC_PATHS`; others
    have none), for the checks ``policy`` has on."""
    kind = obj.get("kind")
    group = _group_of(obj.get("apiVersion"))
    if not isinstance(kind, str):
        return []
    found = pod_spec_of(group, kind, obj)
    if found is None:
        return []
    base, spec = found
    on = policy.checks
    out: list[Finding] = []
    if kind == "Pod" and group == "" and "bare-pod" in on:
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        if not controlled(meta):
            name = meta.get("name") or meta.get("generateName") or ""
            out.append(Finding("bare-pod", "metadata.ownerReferences",
                               f'metadata.ownerReferences: pod "{name}" is not managed by a controller (run it '
                               "from a Deployment, StatefulSet, DaemonSet or Job, which re-create it when it "
                               "or its node fails)"))
    pod_limits = _limits(spec.get("resources"))
    # a Job's pods run to completion (their restartPolicy must be OnFailure or Never)
    long_running = spec.get("restartPolicy") == "Always" or (
        not spec.get("restartPolicy") and (group, kind) not in (("batch", "Job"), ("batch", "CronJob")))
    for list_name in ("initContainers", "containers"):
        containers = spec.get(list_name)
        if not isinstance(containers, list):
            continue
        for i, c in enumerate(containers):
            if not isinstance(c, dict):
                continue
            at = f"{base}.{list_name}[{i}]"
            who = f"{at} ({c.get('name') or '?'})"
            if "latest-tag" in on:
                _check_image(c.get("image"), at, who, out)
            if "no-limits" in on:
                _check_limits(c, pod_limits, at, who, out)
            if "no-probes" in on and long_running and list_name == "containers":
                _check_probes(c, at, who, out)
            if "plain-env-secret" in on:
                _check_env(c.get("env"), policy.secret_words, at, who, out)
    return out


def _check_image(image: Any, at: str, who: str, out: list[Finding]) -> None:
    if not isinstance(image, str) or not image.strip():
        return  # a missing image is validation's to report
    parsed = _image_tag(image)
    if parsed is None:
        return  # not a reference kube can parse either: the runtime will say so
    tag, digest = parsed
    if digest:
        return
    if not tag:
        out.append(Finding("latest-tag", f"{at}.image",
                           f'{who}: image "{image}" has no tag, so it means :latest (pin a version or a digest)'))
    elif tag == "latest":
        out.append(Finding("latest-tag", f"{at}.image",
                           f'{who}: image "{image}" uses the :latest tag (pin a version or a digest)'))


def _limits(resources: Any) -> Mapping[str, Any]:
    if not isinstance(resources, dict):
        return {}
    limits = resources.get("limits")
    return limits if isinstance(limits, dict) else {}


def _check_limits(c: Mapping[str, Any], pod_limits: Mapping[str, Any], at: str, who: str,
                  out: list[Finding]) -> None:
    limits = _limits(c.get("resources"))
    missing = [r for r in ("memory", "cpu") if r not in limits and r not in pod_limits]
    if not missing:
        return
    what = " or ".join("CPU" if r == "cpu" else r for r in missing)
    sets = " and ".join(f"resources.limits.{r}" for r in missing)
    out.append(Finding("no-limits", f"{at}.resources.limits",
                       f"{who}: no {what} limit (set {sets} so that it cannot take the whole node)"))


def _check_probes(c: Mapping[str, Any], at: str, who: str, out: list[Finding]) -> None:
    missing = [p for p in ("readinessProbe", "livenessProbe") if not c.get(p)]
    if not missing:
        return
    out.append(Finding("no-probes", f"{at}.{missing[0]}",
                       f"{who}: no {' and no '.join(missing)} (add probes so that traffic reaches it only "
                       "when it is ready and it is restarted when it hangs)"))


def _secretish(name: str, words: tuple[str, ...]) -> bool:
    parts = [p.lower() for p in _NAME_PARTS.split(name) if p]
    if not parts or parts[-1] in _NOT_SECRET_SUFFIXES:
        return False
    flat = "".join(parts)
    return any(w in flat for w in words)


def _check_env(env: Any, words: tuple[str, ...], at: str, who: str, out: list[Finding]) -> None:
    if not isinstance(env, list):
        return
    for j, e in enumerate(env):
        if not isinstance(e, dict):
            continue
        name, value = e.get("name"), e.get("value")
        if not isinstance(name, str) or not isinstance(value, str) or not value.strip():
            continue
        v = value.strip()
        if v.lower() in _FLAG_VALUES or _ONLY_REFS.fullmatch(v):
            continue  # a switch, or a reference to another variable: not a secret itself
        if _secretish(name, words):
            out.append(Finding("plain-env-secret", f"{at}.env[{j}].value",
                               f"{who}: env {name} is set from a plain value (keep secrets in a Secret and "
                               "use valueFrom.secretKeyRef)"))


# --------------------------------------------------------------------------------- the policy


def _words(value: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", value) if w]


def parse_policy(data: Mapping[str, Any] | None) -> tuple[Policy, list[errors.FieldError]]:
    """The policy a ConfigMap's ``data`` sets, and what is wrong in it (each wrong key keeps
    its default). Keys:

    - ``mode``: ``warn`` (default), ``enforce`` or ``off``, for namespaces without the label;
    - ``checks``: which checks are on, as kube-controller-manager's ``--controllers``: ``*``
      (all, the default), a check id to turn it on, ``-id`` to turn it off (``*,-no-probes``);
    - ``secretEnvNames``: more words that make an env name secret-ish (``pin,passphrase``);
    - ``exemptNamespaces``: namespaces never checked (default ``kube-system``; the list
      replaces the default).
    """
    errs: list[errors.FieldError] = []
    if not data:
        return DEFAULT_POLICY, errs
    mode = DEFAULT_POLICY.mode
    checks = DEFAULT_POLICY.checks
    words = DEFAULT_POLICY.secret_words
    exempt = DEFAULT_POLICY.exempt_namespaces
    for key in data:
        if key not in ("mode", "checks", "secretEnvNames", "exemptNamespaces"):
            errs.append(errors.not_supported(f"data[{key}]", key,
                                             ["checks", "exemptNamespaces", "mode", "secretEnvNames"]))
    raw = data.get("mode")
    if raw is not None:
        v = str(raw).strip()
        if v in MODES:
            mode = v
        else:
            errs.append(errors.not_supported("data[mode]", raw, MODES))
    raw = data.get("checks")
    if raw is not None:
        parsed, bad = _parse_checks(str(raw))
        if bad:
            errs.append(errors.invalid("data[checks]", raw, bad))
        else:
            checks = parsed
    raw = data.get("secretEnvNames")
    if raw is not None:
        extra = [re.sub(r"[^a-z0-9]", "", w.lower()) for w in _words(str(raw))]
        if not all(extra):
            errs.append(errors.invalid("data[secretEnvNames]", raw, "each name must contain a letter or digit"))
        else:
            words = tuple(dict.fromkeys((*SECRET_WORDS, *extra)))
    raw = data.get("exemptNamespaces")
    if raw is not None:
        names = _words(str(raw))
        bad_ns = [n for n in names if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) or len(n) > 63]
        if bad_ns:
            errs.append(errors.invalid("data[exemptNamespaces]", raw,
                                       f"not a namespace name: {', '.join(bad_ns)}"))
        else:
            exempt = frozenset(names)
    return Policy(mode=mode, checks=checks, secret_words=words, exempt_namespaces=exempt), errs


def _parse_checks(value: str) -> tuple[frozenset[str], str]:
    """``*,-no-probes`` -> the checks on; or the reason it is wrong."""
    items = _words(value)
    unknown = [i for i in items if i != "*" and i.removeprefix("-") not in CHECKS]
    if unknown:
        return frozenset(), (f"unknown check {', '.join(errors.go_repr(u) for u in unknown)} (known: {', '.join(CHECKS)}; "
                             "* for all, -id to turn one off)")
    on: set[str] = set(CHECKS) if "*" in items or all(i.startswith("-") for i in items) else set()
    for i in items:
        if i.startswith("-"):
            on.discard(i[1:])
        elif i != "*":
            on.add(i)
    return frozenset(on), ""


def namespace_label_errors(labels: Any) -> list[errors.FieldError]:
    """A namespace's ``k8py.io/policy`` label must name a mode."""
    if not isinstance(labels, dict) or LABEL not in labels or labels[LABEL] in MODES:
        return []
    return [errors.not_supported(f"metadata.labels[{LABEL}]", labels[LABEL], MODES)]
