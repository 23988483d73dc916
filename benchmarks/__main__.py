"""Run every benchmark module (``python -m benchmarks [name ...] [--check]``).

``--check`` exits non-zero when a comparison misses its target.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

import benchmarks
from benchmarks._harness import Harness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/latest.json"))
    args = parser.parse_args(argv)

    modules = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    if args.names:
        modules = [m for m in modules if m in args.names or m.removeprefix("bench_") in args.names]
    harness = Harness()
    for name in modules:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        module.run(harness)
    harness.save(args.json)
    missed = [r.name for r in harness.results if r.met is False]
    print(
        f"\n{len(harness.results)} comparisons, {len(missed)} missed target(s); saved to {args.json}"
    )
    for name in missed:
        print(f"  missed: {name}")
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
