"""Joining: which records answer the same request, on the baseline, candidate and noise sides.

Records are indexed by label and request id as they are read. Once every source is read the
labels are chosen (:func:`resolve_labels`), then each baseline record is paired with the
candidate record of the same request id (and, separately, with the noise record) whose start
is nearest to its own, within the window. A request id seen several times on a side (a
client reusing ids) pairs nearest-first; whatever finds no partner is unpaired, counted per
side. A record whose request id the middleware generated never pairs: the mirror copy
cannot carry the same made-up id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from shadowguard.capture_format import CaptureRecord
from shadowguard.compare._errors import CompareError

__all__ = ["ROLES", "Index", "Joined", "Labels", "join", "resolve_labels"]

ROLES = ("baseline", "candidate", "noise")
EXAMPLES = 5
Pair = tuple[CaptureRecord, CaptureRecord]


@dataclass(frozen=True)
class Labels:
    """The label of each side; ``noise`` is None when there is no noise side."""

    baseline: str
    candidate: str
    noise: str | None

    def roles(self) -> Iterator[tuple[str, str]]:
        """``(role, label)`` for every side present."""
        yield "baseline", self.baseline
        yield "candidate", self.candidate
        if self.noise is not None:
            yield "noise", self.noise


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{label} {n}" for label, n in counts.most_common()) or "none"


def resolve_labels(
    counts: Counter[str],
    baseline: str | None = None,
    candidate: str | None = None,
    noise: str | None = None,
) -> Labels:
    """Choose the labels: given ones as they are, else the defaults from what was read.

    Defaults: baseline ``primary``; candidate ``candidate`` when present, else ``shadow``;
    noise ``secondary`` when present (``noise="none"`` turns the noise side off). A chosen
    side without any record is a :class:`CompareError`.
    """
    base = baseline or "primary"
    cand = candidate or ("candidate" if counts["candidate"] else "shadow")
    if noise is None:
        chosen: str | None = "secondary" if counts["secondary"] else None
    else:
        chosen = None if noise.lower() in ("", "none") else noise
    labels = Labels(base, cand, chosen)
    seen: dict[str, str] = {}
    for role, label in labels.roles():
        if label in seen:
            raise CompareError(
                f"--{role} and --{seen[label]} are both {label!r}: the sides must differ"
            )
        seen[label] = role
        if not counts[label]:
            raise CompareError(
                f"no record labelled {label!r} for the {role} side (records by label: "
                f"{_counts(counts)}); choose the label with --{role}"
            )
    return labels


@dataclass
class Index:
    """Records by label and request id, as read; generated ids counted, not indexed."""

    by_label: dict[str, dict[str, CaptureRecord | list[CaptureRecord]]] = field(
        default_factory=dict
    )
    labels: Counter[str] = field(default_factory=Counter)
    generated: Counter[str] = field(default_factory=Counter)

    def add(self, record: CaptureRecord) -> None:
        label = record["label"]
        self.labels[label] += 1
        if record["request_id_generated"]:
            self.generated[label] += 1
            return
        ids = self.by_label.setdefault(label, {})
        held = ids.get(record["request_id"])
        if held is None:
            ids[record["request_id"]] = record
        elif isinstance(held, list):
            held.append(record)
        else:
            ids[record["request_id"]] = [held, record]


@dataclass
class Joined:
    """Pairs (baseline, candidate) and noise pairs (baseline, noise); the rest, per side."""

    labels: Labels
    pairs: list[Pair] = field(default_factory=list)
    noise_pairs: list[Pair] = field(default_factory=list)
    unpaired: Counter[str] = field(default_factory=Counter)
    generated: Counter[str] = field(default_factory=Counter)
    unpaired_examples: dict[str, list[str]] = field(default_factory=dict)

    def _left(self, role: str, records: list[CaptureRecord]) -> None:
        if not records:
            return
        self.unpaired[role] += len(records)
        examples = self.unpaired_examples.setdefault(role, [])
        if len(examples) < EXAMPLES:
            examples.append(records[0]["request_id"])


def _as_list(held: CaptureRecord | list[CaptureRecord] | None) -> list[CaptureRecord]:
    if held is None:
        return []
    return held if isinstance(held, list) else [held]


def _match(
    left: list[CaptureRecord], right: list[CaptureRecord], window: float | None
) -> tuple[list[Pair], list[CaptureRecord], list[CaptureRecord]]:
    """Pair nearest start first, within ``window`` seconds; return the pairs and the rest."""
    if len(left) == 1 and len(right) == 1:
        a, b = left[0], right[0]
        if window is None or abs(a["started_at"] - b["started_at"]) <= window:
            return [(a, b)], [], []
        return [], left, right
    free = sorted(right, key=lambda r: r["started_at"])
    pairs: list[Pair] = []
    rest: list[CaptureRecord] = []
    for a in sorted(left, key=lambda r: r["started_at"]):
        gaps = [abs(b["started_at"] - a["started_at"]) for b in free]
        best = min(range(len(free)), key=gaps.__getitem__, default=None)
        if best is not None and (window is None or gaps[best] <= window):
            pairs.append((a, free.pop(best)))
        else:
            rest.append(a)
    return pairs, rest, free


def join(index: Index, labels: Labels, window: float | None) -> Joined:
    """Pair the records of ``index`` (emptied on the way) for ``labels``."""
    joined = Joined(labels)
    for role, label in labels.roles():
        joined.generated[role] = index.generated[label]
        joined.unpaired[role] = index.generated[label]
    base = index.by_label.pop(labels.baseline, {})
    cand = index.by_label.pop(labels.candidate, {})
    noise = index.by_label.pop(labels.noise, {}) if labels.noise is not None else {}
    for request_id, held in base.items():
        records = _as_list(held)
        pairs, alone, extra = _match(records, _as_list(cand.pop(request_id, None)), window)
        joined.pairs += pairs
        joined._left("baseline", alone)
        joined._left("candidate", extra)
        if labels.noise is not None:
            pairs, _, extra = _match(records, _as_list(noise.pop(request_id, None)), window)
            joined.noise_pairs += pairs
            joined._left("noise", extra)
    for held in cand.values():
        joined._left("candidate", _as_list(held))
    for held in noise.values():
        joined._left("noise", _as_list(held))
    return joined
