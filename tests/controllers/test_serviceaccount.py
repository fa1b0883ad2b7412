"""The ServiceAccount controller keeps a ``default`` ServiceAccount in every active namespace."""

from __future__ import annotations

from tests.helpers.cluster import InProcessCluster

from k8py.client.errors import NotFoundError

NS = ("v1", "Namespace")
SA = ("v1", "ServiceAccount")


async def test_default_service_account_in_every_namespace_and_recreated() -> None:
    async with InProcessCluster(controllers=["serviceaccount"]) as c:

        async def has_default(ns: str) -> dict | None:  # type: ignore[type-arg]
            try:
                return await c.client.get(SA, "default", ns)
            except NotFoundError:
                return None

        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            await c.until(lambda n=ns: has_default(n), what=f"default SA in {ns}")  # type: ignore[misc]

        await c.client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        first = await c.until(lambda: has_default("team-a"), what="default SA in a new namespace")

        await c.client.delete(SA, "default", "team-a")

        async def recreated() -> bool:
            sa = await has_default("team-a")
            return sa is not None and sa["metadata"]["uid"] != first["metadata"]["uid"]

        await c.until(recreated, what="deleted default SA made again")
        # other accounts are not ours to keep
        await c.client.create(SA, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot"}},
                              "team-a")
        await c.client.delete(SA, "bot", "team-a")
        assert (await c.client.list(SA, "team-a"))["items"][0]["metadata"]["name"] == "default"
