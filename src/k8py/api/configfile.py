"""Configuration files that kube-apiserver reads at start (``EncryptionConfiguration``, audit
``Policy``): YAML or JSON, loaded with the line of every field so that a malformed file is
refused with the line at fault, as ``FILE:LINE: FIELD: MESSAGE``.

Field paths are written as kube's ``field.Path`` prints them: ``resources[0].providers[1].aescbc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["ConfigFileError", "Located", "field_path", "load_located"]

PathT = tuple[str | int, ...]


class ConfigFileError(ValueError):
    """A configuration file that cannot be used; the message names the file, line and field."""


def field_path(path: PathT) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else p
    return out


@dataclass(slots=True)
class Located:
    """A loaded document and the line (1-based) where each of its fields starts."""

    file: str
    data: Any
    lines: dict[PathT, int]

    def line(self, path: PathT) -> int:
        """The line of ``path``, or of its nearest ancestor that is in the file (a missing field
        is reported where its parent is)."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, path: PathT, message: str) -> ConfigFileError:
        where = f"{field_path(path)}: " if path else ""
        return ConfigFileError(f"{self.file}:{self.line(path)}: {where}{message}")


def _lines(node: yaml.Node, path: PathT, out: dict[PathT, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                _lines(v, (*path, str(k.value)), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*path, i), out)


def load_located(file: str, what: str) -> Located:
    """Read ``file`` (YAML, or JSON, which is YAML) into a :class:`Located`; ``what`` names the
    file in errors (``--encryption-provider-config``)."""
    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigFileError(f"{what} {file}: cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"{what} {file}: not a UTF-8 text file") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigFileError(f"{file}:1: {what} is empty")
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigFileError(f"{file}:{line}: {what} is not valid YAML or JSON: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise ConfigFileError(f"{file}:1: {what} is not valid YAML or JSON: {e}") from None
    finally:
        loader.dispose()
    lines: dict[PathT, int] = {}
    _lines(node, (), lines)
    return Located(file, data, lines)
