"""Run the benchmarks: ``python -m benchmarks [name ...] [--telemetry api|sdk|both]``.

Every benchmark module runs twice, each pass in its own process: with the OpenTelemetry
API alone, then with the SDK configured (see :mod:`benchmarks._harness`). A comparison
misses when it is over its target in a pass; a shadow path (a comparison whose name says
"shadow", where span events and the suppression counter are on the path) misses too when
its SDK pass adds more than three times what its API pass adds (at least 0.5 us, below
which the difference is noise). The exit status is 1 when anything missed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import benchmarks
from benchmarks._harness import PASSES, Harness, configure_sdk, fmt_ns

#: A shadow path's SDK pass may cost at most this many times its API pass...
SDK_FACTOR = 3.0
#: ...of an API-pass cost of at least this much (ns).
SDK_FLOOR_NS = 500.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    parser.add_argument("--telemetry", choices=[*PASSES, "both"], default="both")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/latest.json"))
    parser.add_argument(
        "--check", action="store_true", help="accepted for compatibility: misses always fail"
    )
    args = parser.parse_args(argv)
    if args.telemetry != "both":
        return run_pass(args.telemetry, args.names, args.json)

    passes: dict[str, dict[str, Any]] = {}
    for telemetry in PASSES:
        print(f"\n#### pass: {telemetry}", flush=True)
        path = args.json.with_name(f"{args.json.stem}-{telemetry}.json")
        path.unlink(missing_ok=True)
        command = [sys.executable, "-m", "benchmarks", *args.names, "--telemetry", telemetry]
        status = subprocess.call([*command, "--json", str(path)])
        if not path.exists():  # it did not finish; a miss still writes its results
            print(f"the {telemetry} pass failed (exit status {status})")
            return status or 2
        passes[telemetry] = json.loads(path.read_text())
    missed = summarize(passes)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(passes | {"missed": missed}, indent=2))
    print(f"\n{len(missed)} missed target(s); saved to {args.json}")
    for line in missed:
        print(f"  missed: {line}")
    return 1 if missed else 0


def run_pass(telemetry: str, names: list[str], json_path: Path) -> int:
    """Run the benchmark modules once, in this process, with ``telemetry`` configured."""
    harness = Harness(telemetry=telemetry)
    if telemetry == "sdk":
        harness.between_samples = configure_sdk()
    modules = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    if names:
        modules = [m for m in modules if m in names or m.removeprefix("bench_") in names]
    for name in modules:
        print(f"== {name} ({telemetry})", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        module.run(harness)
    harness.save(json_path)
    missed = [r.name for r in harness.results if r.met is False]
    return 1 if missed else 0


def summarize(passes: dict[str, dict[str, Any]]) -> list[str]:
    """Print both passes side by side; return what missed."""
    api = {r["name"]: r for r in passes["api"]["results"]}
    sdk = {r["name"]: r for r in passes["sdk"]["results"]}
    machine = passes["sdk"]["machine"]
    print(
        f"\n{machine['cores']} cores, {machine['cpu']}, "
        f"{machine['implementation']} {machine['python']}"
    )
    print(f"{'comparison':<58} {'API only':>10} {'SDK':>10}  targets")
    missed = []
    for name in dict.fromkeys([*api, *sdk]):
        a, s = api.get(name), sdk.get(name)
        targets = []
        for result in (a, s):
            if result is None:
                continue
            target = result["target_added_ns"]
            if target is not None:
                targets.append(f"{result['telemetry']}<={fmt_ns(target)}")
            if result["target_ratio"] is not None:
                targets.append(f"{result['telemetry']} ratio<={result['target_ratio']}")
            if result["met"] is False:
                missed.append(f"{name} ({result['telemetry']} pass)")
        if a is not None and s is not None and "shadow" in name:
            limit = SDK_FACTOR * max(a["added_ns"], SDK_FLOOR_NS)
            if s["added_ns"] > limit:
                missed.append(f"{name} (SDK pass over {SDK_FACTOR:g}x the API pass)")
        print(
            f"{name:<58} {fmt_ns(a['added_ns']) if a else '-':>10} "
            f"{fmt_ns(s['added_ns']) if s else '-':>10}  {', '.join(targets)}"
        )
    return missed


if __name__ == "__main__":
    sys.exit(main())
