"""Step 2: one streamed multipart POST of the file to the media service.

The JWT goes only to a ``mediaBaseUrl`` that MEDIA_ALLOWED_HOSTS admits. The upload path differs between
public reports (``/file`` or ``/file/binary``): on a 404 the other one is tried once and, if it answers,
remembered for the life of the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ..errors import AtlassianError, MediaTokenExpiredError
from .http_session import CONNECT_TIMEOUT, UPLOAD_READ_TIMEOUT, network_error, raise_for_reply, retry_after_seconds
from .multipart import MultipartBody
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
    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)

    id: str = Field(min_length=1)
    size: int | None = None


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


class MediaUploader:
    def __init__(self, session: requests.Session, allowed_hosts: Iterable[str], upload_path: str = "/file") -> None:
        self._session = session
        self._allowed_hosts = tuple(allowed_hosts)
        self.upload_path = upload_path

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
        body = MultipartBody(open_chunks, size, filename, content_type)
        try:
            return self._session.post(
                f"{base_url}{path}?name={quote(filename, safe='')}",
                data=body,
                headers={**media_headers(credentials), "Content-Type": body.content_type},
                timeout=(CONNECT_TIMEOUT, UPLOAD_READ_TIMEOUT),
                allow_redirects=False,
            )
        except requests.RequestException as e:
            raise network_error("upload", e) from e
