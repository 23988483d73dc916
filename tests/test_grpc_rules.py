"""The gRPC rules on their own: exact method names, whatever text a call names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowguard._outbound import GrpcAllow, GrpcRules, GrpcStub, marked_metadata, redact_target
from shadowguard.errors import ConfigError

ALLOWED = "/shop.Orders/Get"
RULES = GrpcRules(
    allow=[ALLOWED, GrpcAllow(service="shop.Catalog", methods=["List"], target="catalog:*")],
    stubs=[GrpcStub("/pay.Payments/Charge", response=b"")],
)


@given(st.text())
def test_only_the_exact_names_are_allowed(method: str) -> None:
    decision = RULES.decide("catalog:443", method)
    assert decision.allowed == (method in {ALLOWED, "/shop.Catalog/List"})
    assert (decision.stub is not None) == (method == "/pay.Payments/Charge")


@given(st.text(min_size=1), st.sampled_from(["prefix", "suffix", "case"]))
def test_variants_of_an_allowed_name_are_refused(extra: str, how: str) -> None:
    variant = {
        "prefix": extra + ALLOWED,
        "suffix": ALLOWED + extra,
        "case": ALLOWED.swapcase(),
    }[how]
    assert not RULES.decide("any:1", variant).allowed


@given(st.text())
def test_a_target_restricted_rule_matches_only_its_targets(target: str) -> None:
    allowed = RULES.decide(target, "/shop.Catalog/List").allowed
    assert allowed == (target.startswith("catalog:"))


@pytest.mark.parametrize(
    "name",
    [
        "/shop.Orders/*",
        "/shop.Orders/Get*",
        "shop.Orders/Get",
        "/shop.Orders",
        "/shop.Orders/",
        "/shop..Orders/Get",
        "/shop.Orders/Get/x",
        " /shop.Orders/Get",
        "/shop.Orders/G\u0435t",
    ],
)
def test_names_that_are_not_exact_method_names_are_config_errors(name: str) -> None:
    for rule in (GrpcAllow, GrpcStub):
        with pytest.raises(ConfigError, match="full gRPC method name"):
            rule(name)


def test_the_marker_replaces_an_entry_of_its_key_and_keeps_the_rest() -> None:
    metadata = (("X-Shadow-Request", "s3cret"), ("tenant", "t1"))
    assert marked_metadata(metadata) == (("tenant", "t1"), ("x-shadow-request", "1"))
    assert marked_metadata(None) == (("x-shadow-request", "1"),)


def test_targets_are_recorded_without_userinfo() -> None:
    assert redact_target("dns://user:pw@8.8.8.8/orders:443") == "dns://***@8.8.8.8/orders:443"
    assert redact_target("orders.internal:443") == "orders.internal:443"
