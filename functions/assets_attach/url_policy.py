"""Where credentials may go. The media JWT only to hosts in MEDIA_ALLOWED_HOSTS; the API token and the JWT
only over https, loopback hosts (the local stack) excepted."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from .errors import ConfigError, MediaHostNotAllowedError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_media_base_url(url: str, allowed_patterns: Iterable[str]) -> str:
    """Return ``url`` without a trailing slash if the JWT may be sent there; raise otherwise."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password or parts.query or parts.fragment:
        raise MediaHostNotAllowedError("mediaBaseUrl is not a plain URL", step="credentials")
    if not is_secure_url(url):
        raise MediaHostNotAllowedError(f"mediaBaseUrl must use https (host {host})", step="credentials")
    if not any(fnmatchcase(host, pattern.strip().lower()) for pattern in allowed_patterns):
        raise MediaHostNotAllowedError(
            f"media host {host} is not in MEDIA_ALLOWED_HOSTS; the media token was not sent",
            step="credentials",
        )
    return url.rstrip("/")


def is_secure_url(url: str) -> bool:
    """https, or plain http to a loopback host."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)))


def require_secure_url(url: str, name: str) -> str:
    """``url`` without a trailing slash, if credentials may be sent to it; else a ConfigError naming ``name``."""
    if not is_secure_url(url):
        raise ConfigError(f"{name} must be an https URL (plain http only to a loopback host), not {url[:100]!r}")
    return url.rstrip("/")
