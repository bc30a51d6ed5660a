"""One link at a time per Assets object: a short lease in the jobs table, so a worker that recovers from an
interrupted link can tell its own attachment from another job's.

Step 3 can be interrupted after Assets made the attachment and before its reply arrived. The retry then has
to find that attachment among the object's, and a name is not proof: another job may have linked a file of
the same name meanwhile. So a worker takes the object's lease before it notes the object's attachments and
holds it until its link call returns; nothing else links to that object in between.

Each take of a free or expired lease starts a new *generation*. A holder whose link call returned records, in
a small ring on the lease item, the attachment its generation made, or that it made none; where the reply
was lost, it records nothing. A worker that recovers from a lost reply takes the lease again (a newer
generation), sets aside what the generations in between made, and can then prove which attachment is its
own; where a generation in between left no record, the answer is unknown and the worker does not guess.
A worker killed while holding the lease leaves it to run out (LEASE_SECONDS); a job that finds the lease
taken continues in a new message a few seconds later (at most MAX_BUSY_WAIT_SECONDS), without using up its
receives.

The item lives in the jobs table under ``link-lease:<objectId>`` (never a job id: job ids are hex) and expires
with the table's TTL a day after its last use.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ..errors import ContinueLaterError
from .aws_calls import aws_call, is_condition_failure

LEASE_SECONDS = 180.0  # longer than a link call may take (connect 10 s + read 60 s), with room to record it
# A job that finds the lease taken looks again after the lease's remaining time, within these bounds: a link
# in progress is done in seconds, and a killed holder's lease (up to LEASE_SECONDS) is waited out in steps.
MIN_BUSY_WAIT_SECONDS = 2.0
MAX_BUSY_WAIT_SECONDS = 10.0
RING_SIZE = 32  # generations whose outcome the lease remembers
ITEM_TTL_SECONDS = 24 * 3600


class LinkBusyError(ContinueLaterError):
    """Another job is linking to this object right now; the job continues when the lease will have run out."""

    code = "link_busy"


@dataclass(frozen=True)
class Lease:
    object_id: str
    holder: str
    generation: int


def lease_taken(object_id: str, seconds_left: float) -> LinkBusyError:
    """The error for a lease another holder has, with when to look again (see MIN/MAX_BUSY_WAIT_SECONDS)."""
    return LinkBusyError(
        f"another job is linking a file to object {object_id}; this job continues when it is done",
        step="lease",
        retry_after=min(MAX_BUSY_WAIT_SECONDS, max(MIN_BUSY_WAIT_SECONDS, seconds_left)),
    )


class LinkLeases:
    def __init__(self, table: Any, *, seconds: float | None = None) -> None:
        self._table = table
        self._seconds = LEASE_SECONDS if seconds is None else seconds

    @staticmethod
    def _key(object_id: str) -> dict[str, str]:
        return {"jobId": f"link-lease:{object_id}"}

    def acquire(self, object_id: str, holder: str) -> Lease:
        """Take the object's lease, or renew it if ``holder`` has it; LinkBusyError while another holds it."""
        now = time.time()
        times = {":until": int((now + self._seconds) * 1000), ":ttl": int(now) + ITEM_TTL_SECONDS}
        try:
            with aws_call("renewing the link lease failed", "lease"):
                item = self._table.update_item(
                    Key=self._key(object_id),
                    UpdateExpression="SET leaseUntilMs = :until, expiresAt = :ttl",
                    ConditionExpression="holder = :me",
                    ExpressionAttributeValues={":me": holder, **times},
                    ReturnValues="ALL_NEW",
                )["Attributes"]
            return Lease(object_id, holder, int(item["generation"]))
        except ClientError as e:
            if not is_condition_failure(e):
                raise
        try:
            with aws_call("taking the link lease failed", "lease"):
                item = self._table.update_item(
                    Key=self._key(object_id),
                    UpdateExpression="SET holder = :me, leaseUntilMs = :until, expiresAt = :ttl, "
                    "generation = if_not_exists(generation, :zero) + :one, linked = if_not_exists(linked, :empty)",
                    ConditionExpression="attribute_not_exists(holder) OR leaseUntilMs < :now",
                    ExpressionAttributeValues={
                        ":me": holder,
                        ":now": int(now * 1000),
                        ":zero": 0,
                        ":one": 1,
                        ":empty": {},
                        **times,
                    },
                    ReturnValues="ALL_NEW",
                )["Attributes"]
        except ClientError as e:
            if not is_condition_failure(e):
                raise
            self.check_free(object_id, holder)  # raises, with the time the lease still runs
            raise lease_taken(object_id, MIN_BUSY_WAIT_SECONDS) from None  # it was freed a moment ago
        return Lease(object_id, holder, int(item["generation"]))

    def check_free(self, object_id: str, holder: str) -> None:
        """LinkBusyError if another holder's lease on the object is running (a look before a long upload)."""
        now = time.time()
        with aws_call("reading the link lease failed", "lease"):
            item = self._table.get_item(Key=self._key(object_id), ConsistentRead=True).get("Item") or {}
        seconds_left = float(item.get("leaseUntilMs", 0)) / 1000 - now
        if item.get("holder") not in (None, holder) and seconds_left >= 0:
            raise lease_taken(object_id, seconds_left)

    def release(self, lease: Lease, outcomes: Mapping[int, str | None]) -> None:
        """Free the lease, recording what generations linked: ``{generation: attachment id or None}`` for each
        whose outcome is known (an empty mapping records nothing)."""
        slots: dict[str, dict[str, Any]] = {}
        for generation, attachment_id in sorted(outcomes.items()):  # a newer generation wins a shared slot
            slots[str(generation % RING_SIZE)] = {"generation": generation, "attachmentId": attachment_id}
        names = {f"#s{slot}": slot for slot in slots}
        values = {f":s{slot}": entry for slot, entry in slots.items()}
        record = ("SET " + ", ".join(f"linked.#s{slot} = :s{slot}" for slot in slots) + " ") if slots else ""
        try:
            with aws_call("releasing the link lease failed", "lease"):
                self._table.update_item(
                    Key=self._key(lease.object_id),
                    UpdateExpression=f"{record}REMOVE holder",
                    ConditionExpression="holder = :me",
                    ExpressionAttributeValues={":me": lease.holder, **values},
                    **({"ExpressionAttributeNames": names} if names else {}),
                )
        except ClientError as e:
            if not is_condition_failure(e):
                raise
            if slots:  # the lease ran out and was taken over: still say what those generations made
                with aws_call("recording a link on the link lease failed", "lease"):
                    self._table.update_item(
                        Key=self._key(lease.object_id),
                        UpdateExpression=record.strip(),
                        ExpressionAttributeNames=names,
                        ExpressionAttributeValues=values,
                    )

    def linked_between(self, object_id: str, after: int, before: int) -> set[str] | None:
        """What the generations after ``after`` and before ``before`` linked; None if any left no record."""
        with aws_call("reading the link lease failed", "lease"):
            item = self._table.get_item(Key=self._key(object_id), ConsistentRead=True).get("Item") or {}
        ring = item.get("linked") or {}
        made: set[str] = set()
        for generation in range(after + 1, before):
            entry = ring.get(str(generation % RING_SIZE))
            if not entry or int(entry["generation"]) != generation:
                return None
            if entry.get("attachmentId") is not None:
                made.add(str(entry["attachmentId"]))
        return made
