"""Protobuf field numbers of the Kubernetes API types k8py decodes.

Kubernetes clients built on client-go (kubectl's ``create`` subcommands, drain's
evictions, ``create token``, ``auth can-i`` ...) send request bodies as
``application/vnd.kubernetes.protobuf``. This table says, per message, which
field number carries which JSON property; ``k8py.api.protobuf`` walks it.

Data, not code: one entry per message, ``"<package>.<Message>"`` ->
space-separated fields ``NUMBER:JSONNAME:TYPE[:FLAGS]``.

TYPE
  ``s`` string, ``i`` integer (varint, signed), ``b`` bool, ``y`` bytes
  (base64 in JSON); ``Quantity``, ``Time``, ``MicroTime``, ``Duration``,
  ``FieldsV1``, ``IntOrString``, ``RawExtension`` for apimachinery's
  specially-encoded types; otherwise a message name, written without its
  package when it is in the entry's own package. ``[]T`` is a repeated field;
  ``{T}`` a map from string keys (map entries are messages with key 1, value 2);
  ``{[]s}`` a map whose values are wrapper messages holding ``repeated string
  items = 1`` (authentication's ExtraValue).
FLAGS (the Go field's shape, which decides how a zero value reads in JSON)
  ``*`` the Go field is a pointer: a zero value on the wire is meaningful;
  ``e`` the JSON tag has ``omitempty``; ``z`` it has ``omitzero``;
  ``-`` the Go field is embedded inline: its message's properties belong to
  the enclosing JSON object (``Volume`` holds ``VolumeSource`` at field 2).
  JSONNAME is empty for inline fields.

Covers every message reachable from the kinds in
``k8py.api.registry.BUILTIN_KINDS``, plus autoscaling/v1 Scale, policy/v1
Eviction, meta/v1 DeleteOptions, authentication/v1 TokenRequest, TokenReview
and SelfSubjectReview, and authorization/v1's access and rules reviews.

Provenance: field numbers, JSON names and Go shapes as in Kubernetes v1.37's
API types (the ``protobuf:"..."`` and ``json:"..."`` struct tags, which
go-to-protobuf turns into each group's generated.proto), cross-checked against
those generated.proto files. Property names are checked against our OpenAPI
definitions by ``tests/api/test_protobuf.py``.
"""

from __future__ import annotations

