"""One worker execution environment in a process of its own: polls the jobs queue like Lambda's SQS poller
until SIGTERM. With ``CRASH_AT`` set, reliability.crash_points arms a point where the process kills itself
with SIGKILL, as a Lambda environment that dies mid-job would."""

from __future__ import annotations

import os
import signal
import sys
import threading

import boto3

from devstack.lambda_local import LocalWorker


def main() -> int:
    if os.environ.get("CRASH_AT"):
        from reliability import crash_points

        crash_points.arm(os.environ["CRASH_AT"])
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    worker = LocalWorker(
        boto3.client("sqs"), os.environ["JOBS_QUEUE_URL"], timeout_seconds=float(os.environ.get("WORKER_TIMEOUT", "60"))
    )
    while not stopped.is_set():
        worker.poll_once(wait_seconds=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
