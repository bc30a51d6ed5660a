"""In-memory stand-ins for the job core's outside systems: the job store, the link lease, S3 and Atlassian.

Each satisfies its port (``core/ports.py``; mypy checks them against it). They keep the rules that matter to the
job core (a stored record reads back as a JobRecord; a lease has a holder, an expiry and generations; a pair
claim lives as long as its holder may come back; a link makes an attachment before its reply can be lost) and
nothing else. ``tests/integration/test_port_contract.py`` runs the same store, lease and claim scenarios on these
and on the real adapters over moto; these let the job core's rules be tested offline, in milliseconds.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from assets_attach.atlassian.assets_client import Attachment
from assets_attach.atlassian.jira_client import JiraAttachment
from assets_attach.atlassian.media_api import MediaCredentials, UploadedMedia
from assets_attach.aws.attached_pairs import CLAIM_SECONDS, LostLink, PairClaim
from assets_attach.aws.job_store import JobExistsError
from assets_attach.aws.link_lease import LEASE_SECONDS, RING_SIZE, Lease, lease_taken
from assets_attach.aws.s3_source import S3Object
from assets_attach.core.attach import Attacher
from assets_attach.core.job_runner import JobRunner
from assets_attach.errors import AtlassianError, ObjectNotFoundError, SourceDeletedError, SourceNotFoundError
from assets_attach.job_listing import job_refs
from assets_attach.job_record import FileChange, JobChange, JobRecord, now_iso, queued_record
from assets_attach.jobs import JobSpec


class FakeStore:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.refs: dict[str, set[str]] = {}  # job id → what it is found by, beyond what it was created with

    def create(self, job_id: str, spec: JobSpec) -> None:
        if job_id in self.items:
            raise JobExistsError("a job with this id exists already", step="jobs")
        self.items[job_id] = queued_record(job_id, spec)

    def create_if_absent(self, job_id: str, spec: JobSpec) -> bool:
        try:
            self.create(job_id, spec)
        except JobExistsError:
            return False
        return True

    def get(self, job_id: str) -> JobRecord | None:
        item = self.items.get(job_id)
        return JobRecord.model_validate(copy.deepcopy(item)) if item else None

    def add_refs(self, record: JobRecord, refs: list[str]) -> None:
        self.refs.setdefault(record.jobId, set()).update(refs)

    def replace_failed_drop(self, job_id: str, spec: JobSpec) -> None:
        item = self.items.get(job_id)
        if item is None or item.get("attempts") != 0 or item.get("origin") != "s3":
            raise JobExistsError("a job with this id exists already", step="jobs")
        self.items[job_id] = queued_record(job_id, spec)
        stored = JobRecord.model_validate(self.items[job_id])
        self.add_refs(stored, job_refs(stored))  # the objects it names now, found as any job's

    def update(self, job_id: str, change: JobChange) -> None:
        self.items[job_id].update(change.fields(), updatedAt=now_iso())

    def update_file(self, job_id: str, index: int, change: FileChange) -> None:
        self.items[job_id]["files"][index].update(change.fields())
        self.items[job_id]["updatedAt"] = now_iso()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeLeases:
    """LinkLeases' rules: a holder, an expiry and a new generation on each take; what generations linked is kept in
    a ring of RING_SIZE slots, as on the lease item."""

    clock: Callable[[], float]
    seconds: float = LEASE_SECONDS
    holders: dict[str, tuple[str, float, int]] = field(default_factory=dict)  # object -> (holder, until, generation)
    generations: dict[str, int] = field(default_factory=dict)
    linked: dict[tuple[str, int], tuple[int, str | None]] = field(default_factory=dict)  # (object, slot) -> outcome

    def acquire(self, object_id: str, holder: str) -> Lease:
        current = self.holders.get(object_id)
        if current and current[0] == holder:
            self.holders[object_id] = (holder, self.clock() + self.seconds, current[2])
            return Lease(object_id, holder, current[2])
        self.check_free(object_id, holder)
        generation = self.generations.get(object_id, 0) + 1
        self.generations[object_id] = generation
        self.holders[object_id] = (holder, self.clock() + self.seconds, generation)
        return Lease(object_id, holder, generation)

    def check_free(self, object_id: str, holder: str) -> None:
        current = self.holders.get(object_id)
        if current and current[0] != holder and current[1] >= self.clock():
            raise lease_taken(object_id, current[1] - self.clock())

    def release(self, lease: Lease, outcomes: Mapping[int, str | None]) -> None:
        for generation, attachment_id in sorted(outcomes.items()):  # a newer generation wins a shared slot
            self.linked[(lease.object_id, generation % RING_SIZE)] = (generation, attachment_id)
        if self.holders.get(lease.object_id, ("",))[0] == lease.holder:
            del self.holders[lease.object_id]

    def linked_between(self, object_id: str, after: int, before: int) -> set[str] | None:
        made: set[str] = set()
        for generation in range(after + 1, before):
            entry = self.linked.get((object_id, generation % RING_SIZE))
            if entry is None or entry[0] != generation:
                return None
            if entry[1] is not None:
                made.add(entry[1])
        return made


@dataclass
class FakePairs:
    """AttachedPairs' rules: a claim is its holder's for CLAIM_SECONDS from its last claim (one set straight into
    ``claims`` never runs out), kept while attached or while a lost link waits to be settled."""

    clock: Callable[[], float]
    claims: dict[tuple[str, str], PairClaim] = field(default_factory=dict)
    claimed_until: dict[tuple[str, str], float] = field(default_factory=dict)

    def claim(self, jira_attachment_id: str, object_id: str, holder: str) -> PairClaim:
        key = (jira_attachment_id, object_id)
        current = self.claims.get(key)
        run_out = current is not None and self.claimed_until.get(key, float("inf")) < self.clock()
        if current is None or (
            current.attachment_id is None and (current.holder == holder or (run_out and current.lost_link is None))
        ):
            return self._claimed(key, holder)
        return current

    def _claimed(self, key: tuple[str, str], holder: str) -> PairClaim:
        self.claims[key] = PairClaim(holder, None)
        self.claimed_until[key] = self.clock() + CLAIM_SECONDS
        return self.claims[key]

    def attached(self, jira_attachment_id: str, object_id: str, holder: str, attachment_id: str) -> None:
        current = self.claims.get((jira_attachment_id, object_id))
        lost_link = current.lost_link if current else None
        self.claims[(jira_attachment_id, object_id)] = PairClaim(holder, attachment_id, lost_link)

    def take_over(self, jira_attachment_id: str, object_id: str, holder: str, lost: PairClaim) -> bool:
        current = self.claims.get((jira_attachment_id, object_id))
        if current is None or current.holder != lost.holder or not current.lost_link or current.attachment_id:
            return False
        self._claimed((jira_attachment_id, object_id), holder)
        return True

    def lost(self, jira_attachment_id: str, object_id: str, holder: str, link: LostLink) -> None:
        current = self.claims.get((jira_attachment_id, object_id))
        if current is not None and current.holder == holder and current.attachment_id is None:
            self.claims[(jira_attachment_id, object_id)] = PairClaim(holder, None, link)

    def release(self, jira_attachment_id: str, object_id: str, holder: str) -> None:
        if self.claims.get((jira_attachment_id, object_id)) == PairClaim(holder, None):
            del self.claims[(jira_attachment_id, object_id)]

    def attached_ids(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return {pair for pair in pairs if pair in self.claims and self.claims[pair].attachment_id}


@dataclass
class FakeSource:
    name: str
    data: bytes
    content_type: str | None = "text/plain"

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def expected_md5(self) -> str | None:
        return hashlib.md5(self.data).hexdigest()  # noqa: S324 - what an S3 ETag is

    verified_checksum = None  # the MD5 above is what the engine checks

    def chunks(self, start: int = 0) -> Iterator[bytes]:
        yield self.data[start:]


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.deleted: set[tuple[str, str]] = set()

    def head(self, bucket: str, key: str, *, pin: dict[str, str] | None = None) -> S3Object:
        if (bucket, key) not in self.objects or (bucket, key) in self.deleted:
            raise SourceNotFoundError(f"s3://{bucket}/{key} does not exist", step="s3-head", status=404, field="key")
        source = FakeSource(key.rsplit("/", 1)[-1], self.objects[(bucket, key)])
        return S3Object(bucket, key, source.size, source.content_type, f'"{source.expected_md5}"', None, {})

    def head_accepted(self, bucket: str, key: str, pin: dict[str, str]) -> FakeSource:
        if (bucket, key) in self.deleted:
            raise SourceDeletedError(f"s3://{bucket}/{key} was deleted", step="s3-head")
        return FakeSource(key.rsplit("/", 1)[-1], self.objects[(bucket, key)])


class FakeJira:
    """Jira attachments by id, all on one issue."""

    def __init__(self) -> None:
        self.attachments: dict[str, bytes] = {}

    def attachment(self, attachment_id: str, field: str = "jiraAttachments") -> JiraAttachment:
        if attachment_id not in self.attachments:
            raise SourceNotFoundError(f"no Jira attachment {attachment_id}", step="jira", status=404, field=field)
        return JiraAttachment(
            id=attachment_id, filename=f"{attachment_id}.bin", size=len(self.attachments[attachment_id])
        )

    def issue_attachments(self, issue_key: str) -> list[JiraAttachment]:
        return [self.attachment(attachment_id) for attachment_id in self.attachments]

    def source(self, attachment_id: str, *, name: str, size: int, content_type: str | None) -> FakeSource:
        return FakeSource(name, self.attachments[attachment_id], content_type)


class FakeAtlassian:
    """Steps 1 to 3 and the attachment list; ``lose_next_link_reply`` makes the next link happen and then
    fail as a dropped connection would."""

    def __init__(self) -> None:
        self.attachments: dict[str, list[Attachment]] = {}
        self.contents: dict[str, bytes] = {}
        self.uploads: dict[str, bytes] = {}
        self._ids = itertools.count(1)
        self.lose_next_link_reply = False
        self.on_link: Callable[[], None] | None = None
        self.list_available = True  # False: the (undocumented) list endpoint answers 404

    # -- AssetsClient
    def media_credentials(self, object_id: str) -> MediaCredentials:
        if object_id not in self.attachments:
            raise ObjectNotFoundError(f"no object {object_id}", step="credentials", status=404)
        return MediaCredentials.model_validate(
            {"clientId": "c", "mediaBaseUrl": "https://api.media.atlassian.com", "mediaJwtToken": "jwt"}
        )

    def link(
        self, object_id: str, *, filename: str, content_type: str, media_id: str, size: int, comment: str
    ) -> Attachment:
        if self.on_link:
            self.on_link()
        attachment = Attachment(id=str(next(self._ids)), filename=filename, filesize=f"{size} B")
        self.attachments[object_id].append(attachment)
        self.contents[attachment.id] = self.uploads[media_id]
        if self.lose_next_link_reply:
            self.lose_next_link_reply = False
            raise AtlassianError("cannot reach Atlassian (ConnectionError)", step="link", retryable=True)
        return attachment

    def list_attachments(self, object_id: str) -> list[Attachment]:
        if not self.list_available:
            raise AtlassianError("Atlassian answered 404", step="list", status=404)
        return list(self.attachments[object_id])

    def find_object_id(self, object_key: str) -> str:
        raise ObjectNotFoundError(f"no object {object_key}", step="aql", field="objectKey")

    # -- MediaUploader
    def upload(
        self,
        credentials: MediaCredentials,
        *,
        filename: str,
        content_type: str,
        size: int,
        open_chunks: Callable[[], Iterable[bytes]],
    ) -> UploadedMedia:
        media_id = f"media-{next(self._ids)}"
        self.uploads[media_id] = b"".join(open_chunks())
        return UploadedMedia(id=media_id, size=size)

    def stored_file(self, credentials: MediaCredentials, media: UploadedMedia) -> UploadedMedia:
        return media.model_copy(update={"size": len(self.uploads[media.id])})

    def contents_of(self, object_id: str) -> list[bytes]:
        return [self.contents[a.id] for a in self.attachments[object_id]]


@dataclass
class JobCore:
    """A JobRunner wired to the fakes above."""

    store: FakeStore = field(default_factory=FakeStore)
    clock: FakeClock = field(default_factory=FakeClock)
    s3: FakeS3 = field(default_factory=FakeS3)
    atlassian: FakeAtlassian = field(default_factory=FakeAtlassian)
    leases: FakeLeases = field(init=False)
    pairs: FakePairs = field(init=False)
    jira: FakeJira = field(default_factory=FakeJira)
    runner: JobRunner = field(init=False)

    def __post_init__(self) -> None:
        self.leases = FakeLeases(self.clock)
        self.pairs = FakePairs(self.clock)
        attacher = Attacher(self.atlassian, self.atlassian, max_file_size=1024**3)
        self.runner = JobRunner(
            attacher,
            self.atlassian,
            self.s3,
            self.jira,  # the integration tier runs Jira sources against the simulator
            self.store,
            self.leases,
            self.pairs,
        )
