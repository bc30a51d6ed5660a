"""Where credentials may go: one rule (url_policy.vet_credential_url) for every URL that carries a token.

The security review's finding: ``https://evil.example\\.atlassian.com`` passed a ``*.atlassian.com`` check
made on ``urllib.parse.urlsplit``'s host, while requests/urllib3 connected to ``evil.example`` with the media
JWT. Each hostile URL below is refused; its row also records which host ``urlsplit`` reports and which
host urllib3's ``parse_url`` (what requests connects to) reports, to show why one parser's view is not enough.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from assets_attach.atlassian.secret import parse_secret
from assets_attach.atlassian.url_policy import (
    UnsafeUrlError,
    check_media_base_url,
    is_loopback,
    require_secure_url,
    vet_credential_url,
)
from assets_attach.errors import ConfigError, MediaHostNotAllowedError
from assets_attach.settings import DEFAULT_MEDIA_ALLOWED_HOSTS, Settings

DEFAULT = tuple(DEFAULT_MEDIA_ALLOWED_HOSTS.split(","))  # api.media.atlassian.com, *.atlassian.com
ANY = ("*",)
REFUSED = "<the parser raises>"


class Hostile(NamedTuple):
    url: str
    split_host: str | None  # urllib.parse.urlsplit(url).hostname: what a naive check matches
    client_host: str | None  # urllib3.util.parse_url(url).host: where requests would connect
    patterns: tuple[str, ...] = DEFAULT
    off_list_only: bool = False  # a well-formed URL, refused only because its host is not on the list


HOSTILE = [
    # the review's case: urlsplit keeps the backslash in the host, urllib3 ends the host there
    Hostile("https://evil.example\\.atlassian.com", "evil.example\\.atlassian.com", "evil.example"),
    Hostile("https://x.atlassian.com\\@evil.example", "evil.example", "x.atlassian.com"),
    Hostile("http://127.0.0.2:4321\\[::1]", "::1", "127.0.0.2", ("127.0.0.1", "::1")),
    Hostile("https://evil.example%5C.atlassian.com", "evil.example%5C.atlassian.com", "evil.example%5C.atlassian.com"),
    Hostile("https://api.media.atlassian.com@evil.example", "evil.example", "evil.example"),
    Hostile("https://user:pw@api.media.atlassian.com", "api.media.atlassian.com", "api.media.atlassian.com"),
    Hostile("https://evil.example#.atlassian.com", "evil.example", "evil.example"),
    Hostile("https://evil.example?.atlassian.com", "evil.example", "evil.example"),
    Hostile("https://evil.example/.atlassian.com", "evil.example", "evil.example", off_list_only=True),
    # urlsplit silently drops tab and newline (and so matched *.atlassian.com); urllib3 refuses them
    Hostile("https://evil.example\t.atlassian.com", "evil.example.atlassian.com", REFUSED),
    Hostile("https://evil.example\n.atlassian.com", "evil.example.atlassian.com", REFUSED),
    Hostile("https://evil.example .atlassian.com", "evil.example .atlassian.com", REFUSED),
    Hostile("https://evil.example\x00.atlassian.com", "evil.example\x00.atlassian.com", REFUSED),
    Hostile(" https://api.media.atlassian.com", "api.media.atlassian.com", REFUSED),
    # look-alikes: a Cyrillic "а", a fullwidth dot
    Hostile("https://\u0430pi.media.atlassian.com", "\u0430pi.media.atlassian.com", "xn--pi-6kc.media.atlassian.com"),
    Hostile("https://evil\uff0eatlassian.com", "evil\uff0eatlassian.com", REFUSED),
    # IP literals, even when the list names them or allows anything
    Hostile("https://10.0.0.1", "10.0.0.1", "10.0.0.1", ("10.0.0.1", "*.atlassian.com")),
    Hostile("https://169.254.169.254", "169.254.169.254", "169.254.169.254", ANY),
    Hostile("https://[::ffff:127.0.0.1]", "::ffff:127.0.0.1", "[::ffff:127.0.0.1]", (*DEFAULT, "127.0.0.1")),
    Hostile("https://2130706433", "2130706433", "2130706433", ANY),
    Hostile("http://0x7f.1", "0x7f.1", "0x7f.1", ANY),
    Hostile("http://0177.0.0.1", "0177.0.0.1", "0177.0.0.1", ANY),
    Hostile("http://127.1", "127.1", "127.1", ANY),
    Hostile("https://[::1]", "::1", "[::1]", off_list_only=True),  # loopback, but not on an https list
    # no TLS, wrong scheme, no scheme
    Hostile("http://api.media.atlassian.com", "api.media.atlassian.com", "api.media.atlassian.com"),
    Hostile("ftp://api.media.atlassian.com", "api.media.atlassian.com", "api.media.atlassian.com"),
    Hostile("//api.media.atlassian.com", "api.media.atlassian.com", "api.media.atlassian.com"),
    # names that merely look related
    Hostile(
        "https://api.media.atlassian.com.evil.example",
        "api.media.atlassian.com.evil.example",
        "api.media.atlassian.com.evil.example",
        off_list_only=True,
    ),
    Hostile("https://xatlassian.com", "xatlassian.com", "xatlassian.com", off_list_only=True),
    Hostile("https://api.media.atlassian.com.", "api.media.atlassian.com.", "api.media.atlassian.com.", ANY),
    Hostile("https://evil_example.atlassian.com", "evil_example.atlassian.com", "evil_example.atlassian.com"),
    # ports and an empty host
    Hostile("https://api.media.atlassian.com:0", "api.media.atlassian.com", "api.media.atlassian.com"),
    Hostile("https://api.media.atlassian.com:99999", "api.media.atlassian.com", REFUSED),
    Hostile("https:///x", None, None, ANY),
]


def _split_host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return REFUSED


def _client_host(url: str) -> str | None:
    try:
        return parse_url(url).host
    except LocationParseError:
        return REFUSED


def test_the_table_is_large_enough() -> None:
    assert len(HOSTILE) >= 20
    assert len({row.url for row in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("row", HOSTILE, ids=[ascii(row.url) for row in HOSTILE])
def test_what_each_parser_sees(row: Hostile) -> None:
    assert _split_host(row.url) == row.split_host
    assert _client_host(row.url) == row.client_host


@pytest.mark.parametrize("allow_query", [False, True])
@pytest.mark.parametrize("row", HOSTILE, ids=[ascii(row.url) for row in HOSTILE])
def test_hostile_media_urls_are_refused(row: Hostile, allow_query: bool) -> None:
    with pytest.raises(MediaHostNotAllowedError) as caught:
        check_media_base_url(row.url, row.patterns, allow_query=allow_query)
    error = caught.value
    assert error.step == "credentials" and error.code == "media_host_not_allowed" and not error.retryable
    assert "mediaBaseUrl" in str(error) and "the media token was not sent" in str(error)
    assert "pw" not in str(error)  # user info is never shown


@pytest.mark.parametrize("row", [r for r in HOSTILE if not r.off_list_only], ids=lambda r: ascii(r.url))
def test_hostile_urls_are_refused_for_the_api_token_too(row: Hostile) -> None:
    with pytest.raises(UnsafeUrlError):
        vet_credential_url(row.url)
    with pytest.raises(ConfigError) as caught:
        require_secure_url(row.url, "ASSETS_API_BASE_URL")
    assert "ASSETS_API_BASE_URL" in str(caught.value)
    if row.url == row.url.strip():  # settings strip the variable's surrounding whitespace, as for every setting
        with pytest.raises(ConfigError):
            Settings.from_env({"ASSETS_API_BASE_URL": row.url})


@pytest.mark.parametrize(
    "site",
    [
        "https://evil.example\\.atlassian.net",
        "https://evil.example%5C.atlassian.net",
        "https://\u0430cme.atlassian.net",
        "https://10.0.0.1",
        "https://2130706433",
        "http://example.atlassian.net",
    ],
)
def test_a_hostile_site_url_in_the_secret_is_refused_without_echoing_the_secret(site: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_secret({"email": "a@b.c", "apiToken": "tok-123456", "siteUrl": site}, "secret s")
    assert "siteUrl" in str(caught.value)
    assert "tok-123456" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "patterns", "expected"),
    [
        ("https://api.media.atlassian.com", DEFAULT, "https://api.media.atlassian.com"),
        ("https://api.media.atlassian.com/", DEFAULT, "https://api.media.atlassian.com"),
        ("https://eu.media.atlassian.com", ("*.atlassian.com",), "https://eu.media.atlassian.com"),
        ("https://API.Media.Atlassian.COM/", DEFAULT, "https://api.media.atlassian.com"),
        ("HTTPS://api.media.atlassian.com", DEFAULT, "https://api.media.atlassian.com"),
        ("https://api.media.atlassian.com:443", DEFAULT, "https://api.media.atlassian.com:443"),
        ("https://xn--pi-6kc.media.atlassian.com", DEFAULT, "https://xn--pi-6kc.media.atlassian.com"),
        ("http://127.0.0.1:8080", ("127.0.0.1",), "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/media/", ("127.0.0.1",), "http://127.0.0.1:8080/media"),
        ("http://localhost:8080", ("localhost",), "http://localhost:8080"),
        ("http://[::1]:8080", ("::1",), "http://[::1]:8080"),
    ],
)
def test_allowed_media_urls_come_back_normalized(url: str, patterns: tuple[str, ...], expected: str) -> None:
    assert check_media_base_url(url, patterns) == expected


def test_a_full_url_keeps_its_path_and_query() -> None:
    url = "https://api.media.atlassian.com/file/abc/binary/?client=x&token-less=1%20"
    assert check_media_base_url(url, DEFAULT, allow_query=True) == url
    with pytest.raises(MediaHostNotAllowedError):
        check_media_base_url(url, DEFAULT)  # a base URL has no query
    with pytest.raises(MediaHostNotAllowedError):
        check_media_base_url("https://api.media.atlassian.com/file#x", DEFAULT, allow_query=True)


def test_an_empty_allow_list_allows_nothing() -> None:
    with pytest.raises(MediaHostNotAllowedError):
        check_media_base_url("https://api.media.atlassian.com", [])


def test_secure_urls_for_the_api_token() -> None:
    assert require_secure_url("https://api.atlassian.com/", "X") == "https://api.atlassian.com"
    assert require_secure_url("http://127.0.0.1:8080", "X") == "http://127.0.0.1:8080"
    assert require_secure_url("https://Example.atlassian.net/gateway/", "X") == "https://example.atlassian.net/gateway"
    assert Settings.from_env({}).assets_api_base_url == "https://api.atlassian.com"
    secret = parse_secret({"email": "a@b.c", "apiToken": "t", "siteUrl": "https://Example.atlassian.net/"}, "s")
    assert secret.site_url == "https://example.atlassian.net"


def test_messages_hide_user_info_and_stay_short() -> None:
    with pytest.raises(ConfigError) as caught:
        require_secure_url("https://bot:api-token-" + "x" * 300 + "@evil.example", "ASSETS_API_BASE_URL")
    assert "api-token" not in str(caught.value) and "evil.example" in str(caught.value)
    with pytest.raises(MediaHostNotAllowedError) as long_url:
        check_media_base_url("https://evil.example/" + "a" * 5000, DEFAULT)
    assert len(str(long_url.value)) < 300


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("127.1", False),
        ("2130706433", False),
        ("0x7f.0.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("10.0.0.1", False),
        ("api.atlassian.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
