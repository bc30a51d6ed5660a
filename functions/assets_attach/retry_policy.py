"""How long to wait before trying a job again, and where to wait.

Atlassian asks clients to honour ``Retry-After`` and otherwise back off exponentially with jitter; here
about 5 s doubling to a 30 s cap. A wait of up to INLINE_WAIT_SECONDS is slept inside the invocation when
the deadline allows; a longer one hands the message back to SQS with its visibility timeout set to the
wait, so no Lambda is billed for sleeping.
"""

from __future__ import annotations

import random

from .errors import AttachError, InternalError

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 30.0
INLINE_WAIT_SECONDS = 10.0
MAX_INLINE_RETRIES = 2
MAX_VISIBILITY_SECONDS = 12 * 3600  # SQS's limit
MAX_DELAY_SECONDS = 900  # SQS's limit on a message's delay
# A job that runs out of invocation time continues in a new message, at most this often (20 files fit easily).
MAX_RESUMES = 50


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """The wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
    if retry_after is not None:
        return min(float(retry_after), MAX_VISIBILITY_SECONDS)
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


# Exceptions that are defects, not weather: the same input fails the same way on every retry.
DETERMINISTIC = (ValueError, TypeError, KeyError, IndexError, AttributeError, AssertionError, LookupError)


def permanent_error(error: BaseException) -> AttachError | None:
    """The error to fail a file or job with at once, or None when a retry may help (the message goes back).

    An AttachError says itself whether a retry helps; a defect such as a ``UnicodeEncodeError`` would fail
    the same way until the dead-letter queue, so it fails now, named by its type (its text may hold data)."""
    if isinstance(error, AttachError):
        return None if error.retryable else error
    if isinstance(error, DETERMINISTIC):
        return InternalError(f"internal error ({type(error).__name__}); see the worker's logs", step="internal")
    return None
