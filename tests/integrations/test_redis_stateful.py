"""Primary and shadow Redis commands interleaved at random (Hypothesis) against a model.

A worker keeps one client (made before ``install()``) and sends commands, alone or in
pipelines (transactional or not), as primary or in shadow. The model applies the primary's
commands only. After every step the server holds exactly the model's keys and values, and
every read (primary or shadow) returned what the model held.
"""

from __future__ import annotations

from typing import Any, ClassVar

import redis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import shadowguard
from shadowguard import integrations
from tests._soak import stateful_settings
from tests.integrations._support import installing
from tests.peers.redis import RedisPeer

STRINGS = ("s0", "s1")
LISTS = ("l0", "l1")
HASHES = ("h0",)

Op = tuple[Any, ...]

OPS = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(STRINGS), st.integers(-5, 5)),
    st.tuples(st.just("incrby"), st.sampled_from(STRINGS), st.integers(-3, 3)),
    st.tuples(st.just("delete"), st.sampled_from(STRINGS + LISTS + HASHES)),
    st.tuples(st.just("lpush"), st.sampled_from(LISTS), st.sampled_from("abc")),
    st.tuples(st.just("lpop"), st.sampled_from(LISTS)),
    st.tuples(
        st.just("hset"), st.sampled_from(HASHES), st.sampled_from("fg"), st.sampled_from("xy")
    ),
    st.tuples(st.just("hdel"), st.sampled_from(HASHES), st.sampled_from("fg")),
    st.tuples(st.just("getset"), st.sampled_from(STRINGS), st.integers(-5, 5)),
    st.tuples(st.just("getdel"), st.sampled_from(STRINGS)),
    st.tuples(st.just("get"), st.sampled_from(STRINGS)),
    st.tuples(st.just("lrange"), st.sampled_from(LISTS)),
    st.tuples(st.just("hgetall"), st.sampled_from(HASHES)),
    st.tuples(st.just("exists"), st.sampled_from(STRINGS + LISTS + HASHES)),
)
#: Commands whose reply the model knows: reads, and writes that return the old value.
READS = {"get", "lrange", "hgetall", "exists", "getset", "getdel"}


class Worker(RuleBasedStateMachine):
    """A kept client, and the model: what the primary's commands left in Redis."""

    peer: ClassVar[RedisPeer]
    client: ClassVar[redis.Redis]

    def __init__(self) -> None:
        super().__init__()
        stale = list(self.peer.oracle.scan_iter(match=f"{self.peer.prefix}*"))
        if stale:
            self.peer.oracle.delete(*stale)
        self.model: dict[str, Any] = {}

    def _send(self, target: Any, op: Op) -> Any:
        name, key, *rest = op
        method = getattr(target, name)
        if name == "lrange":
            return method(self.peer.key(key), 0, -1)
        return method(self.peer.key(key), *rest)

    def _expected(self, op: Op) -> Any:
        """What a read returns, from the model."""
        name, key = op[0], op[1]
        value = self.model.get(key)
        if name in {"get", "getset", "getdel"}:
            return None if value is None else str(value).encode()
        if name == "lrange":
            return [v.encode() for v in value or []]
        if name == "hgetall":
            return {f.encode(): v.encode() for f, v in (value or {}).items()}
        return int(key in self.model)

    def _apply(self, op: Op) -> None:
        name, key, *rest = op
        if name in {"set", "getset"}:
            self.model[key] = rest[0]
        elif name == "incrby":
            self.model[key] = int(self.model.get(key, 0)) + rest[0]
        elif name in {"delete", "getdel"}:
            self.model.pop(key, None)
        elif name == "lpush":
            self.model.setdefault(key, []).insert(0, rest[0])
        elif name == "lpop" and key in self.model:
            self.model[key].pop(0)
        elif name == "hset":
            self.model.setdefault(key, {})[rest[0]] = rest[1]
        elif name == "hdel" and key in self.model:
            self.model[key].pop(rest[0], None)
        if self.model.get(key) in ([], {}):
            del self.model[key]  # Redis drops an empty list or hash

    def _check(self, op: Op, reply: Any, expected: Any) -> None:
        if op[0] in READS:
            assert reply == expected, (op, reply, expected)

    @rule(op=OPS, in_shadow=st.booleans())
    def command(self, op: Op, in_shadow: bool) -> None:
        expected = self._expected(op)
        if in_shadow:
            with shadowguard.shadow():
                reply = self._send(self.client, op)
        else:
            reply = self._send(self.client, op)
            self._apply(op)
        self._check(op, reply, expected)

    @rule(ops=st.lists(OPS, min_size=1, max_size=6), in_shadow=st.booleans(), tx=st.booleans())
    def pipeline(self, ops: list[Op], in_shadow: bool, tx: bool) -> None:
        with self.client.pipeline(transaction=tx) as pipe:
            for op in ops:
                self._send(pipe, op)
            if in_shadow:
                with shadowguard.shadow():
                    replies = pipe.execute()
                # Shadow sees no write of its own, in a pipeline too.
                expected = [self._expected(op) for op in ops]
            else:
                replies = pipe.execute()
                expected = []
                for op in ops:
                    expected.append(self._expected(op))
                    self._apply(op)
        for op, reply, wanted in zip(ops, replies, expected, strict=True):
            self._check(op, reply, wanted)

    @invariant()
    def server_holds_the_model(self) -> None:
        assert self.peer.keys() == set(self.model)
        for op in [("get", k) for k in STRINGS] + [("lrange", k) for k in LISTS]:
            assert self._send(self.peer.oracle, op) == self._expected(op)
        for key in HASHES:
            assert self._send(self.peer.oracle, ("hgetall", key)) == self._expected(
                ("hgetall", key)
            )


def test_primary_and_shadow_commands_interleaved(redis_peer: RedisPeer) -> None:
    kept = redis.Redis.from_url(redis_peer.url, socket_timeout=5)
    Worker.peer = redis_peer
    Worker.client = kept
    try:
        with installing(integrations.load("redis")):
            run_state_machine_as_test(Worker, settings=stateful_settings(25, steps=15))
    finally:
        kept.close()
