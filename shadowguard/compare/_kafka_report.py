"""``shadowguard compare report kafka://...``: the workers' segments merged into one report.

For each partition of the captured topic the longest valid segment chain is merged (see
:mod:`._kafka`); what its last segment still held counts as unpaired, as it would at the end
of a file. The report is the one ``shadowguard compare`` writes for files, with the latency
percentiles read from merged sketches (``settings.latency_relative_accuracy``), and, for the
source, how far the workers have got on each partition.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shadowguard.compare._compare import Result, build_report
from shadowguard.compare._errors import CompareError
from shadowguard.compare._join import Labels
from shadowguard.compare._kafka import (
    KafkaSource,
    choose_chain,
    client_config,
    clients,
    read_segments,
)
from shadowguard.compare._options import Options
from shadowguard.compare._partial import Partial
from shadowguard.compare._sketch import RELATIVE_ACCURACY
from shadowguard.compare._stream import unpaired_role

__all__ = ["kafka_report"]


def _ends(source: KafkaSource) -> dict[int, int]:
    """The end offset of each partition of the captured topic."""
    cimpl = clients()
    consumer = cimpl.Consumer(client_config(source.bootstrap, **{"group.id": "sg-ends"}))
    try:
        topic = consumer.list_topics(source.topic, timeout=10).topics.get(source.topic)
        if topic is None or topic.error is not None:
            raise CompareError(f"source {source.spec!r}: no topic {source.topic!r}")
        ends = {}
        for number in sorted(topic.partitions):
            tp = cimpl.TopicPartition(source.topic, number)
            ends[number] = consumer.get_watermark_offsets(tp, timeout=10)[1]
        return ends
    finally:
        consumer.close()


def kafka_report(source: KafkaSource, group: str, results: str, options: Options) -> Result:
    """Merge the segments of ``group`` into the report; :class:`CompareError` if none."""
    ends = _ends(source)
    found = read_segments(source.bootstrap, results, source.topic)
    chains = {p: choose_chain(found.by_partition.get((source.topic, p), [])) for p in ends}
    tails = [chain[-1] for chain in chains.values() if chain]
    if not tails:
        raise CompareError(
            f"no results of group {group!r} in topic {results!r}: start workers with "
            f"shadowguard compare {source.spec} --group {group}"
        )
    fingerprints = {repr(sorted(t.settings.items())) for t in tails}
    if len(fingerprints) > 1:
        raise CompareError(
            f"the workers of group {group!r} ran with different settings; run them again "
            "with the same options under a new --group"
        )
    settings = tails[0].settings
    names = settings["labels"]
    labels = Labels(names["baseline"], names["candidate"], names["noise"])
    examples = int(settings["examples"])
    options = replace(
        options,
        baseline=labels.baseline,
        candidate=labels.candidate,
        noise=labels.noise or "none",
        window=settings["window_seconds"],
        ignore=tuple(settings["ignore"]),
        header=tuple(settings["headers"] or ()),
        examples=examples,
    )
    merged = Partial(examples)
    partitions: dict[str, Any] = {}
    segments = 0
    for number, chain in chains.items():
        for segment in chain:
            assert segment.tallies is not None  # read_segments keeps only validated ones
            merged.merge(segment.tallies)
        segments += len(chain)
        reached = max(chain[-1].end, 0) if chain else 0
        # A broker's high watermark can trail what was read (Tansu's does, briefly).
        end = max(ends[number], reached)
        partitions[str(number)] = {"compared_to": reached, "end": end, "behind": end - reached}
        if chain:
            tail = chain[-1]
            for _, role, flags in tail.pending:
                side = unpaired_role(role, flags)
                if side is not None:
                    merged.totals.unpaired[side] += 1
            for side, ids in tail.pending_examples.items():
                held = merged.totals.unpaired_examples.setdefault(side, [])
                held += [i for i in ids if i not in held][: max(0, 5 - len(held))]
    skipped = sum(merged.skipped.values())
    read = {
        "records": merged.records,
        "skipped": skipped,
        "by_label": dict(merged.by_label.most_common()),
        "sources": [
            {
                "source": source.spec,
                "records": merged.records,
                "skipped": dict(merged.skipped.most_common()),
                "first": dict(merged.first),
                "kafka": {
                    "group": group,
                    "results": results,
                    "segments": segments,
                    "unreadable_segments": found.unreadable,
                    "partitions": partitions,
                },
            }
        ],
    }
    extra = {
        "latency_relative_accuracy": RELATIVE_ACCURACY,
        "expire_seconds": settings["expire_seconds"],
    }
    report, durations = build_report(
        labels, dict(merged.tallies), merged.pairs, merged.totals, options, read, extra
    )
    return Result(report, durations)
