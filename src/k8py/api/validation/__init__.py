"""Semantic validation per kind, as kube-apiserver's strategies run it.

The dispatch by kind lives in :mod:`k8py.api.validation.kinds` (called by the REST handlers),
not here: a process that only needs a piece (the node agent checks label syntax through
``meta``) must not load every kind's validation (and ``cryptography``, which the
CertificateSigningRequest rules need) by importing the package.

- :func:`validate` — create;
- :func:`validate_update` — update (everything ``validate`` checks on the
  object's body, plus immutability);
- :func:`validate_status_update` — the ``/status`` subresource.

Each takes the JSON object as stored (after :func:`k8py.api.defaults.set_defaults`)
and returns ``FieldError``s whose text is Kubernetes' own. Schema types and
unknown fields are checked elsewhere (``fieldcheck``). Identical errors are
reported once, as ``field.ErrorList.ToAggregate`` does.
"""

