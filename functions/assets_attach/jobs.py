"""Jobs: what was asked (``JobSpec``, carried by the queue message) and what happened (``JobRecord``, stored).

A job record is the user's view of a request: ``GET /attachments/jobs/{jobId}`` shows ``public_view()``. Each
file moves pending → uploading → linking → attached, or → failed with the reason. ``linking`` is written
with the media id and a bounded marker of the object's attachments before step 3, so that a worker that
lost the link's reply can recognise its own attachment instead of making a second one (link_recovery).

Field names are camelCase on purpose: they are the stored attribute names and the API's, and the webhook's
idempotency key is a JMESPath over the JobSpec's fields (intake.IDEMPOTENCY_KEY).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from .filenames import repair_filename
from .job_summary import summarize
from .observability import logger
from .pins import pin_for, real_version

JobStatus = Literal["queued", "running", "succeeded", "failed"]
FileStatus = Literal["pending", "uploading", "linking", "attached", "failed"]
FINAL_FILE_STATES: frozenset[FileStatus] = frozenset({"attached", "failed"})
FINAL_JOB_STATES: frozenset[JobStatus] = frozenset({"succeeded", "failed"})
Origin = Literal["webhook", "s3"]


def assets_name(given: str | None, default: str) -> str:
    """The name a file gets in Assets: ``given`` (the request's or the metadata's), else ``default`` (the key's
    last segment, or Jira's name). A webhook refuses a bad ``filename``; a name from a key, metadata or Jira has
    nobody to refuse it to, so its control characters and path separators are replaced."""
    name = given or default
    if repair_filename(name) != name:
        logger.warning("the file name had characters Assets cannot store; they were replaced with '_'")
    return repair_filename(name)


class JobFile(BaseModel):
    """One source pinned at acceptance, and the name, type and comment it gets in Assets. The source is an S3
    object (pinned by ``versionId`` or ``etag``) or a Jira attachment (its id is the pin: it never changes)."""

    model_config = ConfigDict(frozen=True)

    bucket: str | None = None
    key: str | None = None
    jiraAttachmentId: str | None = None
    filename: str
    comment: str = ""
    size: int
    contentType: str | None = None  # Jira's MIME type; an S3 object's is read when the job runs
    versionId: str | None = None
    etag: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> JobFile:
        if (self.jiraAttachmentId is None) == (self.bucket is None or self.key is None):
            raise ValueError("a job file is an S3 object (bucket and key) or a Jira attachment, not both")
        return self

    @property
    def source(self) -> str:
        """``s3://bucket/key`` or ``jira:<attachmentId>``, for logs and messages."""
        return f"jira:{self.jiraAttachmentId}" if self.jiraAttachmentId else f"s3://{self.bucket}/{self.key}"

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
        """The S3 object as HeadObject described it when the job was accepted."""
        return cls(
            bucket=bucket,
            key=key,
            filename=assets_name(filename, key.rsplit("/", 1)[-1] or key),
            comment=comment,
            size=size,
            versionId=real_version(version_id),
            etag=etag,
        )


@dataclass(frozen=True)
class Target:
    """An Assets object a job attaches to: its id, or its key until the worker resolves it."""

    object_id: str | None = None
    object_key: str | None = None

    def fields(self) -> dict[str, str]:
        return {"objectId": self.object_id} if self.object_id else {"objectKey": self.object_key or ""}


class JobSpec(BaseModel):
    """What a job is asked to do: every file to every object (``pairs()``), each pair once."""

    model_config = ConfigDict(frozen=True)

    objectIds: list[str] = Field(default_factory=list)
    objectKeys: list[str] = Field(default_factory=list)
    files: list[JobFile] = Field(min_length=1)
    issueKey: str | None = None
    origin: Origin = "webhook"

    @model_validator(mode="before")
    @classmethod
    def _from_v1(cls, data: Any) -> Any:
        """A message queued by version 1 named one object as ``objectId`` or ``objectKey``."""
        if isinstance(data, dict) and ("objectId" in data or "objectKey" in data):
            data = dict(data)
            object_id, object_key = data.pop("objectId", None), data.pop("objectKey", None)
            data.setdefault("objectIds", [object_id] if object_id else [])
            data.setdefault("objectKeys", [object_key] if object_key else [])
        return data

    @model_validator(mode="after")
    def _names_objects(self) -> JobSpec:
        if bool(self.objectIds) == bool(self.objectKeys):
            raise ValueError("a job names its objects by id or by key")
        return self

    @property
    def targets(self) -> list[Target]:
        return [Target(object_id=i) for i in self.objectIds] or [Target(object_key=k) for k in self.objectKeys]

    def pairs(self) -> list[tuple[JobFile, Target]]:
        """(file, object) in the order of the job record's ``files``: file by file, object by object."""
        return [(file, target) for file in self.files for target in self.targets]


class JobMessage(BaseModel):
    """The SQS message body for a job."""

    jobId: str
    spec: JobSpec
    resumes: int = 0  # how often the job continued in a new message (out of time, or the link lease was taken)
    # Since when (epoch seconds) the job has only waited for pairs other jobs hold: such waits are bounded in time,
    # not counted as resumes.
    waitingSince: float | None = None
    retry: int = 0  # how often the job was re-run on purpose (POST /attachments/jobs/{jobId}/retry)


class LinkMarker(BaseModel):
    """What the object held before a link: attachments with a larger id are newer (``afterId`` is None where
    ids are not numbers), and the link lease generation the link ran under."""

    model_config = ConfigDict(frozen=True)

    afterId: int | None
    generation: int


class ChunkedUpload(BaseModel):
    """A chunked upload in progress: where a retried, continued or redelivered job resumes it."""

    model_config = ConfigDict(frozen=True)

    uploadId: str
    chunkSize: int
    appended: int  # chunks appended so far, from the start of the file
    # Chunks accepted by the service in file order (at least ``appended``): those beyond ``appended`` are appended by
    # their etags on resume. Records written before v3 call it ``appending`` (an append of unknown outcome up to it).
    sent: int | None = Field(default=None, validation_alias=AliasChoices("sent", "appending"))
    # An append up to this many chunks is on its way (written before it is sent): a resume that finds the upload past
    # ``appended`` knows that append took.
    appendingTo: int | None = None


class FileRecord(BaseModel):
    """One (file, object) pair of a stored job: the pinned source, the object, and how far it got."""

    model_config = ConfigDict(extra="ignore")

    objectId: str | None = None  # None until the worker resolves ``objectKey``
    objectKey: str | None = None
    bucket: str | None = None
    key: str | None = None
    jiraAttachmentId: str | None = None
    filename: str
    comment: str = ""
    size: int | None = None  # None only for an S3 drop that never became a job
    contentType: str | None = None
    versionId: str | None = None
    etag: str | None = None
    status: FileStatus = "pending"
    mediaId: str | None = None
    bytesSent: int | None = None  # while uploading: bytes sent (chunked: appended) so far
    integrityCheck: str | None = None  # once attached: how the bytes were proven the source's (integrity.Check)
    chunkedUpload: ChunkedUpload | None = None
    linkMarker: LinkMarker | None = None
    attachmentId: str | None = None
    attachedBy: str | None = None  # another job that had attached this Jira attachment to this object
    waitingFor: str | None = None  # another job that holds this Jira pair; this one waits for it
    error: str | None = None
    errorCode: str | None = None

    @property
    def done(self) -> bool:
        return self.status in FINAL_FILE_STATES


class FileView(BaseModel):
    """One (file, object) pair as the job status shows it."""

    model_config = ConfigDict(extra="ignore")

    objectId: str | None = None
    objectKey: str | None = None
    bucket: str | None = None
    key: str | None = None
    jiraAttachmentId: str | None = None
    filename: str
    size: int | None = None
    status: FileStatus
    bytesSent: int | None = Field(default=None, description="while the file uploads: bytes the media service has")
    attachmentId: str | None = None
    integrityCheck: str | None = Field(
        default=None,
        description="how the bytes were proven the source's: an S3 full-object checksum (crc64nvme, crc32c, crc32, "
        "sha512, sha256, sha1), the ETag's md5, or size (the byte count alone)",
    )
    attachedBy: str | None = Field(default=None, description="the job that had attached this Jira attachment")
    waitingFor: str | None = Field(
        default=None, description="the job attaching this Jira attachment to this object now; this pair waits for it"
    )
    error: str | None = None
    errorCode: str | None = None

    @model_validator(mode="after")
    def _progress_while_uploading(self) -> FileView:
        """``bytesSent`` says how far an upload is; once the file is linked, attached or failed it would be stale."""
        if self.status != "uploading":
            self.bytesSent = None
        return self


class JobView(BaseModel):
    """A job as ``GET /attachments/jobs/{jobId}`` (and a waited-for answer) shows it."""

    jobId: str
    status: JobStatus
    summary: str = Field(
        description="one sentence a rule can print as it is, e.g. '2 of 3 attached; report.pdf: s3://exports/"
        "report.pdf was deleted after the request was accepted.'"
    )
    objectId: str | None = Field(default=None, description="the first object (each file entry names its own)")
    objectKey: str | None = None
    issueKey: str | None = None
    files: list[FileView]
    attempts: int
    createdAt: str
    updatedAt: str
    error: str | None = None
    statusUrl: str | None = Field(default=None, description="in the answer to a request with wait")


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

    def spec(self) -> JobSpec:
        """What the job was asked to do, read back from its entries (file by file, object by object)."""
        first = self.files[0]
        per_file = next((i for i, f in enumerate(self.files[1:], 1) if _pinned(f) != _pinned(first)), len(self.files))
        targets = self.files[:per_file]
        spec = JobSpec(
            objectIds=[f.objectId for f in targets if f.objectId and not f.objectKey],
            objectKeys=[f.objectKey for f in targets if f.objectKey],
            files=[JobFile.model_validate(f.model_dump()) for f in self.files[::per_file]],
            issueKey=self.issueKey,
            origin=self.origin,
        )
        if [(_pinned(f), t.fields()) for f, t in spec.pairs()] != [(_pinned(f), _target(f)) for f in self.files]:
            raise ValueError(f"job {self.jobId}'s entries are not every file to every object")
        return spec

    def view(self) -> JobView:
        """The job as ``GET /attachments/jobs/{jobId}`` shows it."""
        return JobView.model_validate(
            {
                **self.model_dump(),
                "summary": summarize(self.status, self.files, self.error),
                "files": [f.model_dump() for f in self.files],
            }
        )

    def public_view(self) -> dict[str, Any]:
        """``view()`` as the JSON answer carries it (absent fields left out)."""
        return self.view().model_dump(exclude_none=True)


def _pinned(file: JobFile | FileRecord) -> tuple[str | None, ...]:
    """What names a job's file: its source, pin and name."""
    return (file.bucket, file.key, file.versionId, file.etag, file.jiraAttachmentId, file.filename)


def _target(file: FileRecord) -> dict[str, str]:
    return {"objectKey": file.objectKey} if file.objectKey else {"objectId": file.objectId or ""}


def queued_record(job_id: str, spec: JobSpec) -> dict[str, Any]:
    """A new job's record as stored: one ``files`` entry per (file, object) pair, all pending."""
    stamp = now_iso()
    return {
        "jobId": job_id,
        "status": "queued",
        "origin": spec.origin,
        "files": [
            {**file.model_dump(exclude_none=True), **target.fields(), "status": "pending"}
            for file, target in spec.pairs()
        ],
        "attempts": 0,
        "createdAt": stamp,
        "updatedAt": stamp,
        **spec.targets[0].fields(),  # the first object, as the job view shows it
        **spec.model_dump(include={"issueKey"}, exclude_none=True),
    }


# A DynamoDB item holds 400 KB; what the worker adds to each pair as it runs (ids, markers, errors) needs room.
MAX_NEW_RECORD_BYTES = 300_000


def new_record_bytes(spec: JobSpec) -> tuple[int, int]:
    """The size of a new job's record (UTF-8 JSON, about what DynamoDB counts), and how much of it is comments."""
    record = queued_record(new_job_id(), spec)
    comments = sum(len(f.get("comment", "").encode()) for f in record["files"])
    return len(json.dumps(record, ensure_ascii=False).encode()), comments


def new_job_id() -> str:
    return uuid.uuid4().hex


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
