"""The simulator's API gateway routes and scoped-token mode, asked over HTTP as a client would.

Facts played: a scoped API token (the only kind a service account can have) answers 401 on the site URL and works
through ``/ex/jira/{cloudId}/{path}`` (Atlassian support KB "401 unauthorized error when service account accesses
Jira or Confluence API"); ``GET {site}/_edge/tenant_info`` answers ``{"cloudId"}`` without authentication
(Atlassian KB "Retrieve my Atlassian site's Cloud ID").
"""

from __future__ import annotations

import requests

from devstack.atlassian_sim import AtlassianSimulator


def get(sim: AtlassianSimulator, path: str, *, auth: bool = True) -> requests.Response:
    credentials = (sim.email, sim.api_token) if auth else None
    return requests.get(sim.base_url + path, auth=credentials, timeout=10)


def test_tenant_info_answers_the_cloud_id_without_auth(sim: AtlassianSimulator) -> None:
    reply = get(sim, "/_edge/tenant_info", auth=False)
    assert reply.status_code == 200 and reply.json() == {"cloudId": sim.cloud_id}


def test_the_gateway_serves_the_same_routes_for_its_cloud_id_only(sim: AtlassianSimulator) -> None:
    workspace = "/rest/servicedeskapi/assets/workspace"
    attachments = f"/jsm/assets/workspace/{sim.workspace_id}/v1/attachments/object/1234"
    for path in (workspace, attachments):
        assert get(sim, path).json() == get(sim, f"/ex/jira/{sim.cloud_id}{path}").json()
    other_cloud = "00000000-0000-4000-8000-000000000000"
    assert get(sim, f"/ex/jira/{other_cloud}{workspace}").status_code == 404
    assert get(sim, f"/ex/jira/{sim.cloud_id}/media/file").status_code == 404  # the media host is not routed
    assert get(sim, f"/ex/jira/{sim.cloud_id}{workspace}", auth=False).status_code == 401
    assert [r.path for r in sim.requests][-1] == f"/ex/jira/{sim.cloud_id}{workspace}"  # recorded as sent


def test_a_scoped_token_works_only_under_the_gateway_prefix(sim: AtlassianSimulator) -> None:
    sim.scoped_tokens = True
    site = "/rest/servicedeskapi/assets/workspace"
    assets = f"/jsm/assets/workspace/{sim.workspace_id}/v1/attachments/object/1234"
    assert get(sim, site).status_code == 401  # the site URL
    assert get(sim, assets).status_code == 401  # api.atlassian.com/jsm/... without the prefix
    assert get(sim, f"/ex/jira/{sim.cloud_id}{site}").status_code == 200
    assert get(sim, f"/ex/jira/{sim.cloud_id}{assets}").status_code == 200
    assert get(sim, "/_edge/tenant_info", auth=False).status_code == 200
