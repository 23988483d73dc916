"""The ``shadowguard`` command: ``doctor`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _doctor(args: argparse.Namespace) -> int:
    from shadowguard._doctor import diagnose, render

    report = diagnose(args.app)
    print(render(report, as_json=args.json))
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shadowguard", description="Shadow traffic without side effects."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser(
        "doctor",
        help="show settings and integrations; exit 1 if a side-effect library is unguarded",
    )
    doctor.add_argument(
        "app", nargs="?", help="the application to import first, as module or module:attribute"
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shadowguard`` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
