"""Which base URL each Atlassian call goes to (``routes``), and the secret's ``cloudId`` (issue 17 §2).

Facts: scoped API tokens (the only kind a service account can have) answer 401 on the site URL and must go
through ``https://api.atlassian.com/ex/jira/{cloudId}/{path}`` (Atlassian support KB "401 unauthorized error when
service account accesses Jira or Confluence API"); the Assets base then is
``https://api.atlassian.com/ex/jira/{cloudId}/jsm/assets/workspace/{workspaceId}/v1`` (jira.js Assets guide).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from assets_attach.atlassian.assets_client import AssetsClient
from assets_attach.atlassian.routes import Routes, explain_refusal
from assets_attach.atlassian.secret import AtlassianSecret, FixedSecret, parse_secret, unknown_keys
from assets_attach.errors import AtlassianAuthError, AtlassianError, ConfigError, SiteUrlMissingError

API = "https://api.atlassian.com"
SITE = "https://example.atlassian.net"
CLOUD = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def secret(**fields: Any) -> AtlassianSecret:
    base: dict[str, Any] = {"email": "bot@example.com", "apiToken": "t0ken-value", "workspaceId": "ws-1"}
    return parse_secret({**base, **fields}, "test")


@pytest.mark.parametrize(
    ("fields", "site", "assets"),
    [
        pytest.param({}, None, f"{API}/jsm/assets/workspace/ws-1/v1", id="classic-token-workspace-only"),
        pytest.param({"siteUrl": SITE}, SITE, f"{API}/jsm/assets/workspace/ws-1/v1", id="classic-token-unchanged"),
        pytest.param(
            {"cloudId": CLOUD},
            f"{API}/ex/jira/{CLOUD}",
            f"{API}/ex/jira/{CLOUD}/jsm/assets/workspace/ws-1/v1",
            id="kb-scoped-token-everything-through-the-gateway",
        ),
        pytest.param(
            {"cloudId": CLOUD, "siteUrl": SITE},
            f"{API}/ex/jira/{CLOUD}",
            f"{API}/ex/jira/{CLOUD}/jsm/assets/workspace/ws-1/v1",
            id="cloud-id-wins-over-site-url",
        ),
    ],
)
def test_the_routing_rule(fields: dict[str, Any], site: str | None, assets: str) -> None:
    routes = Routes(API)
    given = secret(**fields)
    assert routes.site(given) == site
    assert routes.assets(given, "ws-1") == assets


def test_the_gateway_is_on_the_configured_api_host_and_jira_calls_need_a_site_or_a_cloud_id() -> None:
    local = Routes("http://127.0.0.1:8080/")
    assert local.jira(secret(cloudId=CLOUD)) == f"http://127.0.0.1:8080/ex/jira/{CLOUD}"
    with pytest.raises(SiteUrlMissingError) as missing:
        local.jira(secret())
    assert '"siteUrl"' in missing.value.message and '"cloudId"' in missing.value.message


@pytest.mark.parametrize("workspace", ["x@evil.example", "a?b", "a#b", "a b", "..\\evil"])
def test_no_workspace_id_takes_the_credentials_off_the_api_host(workspace: str) -> None:
    try:
        url = Routes(API).assets(secret(), workspace)
    except ConfigError as e:
        assert workspace not in e.message
    else:
        assert url.startswith(f"{API}/jsm/assets/workspace/")
        assert str(requests.Request("GET", url).prepare().url).startswith(f"{API}/")


def test_a_secret_with_only_a_cloud_id_names_a_workspace_to_discover() -> None:
    assert secret(workspaceId=None, cloudId=f"  {CLOUD.upper()} ").cloud_id == CLOUD.upper()
    with pytest.raises(ConfigError, match="workspaceId, or siteUrl"):
        secret(workspaceId=None)


@pytest.mark.parametrize(
    "bad",
    [
        "not-a-cloud-id",
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4",  # one digit short
        "0a1b2c3d/4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        f"{CLOUD}/../../evil",
        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
        "",
        1234,
    ],
)
def test_a_malformed_cloud_id_is_refused_without_echoing_it(bad: Any) -> None:
    with pytest.raises(ConfigError) as refused:
        secret(cloudId=bad)
    assert "cloudId" in refused.value.message
    assert str(bad) not in refused.value.message.replace("cloudId", "") or bad == ""
    assert "t0ken-value" not in refused.value.message


@pytest.mark.parametrize(
    ("key", "nearest"),
    [
        ("webhookToken", "webhookTokens"),
        ("WebhookTokens", "webhookTokens"),
        ("apitoken", "apiToken"),
        ("cloudID", "cloudId"),
        ("siteURL", "siteUrl"),
        ("workspace", "workspaceId"),
        ("notes", None),
    ],
)
def test_an_unknown_key_is_reported_with_the_nearest_valid_one(key: str, nearest: str | None) -> None:
    data = {"email": "a@b.c", "apiToken": "t", "workspaceId": "w", key: "value"}
    assert unknown_keys(data) == [(key, nearest)]
    secret(**{key: "value"})  # parsing stays lenient: the key is ignored


def test_known_keys_and_field_names_are_not_reported() -> None:
    data = {"email": "a", "apiToken": "t", "workspaceId": "w", "siteUrl": SITE, "cloudId": CLOUD, "webhookTokens": []}
    assert unknown_keys({**data, "api_token": "t"}) == []
    assert unknown_keys(["not", "a", "mapping"]) == []


def test_a_401_says_what_to_do_by_route() -> None:
    refused = AtlassianAuthError("Atlassian refused the credentials", step="aql", status=401, retryable=False)
    off_gateway = explain_refusal(refused, secret(siteUrl=SITE))
    assert isinstance(off_gateway, AtlassianAuthError) and off_gateway.status == 401
    assert '"cloudId"' in off_gateway.message and "expired" in off_gateway.message
    on_gateway = explain_refusal(refused, secret(cloudId=CLOUD))
    assert "apiToken" in on_gateway.message and "cloudId" not in on_gateway.message
    other = AtlassianError("Atlassian answered 404", step="aql", status=404)
    assert explain_refusal(other, secret()) is other


class _Recorder(requests.Session):
    """Answers every request with one JSON reply and keeps the URLs asked for (no network)."""

    def __init__(self, body: Any) -> None:
        super().__init__()
        self.body = body
        self.urls: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: object, **kwargs: Any) -> requests.Response:
        self.urls.append(str(url))
        assert kwargs.get("auth") == ("bot@example.com", "t0ken-value")
        reply = requests.Response()
        reply.status_code = 200
        reply._content = json.dumps(self.body).encode()
        return reply


def test_workspace_discovery_goes_through_the_gateway_and_an_empty_list_says_no_assets() -> None:
    session = _Recorder({"values": [{"workspaceId": "ws-9"}]})
    client = AssetsClient(session, API, FixedSecret(secret(workspaceId=None, cloudId=CLOUD)))
    client.aql("Key = X", 1)
    assert session.urls == [
        f"{API}/ex/jira/{CLOUD}/rest/servicedeskapi/assets/workspace",
        f"{API}/ex/jira/{CLOUD}/jsm/assets/workspace/ws-9/v1/object/aql",
    ]

    empty = AssetsClient(_Recorder({"values": []}), API, FixedSecret(secret(workspaceId=None, siteUrl=SITE)))
    with pytest.raises(AtlassianError) as none:
        empty.aql("Key = X", 1)
    assert "this site has no Assets (Jira Service Management Premium/Enterprise)" in none.value.message
