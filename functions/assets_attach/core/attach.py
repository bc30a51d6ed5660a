"""The engine: one file from a source into one Assets object, in the three steps.

1. credentials for the object (step 1), 2. the bytes streamed to the media service (step 2), in one multipart POST
or in chunks (``MEDIA_UPLOAD_MODE``), 3. the media id linked to the object (step 3). The size limit is checked
before any byte moves, and the media id is linked only when the bytes sent are proven to be the source's.

A chunked upload reports each append (``on_progress``), so that a caller that keeps the state can resume it later
(``resume``) after the last appended chunk; where the media service refuses chunks, ``auto`` mode falls back to
the single POST for the life of the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..atlassian.media_api import MediaCredentials, UploadedMedia, confirmed_size
from ..atlassian.media_chunked import ChunkedFile, UploadListener, chunk_size_for
from ..content_types import resolve_content_type
from ..errors import (
    AtlassianAuthError,
    ChunkedUploadRefusedError,
    ChunkedUploadStaleError,
    MediaTokenExpiredError,
    check_size,
)
from ..integrity import Check, StreamCheck
from ..job_record import ChunkedUpload
from ..observability import logger
from ..settings import UploadMode
from .ports import AssetsPort, ChunkedMediaPort, FileSource, MediaPort


@dataclass(frozen=True)
class AttachResult:
    object_id: str
    filename: str
    size: int
    content_type: str
    media_id: str
    attachment_id: str
    check: Check = "size"  # how the bytes were proven the source's (see integrity)

    def summary(self) -> dict[str, object]:
        return {
            "objectId": self.object_id,
            "filename": self.filename,
            "size": self.size,
            "contentType": self.content_type,
            "mediaId": self.media_id,
            "attachmentId": self.attachment_id,
            "check": self.check,
        }


@dataclass(frozen=True)
class UploadProgress:
    """How far step 2 got: bytes the media service has (single POST: bytes sent), and the chunked upload's state."""

    bytes_sent: int
    chunked: ChunkedUpload | None = None


@dataclass(frozen=True)
class UploadStyle:
    """``MEDIA_UPLOAD_MODE``, ``CHUNKED_MIN_BYTES`` and ``MEDIA_UPLOAD_CONCURRENCY``."""

    mode: UploadMode = "auto"
    chunked_min_bytes: int = 16 * 1024**2
    concurrency: int = 3


