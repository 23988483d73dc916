"""The terminal summary of the pytest plugin: which shadow tests leaked, and through what.

Each shadow test's record travels in its report as the ``shadowguard`` user property, so the
summary also covers tests run by pytest-xdist workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["PROPERTY", "Report"]

PROPERTY = "shadowguard"


@dataclass(eq=False)  # pluggy keeps plugins in sets
class Report:
    """Collects each shadow test's record (also from xdist workers) for the summary."""

    config: pytest.Config
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == PROPERTY and isinstance(value, dict):
                self.records.append((report.nodeid, value))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        audit = bool(self.config.getoption("shadowguard_audit"))
        leaked = [(nodeid, r) for nodeid, r in self.records if r["channels"]]
        if not leaked and not audit:
            return
        tr = terminalreporter
        tr.write_sep("=", "shadowguard")
        tr.write_line(
            f"{len(self.records)} test(s) ran as shadow traffic, {len(leaked)} leaked"
            + (" (audit: leaks fail only the tests marked shadow)" if audit else "")
        )
        unchecked = sum(1 for _, r in self.records if not r.get("checked", True))
        if audit and unchecked:
            tr.write_line(
                f"{unchecked} of them checked nothing: no database found to snapshot and no "
                "guard installed (call shadowguard.install() or define shadowguard_engines)"
            )
        for nodeid, record in leaked:
            tr.write_line(f"LEAKED {nodeid}: {', '.join(record['channels'])}")
            for line in record["details"]:
                tr.write_line(f"    {line}")
        if audit and tr.config.option.verbose > 0:
            for nodeid, record in self.records:
                if record["suppressed"]:
                    counts = ", ".join(f"{k}={v}" for k, v in sorted(record["suppressed"].items()))
                    tr.write_line(f"suppressed by guards in {nodeid}: {counts}")
