"""redis-py against the real Redis: shadow writes leave nothing behind, reads run, Lua is refused."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import redis

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard.integrations import redis as sink
from tests.peers.redis import RedisPeer

SINK = "redis"


@pytest.fixture
def client(installed: ModuleType, redis_client: Any) -> Any:
    """A redis-py client of the test database, with the guard installed."""
    return redis_client


def test_shadow_writes_reach_nothing_and_get_replies_of_their_type(
    client: Any, redis_peer: RedisPeer
) -> None:
    k = redis_peer.key
    with shadowguard.shadow() as scope:
        assert client.set(k("s"), "v") is True
        assert client.set(k("s"), "v", get=True) is None
        assert client.incr(k("n")) == 1
        assert client.incrby(k("n"), 5) == 5
        assert client.decr(k("n")) == -1
        assert client.incrbyfloat(k("f"), 1.5) == 1.5
        assert client.append(k("s"), "abc") == 3
        assert client.lpush(k("l"), "a", "b") == 2
        assert client.rpush(k("l"), "c") == 1
        assert client.hset(k("h"), mapping={"a": 1, "b": 2}) == 2
        assert client.hincrby(k("h"), "a", 3) == 3
        assert client.sadd(k("set"), "x", "y") == 2
        assert client.zadd(k("z"), {"m": 1.0, "n": 2.0}) == 2
        assert client.expire(k("s"), 10) is True
        assert client.persist(k("s")) is True
        assert client.setnx(k("nx"), 1) is True
        assert client.getset(k("gs"), 1) is None
        assert client.getdel(k("gs")) is None
        assert client.lpop(k("l")) is None
        assert client.delete(k("s"), k("n")) == 2
        assert client.rename(k("s"), k("t")) is True
        xid = client.xadd(k("stream"), {"f": "v"})
        assert re.fullmatch(rb"\d+-0", xid)
        assert client.xadd(k("stream"), {"f": "v"}, id="5-1") == b"5-1"
        assert client.get(k("s")) is None  # reads run: nothing was written
        assert client.exists(k("l"), k("h"), k("stream")) == 0
    assert redis_peer.keys() == set()
    assert scope.counts["redis.command"] == 23
    assert all(s.detail["action"] == "suppressed" for s in scope.suppressed)

    assert client.set(k("s"), "v") is True  # the same client, as primary, writes
    assert client.incr(k("n")) == 1
    assert client.xadd(k("stream"), {"f": "v"}) != b""
    assert redis_peer.keys() == {"s", "n", "stream"}


def test_the_suppression_names_the_command_key_and_reply(
    client: Any, redis_peer: RedisPeer
) -> None:
    with shadowguard.shadow() as scope:
        client.set(redis_peer.key("a"), "1")
    (record,) = scope.suppressed
    assert record.kind == shadowguard.Kind.REDIS_COMMAND
    assert record.target == f"redis://{redis_peer.host}:{redis_peer.port}/{redis_peer.db}"
    assert dict(record.detail) == {
        "operation": "SET",
        "action": "suppressed",
        "reason": "write",
        "table": "server",
        "via": "command",
        "key": redis_peer.key("a"),
        "reply": b"OK",
    }


def test_commands_that_return_a_value_and_change_it_are_answered_by_a_read(
    client: Any, redis_peer: RedisPeer
) -> None:
    k = redis_peer.key
    redis_peer.oracle.set(k("session"), "alice")
    with shadowguard.shadow() as scope:
        assert client.getex(k("session"), ex=60) == b"alice"
        assert client.getset(k("session"), "bob") == b"alice"
        assert client.set(k("session"), "carol", get=True) == b"alice"
        assert client.getdel(k("session")) == b"alice"
        with client.pipeline() as pipe:
            pipe.getdel(k("session")).set(k("session"), "dan", get=True).incr(k("n"))
            assert pipe.execute() == [b"alice", b"alice", 1]
    assert redis_peer.oracle.get(k("session")) == b"alice"
    assert redis_peer.oracle.ttl(k("session")) == -1
    assert redis_peer.keys() == {"session"}
    assert [s.detail.get("instead") for s in scope.suppressed] == [*["GET"] * 6, None]


@pytest.mark.usefixtures("installed")
def test_reads_see_the_primarys_data_and_decoded_replies_stay_decoded(
    redis_peer: RedisPeer,
) -> None:
    redis_peer.oracle.set(redis_peer.key("a"), "primary")
    with redis.Redis.from_url(redis_peer.url, decode_responses=True) as r, shadowguard.shadow():
        assert r.get(redis_peer.key("a")) == "primary"
        assert r.set(redis_peer.key("a"), "shadow") is True
        assert isinstance(r.xadd(redis_peer.key("x"), {"f": "v"}), str)
        assert r.incrbyfloat(redis_peer.key("f"), 2) == 2.0
        assert r.get(redis_peer.key("a")) == "primary"
    assert redis_peer.keys() == {"a"}


@pytest.mark.usefixtures("installed")
@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_have_the_types_of_each_protocol(redis_peer: RedisPeer, protocol: int) -> None:
    k = redis_peer.key
    with redis.Redis.from_url(redis_peer.url, protocol=protocol) as r, shadowguard.shadow():
        assert r.set(k("a"), 1) is True
        assert r.zincrby(k("z"), 2, "m") == 2.0
        assert r.zadd(k("z"), {"m": 1.5}, incr=True) == 1.5
        assert r.zpopmin(k("z")) == []
        assert r.hgetall(k("h")) == {}
        with r.pipeline() as pipe:
            assert pipe.set(k("a"), 1).get(k("a")).incr(k("n")).execute() == [True, None, 1]
    assert redis_peer.keys() == set()


def test_flush_config_and_stream_groups_change_nothing(client: Any, redis_peer: RedisPeer) -> None:
    k = redis_peer.key
    redis_peer.oracle.xadd(k("stream"), {"f": "v"})
    policy = redis_peer.oracle.config_get("maxmemory-policy")
    with shadowguard.shadow():
        assert client.flushdb() is True
        assert client.flushall() is True
        assert client.config_set("maxmemory-policy", "allkeys-lru") is True
        assert client.xgroup_create(k("stream"), "workers", id="0") is True
        assert client.xgroup_create(k("new"), "workers", mkstream=True) is True
        assert client.xack(k("stream"), "workers", "1-0", "2-0") == 2
        assert client.xtrim(k("stream"), maxlen=0) == 0
        assert client.xdel(k("stream"), "1-0") == 1
    assert redis_peer.oracle.config_get("maxmemory-policy") == policy
    assert redis_peer.keys() == {"stream"}
    assert redis_peer.oracle.xlen(k("stream")) == 1
    assert redis_peer.oracle.xinfo_groups(k("stream")) == []


def _messages(pubsub: Any, until: bytes, seconds: float = 5.0) -> list[bytes]:
    received: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and until not in received:
        message = pubsub.get_message(timeout=0.1)
        if message is not None and message["type"] == "message":
            received.append(message["data"])
    return received


def test_a_subscriber_receives_the_primarys_publish_and_nothing_from_shadow(
    client: Any, redis_peer: RedisPeer
) -> None:
    channel = redis_peer.key("events")
    with redis.Redis.from_url(redis_peer.url) as listener, listener.pubsub() as pubsub:
        pubsub.subscribe(channel)
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        with shadowguard.shadow() as scope:
            assert client.publish(channel, "from shadow") == 0
        assert client.publish(channel, "from primary") == 1
        assert _messages(pubsub, b"from primary") == [b"from primary"]
    assert scope.suppressed[0].detail["reason"] == "pubsub"


@pytest.fixture
def read_only_function(redis_peer: RedisPeer) -> Iterator[str]:
    """A Redis function library with one read-only function (functions are server-wide)."""
    name = f"sg_{uuid.uuid4().hex[:10]}"
    code = (
        f"#!lua name={name}\n"
        f"redis.register_function{{function_name='{name}_get', "
        "callback=function(keys, args) return redis.call('GET', keys[1]) end, "
        "flags={'no-writes'}}\n"
        f"redis.register_function('{name}_set', "
        "function(keys, args) return redis.call('SET', keys[1], args[1]) end)"
    )
    redis_peer.oracle.function_load(code)
    try:
        yield name
    finally:
        redis_peer.oracle.function_delete(name)


def test_lua_runs_in_shadow_only_in_its_read_only_forms(
    client: Any, redis_peer: RedisPeer, read_only_function: str
) -> None:
    k = redis_peer.key
    redis_peer.oracle.set(k("ro"), "primary")
    writer = "return redis.call('SET', KEYS[1], 'x')"
    with shadowguard.shadow() as scope:
        with pytest.raises(ShadowSideEffectBlocked, match="EVAL_RO"):
            client.eval(writer, 1, k("lua"))
        with pytest.raises(ShadowSideEffectBlocked, match="EVALSHA runs a script"):
            client.register_script(writer)(keys=[k("lua")])
        with pytest.raises(ShadowSideEffectBlocked, match="FCALL runs a script"):
            client.fcall(f"{read_only_function}_set", 1, k("lua"), "x")
        reader = "return redis.call('GET', KEYS[1])"
        assert client.eval_ro(reader, 1, k("ro")) == b"primary"
        assert client.fcall_ro(f"{read_only_function}_get", 1, k("ro")) == b"primary"
    assert redis_peer.keys() == {"ro"}
    assert [s.detail["operation"] for s in scope.suppressed] == ["EVAL", "EVALSHA", "FCALL"]
    assert all(s.blocked for s in scope.suppressed)


def test_redis_py_locks_work_in_shadow_and_take_nothing(client: Any, redis_peer: RedisPeer) -> None:
    with (
        shadowguard.shadow() as scope,
        client.lock(redis_peer.key("lock"), timeout=5) as lock,
    ):
        assert lock.extend(5) is True
    assert redis_peer.keys() == set()
    assert [s.detail["operation"] for s in scope.suppressed] == ["SET", "EVALSHA", "EVALSHA"]
    assert not any(s.blocked for s in scope.suppressed)


def test_consumers_and_commands_without_a_known_reply_are_refused(
    client: Any, redis_peer: RedisPeer
) -> None:
    k = redis_peer.key
    redis_peer.oracle.rpush(k("queue"), "job")
    redis_peer.oracle.xgroup_create(k("stream"), "workers", mkstream=True)
    with shadowguard.shadow() as scope:
        with pytest.raises(ShadowSideEffectBlocked, match="consumes"):
            client.blpop([k("queue")], timeout=1)
        with pytest.raises(ShadowSideEffectBlocked, match="consumes"):
            client.xreadgroup("workers", "c1", {k("stream"): ">"}, count=1)
        with pytest.raises(ShadowSideEffectBlocked, match="MIGRATE changes server state"):
            client.execute_command("MIGRATE", "127.0.0.1", 1, k("queue"), 0, 100)
        with pytest.raises(ShadowSideEffectBlocked, match=r"SG\.NOSUCH"):
            client.execute_command("SG.NOSUCH", k("queue"))
        with pytest.raises(ShadowSideEffectBlocked, match="CLIENT KILL"):
            client.client_kill_filter(_id="123456789")
    assert redis_peer.oracle.lrange(k("queue"), 0, -1) == [b"job"]
    assert [s.detail["reason"] for s in scope.suppressed] == [
        *("blocking", "blocking", "write", "unknown", "admin"),
    ]


def test_a_client_created_before_install_is_guarded(redis_peer: RedisPeer) -> None:
    kept: Any = redis.Redis.from_url(redis_peer.url)
    kept.set(redis_peer.key("before"), "1")  # its connection is open and pooled
    sink.install()
    try:
        with shadowguard.shadow():
            assert kept.set(redis_peer.key("shadow"), "1") is True
            with kept.pipeline() as pipe:
                assert pipe.set(redis_peer.key("piped"), "1").execute() == [True]
    finally:
        sink.uninstall()
        kept.close()
    assert redis_peer.keys() == {"before"}


def test_uninstall_restores_the_classes(redis_peer: RedisPeer) -> None:
    originals = {
        cls: dict(vars(cls))
        for cls in (redis.client.Redis, redis.client.Pipeline, redis.asyncio.client.Pipeline)
    }
    sink.install()
    sink.install()  # idempotent
    sink.uninstall()
    for cls, attributes in originals.items():
        assert dict(vars(cls)) == attributes
    with redis.Redis.from_url(redis_peer.url) as r, shadowguard.shadow() as scope:
        r.set(redis_peer.key("a"), "1")  # nothing guards it any more
    assert redis_peer.keys() == {"a"}
    assert scope.suppressed == []


def test_a_broken_guard_never_changes_what_the_primary_gets(
    redis_peer: RedisPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every part of the shadow path raising: primary commands and pipelines are untouched."""
    from shadowguard.integrations.redis import _shadow, _sync, _table

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("guard fault")

    for module, name in (
        (_sync, "table_for"),
        (_sync, "answer"),
        (_sync, "callback_value"),
        (_table, "from_reply"),
        (_shadow, "raw_reply"),
    ):
        monkeypatch.setattr(module, name, broken)
    with redis.Redis.from_url(redis_peer.url) as r:
        sink.install()
        try:
            assert r.set(redis_peer.key("a"), "1") is True
            assert r.get(redis_peer.key("a")) == b"1"
            with r.pipeline() as pipe:
                assert pipe.incr(redis_peer.key("n")).get(redis_peer.key("a")).execute() == [
                    1,
                    b"1",
                ]
            with shadowguard.shadow(), pytest.raises(RuntimeError, match="guard fault"):
                r.set(redis_peer.key("b"), "1")  # in shadow the guard fails closed
        finally:
            sink.uninstall()
    assert redis_peer.keys() == {"a", "n"}


def test_shadow_in_one_thread_leaves_another_threads_primary_alone(
    client: Any, redis_peer: RedisPeer
) -> None:
    done = threading.Event()
    started = threading.Event()

    def primary() -> None:
        started.set()
        for i in range(50):
            client.set(redis_peer.key(f"p{i}"), i)
        done.set()

    thread = threading.Thread(target=primary)
    with shadowguard.shadow():
        thread.start()
        started.wait(5)
        for i in range(50):
            client.set(redis_peer.key(f"s{i}"), i)
    thread.join(10)
    assert done.is_set()
    assert redis_peer.keys() == {f"p{i}" for i in range(50)}
