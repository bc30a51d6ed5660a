"""Running one job: each (file, object) pair attached once, and the job record true at every step."""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from ..api_models import JobStatus
from ..atlassian.assets_client import Attachment
from ..aws.attached_pairs import LostLink, PairBusyError, busy
from ..aws.link_lease import Lease
from ..errors import (
    AtlassianError,
    AttachError,
    DeadlineError,
    FileTooLargeError,
    LinkAmbiguousError,
    LinkOutcomeUnknownError,
)
from ..job_listing import ref_object
from ..job_record import ChunkedUpload, FileRecord, JobChange, JobRecord, LinkMarker
from ..jobs import JobFile, JobSpec, Target
from ..observability import NAMESPACE, logger, metrics
from . import retry_policy
from .attach import Attacher, UploadProgress
from .link_recovery import candidates, decide_recovery, marker_before_link
from .pair_ledger import PairLedger
from .ports import AssetsPort, ClaimsPort, FileSource, JiraPort, LeasesPort, S3Port, StorePort

PROGRESS_SECONDS = 10.0  # how often a long upload logs its progress and updates bytesSent
# Time to keep in hand before starting a file: the fixed steps plus the bytes at a cautious 10 MiB/s.
FIXED_SECONDS_PER_FILE = 20.0
CAUTIOUS_BYTES_PER_SECOND = 10 * 1024 * 1024
# A chunked upload may span invocations (it stops FIXED_SECONDS_PER_FILE before the deadline and resumes from its
# last accepted chunk): it starts with time for this much of it.
SPAN_SLICE_BYTES = 128 * 1024 * 1024


def seconds_needed(size: int) -> float:
    return FIXED_SECONDS_PER_FILE + size / CAUTIOUS_BYTES_PER_SECOND


def seconds_to_start(size: int, spans_invocations: bool) -> float:
    """Time to have in hand before starting a file of ``size`` bytes: all of it, or a first slice of it where the
    upload can stop and go on in the next invocation."""
    return seconds_needed(min(size, SPAN_SLICE_BYTES) if spans_invocations else size)


def count_failure(step: str | None) -> None:
    """The Failures metric, with the step that failed as its dimension."""
    with single_metric(name="Failures", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="step", value=step or "unknown")


class ProgressRecord:
    """An upload's progress in the job record: a chunked upload's state after every append (what a retry resumes),
    ``bytesSent`` and a log line at most every PROGRESS_SECONDS."""

    def __init__(self, ledger: PairLedger, size: int) -> None:
        self._ledger = ledger
        self._size = size
        self._chunked: ChunkedUpload | None = None
        self._shown = time.monotonic()

    def __call__(self, progress: UploadProgress) -> None:
        now = time.monotonic()
        due = now - self._shown >= PROGRESS_SECONDS
        if progress.chunked is not None and progress.chunked != self._chunked:
            self._chunked = progress.chunked
            self._ledger.resume_point(progress.chunked, progress.bytes_sent)
        elif due:
            self._ledger.progress(progress.bytes_sent)
        if due:
            self._shown = now
            logger.info("uploading", extra={"bytesSent": progress.bytes_sent, "size": self._size})


