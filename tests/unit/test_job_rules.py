"""Pure rules of the job flow: request parsing, back-off, job views, settings and where credentials may go."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from assets_attach.atlassian.secret import _read_error, parse_secret
from assets_attach.atlassian.url_policy import require_secure_url
from assets_attach.attach_request import parse_attach_request
from assets_attach.aws.job_queue import MAX_VISIBILITY_SECONDS
from assets_attach.aws.s3_source import _translate
from assets_attach.core import retry_policy
from assets_attach.core.job_runner import seconds_needed
from assets_attach.errors import AttachError, BadRequestError, ConfigError
from assets_attach.handlers.webhook import wait_budget
from assets_attach.job_record import JobRecord
from assets_attach.object_ids import parse_object_ids
from assets_attach.pins import pin_for
from assets_attach.settings import Settings


def _workspace() -> str:
    return "ws-1"


def test_a_single_file_request() -> None:
    request = parse_attach_request(
        {"objectId": "ws-1:77", "s3Uri": "s3://bkt/a/b c.pdf", "filename": "B.pdf", "issueKey": "IT-1"}, _workspace
    )
    assert (request.object_ids, request.object_keys, request.issue_key, request.jira) == (("77",), (), "IT-1", None)
    [wanted] = request.files
    assert (wanted.bucket, wanted.key, wanted.filename, wanted.comment, wanted.field_prefix) == (
        "bkt",
        "a/b c.pdf",
        "B.pdf",
        "",
        "",
    )


def test_a_multi_file_request_names_fields_by_index() -> None:
    request = parse_attach_request(
        {"objectKey": "HW-42", "files": [{"bucket": "bkt", "key": "x"}, {"s3Uri": "s3://b2/y"}]}, _workspace
    )
    assert [(f.bucket, f.key, f.field_prefix) for f in request.files] == [
        ("bkt", "x", "files[0]."),
        ("b2", "y", "files[1]."),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"objectId": 1, "objectKey": "HW-1", "s3Uri": "s3://b/k"}, "objectId"),
        ({"objectKey": "not a key", "s3Uri": "s3://b/k"}, "objectKey"),
        ({"objectId": 1, "s3Uri": "s3://b/k", "bucket": "bkt"}, "s3Uri"),
        ({"objectId": 1, "bucket": "bkt", "key": "folder/"}, "key"),
        ({"objectId": 1, "files": [{"s3Uri": "s3://b/k", "extra": 1}]}, "files[0].extra"),
        ({"objectId": 1, "s3Uri": "s3://b/k", "comment": "x" * 2001}, "comment"),
        ({"objectId": 1, "s3Uri": 5}, "s3Uri"),
        ("not an object", "body"),
        ({"objectId": "ws-2:77", "s3Uri": "s3://b/k"}, "objectId"),  # another workspace's object
        ({"objectId": 1, "s3Uri": "s3://b/k", "filename": "a\r\nb.pdf"}, "filename"),
        ({"objectId": 1, "s3Uri": "s3://b/k", "filename": "a\x00b.pdf"}, "filename"),
        ({"objectId": 1, "s3Uri": "s3://b/k", "filename": "a\x85b.pdf"}, "filename"),
        ({"objectId": 1, "s3Uri": "s3://b/k", "filename": "../etc/passwd"}, "filename"),
        ({"objectId": 1, "s3Uri": "s3://b/k", "filename": "C:\\x.pdf"}, "filename"),
        ({"objectId": 1, "files": [{"s3Uri": "s3://b/k", "filename": "x/y"}]}, "files[0].filename"),
        ({"objectId": 1, "bucket": "bkt", "key": "k" * 1025}, "key"),
        ({"objectId": 1, "bucket": "bkt", "key": "ü" * 513}, "key"),  # 1,026 UTF-8 bytes in 513 characters
        ({"objectId": 1, "s3Uri": "s3://bkt/" + "k" * 1025}, "s3Uri"),
    ],
)
def test_bad_requests_name_the_field(body: object, field: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_attach_request(body, _workspace)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "given",
    ["10000, 10001", "10000 10001", "10000,10001", " 10000,\n10001 ,10000 ", [10000, "10001"], ["10000", 10001, 10000]],
)
def test_jira_attachments_as_a_list_or_one_string_as_jira_renders_it(given: object) -> None:
    """``{{issue.attachment.id}}`` renders "10000, 10001": read as objectId reads such a string."""
    request = parse_attach_request({"objectId": "1", "jiraAttachments": given}, _workspace)
    assert request.jira is not None
    assert request.jira.ids == ("10000", "10001")
    assert not request.jira.all_of_issue


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ("", "jiraAttachments"),
        (" , ", "jiraAttachments"),
        ("10000, 12ab", "jiraAttachments"),
        (["10000", "12ab"], "jiraAttachments[1]"),
        (" ".join(str(n) for n in range(10001, 10022)), "jiraAttachments"),
        ({"id": 1}, "jiraAttachments"),
        (True, "jiraAttachments"),
    ],
)
def test_bad_jira_attachment_ids_name_the_field(given: object, field: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_attach_request({"objectId": "1", "jiraAttachments": given}, _workspace)
    assert caught.value.field == field


def test_backoff_honours_retry_after_and_otherwise_doubles_to_a_cap_with_atlassians_jitter() -> None:
    """ATLASSIAN_FACTS.md, "Jira REST v3" (Rate limiting): from a few seconds, capped around 30 s, jitter x0.7-1.3."""
    assert retry_policy.backoff_seconds(1, retry_after=7) == 7
    assert retry_policy.backoff_seconds(1, retry_after=10**9) == MAX_VISIBILITY_SECONDS
    for attempt, base in [(1, 5), (2, 10), (3, 20), (4, 30), (9, 30)]:
        waits = [retry_policy.backoff_seconds(attempt) for _ in range(200)]
        assert all(base * 0.7 <= w <= base * 1.3 for w in waits)
        assert max(waits) - min(waits) > 0  # jittered


def test_a_file_starts_only_with_time_for_it() -> None:
    assert seconds_needed(0) == 20
    assert 120 < seconds_needed(1024**3) < 125  # 1 GiB at a cautious 10 MiB/s, plus the fixed steps


def test_public_view_shows_the_contract_fields_only() -> None:
    record = {
        "jobId": "j1",
        "status": "failed",
        "objectId": "1234",
        "issueKey": "IT-1",
        "error": "1 of 1 file(s) failed",
        "origin": "webhook",
        "attempts": 2,
        "createdAt": "t0",
        "updatedAt": "t1",
        "expiresAt": 123,
        "files": [
            {"bucket": "b", "key": "k", "filename": "f", "size": 3, "status": "failed", "error": "gone",
             "versionId": "v", "etag": "e", "mediaId": "m", "linkMarker": {"afterId": 3, "generation": 1}}
        ],
    }  # fmt: skip
    assert JobRecord.model_validate(record).public_view() == {
        "jobId": "j1",
        "status": "failed",
        "objectId": "1234",
        "issueKey": "IT-1",
        "error": "1 of 1 file(s) failed",
        "summary": "0 of 1 attached; f: gone.",
        "attempts": 2,
        "createdAt": "t0",
        "updatedAt": "t1",
        "files": [{"bucket": "b", "key": "k", "filename": "f", "size": 3, "status": "failed", "error": "gone"}],
    }


def test_pins() -> None:
    assert pin_for("v1", '"e"') == {"VersionId": "v1"}
    assert pin_for("null", "e") == {"IfMatch": '"e"'}
    assert pin_for(None, '"e"') == {"IfMatch": '"e"'}
    assert pin_for(None, None) == {}


def test_settings_prefix_and_buckets() -> None:
    assert Settings.from_env({"S3_KEY_PREFIX": "uploads"}).s3_key_prefix == "uploads/"
    assert Settings.from_env({"S3_KEY_PREFIX": "/in/box/"}).s3_key_prefix == "in/box/"
    assert Settings.from_env({"UPLOADS_BUCKET": "up"}).webhook_buckets == {"up"}
    assert Settings.from_env({"UPLOADS_BUCKET": "up", "ALLOWED_BUCKETS": "a,b"}).webhook_buckets == {"a", "b"}


def test_credentials_go_only_over_tls() -> None:
    assert require_secure_url("https://api.atlassian.com/", "X") == "https://api.atlassian.com"
    assert require_secure_url("http://127.0.0.1:8080", "X") == "http://127.0.0.1:8080"
    for url in ["http://api.atlassian.com", "ftp://x", "api.atlassian.com"]:
        with pytest.raises(ConfigError):
            require_secure_url(url, "X")
    with pytest.raises(ConfigError):
        Settings.from_env({"ASSETS_API_BASE_URL": "http://example.atlassian.net"})
    with pytest.raises(ConfigError) as caught:
        parse_secret({"email": "a@b.c", "apiToken": "t", "siteUrl": "http://example.atlassian.net"}, "s")
    assert "siteUrl" in str(caught.value)


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetSecretValue")


def test_secret_read_errors_are_permanent_or_passing() -> None:
    missing = _read_error("s", _client_error("ResourceNotFoundException"))
    assert isinstance(missing, ConfigError) and "fill it" in str(missing)
    assert isinstance(_read_error("s", _client_error("AccessDeniedException")), ConfigError)
    throttled = _read_error("s", _client_error("ThrottlingException"))
    assert type(throttled) is AttachError and throttled.retryable
    assert _read_error("s", ConnectionError()).retryable


@pytest.mark.parametrize(
    ("error", "permanent_code"),
    [
        (AttachError("passing", retryable=True), None),
        (BadRequestError("bad"), "bad_request"),
        (UnicodeEncodeError("ascii", "ä", 0, 1, "no"), "internal_error"),
        (KeyError("x"), "internal_error"),
        (TypeError("x"), "internal_error"),
        (ConnectionError("reset"), None),  # weather, not a defect
        (TimeoutError(), None),
    ],
)
def test_which_errors_fail_at_once(error: Exception, permanent_code: str | None) -> None:
    permanent = retry_policy.permanent_error(error)
    assert (permanent.code if permanent else None) == permanent_code
    if permanent is not None and not isinstance(error, AttachError):
        assert type(error).__name__ in permanent.message and "ä" not in permanent.message  # the type, not the data


@pytest.mark.parametrize("code", ["400", "InvalidArgument", "KeyTooLongError"])
def test_an_s3_400_is_never_retried(code: str) -> None:
    error = _translate(ClientError({"Error": {"Code": code}}, "HeadObject"), "s3://b/k", "s3-head", pinned=False)
    assert isinstance(error, BadRequestError) and not error.retryable and error.field == "key"


def test_s3_errors_under_a_pin_say_deleted_or_changed() -> None:
    def translate(code: str, pinned: bool) -> AttachError:
        return _translate(ClientError({"Error": {"Code": code}}, "GetObject"), "s3://b/k", "s3-read", pinned=pinned)

    assert translate("NoSuchVersion", True).code == "source_deleted"
    assert translate("404", True).code == "source_deleted"
    assert translate("PreconditionFailed", True).code == "source_changed"
    assert translate("NoSuchKey", False).code == "source_not_found"
    assert translate("SlowDown", True).retryable


@pytest.mark.parametrize(
    ("requested", "invocation_left", "received_ago", "budget"),
    [
        (25, 28.9, 0.1, 21.0),  # a warm start: API Gateway's 29 s since the request, less the answer's margin
        (25, 28.9, 6.0, 19.0),  # a cold start's 6 s of init count against API Gateway's 29 s, not the invocation's
        (5, 28.9, 0.1, 1.0),
        (25, 10.0, 0.1, 6.0),  # the invocation's own timeout
        (25, 28.9, 27.0, 0.0),  # nothing left: answer 202 at once
        (25, 28.9, None, 21.0),  # no request time known: the invocation's time left alone
    ],
)
def test_a_wait_ends_in_time_for_api_gateways_29_s_counted_from_the_request(
    requested: float, invocation_left: float, received_ago: float | None, budget: float
) -> None:
    """Issue 18 §8: API Gateway's 29 s cover a cold start's init too."""
    now = 1_800_000_000.0
    received = now - received_ago if received_ago is not None else 0.0
    assert wait_budget(requested, invocation_left=invocation_left, received=received, now=now) == pytest.approx(budget)


@pytest.mark.parametrize("value", [",".join(["1234"] * 1_200_000), ["1234"] * 1_200_000])
def test_a_million_object_ids_are_refused_before_they_are_parsed(value: object) -> None:
    """Issue 18 §11: ~1.2 M ids cost 1.5 s of CPU before the 400; now they are refused on sight (a repeat is fine
    below the cap: 10 ids naming one object are one object)."""
    with pytest.raises(BadRequestError, match="at most 20"):
        parse_object_ids(value, lambda: "ws")
    assert parse_object_ids(",".join(["1234"] * 10), lambda: "ws") == ("1234",)
