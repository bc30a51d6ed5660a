"""One attempt at a job message, and what becomes of the message: the worker's retry handling, its collaborators
passed in.

The attempt runs the job once, and again after each short wait ``retry_policy.decide`` lets it sleep through here.
A job that cannot go on in this invocation (out of time, the object's link lease taken, only pairs that other jobs
hold left) continues in a new message, so a long job never uses up its receives. The outcome tells the handler
what to do with the message: ``Done`` (delete it), ``HandBack`` (visible again after the wait) or ``Failed`` (the
job record is failed; with ``dead_letter``, the message is handed back visible at once so that SQS moves it to the
dead-letter queue on its next receive).

One rule, ``final_failure``, says when a job or an S3 drop fails for good: a permanent error, or any error on the
message's last receive. An exception the attempt does not settle propagates: the batch reports the record failed,
and it comes back after the queue's visibility timeout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from ..aws.attached_pairs import PairBusyError
from ..errors import AttachError
from ..jobs import JobMessage
from ..observability import logger, metrics
from . import retry_policy
from .job_runner import count_failure
from .ports import RunOnce, SendJob
from .s3_drop import Decision as DropDecision


@dataclass(frozen=True)
class Receive:
    """How often SQS has handed out the message (its ApproximateReceiveCount), and after how many receives the
    queue moves it to the dead-letter queue (the redrive policy's maxReceiveCount)."""

    count: int
    max_count: int

    @property
    def last(self) -> bool:
        return self.count >= self.max_count


@dataclass(frozen=True)
class Done:
    """The message is finished with: the job ran (a file's own failure is in its record), or goes on in a new
    message."""


@dataclass(frozen=True)
class HandBack:
    """Back to the queue, visible again after ``wait`` seconds."""

    wait: float


@dataclass(frozen=True)
class Failed:
    """The job record is failed with ``reason``. ``dead_letter``: the message still goes on to the dead-letter
    queue (handed back visible at once), from where it can be redriven."""

    reason: str
    dead_letter: bool = False


Outcome = Done | HandBack | Failed


@dataclass(frozen=True)
class FinalFailure:
    """Why a job or a drop fails for good: a ``permanent`` error (the message is finished with), or its last
    receive (the message goes on to the dead-letter queue)."""

    reason: str
    permanent: bool


def final_failure(caught: BaseException, receive: Receive, *, cause: str) -> FinalFailure | None:
    """The one rule: a permanent error, or any error on the message's last receive, fails the job (or the drop)
    now; None while a retry may help. ``cause`` names the error in a last receive's reason."""
    error = retry_policy.permanent_error(caught)
    if error is not None:
        return FinalFailure(str(error), permanent=True)
    if receive.last:
        return FinalFailure(f"gave up after {receive.count} attempts: {cause}", permanent=False)
    return None


def named(caught: BaseException) -> str:
    """An error as a reason may name it: an AttachError by its text, anything else by its type (its text may hold
    data)."""
    return str(caught) if isinstance(caught, AttachError) else type(caught).__name__


@dataclass(frozen=True)
class JobAttempt:
    """The worker's retry handling over its collaborators: ``run_once``, ``fail`` (the job runner's: the job fails
    with a reason, its pairs go to the next job), ``send`` (the queue's), ``sleep`` and ``now`` (epoch seconds)."""

    run_once: RunOnce
    fail: Callable[[str, str], None]
    send: SendJob
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.time

    def __call__(self, message: JobMessage, receive: Receive, time_left: Callable[[], float]) -> Outcome:
        """Run the job and settle what happens to its message; raises what no rule settles (the record then
        returns after the queue's visibility timeout), having failed the job on the message's last receive."""
        try:
            return self._run(message, receive, time_left)
        except Exception as caught:
            # Permanent, outside any one file (a file's own failure is recorded by the runner). What gets here on the
            # last receive escaped the retries (a defect, the queue or the job store failing): named by its type.
            failure = final_failure(caught, receive, cause=type(caught).__name__)
            if failure is None:
                raise
            if not failure.permanent:
                self.fail(message.jobId, failure.reason)
                raise
            logger.error("job failed", extra={"error": failure.reason}, exc_info=not isinstance(caught, AttachError))
            self.fail(message.jobId, failure.reason)
            return Failed(failure.reason)

    def _run(self, message: JobMessage, receive: Receive, time_left: Callable[[], float]) -> Outcome:
        """Run the job, and carry out what retry_policy.decide says when a try fails."""
        inline_try = 0
        while True:
            try:
                self.run_once(job=message, time_left=time_left)
                return Done()
            except IdempotencyAlreadyInProgressError:
                # That invocation started before this one, with the same timeout: it has ended, or its in-progress
                # record expired with it, within this invocation's time left. A shorter wait would spend receives
                # while a long job runs, and send a duplicate message to the DLQ.
                wait = time_left()
                logger.info("another invocation is running this job; trying later", extra={"waitSeconds": round(wait)})
                return HandBack(wait)
            except AttachError as e:
                decision = retry_policy.decide(
                    e,
                    inline_try=inline_try,
                    receive_count=receive.count,
                    last_receive=receive.last,
                    time_left=time_left(),
                )
                if decision.action == "fail":
                    raise
                if decision.action == "continue":
                    return self._continue(message, e)
                count_failure(e.step)
                if e.status == 429:  # Atlassian's rate limit, still there after the inline retries: a back-off
                    metrics.add_metric(name="AtlassianRateLimited", unit=MetricUnit.Count, value=1)
                if decision.action == "give_up":
                    return self._give_up(message, e, receive)
                extra = {"error": str(e), "step": e.step, "status": e.status, "waitSeconds": round(decision.wait, 1)}
                logger.warning("retryable failure", extra=extra)
                if decision.action == "hand_back":
                    return HandBack(decision.wait)
                self.sleep(decision.wait)
                inline_try += 1

    def _give_up(self, message: JobMessage, error: AttachError, receive: Receive) -> Failed:
        """Still failing on the message's last receive: the job fails; the message goes to the dead-letter queue."""
        failure = final_failure(error, receive, cause=named(error))
        assert failure is not None  # retry_policy.decide gives up on the last receive only
        logger.error("job failed for good; the message goes to the dead-letter queue", extra={"error": failure.reason})
        self.fail(message.jobId, failure.reason)
        return Failed(failure.reason, dead_letter=True)

    def _continue(self, message: JobMessage, reason: AttachError) -> Outcome:
        """Out of time, the object's link lease taken, or only pairs that other jobs hold left: queue the rest of the
        job as a fresh message (fresh receive count), visible after the wait the reason asks for. Waiting for other
        jobs' pairs is bounded in time (retry_policy.pair_wait_seconds), the rest in resumes."""
        if isinstance(reason, PairBusyError):
            now = self.now()
            since = message.waitingSince or now
            wait = retry_policy.pair_wait_seconds(now - since)
            if wait is None:
                return self._fail(message, f"waited {(now - since) / 3600:.0f} h for other jobs: {reason}")
            update: dict[str, Any] = {"waitingSince": since}
        elif message.resumes >= retry_policy.MAX_RESUMES:
            return self._fail(message, f"not finished after {message.resumes} invocations: {reason}")
        else:
            wait, update = reason.retry_after or 0, {"resumes": message.resumes + 1, "waitingSince": None}
        delay = math.ceil(wait)
        self.send(message.model_copy(update=update), delay_seconds=delay)
        logger.info("the job continues in a new message", extra={"reason": str(reason), "delaySeconds": delay})
        return Done()

    def _fail(self, message: JobMessage, reason: str) -> Failed:
        self.fail(message.jobId, reason)
        return Failed(reason)


def job_of_drop(
    decide: Callable[[], DropDecision],
    receive: Receive,
    record_failed_drop: Callable[[str], None],
) -> JobMessage | None:
    """An S3 drop's job, or None when it is skipped (logged) or failed for good (``record_failed_drop(reason)``
    leaves a failed job record saying why). Raises while a retry may help, and on the last receive after recording
    the failure, so that the message goes on to the dead-letter queue, from where it can be redriven."""
    try:
        decision = decide()
    except Exception as caught:
        failure = final_failure(caught, receive, cause=named(caught))
        if failure is None:
            raise
        logger.error("the S3 object cannot become a job", extra={"error": failure.reason})
        record_failed_drop(failure.reason)
        if not failure.permanent:
            raise  # its last receive
        return None
    if decision.job is None:
        logger.warning("skipping an S3 object", extra={"reason": decision.skipped})
    return decision.job
