"""The boto3 guard on the primary path: real S3 calls to a loopback server.

A child process answers S3 ``HeadObject`` and ``PutObject`` over keep-alive HTTP, as fast
as a server can, so botocore's own work is most of each call. The unguarded client has the
original methods bound on the instance (client and endpoint), which shadows the installed
patches on the classes: exactly the path without shadowguard. A suppressed shadow
``PutObject`` (no round trip) is timed against the primary one, to show what shadow
traffic costs instead.
"""

from __future__ import annotations

import types
from typing import Any

from benchmarks._harness import Harness
from benchmarks._loopback import child_server, http_server
from shadowguard import shadow

_SERVER = http_server(
    """
    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("ETag", '"9dd4e461268c8034f5c8564e155c67a6"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_PUT = _answer
    """
)


def _client(url: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _unguarded(client: Any, originals: dict[str, Any], send: Any) -> Any:
    for name, original in originals.items():
        vars(client)[name] = types.MethodType(original, client)
    endpoint = client._endpoint
    vars(endpoint)["_send"] = types.MethodType(send, endpoint)
    return client


def run(h: Harness) -> None:
    if not h.imports(
        "botocore", missing="boto3 is not installed: pip install 'shadowguard[boto3]'"
    ):
        return
    from botocore.client import BaseClient
    from botocore.endpoint import Endpoint

    from shadowguard.integrations import boto3 as sink

    originals = {name: vars(BaseClient)[name] for name in ("_make_api_call", "_make_request")}
    send = vars(Endpoint)["_send"]
    with child_server(_SERVER, stop_timeout=10) as port, h.longer_samples():
        url = f"http://127.0.0.1:{port}"
        plain = _unguarded(_client(url), originals, send)
        sink.install()
        guarded = _client(url)
        try:
            key = {"Bucket": "bench", "Key": "k"}
            plain.head_object(**key)
            guarded.head_object(**key)
            h.compare(
                "boto3 S3 HeadObject loopback, primary: guarded vs unguarded",
                lambda: plain.head_object(**key),
                lambda: guarded.head_object(**key),
                target_ratio=1.03,
            )
            h.compare(
                "boto3 S3 PutObject loopback, primary: guarded vs unguarded",
                lambda: plain.put_object(Body=b"x", **key),
                lambda: guarded.put_object(Body=b"x", **key),
                target_ratio=1.03,
            )

            def suppressed_put() -> Any:
                with shadow("bench"):
                    return guarded.put_object(Body=b"x", **key)

            h.compare(
                "boto3: shadow suppressed PutObject vs real primary PutObject",
                lambda: plain.put_object(Body=b"x", **key),
                suppressed_put,
            )
        finally:
            sink.uninstall()
            plain.close()
            guarded.close()
