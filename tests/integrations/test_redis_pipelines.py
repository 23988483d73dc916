"""redis-py pipelines in shadow: only the reads are sent, the writes' replies keep their places."""

from __future__ import annotations

from typing import Any

import pytest
import redis

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from tests.peers.redis import RedisPeer

SINK = "redis"
pytestmark = pytest.mark.usefixtures("installed")


@pytest.mark.parametrize("transaction", [True, False], ids=["multi-exec", "plain"])
def test_mixed_reads_and_writes_send_only_the_reads(
    redis_client: Any, redis_peer: RedisPeer, transaction: bool
) -> None:
    k = redis_peer.key
    redis_peer.oracle.set(k("a"), "1")
    with shadowguard.shadow() as scope, redis_client.pipeline(transaction=transaction) as pipe:
        pipe.get(k("a")).set(k("b"), "2").incr(k("a")).lpush(k("l"), "x", "y").get(k("b"))
        pipe.exists(k("l"))
        # INCR answers as if the key were new: shadow does not read its own writes.
        assert pipe.execute() == [b"1", True, 1, 2, None, 0]
    assert redis_peer.keys() == {"a"}
    assert redis_peer.oracle.get(k("a")) == b"1"
    via = "transaction" if transaction else "pipeline"
    assert [(s.detail["operation"], s.detail["via"]) for s in scope.suppressed] == [
        ("SET", via),
        ("INCRBY", via),
        ("LPUSH", via),
    ]


@pytest.mark.parametrize("transaction", [True, False], ids=["multi-exec", "plain"])
def test_a_pipeline_of_writes_only_writes_nothing(
    redis_client: Any, redis_peer: RedisPeer, transaction: bool
) -> None:
    k = redis_peer.key
    with shadowguard.shadow(), redis_client.pipeline(transaction=transaction) as pipe:
        pipe.set(k("a"), 1).hset(k("h"), "f", "v").expire(k("a"), 10).xadd(k("x"), {"f": 1})
        replies = pipe.execute()
    assert replies[:3] == [True, 1, True]
    assert isinstance(replies[3], bytes)
    assert redis_peer.keys() == set()


def test_primary_pipelines_write(redis_client: Any, redis_peer: RedisPeer) -> None:
    k = redis_peer.key
    for transaction in (True, False):
        with redis_client.pipeline(transaction=transaction) as pipe:
            assert pipe.set(k(f"a{transaction}"), 1).incr(k("n")).execute()[0] is True
    assert redis_peer.keys() == {"aTrue", "aFalse", "n"}
    assert redis_peer.oracle.get(k("n")) == b"2"


def test_watch_still_aborts_a_shadow_transaction(redis_client: Any, redis_peer: RedisPeer) -> None:
    """EXEC is still sent (empty), so a WATCHed key changed by the primary aborts it."""
    k = redis_peer.key
    redis_peer.oracle.set(k("w"), "1")
    with shadowguard.shadow(), redis_client.pipeline() as pipe:
        pipe.watch(k("w"))
        assert pipe.get(k("w")) == b"1"  # immediate mode: a read, sent
        assert pipe.set(k("early"), "1") is True  # immediate mode: a write, answered
        with shadowguard.detached():  # the primary's write, meanwhile
            redis_peer.oracle.set(k("w"), "2")
        pipe.multi()
        pipe.set(k("w"), "shadow")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert redis_peer.keys() == {"w"}
    assert redis_peer.oracle.get(k("w")) == b"2"


def test_the_transaction_helper_runs_in_shadow(redis_client: Any, redis_peer: RedisPeer) -> None:
    k = redis_peer.key
    redis_peer.oracle.set(k("stock"), "5")

    def take(pipe: redis.client.Pipeline) -> None:
        stock = int(pipe.get(k("stock")))  # type: ignore[arg-type]
        pipe.multi()
        pipe.set(k("stock"), stock - 1)
        pipe.rpush(k("orders"), "o1")

    with shadowguard.shadow():
        assert redis_client.transaction(take, k("stock")) == [True, 1]
    assert redis_peer.oracle.get(k("stock")) == b"5"
    assert redis_peer.keys() == {"stock"}


@pytest.mark.parametrize("transaction", [True, False], ids=["multi-exec", "plain"])
def test_a_refused_command_refuses_the_whole_batch_before_anything_is_sent(
    redis_client: Any, redis_peer: RedisPeer, transaction: bool
) -> None:
    k = redis_peer.key
    with shadowguard.shadow() as scope, redis_client.pipeline(transaction=transaction) as pipe:
        pipe.get(k("a")).set(k("a"), "1").eval("return 1", 0).lpush(k("l"), "x")
        with pytest.raises(ShadowSideEffectBlocked, match="EVAL"):
            pipe.execute()
        (refusal,) = scope.suppressed  # the batch was refused: nothing else is recorded
        assert refusal.blocked
        assert refusal.detail["operation"] == "EVAL"
        assert pipe.set(k("b"), 1).get(k("a")).execute() == [True, None]  # still usable
    assert redis_peer.keys() == set()


def test_read_errors_keep_their_place(redis_client: Any, redis_peer: RedisPeer) -> None:
    k = redis_peer.key
    redis_peer.oracle.set(k("s"), "text")
    with shadowguard.shadow(), redis_client.pipeline() as pipe:
        pipe.set(k("t"), 1).lrange(k("s"), 0, -1).get(k("s"))
        first, error, last = pipe.execute(raise_on_error=False)
    assert first is True
    assert isinstance(error, redis.ResponseError)
    assert last == b"text"
    assert redis_peer.keys() == {"s"}
