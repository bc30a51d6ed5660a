"""Run the Lambda handlers locally as API Gateway and SQS would invoke them.

``LocalApi`` is an HTTP front on 127.0.0.1 that turns each request into a REST (v1) proxy event, shaped
like the samples in ``events/`` (which it starts from), and calls the webhook handler. ``LocalWorker``
polls the jobs queue in moto, builds SQS events like ``events/worker_sqs_job.json``, calls the worker
handler and deletes what it reports as done; failed records stay for SQS to redeliver or dead-letter.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
_JOB_PATH = re.compile(r"^/attachments/jobs/([^/]+)$")


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text())


@dataclass
class LambdaContext:
    """What the handlers use of the Lambda context, with a real deadline."""

    function_name: str = "assets-attach-local"
    timeout_seconds: float = 300.0
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def api_event(
    method: str, path: str, headers: dict[str, str], body: str | None, host: str, query: str = ""
) -> dict[str, Any]:
    """A REST proxy event for this request, built on the sample in events/."""
    match = _JOB_PATH.match(path)
    sample = "webhook_get_job.json" if match else "webhook_post_attachment.json"
    event = copy.deepcopy(load_event("webhook_list_jobs.json" if path == "/attachments/jobs" else sample))
    # As API Gateway passes a query string: the last value of each name, and every value.
    pairs = parse_qsl(query, keep_blank_values=True)
    event.update(
        {
            "queryStringParameters": dict(pairs) or None,
            "multiValueQueryStringParameters": {k: [v for n, v in pairs if n == k] for k, _ in pairs} or None,
        }
    )
    event.update(
        {
            "httpMethod": method,
            "path": path,
            "resource": "/attachments/jobs/{jobId}" if match else path,
            "pathParameters": {"jobId": match.group(1)} if match else None,
            "body": body,
            "isBase64Encoded": False,
            "headers": {**headers, "X-Forwarded-Proto": "http", "Host": host},
            "multiValueHeaders": {k: [v] for k, v in {**headers, "X-Forwarded-Proto": "http", "Host": host}.items()},
        }
    )
    event["requestContext"].update(
        {
            "httpMethod": method,
            "path": path,
            "resourcePath": event["resource"],
            "domainName": host,
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
        }
    )
    return event


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _invoke(self) -> None:
        from assets_attach.handlers import webhook

        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else None
        host = f"{self.server.server_address[0]!s}:{self.server.server_address[1]}"
        path, _, query = self.path.partition("?")
        event = api_event(self.command, path, dict(self.headers.items()), body, host, query)
        try:
            with self.server.environment:  # one request at a time, as in one Lambda execution environment
                reply = webhook.lambda_handler(
                    event, LambdaContext(function_name="assets-attach-webhook", timeout_seconds=29)
                )
        except Exception:  # noqa: BLE001 - what API Gateway answers when the function fails
            reply = {"statusCode": 502, "headers": {}, "body": '{"message": "Internal server error"}'}
        payload = (reply.get("body") or "").encode()
        self.server.answers.append(payload)
        self.send_response(int(reply["statusCode"]))
        for name, value in (reply.get("headers") or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _invoke


class _ApiServer(ThreadingHTTPServer):
    """Connections are served on threads, but the handler runs one request at a time: Powertools' resolver and
    idempotency keep per-request state in module globals, exactly as one Lambda execution environment does."""

    daemon_threads = True
    environment = threading.Lock()
    answers: list[bytes]  # every body answered, for scans of what the API gave away


class LocalApi:
    """The API Gateway stand-in: ``url`` is what a Jira rule (or curl) would call."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _ApiServer((host, port), _ApiHandler)
        self._server.answers = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="local-api")

    @property
    def answers(self) -> list[bytes]:
        """Every response body the API has sent."""
        return self._server.answers

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LocalApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    template = load_event("worker_sqs_job.json")["Records"][0]
    records = []
    for message in messages:
        record = copy.deepcopy(template)
        record.update(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "md5OfBody": message["MD5OfBody"],
                "attributes": {**record["attributes"], **message.get("Attributes", {})},
                "eventSourceARN": queue_arn,
            }
        )
        records.append(record)
    return {"Records": records}


class LocalWorker:
    """Polls the jobs queue and invokes the worker handler with what it receives, like Lambda's SQS poller."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        *,
        batch_size: int = 5,
        timeout_seconds: float = 300,
        context_factory: Callable[[], LambdaContext] | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._batch_size = batch_size
        self._new_context = context_factory or (
            lambda: LambdaContext(function_name="assets-attach-worker", timeout_seconds=timeout_seconds)
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.invocations = 0

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive one batch and invoke the handler; returns how many records it carried."""
        from assets_attach.handlers import worker

        reply = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            return 0
        self.invocations += 1
        try:
            result = worker.lambda_handler(sqs_event(messages, self._queue_arn), self._new_context())
        except Exception:  # noqa: BLE001 - as Lambda does: a failed invocation returns the whole batch
            return len(messages)
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)

    def drain(self, rounds: int = 20) -> None:
        """Poll until a poll finds nothing (or ``rounds`` polls)."""
        for _ in range(rounds):
            if self.poll_once() == 0:
                return

    def start(self) -> LocalWorker:
        # Import the handler here, not first in the thread: two threads importing the same packages at once can
        # see a half-imported module.
        from assets_attach.handlers import worker  # noqa: F401

        def loop() -> None:
            while not self._stop.is_set():
                self.poll_once(wait_seconds=1)

        self._thread = threading.Thread(target=loop, daemon=True, name="local-worker")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
