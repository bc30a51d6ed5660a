"""Atlassian's rate limits: under a steady storm of 429s the worker keeps to the Retry-After it is given (no
hot loop), and a Retry-After of half an hour parks the message on the queue instead of a sleeping Lambda."""

from __future__ import annotations

import itertools
import time

from devstack.atlassian_sim import Fault
from devstack.webhook_client import post
from reliability.harness import OBJECTS, Suite
from reliability.report import Figure, Report
from reliability.scale import Scale

STORM_RETRY_AFTER = 2.0
PARK_RETRY_AFTER = 1800.0


def _post(suite: Suite, key: str, object_id: str) -> str:
    suite.stack.put(key, key.encode())
    reply = post(suite.api_url, suite.stack, {"objectId": object_id, "s3Uri": f"s3://{suite.stack.bucket}/{key}"})
    assert reply.status_code == 202, reply.text
    return str(reply.json()["jobId"])


def storm(scale: Scale, report: Report, suite: Suite) -> None:
    """Every Atlassian call answered 429 with Retry-After 2 s for a while; count and space the worker's calls."""
    object_id = next(iter(OBJECTS))
    suite.sim.throttle_fraction, suite.sim.throttle_retry_after = 1.0, STORM_RETRY_AFTER
    job_id = _post(suite, "rate/storm.txt", object_id)
    worker = suite.spawn_worker()
    started = time.monotonic()
    time.sleep(scale.storm_seconds)
    calls = sorted(r.at for r in suite.sim.requests if started <= r.at and r.status == 429)
    suite.sim.throttle_fraction = 0.0
    suite.wait_until(lambda: (suite.job(job_id) or {}).get("status", {}).get("S") == "succeeded", timeout=120)
    worker.terminate()

    allowed = int(scale.storm_seconds / STORM_RETRY_AFTER) + 1
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    shortest = min(gaps, default=float("inf"))
    report.add(
        Figure(
            "rate limits",
            f"calls in a {scale.storm_seconds:.0f} s storm of 429 (Retry-After {STORM_RETRY_AFTER:.0f} s)",
            str(len(calls)),
            f"<= {allowed}",
            0 < len(calls) <= allowed,
        ),
        summary=f"429 storm {len(calls)} calls in {scale.storm_seconds:.0f} s",
    )
    report.add(
        Figure(
            "rate limits",
            "shortest gap between two calls in the storm",
            f"{shortest:.2f} s",
            f">= {STORM_RETRY_AFTER * 0.9:.1f} s",
            shortest >= STORM_RETRY_AFTER * 0.9,
        )
    )
    succeeded = (suite.job(job_id) or {}).get("status", {}).get("S") == "succeeded"
    report.add(
        Figure("rate limits", "the job after the storm", "succeeded" if succeeded else "not", "succeeded", succeeded)
    )


def park(report: Report, suite: Suite) -> None:
    """A Retry-After of 30 minutes: the message goes back to the queue, invisible for that long; nobody sleeps."""
    object_id = list(OBJECTS)[1]
    started = time.monotonic()
    suite.sim.inject("credentials", Fault(status=429, retry_after=PARK_RETRY_AFTER))
    job_id = _post(suite, "rate/park.txt", object_id)
    worker = suite.spawn_worker()
    asked = lambda: sum(1 for r in suite.sim.requests if r.at >= started and "credentials" in r.path)  # noqa: E731
    suite.wait_until(lambda: asked() >= 1, timeout=30)
    time.sleep(5)  # a worker that slept instead would still be inside its invocation, holding the message
    attrs = suite.stack.client("sqs").get_queue_attributes(QueueUrl=suite.stack.queue_url, AttributeNames=["All"])
    in_flight = int(attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"])
    status = (suite.job(job_id) or {}).get("status", {}).get("S")
    worker.terminate()
    parked = asked() == 1 and in_flight == 1 and status == "running" and _worker_polls_again(suite)
    report.add(
        Figure(
            "rate limits",
            "a 30-minute Retry-After parks the message",
            "parked" if parked else f"not parked (calls {asked()}, in flight {in_flight}, job {status})",
            "parked",
            parked,
        ),
        summary="30-min Retry-After parked" if parked else "30-min Retry-After NOT parked",
    )


def _worker_polls_again(suite: Suite) -> bool:
    """The worker's log says it handed the message back with the long wait (and so is free to poll again)."""
    logs = "".join(path.read_text(errors="replace") for path in suite.log_dir.glob("*.log"))
    return '"waitSeconds":1800.0' in logs


def run(scale: Scale, report: Report, suite: Suite) -> None:
    storm(scale, report, suite)
    park(report, suite)
