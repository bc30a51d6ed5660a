"""The Assets and Jira REST calls (steps 1 and 3, attachment list, AQL, workspace discovery).

Every call uses HTTP Basic auth with the secret's e-mail and API token, passed per request so that it can
never reach the media host. A 401 refetches the secret once (it may have been rotated) and tries again.
Where each call goes (the site, ASSETS_API_BASE_URL, or the API gateway with ``cloudId``) is ``routes``' rule.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import AtlassianError, ObjectNotFoundError, Step
from .http_session import reply_json, send
from .media_api import MediaCredentials
from .routes import Routes, explain_refusal
from .secret import AtlassianSecret, SecretSource, with_fresh_secret

T = TypeVar("T")
LIST_PAGE_SIZE = 100
MAX_LIST_PAGES = 200


class Attachment(BaseModel):
    """An attachment bean as Assets returns it (``filesize`` is a human string like ``"1.2 MB"``)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", coerce_numbers_to_str=True)

    id: str
    filename: str
    mime_type: str | None = Field(default=None, alias="mimeType")
    filesize: str | None = None
    comment: str | None = None


class AssetsClient:
    def __init__(self, session: requests.Session, api_base_url: str, secrets: SecretSource) -> None:
        self._session = session
        self._routes = Routes(api_base_url)
        self._secrets = secrets
        self._discovered: dict[str, str] = {}

    # -- the calls -------------------------------------------------------------------------------------

    def media_credentials(self, object_id: str) -> MediaCredentials:
        """Step 1: a media JWT, client id and media URL for uploading to this object."""
        reply = self._call("credentials", "GET", f"/attachments/object/{object_id}/credentials", object_id=object_id)
        return _parse(_CREDENTIALS, reply, "credentials")

    def link(
        self, object_id: str, *, filename: str, content_type: str, media_id: str, size: int, comment: str
    ) -> Attachment:
        """Step 3: turn an uploaded media file into an attachment of the object."""
        body = {
            "attachments": [
                {
                    "contentType": content_type,
                    "filename": filename,
                    "mediaId": media_id,
                    "size": size,
                    "comment": comment,
                }
            ]
        }
        reply = self._call("link", "POST", f"/attachments/object/{object_id}", json=body, object_id=object_id)
        created = reply.get("values", reply) if isinstance(reply, dict) else reply
        if isinstance(created, dict):
            created = [created]
        try:
            return _parse(_ATTACHMENTS, created, "link")[0]
        except (AtlassianError, IndexError):
            # Atlassian said yes but not what it made: the attachment may exist. A retry looks for it (the job
            # noted the object's attachments before this link) rather than failing a file that may be attached.
            raise AtlassianError("the link reply named no attachment", step="link", retryable=True) from None

    def list_attachments(self, object_id: str) -> list[Attachment]:
        """Every attachment of the object: one array, or pages (``values``, ``isLast``) followed to the end."""
        found: list[Attachment] = []
        for _ in range(MAX_LIST_PAGES):
            # A 404 here may mean the (undocumented) list endpoint is missing, so it stays an AtlassianError.
            params = {"startAt": len(found), "maxResults": LIST_PAGE_SIZE}
            reply = self._call("list", "GET", f"/attachments/object/{object_id}", params=params)
            if not isinstance(reply, dict):
                return _parse(_ATTACHMENTS, reply, "list")
            page = _parse(_ATTACHMENTS, reply.get("values") or [], "list")
            found.extend(page)
            if not page or reply.get("isLast", True):
                return found
        raise AtlassianError(
            f"object {object_id} has more than {len(found)} attachments; cannot list them all", step="list"
        )

    def delete_attachment(self, attachment_id: str) -> None:
        """``DELETE /v1/attachments/{id}``: undocumented on Cloud (``doctor --live`` tries it on its own test
        attachment); an error status raises as from any call, so a 404 or 405 may mean that it is not offered."""

        def call(secret: AtlassianSecret) -> None:
            url = self._workspace_url(secret, f"/attachments/{quote(attachment_id, safe='')}")
            send(self._session, "DELETE", url, step="delete", auth=secret.basic_auth)

        with_fresh_secret(self._secrets, call)

    def aql(self, query: str, max_results: int = 25) -> list[dict[str, Any]]:
        """Objects matching an AQL query (first page), without their attributes: ``includeAttributes`` defaults to
        true and nothing here reads them (ATLASSIAN_FACTS.md, "Assets (JSM) REST": set it false for a key lookup)."""
        params = {"startAt": 0, "maxResults": max_results, "includeAttributes": "false"}
        reply = self._call("aql", "POST", "/object/aql", json={"qlQuery": query}, params=params)
        values = reply.get("values") if isinstance(reply, dict) else None
        return list(values or [])

    def find_object_id(self, object_key: str) -> str:
        """Resolve an object key such as ``HW-42`` through AQL."""
        escaped = object_key.replace("\\", "\\\\").replace('"', '\\"')
        values = self.aql(f'Key = "{escaped}"', max_results=2)
        if not values:
            raise ObjectNotFoundError(f"no Assets object has the key {object_key}", step="aql", field="objectKey")
        return str(values[0]["id"])

    def discover_workspace(self, secret: AtlassianSecret) -> str:
        """``GET {site}/rest/servicedeskapi/assets/workspace``: the site's Assets workspace id, asked of the
        secret's ``siteUrl``, or of the API gateway with its ``cloudId``."""
        site = self._routes.jira(secret, field="siteUrl")
        reply = self._send("workspace", "GET", f"{site}/rest/servicedeskapi/assets/workspace", secret)
        values = reply.get("values") if isinstance(reply, dict) else None
        if not values or not values[0].get("workspaceId"):
            raise AtlassianError(
                f"{secret.site_url or 'the site'} has no Assets workspace: this site has no Assets "
                "(Jira Service Management Premium/Enterprise)",
                step="workspace",
                retryable=False,
            )
        return str(values[0]["workspaceId"])

    # -- plumbing --------------------------------------------------------------------------------------

    def workspace_id(self, secret: AtlassianSecret) -> str:
        if secret.workspace_id:
            return secret.workspace_id.strip()
        site = self._routes.jira(secret, field="siteUrl")
        if site not in self._discovered:
            self._discovered[site] = self.discover_workspace(secret)
        return self._discovered[site]

    def _call(self, step: Step, method: str, path: str, *, object_id: str | None = None, **kwargs: Any) -> Any:
        """A workspace-relative call (a 401 refetches the secret once, see ``with_fresh_secret``)."""

        def call(secret: AtlassianSecret) -> Any:
            return self._send(step, method, self._workspace_url(secret, path), secret, **kwargs)

        try:
            return with_fresh_secret(self._secrets, call)
        except AtlassianError as e:
            if e.status == 404 and object_id is not None:
                raise ObjectNotFoundError(
                    f"Assets object {object_id} not found, or the workspace id is wrong: {e.message}",
                    step=step,
                    status=404,
                    field="objectId",
                ) from e
            raise

    def _workspace_url(self, secret: AtlassianSecret, path: str) -> str:
        """The one builder of a workspace-relative URL (through the API gateway where the secret has a cloudId)."""
        return self._routes.assets(secret, self.workspace_id(secret)) + path

    def _send(self, step: Step, method: str, url: str, secret: AtlassianSecret, **kwargs: Any) -> Any:
        try:
            response = send(self._session, method, url, step=step, auth=secret.basic_auth, **kwargs)
        except AtlassianError as e:
            raise explain_refusal(e, secret) from e
        return reply_json(response, step)


def _parse(adapter: TypeAdapter[T], data: Any, step: Step) -> T:
    try:
        return adapter.validate_python(data)
    except ValidationError:
        raise AtlassianError("Atlassian's reply had an unexpected shape", step=step, retryable=False) from None


_CREDENTIALS = TypeAdapter(MediaCredentials)
_ATTACHMENTS = TypeAdapter(list[Attachment])
