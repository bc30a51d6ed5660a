"""Settings, read once from the environment into a frozen dataclass.

The same variable names serve Lambda (set by template.yaml), the CLI and the local stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError

DEFAULT_API_BASE_URL = "https://api.atlassian.com"
DEFAULT_MEDIA_ALLOWED_HOSTS = "api.media.atlassian.com,*.atlassian.com"
DEFAULT_MAX_FILE_SIZE_BYTES = 1024**3
MEDIA_UPLOAD_PATHS = ("/file", "/file/binary")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    atlassian_secret_id: str | None = None
    assets_api_base_url: str = DEFAULT_API_BASE_URL
    media_allowed_hosts: tuple[str, ...] = _csv(DEFAULT_MEDIA_ALLOWED_HOSTS)
    allowed_buckets: tuple[str, ...] = ()
    max_file_size_bytes: int = DEFAULT_MAX_FILE_SIZE_BYTES
    media_upload_path: str = "/file"
    s3_key_prefix: str = "attachments/"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        get = lambda name, default: (env.get(name) or "").strip() or default  # noqa: E731

        size_text = get("MAX_FILE_SIZE_BYTES", str(DEFAULT_MAX_FILE_SIZE_BYTES))
        try:
            max_size = int(size_text)
        except ValueError:
            raise ConfigError(f"MAX_FILE_SIZE_BYTES must be a whole number of bytes, not {size_text!r}") from None
        if max_size <= 0:
            raise ConfigError("MAX_FILE_SIZE_BYTES must be positive")

        upload_path = "/" + get("MEDIA_UPLOAD_PATH", "/file").strip("/")
        if upload_path not in MEDIA_UPLOAD_PATHS:
            raise ConfigError(f"MEDIA_UPLOAD_PATH must be one of {', '.join(MEDIA_UPLOAD_PATHS)}")

        base_url = get("ASSETS_API_BASE_URL", DEFAULT_API_BASE_URL).rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError("ASSETS_API_BASE_URL must be an http(s) URL")

        allowed_hosts = _csv(get("MEDIA_ALLOWED_HOSTS", DEFAULT_MEDIA_ALLOWED_HOSTS))
        return cls(
            atlassian_secret_id=get("ATLASSIAN_SECRET_ID", None),
            assets_api_base_url=base_url,
            media_allowed_hosts=allowed_hosts,
            allowed_buckets=_csv(get("ALLOWED_BUCKETS", "")),
            max_file_size_bytes=max_size,
            media_upload_path=upload_path,
            s3_key_prefix=get("S3_KEY_PREFIX", "attachments/"),
        )
