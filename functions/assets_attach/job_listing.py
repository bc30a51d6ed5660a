"""Finding jobs: ``GET /attachments/jobs?issueKey=&objectId=&bucket=&key=&status=&limit=&cursor=``, newest first.

The rules only; the job store runs the queries. Two indexes of the jobs table serve every listing, never a scan:

- ``byRef`` holds one small *index item* per job and thing it names, written in one transaction with the job:
  ``all`` (every job), ``issue:<ISSUE KEY>``, ``object:<objectId>`` (each object; a job that names objects by key
  gets its items when the worker resolves them) and ``s3://<bucket>/<key>`` (each S3 file, so an S3 drop's job too).
  A job names up to 20 objects and 20 files, which no one attribute of the job record could index: hence items,
  each ``{jobId: "job-ref:<job id>:<ref>", ref, createdAt, job, expiresAt}``.
- ``byStatus`` indexes the job records themselves by ``status``, which changes as the job runs (index items would
  have to follow every change).

Both sort by ``createdAt``. The most selective filter picks the index (``bucket`` + ``key``, then ``objectId``,
then ``issueKey``, then ``status``, else ``all``); the other filters are checked on the job records read, so a
page may hold fewer than ``limit`` jobs, with a ``nextCursor`` to go on. The cursor is the index position
(DynamoDB's ``LastEvaluatedKey``) as base64url JSON, checked against the listing it was given for.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast, get_args

from .api_models import JobStatus
from .errors import BadRequestError
from .job_record import JobRecord
from .object_ids import normalize_object_id

REF_INDEX = "byRef"
STATUS_INDEX = "byStatus"
INDEX_ITEM_PREFIX = "job-ref:"  # never a job id: job ids are hex
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
QUERY_FIELDS = ("issueKey", "objectId", "bucket", "key", "status", "limit", "cursor")
MAX_ISSUE_KEY = 255


def ref_all() -> str:
    return "all"


def ref_issue(issue_key: str) -> str:
    return f"issue:{issue_key.strip().upper()}"


def ref_object(object_id: str) -> str:
    return f"object:{object_id}"


def ref_s3(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def job_refs(record: JobRecord) -> list[str]:
    """What a stored job is found by, each once."""
    refs = [ref_all()]
    if record.issueKey and record.issueKey.strip():
        refs.append(ref_issue(record.issueKey))
    refs += [ref_object(f.objectId) for f in record.files if f.objectId]
    refs += [ref_s3(f.bucket, f.key) for f in record.files if f.bucket and f.key]
    return list(dict.fromkeys(refs))


def index_item(job_id: str, created_at: str, ref: str, expires_at: int) -> dict[str, Any]:
    """The item that makes a job found by ``ref`` (its key is derived, so writing it again changes nothing)."""
    return {
        "jobId": f"{INDEX_ITEM_PREFIX}{job_id}:{ref}",
        "ref": ref,
        "createdAt": created_at,
        "job": job_id,
        "expiresAt": expires_at,
    }


@dataclass(frozen=True)
class JobQuery:
    """A listing, checked: its filters, the index and partition that serve it, and where to start."""

    issue_key: str | None = None
    object_id: str | None = None
    bucket: str | None = None
    key: str | None = None
    status: JobStatus | None = None
    limit: int = DEFAULT_LIMIT
    start: dict[str, str] | None = None  # the decoded cursor

    @property
    def index(self) -> tuple[str, str, str]:
        """(index name, partition attribute, partition value), the most selective filter first."""
        if self.bucket is not None and self.key is not None:
            return REF_INDEX, "ref", ref_s3(self.bucket, self.key)
        if self.object_id is not None:
            return REF_INDEX, "ref", ref_object(self.object_id)
        if self.issue_key is not None:
            return REF_INDEX, "ref", ref_issue(self.issue_key)
        if self.status is not None:
            return STATUS_INDEX, "status", self.status
        return REF_INDEX, "ref", ref_all()

    @property
    def filtered(self) -> bool:
        """Whether filters beyond the index's own are checked on the records (pages may then run short)."""
        given = sum(v is not None for v in (self.issue_key, self.object_id, self.status)) + (self.bucket is not None)
        return given > 1

    def matches(self, record: JobRecord) -> bool:
        if self.status is not None and record.status != self.status:
            return False
        if self.issue_key is not None and ref_issue(record.issueKey or "") != ref_issue(self.issue_key):
            return False
        if self.object_id is not None and all(f.objectId != self.object_id for f in record.files):
            return False
        return self.bucket is None or any(f.bucket == self.bucket and f.key == self.key for f in record.files)


