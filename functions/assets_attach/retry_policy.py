"""How long to wait before trying a job again, and where to wait.

Atlassian asks clients to honour ``Retry-After`` and otherwise back off exponentially with jitter; here
about 5 s doubling to a 30 s cap. A wait of up to INLINE_WAIT_SECONDS is slept inside the invocation when
the deadline allows; a longer one hands the message back to SQS with its visibility timeout set to the
wait, so no Lambda is billed for sleeping.
"""

from __future__ import annotations

import random

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 30.0
INLINE_WAIT_SECONDS = 10.0
MAX_INLINE_RETRIES = 2
MAX_VISIBILITY_SECONDS = 12 * 3600  # SQS's limit
# A job that runs out of invocation time continues in a new message, at most this often (20 files fit easily).
MAX_RESUMES = 50


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """The wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
    if retry_after is not None:
        return min(float(retry_after), MAX_VISIBILITY_SECONDS)
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography
