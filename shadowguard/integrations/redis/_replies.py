"""The reply a suppressed command gets: what the server would answer had the write succeeded.

The rule, per command: a status reply is ``OK``; a count is the number of keys, members,
fields or entries the command names (as if each one took effect: ``DEL a b`` -> 2,
``LPUSH k x y`` -> 2, ``HSET k f v`` -> 1); a yes/no (``EXPIRE``, ``SETNX``, ``PERSIST``) is 1;
an increment returns the increment (the value of a key that did not exist: ``INCR`` -> 1,
``INCRBY k 5`` -> 5); a pop returns nothing (nil, or an empty array), while a command
that returns a key's value and also changes it (``GETEX``, ``GETDEL``, ``GETSET``,
``SET ... GET``) is answered by a ``GET`` of the key (:func:`read_instead`); ``PUBLISH``
returns 0 (nobody received it); ``XADD`` returns the entry ID it was given, or a new one from
the clock. The value is then passed through the client's own response callback, as a server
reply would be, so ``SET`` gives ``True`` and ``decode_responses`` gives ``str``.

A command not listed here has no reply shadowguard can vouch for, and is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Double", "raw_reply", "read_instead"]

_Reply = Callable[[Sequence[Any]], Any]


# A status reply (+OK): redis-py decodes it like a bulk string.
_OK = b"OK"


class Double(bytes):
    """A score: a bulk string in RESP2, a double in RESP3."""


def _upper(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1").upper()
    return str(value).upper()


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _ok(args: Sequence[Any]) -> Any:
    return _OK


def _one(args: Sequence[Any]) -> Any:
    return 1


def _zero(args: Sequence[Any]) -> Any:
    return 0


def _nil(args: Sequence[Any]) -> Any:
    return None


def _empty(args: Sequence[Any]) -> Any:
    return []


def _count_from(first: int, per: int = 1) -> _Reply:
    return lambda args: max(0, len(args) - first) // per


def _argument(index: int, sign: int = 1) -> _Reply:
    return lambda args: sign * int(args[index])


def _bulk_argument(index: int) -> _Reply:
    return lambda args: _bytes(args[index])


def _score_argument(index: int) -> _Reply:
    return lambda args: Double(_bytes(args[index]))


def _set(args: Sequence[Any]) -> Any:
    return _OK


def _append(args: Sequence[Any]) -> Any:
    return len(_bytes(args[1]))


def _setrange(args: Sequence[Any]) -> Any:
    return int(args[1]) + len(_bytes(args[2]))


def _zadd(args: Sequence[Any]) -> Any:
    i = 1
    while i < len(args) and _upper(args[i]) in {"NX", "XX", "GT", "LT", "CH", "INCR"}:
        i += 1
    if any(_upper(a) == "INCR" for a in args[1:i]):
        return Double(_bytes(args[i]))
    return (len(args) - i) // 2


def _geoadd(args: Sequence[Any]) -> Any:
    i = 1
    while i < len(args) and _upper(args[i]) in {"NX", "XX", "CH"}:
        i += 1
    return (len(args) - i) // 3


def _xadd(args: Sequence[Any]) -> Any:
    i = 1
    if i < len(args) and _upper(args[i]) == "NOMKSTREAM":
        i += 1
    if i < len(args) and _upper(args[i]) in {"MAXLEN", "MINID"}:
        i += 2 if _upper(args[i + 1]) in {"=", "~"} else 1
        i += 1
        if i < len(args) and _upper(args[i]) == "LIMIT":
            i += 2
    entry_id = _bytes(args[i]) if i < len(args) else b"*"
    if entry_id == b"*":
        return b"%d-0" % (time.time_ns() // 1_000_000)
    if entry_id.endswith(b"-*"):
        return entry_id[:-1] + b"0"
    return entry_id


def _xautoclaim(args: Sequence[Any]) -> Any:
    return [b"0-0", [], []]


_REPLIES: dict[str, _Reply] = {
    **dict.fromkeys(
        (
            *("MSET", "SETEX", "PSETEX", "HMSET", "LSET", "LTRIM", "RENAME", "RESTORE"),
            *("FLUSHALL", "FLUSHDB", "SWAPDB", "PFMERGE", "XSETID", "XGROUP CREATE"),
            *("XGROUP SETID", "CONFIG SET", "CONFIG RESETSTAT", "CONFIG REWRITE"),
        ),
        _ok,
    ),
    **dict.fromkeys(
        (
            *("EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "SETNX", "HSETNX"),
            *("MSETNX", "RENAMENX", "MOVE", "COPY", "SMOVE", "PFADD", "XGROUP DESTROY"),
            "XGROUP CREATECONSUMER",
        ),
        _one,
    ),
    **dict.fromkeys(
        (
            *("PUBLISH", "SPUBLISH", "XTRIM", "SETBIT", "LREM", "XGROUP DELCONSUMER"),
            *("SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE", "ZUNIONSTORE", "ZINTERSTORE"),
            *("ZDIFFSTORE", "ZRANGESTORE", "BITOP", "SORT", "GEORADIUS", "GEOSEARCHSTORE"),
            *("GEORADIUSBYMEMBER", "ZREMRANGEBYSCORE", "ZREMRANGEBYRANK", "ZREMRANGEBYLEX"),
            "LINSERT",
        ),
        _zero,
    ),
    **dict.fromkeys(
        (
            *("LPOP", "RPOP", "SPOP", "LMOVE", "RPOPLPUSH"),
            *("LMPOP", "ZMPOP"),
        ),
        _nil,
    ),
    **dict.fromkeys(("ZPOPMIN", "ZPOPMAX", "XCLAIM"), _empty),
    **dict.fromkeys(("DEL", "UNLINK"), _count_from(0)),
    **dict.fromkeys(
        ("SADD", "SREM", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "HDEL", "ZREM", "XDEL"),
        _count_from(1),
    ),
    "XACK": _count_from(2),
    "HSET": _count_from(1, 2),
    "INCR": _one,
    "DECR": lambda args: -1,
    "INCRBY": _argument(1),
    "DECRBY": _argument(1, -1),
    "HINCRBY": _argument(2),
    "INCRBYFLOAT": _bulk_argument(1),
    "HINCRBYFLOAT": _bulk_argument(2),
    "ZINCRBY": _score_argument(1),
    "SET": _set,
    "APPEND": _append,
    "SETRANGE": _setrange,
    "ZADD": _zadd,
    "GEOADD": _geoadd,
    "XADD": _xadd,
    "XAUTOCLAIM": _xautoclaim,
}


def read_instead(name: str, args: Sequence[Any]) -> tuple[Any, ...] | None:
    """The read that answers a command which returns a key's value and also changes it.

    ``GETEX``, ``GETDEL``, ``GETSET`` and ``SET ... GET`` return what ``GET`` returns now:
    shadow code reading a session with ``GETEX`` sees it, as the primary does.
    """
    if not args:
        return None
    if name in {"GETEX", "GETDEL", "GETSET"} or (
        name == "SET" and any(_upper(a) == "GET" for a in args[2:])
    ):
        return ("GET", args[0])
    return None


def raw_reply(name: str, args: Sequence[Any]) -> tuple[bool, Any]:
    """``(True, reply)`` for the command ``name`` with ``args`` (the words after its name), the
    raw server reply before the response callback; ``(False, None)`` if it has no known reply.

    A malformed command (a missing or non-numeric argument) has no known reply either: the
    server would have rejected it, and shadow must not answer it with a success.
    """
    shape = _REPLIES.get(name)
    if shape is None:
        return False, None
    try:
        return True, shape(args)
    except (IndexError, ValueError, TypeError):
        return False, None
