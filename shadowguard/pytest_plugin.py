"""pytest plugin: run tests as shadow traffic and prove nothing was persisted.

Registered through the ``pytest11`` entry point, so it loads in every project that
installs shadowguard: this module imports only pytest at load time; shadowguard itself,
SQLAlchemy and the checks are imported when the first shadow test runs.
"""

from __future__ import annotations

import contextvars
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from shadowguard._pytest_report import PROPERTY, Report

if TYPE_CHECKING:
    from shadowguard import Scope
    from shadowguard import shadow as shadow_cm
    from shadowguard._pytest_databases import Discovery
    from shadowguard.testing import EngineLike

__all__ = ["shadow", "shadowguard_allow_hosts", "shadowguard_engines"]

_OPTIONS = {
    "reason": None,
    "allow_hosts": (),
    "ignore_tables": (),
    "block_network": True,
    "check_database": True,
    "enabled": True,
}
_MARKER_HELP = (
    "shadow(allow_hosts=[...], ignore_tables=[...], block_network=True, check_database=True, "
    "reason=None, enabled=True): run the test body as shadow traffic and fail it if anything "
    "was persisted or a connection to a host that is not allowed was opened"
)
_DATABASE_GUARDS = {"sqlalchemy", "django"}
_NOTHING_CHECKED = """shadowguard: this shadow test checked nothing, so it cannot pass.
No database was found to snapshot and no shadowguard guard is installed: whatever the code
persisted, the test would pass. Configure at least one of:
  - shadowguard.install() in conftest.py (or at the app's start-up): the guards roll back or
    suppress what shadow code does;
  - a shadowguard_engines fixture in conftest.py returning your engines or database URLs: the
    test compares their tables before and after the body;
  - @pytest.mark.shadow(check_database=False) if the code under test uses no database (the
    network block still applies)."""


@dataclass
class _Plan:
    """How one test runs as shadow: its options, its scope and what it leaked."""

    enforce: bool
    reason: str
    allow_hosts: list[str]
    ignore_tables: list[str]
    block_network: bool
    check_database: bool
    engines: Sequence[EngineLike] = ()
    discovery: Discovery | None = None
    resolved: bool = False
    context: contextvars.Context | None = None
    manager: shadow_cm | None = None
    scope: Scope | None = None

    def enter(self) -> None:
        """Create the scope now (in a context of its own); the test body enters it later."""
        from shadowguard import shadow

        self.context = contextvars.copy_context()
        self.manager = shadow(self.reason)
        self.scope = self.context.run(self.manager.__enter__)

    def watch(self) -> None:
        """Start finding the databases the test uses without naming them."""
        if self.check_database:
            from shadowguard._pytest_databases import Discovery

            self.discovery = Discovery(tuple(self.ignore_tables))
            self.discovery.start()

    def close(self) -> None:
        """End the scope, running the guards' clean-up (rollbacks) registered on it."""
        if self.discovery is not None:
            self.discovery.stop()
        if self.manager is not None and self.context is not None:
            manager, self.manager = self.manager, None
            self.context.run(manager.__exit__, None, None, None)


_PLAN = pytest.StashKey[_Plan]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shadowguard")
    group.addoption(
        "--shadowguard-all",
        action="store_true",
        dest="shadowguard_all",
        help="run every selected test as shadow traffic; a test that persists anything fails",
    )
    group.addoption(
        "--shadowguard-audit",
        action="store_true",
        dest="shadowguard_audit",
        help="run every selected test as shadow traffic and report, per test, which side-effect "
        "channels leaked; leaks fail only the tests marked shadow (a refused connection still "
        "raises where it is made)",
    )
    parser.addini(
        "shadowguard_allow_hosts",
        type="args",
        default=[],
        help="hosts every shadow test may connect to (brokers, test servers): "
        "host, host:port, [v6]:port, a unix socket path, or *",
    )
    parser.addini(
        "shadowguard_ignore_tables",
        type="args",
        default=[],
        help="tables (table or schema.table) left out of every shadow test's database snapshot",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)
    config.pluginmanager.register(Report(config), "shadowguard-report")


