"""Jira issue attachments as sources: their metadata from the Jira site, their bytes streamed.

Every call goes to the secret's ``siteUrl`` with its Basic credentials, as the Assets calls do (with ``cloudId``,
to the API gateway instead: ``routes`` decides, for both clients). The content
is asked for with ``redirect=false``, so the site answers with the bytes. A site that redirects anyway (to
the media host, with a download token in the query) is followed once, without the Basic credentials, and
only to a host that MEDIA_ALLOWED_HOSTS admits: the token in that URL is a credential too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin

import requests
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import (
    AtlassianError,
    AttachError,
    BadRequestError,
    MediaHostNotAllowedError,
    SourceAccessError,
    SourceDeletedError,
    SourceNotFoundError,
)
from ..jobs import JobFile, assets_name
from ..sources import JIRA_ATTACHMENT_ID, READ_CHUNK_BYTES
from .http_session import REDIRECTS, reply_json, send
from .routes import Routes, explain_refusal
from .secret import AtlassianSecret, SecretSource, with_fresh_secret
from .url_policy import UnsafeUrlError, shown_url, vet_credential_url

T = TypeVar("T")
# Jira Cloud has answered 406 to ``Accept: application/json`` on attachment content (python jira client, commit
# 4549cd5; JiraPS issue 459): the content and the media redirect are asked for with any type.
CONTENT_ACCEPT = {"Accept": "*/*"}


class JiraAttachment(BaseModel):
    """An attachment as Jira describes it (``id`` is a number in one answer and a string in the other)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", coerce_numbers_to_str=True)

    id: str
    filename: str = Field(min_length=1)
    size: int = Field(ge=0)
    mime_type: str | None = Field(default=None, alias="mimeType")

    def job_file(self, filename: str | None, comment: str) -> JobFile:
        """This attachment as a job's file: its id is the pin, its name and type Jira's unless ``filename``."""
        return JobFile(
            jiraAttachmentId=self.id,
            filename=assets_name(filename, self.filename),
            comment=comment,
            size=self.size,
            contentType=self.mime_type,
        )


@dataclass(frozen=True)
class JiraSource:
    """One Jira attachment as the engine reads it (a ``FileSource``): its bytes stream from the site."""

    attachment_id: str
    name: str
    size: int
    content_type: str | None
    client: JiraClient = field(repr=False, compare=False)
    expected_md5: str | None = None  # Jira publishes no digest: the byte count is the check
    verified_checksum: None = None

    def chunks(self, start: int = 0) -> Iterator[bytes]:
        """The bytes from ``start`` on: asked for with a Range; a site that sends the whole file has the bytes
        before ``start`` read and dropped. A 206 is trusted only as far as its ``Content-Range`` says it starts at
        ``start``; one that starts elsewhere is read from where it says it starts."""
        response = self.client.open_content(self.attachment_id, start)
        try:
            begins = _range_start(response) if start and response.status_code == 206 else 0
            if begins > start:
                raise AttachError(
                    f"Jira answered attachment {self.attachment_id} from byte {begins}, not {start}",
                    step="jira-read",
                    retryable=True,
                )
            skip = start - begins if start else 0
            for chunk in response.iter_content(READ_CHUNK_BYTES):
                if skip:
                    dropped, chunk = chunk[:skip], chunk[skip:]
                    skip -= len(dropped)
                if chunk:
                    yield chunk
        except (requests.RequestException, OSError) as e:
            raise AttachError(
                f"reading Jira attachment {self.attachment_id} failed ({type(e).__name__})",
                step="jira-read",
                retryable=True,
            ) from e
        finally:
            response.close()


