"""The jobs queue (SQS): the only place that sends job messages or changes their visibility."""

from __future__ import annotations

from typing import Any

from ..jobs import JobMessage
from .aws_calls import aws_call

MAX_VISIBILITY_SECONDS = 12 * 3600  # SQS's limit
MAX_DELAY_SECONDS = 900  # SQS's limit on a message's delay


class JobQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def send(self, message: JobMessage, *, delay_seconds: int = 0) -> None:
        """Queue a job (visible after ``delay_seconds``, at most SQS's 15 minutes)."""
        with aws_call("the job could not be queued; try again", "queue"):
            self._sqs.send_message(
                QueueUrl=self._queue_url,
                MessageBody=message.model_dump_json(exclude_none=True),
                DelaySeconds=max(0, min(delay_seconds, MAX_DELAY_SECONDS)),
            )

    def hand_back(self, receipt_handle: str, wait: float) -> None:
        """Make a received message visible again after ``wait`` seconds."""
        with aws_call("could not set the message's visibility", "queue"):
            self._sqs.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=max(0, min(int(wait), MAX_VISIBILITY_SECONDS)),
            )
