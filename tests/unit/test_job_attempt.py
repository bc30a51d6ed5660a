"""The worker's retry handling, offline: one attempt at a job message and what becomes of the message, each path of
retry_policy.decide carried out, and the one rule that fails a job or an S3 drop for good."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from assets_attach.aws.attached_pairs import PairBusyError
from assets_attach.core import retry_policy, s3_drop
from assets_attach.core.job_attempt import Done, Failed, HandBack, JobAttempt, Receive, job_of_drop
from assets_attach.errors import AtlassianError, AttachError, BadRequestError, DeadlineError
from assets_attach.jobs import JobFile, JobMessage, JobSpec
from assets_attach.observability import metrics

NOW = 1_000_000.0
PLENTY = 300.0
FIRST, LAST = Receive(1, 5), Receive(5, 5)
MESSAGE = JobMessage(
    jobId="job-1",
    spec=JobSpec(objectIds=["1234"], files=[JobFile(bucket="bkt", key="a.txt", filename="a.txt", size=3)]),
)


@dataclass
class Worker:
    """The attempt's collaborators in memory: a job that fails with ``script``'s errors in turn, then runs."""

    script: list[BaseException] = field(default_factory=list)
    runs: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    sent: list[tuple[JobMessage, int]] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)
    time_left: float = PLENTY

    def run_once(self, *, job: JobMessage, time_left: Callable[[], float]) -> object:
        self.runs += 1
        if self.script:
            raise self.script.pop(0)
        return {"jobId": job.jobId, "status": "succeeded"}

    def fail(self, job_id: str, reason: str) -> None:
        self.failed.append((job_id, reason))

    def send(self, message: JobMessage, *, delay_seconds: int = 0) -> None:
        self.sent.append((message, delay_seconds))

    def attempt(self, message: JobMessage = MESSAGE, receive: Receive = FIRST) -> Done | HandBack | Failed:
        job_attempt = JobAttempt(self.run_once, self.fail, self.send, sleep=self.slept.append, now=lambda: NOW)
        return job_attempt(message, receive, lambda: self.time_left)


@pytest.fixture(autouse=True)
def no_metrics_left() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def unavailable(retry_after: float | None = None, status: int = 503) -> AtlassianError:
    return AtlassianError(
        "Atlassian is unavailable", step="upload", status=status, retryable=True, retry_after=retry_after
    )


def test_a_job_that_runs_is_done() -> None:
    worker = Worker()

    assert worker.attempt() == Done()
    assert (worker.runs, worker.failed, worker.sent, worker.slept) == (1, [], [], [])


def test_a_short_wait_is_slept_here_and_the_job_runs_again() -> None:
    worker = Worker([unavailable(retry_after=3)])

    assert worker.attempt() == Done()
    assert (worker.runs, worker.slept, worker.failed) == (2, [3.0], [])


def test_after_the_inline_retries_the_message_is_handed_back_with_the_wait() -> None:
    worker = Worker([unavailable(retry_after=3)] * (retry_policy.MAX_INLINE_RETRIES + 1))

    assert worker.attempt() == HandBack(3.0)
    assert worker.slept == [3.0] * retry_policy.MAX_INLINE_RETRIES
    assert worker.runs == retry_policy.MAX_INLINE_RETRIES + 1 and worker.failed == []


def test_a_long_wait_or_a_short_deadline_hands_the_message_back_without_sleeping() -> None:
    long_wait = Worker([unavailable(retry_after=120)])
    assert long_wait.attempt() == HandBack(120.0)

    short_deadline = Worker([unavailable(retry_after=3)], time_left=retry_policy.SLEEP_MARGIN_SECONDS)
    assert short_deadline.attempt() == HandBack(3.0)

    assert long_wait.slept == short_deadline.slept == [] and long_wait.runs == short_deadline.runs == 1


def test_each_retryable_failure_is_counted_and_a_rate_limit_too(capsys: pytest.CaptureFixture[str]) -> None:
    worker = Worker([unavailable(retry_after=3), unavailable(retry_after=120, status=429)])

    assert worker.attempt() == HandBack(120.0)

    failures = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"Failures"' in line]
    assert [(f["Failures"], f["step"]) for f in failures] == [([1.0], "upload")] * 2
    assert metrics.metric_set["AtlassianRateLimited"]["Value"] == [1.0]


def test_a_job_out_of_time_continues_in_a_new_message() -> None:
    worker = Worker([DeadlineError("out of time", step="deadline", retry_after=1.5)])
    waiting = MESSAGE.model_copy(update={"resumes": 3, "waitingSince": NOW - 60})

    assert worker.attempt(waiting, LAST) == Done()  # a continuation uses up no receive, even the last

    [(continued, delay)] = worker.sent
    assert (continued.resumes, continued.waitingSince, delay) == (4, None, 2)
    assert continued.spec == MESSAGE.spec and worker.failed == []


def test_a_job_that_has_resumed_too_often_fails() -> None:
    worker = Worker([DeadlineError("out of time", step="deadline")])
    resumed = MESSAGE.model_copy(update={"resumes": retry_policy.MAX_RESUMES})

    outcome = worker.attempt(resumed)

    reason = f"not finished after {retry_policy.MAX_RESUMES} invocations: deadline: out of time"
    assert outcome == Failed(reason) and worker.failed == [("job-1", reason)] and worker.sent == []


def test_a_job_waiting_for_other_jobs_pairs_is_looked_at_again_in_time_not_in_resumes() -> None:
    busy = PairBusyError("held by job-0", holder_job="job-0")
    first = Worker([busy])
    assert first.attempt() == Done()
    [(waiting, delay)] = first.sent
    assert (waiting.waitingSince, waiting.resumes, delay) == (NOW, 0, 10)

    later = Worker([busy])
    assert later.attempt(waiting.model_copy(update={"waitingSince": NOW - 3600})) == Done()
    [(still_waiting, delay)] = later.sent
    assert (still_waiting.waitingSince, still_waiting.resumes, delay) == (NOW - 3600, 0, 300)


def test_a_job_that_waited_too_long_for_other_jobs_pairs_fails() -> None:
    worker = Worker([PairBusyError("held by job-0", holder_job="job-0")])
    since = NOW - retry_policy.PAIR_WAIT_LIMIT_SECONDS - 1

    outcome = worker.attempt(MESSAGE.model_copy(update={"waitingSince": since}))

    hours = (retry_policy.PAIR_WAIT_LIMIT_SECONDS + 1) / 3600
    reason = f"waited {hours:.0f} h for other jobs: jobs: held by job-0"
    assert outcome == Failed(reason) and worker.failed == [("job-1", reason)] and worker.sent == []


@pytest.mark.parametrize("receive", [FIRST, LAST])
def test_a_permanent_error_fails_the_job_at_once(receive: Receive) -> None:
    worker = Worker([BadRequestError("no such object", step="credentials", status=404)])

    outcome = worker.attempt(receive=receive)

    reason = "credentials: no such object (HTTP 404)"
    assert outcome == Failed(reason) and not outcome.dead_letter
    assert worker.failed == [("job-1", reason)] and worker.runs == 1


def test_a_defect_fails_the_job_at_once_named_by_its_type() -> None:
    worker = Worker([KeyError("a secret-looking key")])

    outcome = worker.attempt()

    reason = "internal: internal error (KeyError); see the worker's logs"
    assert outcome == Failed(reason) and worker.failed == [("job-1", reason)]


def test_on_its_last_receive_the_job_fails_and_the_message_goes_to_the_dead_letter_queue() -> None:
    worker = Worker([unavailable(retry_after=3)])

    outcome = worker.attempt(receive=LAST)

    reason = "gave up after 5 attempts: upload: Atlassian is unavailable (HTTP 503)"
    assert outcome == Failed(reason, dead_letter=True)
    assert worker.failed == [("job-1", reason)] and worker.slept == [] and worker.runs == 1


def test_an_unexpected_error_returns_the_message_to_the_queue() -> None:
    worker = Worker([ConnectionResetError("peer went away")])

    with pytest.raises(ConnectionResetError):
        worker.attempt()
    assert worker.failed == []


def test_an_unexpected_error_on_the_last_receive_fails_the_job_and_still_returns_the_message() -> None:
    worker = Worker([ConnectionResetError("peer went away")])

    with pytest.raises(ConnectionResetError):
        worker.attempt(receive=LAST)
    assert worker.failed == [("job-1", "gave up after 5 attempts: ConnectionResetError")]


def test_a_job_another_invocation_runs_is_handed_back_for_this_invocations_time_left() -> None:
    worker = Worker([IdempotencyAlreadyInProgressError("in progress")], time_left=42.5)

    assert worker.attempt() == HandBack(42.5)
    assert worker.failed == [] and worker.runs == 1


DROP = s3_drop.Drop("bkt", "attachments/1234/a.pdf", None, None, "etag")


@dataclass
class Drops:
    """An S3 drop's decision (raising ``error`` if set) and the failed drop records it leaves."""

    error: Exception | None = None
    job: JobMessage | None = field(default_factory=lambda: MESSAGE)
    recorded: list[str] = field(default_factory=list)

    def decide(self) -> s3_drop.Decision:
        if self.error is not None:
            raise self.error
        return s3_drop.Decision(DROP, self.job, None if self.job else "no object named")

    def job_of(self, receive: Receive = FIRST) -> JobMessage | None:
        return job_of_drop(self.decide, receive, self.recorded.append)


