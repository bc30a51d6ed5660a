"""A job in one sentence a Jira rule can print as it is (the job view's ``summary``).

"2 of 3 attached; report.pdf: s3://exports/report.pdf was deleted after the request was accepted." Counts are of
(file, object) pairs, as the view's ``files`` lists them; a failed file names itself (and its object, where the
job has several) and says why, up to MAX_NAMED failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .sentences import as_sentence

MAX_NAMED = 3  # failed files named in a summary; the rest are counted
MAX_REASON = 200  # characters of one file's reason


class PairState(Protocol):
    @property
    def filename(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def objectId(self) -> str | None: ...
    @property
    def objectKey(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...


def summarize(status: str, files: Sequence[PairState], error: str | None = None) -> str:
    total = len(files)
    attached = sum(f.status == "attached" for f in files)
    failed = [f for f in files if f.status == "failed"]
    counted = f"{attached} of {total} attached"
    if status == "queued":
        head = f"Queued: {counted} so far"
    elif status == "running":
        head = f"Running: {counted} so far"
    else:
        head = counted
    several_objects = len({f.objectId or f.objectKey for f in files}) > 1
    reasons = [_reason(f, several_objects) for f in failed[:MAX_NAMED]]
    if len(failed) > MAX_NAMED:
        reasons.append(f"{len(failed) - MAX_NAMED} more failed")
    if status == "failed" and not failed and error:
        reasons.append(_clip(error))  # the job failed as a whole (never queued, or given up on)
    return as_sentence("; ".join([head, *reasons]))


def _reason(file: PairState, several_objects: bool) -> str:
    where = f" on object {file.objectId or file.objectKey}" if several_objects else ""
    return f"{file.filename}{where}: {_clip(file.error or 'failed')}"


def _clip(text: str) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1].rstrip() + "…"
