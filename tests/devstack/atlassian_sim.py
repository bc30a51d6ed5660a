"""A local stand-in for the Atlassian APIs that attach files to Jira Service Management Assets objects.

One real HTTP/1.1 server on 127.0.0.1 plays both ``https://api.atlassian.com`` (the Assets API) and the Jira
site (a second listening socket plays the media download host, see below), and it enforces what the real services
enforce:

1. ``GET  /jsm/assets/workspace/{W}/v1/attachments/object/{id}/credentials`` (Basic) -> media JWT + client id
2. ``POST /media/file?name=...`` (Bearer + ``X-Client-Id``) -> the file, as a one-part ``multipart/form-data``
   body with a ``Content-Length``, parsed as a stream; or, where ``upload_path`` is ``/file/binary``, the raw bytes
   with the file's ``Content-Type`` (a multipart body there is stored with its envelope, as Atlassian's would be).
   ``upload_reply`` says what it answers: the stored file with its size, or Atlassian's createFile ``{id,
   createdAt}`` (``createFile``; ``createFile-empty`` also stores none of the bytes)
2b. ``GET /media/file/{id}`` (Bearer + ``X-Client-Id``) -> ``{"data": {id, size, processingStatus, ...}}`` with
   the stored size and ``processing_status``
3. ``POST /jsm/assets/workspace/{W}/v1/attachments/object/{id}`` (Basic) -> links uploaded media
4. ``GET  /jsm/assets/workspace/{W}/v1/attachments/object/{id}`` (Basic) -> the object's attachments
5. ``POST /jsm/assets/workspace/{W}/v1/object/aql`` (Basic) -> ``Key = "HW-42"`` style lookups, and the list forms
   ``Key IN ("HW-42", "HW-43")`` and ``objectId IN (1234, 1235)`` (a backfill's dry run checks objects in batches)
   (and ``DELETE /jsm/assets/workspace/{W}/v1/attachments/{attachmentId}`` (Basic) -> 204, or 404 for an unknown
   id; step ``delete``, undocumented on Cloud, what ``doctor --live`` removes its test attachment with)
6. ``GET  /rest/servicedeskapi/assets/workspace`` (Basic) -> workspace discovery
7. ``GET  /rest/api/3/attachment/{id}`` (Basic) -> a Jira attachment's metadata (``id`` a number, as Jira's
   AttachmentMetadata has it; 404 ``{"errorMessages": [...]}`` for an unknown id)
8. ``GET  /rest/api/3/issue/{issueIdOrKey}?fields=attachment`` (Basic) -> ``{"id", "key", "fields": {"attachment":
   [...]}}``, the attachments with ``id`` strings, as the issue's attachment field has them; 404 for an unknown issue
9. ``GET  /rest/api/3/attachment/content/{id}`` (Basic) -> ``303 See Other`` to the media download host (10); with
   ``?redirect=false`` the bytes themselves (``Content-Type`` the attachment's, exact ``Content-Length``)
10. ``GET /media/file/{fileId}/binary?token=...&client=...&dl=true&name=...`` on the media download host -> the
    bytes; only the short-lived signed token in the query (valid, unexpired, for that file, with its ``client``)
    authorizes it, and a request that carries any ``Authorization`` header (Basic or Bearer) is refused with 401

The API gateway (issue 17): ``/ex/jira/{cloudId}/...`` serves 1 and 3 to 9 as the same route without the prefix
(``/ex/jira/{cloudId}/jsm/assets/...``, ``/ex/jira/{cloudId}/rest/...``); another cloud id, or another path under it,
answers 404. ``GET /_edge/tenant_info`` answers ``{"cloudId"}`` without authentication (Atlassian KB "Retrieve my
Atlassian site's Cloud ID"). :attr:`AtlassianSimulator.scoped_tokens` ``= True`` (``--scoped-token``) plays a scoped
API token (the only kind a service account has): Basic auth answers 401 on every route not under the gateway
prefix, the site's and ``/jsm/...`` alike, as Atlassian's does (support KB "401 unauthorized error when service
account accesses Jira or Confluence API"). :attr:`AtlassianSimulator.requests` records the paths as sent, prefix
included.

9 (with ``redirect=false``) and 10 answer 406 to an ``Accept`` that does not admit the attachment's type (Jira Cloud
answers 406 to ``Accept: application/json`` there; ``negotiate_content = False`` turns that off), stream the bytes
from memory in chunks and answer one ``Range: bytes=N-``,
``bytes=N-M`` or ``bytes=-K`` with ``206 Partial Content`` and ``Content-Range`` (416 when it starts past the end;
any other ``Range`` is ignored, as RFC 9110 allows).

The media download host is a second listening socket under another host name than the API's, as
``api.media.atlassian.com`` is another host than the Jira site: ``127.0.0.2`` (all of 127.0.0.0/8 is loopback on
Linux), else ``localhost`` where that address cannot be bound (macOS), or :attr:`AtlassianSimulator.media_download_host`
when set before :meth:`AtlassianSimulator.start`. Clients drop credentials on a redirect to another host name
(``requests`` strips ``Authorization`` in ``rebuild_auth``), so following the 303 works as with the real services,
and a client that forwards its Basic credentials to the media host is refused. The download's ``token`` is recorded
redacted in :attr:`AtlassianSimulator.requests`, and ``Authorization`` by its scheme only, as elsewhere. (Where an
HTTP proxy is configured, ``NO_PROXY`` must cover the download host as well as 127.0.0.1, e.g. ``127.0.0.0/8``.)

The media service's chunked upload (``MEDIA_CHUNKED.md``), with the same Bearer JWT and ``X-Client-Id`` as 2:

11. ``POST /media/upload?createUpTo=1&hashAlgorithm=sha256`` -> ``{"data": [{"id", "created", "expires"}]}``
12. ``PUT  /media/chunk/{etag}?uploadId=...&partNumber=n`` -> the chunk's raw bytes; the etag
    ``sha256-<hex>-<size>`` must be the body's SHA-256 and length (else 400). Chunks are held once each, by etag
    (sending one again is harmless), and only until an append has taken them for every part they were sent as
13. ``PUT  /media/upload/{uploadId}/chunks`` JSON ``{"chunks": [etag, ...], "offset": n}`` -> appends in order;
    ``offset`` must be the number of chunks already appended (else 409) and every etag must have been sent (else
    400). The upload keeps the running SHA-256 and size of its appended bytes, not the bytes
14. ``POST /media/file/upload`` JSON ``{"uploadId", "name", "mimeType", "conditions": {"size"}}`` -> a media file
    made of the appended chunks (``conditions.size`` must be their total size, else 400), recorded as a
    :class:`SimUpload` exactly as 2 records one, so that 3 links its id

:attr:`AtlassianSimulator.chunked_enabled` ``= False`` (``--no-chunked``) plays a service without the protocol: 11 to
14 answer 404. Counters (:meth:`AtlassianSimulator.chunk_stats`, also served as ``GET /__sim/stats`` for a simulator
in its own process): ``chunkBytesReceived`` (every body byte read on 12, whatever became of it), ``chunksAccepted``
and ``chunkBytesAccepted`` (chunks whose etag checked out, repeats included), ``chunksHeld`` and ``chunkBytesHeld``
(distinct chunks in memory now), ``uploadsOpen``. :meth:`AtlassianSimulator.expire_chunked_uploads` makes every
upload so far answer 404, as its ``expires`` passing would.

Faults (error statuses, ``Retry-After``, delays, dropped connections, replies lost after a successful link)
are queued per step with :meth:`AtlassianSimulator.inject`. Steps 7 to 10 are ``jira-attachment``, ``jira-issue``,
``jira-content`` (including its 303) and ``media-download``; on the last two ``drop_after_bytes`` cuts the body
after that many bytes. Steps 11 to 14 are ``media-upload-create``, ``media-chunk`` (``drop_after_bytes`` cuts
its request body as on ``upload``), ``media-append`` and ``media-file-create``.

Network shaping (issue 22): :attr:`AtlassianSimulator.link_mibps` (``--link-mibps``) caps each connection's body
bytes on the media routes (2, 2b, 10 to 14) to that many MiB/s, both ways, as one TCP flow over a long path is
capped by its window and round trip: a token bucket per connection (bursts of ``LINK_BURST_BYTES``) paces the
simulator's own reads and writes of request and answer bodies. :attr:`AtlassianSimulator.rtt_ms` (``--rtt-ms``)
adds that many milliseconds before answering each request on those routes. Nothing outside the process is touched
(no root, no kernel tools); the client's socket buffers still take a few MiB at once, so a paced request takes
its full time only from its first byte to its answer.

Run ``python -m devstack.atlassian_sim --port 0 --object 1234:HW-42`` to serve it from its own process: it
prints one JSON line with its URLs and credentials, then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import hmac
import html
import json
import random
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

__all__ = ["STEPS", "AtlassianSimulator", "Fault", "SimAttachment", "SimJiraAttachment", "SimRequest", "SimUpload"]

STEPS = frozenset(
    {
        "credentials",
        "upload",
        "link",
        "list",
        "delete",
        "aql",
        "workspace",
        "jira-attachment",
        "jira-issue",
        "jira-content",
        "media-download",
        "media-upload-create",
        "media-chunk",
        "media-append",
        "media-file-create",
        "media-file-info",
    }
)
_STREAMED_STEPS = frozenset({"jira-content", "media-download"})  # raw bytes, not JSON; faults cut their body
_BODY_STEPS = frozenset({"upload", "media-chunk"})  # large request bodies: their handler reads them itself
# The media host's routes (the upload, its chunked protocol, file info and downloads): what network shaping applies to.
_MEDIA_STEPS = frozenset(
    {
        "upload",
        "media-file-info",
        "media-upload-create",
        "media-chunk",
        "media-append",
        "media-file-create",
        "media-download",
    }
)

MiB = 1 << 20
READ_CHUNK = 1 << 20  # socket reads while streaming an upload
HEAD_LIMIT = 64 << 10  # preamble + the part's headers must fit in this
SMALL_BODY_LIMIT = 10 << 20  # JSON bodies are read whole, up to this
DRAIN_KEEPALIVE_LIMIT = 1 << 20  # an unread body up to this is read and dropped; a larger one closes
LINGER_SECONDS = 30.0  # how long a rejected upload's body is still read (and dropped) after the answer
IDLE_TIMEOUT = 60.0  # per-connection socket timeout
WRITE_CHUNK = 1 << 20  # socket writes while streaming a download
MAX_CHUNK_BYTES = 256 << 20  # the largest chunk the web client sends is 210 MiB
UPLOAD_TTL_SECONDS = 24 * 3600.0  # how long a chunked upload may be appended to (its "expires")
LINK_BURST_BYTES = 64 << 10  # a shaped connection's token bucket holds this much: the burst an idle link allows

_BASIC_401 = {"code": 401, "message": "Unauthorized; scope does not match"}
_AQL_RE = re.compile(
    r"""^\s*(?:key|objectkey)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"']+))\s*$""", re.IGNORECASE | re.DOTALL
)
_AQL_IN_RE = re.compile(r"^\s*(key|objectkey|objectid)\s+in\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_AQL_ITEM_RE = re.compile(r"""\s*(?:"((?:[^"\\]|\\.)*)"|([^\s",()]+))\s*(?:,|$)""")
_PARAM_RE = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_ASSETS_RE = re.compile(r"^/jsm/assets/workspace/([^/]+)/v1/(.*)$")
_GATEWAY_RE = re.compile(r"^/ex/jira/([^/]+)(/(?:rest|jsm)/.*)$")  # the API gateway's routes to a site
_OBJECT_ATTACH_RE = re.compile(r"^attachments/object/([^/]+)(/credentials)?$")
_ATTACHMENT_RE = re.compile(r"^attachments/([^/]+)$")
_JIRA_ATTACHMENT_RE = re.compile(r"^/rest/api/3/attachment/(content/)?([^/]+)$")
_JIRA_ISSUE_RE = re.compile(r"^/rest/api/3/issue/([^/]+)$")
_MEDIA_DOWNLOAD_RE = re.compile(r"^/media/file/([^/]+)/binary$")
_CHUNK_RE = re.compile(r"^/media/chunk/([^/]+)$")
_MEDIA_FILE_RE = re.compile(r"^/media/file/([0-9a-f-]{36})$")  # the ids this simulator issues
_UPLOAD_CHUNKS_RE = re.compile(r"^/media/upload/([^/]+)/chunks$")
_ETAG_RE = re.compile(r"^sha256-([0-9a-f]{64})-([1-9][0-9]{0,11})$")  # an empty chunk is never sent
_ISSUE_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]*-[1-9][0-9]*$")
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_SECRET_QUERY = frozenset({"token"})  # query parameters recorded redacted
_DOWNLOAD_HOSTS = ("127.0.0.2", "localhost", "127.0.0.1")  # media download host candidates, another than the API's


# --------------------------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or after) serving the next matching request(s) of a step.

    ``status``: answer this status with a JSON error body instead of serving.
    ``retry_after``: send ``Retry-After`` (whole numbers as an integer string).
    ``delay_seconds``: sleep before answering (after the request body has been read, when it is read).
    ``drop_after_bytes``: close the connection abruptly (RST) without answering; on ``upload`` after reading
    that many body bytes, on other steps after reading the (small) request body. On ``jira-content`` and
    ``media-download`` the answer is sent, and the connection closed after exactly that many bytes of its body,
    short of its ``Content-Length`` (a 303 or error answer, which has no such body, is dropped unanswered).
    ``after_success``: ``link`` only; perform the real link, then answer ``status`` or drop.
    ``times``: how many requests of the step it applies to.
    """

    status: int | None = None
    retry_after: float | None = None
    delay_seconds: float = 0
    drop_after_bytes: int | None = None
    after_success: bool = False
    times: int = 1


