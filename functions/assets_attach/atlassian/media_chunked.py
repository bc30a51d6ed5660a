"""Step 2, chunked: the media service's own upload protocol, beside the single multipart POST.

As Atlassian's web client does it (``MEDIA_CHUNKED.md``): create an upload, PUT the file in chunks named by their
content (``sha256-<hex>-<size>``), a few at a time, append them to the upload in order, then create the file from
the upload. The media id it answers is linked (step 3) exactly as one from the single POST.

- The JWT goes only to a ``mediaBaseUrl`` that MEDIA_ALLOWED_HOSTS admits, checked before every call.
- Chunks are hashed on the worker threads that send them (hashlib releases the GIL on large buffers), never on the
  thread that reads the source.
- Memory is bounded by ``chunk_size * (concurrency + 1)`` plus one source block: ``concurrency`` chunks in flight
  and the next one read ahead, so that a slot that frees starts its PUT without waiting for the source.
- The upload's resume point is a ``job_record.ChunkedUpload``; the caller's :class:`UploadListener` hears each new
  one to persist it. Each chunk is reported sent once it and every chunk before it were accepted, so that a failure or a
  crash re-sends at most the chunks in flight; appends follow in file order in batches (``APPEND_BATCH_BYTES``, at
  most 8 calls per GiB), one at a time on a thread of their own: chunks keep flowing while an append is in flight.
  A later call resumes from the point: the chunks sent but not appended are appended by their etags, without
  sending their bytes again.
- Every call is retried inline on network errors and 5xx by the session's urllib3 retries (``media_retry``: 5 tries,
  1 s then doubling, never on 429), as the web client retries.

Errors (``_protocol_error``): on a fresh upload a refusal (403/404/405) at any step is
:class:`ChunkedUploadRefusedError`, the sign to fall back to the single POST; on a resumed upload any 4xx is
:class:`ChunkedUploadStaleError` (start a new one); a 401 is :class:`MediaTokenExpiredError`; anything else is
translated as every Atlassian call's (``http_session.send``: 429, 5xx and network errors retryable).

The shared session's connection pool should hold at least ``concurrency + 1`` connections (the chunk PUTs and the
appends), or urllib3 opens and discards extra ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import (
    AtlassianError,
    ChunkedUploadRefusedError,
    ChunkedUploadStaleError,
    DeadlineError,
    FileTooLargeError,
    IntegrityError,
    MediaTokenExpiredError,
)
from ..job_record import ChunkedUpload
from .http_session import environment_settings
from .media_api import MediaCredentials, UploadedMedia, send_media, uploaded_media
from .url_policy import check_media_base_url

MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
# The web client's thresholds are in binary units (MEDIA_CHUNKED.md, "Units"): 5 MiB chunks up to 5 GiB, 50 MiB up
# to 50 GiB, 100 MiB up to 0.95 TiB, 210 MiB beyond; over 2 TiB refused.
MAX_CHUNKED_FILE_SIZE = 2 * TiB
MAX_CHUNKS_PER_APPEND = 1000
# Appends are batched as the web client batches them (up to 1,000 etags per call, MEDIA_CHUNKED.md): one append per
# 128 MiB of chunks makes at most 8 calls per GiB. Chunks sent but not yet appended are not lost to a crash: each is
# recorded as sent once accepted, and a resume appends them by etag (see ``_settle``).
APPEND_BATCH_BYTES = 128 * MiB
# Statuses that mean "this protocol is not offered to this client" at any step of a fresh upload (ATLASSIAN_FACTS.md,
# "Media service (chunked upload)"); a 401 that a fresh token does not cure is judged by the caller.
REFUSAL_STATUSES = frozenset({403, 404, 405})


def chunk_size_for(size: int) -> int:
    """The web client's chunk size for a file of ``size`` bytes; FileTooLargeError over 2 TB."""
    if size < 0:
        raise ValueError(f"a file size cannot be negative: {size}")
    if size > MAX_CHUNKED_FILE_SIZE:
        raise FileTooLargeError(
            f"{size} bytes is over the {MAX_CHUNKED_FILE_SIZE}-byte limit of a chunked upload", step="validate"
        )
    if size <= 5 * GiB:
        return 5 * MiB
    if size <= 50 * GiB:
        return 50 * MiB
    if size <= 0.95 * TiB:
        return 100 * MiB
    return 210 * MiB


