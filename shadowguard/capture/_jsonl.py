"""The JSON lines sink: one file per process and label in a directory, ``<label>-<pid>.jsonl``.

Only this process's writer thread writes its files, so lines never interleave; each
batch is written with one ``write`` and flushed. A file that ends in a partial line (a
process killed while writing, then a new one with the same pid, as in a container) gets
a line break first, so the partial line stays one corrupt line instead of spoiling the
next record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import BinaryIO

from shadowguard.capture._sinks import Encoded

__all__ = ["JsonlSink", "file_name"]


def file_name(label: str, pid: int) -> str:
    """The file of ``label``'s records written by process ``pid``."""
    return f"{label}-{pid}.jsonl"


class JsonlSink:
    """Append records, one compact JSON object per line."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._files: dict[str, BinaryIO] = {}
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"<shadowguard.capture.JsonlSink {self.directory!r}>"

    def _file(self, label: str) -> BinaryIO:
        found = self._files.get(label)
        if found is None:
            os.makedirs(self.directory, exist_ok=True)
            path = os.path.join(self.directory, file_name(label, self._pid))
            found = open(path, "ab")  # noqa: SIM115 - kept open until close()
            if found.tell() > 0:
                with open(path, "rb") as existing:
                    existing.seek(-1, os.SEEK_END)
                    if existing.read(1) != b"\n":
                        found.write(b"\n")
            self._files[label] = found
        return found

    def write(self, batch: Sequence[Encoded]) -> None:
        """Append ``batch``, each label's lines with one write, then flush."""
        lines: dict[str, list[bytes]] = {}
        for encoded in batch:
            line = encoded.text.encode("utf-8") + b"\n"
            lines.setdefault(encoded.record["label"], []).append(line)
        for label, chunk in lines.items():
            file = self._file(label)
            file.write(b"".join(chunk))
            file.flush()

    def close(self) -> None:
        files, self._files = self._files, {}
        for file in files.values():
            file.close()
