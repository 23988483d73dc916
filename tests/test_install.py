"""install()/uninstall(): idempotent, reversible, and clear about missing extras."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import shadowguard
from shadowguard import integrations
from shadowguard._patching import Patches, active_patch_sets
from tests import _fake_integration

FAKE = integrations.Integration("fake", "tests._fake_integration", "json", "fake")
MISSING = integrations.Integration(
    "nolib", "tests._fake_integration", "no_such_library_xyz", "nolib"
)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the stand-ins: the real integrations' libraries are installed in the test env.
    monkeypatch.setattr(integrations, "INTEGRATIONS", {"fake": FAKE, "nolib": MISSING})


@pytest.mark.usefixtures("registry")
def test_install_is_idempotent_and_reversible() -> None:
    original = json.dumps
    try:
        assert shadowguard.install("fake", fake={"x": 1}) == ["fake"]
        assert json.dumps({}) == "patched"
        assert _fake_integration.installed_with == {"x": 1}
        assert shadowguard.install("fake") == ["fake"]
        assert "fake" in active_patch_sets()
    finally:
        shadowguard.uninstall()
    assert json.dumps is original
    assert shadowguard.installed() == []
    assert "fake" not in active_patch_sets()
    shadowguard.uninstall()  # uninstalling twice is harmless


@pytest.mark.usefixtures("registry")
def test_install_all_available_skips_missing_libraries() -> None:
    try:
        assert shadowguard.install() == ["fake"]
    finally:
        shadowguard.uninstall()


@pytest.mark.usefixtures("registry")
def test_named_integration_with_missing_library_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"pip install 'shadowguard\[nolib\]'"):
        shadowguard.install("nolib")
    assert shadowguard.installed() == []


def test_unknown_names_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown integration"):
        shadowguard.install("nonsense")
    with pytest.raises(ValueError, match="unknown integration"):
        shadowguard.install(nonsense={})


def test_patches_restore_inherited_and_own_attributes() -> None:
    class Base:
        def f(self) -> str:
            return "base"

    class Child(Base):
        def g(self) -> str:
            return "child"

    patches = Patches("test")
    patches.setattr(Child, "f", lambda self: "patched-f")
    patches.setattr(Child, "g", lambda self: "patched-g")
    assert Child().f() == "patched-f"
    assert Child().g() == "patched-g"
    patches.restore()
    assert Child().f() == "base"
    assert "f" not in vars(Child)
    assert Child().g() == "child"


def test_import_needs_no_optional_dependency() -> None:
    """Importing shadowguard pulls in none of the libraries it integrates with."""
    code = (
        "import sys, shadowguard, shadowguard.integrations, shadowguard.middleware\n"
        "bad = [m for m in ('sqlalchemy','confluent_kafka','httpx','requests','django','flask',"
        "'starlette','fastapi','urllib3') if m in sys.modules]\n"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.usefixtures("registry")
def test_failing_uninstall_still_forgets_the_integration() -> None:
    """A failed undo must not leave a name listed whose patches are gone (install would skip it)."""
    shadowguard.install("fake")
    real_uninstall = _fake_integration.uninstall

    def broken() -> None:
        real_uninstall()
        raise RuntimeError("undo failed")

    _fake_integration.uninstall = broken
    try:
        with pytest.raises(RuntimeError, match="undo failed"):
            shadowguard.uninstall()
    finally:
        _fake_integration.uninstall = real_uninstall
    assert shadowguard.installed() == []
    assert shadowguard.install("fake") == ["fake"]  # really installed again
    assert json.dumps({}) == "patched"
    shadowguard.uninstall()
