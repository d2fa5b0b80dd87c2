"""`unet-decoder asv-offline`: a published asv dashboard that loads without internet."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub) -> None:
    offline = sub.add_parser(
        "asv-offline",
        help="make a published asv dashboard load without internet (run after asv publish)",
    )
    offline.add_argument("html_dir", nargs="?", type=Path, default=Path(".asv/html"))
    offline.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..tracking.dashboard import make_offline

    replaced = make_offline(args.html_dir)
    print(f"{args.html_dir}/index.html now loads {len(replaced)} libraries from ./vendor")
    return 0
