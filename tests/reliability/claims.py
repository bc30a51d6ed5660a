"""Exactly once across jobs while a job is slow, parked or unsure (issue 18): Jira pairs that one job holds and a
later job asks for again, with worker processes of their own.

- a parked holder: job A holds (X, object), parked on a 429; job B, the next "all" run, attaches the new Y at once,
  waits for X (its entry names A) and adopts A's copy when A is done;
- a lost link reply: A's link happened but its reply was lost, and A cannot list to tell (it gives up, leaving its
  lost link on the claim); B settles it and adopts that copy instead of making a second;
- a long Retry-After after a link: A's link happened, answered 503 with a Retry-After of two hours; B waits for A
  (the claim outlives the park), and makes no copy meanwhile;
- one object named twice by case-variant keys gets the file once.
"""

from __future__ import annotations

import os
import time
from typing import Any

from devstack.atlassian_sim import Fault
from devstack.webhook_client import job_status, post
from reliability.harness import OBJECTS, Suite
from reliability.report import Figure, Report
from reliability.scale import Scale

SECTION = "claims"


def _objects(n: int) -> str:
    return list(OBJECTS)[10 + n]  # objects of their own, apart from the other sections'


def _jira_file(suite: Suite, issue: str, name: str) -> str:
    return suite.sim.add_jira_attachment(issue, name, os.urandom(50_000), "application/pdf")


def _all(suite: Suite, issue: str, object_id: str) -> dict[str, Any]:
    reply = post(suite.api_url, suite.stack, {"objectId": object_id, "jiraAttachments": "all", "issueKey": issue})
    assert reply.status_code == 202, reply.text
    return dict(reply.json())


def _status(suite: Suite, job: dict[str, Any]) -> dict[str, Any]:
    return job_status(suite.stack, job["statusUrl"])


