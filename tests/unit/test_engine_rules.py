"""Pure rules of the engine: names, ids, hosts, types, sizes and the multipart body."""

from __future__ import annotations

import hashlib
import json
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import quote

import pytest
import requests

from assets_attach.atlassian.http_session import raise_for_reply
from assets_attach.atlassian.media_api import UploadedMedia, confirmed_size
from assets_attach.atlassian.multipart import MultipartBody, ascii_fallback
from assets_attach.atlassian.secret import SecretSource, parse_secret
from assets_attach.atlassian.url_policy import check_media_base_url
from assets_attach.content_types import resolve_content_type
from assets_attach.errors import (
    AtlassianAuthError,
    AtlassianError,
    BadRequestError,
    ConfigError,
    IntegrityError,
    MediaHostNotAllowedError,
)
from assets_attach.integrity import StreamCheck, md5_from_etag
from assets_attach.object_ids import normalize_object_id, normalize_object_key
from assets_attach.settings import Settings
from assets_attach.sources import parse_s3_uri


def _workspace() -> str:
    return "ws-9f"


@pytest.mark.parametrize(("given", "expected"), [(1234, "1234"), ("1234", "1234"), (" 77 ", "77"), ("ws-9f:88", "88")])
def test_object_ids(given: object, expected: str) -> None:
    assert normalize_object_id(given, _workspace) == expected


@pytest.mark.parametrize("bad", ["", "abc", "0", "-1", "12.5", True, None, 1.5, "ws:", "1234 5", "other-ws:88"])
def test_bad_object_ids_name_the_field(bad: object) -> None:
    with pytest.raises(BadRequestError) as caught:
        normalize_object_id(bad, _workspace)
    assert caught.value.field == "objectId"


def test_another_workspaces_prefix_is_refused_and_the_workspace_asked_only_for_a_prefix() -> None:
    asked: list[int] = []

    def workspace() -> str:
        asked.append(1)
        return "ws-9f"

    assert normalize_object_id("88", workspace) == "88" and not asked
    with pytest.raises(BadRequestError) as caught:
        normalize_object_id("ws-other:88", workspace)
    assert "another Assets workspace" in caught.value.message and asked


def test_object_keys() -> None:
    assert normalize_object_key(" HW-42 ") == "HW-42"
    for bad in ["HW42", "42-HW", "HW-", 'HW-1" OR 1=1', None]:
        with pytest.raises(BadRequestError):
            normalize_object_key(bad)


@pytest.mark.parametrize(
    "url",
    ["https://api.media.atlassian.com", "https://eu.media.atlassian.com/", "http://127.0.0.1:8080/media"],
)
def test_media_hosts_allowed(url: str) -> None:
    patterns = ["api.media.atlassian.com", "*.atlassian.com", "127.0.0.1"]
    assert check_media_base_url(url, patterns) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://api.media.atlassian.com",  # no TLS
        "https://evil.example.com",
        "https://atlassian.com.evil.example.com",
        "https://user:pw@api.media.atlassian.com",
        "https://api.media.atlassian.com?x=1",
        "http://10.0.0.1",
        "not a url",
    ],
)
def test_media_hosts_refused(url: str) -> None:
    with pytest.raises(MediaHostNotAllowedError):
        check_media_base_url(url, ["api.media.atlassian.com", "*.atlassian.com", "10.0.0.1"])


@pytest.mark.parametrize(
    ("declared", "name", "expected"),
    [
        ("application/pdf", "x", "application/pdf"),
        ("text/plain; charset=utf-8", "x", "text/plain; charset=utf-8"),
        ('text/plain; name="a b"', "x", 'text/plain; name="a b"'),
        ("application/pdfä", "x.pdf", "application/pdf"),  # cannot go on the wire: from the name instead
        ("tëxt/plain", "x.txt", "text/plain"),
        ("text/plain\r\nX-Evil: 1", "x.csv", "text/csv"),
        ("not a type", "x.unknownext", "application/octet-stream"),
        ("binary/octet-stream", "x.pdf", "application/pdf"),
        ("", "x.png", "image/png"),
        (None, "x.unknownext", "application/octet-stream"),
        ("APPLICATION/OCTET-STREAM", "a.txt", "text/plain"),
    ],
)
def test_content_types(declared: str | None, name: str, expected: str) -> None:
    assert resolve_content_type(declared, name) == expected


