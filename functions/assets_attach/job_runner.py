"""Running one job: each (file, object) pair attached once, and the job record true at every step."""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from . import retry_policy
from .atlassian.assets_client import AssetsClient, Attachment
from .atlassian.jira_client import JiraClient
from .attach import Attacher, FileSource, UploadProgress
from .aws.attached_pairs import AttachedPairs, PairClaim, busy
from .aws.job_store import JobStore
from .aws.link_lease import Lease, LinkLeases
from .aws.s3_source import S3Source
from .errors import AtlassianError, AttachError, ContinueLaterError, LinkAmbiguousError, LinkOutcomeUnknownError
from .job_listing import ref_object
from .jobs import ChunkedUpload, FileRecord, JobFile, JobRecord, JobSpec, JobStatus, Target
from .link_recovery import candidates, decide_recovery, marker_before_link
from .observability import NAMESPACE, logger, metrics

PROGRESS_SECONDS = 10.0  # how often a long upload logs its progress and updates bytesSent
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


class ProgressRecord:
    """An upload's progress in the job record: a chunked upload's state after every append (what a retry resumes),
    ``bytesSent`` and a log line at most every PROGRESS_SECONDS."""

    def __init__(self, store: JobStore, job_id: str, index: int, size: int) -> None:
        self._store = store
        self._job_id = job_id
        self._index = index
        self._size = size
        self._chunked: ChunkedUpload | None = None
        self._shown = time.monotonic()

    def __call__(self, progress: UploadProgress) -> None:
        now = time.monotonic()
        due = now - self._shown >= PROGRESS_SECONDS
        if progress.chunked is not None and progress.chunked != self._chunked:
            self._chunked = progress.chunked
            self._store.update_file(
                self._job_id, self._index, bytesSent=progress.bytes_sent, chunkedUpload=progress.chunked.model_dump()
            )
        elif due:
            self._store.update_file(self._job_id, self._index, bytesSent=progress.bytes_sent)
        if due:
            self._shown = now
            logger.info("uploading", extra={"bytesSent": progress.bytes_sent, "size": self._size})


