"""What to do when a job's attempt fails, and how long to wait: pure decisions the worker carries out.

Atlassian asks clients to honour ``Retry-After`` and otherwise back off exponentially with jitter; here
5 s doubling to a 30 s cap, each wait x0.7 to x1.3. A wait of up to INLINE_WAIT_SECONDS is slept inside the
invocation when the deadline allows; a longer one hands the message back to SQS with its visibility timeout set to the
wait, so no Lambda is billed for sleeping. On the message's last receive the job fails with the reason.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from ..aws.job_queue import MAX_VISIBILITY_SECONDS
from ..errors import AttachError, ContinueLaterError, InternalError

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 30.0
INLINE_WAIT_SECONDS = 10.0
MAX_INLINE_RETRIES = 2
# Seconds a sleep must leave in the invocation, for the attempt after it.
SLEEP_MARGIN_SECONDS = 30.0
# A job continues in a new message at most this often (out of time, or the link lease taken).
MAX_RESUMES = 50
# A pair that another job holds is waited for in time, not in resumes: looked at again after a quarter of the time
# waited so far (10 s to 5 min), for as long as a live holder can keep its claim (an hour past SQS's longest park).
PAIR_WAIT_FIRST_SECONDS = 10.0
PAIR_WAIT_MAX_SECONDS = 300.0
PAIR_WAIT_LIMIT_SECONDS = MAX_VISIBILITY_SECONDS + 2 * 3600


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """The wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
    if retry_after is not None:
        return min(float(retry_after), MAX_VISIBILITY_SECONDS)
    base = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** max(attempt - 1, 0))
    # Atlassian's "Rate limiting" guidance (ATLASSIAN_FACTS.md): from a few seconds, capped near 30 s, jitter x0.7-1.3.
    return base * random.uniform(0.7, 1.3)  # noqa: S311 - jitter, not cryptography


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


Action = Literal["fail", "continue", "sleep", "hand_back", "give_up"]


@dataclass(frozen=True)
class Decision:
    """``fail``: permanent, the job fails now; ``continue``: in a new message after ``wait``; ``sleep``: wait here
    and try again; ``hand_back``: back to the queue, visible after ``wait``; ``give_up``: the last receive, the
    job fails and the message goes to the dead-letter queue."""

    action: Action
    wait: float = 0.0


def decide(
    error: AttachError, *, inline_try: int, receive_count: int, last_receive: bool, time_left: float
) -> Decision:
    """What to do after an attempt failed with ``error``: ``inline_try`` tries already slept through in this
    invocation, the message's ``receive_count`` and whether it is its last, ``time_left`` in the invocation."""
    if isinstance(error, ContinueLaterError):
        return Decision("continue", error.retry_after or 0.0)
    if not error.retryable:
        return Decision("fail")
    if last_receive:
        return Decision("give_up")
    wait = backoff_seconds(receive_count + inline_try, error.retry_after)
    if inline_try < MAX_INLINE_RETRIES and wait <= INLINE_WAIT_SECONDS and time_left > wait + SLEEP_MARGIN_SECONDS:
        return Decision("sleep", wait)
    return Decision("hand_back", wait)


def pair_wait_seconds(waited: float) -> float | None:
    """How long a job whose only pairs left are held by other jobs waits before it looks again, having waited
    ``waited`` seconds so far; None once it has waited longer than any live holder keeps a claim."""
    if waited > PAIR_WAIT_LIMIT_SECONDS:
        return None
    return min(PAIR_WAIT_MAX_SECONDS, max(PAIR_WAIT_FIRST_SECONDS, waited / 4))
