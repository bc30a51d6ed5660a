"""Where a worker process kills itself for the crash matrix, and the fault hooks of its variants.

``arm(name)`` runs inside a worker child (reliability.worker_process calls it when CRASH_AT is set). A crash
point wraps one of the package's own functions so that the process sends itself SIGKILL right there, once, as
a Lambda environment killed mid-job would die: no ``finally``, no cleanup, no reply. Just before, it writes
``MARKER + name`` to its stdout (the worker's log), so the parent can tell the point was reached.

``POINTS`` also tells the parent how to set each kill up (a webhook job or an S3 drop, one file or two, a Jira
attachment sent to two objects, the simulator's link reply delayed) and what the job record and the objects
must show once the process is dead.
A fault hook (``secret-fails-once``) arms a fault instead of a kill, in the fresh worker after the kill.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.exceptions import ClientError

from assets_attach.api_models import FileStatus
from assets_attach.atlassian.assets_client import AssetsClient
from assets_attach.atlassian.media_upload import MediaUploader
from assets_attach.atlassian.multipart import MultipartBody
from assets_attach.aws.attached_pairs import AttachedPairs
from assets_attach.core.job_runner import JobRunner

MARKER = "crash point reached: "
HOOK_MARKER = "fault hook fired: "
SECRET_FAILS_ONCE = "secret-fails-once"
LINK_REPLY_DELAY_SECONDS = 3.0  # the parent delays the simulator's link reply this long (the link is made first)
KILL_AFTER_LINK_SENT_SECONDS = 1.0  # well inside that delay: the link is made, its reply not yet sent


def _die(name: str) -> NoReturn:
    sys.stdout.write(f"{MARKER}{name}\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("SIGKILL did not kill the process")


def _replace(owner: type, attribute: str, make: Callable[[Any], Any]) -> None:
    original = getattr(owner, attribute)
    setattr(owner, attribute, functools.wraps(original)(make(original)))


def _die_after(owner: type, attribute: str, when: Callable[..., bool] = lambda *_, **__: True) -> Callable[[str], None]:
    """A point right after ``owner.attribute`` returned (where ``when`` holds for its arguments)."""

    def install(name: str) -> None:
        def make(original: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                result = original(*args, **kwargs)
                if when(*args, **kwargs):
                    _die(name)
                return result

            return wrapper

        _replace(owner, attribute, make)

    return install


def _die_in_upload_body(percent: int) -> Callable[[str], None]:
    """A point once ``percent`` % of the multipart body was handed to the socket (urllib3 sends each piece it
    gets before asking for the next, so the kill on the next request for a piece comes after that send)."""

    def install(name: str) -> None:
        def make(original: Any) -> Any:
            def iterate(body: MultipartBody) -> Iterator[bytes]:
                cut, sent = len(body) * percent // 100, 0
                for piece in original(body):
                    if sent + len(piece) >= cut:
                        if cut > sent:
                            yield piece[: cut - sent]
                        _die(name)
                    sent += len(piece)
                    yield piece

            return iterate

        _replace(MultipartBody, "__iter__", make)

    return install


def _die_soon_after_link_sent(name: str) -> None:
    """A point while the link request is out: sent, made by the simulator, its (delayed) reply not yet read."""

    def make(original: Any) -> Any:
        def link(*args: Any, **kwargs: Any) -> Any:
            timer = threading.Timer(KILL_AFTER_LINK_SENT_SECONDS, _die, args=(name,))
            timer.daemon = True
            timer.start()
            return original(*args, **kwargs)

        return link

    _replace(AssetsClient, "link", make)


def _secret_fails_once(name: str) -> None:
    """The process's first Secrets Manager read is throttled (later reads go through)."""
    failed = threading.Event()

    def make(original: Any) -> Any:
        def get(*args: Any, **kwargs: Any) -> Any:
            if not failed.is_set():
                failed.set()
                sys.stdout.write(f"{HOOK_MARKER}{name}\n")
                sys.stdout.flush()
                error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
                raise ClientError(error, "GetSecretValue")
            return original(*args, **kwargs)

        return get

    _replace(SecretsProvider, "_get", make)


@dataclass(frozen=True)
class Point:
    """A crash point: how the child installs it, how the parent sets the kill up, what the kill must leave."""

    install: Callable[[str], None]
    drop: bool = False  # the job comes from an S3 drop, not a webhook request
    files: int = 1
    jira: bool = False  # the source is a Jira issue attachment, sent to two objects: two (file, object) pairs
    delay_link_reply: bool = False  # the parent delays the simulator's link replies while this worker runs
    at_kill: tuple[FileStatus, ...] = ("uploading",)  # the job's statuses, pair by pair, once the process is dead
    linked_at_kill: int = 0  # attachments the job's objects have gained by then, together


_after_credentials = _die_after(AssetsClient, "media_credentials")
_after_upload_reply = _die_after(MediaUploader, "upload")
_after_link_reply = _die_after(AssetsClient, "link")
_after_first_pair = _die_after(JobRunner, "_attach_pair", lambda _runner, ledger, *_, **__: ledger.index == 0)
_after_pair_claim = _die_after(AttachedPairs, "claim")

POINTS: dict[str, Point] = {
    "after-credentials": Point(_after_credentials),
    "upload-10": Point(_die_in_upload_body(10)),
    "upload-50": Point(_die_in_upload_body(50)),
    "upload-99": Point(_die_in_upload_body(99)),
    "after-upload-reply": Point(_after_upload_reply),
    "link-sent-no-reply": Point(
        _die_soon_after_link_sent, delay_link_reply=True, at_kill=("linking",), linked_at_kill=1
    ),
    "after-link-reply": Point(_after_link_reply, at_kill=("linking",), linked_at_kill=1),
    "between-files": Point(_after_first_pair, files=2, at_kill=("attached", "pending"), linked_at_kill=1),
    "drop-after-credentials": Point(_after_credentials, drop=True),
    "drop-upload-50": Point(_die_in_upload_body(50), drop=True),
    "drop-after-upload-reply": Point(_after_upload_reply, drop=True),
    "drop-after-link-reply": Point(_after_link_reply, drop=True, at_kill=("linking",), linked_at_kill=1),
    # One Jira attachment, two objects: each kill falls on the first (attachment, object) pair.
    "jira-after-claim": Point(_after_pair_claim, jira=True, at_kill=("pending", "pending")),
    "jira-upload-50": Point(_die_in_upload_body(50), jira=True, at_kill=("uploading", "pending")),
    "jira-link-sent-no-reply": Point(
        _die_soon_after_link_sent, jira=True, delay_link_reply=True, at_kill=("linking", "pending"), linked_at_kill=1
    ),
    "jira-after-link-reply": Point(_after_link_reply, jira=True, at_kill=("linking", "pending"), linked_at_kill=1),
    "jira-between-objects": Point(_after_first_pair, jira=True, at_kill=("attached", "pending"), linked_at_kill=1),
}
HOOKS: dict[str, Callable[[str], None]] = {SECRET_FAILS_ONCE: _secret_fails_once}


def arm(name: str) -> None:
    """Install the crash point (a key of POINTS) or fault hook (a key of HOOKS) called ``name``."""
    if name in HOOKS:
        HOOKS[name](name)
    elif name in POINTS:
        POINTS[name].install(name)
    else:
        raise ValueError(f"no crash point or fault hook is called {name!r}")
