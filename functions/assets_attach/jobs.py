"""Jobs: what was asked (``JobSpec``, carried by the queue message) and what happened (the DynamoDB record).

A job record is the user's view of a request: ``GET /attachments/jobs/{jobId}`` returns it. Each file
moves pending → uploading → linking → attached, or → failed with the reason. ``linking`` is written
with the media id and the time before step 3, so that a worker that died after linking can recognise
its own attachment instead of making a second one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from .errors import AttachError
from .filenames import repair_filename
from .observability import logger
from .s3_source import S3Object, pin_for, real_version

JOB_RECORD_TTL_SECONDS = 30 * 24 * 3600


class JobFile(BaseModel):
    """One S3 object pinned at acceptance, and the name and comment it gets in Assets."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    filename: str
    comment: str = ""
    size: int
    versionId: str | None = None
    etag: str | None = None

    def pin(self) -> dict[str, str]:
        return pin_for(self.versionId, self.etag)

    @classmethod
    def from_head(cls, head: S3Object, filename: str | None, comment: str) -> JobFile:
        """The file as HeadObject described it when the job was accepted. A name taken from the key or from
        metadata has nobody to refuse it to, so its control characters and path separators are replaced."""
        name = filename or head.name
        if repair_filename(name) != name:
            logger.warning("the file name had characters Assets cannot store; they were replaced with '_'")
            name = repair_filename(name)
        return cls(
            bucket=head.bucket,
            key=head.key,
            filename=name,
            comment=comment,
            size=head.size,
            versionId=real_version(head.version_id),
            etag=head.etag,
        )


class JobSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    objectId: str | None = None
    objectKey: str | None = None
    files: list[JobFile] = Field(min_length=1)
    issueKey: str | None = None
    origin: Literal["webhook", "s3"] = "webhook"


class JobMessage(BaseModel):
    """The SQS message body for a job."""

    jobId: str
    spec: JobSpec
    resumes: int = 0  # how often the job ran out of invocation time and continued in a new message


def new_job_id() -> str:
    return uuid.uuid4().hex


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; the API speaks JSON."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


PUBLIC_FILE_FIELDS = ("bucket", "key", "filename", "size", "status", "attachmentId", "error", "errorCode")


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """The job as ``GET /attachments/jobs/{jobId}`` shows it."""
    view = {
        "jobId": record["jobId"],
        "status": record["status"],
        "objectId": record.get("objectId"),
        "files": [{k: f[k] for k in PUBLIC_FILE_FIELDS if f.get(k) is not None} for f in record["files"]],
        "attempts": record.get("attempts", 0),
        "createdAt": record["createdAt"],
        "updatedAt": record["updatedAt"],
    }
    for optional in ("objectKey", "issueKey", "error", "errorCode"):
        if record.get(optional):
            view[optional] = record[optional]
    return view


@contextmanager
def _dynamodb(action: str) -> Iterator[None]:
    """DynamoDB failures become retryable AttachErrors (the webhook answers 503, the worker retries)."""
    try:
        yield
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise
        raise AttachError(f"the job store failed to {action}", step="jobs", retryable=True) from e
    except BotoCoreError as e:
        raise AttachError(f"the job store failed to {action}", step="jobs", retryable=True) from e


class JobStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    def create(self, job_id: str, spec: JobSpec) -> dict[str, Any]:
        stamp = now_iso()
        record: dict[str, Any] = {
            "jobId": job_id,
            "status": "queued",
            "origin": spec.origin,
            "files": [{**f.model_dump(exclude_none=True), "status": "pending"} for f in spec.files],
            "attempts": 0,
            "createdAt": stamp,
            "updatedAt": stamp,
            "expiresAt": int(time.time()) + JOB_RECORD_TTL_SECONDS,
        }
        for name in ("objectId", "objectKey", "issueKey"):
            if getattr(spec, name):
                record[name] = getattr(spec, name)
        with _dynamodb("create the job"):
            self._table.put_item(Item=record, ConditionExpression=Attr("jobId").not_exists())
        return record

    def create_if_absent(self, job_id: str, spec: JobSpec) -> bool:
        """Create the record unless a job with this id exists; True if it was created."""
        try:
            self.create(job_id, spec)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record_failed_drop(self, job_id: str, bucket: str, key: str, reason: str) -> None:
        """An S3 drop that could not become a job still leaves a failed job record saying why. Its file stays
        ``pending``, so a message redriven from the dead-letter queue runs the job after all."""
        stamp = now_iso()
        record = {
            "jobId": job_id,
            "status": "failed",
            "origin": "s3",
            "error": reason,
            "files": [{"bucket": bucket, "key": key, "filename": repair_filename(key.rsplit("/", 1)[-1] or key),
                       "status": "pending"}],
            "attempts": 0,
            "createdAt": stamp,
            "updatedAt": stamp,
            "expiresAt": int(time.time()) + JOB_RECORD_TTL_SECONDS,
        }  # fmt: skip
        try:
            with _dynamodb("record the failed drop"):
                self._table.put_item(Item=record, ConditionExpression=Attr("jobId").not_exists())
        except ClientError:  # an earlier receive made the job: it fails with this reason
            self.update(job_id, status="failed", error=reason)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with _dynamodb("read the job"):
            item = self._table.get_item(Key={"jobId": job_id}, ConsistentRead=True).get("Item")
        return _plain(item) if item else None

    def update(self, job_id: str, **fields: Any) -> None:
        fields["updatedAt"] = now_iso()
        names = {f"#{k}": k for k in fields}
        values = {f":{k}": v for k, v in fields.items()}
        with _dynamodb("update the job"):
            self._table.update_item(
                Key={"jobId": job_id},
                UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in fields),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def update_file(self, job_id: str, index: int, **fields: Any) -> None:
        names = {"#files": "files", "#updatedAt": "updatedAt", **{f"#{k}": k for k in fields}}
        values = {":updatedAt": now_iso(), **{f":{k}": v for k, v in fields.items()}}
        sets = [f"#files[{index}].#{k} = :{k}" for k in fields] + ["#updatedAt = :updatedAt"]
        with _dynamodb("update the job"):
            self._table.update_item(
                Key={"jobId": job_id},
                UpdateExpression="SET " + ", ".join(sets),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
