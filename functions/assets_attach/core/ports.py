"""What the job core needs of each outside system, as ``typing.Protocol``s: the seams between the core and the adapters.

The core is annotated with these, never with an adapter's class: ``runtime`` passes the real adapters (``aws/``,
``atlassian/``), the unit tests pass in-memory fakes (``tests/unit/fakes.py``), and mypy checks both against the
same port. Each port holds only the methods the core calls; a contract test
(``tests/integration/test_port_contract.py``) runs the same lease, claim and store scenarios on the fakes and, over
moto, on the real adapters, so the fakes cannot drift from the behaviour they stand in for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # types only: importing the ports loads no adapter (each handler loads only what it uses)
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from ..atlassian.assets_client import Attachment
    from ..atlassian.jira_client import JiraAttachment
    from ..atlassian.media_api import MediaCredentials, UploadedMedia
    from ..atlassian.media_chunked import ChunkedFile, UploadListener
    from ..aws.attached_pairs import LostLink, PairClaim
    from ..aws.link_lease import Lease
    from ..aws.s3_source import S3Object
    from ..integrity import Check
    from ..job_record import ChunkedUpload, FileChange, JobChange, JobRecord
    from ..jobs import JobMessage, JobSpec


class FileSource(Protocol):
    """What the engine needs of a file: S3 objects, Jira attachments and local files all provide it."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def expected_md5(self) -> str | None: ...
    @property
    def verified_checksum(self) -> Check | None:
        """A checksum the source verifies itself while it streams the whole file (S3's full-object checksum)."""
        ...

    def chunks(self, start: int = 0) -> Iterator[bytes]:
        """The bytes from offset ``start`` on (a resumed chunked upload starts after its appended chunks)."""
        ...


class StorePort(Protocol):
    """The job records (``aws/job_store.JobStore``): created once, read back typed, changed field by field."""

    def create(self, job_id: str, spec: JobSpec) -> None: ...
    def create_if_absent(self, job_id: str, spec: JobSpec) -> bool: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def add_refs(self, record: JobRecord, refs: list[str]) -> None: ...
    def replace_failed_drop(self, job_id: str, spec: JobSpec) -> None: ...
    def update(self, job_id: str, change: JobChange) -> None: ...
    def update_file(self, job_id: str, index: int, change: FileChange) -> None: ...


class LeasesPort(Protocol):
    """One link at a time per Assets object, with generations (``aws/link_lease.LinkLeases``)."""

    def acquire(self, object_id: str, holder: str) -> Lease: ...
    def check_free(self, object_id: str, holder: str) -> None: ...
    def release(self, lease: Lease, outcomes: Mapping[int, str | None]) -> None: ...
    def linked_between(self, object_id: str, after: int, before: int) -> set[str] | None: ...


class ClaimsPort(Protocol):
    """Each Jira attachment on each object once, across jobs (``aws/attached_pairs.AttachedPairs``)."""

    def claim(self, jira_attachment_id: str, object_id: str, holder: str) -> PairClaim: ...
    def attached_ids(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]: ...
    def take_over(self, jira_attachment_id: str, object_id: str, holder: str, lost: PairClaim) -> bool: ...
    def lost(self, jira_attachment_id: str, object_id: str, holder: str, link: LostLink) -> None: ...
    def attached(self, jira_attachment_id: str, object_id: str, holder: str, attachment_id: str) -> None: ...
    def release(self, jira_attachment_id: str, object_id: str, holder: str) -> None: ...


class QueuePort(Protocol):
    """The jobs queue (``aws/job_queue.JobQueue``)."""

    def send(self, message: JobMessage, *, delay_seconds: int = 0) -> None: ...
    def hand_back(self, receipt_handle: str, wait: float) -> None: ...


class S3Port(Protocol):
    """S3 objects as sources (``aws/s3_source.S3Source``): described at acceptance, read back as accepted."""

    def head(self, bucket: str, key: str, *, pin: dict[str, str] | None = None) -> S3Object: ...
    def head_accepted(self, bucket: str, key: str, pin: dict[str, str]) -> FileSource: ...


class JiraPort(Protocol):
    """Jira attachments (``atlassian/jira_client.JiraClient``): looked up at acceptance, streamed by the worker."""

    def attachment(self, attachment_id: str, field: str = "jiraAttachments") -> JiraAttachment: ...
    def issue_attachments(self, issue_key: str) -> list[JiraAttachment]: ...
    def source(self, attachment_id: str, *, name: str, size: int, content_type: str | None) -> FileSource: ...


class AssetsPort(Protocol):
    """Assets (``atlassian/assets_client.AssetsClient``): steps 1 and 3, the attachment list, keys to ids."""

    def media_credentials(self, object_id: str) -> MediaCredentials: ...
    def link(
        self, object_id: str, *, filename: str, content_type: str, media_id: str, size: int, comment: str
    ) -> Attachment: ...
    def list_attachments(self, object_id: str) -> list[Attachment]: ...
    def find_object_id(self, object_key: str) -> str: ...


class MediaPort(Protocol):
    """Step 2 in one POST (``atlassian/media_upload.MediaUploader``), and the stored file it made."""

    def upload(
        self,
        credentials: MediaCredentials,
        *,
        filename: str,
        content_type: str,
        size: int,
        open_chunks: Callable[[], Iterable[bytes]],
    ) -> UploadedMedia: ...
    def stored_file(self, credentials: MediaCredentials, media: UploadedMedia) -> UploadedMedia: ...


class ChunkedMediaPort(Protocol):
    """Step 2 in chunks (``atlassian/media_chunked.ChunkedUploader``), resumable from a recorded point."""

    def upload(
        self,
        credentials: MediaCredentials,
        file: ChunkedFile,
        *,
        concurrency: int,
        resume: ChunkedUpload | None = None,
        listener: UploadListener | None = None,
    ) -> UploadedMedia: ...


class RunOnce(Protocol):
    """Runs the job once, one invocation at a time (Runtime.run_job_once); raises a retryable AttachError to be
    tried again, IdempotencyAlreadyInProgressError while another invocation runs it."""

    def __call__(self, *, job: JobMessage, time_left: Callable[[], float]) -> object: ...


class SendJob(Protocol):
    """Queues a job message (the job queue's ``send``)."""

    def __call__(self, message: JobMessage, *, delay_seconds: int = 0) -> None: ...