class JiraClient:
    def __init__(
        self, session: requests.Session, secrets: SecretSource, media_allowed_hosts: Iterable[str], api_base_url: str
    ) -> None:
        self._session = session
        self._secrets = secrets
        self._media_allowed_hosts = tuple(media_allowed_hosts)
        self._routes = Routes(api_base_url)

    def attachment(self, attachment_id: str, field: str = "jiraAttachments") -> JiraAttachment:
        """``GET {siteUrl}/rest/api/3/attachment/{id}``; a missing attachment is a SourceNotFoundError."""
        if not JIRA_ATTACHMENT_ID.fullmatch(attachment_id):
            raise BadRequestError(f"{attachment_id[:40]!r} is not a Jira attachment id", field=field)
        reply = self._get_json(f"/rest/api/3/attachment/{attachment_id}", f"Jira attachment {attachment_id}", field)
        return _parse(_ATTACHMENT, reply)

    def issue_attachments(self, issue_key: str) -> list[JiraAttachment]:
        """Every attachment the issue has now (``GET {siteUrl}/rest/api/3/issue/{key}?fields=attachment``)."""
        reply = self._get_json(
            f"/rest/api/3/issue/{issue_key}", f"Jira issue {issue_key}", "issueKey", params={"fields": "attachment"}
        )
        fields = reply.get("fields") if isinstance(reply, dict) else None
        return _parse(_ATTACHMENTS, (fields or {}).get("attachment") or [])

    def source(self, attachment_id: str, *, name: str, size: int, content_type: str | None) -> JiraSource:
        return JiraSource(attachment_id, name, size, content_type, self)

    def open_content(self, attachment_id: str, start: int = 0) -> requests.Response:
        """The attachment's bytes as a streamed response (the caller closes it); from ``start`` where the site
        honours a Range (206), else the whole file (200)."""
        path = f"/rest/api/3/attachment/content/{attachment_id}"
        headers = {**CONTENT_ACCEPT, **({"Range": f"bytes={start}-"} if start else {})}

        def call(secret: AtlassianSecret) -> requests.Response:
            try:
                return send(
                    self._session,
                    "GET",
                    self._routes.jira(secret) + path,
                    step="jira-read",
                    auth=secret.basic_auth,
                    params={"redirect": "false"},
                    headers=headers,
                    stream=True,
                    passes=REDIRECTS,
                )
            except AtlassianError as e:
                raise explain_refusal(e, secret) from e

        try:
            response = with_fresh_secret(self._secrets, call)
        except AtlassianError as e:
            raise _deleted_or(e, attachment_id) from e
        if response.status_code in REDIRECTS:
            response.close()
            location = urljoin(response.url, response.headers.get("Location", ""))
            response = self._download(location, attachment_id, headers)
        return response

    def _download(self, location: str, attachment_id: str, headers: dict[str, str]) -> requests.Response:
        """Follow the site's redirect to the media host: no Basic credentials, and only to an allowed host."""
        try:
            url = vet_credential_url(
                location, allowed_hosts=self._media_allowed_hosts, allow_query=True, hosts_setting="MEDIA_ALLOWED_HOSTS"
            )
        except UnsafeUrlError as e:
            raise MediaHostNotAllowedError(
                f"Jira sent attachment {attachment_id} to {shown_url(location.split('?')[0])}, which was not "
                f"followed: {e.reason}",
                step="jira-read",
            ) from None
        try:
            return send(self._session, "GET", url, step="jira-read", headers=headers, stream=True)
        except AtlassianError as e:
            deleted = _deleted_or(e, attachment_id)
            if deleted is e:
                raise
            raise deleted from e

    # -- plumbing --------------------------------------------------------------------------------------

    def _get_json(self, path: str, what: str, field: str, **kwargs: Any) -> Any:
        def call(secret: AtlassianSecret) -> Any:
            url = self._routes.jira(secret) + path
            try:
                response = send(self._session, "GET", url, step="jira", auth=secret.basic_auth, **kwargs)
            except AtlassianError as e:
                raise explain_refusal(e, secret) from e
            return reply_json(response, "jira")

        try:
            return with_fresh_secret(self._secrets, call)
        except AtlassianError as e:
            if e.status == 404:
                raise SourceNotFoundError(f"{what} does not exist", step="jira", status=404, field=field) from e
            if e.status == 403:
                raise SourceAccessError(
                    f"the secret's account may not see {what}", step="jira", status=403, field=field
                ) from e
            raise


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$", re.IGNORECASE)


def _range_start(response: requests.Response) -> int:
    """Where a 206's ``Content-Range: bytes N-M/size`` says its body starts (0 where it says nothing readable)."""
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else 0


def _deleted_or(error: AtlassianError, attachment_id: str) -> AttachError:
    """A 404 for content accepted earlier: the attachment was deleted since."""
    if error.status == 404:
        return SourceDeletedError(
            f"Jira attachment {attachment_id} was deleted after the request was accepted", step="jira-read"
        )
    return error


def _parse(adapter: TypeAdapter[T], data: object) -> T:
    try:
        return adapter.validate_python(data)
    except ValidationError:
        raise AtlassianError("Jira's reply had an unexpected shape", step="jira", retryable=False) from None


_ATTACHMENT = TypeAdapter(JiraAttachment)
_ATTACHMENTS = TypeAdapter(list[JiraAttachment])
