"""The job core's rules, offline: the runner, the link recovery it carries out, deadlines and the retry table."""

from __future__ import annotations

from typing import Any

import pytest
from unit.fakes import JobCore

from assets_attach.aws.attached_pairs import PairBusyError, PairClaim
from assets_attach.core import retry_policy
from assets_attach.errors import AtlassianError, AttachError, BadRequestError, ContinueLaterError, DeadlineError
from assets_attach.job_record import FileChange
from assets_attach.jobs import JobFile, JobSpec

OBJECT = "1234"
PLENTY = 300.0


def spec(core: JobCore, *files: tuple[str, bytes], object_id: str = OBJECT) -> JobSpec:
    core.atlassian.attachments.setdefault(object_id, [])
    wanted = []
    for key, data in files:
        core.s3.objects[("bkt", key)] = data
        wanted.append(JobFile(bucket="bkt", key=key, filename=key.rsplit("/", 1)[-1], size=len(data)))
    return JobSpec(objectIds=[object_id], files=wanted)


def test_a_job_attaches_each_file_once_and_a_rerun_does_nothing() -> None:
    core = JobCore()
    job = spec(core, ("a.txt", b"aaa"), ("b.txt", b"bb"))

    record = core.runner.run("j1", job, time_left=lambda: PLENTY)
    again = core.runner.run("j1", job, time_left=lambda: PLENTY)

    assert record.status == "succeeded" and again.status == "succeeded"
    assert [f.status for f in record.files] == ["attached", "attached"]
    assert core.atlassian.contents_of(OBJECT) == [b"aaa", b"bb"]
    assert record.attempts == 1


def test_a_lost_link_reply_is_recovered_by_adopting_the_attachment_it_made() -> None:
    core = JobCore()
    job = spec(core, ("a.txt", b"aaa"))
    core.atlassian.lose_next_link_reply = True

    with pytest.raises(AtlassianError) as lost:
        core.runner.run("j1", job, time_left=lambda: PLENTY)
    assert lost.value.retryable
    linking = core.store.get("j1")
    assert linking is not None and linking.files[0].status == "linking"
    assert linking.files[0].linkMarker is not None and linking.files[0].linkMarker.afterId == 0

    record = core.runner.run("j1", job, time_left=lambda: PLENTY)

    assert record.status == "succeeded"
    [attachment] = core.atlassian.attachments[OBJECT]
    assert record.files[0].attachmentId == attachment.id
    assert core.leases.holders == {}  # released


def test_recovery_sets_aside_a_look_alike_another_job_linked_meanwhile() -> None:
    core = JobCore()
    mine = spec(core, ("a/report.pdf", b"A" * 10))
    theirs = spec(core, ("b/report.pdf", b"B" * 10))
    core.atlassian.lose_next_link_reply = True
    with pytest.raises(AtlassianError):
        core.runner.run("mine", mine, time_left=lambda: PLENTY)

    assert core.runner.run("theirs", theirs, time_left=lambda: PLENTY).status == "succeeded"
    record = core.runner.run("mine", mine, time_left=lambda: PLENTY)

    assert record.status == "succeeded"
    contents = {a.id: core.atlassian.contents[a.id] for a in core.atlassian.attachments[OBJECT]}
    assert contents[record.files[0].attachmentId or ""] == b"A" * 10
    assert len(contents) == 2


def test_a_look_alike_of_unknown_origin_fails_the_file_instead_of_being_guessed() -> None:
    core = JobCore()
    mine = spec(core, ("a/report.pdf", b"A" * 10))
    theirs = spec(core, ("b/report.pdf", b"B" * 10))
    core.atlassian.lose_next_link_reply = True
    with pytest.raises(AtlassianError):
        core.runner.run("mine", mine, time_left=lambda: PLENTY)
    core.atlassian.lose_next_link_reply = True  # the other job's reply is lost too, and it never comes back
    with pytest.raises(AtlassianError):
        core.runner.run("theirs", theirs, time_left=lambda: PLENTY)

    record = core.runner.run("mine", mine, time_left=lambda: PLENTY)

    assert record.status == "failed"
    assert record.files[0].errorCode == "link_ambiguous"
    assert len(core.atlassian.attachments[OBJECT]) == 2  # nothing more was linked


def test_a_link_lost_before_it_happened_is_linked_again() -> None:
    core = JobCore()
    job = spec(core, ("a.txt", b"aaa"))

    def lost_on_the_way() -> None:
        core.atlassian.on_link = None
        raise AtlassianError("cannot reach Atlassian (ConnectionError)", step="link", retryable=True)

    core.atlassian.on_link = lost_on_the_way
    with pytest.raises(AtlassianError):
        core.runner.run("j1", job, time_left=lambda: PLENTY)
    record = core.runner.run("j1", job, time_left=lambda: PLENTY)

    assert record.status == "succeeded"
    assert core.atlassian.contents_of(OBJECT) == [b"aaa"]


