"""kafka-python and aiokafka workers in a ``SHADOW_MODE=true`` process, on Tansu.

The same worker (consume, transform, produce, auto-commit) runs once as shadow and once as
primary, in subprocesses (process shadow is process-wide). The oracles are the broker: the
output topic's messages and each group's committed offsets, read from outside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integrations._consumers import NONE, group, topic
from tests.peers.kafka import KafkaBroker

__all__ = ["group", "topic"]  # fixtures

ROOT = Path(__file__).resolve().parents[2]


def _worker(client: str, broker: KafkaBroker, topic: str, out: str, group: str, shadow: str) -> Any:
    env = {**os.environ, "SHADOW_MODE": shadow, "PYTHONPATH": str(ROOT)}
    env.pop("SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX", None)
    command = [sys.executable, "-m", "tests.integrations._kafka_worker", client]
    result = subprocess.run(
        [*command, broker.bootstrap, topic, out, group, "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("client", ["kafka_python", "aiokafka"])
def test_a_shadow_worker_stores_nothing_and_leaves_the_primary_group_alone(
    kafka_broker: KafkaBroker, topic: str, group: str, client: str
) -> None:
    out = kafka_broker.create_topic()
    shadow = _worker(client, kafka_broker, topic, out, group, "true")
    assert shadow["group"] == f"{group}-shadow"
    assert shadow["read"] == [f"m{i}" for i in range(5)]
    assert shadow["offsets"] == [-1] * 5
    assert kafka_broker.values(out) == []
    assert kafka_broker.committed(group, topic) == {0: NONE}
    assert kafka_broker.committed(f"{group}-shadow", topic) == {0: 5}

    primary = _worker(client, kafka_broker, topic, out, group, "false")
    # The primary group starts where it was: at the beginning, every message still its own.
    assert (primary["group"], primary["read"]) == (group, [f"m{i}" for i in range(5)])
    assert primary["offsets"] == [0, 1, 2, 3, 4]
    assert kafka_broker.values(out) == [f"M{i}".encode() for i in range(5)]
    assert kafka_broker.committed(group, topic) == {0: 5}
    assert kafka_broker.committed(f"{group}-shadow", topic) == {0: 5}
