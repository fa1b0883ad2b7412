"""The ClusterRole aggregation controller fills an aggregating ClusterRole's rules from the roles
its selectors pick, and follows label and rule changes."""

from __future__ import annotations

from typing import Any

from tests.helpers.cluster import InProcessCluster

CR = ("rbac.authorization.k8s.io/v1", "ClusterRole")


def role(name: str, rules: list[dict[str, Any]], labels: dict[str, str] | None = None,
         aggregate: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                           "metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    if aggregate:
        out["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"agg": aggregate}}]}
    return out


PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
CMS = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}


async def test_aggregated_rules_follow_labels_and_rules() -> None:
    async with InProcessCluster(controllers=["clusterrole-aggregation"]) as c:
        await c.client.create(CR, role("reader", [], aggregate="read"))
        await c.client.create(CR, role("pods", [PODS], labels={"agg": "read"}))

        async def rules() -> list[dict[str, Any]]:
            return (await c.client.get(CR, "reader")).get("rules") or []

        await c.until(lambda: _eq(rules, [PODS]), what="pods' rules aggregated")
        await c.client.create(CR, role("cms", [CMS, PODS], labels={"agg": "read"}))
        await c.until(lambda: _eq(rules, [CMS, PODS]), what="a second labelled role's rules added, once each")
        cms = await c.client.get(CR, "cms")
        cms["metadata"]["labels"] = {}
        await c.client.update(CR, cms)
        await c.until(lambda: _eq(rules, [PODS]), what="an unlabelled role's rules dropped")
        await c.client.delete(CR, "pods")
        await c.until(lambda: _eq(rules, []), what="a deleted role's rules dropped")


async def _eq(get: Any, want: list[dict[str, Any]]) -> bool:
    return bool(await get() == want)
