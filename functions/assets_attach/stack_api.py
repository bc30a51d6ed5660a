"""A deployed stack's webhook API as the CLI calls it: post a job, get a job, list jobs.

The stack is named by ``--stack NAME`` (its CloudFormation outputs ``WebhookUrl`` and ``AtlassianSecretArn``; the
token is the secret's first ``webhookTokens`` entry, the size limit the stack's ``MaxFileSizeBytes``) or by
``ASSETS_ATTACH_API_URL`` + ``ASSETS_ATTACH_TOKEN``. A 429 or 503 (and, for a POST, a 409: the same request is
being accepted right now) is sent again after its ``Retry-After``, else after an exponential back-off with jitter.
The token travels in the Authorization header only: no error, log line or file carries it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from .api_document import JobAccepted
from .api_models import JobView
from .atlassian.http_session import retry_after_seconds
from .atlassian.secret import SecretSource
from .atlassian.url_policy import require_secure_url
from .errors import AttachError, ConfigError

API_URL_ENV = "ASSETS_ATTACH_API_URL"
TOKEN_ENV = "ASSETS_ATTACH_TOKEN"  # noqa: S105 - the variable's name
RETRY_STATUSES = frozenset({429, 503})
MAX_TRIES = 8
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
M = TypeVar("M", bound=BaseModel)
TIMEOUT = (10.0, 60.0)  # connect, read (a POST waits for the webhook's S3 checks)


class StackApiError(AttachError):
    """The stack's API refused a call or could not be reached; ``api_code`` and ``field`` are the answer's."""

    code = "stack_api_error"

    def __init__(self, message: str, *, status: int | None = None, api_code: str | None = None,
                 field: str | None = None, retryable: bool = False) -> None:  # fmt: skip
        super().__init__(message, status=status, field=field, retryable=retryable)
        self.api_code = api_code


@dataclass(frozen=True)
class StackTarget:
    """Where the API is and its token; from a stack also its secret (for the dry run) and size limit."""

    api_url: str  # without a trailing /attachments
    token: SecretStr
    secret_id: str | None = None
    max_file_size: int | None = None


def api_base(url: str, name: str) -> str:
    """The API's base from the webhook URL or the base itself (``…/Prod/attachments`` → ``…/Prod``)."""
    return require_secure_url(url, name).removesuffix("/attachments")


def stack_target(
    stack: str | None, env: Mapping[str, str], cloudformation: Callable[[], Any] | None = None
) -> StackTarget:
    """The API named by ``--stack NAME``, else by ASSETS_ATTACH_API_URL + ASSETS_ATTACH_TOKEN."""
    if stack:
        return _from_stack(stack, (cloudformation or (lambda: boto3.client("cloudformation")))())
    url, token = (env.get(API_URL_ENV) or "").strip(), (env.get(TOKEN_ENV) or "").strip()
    if not url or not token:
        raise ConfigError(f"name the deployed stack: --stack NAME, or {API_URL_ENV} and {TOKEN_ENV}")
    return StackTarget(api_base(url, API_URL_ENV), SecretStr(token))


def _from_stack(name: str, client: Any) -> StackTarget:
    try:
        [stack] = client.describe_stacks(StackName=name)["Stacks"]
    except (ClientError, BotoCoreError, ValueError) as e:
        raise ConfigError(f"cannot describe stack {name}: {e}") from e
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    missing = [key for key in ("WebhookUrl", "AtlassianSecretArn") if not outputs.get(key)]
    if missing:
        raise ConfigError(f"stack {name} has no output {', '.join(missing)}: is it an assets-attach stack?")
    secret_id = outputs["AtlassianSecretArn"]
    tokens = SecretSource(secret_id).get().webhook_tokens
    if not tokens:
        raise ConfigError(f"secret {secret_id} has no webhookTokens")
    size = parameters.get("MaxFileSizeBytes", "")
    return StackTarget(
        api_base(outputs["WebhookUrl"], f"stack {name}'s WebhookUrl"),
        tokens[0],
        secret_id=secret_id,
        max_file_size=int(size) if size.isdigit() else None,
    )


class RemoteJob(JobView):
    """A job as the API shows it, with any field newer than this client kept; ``summary`` is absent on a stack
    older than v3."""

    model_config = ConfigDict(extra="allow")

    summary: str | None = None  # type: ignore[assignment]