def test_a_file_starts_only_with_time_for_it_and_the_job_continues_where_it_stopped() -> None:
    core = JobCore()
    job = spec(core, ("small.txt", b"s"), ("big.bin", b"b" * 1000))
    calls = iter([PLENTY, PLENTY, 1.0])  # the invocation's start; time for the first file, none for the second

    with pytest.raises(DeadlineError) as deadline:
        core.runner.run("j1", job, time_left=lambda: next(calls))
    assert isinstance(deadline.value, ContinueLaterError)
    assert core.atlassian.contents_of(OBJECT) == [b"s"]

    record = core.runner.run("j1", job, time_left=lambda: PLENTY)

    assert record.status == "succeeded"
    assert core.atlassian.contents_of(OBJECT) == [b"s", b"b" * 1000]


def test_a_taken_lease_stops_the_file_before_its_upload() -> None:
    core = JobCore()
    job = spec(core, ("a.txt", b"aaa"))
    core.leases.acquire(OBJECT, "someone-else#0")

    with pytest.raises(ContinueLaterError) as busy:
        core.runner.run("j1", job, time_left=lambda: PLENTY)

    assert busy.value.retry_after == pytest.approx(10.0)  # looked at again soon, not after the whole lease
    assert core.atlassian.uploads == {}
    core.clock.now += 181  # the other holder was killed; its lease runs out
    assert core.runner.run("j1", job, time_left=lambda: PLENTY).status == "succeeded"


def test_a_permanent_failure_of_one_file_fails_the_job_but_not_the_other_files() -> None:
    core = JobCore()
    job = spec(core, ("gone.txt", b"x"), ("kept.txt", b"y"))
    core.s3.deleted.add(("bkt", "gone.txt"))

    record = core.runner.run("j1", job, time_left=lambda: PLENTY)

    assert record.status == "failed" and record.error == "1 of 2 file(s) failed"
    assert [(f.status, f.errorCode) for f in record.files] == [("failed", "source_deleted"), ("attached", None)]


def test_an_object_that_does_not_exist_fails_its_files_and_the_job() -> None:
    core = JobCore()
    job = JobSpec(objectKeys=["HW-404"], files=[JobFile(bucket="bkt", key="a", filename="a", size=1)])
    record = core.runner.run("j1", job, time_left=lambda: PLENTY)
    assert record.status == "failed" and record.error == "1 of 1 file(s) failed"
    [file] = record.files
    assert file.errorCode == "object_not_found" and "HW-404" in (file.error or "")


PASSING = AttachError("Atlassian answered 503", step="link", retryable=True)
THROTTLED = AttachError("Atlassian answered 429", step="upload", retryable=True, retry_after=60)


@pytest.mark.parametrize(
    ("error", "inline_try", "receive_count", "last", "time_left", "action"),
    [
        (BadRequestError("bad"), 0, 1, False, PLENTY, "fail"),  # permanent: at once, whatever the receive
        (BadRequestError("bad"), 0, 5, True, PLENTY, "fail"),
        (DeadlineError("no time", step="deadline"), 0, 1, False, 5.0, "continue"),
        (PASSING, 0, 1, False, PLENTY, "sleep"),  # a short wait is slept through
        (PASSING, 2, 1, False, PLENTY, "hand_back"),  # but only twice per invocation
        (PASSING, 0, 1, False, 20.0, "hand_back"),  # and not into the deadline
        (THROTTLED, 0, 1, False, PLENTY, "hand_back"),  # a long Retry-After waits on the queue
        (PASSING, 0, 5, True, PLENTY, "give_up"),  # the last receive: the job fails, the message goes on
    ],
)
def test_the_retry_table(
    error: AttachError, inline_try: int, receive_count: int, last: bool, time_left: float, action: str
) -> None:
    decision = retry_policy.decide(
        error, inline_try=inline_try, receive_count=receive_count, last_receive=last, time_left=time_left
    )
    assert decision.action == action
    if action == "hand_back" and error is THROTTLED:
        assert decision.wait == 60
    if action == "sleep":
        assert 0 < decision.wait <= retry_policy.INLINE_WAIT_SECONDS


