"""The crash matrix: a worker process killed with SIGKILL at each point where a crash can happen, then the job
redelivered to a fresh worker process.

Each kill: the job is made (a webhook request, or a file dropped into the bucket, which S3 notifies), a worker
process armed with the point (reliability.crash_points) takes it and dies there; the kill counts only if the
process died by SIGKILL at that point, with the job record and the objects as the point leaves them. The message
comes back when its visibility runs out, to a fresh worker process, and the job must finish. Variants, before
that fresh worker: a worker whose idempotency table does not exist takes the message and fails it (it must go
back to the queue, not be lost); or the fresh worker's first Secrets Manager read is throttled.

The Jira points' job is one Jira issue attachment (random bytes in the simulator's Jira) sent to two objects,
the lane's and a second one of its own: two (attachment, object) pairs, the kill falling on the first. Once
that job is done, the same pairs are asked for again by a different request (the objects in the other order),
as a rule firing again would: its job must adopt both attachments and attach nothing.

Measured: kills where each object ends with exactly the wanted attachments (each once, with the file's bytes,
the ids the job record names; for a Jira pair also the id its pair record names, and the later request attached
nothing new), the job succeeded (none of these faults is permanent), no message is left on the queue or in the
dead-letter queue, and the objects' link leases are free; out of kills made.

A killed worker's in-progress idempotency record holds the job until that worker's Lambda timeout has passed
(in the stack the message returns only after 30 minutes, long after; here after 4 s, so the fresh worker hands
it back until then). So kills run side by side in lanes: each lane has one Assets object and its own copy of
the jobs queue (same visibility timeout, same redrive to a dead-letter queue of its own), and the harness
moves each job's message from the stack's queue, where the webhook or S3 put it, into the lane's queue. A lane's
second object is its own too, so no other lane's kill holds that object's link lease.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from assets_attach.aws.job_store import JobStore
from assets_attach.core import s3_drop
from assets_attach.job_record import JobRecord
from devstack.atlassian_sim import AtlassianSimulator, Fault, SimAttachment
from reliability.crash_points import HOOK_MARKER, LINK_REPLY_DELAY_SECONDS, MARKER, POINTS, SECRET_FAILS_ONCE, Point
from reliability.harness import OBJECTS, Suite
from reliability.harness import suite as local_stack
from reliability.report import Figure, Report
from reliability.scale import Scale

VISIBILITY_TIMEOUT = 4  # seconds: the redelivery delay after a kill
MAX_RECEIVE_COUNT = 10
LANES = 9
CRASH_WORKER_TIMEOUT = "25"  # the killed environment's Lambda timeout (the deadline guard needs 20 s per file)
FILE_SIZE = 1024 * 1024
JIRA_FILE_SIZE = 300 * 1024  # a Jira issue attachment: a photo or a scanned form
# Bounds on the harness's waits, generous for a loaded machine (the kills take seconds when it is idle).
DIE_TIMEOUT = 60.0  # for the armed worker to start, take the job and reach its point
FINAL_TIMEOUT = 180.0  # for the job to be final after the kill: six times the longest back-off
GONE_TIMEOUT = 60.0  # for the worker without an idempotency table to fail the message
MOVE_TIMEOUT = 15.0  # for the job's message to show up on the stack's queue
AGAIN_TIMEOUT = 60.0  # for the later request's job to be final (it adopts: no upload, no link)

IDEMPOTENCY_GONE = "idempotency-gone"
MISSING_TABLE = "assets-attach-idempotency-missing"
IDEMPOTENCY_FAILURE = "IdempotencyPersistenceLayerError"  # in the traceback the worker logs for the failed record
VARIANTS = {
    "": "plain",
    IDEMPOTENCY_GONE: "idempotency table gone first",
    SECRET_FAILS_ONCE: "Secrets Manager failing once",
}


class HarnessError(Exception):
    """The kill could not be set up as planned (not a finding about the product)."""


@dataclass(frozen=True)
class Kill:
    point: str
    variant: str = ""

    @property
    def name(self) -> str:
        return f"{self.point}+{self.variant}" if self.variant else self.point

    @property
    def spec(self) -> Point:
        return POINTS[self.point]


@dataclass(frozen=True)
class Wanted:
    """A file the kill's job must attach (to each of its objects)."""

    key: str  # the S3 key; "" for a Jira attachment
    filename: str
    data: bytes
    jira_id: str | None = None  # the Jira attachment's id, for a Jira source

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Outcome:
    kill: Kill
    problems: tuple[str, ...]

    @property
    def exact(self) -> bool:
        return not self.problems


