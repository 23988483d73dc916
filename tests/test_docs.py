"""The documentation site builds with warnings as errors, as `nox -s docs` builds it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="the docs toolchain resolves older, incompatible releases on 3.10; nox -s docs builds on 3.13",
)
def test_docs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "integrations" / "sqlalchemy" / "index.html").exists()
    # The API reference is generated from the docstrings (mkdocstrings), not written by hand.
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("shadowguard.install", "shadowguard.shadow", "shadowguard.testing"):
        assert f'id="{name}"' in api, name


def _source_url() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^Source = "(?P<url>[^"]+)"', text, re.MULTILINE)
    assert match is not None, "[project.urls] has no Source"
    return match["url"].rstrip("/")


def test_links_into_the_repository_name_files_that_exist() -> None:
    """Links to repository files (the examples) use [project.urls] Source and the file exists.

    Relative links out of docs/ would break `mkdocs build --strict`; absolute ones to another
    address, or to a moved file, would break on the site.
    """
    source = _source_url()
    owner = "/".join(source.split("/")[:4])  # https://github.com/OWNER
    links = 0
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for url in re.findall(r"\]\((https://github\.com/[^)\s]+)\)", page.read_text("utf-8")):
            if not url.startswith(owner + "/"):
                continue
            links += 1
            assert url.startswith(source + "/"), f"{page.name}: {url} is not under {source}"
            path = re.sub(r"^/(?:blob|tree)/main/?", "", url[len(source) :]).split("#")[0]
            assert (ROOT / path).exists(), f"{page.name}: {url} names a missing file {path}"
    assert links >= 5  # docs/install.md and docs/index.md link every example README


def test_readme_links_work_on_a_package_index_page() -> None:
    """README.md is the package's long description: a relative link breaks on the index page."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    relative = [u for u in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in u]
    assert relative == [], "use the repository URL ([project.urls] Source) instead"
