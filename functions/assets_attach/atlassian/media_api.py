"""The media service as both upload styles meet it (``media_upload``: one POST; ``media_chunked``: chunks): the
credentials step 1 hands over, how a media call is sent and its refusals read, the file a reply names, and the
check of the stored size that comes before every link.

The JWT goes only to a ``mediaBaseUrl`` that MEDIA_ALLOWED_HOSTS admits (``url_policy.check_media_base_url``, asked
by each style before its calls).
"""

from __future__ import annotations

from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ..errors import AtlassianError, IntegrityError, MediaTokenExpiredError
from .http_session import retry_after_seconds, send

# Public reports disagree on the single upload's path; on a 404 from one, the other is tried (MEDIA_UPLOAD_PATH).
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


def send_media(
    session: requests.Session,
    method: str,
    url: str,
    credentials: MediaCredentials,
    *,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> requests.Response:
    """A media call (``http_session.send``'s ``options``), with the token: a 401 is the JWT's expiry (a new one is
    fetched on retry), any other failure as every Atlassian call's."""
    return send(
        session,
        method,
        url,
        step="upload",
        headers={**media_headers(credentials), **(headers or {})},
        refusal=_token_expiry,
        **options,
    )


def _token_expiry(response: requests.Response) -> AtlassianError | None:
    if response.status_code != 401:
        return None
    return MediaTokenExpiredError(
        "the media service rejected the upload token",
        step="upload",
        status=401,
        retry_after=retry_after_seconds(response),
    )


def uploaded_media(response: requests.Response) -> UploadedMedia:
    """The media file a successful reply names (``{"data": {"id", "size"}}``), from either upload style."""
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
