"""What the webhook API shows of a job: ``JobView`` (``GET /attachments/jobs/{jobId}``, a waited-for answer, a page
of ``GET /attachments/jobs``) with a ``FileView`` per (file, object) pair, and the statuses both carry.

``PairState`` holds the fields a pair's view shows; its stored record (job_record.FileRecord) holds them too, with
what the worker needs besides. The field order is the answers' and ``openapi.json``'s.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .jobs import SourceFields, TargetFields

JobStatus = Literal["queued", "running", "succeeded", "failed"]
FileStatus = Literal["pending", "uploading", "linking", "attached", "failed"]


# The object's fields first, then the source's (the bases are read last to first).
class PairState(SourceFields, TargetFields):
    """One (file, object) pair: its object, its source, and how far it got."""

    size: int | None = None  # None only for an S3 drop that never became a job
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


class FileView(PairState):
    """One (file, object) pair as the job status shows it."""

    model_config = ConfigDict(extra="ignore")

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
