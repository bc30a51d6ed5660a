"""The one family of errors the engine raises.

Adapters translate what they catch (botocore ``ClientError``, non-2xx replies, socket errors) into these,
with ``raise ... from``. Each error says which step failed, the HTTP status where there was one, whether a
retry can help, and a machine-readable ``code``. Messages never carry a token, JWT or Authorization header.
The webhook maps them to HTTP answers and the worker to retry-or-fail, each in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

# Where a failure happened; also the ``step`` dimension of the Failures metric.
Step = Literal[
    "validate",
    "secret",
    "workspace",
    "credentials",
    "upload",
    "link",
    "list",
    "delete",
    "aql",
    "read",
    "s3-head",
    "s3-read",
    "jira",
    "jira-read",
    "jobs",
    "queue",
    "lease",
    "deadline",
    "internal",
]


class AttachError(Exception):
    """Base class: something stopped a file from becoming an attachment."""

    code = "attach_failed"
    retryable = False
    # Whether the text names the step that failed ("upload: …"): for the errors about what the request named (the
    # object, the source, its size), the step is where it was noticed, which the reader does not need.
    show_step = True

    def __init__(
        self,
        message: str,
        *,
        step: Step | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.status = status
        self.field = field
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        where = f"{self.step}: " if self.step and self.show_step else ""
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{where}{self.message}{status}"


class ContinueLaterError(AttachError):
    """Not a failure: the job cannot go on in this invocation (out of time, or another job is linking to the
    object) and continues in a new message after ``retry_after`` seconds, without using up a receive."""

    retryable = True


class DeadlineError(ContinueLaterError):
    """Not enough time left in this invocation to start (or go on with) a file; the job continues in a new message,
    a chunked upload from its last accepted chunk."""

    code = "deadline"


class ConfigError(AttachError):
    """A setting or the secret is missing or malformed."""

    code = "config_error"


class BadRequestError(AttachError):
    """The caller named something that cannot be attached (bad object id, unknown bucket...)."""

    code = "bad_request"


class SiteUrlMissingError(BadRequestError):
    """Jira attachments were asked for, and the secret names no Jira site."""

    code = "site_url_missing"


class BucketNotAllowedError(AttachError):
    code = "bucket_not_allowed"


class SourceNotFoundError(AttachError):
    """The S3 object (or local file) does not exist."""

    code = "source_not_found"
    show_step = False


class SourceAccessError(AttachError):
    """The S3 object exists but this role may not read it."""

    code = "source_access_denied"
    show_step = False


class SourceChangedError(AttachError):
    """The S3 object changed or vanished since the request was accepted."""

    code = "source_changed"
    show_step = False


class SourceDeletedError(SourceChangedError):
    """The accepted S3 object was deleted since (a delete marker is current, or its version or key is gone)."""

    code = "source_deleted"


class FileTooLargeError(AttachError):
    code = "file_too_large"
    show_step = False


def check_size(size: int, limit: int, what: str) -> None:
    """Refuse a file over the size limit (MAX_FILE_SIZE_BYTES), before any byte moves."""
    if size > limit:
        raise FileTooLargeError(
            f"{what} is {size} bytes, over the {limit}-byte limit (MAX_FILE_SIZE_BYTES)",
            step="validate",
            status=413,
        )


class ObjectNotFoundError(AttachError):
    """No Assets object answers to the given id or key."""

    code = "object_not_found"
    show_step = False


class MediaHostNotAllowedError(AttachError):
    """The credentials named a media host outside MEDIA_ALLOWED_HOSTS; the JWT was not sent."""

    code = "media_host_not_allowed"


class IntegrityError(AttachError):
    """The bytes sent differ from the S3 object (count, MD5, or the size the media service reports)."""

    code = "integrity_mismatch"


class LinkOutcomeUnknownError(AttachError):
    """A link was interrupted and the object's attachments cannot be listed to learn whether it happened."""

    code = "link_outcome_unknown"


class LinkAmbiguousError(AttachError):
    """A link was interrupted and more than one attachment could be the one it made; none is guessed."""

    code = "link_ambiguous"


class InternalError(AttachError):
    """A defect that would fail the same way on every retry (reported with the exception's type only)."""

    code = "internal_error"


class AtlassianError(AttachError):
    """Atlassian answered with an error status or could not be reached."""

    code = "atlassian_error"


class AtlassianAuthError(AtlassianError):
    """401/403 from the Assets API: the e-mail, API token or its scopes are wrong."""

    code = "atlassian_auth_failed"


class MediaTokenExpiredError(AtlassianError):
    """The media service rejected the JWT: fresh credentials (step 1) fix it."""

    code = "media_token_expired"
    retryable = True


class ChunkedUploadRefusedError(AtlassianError):
    """The media service refused to create a chunked upload (401, 403, 404 or 405): it does not offer that protocol
    to this client, and the single multipart POST is the way (``MEDIA_UPLOAD_MODE=auto`` falls back to it)."""

    code = "chunked_upload_refused"


class ChunkedUploadStaleError(AtlassianError):
    """A chunked upload cannot be continued from where the caller stands: the upload is gone (404) or has another
    number of chunks appended than the caller's offset (409). Starting a new upload fixes it."""

    code = "chunked_upload_stale"
    retryable = True


class ApiError(AttachError):
    """Refusals of the webhook API itself, never a file's outcome (so never a job's ``errorCode``)."""


class UnauthorizedError(ApiError):
    code = "unauthorized"


class UnsupportedMediaTypeError(ApiError):
    code = "unsupported_media_type"


class JobNotFoundError(ApiError):
    code = "job_not_found"


class JobInProgressError(ApiError):
    code = "in_progress"


class JobNotRetryableError(ApiError):
    """Only a failed job can be run again (``POST /attachments/jobs/{jobId}/retry``)."""

    code = "not_retryable"


class UnavailableError(ApiError):
    """503: nothing was accepted, the same request may be sent again."""

    code = "unavailable"


class RouteNotFoundError(ApiError):
    code = "not_found"


# The CLI's own errors against a deployed stack: never an answer of the API, whether or not they are imported.
_CLIENT_SIDE = ("assets_attach.stack_api", "assets_attach.backfill")


def _families() -> Iterator[type[AttachError]]:
    pending: list[type[AttachError]] = [AttachError]
    while pending:
        cls = pending.pop()
        # A ContinueLaterError is not a failure: never shown as one.
        if not issubclass(cls, ContinueLaterError) and not cls.__module__.startswith(_CLIENT_SIDE):
            yield cls
        pending += cls.__subclasses__()


def error_codes(*, files_only: bool = False) -> list[str]:
    """Every ``code`` an error answer (or, ``files_only``, a job's file entry as ``errorCode``) can carry: the
    enums of openapi.json, read from the classes. Errors defined beside their adapters (the job store's) count
    once their module is imported."""
    return sorted({c.code for c in _families() if not (files_only and issubclass(c, ApiError))})