def _copies(suite: Suite, object_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for attachment in suite.sim.attachments(object_id):
        counts[attachment.filename] = counts.get(attachment.filename, 0) + 1
    return counts


def _report(report: Report, name: str, what: str, measured: str, goal: str, ok: bool, detail: str = "") -> None:
    """One scenario's figure, and its word in the section's summary line."""
    report.add(Figure(SECTION, what, measured, goal, ok, detail=detail), summary=f"{name} {'ok' if ok else 'BROKEN'}")


def parked_holder(report: Report, suite: Suite) -> None:
    object_id = _objects(0)
    _jira_file(suite, "REL-100", "x.pdf")
    suite.sim.inject("jira-content", Fault(status=429, retry_after=15))  # A parks, holding (x, object)
    job_a = _all(suite, "REL-100", object_id)
    suite.wait_until(lambda: _status(suite, job_a)["status"] == "running", timeout=30)
    _jira_file(suite, "REL-100", "y.pdf")
    job_b = _all(suite, "REL-100", object_id)

    def b_waits_with_y_attached() -> bool:
        files = {f["filename"]: f for f in _status(suite, job_b)["files"]}
        return files["y.pdf"]["status"] == "attached" and files["x.pdf"].get("waitingFor") == job_a["jobId"]

    not_starved = suite.wait_until(b_waits_with_y_attached, timeout=14)  # before A's 15 s park ends
    done = suite.wait_until(
        lambda: all(_status(suite, job)["status"] == "succeeded" for job in (job_a, job_b)), timeout=120
    )
    x_of_b = next(f for f in _status(suite, job_b)["files"] if f["filename"] == "x.pdf")
    copies = _copies(suite, object_id)
    ok = not_starved and done and copies == {"x.pdf": 1, "y.pdf": 1} and x_of_b.get("attachedBy") == job_a["jobId"]
    _report(
        report,
        "parked holder",
        'a parked holder; the next "all": new file at once, held one adopted',
        f"{'not starved' if not_starved else 'STARVED'}, copies {copies}",
        "not starved, each once",
        ok,
        detail=f"B's x.pdf entry: {x_of_b}",
    )


def lost_link(report: Report, suite: Suite) -> None:
    object_id = _objects(1)
    _jira_file(suite, "REL-101", "lost.pdf")
    suite.sim.inject("link", Fault(drop_after_bytes=0, after_success=True))  # the link is made, its reply lost
    job_a = _all(suite, "REL-101", object_id)
    suite.wait_until(lambda: _copies(suite, object_id) == {"lost.pdf": 1}, timeout=60)
    suite.sim.inject("list", Fault(status=404, times=1000))  # and now nobody can list the object to tell
    suite.wait_until(lambda: _status(suite, job_a)["status"] == "failed", timeout=120)
    gave_up = _status(suite, job_a)["files"][0].get("errorCode") == "link_outcome_unknown"
    suite.sim.clear_faults()
    _jira_file(suite, "REL-101", "next.pdf")
    job_b = _all(suite, "REL-101", object_id)  # the next run: the new file, and the lost one again
    suite.wait_until(lambda: _status(suite, job_b)["status"] == "succeeded", timeout=120)
    entry = next(f for f in _status(suite, job_b)["files"] if f["filename"] == "lost.pdf")
    copies = _copies(suite, object_id)
    ok = gave_up and copies == {"lost.pdf": 1, "next.pdf": 1} and entry.get("attachedBy") == job_a["jobId"]
    _report(
        report,
        "lost link",
        "a lost link reply, its job given up; the next run",
        f"copies {copies}, adopted from the lost link: {entry.get('attachedBy') == job_a['jobId']}",
        "1 copy each, adopted",
        ok,
        detail=f"A gave up with link_outcome_unknown: {gave_up}; B's entry: {entry}",
    )


def long_retry_after(report: Report, suite: Suite) -> None:
    object_id = _objects(2)
    _jira_file(suite, "REL-102", "slow.pdf")
    suite.sim.inject("link", Fault(status=503, retry_after=7200, after_success=True))  # made; "come back in 2 h"
    job_a = _all(suite, "REL-102", object_id)
    suite.wait_until(lambda: _copies(suite, object_id) == {"slow.pdf": 1}, timeout=60)
    _jira_file(suite, "REL-102", "later.pdf")
    job_b = _all(suite, "REL-102", object_id)

    def b_waits_for_a() -> bool:
        files = {f["filename"]: f for f in _status(suite, job_b)["files"]}
        return files["slow.pdf"].get("waitingFor") == job_a["jobId"] and files["later.pdf"]["status"] == "attached"

    waits = suite.wait_until(b_waits_for_a, timeout=60)
    time.sleep(5)  # B looks again meanwhile; it must not link while A may come back
    copies = _copies(suite, object_id)
    ok = waits and copies == {"slow.pdf": 1, "later.pdf": 1}
    _report(
        report,
        "2-h Retry-After holder",
        "a link answered 503 with Retry-After 2 h; the next run meanwhile",
        f"{'waits' if waits else 'does not wait'}, copies {copies}",
        "waits, 1 copy each",
        ok,
    )


def case_variant_keys(report: Report, suite: Suite) -> None:
    object_id = _objects(3)
    key = OBJECTS[object_id]
    suite.stack.put("claims/once.txt", b"once")
    body = {"objectKey": f"{key}, {key.lower()}", "s3Uri": f"s3://{suite.stack.bucket}/claims/once.txt"}
    reply = post(suite.api_url, suite.stack, body)
    suite.wait_until(lambda: _status(suite, reply.json())["status"] == "succeeded", timeout=60)
    copies = _copies(suite, object_id)
    ok = reply.status_code == 202 and copies == {"once.txt": 1}
    _report(report, "case-variant keys", f"one object named {key}, {key.lower()}", f"copies {copies}", "1 copy", ok)


def run(scale: Scale, report: Report, suite: Suite) -> None:
    for _ in range(2):  # two workers: the held pair's job and the waiting one may run side by side
        suite.spawn_worker()
    parked_holder(report, suite)
    lost_link(report, suite)
    long_retry_after(report, suite)
    case_variant_keys(report, suite)
