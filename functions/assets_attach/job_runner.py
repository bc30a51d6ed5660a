"""Running one job: resolve the object, attach each file once, and keep the job record true at every step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from .assets_client import AssetsClient, Attachment
from .attach import Attacher
from .errors import AtlassianError, AttachError
from .jobs import JobFile, JobSpec, JobStore
from .observability import logger, metrics
from .s3_source import S3Source

# Time to keep in hand before starting a file: the fixed steps plus the bytes at a cautious 10 MiB/s.
FIXED_SECONDS_PER_FILE = 20.0
CAUTIOUS_BYTES_PER_SECOND = 10 * 1024 * 1024
# A redelivered job (a duplicate, or a message moved back from the DLQ) resumes with the files not in these states.
FINAL_FILE_STATES = ("attached", "failed")


class DeadlineError(AttachError):
    """Not enough time left in this invocation to start the next file; the job goes back to the queue."""

    code = "deadline"
    retryable = True


def seconds_needed(size: int) -> float:
    return FIXED_SECONDS_PER_FILE + size / CAUTIOUS_BYTES_PER_SECOND


def count_failure(step: str | None) -> None:
    """The Failures metric, with the step that failed as its dimension."""
    with single_metric(name="Failures", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="step", value=step or "unknown")


class JobRunner:
    def __init__(self, attacher: Attacher, assets: AssetsClient, s3: S3Source, store: JobStore):
        self._attacher = attacher
        self._assets = assets
        self._s3 = s3
        self._store = store

    def run(self, job_id: str, spec: JobSpec, *, time_left: Callable[[], float]) -> dict[str, Any]:
        """Do what is left of the job. Raises a retryable AttachError to be tried again later."""
        record = self._store.get(job_id)
        if record is None:
            self._store.create_if_absent(job_id, spec)
            record = self._store.get(job_id)
            assert record is not None
        if all(f["status"] in FINAL_FILE_STATES for f in record["files"]):
            logger.info("every file of this job is done; nothing to do", extra={"status": record["status"]})
            return record
        self._store.update(job_id, status="running", attempts=int(record.get("attempts", 0)) + 1)

        try:
            object_id = spec.objectId or record.get("objectId") or self._assets.find_object_id(spec.objectKey or "")
        except AttachError as e:
            if e.retryable:
                raise
            return self._finish(job_id, "failed", f"{e}")
        if not record.get("objectId"):
            self._store.update(job_id, objectId=object_id)
        logger.append_keys(objectId=object_id)

        for index, (wanted, state) in enumerate(zip(spec.files, record["files"], strict=True)):
            if state["status"] in FINAL_FILE_STATES:
                continue
            logger.append_keys(bucket=wanted.bucket, key=wanted.key)
            if time_left() < seconds_needed(wanted.size):
                raise DeadlineError("not enough time left in this invocation", step="deadline")
            try:
                self._attach_file(job_id, index, object_id, wanted, state)
            except AttachError as e:
                if e.retryable:
                    raise
                count_failure(e.step)
                logger.warning("file failed", extra={"error": str(e), "step": e.step})
                self._store.update_file(job_id, index, status="failed", error=str(e))

        record = self._store.get(job_id) or record
        failed = [f for f in record["files"] if f["status"] == "failed"]
        if failed:
            return self._finish(job_id, "failed", f"{len(failed)} of {len(record['files'])} file(s) failed")
        return self._finish(job_id, "succeeded")

    def fail(self, job_id: str, reason: str) -> None:
        """Give up on the job (its message is about to go to the dead-letter queue)."""
        self._store.update(job_id, status="failed", error=reason)

    def _finish(self, job_id: str, status: str, error: str | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"status": status, "error": error}  # a resumed job that succeeds loses its old error
        self._store.update(job_id, **fields)
        logger.info("job finished", extra=fields)
        return self._store.get(job_id) or {}

    def _attach_file(self, job_id: str, index: int, object_id: str, wanted: JobFile, state: dict[str, Any]) -> None:
        if state["status"] == "linking":
            earlier = self._linked_before(object_id, wanted, state)
            if earlier is not None:
                logger.info("an interrupted attempt had already attached this file", extra={"attachmentId": earlier})
                self._store.update_file(job_id, index, status="attached", attachmentId=earlier)
                return
        source = self._s3.head(wanted.bucket, wanted.key, pin=wanted.pin())
        self._store.update_file(job_id, index, status="uploading")

        def before_link(media_id: str) -> None:
            # What the object holds before step 3: after an interruption, only a new attachment can be ours.
            listed = self._attachments(object_id)
            known = [a.id for a in listed] if listed is not None else None
            self._store.update_file(job_id, index, status="linking", mediaId=media_id, idsBeforeLink=known)

        result = self._attacher.attach(
            object_id, source, filename=wanted.filename, comment=wanted.comment, before_link=before_link
        )
        self._store.update_file(
            job_id, index, status="attached", attachmentId=result.attachment_id, mediaId=result.media_id
        )
        metrics.add_metric(name="FilesAttached", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="BytesAttached", unit=MetricUnit.Bytes, value=result.size)
        logger.info("attached", extra={"attachmentId": result.attachment_id, "size": result.size})

    def _attachments(self, object_id: str) -> list[Attachment] | None:
        """The object's attachments, or None where the (undocumented) list endpoint is not available."""
        try:
            return self._assets.list_attachments(object_id)
        except AtlassianError as e:
            if e.status in (404, 405):
                logger.warning("cannot list the object's attachments", extra={"status": e.status})
                return None
            raise

    def _linked_before(self, object_id: str, wanted: JobFile, state: dict[str, Any]) -> str | None:
        """The attachment an interrupted attempt made: one with this name that was not there before its link."""
        known = state.get("idsBeforeLink")
        current = self._attachments(object_id) if known is not None else None
        if known is None or current is None:
            logger.warning("cannot tell whether the interrupted attempt attached the file; linking again")
            return None
        new = [a for a in current if a.id not in set(known) and a.filename == wanted.filename]
        return new[-1].id if new else None
