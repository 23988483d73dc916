"""Joining a stream: one partition's records paired as they arrive, in a bounded window.

The records of a request id all land on one partition (the capture sink keys them by request
id), so each partition joins on its own. A record waits (is *held*) until its partner comes:
a baseline record for its candidate (and its noise record, with a noise side), a candidate or
noise record for its baseline. Time is the records' own: the partition's watermark is the
latest ``started_at`` read on it, and a held record whose start is more than ``expire``
seconds behind the watermark is given up as unpaired. Everything here follows from the
records in offset order, so a partition replayed from a checkpoint (its watermark and the
offsets it held) computes the same results again.

What counts as paired and unpaired is what ``shadowguard compare`` counts over a file, with
one difference: a request id seen several times on one side (a client reusing ids) pairs
in arrival order, not nearest start first.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shadowguard.capture_format import CaptureRecord
from shadowguard.compare._diff import PairDiff
from shadowguard.compare._join import Labels
from shadowguard.compare._partial import Partial
from shadowguard.compare._routes import route_of

__all__ = ["CANDIDATE", "NOISE", "Held", "PartitionJoin", "unpaired_role"]

#: The flags of a held baseline record: which partners it has found.
CANDIDATE, NOISE = 1, 2
#: Records in a row whose start disagrees with the watermark (more than ``expire`` ahead
#: or behind) before the watermark follows them: one replica with a wrong clock cannot
#: move it, a pause in the traffic longer than ``expire`` can.
CLOCK_RUN = 8
_ROLES = ("baseline", "candidate", "noise")


@dataclass(slots=True)
class Held:
    """A record waiting for a partner: where it was read, its side, what it has found."""

    offset: int
    role: int  # index in ("baseline", "candidate", "noise")
    record: CaptureRecord
    flags: int = 0
    digest: bytes = b""


class PartitionJoin:
    """One partition's join state and the tallies of the current stretch (``partial``)."""

    def __init__(
        self,
        labels: Labels,
        window: float | None,
        expire: float,
        differ: Callable[[CaptureRecord, CaptureRecord], PairDiff],
        examples: int,
    ) -> None:
        self.labels = labels
        self.roles = {label: i for i, (_, label) in enumerate(labels.roles())}
        self.complete = CANDIDATE | (NOISE if labels.noise is not None else 0)
        self.window = window
        self.expire = expire
        self.differ = differ
        self.examples = examples
        self.waiting: dict[str, list[Held]] = {}
        self.held = 0
        self.watermark = -math.inf
        #: Records in a row that disagreed with the watermark, and the latest start among them.
        self.streak = 0
        self.streak_max = 0.0
        self._heap: list[tuple[float, int, str]] = []
        self.partial = Partial(examples)

    # -- reading ---------------------------------------------------------------------------

    def add(self, offset: int, record: CaptureRecord, digest: bytes = b"") -> None:
        """Tally ``record`` (read at ``offset``; ``digest`` of its stored form) and pair it
        or hold it."""
        partial = self.partial
        partial.records += 1
        label = record["label"]
        partial.by_label[label] += 1
        partial.tally(route_of(record), label).add(record)
        role = self.roles.get(label)
        if role is not None:
            if record["request_id_generated"]:
                name = _ROLES[role]
                partial.totals.generated[name] += 1
                partial.totals.unpaired[name] += 1
            else:
                self._join(Held(offset, role, record, 0, digest))
        self._clock(record["started_at"])

    def restore(self, offset: int, record: CaptureRecord, flags: int, digest: bytes = b"") -> None:
        """Hold again a record a checkpoint held (already tallied): no count changes."""
        role = self.roles.get(record["label"])
        if role is None or record["request_id_generated"]:
            raise ValueError(f"offset {offset} was held but is not a record of a side")
        self._hold(Held(offset, role, record, flags, digest))

    def held_digest(self) -> str:
        """One digest of every held record's stored form, by offset."""
        digest = hashlib.blake2b(digest_size=16)
        for held in self.held_records():
            digest.update(held.offset.to_bytes(8, "big", signed=True) + held.digest)
        return digest.hexdigest()

    def _within(self, a: CaptureRecord, b: CaptureRecord) -> bool:
        return self.window is None or abs(a["started_at"] - b["started_at"]) <= self.window

    def _join(self, new: Held) -> None:
        request_id = new.record["request_id"]
        entries = self.waiting.get(request_id)
        if entries is None:
            self._hold(new)
            return
        if new.role == 0:
            for role, flag in ((1, CANDIDATE), (2, NOISE)):
                partner = self._first(entries, role, 0, new.record)
                if partner is not None:
                    self._release(request_id, partner)
                    self._pair(new.record, partner.record, noise=role == 2)
                    new.flags |= flag
            if new.flags != self.complete:
                self._hold(new)
            return
        flag = CANDIDATE if new.role == 1 else NOISE
        base = self._first(entries, 0, flag, new.record)
        if base is None:
            self._hold(new)
            return
        base.flags |= flag
        self._pair(base.record, new.record, noise=new.role == 2)
        if base.flags == self.complete:
            self._release(request_id, base)

    def _first(
        self, entries: list[Held], role: int, without: int, record: CaptureRecord
    ) -> Held | None:
        """The first held record of ``role`` without the ``without`` flag, within the window."""
        for held in entries:
            if held.role == role and not held.flags & without and self._within(held.record, record):
                return held
        return None

    def _pair(self, baseline: CaptureRecord, other: CaptureRecord, noise: bool) -> None:
        partial = self.partial
        tally = partial.pair_tally(route_of(baseline))
        diff = self.differ(baseline, other)
        if noise:
            partial.totals.noise_pairs += 1
            tally.add_noise_pair(baseline, diff)
        else:
            partial.totals.pairs += 1
            tally.add_pair(baseline, other, diff)

    # -- holding and expiring ---------------------------------------------------------------

    def _hold(self, held: Held) -> None:
        request_id = held.record["request_id"]
        self.waiting.setdefault(request_id, []).append(held)
        self.held += 1
        heapq.heappush(self._heap, (held.record["started_at"], held.offset, request_id))

    def _release(self, request_id: str, held: Held) -> None:
        entries = self.waiting[request_id]
        entries.remove(held)
        if not entries:
            del self.waiting[request_id]
        self.held -= 1

    def _clock(self, started_at: float) -> None:
        """Move the watermark with ``started_at``, unless it disagrees (see :data:`CLOCK_RUN`)."""
        watermark = self.watermark
        if watermark == -math.inf or abs(started_at - watermark) <= self.expire:
            self.streak = 0
            if started_at > watermark:
                self._advance(started_at)
            return
        self.streak += 1
        self.streak_max = started_at if self.streak == 1 else max(self.streak_max, started_at)
        if self.streak >= CLOCK_RUN:
            self.streak = 0
            self._advance(self.streak_max)

    def _advance(self, watermark: float) -> None:
        self.watermark = watermark
        horizon = watermark - self.expire
        heap = self._heap
        if len(heap) > 2 * self.held + 1024:  # entries of records paired since: drop them
            heap[:] = [
                (h.record["started_at"], h.offset, h.record["request_id"])
                for h in self.held_records()
            ]
            heapq.heapify(heap)
        while heap and heap[0][0] < horizon:
            _, offset, request_id = heapq.heappop(heap)
            for held in self.waiting.get(request_id, ()):
                if held.offset == offset:
                    self._release(request_id, held)
                    self._give_up(held)
                    break

    def _give_up(self, held: Held) -> None:
        """Count a held record that will find no (more) partner."""
        role = unpaired_role(held.role, held.flags)
        if role is not None:
            self.partial.unpaired(role, held.record["request_id"])

    def held_records(self) -> Iterator[Held]:
        """Every held record, by offset."""
        everything = [h for entries in self.waiting.values() for h in entries]
        return iter(sorted(everything, key=lambda h: h.offset))

    def take_partial(self) -> Partial:
        """The tallies of the stretch so far; a fresh one starts."""
        partial, self.partial = self.partial, Partial(self.examples)
        return partial


def unpaired_role(role: int, flags: int) -> str | None:
    """The side a held record counts as unpaired on when the stream ends (None: it is not)."""
    if role == 0 and flags & CANDIDATE:
        return None
    return _ROLES[role]