class JobRunner:
    def __init__(
        self,
        attacher: Attacher,
        assets: AssetsPort,
        s3: S3Port,
        jira: JiraPort,
        store: StorePort,
        leases: LeasesPort,
        pairs: ClaimsPort,
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
        elif len(record.files) != len(spec.pairs()):  # what a failed S3 drop left, before its objects were known
            self._store.replace_failed_drop(job_id, spec)
            record = self._stored(job_id)
        if all(f.done for f in record.files):
            logger.info("every file of this job is done; nothing to do", extra={"status": record.status})
            return record
        self._store.update(job_id, JobChange(status="running", attempts=record.attempts + 1))

        invocation = time_left()  # the time this invocation started the job with
        resolved: dict[str, str] = {}  # object key → id, in this invocation
        waiting: PairBusyError | None = None  # the first pair that waits for another job (the others go on)
        for index, ((wanted, target), state) in enumerate(zip(spec.pairs(), record.files, strict=True)):
            if state.done:
                continue
            ledger = PairLedger(self._store, job_id, index)
            logger.append_keys(source=wanted.source, objectId=state.objectId or target.object_key)
            object_id = state.objectId
            try:
                self._check_time(wanted, time_left(), invocation)
                if object_id is None:
                    object_id = self._object_id(ledger, target, resolved)
                    self._store.add_refs(record, [ref_object(object_id)])  # found by the object's id from now on
                    if index == 0 and record.objectId is None:  # the job view's objectId: the first pair's
                        self._store.update(job_id, JobChange(objectId=object_id))
                self._attach_pair(ledger, object_id, wanted, state, time_left)
            except PairBusyError as e:
                logger.info("the pair waits for another job", extra={"waitingFor": e.holder_job})
                if state.waitingFor != e.holder_job:
                    ledger.waiting_for(e.holder_job)
                waiting = waiting or e
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
                ledger.failed(error)
                if wanted.jiraAttachmentId and object_id:
                    lost = isinstance(error, LinkOutcomeUnknownError | LinkAmbiguousError)
                    self._give_up_pair(ledger, wanted.jiraAttachmentId, object_id, may_have_linked=lost)
        if waiting is not None:
            raise waiting  # every free pair is done: the job looks again at the busy ones later

        failed = [f for f in self._stored(job_id).files if f.status == "failed"]
        if failed:
            return self._finish(job_id, "failed", f"{len(failed)} of {len(record.files)} file(s) failed")
        return self._finish(job_id, "succeeded")

    def _check_time(self, wanted: JobFile, time_left: float, invocation: float) -> None:
        """DeadlineError unless this invocation has time to start the file (FileTooLargeError if none ever would)."""
        spans = self._attacher.uses_chunks(wanted.size)
        if time_left >= seconds_to_start(wanted.size, spans):
            return
        if not spans and seconds_needed(wanted.size) > invocation:
            raise FileTooLargeError(
                f"{wanted.filename} ({wanted.size} bytes) cannot be sent in one request within an invocation "
                f"({invocation:.0f} s, at a cautious 10 MiB/s); chunked uploads (MEDIA_UPLOAD_MODE=auto or chunked) "
                "go on across invocations",
                step="deadline",
            )
        raise DeadlineError("not enough time left in this invocation", step="deadline")

    def _object_id(self, ledger: PairLedger, target: Target, resolved: dict[str, str]) -> str:
        """The pair's object id, resolved from its key (AQL) where the job names objects by key; recorded on the
        pair."""
        object_id = target.object_id
        if object_id is None:
            key = target.object_key or ""
            if key not in resolved:
                resolved[key] = self._assets.find_object_id(key)
            object_id = resolved[key]
        ledger.resolved(object_id)
        return object_id

    def fail(self, job_id: str, reason: str) -> None:
        """Give up on the job (its message is about to go to the dead-letter queue); its Jira pairs go to the
        next job: free where nothing was linked, else with the lost link to settle."""
        for index, state in enumerate(self._finish(job_id, "failed", reason).files):
            if state.jiraAttachmentId and state.objectId and not state.done:
                linking = state.status == "linking"
                ledger = PairLedger(self._store, job_id, index)
                self._give_up_pair(ledger, state.jiraAttachmentId, state.objectId, may_have_linked=linking)

    def _give_up_pair(
        self, ledger: PairLedger, jira_attachment_id: str, object_id: str, *, may_have_linked: bool
    ) -> None:
        """A Jira pair this job will not attach: released where its link surely made nothing, else left with its
        lost link on the claim (the link may have worked: the next job settles that before it links again)."""
        if not may_have_linked:
            self._pairs.release(jira_attachment_id, object_id, ledger.holder)
            return
        state = self._stored(ledger.job_id).files[ledger.index]
        logger.warning("a link of unknown outcome is left for the next job to settle", extra={"pair": ledger.holder})
        lost = LostLink(state.linkMarker, state.filename, state.size or 0)
        self._pairs.lost(jira_attachment_id, object_id, ledger.holder, lost)

    def _stored(self, job_id: str) -> JobRecord:
        record = self._store.get(job_id)
        if record is None:
            raise AttachError(f"job {job_id} vanished from the job store", step="jobs", retryable=True)
        return record

    def _finish(self, job_id: str, status: JobStatus, error: str | None = None) -> JobRecord:
        # A None error is written too: a resumed job that succeeds loses its old error.
        self._store.update(job_id, JobChange(status=status, error=error))
        logger.info("job finished", extra={"status": status, "error": error})
        if status == "failed":
            metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
        return self._stored(job_id)

    def _attach_pair(
        self,
        ledger: PairLedger,
        object_id: str,
        wanted: JobFile,
        state: FileRecord,
        time_left: Callable[[], float],
    ) -> None:
        holder = ledger.holder
        # This job's own interrupted link first (a redelivery, or a retry of the pair it failed): its copy may exist
        # whoever holds the pair's claim by now.
        if state.link_sent and self._recovered(ledger, object_id, wanted, state):
            return
        if wanted.jiraAttachmentId and self._settled_by_claim(ledger, object_id, wanted.jiraAttachmentId):
            return
        self._leases.check_free(object_id, holder)  # no upload in vain while another job links to the object
        source = self._source(wanted)
        ledger.uploading()
        lease: Lease | None = None

        def before_link(media_id: str) -> None:
            # From here until the link's outcome is known, nothing else links to this object (see link_lease).
            nonlocal lease
            lease = self._leases.acquire(object_id, holder)
            listed = self._attachments(object_id)
            marker = marker_before_link(listed, lease.generation) if listed is not None else None
            ledger.linking(media_id, marker)

        started = time.monotonic()
        try:
            result = self._attacher.attach(
                object_id,
                source,
                filename=wanted.filename,
                comment=wanted.comment,
                before_link=before_link,
                resume=state.chunkedUpload,
                on_progress=ProgressRecord(ledger, wanted.size),
                in_time=lambda: time_left() > FIXED_SECONDS_PER_FILE,
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
        ledger.attached(result.attachment_id, media_id=result.media_id, check=result.check)
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

    def _settled_by_claim(self, ledger: PairLedger, object_id: str, jira_attachment_id: str) -> bool:
        """Claim the Jira pair for this job: True when it turns out attached (adopted), False when this job is to
        attach it; PairBusyError while another job holds it. A lost link another job left is settled first."""
        holder = ledger.holder
        claim = self._pairs.claim(jira_attachment_id, object_id, holder)
        if claim.attachment_id:
            self._adopt(ledger, claim.attachment_id, claim.job_id)
            return True
        if claim.holder == holder:
            return False
        if claim.lost_link is None:
            raise busy(jira_attachment_id, object_id, claim)
        lost = claim.lost_link

        def adopt(attachment_id: str) -> None:
            self._pairs.attached(jira_attachment_id, object_id, claim.holder, attachment_id)
            self._adopt(ledger, attachment_id, claim.job_id)

        logger.info("settling the link another job lost", extra={"lostBy": claim.job_id})
        if self._settle_lost_link(object_id, holder, lost.marker, lost.filename, lost.size, adopt) is not None:
            return True
        if self._pairs.take_over(jira_attachment_id, object_id, holder, claim):
            return False
        return self._settled_by_claim(ledger, object_id, jira_attachment_id)  # settled by another meanwhile

    def _adopt(self, ledger: PairLedger, attachment_id: str, by_job: str) -> None:
        """The pair is attached already: by an earlier run of this job, or by another job (named in the record)."""
        attached_by = None if by_job == ledger.job_id else by_job
        logger.info("the Jira attachment is on the object already", extra={"attachedBy": attached_by})
        ledger.adopted(attachment_id, attached_by)

    def _attachments(self, object_id: str) -> list[Attachment] | None:
        """The object's attachments, or None where the (undocumented) list endpoint is not available."""
        try:
            return self._assets.list_attachments(object_id)
        except AtlassianError as e:
            if e.status in (404, 405):
                logger.warning("cannot list the object's attachments", extra={"status": e.status})
                return None
            raise

    def _recovered(self, ledger: PairLedger, object_id: str, wanted: JobFile, state: FileRecord) -> str | None:
        """After this job's interrupted link: its attachment's id if it is there and provably this file's (now
        recorded); None if the list proves it absent (link again). Anything in between fails the file."""

        def adopt(attachment_id: str) -> None:
            logger.info("an interrupted link had attached this file", extra={"attachmentId": attachment_id})
            self._pair_attached(wanted, object_id, ledger.holder, attachment_id)  # first, as in _attach_pair
            ledger.link_recovered(attachment_id)

        return self._settle_lost_link(object_id, ledger.holder, state.linkMarker, wanted.filename, wanted.size, adopt)

    def _settle_lost_link(
        self,
        object_id: str,
        holder: str,
        marker: LinkMarker | None,
        filename: str,
        size: int,
        adopt: Callable[[str], None],
    ) -> str | None:
        """Whether a link of unknown outcome (made under ``marker``, with ``filename`` and ``size``) attached the
        file: ``adopt(id)`` is called (before the lease goes) and the id returned where it provably did; None where
        the list proves it did not (link again). Anything in between raises; nothing is guessed."""
        lease = self._leases.acquire(object_id, holder)
        listed = self._attachments(object_id)
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
        found = candidates(listed, marker, filename, size)
        made_by_others = self._leases.linked_between(object_id, marker.generation, lease.generation) if found else set()
        recovery = decide_recovery(found, made_by_others)
        now_and_then = {lease.generation: None, marker.generation: recovery.attachment_id}
        if recovery.action == "adopt" and recovery.attachment_id:
            adopt(recovery.attachment_id)
            self._leases.release(lease, now_and_then)
            return recovery.attachment_id
        if recovery.action == "relink":
            logger.info("the interrupted link made no attachment; attaching again")
            self._leases.release(lease, now_and_then)
            return None
        self._leases.release(lease, this_generation_made_nothing)
        raise LinkAmbiguousError(
            f"{recovery.reason}; check the object and remove any copy that is not this file", step="link"
        )
