"""doctor, grpc and aiosmtplib: clients made at import are guarded once their integration is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doctor._run import check_guarded, check_unguarded

GRPC_APP = """\
import grpc
from shadowguard.middleware.wsgi import ShadowGuardMiddleware
import shadowguard

channel = grpc.insecure_channel("127.0.0.1:9")  # connects on its first call
cancel = channel.unary_unary("/shop.Orders/Cancel")
{install}

def inner(environ, start_response):
    cancel(b"order-1")

app = ShadowGuardMiddleware(inner)
"""

MAIL_APP = """\
import aiosmtplib
from shadowguard.middleware.asgi import ShadowGuardMiddleware
import shadowguard

mailer = aiosmtplib.SMTP(hostname="127.0.0.1", port=9)  # connects when asked
{install}

async def inner(scope, receive, send):
    await mailer.sendmail("shop@example.com", ["a@example.com"], "hi")

app = ShadowGuardMiddleware(inner)
"""


@pytest.mark.parametrize(
    ("app", "library", "kind", "name"),
    [
        (GRPC_APP, "grpc", "gRPC channel", "svc.channel"),
        (MAIL_APP, "aiosmtplib", "aiosmtplib SMTP", "svc.mailer"),
    ],
)
def test_a_client_without_its_integration_is_unguarded_and_with_it_guarded(
    tmp_path: Path, app: str, library: str, kind: str, name: str
) -> None:
    check_unguarded(tmp_path, app, library, kind, name)
    check_guarded(tmp_path, app, library, name)