def _options(item: pytest.Item) -> dict[str, Any] | None:
    """The merged options of every shadow marker (the closest wins, key by key)."""
    markers = list(item.iter_markers("shadow"))
    if not markers:
        return None
    options = dict(_OPTIONS)
    for marker in reversed(markers):
        unknown = set(marker.kwargs) - set(_OPTIONS)
        if marker.args or unknown:
            got = [*map(repr, marker.args), *sorted(unknown)]
            pytest.fail(
                f"@pytest.mark.shadow takes keyword options only; accepted are "
                f"{', '.join(_OPTIONS)} (got {', '.join(got)})",
                pytrace=False,
            )
        options.update(marker.kwargs)
    return options


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _plan_for(item: pytest.Item, *, fixture: bool = False) -> _Plan | None:
    """The plan for ``item``, or None when it runs as primary.

    ``fixture`` is true when the ``shadow`` fixture asks: the fixture is only known to be
    ours once it runs (a project may define a fixture of that name), so it decides then.
    """
    options = _options(item)
    config = item.config
    if options is not None and not options["enabled"]:
        if fixture:
            pytest.fail(
                "this test requests the 'shadow' fixture but is marked shadow(enabled=False); "
                "remove one of them",
                pytrace=False,
            )
        return None
    if options is not None or fixture:
        enforce = True
    elif config.getoption("shadowguard_all") or config.getoption("shadowguard_audit"):
        enforce = bool(config.getoption("shadowguard_all"))
    else:
        return None
    options = options or dict(_OPTIONS)
    return _Plan(
        enforce=enforce,
        reason=options["reason"] or f"pytest {item.nodeid}",
        allow_hosts=[*config.getini("shadowguard_allow_hosts"), *_listed(options["allow_hosts"])],
        ignore_tables=[
            *config.getini("shadowguard_ignore_tables"),
            *_listed(options["ignore_tables"]),
        ],
        block_network=bool(options["block_network"]),
        check_database=bool(options["check_database"]),
    )


def _function(item: pytest.Item) -> pytest.Function | None:
    """The item if it runs ``item.obj``; unittest and doctest items do not."""
    if isinstance(item, pytest.Function) and not any(
        cls.__name__ == "TestCaseFunction" for cls in type(item).__mro__
    ):
        return item
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    plan = _plan_for(item)
    if plan is None:
        return
    item.stash[_PLAN] = plan
    plan.watch()
    if _function(item) is not None:
        plan.enter()


def _resolve(plan: _Plan, request: pytest.FixtureRequest) -> None:
    """Fetch the engines and run-time hosts of a shadow test from their fixtures, once."""
    if plan.resolved:
        return
    plan.resolved = True
    if plan.check_database or plan.block_network:
        plan.engines = tuple(request.getfixturevalue("shadowguard_engines"))
    if plan.block_network:
        plan.allow_hosts += _listed(request.getfixturevalue("shadowguard_allow_hosts"))


@pytest.fixture(autouse=True)
def _shadowguard_engines_of_shadow_tests(request: pytest.FixtureRequest) -> None:
    plan = request.node.stash.get(_PLAN, None)
    if plan is not None:
        _resolve(plan, request)


@pytest.fixture
def shadowguard_engines() -> Sequence[EngineLike]:
    """The SQLAlchemy engines (or URLs) whose databases shadow tests check. Override me.

    Empty by default; define a fixture of this name in ``conftest.py`` returning your
    engines (any scope).
    """
    return ()


@pytest.fixture
def shadowguard_allow_hosts() -> Sequence[str]:
    """Hosts shadow tests may connect to, known only at run time. Override me.

    For peers on random ports (a test broker, a stub server): return their ``host:port``.
    Added to the ``shadowguard_allow_hosts`` ini option and the marker's ``allow_hosts``.
    """
    return ()


