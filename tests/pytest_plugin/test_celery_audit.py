"""``--shadowguard-audit`` on a suite that sends Celery tasks: counted per test, nothing queued."""

from __future__ import annotations

import pytest

from tests.peers.celery_brokers import Broker
from tests.pytest_plugin._audit import guards_conftest, run_audit

pytest_plugins = ["pytester"]

TESTS = """
import os

from celery import Celery

app = Celery("inner", broker=os.environ["SG_BROKER_URL"], set_as_current=False)
app.conf.task_default_queue = os.environ["SG_QUEUE"]


@app.task(name="orders.confirm", shared=False)
def confirm(order_id, email=None):
    pass


def test_places_an_order():
    assert confirm.delay(1, email="a@example.com").state == "PENDING"
    app.send_task("orders.ship", [1])
"""


def test_audit_counts_celery_suppressions_and_the_queue_stays_empty(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, rabbitmq_broker: Broker
) -> None:
    queue = rabbitmq_broker.queue("audit")
    monkeypatch.setenv("SG_BROKER_URL", rabbitmq_broker.url)
    monkeypatch.setenv("SG_QUEUE", queue)
    run_audit(
        pytester,
        TESTS,
        guards_conftest("celery"),
        suppressed={"test_places_an_order": "celery.task=2"},
    )
    assert rabbitmq_broker.depth(queue) == 0
