"""Flask extension: the WSGI middleware around ``app.wsgi_app``, plus the route name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shadowguard.middleware.wsgi import ROUTE_KEY, ShadowGuardMiddleware

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["ShadowGuard"]


def _note_route() -> None:
    from flask import request

    rule = request.url_rule
    if rule is not None:
        request.environ[ROUTE_KEY] = rule.rule


class ShadowGuard:
    """Guard a Flask application: ``ShadowGuard(app)`` or ``ShadowGuard().init_app(app)``.

    Each shadow request runs in a shadow scope from the start of ``wsgi_app`` until the
    server closes the response, so streaming responses and ``call_on_close`` callbacks
    are covered. ``options`` are :class:`~shadowguard.Settings` fields; without them the
    ``SHADOWGUARD`` key of ``app.config`` (a dict of the same fields) is used, then the
    environment.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Wrap ``app.wsgi_app`` (once) and record the matched route for telemetry."""
        if "shadowguard" in app.extensions:
            return
        options = self.options or dict(app.config.get("SHADOWGUARD") or {})
        app.wsgi_app = ShadowGuardMiddleware(app.wsgi_app, **options)  # type: ignore[method-assign]
        app.before_request(_note_route)
        app.extensions["shadowguard"] = self
