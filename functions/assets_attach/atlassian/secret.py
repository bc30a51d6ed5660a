"""The Atlassian secret: from Secrets Manager (cached with a bounded age), or from the environment."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from ..errors import AtlassianAuthError, AttachError, ConfigError
from .url_policy import UnsafeUrlError, vet_credential_url

SECRET_MAX_AGE_SECONDS = 300
T = TypeVar("T")
# A site's cloud id is a UUID (``GET {siteUrl}/_edge/tenant_info``, Atlassian KB "Retrieve my Atlassian site's
# Cloud ID"); the shape check keeps anything else (a slash, a host) out of the gateway URL it becomes part of.
CLOUD_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class AtlassianSecret(BaseModel):
    """``{"email", "apiToken", "workspaceId" | "siteUrl" | "cloudId", "webhookTokens"}``; tokens never show in
    repr. With ``cloudId`` every Atlassian call goes through the API gateway (see ``routes``)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    email: str = Field(min_length=3)
    api_token: SecretStr = Field(alias="apiToken", min_length=1)
    workspace_id: str | None = Field(default=None, alias="workspaceId")
    site_url: str | None = Field(default=None, alias="siteUrl", pattern=r"^https?://[^\s/]+/?$")

    @field_validator("site_url")
    @classmethod
    def _site_over_tls(cls, value: str | None) -> str | None:
        """The API token goes to the site: the rule of every credential-bearing URL (url_policy), normalized."""
        if value is None:
            return None
        try:
            return vet_credential_url(value)
        except UnsafeUrlError as e:  # the reason only, never the value
            raise ValueError(f"must be https://<site>.atlassian.net ({e.reason})") from None

    webhook_tokens: tuple[SecretStr, ...] = Field(default=(), alias="webhookTokens")
    cloud_id: str | None = Field(default=None, alias="cloudId")

    @field_validator("cloud_id", mode="before")
    @classmethod
    def _cloud_id_shape(cls, value: Any) -> Any:
        """A UUID such as tenant_info gives; the message never holds the value."""
        if value is None:
            return None
        text = value.strip() if isinstance(value, str) else ""
        if not CLOUD_ID.fullmatch(text):
            raise ValueError(
                "must be the site's cloud id, a UUID of hex digits and hyphens "
                "(`assets-attach workspace --site https://<site>.atlassian.net` prints it)"
            )
        return text

    @model_validator(mode="after")
    def _names_a_workspace(self) -> AtlassianSecret:
        if not (self.workspace_id or self.site_url or self.cloud_id):
            raise ValueError("give workspaceId, or siteUrl (or cloudId) to discover it")
        return self

    @property
    def basic_auth(self) -> tuple[str, str]:
        return (self.email, self.api_token.get_secret_value())


# The keys the model reads, each with the name the README gives it: its field's alias, and (populate_by_name) the
# field's own name.
_KEY_NAMES = {name: field.alias or name for name, field in AtlassianSecret.model_fields.items()}
_KEY_NAMES |= {alias: alias for alias in _KEY_NAMES.values()}


def unknown_keys(data: Any) -> list[tuple[str, str | None]]:
    """The secret's keys that the model ignores, each with the nearest valid key (or None): parsing stays
    lenient, ``doctor`` flags them (a ``webhookToken`` would leave every webhook call answering 401)."""
    if not isinstance(data, Mapping):
        return []
    by_lower = {name.lower(): alias for name, alias in _KEY_NAMES.items()}
    found: list[tuple[str, str | None]] = []
    for key in data:
        if str(key) in _KEY_NAMES:
            continue
        close = difflib.get_close_matches(str(key).lower(), list(by_lower), n=1, cutoff=0.6)
        found.append((str(key), by_lower[close[0]] if close else None))
    return found


def parse_secret(data: Any, origin: str) -> AtlassianSecret:
    try:
        return AtlassianSecret.model_validate(data)
    except ValidationError as e:
        # Name the fields, never echo their values: the input holds the API token.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'secret'}: {err['msg']}"
            for err in e.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"{origin} is not a valid Atlassian secret ({problems})") from None


