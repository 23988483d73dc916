"""Developer and CI tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``bench``, ``docs``, ``compat``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - nox itself run by Python 3.10
    import tomli as tomllib

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
    """The stateful interleaving tests and the load proof behind Envoy (primary latency, lock
    waits, shadow memory, faults), with 20 times their CI examples and orders (real peers)."""
    install_group(session, "test")
    files = [
        "tests/integrations/test_sqlalchemy_stateful.py",
        "tests/integrations/test_http_stateful.py",
        "tests/integrations/test_confluent_kafka_stateful.py",
        "tests/e2e/test_primary_under_load.py",
        "tests/e2e/test_primary_faults.py",
        "tests/e2e/soak_mirror_floor.py",  # only here: not a test_* file
        *session.posargs,
    ]
    session.run("pytest", "-p", "no:cacheprovider", *files, env={"SHADOWGUARD_SOAK": "20"})


#: Where the lowest declared version cannot run on a Python at all (no wheel, or it does not
#: import), the lowest that can: the compat session pins that one instead, on that Python.
COMPAT_FLOORS: dict[str, dict[str, str]] = {}
#: Packages released in lockstep with a pinned one: pinned to the same version.
COMPAT_LOCKSTEP = {"opentelemetry-api": ("opentelemetry-sdk",), "celery": ("kombu",)}
#: A pinned package's dependency whose newest release it cannot run with: the release of its
#: time. Flask 2.2 imports ``werkzeug.urls.url_quote``, gone in Werkzeug 3 (the moto server
#: the boto3 tests start is a Flask app).
COMPAT_COMPANIONS = {"flask": "werkzeug==2.2.3"}


def lowest_pins(python: str) -> list[str]:
    """``name==X`` for every ``name>=X`` in the dependencies and extras of pyproject.toml.

    Extras asked for anywhere (``sqlalchemy[asyncio]``, the test group's
    ``confluent-kafka[json]``) are kept, so the pinned packages bring what the tests need.
    """
    project = tomllib.loads(Path("pyproject.toml").read_text())
    declared = list(project["project"]["dependencies"])
    for extra in project["project"]["optional-dependencies"].values():
        declared += extra
    extras: dict[str, set[str]] = {}
    lowest: dict[str, str] = {}
    test_group = [r for r in project["dependency-groups"]["test"] if isinstance(r, str)]
    for text in declared + test_group:
        requirement = Requirement(text)
        name = requirement.name.lower()
        if name == "shadowguard":
            continue
        extras.setdefault(name, set()).update(requirement.extras)
        if text in declared:
            for spec in requirement.specifier:
                if spec.operator == ">=":
                    lowest[name] = spec.version
    lowest.update(COMPAT_FLOORS.get(python, {}))
    for name, followers in COMPAT_LOCKSTEP.items():
        for follower in followers:
            if name in lowest:
                lowest[follower] = lowest[name]
    pins = [COMPAT_COMPANIONS[name] for name in sorted(lowest) if name in COMPAT_COMPANIONS]
    for name, version in sorted(lowest.items()):
        wanted = f"[{','.join(sorted(extras.get(name, ())))}]" if extras.get(name) else ""
        pins.append(f"{name}{wanted}=={version}")
    return pins


@nox.session(python=PYTHONS)
def compat(session: nox.Session) -> None:
    """tests/integrations against the lowest version of every dependency pyproject declares.

    Not a default session: it reinstalls old releases over the test group (pip warns about
    the test group's own newer pins; the run is what counts). About 3 minutes of tests per
    Python; ``.ci/run`` runs it after the README's test command.
    """
    install_group(session, "test")
    session.install(*lowest_pins(str(session.python)))
    session.run(
        "pytest",
        *(session.posargs or ["-p", "no:cacheprovider", "-q", "tests/integrations"]),
        env={"PYTHONHASHSEED": "0"},
    )
