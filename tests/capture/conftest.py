from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from shadowguard import capture


@pytest.fixture(autouse=True)
def _writer_stopped() -> Iterator[None]:
    """Every test leaves the capture writer stopped and its sinks closed."""
    yield
    assert capture.close(timeout=30), "the capture writer did not stop"
    assert not [t for t in threading.enumerate() if t.name == "shadowguard-capture"]


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite://{tmp_path}/capture.db"


@pytest.fixture
def jsonl_url(tmp_path: object) -> str:
    return f"jsonl://{tmp_path}/records"
