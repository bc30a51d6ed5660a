"""Rows into webhook requests: up to 20 files for one object per job, as a pure function of the manifest.

Grouping depends on the manifest alone (never on what was sent before), so a run killed after a POST was
accepted and before the state file recorded it sends the very same request again on the next run, and the
webhook's idempotency answers with the same job. Rows for one object are gathered while at most
``WINDOW_ROWS`` rows wait; beyond that the oldest group goes as it is (a manifest sorted by object groups best).
A Jira row with its own filename or comment is a job of its own: the webhook takes one name and comment for
its Jira attachments.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..attach_request import MAX_FILES, AttachRequestBody, S3File
from .manifest import Row

WINDOW_ROWS = 1000


@dataclass(frozen=True)
class Group:
    rows: tuple[Row, ...]

    @property
    def s3_rows(self) -> list[Row]:
        return [r for r in self.rows if r.jira_id is None]

    @property
    def jira_rows(self) -> list[Row]:
        return [r for r in self.rows if r.jira_id is not None]

    def body(self) -> dict[str, Any]:
        """The ``POST /attachments`` body, built and checked with the webhook's own model."""
        first = self.rows[0]
        fields: dict[str, Any] = (
            {"objectId": first.object_id} if first.object_id is not None else {"objectKey": first.object_key}
        )
        if self.s3_rows:
            fields["files"] = [S3File(s3Uri=r.source, filename=r.filename, comment=r.comment or None)
                               for r in self.s3_rows]  # fmt: skip
        if self.jira_rows:
            fields["jiraAttachments"] = [r.jira_id for r in self.jira_rows]
            if len(self.rows) == 1:  # a Jira row alone carries its own name and comment
                fields.update(filename=first.filename, comment=first.comment or None)
        return AttachRequestBody.model_validate(fields).model_dump(exclude_none=True)

    def row_named_by(self, field: str | None) -> Row | None:
        """The row an error's ``field`` names (``files[3].key``, ``jiraAttachments[0]``), if one."""
        for name, rows in (("files[", self.s3_rows), ("jiraAttachments[", self.jira_rows)):
            if field and field.startswith(name):
                index = field[len(name) :].split("]", 1)[0]
                if index.isdigit() and int(index) < len(rows):
                    return rows[int(index)]
        if field and field.startswith("jiraAttachments") and len(self.jira_rows) == 1:
            return self.jira_rows[0]
        return None


def group_rows(rows: Iterable[Row], max_files: int = MAX_FILES, window: int = WINDOW_ROWS) -> Iterator[Group]:
    waiting: dict[str, list[Row]] = {}  # by object, oldest first
    held = 0
    for row in rows:
        if row.jira_id is not None and (row.filename or row.comment):
            yield Group((row,))
            continue
        gathered = waiting.setdefault(row.target, [])
        gathered.append(row)
        held += 1
        if len(gathered) == max_files:
            del waiting[row.target]
            held -= len(gathered)
            yield Group(tuple(gathered))
        elif held > window:
            oldest = waiting.pop(next(iter(waiting)))
            held -= len(oldest)
            yield Group(tuple(oldest))
    for gathered in waiting.values():
        yield Group(tuple(gathered))
