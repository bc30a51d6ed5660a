"""The ports' contract: the same job store, link lease and pair claim scenarios on the in-memory fakes the unit tests
run the job core with (``tests/unit/fakes.py``) and, over moto, on the real adapters (``aws/``).

The real adapter is the behaviour of record: a scenario that passes on ``real`` and fails on ``fake`` means the fake
is wrong, and the job core's unit tests prove less than they say. Both read one clock: the fakes take it, the real
adapters read ``time.time``, patched to it (as ``test_pair_claims`` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from unit.fakes import FakeClock, FakeLeases, FakePairs, FakeStore

from assets_attach.aws.attached_pairs import CLAIM_SECONDS, AttachedPairs, LostLink, PairClaim
from assets_attach.aws.job_store import JobExistsError, JobStore
from assets_attach.aws.link_lease import LEASE_SECONDS, RING_SIZE, LinkBusyError, LinkLeases
from assets_attach.core.ports import ClaimsPort, LeasesPort, StorePort
from assets_attach.job_listing import JobQuery, ref_object
from assets_attach.job_record import ChunkedUpload, FileChange, JobChange, JobRecord, LinkMarker
from assets_attach.jobs import JobFile, JobSpec
from devstack.stack import LocalStack

HOUR = 3600


@dataclass
class Ports:
    """One kind of the three adapters, over one clock, and how that kind is listed by object."""

    store: StorePort
    leases: LeasesPort
    pairs: ClaimsPort
    clock: FakeClock
    listed_for_object: Callable[[str], set[str]]  # the job ids a listing by object id finds

    def later(self, seconds: float) -> None:
        self.clock.now += seconds


@pytest.fixture(params=["fake", "real"])
def ports(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Ports:
    clock = FakeClock()
    if request.param == "fake":
        fake_store = FakeStore()

        def fake_listing(object_id: str) -> set[str]:
            return {job_id for job_id, refs in fake_store.refs.items() if ref_object(object_id) in refs}

        return Ports(fake_store, FakeLeases(clock), FakePairs(clock=clock), clock, fake_listing)

    stack: LocalStack = request.getfixturevalue("stack")
    table = stack.resource("dynamodb").Table(stack.jobs_table)
    store = JobStore(table)
    clock.now = time.time()
    monkeypatch.setattr(time, "time", clock)  # the clock link_lease, attached_pairs and job_store read

    def listing(object_id: str) -> set[str]:
        return {record.jobId for record in store.find(JobQuery(object_id=object_id))[0]}

    return Ports(store, LinkLeases(table), AttachedPairs(table), clock, listing)


# ------------------------------------------------------------------------------------------------------- link lease


def test_a_lease_is_renewed_by_its_holder_and_refused_to_another_until_it_runs_out(ports: Ports) -> None:
    leases = ports.leases
    first = leases.acquire("7", "job-a#0")
    assert first.generation == 1
    ports.later(60)
    assert leases.acquire("7", "job-a#0") == first  # renewed: the same generation, LEASE_SECONDS from now
    leases.check_free("7", "job-a#0")  # its own lease does not stop its holder

    with pytest.raises(LinkBusyError) as busy:
        leases.acquire("7", "job-b#0")
    assert (busy.value.step, busy.value.retry_after) == ("lease", 10.0)  # look again in at most 10 s
    ports.later(LEASE_SECONDS - 1)
    with pytest.raises(LinkBusyError) as nearly:
        leases.check_free("7", "job-b#0")
    assert nearly.value.retry_after == 2.0  # a second left: look again in the least wait

    ports.later(2)  # job-a was killed holding it
    leases.check_free("7", "job-b#0")
    assert leases.acquire("7", "job-b#0").generation == 2


def test_releasing_records_what_each_generation_linked(ports: Ports) -> None:
    leases = ports.leases
    first = leases.acquire("7", "job-a#0")
    leases.release(first, {first.generation: "101"})
    second = leases.acquire("7", "job-b#0")  # free again: a new generation
    ports.later(LEASE_SECONDS + 1)  # job-b is killed holding it
    third = leases.acquire("7", "job-c#0")
    leases.release(third, {third.generation: None})  # made nothing

    assert (first.generation, second.generation, third.generation) == (1, 2, 3)
    assert leases.linked_between("7", 0, 2) == {"101"}
    assert leases.linked_between("7", 2, 4) == set()
    assert leases.linked_between("7", 0, 4) is None  # job-b's outcome is unknown
    assert leases.linked_between("7", 1, 2) == set()  # no generation in between
    assert leases.linked_between("8", 0, 1) == set()


def test_a_holder_whose_lease_was_taken_over_still_records_its_outcome_and_frees_nothing(ports: Ports) -> None:
    leases = ports.leases
    slow = leases.acquire("7", "job-a#0")
    ports.later(LEASE_SECONDS + 1)
    taken = leases.acquire("7", "job-b#0")
    leases.release(slow, {slow.generation: "55"})  # its link came back after its lease ran out

    with pytest.raises(LinkBusyError):
        leases.check_free("7", "job-c#0")  # job-b still holds it
    assert leases.linked_between("7", 0, taken.generation) == {"55"}
    leases.release(taken, {})  # outcome unknown: nothing recorded
    assert leases.linked_between("7", 0, taken.generation + 1) is None
    leases.check_free("7", "job-c#0")


def test_a_lease_remembers_the_outcomes_of_its_last_ring_of_generations(ports: Ports) -> None:
    leases = ports.leases
    for _ in range(RING_SIZE + 1):
        lease = leases.acquire("7", "job-a#0")
        leases.release(lease, {lease.generation: f"a{lease.generation}"})

    assert leases.linked_between("7", 1, RING_SIZE + 2) == {f"a{g}" for g in range(2, RING_SIZE + 2)}
    assert leases.linked_between("7", 0, 2) is None  # generation 1's slot holds generation 33 now


# ------------------------------------------------------------------------------------------------------ pair claims


def test_a_claim_is_its_holders_renewed_on_every_attempt_and_runs_out_only_when_the_holder_is_gone(
    ports: Ports,
) -> None:
    pairs = ports.pairs
    assert pairs.claim("10001", "1234", "jobA#0") == PairClaim("jobA#0", None)
    busy = pairs.claim("10001", "1234", "jobB#0")
    assert (busy.holder, busy.job_id, busy.attachment_id, busy.lost_link) == ("jobA#0", "jobA", None, None)

    ports.later(CLAIM_SECONDS - HOUR)
    assert pairs.claim("10001", "1234", "jobA#0") == PairClaim("jobA#0", None)  # A is back: renewed from now
    ports.later(CLAIM_SECONDS - HOUR)
    assert pairs.claim("10001", "1234", "jobB#0").holder == "jobA#0"
    ports.later(2 * HOUR)  # A is gone for good
    assert pairs.claim("10001", "1234", "jobB#0") == PairClaim("jobB#0", None)
    assert pairs.claim("10002", "1234", "jobA#0") == PairClaim("jobA#0", None)  # each pair its own claim


def test_a_released_claim_is_free_at_once_and_only_its_holder_releases_it(ports: Ports) -> None:
    pairs = ports.pairs
    pairs.claim("10001", "1234", "jobA#0")
    pairs.release("10001", "1234", "jobB#0")  # not B's to release
    assert pairs.claim("10001", "1234", "jobB#0").holder == "jobA#0"
    pairs.release("10001", "1234", "jobA#0")
    assert pairs.claim("10001", "1234", "jobB#0") == PairClaim("jobB#0", None)
    pairs.release("10009", "1234", "jobA#0")  # nothing to release


def test_an_attached_pair_is_adopted_by_every_later_job_and_never_released_or_run_out(ports: Ports) -> None:
    pairs = ports.pairs
    pairs.claim("10001", "1234", "jobA#0")
    pairs.claim("10002", "1234", "jobA#1")
    pairs.attached("10001", "1234", "jobA#0", "77")
    pairs.release("10001", "1234", "jobA#0")
    pairs.lost("10001", "1234", "jobA#0", LostLink(None, "report.pdf", 9))  # attached: there is nothing to settle
    ports.later(10 * CLAIM_SECONDS)

    assert pairs.claim("10001", "1234", "jobB#0") == PairClaim("jobA#0", "77")
    assert pairs.attached_ids([("10001", "1234"), ("10002", "1234"), ("10003", "1234")]) == {("10001", "1234")}
    assert pairs.attached_ids([]) == set()


def test_a_lost_link_stays_on_the_claim_until_one_job_settles_it(ports: Ports) -> None:
    pairs = ports.pairs
    pairs.claim("10001", "1234", "jobA#0")
    link = LostLink(LinkMarker(afterId=41, generation=7), "report.pdf", 1234)
    pairs.lost("10001", "1234", "jobB#0", link)  # not B's claim: nothing noted
    assert pairs.claim("10001", "1234", "jobB#0").lost_link is None
    assert not pairs.take_over("10001", "1234", "jobB#0", PairClaim("jobA#0", None))  # no lost link to settle

    pairs.lost("10001", "1234", "jobA#0", LostLink(None, "report.pdf", 1234))
    pairs.lost("10001", "1234", "jobA#0", link)  # the last one noted is the one to settle
    pairs.release("10001", "1234", "jobA#0")  # a release cannot drop a claim that may have been linked
    ports.later(10 * CLAIM_SECONDS)  # however long after
    claim = pairs.claim("10001", "1234", "jobB#0")
    assert claim == PairClaim("jobA#0", None, link)

    assert pairs.take_over("10001", "1234", "jobB#0", claim)  # B settled it as "never made"
    assert not pairs.take_over("10001", "1234", "jobC#0", claim)  # only once
    assert pairs.claim("10001", "1234", "jobC#0") == PairClaim("jobB#0", None)


def test_a_lost_link_without_a_marker_and_settled_as_attached_keeps_the_attachment(ports: Ports) -> None:
    pairs = ports.pairs
    pairs.claim("10001", "1234", "jobA#0")
    link = LostLink(None, "report.pdf", 1234)  # the list was not available before that link
    pairs.lost("10001", "1234", "jobA#0", link)
    assert pairs.claim("10001", "1234", "jobB#0") == PairClaim("jobA#0", None, link)

    pairs.attached("10001", "1234", "jobA#0", "88")  # B found A's copy: recorded under A, the lost link kept
    settled = pairs.claim("10001", "1234", "jobC#0")
    assert settled == PairClaim("jobA#0", "88", link)  # adopted by its attachment; the lost link stays inert
    assert not pairs.take_over("10001", "1234", "jobC#0", settled)


def test_the_holder_claiming_again_after_its_lost_link_renews_a_plain_claim(ports: Ports) -> None:
    """A job re-run on purpose (POST …/retry) claims its pairs under the same holder: the claim is its own again,
    the lost link it left is no longer on it."""
    pairs = ports.pairs
    pairs.claim("10001", "1234", "jobA#0")
    pairs.lost("10001", "1234", "jobA#0", LostLink(None, "report.pdf", 1234))
    assert pairs.claim("10001", "1234", "jobA#0") == PairClaim("jobA#0", None)
    assert pairs.claim("10001", "1234", "jobB#0") == PairClaim("jobA#0", None)


# -------------------------------------------------------------------------------------------------------- job store

S3_FILE = JobFile(bucket="bkt", key="in/report.pdf", filename="report.pdf", size=9, etag='"abc"')


def test_a_job_is_created_once_and_read_back_typed(ports: Ports) -> None:
    store = ports.store
    spec = JobSpec(objectIds=["77", "78"], files=[S3_FILE], issueKey="HW-1")
    assert store.get("j1") is None
    store.create("j1", spec)
    with pytest.raises(JobExistsError):
        store.create("j1", JobSpec(objectIds=["99"], files=[S3_FILE]))
    assert not store.create_if_absent("j1", JobSpec(objectIds=["99"], files=[S3_FILE]))
    assert store.create_if_absent("j2", spec)

    record = store.get("j1")
    assert record is not None
    assert (record.jobId, record.status, record.origin, record.attempts) == ("j1", "queued", "webhook", 0)
    assert (record.objectId, record.issueKey, record.error) == ("77", "HW-1", None)
    assert [(f.objectId, f.key, f.etag, f.status) for f in record.files] == [
        ("77", "in/report.pdf", '"abc"', "pending"),
        ("78", "in/report.pdf", '"abc"', "pending"),
    ]
    assert record.spec() == spec
    assert store.get("j2") is not None


def write_changes(store: StorePort, job_id: str) -> None:
    """Every kind of change the job core writes."""
    store.update(job_id, JobChange(status="running", attempts=1))
    store.update(job_id, JobChange(objectId="77"))
    store.update_file(job_id, 0, FileChange(objectId="77"))
    store.update_file(job_id, 0, FileChange(waitingFor="jobB"))
    store.update_file(job_id, 0, FileChange(status="uploading", waitingFor=None))
    chunked = ChunkedUpload(uploadId="u1", chunkSize=4, appended=1, sent=2)
    store.update_file(job_id, 0, FileChange(bytesSent=8, chunkedUpload=chunked))
    marker = LinkMarker(afterId=41, generation=3)
    store.update_file(job_id, 0, FileChange(status="linking", mediaId="m1", linkMarker=marker))
    store.update_file(job_id, 0, FileChange(status="attached", attachmentId="101", mediaId="m1", integrityCheck="md5"))
    store.update_file(job_id, 1, FileChange(status="failed", error="gone", errorCode="source_deleted"))
    store.update(job_id, JobChange(status="failed", error="1 of 2 file(s) failed"))
    store.update(job_id, JobChange(error=None))  # no status: it stays; None: stored as null


def test_changes_read_back_as_written(ports: Ports) -> None:
    store = ports.store
    store.create("j1", JobSpec(objectKeys=["HW-42"], files=[S3_FILE, S3_FILE.model_copy(update={"key": "in/b"})]))
    created = store.get("j1")
    assert created is not None
    time.sleep(0.002)  # updatedAt has milliseconds

    write_changes(store, "j1")

    record = store.get("j1")
    assert record is not None
    assert (record.status, record.attempts, record.objectId, record.error) == ("failed", 1, "77", None)
    assert record.updatedAt > created.updatedAt and record.createdAt == created.createdAt
    attached, failed = record.files
    assert attached.model_dump(exclude_defaults=True) == {
        "objectId": "77",
        "objectKey": "HW-42",
        "bucket": "bkt",
        "key": "in/report.pdf",
        "filename": "report.pdf",
        "size": 9,
        "etag": '"abc"',
        "status": "attached",
        "mediaId": "m1",
        "bytesSent": 8,
        "integrityCheck": "md5",
        "chunkedUpload": {"uploadId": "u1", "chunkSize": 4, "appended": 1, "sent": 2},
        "linkMarker": {"afterId": 41, "generation": 3},
        "attachmentId": "101",
    }
    assert (failed.objectId, failed.key, failed.status, failed.error, failed.errorCode) == (
        None,
        "in/b",
        "failed",
        "gone",
        "source_deleted",
    )


def test_a_job_is_listed_by_the_refs_added_once_its_objects_are_known(ports: Ports) -> None:
    store = ports.store
    store.create("j1", JobSpec(objectKeys=["HW-42"], files=[S3_FILE]))
    store.update_file("j1", 0, FileChange(objectId="77"))
    assert "j1" not in ports.listed_for_object("77")

    record = store.get("j1")
    assert record is not None
    store.add_refs(record, [ref_object("77")])
    store.add_refs(record, [ref_object("77")])  # again: still one entry
    assert ports.listed_for_object("77") == {"j1"}


def test_a_failed_drops_record_is_replaced_by_its_job_only_while_no_attempt_touched_it(ports: Ports) -> None:
    store = ports.store
    store.create("drop", JobSpec(objectKeys=["HW-42"], files=[S3_FILE], origin="s3"))
    store.create("api", JobSpec(objectIds=["77"], files=[S3_FILE]))
    job = JobSpec(objectIds=["77", "78"], files=[S3_FILE], origin="s3")

    store.replace_failed_drop("drop", job)
    replaced = store.get("drop")
    assert isinstance(replaced, JobRecord)
    assert (replaced.status, replaced.origin, [f.objectId for f in replaced.files]) == ("queued", "s3", ["77", "78"])
    assert "drop" in ports.listed_for_object("78")

    store.update("drop", JobChange(attempts=1))
    with pytest.raises(JobExistsError):
        store.replace_failed_drop("drop", JobSpec(objectIds=["79"], files=[S3_FILE], origin="s3"))
    with pytest.raises(JobExistsError):
        store.replace_failed_drop("api", job)  # not a drop
    record = store.get("drop")
    assert record is not None and [f.objectId for f in record.files] == ["77", "78"]
