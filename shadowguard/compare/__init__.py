"""Compare captured primary and shadow traffic: ``shadowguard compare`` and its library form.

The seams, in call order (:func:`compare` runs them):

- :mod:`._sources`: read stored capture records (SQLite, JSON lines), skipping and counting
  what cannot be read;
- :mod:`._join`: choose the baseline, candidate and noise labels, pair records by request id;
- :mod:`._diff` (with :mod:`shadowguard._fieldpaths`): where a pair's responses differ, by field path;
- :mod:`._routes`: tallies per route and label; :mod:`._latency`: percentiles;
- :mod:`._report`: the JSON report (noise cancellation, worst route first), checked against
  ``report.schema.json``; :mod:`._gates`: the ``--fail-on`` verdict;
- :mod:`._text`, :mod:`._html` (with :mod:`._charts`): the terminal summary and the page;
- :mod:`._command`: the command line; :mod:`._options`: options and the config file.

On Kafka (``kafka://`` sources): :mod:`._stream` joins one partition as records arrive,
:mod:`._partial` and :mod:`._sketch` hold mergeable tallies, :mod:`._worker` is a consumer
group member writing checkpointed segments (:mod:`._kafka`; its settings and figures in
:mod:`._worker_settings`), :mod:`._kafka_report` merges
them, :mod:`._kafka_command` is their command line.

Importing :mod:`shadowguard` does not import this package.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from shadowguard.compare._compare import Progress, Result, compare
from shadowguard.compare._errors import CompareError
from shadowguard.compare._html import render_html
from shadowguard.compare._options import FailOn, Options, load_config
from shadowguard.compare._report import SCHEMA_VERSION
from shadowguard.compare._text import render_text

__all__ = [
    "SCHEMA_VERSION",
    "CompareError",
    "FailOn",
    "Options",
    "Progress",
    "Result",
    "compare",
    "load_config",
    "render_html",
    "render_text",
    "report_schema",
]


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the ``--json`` report (``report.schema.json``)."""
    text = resources.files(__name__).joinpath("report.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