@pytest.fixture
def shadow(request: pytest.FixtureRequest) -> Scope:
    """Run this test's body as shadow traffic; the value is its ``Scope``."""
    item = request.node
    plan: _Plan | None = item.stash.get(_PLAN, None)
    if plan is None:
        plan = _plan_for(item, fixture=True)
        assert plan is not None
        item.stash[_PLAN] = plan
        plan.watch()
        if _function(item) is not None:
            plan.enter()
    _resolve(plan, request)
    if plan.scope is None:
        raise pytest.UsageError(
            f"{item.nodeid}: the 'shadow' fixture works for test functions only"
        )
    return plan.scope


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    plan = item.stash.get(_PLAN, None)
    if plan is None:
        return (yield)
    from shadowguard import installed, propagate, shadow
    from shadowguard.testing import NetworkBlock, database_endpoints, snapshot

    engines = plan.engines if plan.check_database else ()
    discovery = plan.discovery
    if discovery is not None:
        discovery.before_body(engines)
    before = snapshot(*engines, ignore_tables=plan.ignore_tables) if engines else None
    block = None
    if plan.block_network:
        block = NetworkBlock([*plan.allow_hosts, *database_endpoints(plan.engines)])
        if discovery is not None:
            discovery.pause = block.lifted
    failure: BaseException | None = None
    function = _function(item)
    original: Any = function.obj if function is not None else None
    try:
        if block is not None:
            block.install()
        if function is not None:
            assert plan.context is not None
            function.obj = plan.context.run(lambda: propagate(original))
            yield
        else:
            with shadow(plan.reason) as plan.scope:
                yield
    except BaseException as exc:
        failure = exc
    finally:
        if function is not None:
            function.obj = original
        if block is not None:
            block.uninstall()
        plan.close()
    lines = before.differences(before.again()) if before is not None else []
    if discovery is not None:
        lines += discovery.differences()
        for what in discovery.unreadable:
            warnings.warn(_unread(what), stacklevel=1)
    channels = ["database"] if lines else []
    guards = installed()
    if lines and not _DATABASE_GUARDS & set(guards):
        lines.append(
            f"hint: no database guard is installed (shadowguard.installed() is {guards!r}), "
            "so nothing rolled these writes back; call shadowguard.install() in conftest.py "
            "or at the app's start-up"
        )
    if block is not None and block.blocked:
        channels.append("network")
        lines += [f"connection to {host} was refused" for host in dict.fromkeys(block.blocked)]
    databases = len(engines) + (discovery.checked if discovery is not None else 0)
    checked = bool(databases or guards or not plan.check_database)
    scope = plan.scope
    record = {
        "enforced": plan.enforce,
        "channels": channels,
        "details": lines,
        "suppressed": dict(scope.counts) if scope is not None else {},
        "databases": databases,
        "checked": checked,
    }
    item.user_properties.append((PROPERTY, record))
    message = "shadowguard: this shadow test persisted something:\n" + "\n".join(lines)
    if failure is not None:
        from shadowguard.testing import ShadowConnectionBlocked

        if "database" in channels or (lines and not isinstance(failure, ShadowConnectionBlocked)):
            item.add_report_section("call", "shadowguard", message)
        raise failure
    if lines and plan.enforce:
        pytest.fail(message, pytrace=False)
    if not checked and plan.enforce:
        unreadable = discovery.unreadable if discovery is not None else []
        pytest.fail(
            _NOTHING_CHECKED
            + "".join(f"\n  found but could not read {what}" for what in unreadable),
            pytrace=False,
        )


def _unread(what: str) -> pytest.PytestWarning:
    return pytest.PytestWarning(
        f"shadowguard found a database this shadow test uses but could not read it, so it was "
        f"not checked: {what}. Name it (with a URL that connects) in the shadowguard_engines "
        "fixture to check it"
    )


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    plan = item.stash.get(_PLAN, None)
    if plan is not None:
        plan.close()  # the call phase never ran (a setup error): still end the scope
