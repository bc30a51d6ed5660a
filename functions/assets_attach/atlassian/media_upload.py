"""Step 2: one streamed POST of the file to the media service, and what the service says it stored.

The JWT goes only to a ``mediaBaseUrl`` that MEDIA_ALLOWED_HOSTS admits. The upload path differs between
public reports (``/file`` or ``/file/binary``): on a 404 the other one is tried once and, if it answers,
remembered for the life of the process. ``/file`` takes a one-part multipart body; ``/file/binary`` the raw bytes
with the file's ``Content-Type`` (Atlassian's ``createFileFromBinary``; multipart there would be stored with its
envelope, ATLASSIAN_FACTS.md "Media service (single upload)").

Atlassian's own ``POST /file`` answers ``{id, createdAt}`` without a size, so a reply without one is followed by
``GET /file/{id}`` (:meth:`MediaUploader.stored_file`): nothing is linked without the stored size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ..errors import AtlassianError, IntegrityError, MediaTokenExpiredError
from .http_session import (
    API_READ_TIMEOUT,
    CONNECT_TIMEOUT,
    UPLOAD_READ_TIMEOUT,
    network_error,
    raise_for_reply,
    retry_after_seconds,
)
from .multipart import MultipartBody, StreamedBody
from .url_policy import check_media_base_url

# Public reports disagree on the upload path; on a 404 from one, the other is tried (MEDIA_UPLOAD_PATH).
MEDIA_UPLOAD_PATHS = ("/file", "/file/binary")


class MediaCredentials(BaseModel):
    """Step 1's answer: where and with what to upload (the JWT never shows in a repr)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    client_id: str = Field(alias="clientId", min_length=1)
    media_base_url: str = Field(alias="mediaBaseUrl", min_length=1)
    token: SecretStr = Field(alias="mediaJwtToken", min_length=1)


class UploadedMedia(BaseModel):
    """A media file as the service describes it; an upload reply may leave out ``size`` (Atlassian's createFile)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    size: int | None = None
    processing_status: str | None = Field(default=None, alias="processingStatus")  # pending, succeeded, failed


class _UploadReply(BaseModel):
    data: UploadedMedia


def media_headers(credentials: MediaCredentials) -> dict[str, str]:
    """What every media call carries (sent only to a base URL that ``check_media_base_url`` admitted)."""
    return {"Authorization": f"Bearer {credentials.token.get_secret_value()}", "X-Client-Id": credentials.client_id}


def raise_for_media_reply(response: requests.Response) -> None:
    """A 401 is the JWT's expiry (a new one is fetched on retry); any other failure as ``raise_for_reply``."""
    if response.status_code == 401:
        raise MediaTokenExpiredError(
            "the media service rejected the upload token",
            step="upload",
            status=401,
            retry_after=retry_after_seconds(response),
        )
    raise_for_reply(response, "upload")


def uploaded_media(response: requests.Response) -> UploadedMedia:
    """The media file a successful reply names (``{"data": {"id", "size"}}``), from either upload style."""
    raise_for_media_reply(response)
    try:
        return _UploadReply.model_validate(response.json()).data
    except (ValueError, ValidationError):
        raise AtlassianError("the media service's reply named no media id", step="upload") from None


def confirmed_size(media: UploadedMedia, sent: int) -> None:
    """Raise unless the service stored all ``sent`` bytes and did not fail the file: the last word before a link."""
    if media.processing_status == "failed":
        raise IntegrityError(f"the media service failed to process media file {media.id}", step="upload")
    if media.size is None:
        raise IntegrityError("the media service would not say how many bytes it stored; nothing linked", step="upload")
    if media.size != sent:
        raise IntegrityError(f"the media service stored {media.size} bytes but {sent} were sent", step="upload")


class MediaUploader:
    def __init__(self, session: requests.Session, allowed_hosts: Iterable[str], upload_path: str = "/file") -> None:
        self._session = session
        self._allowed_hosts = tuple(allowed_hosts)
        self.upload_path = upload_path

    def stored_file(self, credentials: MediaCredentials, media: UploadedMedia) -> UploadedMedia:
        """``media`` as the service stored it: the upload reply when it names a size, else ``GET /file/{id}``."""
        if media.size is not None:
            return media
        base_url = check_media_base_url(credentials.media_base_url, self._allowed_hosts)
        try:
            response = self._session.get(
                f"{base_url}/file/{quote(media.id, safe='')}",
                headers=media_headers(credentials),
                timeout=(CONNECT_TIMEOUT, API_READ_TIMEOUT),
                allow_redirects=False,
            )
        except requests.RequestException as e:
            raise network_error("upload", e) from e
        return uploaded_media(response)

    def upload(
        self,
        credentials: MediaCredentials,
        *,
        filename: str,
        content_type: str,
        size: int,
        open_chunks: Callable[[], Iterable[bytes]],
    ) -> UploadedMedia:
        base_url = check_media_base_url(credentials.media_base_url, self._allowed_hosts)
        response = self._post(base_url, self.upload_path, credentials, filename, content_type, size, open_chunks)
        if response.status_code == 404:
            other = next(p for p in MEDIA_UPLOAD_PATHS if p != self.upload_path)
            response = self._post(base_url, other, credentials, filename, content_type, size, open_chunks)
            if response.ok:
                self.upload_path = other
        return uploaded_media(response)

    def _post(
        self,
        base_url: str,
        path: str,
        credentials: MediaCredentials,
        filename: str,
        content_type: str,
        size: int,
        open_chunks: Callable[[], Iterable[bytes]],
    ) -> requests.Response:
        body: StreamedBody | MultipartBody
        if path == "/file/binary":
            body, body_type = StreamedBody(open_chunks, size), content_type
        else:
            body = MultipartBody(open_chunks, size, filename, content_type)
            body_type = body.content_type
        try:
            return self._session.post(
                f"{base_url}{path}?name={quote(filename, safe='')}",
                data=body,
                headers={**media_headers(credentials), "Content-Type": body_type},
                timeout=(CONNECT_TIMEOUT, UPLOAD_READ_TIMEOUT),
                allow_redirects=False,
            )
        except requests.RequestException as e:
            raise network_error("upload", e) from e