def chunk_count(size: int, chunk_size: int) -> int:
    """How many chunks of ``chunk_size`` a file of ``size`` bytes makes (the last one shorter)."""
    return -(-size // chunk_size)


class Chunk:
    """A chunk as views of the source blocks it spans: hashed and sent part by part, never joined into one buffer
    (requests sends an iterable that has ``__len__`` under a ``Content-Length``, as it does the multipart body)."""

    __slots__ = ("_size", "parts")

    def __init__(self, parts: list[memoryview]) -> None:
        self.parts = parts
        self._size = sum(len(part) for part in parts)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[memoryview]:
        return iter(self.parts)

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)


def chunk_etag(data: bytes | Chunk) -> str:
    """A chunk's name: ``sha256-<lowercase hex SHA-256>-<size in bytes>``."""
    hasher = hashlib.sha256()
    for part in data.parts if isinstance(data, Chunk) else (data,):
        hasher.update(part)
    return f"sha256-{hasher.hexdigest()}-{len(data)}"


def rechunk(blocks: Iterable[bytes | bytearray | memoryview], chunk_size: int) -> Iterator[Chunk]:
    """Blocks of any size (S3 streams 1 MiB ones) as chunks of exactly ``chunk_size`` bytes, the last one shorter.

    A chunk holds views of the blocks it spans, nothing is copied. While a chunk is out, only the rest of the block
    it ended in is held here, so the source is read no further than the chunk being handed over.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    parts: list[memoryview] = []
    held = 0
    for block in blocks:
        view = memoryview(block)
        del block
        while view:
            take = min(chunk_size - held, len(view))
            parts.append(view[:take])
            held += take
            view = view[take:]
            if held == chunk_size:
                held = 0
                chunk, parts = Chunk(parts), []
                yield chunk
                del chunk  # nothing in this frame holds it while suspended
        del view
    if parts:
        yield Chunk(parts)


def _boxed(chunks: Iterator[Chunk]) -> Iterator[list[Chunk]]:
    """Each chunk in a one-item list that its consumer empties, so that no frame but the sender's holds it."""
    for chunk in chunks:
        box = [chunk]
        del chunk
        yield box


class _UploadSlot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)

    id: str = Field(min_length=1)


class _CreateUploadReply(BaseModel):
    data: list[_UploadSlot] = Field(min_length=1)


@dataclass
class _Progress:
    """Where the upload stands: chunks appended, and chunks (and their bytes) accepted in file order (at least as
    many); the next part to send follows them."""

    appended: int
    sent: int
    sent_bytes: int


@dataclass(frozen=True)
class ChunkedFile:
    """What a chunked upload sends: a file of ``size`` bytes, cut here into chunks of ``chunk_size``. ``chunks``: its
    bytes from the first chunk not yet appended on (the resume point's ``appended``), in blocks of any size; not read
    at all when every chunk was appended."""

    name: str
    content_type: str
    size: int
    chunks: Iterable[bytes]
    chunk_size: int


class UploadListener:
    """What the caller of :meth:`ChunkedUploader.upload` hears: each new resume point, to persist it, all counted in
    chunks from the start of the file; and whether the upload may go on. Its methods run on the calling thread, which
    also reads the file. These defaults persist nothing and never stop."""

    def on_created(self, point: ChunkedUpload) -> None:
        """A new upload, before any chunk is sent."""

    def on_sent(self, point: ChunkedUpload, sent_bytes: int) -> None:
        """The chunks up to ``point.sent`` were accepted, in file order (``sent_bytes`` bytes)."""

    def on_appending(self, point: ChunkedUpload) -> None:
        """An append up to ``point.appendingTo`` chunks is about to be sent (see ``ChunkedUploader._settle``)."""

    def on_appended(self, point: ChunkedUpload) -> None:
        """The first ``point.appended`` chunks are appended."""

    def in_time(self) -> bool:
        """Asked before each chunk: once False, the sending stops (the chunks in flight finish and are reported)
        with DeadlineError, for a later call to resume."""
        return True


