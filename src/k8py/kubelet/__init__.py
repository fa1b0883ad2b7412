"""The node agent (kubelet): registers its Node, runs the pods bound to it through a CRI-shaped
runtime (``runtime/``: runc or fake), and reports their status. It is an API client like every
other component: it never reaches into the API server's memory or the store."""
