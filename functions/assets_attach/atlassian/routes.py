"""Which base URL an Atlassian call goes to: the one rule, used by the Assets client and the Jira client.

Without ``cloudId`` in the secret (a classic API token), as before:

- Jira and Service Management REST (``/rest/api/3/...``, ``/rest/servicedeskapi/...``): the secret's ``siteUrl``;
- Assets REST: ``{ASSETS_API_BASE_URL}/jsm/assets/workspace/{workspaceId}/v1``.

With ``cloudId`` (a scoped API token, the only kind a service account can have): EVERY one of those calls goes
through the API gateway, ``{ASSETS_API_BASE_URL}/ex/jira/{cloudId}``, which then stands for the site:

- Jira and Service Management REST: ``{gateway}/rest/...`` (``siteUrl`` is not needed);
- Assets REST: ``{gateway}/jsm/assets/workspace/{workspaceId}/v1``.

Scoped tokens answer 401 on the site URL and must go through the gateway (Atlassian support KB "401 unauthorized
error when service account accesses Jira or Confluence API"); the Assets base through the gateway is the one of
the jira.js client's Assets guide. The media host is not routed here: it comes from the credentials call.

The Basic credentials go only to the site or to ASSETS_API_BASE_URL's host: every base is checked with
``url_policy`` and must keep the origin (scheme, host, port) it was built on.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from ..errors import AtlassianAuthError, AtlassianError, ConfigError, SiteUrlMissingError
from .http_session import reply_json, send
from .secret import CLOUD_ID, AtlassianSecret
from .url_policy import UnsafeUrlError, require_secure_url, vet_credential_url

SITE_URL_HINT = (
    'add "siteUrl": "https://<your-site>.atlassian.net" to the Atlassian secret '
    '(or "cloudId", with a scoped API token or service account)'
)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    split = urlsplit(url)
    return split.scheme, split.hostname, split.port


def _same_origin(url: str, trusted: str) -> str:
    """``url`` normalized, if credentials may go there and it is on ``trusted``'s host; else a ConfigError."""
    try:
        vetted = vet_credential_url(url)
    except UnsafeUrlError as e:
        raise ConfigError(f"an Atlassian URL built from the secret was refused: {e.reason}") from None
    if _origin(vetted) != _origin(trusted):
        raise ConfigError("an Atlassian URL built from the secret leaves its host; the credentials were not sent")
    return vetted


@dataclass(frozen=True)
class Routes:
    """``api_base_url``: ASSETS_API_BASE_URL, already checked by Settings."""

    api_base_url: str

    def gateway(self, cloud_id: str) -> str:
        """``{ASSETS_API_BASE_URL}/ex/jira/{cloudId}``: the API gateway's stand-in for the site."""
        return _same_origin(f"{self.api_base_url.rstrip('/')}/ex/jira/{cloud_id}", self.api_base_url)

    def site(self, secret: AtlassianSecret) -> str | None:
        """Base of the Jira and Service Management REST calls: the gateway with ``cloudId``, else ``siteUrl``."""
        if secret.cloud_id:
            return self.gateway(secret.cloud_id)
        return secret.site_url

    def jira(self, secret: AtlassianSecret, field: str = "jiraAttachments") -> str:
        """As :meth:`site`, for a call that cannot go without it (a SiteUrlMissingError names what to add)."""
        base = self.site(secret)
        if base is None:
            raise SiteUrlMissingError(f"Jira attachments need the Jira site: {SITE_URL_HINT}", field=field)
        return base

    def assets(self, secret: AtlassianSecret, workspace_id: str) -> str:
        """Base of the Assets REST calls of a workspace."""
        root = self.gateway(secret.cloud_id) if secret.cloud_id else self.api_base_url.rstrip("/")
        return _same_origin(f"{root}/jsm/assets/workspace/{workspace_id}/v1", self.api_base_url)


def explain_refusal(error: AtlassianError, secret: AtlassianSecret) -> AtlassianError:
    """A 401 with what to do about it, by route: a scoped token off the gateway, or a token to rotate."""
    if not isinstance(error, AtlassianAuthError) or error.status != 401:
        return error
    if secret.cloud_id:
        hint = (
            "the API token is mistyped, expired (API tokens last at most a year) or revoked: put a new one in apiToken"
        )
    else:
        hint = (
            "the API token is mistyped, expired (at most a year) or revoked; a scoped API token or service account "
            'needs "cloudId" in the secret (`assets-attach doctor` finds it)'
        )
    return AtlassianAuthError(
        f"{error.message}; {hint}", step=error.step, status=401, retryable=False, retry_after=error.retry_after
    )


def tenant_cloud_id(session: requests.Session, site_url: str) -> str:
    """``GET {siteUrl}/_edge/tenant_info`` -> ``{"cloudId"}``, asked without credentials (Atlassian KB "Retrieve
    my Atlassian site's Cloud ID"): the id that routes a scoped API token through the API gateway."""
    url = require_secure_url(site_url, "siteUrl") + "/_edge/tenant_info"
    reply = reply_json(send(session, "GET", url, step="workspace"), "workspace")
    cloud_id = reply.get("cloudId") if isinstance(reply, dict) else None
    if not isinstance(cloud_id, str) or not CLOUD_ID.fullmatch(cloud_id):
        raise AtlassianError("the site's tenant_info named no cloud id", step="workspace", retryable=False)
    return cloud_id
