"""End to end: step 1 names a hostile ``mediaBaseUrl``; the job fails at once and the media JWT goes nowhere.

The simulator answers the credentials request with a URL that ``urllib.parse.urlsplit`` reads as an allowed
host while requests/urllib3 would connect to a TCP listener this test runs. The worker must refuse the URL
before any connection: no retry, nothing in the dead-letter queue, zero connections at the listener,
nothing uploaded or attached.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from urllib3.util import parse_url

from assets_attach.runtime import get_runtime
from devstack.lambda_local import LocalWorker
from devstack.log_capture import CapturedLogs
from devstack.stack import LocalStack, patched_environ


@dataclass
class Listener:
    """A TCP listener that counts the connections it accepts (and keeps what they sent)."""

    host: str
    port: int = 0
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)


@contextmanager
def tcp_listener(host: str) -> Iterator[Listener]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except OSError as e:
        sock.close()
        pytest.skip(f"cannot listen on {host}: {e}")
    sock.listen(8)
    sock.settimeout(0.05)
    listener = Listener(host, sock.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            listener.connections += 1
            with conn:
                conn.settimeout(0.5)
                with suppress(OSError):
                    listener.received += conn.recv(65536)

    thread = threading.Thread(target=serve, name="hostile-listener", daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


@dataclass(frozen=True)
class Case:
    listen_on: str
    media_url: Callable[[int], str]  # the hostile mediaBaseUrl, given the listener's port
    allowed_hosts: str  # MEDIA_ALLOWED_HOSTS for the test
    naive_host: str  # the host urlsplit reports: on the allow-list, so a check made on it alone passed
    connects_to: Callable[[int], tuple[str, int | None]]  # (host, port) urllib3 would connect to


CASES = {
    # urlsplit sees an allowed loopback host ([::1]); urllib3 ends the host at the backslash: 127.0.0.2
    "backslash-other-host": Case(
        "127.0.0.2", lambda port: f"http://127.0.0.2:{port}\\[::1]", "127.0.0.1,::1", "::1",
        lambda port: ("127.0.0.2", port),
    ),
    # the local stack's own allow-list; the host and port that urllib3 uses come before the backslash
    "backslash-port": Case(
        "127.0.0.1", lambda port: f"http://127.0.0.1:{port}\\.127.0.0.1", "127.0.0.1", "127.0.0.1",
        lambda port: ("127.0.0.1", port),
    ),
    # the security review's URL, under the production default patterns
    "review-case": Case(
        "127.0.0.1", lambda port: "https://evil.example\\.atlassian.com", "api.media.atlassian.com,*.atlassian.com",
        "evil.example\\.atlassian.com", lambda port: ("evil.example", None),
    ),
}  # fmt: skip


def post(api: str, stack: LocalStack, body: Any) -> requests.Response:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {stack.webhook_token}"}
    return requests.post(f"{api}/attachments", data=json.dumps(body).encode(), headers=headers, timeout=30)


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_media_base_url_fails_the_job_and_sends_nothing(
    name: str, stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    case = CASES[name]
    with tcp_listener(case.listen_on) as listener, patched_environ({"MEDIA_ALLOWED_HOSTS": case.allowed_hosts}):
        get_runtime.cache_clear()  # the worker reads MEDIA_ALLOWED_HOSTS afresh, as a cold container would
        media_url = case.media_url(listener.port)
        # Why the URL is hostile: the two parsers disagree, and a check made on urlsplit's host alone passes.
        assert urlsplit(media_url).hostname == case.naive_host
        target = parse_url(media_url)
        assert (target.host, target.port) == case.connects_to(listener.port)
        stack.sim.media_base_url_override = media_url
        stack.put("attachments/secret-report.pdf", b"%PDF- bytes that must stay home", "application/pdf")

        accepted = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/secret-report.pdf"})
        assert accepted.status_code == 202, accepted.text
        worker.drain()

        reply = requests.get(
            accepted.json()["statusUrl"], headers={"Authorization": f"Bearer {stack.webhook_token}"}, timeout=30
        )
        job = reply.json()
        assert job["status"] == "failed", job
        [file] = job["files"]
        assert file["status"] == "failed"
        assert "mediaBaseUrl" in file["error"] and "the media token was not sent" in file["error"], file["error"]
        assert file.get("errorCode", "media_host_not_allowed") == "media_host_not_allowed"  # where the record has it
        assert '"code":"media_host_not_allowed"' in logs.text.replace(" ", "")
        # Refused for good: one attempt, no retry, nothing left in the queue or dead-lettered.
        assert job["attempts"] == 1 and worker.invocations == 1
        assert stack.queue_depth(stack.queue_url) == 0 and stack.queue_depth(stack.dlq_url) == 0
        # Step 1 was asked; nothing went anywhere after it.
        assert any(r.path.endswith("/credentials") for r in stack.sim.requests)
        assert listener.connections == 0 and not listener.received
        assert stack.sim.uploads == {}
        assert stack.sim.attachments("1234") == []
    get_runtime.cache_clear()
