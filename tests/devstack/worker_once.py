"""Drain the jobs queue once with the worker handler, in a process of its own (for memory measurements).

Usage: ``python -m devstack.peak_rss devstack.worker_once`` with the stack's environment.
"""

from __future__ import annotations

import os
import sys

import boto3

from devstack.lambda_local import LocalWorker


def main() -> int:
    worker = LocalWorker(boto3.client("sqs"), os.environ["JOBS_QUEUE_URL"])
    while worker.poll_once() or worker.poll_once(wait_seconds=1):
        pass
    print(f"invocations: {worker.invocations}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
