"""``k8py images``: the node's image store from the command line (as ``crictl images`` and
``k3s ctr images import``).

    k8py images import FILE...   import OCI or docker archives (``skopeo copy ... oci-archive:``,
                                 ``docker save``), gzip/bzip2/xz compressed or not
    k8py images ls [-q]          IMAGE TAG IMAGE ID SIZE, as crictl prints them
    k8py images rm REF...        remove references (or images by id)

The store is :func:`k8py.kubelet.images.store_dir` of ``--data-dir`` (the agent's store; the
command may run while the agent does). The program registers the command with
:func:`add_images_parser`, which takes the ``subparsers`` object of the top-level parser.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from k8py.kubelet.images import ImageStore

__all__ = ["add_images_parser", "human_size"]


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    from k8py.config import default_data_dir

    p.add_argument("--data-dir", "-d", metavar="DIR", default=default_data_dir(),
                   help="k8py's data directory; the images are in DIR/agent/images-store (default: %(default)s)")  # fmt: skip
    p.add_argument("--debug", action="store_true", help="log at debug level")


def add_images_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "images", help="list, import and remove the node's container images",
        description="The node's container images (what the agent runs pods from): import archives for "
                    "nodes without a registry, list them as crictl does, remove them.")  # fmt: skip
    sub = p.add_subparsers(dest="images_command", metavar="COMMAND", title="commands")

    imp = sub.add_parser(
        "import", help="import image archives",
        description="Import every image of OCI archives (skopeo copy ... oci-archive:FILE) or docker "
                    "archives (docker save), compressed or not, under the names they record.")  # fmt: skip
    imp.add_argument("files", nargs="+", metavar="FILE", help="image archive")
    _data_dir_arg(imp)
    imp.set_defaults(func=_run_import, parser=imp)

    ls = sub.add_parser("ls", aliases=["list"], help="list the images",
                        description="List the node's images: IMAGE TAG IMAGE ID SIZE.")  # fmt: skip
    ls.add_argument("-q", "--quiet", action="store_true", help="print the image ids only")
    ls.add_argument("--digests", action="store_true", help="show the digests too")
    _data_dir_arg(ls)
    ls.set_defaults(func=_run_ls, parser=ls)

    rm = sub.add_parser(
        "rm", aliases=["rmi"], help="remove images",
        description="Remove image references; an image goes with its last tag. An id (sha256:... or a "
                    "unique prefix) removes the image. Images containers use are not removed.")  # fmt: skip
    rm.add_argument("refs", nargs="+", metavar="REF", help="image reference or id")
    _data_dir_arg(rm)
    rm.set_defaults(func=_run_rm, parser=rm)

    def usage(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        print("\nk8py images: error: choose a command (import, ls, rm)", file=sys.stderr)
        return 2

    p.set_defaults(func=usage, parser=p)
    return p


def human_size(size: int) -> str:
    """Sizes as crictl prints them (go-units' HumanSizeWithPrecision(size, 3)): 3.11MB, 745kB."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    value, i = float(size), 0
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.3g}{units[i]}"


def _run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    return asyncio.run(main())


def _store(args: argparse.Namespace) -> ImageStore:
    from k8py.kubelet.images import ImageStore, store_dir

    return ImageStore(store_dir(args.data_dir))


def _run_import(args: argparse.Namespace) -> int:
    from k8py.kubelet.runtime.types import RuntimeServiceError

    async def main() -> int:
        store = _store(args)
        rc = 0
        for file in args.files:
            try:
                images = await store.import_archive(file)
            except RuntimeServiceError as e:
                print(f"k8py images import: {e}", file=sys.stderr)
                rc = 1
                continue
            for image in images:
                names = ", ".join(image.repo_tags) or "<none>"
                print(f"imported {names} ({image.id}) from {file}")
        return rc

    return _run(main)


def _split(ref: str) -> tuple[str, str]:
    """``repo:tag`` -> (repo, tag); ``repo@digest`` -> (repo, digest)."""
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, digest
    repo, _, tag = ref.rpartition(":")
    return repo, tag


def _run_ls(args: argparse.Namespace) -> int:
    async def main() -> int:
        images = await _store(args).list_images()
        if args.quiet:
            for image in images:
                print(image.id)
            return 0
        rows = []
        for image in images:
            digest = image.repo_digests[0].partition("@")[2][7:19] if image.repo_digests else "<none>"
            short_id = image.id.removeprefix("sha256:")[:13]
            size = human_size(image.size)
            if image.repo_tags:
                rows += [(*_split(tag), digest, short_id, size) for tag in image.repo_tags]
            elif image.repo_digests:
                rows += [(_split(d)[0], "<none>", digest, short_id, size) for d in image.repo_digests[:1]]
            else:
                rows.append(("<none>", "<none>", "<none>", short_id, size))
        header = ("IMAGE", "TAG", "DIGEST", "IMAGE ID", "SIZE")
        keep = [0, 1, 2, 3, 4] if args.digests else [0, 1, 3, 4]
        table = [[r[i] for i in keep] for r in [header, *rows]]
        widths = [max(len(r[c]) for r in table) for c in range(len(keep) - 1)]
        for r in table:
            print("   ".join([*(v.ljust(w) for v, w in zip(r, widths, strict=False)), r[-1]]).rstrip())
        return 0

    return _run(main)


def _run_rm(args: argparse.Namespace) -> int:
    from k8py.kubelet.runtime.types import RuntimeServiceError

    async def main() -> int:
        store = _store(args)
        rc = 0
        for ref in args.refs:
            try:
                if await store.image_status(ref) is None:
                    print(f"k8py images rm: no such image {ref}", file=sys.stderr)
                    rc = 1
                    continue
                await store.remove_image(ref)
            except RuntimeServiceError as e:
                print(f"k8py images rm: {e}", file=sys.stderr)
                rc = 1
                continue
            print(f"Deleted: {ref}")
        return rc

    return _run(main)
