"""Each Jira attachment on each Assets object once, whichever jobs ask for it.

A Jira attachment never changes, so the same (attachment, object) pair asked for again (the same rule firing
twice, ``"all"`` after one more file was added, a request sent again after the 24-hour idempotency window)
must not make a second copy. A job claims the pair before it uploads; a job that finds the pair attached by
another job adopts that attachment, and a job that finds it being attached right now continues a little
later. The claim lives in the jobs table under ``jira-pair:<attachmentId>:<objectId>`` (never a job id: job
ids are hex): ``holder`` (``<jobId>#<index>``) and, once linked, ``attachmentId``. A claim whose holder gave
up is released; one whose holder was killed runs out after CLAIM_SECONDS. A pair record is kept as long as
job records are (30 days); S3 sources are not covered (an S3 key may hold new content under the same name).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from ..errors import ContinueLaterError
from .dynamodb_calls import dynamodb_call, is_condition_failure

CLAIM_SECONDS = 3600  # longer than any one attempt at a file (the worker's timeout is 300 s)
RECORD_TTL_SECONDS = 30 * 24 * 3600
BUSY_WAIT_SECONDS = 10.0


class PairBusyError(ContinueLaterError):
    """Another job is attaching this Jira attachment to this object; this job looks again later."""

    code = "pair_busy"


@dataclass(frozen=True)
class PairClaim:
    holder: str
    attachment_id: str | None  # the Assets attachment, once the pair is attached

    @property
    def job_id(self) -> str:
        return self.holder.split("#", 1)[0]


class AttachedPairs:
    def __init__(self, table: Any) -> None:
        self._table = table

    def claim(self, jira_attachment_id: str, object_id: str, holder: str) -> PairClaim:
        """The pair for ``holder``, unless it is attached already or another holder's claim is alive: then that
        claim, as it stands (adopt its attachment, or wait with ``busy()``)."""
        key = _key(jira_attachment_id, object_id)
        now = int(time.time())
        unattached = Attr("attachmentId").not_exists()
        try:
            with dynamodb_call("claiming the Jira attachment for the object", "jobs"):
                self._table.put_item(
                    Item={
                        "jobId": key,
                        "holder": holder,
                        "claimedUntil": now + CLAIM_SECONDS,
                        "expiresAt": now + RECORD_TTL_SECONDS,
                    },
                    ConditionExpression=Attr("jobId").not_exists()
                    | (unattached & (Attr("holder").eq(holder) | Attr("claimedUntil").lt(now))),
                )
            return PairClaim(holder, None)
        except ClientError as e:
            if not is_condition_failure(e):
                raise
        with dynamodb_call("reading the Jira attachment's claim", "jobs"):
            item = self._table.get_item(Key={"jobId": key}, ConsistentRead=True).get("Item") or {}
        if not item:  # released between the two calls
            return self.claim(jira_attachment_id, object_id, holder)
        attachment_id = item.get("attachmentId")
        return PairClaim(str(item.get("holder", "")), str(attachment_id) if attachment_id else None)

    def attached(self, jira_attachment_id: str, object_id: str, holder: str, attachment_id: str) -> None:
        """Record the pair's attachment (from now on, other jobs adopt it)."""
        with dynamodb_call("recording the Jira attachment's link", "jobs"):
            self._table.update_item(
                Key={"jobId": _key(jira_attachment_id, object_id)},
                UpdateExpression="SET attachmentId = :a, holder = :h, expiresAt = :e",
                ExpressionAttributeValues={
                    ":a": attachment_id,
                    ":h": holder,
                    ":e": int(time.time()) + RECORD_TTL_SECONDS,
                },
            )

    def release(self, jira_attachment_id: str, object_id: str, holder: str) -> None:
        """Give up ``holder``'s claim on a pair it did not attach (the file failed)."""
        try:
            with dynamodb_call("releasing the Jira attachment's claim", "jobs"):
                self._table.delete_item(
                    Key={"jobId": _key(jira_attachment_id, object_id)},
                    ConditionExpression=Attr("holder").eq(holder) & Attr("attachmentId").not_exists(),
                )
        except ClientError as e:
            if not is_condition_failure(e):
                raise


def busy(jira_attachment_id: str, object_id: str, claim: PairClaim) -> PairBusyError:
    return PairBusyError(
        f"job {claim.job_id} is attaching Jira attachment {jira_attachment_id} to object {object_id}; "
        "this job continues when it is done",
        step="jobs",
        retry_after=BUSY_WAIT_SECONDS,
    )


def _key(jira_attachment_id: str, object_id: str) -> str:
    return f"jira-pair:{jira_attachment_id}:{object_id}"
