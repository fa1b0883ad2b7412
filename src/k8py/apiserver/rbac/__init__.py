"""RBAC for the API server (kube's ``plugin/pkg/auth/authorizer/rbac``).

- :mod:`.rules`: rule matching and coverage (pure);
- :mod:`.cache`: Roles, ClusterRoles and bindings in memory, kept current by a store watch,
  bindings indexed by subject;
- :mod:`.authorizer`: :class:`RBACAuthorizer`, the ``AuthorizerLike`` ``k8py server`` runs, with a
  decision cache dropped on any RBAC change, and kube's rule resolver;
- :mod:`.escalation`: no role or binding grants what its writer does not hold;
- :mod:`.bootstrap`: kube's default roles and bindings, reconciled on every start.
"""

from k8py.apiserver.rbac.authorizer import RBACAuthorizer
from k8py.apiserver.rbac.cache import PolicyCache

__all__ = ["PolicyCache", "RBACAuthorizer"]
