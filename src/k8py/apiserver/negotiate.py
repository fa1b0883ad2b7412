"""Content negotiation: what the client sent (Content-Type) and what it accepts (Accept)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from k8py.api import errors

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"

PATCH_JSON = "application/json-patch+json"
PATCH_MERGE = "application/merge-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (PATCH_JSON, PATCH_MERGE, PATCH_STRATEGIC, PATCH_APPLY)


@dataclass(frozen=True, slots=True)
class MediaType:
    type: str  # "application/json"
    params: dict[str, str]

    @property
    def as_(self) -> str:
        return self.params.get("as", "")

    @property
    def group(self) -> str:
        return self.params.get("g", "")

    @property
    def version(self) -> str:
        return self.params.get("v", "")


def parse_media_types(header: str) -> list[MediaType]:
    out: list[MediaType] = []
    for part in header.split(","):
        part = part.strip()
        if not part:
            continue
        bits = [b.strip() for b in part.split(";")]
        params: dict[str, str] = {}
        for b in bits[1:]:
            if "=" in b:
                k, v = b.split("=", 1)
                params[k.strip()] = v.strip().strip('"')
        out.append(MediaType(bits[0].lower(), params))
    return out


@dataclass(frozen=True, slots=True)
class Output:
    """What to send back: serialization and transformation."""

    serializer: str = JSON  # JSON or YAML
    transform: str = ""  # "" | "Table" | "PartialObjectMetadata" | "PartialObjectMetadataList" | discovery kinds
    version: str = ""
    include_object: str = "Metadata"


def negotiate_output(accept: str, *, allow_table: bool = True) -> Output:
    """Pick the first acceptable representation, as kube's negotiation does."""
    if not accept:
        return Output()
    types = parse_media_types(accept)
    for mt in types:
        if mt.type in (JSON, "application/*", "*/*", YAML):
            ser = YAML if mt.type == YAML else JSON
            as_ = mt.as_
            if not as_:
                return Output(ser)
            if as_ == "Table" and mt.group == "meta.k8s.io" and mt.version in ("v1", "v1beta1") and allow_table:
                return Output(ser, "Table", mt.version)
            if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList") and mt.group == "meta.k8s.io":
                return Output(ser, as_, mt.version or "v1")
            if as_ == "APIGroupDiscoveryList" and mt.group == "apidiscovery.k8s.io":
                return Output(ser, as_, mt.version)
            continue  # an "as" we do not serve: try the next type
    raise errors.not_acceptable(
        "only the following media types are accepted: application/json, application/yaml, "
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    )


def content_type_of(header: str) -> str:
    return header.split(";", 1)[0].strip().lower() if header else ""


def encode(obj: Any, out: Output) -> tuple[bytes, str]:
    if out.serializer == YAML:
        return yaml.safe_dump(obj, sort_keys=False).encode(), YAML
    # kube's JSON serializer ends every document with a newline
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE), JSON
