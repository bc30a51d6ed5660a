"""What a Jira rule (or curl) does with the webhook: POST a request, GET a job's status, list jobs."""

from __future__ import annotations

import json
from typing import Any

import requests

from devstack.stack import LocalStack


def post(api: str, stack: LocalStack, body: Any, *, token: str | None = None, raw: str | None = None,
         content_type: str = "application/json") -> requests.Response:  # fmt: skip
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token or stack.webhook_token}"}
    data = raw if raw is not None else json.dumps(body)
    return requests.post(f"{api}/attachments", data=data.encode(), headers=headers, timeout=30)


def job_status(stack: LocalStack, status_url: str) -> dict[str, Any]:
    reply = requests.get(status_url, headers={"Authorization": f"Bearer {stack.webhook_token}"}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def list_jobs(api: str, stack: LocalStack, **params: str | int) -> requests.Response:
    """``GET /attachments/jobs`` with these query parameters."""
    headers = {"Authorization": f"Bearer {stack.webhook_token}"}
    return requests.get(f"{api}/attachments/jobs", params=params, headers=headers, timeout=30)
