"""Worker Lambda: SQS batches of jobs and S3 notifications, with partial batch failure reporting.

Per record: a job message, or S3 drops that become jobs, run through the job runner. A failure that a
retry can fix goes back to the queue: after a short sleep here, or with the message's visibility timeout
set to the wait. On its last receive (MAX_RECEIVE_COUNT) the job is marked failed before the message
moves to the dead-letter queue. A job that runs out of invocation time continues in a new message (its
files already attached are skipped), so a long job never uses up its receives.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from typing import Any

# Imported before pydantic: Powertools' batch utility then skips loading its pydantic parser models (tens of ms
# of every cold start), which this handler does not use.
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from ..aws.attached_pairs import PairBusyError
from ..core import retry_policy, s3_drop
from ..core.job_runner import count_failure
from ..errors import AttachError
from ..jobs import JobMessage
from ..observability import logger, metrics, tracer
from ..runtime import Runtime, get_runtime

# Records that failed go back to the queue one by one; the invocation itself succeeds.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class ReturnToQueueError(Exception):
    """The record goes back to the queue (the batch processor reports it as a failure)."""


def _time_left(context: LambdaContext) -> float:
    return context.get_remaining_time_in_millis() / 1000


def hand_back(record: SQSRecord, runtime: Runtime, wait: float) -> None:
    """Return the message to the queue, visible again after ``wait`` seconds."""
    try:
        runtime.job_queue.hand_back(record.receipt_handle, wait)
    except AttachError:
        logger.exception("could not set the message's visibility; it returns after the queue's timeout")
    raise ReturnToQueueError(f"retry in {wait:.0f} s")


def continue_in_new_message(message: JobMessage, runtime: Runtime, reason: AttachError) -> None:
    """Out of time, the object's link lease taken, or only pairs that other jobs hold left: queue the rest of the
    job as a fresh message (fresh receive count), visible after the wait the reason asks for. Waiting for other
    jobs' pairs is bounded in time (retry_policy.pair_wait_seconds), the rest in resumes."""
    if isinstance(reason, PairBusyError):
        now = time.time()
        since = message.waitingSince or now
        wait = retry_policy.pair_wait_seconds(now - since)
        if wait is None:
            runtime.job_runner.fail(message.jobId, f"waited {(now - since) / 3600:.0f} h for other jobs: {reason}")
            return
        update: dict[str, Any] = {"waitingSince": since}
    elif message.resumes >= retry_policy.MAX_RESUMES:
        runtime.job_runner.fail(message.jobId, f"not finished after {message.resumes} invocations: {reason}")
        return
    else:
        wait, update = reason.retry_after or 0, {"resumes": message.resumes + 1, "waitingSince": None}
    delay = math.ceil(wait)
    runtime.job_queue.send(message.model_copy(update=update), delay_seconds=delay)
    logger.info("the job continues in a new message", extra={"reason": str(reason), "delaySeconds": delay})


def receives(record: SQSRecord, runtime: Runtime) -> tuple[int, bool]:
    """How often this message was received, and whether this is its last receive before the DLQ."""
    receive_count = int(record.attributes.approximate_receive_count or 1)
    return receive_count, receive_count >= runtime.settings.max_receive_count


@tracer.capture_method(capture_response=False)
def run_job(message: JobMessage, record: SQSRecord, context: LambdaContext, runtime: Runtime) -> None:
    receive_count, last_receive = receives(record, runtime)
    with logger.append_context_keys(jobId=message.jobId, issueKey=message.spec.issueKey, receiveCount=receive_count):
        try:
            run_with_retries(message, record, context, runtime, receive_count, last_receive)
        except ReturnToQueueError:
            raise
        except Exception as caught:
            # Permanent, outside any one file (a file's own failure is recorded by the runner).
            error = retry_policy.permanent_error(caught)
            if error is not None:
                logger.error("job failed", extra={"error": str(error)}, exc_info=not isinstance(caught, AttachError))
                runtime.job_runner.fail(message.jobId, str(error))
                return
            if last_receive:
                reason = f"gave up after {receive_count} attempts: {type(caught).__name__}"
                runtime.job_runner.fail(message.jobId, reason)
            raise


