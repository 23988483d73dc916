"""Cancel an ASGI shadow request whose mirror client went away.

The application gets :meth:`DisconnectWatch.receive` instead of the server's ``receive``
and sees every message, in order; the watch never takes a message the application needs:

- While the request body is unread, only the application reads: a ``http.disconnect`` it
  receives itself cancels the request.
- Once the body is read (the application received ``more_body=False``), or at once when
  the headers say there is no body (no ``content-length`` other than 0, no
  ``transfer-encoding``), a listener task owns the server's ``receive``: what it gets is
  handed to the application's own ``receive`` calls (a body read ahead, then the
  ``http.disconnect``, returned again to every later call, as servers do).
- A ``http.disconnect`` before the response is complete cancels the request's task; one
  after the last body chunk was sent is the server's "response done" and cancels nothing,
  so Starlette's background tasks still run.

Cancellation needs an asyncio event loop; under another loop (trio) the watch only passes
messages through. The middleware hands the watch an AnyIO cancel scope's ``cancel`` where
AnyIO is installed (Starlette and FastAPI require it): a scope waits for work it shields,
such as a synchronous endpoint running in a worker thread, so the request (its shadow scope
and its admission slot) ends when that thread ends, not before. Without AnyIO the watch
cancels the request's task.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

__all__ = ["DisconnectWatch", "has_no_body"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


def has_no_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the request headers promise an empty body (HTTP/1.1 framing)."""
    try:
        for name, value in headers:
            name = name.lower()
            if name == b"transfer-encoding" or (
                name == b"content-length" and value.strip() != b"0"
            ):
                return False
    except (TypeError, AttributeError):
        return False
    return True


class DisconnectWatch:
    """The ``receive`` an ASGI shadow request's application gets, and its disconnect watch."""

    __slots__ = (
        "_arrived",
        "_cancel_request",
        "_final",
        "_listener",
        "_messages",
        "_on_disconnect",
        "_receive",
        "_task",
        "disconnected",
        "response_done",
    )

    def __init__(
        self,
        receive: Receive,
        on_disconnect: Callable[[], None],
        no_body: bool,
        cancel: Callable[[], None] | None = None,
    ) -> None:
        self._receive = receive
        self._on_disconnect = on_disconnect
        self._cancel_request = cancel
        self._task: asyncio.Task[Any] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._messages: deque[Message] = deque()
        self._arrived: asyncio.Event | None = None
        self._final: Message | None = None
        #: True once a disconnect cancelled the request's task.
        self.disconnected = False
        #: Set by the middleware when the last body chunk is being sent.
        self.response_done = False
        try:
            self._task = asyncio.current_task()
        except RuntimeError:  # not an asyncio loop: pass messages through, cancel nothing
            return
        if no_body:
            self._listen(body_read=False)

    async def receive(self) -> Message:
        """What the server sent, in order; never a message taken from the application."""
        while True:
            if self._messages:
                return self._messages.popleft()
            if self._final is not None:
                return self._final
            arrived = self._arrived
            if arrived is None:
                break
            arrived.clear()
            await arrived.wait()
        message = await self._receive()
        kind = message.get("type")
        if kind == "http.request":
            if (
                not message.get("more_body", False)
                and self._task is not None
                and self._listener is None
            ):
                self._listen(body_read=True)
        elif kind == "http.disconnect":
            self._cancel()
        return message

    def stop(self) -> None:
        """The request ended: stop listening (the server's pending ``receive`` is dropped)."""
        listener = self._listener
        if listener is not None and not listener.done():
            listener.cancel()

    def _listen(self, body_read: bool) -> None:
        self._arrived = asyncio.Event()
        self._listener = asyncio.get_running_loop().create_task(self._listening(body_read))

    async def _listening(self, body_read: bool) -> None:
        arrived = self._arrived
        assert arrived is not None
        while True:
            message = await self._receive()
            kind = message.get("type")
            if kind == "http.request" and not body_read:
                self._messages.append(message)  # a body read ahead, for the application
                body_read = not message.get("more_body", False)
                arrived.set()
                continue
            if kind == "http.disconnect":
                self._final = message
                arrived.set()
                self._cancel()
                return
            # Not what a server sends after the body: hand it over and stop watching.
            self._messages.append(message)
            self._arrived = None
            arrived.set()
            return

    def _cancel(self) -> None:
        if self.response_done or self.disconnected or self._task is None:
            return
        self.disconnected = True
        self._on_disconnect()
        if self._cancel_request is not None:
            self._cancel_request()
        else:
            self._task.cancel("shadowguard: the mirror client disconnected")
