"""The suite's local stack: moto, the Atlassian simulator, the webhook behind the local API front (one request
at a time, as one Lambda environment), and workers as real separate processes that can be killed.

Everything the code logs is kept: the webhook's lines in memory, each worker process's stdout in a file. The
secret scan reads them all, with the job records and the dead-letter queue.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets_attach.observability import logger
from assets_attach.runtime import get_runtime
from devstack.atlassian_sim import AtlassianSimulator
from devstack.lambda_local import LocalApi
from devstack.log_capture import CapturedLogs
from devstack.stack import LocalStack, child_env, moto_server, patched_environ

OBJECTS = {str(1000 + n): f"REL-{n + 1}" for n in range(20)}  # 20 Assets objects: ids 1000..1019, keys REL-1..


@dataclass
class Suite:
    stack: LocalStack
    api: LocalApi
    log_dir: Path
    webhook_logs: CapturedLogs
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_paths: dict[int, Path] = field(default_factory=dict)  # each worker process's log file, by its pid
    _spawned: int = 0

    @property
    def sim(self) -> AtlassianSimulator:
        return self.stack.sim

    @property
    def api_url(self) -> str:
        return self.api.url

    def spawn_worker(
        self, env: Mapping[str, str] | None = None, *, crash_at: str | None = None
    ) -> subprocess.Popen[bytes]:
        """A worker in a process of its own, polling the jobs queue until stopped (or killed at ``crash_at``)."""
        self._spawned += 1
        log_path = self.log_dir / f"worker-{self._spawned}.log"
        log = log_path.open("wb")
        extra = {**(env or {}), **({"CRASH_AT": crash_at} if crash_at else {})}
        process = subprocess.Popen(
            [sys.executable, "-m", "reliability.worker_process"],
            env=child_env({**self.stack.env(), **extra}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        self.log_paths[process.pid] = log_path
        return process

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.workers.clear()

    def job(self, job_id: str) -> dict[str, Any] | None:
        item = self.stack.client("dynamodb").get_item(
            TableName=self.stack.jobs_table, Key={"jobId": {"S": job_id}}, ConsistentRead=True
        )
        return item.get("Item")

    def wait_until(self, done: Any, timeout: float, poll: float = 0.25) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(poll)
        return bool(done())

    # -- what the secret scan reads ------------------------------------------------------------------

    def secret_values(self) -> dict[str, str]:
        """Every credential of the run, by name: what must never appear in a log, a record or an answer."""
        values = {
            "webhook token": self.stack.webhook_token,
            "API token": self.sim.api_token,
            "Basic header value": base64.b64encode(f"{self.sim.email}:{self.sim.api_token}".encode()).decode(),
        }
        for n, token in enumerate(self.sim.issued_tokens):
            values[f"media JWT {n}"] = token
            values[f"media JWT {n} signature"] = token.rsplit(".", 1)[-1]
        return values

    def texts(self) -> dict[str, str]:
        """Everything the code logged and stored: webhook and worker logs, job records, DLQ bodies."""
        texts = {
            "webhook logs": self.webhook_logs.text,
            "API answers": b"\n".join(self.api.answers).decode(errors="replace"),
        }
        for path in sorted(self.log_dir.glob("*.log")):
            texts[path.name] = path.read_text(errors="replace")
        table = self.stack.client("dynamodb").scan(TableName=self.stack.jobs_table)
        texts["job records"] = json.dumps(table.get("Items", []))
        sqs = self.stack.client("sqs")
        dead = sqs.receive_message(QueueUrl=self.stack.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        texts["dead-letter queue"] = json.dumps([m["Body"] for m in dead.get("Messages", [])])
        return texts


@contextmanager
def suite(*, visibility_timeout: int = 3, max_receive_count: int = 5) -> Iterator[Suite]:
    """The whole local stack, seeded with OBJECTS, the uploads bucket notifying the queue."""
    with (
        tempfile.TemporaryDirectory(prefix="reliability-") as log_dir,
        moto_server() as moto_url,
        AtlassianSimulator() as sim,
    ):
        for object_id, object_key in OBJECTS.items():
            sim.add_object(object_id, object_key)
        suffix = uuid.uuid4().hex[:8]  # moto keeps its state per process, across servers: fresh names per suite
        stack = LocalStack(
            moto_url,
            sim,
            bucket=f"reliability-{suffix}",
            secret_id=f"reliability-{suffix}",
            jobs_table=f"jobs-{suffix}",
            idempotency_table=f"idempotency-{suffix}",
            queue_name=f"jobs-{suffix}",
            visibility_timeout=visibility_timeout,
            max_receive_count=max_receive_count,
        ).seed()
        stack.enable_s3_notifications()
        capture = CapturedLogs(logger.registered_formatter)
        logger._logger.addHandler(capture)
        try:
            with patched_environ({**stack.env(), "POWERTOOLS_METRICS_DISABLED": "true"}), LocalApi() as api:
                get_runtime.cache_clear()  # the webhook's environment starts cold on each suite's stack
                running = Suite(stack, api, Path(log_dir), capture)
                try:
                    yield running
                finally:
                    running.stop_workers()
        finally:
            logger._logger.removeHandler(capture)


def leaked_secrets(suite: Suite) -> dict[str, int]:
    """Each credential of the run that shows up in what the code logged, stored or answered, with where and how
    often: ``{"<credential> in <where>": occurrences}``."""
    secrets = suite.secret_values()
    found = {
        f"{what} in {where}": text.count(value)
        for where, text in suite.texts().items()
        for what, value in secrets.items()
    }
    return {where: count for where, count in found.items() if count}
