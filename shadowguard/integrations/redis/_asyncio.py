"""The same hooks on redis.asyncio's client and pipeline (see :mod:`._sync`).

Each hook is a plain function that returns the original coroutine on the primary path, so
the primary pays no extra coroutine frame; in shadow it returns a coroutine of its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from shadowguard.contract import PROCESS, mark_wrapped, scope_now
from shadowguard.integrations.redis._shadow import answer, callback_value, read_options, target_of
from shadowguard.integrations.redis._sync import Command, plan, splice, suppressed
from shadowguard.integrations.redis._table import table_for_async

__all__ = ["pipeline_hook", "send_hook"]


async def _value(client: Any, conn: Any, command_name: Any, raw: Any, options: Any) -> Any:
    value = callback_value(client, conn, command_name, raw, options)
    return await value if inspect.isawaitable(value) else value


def send_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    async def shadow_send(
        self: Any, conn: Any, command_name: Any, args: Sequence[Any], options: dict[str, Any]
    ) -> Any:
        table = await table_for_async(self.connection_pool, conn)
        instead = answer(table.classify(args), args, target_of(conn), "command")
        if instead is None:
            return await original(self, conn, command_name, *args, **options)
        if instead.read is not None:
            read = instead.read
            return await original(self, conn, read[0], *read, **read_options(options))
        return await _value(self, conn, command_name, instead.raw, options)

    def _send_command_parse_response(
        self: Any, conn: Any, command_name: Any, *args: Any, **options: Any
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, conn, command_name, *args, **options)
        return shadow_send(self, conn, command_name, args, options)

    mark_wrapped(_send_command_parse_response, original)
    return _send_command_parse_response


def pipeline_hook(original: Callable[..., Any], transaction: bool) -> Callable[..., Any]:
    via = "transaction" if transaction else "pipeline"

    async def shadow_execute(
        self: Any, connection: Any, commands: Sequence[Command], raise_on_error: Any
    ) -> Any:
        table = await table_for_async(self.connection_pool, connection)
        verdicts = [table.classify(args) for args, _ in commands]
        if all(verdict.runs for verdict in verdicts):
            return await original(self, connection, commands, raise_on_error)
        sent, answers = plan(verdicts, commands, target_of(connection), via)
        results = (
            await original(self, connection, sent, raise_on_error) if sent or transaction else []
        )
        replies = [
            await _value(self, connection, name, raw, options)
            for name, raw, options in suppressed(commands, answers)
        ]
        return splice(answers, results, replies)

    def execute(self: Any, connection: Any, commands: Any, raise_on_error: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, connection, commands, raise_on_error)
        return shadow_execute(self, connection, commands, raise_on_error)

    mark_wrapped(execute, original)
    return execute
