"""Running one job: resolve the object, attach each file once, and keep the job record true at every step."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from . import retry_policy
from .atlassian.assets_client import AssetsClient, Attachment
from .attach import Attacher
from .aws.job_store import JobStore
from .aws.link_lease import Lease, LinkLeases
from .aws.s3_source import S3Source
from .errors import AtlassianError, AttachError, ContinueLaterError, LinkAmbiguousError, LinkOutcomeUnknownError
from .jobs import FileRecord, JobFile, JobRecord, JobSpec, JobStatus
from .link_recovery import candidates, decide_recovery, marker_before_link
from .observability import NAMESPACE, logger, metrics

# Time to keep in hand before starting a file: the fixed steps plus the bytes at a cautious 10 MiB/s.
FIXED_SECONDS_PER_FILE = 20.0
CAUTIOUS_BYTES_PER_SECOND = 10 * 1024 * 1024


class DeadlineError(ContinueLaterError):
    """Not enough time left in this invocation to start the next file; the job continues in a new message."""

    code = "deadline"


def seconds_needed(size: int) -> float:
    return FIXED_SECONDS_PER_FILE + size / CAUTIOUS_BYTES_PER_SECOND


def count_failure(step: str | None) -> None:
    """The Failures metric, with the step that failed as its dimension."""
    with single_metric(name="Failures", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="step", value=step or "unknown")


class JobRunner:
    def __init__(self, attacher: Attacher, assets: AssetsClient, s3: S3Source, store: JobStore, leases: LinkLeases):
        self._attacher = attacher
        self._assets = assets
        self._s3 = s3
        self._store = store
        self._leases = leases

    def run(self, job_id: str, spec: JobSpec, *, time_left: Callable[[], float]) -> JobRecord:
        """Do what is left of the job (a redelivered job resumes with the files not done). Raises a retryable
        AttachError to be tried again later."""
        record = self._store.get(job_id)
        if record is None:
            self._store.create_if_absent(job_id, spec)
            record = self._stored(job_id)
        if all(f.done for f in record.files):
            logger.info("every file of this job is done; nothing to do", extra={"status": record.status})
            return record
        self._store.update(job_id, status="running", attempts=record.attempts + 1)

        try:
            object_id = spec.objectId or record.objectId or self._assets.find_object_id(spec.objectKey or "")
        except AttachError as e:
            if e.retryable:
                raise
            return self._finish(job_id, "failed", f"{e}")
        if not record.objectId:
            self._store.update(job_id, objectId=object_id)
        logger.append_keys(objectId=object_id)

        for index, (wanted, state) in enumerate(zip(spec.files, record.files, strict=True)):
            if state.done:
                continue
            logger.append_keys(bucket=wanted.bucket, key=wanted.key)
            if time_left() < seconds_needed(wanted.size):
                raise DeadlineError("not enough time left in this invocation", step="deadline")
            try:
                self._attach_file(job_id, index, object_id, wanted, state)
            except Exception as caught:
                error = retry_policy.permanent_error(caught)
                if error is None:
                    raise
                count_failure(error.step)
                logger.warning(
                    "file failed",
                    extra={"error": str(error), "step": error.step, "code": error.code},
                    exc_info=not isinstance(caught, AttachError),  # a defect: its traceback is what to fix
                )
                self._store.update_file(job_id, index, status="failed", error=str(error), errorCode=error.code)

        failed = [f for f in self._stored(job_id).files if f.status == "failed"]
        if failed:
            return self._finish(job_id, "failed", f"{len(failed)} of {len(record.files)} file(s) failed")
        return self._finish(job_id, "succeeded")

    def fail(self, job_id: str, reason: str) -> None:
        """Give up on the job (its message is about to go to the dead-letter queue)."""
        self._finish(job_id, "failed", reason)

    def _stored(self, job_id: str) -> JobRecord:
        record = self._store.get(job_id)
        if record is None:
            raise AttachError(f"job {job_id} vanished from the job store", step="jobs", retryable=True)
        return record

    def _finish(self, job_id: str, status: JobStatus, error: str | None = None) -> JobRecord:
        self._store.update(job_id, status=status, error=error)  # a resumed job that succeeds loses its old error
        logger.info("job finished", extra={"status": status, "error": error})
        if status == "failed":
            metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
        return self._stored(job_id)

    def _attach_file(self, job_id: str, index: int, object_id: str, wanted: JobFile, state: FileRecord) -> None:
        holder = f"{job_id}#{index}"
        if state.status == "linking" and self._recovered(job_id, index, object_id, wanted, state, holder):
            return
        self._leases.check_free(object_id, holder)  # no upload in vain while another job links to the object
        source = self._s3.head_accepted(wanted.bucket, wanted.key, wanted.pin())
        self._store.update_file(job_id, index, status="uploading")
        lease: Lease | None = None

        def before_link(media_id: str) -> None:
            # From here until the link's outcome is known, nothing else links to this object (see link_lease).
            nonlocal lease
            lease = self._leases.acquire(object_id, holder)
            listed = self._attachments(object_id)
            marker = marker_before_link(listed, lease.generation) if listed is not None else None
            stored = marker.model_dump() if marker else None
            self._store.update_file(job_id, index, status="linking", mediaId=media_id, linkMarker=stored)

        try:
            result = self._attacher.attach(
                object_id, source, filename=wanted.filename, comment=wanted.comment, before_link=before_link
            )
        except Exception as e:
            if lease is not None:
                # Refused (4xx), or failed before the call: nothing was made. A lost reply or a 5xx: unknown, and
                # left unrecorded; the retry finds out under a newer generation.
                made_nothing = isinstance(e, AttachError) and (
                    e.step != "link" or (e.status is not None and e.status < 500)
                )
                self._leases.release(lease, {lease.generation: None} if made_nothing else {})
            raise
        self._store.update_file(
            job_id, index, status="attached", attachmentId=result.attachment_id, mediaId=result.media_id
        )
        if lease is not None:
            self._leases.release(lease, {lease.generation: result.attachment_id})
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

    def _recovered(
        self, job_id: str, index: int, object_id: str, wanted: JobFile, state: FileRecord, holder: str
    ) -> bool:
        """After an interrupted link: True if its attachment is there and provably this file's (now recorded);
        False if the list proves it absent (link again). Anything in between fails the file; nothing is guessed."""
        lease = self._leases.acquire(object_id, holder)
        listed = self._attachments(object_id)
        marker = state.linkMarker
        # After a crash the lease may still be the interrupted link's own generation, whose outcome is unknown.
        this_generation_made_nothing = (
            {} if marker and lease.generation == marker.generation else {lease.generation: None}
        )
        if marker is None or listed is None:
            self._leases.release(lease, this_generation_made_nothing)
            raise LinkOutcomeUnknownError(
                "an interrupted link may have attached this file, and the object's attachments cannot be listed "
                "to tell; check the object and attach the file again if it is missing",
                step="link",
            )
        found = candidates(listed, marker, wanted.filename, wanted.size)
        made_by_others = self._leases.linked_between(object_id, marker.generation, lease.generation) if found else set()
        recovery = decide_recovery(found, made_by_others)
        now_and_then = {lease.generation: None, marker.generation: recovery.attachment_id}
        if recovery.action == "adopt":
            logger.info("an interrupted link had attached this file", extra={"attachmentId": recovery.attachment_id})
            self._store.update_file(job_id, index, status="attached", attachmentId=recovery.attachment_id)
            self._leases.release(lease, now_and_then)
            return True
        if recovery.action == "relink":
            logger.info("the interrupted link made no attachment; attaching again")
            self._leases.release(lease, now_and_then)
            return False
        self._leases.release(lease, this_generation_made_nothing)
        raise LinkAmbiguousError(
            f"{recovery.reason}; check the object and remove any copy that is not this file", step="link"
        )
