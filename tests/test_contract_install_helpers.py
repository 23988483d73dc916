"""The sink contract's install helpers: the wrapped method's lookup and a list-of-names option."""

from __future__ import annotations

import importlib.metadata

import pytest

from shadowguard import ConfigError
from shadowguard.contract import class_method, names_option


class _Client:
    def send(self) -> None:
        return None


class _Subclass(_Client):
    pass


def test_class_method_is_the_class_own_attribute() -> None:
    assert class_method(_Client, "send", "demo", "pytest>=8") is vars(_Client)["send"]


def test_a_missing_method_names_the_integration_and_both_versions() -> None:
    installed = importlib.metadata.version("pytest")
    with pytest.raises(ImportError) as raised:
        class_method(_Subclass, "send", "demo", "pytest>=99.1")  # inherited is not its own
    assert str(raised.value) == (
        "shadowguard's demo integration needs pytest>=99.1: "
        f"{__name__}._Subclass.send is missing in pytest {installed}"
    )


def test_a_missing_method_of_an_unknown_distribution_still_names_the_requirement() -> None:
    with pytest.raises(ImportError, match=r"needs no-such-dist>=1: .*\.missing is missing$"):
        class_method(_Client, "missing", "demo", "no-such-dist>=1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [((), frozenset()), (["a", "b", "a"], frozenset({"a", "b"})), (iter(["q"]), frozenset({"q"}))],
)
def test_names_option_takes_names(value: object, expected: frozenset[str]) -> None:
    assert names_option("demo", "shadow_queues", value, "queue names") == expected


@pytest.mark.parametrize("value", ["q", b"q", [""], [1], 5, None])
def test_names_option_refuses_anything_else(value: object) -> None:
    with pytest.raises(ConfigError, match=r"the demo integration's shadow_queues=.*queue names"):
        names_option("demo", "shadow_queues", value, "queue names")