def test_md5_from_etag() -> None:
    md5 = hashlib.md5(b"x").hexdigest()  # noqa: S324 - the ETag algorithm
    assert md5_from_etag(f'"{md5}"') == md5
    assert md5_from_etag(f'"{md5}-3"') is None
    assert md5_from_etag(f'"{md5}"', "aws:kms") is None
    assert md5_from_etag(f'"{md5}"', "AES256") == md5
    assert md5_from_etag(None) is None


def test_stream_check() -> None:
    data = [b"ab", b"cd"]
    check = StreamCheck(4, hashlib.md5(b"abcd").hexdigest())  # noqa: S324
    assert b"".join(check.wrap(data)) == b"abcd"
    check.verify()
    bad = StreamCheck(4, "0" * 32)
    list(bad.wrap(data))
    with pytest.raises(IntegrityError):
        bad.verify()


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ({"id": "m", "size": 4, "processingStatus": "succeeded"}, None),
        ({"id": "m", "size": 4, "processingStatus": "pending"}, None),
        ({"id": "m", "size": 4}, None),
        ({"id": "m", "size": 0, "processingStatus": "succeeded"}, "stored 0 bytes but 4 were sent"),
        ({"id": "m", "size": 4, "processingStatus": "failed"}, "failed to process"),
        ({"id": "m", "processingStatus": "pending"}, "would not say how many bytes"),
    ],
)
def test_nothing_is_linked_without_the_stored_size_matching_what_was_sent(
    reply: dict[str, object], problem: str | None
) -> None:
    """ATLASSIAN_FACTS.md, "Media service (single upload)": never link without knowing the stored size."""
    media = UploadedMedia.model_validate(reply)
    if problem is None:
        confirmed_size(media, 4)
        return
    with pytest.raises(IntegrityError, match=problem):
        confirmed_size(media, 4)


def test_multipart_body_has_exact_length_and_one_file_part() -> None:
    name = "Prüf “bericht”.pdf"
    body = MultipartBody(lambda: iter([b"%PDF", b"-1.7\r\n--x"]), 13, name, "application/pdf")
    raw = b"".join(body)
    assert len(raw) == len(body)
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + body.content_type.encode() + b"\r\n\r\n" + raw)
    [part] = list(message.iter_parts())
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "Pruf bericht.pdf"  # the ASCII fallback for clients that ignore filename*
    part_head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert f"filename*=UTF-8''{quote(name, safe='')}" in part_head
    assert part.get_content_type() == "application/pdf"
    assert part.get_payload(decode=True) == b"%PDF-1.7\r\n--x"


def test_multipart_body_refuses_a_source_that_lies_about_its_size() -> None:
    with pytest.raises(IntegrityError):
        list(MultipartBody(lambda: iter([b"abc"]), 4, "f", "text/plain"))
    with pytest.raises(IntegrityError):
        list(MultipartBody(lambda: iter([b"abcde"]), 4, "f", "text/plain"))


def test_ascii_fallback() -> None:
    assert ascii_fallback("Prüfbericht.pdf") == "Prufbericht.pdf"
    assert ascii_fallback("検査.pdf") == ".pdf"
    assert ascii_fallback("検査") == "file"
    assert ascii_fallback('a"b\\c\r\n.txt') == "abc.txt"


def test_s3_uri() -> None:
    assert parse_s3_uri("s3://bucket/a/b c.pdf") == ("bucket", "a/b c.pdf")
    for bad in ["bucket/key", "s3://bucket", "s3://bucket/", "s3:///key"]:
        with pytest.raises(BadRequestError):
            parse_s3_uri(bad)


