"""Checks the pika and aio-pika tests share: the same promise asked of each client."""

from __future__ import annotations

from shadowguard import Scope
from tests.peers.rabbitmq import RabbitPeer

#: The (un)bindings of the primary's queue and exchanges each bindings test makes in shadow.
BINDINGS_OF_THE_PRIMARY = ["queue_unbind", "queue_bind", "exchange_bind", "exchange_unbind"]


def check_bindings_unchanged(
    rabbit: RabbitPeer, scope: Scope, bound_fan: str, other_fan: str, queue: str, mirror: str
) -> None:
    """The shadow's (un)bindings of the primary's queue (bound to ``bound_fan``) and exchanges
    were recorded and changed no route; the one binding ``mirror`` to ``bound_fan`` ran."""
    assert [s.detail["operation"] for s in scope.suppressed] == BINDINGS_OF_THE_PRIMARY
    rabbit.oracle.basic_publish(bound_fan, "", b"via the primary's binding")
    rabbit.oracle.basic_publish(other_fan, "", b"via no binding")
    assert rabbit.bodies(queue) == [b"via the primary's binding"]
    assert rabbit.bodies(mirror) == [b"via the primary's binding"]


def check_purges_and_deletes_unchanged(
    rabbit: RabbitPeer, scope: Scope, queue: str, mirror: str, exchange: str
) -> None:
    """The shadow's purge and delete of the primary's ``queue`` (holding one message) and its
    delete of ``exchange`` were recorded and changed nothing; the purge of ``mirror`` ran."""
    assert [s.detail["operation"] for s in scope.suppressed] == [
        "queue_purge",
        "queue_delete",
        "exchange_delete",
    ]
    assert rabbit.depth(queue) == 1
    assert rabbit.depth(mirror) == 0
    assert rabbit.exchange_exists(exchange)
