"""Jobs as they went: the stored record (``JobRecord``, one ``FileRecord`` per (file, object) pair), and the only
ways it changes (``FileChange`` for a pair, ``JobChange`` for the job; the job store writes them).

Each pair moves pending → uploading → linking → attached, or → failed with the reason. ``linking`` is written with
the media id and a bounded marker of the object's attachments before step 3, so that a worker that lost the
link's reply can recognise its own attachment instead of making a second one (link_recovery). A change names
only the fields it writes, and refuses any other: a misspelt field fails where the change is made, not on read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from .api_models import FileStatus, JobStatus, JobView, PairState
from .job_summary import summarize
from .jobs import JobFile, JobSpec, Origin, new_job_id

FINAL_FILE_STATES: frozenset[FileStatus] = frozenset({"attached", "failed"})
FINAL_JOB_STATES: frozenset[JobStatus] = frozenset({"succeeded", "failed"})


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


class FileRecord(PairState):
    """One (file, object) pair of a stored job: the pinned source, the object, and how far it got."""

    model_config = ConfigDict(extra="ignore")

    comment: str = ""
    contentType: str | None = None
    versionId: str | None = None
    etag: str | None = None
    status: FileStatus = "pending"
    mediaId: str | None = None
    chunkedUpload: ChunkedUpload | None = None
    linkMarker: LinkMarker | None = None

    @property
    def done(self) -> bool:
        return self.status in FINAL_FILE_STATES

    @property
    def link_sent(self) -> bool:
        """Step 3 may have been sent for this pair, its outcome unknown here: it reached linking (the media id is
        recorded then) and is not attached. Still so after a retry made a failed pair pending again."""
        return self.status == "linking" or (self.mediaId is not None and self.status != "attached")


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


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Change(BaseModel):
    """A change of a stored record: the fields given are written (a None stores an explicit null), no others."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _status_kept(self) -> Self:
        if self.fields().get("status", "") is None:
            raise ValueError("a change may set a status, never clear it")
        return self

    def fields(self) -> dict[str, Any]:
        """The fields to write, named and valued as stored (a nested model as a map), in declaration order."""
        given = [name for name in type(self).model_fields if name in self.model_fields_set]
        return {name: _stored(getattr(self, name)) for name in given}


def _stored(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


class FileChange(_Change):
    """What one (file, object) pair's record gains: the only way a file record changes as the job runs."""

    status: FileStatus | None = None
    objectId: str | None = None
    mediaId: str | None = None
    bytesSent: int | None = None
    chunkedUpload: ChunkedUpload | None = None
    linkMarker: LinkMarker | None = None
    attachmentId: str | None = None
    integrityCheck: str | None = None
    attachedBy: str | None = None
    waitingFor: str | None = None
    error: str | None = None
    errorCode: str | None = None


class JobChange(_Change):
    """What the job's own fields gain (the store stamps ``updatedAt``)."""

    status: JobStatus | None = None
    attempts: int | None = None
    objectId: str | None = None
    error: str | None = None