class Attacher:
    def __init__(
        self,
        assets: AssetsPort,
        media: MediaPort,
        max_file_size: int,
        chunked: ChunkedMediaPort | None = None,
        style: UploadStyle = UploadStyle(mode="single"),
    ) -> None:
        self._assets = assets
        self._media = media
        self._chunked = chunked
        self._max_file_size = max_file_size
        self._style = style
        self._chunks_refused = chunked is None  # in auto mode, once the media service refused chunks

    def attach(
        self,
        object_id: str,
        source: FileSource,
        *,
        filename: str | None = None,
        comment: str = "",
        before_link: Callable[[str], None] | None = None,
        resume: ChunkedUpload | None = None,
        on_progress: Callable[[UploadProgress], None] | None = None,
        in_time: Callable[[], bool] = lambda: True,
    ) -> AttachResult:
        """Attach ``source``; ``before_link(media_id)`` runs between the upload and the link (the worker records it).
        ``resume``: a chunked upload of this file that an earlier attempt left; ``on_progress`` hears of every
        step of the upload (every block sent, or every chunk accepted and every append). A chunked upload asks
        ``in_time()`` before each chunk and stops with DeadlineError once it is False (to resume later)."""
        name = filename or source.name
        check_size(source.size, self._max_file_size, name)
        content_type = resolve_content_type(source.content_type, name)
        upload = _Upload(source, name, content_type, resume, on_progress or (lambda _: None), in_time)
        media = self._upload(object_id, upload)
        if before_link is not None:
            before_link(media.id)
        attachment = self._assets.link(
            object_id,
            filename=name,
            content_type=content_type,
            media_id=media.id,
            size=source.size,
            comment=comment,
        )
        return AttachResult(object_id, name, source.size, content_type, media.id, attachment.id, upload.check)

    def uses_chunks(self, size: int) -> bool:
        if self._style.mode == "single" or self._chunked is None:
            return False
        return self._style.mode == "chunked" or (size >= self._style.chunked_min_bytes and not self._chunks_refused)

    def _upload(self, object_id: str, upload: _Upload) -> UploadedMedia:
        """Steps 1 and 2; a media token that expired on the way is replaced once (a chunked upload resumes)."""
        for fresh_token in (False, True):
            credentials = self._assets.media_credentials(object_id)
            try:
                if self.uses_chunks(upload.source.size):
                    try:
                        return self._send_chunks(credentials, upload)
                    except (ChunkedUploadRefusedError, MediaTokenExpiredError) as e:
                        # A refusal at any step, or a 401 that a fresh token did not cure: chunks are not offered
                        # to this client (ATLASSIAN_FACTS.md, "Media service (chunked upload)").
                        refused = isinstance(e, ChunkedUploadRefusedError) or fresh_token
                        if not refused or self._style.mode == "chunked":
                            raise
                        logger.warning(
                            "the media service refused a chunked upload; sending files in one POST",
                            extra={"status": e.status},
                        )
                        self._chunks_refused = True
                return self._send_whole(credentials, upload)
            except MediaTokenExpiredError as e:
                if fresh_token:  # a token issued a moment ago was refused too: retrying will not help
                    raise AtlassianAuthError(
                        "the media service refused a freshly issued token", step="upload", status=401, retryable=False
                    ) from e
        raise AssertionError("unreachable")

    def _send_whole(self, credentials: MediaCredentials, upload: _Upload) -> UploadedMedia:
        source = upload.source
        check = StreamCheck(source.size, source.expected_md5, source.verified_checksum)
        media = self._media.upload(
            credentials,
            filename=upload.name,
            content_type=upload.content_type,
            size=source.size,
            open_chunks=lambda: check.wrap(upload.counted(source.chunks())),
        )
        return self._confirmed(credentials, upload, check, media)

    def _send_chunks(self, credentials: MediaCredentials, upload: _Upload) -> UploadedMedia:
        assert self._chunked is not None
        source = upload.source
        chunk_size = chunk_size_for(source.size)
        state = upload.chunked if upload.chunked and upload.chunked.chunkSize == chunk_size else None
        start = state.appended if state else 0  # chunks appended: the source is read from there
        # A checksum or an MD5 covers the whole file only; a resumed upload relies on the chunks' SHA-256 (which
        # the media service checks) and the byte counts.
        check = StreamCheck(source.size, source.expected_md5, source.verified_checksum)
        if start:
            check = StreamCheck(source.size, None)
        chunks = check.wrap(source.chunks(start * chunk_size))
        file = ChunkedFile(upload.name, upload.content_type, source.size, chunks, chunk_size)
        try:
            media = self._chunked.upload(
                credentials, file, concurrency=self._style.concurrency, resume=state, listener=upload
            )
        except ChunkedUploadStaleError:
            if state is None:
                raise
            logger.info("the chunked upload to resume is gone; starting a new one", extra={"appended": start})
            upload.chunked = None
            return self._send_chunks(credentials, upload)
        return self._confirmed(credentials, upload, check, media)

    def _confirmed(
        self, credentials: MediaCredentials, upload: _Upload, check: StreamCheck, media: UploadedMedia
    ) -> UploadedMedia:
        """The uploaded file, once the service's stored size (asked for where the reply has none) and the stream's
        check agree with the source: only then is it linked."""
        media = self._media.stored_file(credentials, media)
        confirmed_size(media, upload.source.size)
        check.verify()
        upload.check = check.check
        return media


class _Upload(UploadListener):
    """One file's step 2 across tries: what is sent, and how far it got (reported to ``report``); a chunked upload's
    resume point is the one its uploader hands over."""

    def __init__(
        self,
        source: FileSource,
        name: str,
        content_type: str,
        chunked: ChunkedUpload | None,
        report: Callable[[UploadProgress], None],
        in_time: Callable[[], bool],
    ) -> None:
        self.source = source
        self.name = name
        self.content_type = content_type
        self.chunked = chunked
        self.check: Check = "size"  # the integrity check the upload made
        self._report = report
        self._in_time = in_time
        self._sent_bytes = min((chunked.sent or chunked.appended) * chunked.chunkSize, source.size) if chunked else 0

    def counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        sent = 0
        for chunk in chunks:
            yield chunk
            sent += len(chunk)
            self._report(UploadProgress(sent))

    def in_time(self) -> bool:
        return self._in_time()

    def on_created(self, point: ChunkedUpload) -> None:
        self._note(point, 0)

    def on_sent(self, point: ChunkedUpload, sent_bytes: int) -> None:
        """Persisted with each chunk accepted: a resume appends these by etag instead of sending them again."""
        self._note(point, sent_bytes)

    def on_appending(self, point: ChunkedUpload) -> None:
        """Persisted before the append is sent: a crash during it leaves the resume what it needs to settle it."""
        self._note(point, self._sent_bytes)

    def on_appended(self, point: ChunkedUpload) -> None:
        self._note(point, self._sent_bytes)

    def _note(self, point: ChunkedUpload, sent_bytes: int) -> None:
        self.chunked = point
        self._sent_bytes = sent_bytes
        self._report(UploadProgress(sent_bytes, point))
