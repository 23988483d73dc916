"""Shadow scopes: nesting, isolation across threads and tasks, propagation, bounded memory."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import shadowguard
from shadowguard import Scope, Suppression, current_scope, is_shadow, propagate, shadow


def test_outside_any_scope_is_primary() -> None:
    assert not is_shadow()
    assert current_scope() is None


def test_scope_records_and_resets() -> None:
    with shadow("replay") as scope:
        assert is_shadow()
        assert current_scope() is scope
        assert scope.reason == "replay"
        s = shadowguard.record_suppression("call", "x.y", {"a": 1})
    assert not is_shadow()
    assert scope.suppressed == [s]
    assert scope.counts["call"] == 1
    assert isinstance(s, Suppression)
    with pytest.raises(TypeError):
        s.detail["b"] = 2  # type: ignore[index]


def test_nested_scopes_report_to_outer() -> None:
    with shadow("outer") as outer:
        shadowguard.record_suppression("db.commit", "db")
        with shadow("inner") as inner:
            assert inner.parent is outer
            assert inner.root is outer
            shadowguard.record_suppression("call", "f")
        assert current_scope() is outer
    assert [s.kind for s in inner.suppressed] == ["call"]
    assert [s.kind for s in outer.suppressed] == ["db.commit", "call"]


def test_scope_is_reset_on_exception() -> None:
    with pytest.raises(RuntimeError), shadow():
        raise RuntimeError("boom")
    assert not is_shadow()


def test_same_manager_reentered() -> None:
    manager = shadow()
    with manager as a, manager as b:
        assert b.parent is a
    assert not is_shadow()


def test_memory_is_bounded_counts_exact() -> None:
    scope = Scope(limit=10)
    for i in range(1000):
        scope.add(Suppression("call", str(i)))
    assert len(scope.suppressed) == 10
    assert scope.total == 1000
    assert scope.dropped == 990
    assert scope.counts["call"] == 1000


def test_limit_comes_from_settings() -> None:
    from shadowguard import _config

    try:
        shadowguard.configure(max_suppressions=3)
        with shadow() as scope:
            for _ in range(5):
                shadowguard.record_suppression("call", "f")
        assert len(scope.suppressed) == 3
        assert scope.total == 5
    finally:
        _config.reset()


def test_exit_callbacks_run_lifo_even_if_one_fails() -> None:
    order: list[str] = []
    with shadow() as scope:
        scope.on_exit(lambda: order.append("first"))
        scope.on_exit(lambda: 1 / 0)
        scope.on_exit(lambda: order.append("last"))
    assert order == ["last", "first"]


def test_decorator_sync_and_async() -> None:
    @shadow("job")
    def job() -> Scope | None:
        return current_scope()

    @shadow()
    async def ajob() -> bool:
        await asyncio.sleep(0)
        return is_shadow()

    scope = job()
    assert scope is not None
    assert scope.reason == "job"
    assert not is_shadow()
    assert asyncio.run(ajob()) is True
    assert job() is not scope  # one scope per call


def test_decorator_refuses_generators() -> None:
    with pytest.raises(TypeError, match="generator"):

        @shadow()
        def gen():
            yield 1


@pytest.mark.asyncio
async def test_async_with() -> None:
    async with shadow() as scope:
        assert current_scope() is scope
    assert not is_shadow()


def test_threads_do_not_see_each_other() -> None:
    """Shadow and primary threads interleaved: each sees only its own state."""
    errors: list[str] = []
    barrier = threading.Barrier(16)

    def worker(n: int) -> None:
        want = n % 2 == 0
        barrier.wait()
        for _ in range(200):
            if want:
                with shadow():
                    if not is_shadow():
                        errors.append(f"{n}: shadow thread saw primary")
            elif is_shadow():
                errors.append(f"{n}: primary thread saw shadow")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_asyncio_tasks_do_not_see_each_other() -> None:
    async def unit(n: int, errors: list[str]) -> None:
        if n % 2:
            async with shadow():
                await asyncio.sleep(random.random() / 1000)
                if not is_shadow():
                    errors.append(f"{n} lost shadow")
        else:
            await asyncio.sleep(random.random() / 1000)
            if is_shadow():
                errors.append(f"{n} saw shadow")

    async def main() -> list[str]:
        errors: list[str] = []
        await asyncio.gather(*(unit(n, errors) for n in range(200)))
        return errors

    assert asyncio.run(main()) == []


def test_plain_thread_starts_primary_propagate_keeps_shadow() -> None:
    seen: dict[str, object] = {}
    with shadow() as scope:
        plain = threading.Thread(target=lambda: seen.__setitem__("plain", is_shadow()))
        plain.start()
        plain.join()

        def work() -> None:
            seen["bound"] = is_shadow()
            shadowguard.record_suppression("call", "in-thread")

        bound = threading.Thread(target=propagate(work))
        bound.start()
        bound.join()
        with ThreadPoolExecutor(2) as pool:
            seen["pool"] = pool.submit(propagate(is_shadow)).result()
            seen["pool_plain"] = pool.submit(is_shadow).result()
    assert seen == {"plain": False, "bound": True, "pool": True, "pool_plain": False}
    assert scope.counts["call"] == 1


@pytest.mark.asyncio
async def test_propagate_run_in_executor() -> None:
    loop = asyncio.get_running_loop()
    async with shadow():
        assert await loop.run_in_executor(None, propagate(is_shadow)) is True
        assert await loop.run_in_executor(None, is_shadow) is False


def test_propagate_from_primary_stays_primary() -> None:
    fn = propagate(is_shadow)
    with shadow():
        assert fn() is False
        assert is_shadow()


def test_one_manager_shared_by_overlapping_threads() -> None:
    """A module-level shadow() entered by two threads at once: each exit takes its own entry."""
    guard = shadow("shared")
    entered = threading.Barrier(2)
    exits: list[str] = []
    errors: list[BaseException] = []

    def worker(name: str, wait_first: bool) -> None:
        try:
            with guard as scope:
                scope.on_exit(lambda: exits.append(name))
                entered.wait()
                if wait_first:
                    entered.wait()  # exit after the other thread
                assert current_scope() is scope
            if not wait_first:
                entered.wait()
            assert not is_shadow()
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=worker, args=("late", True))
    second = threading.Thread(target=worker, args=("early", False))
    first.start()
    second.start()
    first.join(10)
    second.join(10)
    assert errors == []
    assert exits == ["early", "late"]


def test_decorated_sync_callable_returning_a_coroutine_stays_shadow() -> None:
    """A wrapper that returns a coroutine: the body runs when awaited, still in the scope."""

    async def body() -> tuple[bool, Scope | None]:
        await asyncio.sleep(0)
        return is_shadow(), current_scope()

    @shadow("wrapped")
    def wrapper() -> Any:
        return body()

    async def main() -> tuple[bool, Scope | None, bool]:
        seen, scope = await wrapper()
        return seen, scope, is_shadow()

    seen, scope, after = asyncio.run(main())
    assert seen is True
    assert scope is not None
    assert scope.reason == "wrapped"
    assert after is False


def test_exit_in_a_foreign_context_is_an_error() -> None:
    guard = shadow()
    guard.__enter__()
    result: list[BaseException] = []

    def other() -> None:
        try:
            guard.__exit__(None, None, None)
        except RuntimeError as exc:
            result.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    guard.__exit__(None, None, None)
    assert len(result) == 1
    assert not is_shadow()
