"""@side_effect: skipped in shadow, untouched in primary, for functions, methods and coroutines."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from shadowguard import shadow, side_effect

calls: list[str] = []


@side_effect
def send_email(to: str) -> str:
    calls.append(to)
    return f"sent {to}"


@side_effect(returns={"status": "queued"})
def charge(amount: int) -> dict[str, str]:
    calls.append(f"charge {amount}")
    return {"status": "charged"}


def _validate(amount: int) -> str:
    if amount <= 0:
        raise ValueError("amount must be positive")
    return "validated"


@side_effect(instead=_validate)
def refund(amount: int) -> str:
    calls.append(f"refund {amount}")
    return "refunded"


@side_effect(returns=7)
async def apush(x: int) -> int:
    calls.append(f"push {x}")
    return x


async def _avalidate(x: int) -> str:
    return f"checked {x}"


@side_effect(instead=_avalidate)
async def apush2(x: int) -> str:
    calls.append(f"push2 {x}")
    return "pushed"


class Mailer:
    def __init__(self) -> None:
        self.sent: list[str] = []

    @side_effect(returns=False)
    def send(self, to: str) -> bool:
        self.sent.append(to)
        return True

    @side_effect
    @classmethod
    def klass(cls) -> str:
        calls.append("classmethod")
        return cls.__name__

    @side_effect
    @staticmethod
    def static(x: int) -> int:
        calls.append("staticmethod")
        return x


@pytest.fixture(autouse=True)
def _clear() -> None:
    calls.clear()


def test_primary_calls_through() -> None:
    assert send_email("a@x") == "sent a@x"
    assert charge(5) == {"status": "charged"}
    assert refund(1) == "refunded"
    assert asyncio.run(apush(3)) == 3
    assert calls == ["a@x", "charge 5", "refund 1", "push 3"]


def test_shadow_skips_and_records() -> None:
    with shadow() as scope:
        assert send_email("a@x") is None
        assert charge(5) == {"status": "queued"}
        assert refund(2) == "validated"
    assert calls == []
    assert [s.kind for s in scope.suppressed] == ["call"] * 3
    assert scope.suppressed[0].target == f"{__name__}.send_email"
    assert scope.suppressed[2].detail["mode"] == "instead"
    assert [s.detail["operation"] for s in scope.suppressed] == ["call"] * 3
    assert [s.detail["action"] for s in scope.suppressed] == ["suppressed", "stubbed", "stubbed"]


def test_instead_errors_propagate_and_are_recorded() -> None:
    with shadow() as scope, pytest.raises(ValueError, match="positive"):
        refund(0)
    assert calls == []
    assert isinstance(scope.suppressed[0].error, ValueError)


def test_async_forms() -> None:
    async def main() -> tuple[int, str]:
        async with shadow():
            return await apush(1), await apush2(2)

    assert asyncio.run(main()) == (7, "checked 2")
    assert calls == []


def test_methods() -> None:
    m = Mailer()
    with shadow() as scope:
        assert m.send("b@x") is False
        assert Mailer.klass() is None
        assert m.static(3) is None
    assert m.sent == []
    assert calls == []
    assert scope.counts["call"] == 3
    assert m.send("b@x") is True
    assert Mailer.klass() == "Mailer"
    assert Mailer.static(4) == 4
    assert m.sent == ["b@x"]


@side_effect(returns="skipped")
def every_kind_of_parameter(a, b=2, /, c=3, *args, d, e=5, **kw):
    if a == "raise":
        raise LookupError(a)
    return (a, b, c, args, d, e, kw)


def test_primary_binds_arguments_as_the_function_does() -> None:
    """The wrapper has the function's own parameters: every call binds as without it."""
    assert every_kind_of_parameter(1, d=4) == (1, 2, 3, (), 4, 5, {})
    assert every_kind_of_parameter(1, 9, 8, 7, 6, d=0, e=1, z=2) == (
        1,
        9,
        8,
        (7, 6),
        0,
        1,
        {"z": 2},
    )
    assert every_kind_of_parameter(1, c=0, d=0, b=1) == (1, 2, 0, (), 0, 5, {"b": 1})
    with pytest.raises(TypeError, match=r"every_kind_of_parameter\(\) missing 1 required"):
        every_kind_of_parameter(d=1)  # type: ignore[call-arg]
    with pytest.raises(LookupError):
        every_kind_of_parameter("raise", d=1)
    with shadow():
        assert every_kind_of_parameter("raise", d=1) == "skipped"
    assert (
        str(inspect.signature(every_kind_of_parameter)) == "(a, b=2, /, c=3, *args, d, e=5, **kw)"
    )
    lam = side_effect(lambda x, *, y=1: x + y)
    assert (lam(1), lam(1, y=2)) == (2, 3)


def test_wraps_metadata() -> None:
    assert send_email.__name__ == "send_email"
    assert asyncio.iscoroutinefunction(apush)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="not both"):
        side_effect(returns=1, instead=_validate)
    with pytest.raises(TypeError, match="callable"):
        side_effect(instead=3)  # type: ignore[call-overload]


def test_a_fault_inside_the_guard_fails_closed_and_leaves_primary_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shadow: the guard's own error surfaces and the function never runs. Primary: the
    same results and the same errors as the undecorated functions."""
    import shadowguard._side_effect as module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("fault inside the guard")

    monkeypatch.setattr(module, "record", broken)
    with shadow():
        for call in (
            lambda: send_email("a@x"),
            lambda: charge(5),
            lambda: refund(5),
            lambda: asyncio.run(apush(1)),
            lambda: asyncio.run(apush2(1)),
            lambda: Mailer().send("b@x"),
        ):
            with pytest.raises(RuntimeError, match="fault"):
                call()
    assert calls == []
    assert send_email("a@x") == "sent a@x"
    assert charge(5) == {"status": "charged"}
    assert refund(5) == "refunded"
    assert asyncio.run(apush(2)) == 2
    assert calls == ["a@x", "charge 5", "refund 5", "push 2"]
