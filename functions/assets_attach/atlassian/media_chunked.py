"""Step 2, chunked: the media service's own upload protocol, beside the single multipart POST.

As Atlassian's web client does it (``MEDIA_CHUNKED.md``): create an upload, PUT the file in chunks named by their
content (``sha256-<hex>-<size>``), a few at a time, append them to the upload in order, then create the file from
the upload. The media id it answers is linked (step 3) exactly as one from the single POST.

- The JWT goes only to a ``mediaBaseUrl`` that MEDIA_ALLOWED_HOSTS admits, checked before every call.
- Chunks are hashed on the worker threads that send them (hashlib releases the GIL on large buffers), never on the
  thread that reads the source.
- Memory is bounded by ``chunk_size * concurrency`` plus one source block: the source is read only when fewer than
  ``concurrency`` chunks are in flight.
- Appends follow the chunks in file order, as soon as a run of them has been accepted, so that a failure costs at
  most the chunks in flight: ``on_appending`` reports each append before it is sent, for the caller to persist, and
  a later call resumes with ``upload_id``, ``start_chunk`` and, where the last append's outcome is unknown (a crash
  while it was on its way), ``maybe_appended``.

Errors: a refusal to create an upload (401/403/404/405) is :class:`ChunkedUploadRefusedError`, the sign to fall
back to the single POST; an upload that is gone or whose chunk count differs from the caller's is
:class:`ChunkedUploadStaleError` (start a new one); a 401 on a later call is :class:`MediaTokenExpiredError`;
anything else is translated by ``raise_for_reply``/``network_error`` (429, 5xx and network errors retryable).

The shared session's connection pool should hold at least ``concurrency + 1`` connections (the chunk PUTs and the
appends), or urllib3 opens and discards extra ones.
"""

from __future__ import annotations

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
    FileTooLargeError,
    IntegrityError,
)
from .http_session import (
    API_READ_TIMEOUT,
    CONNECT_TIMEOUT,
    UPLOAD_READ_TIMEOUT,
    network_error,
    raise_for_reply,
)
from .media_upload import MediaCredentials, UploadedMedia, media_headers, raise_for_media_reply, uploaded_media
from .url_policy import check_media_base_url

MiB = 1 << 20
# The web client's thresholds. MEDIA_CHUNKED.md gives them as "5 GB", "50 GB", "0.95 TB" and "2 TB" beside chunk
# sizes in MiB, so they are read as decimal units here; only the chunk size at a boundary depends on it.
GB = 10**9
TB = 10**12
MAX_CHUNKED_FILE_SIZE = 2 * TB
MAX_CHUNKS_PER_APPEND = 1000
REFUSAL_STATUSES = frozenset({401, 403, 404, 405})  # from the upload creation: the protocol is not offered


def chunk_size_for(size: int) -> int:
    """The web client's chunk size for a file of ``size`` bytes; FileTooLargeError over 2 TB."""
    if size < 0:
        raise ValueError(f"a file size cannot be negative: {size}")
    if size > MAX_CHUNKED_FILE_SIZE:
        raise FileTooLargeError(
            f"{size} bytes is over the {MAX_CHUNKED_FILE_SIZE}-byte limit of a chunked upload", step="validate"
        )
    if size <= 5 * GB:
        return 5 * MiB
    if size <= 50 * GB:
        return 50 * MiB
    if size <= 950 * GB:
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
    """Where the upload stands: chunks (and their bytes) appended, and the next part number to send."""

    appended: int
    appended_bytes: int
    next_part: int


