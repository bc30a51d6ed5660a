"""Sending a manifest to the stack: groups POSTed at a bounded pace, each recorded before the next, then followed.

Pace: at most ``rate`` POSTs a second, and at most ``in_flight`` jobs queued or running at once, so the stack's
workers (``WorkerMaxConcurrency``) set the pace and the queue never holds a backlog that ages. The API client
backs off on 429/503 itself. A group the webhook refuses (400/403/404/413) is sent again without the row its
error names; the refused rows are recorded and tried again on the next run. Nothing here prints: ``progress``.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..api_document import JobAccepted
from ..job_record import FINAL_JOB_STATES
from ..stack_api import RemoteJob, StackApiError
from .grouping import Group, group_rows
from .manifest import BadRow, Row, checked_rows
from .progress import Progress
from .state import DoneRow, SentRow, State, StateFile

DEFAULT_RATE = 2.0  # jobs a second: far above what the workers attach, far below the API's 25 requests/s
DEFAULT_IN_FLIGHT = 10  # jobs queued or running at once
POLL_SECONDS = 2.0
POLL_BATCH = 5  # unfinished jobs asked about per round
REPORT_COLUMNS = ("line", "source", "object", "jobId", "status", "attachmentId", "error")


class JobsApi(Protocol):
    def post_job(self, body: dict[str, object]) -> JobAccepted: ...

    def get_job(self, job_id: str) -> RemoteJob: ...


@dataclass(frozen=True)
class Pace:
    rate: float = DEFAULT_RATE
    in_flight: int = DEFAULT_IN_FLIGHT
    poll_seconds: float = POLL_SECONDS


def sent_row(row: Row) -> SentRow:
    return [row.line, row.source, row.target]


class Backfill:
    def __init__(
        self,
        manifest: Path,
        repeated: set[int],
        api: JobsApi,
        state_file: StateFile,
        progress: Progress,
        pace: Pace = Pace(),
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._manifest = manifest
        self._repeated = repeated
        self._api = api
        self._file = state_file
        self.state: State = state_file.load()
        self._progress = progress
        self._pace = pace
        self._clock = clock
        self._sleep = sleep
        self._last_post = float("-inf")
        self.posts = 0

    def rows(self) -> Iterator[Row]:
        return (item for item in checked_rows(self._manifest, self._repeated) if isinstance(item, Row))

    def run(self) -> None:
        """Send every row without a job, then follow every job to its end."""
        for group in group_rows(self.rows()):
            todo = tuple(r for r in group.rows if r.fingerprint not in self.state.jobbed)
            if todo:
                self._send(Group(todo))
        while self.state.unfinished:
            if not self._follow():
                self._sleep(self._pace.poll_seconds)
        self._progress.end(self.state)

    def _send(self, group: Group) -> None:
        while self.state.unfinished and len(self.state.unfinished) >= self._pace.in_flight:
            if not self._follow():
                self._sleep(self._pace.poll_seconds)
        self._sleep(max(0.0, self._last_post + 1 / self._pace.rate - self._clock()))
        self._last_post = self._clock()
        self.posts += 1
        try:
            accepted = self._api.post_job(group.body())
        except StackApiError as e:
            # The stack is unwell, the token wrong, or API Gateway itself refused (no webhook error body, e.g. a
            # source address outside AllowedSourceCidrs): stop, and resume later. Else the webhook refused rows.
            if e.retryable or e.status == 401 or e.api_code is None:
                raise
            self._refused(group, e)
            return
        rows = [sent_row(r) for r in group.rows]
        self._file.append({"sent": accepted.jobId, "rows": rows})
        self.state.unfinished.setdefault(accepted.jobId, rows)
        self.state.rows_sent += len(rows)
        self._progress.show(self.state)

    def _refused(self, group: Group, error: StackApiError) -> None:
        """Record the row the error names (else the whole group) and send the rest again."""
        named = group.row_named_by(error.field)
        refused = [named] if named is not None else list(group.rows)
        reason = error.message
        self._file.append({"refused": [sent_row(r) for r in refused], "error": reason})
        for row in refused:
            self.state.refused[row.fingerprint] = reason
            self._progress.note(f"line {row.line}: refused: {reason}")
        rest = tuple(r for r in group.rows if r not in refused)
        if rest:
            self._send(Group(rest))

    def _follow(self) -> bool:
        """Ask about the oldest unfinished jobs; True when one finished."""
        finished = False
        for job_id in list(self.state.unfinished)[:POLL_BATCH]:
            job = self._api.get_job(job_id)
            if job.status in FINAL_JOB_STATES:
                rows = outcome_rows(self.state.unfinished.pop(job_id), job)
                self._file.append({"done": job_id, "status": job.status, "rows": rows})
                self.state.record_done(rows)
                finished = True
        self._progress.show(self.state)
        return finished


def outcome_rows(rows: list[SentRow], job: RemoteJob) -> list[DoneRow]:
    """Each row of a finished job with its file's outcome (one object per job: the source names the file)."""
    files = {(f"jira:{f.jiraAttachmentId}" if f.jiraAttachmentId else f"s3://{f.bucket}/{f.key}"): f for f in job.files}
    out: list[DoneRow] = []
    for line, source, target in rows:
        file = files.get(source)
        if file is not None and file.status == "attached":
            out.append([line, source, target, "attached", file.attachmentId, None, file.size])
        else:
            error = (file.error if file is not None else None) or job.error or "the job did not attach this file"
            out.append([line, source, target, "failed", None, error, None])
    return out


ReportRow = tuple[int, str, str, str, str, str, str]  # REPORT_COLUMNS


def report_rows(manifest: Path, repeated: set[int], state_file: StateFile) -> Iterator[ReportRow]:
    """Every row once: the finished jobs' rows with their outcome, the unfinished jobs' rows as pending, then the
    rows without a job. Memory: the state's (8 bytes a row, the unfinished jobs), whatever the manifest's size."""
    state = state_file.load()
    for record in state_file.records():
        if "done" in record:
            for line, source, target, status, attachment_id, error, _ in record["rows"]:
                yield line, source, target.partition(":")[2], record["done"], status, attachment_id or "", error or ""
    for job_id, rows in state.unfinished.items():
        for line, source, target in rows:
            yield line, source, target.partition(":")[2], job_id, "pending", "", ""
    for item in checked_rows(manifest, repeated):
        if isinstance(item, BadRow):
            yield item.line, "", "", "", item.kind, "", item.reason
        elif item.fingerprint not in state.jobbed:
            refused = state.refused.get(item.fingerprint)
            status = "refused" if refused is not None else "unsent"
            yield item.line, item.source, item.target.partition(":")[2], "", status, "", refused or ""


def write_report(rows: Iterator[ReportRow], path: Path | None) -> tuple[int, int]:
    """Write the CSV (when ``path``); (rows, rows attached)."""
    total = attached = 0
    with path.open("w", encoding="utf-8", newline="") if path else _Discard() as handle:
        out = csv.writer(handle)
        out.writerow(REPORT_COLUMNS)
        for row in rows:
            out.writerow(row)
            total += 1
            attached += row[4] == "attached"
    return total, attached


class _Discard(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)
