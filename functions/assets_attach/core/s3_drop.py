"""Files dropped into the uploads bucket: from an S3 event notification (delivered through SQS) to a job.

The Assets objects come from the object's user metadata ``assets-object-id`` or ``assets-object-key``
(several separated by commas and/or spaces), else from its key, ``<S3_KEY_PREFIX><objectId or objectKey>/<file>``.
``assets-filename`` and ``assets-comment`` (percent-encoded UTF-8) are optional. Each drop gets a job id derived
from bucket, key and version (or sequencer, or ETag), so a duplicate delivery finds its job done and attaches
nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event

from ..errors import BadRequestError, SourceChangedError, SourceNotFoundError
from ..jobs import JobMessage, JobSpec
from ..object_ids import normalize_object_id, normalize_object_key, parse_object_ids, parse_object_keys
from ..pins import pin_for
from ..settings import Settings
from .ports import S3Port

META_OBJECT_ID = "assets-object-id"
META_OBJECT_KEY = "assets-object-key"
META_FILENAME = "assets-filename"
META_COMMENT = "assets-comment"


@dataclass(frozen=True)
class Drop:
    """One ObjectCreated record, its key decoded once: S3 sends it URL-encoded (``+`` for space) and
    Powertools' ``S3Event`` hands it over as sent."""

    bucket: str
    key: str
    version_id: str | None
    sequencer: str | None
    etag: str | None

    @property
    def job_id(self) -> str:
        identity = "\n".join((self.bucket, self.key, self.version_id or self.sequencer or self.etag or ""))
        return hashlib.sha256(identity.encode()).hexdigest()[:32]

    def pin(self) -> dict[str, str]:
        return pin_for(self.version_id, self.etag)


@dataclass(frozen=True)
class Decision:
    """A job to run, or why the drop is skipped (logged, never retried)."""

    drop: Drop
    job: JobMessage | None = None
    skipped: str | None = None


def is_test_event(body: Any) -> bool:
    """S3 sends ``{"Event": "s3:TestEvent", ...}`` (no Records) when a notification is configured."""
    return isinstance(body, dict) and body.get("Event") == "s3:TestEvent"


def is_s3_event(body: Any) -> bool:
    records = body.get("Records") if isinstance(body, dict) else None
    if not isinstance(records, list) or not records:
        return False
    return all(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records)


def drops(body: dict[str, Any]) -> Iterator[Drop]:
    for record in S3Event(body).records:
        if not record.event_name.startswith("ObjectCreated:"):
            continue
        obj = record.s3.get_object
        yield Drop(
            bucket=record.s3.bucket.name,
            key=unquote_plus(obj.key),
            version_id=obj.get("versionId") or None,  # only on versioned buckets
            sequencer=obj.get("sequencer") or None,
            etag=obj.get("eTag") or None,
        )


def object_targets(
    key: str, metadata: Mapping[str, str], prefix: str, workspace_id: Callable[[], str]
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(object ids, object keys) from the metadata (several, separated by commas and/or spaces) or the key
    ``<prefix><object>/<file>``; None when the object names no Assets object."""
    if metadata.get(META_OBJECT_ID):
        return parse_object_ids(metadata[META_OBJECT_ID], workspace_id, META_OBJECT_ID), ()
    if metadata.get(META_OBJECT_KEY):
        return (), parse_object_keys(metadata[META_OBJECT_KEY], META_OBJECT_KEY)
    parts = key[len(prefix) :].split("/")
    if len(parts) < 2:
        return None
    try:
        return (normalize_object_id(parts[0], workspace_id),), ()
    except BadRequestError:
        pass
    try:
        return (), (normalize_object_key(parts[0]),)
    except BadRequestError:
        return None


def named_file(metadata: Mapping[str, str]) -> tuple[str, str]:
    """The file's name in Assets ("" for the key's own) and its comment, from the percent-encoded metadata."""
    return unquote(metadata.get(META_FILENAME, "")), unquote(metadata.get(META_COMMENT, ""))


def decide(drop: Drop, s3: S3Port, settings: Settings, workspace_id: Callable[[], str]) -> Decision:
    """Read the object's metadata and turn the drop into a job, or say why it is skipped."""
    prefix = settings.s3_key_prefix
    if settings.uploads_bucket and drop.bucket != settings.uploads_bucket:
        return Decision(drop, skipped=f"bucket {drop.bucket} is not the uploads bucket")
    if not drop.key.startswith(prefix) or drop.key.endswith("/"):
        return Decision(drop, skipped=f"the key is not a file under {prefix!r}")
    try:
        head = s3.head(drop.bucket, drop.key, pin=drop.pin())
    except (SourceNotFoundError, SourceChangedError) as e:
        return Decision(drop, skipped=f"the object is gone or was replaced: {e}")
    try:
        targets = object_targets(drop.key, head.metadata, prefix, workspace_id)
    except BadRequestError as e:
        return Decision(drop, skipped=f"metadata {e.field}: {e.message}")
    if targets is None:
        return Decision(
            drop,
            skipped=f"names no Assets object: use {prefix}<objectId or objectKey>/<file> "
            f"or the metadata {META_OBJECT_ID} / {META_OBJECT_KEY}",
        )
    object_ids, object_keys = targets
    file = head.job_file(*named_file(head.metadata))
    spec = JobSpec(objectIds=list(object_ids), objectKeys=list(object_keys), files=[file], origin="s3")
    return Decision(drop, job=JobMessage(jobId=drop.job_id, spec=spec))
