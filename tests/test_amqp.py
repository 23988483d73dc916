"""The RabbitMQ mirror rule and the ack ledger shared by the pika and aio-pika guards."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowguard import ConfigError
from shadowguard._amqp import SERVER_NAMED_PREFIX, ChannelLedger, MirrorRule, mirror_rule

NAMES = st.text(min_size=1, max_size=30)


@given(name=NAMES, suffix=st.text(min_size=1, max_size=8), listed=st.sets(NAMES, max_size=3))
def test_a_queue_is_the_shadows_own_by_suffix_list_or_server_name(
    name: str, suffix: str, listed: set[str]
) -> None:
    rule = mirror_rule("pika", suffix, listed)
    expected = name.endswith(suffix) or name in listed or name.startswith(SERVER_NAMED_PREFIX)
    assert rule.owns(name) is expected
    assert rule.owns(name + suffix)
    assert not rule.owns("")  # "the channel's last declared queue": anyone's
    assert not rule.owns(None)


@pytest.mark.parametrize(
    ("suffix", "queues"), [("", ()), (None, ()), ("-shadow", "q"), ("-shadow", [""]), ("-s", [1])]
)
def test_a_malformed_rule_is_a_config_error_naming_the_option(
    suffix: object, queues: object
) -> None:
    with pytest.raises(ConfigError, match=r"shadow_(suffix|queues)"):
        mirror_rule("aio_pika", suffix, queues)


class Channel:
    """Stands for a client's channel: the ledger only keys on it (weakly)."""


@given(
    shadow_tags=st.sets(st.text(min_size=1, max_size=5), max_size=4),
    live_extra=st.sets(st.text(min_size=1, max_size=5), max_size=2),
    got=st.booleans(),
)
def test_shadow_acks_run_only_where_every_live_consumer_is_the_shadows(
    shadow_tags: set[str], live_extra: set[str], got: bool
) -> None:
    ledger, channel = ChannelLedger(), Channel()
    for tag in shadow_tags:
        ledger.consumed(channel, tag)
    if got:
        ledger.got(channel)
    live = shadow_tags | live_extra
    took = bool(shadow_tags) or got
    assert ledger.acks_run(channel, live) is (took and live_extra <= shadow_tags)
    assert not ledger.acks_run(Channel(), ())  # a channel that took nothing in shadow
    ledger.forget()
    assert not ledger.acks_run(channel, ())


def test_the_default_rule() -> None:
    assert MirrorRule().owns("orders-shadow")
    assert not MirrorRule().owns("orders")
    assert MirrorRule().owns("amq.gen-JzTY20BRgKO-HjmUJj0wLg")