def test_a_drop_becomes_its_job_or_is_skipped() -> None:
    assert Drops().job_of() is MESSAGE
    skipped = Drops(job=None)
    assert skipped.job_of() is None and skipped.recorded == []


def test_a_drop_that_cannot_become_a_job_leaves_a_failed_record() -> None:
    drops = Drops(BadRequestError("object 99 does not exist", step="aql"))

    assert drops.job_of() is None
    assert drops.recorded == ["aql: object 99 does not exist"]


def test_a_drop_failing_for_now_is_retried_and_on_its_last_receive_recorded_and_sent_on() -> None:
    error = AttachError("S3 is unavailable", step="s3-head", retryable=True)
    drops = Drops(error)

    with pytest.raises(AttachError):
        drops.job_of(FIRST)
    assert drops.recorded == []

    with pytest.raises(AttachError):
        drops.job_of(LAST)  # the message goes on to the dead-letter queue, from where it can be redriven
    assert drops.recorded == ["gave up after 5 attempts: s3-head: S3 is unavailable"]


def test_an_unexpected_error_on_a_drops_last_receive_is_named_by_its_type() -> None:
    drops = Drops(ConnectionResetError("peer went away"))

    with pytest.raises(ConnectionResetError):
        drops.job_of(LAST)
    assert drops.recorded == ["gave up after 5 attempts: ConnectionResetError"]


def test_the_last_receive_is_the_queues_max_receive_count() -> None:
    assert [Receive(n, 3).last for n in (1, 2, 3, 4)] == [False, False, True, True]
