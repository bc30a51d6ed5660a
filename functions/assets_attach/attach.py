"""The engine: one file from a source into one Assets object, in the three steps.

1. credentials for the object (step 1), 2. the bytes streamed to the media service (step 2),
3. the media id linked to the object (step 3). The size limit is checked before any byte moves, and the
media id is linked only when the bytes sent are proven to be the source's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from .atlassian.assets_client import AssetsClient
from .atlassian.media_upload import MediaUploader, UploadedMedia
from .content_types import resolve_content_type
from .errors import AtlassianAuthError, FileTooLargeError, MediaTokenExpiredError
from .integrity import StreamCheck


class FileSource(Protocol):
    """What the engine needs of a file: S3 objects and local files both provide it."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def expected_md5(self) -> str | None: ...
    def chunks(self) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class AttachResult:
    object_id: str
    filename: str
    size: int
    content_type: str
    media_id: str
    attachment_id: str

    def summary(self) -> dict[str, object]:
        return {
            "objectId": self.object_id,
            "filename": self.filename,
            "size": self.size,
            "contentType": self.content_type,
            "mediaId": self.media_id,
            "attachmentId": self.attachment_id,
        }


def check_size(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise FileTooLargeError(
            f"{what} is {size} bytes, over the {limit}-byte limit (MAX_FILE_SIZE_BYTES)",
            step="validate",
            status=413,
        )


class Attacher:
    def __init__(self, assets: AssetsClient, media: MediaUploader, max_file_size: int) -> None:
        self._assets = assets
        self._media = media
        self._max_file_size = max_file_size

    def attach(
        self,
        object_id: str,
        source: FileSource,
        *,
        filename: str | None = None,
        comment: str = "",
        before_link: Callable[[str], None] | None = None,
    ) -> AttachResult:
        """Attach ``source``; ``before_link(media_id)`` runs between the upload and the link (the worker records it)."""
        name = filename or source.name
        check_size(source.size, self._max_file_size, name)
        content_type = resolve_content_type(source.content_type, name)
        check = StreamCheck(source.size, source.expected_md5)
        media = self._upload(object_id, source, check, name, content_type)
        check.verify(media.size)
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
        return AttachResult(object_id, name, source.size, content_type, media.id, attachment.id)

    def _upload(
        self, object_id: str, source: FileSource, check: StreamCheck, name: str, content_type: str
    ) -> UploadedMedia:
        """Steps 1 and 2; a media token that expired on the way is replaced once."""
        for fresh_token in (False, True):
            credentials = self._assets.media_credentials(object_id)
            try:
                return self._media.upload(
                    credentials,
                    filename=name,
                    content_type=content_type,
                    size=source.size,
                    open_chunks=lambda: check.wrap(source.chunks()),
                )
            except MediaTokenExpiredError as e:
                if fresh_token:  # a token issued a moment ago was refused too: retrying will not help
                    raise AtlassianAuthError(
                        "the media service refused a freshly issued token", step="upload", status=401, retryable=False
                    ) from e
        raise AssertionError("unreachable")
