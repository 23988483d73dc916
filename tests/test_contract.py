"""The sink contract: recording, refusing, running as primary, and the one install shape."""

from __future__ import annotations

import threading
import types
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shadowguard
from shadowguard import Action, Kind, ShadowSideEffectBlocked, _config, _patching, contract, shadow
from shadowguard.contract import (
    PROCESS,
    Patches,
    RequestScope,
    as_primary,
    is_wrapped,
    mark_wrapped,
    record,
    refuse,
    scope_now,
    unwrapped,
)
from tests.test_telemetry import _points


def test_kinds_are_the_strings_scopes_count_by() -> None:
    assert Kind.DB_COMMIT == "db.commit"
    assert Kind.KAFKA_PRODUCE == "kafka.produce"
    assert Kind.KAFKA_TRANSACTION == "kafka.transaction"
    assert Kind.HTTP_REQUEST == "http.request"
    assert Kind.MAIL_SEND == "mail.send"
    assert Kind.CALL == "call"


def test_record_adds_operation_and_action_in_every_enclosing_scope() -> None:
    with shadow() as outer, shadow() as inner:
        made = record(Kind.MAIL_SEND, "smtp://mx", "sendmail", {"bytes": 10})
    for scope in (outer, inner):
        assert scope.suppressed == [made]
        assert scope.counts == {"mail.send": 1}
    assert dict(made.detail) == {"operation": "sendmail", "action": "suppressed", "bytes": 10}
    assert not made.blocked


def test_refuse_records_the_refusal_and_returns_the_error_to_raise() -> None:
    with (
        shadow() as scope,
        pytest.raises(ShadowSideEffectBlocked, match="DROP TABLE") as caught,
    ):
        raise refuse(Kind.DB_COMMIT, "postgresql://db", "execute", "DROP TABLE", remedy="Do not.")
    (recorded,) = scope.suppressed
    assert recorded.blocked
    assert recorded.error is caught.value
    assert recorded.detail["action"] == Action.BLOCKED
    assert recorded.detail["operation"] == "execute"
    assert "Do not." in str(caught.value)


def test_refusals_are_counted_apart_in_telemetry(metric_reader: Any) -> None:
    def blocked_count() -> float:
        total: float = sum(
            p.value
            for p in _points(metric_reader, "shadowguard.suppressed")
            if p.attributes.get("kind") == "call" and p.attributes.get("action") == "blocked"
        )
        return total

    before = blocked_count()
    with shadow():
        refuse(Kind.CALL, "fn", "call", "a call")
        record(Kind.CALL, "fn", "call")
    assert blocked_count() == before + 1


def test_as_primary_leaves_the_request_scope_for_the_block_only() -> None:
    with shadow() as scope:
        with as_primary():
            assert not shadowguard.is_shadow()
            assert scope_now() is None
        assert scope_now() is scope
    assert scope_now() is None


def test_as_primary_in_a_shadow_process_stays_shadow() -> None:
    _config.configure(mode="shadow")
    try:
        with as_primary():
            assert shadowguard.is_shadow()
    finally:
        _config.reset()
    assert not PROCESS.shadow


def test_request_scope_is_reentered_and_finished_once() -> None:
    request = RequestScope("request:host")
    undone: list[str] = []
    token = request.enter()
    request.scope.on_exit(lambda: undone.append("rollback"))
    assert scope_now() is request.scope
    RequestScope.exit(token)
    assert scope_now() is None
    token = request.enter()
    RequestScope.exit(token)
    assert request.finish()
    assert not request.finish()
    assert undone == ["rollback"]
    assert request.finished
    assert scope_now() is None


def test_wrapped_marker() -> None:
    def original() -> None: ...

    def wrapper() -> None: ...

    assert not is_wrapped(wrapper)
    assert unwrapped(wrapper) is wrapper
    assert mark_wrapped(wrapper, original) is wrapper
    assert is_wrapped(wrapper)
    assert unwrapped(wrapper) is original


def _target() -> types.SimpleNamespace:
    return types.SimpleNamespace(send=lambda: "real", close=lambda: "closed")


def test_install_validates_options_with_one_text() -> None:
    patches = Patches("demo")

    def apply(*, allow: tuple[str, ...] = ()) -> None: ...

    with pytest.raises(TypeError, match=r"demo integration got unknown option\(s\) deny"):
        patches.install(apply, {"deny": 1})
    with pytest.raises(TypeError, match="accepted options are allow"):
        patches.install(apply, {"deny": 1})

    def no_options() -> None: ...

    with pytest.raises(TypeError, match="none"):
        patches.install(no_options, {"x": 1})
    assert not patches.installed


def test_a_half_done_install_is_undone() -> None:
    patches = Patches("demo")
    target = _target()
    original = target.send

    def apply() -> None:
        patches.setattr(target, "send", lambda: "guarded")
        raise RuntimeError("second patch failed")

    with pytest.raises(RuntimeError):
        patches.install(apply, {})
    assert target.send is original
    assert not patches.installed
    assert "demo" not in _patching.active_patch_sets()


def test_install_is_idempotent_under_concurrency() -> None:
    patches = Patches("demo")
    target = _target()
    applied: list[int] = []
    barrier = threading.Barrier(8)

    def apply() -> None:
        applied.append(1)
        patches.setattr(target, "send", lambda: "guarded")

    def run() -> None:
        barrier.wait()
        patches.install(apply, {})

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert applied == [1]
        assert target.send() == "guarded"
    finally:
        patches.uninstall()
    assert target.send() == "real"
    assert not patches.installed


def test_uninstall_runs_after_even_when_an_undo_fails() -> None:
    patches = Patches("demo")
    forgotten: list[bool] = []

    def failing_undo() -> None:
        raise RuntimeError("undo failed")

    patches.add("broken", failing_undo)
    with pytest.raises(RuntimeError, match="undo failed"):
        patches.uninstall(after=lambda: forgotten.append(True))
    assert forgotten == [True]
    assert not patches.installed


@given(st.text(max_size=20), st.dictionaries(st.text(max_size=8), st.integers(), max_size=4))
def test_record_keeps_every_detail_key(target: str, detail: dict[str, int]) -> None:
    detail = {k: v for k, v in detail.items() if k not in ("operation", "action")}
    with shadow() as scope:
        made = record(Kind.CALL, target, "call", detail)
    assert scope.total == 1
    assert made.target == target
    assert {k: made.detail[k] for k in detail} == detail
    assert made.detail["operation"] == "call"


def test_the_contract_names_what_it_exports() -> None:
    for name in contract.__all__:
        assert hasattr(contract, name), name