@pytest.mark.parametrize("killed_at", ["job record", "pair record"])
def test_a_crash_after_a_jira_pair_is_linked_leaves_it_to_adopt_not_to_wait_for(killed_at: str) -> None:
    core = JobCore()
    core.atlassian.attachments[OBJECT] = []
    core.jira.attachments["10001"] = b"from Jira"
    wanted = JobFile(jiraAttachmentId="10001", filename="report.pdf", size=9, contentType="application/pdf")
    job = JobSpec(objectIds=[OBJECT], files=[wanted])
    record_file, record_pair = core.store.update_file, core.pairs.attached

    def kill(*args: Any, **fields: Any) -> None:
        raise SystemExit(f"killed writing the {killed_at}")

    def file_or_kill(job_id: str, index: int, change: FileChange) -> None:
        (kill if change.status == "attached" else record_file)(job_id, index, change)

    if killed_at == "job record":
        core.store.update_file = file_or_kill  # type: ignore[method-assign]
    else:
        core.pairs.attached = kill  # type: ignore[method-assign]
    core.store.create("j1", job)
    with pytest.raises(SystemExit):
        core.runner.run("j1", job, time_left=lambda: PLENTY)
    core.store.update_file, core.pairs.attached = record_file, record_pair  # type: ignore[method-assign]

    again = core.runner.run("j1", job, time_left=lambda: PLENTY)
    core.store.create("j2", job)  # another job wants the same pair: it adopts, it neither waits nor attaches again
    other = core.runner.run("j2", job, time_left=lambda: PLENTY)

    [attachment] = core.atlassian.attachments[OBJECT]
    assert again.status == "succeeded" and again.files[0].attachmentId == attachment.id
    assert other.status == "succeeded" and other.files[0].attachedBy == "j1"


# --------------------------------------------------------------------------------------------- claims across jobs


def jira_job(core: JobCore, *ids: str, s3: tuple[str, bytes] | None = None) -> JobSpec:
    """A job with Jira attachments ``ids`` (and one S3 file) for OBJECT."""
    core.atlassian.attachments.setdefault(OBJECT, [])
    files = []
    for attachment_id in ids:
        core.jira.attachments.setdefault(attachment_id, f"content of {attachment_id}".encode())
        size = len(core.jira.attachments[attachment_id])
        files.append(JobFile(jiraAttachmentId=attachment_id, filename=f"{attachment_id}.pdf", size=size))
    if s3 is not None:
        core.s3.objects[("bkt", s3[0])] = s3[1]
        files.append(JobFile(bucket="bkt", key=s3[0], filename=s3[0], size=len(s3[1])))
    return JobSpec(objectIds=[OBJECT], files=files)


def test_a_pair_another_job_holds_waits_while_the_jobs_other_pairs_are_attached() -> None:
    """Issue 18 §1: job B (the next "all" run) must not be starved by job A, parked while it holds a pair."""
    core = JobCore()
    core.pairs.claim("10001", OBJECT, "jobA#0")  # A holds it: parked on a long Retry-After, or slow
    job = jira_job(core, "10001", "10002", s3=("new.txt", b"new"))

    with pytest.raises(PairBusyError) as waiting:
        core.runner.run("jobB", job, time_left=lambda: PLENTY)

    assert waiting.value.holder_job == "jobA" and not isinstance(waiting.value, AtlassianError)
    record = core.store.get("jobB")
    assert record is not None
    assert [(f.status, f.waitingFor) for f in record.files] == [
        ("pending", "jobA"),  # the job view says which pair waits on which job
        ("attached", None),
        ("attached", None),
    ]
    core.pairs.attached("10001", OBJECT, "jobA#0", "77")  # A finishes
    done = core.runner.run("jobB", job, time_left=lambda: PLENTY)
    assert done.status == "succeeded"
    assert (done.files[0].attachmentId, done.files[0].attachedBy, done.files[0].waitingFor) == ("77", "jobA", None)


def lose_the_next_link_reply(core: JobCore, link_made: bool) -> None:
    """The next link's reply is lost: after the link was made (``link_made``), or on its way, before it."""
    if link_made:
        core.atlassian.lose_next_link_reply = True
        return

    def lost_on_the_way() -> None:
        core.atlassian.on_link = None
        raise AtlassianError("cannot reach Atlassian (ConnectionError)", step="link", retryable=True)

    core.atlassian.on_link = lost_on_the_way


@pytest.mark.parametrize("link_made", [True, False], ids=["the lost link had attached it", "it had not"])
def test_a_claim_whose_link_outcome_is_unknown_is_settled_by_the_next_job_not_released(link_made: bool) -> None:
    """Issue 18 §2: after a lost link reply, the job that gives up leaves the claim with its lost link; the next
    job settles it (list, marker, generation ring): adopts the copy, or links once."""
    core = JobCore()
    job = jira_job(core, "10001")
    lose_the_next_link_reply(core, link_made)
    with pytest.raises(AtlassianError):
        core.runner.run("jobA", job, time_left=lambda: PLENTY)
    core.atlassian.list_available = False  # A's retry cannot tell what its lost link did: the pair fails
    failed = core.runner.run("jobA", job, time_left=lambda: PLENTY)
    assert failed.files[0].errorCode == "link_outcome_unknown"
    claim = core.pairs.claims[("10001", OBJECT)]
    assert claim.holder == "jobA#0" and claim.lost_link is not None  # kept, not released

    core.atlassian.list_available = True
    later = core.runner.run("jobB", job, time_left=lambda: PLENTY)  # the next "all" run

    [attachment] = core.atlassian.attachments[OBJECT]  # one copy, whichever way
    assert later.status == "succeeded" and later.files[0].attachmentId == attachment.id
    assert later.files[0].attachedBy == ("jobA" if link_made else None)
    assert core.pairs.claims[("10001", OBJECT)].attachment_id == attachment.id


