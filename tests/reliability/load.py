"""Load with duplicates: distinct deliveries and their duplicates, through the local API front and S3 drops,
drained by several worker processes at once while Atlassian answers 429 (with Retry-After) on a share of calls.

Wanted: one attachment per distinct delivery, with its exact bytes. Duplicates come three ways: the same
webhook request sent concurrently with its original, the same request sent again after its job finished, and
the same S3 notification delivered twice (S3 delivers at least once). Figures: attachments made against
wanted, duplicates, lost, messages left in the DLQ, webhook latency and accepted-to-attached latency.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_plus

import requests

from reliability.harness import OBJECTS, Suite
from reliability.report import Figure, Report
from reliability.scale import Scale

THROTTLED_SHARE = 0.10
DROP_SHARE = 0.2  # of the distinct deliveries, S3 drops; the rest webhook requests


@dataclass
class Delivery:
    key: str
    object_id: str
    data: bytes
    by_drop: bool
    sent_at: float = 0.0
    job_id: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _post(suite: Suite, delivery: Delivery) -> tuple[int, float, str | None]:
    body = json.dumps({"objectId": delivery.object_id, "s3Uri": f"s3://{suite.stack.bucket}/{delivery.key}"})
    headers = {"Authorization": f"Bearer {suite.stack.webhook_token}", "Content-Type": "application/json"}
    started = time.monotonic()
    reply = requests.post(f"{suite.api_url}/attachments", data=body, headers=headers, timeout=60)
    took = time.monotonic() - started
    job_id = reply.json().get("jobId") if reply.status_code == 202 else None
    return reply.status_code, took, job_id


def _drop_twice(suite: Suite, drops: list[Delivery]) -> None:
    """Drop these files with their S3 notification delivered twice, byte for byte, as S3 may: the bucket
    notifies a tap queue for a moment, and each notification it gets goes to the jobs queue twice."""
    sqs = suite.stack.client("sqs")
    tap = sqs.create_queue(QueueName=f"{suite.stack.queue_name}-tap")["QueueUrl"]
    suite.stack.enable_s3_notifications(queue_url=tap)
    for delivery in drops:
        delivery.sent_at = time.monotonic()
        suite.stack.put(delivery.key, delivery.data, "application/octet-stream")
    suite.stack.enable_s3_notifications()
    wanted, copied = {d.key for d in drops}, 0
    deadline = time.monotonic() + 30
    while copied < len(wanted) and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=tap, MaxNumberOfMessages=10).get("Messages", []):
            records = json.loads(message["Body"]).get("Records") or [{}]
            if unquote_plus(records[0].get("s3", {}).get("object", {}).get("key", "")) in wanted:
                copied += 1
                for _ in range(2):
                    sqs.send_message(QueueUrl=suite.stack.queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=tap, ReceiptHandle=message["ReceiptHandle"])
    if copied < len(wanted):
        raise AssertionError(f"only {copied} of {len(wanted)} notifications reached the tap queue")


def _iso_seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run(scale: Scale, report: Report, suite: Suite) -> None:
    objects = list(OBJECTS)
    deliveries = [
        Delivery(
            key=f"{'attachments/' + objects[n % len(objects)] + '/' if n < scale.load_distinct * DROP_SHARE else 'in/'}"
            f"load-{n}.bin",
            object_id=objects[n % len(objects)],
            data=f"delivery {n} ".encode() * (1 + n % 50),
            by_drop=n < scale.load_distinct * DROP_SHARE,
        )
        for n in range(scale.load_distinct)
    ]
    webhook = [d for d in deliveries if not d.by_drop]
    drops = [d for d in deliveries if d.by_drop]
    concurrent_dupes = webhook[: scale.load_duplicates * 2 // 5]
    late_dupes = webhook[len(concurrent_dupes) : len(concurrent_dupes) + scale.load_duplicates * 2 // 5]
    drop_dupes = drops[: scale.load_duplicates - len(concurrent_dupes) - len(late_dupes)]

    for delivery in webhook:  # the files a rule names exist before it runs
        suite.stack.put(delivery.key, delivery.data, "application/octet-stream")
    for delivery in drops[len(drop_dupes) :]:
        delivery.sent_at = time.monotonic()
        suite.stack.put(delivery.key, delivery.data, "application/octet-stream")
    _drop_twice(suite, drop_dupes)
    suite.sim.throttle_fraction = THROTTLED_SHARE
    for _ in range(scale.load_workers):
        suite.spawn_worker()

    latencies: list[float] = []
    refused: list[str] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        sends = [(d, pool.submit(_post, suite, d)) for d in webhook]
        sends += [(d, pool.submit(_post, suite, d)) for d in concurrent_dupes]
        for delivery, future in sends:
            status, took, job_id = future.result()
            latencies.append(took)
            if status == 409:  # its twin is being accepted at this very moment: nothing was accepted twice
                continue
            if status != 202 or job_id is None:
                refused.append(f"{delivery.key}: {status}")
            elif delivery.job_id not in (None, job_id):
                refused.append(f"{delivery.key}: a duplicate got a second job")
            else:
                delivery.job_id = job_id
                delivery.sent_at = delivery.sent_at or time.monotonic() - took

    wall_offset = time.time() - time.monotonic()

    def attached_count() -> int:
        return sum(len(suite.sim.attachments(o)) for o in objects)

    suite.wait_until(lambda: attached_count() >= len(deliveries), timeout=600, poll=1.0)
    for delivery in late_dupes:  # the same request after its job finished: same job, nothing new
        status, took, job_id = _post(suite, delivery)
        latencies.append(took)
        if status != 202 or job_id != delivery.job_id:
            refused.append(f"{delivery.key}: a late duplicate answered {status} with another job")
    time.sleep(3)  # let any duplicate that would attach do so before counting
    suite.sim.throttle_fraction = 0.0

    found = {(o, a.sha256) for o in objects for a in suite.sim.attachments(o)}
    made = attached_count()
    wanted = len(deliveries)
    lost = [d.key for d in deliveries if (d.object_id, d.sha256) not in found]
    duplicates = made - len(found)
    dead = suite.stack.queue_depth(suite.stack.dlq_url)
    to_attached = _accepted_to_attached(suite, [d for d in webhook if d.job_id], wall_offset)

    report.add(
        Figure("load", "attachments made / wanted", f"{made}/{wanted}", "equal", made == wanted),
        summary=f"load {made}/{wanted} attached {duplicates} duplicate {len(lost)} lost",
    )
    report.add(Figure("load", "duplicate attachments", str(duplicates), "0", duplicates == 0))
    report.add(Figure("load", "lost deliveries", str(len(lost)), "0", not lost, detail=", ".join(lost[:5])))
    report.add(Figure("load", "messages in the DLQ", str(dead), "0", dead == 0))
    report.add(
        Figure("load", "webhook answers off 202/409", str(len(refused)), "0", not refused, "; ".join(refused[:5]))
    )
    report.add(
        Figure(
            "load",
            f"webhook latency p50 / p95 ({len(latencies)} requests)",
            f"{percentile(latencies, 0.5) * 1000:.0f} / {percentile(latencies, 0.95) * 1000:.0f} ms",
            "measured",
            True,
        )
    )
    report.add(
        Figure(
            "load",
            "accepted-to-attached p50 / p95",
            f"{percentile(to_attached, 0.5):.1f} / {percentile(to_attached, 0.95):.1f} s",
            "measured",
            True,
        )
    )


def _accepted_to_attached(suite: Suite, deliveries: list[Delivery], wall_offset: float) -> list[float]:
    """Seconds from the webhook's 202 to the job record's final update, per job that succeeded."""
    out = []
    for delivery in deliveries:
        item = suite.job(delivery.job_id or "")
        if item and item["status"]["S"] == "succeeded":
            out.append(_iso_seconds(item["updatedAt"]["S"]) - (delivery.sent_at + wall_offset))
    return [max(0.0, v) for v in out]
