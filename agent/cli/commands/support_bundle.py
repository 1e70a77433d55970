"""``replenish support-bundle OUT.tar.gz``: a redacted archive for support staff."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from agent.config import Settings
from agent.ops import doctor
from agent.ops.support_bundle import Sources, write_bundle


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "support-bundle",
        help="write a redacted diagnostics archive (no readings, no secrets)",
        description="Settings without secrets, versions, recent warnings, the doctor "
        "report and database statistics, in one .tar.gz readable only by you.",
    )
    parser.add_argument("out", type=Path, metavar="OUT.tar.gz", help="archive to write")
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="S",
        help="seconds the doctor checks wait for the broker and the vendor (default 5)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings_loader: Callable[[], Settings]) -> int:
    sources = Sources(probes=doctor.Probes(timeout_s=args.timeout))
    members = write_bundle(args.out, settings_loader, sources)
    print(f"wrote {args.out}:")
    for name in members:
        print(f"  {name}")
    print("read it before sending: tar -xzOf " + str(args.out) + " | less")
    return 0
