"""The job store: job records in DynamoDB, the only place that reads or writes them.

DynamoDB failures become retryable AttachErrors (the webhook answers 503, the worker retries); a job that
exists already is a ``JobExistsError``. Records come back as typed ``JobRecord``s and change through typed
``JobChange``s and ``FileChange``s (job_record). A new job is written in one transaction with its index items, and
listed through the table's two indexes (see job_listing).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ..errors import AttachError
from ..filenames import repair_filename
from ..job_listing import REF_INDEX, STATUS_INDEX, JobQuery, index_item, job_refs, position_of
from ..job_record import FINAL_JOB_STATES, FileChange, JobChange, JobRecord, now_iso, queued_record
from ..jobs import JobSpec
from .aws_calls import aws_call, error_code, is_condition_failure

JOB_RECORD_TTL_SECONDS = 30 * 24 * 3600
MAX_EXAMINED = 300  # index entries one filtered listing reads at most before it hands out a cursor
BATCH_GET_KEYS = 100  # DynamoDB's BatchGetItem limit

# The jobs table's indexes, as template.yaml declares them (a unit test compares) and the local stack creates them.
JOBS_TABLE_ATTRIBUTES: list[dict[str, Any]] = [
    {"AttributeName": name, "AttributeType": "S"} for name in ("jobId", "ref", "status", "createdAt")
]
JOBS_TABLE_INDEXES: list[dict[str, Any]] = [
    {
        "IndexName": REF_INDEX,
        "KeySchema": [{"AttributeName": "ref", "KeyType": "HASH"}, {"AttributeName": "createdAt", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["job"]},
    },
    {
        "IndexName": STATUS_INDEX,
        "KeySchema": [
            {"AttributeName": "status", "KeyType": "HASH"},
            {"AttributeName": "createdAt", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    },
]


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


def _dynamodb(action: str) -> AbstractContextManager[None]:
    return aws_call(f"the job store failed to {action}", "jobs", refusal=_job_exists)


def _job_exists(error: ClientError) -> JobExistsError | None:
    """A conditional put of a job record failed: on its own, or as the first item of a transaction."""
    code = error_code(error)
    reasons = error.response.get("CancellationReasons") or [{}]
    if is_condition_failure(error) or (
        code == "TransactionCanceledException" and str(reasons[0].get("Code")) == "ConditionalCheckFailed"
    ):
        return JobExistsError("a job with this id exists already", step="jobs")
    return None


def _expires_at() -> int:
    return int(time.time()) + JOB_RECORD_TTL_SECONDS


class JobStore:
    def __init__(self, table: Any) -> None:
        self._table = table

    def create(self, job_id: str, spec: JobSpec) -> None:
        """Store a new queued job, one ``files`` entry per (file, object) pair; JobExistsError if the id is taken."""
        self._create({**queued_record(job_id, spec), "expiresAt": _expires_at()}, "create the job")

    def _create(self, record: dict[str, Any], action: str) -> None:
        """The record and its index items, all or none (JobExistsError if the id is taken)."""
        refs = job_refs(JobRecord.model_validate(record))
        items = [index_item(record["jobId"], record["createdAt"], ref, record["expiresAt"]) for ref in refs]
        with _dynamodb(action):
            self._table.meta.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": record,
                            "ConditionExpression": "attribute_not_exists(jobId)",
                        }
                    },
                    *({"Put": {"TableName": self._table.name, "Item": item}} for item in items),
                ]
            )

    def add_refs(self, record: JobRecord, refs: list[str]) -> None:
        """Make a stored job found by more refs (the objects a job named by key, once resolved)."""
        expires_at = int(time.time()) + JOB_RECORD_TTL_SECONDS
        with _dynamodb("index the job"):
            for ref in refs:
                self._table.put_item(Item=index_item(record.jobId, record.createdAt, ref, expires_at))

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
            self._table.put_item(
                Item=record,
                ConditionExpression="attempts = :zero AND origin = :s3",
                ExpressionAttributeValues={":zero": 0, ":s3": "s3"},
            )
        stored = JobRecord.model_validate(record)
        self.add_refs(stored, job_refs(stored))  # the objects it names now, found as any job's

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
            self._create(record, "record the failed drop")
        except JobExistsError:  # an earlier receive made the job: it fails with this reason
            self.update(job_id, JobChange(status="failed", error=reason))

    def get(self, job_id: str) -> JobRecord | None:
        with _dynamodb("read the job"):
            item = self._table.get_item(Key={"jobId": job_id}, ConsistentRead=True).get("Item")
        return JobRecord.model_validate(_plain(item)) if item else None

    def find(self, query: JobQuery) -> tuple[list[JobRecord], dict[str, str] | None]:
        """A page of jobs, newest first, and the position to go on from (None: no more). Reads the index that
        serves the query, then the records; with filters beyond the index's own, up to MAX_EXAMINED entries."""
        index, partition, value = query.index
        page_size = min(query.limit + 1, BATCH_GET_KEYS) if not query.filtered else BATCH_GET_KEYS
        start, examined = query.start, 0
        found: list[JobRecord] = []
        last: dict[str, str] | None = None  # the position of the last job taken
        while True:
            arguments: dict[str, Any] = {
                "IndexName": index,
                "KeyConditionExpression": "#p = :p",
                "ExpressionAttributeNames": {"#p": partition},
                "ExpressionAttributeValues": {":p": value},
                "ScanIndexForward": False,
                "Limit": page_size,
            }
            if start:
                arguments["ExclusiveStartKey"] = start
            with _dynamodb("list the jobs"):
                page = self._table.query(**arguments)
            entries = page.get("Items", [])
            records = self._records([str(e.get("job") or e["jobId"]) for e in entries])
            for entry in entries:
                examined += 1
                record = records.get(str(entry.get("job") or entry["jobId"]))
                if record is None or not query.matches(record):
                    continue  # expired since, or filtered out
                if len(found) == query.limit:
                    return found, last  # one more exists: the next page starts after the last one taken
                found.append(record)
                last = position_of(entry, query)
            start = page.get("LastEvaluatedKey")
            if not start:
                return found, None
            if examined >= MAX_EXAMINED:
                return found, {k: str(v) for k, v in start.items()}

    def _records(self, job_ids: list[str]) -> dict[str, JobRecord]:
        """The job records of these ids that exist, read consistently, however DynamoDB splits the answer."""
        found: dict[str, JobRecord] = {}
        wanted = list(dict.fromkeys(job_ids))
        for first in range(0, len(wanted), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self._table.name: {"Keys": [{"jobId": j} for j in wanted[first : first + BATCH_GET_KEYS]]}
            }
            request[self._table.name]["ConsistentRead"] = True
            for attempt in range(8):
                with _dynamodb("read the jobs"):
                    reply = self._table.meta.client.batch_get_item(RequestItems=request)
                for item in reply.get("Responses", {}).get(self._table.name, []):
                    found[item["jobId"]] = JobRecord.model_validate(_plain(item))
                request = reply.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            if request:
                raise AttachError("the job store is busy; list the jobs again", step="jobs", retryable=True)
        return found

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

    def update(self, job_id: str, change: JobChange) -> None:
        """Write the job's fields ``change`` gives (a None stores an explicit null), and stamp ``updatedAt``."""
        fields = {**change.fields(), "updatedAt": now_iso()}
        with _dynamodb("update the job"):
            self._table.update_item(
                Key={"jobId": job_id},
                UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in fields),
                ExpressionAttributeNames={f"#{k}": k for k in fields},
                ExpressionAttributeValues={f":{k}": v for k, v in fields.items()},
            )

    def update_file(self, job_id: str, index: int, change: FileChange) -> None:
        """Write the fields ``change`` gives to one (file, object) pair's entry (a None stores an explicit null)."""
        fields = change.fields()
        sets = [f"#files[{index}].#{k} = :{k}" for k in fields] + ["#updatedAt = :updatedAt"]
        with _dynamodb("update the job"):
            self._table.update_item(
                Key={"jobId": job_id},
                UpdateExpression="SET " + ", ".join(sets),
                ExpressionAttributeNames={"#files": "files", "#updatedAt": "updatedAt", **{f"#{k}": k for k in fields}},
                ExpressionAttributeValues={":updatedAt": now_iso(), **{f":{k}": v for k, v in fields.items()}},
            )