@dataclass(frozen=True)
class SimUpload:
    media_id: str
    object_id: str
    name: str
    part_filename: str | None
    part_filename_star: str | None
    content_type: str | None
    size: int
    sha256: str
    headers: dict[str, str]
    chunked_upload_id: str | None = None  # the chunked upload it was made from; None: the single POST


@dataclass(frozen=True)
class SimAttachment:
    id: int
    object_id: str
    filename: str
    mime_type: str
    size: int
    comment: str
    media_id: str
    sha256: str
    created: str = ""


@dataclass(frozen=True)
class SimJiraAttachment:
    id: str  # numeric, from "10000"
    issue_key: str
    filename: str
    mime_type: str
    size: int
    sha256: str
    media_file_id: str = ""  # the file's id on the media download host
    created: str = ""


@dataclass(frozen=True)
class SimRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int | None  # None: the connection was dropped without an answer
    at: float = 0.0  # time.monotonic() when it was answered (or dropped)
    started: float = 0.0  # time.monotonic() when its request line was read


@dataclass(frozen=True)
class _SimObject:
    object_id: str
    object_key: str
    label: str


@dataclass(frozen=True)
class _JiraIssue:
    id: str
    key: str


@dataclass(eq=False)
class _ChunkedUpload:
    """An upload being assembled: the etags appended so far, and the running SHA-256 and size of their bytes."""

    id: str
    client_id: str
    created_ms: int
    expires_ms: int
    etags: list[str]
    size: int
    hasher: Any  # hashlib's sha256 object
    lock: threading.Lock  # one append at a time, hashing outside the simulator's lock


@dataclass(frozen=True, eq=False)
class _Body:
    """A raw answer (the Jira content and media download steps): bytes written from memory in chunks, not JSON."""

    data: memoryview
    headers: dict[str, str]


_Route = tuple[str, Callable[..., tuple[int, Any]], tuple[str, ...]]


