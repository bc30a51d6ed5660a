"""The third tier: the webhook of a deployed stack, over the internet. Skipped unless AWS_SAM_STACK_NAME names one.

With AWS credentials for the stack's account and AWS_SAM_STACK_NAME set, these read the stack's outputs and
call its API. They check what needs no Atlassian data: authentication, validation and the error shapes. Set
ASSETS_ATTACH_WEBHOOK_TOKEN to one of the secret's webhookTokens to run the authenticated checks too.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
import requests

STACK = os.environ.get("AWS_SAM_STACK_NAME")
pytestmark = pytest.mark.skipif(not STACK, reason="set AWS_SAM_STACK_NAME to test a deployed stack")


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    stack: dict[str, Any] = boto3.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def test_the_webhook_refuses_a_request_without_a_token(outputs: dict[str, str]) -> None:
    reply = requests.post(outputs["WebhookUrl"], json={"objectId": "1"}, timeout=30)
    assert reply.status_code == 401
    assert reply.json()["error"]["field"] == "Authorization"


def test_bad_requests_name_the_field(outputs: dict[str, str]) -> None:
    token = os.environ.get("ASSETS_ATTACH_WEBHOOK_TOKEN")
    if not token:
        pytest.skip("set ASSETS_ATTACH_WEBHOOK_TOKEN to one of the secret's webhookTokens")
    headers = {"Authorization": f"Bearer {token}"}
    missing_key = requests.post(outputs["WebhookUrl"], json={"objectId": "1", "bucket": "x-bucket"}, headers=headers,
                                timeout=30)  # fmt: skip
    assert missing_key.status_code == 400 and missing_key.json()["error"]["field"] == "key"
    unknown_job = requests.get(outputs["JobStatusUrlPattern"].replace("{jobId}", "0" * 32), headers=headers, timeout=30)
    assert unknown_job.status_code == 404
