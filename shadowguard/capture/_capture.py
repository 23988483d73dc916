"""The capture a middleware holds: its settings, its sink, and how a request starts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shadowguard.capture import _writer
from shadowguard.capture._redact import Redactor
from shadowguard.capture._settings import CaptureSettings, parse_url
from shadowguard.capture._sinks import Sink, check_sink, is_sink, open_sink
from shadowguard.capture._take import Take
from shadowguard.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Capture", "capture_from"]

_OPTION_ACCEPTED = (
    "None (the SHADOWGUARD_CAPTURE setting), False (off), a capture URL "
    "(sqlite:///ABSOLUTE/FILE.db, jsonl:///ABSOLUTE/DIR or kafka://HOST:PORT/TOPIC), "
    "a CaptureSettings, a Capture, "
    "or a sink (an object with write(batch) and close())"
)


class Capture:
    """Capture of one middleware: :meth:`start` a request, then feed the :class:`Take`.

    Records go to one process-wide writer thread; a sink built from a URL is opened there,
    once per process (again after a fork), and shared by every capture with that URL.
    """

    __slots__ = ("label", "max_body_bytes", "open", "redactor", "settings", "sink_key")

    def __init__(self, settings: CaptureSettings, sink: Sink | None = None) -> None:
        if sink is None and settings.url is None:
            raise ConfigError("capture needs a URL or a sink: " + _OPTION_ACCEPTED)
        self.settings = settings
        self.label = settings.label
        self.max_body_bytes = settings.max_body_bytes
        self.redactor = Redactor(settings.redact)
        self.sink_key: object
        self.open: Callable[[], Sink]
        if sink is not None:
            given = sink
            self.sink_key = ("sink", id(given))  # the sink may be unhashable; self keeps it alive
            self.open = lambda: given
        else:
            url = settings.url
            assert url is not None  # checked above
            scheme, path = parse_url(url, "url")
            check_sink(scheme)
            self.sink_key = (scheme, path)
            self.open = lambda: open_sink(scheme, path)

    def __repr__(self) -> str:
        where = self.settings.url or repr(self.open())
        return f"<shadowguard.capture.Capture {where} label={self.label or 'primary/shadow'}>"

    def start(
        self,
        shadow: bool,
        method: str,
        path: str,
        request_id: str | None,
        request_headers: Any = None,
    ) -> Take:
        """A request starts (``shadow`` as detection decided): its :class:`Take`."""
        label = self.label or ("shadow" if shadow else "primary")
        return Take(self, label, method, path, request_id, request_headers)

    def submit(self, take: Take) -> None:
        """Queue a finished request for the writer (dropped and counted when it is full)."""
        _writer.submit(take, self.settings.queue_size)


def capture_from(option: Any = None) -> Capture | None:
    """The capture a middleware's ``capture=`` option asks for; None when off.

    Validated at start-up: a malformed option or ``SHADOWGUARD_CAPTURE*`` variable raises
    :class:`~shadowguard.ConfigError` naming it and the accepted values.
    """
    if option is False:
        return None
    if isinstance(option, Capture):
        return option
    if option is None:
        settings = CaptureSettings.from_env()
        return None if settings.url is None else Capture(settings)
    if isinstance(option, CaptureSettings):
        return None if option.url is None else Capture(option)
    if isinstance(option, str):
        parse_url(option, "capture")
        return Capture(CaptureSettings.from_env(url=option))
    if is_sink(option):
        return Capture(CaptureSettings.from_env(url=None), sink=option)
    raise ConfigError(f"capture={option!r} is not valid: accepted values are {_OPTION_ACCEPTED}")