class _HttpError(Exception):
    def __init__(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.headers = headers or {}


class _ClientGone(Exception):
    """The client closed the connection or stalled before sending its whole body."""


def _error(status: int, message: str, errors: dict[str, str] | None = None) -> _HttpError:
    return _HttpError(status, {"errorMessages": [message], "errors": errors or {}})


# Assets' attachment endpoints answer errors as {"errorMessage": "..."} (singular), e.g. 404 {"errorMessage": "TCS
# 404"} from the credentials call (ATLASSIAN_FACTS.md, "Assets (JSM) REST"); the rest answer Jira's errorMessages.
_SINGULAR_ERROR_STEPS = frozenset({"credentials", "link", "list"})


def _error_shape(step: str, payload: Any) -> Any:
    if step in _SINGULAR_ERROR_STEPS and isinstance(payload, dict) and payload.get("errorMessages"):
        return {"errorMessage": "; ".join(str(m) for m in payload["errorMessages"])}
    return payload


def _acceptable(accept: str | None, content_type: str) -> bool:
    """Whether an ``Accept`` header admits ``content_type`` (RFC 9110 12.5.1; no header admits anything)."""
    if accept is None or not accept.strip():
        return True
    wanted = content_type.split(";", 1)[0].strip().lower()
    major = wanted.split("/", 1)[0]
    for item in accept.split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        if re.search(r"(?:^|;)\s*q\s*=\s*0(?:\.0*)?\s*(?:;|$)", params):
            continue
        if media in ("*/*", f"{major}/*", wanted):
            return True
    return False


# --------------------------------------------------------------------------------------------- helpers


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _now_iso() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="file"; filename="a b"`` -> ("form-data", {...}); values as received, unquoted."""
    main, _, _rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(value[len(main) :]):
        raw = match.group(2).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        params.setdefault(match.group(1).lower(), raw)
    return main.strip().lower(), params


def _format_retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _jira_time() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _recorded_query(query: dict[str, str]) -> dict[str, str]:
    """The query as recorded: secrets (the media download token) redacted."""
    if _SECRET_QUERY.isdisjoint(query):
        return query
    return {name: "<redacted>" if name in _SECRET_QUERY and value else value for name, value in query.items()}


def _wants_field(fields: str | None, name: str) -> bool:
    """Jira's ``fields`` parameter: absent, ``*all`` or ``*navigable`` -> every field; ``-name`` leaves one out."""
    if fields is None:
        return True
    wanted = {field.strip() for field in fields.split(",") if field.strip()}
    if f"-{name}" in wanted:
        return False
    return bool(wanted & {name, "*all", "*navigable"})


def _content_disposition(filename: str) -> str:
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``Range: bytes=N-``, ``bytes=N-M`` or ``bytes=-K`` -> (start, stop); None: send the whole body.

    A header it does not take (another unit, several ranges, bad syntax) is ignored, as RFC 9110 lets a server
    do; a range that starts at or past the end is answered 416 with ``Content-Range: bytes */size``.
    """
    match = _RANGE_RE.match(header or "")
    if not match:
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        if last and int(last) < start:
            return None
        stop = min(int(last) + 1, size) if last else size
    elif last:
        start, stop = max(size - int(last), 0), size
        if int(last) == 0:
            start = size
    else:
        return None
    if start >= size:
        raise _HttpError(
            416,
            {"errorMessages": [f"Range {header} is not satisfiable for {size} bytes"], "errors": {}},
            {"Content-Range": f"bytes */{size}"},
        )
    return start, stop


class _TokenBucket:
    """One connection's bandwidth: ``rate`` bytes per second, bursts of up to ``burst`` bytes after a pause.

    ``take(n)`` after moving ``n`` bytes sleeps until the bucket has paid for them, so ``size`` bytes take
    ``(size - burst) / rate`` seconds at least, however the reads or writes are cut."""

    def __init__(self, rate: float, burst: int = LINK_BURST_BYTES) -> None:
        self.rate = rate
        self._burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()

    def take(self, count: int) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self.rate) - count
        self._at = now
        if self._tokens < 0:
            time.sleep(-self._tokens / self.rate)


# --------------------------------------------------------------------------------------------- HTTP server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: AtlassianSimulator, role: str = "api") -> None:
        self.sim = sim
        self.role = role  # "api": the Assets API and the Jira site; "media-download": the media download host
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AtlassianSim/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    sim: AtlassianSimulator
    _expect_continue: bool
    _continue_sent: bool
    _body_remaining: int | None  # None: no Content-Length (chunked or unknown)
    _body_done: bool
    _recorded: tuple[str, str, dict[str, str], dict[str, str]] | None  # this request, until recorded
    _started: float  # when this request's line was read
    _delay: float
    _counting_chunk: bool  # body bytes read count towards chunk_stats()["chunkBytesReceived"]
    _shaped: bool  # a media route: its body bytes are paced by the link's bandwidth (see _TokenBucket)
    _bucket: _TokenBucket | None  # this connection's, made on its first shaped byte
    _via_gateway: bool  # this request came through /ex/jira/{cloudId}/ (scoped tokens work only there)
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's, untyped in typeshed

    # ----------------------------------------------------------------------------------------- plumbing

    def setup(self) -> None:
        super().setup()
        self.sim = cast(_Server, self.server).sim
        self.sim._track(self.connection, add=True)
        self._shaped = False
        self._bucket = None
        with contextlib.suppress(OSError):  # small answers must not wait for delayed ACKs (Nagle)
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.sim._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def parse_request(self) -> bool:
        self._expect_continue = False
        self._continue_sent = False
        return super().parse_request()

    def handle_expect_100(self) -> bool:
        # Defer "100 Continue" until the request's headers have been checked, so that a rejected upload is
        # answered before its body is sent (curl waits for it; requests never asks).
        self._expect_continue = True
        return True

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _send_continue(self) -> None:
        if self._expect_continue and not self._continue_sent:
            self._continue_sent = True
            self.send_response_only(100)
            self.end_headers()

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None, *, close: bool = False) -> None:
        if self._delay > 0:
            time.sleep(self._delay)
            self._delay = 0
        if not self._body_done and not close:
            # An unread body: read and drop a small one, else answer and close (see _linger).
            small = self._body_remaining is not None and self._body_remaining <= DRAIN_KEEPALIVE_LIMIT
            if small and (self._continue_sent or not self._expect_continue):
                try:
                    self._discard_body()
                except (_ClientGone, OSError):
                    close = True
            else:
                close = True
        body = b"" if status == 204 else json.dumps(payload).encode("utf-8")  # 204 No Content has no body
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self._record(status)  # before the answer leaves, so a client that got it also sees the record
        try:
            self._headers_buffer.append(b"\r\n")
            self._headers_buffer.append(body)
            self.flush_headers()  # status line, headers and body in one write
        except OSError:
            self.close_connection = True
            return
        if close and not self._body_done:
            self._linger()

    def _linger(self) -> None:
        """Answer first, then keep reading (and dropping) whatever body the client still sends.

        ``requests`` writes the whole body before it reads any answer. Closing a socket that still holds
        unread bytes makes the kernel send an RST, and the client, still writing, gets EPIPE/ECONNRESET.
        Measured with requests 2.34 / urllib3 2.8 on Linux: a 401 answered early on a 32 MiB body is seen as
        a 401 even without this drain, because urllib3 2.x swallows EPIPE/ECONNRESET while sending and then
        reads the answer already queued; urllib3 1.x and other clients raise ``ConnectionError`` instead,
        and an RST that arrives before the answer is read may discard it. Draining until the client closes
        (it does once it has read the answer, which says ``Connection: close``) makes the status reliable.
        A curl upload that sent ``Expect: 100-continue`` gets the answer without any body being sent.
        """
        conn = self.connection
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)
        scratch = memoryview(bytearray(READ_CHUNK))
        left = self._body_remaining  # None: unknown length, read until the client closes
        deadline = time.monotonic() + LINGER_SECONDS
        try:
            conn.settimeout(5.0)
            while time.monotonic() < deadline and left != 0:
                got = self.rfile.readinto1(scratch if left is None else scratch[: min(left, READ_CHUNK)])
                if not got:
                    break
                self._body_moved(got)
                if left is not None:
                    left -= got
        except OSError:
            pass
        self._body_done = True

    def _abort(self) -> None:
        """Close the connection abruptly (RST), without answering."""
        self._record(None)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _read_into(self, view: memoryview) -> int:
        """Read up to len(view) body bytes (bounded by Content-Length); 0 once the body is complete."""
        remaining = self._body_remaining
        if remaining is None:
            raise AssertionError("no Content-Length")
        want = min(len(view), remaining)
        if want == 0:
            self._body_done = True
            return 0
        try:
            got = self.rfile.readinto(view[:want])
        except OSError as exc:
            raise _ClientGone from exc
        if not got:
            raise _ClientGone
        self._body_moved(got)
        self._body_remaining = remaining - got
        if self._body_remaining == 0:
            self._body_done = True
        return got

    def _body_moved(self, count: int) -> None:
        """``count`` body bytes were read or written: counted (chunks), and paced on a shaped link."""
        if self._counting_chunk and count:
            self.sim._count_chunk_bytes(count)
        rate = self.sim.link_mibps
        if self._shaped and rate and count:
            if self._bucket is None or self._bucket.rate != rate * MiB:
                self._bucket = _TokenBucket(rate * MiB)
            self._bucket.take(count)

    def _discard_body(self) -> None:
        scratch = memoryview(bytearray(min(READ_CHUNK, max(self._body_remaining or 0, 1))))
        while self._read_into(scratch):
            pass

    def _read_small_body(self) -> bytes:
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise _HttpError(501, {"errorMessages": [f"Transfer-Encoding {te!r} is not supported"]})
            self._send_continue()
            return self._read_chunked_body()
        length = self._content_length()
        if length is None or length == 0:
            self._body_done = True
            return b""
        if length > SMALL_BODY_LIMIT:
            raise _error(413, "Request body too large")
        self._send_continue()
        out = bytearray(length)
        view = memoryview(out)
        got = 0
        while got < length:
            got += self._read_into(view[got:])
        return bytes(out)

    def _read_chunked_body(self) -> bytes:
        out = bytearray()
        try:
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise _ClientGone
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    break
                if len(out) + size > SMALL_BODY_LIMIT:
                    raise _error(413, "Request body too large")
                data = self.rfile.read(size + 2)
                if len(data) != size + 2:
                    raise _ClientGone
                out += data[:size]
        except ValueError as exc:
            raise _error(400, "Malformed chunked body") from exc
        except OSError as exc:
            raise _ClientGone from exc
        self._body_done = True
        return bytes(out)

    def _content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            value = int(raw.strip())
        except ValueError:
            value = -1
        if value < 0 or not raw.strip().isdigit():
            raise _error(400, "Invalid Content-Length")
        return value

    # ----------------------------------------------------------------------------------------- dispatch

    def _route(self, method: str, path: str) -> tuple[str, Callable[..., tuple[int, Any]], tuple[str, ...]] | None:
        sim = self.sim
        if cast(_Server, self.server).role == "media-download":
            return self._route_media_download(method, path)
        if path == "/_edge/tenant_info":
            return ("tenant-info", self._tenant_info, ()) if method == "GET" else None
        gateway = _GATEWAY_RE.match(path)
        if gateway:  # the same routes as the site's and api.atlassian.com's, for this site's cloud id only
            if unquote(gateway.group(1)) != sim.cloud_id:
                return None
            self._via_gateway, path = True, gateway.group(2)
        if path.startswith("/rest/api/3/"):
            return self._route_jira(method, path)
        if path == f"/media{sim.upload_path}":
            return ("upload", self._upload, ()) if method == "POST" else None
        match = _MEDIA_FILE_RE.match(path)
        if match and method == "GET":
            return "media-file-info", self._file_info, (unquote(match.group(1)),)
        if path.startswith("/media/"):
            return self._route_chunked(method, path) if sim.chunked_enabled else None
        if path == "/__sim/stats":
            return ("sim-stats", self._sim_stats, ()) if method == "GET" else None
        if path == "/__sim/requests":
            return ("sim-requests", self._sim_requests, ()) if method == "GET" else None
        if path == "/rest/servicedeskapi/assets/workspace":
            return ("workspace", self._workspace, ()) if method == "GET" else None
        match = _ASSETS_RE.match(path)
        if not match:
            return None
        workspace, rest = unquote(match.group(1)), match.group(2)
        if rest == "object/aql":
            return ("aql", self._aql, (workspace,)) if method == "POST" else None
        attachment = _ATTACHMENT_RE.match(rest)
        if attachment and method == "DELETE":
            return "delete", self._delete, (workspace, unquote(attachment.group(1)))
        obj = _OBJECT_ATTACH_RE.match(rest)
        if not obj:
            return None
        object_id = unquote(obj.group(1))
        if obj.group(2):
            return ("credentials", self._credentials, (workspace, object_id)) if method == "GET" else None
        if method == "GET":
            return "list", self._list, (workspace, object_id)
        if method == "POST":
            return "link", self._link, (workspace, object_id)
        return None

    def _route_jira(self, method: str, path: str) -> _Route | None:
        if method != "GET":
            return None
        match = _JIRA_ATTACHMENT_RE.match(path)
        if match:
            attachment_id = unquote(match.group(2))
            if match.group(1):
                return "jira-content", self._jira_content, (attachment_id,)
            return "jira-attachment", self._jira_attachment, (attachment_id,)
        match = _JIRA_ISSUE_RE.match(path)
        if match:
            return "jira-issue", self._jira_issue, (unquote(match.group(1)),)
        return None

    def _route_chunked(self, method: str, path: str) -> _Route | None:
        """Steps 11 to 14, the chunked upload (only while ``chunked_enabled``)."""
        if path == "/media/upload":
            return ("media-upload-create", self._create_upload, ()) if method == "POST" else None
        if path == "/media/file/upload":
            return ("media-file-create", self._create_file, ()) if method == "POST" else None
        match = _CHUNK_RE.match(path)
        if match:
            return ("media-chunk", self._put_chunk, (unquote(match.group(1)),)) if method == "PUT" else None
        match = _UPLOAD_CHUNKS_RE.match(path)
        if match:
            return ("media-append", self._append_chunks, (unquote(match.group(1)),)) if method == "PUT" else None
        return None

    def _route_media_download(self, method: str, path: str) -> _Route | None:
        match = _MEDIA_DOWNLOAD_RE.match(path)
        if not match or method != "GET":
            return None
        return "media-download", self._media_download, (unquote(match.group(1)),)

    def _record(self, status: int | None) -> None:
        if self._recorded is None:
            return
        method, path, query, headers = self._recorded
        self._recorded = None
        self.sim._record(SimRequest(method, path, query, headers, status, time.monotonic(), self._started))

    def _dispatch(self) -> None:
        self._started = time.monotonic()
        self._delay = 0
        self._counting_chunk = False
        self._shaped = False
        self._via_gateway = False
        self._body_done = False
        try:
            self._body_remaining = self._content_length()
        except _HttpError:
            self._body_remaining = None
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        self._recorded = (self.command, url.path, _recorded_query(query), self._recorded_headers(redact=True))
        try:
            self._serve(url.path, query)
        except _HttpError as exc:
            self._reply(exc.status, exc.payload, exc.headers)
        except _ClientGone:
            self._abort()
        finally:
            self._record(None)  # only if nothing was answered

    def _serve(self, path: str, query: dict[str, str]) -> None:
        route = self._route(self.command, path)
        if route is None:
            raise _error(404, f"No route for {self.command} {path}")
        step, handler, params = route
        try:
            self._serve_step(step, handler, params, query)
        except _HttpError as exc:
            exc.payload = _error_shape(step, exc.payload)
            raise

    def _serve_step(
        self, step: str, handler: Callable[..., tuple[int, Any]], params: tuple[str, ...], query: dict[str, str]
    ) -> None:
        self._counting_chunk = step == "media-chunk"
        self._shaped = step in _MEDIA_STEPS
        if self._shaped:  # the round trip, paid before the answer as a long path would make the client wait
            self._delay = self.sim.rtt_ms / 1000
        fault = self.sim._take_fault(step) if step in STEPS else None
        if step in _STREAMED_STEPS:
            self._serve_streamed(handler, params, query, fault)
            return
        if step not in _BODY_STEPS:
            body = self._read_small_body()
        if fault is not None:
            self._delay += fault.delay_seconds
            if not fault.after_success:
                if fault.drop_after_bytes is not None:
                    self._drop(fault.drop_after_bytes if step in _BODY_STEPS else 0)
                    return
                if fault.status is not None:
                    self._reply_fault(fault, step, close=step in _BODY_STEPS)
                    return
        if step in _BODY_STEPS:
            status, payload = handler(*params, query=query)
        else:
            status, payload = handler(*params, query=query, body=body)
        if fault is not None and fault.after_success:
            if fault.drop_after_bytes is not None:
                if self._delay > 0:
                    time.sleep(self._delay)
                self._abort()
                return
            if fault.status is not None:
                self._reply_fault(fault, step)
                return
        self._reply(status, payload)

    def _serve_streamed(
        self,
        handler: Callable[..., tuple[int, Any]],
        params: tuple[str, ...],
        query: dict[str, str],
        fault: Fault | None,
    ) -> None:
        """The download steps: faults as in _serve, except that ``drop_after_bytes`` cuts the answer's body."""
        body = self._read_small_body()
        cut: int | None = None
        if fault is not None:
            self._delay += fault.delay_seconds
            cut = fault.drop_after_bytes
            if cut is None and fault.status is not None:
                self._reply_fault(fault, "")
                return
        try:
            status, answer = handler(*params, query=query, body=body)
        except _HttpError:
            if cut is None:
                raise
            self._drop(0)
            return
        self._reply_body(status, cast(_Body, answer), cut=cut)

    def _reply_body(self, status: int, answer: _Body, *, cut: int | None = None) -> None:
        """Answer raw bytes, written from the memoryview in chunks; ``cut``: close after that many body bytes.

        A cut body ends with a FIN rather than an RST, so that exactly ``cut`` bytes reach the client (an RST
        would discard whatever still sits in the send buffer), short of the announced ``Content-Length``.
        """
        if self._delay > 0:
            time.sleep(self._delay)
            self._delay = 0
        data = answer.data
        if cut is not None and not len(data):
            self._abort()
            return
        self.send_response(status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self._record(None if cut is not None else status)  # a cut body counts as a dropped connection
        limit = len(data) if cut is None else min(cut, len(data))
        sent = 0
        try:
            self.end_headers()
            while sent < limit:
                size = min(WRITE_CHUNK, limit - sent)
                self.wfile.write(data[sent : sent + size])
                self._body_moved(size)
                sent += size
        except OSError:
            self.close_connection = True
            return
        if cut is not None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)

    def _reply_fault(self, fault: Fault, step: str, *, close: bool = False) -> None:
        status = cast(int, fault.status)
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = _format_retry_after(fault.retry_after)
        payload = _error_shape(step, {"errorMessages": [f"Simulated fault: HTTP {status}"], "errors": {}})
        self._reply(status, payload, headers, close=close)

    def _drop(self, after_bytes: int) -> None:
        if self._delay > 0:
            time.sleep(self._delay)
        if not self._body_done and after_bytes > 0:
            self._send_continue()
            scratch = memoryview(bytearray(min(READ_CHUNK, after_bytes)))
            left = after_bytes
            with contextlib.suppress(_ClientGone, OSError):
                while left > 0:
                    if self._body_remaining is None:
                        got = self.rfile.readinto1(scratch[: min(left, len(scratch))])
                        self._body_moved(got)
                    else:
                        got = self._read_into(scratch[: min(left, len(scratch))])
                    if not got:
                        break
                    left -= got
        self._abort()

    def _recorded_headers(self, *, redact: bool) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.headers.items():
            if name.lower() == "authorization":
                if not redact:
                    continue
                value = value.strip().split(" ", 1)[0]
            out[name] = f"{out[name]}, {value}" if name in out else value
        return out

    # ----------------------------------------------------------------------------------------- auth

    def _require_basic(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            email, sep, token = decoded.partition(":")
            scope_ok = self._via_gateway or not self.sim.scoped_tokens  # a scoped token: the gateway only
            if sep and self.sim._check_basic(email, token) and scope_ok:
                return
        raise _HttpError(401, _BASIC_401, {"WWW-Authenticate": 'Basic realm="Atlassian"'})

    def _require_bearer(self) -> dict[str, Any]:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _error(401, "Missing Bearer token")
        return self.sim._verify_jwt(token.strip())

    def _require_media_auth(self) -> dict[str, Any]:
        """The media service's check on every upload call: a valid Bearer JWT and its client in X-Client-Id."""
        claims = self._require_bearer()
        client_id = self.headers.get("X-Client-Id")
        if client_id != claims.get("clientId"):
            raise _error(403, "X-Client-Id does not match the token's client")
        return claims

    def _require_workspace(self, workspace: str) -> None:
        if workspace != self.sim.workspace_id:
            raise _error(404, f"TCS 404 workspace not found: {workspace}")

    def _require_object(self, object_id: str) -> None:
        if not self.sim._has_object(object_id):
            raise _error(404, f"TCS 404: no object found with id {object_id}")

    # ----------------------------------------------------------------------------------------- steps

    def _credentials(self, workspace: str, object_id: str, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._require_basic()
        self._require_workspace(workspace)
        self._require_object(object_id)
        sim = self.sim
        return 200, {
            "clientId": sim.client_id,
            "mediaBaseUrl": sim.media_base_url_override or sim.media_base_url,
            "mediaJwtToken": sim._issue_jwt(object_id),
        }

    def _list(self, workspace: str, object_id: str, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._require_basic()
        self._require_workspace(workspace)
        self._require_object(object_id)
        beans = [self.sim._bean(a) for a in self.sim.attachments(object_id)]
        page_size = self.sim.list_page_size
        if page_size is None:
            return 200, beans
        start = int(query.get("startAt", "0"))
        size = min(page_size, int(query.get("maxResults", str(page_size))))
        page = beans[start : start + size]
        return 200, {"startAt": start, "maxResults": size, "isLast": start + len(page) >= len(beans), "values": page}

    def _tenant_info(self, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """No authentication: the site's cloud id is public."""
        return 200, {"cloudId": self.sim.cloud_id}

    def _workspace(self, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._require_basic()
        return 200, {
            "size": 1,
            "start": 0,
            "limit": 50,
            "isLastPage": True,
            "values": [{"workspaceId": self.sim.workspace_id}],
        }

    def _json_body(self, body: bytes) -> Any:
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise _error(415, f"Content-Type must be application/json, not {ctype or 'missing'}")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error(400, f"Request body is not valid JSON: {exc}") from exc

    def _aql(self, workspace: str, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._require_basic()
        self._require_workspace(workspace)
        data = self._json_body(body)
        ql = data.get("qlQuery") if isinstance(data, dict) else None
        if not isinstance(ql, str):
            raise _error(400, "qlQuery: a string is required", {"qlQuery": "required"})
        try:
            start_at = int(query.get("startAt", "0"))
            max_results = int(query.get("maxResults", "25"))
        except ValueError as exc:
            raise _error(400, "startAt and maxResults must be integers") from exc
        if start_at < 0 or max_results < 0:
            raise _error(400, "startAt and maxResults must not be negative")
        found = self._aql_objects(ql)
        page = found[start_at : start_at + max_results]
        # includeAttributes defaults to true: every object comes with its attributes unless the caller says false.
        with_attributes = query.get("includeAttributes", "true").strip().lower() != "false"
        return 200, {
            "startAt": start_at,
            "maxResults": max_results,
            "total": len(found),
            "isLast": start_at + len(page) >= len(found),
            "values": [
                {
                    "workspaceId": self.sim.workspace_id,
                    "globalId": f"{self.sim.workspace_id}:{o.object_id}",
                    "id": o.object_id,
                    "label": o.label,
                    "objectKey": o.object_key,
                    **({"attributes": self.sim._object_attributes(o)} if with_attributes else {}),
                }
                for o in page
            ],
        }

    def _aql_objects(self, ql: str) -> list[_SimObject]:
        """``Key = "X"``, or ``Key IN ("X", "Y")`` / ``objectId IN (1, 2)``, in the order the objects were added."""
        match = _AQL_RE.match(ql)
        if match:
            key = match.group(1) if match.group(1) is not None else match.group(2)
            return self.sim._objects_by_key(re.sub(r"\\(.)", r"\1", key))
        listed = _AQL_IN_RE.match(ql)
        items = (
            [m.group(1) if m.group(1) is not None else m.group(2) for m in _AQL_ITEM_RE.finditer(listed.group(2))]
            if listed
            else []
        )
        if not listed or not items:
            raise _error(400, f"AQL could not be parsed by the simulator: {ql!r}")
        wanted = {re.sub(r"\\(.)", r"\1", item).lower() for item in items}
        by_id = listed.group(1).lower() == "objectid"
        with self.sim._lock:
            objects = list(self.sim._objects.values())
        return [o for o in objects if (o.object_id if by_id else (o.object_key or "").lower()) in wanted]

    def _link(self, workspace: str, object_id: str, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._require_basic()
        self._require_workspace(workspace)
        self._require_object(object_id)
        data = self._json_body(body)
        items = data.get("attachments") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise _error(400, "attachments: a non-empty list is required", {"attachments": "required"})
        wanted: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise _error(400, f"attachments[{index}] must be an object")
            for name, kind in (
                ("contentType", str),
                ("filename", str),
                ("mediaId", str),
                ("size", int),
                ("comment", str),
            ):
                field = f"attachments[{index}].{name}"
                if name not in item:
                    raise _error(400, f"{field} is required", {field: "required"})
                value = item[name]
                if not isinstance(value, kind) or isinstance(value, bool):
                    raise _error(400, f"{field} must be a {kind.__name__}", {field: "wrong type"})
            wanted.append(item)
        beans = self.sim._link(object_id, wanted)
        return 201, beans

    def _delete(self, workspace: str, attachment_id: str, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """``DELETE .../v1/attachments/{id}`` (undocumented on Cloud; what ``doctor --live`` cleans up with)."""
        self._require_basic()
        self._require_workspace(workspace)
        if not self.sim._delete_attachment(attachment_id):
            raise _error(404, f"No attachment found with id {attachment_id}")
        return 204, None

    def _jira_attachment(self, attachment_id: str, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._require_basic()
        attachment, _data = self.sim._find_jira_attachment(attachment_id)
        return 200, self.sim._jira_metadata(attachment)

    def _jira_issue(self, issue_id_or_key: str, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        self._require_basic()
        sim = self.sim
        issue = sim._find_issue(issue_id_or_key)
        fields: dict[str, Any] = {}
        if _wants_field(query.get("fields"), "attachment"):
            fields["attachment"] = [sim._jira_bean(a) for a in sim.jira_attachments(issue.key)]
        return 200, {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue.id,
            "self": f"{sim.base_url}/rest/api/3/issue/{issue.id}",
            "key": issue.key,
            "fields": fields,
        }

    def _jira_content(self, attachment_id: str, *, query: dict[str, str], body: bytes) -> tuple[int, _Body]:
        self._require_basic()
        attachment, data = self.sim._find_jira_attachment(attachment_id)
        if query.get("redirect", "").strip().lower() == "false" and not self.sim.always_redirect_content:
            return self._content_answer(attachment, data)
        return 303, _Body(memoryview(b""), {"Location": self.sim._download_url(attachment)})

    def _media_download(self, file_id: str, *, query: dict[str, str], body: bytes) -> tuple[int, _Body]:
        if "Authorization" in self.headers:
            raise _error(401, "Authorization is not accepted on a download URL; its token authorizes it")
        token = query.get("token", "")
        if not token:
            raise _error(401, "The token query parameter is required")
        claims = self.sim._verify_jwt(token)
        access = claims.get("access")
        granted = access.get(f"urn:filestore:file:{file_id}") if isinstance(access, dict) else None
        if not isinstance(granted, list) or "read" not in granted:
            raise _error(403, "The token does not grant read access to this file")
        if query.get("client") != claims.get("clientId"):
            raise _error(403, "The client query parameter does not match the token's client")
        attachment, data = self.sim._find_media_file(file_id)
        return self._content_answer(attachment, data)

    def _content_answer(self, attachment: SimJiraAttachment, data: bytes) -> tuple[int, _Body]:
        if self.sim.negotiate_content and not _acceptable(self.headers.get("Accept"), attachment.mime_type):
            raise _error(406, "Not Acceptable: the attachment's content is not of a type the Accept header admits")
        view = memoryview(data)
        headers = {
            "Content-Type": attachment.mime_type,
            "Content-Disposition": _content_disposition(attachment.filename),
            "Accept-Ranges": "bytes",
        }
        span = _byte_range(self.headers.get("Range"), len(view))
        if span is None:
            return 200, _Body(view, headers)
        start, stop = span
        start -= start % self.sim.range_align  # a site (or CDN) that answers from a block boundary before it
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(view)}"
        return 206, _Body(view[start:stop], headers)

    def _upload(self, query: dict[str, str]) -> tuple[int, Any]:
        """Step 2: ``/file`` takes a one-part multipart body; ``/file/binary`` takes the raw bytes (Atlassian's
        ``createFileFromBinary``, ATLASSIAN_FACTS.md: multipart there is stored with its envelope)."""
        claims = self._require_media_auth()
        if self.headers.get("Transfer-Encoding") is not None:
            raise _error(411, "Transfer-Encoding is not accepted; send a Content-Length")
        if self._body_remaining is None:
            raise _error(411, "Content-Length is required")
        if self.sim.upload_path == "/file/binary":
            return self._upload_raw(claims, query)
        ctype, params = _header_params(self.headers.get("Content-Type") or "")
        if ctype != "multipart/form-data":
            raise _error(415, f"Content-Type must be multipart/form-data, not {ctype or 'missing'}")
        boundary = params.get("boundary", "")
        if not boundary or len(boundary) > 70 or not boundary.isascii():
            raise _error(400, "multipart/form-data needs a boundary of 1 to 70 ASCII characters")
        name = query.get("name")
        if not name:
            raise _error(400, "The name query parameter is required")

        self._send_continue()
        try:
            part, size, digest = self._stream_one_part(boundary.encode("ascii"))
        except _HttpError:
            if not self._body_done:
                self._discard_body()
            raise
        _disposition, dparams = part
        content_type = dparams.pop("\0content-type", None)
        return self._stored(
            claims,
            name=name,
            content_type=content_type,
            size=size,
            sha256=digest,
            part_filename=dparams.get("filename"),
            part_filename_star=dparams.get("filename*"),
        )

    def _upload_raw(self, claims: dict[str, Any], query: dict[str, str]) -> tuple[int, Any]:
        """``/file/binary``: the body is the file, of the type ``Content-Type`` says, named by ``?name=``."""
        name = query.get("name")
        if not name:
            self._discard_body()
            raise _error(400, "The name query parameter is required")
        self._send_continue()
        hasher = hashlib.sha256()
        size = 0
        view = memoryview(bytearray(READ_CHUNK))
        while got := self._read_into(view):
            hasher.update(view[:got])
            size += got
        content_type = (self.headers.get("Content-Type") or "").strip() or None
        return self._stored(claims, name=name, content_type=content_type, size=size, sha256=hasher.hexdigest())

    def _stored(
        self,
        claims: dict[str, Any],
        *,
        name: str,
        content_type: str | None,
        size: int,
        sha256: str,
        part_filename: str | None = None,
        part_filename_star: str | None = None,
        chunked_upload_id: str | None = None,
    ) -> tuple[int, Any]:
        """Record an uploaded media file and answer as ``upload_reply`` says."""
        sim = self.sim
        if sim.upload_reply == "createFile-empty":
            size, sha256 = 0, hashlib.sha256(b"").hexdigest()
        media_id = str(uuid.uuid4())
        sim._add_upload(
            SimUpload(
                media_id=media_id,
                object_id=str(claims["objectId"]),
                name=name,
                part_filename=part_filename,
                part_filename_star=part_filename_star,
                content_type=content_type,
                size=size,
                sha256=sha256,
                headers=self._recorded_headers(redact=False),
                chunked_upload_id=chunked_upload_id,
            )
        )
        if sim.upload_reply != "full":  # Atlassian's createFile: {data: {id, createdAt}}, no size
            return 201, {"data": {"id": media_id, "createdAt": int(time.time() * 1000)}}
        return 201, {"data": sim._media_file(media_id, processing_status="pending")}

    def _file_info(self, media_id: str, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """``GET /media/file/{id}``: what the service stored (the token must be issued for the file's object)."""
        claims = self._require_media_auth()
        upload = self.sim.uploads.get(media_id)
        if upload is None or upload.object_id != str(claims["objectId"]):
            raise _error(404, f"No file found with id {media_id}")
        return 200, {"data": self.sim._media_file(media_id, processing_status=self.sim.processing_status)}

    # ----------------------------------------------------------------------------------------- chunked upload

    def _create_upload(self, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """Step 11: ``createUpTo`` new uploads (the web client asks for one), hashed with SHA-256."""
        claims = self._require_media_auth()
        raw = query.get("createUpTo", "1")
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise _error(400, f"createUpTo must be an integer from 1 to 100, not {raw!r}")
        algorithm = query.get("hashAlgorithm", "sha256")
        if algorithm != "sha256":
            raise _error(400, f"hashAlgorithm {algorithm!r} is not supported; use sha256")
        uploads = [self.sim._new_chunked_upload(str(claims["clientId"])) for _ in range(int(raw))]
        return 201, {"data": [{"id": u.id, "created": u.created_ms, "expires": u.expires_ms} for u in uploads]}

    def _put_chunk(self, etag: str, *, query: dict[str, str]) -> tuple[int, Any]:
        """Step 12: read the chunk whole, then check that its SHA-256 and length are the etag's."""
        claims = self._require_media_auth()
        match = _ETAG_RE.match(etag)
        if not match:
            raise _error(400, f"Malformed chunk etag {etag[:100]!r}; expected sha256-<hex>-<size>")
        upload = self.sim._find_chunked_upload(query.get("uploadId", ""), str(claims["clientId"]))
        part = query.get("partNumber", "")
        if not part.isdigit() or int(part) < 1:
            raise _error(400, f"partNumber must be a positive integer, not {part!r}")
        if self.headers.get("Transfer-Encoding") is not None:
            raise _error(411, "Transfer-Encoding is not accepted; send a Content-Length")
        length = self._body_remaining
        if length is None:
            raise _error(411, "Content-Length is required")
        if length > MAX_CHUNK_BYTES:
            raise _error(413, f"A chunk may hold at most {MAX_CHUNK_BYTES} bytes")
        self._send_continue()
        data = bytearray(length)
        view = memoryview(data)
        got = 0
        while got < length:
            got += self._read_into(view[got:])
        digest = hashlib.sha256(data).hexdigest()
        if digest != match.group(1) or length != int(match.group(2)):
            raise _error(400, f"The chunk's SHA-256 and size (sha256-{digest}-{length}) do not match its etag")
        self.sim._store_chunk(etag, upload.id, int(part), view.toreadonly())
        return 201, {}

    def _append_chunks(self, upload_id: str, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """Step 13: append chunks at ``offset``, which must be the number already appended."""
        claims = self._require_media_auth()
        upload = self.sim._find_chunked_upload(upload_id, str(claims["clientId"]))
        data = self._json_body(body)
        if not isinstance(data, dict):
            raise _error(400, "The body must be a JSON object")
        etags, offset = data.get("chunks"), data.get("offset")
        if not isinstance(etags, list) or not all(isinstance(e, str) for e in etags):
            raise _error(400, "chunks: a list of etags is required", {"chunks": "required"})
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise _error(400, "offset: a non-negative integer is required", {"offset": "required"})
        for index, etag in enumerate(etags):
            if not _ETAG_RE.match(etag):
                raise _error(400, f"chunks[{index}] is not a chunk etag: {etag[:100]!r}")
        self.sim._append_chunks(upload, etags, offset)
        return 200, {}

    def _create_file(self, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """Step 14: a media file of the upload's appended chunks, linkable as one from the single POST."""
        claims = self._require_media_auth()
        data = self._json_body(body)
        if not isinstance(data, dict):
            raise _error(400, "The body must be a JSON object")
        upload_id, name, mime_type = data.get("uploadId"), data.get("name"), data.get("mimeType")
        conditions = data.get("conditions")
        size = conditions.get("size") if isinstance(conditions, dict) else None
        for field, value, ok in (
            ("uploadId", upload_id, isinstance(upload_id, str) and bool(upload_id)),
            ("name", name, isinstance(name, str) and bool(name)),
            ("mimeType", mime_type, isinstance(mime_type, str) and bool(mime_type)),
            ("conditions.size", size, isinstance(size, int) and not isinstance(size, bool) and size >= 0),
        ):
            if not ok:
                raise _error(400, f"{field} is required and must be valid, not {value!r}", {field: "invalid"})
        upload = self.sim._find_chunked_upload(cast(str, upload_id), str(claims["clientId"]))
        appended_size, digest = self.sim._assembled(upload)
        if appended_size != size:
            raise _error(400, f"conditions.size {size} does not match the {appended_size} bytes appended")
        return self._stored(
            claims,
            name=cast(str, name),
            content_type=cast(str, mime_type),
            size=appended_size,
            sha256=digest,
            chunked_upload_id=upload.id,
        )

    def _sim_stats(self, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """The simulator's counters, for a bench that runs it in its own process (not an Atlassian API)."""
        return 200, self.sim.chunk_stats()

    def _sim_requests(self, *, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """The requests recorded from ``?since=N`` on (method, path, status, ``started`` and ``at`` on this host's
        monotonic clock), for a bench that runs the simulator in its own process (not an Atlassian API)."""
        since = int(query.get("since", "0"))
        keep = ("method", "path", "status", "started", "at")
        return 200, [{name: getattr(r, name) for name in keep} for r in self.sim.requests[since:]]

    def _stream_one_part(self, boundary: bytes) -> tuple[tuple[str, dict[str, str]], int, str]:
        """Parse a body of exactly one part named ``file`` without holding it: returns headers, size, sha256.

        The only per-chunk work is one ``bytearray.find`` for the delimiter and one sha256 update over a
        memoryview; the last ``len(delimiter) - 1`` bytes of each chunk are carried over so that a delimiter
        split across two reads is still found.
        """
        dash = b"--" + boundary
        delim = b"\r\n" + dash
        buf = bytearray(HEAD_LIMIT + READ_CHUNK)
        view = memoryview(buf)
        n = 0
        # Phase 1: preamble, first boundary, the part's headers.
        while True:
            if n >= len(dash) + 2 or self._body_remaining == 0:
                parsed = self._parse_head(buf, n, dash, delim)
                if parsed is not None:
                    part, body_start = parsed
                    break
            if self._body_remaining == 0:
                raise _error(400, "Malformed multipart body: no part found")
            if n >= HEAD_LIMIT:
                raise _error(400, "Malformed multipart body: no boundary or part headers too large")
            n += self._read_into(view[n:HEAD_LIMIT])

        # Phase 2: the part's content, up to the next delimiter.
        carried = n - body_start
        buf[:carried] = bytes(view[body_start:n])
        n = carried
        keep = len(delim) - 1
        hasher = hashlib.sha256()
        size = 0
        while True:
            found = buf.find(delim, 0, n)
            if found >= 0:
                hasher.update(view[:found])
                size += found
                after = found + len(delim)
                break
            if self._body_remaining == 0:
                raise _error(400, "Malformed multipart body: the closing boundary is missing")
            if n > keep:
                safe = n - keep
                hasher.update(view[:safe])
                size += safe
                buf[:keep] = bytes(view[safe:n])
                n = keep
            n += self._read_into(view[n : n + READ_CHUNK])

        # Phase 3: "--" closes the body; anything else starts another part.
        while n - after < 2 and self._body_remaining:
            n += self._read_into(view[n : after + 2])
        if bytes(view[after : after + 2]) != b"--":
            raise _error(400, "Exactly one multipart part (named 'file') is expected")
        self._discard_body()  # epilogue, if any
        return part, size, hasher.hexdigest()

    @staticmethod
    def _parse_head(buf: bytearray, n: int, dash: bytes, delim: bytes) -> tuple[tuple[str, dict[str, str]], int] | None:
        """Find the first part's headers in buf[:n]; None when more bytes are needed."""
        if buf.startswith(dash):
            pos = len(dash)
        else:
            found = buf.find(delim, 0, n)
            if found < 0:
                return None
            pos = found + len(delim)
        if n - pos < 2:
            return None
        if buf[pos : pos + 2] == b"--":
            raise _error(400, "Malformed multipart body: it has no part")
        while pos < n and buf[pos] in (0x20, 0x09):
            pos += 1
        if n - pos < 2:
            return None
        if buf[pos : pos + 2] != b"\r\n":
            raise _error(400, "Malformed multipart body: bad boundary line")
        start = pos + 2
        if buf[start : start + 2] == b"\r\n":
            end, body_start = start, start + 2
        else:
            end = buf.find(b"\r\n\r\n", start, n)
            if end < 0:
                return None
            body_start = end + 4
        raw = bytes(buf[start:end])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        headers: dict[str, str] = {}
        for line in text.split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep:
                if line.strip():
                    raise _error(400, f"Malformed part header: {line[:80]!r}")
                continue
            headers[name.strip().lower()] = value.strip()
        disposition, params = _header_params(headers.get("content-disposition", ""))
        if disposition != "form-data":
            raise _error(400, "The part needs Content-Disposition: form-data")
        if params.get("name") != "file":
            raise _error(400, f"The part must be named 'file', not {params.get('name')!r}")
        if "filename" not in params and "filename*" not in params:
            raise _error(400, "The 'file' part needs a filename")
        if "content-type" in headers:
            params["\0content-type"] = headers["content-type"]
        return (disposition, params), body_start


# --------------------------------------------------------------------------------------------- simulator


class AtlassianSimulator:
    """The Assets attachment APIs, media uploads and the Jira site on one port; media downloads on another."""

    def __init__(
        self,
        email: str = "bot@example.com",
        api_token: str = "sim-api-token",  # noqa: S107 - a made-up local credential
        workspace_id: str = "sim-workspace",
        host: str = "127.0.0.1",
        port: int = 0,
        jwt_ttl_seconds: float = 900,
        upload_path: str = "/file",
    ) -> None:
        if not upload_path.startswith("/"):
            raise ValueError("upload_path must start with '/'")
        self.email = email
        self._api_token = api_token
        self.workspace_id = workspace_id
        self.host = host
        self.port = port
        self.jwt_ttl_seconds = jwt_ttl_seconds
        self.upload_path = upload_path
        self.client_id = str(uuid.uuid4())
        # When set, step 1 (credentials) answers with this mediaBaseUrl instead of the simulator's own
        # (tests of a hostile or misconfigured media host); None restores the default.
        self.media_base_url_override: str | None = None
        # When set, the attachment list answers in pages of at most this many ({"values", "isLast", ...}, following
        # startAt/maxResults) instead of one array.
        self.list_page_size: int | None = None
        # Rate limiting as Atlassian does it: this fraction of requests (of any step without a queued fault) is
        # answered 429 with Retry-After: throttle_retry_after seconds. 0 turns it off.
        self.throttle_fraction = 0.0
        self.throttle_retry_after = 1.0
        self._chance = random.Random(7)  # chaos, not cryptography
        self.issued_tokens: list[str] = []  # every media JWT handed out (for scans that nothing leaked)
        self._jwt_key = secrets.token_bytes(32)
        self._lock = threading.RLock()
        self._objects: dict[str, _SimObject] = {}
        self._uploads: dict[str, SimUpload] = {}
        self._attachments: list[SimAttachment] = []
        self._linked: set[str] = set()
        self._next_attachment_id = 1
        self._requests: list[SimRequest] = []
        self._faults: dict[str, deque[list[Any]]] = {step: deque() for step in STEPS}
        self._expired_jti: set[str] = set()
        self._issued_jti: set[str] = set()
        self._connections: set[socket.socket] = set()
        self._connections_accepted = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # The media download host's name (see the module docstring): None picks one at start(), which sets it.
        self.media_download_host: str | None = None
        # How long the token of a media download URL (the content endpoint's 303) is valid.
        self.download_token_ttl_seconds = 60.0
        # When set, the content endpoint answers 303 to the media download host even with redirect=false (a site
        # that ignores the flag), so that the redirect is exercised.
        self.always_redirect_content = False
        # The site's cloud id (its API gateway prefix /ex/jira/{cloud_id}/), and whether the API token is a scoped
        # one: then Basic auth works only through that prefix.
        self.cloud_id = str(uuid.uuid4())
        self.scoped_tokens = False
        self._issues: dict[str, _JiraIssue] = {}
        self._next_issue_id = 10000
        self._jira_attachments: dict[str, SimJiraAttachment] = {}
        self._jira_data: dict[str, bytes] = {}  # attachment id -> content, as given
        self._media_files: dict[str, str] = {}  # media file id -> attachment id
        self._next_jira_attachment_id = 10000
        self._jira_account_id = f"712020:{uuid.uuid4()}"
        self._download_jti: set[str] = set()
        self._download_server: _Server | None = None
        self._download_thread: threading.Thread | None = None
        # The chunked upload (steps 11 to 14); False plays a media service without it: those calls answer 404.
        self.chunked_enabled = True
        # What the upload calls (2 and 14) answer: "full" names the stored size; "createFile" answers
        # {"data": {"id", "createdAt"}} as Atlassian's own createFile does, without a size (ATLASSIAN_FACTS.md, "Media
        # service (single upload)"); "createFile-empty" also stores none of the bytes, as a service that took the
        # name and ignored the body would. The stored file is then known only through GET /media/file/{id}.
        self.upload_reply: Literal["full", "createFile", "createFile-empty"] = "full"
        # The processingStatus that GET /media/file/{id} reports for every file: "succeeded", "pending", "failed".
        self.processing_status: Literal["succeeded", "pending", "failed"] = "succeeded"
        # Jira Cloud answers 406 to ``Accept: application/json`` on attachment content (ATLASSIAN_FACTS.md, "Jira REST
        # v3"): the content steps negotiate on Accept as the site does. False accepts any Accept.
        self.negotiate_content = True
        # The content steps answer a Range from the block boundary at or before its start (1: exactly as asked), with a
        # Content-Range that says so, as a CDN serving aligned blocks may.
        self.range_align = 1
        self._chunked_uploads: dict[str, _ChunkedUpload] = {}
        self._chunks: dict[str, memoryview] = {}  # etag -> the chunk's bytes, held once
        self._chunk_holders: dict[str, set[tuple[str, int]]] = {}  # etag -> (upload id, part) sent, not yet appended
        self._chunk_bytes_received = 0
        self._chunks_accepted = 0
        self._chunk_bytes_accepted = 0
        # Network shaping of the media routes (see the module docstring): each connection's body bytes at most
        # this many MiB/s (None: as fast as loopback goes), and this many ms added before each answer.
        self.link_mibps: float | None = None
        self.rtt_ms = 0.0

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> AtlassianSimulator:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        try:
            self._start_media_download()
        except OSError:
            server.server_close()
            raise
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="atlassian-sim", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self._stop_media_download()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _start_media_download(self) -> None:
        """Serve the media download host on its own socket, under another host name than the API's."""
        if self.media_download_host is not None:
            candidates = [self.media_download_host]
        else:
            candidates = [host for host in _DOWNLOAD_HOSTS if host != self.host]
        failure: OSError | None = None
        for host in candidates:
            try:
                server = _Server((host, 0), self, role="media-download")
            except OSError as exc:  # 127.0.0.2 is not configured on macOS' loopback
                failure = exc
                continue
            self.media_download_host = host
            self._download_server = server
            self._download_thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="atlassian-sim-media", daemon=True
            )
            self._download_thread.start()
            return
        raise failure or OSError(f"no address to serve media downloads on: {candidates}")

    def _stop_media_download(self) -> None:
        server, self._download_server = self._download_server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._download_thread is not None:
            self._download_thread.join(timeout=5)
            self._download_thread = None

    def __enter__(self) -> AtlassianSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running; call start()")
        return f"http://{self.host}:{self.port}"

    @property
    def media_base_url(self) -> str:
        return self.base_url + "/media"

    @property
    def media_download_base_url(self) -> str:
        """Where the content endpoint's 303 points: ``http://{media_download_host}:{its port}/media``."""
        server = self._download_server
        if server is None:
            raise RuntimeError("the simulator is not running; call start()")
        return f"http://{self.media_download_host}:{server.server_address[1]}/media"

    @property
    def api_token(self) -> str:
        return self._api_token

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections have been accepted (keep-alive checks)."""
        with self._lock:
            return self._connections_accepted

    # ----------------------------------------------------------------------------------------- control

    def add_object(self, object_id: str, object_key: str | None = None, label: str | None = None) -> None:
        key = object_key if object_key is not None else f"SIM-{object_id}"
        with self._lock:
            self._objects[str(object_id)] = _SimObject(str(object_id), key, label if label is not None else key)

    def attachments(self, object_id: str) -> list[SimAttachment]:
        with self._lock:
            return [a for a in self._attachments if a.object_id == object_id]

    @property
    def uploads(self) -> dict[str, SimUpload]:
        with self._lock:
            return dict(self._uploads)

    @property
    def requests(self) -> list[SimRequest]:
        with self._lock:
            return list(self._requests)

    def inject(self, step: str, fault: Fault) -> None:
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; expected one of {sorted(STEPS)}")
        if fault.after_success and step != "link":
            raise ValueError("after_success applies to the link step only")
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults[step].append([fault, fault.times])

    def clear_faults(self) -> None:
        """Drop every fault not yet consumed (the outage is over)."""
        with self._lock:
            for queued in self._faults.values():
                queued.clear()

    def expire_tokens(self) -> None:
        with self._lock:
            self._expired_jti |= self._issued_jti

    def set_api_token(self, token: str) -> None:
        with self._lock:
            self._api_token = token

    def add_issue(self, issue_key: str) -> None:
        """A Jira issue (ids count from 10000); adding a key again changes nothing."""
        if not _ISSUE_KEY_RE.match(issue_key):
            raise ValueError(f"not a Jira issue key: {issue_key!r}")
        with self._lock:
            if issue_key not in self._issues:
                self._issues[issue_key] = _JiraIssue(str(self._next_issue_id), issue_key)
                self._next_issue_id += 1

    def add_jira_attachment(
        self, issue_key: str, filename: str, data: bytes, mime_type: str = "application/octet-stream"
    ) -> str:
        """Attach ``data`` (held as given, served from a memoryview) to the issue, adding the issue if new.

        Returns the attachment's id, a numeric string counting from "10000".
        """
        if not filename:
            raise ValueError("a filename is required")
        if not mime_type.isascii() or not mime_type.isprintable() or "/" not in mime_type:
            raise ValueError(f"not a MIME type: {mime_type!r}")
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self.add_issue(issue_key)
            attachment = SimJiraAttachment(
                id=str(self._next_jira_attachment_id),
                issue_key=issue_key,
                filename=filename,
                mime_type=mime_type,
                size=len(data),
                sha256=digest,
                media_file_id=str(uuid.uuid4()),
                created=_jira_time(),
            )
            self._next_jira_attachment_id += 1
            self._jira_attachments[attachment.id] = attachment
            self._jira_data[attachment.id] = data
            self._media_files[attachment.media_file_id] = attachment.id
        return attachment.id

    def jira_attachments(self, issue_key: str) -> list[SimJiraAttachment]:
        with self._lock:
            return [a for a in self._jira_attachments.values() if a.issue_key == issue_key.upper()]

    def delete_jira_attachment(self, attachment_id: str) -> None:
        """As a Jira user deletes one: its metadata, content and media download answer 404 from now on."""
        with self._lock:
            attachment = self._jira_attachments.pop(str(attachment_id), None)
            if attachment is None:
                raise KeyError(f"no Jira attachment {attachment_id}")
            del self._jira_data[attachment.id]
            del self._media_files[attachment.media_file_id]

    def chunk_stats(self) -> dict[str, int]:
        """The chunked upload's counters (see the module docstring); also ``GET /__sim/stats``."""
        with self._lock:
            return {
                "chunkBytesReceived": self._chunk_bytes_received,
                "chunksAccepted": self._chunks_accepted,
                "chunkBytesAccepted": self._chunk_bytes_accepted,
                "chunksHeld": len(self._chunks),
                "chunkBytesHeld": sum(len(data) for data in self._chunks.values()),
                "uploadsOpen": len(self._chunked_uploads),
            }

    def expire_chunked_uploads(self) -> None:
        """As the uploads' ``expires`` passing: every chunked upload so far answers 404 from now on."""
        with self._lock:
            gone = set(self._chunked_uploads)
            self._chunked_uploads.clear()
            for etag, holders in list(self._chunk_holders.items()):
                holders -= {h for h in holders if h[0] in gone}
                if not holders:
                    del self._chunk_holders[etag]
                    self._chunks.pop(etag, None)

    def expire_download_tokens(self) -> None:
        """Expire the media download tokens handed out so far (``expire_tokens`` expires them as well)."""
        with self._lock:
            self._expired_jti |= self._download_jti

    # ----------------------------------------------------------------------------------------- internals

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
                self._connections_accepted += 1
            else:
                self._connections.discard(conn)

    def _record(self, request: SimRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_fault(self, step: str) -> Fault | None:
        with self._lock:
            queue = self._faults[step]
            if not queue:
                if self.throttle_fraction and self._chance.random() < self.throttle_fraction:
                    return Fault(status=429, retry_after=self.throttle_retry_after)
                return None
            entry = queue[0]
            entry[1] -= 1
            if entry[1] <= 0:
                queue.popleft()
            return cast(Fault, entry[0])

    def _check_basic(self, email: str, token: str) -> bool:
        with self._lock:
            expected = self._api_token
        email_ok = hmac.compare_digest(email.encode(), self.email.encode())
        return hmac.compare_digest(token.encode(), expected.encode()) and email_ok

    def _has_object(self, object_id: str) -> bool:
        with self._lock:
            return object_id in self._objects

    def _object_attributes(self, obj: _SimObject) -> list[dict[str, Any]]:
        """An object's attributes as AQL answers them when includeAttributes is not false (Key and Name here)."""
        return [
            {
                "id": f"{obj.object_id}-{index}",
                "objectTypeAttributeId": str(index),
                "objectAttributeValues": [{"value": value, "displayValue": value, "searchValue": value}],
            }
            for index, value in enumerate((obj.object_key, obj.label), start=1)
        ]

    def _media_file(self, media_id: str, *, processing_status: str) -> dict[str, Any]:
        """A media file as the service describes it (``data`` of ``GET /file/{id}`` and of a full upload reply)."""
        upload = self.uploads[media_id]
        return {
            "id": media_id,
            "name": upload.name,
            "size": upload.size,
            "mimeType": upload.content_type or "application/octet-stream",
            "mediaType": "doc",
            "processingStatus": processing_status,
            "artifacts": {},
            "representations": {},
        }

    def _objects_by_key(self, key: str) -> list[_SimObject]:
        with self._lock:
            return [o for o in self._objects.values() if o.object_key.lower() == key.lower()]

    def _signed(self, claims: dict[str, Any]) -> str:
        """An HS256 JWT of ``claims``, signed with the simulator's key."""
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._jwt_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    def _claims(self, access: dict[str, list[str]], ttl_seconds: float, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.client_id,
            **extra,
            "clientId": self.client_id,
            "access": access,
            "iat": now,
            "nbf": now,
            "exp": int(now + ttl_seconds),
            "jti": str(uuid.uuid4()),
        }

    def _issue_jwt(self, object_id: str) -> str:
        claims = self._claims(
            {"urn:filestore:upload": ["create"]},
            self.jwt_ttl_seconds,
            sub=self.email,
            objectId=object_id,
            workspaceId=self.workspace_id,
        )
        jti = claims["jti"]
        token = self._signed(claims)
        with self._lock:
            self._issued_jti.add(jti)
            self.issued_tokens.append(token)
        return token

    def _verify_jwt(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise _error(401, "Malformed JWT")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, binascii.Error) as exc:
            raise _error(401, "Malformed JWT") from exc
        if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
            raise _error(401, "Unsupported JWT")
        expected = hmac.new(self._jwt_key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise _error(401, "JWT signature verification failed")
        exp = claims.get("exp")
        with self._lock:
            revoked = claims.get("jti") in self._expired_jti
        if revoked or not isinstance(exp, int | float) or time.time() >= exp:
            raise _error(401, "JWT token has expired")
        return claims

    def _issue_download_token(self, media_file_id: str) -> str:
        claims = self._claims({f"urn:filestore:file:{media_file_id}": ["read"]}, self.download_token_ttl_seconds)
        jti = claims["jti"]
        token = self._signed(claims)
        with self._lock:
            self._issued_jti.add(jti)
            self._download_jti.add(jti)
            self.issued_tokens.append(token)
        return token

    def _download_url(self, attachment: SimJiraAttachment) -> str:
        params = {
            "token": self._issue_download_token(attachment.media_file_id),
            "client": self.client_id,
            "dl": "true",
            "name": attachment.filename,
        }
        query = urlencode(params, quote_via=quote)
        return f"{self.media_download_base_url}/file/{attachment.media_file_id}/binary?{query}"

    def _find_jira_attachment(self, attachment_id: str) -> tuple[SimJiraAttachment, bytes]:
        with self._lock:
            attachment = self._jira_attachments.get(attachment_id)
            if attachment is None:
                raise _error(404, f"The attachment with id '{attachment_id}' does not exist")
            return attachment, self._jira_data[attachment.id]

    def _find_media_file(self, media_file_id: str) -> tuple[SimJiraAttachment, bytes]:
        with self._lock:
            attachment_id = self._media_files.get(media_file_id)
            if attachment_id is None:
                raise _error(404, f"File {media_file_id} not found")
            return self._jira_attachments[attachment_id], self._jira_data[attachment_id]

    def _find_issue(self, issue_id_or_key: str) -> _JiraIssue:
        with self._lock:
            for issue in self._issues.values():
                if issue_id_or_key in (issue.id, issue.key) or issue_id_or_key.upper() == issue.key:
                    return issue
        raise _error(404, "Issue does not exist or you do not have permission to see it.")

    def _jira_author(self) -> dict[str, Any]:
        return {
            "self": f"{self.base_url}/rest/api/3/user?accountId={self._jira_account_id}",
            "accountId": self._jira_account_id,
            "displayName": "Simulator Bot",
            "active": True,
            "timeZone": "Etc/UTC",
            "accountType": "atlassian",
        }

    def _jira_bean(self, attachment: SimJiraAttachment) -> dict[str, Any]:
        """An attachment as the issue's ``attachment`` field lists it (``id`` a string)."""
        base = self.base_url
        bean: dict[str, Any] = {
            "self": f"{base}/rest/api/3/attachment/{attachment.id}",
            "id": attachment.id,
            "filename": attachment.filename,
            "author": self._jira_author(),
            "created": attachment.created,
            "size": attachment.size,
            "mimeType": attachment.mime_type,
            "content": f"{base}/rest/api/3/attachment/content/{attachment.id}",
        }
        if attachment.mime_type.lower().startswith("image/"):
            bean["thumbnail"] = f"{base}/rest/api/3/attachment/thumbnail/{attachment.id}"
        return bean

    def _jira_metadata(self, attachment: SimJiraAttachment) -> dict[str, Any]:
        """An attachment as ``GET /rest/api/3/attachment/{id}`` answers (AttachmentMetadata: ``id`` a number)."""
        bean = self._jira_bean(attachment)
        bean["id"] = int(attachment.id)
        bean["mediaApiFileId"] = attachment.media_file_id
        bean["properties"] = {}
        return bean

    def _count_chunk_bytes(self, count: int) -> None:
        with self._lock:
            self._chunk_bytes_received += count

    def _new_chunked_upload(self, client_id: str) -> _ChunkedUpload:
        now_ms = int(time.time() * 1000)
        upload = _ChunkedUpload(
            id=str(uuid.uuid4()),
            client_id=client_id,
            created_ms=now_ms,
            expires_ms=now_ms + int(UPLOAD_TTL_SECONDS * 1000),
            etags=[],
            size=0,
            hasher=hashlib.sha256(),
            lock=threading.Lock(),
        )
        with self._lock:
            self._chunked_uploads[upload.id] = upload
        return upload

    def _find_chunked_upload(self, upload_id: str, client_id: str) -> _ChunkedUpload:
        """The open upload of that id, made by this client; 404 for anything else (expired, unknown, another's)."""
        with self._lock:
            upload = self._chunked_uploads.get(upload_id)
        if upload is None or upload.client_id != client_id or time.time() * 1000 >= upload.expires_ms:
            raise _error(404, f"Upload {upload_id[:100]!r} not found")
        return upload

    def _store_chunk(self, etag: str, upload_id: str, part: int, data: memoryview) -> None:
        """Hold a verified chunk once, by etag, until appended at ``part`` of that upload (and any other sender's)."""
        with self._lock:
            self._chunks.setdefault(etag, data)
            self._chunk_holders.setdefault(etag, set()).add((upload_id, part))
            self._chunks_accepted += 1
            self._chunk_bytes_accepted += len(data)

    def _append_chunks(self, upload: _ChunkedUpload, etags: list[str], offset: int) -> None:
        """Append in order at ``offset``: 409 unless it is the number appended so far, 400 for a chunk never sent.

        The upload keeps only the running SHA-256 and size of what was appended. A chunk is released once every
        (upload, part) it was sent for has been appended, so a 1 GiB upload holds a few chunks at a time, not the
        file; the hashing happens under the upload's own lock, not the simulator's.
        """
        with upload.lock:
            with self._lock:
                if offset != len(upload.etags):
                    raise _error(409, f"offset {offset} does not match the {len(upload.etags)} chunks appended")
                missing = [i for i, etag in enumerate(etags) if etag not in self._chunks]
                if missing:
                    raise _error(400, f"chunks[{missing[0]}] {etags[missing[0]]} has not been uploaded")
                datas = [self._chunks[etag] for etag in etags]
            for data in datas:
                upload.hasher.update(data)
                upload.size += len(data)
            upload.etags.extend(etags)
            with self._lock:
                for part, etag in enumerate(etags, start=offset + 1):
                    holders = self._chunk_holders.get(etag)
                    if holders is None:
                        continue
                    holders.discard((upload.id, part))
                    if not holders:
                        del self._chunk_holders[etag]
                        del self._chunks[etag]

    def _assembled(self, upload: _ChunkedUpload) -> tuple[int, str]:
        """(size, SHA-256) of the bytes appended to ``upload`` so far."""
        with upload.lock:
            return upload.size, upload.hasher.copy().hexdigest()

    def _add_upload(self, upload: SimUpload) -> None:
        with self._lock:
            self._uploads[upload.media_id] = upload

    def _link(self, object_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            seen: set[str] = set()
            for index, item in enumerate(items):
                media_id = item["mediaId"]
                upload = self._uploads.get(media_id)
                if upload is None:
                    raise _error(400, f"attachments[{index}].mediaId {media_id} is unknown")
                if upload.object_id != object_id:
                    raise _error(400, f"attachments[{index}].mediaId {media_id} was not issued for this object")
                if item["size"] != upload.size:
                    raise _error(
                        400, f"attachments[{index}].size {item['size']} does not match the upload ({upload.size})"
                    )
                if media_id in self._linked or media_id in seen:
                    raise _error(400, f"attachments[{index}].mediaId {media_id} is already attached")
                seen.add(media_id)
            created: list[SimAttachment] = []
            for item in items:
                upload = self._uploads[item["mediaId"]]
                attachment = SimAttachment(
                    id=self._next_attachment_id,
                    object_id=object_id,
                    filename=item["filename"],
                    mime_type=item["contentType"],
                    size=upload.size,
                    comment=item["comment"],
                    media_id=upload.media_id,
                    sha256=upload.sha256,
                    created=_now_iso(),
                )
                self._next_attachment_id += 1
                self._linked.add(upload.media_id)
                self._attachments.append(attachment)
                created.append(attachment)
        return [self._bean(a) for a in created]

    def _delete_attachment(self, attachment_id: str) -> bool:
        """Remove an attachment (its media stays linked: it cannot be attached again)."""
        with self._lock:
            kept = [a for a in self._attachments if str(a.id) != attachment_id]
            deleted = len(kept) < len(self._attachments)
            self._attachments = kept
        return deleted

    def _bean(self, attachment: SimAttachment) -> dict[str, Any]:
        return {
            "id": attachment.id,
            "author": "Bot",
            "mimeType": attachment.mime_type,
            "filename": attachment.filename,
            "filesize": _human_size(attachment.size),
            "created": attachment.created,
            "comment": attachment.comment,
            "commentOutput": html.escape(attachment.comment),
            "url": f"{self.base_url}/jsm/assets/workspace/{self.workspace_id}/v1/attachments/{attachment.id}/download",
        }


# --------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.atlassian_sim",
        description="A local stand-in for the Atlassian Assets attachment APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--email", default="bot@example.com")
    parser.add_argument("--api-token", default="sim-api-token")
    parser.add_argument("--workspace-id", default="sim-workspace")
    parser.add_argument("--jwt-ttl", type=float, default=900)
    parser.add_argument("--upload-path", default="/file", help="/file (multipart) or /file/binary (raw bytes)")
    parser.add_argument(
        "--upload-reply",
        choices=("full", "createFile", "createFile-empty"),
        default="full",
        help="what the upload answers: the stored file with its size, or Atlassian's createFile {id, createdAt}",
    )
    parser.add_argument("--processing-status", choices=("succeeded", "pending", "failed"), default="succeeded")
    parser.add_argument(
        "--media-download-host", default=None, help="host name of the media download host (default: 127.0.0.2)"
    )
    parser.add_argument(
        "--no-chunked", action="store_true", help="play a media service without the chunked upload (404)"
    )
    parser.add_argument(
        "--scoped-token", action="store_true", help="the API token is a scoped one: it works only through /ex/jira/"
    )
    parser.add_argument("--cloud-id", default=None, help="the site's cloud id (default: a random UUID)")
    parser.add_argument(
        "--link-mibps", type=float, default=None, help="cap each media connection's body bytes to this many MiB/s"
    )
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="add this round trip before each media answer")
    parser.add_argument(
        "--object", action="append", default=[], metavar="ID[:KEY[:LABEL]]", help="an Assets object (repeatable)"
    )
    args = parser.parse_args(argv)
    sim = AtlassianSimulator(
        email=args.email,
        api_token=args.api_token,
        workspace_id=args.workspace_id,
        host=args.host,
        port=args.port,
        jwt_ttl_seconds=args.jwt_ttl,
        upload_path=args.upload_path,
    )
    sim.media_download_host = args.media_download_host
    sim.chunked_enabled = not args.no_chunked
    sim.upload_reply = args.upload_reply
    sim.processing_status = args.processing_status
    sim.scoped_tokens = args.scoped_token
    sim.cloud_id = args.cloud_id or sim.cloud_id
    sim.link_mibps = args.link_mibps
    sim.rtt_ms = args.rtt_ms
    for spec in args.object:
        object_id, _, rest = spec.partition(":")
        key, _, label = rest.partition(":")
        sim.add_object(object_id, key or None, label or None)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sim.start()
    line = {
        "baseUrl": sim.base_url,
        "mediaBaseUrl": sim.media_base_url,
        "workspaceId": sim.workspace_id,
        "cloudId": sim.cloud_id,
        "email": sim.email,
        "apiToken": sim.api_token,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