class JobPage(BaseModel):
    jobs: list[RemoteJob]
    nextCursor: str | None = None


def backoff_seconds(attempt: int, retry_after: float | None) -> float:
    """The wait before try ``attempt + 1``: Retry-After, else 1 s doubling to 30 s, each ×0.7–1.3."""
    if retry_after is not None:
        return min(retry_after, 15 * 60.0)
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1)) * random.uniform(0.7, 1.3)  # noqa: S311


class StackApi:
    def __init__(
        self,
        target: StackTarget,
        session: requests.Session | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_tries: int = MAX_TRIES,
    ) -> None:
        self.target = target
        self._session = session or requests.Session()
        self._sleep = sleep
        self._max_tries = max_tries
        self.waits: list[float] = []  # every back-off slept, for the caller's progress and the tests

    def post_job(self, body: Mapping[str, Any]) -> JobAccepted:
        """``POST /attachments``: the accepted job (the same one again for the same request within 24 hours)."""
        reply = self._call("POST", "/attachments", json=dict(body), retry_on=RETRY_STATUSES | {409})
        return _parse(JobAccepted, reply, "POST /attachments")

    def get_job(self, job_id: str) -> RemoteJob:
        reply = self._call("GET", f"/attachments/jobs/{quote(job_id, safe='')}")
        return _parse(RemoteJob, reply, "GET /attachments/jobs/{jobId}")

    def retry_job(self, job_id: str) -> JobAccepted:
        """``POST /attachments/jobs/{jobId}/retry``: the failed job queued again, its failed pairs only."""
        reply = self._call("POST", f"/attachments/jobs/{quote(job_id, safe='')}/retry")
        return _parse(JobAccepted, reply, "POST /attachments/jobs/{jobId}/retry")

    def list_jobs(self, *, limit: int | None = None, cursor: str | None = None, **filters: str | None) -> JobPage:
        """``GET /attachments/jobs?issueKey=&objectId=&bucket=&key=&status=&limit=&cursor=``, newest first."""
        params = {name: value for name, value in filters.items() if value}
        params |= {"limit": str(limit)} if limit else {}
        params |= {"cursor": cursor} if cursor else {}
        return _parse(JobPage, self._call("GET", "/attachments/jobs", params=params), "GET /attachments/jobs")

    def _call(self, method: str, path: str, *, retry_on: frozenset[int] = RETRY_STATUSES, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.target.token.get_secret_value()}", "Accept": "application/json"}
        for attempt in range(1, self._max_tries + 1):
            try:
                response = self._session.request(
                    method, self.target.api_url + path, headers=headers, timeout=TIMEOUT, **kwargs
                )
            except requests.RequestException as e:  # the message may name the URL, never the header
                if attempt == self._max_tries:
                    raise StackApiError(f"{method} {path}: cannot reach the API ({type(e).__name__})",
                                        retryable=True) from None  # fmt: skip
                self._wait(attempt, None)
                continue
            if response.status_code in retry_on and attempt < self._max_tries:
                self._wait(attempt, retry_after_seconds(response))
                continue
            if response.status_code >= 300:
                raise _refusal(method, path, response)
            try:
                return response.json()
            except ValueError:
                raise StackApiError(f"{method} {path}: the answer is not JSON", status=response.status_code) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        wait = backoff_seconds(attempt, retry_after)
        self.waits.append(wait)
        self._sleep(wait)


def _refusal(method: str, path: str, response: requests.Response) -> StackApiError:
    """The API's ``{"error": {"code", "message", "field"?}}`` (API Gateway's own ``{"message"}``) as an error."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message, field = error.get("code"), str(error.get("message", ""))[:500], error.get("field")
    else:
        code, field = None, None
        message = str(body.get("message", "")) if isinstance(body, dict) else (response.reason or "")
    status = response.status_code
    return StackApiError(
        f"{method} {path}: HTTP {status}{' ' + code if code else ''}: {message}".rstrip(": "),
        status=status,
        api_code=str(code) if code else None,
        field=str(field) if field else None,
        retryable=status in RETRY_STATUSES or status >= 500,
    )


def _parse(model: type[M], data: Any, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError:
        raise StackApiError(f"{what}: the answer has an unexpected shape") from None
