"""`python -m services.node_agent.oci.image_cli`: the node's image store.

    image_cli import NAME[:TAG] PATH [--entrypoint JSON|WORD] [--cmd ...] [--env K=V]...
                                     [--user U] [--workdir D] [--stop-signal S] [--rootfs]
    image_cli ls [--json]
    image_cli tag SOURCE TARGET
    image_cli rm NAME[:TAG]...

PATH is an OCI image layout (directory or tar), a `docker save` tarball,
or a root filesystem (directory or tar). --entrypoint/--cmd take a JSON
array (`'["httpd","-f"]'`) or a shell-like string. The store root is
--root or $PODBUS_IMAGE_ROOT (default /var/lib/podbus/images).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

from services.node_agent.oci.imageref import ReferenceError
from services.node_agent.oci.images import (
    DEFAULT_IMAGE_ROOT,
    ImageError,
    ImageStore,
    image_summary,
)


def _argv(text: str | None) -> list[str]:
    if not text:
        return []
    if text.lstrip().startswith("["):
        value = json.loads(text)
        if not isinstance(value, list):
            raise ValueError(f"{text!r}: expected a JSON array")
        return [str(v) for v in value]
    return shlex.split(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="podbus image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", default=os.environ.get("PODBUS_IMAGE_ROOT", DEFAULT_IMAGE_ROOT))
    sub = p.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="import an image")
    imp.add_argument("name", help="NAME[:TAG]")
    imp.add_argument("path")
    imp.add_argument("--entrypoint")
    imp.add_argument("--cmd")
    imp.add_argument("--env", action="append", default=[])
    imp.add_argument("--user", default="")
    imp.add_argument("--workdir", default="")
    imp.add_argument("--stop-signal", default="")
    imp.add_argument("--rootfs", action="store_true", help="treat PATH as a root filesystem")
    ls = sub.add_parser("ls", help="list images")
    ls.add_argument("--json", action="store_true")
    tag = sub.add_parser("tag", help="give an image another name")
    tag.add_argument("source")
    tag.add_argument("target")
    rm = sub.add_parser("rm", help="remove image names")
    rm.add_argument("names", nargs="+")
    return p.parse_args(argv)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.1f}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1000
    return f"{size:.1f}GB"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        store = ImageStore(args.root)
        if args.action == "import":
            rec = store.import_path(
                args.path,
                args.name,
                entrypoint=_argv(args.entrypoint),
                cmd=_argv(args.cmd),
                env=args.env,
                user=args.user,
                workdir=args.workdir,
                stop_signal=args.stop_signal,
                rootfs=True if args.rootfs else None,
            )
            print(f"imported {', '.join(rec.refs)} {rec.id}")
        elif args.action == "ls":
            store.ensure_busybox()
            images = store.images()
            if args.json:
                print(json.dumps([image_summary(store, i) for i in images], indent=1))
                return 0
            print(f"{'IMAGE':<40} {'ID':<14} {'SIZE':>9}  CREATED")
            for img in images:
                age = time.strftime("%Y-%m-%d %H:%M", time.localtime(img.created))
                size = _human(store.size(img))
                for ref in img.refs or ("<none>",):
                    print(f"{ref:<40} {img.id[7:19]:<14} {size:>9}  {age}")
        elif args.action == "tag":
            rec = store.tag(args.source, args.target)
            print(f"tagged {args.target} -> {rec.id}")
        elif args.action == "rm":
            for name in args.names:
                store.remove(name)
                print(f"removed {name}")
    except (ImageError, ReferenceError, ValueError, OSError) as exc:
        print(f"podbus image {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
