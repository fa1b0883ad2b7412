"""The ingress controller: Ingresses served by Debian's nginx (see docs/ingress.md).

``model`` decides what is served (pure), ``render`` writes nginx.conf (pure), ``nginx`` runs and
reloads the nginx process, ``controller`` watches the API and ties them together.
"""