class ChunkedUploader:
    """The chunked upload's four calls, and :meth:`upload`, which runs them for a whole file."""

    def __init__(self, session: requests.Session, allowed_hosts: Iterable[str]) -> None:
        self._session = session
        self._allowed_hosts = tuple(allowed_hosts)

    # ----------------------------------------------------------------------------------------- the calls

    def create_upload(self, credentials: MediaCredentials) -> str:
        """A new upload's id; ChunkedUploadRefusedError when the service answers 401, 403, 404 or 405."""
        response = self._call(
            "POST",
            credentials,
            "/upload",
            params={"createUpTo": "1", "hashAlgorithm": "sha256"},
        )
        if response.status_code in REFUSAL_STATUSES:
            raise ChunkedUploadRefusedError(
                f"the media service does not offer chunked uploads (HTTP {response.status_code} on creating one)",
                step="upload",
                status=response.status_code,
                retryable=False,
            )
        raise_for_reply(response, "upload")
        try:
            return _CreateUploadReply.model_validate(response.json()).data[0].id
        except (ValueError, ValidationError):
            raise AtlassianError("the media service's reply named no upload id", step="upload") from None

    def put_chunk(self, credentials: MediaCredentials, upload_id: str, part_number: int, data: bytes | Chunk) -> str:
        """Hash ``data`` (in the calling thread) and send it as part ``part_number``; returns its etag."""
        etag = chunk_etag(data)
        response = self._call(
            "PUT",
            credentials,
            f"/chunk/{quote(etag, safe='')}",
            params={"uploadId": upload_id, "partNumber": str(part_number)},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self._raise_for(response, stale=(404,))
        return etag

    def append(self, credentials: MediaCredentials, upload_id: str, etags: list[str], offset: int) -> None:
        """Append ``etags`` (at most 1,000) in order after the ``offset`` chunks already appended."""
        if len(etags) > MAX_CHUNKS_PER_APPEND:
            raise ValueError(f"at most {MAX_CHUNKS_PER_APPEND} chunks per append, not {len(etags)}")
        response = self._call(
            "PUT",
            credentials,
            f"/upload/{quote(upload_id, safe='')}/chunks",
            json={"chunks": etags, "offset": offset},
        )
        self._raise_for(response, stale=(404, 409))

    def create_file(
        self, credentials: MediaCredentials, upload_id: str, name: str, mime_type: str, size: int
    ) -> UploadedMedia:
        """The media file made of the upload's appended chunks, which must add up to ``size`` bytes."""
        response = self._call(
            "POST",
            credentials,
            "/file/upload",
            json={"uploadId": upload_id, "name": name, "mimeType": mime_type, "conditions": {"size": size}},
            read_timeout=UPLOAD_READ_TIMEOUT,
        )
        self._raise_if_stale(response, (404,))
        return uploaded_media(response)

    # ----------------------------------------------------------------------------------------- a whole file

    def upload(
        self,
        credentials: MediaCredentials,
        *,
        filename: str,
        content_type: str,
        size: int,
        chunks: Iterable[bytes],
        chunk_size: int,
        concurrency: int,
        upload_id: str | None = None,
        start_chunk: int = 0,
        maybe_appended: int | None = None,
        on_created: Callable[[str], None] | None = None,
        on_appending: Callable[[int], None] | None = None,
        on_appended: Callable[[int, int], None] | None = None,
    ) -> UploadedMedia:
        """Send a file of ``size`` bytes in chunks and create the media file from them.

        ``chunks``: the file's bytes from ``start_chunk * chunk_size`` on, in blocks of any size (cut here into
        chunks). ``upload_id``: an upload to continue, whose first ``start_chunk`` chunks of ``chunk_size`` were
        appended by an earlier call; None creates one and reports its id to ``on_created`` before any chunk is
        sent. ``on_appending(chunks)`` precedes every append that takes the upload to ``chunks`` chunks, and
        ``on_appended(chunks_appended, bytes_appended)`` follows it, counted from the start of the file: what the
        caller persists to resume. ``maybe_appended``: such an append from ``start_chunk`` was sent before and its
        outcome is unknown; it is settled first, by the chunks' etags (see :meth:`_settle`). Any failure stops the
        sending (chunks not yet started are cancelled, those in flight finish), appends the chunks accepted before
        it in order, and is raised.
        The callbacks run on the calling thread, which also reads ``chunks``; chunks are hashed and sent on
        ``concurrency`` threads of their own.
        """
        if chunk_size < 1 or concurrency < 1:
            raise ValueError("chunk_size and concurrency must be positive")
        total_chunks = chunk_count(size, chunk_size)
        if not 0 <= start_chunk <= total_chunks or (start_chunk and upload_id is None):
            raise ValueError(f"start_chunk {start_chunk} does not fit {total_chunks} chunks of an existing upload")
        if maybe_appended is not None and (upload_id is None or not start_chunk < maybe_appended <= total_chunks):
            raise ValueError(f"maybe_appended {maybe_appended} does not follow start_chunk {start_chunk} of an upload")
        self._base_url(credentials)  # a refused media host fails before anything is created or read
        if upload_id is None:
            upload_id = self.create_upload(credentials)
            if on_created is not None:
                on_created(upload_id)
        start_bytes = min(start_chunk * chunk_size, size)
        progress = _Progress(start_chunk, start_bytes, start_chunk + 1)
        boxes = _boxed(rechunk(chunks, chunk_size))
        if maybe_appended is not None:
            self._settle(credentials, upload_id, boxes, progress, maybe_appended)
            if on_appended is not None:
                on_appended(progress.appended, progress.appended_bytes)
        sender = _ChunkSender(self, credentials, upload_id, concurrency, progress, on_appending, on_appended)
        try:
            sent = progress.appended_bytes
            for box in boxes:
                sent += len(box[0])
                if sent > size:
                    raise IntegrityError(f"the source gave more than its {size} bytes", step="upload")
                sender.send(box)  # its sending thread takes the chunk out of the box: only that thread holds it
            if sent != size:
                raise IntegrityError(f"the source gave {sent} of its {size} bytes", step="upload")
            sender.finish()
        except BaseException as failure:
            sender.abort(failure)
            raise
        finally:
            sender.shutdown()
        return self.create_file(credentials, upload_id, filename, content_type, size)

    def _settle(
        self,
        credentials: MediaCredentials,
        upload_id: str,
        boxes: Iterator[list[Chunk]],
        progress: _Progress,
        maybe_appended: int,
    ) -> None:
        """After an append of unknown outcome, from ``progress.appended`` to ``maybe_appended`` chunks: append those
        chunks again where that append was, by their etags (hashed here, not sent: the service holds what it was
        sent). A 409 (wrong offset) says the earlier append had taken them; a 400 that it holds them no longer, and
        they are sent and appended. Either way the upload then holds ``maybe_appended`` chunks, as ``progress`` says.
        """
        count = maybe_appended - progress.appended
        held = [box.pop() for box in itertools.islice(boxes, count)]
        if len(held) != count:
            raise IntegrityError("the source ended before the chunks of the last append", step="upload")
        etags = [chunk_etag(data) for data in held]
        try:
            self.append(credentials, upload_id, etags, progress.appended)
        except ChunkedUploadStaleError as e:
            if e.status != 409:
                raise
        except AtlassianError as e:
            if e.status != 400:
                raise
            for part, data in enumerate(held, start=progress.appended + 1):
                self.put_chunk(credentials, upload_id, part, data)
            self.append(credentials, upload_id, etags, progress.appended)
        progress.appended = maybe_appended
        progress.appended_bytes += sum(len(data) for data in held)
        progress.next_part = maybe_appended + 1

    # ----------------------------------------------------------------------------------------- plumbing

    def _base_url(self, credentials: MediaCredentials) -> str:
        return check_media_base_url(credentials.media_base_url, self._allowed_hosts)

    def _call(
        self,
        method: str,
        credentials: MediaCredentials,
        path: str,
        *,
        read_timeout: float = API_READ_TIMEOUT,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        url = self._base_url(credentials) + path
        try:
            return self._session.request(
                method,
                url,
                headers={**media_headers(credentials), **(headers or {})},
                timeout=(CONNECT_TIMEOUT, read_timeout),
                allow_redirects=False,
                **kwargs,
            )
        except requests.RequestException as e:
            raise network_error("upload", e) from e

    @staticmethod
    def _raise_if_stale(response: requests.Response, stale: tuple[int, ...]) -> None:
        """``stale``: the statuses that mean the upload is gone (expired, or its chunks out of step)."""
        status = response.status_code
        if status in stale:
            raise ChunkedUploadStaleError(
                f"the chunked upload cannot be continued (HTTP {status}); a new upload is needed",
                step="upload",
                status=status,
            )

    @classmethod
    def _raise_for(cls, response: requests.Response, *, stale: tuple[int, ...]) -> None:
        cls._raise_if_stale(response, stale)
        raise_for_media_reply(response)


class _ChunkSender:
    """Chunks in flight on ``concurrency`` threads, and their etags appended in file order as they are accepted.

    At most ``concurrency`` chunks are sent but not yet appended at any time (in flight, or accepted behind one still
    in flight), so that a failure or a crash re-sends at most that many, and memory holds at most that many chunks.
    No chunk is referenced from here once its PUT has returned.
    """

    def __init__(
        self,
        uploader: ChunkedUploader,
        credentials: MediaCredentials,
        upload_id: str,
        concurrency: int,
        progress: _Progress,
        on_appending: Callable[[int], None] | None,
        on_appended: Callable[[int, int], None] | None,
    ) -> None:
        self._uploader = uploader
        self._credentials = credentials
        self._upload_id = upload_id
        self._concurrency = concurrency
        self._progress = progress
        self._on_appending = on_appending
        self._on_appended = on_appended
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="media-chunk")
        self._queued: deque[tuple[Future[str], int]] = deque()  # (PUT, chunk length), in part order, not appended
        self._append_failed = False

    def send(self, box: list[Chunk]) -> None:
        """Start sending the chunk in ``box`` (taken out of it) as the next part; return once there is room for
        another, appending whatever was accepted meanwhile."""
        length = len(box[0])
        future = self._pool.submit(self._put, box, self._progress.next_part)
        self._progress.next_part += 1
        self._queued.append((future, length))
        while True:
            self._append_ready()
            if len(self._queued) < self._concurrency:
                return
            wait([f for f, _ in self._queued if not f.done()], return_when=FIRST_COMPLETED)

    def finish(self) -> None:
        """Wait for every chunk and append the rest."""
        while self._queued:
            wait([f for f, _ in self._queued], return_when=FIRST_COMPLETED)
            self._append_ready()

    def abort(self, failure: BaseException) -> None:
        """Cancel what has not started and wait for what has; unless an append failed, append what was accepted
        before the failure (a failure to do so is noted on ``failure``, which stays the error raised)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._append_failed or not isinstance(failure, Exception):
            return
        try:
            self._append_ready(raise_failures=False)
        except AtlassianError as e:
            failure.add_note(f"appending the chunks accepted before it failed too: {e}")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _put(self, box: list[Chunk], part: int) -> str:
        # Taken out of the box, the chunk lives in this frame only: it is freed as soon as the PUT returns.
        return self._uploader.put_chunk(self._credentials, self._upload_id, part, box.pop())

    def _append_ready(self, *, raise_failures: bool = True) -> None:
        """Append the accepted chunks at the head of the queue (in batches of 1,000); raise a failed PUT's error."""
        if raise_failures:
            for future, _ in self._queued:
                if future.done() and not future.cancelled() and future.exception() is not None:
                    future.result()  # raises the chunk's error
        etags: list[str] = []
        sizes = 0
        while self._queued:
            future, length = self._queued[0]
            if not future.done() or future.cancelled() or future.exception() is not None:
                break
            etags.append(future.result())
            sizes += length
            self._queued.popleft()
            if len(etags) == MAX_CHUNKS_PER_APPEND:
                self._append(etags, sizes)
                etags, sizes = [], 0
        if etags:
            self._append(etags, sizes)

    def _append(self, etags: list[str], sizes: int) -> None:
        progress = self._progress
        try:
            if self._on_appending is not None:
                self._on_appending(progress.appended + len(etags))
            self._uploader.append(self._credentials, self._upload_id, etags, progress.appended)
            progress.appended += len(etags)
            progress.appended_bytes += sizes
            if self._on_appended is not None:
                self._on_appended(progress.appended, progress.appended_bytes)
        except BaseException:
            self._append_failed = True
            raise
