"""The job store: job records in DynamoDB, the only place that reads or writes them.

DynamoDB failures become retryable AttachErrors (the webhook answers 503, the worker retries); a job that
exists already is a ``JobExistsError``. Records come back as typed ``JobRecord``s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AttachError
from ..filenames import repair_filename
from ..jobs import FINAL_JOB_STATES, FileStatus, JobRecord, JobSpec, JobStatus, now_iso, queued_record

JOB_RECORD_TTL_SECONDS = 30 * 24 * 3600


class JobExistsError(AttachError):
    """A job with this id is stored already."""

    code = "job_exists"


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; the records speak JSON."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@contextmanager
def _dynamodb(action: str) -> Iterator[None]:
    try:
        yield
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise JobExistsError("a job with this id exists already", step="jobs") from e
        raise AttachError(f"the job store failed to {action}", step="jobs", retryable=True) from e
    except BotoCoreError as e:
        raise AttachError(f"the job store failed to {action}", step="jobs", retryable=True) from e


def _expires_at() -> int:
    return int(time.time()) + JOB_RECORD_TTL_SECONDS


class JobStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    def create(self, job_id: str, spec: JobSpec) -> None:
        """Store a new queued job, one ``files`` entry per (file, object) pair; JobExistsError if the id is taken."""
        record = {**queued_record(job_id, spec), "expiresAt": _expires_at()}
        with _dynamodb("create the job"):
            self._table.put_item(Item=record, ConditionExpression=Attr("jobId").not_exists())

    def create_if_absent(self, job_id: str, spec: JobSpec) -> bool:
        """Create the record unless a job with this id exists; True if it was created."""
        try:
            self.create(job_id, spec)
        except JobExistsError:
            return False
        return True

    def replace_failed_drop(self, job_id: str, spec: JobSpec) -> None:
        """Replace the record a failed S3 drop left (one entry, written before the drop's objects were known) with
        the job's own, now that the drop (redriven from the dead-letter queue) became one; a record that any
        attempt has touched is kept (JobExistsError)."""
        record = {**queued_record(job_id, spec), "expiresAt": _expires_at()}
        with _dynamodb("start the redriven drop's job"):
            self._table.put_item(Item=record, ConditionExpression=Attr("attempts").eq(0) & Attr("origin").eq("s3"))

    def record_failed_drop(self, job_id: str, bucket: str, key: str, reason: str) -> None:
        """An S3 drop that could not become a job still leaves a failed job record saying why. Its file stays
        ``pending``, so a message redriven from the dead-letter queue runs the job after all."""
        stamp = now_iso()
        name = repair_filename(key.rsplit("/", 1)[-1] or key)
        record = {
            "jobId": job_id,
            "status": "failed",
            "origin": "s3",
            "error": reason,
            "files": [{"bucket": bucket, "key": key, "filename": name, "status": "pending"}],
            "attempts": 0,
            "createdAt": stamp,
            "updatedAt": stamp,
            "expiresAt": _expires_at(),
        }
        try:
            with _dynamodb("record the failed drop"):
                self._table.put_item(Item=record, ConditionExpression=Attr("jobId").not_exists())
        except JobExistsError:  # an earlier receive made the job: it fails with this reason
            self.update(job_id, status="failed", error=reason)

    def get(self, job_id: str) -> JobRecord | None:
        with _dynamodb("read the job"):
            item = self._table.get_item(Key={"jobId": job_id}, ConsistentRead=True).get("Item")
        return JobRecord.model_validate(_plain(item)) if item else None

    def wait_until_done(self, job_id: str, seconds: float) -> JobRecord | None:
        """The job once it has succeeded or failed, or None if it has not within ``seconds`` (read a few times a
        second at first, then once a second)."""
        deadline = time.monotonic() + seconds
        pause = 0.2
        while True:
            record = self.get(job_id)
            if record is not None and record.status in FINAL_JOB_STATES:
                return record
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 1.0)

    def retry_failed(self, record: JobRecord) -> int:
        """Make a failed job's failed pairs pending again (its attached ones stay), the job queued; the number of
        this re-run. JobExistsError where the job is no longer failed as ``record`` saw it (a retry under way)."""
        again = [i for i, f in enumerate(record.files) if f.status == "failed"]
        sets = [f"#files[{i}].#status = :pending" for i in again] + ["#status = :queued", "#updatedAt = :now"]
        sets.append("#retries = if_not_exists(#retries, :zero) + :one")
        removes = [f"#files[{i}].#{name}" for i in again for name in ("error", "errorCode")] + ["#error"]
        with _dynamodb("queue the job again"):
            reply = self._table.update_item(
                Key={"jobId": record.jobId},
                UpdateExpression=f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
                ConditionExpression="#status = :failed AND #updatedAt = :seen",
                ExpressionAttributeNames={
                    "#status": "status",
                    "#updatedAt": "updatedAt",
                    "#retries": "retries",
                    "#error": "error",
                    **({"#files": "files", "#errorCode": "errorCode"} if again else {}),
                },
                ExpressionAttributeValues={
                    ":pending": "pending",
                    ":queued": "queued",
                    ":failed": "failed",
                    ":now": now_iso(),
                    ":seen": record.updatedAt,
                    ":zero": 0,
                    ":one": 1,
                },
                ReturnValues="UPDATED_NEW",
            )
        return int(reply["Attributes"]["retries"])

    def update(self, job_id: str, *, status: JobStatus | None = None, **fields: Any) -> None:
        """Set the job's status and/or top-level fields (a None value stores an explicit null)."""
        if status is not None:
            fields["status"] = status
        fields["updatedAt"] = now_iso()
        with _dynamodb("update the job"):
            self._table.update_item(
                Key={"jobId": job_id},
                UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in fields),
                ExpressionAttributeNames={f"#{k}": k for k in fields},
                ExpressionAttributeValues={f":{k}": v for k, v in fields.items()},
            )

    def update_file(self, job_id: str, index: int, *, status: FileStatus | None = None, **fields: Any) -> None:
        """Set one file's status and/or fields."""
        if status is not None:
            fields["status"] = status
        sets = [f"#files[{index}].#{k} = :{k}" for k in fields] + ["#updatedAt = :updatedAt"]
        with _dynamodb("update the job"):
            self._table.update_item(
                Key={"jobId": job_id},
                UpdateExpression="SET " + ", ".join(sets),
                ExpressionAttributeNames={"#files": "files", "#updatedAt": "updatedAt", **{f"#{k}": k for k in fields}},
                ExpressionAttributeValues={":updatedAt": now_iso(), **{f":{k}": v for k, v in fields.items()}},
            )
