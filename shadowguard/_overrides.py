"""Keyword settings laid over those read from the environment, checked against the fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from shadowguard.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["with_overrides"]

_Settings = TypeVar("_Settings", bound="DataclassInstance")


def with_overrides(
    cls: type[_Settings], values: dict[str, Any], overrides: Mapping[str, Any], what: str
) -> _Settings:
    """``cls(**values)`` with ``overrides`` on top; an unknown ``what`` is a ConfigError."""
    known = {f.name for f in fields(cls)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(
            f"unknown {what}(s) {', '.join(sorted(unknown))}: accepted settings are "
            f"{', '.join(sorted(known))}"
        )
    values.update(overrides)
    return cls(**values)
