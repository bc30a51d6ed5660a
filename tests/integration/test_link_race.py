"""Two jobs link files of the same name and size to the same object while one link is interrupted.

The interrupted job must end with its own attachment, never the other job's: each job reports a distinct
attachment id whose bytes are its own file's, and the object holds exactly one attachment per job. Both
orders are run (the link lost before Assets acted on it, and the link made but its reply lost), with the
interrupted job's lease held throughout and with it expired so that the other job links in between.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from assets_attach.aws import link_lease
from assets_attach.core import retry_policy
from devstack.atlassian_sim import Fault
from devstack.lambda_local import LocalWorker
from devstack.stack import LocalStack
from devstack.webhook_client import job_status, post

A_BYTES = b"A" * 100
B_BYTES = b"B" * 100  # the same size: only the bytes tell the two files apart


def run_until_done(worker: LocalWorker, stack: LocalStack, urls: list[str], timeout: float = 60) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [job_status(stack, url) for url in urls]
        if all(job["status"] in ("succeeded", "failed") for job in jobs):
            return jobs
        worker.poll_once(wait_seconds=1)
    raise AssertionError(f"jobs not done in {timeout} s: {[job_status(stack, u) for u in urls]}")


@pytest.mark.parametrize(
    "fault",
    [Fault(drop_after_bytes=0), Fault(after_success=True, drop_after_bytes=0), Fault(status=502, after_success=True)],
    ids=["link-lost-before-acting", "link-made-reply-lost", "link-made-answered-502"],
)
def test_an_interrupted_link_never_adopts_a_look_alike_from_another_job(
    stack: LocalStack, api: str, worker: LocalWorker, monkeypatch: pytest.MonkeyPatch, fault: Fault
) -> None:
    monkeypatch.setattr(retry_policy, "INLINE_WAIT_SECONDS", 0)  # every retry goes back to the queue
    monkeypatch.setattr(retry_policy, "BACKOFF_BASE_SECONDS", 8)  # A stays away 4-8 s: B links in between
    stack.put("attachments/a/report.pdf", A_BYTES, "application/pdf")
    stack.put("attachments/b/report.pdf", B_BYTES, "application/pdf")
    stack.sim.inject("link", fault)

    a = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a/report.pdf"}).json()
    worker.poll_once()  # A uploads; its link is interrupted; A goes back to the queue
    assert job_status(stack, a["statusUrl"])["files"][0]["status"] == "linking"
    b = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/b/report.pdf"}).json()
    worker.poll_once()  # B links its look-alike before A is back
    assert job_status(stack, b["statusUrl"])["status"] == "succeeded"

    job_a, job_b = run_until_done(worker, stack, [a["statusUrl"], b["statusUrl"]])

    assert job_a["status"] == job_b["status"] == "succeeded", (job_a, job_b)
    attachments = {str(x.id): x for x in stack.sim.attachments("1234")}
    assert len(attachments) == 2 and {x.filename for x in attachments.values()} == {"report.pdf"}
    id_a, id_b = job_a["files"][0]["attachmentId"], job_b["files"][0]["attachmentId"]
    assert id_a != id_b
    assert attachments[id_a].sha256 == hashlib.sha256(A_BYTES).hexdigest()
    assert attachments[id_b].sha256 == hashlib.sha256(B_BYTES).hexdigest()
    assert stack.queue_depth(stack.dlq_url) == 0


def test_a_lease_left_by_a_killed_worker_delays_other_jobs_without_using_up_their_receives(
    stack: LocalStack, api: str, worker: LocalWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(link_lease, "LEASE_SECONDS", 4)
    leases = link_lease.LinkLeases(stack.resource("dynamodb").Table(stack.jobs_table))
    leases.acquire("1234", "killed-job#0")  # a worker died between its snapshot and its link's reply
    stack.put("attachments/a.txt", A_BYTES)
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"}).json()

    worker.poll_once()  # the lease is taken: the job continues in a new, delayed message
    assert job_status(stack, reply["statusUrl"])["files"][0]["status"] == "pending"  # nothing uploaded in vain
    assert stack.sim.uploads == {}
    assert worker.poll_once() == 0  # nothing visible until the lease has run out
    [job] = run_until_done(worker, stack, [reply["statusUrl"]], timeout=30)

    assert job["status"] == "succeeded"
    assert [x.sha256 for x in stack.sim.attachments("1234")] == [hashlib.sha256(A_BYTES).hexdigest()]
    assert stack.queue_depth(stack.dlq_url) == 0


def test_recovery_pages_through_an_object_with_many_attachments_and_stores_a_bounded_marker(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    stack.sim.list_page_size = 2  # the list answers in pages of two: the interrupted link's attachment is on page 3
    for name in ("one.txt", "two.txt", "three.txt", "four.txt"):
        stack.put(f"attachments/{name}", name.encode())
        post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/{name}"})
    worker.drain()
    stack.put("attachments/five.txt", b"five")
    stack.sim.inject("link", Fault(after_success=True, drop_after_bytes=0))
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/five.txt"}).json()

    worker.drain()

    job = job_status(stack, reply["statusUrl"])
    assert job["status"] == "succeeded"
    assert [a.filename for a in stack.sim.attachments("1234")] == ["one.txt", "two.txt", "three.txt", "four.txt",
                                                                   "five.txt"]  # fmt: skip
    assert job["files"][0]["attachmentId"] == str(stack.sim.attachments("1234")[-1].id)
    item = stack.client("dynamodb").get_item(TableName=stack.jobs_table, Key={"jobId": {"S": job["jobId"]}})["Item"]
    marker = item["files"]["L"][0]["M"]["linkMarker"]["M"]
    assert marker["afterId"] == {"N": "4"} and len(str(marker)) < 200  # not the ids themselves


def test_the_lease_excludes_other_holders_and_remembers_what_each_generation_linked(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(link_lease, "LEASE_SECONDS", 1)
    leases = link_lease.LinkLeases(stack.resource("dynamodb").Table(stack.jobs_table))

    first = leases.acquire("7", "job-a#0")
    assert leases.acquire("7", "job-a#0") == first  # renewed by its holder: the same generation
    with pytest.raises(link_lease.LinkBusyError) as busy:
        leases.acquire("7", "job-b#0")
    assert busy.value.retryable and 0 < (busy.value.retry_after or 0) <= 3
    leases.release(first, {first.generation: "101"})
    second = leases.acquire("7", "job-b#0")  # free again: a new generation
    assert second.generation == first.generation + 1
    time.sleep(1.2)  # job-b is killed holding it: after the lease runs out, another may take it
    third = leases.acquire("7", "job-c#0")
    assert third.generation == second.generation + 1
    leases.release(third, {third.generation: None})

    assert leases.linked_between("7", first.generation - 1, third.generation + 1) is None  # job-b: unknown
    assert leases.linked_between("7", second.generation, third.generation + 1) == set()
    assert leases.linked_between("7", first.generation - 1, second.generation) == {"101"}
