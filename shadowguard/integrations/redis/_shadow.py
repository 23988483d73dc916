"""One command in shadow: run it, answer it instead, or refuse it; record what was done.

The verdict comes from the command table (:mod:`._commands`); a side effect gets the reply
of :mod:`._replies`, passed through the client's response callback as a server reply
would be. Lua runs only as ``EVAL_RO``/``EVALSHA_RO``/``FCALL_RO``: redis-py's own
``Lock`` scripts (release, extend, reacquire) are known by their SHA1 and answered 1, so
``with client.lock(...)`` works in shadow; any other script is refused, since what it
writes cannot be known. Consumers (blocking writes: ``BLPOP``, ``XREADGROUP``) are refused:
a shadow worker must not take work off the primary's queue.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shadowguard.contract import Kind, record, refuse
from shadowguard.integrations.redis._commands import Classification, command_words
from shadowguard.integrations.redis._replies import Double, raw_reply, read_instead

__all__ = ["Answer", "answer", "callback_value", "read_options", "target_of"]

#: ``_send_command_parse_response`` options that steer reading, not the response callback.
NEVER_DECODE = "NEVER_DECODE"
EMPTY_RESPONSE = "EMPTY_RESPONSE"

_KEY_CHARS = 200
#: Consumer groups of the shadow's own (``install(shadow_groups=...)``): their stream
#: commands run in shadow.
_shadow_groups: frozenset[str] = frozenset()
#: Stream commands that name a consumer group, and the word holding it.
_GROUP_WORD = {
    **dict.fromkeys(("XREADGROUP", "XACK", "XCLAIM", "XAUTOCLAIM"), 2),
    **dict.fromkeys(
        ("XGROUP CREATE", "XGROUP SETID", "XGROUP DESTROY", "XGROUP CREATECONSUMER"), 3
    ),
    "XGROUP DELCONSUMER": 3,
}
_LOCK_SCRIPTS: set[bytes] = set()
_LOCK_SHAS: set[str] = set()

_SCRIPT_REMEDY = (
    "Lua scripts and functions may write whatever they like, so only the read-only forms "
    "run in shadow: use EVAL_RO/EVALSHA_RO/FCALL_RO for read-only scripts (or register them "
    "with flags=no-writes), or wrap the call in @shadowguard.side_effect(returns=...)"
)
_CONSUMER_REMEDY = (
    "A blocking pop or XREADGROUP would take work off the primary's queue. Give a stream's "
    "shadow worker a consumer group of its own and name it in "
    "shadowguard.install(redis={'shadow_groups': [...]}), so it reads every entry "
    "independently; or read without consuming (LRANGE, XREAD, XRANGE)"
)
_UNKNOWN_REMEDY = (
    "shadowguard does not know what the server would answer to it; wrap the call in "
    "@shadowguard.side_effect(returns=...) to give shadow traffic a reply"
)


def know_lock_scripts(scripts: Sequence[str]) -> None:
    """Remember redis-py's ``Lock`` scripts, so shadow answers them instead of refusing."""
    for script in scripts:
        encoded = script.encode()
        _LOCK_SCRIPTS.add(encoded)
        _LOCK_SHAS.add(hashlib.sha1(encoded).hexdigest())  # Redis's script ID


def forget_lock_scripts() -> None:
    _LOCK_SCRIPTS.clear()
    _LOCK_SHAS.clear()


def set_shadow_groups(groups: frozenset[str]) -> None:
    """The consumer groups whose stream commands run in shadow (empty: none)."""
    global _shadow_groups
    _shadow_groups = groups


def _shadow_group(name: str, words: Sequence[Any]) -> bool:
    position = _GROUP_WORD.get(name)
    if position is None or not _shadow_groups or len(words) <= position:
        return False
    group = words[position]
    return (group.decode() if isinstance(group, bytes) else str(group)) in _shadow_groups


def target_of(connection: Any) -> str:
    """``redis://host:port/db`` (or ``redis+unix://path``) of a connection, without secrets."""
    path = getattr(connection, "path", None)
    db = getattr(connection, "db", 0)
    if path:
        return f"redis+unix://{path}?db={db}"
    return f"redis://{getattr(connection, 'host', '?')}:{getattr(connection, 'port', '?')}/{db}"


