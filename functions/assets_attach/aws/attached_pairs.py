"""Each Jira attachment on each Assets object once, whichever jobs ask for it.

A Jira attachment never changes, so the same (attachment, object) pair asked for again (the same rule firing
twice, ``"all"`` after one more file was added, a request sent again after the 24-hour idempotency window)
must not make a second copy. A job claims the pair before it uploads; a job that finds the pair attached by
another job adopts that attachment, and a job that finds it being attached right now attaches its other pairs
and looks again later. The claim lives in the jobs table under ``jira-pair:<attachmentId>:<objectId>`` (never a
job id: job ids are hex): ``holder`` (``<jobId>#<index>``) and, once linked, ``attachmentId``.

A claim's life follows what its holder knows:
- alive, parked or resuming, the holder renews it on every attempt (``claim`` again), and it runs CLAIM_SECONDS,
  past the longest park the retry policy allows, so a slow holder never loses it to another job;
- a holder that gave up having made nothing releases it;
- a holder that gave up while its link's outcome was unknown leaves a ``lostLink`` (the marker, name and size it
  linked with): the next job settles it as a job settles its own lost link (list, marker, generation ring) and
  adopts that attachment or takes the claim over; nothing is ever simply released that may have been linked.
A pair record is kept as long as job records are (30 days); S3 sources are not covered (an S3 key may hold new
content under the same name).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from ..errors import ContinueLaterError
from ..job_record import LinkMarker
from .aws_calls import aws_call, is_condition_failure
from .job_queue import MAX_VISIBILITY_SECONDS

# Renewed on every attempt: it outlives the longest park (a message handed back for SQS's 12-hour maximum) by an
# hour, so only a holder that is gone for good lets it run out.
CLAIM_SECONDS = MAX_VISIBILITY_SECONDS + 3600
RECORD_TTL_SECONDS = 30 * 24 * 3600
BUSY_WAIT_SECONDS = 10.0


class PairBusyError(ContinueLaterError):
    """Another job is attaching this Jira attachment to this object; this job looks again later."""

    code = "pair_busy"

    def __init__(self, message: str, *, holder_job: str) -> None:
        super().__init__(message, step="jobs", retry_after=BUSY_WAIT_SECONDS)
        self.holder_job = holder_job


@dataclass(frozen=True)
class LostLink:
    """A link of unknown outcome that its job gave up on: what the next job needs to settle it."""

    marker: LinkMarker | None  # None: the object's attachments could not be listed before that link
    filename: str
    size: int


@dataclass(frozen=True)
class PairClaim:
    holder: str
    attachment_id: str | None  # the Assets attachment, once the pair is attached
    lost_link: LostLink | None = None  # its holder gave up not knowing whether it linked

    @property
    def job_id(self) -> str:
        return self.holder.split("#", 1)[0]


class AttachedPairs:
    def __init__(self, table: Any) -> None:
        self._table = table

    def claim(self, jira_attachment_id: str, object_id: str, holder: str) -> PairClaim:
        """The pair for ``holder`` (renewed if it holds it already, its own lost link cleared: a holder settles its
        own link from its job record before it claims), unless it is attached, another holder's claim is alive, or
        a lost link waits to be settled: then that claim, as it stands (adopt its attachment, settle its lost
        link, or wait with ``busy()``)."""
        key = _key(jira_attachment_id, object_id)
        now = int(time.time())
        unattached = Attr("attachmentId").not_exists()
        settled = Attr("lostLink").not_exists()
        try:
            with aws_call("claiming the Jira attachment for the object failed", "jobs"):
                self._table.put_item(
                    Item={
                        "jobId": key,
                        "holder": holder,
                        "claimedUntil": now + CLAIM_SECONDS,
                        "expiresAt": now + RECORD_TTL_SECONDS,
                    },
                    ConditionExpression=Attr("jobId").not_exists()
                    | (unattached & (Attr("holder").eq(holder) | (Attr("claimedUntil").lt(now) & settled))),
                )
            return PairClaim(holder, None)
        except ClientError as e:
            if not is_condition_failure(e):
                raise
        with aws_call("reading the Jira attachment's claim failed", "jobs"):
            item = self._table.get_item(Key={"jobId": key}, ConsistentRead=True).get("Item") or {}
        if not item:  # released between the two calls
            return self.claim(jira_attachment_id, object_id, holder)
        attachment_id = item.get("attachmentId")
        lost = item.get("lostLink")
        return PairClaim(
            str(item.get("holder", "")),
            str(attachment_id) if attachment_id else None,
            _lost_link(lost) if isinstance(lost, dict) else None,
        )

    def attached_ids(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the (Jira attachment, object) ``pairs`` are attached, by any job (one read per 100 pairs). A
        pair the read does not answer for (throttled) counts as not attached: its job adopts it anyway."""
        client, table = self._table.meta.client, self._table.name
        found: set[tuple[str, str]] = set()
        wanted = {_key(*pair): pair for pair in pairs}
        keys = list(wanted)
        for first in range(0, len(keys), 100):
            batch = [{"jobId": key} for key in keys[first : first + 100]]  # the table's client (de)serializes
            with aws_call("reading which Jira attachments are attached failed", "jobs"):
                reply = client.batch_get_item(
                    RequestItems={table: {"Keys": batch, "ProjectionExpression": "jobId, attachmentId"}}
                )
            for item in reply.get("Responses", {}).get(table, []):
                if "attachmentId" in item:
                    found.add(wanted[item["jobId"]])
        return found

    def take_over(self, jira_attachment_id: str, object_id: str, holder: str, lost: PairClaim) -> bool:
        """Claim a pair whose lost link was settled as "never made" (False: another job settled it first)."""
        now = int(time.time())
        try:
            with aws_call("taking over the Jira attachment's claim failed", "jobs"):
                self._table.put_item(
                    Item={
                        "jobId": _key(jira_attachment_id, object_id),
                        "holder": holder,
                        "claimedUntil": now + CLAIM_SECONDS,
                        "expiresAt": now + RECORD_TTL_SECONDS,
                    },
                    ConditionExpression=Attr("holder").eq(lost.holder)
                    & Attr("lostLink").exists()
                    & Attr("attachmentId").not_exists(),
                )
        except ClientError as e:
            if not is_condition_failure(e):
                raise
            return False
        return True

    def lost(self, jira_attachment_id: str, object_id: str, holder: str, link: LostLink) -> None:
        """``holder`` gives up on a pair it may have linked: the claim stays, for the next job to settle."""
        marker = link.marker.model_dump() if link.marker else None
        try:
            with aws_call("noting the Jira attachment's lost link failed", "jobs"):
                self._table.update_item(
                    Key={"jobId": _key(jira_attachment_id, object_id)},
                    UpdateExpression="SET lostLink = :l",
                    ConditionExpression=Attr("holder").eq(holder) & Attr("attachmentId").not_exists(),
                    ExpressionAttributeValues={
                        ":l": {"marker": marker, "filename": link.filename, "size": link.size},
                    },
                )
        except ClientError as e:
            if not is_condition_failure(e):
                raise

    def attached(self, jira_attachment_id: str, object_id: str, holder: str, attachment_id: str) -> None:
        """Record the pair's attachment (from now on, other jobs adopt it)."""
        with aws_call("recording the Jira attachment's link failed", "jobs"):
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
        """Give up ``holder``'s claim on a pair it did not attach, and made nothing for (the file failed before
        its link; see ``lost`` otherwise)."""
        try:
            with aws_call("releasing the Jira attachment's claim failed", "jobs"):
                self._table.delete_item(
                    Key={"jobId": _key(jira_attachment_id, object_id)},
                    ConditionExpression=Attr("holder").eq(holder)
                    & Attr("attachmentId").not_exists()
                    & Attr("lostLink").not_exists(),
                )
        except ClientError as e:
            if not is_condition_failure(e):
                raise


def busy(jira_attachment_id: str, object_id: str, claim: PairClaim) -> PairBusyError:
    return PairBusyError(
        f"job {claim.job_id} is attaching Jira attachment {jira_attachment_id} to object {object_id}; "
        "this pair waits for it",
        holder_job=claim.job_id,
    )


def _lost_link(item: dict[str, Any]) -> LostLink:
    marker = item.get("marker")
    return LostLink(
        LinkMarker.model_validate(_plain(marker)) if isinstance(marker, dict) else None,
        str(item.get("filename", "")),
        int(item.get("size", 0)),
    )


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB's numbers (Decimal) as ints."""
    return {k: int(v) if v is not None and not isinstance(v, str) else v for k, v in value.items()}


def _key(jira_attachment_id: str, object_id: str) -> str:
    return f"jira-pair:{jira_attachment_id}:{object_id}"
