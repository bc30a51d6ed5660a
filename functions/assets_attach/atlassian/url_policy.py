"""Where credentials may go.

Every URL that will carry a credential (the API token to ``ASSETS_API_BASE_URL`` and ``siteUrl``, the media
JWT to a ``mediaBaseUrl``) goes through one function, :func:`vet_credential_url`. It decides the host the way
the HTTP client will connect to it, and refuses whatever could be read two ways:

- the whole URL is printable ASCII: no whitespace, control characters or non-ASCII (look-alike) letters,
  and no backslash anywhere (``urllib.parse`` keeps a backslash in the host, urllib3 ends the host there);
- the authority is a bare host and an optional port: no ``@``/user info, no percent-escapes;
- the host is a plain DNS name (dot-separated labels of ASCII letters, digits and hyphens, each 1-63
  characters, no leading or trailing hyphen, no empty label, at most 253 characters, not numeric at the
  end), or a loopback literal: ``127.x.y.z`` in canonical dotted-decimal form or ``[::1]``. Other IP
  literals, and the integer, octal and hex forms (``2130706433``, ``0x7f.1``) are refused;
- the port, if given, is 1 to 65535;
- ``https``; plain ``http`` only to a loopback host (the local stack);
- no fragment, and no query unless ``allow_query`` (a full URL such as a download redirect target);
- ``urllib.parse.urlsplit``, urllib3's ``parse_url`` and requests' own ``prepare_url`` (whose result the
  transport adapter splits again to pick the connection pool) all agree on scheme, host and port;
- with an allow-list (``MEDIA_ALLOWED_HOSTS``), the lowercased host matches one of its fnmatch patterns.

The URL returned is rebuilt from the checked parts, so what is used is exactly what was checked.
Error messages show the URL truncated, with anything before an ``@`` hidden; they never hold a token.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from requests import PreparedRequest
from requests.exceptions import RequestException
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ..errors import ConfigError, MediaHostNotAllowedError

MAX_URL_LENGTH = 2048
_PRINTABLE_ASCII = re.compile(r"[!-~]+")  # no space, no control character, nothing beyond ASCII
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>.*)", re.DOTALL)
_AUTHORITY = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A last label that inet_aton / the WHATWG URL parser would read as a number makes the whole host an IPv4 address.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


class UnsafeUrlError(ValueError):
    """A URL that no credential may be sent to; ``reason`` says why, without the URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def shown_url(url: str, limit: int = 100) -> str:
    """``url`` for an error message: anything before an ``@`` hidden, truncated, non-printables escaped."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        url = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    if len(url) > limit:
        url = url[:limit] + "..."
    return ascii(url)


def _host_kind(host: str) -> str:
    """``"dns"`` or ``"loopback"`` for a lowercased host (IPv6 in brackets); UnsafeUrlError for anything else."""
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UnsafeUrlError("its host is not a valid IPv6 address") from None
        if address != ipaddress.IPv6Address("::1"):
            raise UnsafeUrlError("its host is an IP address (only loopback literals are allowed)")
        return "loopback"
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            address4 = ipaddress.IPv4Address(host)  # dotted-decimal only: no integer, octal or hex forms
        except ValueError:
            raise UnsafeUrlError("its host is a numeric address that is not plain dotted-decimal") from None
        if str(address4) != host or not address4.is_loopback:
            raise UnsafeUrlError("its host is an IP address (only loopback literals are allowed)")
        return "loopback"
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UnsafeUrlError("its host is not a plain DNS name")
    return "loopback" if host == "localhost" else "dns"


def _refuse_any(*checks: tuple[bool, str]) -> None:
    """UnsafeUrlError with the reason of the first check that is true."""
    for refused, reason in checks:
        if refused:
            raise UnsafeUrlError(reason)


def _bare(host: str | None) -> str:
    return (host or "").lower().removeprefix("[").removesuffix("]")


def _client_views(url: str) -> list[tuple[str, str, int | None]]:
    """(scheme, host, port) as urlsplit, urllib3's parse_url and requests (prepare_url, then its adapter) see it."""
    try:
        split = urlsplit(url)
        views = [(split.scheme.lower(), _bare(split.hostname), split.port)]
        parsed = parse_url(url)
        views.append(((parsed.scheme or "").lower(), _bare(parsed.host), parsed.port))
        prepared = PreparedRequest()
        prepared.prepare_url(url, None)
        connect = urlsplit(prepared.url or "")  # what requests' adapter hands to urllib3's pool manager
        views.append((connect.scheme.lower(), _bare(connect.hostname), connect.port))
    except (RequestException, LocationParseError, ValueError):
        raise UnsafeUrlError("the HTTP client cannot parse it") from None
    return views


