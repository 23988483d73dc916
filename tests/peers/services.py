"""How tests treat a missing real peer: skip on a bare machine, fail in CI."""

from __future__ import annotations

import os

import pytest

REQUIRE_SERVICES_ENV = "SHADOWGUARD_REQUIRE_SERVICES"


def services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def service_missing(what: str) -> None:
    """Skip the test, or fail it when SHADOWGUARD_REQUIRE_SERVICES=1 (as in CI)."""
    message = f"{what} is not available"
    if services_required():
        pytest.fail(f"{message}, and {REQUIRE_SERVICES_ENV}=1 requires it", pytrace=False)
    pytest.skip(message)
