"""The applications the capture tests serve, in process or under a real server.

``asgi_app`` (module level) is built from the environment, for uvicorn processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from flask import Flask
from flask import Response as FlaskResponse

from shadowguard import side_effect
from shadowguard.capture import Encoded
from shadowguard.capture._jsonl import JsonlSink
from shadowguard.middleware.asgi import ShadowGuardMiddleware
from shadowguard.middleware.flask import ShadowGuard

#: A JSON order with something of every sensitive kind in it.
ORDER = {
    "items": [{"sku": "A-1", "price": 12.5, "token": "tok_item"}],
    "password": "hunter2",
    "customer": {"name": "Ada", "accessToken": "abc", "card": {"card_number": "4111111111111111"}},
    "span": "kept: only rules of 5+ characters match as suffixes",
}


@side_effect
def notify(order_id: int) -> None:
    """A side effect: suppressed in shadow."""


def build_asgi(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, Any]:
        notify(order_id)
        notify(order_id)
        return {"id": order_id, **ORDER}

    @app.get("/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse("plain words, not JSON")

    @app.get("/binary")
    async def binary() -> Response:
        return Response(bytes(range(256)), media_type="application/octet-stream")

    @app.get("/big/{size}")
    async def big(size: int) -> Response:
        return Response(b'"' + b"x" * (size - 2) + b'"', media_type="application/json")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for part in (b'{"parts": [1', b", 2", b", 3]}"):
                yield part

        return StreamingResponse(body(), media_type="application/json")

    @app.get("/boom")
    async def boom() -> dict[str, Any]:
        raise LookupError("no such order")

    @app.get("/empty", status_code=204)
    async def empty() -> Response:
        return Response(status_code=204)

    # Starlette's ParamSpec factory type rejects every middleware class (also before capture).
    app.add_middleware(ShadowGuardMiddleware, **options)  # type: ignore[arg-type]
    return app


def build_flask(**options: Any) -> Flask:
    app = Flask(__name__)

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> Any:
        notify(order_id)
        return {"id": order_id, **ORDER}

    @app.get("/stream")
    def stream() -> Any:
        def body() -> Iterator[str]:
            yield '{"parts": [1'
            yield ", 2]}"

        return FlaskResponse(body(), mimetype="application/json")

    @app.get("/boom")
    def boom() -> Any:
        raise KeyError("missing")

    ShadowGuard(app, **options)
    return app


class SlowJsonlSink(JsonlSink):
    """JSON lines on a disk that takes 0.3 s per write."""

    def write(self, batch: Sequence[Encoded]) -> None:
        time.sleep(0.3)
        super().write(batch)


asgi_app: Any = build_asgi() if os.environ.get("SHADOWGUARD_CAPTURE") else None
slow_dir = os.environ.get("CAPTURE_SLOW_DIR")
slow_app: Any = build_asgi(capture=SlowJsonlSink(slow_dir)) if slow_dir else None