def kills(scale: Scale) -> list[Kill]:
    points = scale.crash_points if scale.crash_points is not None else tuple(POINTS)
    variants = tuple(VARIANTS) if scale.crash_variants else ("",)
    return [Kill(point, variant) for variant in variants for point in points]


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def attachment_problems(
    new: list[SimAttachment], wanted: list[Wanted], recorded: Mapping[str, str | None], where: str = ""
) -> list[str]:
    """What is wrong with the attachments an object gained, against the wanted files and what the job record
    names for that object (filename → attachment id); ``where`` names the object in the problems."""
    problems = []
    for file in wanted:
        copies = [a for a in new if a.filename == file.filename]
        if len(copies) != 1:
            problems.append(f"{file.filename} attached {len(copies)} times{where}")
        elif copies[0].sha256 != file.sha256 or copies[0].size != len(file.data):
            problems.append(f"{file.filename} attached with other bytes{where}")
        elif str(copies[0].id) != recorded.get(file.filename):
            problems.append(
                f"the job records attachment {recorded.get(file.filename)}, the object has {copies[0].id}{where}"
            )
    names = {f.filename for f in wanted}
    strays = [a.filename for a in new if a.filename not in names]
    if strays:
        problems.append(f"unexpected attachments {strays}{where}")
    return problems


def job_problem(record: JobRecord | None) -> str | None:
    if record is None:
        return "the job record is missing"
    if record.status == "succeeded":
        return None
    errors = [f"{f.filename}: {f.errorCode} {f.error}" for f in record.files if f.error]
    return f"job {record.status} ({'; '.join(filter(None, [record.error, *errors])) or 'no error given'})"


class LinkDelay:
    """The simulator's link replies come late while any worker armed with a link-sent point runs. Faults are per
    step, not per object, so other lanes' links in that window are late too (harmless: a slow Atlassian)."""

    def __init__(self, sim: AtlassianSimulator) -> None:
        self._sim = sim
        self._lock = threading.Lock()
        self._users = 0

    @contextmanager
    def held(self, needed: bool) -> Iterator[None]:
        if not needed:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._sim.inject("link", Fault(delay_seconds=LINK_REPLY_DELAY_SECONDS, times=10_000))
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._sim.clear_faults()


@dataclass
class Shared:
    """What the lanes share: the suite, the stack's queue (touched under the lock only), the link delay."""

    suite: Suite
    sqs: Any
    link_delay: LinkDelay
    lock: threading.Lock = field(default_factory=threading.Lock)


