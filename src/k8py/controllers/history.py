"""ControllerRevisions: the template history of DaemonSets and StatefulSets (kube's
``pkg/controller/history`` and the DaemonSet's ``constructHistory`` helpers).

A revision stores, in ``data``, the strategic merge patch that puts its template back:
``{"spec": {"template": {..., "$patch": "replace"}}}`` -- exactly what ``kubectl rollout undo``
sends for daemonsets and statefulsets (undo is client side: kubectl reads the revision and
PATCHes the owner with its data). Revisions carry the owner's template labels, so the owner's
selector finds them (``kubectl rollout history`` lists them by that selector and keeps those
the owner controls), plus ``controller-revision-hash``.

Two hashes, as in kube:

- :func:`hash_revision` (``history.HashControllerRevision``, FNV-32 over the data and the
  collision count): a StatefulSet revision is named ``<set>-<hash>`` and its pods' label
  ``controller-revision-hash`` holds that whole name;
- the DaemonSet names its revision ``<ds>-<hash>`` with the pod template hash
  (``controller.ComputeHash``), and its pods' label holds just the hash.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from k8py.api.selectors import LabelSelector
from k8py.client.api import Client
from k8py.client.errors import AlreadyExistsError, NotFoundError
from k8py.client.informer import Informer
from k8py.client.store import OWNER_UID_INDEX
from k8py.controllers.deploymentutil import safe_encode
from k8py.controllers.podcontrol import (
    CONTROLLERLESS_INDEX,
    ControllerRefManager,
    controller_ref,
    index_controllerless,
    new_controller_ref,
)

__all__ = [
    "CONTROLLER_REVISION",
    "HASH_LABEL",
    "History",
    "apply_revision",
    "equal_revision",
    "find_equal_revisions",
    "hash_revision",
    "max_revision",
    "new_revision",
    "next_revision",
    "revision_name",
    "revision_number",
    "sort_revisions",
    "template_patch",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

CONTROLLER_REVISION = ("apps/v1", "ControllerRevision")
HASH_LABEL = "controller-revision-hash"  # apps.ControllerRevisionHashLabelKey
# kube keeps revision names within a DNS subdomain: the prefix is cut to leave room for "-<hash>"
_MAX_PREFIX = 223


# -- data and hashes -------------------------------------------------------------------------------


def template_patch(owner: Obj) -> Obj:
    """kube's ``getPatch``: the patch that restores ``owner``'s pod template (and nothing else)."""
    template = copy.deepcopy(((owner.get("spec") or {}).get("template")) or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def _canonical(data: Any) -> bytes:
    # Go's json.Marshal of a map sorts keys; the bytes only need to be stable within k8py
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def _fnv32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= b
    return h


def hash_revision(data: Any, collision_count: int | None = None) -> str:
    """``history.HashControllerRevision``: FNV-32 of the data, then the decimal collision count
    when given, safe-encoded."""
    raw = _canonical(data) if data is not None else b""
    if collision_count is not None:
        raw += str(int(collision_count)).encode()
    return safe_encode(str(_fnv32(raw)))


def revision_name(prefix: str, hash_: str) -> str:
    """``history.ControllerRevisionName``: ``<prefix>-<hash>``, the prefix cut to fit."""
    return f"{prefix[:_MAX_PREFIX]}-{hash_}"


def new_revision(parent: Obj, data: Obj, revision: int, collision_count: int | None = None, *,
                 hash_: str | None = None) -> Obj:
    """``history.NewControllerRevision`` (plus the annotations both owners copy): a revision of
    ``parent`` owned by it as controller, labelled with its template's labels and the hash."""
    md = parent.get("metadata") or {}
    tlabels = (((parent.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    h = hash_ if hash_ is not None else hash_revision(data, collision_count)
    cr: Obj = {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": revision_name(str(md.get("name", "")), h), "namespace": md.get("namespace"),
                     "labels": {**tlabels, HASH_LABEL: h},
                     "ownerReferences": [new_controller_ref(parent)]},
        "data": data, "revision": int(revision),
    }
    if md.get("annotations"):
        # why: kubectl rollout history shows kubernetes.io/change-cause from the revision
        cr["metadata"]["annotations"] = dict(md["annotations"])
    return cr


def revision_number(cr: Obj) -> int:
    try:
        return int(cr.get("revision") or 0)
    except (TypeError, ValueError):
        return 0


def sort_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """Oldest first: by revision number, then creation time, then name (kube's ``byRevision``)."""
    return sorted(revisions, key=lambda r: (revision_number(r), str((r.get("metadata") or {}).get(
        "creationTimestamp") or ""), str((r.get("metadata") or {}).get("name") or "")))


def max_revision(revisions: Iterable[Obj]) -> int:
    return max((revision_number(r) for r in revisions), default=0)


def next_revision(revisions: Iterable[Obj]) -> int:
    """One past the highest revision number (1 for an empty history)."""
    return max_revision(revisions) + 1


def _normal(v: Any) -> Any:
    # None, {} and [] mean the same in a Go struct round trip: compare without them
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            x = _normal(x)
            if x is None or x == {} or x == []:
                continue
            out[k] = x
        return out
    if isinstance(v, list):
        return [_normal(x) for x in v]
    return v


def equal_data(a: Any, b: Any) -> bool:
    return bool(_normal(a) == _normal(b))


def equal_revision(a: Obj | None, b: Obj | None) -> bool:
    """``history.EqualRevision``: same hash label (when both have one) and the same data."""
    if a is None or b is None:
        return a is b
    ha = ((a.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL)
    hb = ((b.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL)
    if ha and hb and ha != hb:
        return False
    return equal_data(a.get("data"), b.get("data"))


def find_equal_revisions(revisions: Iterable[Obj], needle: Obj) -> list[Obj]:
    """Revisions whose data equals ``needle``'s (hash labels are not compared: a revision made
    under another collision count holds the same template)."""
    return [r for r in revisions if equal_data(r.get("data"), needle.get("data"))]


def apply_revision(parent: Obj, cr: Obj) -> Obj:
    """``ApplyRevision``: a copy of ``parent`` whose pod template is the revision's."""
    out = copy.deepcopy(parent)
    template = copy.deepcopy((((cr.get("data") or {}).get("spec") or {}).get("template")) or {})
    template.pop("$patch", None)
    out.setdefault("spec", {})["template"] = template
    return out


# -- the API side ----------------------------------------------------------------------------------


class History:
    """ControllerRevision reads (from a shared informer) and writes for one owner kind
    (kube's ``realHistory`` with the owner's ``controlledHistories``)."""

    def __init__(self, client: Client, informer: Informer) -> None:
        self.client = client
        self.informer = informer
        index_controllerless(informer)

    async def _patch(self, cr: Obj, body: Obj) -> Obj:
        md = cr.get("metadata") or {}
        return await self.client.patch(CONTROLLER_REVISION, md.get("name", ""), body, md.get("namespace"),
                                       type="strategic")

    async def controlled(self, parent: Obj, selector: LabelSelector,
                         can_adopt: Callable[[], Awaitable[None]] | None = None) -> list[Obj]:
        """The revisions ``parent`` controls, after adopting matching orphans and releasing
        owned ones that stopped matching its selector. Raises the first claim error."""
        md = parent.get("metadata") or {}
        ns = str(md.get("namespace") or "")
        uid = str(md.get("uid") or "")
        store = self.informer.store
        seen: dict[str, Obj] = {}
        for r in [*store.by_index(OWNER_UID_INDEX, uid), *store.by_index(CONTROLLERLESS_INDEX, ns)]:
            if (r.get("metadata") or {}).get("namespace") == ns:
                seen[str(r["metadata"].get("uid") or r["metadata"].get("name"))] = r
        av, kind = str(parent.get("apiVersion", "")), str(parent.get("kind", ""))
        mgr = ControllerRefManager(parent, selector, av, kind, patch=self._patch, can_adopt=can_adopt)
        claimed, errors = await mgr.claim(seen.values())
        if errors:
            raise errors[0]
        return claimed

    async def create(self, parent: Obj, cr: Obj, collision_count: int) -> tuple[Obj, int]:
        """``CreateControllerRevision``: create ``cr`` under ``<parent>-<hash>``; when another
        revision with different data holds that name, bump the collision count and retry.
        Returns the revision and the (possibly raised) collision count."""
        md = parent.get("metadata") or {}
        ns = md.get("namespace")
        while True:
            h = hash_revision(cr.get("data"), collision_count)
            body = copy.deepcopy(cr)
            body["metadata"]["name"] = revision_name(str(md.get("name", "")), h)
            body["metadata"].setdefault("labels", {})[HASH_LABEL] = h
            try:
                return await self.client.create(CONTROLLER_REVISION, body, ns), collision_count
            except AlreadyExistsError:
                existing = await self.client.get(CONTROLLER_REVISION, body["metadata"]["name"], ns)
                ref = controller_ref(existing)
                if equal_data(existing.get("data"), body.get("data")) and ref is not None and \
                        ref.get("uid") == md.get("uid"):
                    return existing, collision_count
                collision_count += 1
                log.info("%s/%s: revision name %s is taken; collision count now %d", ns, md.get("name"),
                         body["metadata"]["name"], collision_count)

    async def update_revision(self, cr: Obj, revision: int) -> Obj:
        """Give an existing revision a new number (a rollback to it makes it the newest)."""
        if revision_number(cr) == revision:
            return cr
        md = cr["metadata"]
        return await self.client.patch(CONTROLLER_REVISION, md["name"],
                                       {"revision": int(revision), "metadata": {"uid": md.get("uid")}},
                                       md.get("namespace"), type="merge")

    async def delete(self, cr: Obj) -> None:
        md = cr["metadata"]
        try:
            await self.client.delete(CONTROLLER_REVISION, md["name"], md.get("namespace"), uid=md.get("uid"))
        except NotFoundError:
            pass