class JobRunner:
    def __init__(
        self,
        attacher: Attacher,
        assets: AssetsClient,
        s3: S3Source,
        jira: JiraClient,
        store: JobStore,
        leases: LinkLeases,
        pairs: AttachedPairs,
    ):
        self._attacher = attacher
        self._assets = assets
        self._s3 = s3
        self._jira = jira
        self._store = store
        self._leases = leases
        self._pairs = pairs

    def run(self, job_id: str, spec: JobSpec, *, time_left: Callable[[], float]) -> JobRecord:
        """Do what is left of the job, pair by pair (a redelivered job resumes with the pairs not done). Raises a
        retryable AttachError to be tried again later."""
        record = self._store.get(job_id)
        if record is None:
            self._store.create_if_absent(job_id, spec)
            record = self._stored(job_id)
        if all(f.done for f in record.files):
            logger.info("every file of this job is done; nothing to do", extra={"status": record.status})
            return record
        self._store.update(job_id, status="running", attempts=record.attempts + 1)

        resolved: dict[str, str] = {}  # object key → id, in this invocation
        for index, ((wanted, target), state) in enumerate(zip(spec.pairs(), record.files, strict=True)):
            if state.done:
                continue
            logger.append_keys(source=wanted.source, objectId=state.objectId or target.object_key)
            if time_left() < seconds_needed(wanted.size):
                raise DeadlineError("not enough time left in this invocation", step="deadline")
            object_id = state.objectId
            try:
                if object_id is None:
                    object_id = self._object_id(job_id, index, target, resolved)
                    self._store.add_refs(record, [ref_object(object_id)])  # found by the object's id from now on
                    if index == 0 and record.objectId is None:  # the job view's objectId: the first pair's
                        self._store.update(job_id, objectId=object_id)
                self._attach_pair(job_id, index, object_id, wanted, state)
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
                if wanted.jiraAttachmentId and object_id:
                    self._pairs.release(wanted.jiraAttachmentId, object_id, f"{job_id}#{index}")

        failed = [f for f in self._stored(job_id).files if f.status == "failed"]
        if failed:
            return self._finish(job_id, "failed", f"{len(failed)} of {len(record.files)} file(s) failed")
        return self._finish(job_id, "succeeded")

    def _object_id(self, job_id: str, index: int, target: Target, resolved: dict[str, str]) -> str:
        """The pair's object id, resolved from its key (AQL) where the job names objects by key; recorded on the
        pair."""
        object_id = target.object_id
        if object_id is None:
            key = target.object_key or ""
            if key not in resolved:
                resolved[key] = self._assets.find_object_id(key)
            object_id = resolved[key]
        self._store.update_file(job_id, index, objectId=object_id)
        return object_id

    def fail(self, job_id: str, reason: str) -> None:
        """Give up on the job (its message is about to go to the dead-letter queue); its Jira pairs are free again."""
        record = self._finish(job_id, "failed", reason)
        for index, state in enumerate(record.files):
            if state.jiraAttachmentId and state.objectId and not state.done:
                self._pairs.release(state.jiraAttachmentId, state.objectId, f"{job_id}#{index}")

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

    def _attach_pair(self, job_id: str, index: int, object_id: str, wanted: JobFile, state: FileRecord) -> None:
        holder = f"{job_id}#{index}"
        if wanted.jiraAttachmentId:
            claim = self._pairs.claim(wanted.jiraAttachmentId, object_id, holder)
            if claim.attachment_id:
                self._adopt(job_id, index, claim)
                return
            if claim.holder != holder:
                raise busy(wanted.jiraAttachmentId, object_id, claim)
        if state.status == "linking":
            adopted = self._recovered(job_id, index, object_id, wanted, state, holder)
            if adopted is not None:
                return
        self._leases.check_free(object_id, holder)  # no upload in vain while another job links to the object
        source = self._source(wanted)
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

        started = time.monotonic()
        try:
            result = self._attacher.attach(
                object_id,
                source,
                filename=wanted.filename,
                comment=wanted.comment,
                before_link=before_link,
                resume=state.chunkedUpload,
                on_progress=ProgressRecord(self._store, job_id, index, wanted.size),
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
        # The pair's record before the job's: a crash between the two leaves a pair that adopts on redelivery,
        # where the other order would leave the pair claimed (others wait an hour, then attach it twice).
        self._pair_attached(wanted, object_id, holder, result.attachment_id)
        self._store.update_file(
            job_id,
            index,
            status="attached",
            attachmentId=result.attachment_id,
            mediaId=result.media_id,
            integrityCheck=result.check,
        )
        if lease is not None:
            self._leases.release(lease, {lease.generation: result.attachment_id})
        metrics.add_metric(name="FilesAttached", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="BytesAttached", unit=MetricUnit.Bytes, value=result.size)
        # From the upload's first byte to the link's reply (the dashboard's p50/p95).
        metrics.add_metric(name="AttachSeconds", unit=MetricUnit.Seconds, value=round(time.monotonic() - started, 3))
        logger.info("attached", extra={"attachmentId": result.attachment_id, "size": result.size})

    def _source(self, wanted: JobFile) -> FileSource:
        """The accepted content: the pinned S3 version (unless deleted since), or the Jira attachment."""
        if wanted.jiraAttachmentId:
            return self._jira.source(
                wanted.jiraAttachmentId, name=wanted.filename, size=wanted.size, content_type=wanted.contentType
            )
        return self._s3.head_accepted(wanted.bucket or "", wanted.key or "", wanted.pin())

    def _pair_attached(self, wanted: JobFile, object_id: str, holder: str, attachment_id: str) -> None:
        if wanted.jiraAttachmentId:
            self._pairs.attached(wanted.jiraAttachmentId, object_id, holder, attachment_id)

    def _adopt(self, job_id: str, index: int, claim: PairClaim) -> None:
        """The pair is attached already: by an earlier run of this job, or by another job (named in the record)."""
        attached_by = None if claim.job_id == job_id else claim.job_id
        logger.info("the Jira attachment is on the object already", extra={"attachedBy": attached_by})
        self._store.update_file(
            job_id, index, status="attached", attachmentId=claim.attachment_id, attachedBy=attached_by
        )

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
    ) -> str | None:
        """After an interrupted link: its attachment's id if it is there and provably this file's (now recorded);
        None if the list proves it absent (link again). Anything in between fails the file; nothing is guessed."""
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
        if recovery.action == "adopt" and recovery.attachment_id:
            adopted = recovery.attachment_id
            logger.info("an interrupted link had attached this file", extra={"attachmentId": adopted})
            self._pair_attached(wanted, object_id, holder, adopted)  # first, as in _attach_pair
            self._store.update_file(job_id, index, status="attached", attachmentId=adopted)
            self._leases.release(lease, now_and_then)
            return adopted
        if recovery.action == "relink":
            logger.info("the interrupted link made no attachment; attaching again")
            self._leases.release(lease, now_and_then)
            return None
        self._leases.release(lease, this_generation_made_nothing)
        raise LinkAmbiguousError(
            f"{recovery.reason}; check the object and remove any copy that is not this file", step="link"
        )
