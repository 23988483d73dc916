"""The command table: read from the real server once per pool, built-in when COMMAND is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import shadowguard
from shadowguard import ShadowSideEffectBlocked
from shadowguard.integrations.redis import _commands, _table
from tests.peers.redis import RedisPeer

SINK = "redis"


@pytest.fixture(scope="module")
def raw_table(_redis_oracle: redis.Redis) -> list[Any]:
    """The server's raw COMMAND reply."""
    pool = _redis_oracle.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_command("COMMAND")
        reply: list[Any] = connection.read_response()
    finally:
        pool.release(connection)
    return reply


def _flags(entry: list[Any]) -> set[str]:
    return {f.decode() if isinstance(f, bytes) else str(f) for f in entry[2]}


def test_the_servers_table_classifies_by_flags(raw_table: list[Any]) -> None:
    table = _commands.from_reply(raw_table)
    assert table is not None
    assert table.source == "server"
    verdicts = {
        ("GET", "k"): "",
        ("SET", "k", "v"): "write",
        ("FLUSHALL",): "write",
        ("EVAL", "return 1", 0): "script",
        ("EVALSHA", "abc", 0): "script",
        ("FCALL", "f", 0): "script",
        ("EVAL_RO", "return 1", 0): "",
        ("FCALL_RO", "f", 0): "",
        ("SCRIPT EXISTS", "abc"): "",
        ("SCRIPT", "FLUSH"): "script",
        ("PUBLISH", "ch", "m"): "pubsub",
        ("SPUBLISH", "ch", "m"): "pubsub",
        ("PUBSUB CHANNELS",): "",
        ("CONFIG SET", "x", "y"): "admin",
        ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"): "blocking",
        ("BLPOP", "q", 0): "blocking",
        ("XREAD", "STREAMS", "s", "0"): "",
        ("XGROUP CREATE", "s", "g", "0"): "write",
        ("xinfo", "stream", "s"): "",
        ("SORT", "k"): "",
        ("SORT", "k", "STORE", "dst"): "write",
        ("PING",): "",
        ("INFO",): "",
        ("SG.NOSUCH",): "unknown",
    }
    assert {args: table.classify(args).reason for args in verdicts} == verdicts
    assert table.classify(("config", "set", "x", "y")).name == "CONFIG SET"


def _names(raw: list[Any]) -> Iterator[tuple[str, list[Any]]]:
    for entry in raw:
        name = entry[0].decode()
        subcommands = entry[9] if len(entry) > 9 else []
        if subcommands:
            for sub in subcommands:
                yield sub[0].decode().replace("|", " "), sub
        else:
            yield name, entry


def test_every_command_the_server_flags_write_is_a_side_effect(raw_table: list[Any]) -> None:
    table = _commands.from_reply(raw_table)
    assert table is not None
    for name, entry in _names(raw_table):
        args = tuple(name.split())
        if name in {"sort", "georadius", "georadiusbymember"}:
            args += ("key", "STORE", "destination")  # without STORE they only read
        if "write" in _flags(entry) or "admin" in _flags(entry):
            assert not table.classify(args).runs, name


def test_the_builtin_table_runs_only_what_the_server_calls_harmless(
    raw_table: list[Any],
) -> None:
    server = _commands.from_reply(raw_table)
    assert server is not None
    for name, _ in _names(raw_table):
        args = tuple(name.split())
        if _commands.BUILTIN.classify(args).runs:
            assert server.classify(args).runs, name
    assert not _commands.BUILTIN.classify(("SG.NOSUCH",)).runs  # unknown: a write
    assert not _commands.BUILTIN.classify(("MEMORY", "PURGE")).runs
    assert _commands.BUILTIN.classify(("EVAL", "return 1", 0)).reason == "script"


class CountingConnection(redis.Connection):
    """Counts the COMMAND requests it sends (the table fetches)."""

    fetches = 0

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        if args and str(args[0]).upper() == "COMMAND":
            type(self).fetches += 1
        super().send_command(*args, **kwargs)


@pytest.mark.usefixtures("installed")
def test_the_table_is_fetched_once_per_pool_on_its_first_shadow_command(
    redis_peer: RedisPeer,
) -> None:
    CountingConnection.fetches = 0
    pools = [
        redis.ConnectionPool(
            connection_class=CountingConnection,
            host=redis_peer.host,
            port=redis_peer.port,
            db=redis_peer.db,
        )
        for _ in range(2)
    ]
    clients: list[Any] = [redis.Redis(connection_pool=pool) for pool in pools]
    clients[0].set(redis_peer.key("primary"), "1")
    assert CountingConnection.fetches == 0  # the primary path never classifies
    with shadowguard.shadow():
        for client in clients:
            for _ in range(3):
                client.set(redis_peer.key("a"), "1")
                client.get(redis_peer.key("a"))
                client.pipeline().set(redis_peer.key("b"), 1).get(redis_peer.key("b")).execute()
    assert CountingConnection.fetches == 2
    for pool in pools:
        pool.disconnect()
    assert redis_peer.keys() == {"primary"}


@pytest.fixture
def user_without_command(redis_peer: RedisPeer) -> Iterator[str]:
    """A Redis ACL user that may run everything but COMMAND."""
    name = f"sg_{uuid.uuid4().hex[:10]}"
    redis_peer.oracle.execute_command(
        "ACL", "SETUSER", name, "on", ">secret", "~*", "&*", "+@all", "-command"
    )
    try:
        yield name
    finally:
        redis_peer.oracle.execute_command("ACL", "DELUSER", name)


@pytest.mark.usefixtures("installed")
def test_without_command_the_builtin_table_fails_closed(
    redis_peer: RedisPeer, user_without_command: str
) -> None:
    k = redis_peer.key
    redis_peer.oracle.set(k("a"), "primary")
    with redis.Redis.from_url(
        redis_peer.url, username=user_without_command, password="secret"
    ) as r:
        with shadowguard.shadow() as scope:
            assert r.get(k("a")) == b"primary"
            assert r.set(k("a"), "shadow") is True
            assert r.lpush(k("l"), "x") == 1
            with pytest.raises(ShadowSideEffectBlocked, match="MEMORY DOCTOR"):
                r.execute_command("MEMORY DOCTOR")  # a read the built-in table does not know
        table = _table.cached(r.connection_pool)
        assert table is not None
        assert table.source == "builtin"
    assert redis_peer.keys() == {"a"}
    assert redis_peer.oracle.get(k("a")) == b"primary"
    assert [s.detail["table"] for s in scope.suppressed] == ["builtin"] * 3
