"""Accepting a webhook request: check and pin every file, then record and queue the job exactly once.

Objects named by key are resolved to their ids first (AQL, which ignores case), and the same object named twice
(``HW-42, hw-42``, or by id and by key) is one object. S3 objects are pinned to the version (or ETag) HeadObject
describes; Jira attachments are looked up on the site and pinned by their id (``all``: the issue's attachments
at this moment that are not on every object yet; the limits apply to that work left). The answer (202) goes out
only after the job record is written and its message is on the queue. The same request within 24 hours (same
objects, same S3 object versions, same Jira attachments, same names) returns the first job's id and queues
nothing: Powertools idempotency, keyed on exactly those fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..atlassian.jira_client import JiraAttachment
from ..attach_request import AttachRequest, WantedFile, check_counts
from ..errors import (
    AttachError,
    BadRequestError,
    BucketNotAllowedError,
    FileTooLargeError,
    SourceNotFoundError,
    check_size,
)
from ..job_record import MAX_NEW_RECORD_BYTES, JobChange, new_record_bytes
from ..jobs import JobFile, JobMessage, JobSpec, new_job_id
from .ports import AssetsPort, ClaimsPort, JiraPort, QueuePort, S3Port, StorePort

# What makes two requests "the same": object, S3 objects with their versions, and names (JobSpec's field names).
IDEMPOTENCY_KEY = "[objectIds, objectKeys, files[*].[bucket, key, versionId, etag, jiraAttachmentId, filename]]"
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600


class Intake:
    def __init__(
        self,
        s3: S3Port,
        jira: JiraPort,
        assets: AssetsPort,
        pairs: ClaimsPort,
        store: StorePort,
        queue: QueuePort,
        *,
        allowed_buckets: frozenset[str],
        max_file_size: int,
        once: Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]],
    ) -> None:
        self._s3 = s3
        self._jira = jira
        self._assets = assets
        self._pairs = pairs
        self._store = store
        self._queue = queue
        self._allowed_buckets = allowed_buckets
        self._max_file_size = max_file_size
        self._enqueue_once = once(self._enqueue)

    def accept(self, request: AttachRequest) -> dict[str, Any]:
        """Validate against S3 and Jira and queue; returns ``{"jobId"}`` of the new or the earlier identical job."""
        object_ids = self._object_ids(request)
        jira_files = self._jira_files(request, object_ids)
        spec = JobSpec(
            objectIds=object_ids,
            files=[self._pin(wanted) for wanted in request.files] + jira_files,
            issueKey=request.issue_key,
        )
        check_record_size(spec)
        return self._enqueue_once(spec=spec)

    def _object_ids(self, request: AttachRequest) -> list[str]:
        """The objects as ids, each once: keys resolved (AQL ignores case, so HW-42 and hw-42 are one object)."""
        keys: dict[str, str] = {}  # each key once, as first spelt
        for key in request.object_keys:
            keys.setdefault(key.casefold(), key)
        resolved = [self._assets.find_object_id(key) for key in keys.values()]
        return list(dict.fromkeys([*request.object_ids, *resolved]))

    def _jira_files(self, request: AttachRequest, object_ids: list[str]) -> list[JobFile]:
        """The Jira attachments asked for, each checked to exist and fit the size limit."""
        wanted = request.jira
        objects = len(object_ids)
        if wanted is None:
            check_counts(request, 0, objects)
            return []
        if wanted.all_of_issue:
            found = self._not_attached_yet(self._jira.issue_attachments(request.issue_key or ""), object_ids)
            if not found:
                raise SourceNotFoundError(
                    f"Jira issue {request.issue_key} has no attachments",
                    step="jira",
                    status=404,
                    field="jiraAttachments",
                )
            check_counts(request, len(found), objects)
            fields = ["jiraAttachments"] * len(found)
        else:
            check_counts(request, len(wanted.ids), objects)
            fields = [f"jiraAttachments[{i}]" for i in range(len(wanted.ids))]
            found = [
                self._jira.attachment(attachment_id, field)
                for attachment_id, field in zip(wanted.ids, fields, strict=True)
            ]
        for attachment, field in zip(found, fields, strict=True):
            try:
                check_size(attachment.size, self._max_file_size, f"Jira attachment {attachment.id}")
            except FileTooLargeError as e:
                e.field = field
                raise
        return [attachment.job_file(wanted.filename, wanted.comment) for attachment in found]

    def _not_attached_yet(self, found: list[JiraAttachment], object_ids: list[str]) -> list[JiraAttachment]:
        """``all``: the issue's attachments not yet on every object (the next run of a rule names every earlier
        one too). Where every one is, the newest stays, for the job to confirm (it adopts it: nothing new)."""
        if not found:
            return found
        attached = self._pairs.attached_ids([(a.id, o) for a in found for o in object_ids])
        left = [a for a in found if any((a.id, o) not in attached for o in object_ids)]
        return left or found[-1:]

    def _pin(self, wanted: WantedFile) -> JobFile:
        if wanted.bucket not in self._allowed_buckets:
            raise BucketNotAllowedError(
                f"bucket {wanted.bucket} is not in ALLOWED_BUCKETS", status=403, field=f"{wanted.field_prefix}bucket"
            )
        try:
            head = self._s3.head(wanted.bucket, wanted.key)
            check_size(head.size, self._max_file_size, f"s3://{wanted.bucket}/{wanted.key}")
        except AttachError as e:
            if e.field:
                e.field = f"{wanted.field_prefix}{e.field}"
            elif not e.retryable:
                e.field = f"{wanted.field_prefix}key"
            raise
        return head.job_file(wanted.filename, wanted.comment)

    def _enqueue(self, spec: JobSpec) -> dict[str, Any]:
        job_id = new_job_id()
        self._store.create(job_id, spec)
        try:
            self._queue.send(JobMessage(jobId=job_id, spec=spec))
        except AttachError:
            self._store.update(job_id, JobChange(status="failed", error="the job could not be queued"))
            raise
        return {"jobId": job_id}


def check_record_size(spec: JobSpec) -> None:
    """Each (file, object) pair records its key, name and comment: together they must fit one job record."""
    size, comments = new_record_bytes(spec)
    if size > MAX_NEW_RECORD_BYTES:
        pairs = len(spec.files) * len(spec.targets)
        raise BadRequestError(
            f"the {pairs} (file, object) pairs would record {size // 1000} KB of keys, names and comments "
            f"({comments // 1000} KB of comments); at most {MAX_NEW_RECORD_BYTES // 1000} KB per request: "
            "shorten the comments, or send fewer files or objects per request",
            field="comment" if comments * 2 > size else "files",
        )
