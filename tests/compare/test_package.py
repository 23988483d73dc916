"""The compare package stays apart: not imported with shadowguard, nothing beyond the stdlib."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(result.stdout.split())


def test_importing_shadowguard_does_not_import_compare() -> None:
    loaded = _modules_after("import shadowguard, shadowguard.middleware, shadowguard.integrations")
    assert not [m for m in loaded if m.startswith("shadowguard.compare")]


def test_compare_needs_only_the_standard_library() -> None:
    before = _modules_after("import shadowguard")
    after = _modules_after("import shadowguard.compare, shadowguard.compare._command")
    added = {m.split(".")[0] for m in after - before}
    assert added - set(sys.stdlib_module_names) == {"shadowguard"}
