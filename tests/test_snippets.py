"""Every Python snippet of README.md and docs/ runs as pasted.

Each ```python block runs in a fresh interpreter, in a working directory shared by the blocks
of its page (so a page can build on a file an earlier block wrote). An HTML comment right
before a block changes what happens to it:

- ``<!-- snippet: file NAME -->``: written to NAME (a ``conftest.py``, a ``settings.py``), not run;
- ``<!-- snippet: pytest NAME -->``: written to NAME and run with pytest, which must pass;
- ``<!-- snippet: skip REASON -->``: not run; the reason is required (keep these few).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(
    r"(?:<!-- snippet: (?P<mode>\w+)(?: (?P<arg>[^>]*?))? -->\n)?^```python\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
MODES = {"run", "file", "pytest", "skip"}


@dataclass(frozen=True)
class Snippet:
    page: Path
    line: int
    mode: str
    arg: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def snippets(page: Path) -> list[Snippet]:
    text = page.read_text(encoding="utf-8")
    return [
        Snippet(
            page,
            text.count("\n", 0, m.start("code")),
            m.group("mode") or "run",
            (m.group("arg") or "").strip(),
            m.group("code"),
        )
        for m in _BLOCK.finditer(text)
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOW", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(args: list[str], tmp_path: Path, what: str) -> str | None:
    """None when the command succeeds, else what it printed."""
    result = subprocess.run(
        args, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    if result.returncode == 0:
        return None
    return f"{what} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_snippets_run_as_pasted(page: Path, tmp_path: Path) -> None:
    failures: list[str | None] = []
    for snippet in snippets(page):
        assert snippet.mode in MODES, f"{snippet.name}: unknown snippet mode {snippet.mode!r}"
        if snippet.mode == "skip":
            assert snippet.arg, f"{snippet.name}: a skipped snippet says why"
            continue
        if snippet.mode in ("file", "pytest"):
            assert snippet.arg, f"{snippet.name}: {snippet.mode} needs a file name"
            (tmp_path / snippet.arg).write_text(snippet.code, encoding="utf-8")
            if snippet.mode == "pytest":
                command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
                failures.append(_run([*command, snippet.arg], tmp_path, snippet.name))
            continue
        script = tmp_path / f"snippet_{snippet.line}.py"
        script.write_text(snippet.code, encoding="utf-8")
        failures.append(_run([sys.executable, script.name], tmp_path, snippet.name))
    failed = [f for f in failures if f]
    assert not failed, "\n\n".join(failed)


def test_opt_outs_stay_few() -> None:
    skipped = [s.name for page in PAGES for s in snippets(page) if s.mode == "skip"]
    assert len(skipped) <= 4, skipped