def _text(params: Mapping[str, str], name: str, max_length: int) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise BadRequestError(f"The {name} parameter is empty: give a value or leave it out.", field=name)
    if len(value) > max_length:
        raise BadRequestError(f"The {name} parameter is longer than {max_length} characters.", field=name)
    return value


def _limit(params: Mapping[str, str]) -> int:
    value = params.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequestError(f"The limit must be a whole number from 1 to {MAX_LIMIT}.", field="limit")
    return int(value)


def _status(params: Mapping[str, str]) -> JobStatus | None:
    value = params.get("status")
    if value is None:
        return None
    if value.strip() in get_args(JobStatus):
        return cast(JobStatus, value.strip())
    raise BadRequestError(f"The status must be one of {', '.join(get_args(JobStatus))}.", field="status")


def parse_job_query(params: Mapping[str, str] | None, workspace_id: Callable[[], str]) -> JobQuery:
    """The listing asked for by the query string, each refusal naming its parameter."""
    params = params or {}
    for name in params:
        if name not in QUERY_FIELDS:
            raise BadRequestError(
                f"{name[:40]!r} is not a filter of this listing; use {', '.join(QUERY_FIELDS)}.", field=name[:40]
            )
    object_id = _text(params, "objectId", 100)
    bucket, key = _text(params, "bucket", 63), _text(params, "key", 1024)
    if (bucket is None) != (key is None):
        missing = "key" if key is None else "bucket"
        raise BadRequestError(f"An S3 file is found by bucket and key together: give {missing} too.", field=missing)
    query = JobQuery(
        issue_key=_text(params, "issueKey", MAX_ISSUE_KEY),
        object_id=normalize_object_id(object_id, workspace_id) if object_id is not None else None,
        bucket=bucket,
        key=key,
        status=_status(params),
        limit=_limit(params),
    )
    cursor = params.get("cursor")
    return query if cursor is None else replace(query, start=decode_cursor(cursor, query))


def encode_cursor(position: Mapping[str, Any]) -> str:
    """An index position (the key attributes of the last item) as an opaque string, safe in a query string."""
    data = json.dumps({k: str(v) for k, v in sorted(position.items())}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def position_of(item: Mapping[str, Any], query: JobQuery) -> dict[str, str]:
    """The index position of an item the index returned: the table key and the index key."""
    _, partition, _ = query.index
    return {name: str(item[name]) for name in ("jobId", partition, "createdAt")}


def decode_cursor(cursor: str, query: JobQuery) -> dict[str, str]:
    """The position a cursor names, refused unless it is one this listing handed out (the same filters)."""
    refused = BadRequestError(
        "The cursor is not one this listing handed out: send the same filters with the nextCursor of the last page, "
        "or leave the cursor out to start from the newest job.",
        field="cursor",
    )
    try:
        raw = base64.urlsafe_b64decode(cursor.strip() + "=" * (-len(cursor.strip()) % 4))
        position = json.loads(raw.decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise refused from None
    _, partition, value = query.index
    if (
        not isinstance(position, dict)
        or set(position) != {"jobId", partition, "createdAt"}
        or not all(isinstance(v, str) and v for v in position.values())
        or position[partition] != value
    ):
        raise refused
    return position
