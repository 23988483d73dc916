"""@side_effect: skipped in shadow, untouched in primary, for functions, methods and coroutines."""

from __future__ import annotations

import asyncio

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


def test_wraps_metadata() -> None:
    assert send_email.__name__ == "send_email"
    assert asyncio.iscoroutinefunction(apush)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="not both"):
        side_effect(returns=1, instead=_validate)
    with pytest.raises(TypeError, match="callable"):
        side_effect(instead=3)  # type: ignore[call-overload]
