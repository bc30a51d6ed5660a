"""The one translation of AWS's errors (DynamoDB, S3, SQS) into the engine's: every adapter in ``aws/`` makes its
calls inside :func:`aws_call`.

- A failed DynamoDB condition passes through as the ``ClientError``: it is the adapter's answer, not a failure (a
  claim held by another job, a lease taken, a job that exists), and the adapter turns it into one
  (:func:`is_condition_failure`), unless its ``refusal`` reading already did.
- Any other ``ClientError`` is read by the adapter's ``refusal`` where it has one (S3's missing, changed or denied
  objects), else, like a ``BotoCoreError`` (no connection, a timeout), it becomes a retryable AttachError saying
  what could not be done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AttachError, Step


def error_code(error: ClientError) -> str:
    """AWS's name for what went wrong (``ConditionalCheckFailedException``, ``NoSuchKey``, ``403`` …)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def is_condition_failure(error: ClientError) -> bool:
    return error_code(error) == "ConditionalCheckFailedException"


@contextmanager
def aws_call(
    failed: str,
    step: Step,
    *,
    refusal: Callable[[ClientError], AttachError | None] | None = None,
    name_error: bool = False,
) -> Iterator[None]:
    """AWS errors inside the block as the engine's: ``refusal`` reads a ClientError first (None: not its case); a
    failed condition passes through; anything else is a retryable AttachError ``failed`` (with ``name_error``, the
    botocore error's type follows in brackets)."""
    try:
        yield
    except ClientError as e:
        translated = refusal(e) if refusal is not None else None
        if translated is not None:
            raise translated from e
        if is_condition_failure(e):
            raise
        raise AttachError(_message(failed, e, name_error), step=step, retryable=True) from e
    except BotoCoreError as e:
        raise AttachError(_message(failed, e, name_error), step=step, retryable=True) from e


def _message(failed: str, error: Exception, name_error: bool) -> str:
    return f"{failed} ({type(error).__name__})" if name_error else failed