def run_with_retries(
    message: JobMessage,
    record: SQSRecord,
    context: LambdaContext,
    runtime: Runtime,
    receive_count: int,
    last_receive: bool,
) -> None:
    """Run the job, and carry out what retry_policy.decide says when an attempt fails."""
    for inline_try in itertools.count():
        try:
            runtime.run_job_once(job=message, time_left=lambda: _time_left(context))
            return
        except IdempotencyAlreadyInProgressError:
            # That invocation started before this one, with the same timeout: it has ended, or its in-progress
            # record expired with it, within this invocation's time left. A shorter wait would spend receives
            # while a long job runs, and send a duplicate message to the DLQ.
            wait = _time_left(context)
            logger.info("another invocation is running this job; trying later", extra={"waitSeconds": round(wait)})
            hand_back(record, runtime, wait)
        except AttachError as e:
            decision = retry_policy.decide(
                e,
                inline_try=inline_try,
                receive_count=receive_count,
                last_receive=last_receive,
                time_left=_time_left(context),
            )
            if decision.action == "fail":
                raise
            if decision.action == "continue":
                continue_in_new_message(message, runtime, e)
                return
            count_failure(e.step)
            if e.status == 429:  # Atlassian's rate limit, still there after the inline retries: a back-off
                metrics.add_metric(name="AtlassianRateLimited", unit=MetricUnit.Count, value=1)
            if decision.action == "give_up":
                reason = f"gave up after {receive_count} attempts: {e}"
                logger.error("job failed for good; the message goes to the dead-letter queue", extra={"error": reason})
                runtime.job_runner.fail(message.jobId, reason)
                hand_back(record, runtime, 0)  # visible at once, so SQS moves it to the DLQ on the next receive
            extra = {"error": str(e), "step": e.step, "status": e.status, "waitSeconds": round(decision.wait, 1)}
            logger.warning("retryable failure", extra=extra)
            if decision.action == "sleep":
                time.sleep(decision.wait)
                continue
            hand_back(record, runtime, decision.wait)


def decide_drop(drop: s3_drop.Drop, record: SQSRecord, runtime: Runtime) -> JobMessage | None:
    """The drop's job, or None when it is skipped (logged) or failed for good (a failed job record says why)."""
    try:
        decision = s3_drop.decide(drop, runtime.s3, runtime.settings, runtime.workspace_id)
    except Exception as caught:
        error = retry_policy.permanent_error(caught)
        receive_count, last_receive = receives(record, runtime)
        if error is None and not last_receive:
            raise
        cause = str(caught) if isinstance(caught, AttachError) else type(caught).__name__
        reason = str(error) if error else f"gave up after {receive_count} attempts: {cause}"
        logger.error("the S3 object cannot become a job", extra={"error": reason})
        runtime.jobs.record_failed_drop(drop.job_id, drop.bucket, drop.key, reason)
        if error is None:
            raise  # its last receive: the message goes on to the dead-letter queue, from where it can be redriven
        return None
    if decision.job is None:
        logger.warning("skipping an S3 object", extra={"reason": decision.skipped})
    return decision.job


def handle_record(record: SQSRecord, context: LambdaContext, runtime: Runtime) -> None:
    try:
        body = json.loads(record.body)
    except ValueError:
        logger.error("dropping a message that is not JSON")
        return
    if s3_drop.is_test_event(body):
        logger.info("ignoring S3's test event")
    elif s3_drop.is_s3_event(body):
        for drop in s3_drop.drops(body):
            with logger.append_context_keys(bucket=drop.bucket, key=drop.key, jobId=drop.job_id):
                decision = decide_drop(drop, record, runtime)
                if decision is not None:
                    run_job(decision, record, context, runtime)
    elif isinstance(body, dict) and "jobId" in body:
        try:
            message = JobMessage.model_validate(body)
        except ValidationError:
            logger.error("dropping a job message of the wrong shape")
            return
        run_job(message, record, context, runtime)
    else:
        logger.error("dropping a message of unknown kind")


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    with logger.append_context_keys(messageId=record.message_id):
        try:
            handle_record(record, lambda_context, get_runtime())
        except ReturnToQueueError:
            raise
        except Exception:
            logger.exception("the record failed; it goes back to the queue")
            raise


@logger.inject_lambda_context(clear_state=True, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # An in-progress idempotency record of an invocation that times out expires with it.
    get_runtime().worker_idempotency_config.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
