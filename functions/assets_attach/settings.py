"""Settings, read once from the environment into a frozen dataclass.

The same variable names serve Lambda (set by template.yaml), the CLI and the local stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from .atlassian.media_api import MEDIA_UPLOAD_PATHS
from .atlassian.url_policy import require_secure_url
from .errors import ConfigError

DEFAULT_API_BASE_URL = "https://api.atlassian.com"
DEFAULT_MEDIA_ALLOWED_HOSTS = "api.media.atlassian.com,*.atlassian.com"
DEFAULT_MAX_FILE_SIZE_BYTES = 1024**3
DEFAULT_CHUNKED_MIN_BYTES = 16 * 1024**2
UPLOAD_MODES = ("auto", "chunked", "single")
UploadMode = Literal["auto", "chunked", "single"]


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _folder(prefix: str) -> str:
    """``attachments`` and ``/attachments/`` both mean the folder ``attachments/``."""
    return f"{prefix.strip('/')}/" if prefix.strip("/") else ""


@dataclass(frozen=True)
class Settings:
    atlassian_secret_id: str | None = None
    assets_api_base_url: str = DEFAULT_API_BASE_URL
    media_allowed_hosts: tuple[str, ...] = _csv(DEFAULT_MEDIA_ALLOWED_HOSTS)
    allowed_buckets: tuple[str, ...] = ()
    max_file_size_bytes: int = DEFAULT_MAX_FILE_SIZE_BYTES
    media_upload_path: str = "/file"
    media_upload_mode: UploadMode = "auto"
    chunked_min_bytes: int = DEFAULT_CHUNKED_MIN_BYTES
    media_upload_concurrency: int = 3
    s3_key_prefix: str = "attachments/"
    uploads_bucket: str | None = None
    jobs_table: str | None = None
    idempotency_table: str | None = None
    jobs_queue_url: str | None = None
    max_receive_count: int = 5
    canary_object_id: str | None = None  # the drift canary's Assets object

    @property
    def webhook_buckets(self) -> frozenset[str]:
        """Buckets a webhook may name: ALLOWED_BUCKETS, by default the stack's uploads bucket."""
        return frozenset(self.allowed_buckets or ((self.uploads_bucket,) if self.uploads_bucket else ()))

    def require(self, name: str) -> str:
        """A resource name the calling function cannot work without (set by template.yaml)."""
        value = getattr(self, name)
        if not value:
            raise ConfigError(f"{name.upper()} is not set")
        return str(value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def optional(name: str) -> str | None:
            return (env.get(name) or "").strip() or None

        def get(name: str, default: str) -> str:
            return optional(name) or default

        def positive_int(name: str, default: int) -> int:
            text = get(name, str(default))
            try:
                value = int(text)
            except ValueError:
                raise ConfigError(f"{name} must be a whole number, not {text!r}") from None
            if value <= 0:
                raise ConfigError(f"{name} must be positive")
            return value

        upload_path = "/" + get("MEDIA_UPLOAD_PATH", "/file").strip("/")
        if upload_path not in MEDIA_UPLOAD_PATHS:
            raise ConfigError(f"MEDIA_UPLOAD_PATH must be one of {', '.join(MEDIA_UPLOAD_PATHS)}")

        upload_mode = get("MEDIA_UPLOAD_MODE", "auto").lower()
        if upload_mode not in UPLOAD_MODES:
            raise ConfigError(f"MEDIA_UPLOAD_MODE must be one of {', '.join(UPLOAD_MODES)}, not {upload_mode!r}")

        base_url = require_secure_url(get("ASSETS_API_BASE_URL", DEFAULT_API_BASE_URL), "ASSETS_API_BASE_URL")

        allowed_hosts = _csv(get("MEDIA_ALLOWED_HOSTS", DEFAULT_MEDIA_ALLOWED_HOSTS))
        return cls(
            atlassian_secret_id=optional("ATLASSIAN_SECRET_ID"),
            assets_api_base_url=base_url,
            media_allowed_hosts=allowed_hosts,
            allowed_buckets=_csv(get("ALLOWED_BUCKETS", "")),
            max_file_size_bytes=positive_int("MAX_FILE_SIZE_BYTES", DEFAULT_MAX_FILE_SIZE_BYTES),
            media_upload_path=upload_path,
            media_upload_mode=cast(UploadMode, upload_mode),
            chunked_min_bytes=positive_int("CHUNKED_MIN_BYTES", DEFAULT_CHUNKED_MIN_BYTES),
            media_upload_concurrency=positive_int("MEDIA_UPLOAD_CONCURRENCY", 3),
            s3_key_prefix=_folder(get("S3_KEY_PREFIX", "attachments/")),
            uploads_bucket=optional("UPLOADS_BUCKET"),
            jobs_table=optional("JOBS_TABLE"),
            idempotency_table=optional("IDEMPOTENCY_TABLE"),
            jobs_queue_url=optional("JOBS_QUEUE_URL"),
            max_receive_count=positive_int("MAX_RECEIVE_COUNT", 5),
            canary_object_id=optional("CANARY_OBJECT_ID"),
        )
