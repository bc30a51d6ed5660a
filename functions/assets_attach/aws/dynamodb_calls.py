"""DynamoDB failures as the engine's errors, for the small records kept beside the jobs (leases, pairs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AttachError, Step


def is_condition_failure(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) == "ConditionalCheckFailedException"


@contextmanager
def dynamodb_call(what: str, step: Step) -> Iterator[None]:
    """A failed condition passes through as the ClientError (the caller's answer); anything else becomes a
    retryable AttachError saying ``what`` could not be done."""
    try:
        yield
    except ClientError as e:
        if is_condition_failure(e):
            raise
        raise AttachError(f"{what} failed", step=step, retryable=True) from e
    except BotoCoreError as e:
        raise AttachError(f"{what} failed", step=step, retryable=True) from e
