"""kube-apiserver's ``--admission-control-config-file``: an ``AdmissionConfiguration``
(``apiserver.config.k8s.io/v1``) that gives admission plugins their configuration, inline or
in a file of its own::

    apiVersion: apiserver.config.k8s.io/v1
    kind: AdmissionConfiguration
    plugins:
    - name: PodSecurity
      configuration:            # or: path: podsecurity.yaml (relative to this file)
        apiVersion: pod-security.admission.config.k8s.io/v1
        kind: PodSecurityConfiguration
        defaults: {enforce: baseline}
        exemptions: {namespaces: [kube-system]}

Read once when the server starts; anything wrong refuses to start with the file, the line and
the field at fault. Each plugin parses its own part (:data:`PARSERS`): a plugin k8py does not
have, or one that takes no configuration, is an error rather than a setting silently ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from k8py.api import errors
from k8py.api.configfile import ConfigFileError, Located, load_located

__all__ = ["AdmissionConfigError", "PluginConfig", "from_file", "load", "parse_all"]

API_VERSIONS = ("apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1alpha1", "apiserver.k8s.io/v1alpha1")


class AdmissionConfigError(ValueError):
    """The admission configuration file is unreadable or wrong (the message says where)."""


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _path_tuple(path: str) -> tuple[str | int, ...]:
    """``plugins[0].configuration.defaults`` as ``("plugins", 0, "configuration", "defaults")``."""
    return tuple(int(m.group(2)) if m.group(2) is not None else m.group(1) for m in _PATH_PART.finditer(path))


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """One plugin's configuration document, and where it is (for error messages)."""

    name: str
    config: Any
    located: Located  # the file it is in, with each field's line
    where: str = ""  # its path in that file ("plugins[0].configuration"; "" for a file of its own)

    def error(self, errs: list[errors.FieldError]) -> AdmissionConfigError:
        """One error with a line per field error: ``FILE:LINE: FIELD: MESSAGE``."""
        out = []
        for e in errs:
            path = ".".join(p for p in (self.where, e.field) if p)
            out.append(str(self.located.error(_path_tuple(path), e.message_body())))
        plugin = f"admission plugin {self.name}: " if self.name else ""
        return AdmissionConfigError(plugin + "\n".join(out))


def _read(path: str) -> Located:
    try:
        return load_located(path, "--admission-control-config-file")
    except ConfigFileError as e:
        raise AdmissionConfigError(str(e)) from None


def load(path: str) -> dict[str, PluginConfig]:
    """Each plugin's configuration in the file at ``path``, by plugin name."""
    located = _read(path)
    doc = located.data
    top = PluginConfig("", doc, located)
    if not isinstance(doc, dict):
        raise top.error([errors.invalid("", _describe(doc), "must be an AdmissionConfiguration object")])
    errs = []
    if doc.get("apiVersion") not in API_VERSIONS:
        errs.append(errors.not_supported("apiVersion", doc.get("apiVersion"), API_VERSIONS))
    if doc.get("kind") != "AdmissionConfiguration":
        errs.append(errors.not_supported("kind", doc.get("kind"), ["AdmissionConfiguration"]))
    errs += [errors.forbidden(str(k), "unknown field") for k in doc if k not in ("apiVersion", "kind", "plugins")]
    plugins = doc.get("plugins") or []
    if not isinstance(plugins, list):
        errs.append(errors.invalid("plugins", _describe(plugins), "must be a list"))
        plugins = []
    out: dict[str, PluginConfig] = {}
    for i, p in enumerate(plugins):
        where = f"plugins[{i}]"
        if not isinstance(p, dict):
            errs.append(errors.invalid(where, _describe(p), "must be an object with name and configuration or path"))
            continue
        errs += [errors.forbidden(f"{where}.{k}", "unknown field") for k in p
                 if k not in ("name", "configuration", "path")]
        name = p.get("name")
        if not isinstance(name, str) or not name:
            errs.append(errors.required(f"{where}.name"))
            continue
        if name in out:
            errs.append(errors.duplicate(f"{where}.name", name))
            continue
        if "configuration" in p and p.get("path"):
            errs.append(errors.invalid(f"{where}.path", p["path"], "give configuration or path, not both"))
            continue
        if p.get("path"):
            if not isinstance(p["path"], str):
                errs.append(errors.invalid(f"{where}.path", _describe(p["path"]), "must be a file name"))
                continue
            # a relative path is relative to the admission configuration file, as in kube
            file = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(p["path"]))
            sub = _read(file)
            out[name] = PluginConfig(name, sub.data, sub)
        else:
            out[name] = PluginConfig(name, p.get("configuration"), located, f"{where}.configuration")
    if errs:
        raise top.error(errs)
    return out


def _describe(x: Any) -> str:
    return x if isinstance(x, str) else type(x).__name__


def _podsecurity(pc: PluginConfig) -> Any:
    from k8py.api import podsecurity

    conf, errs = podsecurity.parse_configuration(pc.config)
    if errs:
        raise pc.error(errs)
    return conf


def _resourcequota(pc: PluginConfig) -> Any:
    from k8py.api import quota

    limited, errs = quota.parse_configuration(pc.config)
    if errs:
        raise pc.error(errs)
    return limited


# What each configurable plugin makes of its document (raising AdmissionConfigError when wrong).
PARSERS: dict[str, Callable[[PluginConfig], Any]] = {
    "PodSecurity": _podsecurity,
    "ResourceQuota": _resourcequota,
}


def parse_all(configs: Mapping[str, PluginConfig]) -> dict[str, Any]:
    """Every plugin's parsed configuration, by name; refuses plugins that take none."""
    from k8py.apiserver.admission import ORDER

    out = {}
    for name, pc in configs.items():
        parser = PARSERS.get(name)
        if parser is None:
            what = "does not take a configuration in k8py" if name in ORDER else "is not an admission plugin k8py has"
            raise AdmissionConfigError(f"{pc.located.file}: admission plugin {name} {what} (configurable: "
                                       f"{', '.join(sorted(PARSERS))})")
        out[name] = parser(pc)
    return out


def from_file(path: str) -> dict[str, Any]:
    """Every plugin's parsed configuration from the file at ``path`` ("": no file, no configuration)."""
    return parse_all(load(path)) if path else {}
