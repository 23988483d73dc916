"""What the per-channel ``--shadowguard-audit`` tests share: an inner suite run under the audit."""

from __future__ import annotations

import pytest


def guards_conftest(*integrations: str) -> str:
    """An inner conftest installing ``integrations`` around the whole inner session."""
    names = ", ".join(f'"{name}"' for name in integrations)
    return f"""
import pytest
import shadowguard


@pytest.fixture(scope="session", autouse=True)
def guards():
    shadowguard.install({names})
    yield
    shadowguard.uninstall({names})
"""


def run_audit(
    pytester: pytest.Pytester,
    tests: str,
    conftest: str,
    *,
    suppressed: dict[str, str],
    allow_hosts: str = "",
    ini: str = "",
) -> None:
    """Run ``tests`` (as ``test_inner.py``) with ``--shadowguard-audit``: every test passes as
    shadow traffic, none leaks, and the report lists, in this order, what the guards suppressed
    in each (``suppressed`` maps every test's name to its counts, as printed).

    ``ini`` holds extra ``[pytest]`` lines; ``allow_hosts`` is ``shadowguard_allow_hosts``.
    """
    pytester.makeconftest(conftest)
    allow = f"shadowguard_allow_hosts = {allow_hosts}\n" if allow_hosts else ""
    pytester.makeini(f"[pytest]\n{ini}asyncio_default_fixture_loop_scope = function\n{allow}")
    pytester.makepyfile(test_inner=tests)
    result = pytester.runpytest("-p", "no:cacheprovider", "--shadowguard-audit", "-v")
    result.assert_outcomes(passed=len(suppressed))
    result.stdout.fnmatch_lines(
        [
            f"{len(suppressed)} test(s) ran as shadow traffic, 0 leaked (audit: *)",
            *(
                f"suppressed by guards in test_inner.py::{name}: {counts}"
                for name, counts in suppressed.items()
            ),
        ]
    )
