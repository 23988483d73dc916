"""redis.asyncio against the real Redis: the same guarantees as the synchronous client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard.integrations import redis as sink
from tests.peers.redis import RedisPeer

SINK = "redis"
pytestmark = pytest.mark.asyncio


def _client(url: str, **options: Any) -> Any:
    """A redis.asyncio client (typed Any: redis-py's annotations do not chain)."""
    return aioredis.Redis.from_url(url, **options)


@pytest.mark.usefixtures("installed")
async def test_shadow_writes_reach_nothing_and_reads_run(redis_peer: RedisPeer) -> None:
    k = redis_peer.key
    redis_peer.oracle.set(k("a"), "primary")
    async with _client(redis_peer.url) as r:
        with shadowguard.shadow() as scope:
            assert await r.set(k("a"), "shadow") is True
            assert await r.incrby(k("n"), 3) == 3
            assert await r.hset(k("h"), "f", "v") == 1
            assert await r.expire(k("a"), 5) is True
            assert isinstance(await r.xadd(k("x"), {"f": "v"}), bytes)
            assert await r.get(k("a")) == b"primary"
            assert await r.getex(k("a"), ex=5) == b"primary"  # answered by a GET
            with pytest.raises(ShadowSideEffectBlocked, match="EVAL"):
                await r.eval("return redis.call('SET', KEYS[1], 1)", 1, k("lua"))
            assert await r.eval_ro("return redis.call('GET', KEYS[1])", 1, k("a")) == b"primary"
        assert await r.set(k("p"), "1") is True
    assert redis_peer.keys() == {"a", "p"}
    assert redis_peer.oracle.get(k("a")) == b"primary"
    assert [s.detail["operation"] for s in scope.suppressed] == [
        *("SET", "INCRBY", "HSET", "EXPIRE", "XADD", "GETEX", "EVAL"),
    ]


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("transaction", [True, False], ids=["multi-exec", "plain"])
async def test_pipelines_send_only_their_reads(redis_peer: RedisPeer, transaction: bool) -> None:
    k = redis_peer.key
    redis_peer.oracle.set(k("a"), "1")
    async with _client(redis_peer.url, decode_responses=True) as r:
        with shadowguard.shadow():
            async with r.pipeline(transaction=transaction) as pipe:
                pipe.get(k("a")).set(k("b"), "2").incr(k("a")).get(k("b"))
                assert await pipe.execute() == ["1", True, 1, None]
            async with r.pipeline(transaction=transaction) as pipe:
                pipe.set(k("c"), 1).sadd(k("s"), "x")
                assert await pipe.execute() == [True, 1]
    assert redis_peer.keys() == {"a"}


@pytest.mark.usefixtures("installed")
async def test_watch_still_aborts_a_shadow_transaction(redis_peer: RedisPeer) -> None:
    k = redis_peer.key
    redis_peer.oracle.set(k("w"), "1")
    async with _client(redis_peer.url) as r:
        with shadowguard.shadow():
            async with r.pipeline() as pipe:
                await pipe.watch(k("w"))
                assert await pipe.get(k("w")) == b"1"  # immediate mode: a read, sent
                assert await pipe.set(k("early"), "1") is True  # immediate: answered
                with shadowguard.detached():  # the primary's write, meanwhile
                    redis_peer.oracle.set(k("w"), "2")
                pipe.multi()
                pipe.set(k("w"), "shadow")
                with pytest.raises(aioredis.WatchError):
                    await pipe.execute()
    assert redis_peer.keys() == {"w"}
    assert redis_peer.oracle.get(k("w")) == b"2"


@pytest.mark.usefixtures("installed")
async def test_a_subscriber_receives_only_the_primarys_publish(redis_peer: RedisPeer) -> None:
    channel = redis_peer.key("events")
    async with (
        _client(redis_peer.url) as r,
        _client(redis_peer.url) as listener,
    ):
        pubsub = listener.pubsub()
        await pubsub.subscribe(channel)
        confirmed = await pubsub.get_message(timeout=5)
        assert confirmed is not None
        assert confirmed["type"] == "subscribe"
        with shadowguard.shadow():
            assert await r.publish(channel, "from shadow") == 0
        assert await r.publish(channel, "from primary") == 1
        received: list[bytes] = []
        deadline = time.monotonic() + 5
        while b"from primary" not in received and time.monotonic() < deadline:
            message = await pubsub.get_message(timeout=0.1)
            if message is not None and message["type"] == "message":
                received.append(message["data"])
        await pubsub.aclose()
    assert received == [b"from primary"]


async def test_a_client_created_before_install_and_concurrent_tasks(
    redis_peer: RedisPeer,
) -> None:
    """Shadow and primary tasks share one pool; the command table is fetched once."""
    from shadowguard.integrations.redis import _table

    async with _client(redis_peer.url, max_connections=20) as r:
        await r.set(redis_peer.key("before"), "1")
        sink.install()
        try:

            async def shadow_writes(i: int) -> None:
                with shadowguard.shadow():
                    assert await r.set(redis_peer.key(f"s{i}"), i) is True
                    assert await r.get(redis_peer.key("before")) == b"1"

            async def primary_writes(i: int) -> None:
                assert await r.set(redis_peer.key(f"p{i}"), i) is True

            await asyncio.gather(
                *(f(i) for i in range(10) for f in (shadow_writes, primary_writes))
            )
            table = _table.cached(r.connection_pool)
            assert table is not None
            assert table.source == "server"
        finally:
            sink.uninstall()
    assert redis_peer.keys() == {"before"} | {f"p{i}" for i in range(10)}


async def test_a_broken_guard_never_changes_what_the_primary_gets(
    redis_peer: RedisPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shadowguard.integrations.redis import _asyncio

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("guard fault")

    for name in ("table_for_async", "answer", "plan", "_value"):
        monkeypatch.setattr(_asyncio, name, broken)
    sink.install()
    try:
        async with _client(redis_peer.url) as r:
            assert await r.set(redis_peer.key("a"), "1") is True
            async with r.pipeline() as pipe:
                pipe.incr(redis_peer.key("n")).get(redis_peer.key("a"))
                assert await pipe.execute() == [1, b"1"]
            with shadowguard.shadow(), pytest.raises(RuntimeError, match="guard fault"):
                await r.set(redis_peer.key("b"), "1")  # in shadow the guard fails closed
    finally:
        sink.uninstall()
    assert redis_peer.keys() == {"a", "n"}
