"""Jobs: what was asked (``JobSpec``, carried by the queue message) and what happened (``JobRecord``, stored).

A job record is the user's view of a request: ``GET /attachments/jobs/{jobId}`` shows ``public_view()``. Each
file moves pending → uploading → linking → attached, or → failed with the reason. ``linking`` is written
with the media id and a bounded marker of the object's attachments before step 3, so that a worker that
lost the link's reply can recognise its own attachment instead of making a second one (link_recovery).

Field names are camelCase on purpose: they are the stored attribute names and the API's, and the webhook's
idempotency key is a JMESPath over the JobSpec's fields (intake.IDEMPOTENCY_KEY).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .filenames import repair_filename
from .observability import logger
from .pins import pin_for, real_version

JobStatus = Literal["queued", "running", "succeeded", "failed"]
FileStatus = Literal["pending", "uploading", "linking", "attached", "failed"]
FINAL_FILE_STATES: frozenset[FileStatus] = frozenset({"attached", "failed"})
Origin = Literal["webhook", "s3"]


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
    def accepted(
        cls,
        *,
        bucket: str,
        key: str,
        size: int,
        version_id: str | None,
        etag: str | None,
        filename: str | None,
        comment: str,
    ) -> JobFile:
        """The file as HeadObject described it when the job was accepted. A name taken from the key or from
        metadata has nobody to refuse it to, so its control characters and path separators are replaced."""
        name = filename or key.rsplit("/", 1)[-1] or key
        if repair_filename(name) != name:
            logger.warning("the file name had characters Assets cannot store; they were replaced with '_'")
            name = repair_filename(name)
        return cls(
            bucket=bucket,
            key=key,
            filename=name,
            comment=comment,
            size=size,
            versionId=real_version(version_id),
            etag=etag,
        )


class JobSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    objectId: str | None = None
    objectKey: str | None = None
    files: list[JobFile] = Field(min_length=1)
    issueKey: str | None = None
    origin: Origin = "webhook"


class JobMessage(BaseModel):
    """The SQS message body for a job."""

    jobId: str
    spec: JobSpec
    resumes: int = 0  # how often the job continued in a new message (out of time, or the link lease was taken)


class LinkMarker(BaseModel):
    """What the object held before a link: attachments with a larger id are newer (``afterId`` is None where
    ids are not numbers), and the link lease generation the link ran under."""

    model_config = ConfigDict(frozen=True)

    afterId: int | None
    generation: int


class FileRecord(BaseModel):
    """One file of a stored job: the pinned source, and how far it got."""

    model_config = ConfigDict(extra="ignore")

    bucket: str
    key: str
    filename: str
    comment: str = ""
    size: int | None = None  # None only for an S3 drop that never became a job
    versionId: str | None = None
    etag: str | None = None
    status: FileStatus = "pending"
    mediaId: str | None = None
    linkMarker: LinkMarker | None = None
    attachmentId: str | None = None
    error: str | None = None
    errorCode: str | None = None

    @property
    def done(self) -> bool:
        return self.status in FINAL_FILE_STATES


PUBLIC_FILE_FIELDS = ("bucket", "key", "filename", "size", "status", "attachmentId", "error", "errorCode")


class JobRecord(BaseModel):
    """A stored job, as the job store reads it back."""

    model_config = ConfigDict(extra="ignore")

    jobId: str
    status: JobStatus
    origin: Origin = "webhook"
    files: list[FileRecord]
    attempts: int = 0
    createdAt: str
    updatedAt: str
    objectId: str | None = None
    objectKey: str | None = None
    issueKey: str | None = None
    error: str | None = None

    def public_view(self) -> dict[str, Any]:
        """The job as ``GET /attachments/jobs/{jobId}`` shows it."""
        view: dict[str, Any] = {
            "jobId": self.jobId,
            "status": self.status,
            "objectId": self.objectId,
            "files": [f.model_dump(include=set(PUBLIC_FILE_FIELDS), exclude_none=True) for f in self.files],
            "attempts": self.attempts,
            "createdAt": self.createdAt,
            "updatedAt": self.updatedAt,
        }
        view.update(self.model_dump(include={"objectKey", "issueKey", "error"}, exclude_none=True))
        return view


def new_job_id() -> str:
    return uuid.uuid4().hex


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