def test_a_job_whose_link_outcome_was_lost_checks_its_own_link_before_adopting_another_jobs() -> None:
    """Issue 18 §3: A's link was made but answered 503; while A was parked, B attached the pair. A, back, must
    find its own copy (and say so), not adopt B's and call the pair done with one id."""
    core = JobCore()
    job = jira_job(core, "10001")
    core.atlassian.lose_next_link_reply = True
    with pytest.raises(AtlassianError):
        core.runner.run("jobA", job, time_left=lambda: PLENTY)
    [made_by_a] = core.atlassian.attachments[OBJECT]
    core.pairs.claims[("10001", OBJECT)] = PairClaim("jobB#0", "999")  # as if A's claim had run out and B linked

    again = core.runner.run("jobA", job, time_left=lambda: PLENTY)

    assert again.files[0].attachmentId == made_by_a.id and again.files[0].attachedBy is None


@pytest.mark.parametrize(
    ("waited", "wait"),
    [(0, 10.0), (30, 10.0), (400, 100.0), (3600, 300.0), (retry_policy.PAIR_WAIT_LIMIT_SECONDS + 1, None)],
)
def test_waiting_for_other_jobs_is_counted_in_time(waited: float, wait: float | None) -> None:
    assert retry_policy.pair_wait_seconds(waited) == wait


def test_a_file_no_invocation_could_send_in_one_request_fails_at_once_instead_of_waiting_forever() -> None:
    """Issue 18 §10: a file over what one invocation can send in a single POST would have been put off 50 times."""
    core = JobCore()
    job = spec(core, ("huge.bin", b"h" * 2000), ("small.txt", b"s"))
    big = job.files[0].model_copy(update={"size": 40 * 1024**3})  # as the job record says; never read here
    job = job.model_copy(update={"files": [big, job.files[1]]})

    record = core.runner.run("j1", job, time_left=lambda: 300.0)

    assert [(f.status, f.errorCode) for f in record.files] == [("failed", "file_too_large"), ("attached", None)]
    assert "go on across invocations" in (record.files[0].error or "")


def retried(core: JobCore, job_id: str) -> None:
    """What ``POST /attachments/jobs/{jobId}/retry`` does to the record (``JobStore.retry_failed``): the failed
    pairs pending again, without their errors; the job queued."""
    item = core.store.items[job_id]
    item["status"] = "queued"
    for entry in item["files"]:
        if entry["status"] == "failed":
            entry["status"] = "pending"
            entry.pop("error", None)
            entry.pop("errorCode", None)


@pytest.mark.parametrize("link_made", [True, False], ids=["the lost link had attached it", "it had not"])
@pytest.mark.parametrize("source", ["s3", "jira"])
def test_a_retried_pair_whose_link_outcome_was_unknown_finds_out_before_it_links_again(
    source: str, link_made: bool
) -> None:
    """A pair failed with link_outcome_unknown (its link sent, the reply lost, the list unavailable to tell); the
    admin retries the job. The re-run must look at the object first: adopt the copy the lost link made, or link
    once where it made none; never a second copy."""
    core = JobCore()
    job = jira_job(core, "10001") if source == "jira" else spec(core, ("a.txt", b"aaa"))
    lose_the_next_link_reply(core, link_made)
    with pytest.raises(AtlassianError):
        core.runner.run("jobA", job, time_left=lambda: PLENTY)
    core.atlassian.list_available = False
    failed = core.runner.run("jobA", job, time_left=lambda: PLENTY)
    assert failed.status == "failed" and failed.files[0].errorCode == "link_outcome_unknown"

    core.atlassian.list_available = True
    retried(core, "jobA")
    record = core.runner.run("jobA", job, time_left=lambda: PLENTY)

    [attachment] = core.atlassian.attachments[OBJECT]  # one copy, whichever way
    assert record.status == "succeeded" and record.files[0].attachmentId == attachment.id
    if source == "jira":
        assert core.pairs.claims[("10001", OBJECT)].attachment_id == attachment.id
