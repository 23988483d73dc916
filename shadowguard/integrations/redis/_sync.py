"""The hooks on redis-py's synchronous client: one command, and a pipeline's batch.

``Redis._send_command_parse_response`` is where every single command meets its connection,
whether it came from ``execute_command`` or from a pipeline in immediate mode (after
``WATCH``, before ``MULTI``). ``Pipeline._execute_transaction`` and ``_execute_pipeline``
get a pipeline's whole batch before anything is written to the socket: in shadow they send
the commands that run (inside ``MULTI``/``EXEC`` for a transaction, so ``WATCH`` still
aborts it) and put the suppressed commands' replies back at their positions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shadowguard.contract import PROCESS, mark_wrapped, scope_now
from shadowguard.integrations.redis._shadow import (
    Answer,
    answer,
    callback_value,
    read_options,
    target_of,
)
from shadowguard.integrations.redis._table import table_for

__all__ = ["pipeline_hook", "plan", "send_hook", "splice", "suppressed"]

Command = tuple[Sequence[Any], dict[str, Any]]


def send_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    def _send_command_parse_response(
        self: Any, conn: Any, command_name: Any, *args: Any, **options: Any
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, conn, command_name, *args, **options)
        verdict = table_for(self.connection_pool, conn).classify(args)
        instead = answer(verdict, args, target_of(conn), "command")
        if instead is None:
            return original(self, conn, command_name, *args, **options)
        if instead.read is not None:
            return original(self, conn, instead.read[0], *instead.read, **read_options(options))
        return callback_value(self, conn, command_name, instead.raw, options)

    mark_wrapped(_send_command_parse_response, original)
    return _send_command_parse_response


def plan(
    verdicts: Sequence[Any], commands: Sequence[Command], target: str, via: str
) -> tuple[list[Command], list[Answer | None]]:
    """The commands to send and, per position, the answer of a suppressed one (None: sent as
    it is). A suppressed command answered by a read has its read sent in its place.

    Every command is judged before anything is sent: one refusal refuses the batch.
    """
    records: list[Callable[[], object]] = []
    answers = [
        answer(verdict, args, target, via, records)
        for verdict, (args, _) in zip(verdicts, commands, strict=True)
    ]
    for make in records:
        make()
    sent: list[Command] = []
    for command, instead in zip(commands, answers, strict=True):
        if instead is None:
            sent.append(command)
        elif instead.read is not None:
            sent.append((instead.read, read_options(command[1])))
    return sent, answers


def suppressed(
    commands: Sequence[Command], answers: Sequence[Answer | None]
) -> list[tuple[Any, Any, dict[str, Any]]]:
    """``(command name, raw reply, options)`` of each command answered in place of sent."""
    return [
        (args[0], instead.raw, options)
        for (args, options), instead in zip(commands, answers, strict=True)
        if instead is not None and instead.read is None
    ]


def splice(
    answers: Sequence[Answer | None], results: Sequence[Any], replies: Sequence[Any]
) -> list[Any]:
    """The sent commands' ``results`` with the :func:`suppressed` commands' ``replies`` at
    their positions."""
    sent, replied = iter(results), iter(replies)
    return [
        next(sent) if instead is None or instead.read is not None else next(replied)
        for instead in answers
    ]


def pipeline_hook(original: Callable[..., Any], transaction: bool) -> Callable[..., Any]:
    via = "transaction" if transaction else "pipeline"

    def execute(self: Any, connection: Any, commands: Any, raise_on_error: Any) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return original(self, connection, commands, raise_on_error)
        table = table_for(self.connection_pool, connection)
        verdicts = [table.classify(args) for args, _ in commands]
        if all(verdict.runs for verdict in verdicts):
            return original(self, connection, commands, raise_on_error)
        sent, answers = plan(verdicts, commands, target_of(connection), via)
        # A transaction still runs (maybe empty): EXEC is what checks the WATCHed keys.
        results = original(self, connection, sent, raise_on_error) if sent or transaction else []
        replies = [
            callback_value(self, connection, name, raw, options)
            for name, raw, options in suppressed(commands, answers)
        ]
        return splice(answers, results, replies)

    mark_wrapped(execute, original)
    return execute
