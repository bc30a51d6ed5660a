"""What a 401 from Atlassian means for this secret, and the one thing to change (``assets-attach doctor``).

A classic API token works on the site and on ASSETS_API_BASE_URL; a scoped API token (the only kind a service
account can have) answers 401 there and works only through the API gateway, ``/ex/jira/{cloudId}/...``
(Atlassian support KB "401 unauthorized error when service account accesses Jira or Confluence API"). So on a
401 with ``siteUrl`` and no ``cloudId``, the site's cloud id is read from ``/_edge/tenant_info`` (no credentials)
and the same check is tried through the gateway: if the gateway takes the token, the secret lacks ``cloudId``;
if not, the token is wrong, expired (API tokens last at most a year) or revoked.
"""

from __future__ import annotations

import requests

from ..errors import AtlassianAuthError, AttachError
from .assets_client import AssetsClient
from .routes import tenant_cloud_id
from .secret import AtlassianSecret, FixedSecret

# A harmless query: it proves the token may read the workspace, whatever objects there are.
DOCTOR_QUERY = 'Key = "DOCTOR-1"'

ROTATE = (
    "create a new API token (https://id.atlassian.com/manage-profile/security/api-tokens; tokens expire, at most "
    "a year after they are made) and put it in the secret's apiToken; it is picked up without a redeploy"
)
REFUSED = "Atlassian refuses this API token: it is mistyped, expired or revoked (or the e-mail is not its account)"


def probe_access(client: AssetsClient) -> None:
    """The workspace (discovered if the secret names none) and an AQL query in it."""
    client.aql(DOCTOR_QUERY, 1)


def diagnose_refusal(session: requests.Session, api_base_url: str, secret: AtlassianSecret) -> list[str]:
    """The fix for a 401, as lines to print; the last line, where there is one to add, is that secret line."""
    if secret.cloud_id:
        return [f"{REFUSED}, even through the API gateway (cloudId); {ROTATE}"]
    if not secret.site_url:
        return [
            f"{REFUSED}; {ROTATE}",
            'a scoped API token or service account needs "cloudId" too: add "siteUrl" and run doctor again to find it',
        ]
    try:
        cloud_id = tenant_cloud_id(session, secret.site_url)
    except AttachError as e:
        return [f"{REFUSED}; {ROTATE}", f"(the site's cloud id could not be read to try the API gateway: {e})"]
    add_line = f'"cloudId": "{cloud_id}"'
    through_gateway = secret.model_copy(update={"cloud_id": cloud_id})
    try:
        probe_access(AssetsClient(session, api_base_url, FixedSecret(through_gateway)))
    except AtlassianAuthError as e:
        if e.status == 401:
            return [f"{REFUSED}, on the site and through the API gateway; {ROTATE}"]
        return [
            "this is a scoped API token (or service account): it works only through the API gateway, and it "
            f"lacks a scope there ({e}); give it the scopes the README lists, and add this line to the secret:",
            add_line,
        ]
    except AttachError as e:
        return [
            "this is a scoped API token (or service account): it works only through the API gateway "
            f"(where the check then failed: {e}); add this line to the secret:",
            add_line,
        ]
    return [
        "this is a scoped API token (or service account): it works only through the API gateway; "
        "add this line to the secret:",
        add_line,
    ]
