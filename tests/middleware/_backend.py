"""A guarded backend for the tests behind a real Envoy: uvicorn in a thread serving an ASGI
app behind ShadowGuardMiddleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from shadowguard.middleware.asgi import ShadowGuardMiddleware
from tests.peers.uvicorn import InThread


class GuardedBackend:
    """Serves an app that awaits ``handle(scope, receive)``, then answers 200 ``ok``."""

    def __init__(self, handle: Callable[[Any, Any], Awaitable[None]]) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await handle(scope, receive)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        self.served = InThread(ShadowGuardMiddleware(app))
        self.port = self.served.port

    def stop(self) -> None:
        self.served.stop()
