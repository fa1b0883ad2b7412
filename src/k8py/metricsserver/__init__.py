"""metrics-server for k8py (k3s bundles kubernetes-sigs/metrics-server): scrapes every kubelet's
``/metrics/resource`` and serves ``metrics.k8s.io/v1beta1`` through the aggregation layer, so that
``kubectl top`` and the HorizontalPodAutoscaler have CPU and memory usage. See docs/metrics.md.

Modules: :mod:`.prometheus` (the text format), :mod:`.decode` (a scrape as points),
:mod:`.storage` (points and the usage from two of them), :mod:`.scraper` (kubelets),
:mod:`.api` (objects, Table, discovery), :mod:`.auth` (delegated authentication and
authorization), :mod:`.server` (the HTTPS API), :mod:`.certs` (its serving certificate),
:mod:`.component` (the whole, and its registration).
"""
