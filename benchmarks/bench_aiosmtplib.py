"""aiosmtplib: the guard's cost on a primary ``sendmail``, and a shadow one.

A loopback SMTP server (aiosmtpd) in a child process accepts every message. The guard
patches ``aiosmtplib.SMTP`` and its protocol class, so the unguarded side calls the
original ``sendmail``, saved before ``install()``, on the same connected client: guarded
and unguarded transactions run interleaved in the same run.
"""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

from benchmarks._harness import Harness
from benchmarks._loopback import child_server
from shadowguard import shadow

_SERVER = textwrap.dedent(
    """
    import socket, threading
    from aiosmtpd.controller import Controller

    class Accept:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(Accept(), hostname="127.0.0.1", port=port)
    controller.start()
    print(port, flush=True)
    threading.Event().wait()
    """
)
_MESSAGE = b"Subject: bench\r\n\r\nhello\r\n"


def run(h: Harness) -> None:
    import aiosmtplib

    from shadowguard.integrations import aiosmtplib as sink

    original = vars(aiosmtplib.SMTP)["sendmail"]
    with child_server(_SERVER) as port, h.longer_samples():
        sink.install()
        loop = asyncio.new_event_loop()
        try:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
            loop.run_until_complete(client.connect())
            to = ["alice@example.test"]

            def plain() -> Any:
                return loop.run_until_complete(original(client, "shop@example.test", to, _MESSAGE))

            def guarded() -> Any:
                return loop.run_until_complete(client.sendmail("shop@example.test", to, _MESSAGE))

            def shadowed() -> Any:
                with shadow():
                    return guarded()

            guarded()
            h.compare(
                "aiosmtplib sendmail loopback, primary: guarded vs unguarded",
                plain,
                guarded,
                target_ratio=1.03,
            )
            h.compare(
                "aiosmtplib: shadow sendmail vs real primary sendmail",
                plain,
                shadowed,
                target_ratio=0.9,
            )
            loop.run_until_complete(client.quit())
        finally:
            loop.close()
            sink.uninstall()
