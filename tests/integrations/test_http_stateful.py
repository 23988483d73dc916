"""Primary and shadow requests interleaved over long-lived HTTP clients (Hypothesis).

A worker keeps an ``httpx.Client``, a ``requests.Session``, an ``http.client``
connection and an ``aiohttp.ClientSession`` (on an event loop of its own), all made
before ``install()`` and all keeping connections alive, and uses them across requests
in any order: primary calls, shadow blocks (some failing half-way), shadow work in a propagated
thread and in an asyncio task. After every step the loopback server has received exactly
the primary's requests, each once; every shadow response was a stub and no primary
response was one.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest
import requests
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import shadowguard
from shadowguard import integrations
from tests._soak import stateful_settings
from tests.integrations._support import installing
from tests.peers.http import HttpServer

METHODS = ("GET", "POST", "PUT", "DELETE")
CLIENTS = ("httpx", "requests", "http.client", "aiohttp")


class _Failed(Exception):
    pass


class Worker(RuleBasedStateMachine):
    """Kept clients, and the model: the ids of the primary's requests."""

    server: ClassVar[HttpServer]
    clients: ClassVar[dict[str, Callable[[str, str], Any]]]

    def __init__(self) -> None:
        super().__init__()
        self.server.clear()
        self.ids = itertools.count(1)
        self.shadow_ids = itertools.count(1_000_000)
        self.primary: list[str] = []

    def _send(self, client: str, method: str, i: int) -> Any:
        return self.clients[client](method, f"{self.server.url}/hit/{i}")

    @rule(client=st.sampled_from(CLIENTS), method=st.sampled_from(METHODS))
    def primary_request(self, client: str, method: str) -> None:
        i = next(self.ids)
        response = self._send(client, method, i)
        assert not shadowguard.is_stub(response)
        self.primary.append(f"/hit/{i}")

    @rule(
        calls=st.lists(
            st.tuples(st.sampled_from(CLIENTS), st.sampled_from(METHODS)),
            min_size=1,
            max_size=4,
        ),
        fails=st.booleans(),
    )
    def shadow_block(self, calls: list[tuple[str, str]], fails: bool) -> None:
        with contextlib.suppress(_Failed), shadowguard.shadow():
            for client, method in calls:
                assert shadowguard.is_stub(self._send(client, method, next(self.shadow_ids)))
            if fails:
                raise _Failed

    @rule(client=st.sampled_from(CLIENTS))
    def shadow_in_a_propagated_thread(self, client: str) -> None:
        results: list[Any] = []
        with shadowguard.shadow():
            call = shadowguard.propagate(
                lambda: results.append(self._send(client, "POST", next(self.shadow_ids)))
            )
            worker = threading.Thread(target=call)
            worker.start()
            worker.join()
        assert len(results) == 1
        assert shadowguard.is_stub(results[0])

    @rule(method=st.sampled_from(METHODS))
    def shadow_in_an_asyncio_task(self, method: str) -> None:
        async def send() -> Any:
            async with httpx.AsyncClient() as client:
                url = f"{self.server.url}/hit/{next(self.shadow_ids)}"
                return await client.request(method, url)

        async def main() -> Any:
            return await asyncio.create_task(send())  # the task copies the shadow context

        with shadowguard.shadow():
            response = asyncio.run(main())
        assert shadowguard.is_stub(response)

    @invariant()
    def the_server_saw_exactly_the_primary(self) -> None:
        with self.server.lock:
            paths = [hit.path for hit in self.server.hits]
        assert sorted(paths) == sorted(self.primary)


def _kept_connection(server: HttpServer) -> tuple[http.client.HTTPConnection, Callable[..., Any]]:
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc)

    def request(method: str, url: str) -> Any:
        conn.request(method, urlsplit(url).path, body=b"x" if method in ("POST", "PUT") else None)
        response = conn.getresponse()
        response.read()
        return response

    return conn, request


def _kept_session() -> tuple[asyncio.AbstractEventLoop, Any, Callable[..., Any]]:
    loop = asyncio.new_event_loop()

    async def make() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    session = loop.run_until_complete(make())

    async def send(method: str, url: str) -> Any:
        async with session.request(method, url) as response:
            await response.read()
            return response

    # Each call runs as a task of the kept loop, which copies the caller's context.
    return loop, session, lambda method, url: loop.run_until_complete(send(method, url))


@pytest.fixture
def kept_clients(http_server: HttpServer) -> Iterator[dict[str, Callable[[str, str], Any]]]:
    """Clients made before install(), as a service makes them at import."""
    client = httpx.Client()
    session = requests.Session()
    conn, conn_request = _kept_connection(http_server)
    loop, aiohttp_session, aiohttp_request = _kept_session()
    try:
        yield {
            "httpx": client.request,
            "requests": session.request,
            "http.client": conn_request,
            "aiohttp": aiohttp_request,
        }
    finally:
        client.close()
        session.close()
        conn.close()
        loop.run_until_complete(aiohttp_session.close())
        loop.close()


def test_kept_clients_interleaved(
    kept_clients: dict[str, Callable[[str, str], Any]], http_server: HttpServer
) -> None:
    Worker.server = http_server
    Worker.clients = kept_clients
    with (
        installing(integrations.load("httpx")),
        installing(integrations.load("requests")),
        installing(integrations.load("http_client")),
        installing(integrations.load("aiohttp")),
    ):
        run_state_machine_as_test(Worker, settings=stateful_settings(15, steps=12))
