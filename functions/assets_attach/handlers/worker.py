"""Worker Lambda: SQS batches of jobs and S3 notifications, with partial batch failure reporting.

Per record: a job message, or S3 drops that become jobs (``job_attempt.job_of_drop``), each run by an attempt
(``core/job_attempt``: the retries, continuations in a new message, failing for good). Here the attempt's outcome
becomes SQS's: a message handed back has its visibility timeout set to the wait and is reported failed, so it
returns to the queue; one whose job failed on its last receive is handed back visible at once, so SQS moves it to
the dead-letter queue on its next receive.
"""

from __future__ import annotations

import json
from typing import Any

# Imported before pydantic: Powertools' batch utility then skips loading its pydantic parser models (tens of ms
# of every cold start), which this handler does not use.
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from ..core import s3_drop
from ..core.job_attempt import Failed, HandBack, Receive, job_of_drop
from ..errors import AttachError
from ..jobs import JobMessage
from ..observability import logger, metrics, tracer
from ..runtime import Runtime, get_runtime

# Records that failed go back to the queue one by one; the invocation itself succeeds.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class ReturnToQueueError(Exception):
    """The record goes back to the queue (the batch processor reports it as a failure)."""


def hand_back(record: SQSRecord, runtime: Runtime, wait: float) -> None:
    """Return the message to the queue, visible again after ``wait`` seconds."""
    try:
        runtime.job_queue.hand_back(record.receipt_handle, wait)
    except AttachError:
        logger.exception("could not set the message's visibility; it returns after the queue's timeout")
    raise ReturnToQueueError(f"retry in {wait:.0f} s")


def receive_of(record: SQSRecord, runtime: Runtime) -> Receive:
    """How often this message was received, and after how many receives it goes to the DLQ."""
    return Receive(int(record.attributes.approximate_receive_count or 1), runtime.settings.max_receive_count)


@tracer.capture_method(capture_response=False)
def run_job(message: JobMessage, record: SQSRecord, context: LambdaContext, runtime: Runtime) -> None:
    receive = receive_of(record, runtime)
    with logger.append_context_keys(jobId=message.jobId, issueKey=message.spec.issueKey, receiveCount=receive.count):
        outcome = runtime.job_attempt(message, receive, lambda: context.get_remaining_time_in_millis() / 1000)
        if isinstance(outcome, HandBack):
            hand_back(record, runtime, outcome.wait)
        if isinstance(outcome, Failed) and outcome.dead_letter:
            hand_back(record, runtime, 0)  # visible at once, so SQS moves it to the DLQ on the next receive


def job_of(drop: s3_drop.Drop, record: SQSRecord, runtime: Runtime) -> JobMessage | None:
    """The drop's job, or None when it is skipped or failed for good (a failed job record says why)."""
    return job_of_drop(
        lambda: s3_drop.decide(drop, runtime.s3, runtime.settings, runtime.workspace_id),
        receive_of(record, runtime),
        lambda reason: runtime.jobs.record_failed_drop(drop.job_id, drop.bucket, drop.key, reason),
    )


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
                job = job_of(drop, record, runtime)
                if job is not None:
                    run_job(job, record, context, runtime)
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
