"""Developer and CI tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``bench``, ``docs``."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.13"]


def _put_pyenv_pythons_on_path() -> None:
    """Let nox find every pyenv-installed Python we test on, not only the active one."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = []
    for version in PYTHONS:
        candidates = sorted(
            root.glob(f"{version}.*"),
            key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()],
        )
        if candidates:
            found.append(str(candidates[-1] / "bin"))
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_put_pyenv_pythons_on_path()


def install_group(session: nox.Session, *groups: str, editable: bool = True) -> None:
    """Install the project (editable) with the given dependency groups."""
    args = ["-e", "."] if editable else ["."]
    for group in groups:
        args += ["--group", group]
    session.install(*args)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite against the real peers (PostgreSQL, Kafka broker, Envoy, ...)."""
    install_group(session, "test")
    session.run(
        "pytest", *(session.posargs or ["-p", "no:cacheprovider"]), env={"PYTHONHASHSEED": "0"}
    )


@nox.session(python=PYTHONS[-1])
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import-linter contracts (the layering)."""
    session.install("--group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(python=PYTHONS[-1])
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, tests and benchmarks."""
    install_group(session, "typecheck")
    session.run("mypy")


@nox.session(python=PYTHONS[-1])
def bench(session: nox.Session) -> None:
    """Benchmarks, API only then with the OpenTelemetry SDK; fails when a target is missed."""
    install_group(session, "bench")
    env = {"SHADOWGUARD_BENCH_QUICK": os.environ.get("SHADOWGUARD_BENCH_QUICK", "")}
    session.run("python", "-m", "benchmarks", *session.posargs, env=env)


@nox.session(python=PYTHONS[-1])
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors."""
    session.install("--group", "docs")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session(python=PYTHONS[-1])
def soak(session: nox.Session) -> None:
    """The stateful interleaving tests, with 20 times their CI examples (real peers)."""
    install_group(session, "test")
    files = [
        "tests/integrations/test_sqlalchemy_stateful.py",
        "tests/integrations/test_http_stateful.py",
        *session.posargs,
    ]
    session.run("pytest", "-p", "no:cacheprovider", *files, env={"SHADOWGUARD_SOAK": "20"})
