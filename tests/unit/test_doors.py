"""The two doors to the outside: ``http_session.send`` (every Atlassian call) and ``aws_calls.aws_call`` (every AWS
call). What each promises every caller: timeouts, no redirect followed, one translation of failures."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError, EndpointConnectionError

from assets_attach.atlassian.http_session import REDIRECTS, send
from assets_attach.atlassian.media_api import MediaCredentials, send_media
from assets_attach.aws.aws_calls import aws_call
from assets_attach.errors import AtlassianAuthError, AtlassianError, AttachError, MediaTokenExpiredError

URL = "https://api.example/rest/thing"


class _Closable(requests.Response):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _reply(status: int, body: object = None, headers: dict[str, str] | None = None) -> _Closable:
    reply = _Closable()
    reply.status_code = status
    reply._content = json.dumps(body or {}).encode()
    reply.headers.update(headers or {})
    return reply


class _Session(requests.Session):
    """Answers with ``reply`` (or raises it) and keeps what each call asked for (no network)."""

    def __init__(self, reply: requests.Response | requests.RequestException) -> None:
        super().__init__()
        self.reply = reply
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: object, **kwargs: Any) -> requests.Response:
        self.calls.append(kwargs)
        if isinstance(self.reply, requests.RequestException):
            raise self.reply
        return self.reply


def test_every_call_has_timeouts_and_follows_no_redirect() -> None:
    session = _Session(_reply(200))
    send(session, "GET", URL, step="jira")
    send(session, "POST", URL, step="upload", read_timeout="upload", auth=("a@b.c", "token"))
    first, upload = session.calls
    assert (first["timeout"], first["allow_redirects"], first["auth"]) == ((10.0, 60.0), False, None)
    assert (upload["timeout"], upload["allow_redirects"], upload["auth"]) == ((10.0, 300.0), False, ("a@b.c", "token"))


def test_a_redirect_is_an_error_unless_the_caller_takes_it_back() -> None:
    with pytest.raises(AtlassianError) as refused:
        send(_Session(_reply(302, headers={"Location": "https://elsewhere.example/x"})), "GET", URL, step="jira")
    assert (refused.value.status, refused.value.retryable, refused.value.step) == (302, False, "jira")
    taken = send(_Session(_reply(302)), "GET", URL, step="jira-read", passes=REDIRECTS)
    assert taken.status_code == 302


def test_an_error_reply_is_closed_and_raised_as_what_it_means() -> None:
    throttled = _reply(429, {"message": "slow down"}, {"Retry-After": "7"})
    with pytest.raises(AtlassianError) as error:
        send(_Session(throttled), "GET", URL, step="aql")
    assert (error.value.status, error.value.retryable, error.value.retry_after) == (429, True, 7.0)
    assert "slow down" in error.value.message and throttled.closed
    with pytest.raises(AtlassianAuthError):
        send(_Session(_reply(401)), "GET", URL, step="credentials")


def test_a_network_error_is_retryable_and_names_no_url() -> None:
    failure = requests.ConnectionError("HTTPSConnectionPool(host='api.example'): /x?token=secret")
    with pytest.raises(AtlassianError) as error:
        send(_Session(failure), "GET", URL, step="link")
    assert (error.value.message, error.value.retryable, error.value.step) == (
        "cannot reach Atlassian (ConnectionError)",
        True,
        "link",
    )
    assert error.value.__cause__ is failure


def test_a_media_401_is_the_token_expiring_and_any_other_refusal_as_every_call() -> None:
    credentials = MediaCredentials.model_validate(
        {"clientId": "client", "mediaBaseUrl": "https://api.media.atlassian.com", "mediaJwtToken": "jwt"}
    )
    session = _Session(_reply(401, headers={"Retry-After": "2"}))
    with pytest.raises(MediaTokenExpiredError) as expired:
        send_media(session, "GET", URL, credentials)
    assert (expired.value.step, expired.value.retry_after) == ("upload", 2.0)
    assert session.calls[0]["headers"] == {"Authorization": "Bearer jwt", "X-Client-Id": "client"}
    with pytest.raises(AtlassianAuthError):
        send_media(_Session(_reply(403)), "GET", URL, credentials)


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "UpdateItem")


def test_a_failed_condition_passes_through_as_the_adapters_answer() -> None:
    condition = _client_error("ConditionalCheckFailedException")
    with pytest.raises(ClientError) as passed, aws_call("taking the lease failed", "lease"):
        raise condition
    assert passed.value is condition


def test_an_aws_failure_is_retryable_unless_the_adapter_reads_it_otherwise() -> None:
    with pytest.raises(AttachError) as throttled, aws_call("the job store failed to read the job", "jobs"):
        raise _client_error("ProvisionedThroughputExceededException")
    assert (throttled.value.message, throttled.value.retryable) == ("the job store failed to read the job", True)

    def missing(error: ClientError) -> AttachError | None:
        return AttachError("gone", step="s3-head") if error.response["Error"]["Code"] == "NoSuchKey" else None

    with pytest.raises(AttachError) as read, aws_call("cannot reach S3", "s3-head", refusal=missing):
        raise _client_error("NoSuchKey")
    assert (read.value.message, read.value.retryable) == ("gone", False)
    with pytest.raises(AttachError) as unreachable, aws_call("cannot reach S3", "s3-head", name_error=True):
        raise EndpointConnectionError(endpoint_url="https://s3.example")
    assert (unreachable.value.message, unreachable.value.retryable) == (
        "cannot reach S3 (EndpointConnectionError)",
        True,
    )
