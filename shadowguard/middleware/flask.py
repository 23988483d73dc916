"""Flask extension: the WSGI middleware around ``app.wsgi_app``, plus the route name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shadowguard.middleware.wsgi import EXCEPTION_KEY, ShadowGuardMiddleware

try:
    from flask import got_request_exception, request
except ImportError as exc:  # pragma: no cover - exercised without Flask installed
    from shadowguard.errors import missing_extra_error

    raise missing_extra_error("flask", "flask") from exc

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["ShadowGuard"]


def _flask_route(environ: dict[str, Any]) -> str | None:
    # Called from start_response, while Flask's request is still in ``environ`` (werkzeug
    # documents ``environ["werkzeug.request"]``; Flask clears it when the request context
    # pops): a dict read instead of the ``request`` proxy, about a microsecond cheaper.
    current = environ.get("werkzeug.request")
    try:
        rule = current.url_rule if current is not None else request.url_rule
    except RuntimeError:  # outside a request context
        return None
    return rule.rule if rule is not None else None


def _note_exception(sender: Any, exception: BaseException | None = None, **extra: Any) -> None:
    # Flask turns an unhandled exception into a 500 before the middleware sees it: the
    # capture record still names the exception.
    try:
        if exception is not None:
            request.environ[EXCEPTION_KEY] = exception
    except RuntimeError:  # outside a request context
        pass


class ShadowGuard:
    """Guard a Flask application: ``ShadowGuard(app)`` or ``ShadowGuard().init_app(app)``.

    Each shadow request runs in a shadow scope from the start of ``wsgi_app`` until the
    server closes the response, so streaming responses and ``call_on_close`` callbacks
    are covered. ``options`` are :class:`~shadowguard.Settings` fields; without them the
    ``SHADOWGUARD`` key of ``app.config`` (a dict of the same fields) is used, then the
    environment. ``capture=`` (or ``"capture"`` in that dict) records each request for
    ``shadowguard compare``, with the route template and the exception of a 500.
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
        middleware = ShadowGuardMiddleware(app.wsgi_app, **options)
        middleware.route_of = _flask_route
        if middleware.capture is not None:
            got_request_exception.connect(_note_exception, app)
        # The bound method, not the instance: Flask calls ``self.wsgi_app(...)`` on every
        # request, and CPython calls a bound method faster than an object's ``__call__``.
        # ``app.wsgi_app.__self__`` is the middleware.
        app.wsgi_app = middleware.__call__  # type: ignore[method-assign]
        app.extensions["shadowguard"] = self
