"""Scoped API tokens and service accounts (issue 17 §2), over real protocols: webhook → SQS → worker in the local
stack, against the simulator playing a scoped token.

Facts relied on: a scoped API token (the only kind a service account can have) answers 401 on the site URL and
must go through the API gateway, ``https://api.atlassian.com/ex/jira/{cloudId}/{path}`` (Atlassian support KB
"401 unauthorized error when service account accesses Jira or Confluence API"); the Assets base then is
``.../ex/jira/{cloudId}/jsm/assets/workspace/{workspaceId}/v1`` (jira.js Assets guide).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from assets_attach.runtime import get_runtime
from devstack.atlassian_sim import SimRequest
from devstack.lambda_local import LocalWorker
from devstack.log_capture import CapturedLogs
from devstack.stack import LocalStack, patched_environ
from devstack.webhook_client import job_status, post


def basic_auth_calls(stack: LocalStack) -> list[SimRequest]:
    """The calls that carried the Basic credentials (recorded by scheme only)."""
    return [r for r in stack.sim.requests if r.headers.get("Authorization", "").lower() == "basic"]


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param({}, id="workspace-and-site-given"),
        pytest.param({"workspaceId": None, "siteUrl": None}, id="cloud-id-only-workspace-discovered-via-gateway"),
    ],
)
def test_a_scoped_token_with_cloud_id_attaches_s3_and_jira_sources_all_through_the_api_gateway(
    stack: LocalStack, api: str, worker: LocalWorker, secret: dict[str, Any], logs: CapturedLogs
) -> None:
    """KB "401 unauthorized error when service account accesses Jira or Confluence API": /ex/jira/{cloudId}/…"""
    sim = stack.sim
    sim.scoped_tokens = True
    stack.put_secret(cloudId=sim.cloud_id, **secret)
    jira_data = b"%PDF-1.7 from the issue"
    jira_id = sim.add_jira_attachment("SUP-21", "handover.pdf", jira_data, "application/pdf")
    stack.put("attachments/contract.txt", b"signed", "text/plain")
    body = {
        "objectKey": "HW-42",
        "s3Uri": f"s3://{stack.bucket}/attachments/contract.txt",
        "jiraAttachments": [jira_id],
        "issueKey": "SUP-21",
    }

    reply = post(api, stack, body)
    assert reply.status_code == 202, reply.text
    worker.drain()

    job = job_status(stack, reply.json()["statusUrl"])
    assert job["status"] == "succeeded", job
    landed = {a.filename: a.sha256 for a in sim.attachments("1234")}
    assert landed == {
        "contract.txt": hashlib.sha256(b"signed").hexdigest(),
        "handover.pdf": hashlib.sha256(jira_data).hexdigest(),
    }
    calls = basic_auth_calls(stack)
    gateway = f"/ex/jira/{sim.cloud_id}/"
    assert calls and all(r.path.startswith(gateway) for r in calls), [r.path for r in calls]
    assert all(r.status != 401 for r in calls)  # the right route the first time
    paths = {r.path.removeprefix(gateway.rstrip("/")) for r in calls}
    assert f"/rest/api/3/attachment/{jira_id}" in paths  # accepted: Jira metadata
    assert f"/rest/api/3/attachment/content/{jira_id}" in paths  # the worker: Jira content
    ws = sim.workspace_id
    assert {f"/jsm/assets/workspace/{ws}/v1/object/aql", f"/jsm/assets/workspace/{ws}/v1/attachments/object/1234"} <= (
        paths
    )
    if "workspaceId" in secret:  # no workspaceId: discovered once, through the gateway too
        assert "/rest/servicedeskapi/assets/workspace" in paths
    # The media host is unchanged: the upload went there with the media JWT, not the Basic credentials.
    assert any(r.path.startswith("/media/") and r.headers.get("Authorization") == "Bearer" for r in sim.requests)


def test_a_scoped_token_without_cloud_id_fails_with_an_auth_error_that_names_cloud_id(
    stack: LocalStack, api: str, worker: LocalWorker, logs: CapturedLogs
) -> None:
    """The same scoped token on the site and on api.atlassian.com/jsm/… without the gateway prefix: 401."""
    stack.sim.scoped_tokens = True
    stack.put("attachments/a.txt", b"a")

    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"})
    assert reply.status_code == 202, reply.text
    worker.drain()

    job = job_status(stack, reply.json()["statusUrl"])
    [file] = job["files"]
    assert (job["status"], file["status"], file["errorCode"]) == ("failed", "failed", "atlassian_auth_failed")
    assert "HTTP 401" in file["error"] and '"cloudId"' in file["error"] and "expired" in file["error"]
    assert job["attempts"] == 1  # not retried: waiting does not fix a route
    refused = basic_auth_calls(stack)
    assert refused and all(r.status == 401 and not r.path.startswith("/ex/") for r in refused)
    assert stack.sim.attachments("1234") == []

    # A Jira source is checked at acceptance, on the site: refused there too, and the log says why.
    jira_id = stack.sim.add_jira_attachment("SUP-22", "a.pdf", b"%PDF", "application/pdf")
    jira_reply = post(api, stack, {"objectId": "1234", "jiraAttachments": [jira_id]})
    assert jira_reply.status_code == 500 and jira_reply.json()["error"]["code"] == "atlassian_auth_failed"
    assert "a scoped API token or service account needs" in logs.text


def test_a_wrong_cloud_id_is_a_404_from_the_gateway_and_a_malformed_one_never_leaves(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    stack.put("attachments/a.txt", b"a")
    stack.put_secret(cloudId="00000000-0000-4000-8000-000000000000")
    reply = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt"})
    worker.drain()
    [file] = job_status(stack, reply.json()["statusUrl"])["files"]
    assert file["status"] == "failed" and "HTTP 404" in file["error"]
    assert all(r.status == 404 for r in basic_auth_calls(stack))

    calls_before = len(stack.sim.requests)
    stack.put_secret(cloudId="../../evil.example.com")
    get_runtime.cache_clear()
    refused = post(api, stack, {"objectId": "1234", "s3Uri": f"s3://{stack.bucket}/attachments/a.txt", "comment": "2"})
    assert refused.status_code == 500 and refused.json()["error"]["code"] == "config_error"
    assert "evil" not in refused.text
    assert len(stack.sim.requests) == calls_before


def test_through_the_gateway_a_redirect_to_the_media_host_is_still_followed_without_basic_credentials(
    stack: LocalStack, api: str, worker: LocalWorker
) -> None:
    """The media host is not behind the gateway: the content endpoint's 303 is followed as before, token-less."""
    sim = stack.sim
    sim.scoped_tokens = True
    sim.always_redirect_content = True
    stack.put_secret(cloudId=sim.cloud_id, siteUrl=None)
    data = b"redirected bytes"
    jira_id = sim.add_jira_attachment("SUP-23", "redirected.bin", data, "application/octet-stream")
    with patched_environ({"MEDIA_ALLOWED_HOSTS": f"127.0.0.1,{sim.media_download_host}"}):
        get_runtime.cache_clear()
        reply = post(api, stack, {"objectId": "1234", "jiraAttachments": [jira_id]})
        assert reply.status_code == 202, reply.text
        worker.drain()
    get_runtime.cache_clear()

    assert job_status(stack, reply.json()["statusUrl"])["status"] == "succeeded"
    assert [a.sha256 for a in sim.attachments("1234")] == [hashlib.sha256(data).hexdigest()]
    content = f"/ex/jira/{sim.cloud_id}/rest/api/3/attachment/content/{jira_id}"
    assert [r.status for r in sim.requests if r.path == content] == [303]
    downloads = [r for r in sim.requests if r.method == "GET" and r.path.startswith("/media/file/")]
    assert downloads and all("Authorization" not in r.headers for r in downloads)