def test_settings_defaults_and_errors() -> None:
    settings = Settings.from_env({})
    assert settings.assets_api_base_url == "https://api.atlassian.com"
    assert settings.media_allowed_hosts == ("api.media.atlassian.com", "*.atlassian.com")
    assert settings.max_file_size_bytes == 1024**3
    assert settings.media_upload_path == "/file"
    assert settings.s3_key_prefix == "attachments/"
    assert Settings.from_env({"ALLOWED_BUCKETS": " a, b ,", "MEDIA_UPLOAD_PATH": "file/binary"}).allowed_buckets == (
        "a",
        "b",
    )
    for env in [{"MAX_FILE_SIZE_BYTES": "1GB"}, {"MAX_FILE_SIZE_BYTES": "0"}, {"MEDIA_UPLOAD_PATH": "/upload"}]:
        with pytest.raises(ConfigError):
            Settings.from_env(env)


def test_secret_errors_name_fields_but_never_echo_the_token() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_secret({"email": "a@b.c", "apiToken": "SUPER-SECRET-TOKEN"}, "secret x")
    assert "workspaceId" in str(caught.value)
    assert "SUPER-SECRET" not in str(caught.value)
    secret = parse_secret({"email": "a@b.c", "apiToken": "SUPER-SECRET-TOKEN", "workspaceId": "w"}, "secret x")
    assert "SUPER-SECRET" not in repr(secret)
    assert secret.basic_auth == ("a@b.c", "SUPER-SECRET-TOKEN")


def test_secret_from_environment() -> None:
    env = {"ATLASSIAN_EMAIL": "a@b.c", "ATLASSIAN_API_TOKEN": "t", "ASSETS_WORKSPACE_ID": "w"}
    assert SecretSource(None, env=env).get().workspace_id == "w"
    with pytest.raises(ConfigError) as caught:
        SecretSource(None, env={"ATLASSIAN_EMAIL": "a@b.c"}).get()
    assert "ATLASSIAN_API_TOKEN" in str(caught.value)


def _reply(status: int, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


def test_error_replies_map_to_retryable_or_not() -> None:
    raise_for_reply(_reply(201, {}), "link")
    with pytest.raises(AtlassianAuthError):
        raise_for_reply(_reply(401, {"message": "nope"}), "credentials")
    with pytest.raises(AtlassianError) as throttled:
        raise_for_reply(_reply(429, {}, {"Retry-After": "7"}), "link")
    assert throttled.value.retryable and throttled.value.retry_after == 7
    with pytest.raises(AtlassianError) as broken:
        raise_for_reply(_reply(502, {"errorMessages": ["down"]}), "upload")
    assert broken.value.retryable and "down" in str(broken.value)
    with pytest.raises(AtlassianError) as bad:
        raise_for_reply(_reply(400, {"errorMessages": ["bad size"]}), "link")
    assert not bad.value.retryable and bad.value.status == 400


class _ReplyingSession(requests.Session):
    """A session that answers every request with one canned reply (no network)."""

    def __init__(self, reply: requests.Response) -> None:
        super().__init__()
        self.reply = reply

    def request(self, *args: object, **kwargs: object) -> requests.Response:
        return self.reply


def test_a_link_reply_without_the_attachment_is_retryable_so_the_retry_can_find_it() -> None:
    from assets_attach.atlassian.assets_client import AssetsClient

    env = {"ATLASSIAN_EMAIL": "a@b.c", "ATLASSIAN_API_TOKEN": "t", "ASSETS_WORKSPACE_ID": "w"}
    for body in ([], {"unexpected": True}, [{"no": "id"}]):
        client = AssetsClient(_ReplyingSession(_reply(201, body)), "https://api.example", SecretSource(None, env=env))
        with pytest.raises(AtlassianError) as caught:
            client.link("1", filename="f", content_type="text/plain", media_id="m", size=1, comment="")
        assert caught.value.retryable and caught.value.step == "link"
    good = AssetsClient(_ReplyingSession(_reply(201, [{"id": 7, "filename": "f"}])), "https://api.example",
                        SecretSource(None, env=env))  # fmt: skip
    assert good.link("1", filename="f", content_type="text/plain", media_id="m", size=1, comment="").id == "7"
