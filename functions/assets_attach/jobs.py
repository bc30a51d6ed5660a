"""Jobs as asked: the pinned files (``JobFile``), the objects (``Target``), the job (``JobSpec``) and its queue
message (``JobMessage``).

What happened to a job is its record (job_record); what the API shows of it, its view (api_models). Field names
are camelCase on purpose: they are the stored attribute names and the API's, and the webhook's idempotency key is
a JMESPath over the JobSpec's fields (intake.IDEMPOTENCY_KEY).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .filenames import repair_filename
from .observability import logger
from .pins import pin_for, real_version

Origin = Literal["webhook", "s3"]


def assets_name(given: str | None, default: str) -> str:
    """The name a file gets in Assets: ``given`` (the request's or the metadata's), else ``default`` (the key's
    last segment, or Jira's name). A webhook refuses a bad ``filename``; a name from a key, metadata or Jira has
    nobody to refuse it to, so its control characters and path separators are replaced."""
    name = given or default
    if repair_filename(name) != name:
        logger.warning("the file name had characters Assets cannot store; they were replaced with '_'")
    return repair_filename(name)


class SourceFields(BaseModel):
    """The source of a file and the name it gets in Assets, as the job file, its record and its view name them."""

    bucket: str | None = None
    key: str | None = None
    jiraAttachmentId: str | None = None
    filename: str


class TargetFields(BaseModel):
    """The object of a (file, object) pair, as its record and its view name it."""

    objectId: str | None = None  # None until the worker resolves ``objectKey``
    objectKey: str | None = None


class JobFile(SourceFields):
    """One source pinned at acceptance, and the name, type and comment it gets in Assets. The source is an S3
    object (pinned by ``versionId`` or ``etag``) or a Jira attachment (its id is the pin: it never changes)."""

    model_config = ConfigDict(frozen=True)

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


def new_job_id() -> str:
    return uuid.uuid4().hex
