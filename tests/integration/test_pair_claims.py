"""Pair claims in DynamoDB (moto): a claim lives as long as its holder may still come back, and a claim whose
link outcome is unknown is never simply taken (issue 18 §1-3)."""

from __future__ import annotations

import time

import boto3
import pytest

from assets_attach.aws.attached_pairs import AttachedPairs, LostLink
from assets_attach.aws.job_queue import MAX_VISIBILITY_SECONDS
from assets_attach.job_record import LinkMarker
from devstack.stack import LocalStack

HOUR = 3600
START = time.time()  # offsets count from here (``later`` patches time.time itself)


@pytest.fixture
def pairs(stack: LocalStack) -> AttachedPairs:
    return AttachedPairs(boto3.resource("dynamodb").Table(stack.jobs_table))


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    now = START + seconds
    monkeypatch.setattr(time, "time", lambda: now)  # the clock attached_pairs reads


def test_a_claim_outlives_the_longest_park_and_is_renewed_by_its_holder(
    pairs: AttachedPairs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs.claim("10001", "1234", "jobA#0")
    later(monkeypatch, MAX_VISIBILITY_SECONDS + 60)  # A parked for SQS's longest visibility timeout
    assert pairs.claim("10001", "1234", "jobB#0").holder == "jobA#0"  # B waits: A is coming back
    assert pairs.claim("10001", "1234", "jobA#0").holder == "jobA#0"  # A is back: renewed from now
    later(monkeypatch, 2 * MAX_VISIBILITY_SECONDS + HOUR)
    assert pairs.claim("10001", "1234", "jobB#0").holder == "jobA#0"
    later(monkeypatch, 3 * MAX_VISIBILITY_SECONDS + 3 * HOUR)  # A is gone for good
    assert pairs.claim("10001", "1234", "jobB#0").holder == "jobB#0"


def test_a_lost_link_stays_on_the_claim_until_a_job_settles_it(
    pairs: AttachedPairs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs.claim("10001", "1234", "jobA#0")
    link = LostLink(LinkMarker(afterId=41, generation=7), "report.pdf", 1234)
    pairs.lost("10001", "1234", "jobA#0", link)
    pairs.release("10001", "1234", "jobA#0")  # a release cannot drop a claim that may have been linked

    later(monkeypatch, 10 * MAX_VISIBILITY_SECONDS)  # however long after
    claim = pairs.claim("10001", "1234", "jobB#0")
    assert (claim.holder, claim.lost_link) == ("jobA#0", link)

    assert pairs.take_over("10001", "1234", "jobB#0", claim)  # B settled it as "never made"
    assert not pairs.take_over("10001", "1234", "jobC#0", claim)  # only once
    taken = pairs.claim("10001", "1234", "jobC#0")
    assert (taken.holder, taken.lost_link) == ("jobB#0", None)