def _is_lock_script(words: Sequence[Any]) -> bool:
    if len(words) < 2 or not isinstance(words[0], str):
        return False
    body = words[1]
    if words[0].upper() == "EVALSHA":
        text = body.decode("latin-1") if isinstance(body, bytes) else str(body)
        return text.lower() in _LOCK_SHAS
    if words[0].upper() == "EVAL":
        return (body if isinstance(body, bytes) else str(body).encode()) in _LOCK_SCRIPTS
    return False


class Answer:
    """What a suppressed command gets instead: a raw reply, to be passed through the response
    callback, or a read to send in its place (``read``, with ``read_options``)."""

    __slots__ = ("raw", "read")

    def __init__(self, raw: Any = None, read: tuple[Any, ...] | None = None) -> None:
        self.raw = raw
        self.read = read


def read_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options a read sent in a command's place keeps: only how to read the reply."""
    return {NEVER_DECODE: options[NEVER_DECODE]} if NEVER_DECODE in options else {}


def answer(
    verdict: Classification,
    args: Sequence[Any],
    target: str,
    via: str,
    records: list[Callable[[], object]] | None = None,
) -> Answer | None:
    """None if the command runs; else record it and return its :class:`Answer`, or raise the
    refusal (recorded at once). With ``records``, the suppression's record is appended there
    instead, to be made once the whole batch is known not to be refused."""
    if verdict.runs:
        return None
    words = command_words(args)
    if _shadow_group(verdict.name, words):
        return None  # the shadow's own consumer group: its reads and acks leave the primary's
    detail: dict[str, Any] = {
        "reason": verdict.reason,
        "table": verdict.table,
        "via": via,
        "key": _key(words, verdict.name),
    }
    operation = verdict.name or "?"

    def suppressed() -> object:
        return record(Kind.REDIS_COMMAND, target, operation, detail)

    if verdict.reason == "script":
        if _is_lock_script(words):
            detail["reply"] = 1
            _later(suppressed, records)
            return Answer(1)
        raise refuse(
            Kind.REDIS_COMMAND,
            target,
            operation,
            f"the Redis command {operation} runs a script that may write",
            remedy=_SCRIPT_REMEDY,
            detail=detail,
        )
    if verdict.reason == "blocking":
        raise refuse(
            Kind.REDIS_COMMAND,
            target,
            operation,
            f"the Redis command {operation} consumes from a queue or stream",
            remedy=_CONSUMER_REMEDY,
            detail=detail,
        )
    skip = len(operation.split())
    read = read_instead(operation, words[skip:])
    if read is not None:
        detail["instead"] = str(read[0])
        _later(suppressed, records)
        return Answer(read=read)
    known, raw = raw_reply(operation, words[skip:])
    if not known:
        what = (
            "is not in the command table, so it counts as a write"
            if verdict.reason == "unknown"
            else f"changes server state ({verdict.reason})"
        )
        raise refuse(
            Kind.REDIS_COMMAND,
            target,
            operation,
            f"the Redis command {operation} {what}",
            remedy=_UNKNOWN_REMEDY,
            detail=detail,
        )
    detail["reply"] = raw
    _later(suppressed, records)
    return Answer(raw)


def _later(make: Callable[[], object], records: list[Callable[[], object]] | None) -> None:
    if records is None:
        make()
    else:
        records.append(make)


def _key(words: Sequence[Any], name: str) -> str | None:
    skip = len(name.split()) or 1
    if len(words) <= skip:
        return None
    key = words[skip]
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    return text[:_KEY_CHARS]  # EVAL's "key" is the script


def _decoded(encoder: Any, value: Any) -> Any:
    if isinstance(value, bytes):
        return encoder.decode(bytes(value)) if encoder is not None else bytes(value)
    if isinstance(value, list):
        return [_decoded(encoder, v) for v in value]
    return value


def callback_value(
    client: Any, connection: Any, command_name: Any, raw: Any, options: Mapping[str, Any]
) -> Any:
    """``raw`` as the client's parse step would return it: decoded, then its callback.

    In redis.asyncio a callback may return an awaitable; the caller awaits it.
    """
    options = dict(options)
    never_decode = options.pop(NEVER_DECODE, None) is not None
    options.pop(EMPTY_RESPONSE, None)
    options.pop("keys", None)
    encoder = None if never_decode else getattr(connection, "encoder", None)
    if isinstance(raw, Double) and str(getattr(connection, "protocol", 2)) == "3":
        value: Any = float(raw)
    else:
        value = _decoded(encoder, raw)
    callbacks = client.response_callbacks
    if command_name in callbacks:
        return callbacks[command_name](value, **options)
    return value
