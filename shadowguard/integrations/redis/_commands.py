"""Which Redis commands are side effects: the server's own command table, or a built-in one.

The server's ``COMMAND`` reply gives each command (and each subcommand, ``config|set``) its
flags and ACL categories. A command runs in shadow when the server flags it ``readonly``, or
when nothing marks it as acting: not ``write``, not ``admin``, not in ``@scripting``, not a
``pubsub`` message sent. So a command added to the server tomorrow is classified by the
server, not by a list here. Redis before 6 has no ACL categories (``EVAL`` would look
harmless), and a server may refuse ``COMMAND`` (renamed, or an ACL without it): both get
:data:`BUILTIN`, where only known reads run and anything unknown is a side effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["BUILTIN", "READ", "Classification", "CommandTable", "command_words", "from_reply"]

#: The verdict for a command that runs in shadow.
READ: Final = ""
# Introspection of the script cache and functions: @scripting, yet they run nothing.
_SCRIPT_INTROSPECTION = frozenset(
    {"script|exists", "script|help", "function|list", "function|dump", "function|stats"}
)
# Flagged write for an option that stores the result; without it they only read.
_READ_UNLESS_STORE = {
    "sort": frozenset({"STORE"}),
    "georadius": frozenset({"STORE", "STOREDIST"}),
    "georadiusbymember": frozenset({"STORE", "STOREDIST"}),
}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def command_words(args: Sequence[Any]) -> list[Any]:
    """The command's words as sent: ``("CONFIG SET", "x", 1)`` -> ``["CONFIG", "SET", "x", 1]``.

    redis-py sends a first argument with spaces as separate words.
    """
    return [*_text(args[0]).split(), *args[1:]] if args else []


@dataclass(frozen=True)
class Classification:
    """A command's name (``"SET"``, ``"XGROUP CREATE"``), its verdict and the table's source.

    ``reason`` is :data:`READ` (``""``) for a command that runs in shadow, else why it is a
    side effect: ``write``, ``admin``, ``pubsub``, ``script``, ``blocking`` or ``unknown``.
    """

    name: str
    reason: str
    table: str

    @property
    def runs(self) -> bool:
        return self.reason == READ


@dataclass(frozen=True)
class _Entry:
    reason: str
    #: For a container (``CONFIG``): subcommand (lower case) to verdict; one not listed
    #: gets ``other``.
    subcommands: Mapping[str, str]
    container: bool = False
    other: str = "unknown"


class CommandTable:
    """Command name (lower case) to verdict, with subcommands, from one source."""

    def __init__(self, entries: Mapping[str, _Entry], source: str) -> None:
        self._entries = entries
        self.source = source

    def classify(self, args: Sequence[Any]) -> Classification:
        """The verdict on ``args`` (command name first, as redis-py holds it)."""
        words = command_words(args)
        if not words:
            return Classification("", "unknown", self.source)
        command = _text(words[0]).lower()
        entry = self._entries.get(command)
        if entry is None:
            return Classification(command.upper(), "unknown", self.source)
        if entry.container and len(words) > 1:
            sub = _text(words[1]).lower()
            reason = entry.subcommands.get(sub, entry.other)
            return Classification(f"{command} {sub}".upper(), reason, self.source)
        stores = _READ_UNLESS_STORE.get(command)
        if stores is not None and entry.reason == "write":
            options = {_text(w).upper() for w in words[1:]}
            reason = "write" if options & stores else READ
            return Classification(command.upper(), reason, self.source)
        return Classification(command.upper(), entry.reason, self.source)


def _verdict(name: str, flags: set[str], categories: set[str]) -> str:
    if "readonly" in flags:
        return READ
    if "@scripting" in categories and name not in _SCRIPT_INTROSPECTION:
        return "script"
    if "write" in flags:
        return "blocking" if "blocking" in flags else "write"
    if "admin" in flags:
        return "admin"
    # Subscribing and PUBSUB introspection read; PUBLISH and SPUBLISH send a message.
    if "pubsub" in flags and not (name.endswith("subscribe") or name.startswith("pubsub|")):
        return "pubsub"
    return READ


def _parse(entry: Sequence[Any]) -> tuple[str, str, Sequence[Any]] | None:
    name = _text(entry[0]).lower()
    if len(entry) < 7:
        return None  # no ACL categories: Redis before 6
    flags = {_text(f).lower() for f in entry[2]}
    categories = {_text(c).lower() for c in entry[6]}
    subcommands = entry[9] if len(entry) > 9 and entry[9] else ()
    return name, _verdict(name, flags, categories), subcommands


def from_reply(reply: Iterable[Any]) -> CommandTable | None:
    """The table from a raw ``COMMAND`` reply, or None if it lacks ACL categories."""
    entries: dict[str, _Entry] = {}
    for raw in reply:
        parsed = _parse(raw)
        if parsed is None:
            return None
        name, reason, subcommands = parsed
        subs: dict[str, str] = {}
        for raw_sub in subcommands:
            sub = _parse(raw_sub)
            if sub is not None:
                subs[sub[0].partition("|")[2]] = sub[1]
        entries[name] = _Entry(reason, subs, container=bool(subs))
    return CommandTable(entries, "server") if entries else None


_BUILTIN_READS = """
        get mget strlen getrange substr exists type ttl pttl expiretime pexpiretime keys scan
        randomkey dbsize dump touch lcs hget hmget hgetall hkeys hvals hlen hexists hstrlen hscan
        hrandfield lrange llen lindex lpos smembers sismember smismember scard srandmember sscan
        sinter sunion sdiff sintercard zrange zrangebyscore zrevrange zrevrangebyscore
        zrangebylex zrevrangebylex zscore zmscore zrank zrevrank zcard zcount zlexcount zscan
        zrandmember zinter zunion zdiff zintercard xrange xrevrange xlen xread xpending getbit
        bitcount bitpos bitfield_ro pfcount geopos geodist geohash geosearch georadius_ro
        georadiusbymember_ro sort_ro eval_ro evalsha_ro fcall_ro ping echo time info select
        auth hello watch unwatch multi exec discard lastsave role quit reset readonly readwrite
        wait subscribe unsubscribe psubscribe punsubscribe ssubscribe sunsubscribe
"""


def _builtin() -> CommandTable:
    reads = _BUILTIN_READS.split()
    containers = {
        "client": "setname getname id info",
        "command": "count docs getkeys getkeysandflags info list",
        "object": "encoding freq idletime refcount",
        "memory": "usage",
        "pubsub": "channels numpat numsub shardchannels shardnumsub",
        "xinfo": "consumers groups stream",
        "script": "exists",
        "function": "list dump stats",
        "config": "",
        "xgroup": "",
    }
    scripts = {"eval", "evalsha", "fcall", "script", "function"}
    entries = {name: _Entry(READ, {}) for name in reads}
    for name, subs in containers.items():
        other = "script" if name in scripts else "unknown"
        entries[name] = _Entry(other, dict.fromkeys(subs.split(), READ), True, other)
    for name in scripts - set(containers):
        entries[name] = _Entry("script", {})
    return CommandTable(entries, "builtin")


#: The conservative table for a server whose ``COMMAND`` is unavailable or too old: known
#: reads run, anything else (unknown commands included) is a side effect.
BUILTIN: Final = _builtin()