class Lane:
    """One Assets object (and a second one for the Jira kills' two pairs) and a copy of the jobs queue: kills one
    after another, side by side with other lanes."""

    def __init__(self, shared: Shared, number: int, object_id: str, second_object_id: str) -> None:
        stack = shared.suite.stack
        self.shared, self.number, self.object_id = shared, number, object_id
        self.second_object_id = second_object_id
        self.sqs, self.s3 = stack.client("sqs"), stack.client("s3")
        self.table = stack.resource("dynamodb").Table(stack.jobs_table)
        self.jobs = JobStore(self.table)
        self.dlq_url = self.sqs.create_queue(QueueName=f"{stack.queue_name}-lane{number}-dlq")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"]
        redrive = {"deadLetterTargetArn": dlq_arn["QueueArn"], "maxReceiveCount": str(stack.max_receive_count)}
        attributes = {"VisibilityTimeout": str(stack.visibility_timeout), "RedrivePolicy": json.dumps(redrive)}
        self.queue_url = self.sqs.create_queue(QueueName=f"{stack.queue_name}-lane{number}", Attributes=attributes)[
            "QueueUrl"
        ]
        self.env = {"JOBS_QUEUE_URL": self.queue_url}
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def suite(self) -> Suite:
        return self.shared.suite

    def run_all(self, matrix: list[Kill]) -> list[Outcome]:
        return [self.run(kill) for kill in matrix]

    def run(self, kill: Kill) -> Outcome:
        problems: list[str] = []
        try:
            wanted = self._sources(kill)
            objects = self._objects(kill)
            before = {object_id: len(self.suite.sim.attachments(object_id)) for object_id in objects}
            job_id = self._submit(kill, wanted, objects)
            problems += self._crash(kill, job_id, before)
            problems += self._recover(kill, job_id)
            problems += self._verdict(job_id, wanted, before)
            if kill.spec.jira and not problems:
                problems += self._asked_again(job_id, wanted, before)
        except Exception as e:  # noqa: BLE001 - a harness failure is a broken kill, not a broken matrix
            problems.append(f"harness: {type(e).__name__}: {e}")
        finally:
            self._stop_all()
            self._empty_queues()
        return Outcome(kill, tuple(problems))

    # -- making the job ----------------------------------------------------------------------------------

    def _objects(self, kill: Kill) -> tuple[str, ...]:
        return (self.object_id, self.second_object_id) if kill.spec.jira else (self.object_id,)

    def _sources(self, kill: Kill) -> list[Wanted]:
        slug = kill.name.replace("+", "_")  # a plain key: what is tried here is the crash, not S3's key encoding
        names = [f"{slug}-{n + 1}.bin" for n in range(kill.spec.files)]
        if kill.spec.jira:  # a fresh attachment on the lane's issue: no earlier kill's pair to adopt
            issue_key, sim = f"CRASH-{self.number + 1}", self.suite.sim
            files = [(name, os.urandom(JIRA_FILE_SIZE)) for name in names]
            return [Wanted("", name, data, sim.add_jira_attachment(issue_key, name, data)) for name, data in files]
        prefix = f"attachments/{self.object_id}" if kill.spec.drop else f"sources/{slug}"
        return [Wanted(f"{prefix}/{name}", name, os.urandom(FILE_SIZE)) for name in names]

    def _submit(self, kill: Kill, wanted: list[Wanted], objects: tuple[str, ...]) -> str:
        """Make the job (one at a time across lanes, so the stack's queue holds only its message) and move its
        message to this lane's queue; returns the job id."""
        with self.shared.lock:
            if kill.spec.jira:
                return self._post_and_move({"objectId": list(objects), "jiraAttachments": [f.jira_id for f in wanted]})
            for file in wanted:
                self.s3.put_object(Bucket=self.suite.stack.bucket, Key=file.key, Body=file.data)
            if kill.spec.drop:
                body = self._move_message(lambda body: any(d.key == wanted[0].key for d in _drops(body)))
                return next(_drops(body)).job_id
            stack = self.suite.stack
            files = [{"s3Uri": f"s3://{stack.bucket}/{f.key}", "filename": f.filename} for f in wanted]
            return self._post_and_move({"objectId": self.object_id, "files": files})

    def _post_and_move(self, request: dict[str, Any]) -> str:
        """POST the request (under the lock) and move its job's message to this lane's queue; the job id."""
        stack = self.suite.stack
        reply = requests.post(
            f"{self.suite.api_url}/attachments",
            json=request,
            headers={"Authorization": f"Bearer {stack.webhook_token}"},
            timeout=30,
        )
        if reply.status_code != 202:
            raise HarnessError(f"the webhook answered {reply.status_code}: {reply.text[:200]}")
        job_id = str(reply.json()["jobId"])
        self._move_message(lambda body: isinstance(body, dict) and body.get("jobId") == job_id)
        return job_id

    def _move_message(self, matches: Callable[[Any], bool]) -> Any:
        sqs, stack_queue = self.shared.sqs, self.suite.stack.queue_url
        deadline = time.monotonic() + MOVE_TIMEOUT
        while time.monotonic() < deadline:
            reply = sqs.receive_message(
                QueueUrl=stack_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=30
            )
            for message in reply.get("Messages", []):
                body = json.loads(message["Body"])
                if matches(body):
                    sqs.send_message(QueueUrl=self.queue_url, MessageBody=message["Body"])
                    sqs.delete_message(QueueUrl=stack_queue, ReceiptHandle=message["ReceiptHandle"])
                    return body
                if s3_drop.is_test_event(body):
                    sqs.delete_message(QueueUrl=stack_queue, ReceiptHandle=message["ReceiptHandle"])
                else:
                    sqs.change_message_visibility(
                        QueueUrl=stack_queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
        raise HarnessError("the job's message never reached the stack's queue")

    # -- the kill ----------------------------------------------------------------------------------------

    def _crash(self, kill: Kill, job_id: str, before: Mapping[str, int]) -> list[str]:
        """Let an armed worker take the job and die; what, if anything, says it did not die at the point."""
        env = {**self.env, "WORKER_TIMEOUT": CRASH_WORKER_TIMEOUT}
        with self.shared.link_delay.held(kill.spec.delay_link_reply):
            process = self._spawn(env, crash_at=kill.point)
            try:
                returncode = process.wait(timeout=DIE_TIMEOUT)
            except subprocess.TimeoutExpired:
                stop(process)
                last = self._last_message(process)
                return [f"not killed: the worker did not reach {kill.point} within {DIE_TIMEOUT:.0f} s ({last})"]
        problems = []
        if returncode != -signal.SIGKILL:
            problems.append(f"not killed: the armed worker exited with {returncode}")
        elif f"{MARKER}{kill.point}" not in self._log(process):
            problems.append(f"not killed at the point: the worker died without reaching {kill.point}")
        record = self.jobs.get(job_id)
        statuses = tuple(f.status for f in record.files) if record else ()
        gained = sum(len(self.suite.sim.attachments(object_id)) - count for object_id, count in before.items())
        if statuses != kill.spec.at_kill or gained != kill.spec.linked_at_kill:
            problems.append(
                f"not killed at the point: files {statuses} and {gained} attachment(s) made at the kill, "
                f"expected {kill.spec.at_kill} and {kill.spec.linked_at_kill}"
            )
        return problems

    def _recover(self, kill: Kill, job_id: str) -> list[str]:
        """The redelivery: (per variant) a worker without its idempotency table first, then a fresh worker."""
        problems = []
        if kill.variant == IDEMPOTENCY_GONE:
            problems += self._fail_once_without_idempotency_table()
        fresh = self._spawn(self.env, crash_at=SECRET_FAILS_ONCE if kill.variant == SECRET_FAILS_ONCE else None)
        self.suite.wait_until(lambda: self._final(job_id), FINAL_TIMEOUT, poll=0.5)
        if kill.variant == SECRET_FAILS_ONCE and HOOK_MARKER not in self._log(fresh):
            problems.append("variant not run: the fresh worker never read the secret")
        return problems

    def _fail_once_without_idempotency_table(self) -> list[str]:
        gone = self._spawn({**self.env, "IDEMPOTENCY_TABLE": MISSING_TABLE})
        failed = self.suite.wait_until(lambda: IDEMPOTENCY_FAILURE in self._log(gone), GONE_TIMEOUT)
        stop(gone)
        if failed:
            return []
        last = self._last_message(gone)
        return [f"variant not run: the worker without an idempotency table never failed the message ({last})"]

    def _final(self, job_id: str) -> bool:
        record = self.jobs.get(job_id)
        return record is not None and record.status in ("succeeded", "failed")

    # -- the verdict -------------------------------------------------------------------------------------

    def _verdict(self, job_id: str, wanted: list[Wanted], before: Mapping[str, int]) -> list[str]:
        """What is wrong once the job is final: with the job, with what each of its objects gained (against what
        the job record and, for Jira pairs, the pair records name), with the queues and the link leases."""
        record = self.jobs.get(job_id)
        problem = job_problem(record)
        problems = [problem] if problem else []
        several = len(before) > 1
        for object_id, count in before.items():
            where = f" on object {object_id}" if several else ""
            new = self.suite.sim.attachments(object_id)[count:]
            if record is not None:
                recorded = {f.filename: f.attachmentId for f in record.files if f.objectId == object_id}
                problems += attachment_problems(new, wanted, recorded, where)
            problems += self._pair_record_problems(new, wanted, object_id)
            lease = self._item(f"link-lease:{object_id}")
            if lease and "holder" in lease:
                problems.append(f"the link lease of object {object_id} is still held by {lease['holder']}")
        if not self.suite.wait_until(lambda: self._depth(self.queue_url) == 0, 10):
            problems.append("a message was left on the queue")
        if self._depth(self.dlq_url):
            problems.append("a message went to the dead-letter queue")
        return problems

    def _pair_record_problems(self, new: list[SimAttachment], wanted: list[Wanted], object_id: str) -> list[str]:
        """Each Jira pair's record must name the attachment that landed: it is what a later request adopts."""
        problems = []
        for file in wanted:
            landed = [str(a.id) for a in new if a.filename == file.filename]
            if file.jira_id is None or len(landed) != 1:
                continue  # not a Jira pair, or already counted as attached twice or not at all
            pair = self._item(f"jira-pair:{file.jira_id}:{object_id}")
            named = pair.get("attachmentId") if pair else None
            if named != landed[0]:
                problems.append(
                    f"the pair record of {file.filename} on object {object_id} names {named}, not {landed[0]}"
                )
        return problems

    def _asked_again(self, job_id: str, wanted: list[Wanted], before: Mapping[str, int]) -> list[str]:
        """The same Jira pairs asked for by a different request (the objects in the other order: a new job, as a
        rule firing again makes): its job must adopt each pair's attachment, and no object gains anything."""
        with self.shared.lock:
            again = self._post_and_move(
                {"objectId": list(before)[::-1], "jiraAttachments": [f.jira_id for f in wanted]}
            )
        if again == job_id:
            raise HarnessError("the later request was taken for the same request")
        if not self.suite.wait_until(lambda: self._final(again), AGAIN_TIMEOUT, poll=0.25):
            return [f"asked again: the later job was not final after {AGAIN_TIMEOUT:.0f} s"]
        record, first = self.jobs.get(again), self.jobs.get(job_id)
        problem = job_problem(record)
        problems = [problem] if problem else []
        made = {(f.objectId, f.filename): f.attachmentId for f in first.files} if first else {}
        for file in record.files if record else []:
            if file.attachedBy != job_id or file.attachmentId != made.get((file.objectId, file.filename)):
                problems.append(
                    f"{file.filename} on object {file.objectId} ended {file.status} with attachment "
                    f"{file.attachmentId} (attachedBy {file.attachedBy}), not adopted from the first job"
                )
        for object_id, count in before.items():
            new = self.suite.sim.attachments(object_id)[count:]
            recorded = {filename: made_id for (made_on, filename), made_id in made.items() if made_on == object_id}
            problems += attachment_problems(new, wanted, recorded, f" on object {object_id}")
        return [f"asked again: {p}" for p in problems]

    def _item(self, key: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.table.get_item(Key={"jobId": key}, ConsistentRead=True).get("Item")
        return item

    # -- plumbing ----------------------------------------------------------------------------------------

    def _spawn(self, env: dict[str, str], *, crash_at: str | None = None) -> subprocess.Popen[bytes]:
        with self.shared.lock:  # Suite.spawn_worker numbers the log files
            process = self.suite.spawn_worker(env, crash_at=crash_at)
        self.processes.append(process)
        return process

    def _log(self, process: subprocess.Popen[bytes]) -> str:
        return self.suite.log_paths[process.pid].read_text(errors="replace")

    def _last_message(self, process: subprocess.Popen[bytes]) -> str:
        """The last thing the worker logged (its message, for a JSON line), to tell why a wait ran out."""
        lines = self._log(process).strip().splitlines() or ["nothing logged"]
        try:
            return str(json.loads(lines[-1]).get("message"))[:160]
        except (ValueError, AttributeError):
            return f"last log line: {lines[-1][:160]}"

    def _depth(self, queue_url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        return sum(int(attributes[name]) for name in names)

    def _stop_all(self) -> None:
        for process in self.processes:
            stop(process)
        self.processes.clear()

    def _empty_queues(self) -> None:
        """So that whatever a kill left behind (counted against it) does not spill into the next one."""
        for queue_url in (self.queue_url, self.dlq_url):
            if self._depth(queue_url):
                self.sqs.purge_queue(QueueUrl=queue_url)


def _drops(body: Any) -> Iterator[s3_drop.Drop]:
    return s3_drop.drops(body) if s3_drop.is_s3_event(body) else iter(())


def run_matrix(running: Suite, matrix: list[Kill]) -> list[Outcome]:
    shared = Shared(running, running.stack.client("sqs"), LinkDelay(running.sim))
    objects = list(OBJECTS)
    count = min(LANES, len(matrix), len(objects) // 2)  # each lane has two objects of its own
    lanes = [Lane(shared, n, objects[n], objects[n + count]) for n in range(count)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda lane: lane.run_all(matrix[lane.number :: count]), lanes))
    return [outcome for lane_outcomes in results for outcome in lane_outcomes]


def add_figures(report: Report, outcomes: list[Outcome], scale: Scale) -> None:
    exact = sum(o.exact for o in outcomes)
    broken = "; ".join(f"{o.kill.name}: {', '.join(o.problems)}" for o in outcomes if not o.exact)
    report.add(
        Figure("crash", "kills ending exact", f"{exact}/{len(outcomes)}", "all", exact == len(outcomes), broken),
        summary=f"crash {exact}/{len(outcomes)} exact",
    )
    if not scale.crash_variants:
        return
    for variant, label in VARIANTS.items():
        group = [o for o in outcomes if o.kill.variant == variant]
        group_exact = sum(o.exact for o in group)
        report.add(Figure("crash", f"  {label}", f"{group_exact}/{len(group)}", "all", group_exact == len(group)))


def run(scale: Scale, report: Report, suite: Suite) -> None:
    """The matrix on ``suite``, a stack with VISIBILITY_TIMEOUT and MAX_RECEIVE_COUNT."""
    add_figures(report, run_matrix(suite, kills(scale)), scale)


def run_alone(scale: Scale, report: Report) -> None:
    """The matrix on a stack of its own."""
    with local_stack(visibility_timeout=VISIBILITY_TIMEOUT, max_receive_count=MAX_RECEIVE_COUNT) as running:
        run(scale, report, running)
