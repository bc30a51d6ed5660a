"""The process's collaborators, built lazily on first use and kept for the warm container."""

from __future__ import annotations

from functools import cache, cached_property
from typing import Any

import boto3
import requests

from .assets_client import AssetsClient
from .atlassian_secret import SecretSource
from .attach import Attacher
from .http_session import new_session
from .media_upload import MediaUploader
from .s3_source import S3Source
from .settings import Settings


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def session(self) -> requests.Session:
        return new_session()

    @cached_property
    def secrets(self) -> SecretSource:
        return SecretSource(self.settings.atlassian_secret_id)

    @cached_property
    def s3_client(self) -> Any:
        return boto3.client("s3")

    @cached_property
    def s3(self) -> S3Source:
        return S3Source(self.s3_client)

    @cached_property
    def assets(self) -> AssetsClient:
        return AssetsClient(self.session, self.settings.assets_api_base_url, self.secrets)

    @cached_property
    def media(self) -> MediaUploader:
        return MediaUploader(self.session, self.settings.media_allowed_hosts, self.settings.media_upload_path)

    @cached_property
    def attacher(self) -> Attacher:
        return Attacher(self.assets, self.media, self.settings.max_file_size_bytes)


@cache
def get_runtime() -> Runtime:
    """One Runtime per process (per warm Lambda container); tests call ``get_runtime.cache_clear()``."""
    return Runtime(Settings.from_env())