class _Reporter:
    """The resume point as the upload moves it on, each new one told to the listener."""

    def __init__(self, point: ChunkedUpload, listener: UploadListener) -> None:
        self.point = point
        self._listener = listener

    def sent(self, sent: int, sent_bytes: int) -> None:
        self.point = self.point.model_copy(update={"sent": sent})
        self._listener.on_sent(self.point, sent_bytes)

    def appending(self, appending_to: int) -> None:
        self.point = self.point.model_copy(update={"appendingTo": appending_to})
        self._listener.on_appending(self.point)

    def appended(self, appended: int) -> None:
        self.point = self.point.model_copy(update={"appended": appended, "appendingTo": None})
        self._listener.on_appended(self.point)


class ChunkedUploader:
    """The chunked upload's four calls, and :meth:`upload`, which runs them for a whole file."""

    def __init__(
        self, session: requests.Session, allowed_hosts: Iterable[str], append_bytes: int = APPEND_BATCH_BYTES
    ) -> None:
        """``session``: its retries are the media calls' (``http_session.new_session(retry=media_retry())``); with
        ``trust_env`` off, as hundreds of calls a GiB want it, the environment's proxy and CA settings are read once
        per media host here and given with each call.
        ``append_bytes``: chunks are appended once this many bytes of them were accepted (and at the end)."""
        self._session = session
        self._allowed_hosts = tuple(allowed_hosts)
        self._append_bytes = append_bytes
        self._environment: dict[str, dict[str, Any]] = {}  # media base URL -> environment_settings

    def append_batch(self, chunk_size: int) -> int:
        """How many chunks of ``chunk_size`` one append takes (the last append of a file may take fewer)."""
        return max(1, min(MAX_CHUNKS_PER_APPEND, -(-self._append_bytes // chunk_size)))

    # ----------------------------------------------------------------------------------------- the calls

    # Each call raises what ``media_api.send_media`` makes of a failure; :meth:`upload` judges its status by whether
    # the upload is fresh or resumed (see ``_protocol_error``).

    def create_upload(self, credentials: MediaCredentials) -> str:
        """A new upload's id."""
        response = self._call(
            "POST",
            credentials,
            "/upload",
            params={"createUpTo": "1", "hashAlgorithm": "sha256"},
        )
        try:
            return _CreateUploadReply.model_validate(response.json()).data[0].id
        except (ValueError, ValidationError):
            raise AtlassianError("the media service's reply named no upload id", step="upload") from None

    def put_chunk(self, credentials: MediaCredentials, upload_id: str, part_number: int, data: bytes | Chunk) -> str:
        """Hash ``data`` (in the calling thread) and send it as part ``part_number``; returns its etag."""
        etag = chunk_etag(data)
        self._call(
            "PUT",
            credentials,
            f"/chunk/{quote(etag, safe='')}",
            params={"uploadId": upload_id, "partNumber": str(part_number)},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return etag

    def append(self, credentials: MediaCredentials, upload_id: str, etags: list[str], offset: int) -> None:
        """Append ``etags`` (at most 1,000) in order after the ``offset`` chunks already appended."""
        if len(etags) > MAX_CHUNKS_PER_APPEND:
            raise ValueError(f"at most {MAX_CHUNKS_PER_APPEND} chunks per append, not {len(etags)}")
        self._call(
            "PUT",
            credentials,
            f"/upload/{quote(upload_id, safe='')}/chunks",
            json={"chunks": etags, "offset": offset},
        )

    def create_file(
        self, credentials: MediaCredentials, upload_id: str, name: str, mime_type: str, size: int
    ) -> UploadedMedia:
        """The media file made of the upload's appended chunks, which must add up to ``size`` bytes."""
        response = self._call(
            "POST",
            credentials,
            "/file/upload",
            json={"uploadId": upload_id, "name": name, "mimeType": mime_type, "conditions": {"size": size}},
            read_timeout="upload",
        )
        return uploaded_media(response)

    # ----------------------------------------------------------------------------------------- a whole file

    def upload(
        self,
        credentials: MediaCredentials,
        file: ChunkedFile,
        *,
        concurrency: int,
        resume: ChunkedUpload | None = None,
        listener: UploadListener | None = None,
    ) -> UploadedMedia:
        """Send ``file`` in chunks, ``concurrency`` at a time, and create the media file from them.

        ``resume``: an upload to continue, whose first ``appended`` chunks of ``chunkSize`` were appended by an earlier
        call, and up to ``sent`` chunks sent (accepted by the service, maybe appended): those are settled first,
        appended by their etags without sending their bytes again; ``appendingTo``: an append up to that many chunks
        was on its way when the earlier call stopped, its outcome unknown (see ``_settle``). None creates an upload.
        ``listener`` hears each new resume point (see :class:`UploadListener`).

        Errors: on a fresh upload, a refusal (403, 404, 405) at any step is :class:`ChunkedUploadRefusedError`
        (fall back to the single POST); on a resumed one, any 4xx is :class:`ChunkedUploadStaleError` (start a new
        upload), as is a 409 on a fresh one (an append retried after it took). Any failure stops the sending
        (chunks not yet started are cancelled, those in flight finish) and is raised. Chunks are hashed and sent on
        ``concurrency`` threads of their own.
        """
        listener = listener or UploadListener()
        chunk_size, size = file.chunk_size, file.size
        if chunk_size < 1 or concurrency < 1:
            raise ValueError("chunk_size and concurrency must be positive")
        if resume is not None and resume.chunkSize != chunk_size:
            raise ValueError(f"the upload to resume has chunks of {resume.chunkSize} bytes, not {chunk_size}")
        total_chunks = chunk_count(size, chunk_size)
        start_chunk = resume.appended if resume else 0
        sent = resume.sent if resume and resume.sent is not None else start_chunk
        if not 0 <= start_chunk <= sent <= total_chunks:
            raise ValueError(f"chunks {start_chunk} appended and {sent} sent do not fit {total_chunks} of an upload")
        self._base_url(credentials)  # a refused media host fails before anything is created or read
        try:
            point = resume
            if point is None:
                point = ChunkedUpload(uploadId=self.create_upload(credentials), chunkSize=chunk_size, appended=0)
                listener.on_created(point)
            reporter = _Reporter(point, listener)
            progress = _Progress(start_chunk, start_chunk, min(start_chunk * chunk_size, size))
            if progress.appended < total_chunks:  # a resume with every chunk appended reads nothing
                boxes = _boxed(rechunk(file.chunks, chunk_size))
                if sent > start_chunk:
                    self._settle(credentials, point.uploadId, boxes, progress, sent, point.appendingTo)
                    reporter.appended(progress.appended)
                batch = self.append_batch(chunk_size)
                sender = _ChunkSender(self, credentials, point.uploadId, concurrency, progress, batch, reporter)
                self._send_rest(sender, boxes, progress, size, listener.in_time)
            return self.create_file(credentials, point.uploadId, file.name, file.content_type, size)
        except AtlassianError as e:
            judged = _protocol_error(e, resumed=resume is not None)
            if judged is e:
                raise
            raise judged from e

    @staticmethod
    def _send_rest(
        sender: _ChunkSender, boxes: Iterator[list[Chunk]], progress: _Progress, size: int, in_time: Callable[[], bool]
    ) -> None:
        try:
            sent_bytes = progress.sent_bytes
            for box in boxes:
                if not in_time():
                    raise DeadlineError(
                        f"out of time in this invocation after {progress.sent} chunks; the upload goes on in the next",
                        step="deadline",
                    )
                sent_bytes += len(box[0])
                if sent_bytes > size:
                    raise IntegrityError(f"the source gave more than its {size} bytes", step="upload")
                sender.send(box)  # its sending thread takes the chunk out of the box: only that thread holds it
            if sent_bytes != size:
                raise IntegrityError(f"the source gave {sent_bytes} of its {size} bytes", step="upload")
            sender.finish()
        except BaseException as failure:
            sender.abort(failure)
            raise
        finally:
            sender.shutdown()

    def _settle(
        self,
        credentials: MediaCredentials,
        upload_id: str,
        boxes: Iterator[list[Chunk]],
        progress: _Progress,
        sent: int,
        appending_to: int | None,
    ) -> None:
        """Chunks ``progress.appended`` to ``sent`` were sent by an earlier call and accepted, but maybe not
        appended: append them by their etags (hashed here from the source, not sent: the service holds what it
        accepted, MEDIA_CHUNKED.md). Where that is refused (a 4xx; the statuses are unpublished) and an append up
        to ``appending_to`` was on its way when the earlier call stopped, that append had taken its chunks: the rest
        are appended after it. Any other refusal means the upload is not where the record says: ``upload`` turns it
        into a new upload. (A wrong guess cannot pass for the file: the media file's size is checked.)"""
        start = progress.appended
        held = [box.pop() for box in itertools.islice(boxes, sent - start)]
        if len(held) != sent - start:
            raise IntegrityError("the source ended before the chunks sent earlier", step="upload")
        etags = [chunk_etag(data) for data in held]
        try:
            self._append_all(credentials, upload_id, etags, start)
        except AtlassianError as e:
            refused = e.status is not None and 400 <= e.status < 500 and e.status not in (401, 429)
            if appending_to is None or not start < appending_to <= sent or not refused:
                raise
            self._append_all(credentials, upload_id, etags[appending_to - start :], appending_to)
        progress.appended = progress.sent = sent
        progress.sent_bytes += sum(len(data) for data in held)

    def _append_all(self, credentials: MediaCredentials, upload_id: str, etags: list[str], offset: int) -> None:
        for first in range(0, len(etags), MAX_CHUNKS_PER_APPEND):
            self.append(credentials, upload_id, etags[first : first + MAX_CHUNKS_PER_APPEND], offset + first)

    # ----------------------------------------------------------------------------------------- plumbing

    def _base_url(self, credentials: MediaCredentials) -> str:
        return check_media_base_url(credentials.media_base_url, self._allowed_hosts)

    def _call(
        self,
        method: str,
        credentials: MediaCredentials,
        path: str,
        **options: Any,
    ) -> requests.Response:
        """A media call (``media_api.send_media``'s ``options``) with the environment read once per media host."""
        base_url = self._base_url(credentials)
        if base_url not in self._environment:
            self._environment[base_url] = environment_settings(base_url)
        environment = self._environment[base_url]
        return send_media(self._session, method, base_url + path, credentials, environment=environment, **options)


def _protocol_error(error: AtlassianError, *, resumed: bool) -> AtlassianError:
    """What a failed call means for the chunked upload as a whole. The statuses the service gives for an expired
    upload, an offset mismatch or an unknown etag are unpublished (ATLASSIAN_FACTS.md), so they are judged by where
    the upload stands: on a resumed upload any 4xx says it is not where the record says (start a new one); on a
    fresh one a refusal says the protocol is not offered (send the file in one POST), and a 409 that an append
    retried inline had taken its chunks the first time (resume, then start anew). 401, 429, 5xx and network
    errors stay as they are: a fresh token or a later try helps."""
    status = error.status
    if isinstance(error, MediaTokenExpiredError) or status is None or status == 429 or status >= 500:
        return error
    if resumed or status == 409:
        return ChunkedUploadStaleError(
            f"the chunked upload cannot be continued (HTTP {status}); a new upload is needed",
            step="upload",
            status=status,
        )
    if status in REFUSAL_STATUSES:
        return ChunkedUploadRefusedError(
            f"the media service does not offer chunked uploads to this client (HTTP {status})",
            step="upload",
            status=status,
            retryable=False,
        )
    return error


class _ChunkSender:
    """Chunks in flight on ``concurrency`` threads; each reported as sent once it and every chunk before it were
    accepted, and appended in file order in batches, one append at a time on a thread of its own, so that chunks
    keep flowing while an append is in flight.

    At most ``concurrency`` chunks are sent but not yet reported (in flight, or accepted behind one still in
    flight), so that a failure or a crash re-sends at most that many; the caller holds one more, read ahead while
    the window is full, so that a slot that frees starts its next PUT at once. No chunk is referenced from here
    once its PUT has returned: what waits for its append is its etag.
    """

    def __init__(
        self,
        uploader: ChunkedUploader,
        credentials: MediaCredentials,
        upload_id: str,
        concurrency: int,
        progress: _Progress,
        batch: int,
        reporter: _Reporter,
    ) -> None:
        self._uploader = uploader
        self._credentials = credentials
        self._upload_id = upload_id
        self._concurrency = concurrency
        self._progress = progress
        self._batch = batch
        self._reporter = reporter
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="media-chunk")
        self._appender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="media-append")
        self._unreported: deque[tuple[Future[str], int]] = deque()  # (PUT, chunk length), in part order
        self._to_append: list[str] = []  # etags reported sent, not yet appended, in part order
        self._appending: tuple[Future[None], int] | None = None  # the append in flight, and how many it appends

    def send(self, box: list[Chunk]) -> None:
        """Once there is room, start sending the chunk in ``box`` (taken out of it) as the next part, reporting
        and appending whatever was accepted meanwhile; return at once, for the caller to read the next chunk."""
        while True:
            self._collect()
            if len(self._unreported) < self._concurrency:
                break
            self._wait()
        length = len(box[0])
        part = self._progress.sent + len(self._unreported) + 1
        self._unreported.append((self._pool.submit(self._put, box, part), length))

    def finish(self) -> None:
        """Wait for every chunk and append the rest."""
        while self._unreported:
            self._wait()
            self._collect()
        self._appended(block=True)
        while self._to_append:
            self._start_append()
            self._appended(block=True)

    def abort(self, failure: BaseException) -> None:
        """Cancel what has not started and wait for what has; report the chunks accepted before the failure (so
        that a resume appends them rather than sending them again), without raising over ``failure``."""
        self.shutdown()
        if isinstance(failure, Exception):
            with contextlib.suppress(Exception):
                self._collect(raise_failures=False, append=False)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._appender.shutdown(wait=True, cancel_futures=True)

    def _put(self, box: list[Chunk], part: int) -> str:
        # Taken out of the box, the chunk lives in this frame only: it is freed as soon as the PUT returns.
        return self._uploader.put_chunk(self._credentials, self._upload_id, part, box.pop())

    def _wait(self) -> None:
        """Until a PUT in flight or the append in flight ends."""
        pending: list[Future[Any]] = [f for f, _ in self._unreported if not f.done()]
        if self._appending is not None:
            pending.append(self._appending[0])
        wait(pending, return_when=FIRST_COMPLETED)

    def _collect(self, *, raise_failures: bool = True, append: bool = True) -> None:
        """Report the accepted chunks at the head of the queue as sent; settle a finished append and start the
        next once a batch is ready; raise a failed PUT's or append's error."""
        if raise_failures:
            for future, _ in self._unreported:
                if future.done() and not future.cancelled() and future.exception() is not None:
                    future.result()  # raises the chunk's error
        progress = self._progress
        reported = False
        while self._unreported:
            future, length = self._unreported[0]
            if not future.done() or future.cancelled() or future.exception() is not None:
                break
            self._to_append.append(future.result())
            self._unreported.popleft()
            progress.sent += 1
            progress.sent_bytes += length
            reported = True
        if reported:
            self._reporter.sent(progress.sent, progress.sent_bytes)
        self._appended(block=False)
        if append and self._appending is None and len(self._to_append) >= self._batch:
            self._start_append()

    def _start_append(self) -> None:
        """Append the next chunks reported sent (at most 1,000) after those appended, on the append thread."""
        etags = self._to_append[:MAX_CHUNKS_PER_APPEND]
        del self._to_append[: len(etags)]
        # persisted before the append is on its way (see ChunkedUploader._settle)
        self._reporter.appending(self._progress.appended + len(etags))
        call = self._uploader.append
        future = self._appender.submit(call, self._credentials, self._upload_id, etags, self._progress.appended)
        self._appending = (future, len(etags))

    def _appended(self, *, block: bool) -> None:
        """Settle the append in flight once it ended (``block``: wait for it): raise its error, or count it."""
        if self._appending is None or not (block or self._appending[0].done()):
            return
        future, count = self._appending
        self._appending = None
        future.result()
        self._progress.appended += count
        self._reporter.appended(self._progress.appended)
