"""One (file, object) pair's entry in the job record, written as the job runs: a method for each thing that
happens to the pair, each one ``FileChange`` to the job store.

The job runner builds one per pair, with the store, the job id and the pair's place in the record, and hands it
on instead of the two; it is the only writer of a pair's entry in the job core.
"""

from __future__ import annotations

from ..errors import AttachError
from ..job_record import ChunkedUpload, FileChange, LinkMarker
from .ports import StorePort


class PairLedger:
    def __init__(self, store: StorePort, job_id: str, index: int) -> None:
        self._store = store
        self.job_id = job_id
        self.index = index  # the pair's place in the record's ``files``

    @property
    def holder(self) -> str:
        """The pair as pair claims and link leases name it."""
        return f"{self.job_id}#{self.index}"

    def resolved(self, object_id: str) -> None:
        """The object the job named by key has this id."""
        self._write(FileChange(objectId=object_id))

    def waiting_for(self, job_id: str) -> None:
        """Another job holds this Jira pair; this one waits for it."""
        self._write(FileChange(waitingFor=job_id))

    def uploading(self) -> None:
        self._write(FileChange(status="uploading", waitingFor=None))

    def progress(self, bytes_sent: int) -> None:
        self._write(FileChange(bytesSent=bytes_sent))

    def resume_point(self, chunked: ChunkedUpload, bytes_sent: int) -> None:
        """A chunked upload's state changed: what a retried, continued or redelivered job resumes from."""
        self._write(FileChange(bytesSent=bytes_sent, chunkedUpload=chunked))

    def linking(self, media_id: str, marker: LinkMarker | None) -> None:
        """Step 3 is about to be sent, under ``marker`` (None where the object's attachments cannot be listed)."""
        self._write(FileChange(status="linking", mediaId=media_id, linkMarker=marker))

    def attached(self, attachment_id: str, *, media_id: str, check: str) -> None:
        """This job's link attached the file, its bytes proven the source's by ``check``."""
        self._write(FileChange(status="attached", attachmentId=attachment_id, mediaId=media_id, integrityCheck=check))

    def link_recovered(self, attachment_id: str) -> None:
        """The link of this job whose reply was lost had attached the file."""
        self._write(FileChange(status="attached", attachmentId=attachment_id))

    def adopted(self, attachment_id: str, attached_by: str | None) -> None:
        """The pair was attached already: by an earlier run of this job (None), or by the job ``attached_by``."""
        self._write(FileChange(status="attached", attachmentId=attachment_id, attachedBy=attached_by, waitingFor=None))

    def failed(self, error: AttachError) -> None:
        self._write(FileChange(status="failed", error=str(error), errorCode=error.code))

    def _write(self, change: FileChange) -> None:
        self._store.update_file(self.job_id, self.index, change)