# Secrets Manager answers that a retry cannot fix; anything else (throttling, 5xx, network) is passing.
_PERMANENT_CODES = {
    "ResourceNotFoundException",
    "AccessDeniedException",
    "DecryptionFailure",
    "InvalidRequestException",
    "InvalidParameterException",
}


def _read_error(secret_id: str, cause: BaseException | None) -> AttachError:
    code = cause.response.get("Error", {}).get("Code", "") if isinstance(cause, ClientError) else ""
    if code == "ResourceNotFoundException":
        return ConfigError(f"secret {secret_id} does not exist or has no value yet: fill it (see the README)")
    if code in _PERMANENT_CODES:
        return ConfigError(f"cannot read secret {secret_id} ({code})")
    return AttachError(
        f"cannot read secret {secret_id} right now ({code or type(cause).__name__})", step="secret", retryable=True
    )


class SecretSource:
    """Hands out the current secret; ``get(refresh=True)`` after a 401 picks up a rotated one."""

    def __init__(
        self,
        secret_id: str | None,
        *,
        max_age: int = SECRET_MAX_AGE_SECONDS,
        provider: SecretsProvider | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._secret_id = secret_id
        self._max_age = max_age
        self._provider = provider
        self._env = env

    def get(self, *, refresh: bool = False) -> AtlassianSecret:
        if not self._secret_id:
            return self._from_environment()
        return parse_secret(self._fetch(self._secret_id, refresh), f"secret {self._secret_id}")

    def unknown_keys(self) -> list[tuple[str, str | None]]:
        """The stored secret's keys that are not secret keys, with the nearest valid one (see ``unknown_keys``)."""
        return unknown_keys(self._fetch(self._secret_id, False)) if self._secret_id else []

    def _fetch(self, secret_id: str, refresh: bool) -> Any:
        try:
            if self._provider is None:
                self._provider = SecretsProvider()
            return self._provider.get(secret_id, max_age=self._max_age, transform="json", force_fetch=refresh)
        except TransformParameterError:
            raise ConfigError(f"secret {secret_id} is not JSON") from None
        except GetParameterError as e:
            raise _read_error(secret_id, e.__context__) from e
        except BotoCoreError as e:  # no region, no credentials
            raise ConfigError(f"cannot read secret {secret_id}: {e}") from e

    def for_site(self, site_url: str) -> AtlassianSecret:
        """Credentials to ask a site for its workspace id: the secret's, or the environment's without a workspace."""
        return self.get() if self._secret_id else self._from_environment(site_url)

    def _from_environment(self, site_url: str | None = None) -> AtlassianSecret:
        env = os.environ if self._env is None else self._env
        discoverable = site_url or env.get("ATLASSIAN_CLOUD_ID")
        needed = ["ATLASSIAN_EMAIL", "ATLASSIAN_API_TOKEN"] + ([] if discoverable else ["ASSETS_WORKSPACE_ID"])
        missing = [name for name in needed if not env.get(name)]
        if missing:
            raise ConfigError(f"set ATLASSIAN_SECRET_ID, or {', '.join(missing)}")
        return parse_secret(
            {
                "email": env["ATLASSIAN_EMAIL"],
                "apiToken": env["ATLASSIAN_API_TOKEN"],
                "workspaceId": env.get("ASSETS_WORKSPACE_ID") or None,
                "siteUrl": site_url or env.get("ATLASSIAN_SITE_URL") or None,
                "cloudId": env.get("ATLASSIAN_CLOUD_ID") or None,
            },
            "the ATLASSIAN_* environment variables",
        )


class FixedSecret(SecretSource):
    """One secret as given, never refetched: for trying a changed secret (``doctor``) before storing it."""

    def __init__(self, secret: AtlassianSecret) -> None:
        super().__init__(None)
        self._secret = secret

    def get(self, *, refresh: bool = False) -> AtlassianSecret:
        return self._secret

    def for_site(self, site_url: str) -> AtlassianSecret:
        return self._secret


def with_fresh_secret(secrets: SecretSource, call: Callable[[AtlassianSecret], T]) -> T:
    """``call(secret)``; on a 401, the secret is fetched again (it may have been rotated) and called once more."""
    secret = secrets.get()
    try:
        return call(secret)
    except AtlassianAuthError as e:
        if e.status != 401:
            raise
    return call(secrets.get(refresh=True))
