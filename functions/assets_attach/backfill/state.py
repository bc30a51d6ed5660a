"""The state file next to the manifest (``MANIFEST.state.jsonl``): one JSON line per event, appended and fsync'd.

- ``{"sent": jobId, "rows": [[line, source, target], …]}`` once the webhook accepted a group (before the next);
- ``{"done": jobId, "status", "rows": [[line, source, target, status, attachmentId, error, size], …]}`` once the
  job finished;
- ``{"refused": [[line, source, target], …], "error": "…"}`` rows the webhook refused (sent again on a re-run).

A row has a job when a ``sent`` line names it; a re-run sends only rows without one. A line cut short by a kill
is ignored and cut off before the next append. No token or credential is ever written here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .manifest import Fingerprints, fingerprint

SentRow = list[Any]  # [line, source, target]
DoneRow = list[Any]  # [line, source, target, status, attachmentId, error, size]


def state_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + ".state.jsonl")


@dataclass
class State:
    """What the state file says, in memory: 8 bytes per row with a job, and the unfinished jobs' rows."""

    jobbed: Fingerprints = field(default_factory=Fingerprints)
    unfinished: dict[str, list[SentRow]] = field(default_factory=dict)  # jobId → its rows, oldest first
    refused: dict[int, str] = field(default_factory=dict)  # fingerprint → the webhook's reason
    rows_sent: int = 0
    attached: int = 0
    failed: int = 0
    bytes_attached: int = 0

    def record_done(self, rows: list[DoneRow]) -> None:
        for row in rows:
            if row[3] == "attached":
                self.attached += 1
                self.bytes_attached += int(row[6] or 0)
            else:
                self.failed += 1


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._repaired = False

    def records(self) -> Iterator[dict[str, Any]]:
        """Every whole record, in order."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for text in handle:
                if not text.endswith("\n"):
                    return  # cut short by a kill
                record = json.loads(text)
                if isinstance(record, dict):
                    yield record

    def load(self) -> State:
        state = State()
        for record in self.records():
            if "sent" in record:
                state.unfinished[record["sent"]] = record["rows"]
                state.rows_sent += len(record["rows"])
                for _, source, target in record["rows"]:
                    state.jobbed.add(fingerprint(source, target))
                    state.refused.pop(fingerprint(source, target), None)
            elif "done" in record:
                if state.unfinished.pop(record["done"], None) is not None:
                    state.record_done(record["rows"])
            elif "refused" in record:
                for _, source, target in record["refused"]:
                    state.refused[fingerprint(source, target)] = str(record.get("error", ""))
        state.jobbed.seal()
        return state

    def append(self, record: dict[str, Any]) -> None:
        """One line, on disk before this returns."""
        self._repair()
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def _repair(self) -> None:
        """Cut off a last line that a kill left without its newline."""
        if self._repaired or not self.path.exists():
            self._repaired = True
            return
        with self.path.open("rb+") as handle:
            data_end = handle.seek(0, os.SEEK_END)
            keep = data_end
            while keep > 0:
                handle.seek(keep - 1)
                if handle.read(1) == b"\n":
                    break
                keep -= 1
            if keep != data_end:
                handle.truncate(keep)
        self._repaired = True