def vet_credential_url(
    url: str,
    *,
    allowed_hosts: Iterable[str] | None = None,
    allow_query: bool = False,
    hosts_setting: str = "the allowed hosts",
) -> str:
    """The normalized ``url`` if a credential may be sent there, else UnsafeUrlError (see the module doc).

    Without ``allow_query`` (a base URL) the result has no trailing slash. With it (a full URL, such as a
    redirect target) the path and query are kept as given. ``allowed_hosts``: fnmatch patterns the host
    must match (``hosts_setting`` names them in the message); None for no allow-list.
    """
    if not isinstance(url, str) or not url:
        raise UnsafeUrlError("it is empty")
    _refuse_any(
        (len(url) > MAX_URL_LENGTH, f"it is longer than {MAX_URL_LENGTH} characters"),
        (not _PRINTABLE_ASCII.fullmatch(url), "it holds whitespace, control or non-ASCII characters"),
        ("\\" in url, "it holds a backslash"),
    )
    match = _URL.fullmatch(url)
    if match is None:
        raise UnsafeUrlError("it is not an absolute http(s) URL")
    scheme, authority, rest = match["scheme"].lower(), match["authority"], match["rest"]
    _refuse_any(
        (scheme not in ("https", "http"), "it must use https"),
        ("@" in authority, "it carries user info (@)"),
        ("%" in authority, "its host holds a percent-escape"),
    )
    parts = _AUTHORITY.fullmatch(authority)
    if parts is None:
        raise UnsafeUrlError("its host is empty or not a plain host[:port]")
    host = parts["host"].lower()
    port = int(parts["port"]) if parts["port"] is not None else None
    _refuse_any(
        (port is not None and not 1 <= port <= 65535, "its port is outside 1-65535"),
        ("#" in rest, "it has a fragment (#)"),
        ("?" in rest and not allow_query, "it has a query (?)"),
    )
    kind = _host_kind(host)
    if scheme == "http" and kind != "loopback":
        raise UnsafeUrlError("it must use https (plain http only to a loopback host)")
    if any(view != (scheme, _bare(host), port) for view in _client_views(url)):
        raise UnsafeUrlError("URL parsers disagree about its host")
    if allowed_hosts is not None and not any(
        fnmatchcase(_bare(host), pattern.strip().lower()) for pattern in allowed_hosts if pattern.strip()
    ):
        raise UnsafeUrlError(f"host {host} is not in {hosts_setting}")
    origin = f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"
    return origin + (rest if allow_query else rest.rstrip("/"))


def is_loopback(host: str) -> bool:
    """``localhost``, a canonical ``127.x.y.z`` or ``::1`` (brackets optional)."""
    host = host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    try:
        return _host_kind(host) == "loopback"
    except UnsafeUrlError:
        return False


def check_media_base_url(url: str, allowed_patterns: Iterable[str], *, allow_query: bool = False) -> str:
    """The normalized ``url`` if the media JWT may be sent there; MediaHostNotAllowedError otherwise.

    ``allow_query=True`` checks a full media URL (a download redirect target) rather than a base URL.
    """
    try:
        return vet_credential_url(
            url, allowed_hosts=tuple(allowed_patterns), allow_query=allow_query, hosts_setting="MEDIA_ALLOWED_HOSTS"
        )
    except UnsafeUrlError as e:
        raise MediaHostNotAllowedError(
            f"mediaBaseUrl {shown_url(url)} refused: {e.reason}; the media token was not sent", step="credentials"
        ) from None


def require_secure_url(url: str, name: str) -> str:
    """``url`` normalized, without a trailing slash, if credentials may be sent to it; else a ConfigError."""
    try:
        return vet_credential_url(url)
    except UnsafeUrlError as e:
        raise ConfigError(
            f"{name} must be a plain https URL (plain http only to a loopback host): {e.reason}, not {shown_url(url)}"
        ) from None
